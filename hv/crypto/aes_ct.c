/*
 * Constant-time AES-256 and XTS in software: bitsliced, four blocks at a time, general-purpose
 * registers only. No memory address and no branch depends on key or data: the S-box is
 * computed (inverse in GF(2^8) as x^254, then the affine map) on bit planes, and the linear
 * layers are shifts and masks. Slow next to AES-NI (tens of cycles per byte), used only where
 * the CPU has no AES instructions; it also computes every key schedule.
 *
 * The small fixed loops of the round functions carry unroll pragmas: kept as loops, GCC
 * leaves the planes in memory and the cipher runs about three times slower.
 *
 * Layout: 64 bytes (four 16-byte blocks) become eight u64 planes; plane b holds bit b of every
 * byte, byte p at bit p. Byte i of a block is row i % 4, column i / 4 of the AES state, so in
 * each 16-bit lane of a plane, bit 4c + r is row r, column c.
 */
#include "crypto/xts_impl.h"

#define NR AES256_ROUNDS
#define LANES(x) ((u64)(x)*0x0001000100010001ull)

static inline u64 ld64(const u8 *p)
{
	u64 v;
	__builtin_memcpy(&v, p, 8);
	return v;
}

static inline void st64(u8 *p, u64 v)
{
	__builtin_memcpy(p, &v, 8);
}

static inline u32 ld32(const u8 *p)
{
	u32 v;
	__builtin_memcpy(&v, p, 4);
	return v;
}

static inline void st32(u8 *p, u32 v)
{
	__builtin_memcpy(p, &v, 4);
}

/* Exchange the bits of *x selected by m << s with the bits of *y selected by m. */
static inline void swapmove(u64 *x, u64 *y, int s, u64 m)
{
	u64 t = ((*x >> s) ^ *y) & m;
	*y ^= t;
	*x ^= t << s;
}

/* 8x8 transpose of bytes across words: byte b of q[j] trades places with byte j of q[b]. */
static void transpose_bytes(u64 q[8])
{
#pragma GCC unroll 16
	for (int j = 0; j < 8; j += 2)
		swapmove(&q[j], &q[j + 1], 8, 0x00FF00FF00FF00FFull);
#pragma GCC unroll 16
	for (int j = 0; j < 8; j += 4) {
		swapmove(&q[j], &q[j + 2], 16, 0x0000FFFF0000FFFFull);
		swapmove(&q[j + 1], &q[j + 3], 16, 0x0000FFFF0000FFFFull);
	}
#pragma GCC unroll 16
	for (int j = 0; j < 4; j++)
		swapmove(&q[j], &q[j + 4], 32, 0x00000000FFFFFFFFull);
}

/* 8x8 transpose of bits within a word: bit 8k + b trades places with bit 8b + k. */
static inline u64 transpose_bits(u64 x)
{
	u64 t;
	t = (x ^ (x >> 7)) & 0x00AA00AA00AA00AAull;
	x ^= t ^ (t << 7);
	t = (x ^ (x >> 14)) & 0x0000CCCC0000CCCCull;
	x ^= t ^ (t << 14);
	t = (x ^ (x >> 28)) & 0x00000000F0F0F0F0ull;
	x ^= t ^ (t << 28);
	return x;
}

static void bs_load(u64 q[8], const u8 in[64])
{
#pragma GCC unroll 16
	for (int j = 0; j < 8; j++)
		q[j] = transpose_bits(ld64(in + 8 * j));
	transpose_bytes(q);
}

/* The inverse of bs_load; q is clobbered. */
static void bs_store(u8 out[64], u64 q[8])
{
	transpose_bytes(q);
#pragma GCC unroll 16
	for (int j = 0; j < 8; j++)
		st64(out + 8 * j, transpose_bits(q[j]));
}

/* GF(2^8) = GF(2)[x] / (x^8 + x^4 + x^3 + x + 1) on planes: p[k] holds the x^k coefficients. */
static void gf_reduce(u64 r[8], u64 p[15])
{
#pragma GCC unroll 16
	for (int k = 14; k >= 8; k--) {
		p[k - 4] ^= p[k];
		p[k - 5] ^= p[k];
		p[k - 7] ^= p[k];
		p[k - 8] ^= p[k];
	}
#pragma GCC unroll 16
	for (int i = 0; i < 8; i++)
		r[i] = p[i];
}

