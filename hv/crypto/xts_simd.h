/* Shared by the SIMD files (crypto/xts_aesni.c, xts_vaes2.c, xts_vaes512.c), which include it
 * right after their `#pragma GCC target`: <immintrin.h> and the static inline helpers here then
 * compile under that file's target (SSE for AES-NI, VEX/EVEX for VAES). The loops over blocks
 * and rounds in those files carry `#pragma GCC unroll`: left as loops, GCC keeps the blocks in
 * memory, not in registers, and the cipher runs at less than half the speed. */
#ifndef PARAPET_CRYPTO_XTS_SIMD_H
#define PARAPET_CRYPTO_XTS_SIMD_H

#ifndef HOST_TEST
#define _MM_MALLOC_H_INCLUDED /* freestanding: keep immintrin.h from including <stdlib.h> */
#endif
#include <immintrin.h>
#include "crypto/xts_impl.h"

#define ALWAYS_INLINE inline __attribute__((always_inline))
#define NR AES256_ROUNDS

/* T * alpha: shift the 128-bit little-endian value left by one, fold bit 127 back as 0x87. */
static ALWAYS_INLINE __m128i mul_alpha(__m128i t)
{
	__m128i m = _mm_shuffle_epi32(_mm_srai_epi32(t, 31), 0x13); /* sign of dword 3 -> 0, of 1 -> 2 */
	m = _mm_and_si128(m, _mm_set_epi32(0, 1, 0, 0x87));
	return _mm_xor_si128(_mm_add_epi64(t, t), m);
}

/* T * alpha^k for 1 <= k <= 56: the k bits shifted out of the top times x^7 + x^2 + x + 1 fit in
 * the low 64 bits without further reduction. */
static ALWAYS_INLINE __m128i mul_alpha_k(__m128i t, const int k)
{
	__m128i top = _mm_srli_epi64(_mm_srli_si128(t, 8), 64 - k);
	__m128i mid = _mm_srli_epi64(_mm_slli_si128(t, 8), 64 - k);
	__m128i r = _mm_xor_si128(_mm_slli_epi64(t, k), mid);
	r = _mm_xor_si128(r, _mm_xor_si128(top, _mm_slli_epi64(top, 1)));
	return _mm_xor_si128(r, _mm_xor_si128(_mm_slli_epi64(top, 2), _mm_slli_epi64(top, 7)));
}

/* The encrypted tweak of one sector, with the tweak key's round keys. */
static ALWAYS_INLINE __m128i tweak1(const __m128i tk[NR + 1], u64 sector)
{
	__m128i x = _mm_xor_si128(_mm_set_epi64x(0, (long long)sector), tk[0]);
#pragma GCC unroll 16
	for (int r = 1; r < NR; r++)
		x = _mm_aesenc_si128(x, tk[r]);
	return _mm_aesenclast_si128(x, tk[NR]);
}

/* Defines a SIMD file's exported routine (declared in crypto/xts_impl.h) over the file's
 * run(k, sector, buf, nsect, dec): each direction gets its own copy of run() with `dec` a
 * constant, so no round tests it. force_align_arg_pointer: a misaligned caller's stack cannot
 * fault an aligned spill. */
#define XTS_SIMD_ENTRY(name)                                                                                           \
	__attribute__((force_align_arg_pointer)) void name(const struct xts_key *k, u64 sector, u8 *buf, size_t nsect, \
	    int decrypt)                                                                                               \
	{                                                                                                              \
		if (decrypt)                                                                                           \
			run(k, sector, buf, nsect, 1);                                                                 \
		else                                                                                                   \
			run(k, sector, buf, nsect, 0);                                                                 \
	}

#endif
