/* The 8259A pair and the 8254's channel 0, back as the BIOS had them: see legacy.h. */
#include "io/legacy.h"
#include "core/x86.h"

void legacy_save(struct legacy_state *s)
{
	s->imr1 = inb(PIC1_DATA);
	s->imr2 = inb(PIC2_DATA);
	s->elcr1 = inb(ELCR1);
	s->elcr2 = inb(ELCR2);
}

void legacy_restore(const struct legacy_state *s)
{
	outb(PIC1_DATA, 0xFF); /* everything masked while reprogrammed */
	outb(PIC2_DATA, 0xFF);
	outb(PIC1_CMD, PIC_ICW1);
	outb(PIC2_CMD, PIC_ICW1);
	outb(PIC1_DATA, PIC1_BIOS_VECTOR); /* ICW2 */
	outb(PIC2_DATA, PIC2_BIOS_VECTOR);
	outb(PIC1_DATA, 1u << 2); /* ICW3: the slave is on IRQ 2 */
	outb(PIC2_DATA, 2);       /*       and knows its cascade id */
	outb(PIC1_DATA, PIC_ICW4);
	outb(PIC2_DATA, PIC_ICW4);
	outb(ELCR1, s->elcr1);
	outb(ELCR2, s->elcr2);
	outb(PIT_MODE, PIT_CH0_SQUARE);
	outb(PIT_CH0, 0);
	outb(PIT_CH0, 0);
	outb(PIC1_DATA, s->imr1);
	outb(PIC2_DATA, s->imr2);
}
