/* Fake guest-physical memory for the gwalk, string I/O and MMIO tests: FG_SIZE bytes of "RAM"
 * at guest-physical 0, except [FG_HOLE, FG_HOLE_END) which is not RAM (MMIO). */
#ifndef PARAPET_TEST_FAKEGUEST_H
#define PARAPET_TEST_FAKEGUEST_H

#include "core/types.h"

#define FG_SIZE (16u << 20)
#define FG_HOLE 0x800000ull
#define FG_HOLE_END 0x900000ull

extern u8 *fg_ram;

/* Clear the fake memory and route gw_map/gw_map_rom to it; fg_end() restores them. */
void fg_begin(void);
void fg_end(void);

static inline void *fg(u64 gpa)
{
	return fg_ram + gpa;
}
static inline void fg_w64(u64 gpa, u64 v)
{
	__builtin_memcpy(fg_ram + gpa, &v, 8);
}
static inline void fg_w32(u64 gpa, u32 v)
{
	__builtin_memcpy(fg_ram + gpa, &v, 4);
}
static inline u64 fg_r64(u64 gpa)
{
	u64 v;
	__builtin_memcpy(&v, fg_ram + gpa, 8);
	return v;
}
static inline u32 fg_r32(u64 gpa)
{
	u32 v;
	__builtin_memcpy(&v, fg_ram + gpa, 4);
	return v;
}

#endif
