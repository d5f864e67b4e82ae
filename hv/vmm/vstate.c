#include "vmm/vstate.h"
#include "guest/linux.h"
#include "core/string.h"
#include "core/x86.h"

#define ATTR_CODE16 0x9B /* present, code, readable, accessed */
#define ATTR_DATA16 0x93 /* present, data, writable, accessed */
#define ATTR_LDT 0x82
#define ATTR_TSS16_BUSY 0x8B
#define ATTR_FLAT (0xC00) /* G and D/B: a 4 GiB 32-bit segment */

void vstate_init(struct vstate *s, u32 signature, u16 sel, u64 base, u16 ip)
{
	*s = (struct vstate){ 0 };
	for (unsigned i = 0; i < SEG_NR; i++)
		s->seg[i] = (struct vseg){ 0, 0xFFFF, 0, ATTR_DATA16 };
	s->seg[SEG_CS] = (struct vseg){ base, 0xFFFF, sel, ATTR_CODE16 };
	s->ldtr = (struct vseg){ 0, 0xFFFF, 0, ATTR_LDT };
	s->tr = (struct vseg){ 0, 0xFFFF, 0, ATTR_TSS16_BUSY };
	s->gdtr = (struct vseg){ 0, 0xFFFF, 0, 0 };
	s->idtr = (struct vseg){ 0, 0x3FF, 0, 0 };
	s->cr0 = CR0_CD | CR0_NW | CR0_ET;
	s->dr6 = 0xFFFF0FF0;
	s->dr7 = 0x400;
	s->rflags = 0x2;
	s->rip = ip;
	s->rdx = signature;
	s->pat = 0x0007040600070406ull; /* the power-on PAT */
}

void vstate_reset_vector(struct vstate *s, u32 signature)
{
	vstate_init(s, signature, 0xF000, 0xFFFF0000, 0xFFF0);
}

void vstate_startup(struct vstate *s, u32 signature, u8 vector)
{
	vstate_init(s, signature, (u16)(vector << 8), (u64)vector << 12, 0);
}

static void flat32(struct vstate *s, u16 cs, u16 ds, u32 eip)
{
	s->seg[SEG_CS] = (struct vseg){ 0, 0xFFFFFFFF, cs, ATTR_FLAT | ATTR_CODE16 };
	for (unsigned i = 0; i < SEG_NR; i++)
		if (i != SEG_CS)
			s->seg[i] = (struct vseg){ 0, 0xFFFFFFFF, ds, ATTR_FLAT | ATTR_DATA16 };
	s->cr0 = CR0_PE | CR0_ET;
	s->rip = eip;
	s->rsp = 0;
}

void vstate_start(struct vstate *s, u32 signature, const struct guest_start *g)
{
	vstate_init(s, signature, g->cs, (u64)g->cs << 4, g->ip);
	s->cr0 = CR0_ET;
	s->rsp = 0x7C00;
	if (g->linux32) {
		flat32(s, LX_BOOT_CS, LX_BOOT_DS, g->eip);
		s->gdtr = (struct vseg){ g->gdt, 4 * 8 - 1, 0, 0 };
		s->rdx = 0;
		s->rsi = g->esi;
	} else if (g->flat32) {
		/* ACPI §4.8.3.2.1 / FACS X_Firmware_Waking_Vector: flat 32-bit segments, no paging; the
		 * selectors are undefined there: the guest loads its own GDT first. */
		flat32(s, 0x08, 0x10, g->eip);
	}
}
