/* The AMD-V backend. */
#ifndef PARAPET_SVM_H
#define PARAPET_SVM_H

#include "vmm/backend.h"

extern const struct vmm_backend svm_backend;

#endif
