/* The AMD-V backend. */
#ifndef PARAPET_SVM_H
#define PARAPET_SVM_H

#include "guest/bios.h"

/* Check that this CPU can run SVM with nested paging; panics with the reason if not. */
void svm_check(void);

struct vcpu;

/* Once, on the BSP before any CPU runs a guest: the shared permission bitmaps and the
 * nested page tables every CPU uses. */
void svm_init(u64 npt_root);

/* Enable SVM on this CPU and run the guest from the real-mode entry `start`. Never returns. */
__noreturn void svm_run_bsp(struct vcpu *v, const struct guest_start *start);

/* On an application processor: enable SVM and hold it in wait-for-SIPI until the guest
 * starts it, then run it. Never returns. */
__noreturn void svm_run_ap(struct vcpu *v);

#endif
