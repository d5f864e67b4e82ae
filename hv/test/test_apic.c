/* Which CPUs an INIT or STARTUP addresses (vmm/apic_dest.c), and the MADT's processor list
 * (io/acpi.c): every destination mode and shorthand, in xAPIC and x2APIC mode. */
#include "test.h"
#include "vmm/apic.h"
#include "core/lapic.h"
#include "io/acpi.h"
#include "mm/memmap.h"
#include <string.h>

#define INIT (ICR_MODE_INIT << 8 | ICR_ASSERT | ICR_LEVEL)

static struct vcpu cpus[4];

static void setup(void)
{
	memset(cpus, 0, sizeof(cpus));
	for (unsigned i = 0; i < 4; i++) {
		cpus[i].id = i;
		cpus[i].apic_id = i;
		cpus[i].dfr = ~0u;             /* flat model */
		cpus[i].ldr = (1u << i) << 24; /* as Linux's flat mode sets it */
	}
}

/* The set of CPUs (bit i for cpus[i]) an IPI from cpus[from] reaches. */
static unsigned targets(unsigned from, u32 lo, u32 dest, bool x2)
{
	unsigned set = 0;
	for (unsigned i = 0; i < 4; i++)
		if (apic_ipi_addresses(&cpus[from], &cpus[i], lo, dest, x2))
			set |= 1u << i;
	return set;
}

static void physical(void)
{
	setup();
	CHECK_EQ(targets(0, INIT, 2, false), 0x4);
	CHECK_EQ(targets(0, INIT, 0x102, false), 0x4); /* xAPIC: 8 bits of destination */
	CHECK_EQ(targets(0, INIT, 7, false), 0);
	CHECK_EQ(targets(0, INIT, 0xFF, false), 0xF); /* broadcast */
	CHECK_EQ(targets(0, INIT, 0xFF, true), 0);    /* x2APIC: 0xFF is just an ID */
	CHECK_EQ(targets(0, INIT, 0xFFFFFFFF, true), 0xF);
	cpus[3].apic_id = 0x123;
	CHECK_EQ(targets(0, INIT, 0x123, true), 0x8);
	CHECK_EQ(targets(0, INIT, 0x23, false), 0);
}

static void shorthands(void)
{
	setup();
	CHECK_EQ(targets(1, INIT | ICR_SELF << 18, 3, false), 0x2); /* destination ignored */
	CHECK_EQ(targets(1, INIT | ICR_ALL << 18, 3, false), 0xF);
	CHECK_EQ(targets(1, INIT | ICR_ALL_BUT_SELF << 18, 1, false), 0xD);
	CHECK_EQ(targets(2, INIT | ICR_ALL_BUT_SELF << 18 | ICR_LOGICAL, 0, true), 0xB);
}

static void logical_xapic(void)
{
	setup();
	u32 lo = INIT | ICR_LOGICAL;
	CHECK_EQ(targets(0, lo, 0x02, false), 0x2); /* flat: a bit mask of LDRs */
	CHECK_EQ(targets(0, lo, 0x0C, false), 0xC);
	CHECK_EQ(targets(0, lo, 0xFF, false), 0xF);
	cpus[3].ldr = 0; /* after INIT: no logical ID */
	CHECK_EQ(targets(0, lo, 0x7F, false), 0x7);
	/* Cluster model: cluster in bits 7:4, members in 3:0. */
	for (unsigned i = 0; i < 4; i++) {
		cpus[i].dfr = 0x0FFFFFFF;
		cpus[i].ldr = (u32)((i / 2) << 4 | 1u << (i % 2)) << 24;
	}
	CHECK_EQ(targets(0, lo, 0x12, false), 0x8); /* cluster 1, member bit 1 */
	CHECK_EQ(targets(0, lo, 0x03, false), 0x3); /* cluster 0, both */
	CHECK_EQ(targets(0, lo, 0x20, false), 0);
}

