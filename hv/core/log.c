#include "core/log.h"
#include "core/fmt.h"
#include "core/spinlock.h"

static char ring[LOG_RING_SIZE];
static u64 ring_head; /* stream offset of the next byte written */
static struct spinlock log_lock;

void log_init(const struct log_config *cfg)
{
	log_sink_init(cfg);
}

void log_write(const char *s, size_t n)
{
	spin_lock(&log_lock);
	for (size_t i = 0; i < n; i++)
		ring[(ring_head + i) % LOG_RING_SIZE] = s[i];
	ring_head += n;
	log_sink_write(s, n);
	spin_unlock(&log_lock);
}

void log_vprintf(const char *fmt, va_list ap)
{
	char line[256];
	int n = fmt_vsnprintf(line, sizeof(line), fmt, ap);
	if (n >= (int)sizeof(line)) {
		n = sizeof(line) - 1;
		line[n - 1] = '\n';
	}
	log_write(line, (size_t)n);
}

void log_printf(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_vprintf(fmt, ap);
	va_end(ap);
}

size_t log_read(u64 *pos, void *buf, size_t len)
{
	u8 *out = buf;
	spin_lock(&log_lock);
	u64 oldest = ring_head > LOG_RING_SIZE ? ring_head - LOG_RING_SIZE : 0;
	u64 p = *pos < oldest ? oldest : *pos;
	size_t n = 0;
	while (n < len && p < ring_head)
		out[n++] = (u8)ring[p++ % LOG_RING_SIZE];
	*pos = p;
	spin_unlock(&log_lock);
	return n;
}

bool log_budget_take(u32 *budget)
{
	u32 b = __atomic_load_n(budget, __ATOMIC_RELAXED);
	while (b)
		if (__atomic_compare_exchange_n(budget, &b, b - 1, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
			return true;
	return false;
}
