/* Internal to crypto/: the implementations behind crypto/xts.c. Only xts.c calls the SIMD ones,
 * after saving the SIMD state; the SIMD files are the only ones compiled with SIMD enabled. */
#ifndef PARAPET_CRYPTO_XTS_IMPL_H
#define PARAPET_CRYPTO_XTS_IMPL_H

#include "crypto/xts.h"

/* One routine per implementation: nsect sectors from `sector`, in place; decrypt = 0 or 1. */
void xts_soft_crypt(const struct xts_key *k, u64 sector, u8 *buf, size_t nsect, int decrypt);
void xts_aesni_crypt(const struct xts_key *k, u64 sector, u8 *buf, size_t nsect, int decrypt);
void xts_vaes2_crypt(const struct xts_key *k, u64 sector, u8 *buf, size_t nsect, int decrypt);
void xts_vaes512_crypt(const struct xts_key *k, u64 sector, u8 *buf, size_t nsect, int decrypt);

/* Constant-time AES-256 (crypto/aes_ct.c), general-purpose registers only. */
void aes256_ct_expand(const u8 key[32], u8 rk[AES256_ROUNDS + 1][16]);
void aes256_ct_dec_schedule(const u8 ek[AES256_ROUNDS + 1][16], u8 dk[AES256_ROUNDS + 1][16]);
/* Up to 4 blocks with the encryption schedule, or with the AESDEC-order decryption schedule. */
void aes256_ct_encrypt(const u8 rk[AES256_ROUNDS + 1][16], u8 *blocks, size_t n);
void aes256_ct_decrypt(const u8 dk[AES256_ROUNDS + 1][16], u8 *blocks, size_t n);
/* SubBytes (or InvSubBytes) of 64 bytes, for the tests. */
void aes_ct_sub_bytes(u8 buf[64], int inverse);

/* Zero n bytes in a way the compiler keeps. */
static inline void xts_burn(void *p, size_t n)
{
	volatile u8 *b = p;
	while (n--)
		*b++ = 0;
}

#endif
