#define _GNU_SOURCE
#include "test.h"
#include "vmm/vmmcall.h"
#include "power/power.h"
#include "vmm/vcpu.h"
#include "vmm/gmem.h"
#include "core/log.h"
#include <stdlib.h>
#include <string.h>

/* Fakes for what the hypervisor provides around the VMMCALL handler. */
static uint64_t counters[2][EXIT_NR];
unsigned vmm_cpu_count(void)
{
	return 2;
}
const uint64_t *vmm_cpu_exits(unsigned cpu)
{
	return counters[cpu];
}
unsigned long long preboot_handoff(struct vcpu *v)
{
	(void)v;
	return VMMCALL_EPERM;
}
struct power_stats power_stats = { .resumes = 7, .refused = 3 };
void log_sink_init(const struct log_config *cfg)
{
	(void)cfg;
}
void log_sink_write(const char *s, size_t n)
{
	(void)s, (void)n;
}

/* "Guest RAM": two host pages the guest map calls usable; the guest-physical address of a
 * byte is its host address (Parapet identity-maps guest memory). */
static unsigned char *ram;
static struct memmap map;

static void setup(void)
{
	if (!ram)
		ram = aligned_alloc(4096, 8192);
	memset(ram, 0xEE, 8192);
	memset(&map, 0, sizeof(map));
	memmap_add(&map, (uint64_t)(uintptr_t)ram, 8192, E820_RAM);
	gmem_init(&map);
}

static struct vcpu call(uint64_t fn, uint64_t rbx, uint64_t rcx, uint64_t rdx, uint8_t cpl)
{
	struct vcpu v;
	memset(&v, 0, sizeof(v));
	v.gpr[RAX] = fn;
	v.gpr[RBX] = rbx;
	v.gpr[RCX] = rcx;
	v.gpr[RDX] = rdx;
	v.cpl = cpl;
	v.rip = 0x1000;
	v.id = 0;
	handle_vmmcall(&v);
	return v;
}

static void version(void)
{
	setup();
	struct vcpu v = call(VMMCALL_VERSION, 0, 0, 0, 0);
	CHECK_EQ(v.gpr[RAX], VMMCALL_OK);
	CHECK_EQ(v.gpr[RBX], VMMCALL_MAGIC);
	CHECK_EQ(v.gpr[RCX], VMMCALL_ABI);
	CHECK_EQ(v.gpr[RDX], 0); /* the calling CPU's index */
	CHECK_EQ(v.rip, 0x1003);
	CHECK(!v.inject.valid);
}

static void only_cpl0(void)
{
	setup();
	for (uint8_t cpl = 1; cpl <= 3; cpl++) {
		struct vcpu v = call(VMMCALL_VERSION, 0, 0, 0, cpl);
		CHECK(v.inject.valid);
		CHECK_EQ(v.inject.vector, 6); /* #UD */
		CHECK_EQ(v.rip, 0x1000);      /* not skipped */
		CHECK_EQ(v.gpr[RBX], 0);      /* nothing revealed */
	}
}

static void unknown_function(void)
{
	setup();
	struct vcpu v = call(99, 0, 0, 0, 0);
	CHECK_EQ(v.gpr[RAX], VMMCALL_ENOSYS);
	CHECK_EQ(v.rip, 0x1003);
}

static void log_read_basic(void)
{
	setup();
	log_printf("parapet: test: hello from the ring\n");
	uint64_t gpa = (uint64_t)(uintptr_t)ram;
	struct vcpu v = call(VMMCALL_LOG_READ, gpa, 4096, 0, 0);
	CHECK_EQ(v.gpr[RAX], VMMCALL_OK);
	CHECK(v.gpr[RCX] > 0 && v.gpr[RCX] <= 4096);
	CHECK_EQ(v.gpr[RDX], v.gpr[RCX]);
	CHECK(memmem(ram, v.gpr[RCX], "hello from the ring", 19) != NULL);
	CHECK_EQ(ram[v.gpr[RCX]], 0xEE); /* nothing written past what was reported */
	struct vcpu again = call(VMMCALL_LOG_READ, gpa, 4096, v.gpr[RDX], 0);
	CHECK_EQ(again.gpr[RCX], 0); /* at the end: no more */
}

