/* Helpers shared by the SIMD files (crypto/xts_aesni.c, xts_vaes2.c, xts_vaes512.c): static
 * inline, so each compiles under its includer's target (SSE for AES-NI, VEX/EVEX for VAES).
 * Include after <immintrin.h>. The loops over blocks and rounds in those files carry
 * `#pragma GCC unroll`: left as loops, GCC keeps the blocks in memory, not in registers, and
 * the cipher runs at less than half the speed. */
#ifndef PARAPET_CRYPTO_XTS_SIMD_H
#define PARAPET_CRYPTO_XTS_SIMD_H

#define ALWAYS_INLINE inline __attribute__((always_inline))

/* T * alpha: shift the 128-bit little-endian value left by one, fold bit 127 back as 0x87. */
static ALWAYS_INLINE __m128i mul_alpha(__m128i t)
{
	__m128i m = _mm_shuffle_epi32(_mm_srai_epi32(t, 31), 0x13);  /* sign of dword 3 -> 0, of 1 -> 2 */
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

#endif
