#include "boot/cmdline.h"
#include "core/fmt.h"
#include "core/string.h"

static const u16 com_ports[4] = { 0x3F8, 0x2F8, 0x3E8, 0x2E8 };

static bool word_is(const char *w, size_t n, const char *lit)
{
	return strlen(lit) == n && memcmp(w, lit, n) == 0;
}

static bool parse_u8(const char *s, size_t n, u8 *out)
{
	unsigned base = 10, v = 0;
	if (n > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		base = 16;
		s += 2;
		n -= 2;
	}
	if (n == 0 || n > 3)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned d;
		char c = s[i];
		if (c >= '0' && c <= '9')
			d = c - '0';
		else if (base == 16 && c >= 'a' && c <= 'f')
			d = c - 'a' + 10;
		else if (base == 16 && c >= 'A' && c <= 'F')
			d = c - 'A' + 10;
		else
			return false;
		v = v * base + d;
	}
	if (v > 0xFF)
		return false;
	*out = (u8)v;
	return true;
}

bool cmdline_parse(const char *cmdline, struct hv_config *cfg, char *err, size_t errlen)
{
	cfg->log.sink = LOG_SINK_E9;
	cfg->log.com_port = 0;
	cfg->boot_drive = 0x80;
	cfg->iommu_to_guest = false;
	const char *p = cmdline ? cmdline : "";
	bool first = true;
	while (*p) {
		while (*p == ' ' || *p == '\t')
			p++;
		if (!*p)
			break;
		const char *w = p;
		while (*p && *p != ' ' && *p != '\t')
			p++;
		size_t n = (size_t)(p - w);
		size_t k = 0;
		while (k < n && w[k] != '=')
			k++;
		if (k == n) {
			if (first) {
				first = false;
				continue; /* the image path prepended by the loader */
			}
			fmt_snprintf(err, errlen, "option '%.*s' is not key=value", (int)n, w);
			return false;
		}
		first = false;
		const char *v = w + k + 1;
		size_t vn = n - k - 1;
		if (word_is(w, k, "log")) {
			if (word_is(v, vn, "e9")) {
				cfg->log.sink = LOG_SINK_E9;
			} else if (word_is(v, vn, "none")) {
				cfg->log.sink = LOG_SINK_NONE;
			} else if (vn == 4 && memcmp(v, "com", 3) == 0 && v[3] >= '1' && v[3] <= '4') {
				cfg->log.sink = LOG_SINK_COM;
				cfg->log.com_port = com_ports[v[3] - '1'];
			} else {
				fmt_snprintf(err, errlen, "log=%.*s: expected e9, com1..com4 or none", (int)vn, v);
				return false;
			}
		} else if (word_is(w, k, "boot")) {
			if (!parse_u8(v, vn, &cfg->boot_drive)) {
				fmt_snprintf(err, errlen, "boot=%.*s: expected a BIOS drive number such as 0x80",
				    (int)vn, v);
				return false;
			}
		} else if (word_is(w, k, "iommu")) {
			if (!word_is(v, vn, "on") && !word_is(v, vn, "guest")) {
				fmt_snprintf(err, errlen, "iommu=%.*s: expected on or guest", (int)vn, v);
				return false;
			}
			cfg->iommu_to_guest = word_is(v, vn, "guest");
		} else {
			fmt_snprintf(err, errlen, "unknown option '%.*s' (known: log=, boot=, iommu=)", (int)k, w);
			return false;
		}
	}
	return true;
}