static void logical_x2apic(void)
{
	setup();
	u32 lo = INIT | ICR_LOGICAL;
	cpus[2].apic_id = 0x13; /* cluster 1, bit 3 */
	CHECK_EQ(targets(0, lo, 0x00010008, true), 0x4);
	CHECK_EQ(targets(0, lo, 0x00000008, true), 0x8); /* cluster 0, bit 3: ID 3 */
	CHECK_EQ(targets(0, lo, 0x00000003, true), 0x3); /* IDs 0 and 1 */
	CHECK_EQ(targets(0, lo, 0xFFFFFFFF, true), 0xF);
	/* Logical xAPIC shadows do not matter in x2APIC mode. */
	CHECK_EQ(targets(0, lo, 0x00000004, true), 0);
}

static void lvt_init(void)
{
	CHECK(apic_lvt_init(0x350, 0x500));   /* LINT0, INIT */
	CHECK(apic_lvt_init(0x360, 0x10500)); /* LINT1, INIT, masked: still refused */
	CHECK(apic_lvt_init(0x320, 0x500));   /* timer */
	CHECK(apic_lvt_init(0x2F0, 0x500));   /* CMCI */
	CHECK(!apic_lvt_init(0x350, 0x700));  /* ExtINT */
	CHECK(!apic_lvt_init(0x360, 0x400));  /* NMI */
	CHECK(!apic_lvt_init(0x300, 0x500));  /* the ICR is not an LVT entry */
	CHECK(!apic_lvt_init(0x380, 0x500));  /* initial count */
	CHECK(apic_lvt_msr(0x835) && apic_lvt_msr(0x82F) && !apic_lvt_msr(0x830) && !apic_lvt_msr(0x838));
}

static u8 mem[0x10000];

static const void *map(u64 pa, u64 len)
{
	if (pa >= sizeof(mem) || len > sizeof(mem) - pa)
		return NULL;
	return mem + pa;
}

static void checksum(u8 *t, u32 len)
{
	u8 s = 0;
	t[9] = 0;
	for (u32 i = 0; i < len; i++)
		s = (u8)(s + t[i]);
	t[9] = (u8)-s;
}

/* A MADT at 0x1000 with these entries after the 44-byte header. */
static u64 madt(const u8 *entries, u32 n)
{
	memset(mem, 0, sizeof(mem));
	u8 *t = mem + 0x1000;
	u32 len = 44 + n;
	memcpy(t, "APIC", 4);
	memcpy(t + 4, &len, 4);
	memcpy(t + 44, entries, n);
	checksum(t, len);
	return 0x1000;
}

static void madt_processors(void)
{
	static const u8 e[] = {
		0, 8, 0, 0, 1, 0, 0, 0,                          /* LAPIC ID 0, enabled */
		1, 12, 0, 0, 0, 0, 0xC0, 0xFE, 0, 0, 0, 0,       /* an I/O APIC: skipped */
		0, 8, 1, 5, 0, 0, 0, 0,                          /* LAPIC ID 5, not enabled: skipped */
		0, 8, 2, 2, 1, 0, 0, 0,                          /* LAPIC ID 2 */
		9, 16, 0, 0, 0, 1, 0, 0, 1, 0, 0, 0, 3, 0, 0, 0, /* x2APIC ID 0x100 */
		0, 8, 3, 2, 1, 0, 0, 0,                          /* ID 2 again: once */
	};
	u32 ids[8];
	u64 t = madt(e, sizeof(e));
	CHECK_EQ(acpi_madt_cpus(map, t, ids, 8), 3);
	CHECK_EQ(ids[0], 0);
	CHECK_EQ(ids[1], 2);
	CHECK_EQ(ids[2], 0x100);
	CHECK_EQ(acpi_madt_cpus(map, t, ids, 2), 2); /* at most max */
	u64 io[2];
	CHECK_EQ(acpi_madt_ioapics(map, t, io, 2), 1);
	CHECK_EQ(io[0], 0xFEC00000);
	/* A zero-length entry ends the walk with what was sound before it. */
	static const u8 bad[] = { 0, 8, 0, 7, 1, 0, 0, 0, 0, 0, 0, 0 };
	t = madt(bad, sizeof(bad));
	CHECK_EQ(acpi_madt_cpus(map, t, ids, 8), 1);
	CHECK_EQ(ids[0], 7);
	/* An entry running past the table: ignored. */
	static const u8 over[] = { 0, 8, 0, 1, 1, 0, 0, 0, 9, 16, 0, 0, 4, 0 };
	t = madt(over, sizeof(over));
	CHECK_EQ(acpi_madt_cpus(map, t, ids, 8), 1);
	mem[0x1000] = 'X'; /* not a MADT */
	checksum(mem + 0x1000, 44 + sizeof(over));
	CHECK_EQ(acpi_madt_cpus(map, t, ids, 8), 0);
}

