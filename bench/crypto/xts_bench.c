/*
 * xts-bench: throughput of the hypervisor's XTS-AES-256 implementations (hv/crypto/) against
 * OpenSSL's EVP aes-256-xts, in one process, on this host. Built by `make -C hv xts-bench`
 * (-O2, -lcrypto); run through `npx parapet bench crypto` (bench/crypto.ts), which prints the
 * report. Output: one JSON object on stdout.
 *
 *   xts-bench [--runs N] [--ms MS] [--kib KIB]
 *
 * Each variant runs for MS milliseconds of this thread's CPU time per run (so time the CPU
 * spends on other processes is not counted), variants interleaved within a run, N runs; the
 * report uses the median. Cycles/byte are that CPU time in TSC ticks (the TSC runs at a fixed
 * rate, not necessarily the core clock). Units: 512 B (one call per sector) and 4 KiB (one call for
 * 8 consecutive sectors; OpenSSL cannot take several tweaks in one call, so it does 8 IV
 * changes + updates, as dm-crypt does per sector). The buffer (KIB KiB, default 64) is walked
 * sector by sector, so the data stays in the L2 cache.
 *
 * "ours" variants run with each way of keeping the caller's SIMD state (crypto/xts.h): "regs"
 * (the hypervisor's default), "xsave" (FXSAVE/XSAVE), and "none" (possible on the host only).
 */
#define _GNU_SOURCE
#include "crypto/xts.h"
#include <openssl/evp.h>
#include <openssl/crypto.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <x86intrin.h>

enum { UNIT_512, UNIT_4K, NUNITS };
static const unsigned unit_sectors[NUNITS] = { 1, 8 };

struct variant {
	const char *name;      /* implementation name or "openssl" */
	enum xts_impl impl;    /* XTS_AUTO for OpenSSL */
	enum xts_simd_save save;   /* ours: how the SIMD state is saved around each call */
	int decrypt;
	int unit;
	double *mbps, *cpb;    /* per run */
};

static const char *const save_names[] = { "\"regs\"", "\"xsave\"", "\"none\"" };
static u8 key[64];
static struct xts_key xk;
static EVP_CIPHER_CTX *ossl[2];   /* [decrypt] */
static u8 *buf;
static size_t nsect;