static void gf_mul(u64 r[8], const u64 a[8], const u64 b[8])
{
	u64 p[15] = { 0 };
#pragma GCC unroll 16
	for (int i = 0; i < 8; i++)
#pragma GCC unroll 16
		for (int j = 0; j < 8; j++)
			p[i + j] ^= a[i] & b[j];
	gf_reduce(r, p);
}

static void gf_sq(u64 r[8], const u64 a[8])
{
	u64 p[15] = { 0 };
#pragma GCC unroll 16
	for (int i = 0; i < 8; i++)
		p[2 * i] = a[i];
	gf_reduce(r, p);
}

/* q <- q^254, which is q^-1 for q != 0 and 0 for 0. */
static void gf_inv(u64 q[8])
{
	u64 x2[8], x3[8], x6[8], x12[8], x14[8], x15[8], t[8], u[8];
	gf_sq(x2, q);
	gf_mul(x3, x2, q);
	gf_sq(x6, x3);
	gf_sq(x12, x6);
	gf_mul(x14, x12, x2);
	gf_mul(x15, x12, x3);
	gf_sq(t, x15); /* 30 */
	gf_sq(u, t);   /* 60 */
	gf_sq(t, u);   /* 120 */
	gf_sq(u, t);   /* 240 */
	gf_mul(q, u, x14);
}

static void sub_bytes(u64 q[8])
{
	u64 b[8];
	gf_inv(q);
#pragma GCC unroll 16
	for (int i = 0; i < 8; i++)
		b[i] = q[i];
#pragma GCC unroll 16
	for (int i = 0; i < 8; i++)
		q[i] = b[i] ^ b[(i + 4) & 7] ^ b[(i + 5) & 7] ^ b[(i + 6) & 7] ^ b[(i + 7) & 7];
	q[0] = ~q[0]; /* + 0x63 */
	q[1] = ~q[1];
	q[5] = ~q[5];
	q[6] = ~q[6];
}

static void inv_sub_bytes(u64 q[8])
{
	u64 s[8];
#pragma GCC unroll 16
	for (int i = 0; i < 8; i++)
		s[i] = q[i];
#pragma GCC unroll 16
	for (int i = 0; i < 8; i++)
		q[i] = s[(i + 2) & 7] ^ s[(i + 5) & 7] ^ s[(i + 7) & 7];
	q[0] = ~q[0]; /* + 0x05 */
	q[2] = ~q[2];
	gf_inv(q);
}

/* Row r of column c takes the byte of column c + r (ShiftRows) or c - r (InvShiftRows). */
static void shift_rows(u64 q[8])
{
#pragma GCC unroll 16
	for (int i = 0; i < 8; i++) {
		u64 x = q[i];
		q[i] = (x & LANES(0x1111)) | ((x >> 4) & LANES(0x0222)) | ((x << 12) & LANES(0x2000)) |
		       ((x >> 8) & LANES(0x0044)) | ((x << 8) & LANES(0x4400)) | ((x >> 12) & LANES(0x0008)) |
		       ((x << 4) & LANES(0x8880));
	}
}

static void inv_shift_rows(u64 q[8])
{
#pragma GCC unroll 16
	for (int i = 0; i < 8; i++) {
		u64 x = q[i];
		q[i] = (x & LANES(0x1111)) | ((x << 4) & LANES(0x2220)) | ((x >> 12) & LANES(0x0002)) |
		       ((x >> 8) & LANES(0x0044)) | ((x << 8) & LANES(0x4400)) | ((x >> 4) & LANES(0x0888)) |
		       ((x << 12) & LANES(0x8000));
	}
}

/* Row r takes row r + 1 (rot1) or r + 2 (rot2) of the same column. */
static inline u64 rot1(u64 x)
{
	return ((x >> 1) & LANES(0x7777)) | ((x << 3) & LANES(0x8888));
}

static inline u64 rot2(u64 x)
{
	return ((x >> 2) & LANES(0x3333)) | ((x << 2) & LANES(0xCCCC));
}

/* r = 2 * t in GF(2^8), planewise. */
static inline void xtime(u64 r[8], const u64 t[8])
{
	u64 hi = t[7];
	r[7] = t[6];
	r[6] = t[5];
	r[5] = t[4];
	r[4] = t[3] ^ hi;
	r[3] = t[2] ^ hi;
	r[2] = t[1];
	r[1] = t[0] ^ hi;
	r[0] = hi;
}

