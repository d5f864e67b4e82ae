/*
 * Nested page tables (AMD "NPT", Intel "EPT" later): guest-physical = host-physical for all
 * memory, RAM and MMIO, except Parapet's region, every page of which maps to one decoy page.
 * A guest reading there sees the decoy, a guest writing there changes only the decoy.
 */
#ifndef PARAPET_NPT_H
#define PARAPET_NPT_H

#include "core/types.h"

/* Build the tables; returns the root's physical address. */
u64 npt_build(void);

#endif
