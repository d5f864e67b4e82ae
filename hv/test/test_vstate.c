#include "test.h"
#include "vmm/vstate.h"
#include "guest/linux.h"
#include "core/x86.h"

#define SIG 0x00A20F12u

static void check_real_mode_data(const struct vstate *s)
{
	for (unsigned i = 0; i < SEG_NR; i++) {
		if (i == SEG_CS)
			continue;
		CHECK_EQ(s->seg[i].sel, 0);
		CHECK_EQ(s->seg[i].base, 0);
		CHECK_EQ(s->seg[i].limit, 0xFFFF);
		CHECK_EQ(s->seg[i].attr, 0x93);
	}
	CHECK_EQ(s->ldtr.attr, 0x82);
	CHECK_EQ(s->ldtr.limit, 0xFFFF);
	CHECK_EQ(s->tr.attr, 0x8B);
	CHECK_EQ(s->tr.limit, 0xFFFF);
	CHECK_EQ(s->gdtr.base, 0);
	CHECK_EQ(s->gdtr.limit, 0xFFFF);
	CHECK_EQ(s->idtr.base, 0);
	CHECK_EQ(s->idtr.limit, 0x3FF);
}

static void init_state(void)
{
	struct vstate s;
	vstate_init(&s, SIG, 0x1234, 0x12340, 0x56);
	CHECK_EQ(s.seg[SEG_CS].sel, 0x1234);
	CHECK_EQ(s.seg[SEG_CS].base, 0x12340);
	CHECK_EQ(s.seg[SEG_CS].limit, 0xFFFF);
	CHECK_EQ(s.seg[SEG_CS].attr, 0x9B);
	check_real_mode_data(&s);
	CHECK_EQ(s.rip, 0x56);
	CHECK_EQ(s.cr0, CR0_CD | CR0_NW | CR0_ET); /* 0x60000010 */
	CHECK_EQ(s.cr0, 0x60000010);
	CHECK_EQ(s.cr3, 0);
	CHECK_EQ(s.cr4, 0);
	CHECK_EQ(s.efer, 0);
	CHECK_EQ(s.dr6, 0xFFFF0FF0);
	CHECK_EQ(s.dr7, 0x400);
	CHECK_EQ(s.rflags, 2);
	CHECK_EQ(s.rsp, 0);
	CHECK_EQ(s.rdx, SIG); /* EDX: the processor signature */
	CHECK_EQ(s.rsi, 0);
	CHECK_EQ(s.pat, 0x0007040600070406ull);
}

static void reset_vector(void)
{
	struct vstate s;
	vstate_reset_vector(&s, SIG);
	CHECK_EQ(s.seg[SEG_CS].sel, 0xF000);
	CHECK_EQ(s.seg[SEG_CS].base, 0xFFFF0000);
	CHECK_EQ(s.rip, 0xFFF0);
	CHECK_EQ(s.seg[SEG_CS].base + s.rip, 0xFFFFFFF0); /* the first fetch */
	CHECK_EQ(s.cr0, 0x60000010);
	CHECK_EQ(s.rdx, SIG);
	check_real_mode_data(&s);
}

static void startup(void)
{
	struct vstate s;
	vstate_startup(&s, SIG, 0x9F);
	CHECK_EQ(s.seg[SEG_CS].sel, 0x9F00);
	CHECK_EQ(s.seg[SEG_CS].base, 0x9F000);
	CHECK_EQ(s.rip, 0);
	CHECK_EQ(s.cr0, 0x60000010); /* INIT's caches-off CR0 stays */
	CHECK_EQ(s.rdx, SIG);
	check_real_mode_data(&s);
	vstate_startup(&s, SIG, 0xFF);
	CHECK_EQ(s.seg[SEG_CS].sel, 0xFF00);
	CHECK_EQ(s.seg[SEG_CS].base, 0xFF000);
}

static void fresh_real_mode(void)
{
	struct guest_start g = { .cs = 0x9F40, .ip = 0x12 };
	struct vstate s;
	vstate_start(&s, SIG, &g);
	CHECK_EQ(s.seg[SEG_CS].sel, 0x9F40);
	CHECK_EQ(s.seg[SEG_CS].base, 0x9F400);
	CHECK_EQ(s.rip, 0x12);
	CHECK_EQ(s.rsp, 0x7C00);
	CHECK_EQ(s.cr0, CR0_ET); /* caches on, as firmware leaves them */
	CHECK_EQ(s.rdx, SIG);
	check_real_mode_data(&s);
}

static void linux32_entry(void)
{
	struct guest_start g = { .linux32 = true, .eip = 0x1000000, .esi = 0x14000, .gdt = 0x10000, .cs = 0x9F40 };
	struct vstate s;
	vstate_start(&s, SIG, &g);
	CHECK_EQ(s.seg[SEG_CS].sel, LX_BOOT_CS);
	CHECK_EQ(s.seg[SEG_CS].base, 0);
	CHECK_EQ(s.seg[SEG_CS].limit, 0xFFFFFFFF);
	CHECK_EQ(s.seg[SEG_CS].attr, 0xC9B); /* 32-bit, 4 KiB granular, execute/read */
	for (unsigned i = 0; i < SEG_NR; i++) {
		if (i == SEG_CS)
			continue;
		CHECK_EQ(s.seg[i].sel, LX_BOOT_DS);
		CHECK_EQ(s.seg[i].base, 0);
		CHECK_EQ(s.seg[i].limit, 0xFFFFFFFF);
		CHECK_EQ(s.seg[i].attr, 0xC93);
	}
	CHECK_EQ(s.gdtr.base, 0x10000);
	CHECK_EQ(s.gdtr.limit, 31);       /* four descriptors: null, unused, __BOOT_CS, __BOOT_DS */
	CHECK_EQ(s.cr0, CR0_PE | CR0_ET); /* protected mode, paging off */
	CHECK_EQ(s.rflags, 2);            /* interrupts off */
	CHECK_EQ(s.rip, 0x1000000);
	CHECK_EQ(s.rsi, 0x14000); /* the zero page */
	CHECK_EQ(s.rdx, 0);
	CHECK_EQ(s.rsp, 0);
	CHECK_EQ(s.efer, 0);
}

static void flat32_wake(void)
{
	struct guest_start g = { .flat32 = true, .eip = 0x9A000 };
	struct vstate s;
	vstate_start(&s, SIG, &g);
	CHECK_EQ(s.seg[SEG_CS].sel, 0x08);
	CHECK_EQ(s.seg[SEG_CS].attr, 0xC9B);
	CHECK_EQ(s.seg[SEG_SS].sel, 0x10);
	CHECK_EQ(s.seg[SEG_SS].attr, 0xC93);
	CHECK_EQ(s.seg[SEG_GS].limit, 0xFFFFFFFF);
	CHECK_EQ(s.cr0, CR0_PE | CR0_ET);
	CHECK_EQ(s.rip, 0x9A000);
	CHECK_EQ(s.rdx, SIG);
	CHECK_EQ(s.gdtr.limit, 0xFFFF);
}

TESTS(vstate_tests) = {
	{ "vstate: the INIT state in real mode", init_state },
	{ "vstate: the reset vector after the BSP's INIT", reset_vector },
	{ "vstate: an AP's STARTUP vector", startup },
	{ "vstate: a fresh start in real mode under 0000:7C00", fresh_real_mode },
	{ "vstate: Linux's 32-bit boot protocol entry", linux32_entry },
	{ "vstate: a flat 32-bit waking vector", flat32_wake },
	{ NULL, NULL },
};
