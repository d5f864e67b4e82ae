/*
 * The hypervisor log: short greppable lines "parapet: <area>: <text>", kept in a ring
 * that the guest can read through VMMCALL, and written to one sink chosen on the
 * command line (port 0xE9, a COM port, or none).
 */
#ifndef PARAPET_LOG_H
#define PARAPET_LOG_H

#include "core/types.h"

#define LOG_RING_SIZE (64 * 1024)

enum log_sink { LOG_SINK_E9, LOG_SINK_COM, LOG_SINK_NONE };

struct log_config {
	enum log_sink sink;
	u16 com_port; /* I/O base of the UART for LOG_SINK_COM */
};

void log_init(const struct log_config *cfg);
void log_printf(const char *fmt, ...) __printf(1, 2);
void log_vprintf(const char *fmt, va_list ap);
void log_write(const char *s, size_t n);

/*
 * Copy log bytes from stream offset *pos into buf. If *pos is older than the ring keeps,
 * copying starts at the oldest byte kept. Returns the number of bytes copied and moves *pos.
 */
size_t log_read(u64 *pos, void *buf, size_t len);

/* Provided by the sink implementation (core/logsink.c, or a fake in host tests). */
void log_sink_init(const struct log_config *cfg);
void log_sink_write(const char *s, size_t n);
/* After S3: program the UART again as log_sink_init did (the sleep reset it). */
void log_sink_resume(void);

#define LOG(...) log_printf("parapet: " __VA_ARGS__)

/* Take one message from a budget shared by all CPUs: false once it is spent. For logs a
 * guest can provoke at will. */
bool log_budget_take(u32 *budget);

#endif
