/* Log sinks on real hardware: QEMU/Bochs debug port 0xE9, or a 16550 UART. */
#include "core/log.h"
#include "core/x86.h"

/* 16550 UART registers, offsets from the I/O base. */
#define UART_THR 0 /* transmit holding (DLAB=0) */
#define UART_DLL 0 /* divisor latch low (DLAB=1) */
#define UART_IER 1
#define UART_DLM 1
#define UART_FCR 2
#define UART_LCR 3
#define UART_MCR 4
#define UART_LSR 5
#define UART_LSR_THRE 0x20

static struct log_config sink;

void log_sink_init(const struct log_config *cfg)
{
	sink = *cfg;
	log_sink_resume();
}

void log_sink_resume(void)
{
	if (sink.sink != LOG_SINK_COM)
		return;
	u16 b = sink.com_port;
	outb(b + UART_IER, 0x00);
	outb(b + UART_LCR, 0x80); /* DLAB: set the baud divisor */
	outb(b + UART_DLL, 0x01); /* 115200 baud */
	outb(b + UART_DLM, 0x00);
	outb(b + UART_LCR, 0x03); /* 8N1 */
	outb(b + UART_FCR, 0xC7); /* FIFO on, cleared */
	outb(b + UART_MCR, 0x03);
}

static void uart_putc(u16 base, char c)
{
	/* Bounded wait: a missing UART must not hang the hypervisor. */
	for (int i = 0; i < 100000 && !(inb(base + UART_LSR) & UART_LSR_THRE); i++)
		cpu_relax();
	outb(base + UART_THR, (u8)c);
}

void log_sink_write(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		switch (sink.sink) {
		case LOG_SINK_E9:
			outb(0xE9, (u8)s[i]);
			break;
		case LOG_SINK_COM:
			if (s[i] == '\n')
				uart_putc(sink.com_port, '\r');
			uart_putc(sink.com_port, s[i]);
			break;
		case LOG_SINK_NONE:
			return;
		}
	}
}
