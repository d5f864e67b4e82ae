/*
 * XTS-AES-256 (IEEE 1619) on 512-byte sectors, in place: what the storage service calls.
 *
 * Compatible bit for bit with dm-crypt aes-xts-plain64 and with OpenSSL's aes-256-xts:
 * the 64-byte key is the data key (bytes 0-31) then the tweak key (bytes 32-63); the tweak of
 * sector s is s as a little-endian 64-bit integer zero-padded to 16 bytes, encrypted with the
 * tweak key. Consecutive sectors of one call get consecutive sector numbers.
 *
 * Several implementations (AES-NI, VAES, a constant-time software fallback) share one key
 * format; the fastest one the CPU has is chosen on first use (xts_current). The entry points
 * may be called with the guest's SIMD state live in the registers (and the guest's XCR0): they
 * save and restore what they change around any SIMD code (docs/crypto.md).
 */
#ifndef PARAPET_CRYPTO_XTS_H
#define PARAPET_CRYPTO_XTS_H

#include "core/types.h"

#define XTS_SECTOR_SIZE 512
#define XTS_KEY_SIZE 64
#define AES256_ROUNDS 14

/* An expanded key: 720 bytes, 16-byte aligned, no pointers, so it can be embedded or kept in a
 * static array. Round keys are stored as AES-NI consumes them. */
struct xts_key {
	u8 enc[AES256_ROUNDS + 1][16]; /* data key, encryption schedule */
	u8 dec[AES256_ROUNDS + 1][16]; /* data key, equivalent-inverse-cipher schedule (AESDEC order) */
	u8 twk[AES256_ROUNDS + 1][16]; /* tweak key, encryption schedule */
} __aligned(16);

/* key[0..31] data key, key[32..63] tweak key. Constant time (no SIMD is used). IEEE 1619-2018
 * requires the two halves to differ; checking that is the key provider's job. */
void xts_setkey(struct xts_key *k, const u8 key[XTS_KEY_SIZE]);

/* nsect consecutive sectors starting at `sector`, buf holds nsect * 512 bytes (any alignment). */
void xts_encrypt(const struct xts_key *k, u64 sector, u8 *buf, size_t nsect);
void xts_decrypt(const struct xts_key *k, u64 sector, u8 *buf, size_t nsect);

/* Zero the key; the stores are not optimised away. */
void xts_wipe(struct xts_key *k);

/* Implementations. Selection is global; tests and benchmarks force one with xts_use(). */
enum xts_impl {
	XTS_AUTO = 0,    /* "the best this CPU has" */
	XTS_SOFT,        /* constant-time bitsliced software */
	XTS_AESNI,       /* AES-NI, 128-bit xmm, 8 blocks interleaved */
	XTS_VAES_AVX2,   /* VAES on 256-bit ymm */
	XTS_VAES_AVX512, /* VAES on 512-bit zmm */
	XTS_NIMPL
};

bool xts_impl_available(enum xts_impl impl);
/* Select impl (XTS_AUTO: the best available). Returns false, changing nothing, if unavailable. */
bool xts_use(enum xts_impl impl);
/* The implementation in use (selects the best available on first call). */
enum xts_impl xts_current(void);
const char *xts_impl_name(enum xts_impl impl);

/* How the entry points keep the caller's (the guest's) SIMD state intact around SIMD code. */
enum xts_simd_save {
	XTS_SAVE_REGS = 0, /* default: store and reload, bit for bit, exactly the vector and mask
			      * registers the chosen implementation can write */
	XTS_SAVE_XSAVE,    /* architectural: FXSAVE64 (AES-NI) or XSAVE64 of the written state
			      * components (VAES); about 10x the cost of XTS_SAVE_REGS */
	XTS_SAVE_NONE,     /* host builds only (benchmarks): save nothing */
};
/* Returns false, changing nothing, for XTS_SAVE_NONE in the hypervisor. */
bool xts_simd_save(enum xts_simd_save mode);

#endif