/* out_r = 2 a_r + 3 a_r+1 + a_r+2 + a_r+3 = 2 (a_r + a_r+1) + a_r+1 + (a_r+2 + a_r+3). */
static void mix_columns(u64 q[8])
{
	u64 a1[8], t[8], x[8];
#pragma GCC unroll 16
	for (int i = 0; i < 8; i++) {
		a1[i] = rot1(q[i]);
		t[i] = q[i] ^ a1[i];
	}
	xtime(x, t);
#pragma GCC unroll 16
	for (int i = 0; i < 8; i++)
		q[i] = x[i] ^ a1[i] ^ rot2(t[i]);
}

/* InvMixColumns = MixColumns after a_r += 4 (a_r + a_r+2). */
static void inv_mix_columns(u64 q[8])
{
	u64 u[8], v[8];
#pragma GCC unroll 16
	for (int i = 0; i < 8; i++)
		u[i] = q[i] ^ rot2(q[i]);
	xtime(v, u);
	xtime(u, v);
#pragma GCC unroll 16
	for (int i = 0; i < 8; i++)
		q[i] ^= u[i];
	mix_columns(q);
}

static inline void add_round_key(u64 q[8], const u64 k[8])
{
#pragma GCC unroll 16
	for (int i = 0; i < 8; i++)
		q[i] ^= k[i];
}

/* Round keys in plane form, each repeated for the four blocks. */
struct bs_keys {
	u64 k[NR + 1][8];
};

static void bs_schedule(struct bs_keys *ks, const u8 rk[NR + 1][16])
{
	u8 tmp[64];
	for (int r = 0; r <= NR; r++) {
		for (int b = 0; b < 4; b++)
			__builtin_memcpy(tmp + 16 * b, rk[r], 16);
		bs_load(ks->k[r], tmp);
	}
	xts_burn(tmp, sizeof(tmp));
}

static void bs_encrypt(const struct bs_keys *ks, u64 q[8])
{
	add_round_key(q, ks->k[0]);
	for (int r = 1; r < NR; r++) {
		sub_bytes(q);
		shift_rows(q);
		mix_columns(q);
		add_round_key(q, ks->k[r]);
	}
	sub_bytes(q);
	shift_rows(q);
	add_round_key(q, ks->k[NR]);
}

/* The equivalent inverse cipher (what AESDEC computes), with the AESDEC-order schedule. */
static void bs_decrypt(const struct bs_keys *ks, u64 q[8])
{
	add_round_key(q, ks->k[0]);
	for (int r = 1; r < NR; r++) {
		inv_sub_bytes(q);
		inv_shift_rows(q);
		inv_mix_columns(q);
		add_round_key(q, ks->k[r]);
	}
	inv_sub_bytes(q);
	inv_shift_rows(q);
	add_round_key(q, ks->k[NR]);
}

void aes_ct_sub_bytes(u8 buf[64], int inverse)
{
	u64 q[8];
	bs_load(q, buf);
	if (inverse)
		inv_sub_bytes(q);
	else
		sub_bytes(q);
	bs_store(buf, q);
	xts_burn(q, sizeof(q));
}

static u32 sub_word(u32 w)
{
	u8 buf[64] = { 0 };
	st32(buf, w);
	aes_ct_sub_bytes(buf, 0);
	w = ld32(buf);
	xts_burn(buf, sizeof(buf));
	return w;
}

/* FIPS-197 5.2 key expansion, Nk = 8. Words are little-endian: byte 0 is the low byte. */
void aes256_ct_expand(const u8 key[32], u8 rk[NR + 1][16])
{
	u32 w[4 * (NR + 1)];
	u32 rcon = 1;
	for (int i = 0; i < 8; i++)
		w[i] = ld32(key + 4 * i);
	for (int i = 8; i < 4 * (NR + 1); i++) {
		u32 t = w[i - 1];
		if (i % 8 == 0) {
			t = sub_word((t >> 8) | (t << 24)) ^ rcon;
			rcon <<= 1;
		} else if (i % 8 == 4) {
			t = sub_word(t);
		}
		w[i] = w[i - 8] ^ t;
	}
	for (int i = 0; i < 4 * (NR + 1); i++)
		st32(&rk[i / 4][4 * (i % 4)], w[i]);
	xts_burn(w, sizeof(w));
}

