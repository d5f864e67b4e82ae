/* The AMD-V backend. */
#ifndef PARAPET_SVM_H
#define PARAPET_SVM_H

#include "guest/bios.h"

/* Check that this CPU can run SVM with nested paging; panics with the reason if not. */
void svm_check(void);

/* Enable SVM on this CPU and run the guest from the real-mode entry `start`. Never returns. */
__noreturn void svm_run_bsp(const struct guest_start *start, u64 npt_root);

#endif
