/*
 * XTS-AES-256 with AES-NI on 128-bit xmm registers, legacy SSE encoding (no VEX: the upper
 * halves of ymm/zmm are never touched, so FXSAVE covers everything this file clobbers).
 * Eight blocks are in flight per round so the AES unit's latency is hidden; the tweaks of up
 * to eight sectors are encrypted together for the same reason.
 *
 * SIMD file: compiled with SIMD enabled and called only from crypto/xts.c after the SIMD state
 * has been saved (hv/Makefile, docs/crypto.md).
 */
#pragma GCC target("sse2,aes")
#include "crypto/xts_simd.h"

#define WIDTH 8

static ALWAYS_INLINE void load_keys(__m128i rk[NR + 1], const u8 src[NR + 1][16])
{
#pragma GCC unroll 16
	for (int i = 0; i <= NR; i++)
		rk[i] = _mm_loadu_si128((const __m128i *)src[i]);
}

/* Encrypt the tweaks of sectors sector..sector+n-1 (n <= WIDTH) with the tweak key. */
static ALWAYS_INLINE void tweaks(const __m128i tk[NR + 1], u64 sector, size_t n, __m128i out[WIDTH])
{
#pragma GCC unroll 16
	for (size_t j = 0; j < WIDTH; j++)
		out[j] = _mm_xor_si128(_mm_set_epi64x(0, (long long)(sector + (j < n ? j : 0))), tk[0]);
#pragma GCC unroll 16
	for (int r = 1; r < NR; r++)
#pragma GCC unroll 16
		for (size_t j = 0; j < WIDTH; j++)
			out[j] = _mm_aesenc_si128(out[j], tk[r]);
#pragma GCC unroll 16
	for (size_t j = 0; j < WIDTH; j++)
		out[j] = _mm_aesenclast_si128(out[j], tk[NR]);
}

static ALWAYS_INLINE void one_sector(const __m128i rk[NR + 1], __m128i t, u8 *buf, const int dec)
{
	__m128i tw[WIDTH], x[WIDTH];
	tw[0] = t;
#pragma GCC unroll 16
	for (int i = 1; i < WIDTH; i++)
		tw[i] = mul_alpha(tw[i - 1]);
	for (int off = 0; off < XTS_SECTOR_SIZE; off += 16 * WIDTH) {
		if (off)
#pragma GCC unroll 16
			for (int i = 0; i < WIDTH; i++)
				tw[i] = mul_alpha_k(tw[i], WIDTH);
#pragma GCC unroll 16
		for (int i = 0; i < WIDTH; i++)
			x[i] = _mm_xor_si128(_mm_loadu_si128((const __m128i *)(buf + off + 16 * i)),
			    _mm_xor_si128(tw[i], rk[0]));
#pragma GCC unroll 16
		for (int r = 1; r < NR; r++)
#pragma GCC unroll 16
			for (int i = 0; i < WIDTH; i++)
				x[i] = dec ? _mm_aesdec_si128(x[i], rk[r]) : _mm_aesenc_si128(x[i], rk[r]);
#pragma GCC unroll 16
		for (int i = 0; i < WIDTH; i++) {
			x[i] = dec ? _mm_aesdeclast_si128(x[i], rk[NR]) : _mm_aesenclast_si128(x[i], rk[NR]);
			_mm_storeu_si128((__m128i *)(buf + off + 16 * i), _mm_xor_si128(x[i], tw[i]));
		}
	}
}

static ALWAYS_INLINE void run(const struct xts_key *k, u64 sector, u8 *buf, size_t nsect, const int dec)
{
	__m128i rk[NR + 1], tk[NR + 1], t[WIDTH];
	load_keys(rk, dec ? k->dec : k->enc);
	load_keys(tk, k->twk);
	while (nsect) {
		size_t n = nsect < WIDTH ? nsect : WIDTH;
		if (n == 1)
			t[0] = tweak1(tk, sector);
		else
			tweaks(tk, sector, n, t);
		for (size_t j = 0; j < n; j++, buf += XTS_SECTOR_SIZE)
			one_sector(rk, t[j], buf, dec);
		sector += n;
		nsect -= n;
	}
}

XTS_SIMD_ENTRY(xts_aesni_crypt)