/* Where an xAPIC may be moved (vmm/apic_base.c), on a PC-like map with Parapet at 0x1F000000. */
static void base_usable(void)
{
	static struct memmap m;
	memset(&m, 0, sizeof(m));
	memmap_add(&m, 0, 0x9FC00, E820_RAM);
	memmap_add(&m, 0xF0000, 0x10000, E820_RESERVED);
	memmap_add(&m, 0x100000, 0x1FEE0000 - 0x100000, E820_RAM);
	memmap_add(&m, 0x1FEE0000, 0x10000, E820_ACPI);
	memmap_add(&m, 0x1FEF0000, 0x10000, E820_NVS);
	memmap_add(&m, 0xFEFFC000, 0x4000, E820_RESERVED);
	memmap_add(&m, 0x100000000ull, 0x40000000, E820_RAM);
	const u64 boot = 0xFEE00000, hv = 0x1F000000, hv_end = 0x20000000;
	CHECK(apic_base_usable(boot, boot, &m, hv, hv_end));
	CHECK(apic_base_usable(0xFEF00000, boot, &m, hv, hv_end));  /* a hole */
	CHECK(!apic_base_usable(0xFEFFC000, boot, &m, hv, hv_end)); /* reserved */
	CHECK(!apic_base_usable(0xF0000, boot, &m, hv, hv_end));
	CHECK(apic_base_usable(0xE0000000, boot, &m, hv, hv_end));
	CHECK(apic_base_usable(0xFEE01000, boot, &m, hv, hv_end)); /* the interrupt range */
	CHECK(apic_base_usable(0xFEEFF000, boot, &m, hv, hv_end));
	CHECK(!apic_base_usable(0x1F000000, boot, &m, hv, hv_end)); /* Parapet */
	CHECK(!apic_base_usable(0x1FFFF000, boot, &m, hv, hv_end));
	CHECK(!apic_base_usable(0x00800000, boot, &m, hv, hv_end));     /* RAM */
	CHECK(!apic_base_usable(0x1FEE0000, boot, &m, hv, hv_end));     /* ACPI */
	CHECK(!apic_base_usable(0x1FEFF000, boot, &m, hv, hv_end));     /* NVS */
	CHECK(!apic_base_usable(0x13FFFF000ull, boot, &m, hv, hv_end)); /* RAM above 4 GiB */
	CHECK(!apic_base_usable(0xA0000, boot, &m, hv, hv_end));        /* below 1 MiB, a hole */
	CHECK(apic_base_usable(0x140000000ull, boot, &m, hv, hv_end));
}

const struct test_case apic_tests[] = {
	{ "apic: physical destinations and broadcast, xAPIC and x2APIC", physical },
	{ "apic: shorthands self, all, all but self", shorthands },
	{ "apic: logical destinations, flat and cluster xAPIC models", logical_xapic },
	{ "apic: logical destinations in x2APIC mode", logical_x2apic },
	{ "apic: an LVT entry never delivers INIT", lvt_init },
	{ "apic: the pages an xAPIC may move to", base_usable },
	{ "acpi: MADT processor list (enabled, x2APIC, duplicates, malformed) and I/O APICs", madt_processors },
	{ 0 },
};