static void log_ring_wraps_to_oldest(void)
{
	setup();
	char line[100];
	memset(line, 'x', sizeof(line) - 1);
	line[sizeof(line) - 2] = '\n';
	line[sizeof(line) - 1] = 0;
	for (int i = 0; i < 2 * LOG_RING_SIZE / 98; i++)
		log_printf("%s", line);
	uint64_t gpa = (uint64_t)(uintptr_t)ram;
	struct vcpu v = call(VMMCALL_LOG_READ, gpa, 100, 0, 0);
	CHECK_EQ(v.gpr[RAX], VMMCALL_OK);
	CHECK_EQ(v.gpr[RCX], 100);
	CHECK(v.gpr[RDX] > LOG_RING_SIZE); /* started at the oldest byte kept */
}

static void buffers_are_checked(void)
{
	setup();
	uint64_t gpa = (uint64_t)(uintptr_t)ram;
	/* Crossing a page, too long, empty: bad argument. */
	CHECK_EQ(call(VMMCALL_LOG_READ, gpa + 4000, 200, 0, 0).gpr[RAX], VMMCALL_EINVAL);
	CHECK_EQ(call(VMMCALL_LOG_READ, gpa, 4097, 0, 0).gpr[RAX], VMMCALL_EINVAL);
	CHECK_EQ(call(VMMCALL_LOG_READ, gpa, 0, 0, 0).gpr[RAX], VMMCALL_EINVAL);
	CHECK_EQ(call(VMMCALL_EXIT_COUNTS, gpa, 1ull << 40, 0, 0).gpr[RAX], VMMCALL_EINVAL);
	/* Not guest RAM (Parapet's region, MMIO, wrap-around): bad address, nothing written. */
	CHECK_EQ(call(VMMCALL_LOG_READ, 0x1EE00000, 64, 0, 0).gpr[RAX], VMMCALL_EFAULT);
	CHECK_EQ(call(VMMCALL_EXIT_COUNTS, 0xFFFFFFFFFFFFF000ull, 64, VMMCALL_ALL_CPUS, 0).gpr[RAX], VMMCALL_EFAULT);
	CHECK_EQ(call(VMMCALL_EXIT_COUNTS, gpa + 8192, 64, VMMCALL_ALL_CPUS, 0).gpr[RAX], VMMCALL_EFAULT);
}

static void exit_counts(void)
{
	setup();
	for (int r = 0; r < EXIT_NR; r++) {
		counters[0][r] = 10 + r;
		counters[1][r] = 100 * r;
	}
	uint64_t gpa = (uint64_t)(uintptr_t)ram;
	struct vcpu v = call(VMMCALL_EXIT_COUNTS, gpa, 4096, VMMCALL_ALL_CPUS, 0);
	CHECK_EQ(v.gpr[RAX], VMMCALL_OK);
	CHECK_EQ(v.gpr[RCX], EXIT_NR);
	CHECK_EQ(v.gpr[RDX], 2);
	uint64_t *out = (uint64_t *)ram;
	CHECK_EQ(out[EXIT_CPUID], 10);
	CHECK_EQ(out[EXIT_VMMCALL], 14 + 400);
	memset(ram, 0xEE, 8192);
	v = call(VMMCALL_EXIT_COUNTS, gpa, 16, 1, 0); /* one CPU, room for two counters */
	CHECK_EQ(v.gpr[RCX], 2);
	CHECK_EQ(out[1], 100);
	CHECK_EQ(ram[16], 0xEE);
	CHECK_EQ(call(VMMCALL_EXIT_COUNTS, gpa, 64, 2, 0).gpr[RAX], VMMCALL_EINVAL); /* no CPU 2 */
}

TESTS(vmmcall_tests) = {
	{ "vmmcall: version", version },
	{ "vmmcall: #UD from CPL 1-3", only_cpl0 },
	{ "vmmcall: unknown function", unknown_function },
	{ "vmmcall: log read", log_read_basic },
	{ "vmmcall: log read after the ring wrapped", log_ring_wraps_to_oldest },
	{ "vmmcall: guest buffers are checked", buffers_are_checked },
	{ "vmmcall: exit counters", exit_counts },
	{ NULL, NULL },
};
