/* crypto/: AES-256 (FIPS-197), XTS-AES-256 (IEEE 1619-2007 vectors 10-14), every implementation
 * against every other, and the SIMD state the entry points must leave as they found it. */
#include "test.h"
#include "crypto/xts.h"
#include "crypto/xts_impl.h"
#include <string.h>

static void from_hex(u8 *out, const char *hex, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned v;
		sscanf(hex + 2 * i, "%2x", &v);
		out[i] = (u8)v;
	}
}

/* splitmix64: deterministic test data. */
static u64 rng_state = 0x243F6A8885A308D3ull;
static u64 rnd(void)
{
	u64 z = (rng_state += 0x9E3779B97F4A7C15ull);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

static void rnd_bytes(u8 *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (u8)rnd();
}

/* The implementations this CPU (and OS) can run; XTS_SOFT always. */
static int available(enum xts_impl out[XTS_NIMPL])
{
	int n = 0;
	for (int i = XTS_SOFT; i < XTS_NIMPL; i++)
		if (xts_impl_available((enum xts_impl)i))
			out[n++] = (enum xts_impl)i;
	return n;
}

/* ---- AES-256 ---------------------------------------------------------------------------- */

/* Reference S-box computed the slow, obvious way (test only: table and branches are fine). */
static u8 gmul(u8 a, u8 b)
{
	u8 p = 0;
	for (int i = 0; i < 8; i++) {
		if (b & 1)
			p ^= a;
		a = (u8)((a << 1) ^ ((a & 0x80) ? 0x1B : 0));
		b >>= 1;
	}
	return p;
}

static u8 ref_sbox(u8 x)
{
	u8 inv = 0;
	for (int c = 1; c < 256 && x; c++)
		if (gmul(x, (u8)c) == 1)
			inv = (u8)c;
	u8 s = 0x63;
	for (int i = 0; i < 8; i++) {
		int bit = ((inv >> i) ^ (inv >> ((i + 4) & 7)) ^ (inv >> ((i + 5) & 7)) ^ (inv >> ((i + 6) & 7)) ^
			      (inv >> ((i + 7) & 7))) &
			  1;
		s ^= (u8)(bit << i);
	}
	return s;
}

static void sbox_all_256(void)
{
	u8 buf[256], fwd[256];
	for (int i = 0; i < 256; i++)
		buf[i] = (u8)i;
	for (int i = 0; i < 256; i += 64)
		aes_ct_sub_bytes(buf + i, 0);
	memcpy(fwd, buf, sizeof(fwd));
	int bad = 0;
	for (int i = 0; i < 256; i++)
		bad += fwd[i] != ref_sbox((u8)i);
	CHECK_EQ(bad, 0);
	CHECK_EQ(fwd[0x00], 0x63);
	CHECK_EQ(fwd[0x01], 0x7C);
	CHECK_EQ(fwd[0x53], 0xED); /* FIPS-197 4.2.1 / 5.1.1 example */
	for (int i = 0; i < 256; i += 64)
		aes_ct_sub_bytes(buf + i, 1);
	bad = 0;
	for (int i = 0; i < 256; i++)
		bad += buf[i] != i;
	CHECK_EQ(bad, 0);
}

/* FIPS-197 Appendix A.3: the AES-256 key expansion. */
static void fips197_key_expansion(void)
{
	u8 key[32], rk[15][16], want[16];
	from_hex(key, "603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4", 32);
	aes256_ct_expand(key, rk);
	CHECK(memcmp(rk[0], key, 16) == 0);
	CHECK(memcmp(rk[1], key + 16, 16) == 0);
	from_hex(want, "9ba354118e6925afa51a8b5f2067fcde", 16); /* w[8..11] */
	CHECK(memcmp(rk[2], want, 16) == 0);
	from_hex(want, "fe4890d1e6188d0b046df344706c631e", 16); /* w[56..59] */
	CHECK(memcmp(rk[14], want, 16) == 0);
}

/* FIPS-197 Appendix C.3: AES-256 known answer, through the software cipher and through every
 * implementation's single-block path (XTS of a sector whose tweak we cancel out). */
static void fips197_aes256(void)
{
	u8 key[32], pt[16], ct[16], blk[64], ek[15][16], dk[15][16];
	from_hex(key, "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f", 32);
	from_hex(pt, "00112233445566778899aabbccddeeff", 16);
	from_hex(ct, "8ea2b7ca516745bfeafc49904b496089", 16);
	aes256_ct_expand(key, ek);
	aes256_ct_dec_schedule(ek, dk);
	/* Four blocks at once: the same block in every slot and different ones. */
	for (int i = 0; i < 4; i++)
		memcpy(blk + 16 * i, pt, 16);
	aes256_ct_encrypt(ek, blk, 4);
	for (int i = 0; i < 4; i++)
		CHECK(memcmp(blk + 16 * i, ct, 16) == 0);
	aes256_ct_decrypt(dk, blk, 4);
	for (int i = 0; i < 4; i++)
		CHECK(memcmp(blk + 16 * i, pt, 16) == 0);
	memcpy(blk, ct, 16);
	aes256_ct_decrypt(dk, blk, 1);
	CHECK(memcmp(blk, pt, 16) == 0);

	/* XTS with data key = tweak key = K: block 0 of sector s is E(P ^ T) ^ T with T = E(s).
	 * Choose P = pt ^ T, so the output is E(pt) ^ T: the FIPS answer once T is removed. */
	u8 key64[64], t[16], sec[512];
	memcpy(key64, key, 32);
	memcpy(key64 + 32, key, 32);
	struct xts_key xk;
	xts_setkey(&xk, key64);
	CHECK(memcmp(xk.enc, ek, sizeof(ek)) == 0);
	CHECK(memcmp(xk.twk, ek, sizeof(ek)) == 0);
	CHECK(memcmp(xk.dec, dk, sizeof(dk)) == 0);
	const u64 s = 0x1122334455667788ull;
	memset(t, 0, 16);
	memcpy(t, &s, 8);
	aes256_ct_encrypt(ek, t, 1);
	enum xts_impl impls[XTS_NIMPL];
	int n = available(impls);
	for (int i = 0; i < n; i++) {
		CHECK(xts_use(impls[i]));
		memset(sec, 0, sizeof(sec));
		for (int j = 0; j < 16; j++)
			sec[j] = pt[j] ^ t[j];
		xts_encrypt(&xk, s, sec, 1);
		for (int j = 0; j < 16; j++)
			sec[j] ^= t[j];
		CHECK(memcmp(sec, ct, 16) == 0);
	}
	xts_use(XTS_AUTO);
	xts_wipe(&xk);
}

/* ---- XTS-AES-256: IEEE 1619-2007 Annex B, vectors 10-14 -------------------------------- */

static const char ieee_key[] = "2718281828459045235360287471352662497757247093699959574966967627"
			       "3141592653589793238462643383279502884197169399375105820974944592";

static const struct {
	int number;
	u64 dusn; /* data unit sequence number: the sector */
	const char *ct;
} ieee[] = {
	{ 10, 0xffull,
	    "1c3b3a102f770386e4836c99e370cf9bea00803f5e482357a4ae12d414a3e63b"
	    "5d31e276f8fe4a8d66b317f9ac683f44680a86ac35adfc3345befecb4bb188fd"
	    "5776926c49a3095eb108fd1098baec70aaa66999a72a82f27d848b21d4a741b0"
	    "c5cd4d5fff9dac89aeba122961d03a757123e9870f8acf1000020887891429ca"
	    "2a3e7a7d7df7b10355165c8b9a6d0a7de8b062c4500dc4cd120c0f7418dae3d0"
	    "b5781c34803fa75421c790dfe1de1834f280d7667b327f6c8cd7557e12ac3a0f"
	    "93ec05c52e0493ef31a12d3d9260f79a289d6a379bc70c50841473d1a8cc81ec"
	    "583e9645e07b8d9670655ba5bbcfecc6dc3966380ad8fecb17b6ba02469a020a"
	    "84e18e8f84252070c13e9f1f289be54fbc481457778f616015e1327a02b140f1"
	    "505eb309326d68378f8374595c849d84f4c333ec4423885143cb47bd71c5edae"
	    "9be69a2ffeceb1bec9de244fbe15992b11b77c040f12bd8f6a975a44a0f90c29"
	    "a9abc3d4d893927284c58754cce294529f8614dcd2aba991925fedc4ae74ffac"
	    "6e333b93eb4aff0479da9a410e4450e0dd7ae4c6e2910900575da401fc07059f"
	    "645e8b7e9bfdef33943054ff84011493c27b3429eaedb4ed5376441a77ed4385"
	    "1ad77f16f541dfd269d50d6a5f14fb0aab1cbb4c1550be97f7ab4066193c4caa"
	    "773dad38014bd2092fa755c824bb5e54c4f36ffda9fcea70b9c6e693e148c151" },
	{ 11, 0xffffull,
	    "77a31251618a15e6b92d1d66dffe7b50b50bad552305ba0217a610688eff7e11"
	    "e1d0225438e093242d6db274fde801d4cae06f2092c728b2478559df58e837c2"
	    "469ee4a4fa794e4bbc7f39bc026e3cb72c33b0888f25b4acf56a2a9804f1ce6d"
	    "3d6e1dc6ca181d4b546179d55544aa7760c40d06741539c7e3cd9d2f6650b201"
	    "3fd0eeb8c2b8e3d8d240ccae2d4c98320a7442e1c8d75a42d6e6cfa4c2eca179"
	    "8d158c7aecdf82490f24bb9b38e108bcda12c3faf9a21141c3613b58367f922a"
	    "aa26cd22f23d708dae699ad7cb40a8ad0b6e2784973dcb605684c08b8d6998c6"
	    "9aac049921871ebb65301a4619ca80ecb485a31d744223ce8ddc2394828d6a80"
	    "470c092f5ba413c3378fa6054255c6f9df4495862bbb3287681f931b687c888a"
	    "bf844dfc8fc28331e579928cd12bd2390ae123cf03818d14dedde5c0c24c8ab0"
	    "18bfca75ca096f2d531f3d1619e785f1ada437cab92e980558b3dce1474afb75"
	    "bfedbf8ff54cb2618e0244c9ac0d3c66fb51598cd2db11f9be39791abe447c63"
	    "094f7c453b7ff87cb5bb36b7c79efb0872d17058b83b15ab0866ad8a58656c5a"
	    "7e20dbdf308b2461d97c0ec0024a2715055249cf3b478ddd4740de654f75ca68"
	    "6e0d7345c69ed50cdc2a8b332b1f8824108ac937eb050585608ee734097fc090"
	    "54fbff89eeaeea791f4a7ab1f9868294a4f9e27b42af8100cb9d59cef9645803" },
	{ 12, 0xffffffull,
	    "e387aaa58ba483afa7e8eb469778317ecf4cf573aa9d4eac23f2cdf914e4e200"
	    "a8b490e42ee646802dc6ee2b471b278195d60918ececb44bf79966f83faba049"
	    "9298ebc699c0c8634715a320bb4f075d622e74c8c932004f25b41e361025b5a8"
	    "7815391f6108fc4afa6a05d9303c6ba68a128a55705d415985832fdeaae6c8e1"
	    "9110e84d1b1f199a2692119edc96132658f09da7c623efcec712537a3d94c0bf"
	    "5d7e352ec94ae5797fdb377dc1551150721adf15bd26a8efc2fcaad56881fa9e"
	    "62462c28f30ae1ceaca93c345cf243b73f542e2074a705bd2643bb9f7cc79bb6"
	    "e7091ea6e232df0f9ad0d6cf502327876d82207abf2115cdacf6d5a48f6c1879"
	    "a65b115f0f8b3cb3c59d15dd8c769bc014795a1837f3901b5845eb491adfefe0"
	    "97b1fa30a12fc1f65ba22905031539971a10f2f36c321bb51331cdefb39e3964"
	    "c7ef079994f5b69b2edd83a71ef549971ee93f44eac3938fcdd61d01fa71799d"
	    "a3a8091c4c48aa9ed263ff0749df95d44fef6a0bb578ec69456aa5408ae32c7a"
	    "f08ad7ba8921287e3bbee31b767be06a0e705c864a769137df28292283ea81a2"
	    "480241b44d9921cdbec1bc28dc1fda114bd8e5217ac9d8ebafa720e9da4f9ace"
	    "231cc949e5b96fe76ffc21063fddc83a6b8679c00d35e09576a875305bed5f36"
	    "ed242c8900dd1fa965bc950dfce09b132263a1eef52dd6888c309f5a7d712826" },
	{ 13, 0xffffffffull,
	    "bf53d2dade78e822a4d949a9bc6766b01b06a8ef70d26748c6a7fc36d80ae4c5"
	    "520f7c4ab0ac8544424fa405162fef5a6b7f229498063618d39f0003cb5fb8d1"
	    "c86b643497da1ff945c8d3bedeca4f479702a7a735f043ddb1d6aaade3c4a0ac"
	    "7ca7f3fa5279bef56f82cd7a2f38672e824814e10700300a055e1630b8f1cb0e"
	    "919f5e942010a416e2bf48cb46993d3cb6a51c19bacf864785a00bc2ecff15d3"
	    "50875b246ed53e68be6f55bd7e05cfc2b2ed6432198a6444b6d8c247fab941f5"
	    "69768b5c429366f1d3f00f0345b96123d56204c01c63b22ce78baf116e525ed9"
	    "0fdea39fa469494d3866c31e05f295ff21fea8d4e6e13d67e47ce722e9698a1c"
	    "1048d68ebcde76b86fcf976eab8aa9790268b7068e017a8b9b749409514f1053"
	    "027fd16c3786ea1bac5f15cb79711ee2abe82f5cf8b13ae73030ef5b9e4457e7"
	    "5d1304f988d62dd6fc4b94ed38ba831da4b7634971b6cd8ec325d9c61c00f1df"
	    "73627ed3745a5e8489f3a95c69639c32cd6e1d537a85f75cc844726e8a72fc00"
	    "77ad22000f1d5078f6b866318c668f1ad03d5a5fced5219f2eabbd0aa5c0f460"
	    "d183f04404a0d6f469558e81fab24a167905ab4c7878502ad3e38fdbe62a4155"
	    "6cec37325759533ce8f25f367c87bb5578d667ae93f9e2fd99bcbc5f2fbba88c"
	    "f6516139420fcff3b7361d86322c4bd84c82f335abb152c4a93411373aaa8220" },
	{ 14, 0xffffffffffull,
	    "64497e5a831e4a932c09be3e5393376daa599548b816031d224bbf50a818ed23"
	    "50eae7e96087c8a0db51ad290bd00c1ac1620857635bf246c176ab463be30b80"
	    "8da548081ac847b158e1264be25bb0910bbc92647108089415d45fab1b3d2604"
	    "e8a8eff1ae4020cfa39936b66827b23f371b92200be90251e6d73c5f86de5fd4"
	    "a950781933d79a28272b782a2ec313efdfcc0628f43d744c2dc2ff3dcb66999b"
	    "50c7ca895b0c64791eeaa5f29499fb1c026f84ce5b5c72ba1083cddb5ce45434"
	    "631665c333b60b11593fb253c5179a2c8db813782a004856a1653011e93fb6d8"
	    "76c18366dd8683f53412c0c180f9c848592d593f8609ca736317d356e13e2bff"
	    "3a9f59cd9aeb19cd482593d8c46128bb32423b37a9adfb482b99453fbe25a41b"
	    "f6feb4aa0bef5ed24bf73c762978025482c13115e4015aac992e5613a3b5c2f6"
	    "85b84795cb6e9b2656d8c88157e52c42f978d8634c43d06fea928f2822e465aa"
	    "6576e9bf419384506cc3ce3c54ac1a6f67dc66f3b30191e698380bc999b05abc"
	    "e19dc0c6dcc2dd001ec535ba18deb2df1a101023108318c75dc98611a09dc48a"
	    "0acdec676fabdf222f07e026f059b672b56e5cbc8e1d21bbd867dd9272120546"
	    "81d70ea737134cdfce93b6f82ae22423274e58a0821cc5502e2d0ab4585e94de"
	    "6975be5e0b4efce51cd3e70c25a1fbbbd609d273ad5b0d59631c531f6a0a57b9" },
};

static void ieee1619_vectors(void)
{
	u8 key[64], pt[512], ct[512], buf[512];
	struct xts_key k;
	enum xts_impl impls[XTS_NIMPL];
	int n = available(impls);
	from_hex(key, ieee_key, 64);
	xts_setkey(&k, key);
	for (int i = 0; i < 512; i++)
		pt[i] = (u8)i;
	for (int i = 0; i < n; i++) {
		CHECK(xts_use(impls[i]));
		CHECK_EQ(xts_current(), impls[i]);
		for (size_t v = 0; v < ARRAY_SIZE(ieee); v++) {
			from_hex(ct, ieee[v].ct, 512);
			memcpy(buf, pt, 512);
			xts_encrypt(&k, ieee[v].dusn, buf, 1);
			if (memcmp(buf, ct, 512) != 0)
				fprintf(stderr, "  %s: IEEE 1619 vector %d encrypt\n", xts_impl_name(impls[i]),
				    ieee[v].number);
			CHECK(memcmp(buf, ct, 512) == 0);
			xts_decrypt(&k, ieee[v].dusn, buf, 1);
			if (memcmp(buf, pt, 512) != 0)
				fprintf(stderr, "  %s: IEEE 1619 vector %d decrypt\n", xts_impl_name(impls[i]),
				    ieee[v].number);
			CHECK(memcmp(buf, pt, 512) == 0);
		}
	}
	xts_use(XTS_AUTO);
	xts_wipe(&k);
}

/* ---- every implementation against the software one ------------------------------------ */

static void implementations_agree(void)
{
	enum xts_impl impls[XTS_NIMPL];
	int n = available(impls);
	static const size_t counts[] = { 1, 2, 3, 4, 5, 7, 8, 9, 16, 17 };
	enum { MAXS = 17 };
	static u8 plain[MAXS * 512 + 1], ref[MAXS * 512 + 1], buf[MAXS * 512 + 1];
	fprintf(stderr, "  xts implementations here:");
	for (int i = 0; i < n; i++)
		fprintf(stderr, " %s", xts_impl_name(impls[i]));
	fprintf(stderr, "\n");
	int mismatches = 0, roundtrip = 0;
	for (int round = 0; round < 24; round++) {
		u8 key[64];
		struct xts_key k;
		rnd_bytes(key, sizeof(key));
		xts_setkey(&k, key);
		size_t ns = counts[round % ARRAY_SIZE(counts)];
		u64 sector;
		switch (round % 4) {
		case 0:
			sector = rnd() & 0xFFFFFFFF;
			break;
		case 1:
			sector = rnd();
			break; /* beyond 2^32 */
		case 2:
			sector = 0xFFFFFFFFull - (rnd() & 3);
			break; /* crosses 2^32 */
		default:
			sector = ~0ull - (rnd() & 7);
			break; /* wraps at 2^64 */
		}
		size_t off = round & 1; /* odd buffer addresses too */
		rnd_bytes(plain, sizeof(plain));
		memcpy(ref, plain, sizeof(ref));
		CHECK(xts_use(XTS_SOFT));
		xts_encrypt(&k, sector, ref + off, ns);
		/* A run of sectors is the sectors one by one. */
		memcpy(buf, plain, sizeof(buf));
		for (size_t s = 0; s < ns; s++)
			xts_encrypt(&k, sector + s, buf + off + 512 * s, 1);
		mismatches += memcmp(buf, ref, sizeof(buf)) != 0;
		for (int i = 0; i < n; i++) {
			CHECK(xts_use(impls[i]));
			memcpy(buf, plain, sizeof(buf));
			xts_encrypt(&k, sector, buf + off, ns);
			if (memcmp(buf, ref, sizeof(buf)) != 0) {
				fprintf(stderr, "  %s: encrypt differs, sector %#llx, %zu sectors\n",
				    xts_impl_name(impls[i]), (unsigned long long)sector, ns);
				mismatches++;
			}
			for (int j = 0; j < n; j++) { /* decrypt with every implementation */
				u8 *tmp = buf;
				memcpy(tmp, ref, sizeof(buf));
				CHECK(xts_use(impls[j]));
				xts_decrypt(&k, sector, tmp + off, ns);
				roundtrip += memcmp(tmp, plain, sizeof(buf)) != 0;
			}
		}
		xts_wipe(&k);
	}
	CHECK_EQ(mismatches, 0);
	CHECK_EQ(roundtrip, 0);
	/* nsect = 0 touches nothing. */
	u8 key[64] = { 1 }, z[512] = { 0 };
	struct xts_key k;
	xts_setkey(&k, key);
	for (int i = 0; i < n; i++) {
		xts_use(impls[i]);
		xts_encrypt(&k, 5, z, 0);
		xts_decrypt(&k, 5, z, 0);
	}
	u8 zeros[512] = { 0 };
	CHECK(memcmp(z, zeros, sizeof(z)) == 0);
	xts_use(XTS_AUTO);
}

static void selection_and_wipe(void)
{
	CHECK(xts_impl_available(XTS_SOFT));
	CHECK(!xts_impl_available(XTS_AUTO));
	CHECK(!xts_impl_available(XTS_NIMPL));
	CHECK(!xts_use(XTS_NIMPL));
	CHECK(xts_use(XTS_AUTO));
	enum xts_impl best = xts_current();
	CHECK(best != XTS_AUTO && xts_impl_available(best));
	/* The auto choice is the last (widest) available one in enum order. */
	for (int i = best + 1; i < XTS_NIMPL; i++)
		CHECK(!xts_impl_available((enum xts_impl)i));
	for (int i = XTS_SOFT; i < XTS_NIMPL; i++)
		if (!xts_impl_available((enum xts_impl)i)) {
			CHECK(!xts_use((enum xts_impl)i));
			CHECK_EQ(xts_current(), best);
		}
	CHECK(strcmp(xts_impl_name(XTS_AESNI), "aesni") == 0);
	CHECK(strcmp(xts_impl_name(XTS_SOFT), "soft") == 0);

	struct xts_key k;
	u8 key[64];
	rnd_bytes(key, sizeof(key));
	xts_setkey(&k, key);
	xts_wipe(&k);
	const u8 *p = (const u8 *)&k;
	size_t nonzero = 0;
	for (size_t i = 0; i < sizeof(k); i++)
		nonzero += p[i] != 0;
	CHECK_EQ(nonzero, 0);
	CHECK_EQ(sizeof(struct xts_key), 720);
	CHECK_EQ(_Alignof(struct xts_key), 16);
}

/* ---- SIMD state preservation ------------------------------------------------------------ */

/* Load a pattern into every vector register (and MXCSR, and the mask registers), call the
 * entry point from assembly, store the registers: they must come back unchanged. */
struct regs {
	u8 v[32][64];
	u64 k[8];
	u32 mxcsr;
	u32 pad[15];
} __aligned(64);

static struct {
	struct xts_key key;
	u8 buf[3 * 512];
} g;

__attribute__((target("general-regs-only"), no_sanitize_address, noinline)) static void call_entry(void)
{
	xts_encrypt(&g.key, 0x123456789ull, g.buf, 3);
	xts_decrypt(&g.key, 0x123456789ull, g.buf, 3);
}

#define CALL_ENTRY "mov %%rsp, %%rbx\n\tand $-64, %%rsp\n\tsub $256, %%rsp\n\tcall *%%r14\n\tmov %%rbx, %%rsp\n\t"
#define CLOBBERS "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10", "r11", "memory", "cc"
#define X16(M) M(0) M(1) M(2) M(3) M(4) M(5) M(6) M(7) M(8) M(9) M(10) M(11) M(12) M(13) M(14) M(15)
#define X32(M) X16(M) M(16) M(17) M(18) M(19) M(20) M(21) M(22) M(23) M(24) M(25) M(26) M(27) M(28) M(29) M(30) M(31)
#define XMM_CLOB(n) "xmm" #n,
/* The body of run_xmm/ymm/zmm: MXCSR and the registers `load` names from *in, the call, the same
 * registers and MXCSR to *out; `clobbers` lists the SIMD registers. */
#define RUN_ENTRY(load, store, clobbers)                                                       \
	register const struct regs *r12 __asm__("r12") = in;                                   \
	register struct regs *r13 __asm__("r13") = out;                                        \
	register void (*r14)(void) __asm__("r14") = call_entry;                                \
	__asm__ volatile("ldmxcsr 2112(%%r12)\n\t" load CALL_ENTRY store "stmxcsr 2112(%%r13)" \
			 :                                                                     \
			 : "r"(r12), "r"(r13), "r"(r14)                                        \
			 : clobbers CLOBBERS)

#define LD_XMM(n) "movdqu " #n "*64(%%r12), %%xmm" #n "\n\t"
#define ST_XMM(n) "movdqu %%xmm" #n ", " #n "*64(%%r13)\n\t"
static void run_xmm(const struct regs *in, struct regs *out)
{
	RUN_ENTRY(X16(LD_XMM), X16(ST_XMM), X16(XMM_CLOB));
}

#define LD_YMM(n) "vmovdqu " #n "*64(%%r12), %%ymm" #n "\n\t"
#define ST_YMM(n) "vmovdqu %%ymm" #n ", " #n "*64(%%r13)\n\t"
__attribute__((target("avx"))) static void run_ymm(const struct regs *in, struct regs *out)
{
	RUN_ENTRY(X16(LD_YMM), X16(ST_YMM), X16(XMM_CLOB));
}

#define LD_ZMM(n) "vmovdqu64 " #n "*64(%%r12), %%zmm" #n "\n\t"
#define ST_ZMM(n) "vmovdqu64 %%zmm" #n ", " #n "*64(%%r13)\n\t"
#define K8(M) M(0) M(1) M(2) M(3) M(4) M(5) M(6) M(7)
#define LD_K(n) "kmovq 2048+8*" #n "(%%r12), %%k" #n "\n\t"
#define ST_K(n) "kmovq %%k" #n ", 2048+8*" #n "(%%r13)\n\t"
#define K_CLOB(n) "k" #n,
__attribute__((target("avx512f,avx512bw"))) static void run_zmm(const struct regs *in, struct regs *out)
{
	RUN_ENTRY(X32(LD_ZMM) K8(LD_K), X32(ST_ZMM) K8(ST_K), X32(XMM_CLOB) K8(K_CLOB));
}

static u64 xcr0(void)
{
	u32 lo, hi;
	__asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
	return ((u64)hi << 32) | lo;
}

static void simd_state_preserved(void)
{
	u32 a, b, c, d;
	__asm__("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(1), "c"(0));
	bool osxsave = c & (1u << 27);
	u64 x = osxsave ? xcr0() : 3;
	int width = (x & 0xE6) == 0xE6 ? 64 : (x & 0x6) == 0x6 ? 32 : 16;
	static struct regs in, out;
	rnd_bytes((u8 *)&in, sizeof(in));
	in.mxcsr = 0x1F80 | 0x6000; /* all exceptions masked, round toward zero */
	u8 key[64];
	rnd_bytes(key, sizeof(key));
	xts_setkey(&g.key, key);
	fprintf(stderr, "  simd state check: %d-byte registers%s\n", width, width == 64 ? " + k0-k7" : "");

	enum xts_impl impls[XTS_NIMPL];
	int n = available(impls);
	for (int i = 0; i < n; i++) {
		/* The software path needs no saving: the hypervisor compiles it -mgeneral-regs-only
		 * (host builds may vectorise it, and call the C library, so it is not checked here). */
		if (impls[i] == XTS_SOFT)
			continue;
		static const enum xts_simd_save modes[] = { XTS_SAVE_REGS, XTS_SAVE_XSAVE, XTS_SAVE_NONE };
		for (size_t m = 0; m < ARRAY_SIZE(modes); m++) {
			CHECK(xts_use(impls[i]));
			CHECK(xts_simd_save(modes[m]));
			memset(&out, 0, sizeof(out));
			rnd_bytes(g.buf, sizeof(g.buf));
			if (width == 64)
				run_zmm(&in, &out);
			else if (width == 32)
				run_ymm(&in, &out);
			else
				run_xmm(&in, &out);
			bool same = out.mxcsr == in.mxcsr;
			for (int r = 0; r < (width == 64 ? 32 : 16); r++)
				same &= memcmp(out.v[r], in.v[r], width) == 0;
			if (width == 64)
				same &= memcmp(out.k, in.k, sizeof(in.k)) == 0;
			if (modes[m] != XTS_SAVE_NONE) {
				if (!same)
					fprintf(stderr, "  %s, save mode %zu: SIMD state changed\n",
					    xts_impl_name(impls[i]), m);
				CHECK(same);
			} else {
				CHECK(!same); /* the check can see a clobber */
			}
		}
	}
	CHECK(xts_simd_save(XTS_SAVE_REGS));
	xts_use(XTS_AUTO);
	xts_wipe(&g.key);
}

TESTS(xts_tests) = {
	{ "xts: constant-time S-box equals the reference, all 256 inputs, and inverts", sbox_all_256 },
	{ "xts: FIPS-197 A.3 AES-256 key expansion", fips197_key_expansion },
	{ "xts: FIPS-197 C.3 AES-256 known answer, every implementation", fips197_aes256 },
	{ "xts: IEEE 1619-2007 XTS-AES-256 vectors 10-14, every implementation", ieee1619_vectors },
	{ "xts: implementations agree on random keys/sectors/runs; decrypt(encrypt(x)) == x", implementations_agree },
	{ "xts: selection, names, wipe, key size", selection_and_wipe },
	{ "xts: entry points leave vector registers, masks and MXCSR as they found them", simd_state_preserved },
	{ NULL, NULL },
};
