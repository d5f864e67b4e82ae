/* libFuzzer: the guest page walker over page tables made of the input, in any paging mode;
 * every access stays inside the fake guest memory (ASan) and the results are consistent. */
#include "vmm/gwalk.h"
#include "core/x86.h"
#include "fuzz/fuzz.h"
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const u8 *data, size_t size)
{
	const u8 *p = data;
	size_t n = size;
	u64 ctl = take(&p, &n, 4);
	struct gw_regs r = {
		.cr0 = (ctl & 1 ? CR0_PE : 0) | (ctl & 2 ? CR0_PG : 0) | (ctl & 4 ? 1ull << 16 : 0),
		.cr4 = (ctl & 8 ? CR4_PAE : 0) | (ctl & 16 ? 1ull << 4 : 0) | (ctl & 32 ? 1ull << 12 : 0) |
		       (ctl & 64 ? 1ull << 20 : 0) | (ctl & 128 ? 1ull << 21 : 0),
		.efer = (ctl & 256 ? EFER_LMA | EFER_LME : 0) | (ctl & 512 ? EFER_NXE : 0),
		.rflags = ctl & 1024 ? 1ull << 18 : 0,
		.cpl = (u8)((ctl >> 11) & 3),
		.maxphyaddr = (u8)(32 + ((ctl >> 13) % 21)),
	};
	r.cr3 = take(&p, &n, 8) & (FAKE_MEM_SIZE * 2 - 1); /* sometimes beyond RAM */
	u64 la = take(&p, &n, 8);
	unsigned access = (unsigned)take(&p, &n, 1) & 3;
	fake_mem_load(p, n);

	u64 gpa;
	struct gw_fault f;
	enum gw_result res = gwalk(&r, la, access, &gpa, &f);
	if (res == GW_PAGE_FAULT) {
		if (f.error & ~0x1Fu)
			abort();
		if (!!(f.error & PF_W) != !!(access & GW_WRITE) || !!(f.error & PF_U) != (r.cpl == 3))
			abort();
		if ((f.error & PF_RSVD) && !(f.error & PF_P))
			abort();
	} else if (res == GW_OK) {
		if ((gpa & 0xFFF) != (la & 0xFFF))
			abort();
		if (!(r.cr0 & CR0_PG) || !(r.cr0 & CR0_PE)) {
			if (gpa != ((r.efer & EFER_LMA) ? la : (la & 0xFFFFFFFF)))
				abort();
		}
		/* The A/D bits the first walk set change no address bit: a second walk that succeeds
		 * (a PAE PDPTE sharing a page with other tables may now have a reserved bit) agrees. */
		u64 again;
		if (gwalk(&r, la, access, &again, &f) == GW_OK && again != gpa)
			abort();
	} else if (res != GW_NOT_RAM) {
		abort();
	}
	u8 buf[64];
	gw_copy(&r, la, buf, sizeof(buf), access, access & GW_WRITE, &f);
	return 0;
}
