#include "core/platform.h"
#include "core/x86.h"

__noreturn void platform_reset(void)
{
	outb(0xCF9, 0x02); /* PIIX/ICH reset control register: prepare... */
	outb(0xCF9, 0x06); /* ...then hard reset */
	for (int i = 0; i < 100000 && (inb(0x64) & 0x02); i++)
		cpu_relax();
	outb(0x64, 0xFE); /* 8042 keyboard controller: pulse the reset line */
	halt_forever();
}
