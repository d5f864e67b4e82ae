/*
 * xts-tool: the hypervisor's XTS-AES-256 code (hv/crypto/) as a host command, so tests can
 * compare every implementation with OpenSSL (tests/crypto.test.ts). Built by `make -C hv
 * xts-tool` into build/hv/xts-tool, with AddressSanitizer and UBSan.
 *
 *   xts-tool list                                  available implementations, best first line
 *   xts-tool encrypt|decrypt IMPL KEYHEX SECTOR    stdin -> stdout, whole 512-byte sectors
 *
 * IMPL: auto, soft, aesni, vaes-avx2, vaes-avx512. KEYHEX: 128 hex digits (data key, then tweak
 * key). SECTOR: the first sector number, decimal or 0x-hex, up to 2^64 - 1.
 */
#include "crypto/xts.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_INPUT (64u << 20)

static int usage(void)
{
	fprintf(stderr, "usage: xts-tool list\n"
			"       xts-tool encrypt|decrypt IMPL KEYHEX SECTOR < input > output\n"
			"IMPL: auto soft aesni vaes-avx2 vaes-avx512; KEYHEX: 128 hex digits; input: whole 512-byte sectors\n");
	return 2;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static int parse_key(const char *hex, u8 key[XTS_KEY_SIZE])
{
	if (strlen(hex) != 2 * XTS_KEY_SIZE)
		return -1;
	for (int i = 0; i < XTS_KEY_SIZE; i++) {
		int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return -1;
		key[i] = (u8)(hi << 4 | lo);
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 2 && !strcmp(argv[1], "list")) {
		printf("%s\n", xts_impl_name(xts_current()));
		for (int i = XTS_SOFT; i < XTS_NIMPL; i++)
			if (xts_impl_available((enum xts_impl)i))
				printf("%s\n", xts_impl_name((enum xts_impl)i));
		return 0;
	}
	if (argc != 5)
		return usage();
	int decrypt;
	if (!strcmp(argv[1], "encrypt"))
		decrypt = 0;
	else if (!strcmp(argv[1], "decrypt"))
		decrypt = 1;
	else
		return usage();

	enum xts_impl impl = XTS_NIMPL;
	for (int i = XTS_AUTO; i < XTS_NIMPL; i++)
		if (!strcmp(argv[2], xts_impl_name((enum xts_impl)i)))
			impl = (enum xts_impl)i;
	if (impl == XTS_NIMPL) {
		fprintf(stderr, "xts-tool: unknown implementation '%s'\n", argv[2]);
		return usage();
	}
	if (!xts_use(impl)) {
		fprintf(stderr, "xts-tool: implementation '%s' is not available on this CPU\n", argv[2]);
		return 3;
	}

	u8 raw[XTS_KEY_SIZE];
	if (parse_key(argv[3], raw)) {
		fprintf(stderr, "xts-tool: KEYHEX must be %d hex digits\n", 2 * XTS_KEY_SIZE);
		return usage();
	}
	char *end;
	errno = 0;
	unsigned long long sector = strtoull(argv[4], &end, 0);
	if (errno || *end || !argv[4][0] || argv[4][0] == '-') {
		fprintf(stderr, "xts-tool: bad sector number '%s'\n", argv[4]);
		return usage();
	}

	u8 *buf = malloc(MAX_INPUT + 1);
	if (!buf)
		return 1;
	size_t len = fread(buf, 1, MAX_INPUT + 1, stdin);
	if (ferror(stdin) || len > MAX_INPUT || len % XTS_SECTOR_SIZE) {
		fprintf(stderr, "xts-tool: input must be whole 512-byte sectors, at most %u bytes (got %zu)\n",
			MAX_INPUT, len);
		free(buf);
		return 2;
	}

	struct xts_key k;
	xts_setkey(&k, raw);
	if (decrypt)
		xts_decrypt(&k, sector, buf, len / XTS_SECTOR_SIZE);
	else
		xts_encrypt(&k, sector, buf, len / XTS_SECTOR_SIZE);
	xts_wipe(&k);
	memset(raw, 0, sizeof(raw));

	int rc = fwrite(buf, 1, len, stdout) == len && fflush(stdout) == 0 ? 0 : 1;
	free(buf);
	return rc;
}
