#include "fakeguest.h"
#include "vmm/gwalk.h"
#include "vmm/gmem.h"
#include <stdlib.h>
#include <string.h>

u8 *fg_ram;

static void *fake_map(u64 gpa, u64 len)
{
	if (len == 0 || gpa >= FG_SIZE || len > FG_SIZE - gpa)
		return NULL;
	if (gpa < FG_HOLE_END && gpa + len > FG_HOLE)
		return NULL;
	return fg_ram + gpa;
}

void fg_begin(void)
{
	if (!fg_ram)
		fg_ram = aligned_alloc(4096, FG_SIZE);
	memset(fg_ram, 0, FG_SIZE);
	gw_map = fake_map;
	gw_map_rom = fake_map;
}

void fg_end(void)
{
	gw_map = gmem_map;
	gw_map_rom = gmem_map;
}