static double clock_s(clockid_t id)
{
	struct timespec ts;
	clock_gettime(id, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double now(void)
{
	return clock_s(CLOCK_MONOTONIC);
}

/* This thread's CPU time: time other processes hold the CPU is not counted. */
static double cpu_now(void)
{
	return clock_s(CLOCK_THREAD_CPUTIME_ID);
}

static void die(const char *msg)
{
	fprintf(stderr, "xts-bench: %s\n", msg);
	exit(1);
}

static void ossl_sectors(int decrypt, u64 sector, u8 *p, unsigned n)
{
	EVP_CIPHER_CTX *ctx = ossl[decrypt];
	for (unsigned i = 0; i < n; i++, p += XTS_SECTOR_SIZE) {
		u8 iv[16] = { 0 };
		u64 s = sector + i;
		memcpy(iv, &s, 8);
		int outl;
		if (!EVP_CipherInit_ex(ctx, NULL, NULL, NULL, iv, -1) ||
		    !EVP_CipherUpdate(ctx, p, &outl, p, XTS_SECTOR_SIZE) || outl != XTS_SECTOR_SIZE)
			die("OpenSSL EVP_CipherUpdate failed");
	}
}

/* One timed stretch of about ms milliseconds of this thread's CPU time: returns the bytes
 * processed, *secs the CPU time they took. */
static double measure(const struct variant *v, double ms, double *secs)
{
	unsigned per = unit_sectors[v->unit];
	size_t calls = 0, pos = 0;
	u64 sector = 0x100000000ull;   /* above 2^32, like a large disk */
	if (v->impl != XTS_AUTO) {
		xts_use(v->impl);
		xts_simd_save(v->save);
	}
	double t0 = cpu_now(), end = t0 + ms / 1000, t1;
	do {
		for (int i = 0; i < 16; i++) {   /* check the clock every 16 calls */
			u8 *p = buf + pos * XTS_SECTOR_SIZE;
			if (v->impl == XTS_AUTO)
				ossl_sectors(v->decrypt, sector + pos, p, per);
			else if (v->decrypt)
				xts_decrypt(&xk, sector + pos, p, per);
			else
				xts_encrypt(&xk, sector + pos, p, per);
			pos += per;
			if (pos + per > nsect)
				pos = 0;
			calls++;
		}
		t1 = cpu_now();
	} while (t1 < end);
	*secs = t1 - t0;
	return (double)calls * per * XTS_SECTOR_SIZE;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double median(const double *v, int n)
{
	double *t = malloc(n * sizeof(double));
	memcpy(t, v, n * sizeof(double));
	qsort(t, n, sizeof(double), cmp_double);
	double m = n % 2 ? t[n / 2] : (t[n / 2 - 1] + t[n / 2]) / 2;
	free(t);
	return m;
}

static void cpu_name(char *out, size_t n)
{
	FILE *f = fopen("/proc/cpuinfo", "r");
	char line[512];
	snprintf(out, n, "unknown");
	while (f && fgets(line, sizeof(line), f)) {
		char *c = strchr(line, ':');
		if (!strncmp(line, "model name", 10) && c) {
			c += 2;
			c[strcspn(c, "\n")] = 0;
			snprintf(out, n, "%s", c);
			break;
		}
	}
	if (f)
		fclose(f);
}

/* Our output must equal OpenSSL's before anything is timed. */
static void cross_check(void)
{
	size_t n = 16, len = n * XTS_SECTOR_SIZE;
	u8 *a = malloc(len), *b = malloc(len), *plain = malloc(len);
	for (size_t i = 0; i < len; i++)
		plain[i] = (u8)(i * 131 + 7);
	for (int impl = XTS_SOFT; impl < XTS_NIMPL; impl++) {
		if (!xts_impl_available((enum xts_impl)impl))
			continue;
		xts_use((enum xts_impl)impl);
		memcpy(a, plain, len);
		memcpy(b, plain, len);
		xts_encrypt(&xk, 0xFFFFFFFAull, a, n);
		ossl_sectors(0, 0xFFFFFFFAull, b, n);
		if (memcmp(a, b, len))
			die("our ciphertext differs from OpenSSL's");
		xts_decrypt(&xk, 0xFFFFFFFAull, a, n);
		if (memcmp(a, plain, len))
			die("our decryption does not invert our encryption");
	}
	free(a);
	free(b);
	free(plain);
}

int main(int argc, char **argv)
{
	int runs = 7;
	double ms = 40;
	unsigned kib = 64;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--runs") && i + 1 < argc)
			runs = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--ms") && i + 1 < argc)
			ms = atof(argv[++i]);
		else if (!strcmp(argv[i], "--kib") && i + 1 < argc)
			kib = (unsigned)atoi(argv[++i]);
		else {
			fprintf(stderr, "usage: xts-bench [--runs N] [--ms MS] [--kib KIB]\n");
			return 2;
		}
	}
	if (runs < 1 || runs > 1000 || !(ms >= 1 && ms <= 10000) || kib < 4 || kib > 65536)
		die("--runs 1..1000, --ms 1..10000, --kib 4..65536");

	/* Stay on one CPU: migrations would add noise. */
	int cpu = sched_getcpu();
	if (cpu >= 0) {
		cpu_set_t set;
		CPU_ZERO(&set);
		CPU_SET(cpu, &set);
		sched_setaffinity(0, sizeof(set), &set);
	}

	srand((unsigned)time(NULL));
	do {
		for (int i = 0; i < 64; i++)
			key[i] = (u8)rand();
	} while (!memcmp(key, key + 32, 32));   /* OpenSSL refuses equal halves */
	xts_setkey(&xk, key);
	EVP_CIPHER *cipher = EVP_CIPHER_fetch(NULL, "AES-256-XTS", NULL);
	if (!cipher)
		die("OpenSSL has no AES-256-XTS");
	for (int d = 0; d < 2; d++) {
		ossl[d] = EVP_CIPHER_CTX_new();
		if (!ossl[d] || !EVP_CipherInit_ex(ossl[d], cipher, NULL, key, NULL, !d))
			die("OpenSSL cipher init failed");
	}
	nsect = (size_t)kib * 1024 / XTS_SECTOR_SIZE;
	buf = aligned_alloc(64, nsect * XTS_SECTOR_SIZE);
	for (size_t i = 0; i < nsect * XTS_SECTOR_SIZE; i++)
		buf[i] = (u8)rand();
	cross_check();

	struct variant vs[96];
	int nv = 0;
	for (int unit = 0; unit < NUNITS; unit++)
		for (int d = 0; d < 2; d++) {
			vs[nv++] = (struct variant){ "openssl", XTS_AUTO, XTS_SAVE_NONE, d, unit, 0, 0 };
			for (int impl = XTS_SOFT; impl < XTS_NIMPL; impl++) {
				if (!xts_impl_available((enum xts_impl)impl))
					continue;
				const char *name = xts_impl_name((enum xts_impl)impl);
				vs[nv++] = (struct variant){ name, (enum xts_impl)impl, XTS_SAVE_REGS, d, unit, 0, 0 };
				if (impl == XTS_SOFT)
					continue;   /* saves nothing in any mode */
				vs[nv++] = (struct variant){ name, (enum xts_impl)impl, XTS_SAVE_XSAVE, d, unit, 0, 0 };
				vs[nv++] = (struct variant){ name, (enum xts_impl)impl, XTS_SAVE_NONE, d, unit, 0, 0 };
			}
		}
	for (int i = 0; i < nv; i++) {
		vs[i].mbps = calloc(runs, sizeof(double));
		vs[i].cpb = calloc(runs, sizeof(double));
	}

	/* TSC rate, to express CPU time as cycles: ticks per second over a short sleep. */
	double t0 = now();
	u64 c0 = __rdtsc();
	struct timespec pause = { 0, 50 * 1000 * 1000 };
	nanosleep(&pause, NULL);
	double tsc_ghz = (double)(__rdtsc() - c0) / (now() - t0) / 1e9;

	/* Warm up (clock ramp, caches), then interleaved runs. */
	double s;
	for (int i = 0; i < nv; i++)
		measure(&vs[i], ms / 4, &s);
	for (int r = 0; r < runs; r++) {
		for (int i = 0; i < nv; i++) {
			/* Rotate the order each run so no variant always follows the same one. */
			struct variant *v = &vs[(i + r) % nv];
			double bytes = measure(v, ms, &s);
			v->mbps[r] = bytes / s / 1e6;
			v->cpb[r] = s * tsc_ghz * 1e9 / bytes;
		}
	}

	char cpuname[256];
	cpu_name(cpuname, sizeof(cpuname));
	for (char *q = cpuname; *q; q++)
		if (*q == '"' || *q == '\\' || (unsigned char)*q < 0x20)
			*q = ' ';
	xts_use(XTS_AUTO);
	const char *auto_impl = xts_impl_name(xts_current());
	printf("{\n  \"cpu\": \"%s\",\n  \"openssl\": \"%s\",\n  \"tscGhz\": %.3f,\n  \"runs\": %d,\n  \"ms\": %.0f,\n"
	       "  \"bufferKiB\": %u,\n  \"auto\": \"%s\",\n  \"results\": [\n",
	       cpuname, OpenSSL_version(OPENSSL_VERSION), tsc_ghz, runs, ms, kib, auto_impl);
	for (int i = 0; i < nv; i++) {
		const struct variant *v = &vs[i];
		printf("    {\"impl\": \"%s\", \"save\": %s, \"op\": \"%s\", \"unitBytes\": %u, \"medianMBps\": %.1f, "
		       "\"medianTscCyclesPerByte\": %.3f, \"mbps\": [",
		       v->name, v->impl == XTS_AUTO ? "null" : save_names[v->save], v->decrypt ? "decrypt" : "encrypt",
		       unit_sectors[v->unit] * XTS_SECTOR_SIZE, median(v->mbps, runs), median(v->cpb, runs));
		for (int r = 0; r < runs; r++)
			printf("%s%.1f", r ? ", " : "", v->mbps[r]);
		printf("]}%s\n", i + 1 < nv ? "," : "");
	}
	printf("  ]\n}\n");

	xts_wipe(&xk);
	for (int d = 0; d < 2; d++)
		EVP_CIPHER_CTX_free(ossl[d]);
	EVP_CIPHER_free(cipher);
	free(buf);
	return 0;
}
