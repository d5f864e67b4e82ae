/*
 * What Parapet reads of the platform's ACPI power management at init, before any guest code
 * runs: the FADT (ACPI 6.5 §5.2.9) for the PM1 event and control blocks, the reset register
 * and the FACS address; the FACS (§5.2.10) for the waking vectors; the DSDT's \_S1..\_S5
 * objects (§7.4.2) for the SLP_TYP values of each sleep state, found by a bounded search of
 * the AML bytes (no interpreter). Hardware-free: memory is read through acpi_map_fn.
 */
#ifndef PARAPET_ACPI_PM_H
#define PARAPET_ACPI_PM_H

#include "io/acpi.h"

/* Generic Address Structure (§5.2.3.2). */
#define GAS_SPACE_MEMORY 0
#define GAS_SPACE_IO 1
struct acpi_gas {
	u8 space, bit_width, bit_offset, access_size;
	u64 addr;
};

/* PM1 control register bits (§4.8.3.2.1). */
#define PM1_CNT_SLP_TYP_SHIFT 10
#define PM1_CNT_SLP_TYP_MASK (7u << 10)
#define PM1_CNT_SLP_EN (1u << 13)
/* PM1 status register bits (§4.8.3.1.1). */
#define PM1_STS_WAK (1u << 15)
/* Sleep control/status registers of hardware-reduced platforms (§4.8.3.7, §4.8.3.8). */
#define SLEEP_CNT_SLP_TYP_SHIFT 2
#define SLEEP_CNT_SLP_TYP_MASK (7u << 2)
#define SLEEP_CNT_SLP_EN (1u << 5)
#define SLEEP_STS_WAK (1u << 7)

/* FADT flags (§5.2.9 table 5.10). */
#define FADT_RESET_REG_SUP (1u << 10)
#define FADT_HW_REDUCED_ACPI (1u << 20)

/* FACS (§5.2.10 table 5.14) field offsets; the FACS has no checksum. */
#define FACS_LEN_MIN 64
#define FACS_WAKING_VECTOR 12 /* u32: real-mode entry, CS = v >> 4, IP = v & 0xF */
#define FACS_FLAGS 20
#define FACS_X_WAKING_VECTOR 24 /* u64, version >= 1: protected (or 64-bit) mode entry */
#define FACS_VERSION 32
#define FACS_OSPM_FLAGS 36                  /* bit 0: 64BIT_WAKE_F */
#define FACS_64BIT_WAKE_SUPPORTED (1u << 1) /* in FACS_FLAGS */
#define FACS_OSPM_64BIT_WAKE (1u << 0)

struct acpi_pm {
	u64 fadt;   /* its physical address */
	u32 flags;  /* FADT flags */
	u64 facs;   /* X_FIRMWARE_CTRL if set, else FIRMWARE_CTRL; 0: none */
	u64 facs32; /* FIRMWARE_CTRL as the table says it (0 when absent) */
	u64 facs64; /* X_FIRMWARE_CTRL as the table says it (0 when absent) */
	u64 dsdt;   /* X_DSDT if set, else DSDT */
	/* PM1a/PM1b event (status at offset 0) and control blocks. An X_ GAS in system I/O space
	 * with a nonzero address wins over the 32-bit port field. Ports; 0 when absent. */
	u16 pm1a_evt, pm1b_evt, pm1a_cnt, pm1b_cnt;
	bool pm1_in_memory;        /* an X_PM1x_CNT_BLK in system memory: no port to intercept */
	struct acpi_gas reset_reg; /* valid when flags has FADT_RESET_REG_SUP and the FADT is long enough */
	u8 reset_value;
	bool has_reset_reg;
	struct acpi_gas sleep_cnt, sleep_sts; /* hardware-reduced platforms; addr 0 when absent */
	/* SLP_TYPa/SLP_TYPb of \_Sn, n = 0..5 (3 bits each), where the DSDT defines \_Sn. */
	bool sx_present[6];
	u8 slp_typa[6], slp_typb[6];
};

/* Read the FADT at `fadt` (signature, length and checksum checked), the DSDT it names and the
 * \_S0..\_S5 packages in it. False, with a reason in why[n], when the FADT is unusable; a
 * missing or malformed DSDT is not an error (no \_Sn found: sx_present all false). */
bool acpi_pm_read(acpi_map_fn map, u64 fadt, struct acpi_pm *pm, char *why, unsigned n);

/* Search AML bytes for a Name(\_Sn, Package(){a, b, ...}) (n = 0..5; NameOp 0x08, optional
 * root prefix '\', the name "_Sn_", PackageOp 0x12, PkgLength, NumElements >= 1) and decode its
 * first two elements (ZeroOp, OneOp, OnesOp, or Byte/Word/DWord constants; a missing second
 * element counts as 0). True with the values masked to 3 bits. Reads only within [aml, aml+len). */
bool aml_sleep_type(const u8 *aml, u32 len, unsigned n, u8 *typa, u8 *typb);

#endif
