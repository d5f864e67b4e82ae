/*
 * XTS-AES-256 with VAES on 512-bit zmm registers (AVX-512 F+BW): four blocks per instruction,
 * a whole 512-byte sector (32 blocks, 8 registers) in flight at once. The compiler may use
 * zmm0-31 and the mask registers, so crypto/xts.c saves the AVX, opmask, ZMM_Hi256 and
 * Hi16_ZMM state components (XSAVE) before calling in.
 *
 * SIMD file: compiled with SIMD enabled and called only from crypto/xts.c after the SIMD state
 * has been saved (hv/Makefile, docs/crypto.md).
 */
#pragma GCC target("avx2,avx512f,avx512bw,aes,vaes")
#include "crypto/xts_simd.h"

#define REGS 8 /* zmm registers of data: 32 blocks, one sector */

/* Each 128-bit lane times alpha^k, 1 <= k <= 56 (see mul_alpha_k). */
static ALWAYS_INLINE __m512i mul_alpha_k4(__m512i t, const int k)
{
	__m512i top = _mm512_srli_epi64(_mm512_bsrli_epi128(t, 8), 64 - k);
	__m512i mid = _mm512_srli_epi64(_mm512_bslli_epi128(t, 8), 64 - k);
	__m512i r = _mm512_xor_si512(_mm512_slli_epi64(t, k), mid);
	r = _mm512_xor_si512(r, _mm512_xor_si512(top, _mm512_slli_epi64(top, 1)));
	return _mm512_xor_si512(r, _mm512_xor_si512(_mm512_slli_epi64(top, 2), _mm512_slli_epi64(top, 7)));
}

/* Encrypted tweaks of sectors sector..sector+7, four per register. */
static ALWAYS_INLINE void tweaks8(const __m512i tk[NR + 1], u64 sector, __m128i out[8])
{
	__m512i x[2];
#pragma GCC unroll 16
	for (int j = 0; j < 2; j++) {
		u64 s = sector + 4 * j;
		x[j] = _mm512_xor_si512(_mm512_set_epi64(0, (long long)(s + 3), 0, (long long)(s + 2), 0,
					    (long long)(s + 1), 0, (long long)s),
		    tk[0]);
	}
#pragma GCC unroll 16
	for (int r = 1; r < NR; r++)
#pragma GCC unroll 16
		for (int j = 0; j < 2; j++)
			x[j] = _mm512_aesenc_epi128(x[j], tk[r]);
#pragma GCC unroll 16
	for (int j = 0; j < 2; j++) {
		x[j] = _mm512_aesenclast_epi128(x[j], tk[NR]);
		out[4 * j] = _mm512_extracti32x4_epi32(x[j], 0);
		out[4 * j + 1] = _mm512_extracti32x4_epi32(x[j], 1);
		out[4 * j + 2] = _mm512_extracti32x4_epi32(x[j], 2);
		out[4 * j + 3] = _mm512_extracti32x4_epi32(x[j], 3);
	}
}

static ALWAYS_INLINE void one_sector(const __m512i rk[NR + 1], __m128i t, u8 *buf, const int dec)
{
	__m512i tw[REGS], x[REGS];
	__m256i lo = _mm256_inserti128_si256(_mm256_castsi128_si256(t), mul_alpha(t), 1);
	__m256i hi = _mm256_inserti128_si256(_mm256_castsi128_si256(mul_alpha_k(t, 2)), mul_alpha_k(t, 3), 1);
	tw[0] = _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
	tw[1] = mul_alpha_k4(tw[0], 4);
	tw[2] = mul_alpha_k4(tw[0], 8);
	tw[3] = mul_alpha_k4(tw[0], 12);
	tw[4] = mul_alpha_k4(tw[0], 16);
	tw[5] = mul_alpha_k4(tw[0], 20);
	tw[6] = mul_alpha_k4(tw[0], 24);
	tw[7] = mul_alpha_k4(tw[0], 28);
#pragma GCC unroll 16
	for (int i = 0; i < REGS; i++)
		x[i] = _mm512_xor_si512(_mm512_loadu_si512(buf + 64 * i), _mm512_xor_si512(tw[i], rk[0]));
#pragma GCC unroll 16
	for (int r = 1; r < NR; r++)
#pragma GCC unroll 16
		for (int i = 0; i < REGS; i++)
			x[i] = dec ? _mm512_aesdec_epi128(x[i], rk[r]) : _mm512_aesenc_epi128(x[i], rk[r]);
#pragma GCC unroll 16
	for (int i = 0; i < REGS; i++) {
		x[i] = dec ? _mm512_aesdeclast_epi128(x[i], rk[NR]) : _mm512_aesenclast_epi128(x[i], rk[NR]);
		_mm512_storeu_si512(buf + 64 * i, _mm512_xor_si512(x[i], tw[i]));
	}
}

static ALWAYS_INLINE void run(const struct xts_key *k, u64 sector, u8 *buf, size_t nsect, const int dec)
{
	const u8(*src)[16] = dec ? k->dec : k->enc;
	__m512i rk[NR + 1], tk4[NR + 1];
	__m128i tk[NR + 1], t[8];
#pragma GCC unroll 16
	for (int i = 0; i <= NR; i++) {
		rk[i] = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)src[i]));
		tk[i] = _mm_loadu_si128((const __m128i *)k->twk[i]);
		tk4[i] = _mm512_broadcast_i32x4(tk[i]);
	}
	while (nsect) {
		size_t n = nsect < 8 ? nsect : 8;
		if (n == 1)
			t[0] = tweak1(tk, sector);
		else
			tweaks8(tk4, sector, t);
		for (size_t j = 0; j < n; j++, buf += XTS_SECTOR_SIZE)
			one_sector(rk, t[j], buf, dec);
		sector += n;
		nsect -= n;
	}
}

XTS_SIMD_ENTRY(xts_vaes512_crypt)
