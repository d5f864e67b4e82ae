/*
 * XTS-AES-256 with VAES on 256-bit ymm registers (AVX2): two blocks per instruction, eight
 * registers (16 blocks) in flight, so a 512-byte sector is two passes. VEX encoding: writing a
 * ymm register also zeroes bits 511:256 of its zmm, which crypto/xts.c takes into account when
 * it saves the SIMD state (XSAVE with the AVX and, if the guest enabled it, ZMM_Hi256 parts).
 *
 * SIMD file: compiled with SIMD enabled and called only from crypto/xts.c after the SIMD state
 * has been saved (hv/Makefile, docs/crypto.md).
 */
#pragma GCC target("avx2,aes,vaes")
#include "crypto/xts_simd.h"

#define REGS 8 /* ymm registers of data in flight: 16 blocks */

/* Each 128-bit lane times alpha^k, 1 <= k <= 56 (see mul_alpha_k). */
static ALWAYS_INLINE __m256i mul_alpha_k2(__m256i t, const int k)
{
	__m256i top = _mm256_srli_epi64(_mm256_bsrli_epi128(t, 8), 64 - k);
	__m256i mid = _mm256_srli_epi64(_mm256_bslli_epi128(t, 8), 64 - k);
	__m256i r = _mm256_xor_si256(_mm256_slli_epi64(t, k), mid);
	r = _mm256_xor_si256(r, _mm256_xor_si256(top, _mm256_slli_epi64(top, 1)));
	return _mm256_xor_si256(r, _mm256_xor_si256(_mm256_slli_epi64(top, 2), _mm256_slli_epi64(top, 7)));
}

/* Encrypted tweaks of sectors sector..sector+7, two per register. */
static ALWAYS_INLINE void tweaks8(const __m256i tk[NR + 1], u64 sector, __m128i out[8])
{
	__m256i x[4];
#pragma GCC unroll 16
	for (int j = 0; j < 4; j++)
		x[j] = _mm256_xor_si256(
		    _mm256_set_epi64x(0, (long long)(sector + 2 * j + 1), 0, (long long)(sector + 2 * j)), tk[0]);
#pragma GCC unroll 16
	for (int r = 1; r < NR; r++)
#pragma GCC unroll 16
		for (int j = 0; j < 4; j++)
			x[j] = _mm256_aesenc_epi128(x[j], tk[r]);
#pragma GCC unroll 16
	for (int j = 0; j < 4; j++) {
		x[j] = _mm256_aesenclast_epi128(x[j], tk[NR]);
		out[2 * j] = _mm256_castsi256_si128(x[j]);
		out[2 * j + 1] = _mm256_extracti128_si256(x[j], 1);
	}
}

static ALWAYS_INLINE void one_sector(const __m256i rk[NR + 1], __m128i t, u8 *buf, const int dec)
{
	__m256i tw[REGS], x[REGS];
	tw[0] = _mm256_inserti128_si256(_mm256_castsi128_si256(t), mul_alpha(t), 1);
	tw[1] = mul_alpha_k2(tw[0], 2);
	tw[2] = mul_alpha_k2(tw[0], 4);
	tw[3] = mul_alpha_k2(tw[0], 6);
	tw[4] = mul_alpha_k2(tw[0], 8);
	tw[5] = mul_alpha_k2(tw[0], 10);
	tw[6] = mul_alpha_k2(tw[0], 12);
	tw[7] = mul_alpha_k2(tw[0], 14);
	for (int off = 0; off < XTS_SECTOR_SIZE; off += 32 * REGS) {
		if (off)
#pragma GCC unroll 16
			for (int i = 0; i < REGS; i++)
				tw[i] = mul_alpha_k2(tw[i], 2 * REGS);
#pragma GCC unroll 16
		for (int i = 0; i < REGS; i++)
			x[i] = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(buf + off + 32 * i)),
			    _mm256_xor_si256(tw[i], rk[0]));
#pragma GCC unroll 16
		for (int r = 1; r < NR; r++)
#pragma GCC unroll 16
			for (int i = 0; i < REGS; i++)
				x[i] = dec ? _mm256_aesdec_epi128(x[i], rk[r]) : _mm256_aesenc_epi128(x[i], rk[r]);
#pragma GCC unroll 16
		for (int i = 0; i < REGS; i++) {
			x[i] = dec ? _mm256_aesdeclast_epi128(x[i], rk[NR]) : _mm256_aesenclast_epi128(x[i], rk[NR]);
			_mm256_storeu_si256((__m256i *)(buf + off + 32 * i), _mm256_xor_si256(x[i], tw[i]));
		}
	}
}

static ALWAYS_INLINE void run(const struct xts_key *k, u64 sector, u8 *buf, size_t nsect, const int dec)
{
	const u8(*src)[16] = dec ? k->dec : k->enc;
	__m256i rk[NR + 1], tk2[NR + 1];
	__m128i tk[NR + 1], t[8];
#pragma GCC unroll 16
	for (int i = 0; i <= NR; i++) {
		rk[i] = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)src[i]));
		tk[i] = _mm_loadu_si128((const __m128i *)k->twk[i]);
		tk2[i] = _mm256_broadcastsi128_si256(tk[i]);
	}
	while (nsect) {
		size_t n = nsect < 8 ? nsect : 8;
		if (n == 1)
			t[0] = tweak1(tk, sector);
		else
			tweaks8(tk2, sector, t);
		for (size_t j = 0; j < n; j++, buf += XTS_SECTOR_SIZE)
			one_sector(rk, t[j], buf, dec);
		sector += n;
		nsect -= n;
	}
}

XTS_SIMD_ENTRY(xts_vaes2_crypt)