/* dk[0] = ek[14], dk[i] = InvMixColumns(ek[14 - i]) for i = 1..13, dk[14] = ek[0]. */
void aes256_ct_dec_schedule(const u8 ek[NR + 1][16], u8 dk[NR + 1][16])
{
	u8 tmp[64];
	u64 q[8];
	for (int i = 1; i < NR; i += 4) {
		int n = NR - i < 4 ? NR - i : 4;
		for (int j = 0; j < 64; j++)
			tmp[j] = 0;
		for (int j = 0; j < n; j++)
			__builtin_memcpy(tmp + 16 * j, ek[NR - i - j], 16);
		bs_load(q, tmp);
		inv_mix_columns(q);
		bs_store(tmp, q);
		for (int j = 0; j < n; j++)
			__builtin_memcpy(dk[i + j], tmp + 16 * j, 16);
	}
	__builtin_memcpy(dk[0], ek[NR], 16);
	__builtin_memcpy(dk[NR], ek[0], 16);
	xts_burn(tmp, sizeof(tmp));
	xts_burn(q, sizeof(q));
}

static void ct_blocks(const u8 rk[NR + 1][16], u8 *blocks, size_t n, int decrypt)
{
	struct bs_keys ks;
	u8 tmp[64] = { 0 };
	u64 q[8];
	if (n > 4)
		n = 4;
	bs_schedule(&ks, rk);
	__builtin_memcpy(tmp, blocks, 16 * n);
	bs_load(q, tmp);
	if (decrypt)
		bs_decrypt(&ks, q);
	else
		bs_encrypt(&ks, q);
	bs_store(tmp, q);
	__builtin_memcpy(blocks, tmp, 16 * n);
	xts_burn(&ks, sizeof(ks));
	xts_burn(tmp, sizeof(tmp));
	xts_burn(q, sizeof(q));
}

void aes256_ct_encrypt(const u8 rk[NR + 1][16], u8 *blocks, size_t n)
{
	ct_blocks(rk, blocks, n, 0);
}

void aes256_ct_decrypt(const u8 dk[NR + 1][16], u8 *blocks, size_t n)
{
	ct_blocks(dk, blocks, n, 1);
}

/* T <- T * alpha in GF(2^128), T little-endian as IEEE 1619 5.2 specifies; no branch. */
static inline void mul_alpha(u64 *lo, u64 *hi)
{
	u64 carry = *hi >> 63;
	*hi = (*hi << 1) | (*lo >> 63);
	*lo = (*lo << 1) ^ (0x87 & (0 - carry));
}

void xts_soft_crypt(const struct xts_key *k, u64 sector, u8 *buf, size_t nsect, int decrypt)
{
	struct bs_keys dks, tks;
	u8 tw[64], blk[64];
	u64 q[8], t[8];
	bs_schedule(&dks, decrypt ? k->dec : k->enc);
	bs_schedule(&tks, k->twk);
	while (nsect) {
		size_t n = nsect < 4 ? nsect : 4;
		/* The tweaks of up to four sectors, encrypted together. */
		for (size_t j = 0; j < 4; j++) {
			st64(tw + 16 * j, j < n ? sector + j : 0);
			st64(tw + 16 * j + 8, 0);
		}
		bs_load(q, tw);
		bs_encrypt(&tks, q);
		bs_store(tw, q);
		for (size_t j = 0; j < n; j++, buf += XTS_SECTOR_SIZE) {
			u64 lo = ld64(tw + 16 * j), hi = ld64(tw + 16 * j + 8);
			for (int off = 0; off < XTS_SECTOR_SIZE; off += 64) {
				for (int b = 0; b < 4; b++) {
					t[2 * b] = lo;
					t[2 * b + 1] = hi;
					st64(blk + 16 * b, ld64(buf + off + 16 * b) ^ lo);
					st64(blk + 16 * b + 8, ld64(buf + off + 16 * b + 8) ^ hi);
					mul_alpha(&lo, &hi);
				}
				bs_load(q, blk);
				if (decrypt)
					bs_decrypt(&dks, q);
				else
					bs_encrypt(&dks, q);
				bs_store(blk, q);
				for (int b = 0; b < 4; b++) {
					st64(buf + off + 16 * b, ld64(blk + 16 * b) ^ t[2 * b]);
					st64(buf + off + 16 * b + 8, ld64(blk + 16 * b + 8) ^ t[2 * b + 1]);
				}
			}
		}
		sector += n;
		nsect -= n;
	}
	xts_burn(&dks, sizeof(dks));
	xts_burn(&tks, sizeof(tks));
	xts_burn(tw, sizeof(tw));
	xts_burn(blk, sizeof(blk));
	xts_burn(q, sizeof(q));
	xts_burn(t, sizeof(t));
}
