/*
 * The PC/AT interrupt controllers and timer (Intel 8259A PIC pair, 8254 PIT, the PIIX/ICH
 * edge/level control registers at 4D0h/4D1h) as the BIOS programmed them: saved before any
 * guest runs and put back when the preboot guest hands over, so the BIOS's INT 08h timer and
 * its IRQ handlers work for the target OS's boot loader.
 */
#ifndef PARAPET_LEGACY_H
#define PARAPET_LEGACY_H

#include "core/types.h"

#define PIC1_CMD 0x20
#define PIC1_DATA 0x21
#define PIC2_CMD 0xA0
#define PIC2_DATA 0xA1
#define PIC_ICW1 0x11         /* edge triggered, cascade, ICW4 follows */
#define PIC_ICW4 0x01         /* 8086 mode, normal EOI */
#define PIC1_BIOS_VECTOR 0x08 /* IRQ 0-7 -> INT 08h-0Fh */
#define PIC2_BIOS_VECTOR 0x70 /* IRQ 8-15 -> INT 70h-77h */
#define ELCR1 0x4D0
#define ELCR2 0x4D1

#define PIT_CH0 0x40
#define PIT_MODE 0x43
#define PIT_CH0_SQUARE 0x36 /* channel 0, low then high byte, mode 3, binary */

struct legacy_state {
	u8 imr1, imr2, elcr1, elcr2;
};

void legacy_save(struct legacy_state *s);

/* Reinitialise both PICs with the BIOS's vectors and masks, the edge/level setting, and the
 * PIT's channel 0 at the BIOS's 18.2 Hz (count 65536). */
void legacy_restore(const struct legacy_state *s);

#endif
