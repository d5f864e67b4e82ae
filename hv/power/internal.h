/* Shared between power/power.c (init, resets, wipe) and power/sleep.c (ACPI sleep). */
#ifndef PARAPET_POWER_INTERNAL_H
#define PARAPET_POWER_INTERNAL_H

#include "power/acpi_pm.h"
#include "power/power.h"

extern struct acpi_pm pm;
extern bool pm_ok;  /* the FADT was read at init */
extern u64 pm_rsdp; /* where the RSDP was at init */

/* Stop every other CPU, wipe the keys, perform `access` (the guest's own write), and never
 * return to the guest: if the machine is still running after a while, reset it. */
__noreturn void power_terminal(struct vcpu *v, const char *why, u16 port, unsigned size, u32 val);

/* A PM1a/PM1b control write with SLP_EN (sleep.c). Returns normally when the sleep was
 * refused (or S1 completed); otherwise the machine sleeps or goes off. */
void power_sleep(struct vcpu *v, u16 port, unsigned size, u32 val);

/* Allocate the resume stack (power_init). */
void power_sleep_init(void);

/* After S3: the chipset's PM block base and enable as they were locked at init (pmbase.c). */
void power_pmbase_resume(void);

/* PM1 status reads: WAK_STS set after a refused sleep (until the guest clears it). */
u32 power_pm1_status_io(void *ctx, u16 port, unsigned size, bool in, u32 val);

#endif
