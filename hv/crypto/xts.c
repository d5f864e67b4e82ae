/*
 * XTS entry points: key setup, the choice of implementation, and the SIMD-state discipline.
 *
 * The guest's x87/SSE/AVX registers are live while the hypervisor runs (VMRUN and #VMEXIT do
 * not switch them), and so is the guest's XCR0. This file is compiled without SIMD (the
 * hypervisor's -mgeneral-regs-only, and the pragma below for host builds), so nothing here
 * touches a vector register except the save and restore below, around the call into a SIMD
 * file (crypto/xts_aesni.c, xts_vaes2.c, xts_vaes512.c: the only files compiled with SIMD):
 *
 *   1. VAES only: if the guest's XCR0 lacks the AVX (or AVX-512) components, XSETBV adds
 *      them (hypervisor only; a Linux process cannot, so there they must be enabled already).
 *   2. Save. XTS_SAVE_REGS (default): store, at full width, every register the SIMD file can
 *      write: xmm0-15 (AES-NI, legacy SSE encoding, leaves upper halves alone), ymm0-15 or,
 *      if AVX-512 is enabled, zmm0-15 (VAES-AVX2: VEX writes zero bits 511:256), zmm0-31 and
 *      k0-k7 (VAES-AVX512). The SIMD files hold integer code only, so MXCSR and x87 are never
 *      touched. XTS_SAVE_XSAVE: FXSAVE64 (AES-NI) or XSAVE64 of those state components.
 *   3. Call. 4. Restore the same registers bit for bit. 5. XCR0 back to the guest's value.
 * The software fallback (crypto/aes_ct.c) uses general-purpose registers only: no saving.
 */
#pragma GCC target("general-regs-only")
#include "crypto/xts_impl.h"
#include "core/x86.h"

/* XCR0 / XSAVE state components (Intel SDM vol. 1, 13.1). */
#define XFEAT_SSE (1ull << 1)
#define XFEAT_YMM (1ull << 2)
#define XFEAT_OPMASK (1ull << 5)
#define XFEAT_ZMM_HI256 (1ull << 6)
#define XFEAT_HI16_ZMM (1ull << 7)
#define XFEAT_AVX512 (XFEAT_OPMASK | XFEAT_ZMM_HI256 | XFEAT_HI16_ZMM)

/* Legacy area (512) + XSAVE header (64) + AVX (256) + opmask, ZMM_Hi256, Hi16_ZMM in the
 * standard layout: 2688 bytes on every CPU so far. Checked against CPUID leaf 0xD. */
#define XSAVE_AREA_MAX 2688
#define XSAVE_HDR 512

#define CPUID1_ECX_XSAVE (1u << 26)
#define CPUID1_ECX_OSXSAVE (1u << 27)
#define CPUID1_ECX_AVX (1u << 28)
#define CPUID1_ECX_AES (1u << 25)
#define CPUID1_EDX_FXSR (1u << 24)
#define CPUID1_EDX_SSE2 (1u << 26)
#define CPUID7_EBX_AVX2 (1u << 5)
#define CPUID7_EBX_AVX512F (1u << 16)
#define CPUID7_EBX_AVX512BW (1u << 30)
#define CPUID7_ECX_VAES (1u << 9)

#define XTS_CR0_EM (1ull << 2)
#define XTS_CR0_TS (1ull << 3)
#define XTS_CR4_OSFXSR (1ull << 9)

static enum xts_impl active; /* XTS_AUTO until chosen */
static enum xts_simd_save save_mode = XTS_SAVE_REGS;

bool xts_simd_save(enum xts_simd_save mode)
{
#ifndef HOST_TEST
	if (mode == XTS_SAVE_NONE)
		return false;
#endif
	if (mode > XTS_SAVE_NONE)
		return false;
	save_mode = mode;
	return true;
}

static inline void fxsave64(void *area)
{
	__asm__ volatile("fxsave64 (%0)" : : "r"(area) : "memory");
}

static inline void fxrstor64(const void *area)
{
	__asm__ volatile("fxrstor64 (%0)" : : "r"(area) : "memory");
}

static inline void xsave64(void *area, u64 mask)
{
	__asm__ volatile("xsave64 (%0)" : : "r"(area), "a"((u32)mask), "d"((u32)(mask >> 32)) : "memory");
}

static inline void xrstor64(const void *area, u64 mask)
{
	__asm__ volatile("xrstor64 (%0)" : : "r"(area), "a"((u32)mask), "d"((u32)(mask >> 32)) : "memory");
}

static inline u64 xgetbv0(void)
{
	u32 lo, hi;
	__asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
	return ((u64)hi << 32) | lo;
}

/* Privileged: only the hypervisor build calls it. */
static inline void xsetbv0(u64 v)
{
	__asm__ volatile("xsetbv" : : "c"(0), "a"((u32)v), "d"((u32)(v >> 32)) : "memory");
}

/* The XCR0 components whose instructions an implementation executes (and whose registers it writes). */
static u64 impl_xfeatures(enum xts_impl impl)
{
	if (impl == XTS_VAES_AVX2)
		return XFEAT_SSE | XFEAT_YMM;
	if (impl == XTS_VAES_AVX512)
		return XFEAT_SSE | XFEAT_YMM | XFEAT_AVX512;
	return 0;
}

/* SSE instructions and FXSAVE of the xmm registers work: always so in Linux; in the hypervisor
 * it depends on boot/entry.S (CR0.EM/TS clear, CR4.OSFXSR set, EFER.FFXSR clear). */
static bool sse_usable(void)
{
#ifdef HOST_TEST
	return true;
#else
	return !(read_cr0() & (XTS_CR0_EM | XTS_CR0_TS)) && (read_cr4() & XTS_CR4_OSFXSR) &&
	       !(rdmsr(MSR_EFER) & EFER_FFXSR);
#endif
}

/* The components `need` can be enabled in XCR0 and saved in XSAVE_AREA_MAX bytes. A Linux
 * process cannot change XCR0, so there the OS must have enabled them already. */
static bool xsave_usable(u64 need, u32 max_leaf, u32 ecx1)
{
	u32 a, b, c, d;
	if (!(ecx1 & CPUID1_ECX_XSAVE) || !(ecx1 & CPUID1_ECX_OSXSAVE) || max_leaf < 0xD)
		return false;
#ifdef HOST_TEST
	if ((xgetbv0() & need) != need)
		return false;
#endif
	cpuid(0xD, 0, &a, &b, &c, &d);
	u64 supported = ((u64)d << 32) | a;
	if ((supported & need) != need)
		return false;
	/* Everything we may save: `need`, plus ZMM_Hi256 for the ymm path if the CPU has it. */
	u64 save = need | (supported & XFEAT_ZMM_HI256);
	for (u32 i = 2; i < 64; i++) {
		if (!(save & (1ull << i)))
			continue;
		cpuid(0xD, i, &a, &b, &c, &d); /* a: size, b: offset in the standard layout */
		if ((u64)a + b > XSAVE_AREA_MAX)
			return false;
	}
	return true;
}

bool xts_impl_available(enum xts_impl impl)
{
	u32 a, b, c, d, max_leaf, ecx1, edx1, ebx7 = 0, ecx7 = 0;
	if (impl == XTS_SOFT)
		return true;
	if (impl <= XTS_AUTO || impl >= XTS_NIMPL)
		return false;
	cpuid(0, 0, &max_leaf, &b, &c, &d);
	cpuid(1, 0, &a, &b, &ecx1, &edx1);
	if (max_leaf >= 7)
		cpuid(7, 0, &a, &ebx7, &ecx7, &d);
	bool aesni = (ecx1 & CPUID1_ECX_AES) && (edx1 & CPUID1_EDX_FXSR) && (edx1 & CPUID1_EDX_SSE2) && sse_usable();
	bool vaes = aesni && (ecx1 & CPUID1_ECX_AVX) && (ebx7 & CPUID7_EBX_AVX2) && (ecx7 & CPUID7_ECX_VAES);
	switch (impl) {
	case XTS_AESNI:
		return aesni;
	case XTS_VAES_AVX2:
		return vaes && xsave_usable(impl_xfeatures(impl), max_leaf, ecx1);
	case XTS_VAES_AVX512:
		return vaes && (ebx7 & CPUID7_EBX_AVX512F) && (ebx7 & CPUID7_EBX_AVX512BW) &&
		       xsave_usable(impl_xfeatures(impl), max_leaf, ecx1);
	default:
		return false;
	}
}

/* The one place that decides: fastest first, by the figures in docs/crypto.md. */
static enum xts_impl best(void)
{
	static const enum xts_impl order[] = { XTS_VAES_AVX512, XTS_VAES_AVX2, XTS_AESNI };
	for (size_t i = 0; i < ARRAY_SIZE(order); i++)
		if (xts_impl_available(order[i]))
			return order[i];
	return XTS_SOFT;
}

bool xts_use(enum xts_impl impl)
{
	if (impl == XTS_AUTO) {
		active = best();
		return true;
	}
	if (!xts_impl_available(impl))
		return false;
	active = impl;
	return true;
}

enum xts_impl xts_current(void)
{
	if (active == XTS_AUTO)
		active = best();
	return active;
}

const char *xts_impl_name(enum xts_impl impl)
{
	static const char *const names[XTS_NIMPL] = {
		[XTS_AUTO] = "auto",
		[XTS_SOFT] = "soft",
		[XTS_AESNI] = "aesni",
		[XTS_VAES_AVX2] = "vaes-avx2",
		[XTS_VAES_AVX512] = "vaes-avx512",
	};
	return impl < XTS_NIMPL ? names[impl] : "?";
}

void xts_setkey(struct xts_key *k, const u8 key[XTS_KEY_SIZE])
{
	aes256_ct_expand(key, k->enc);
	aes256_ct_dec_schedule(k->enc, k->dec);
	aes256_ct_expand(key + 32, k->twk);
}

void xts_wipe(struct xts_key *k)
{
	xts_burn(k, sizeof(*k));
}

static inline u8 *align_up(u8 *p, u64 a)
{
	return (u8 *)(uintptr_t)ALIGN_UP((uintptr_t)p, a);
}

/* Explicit register saves: one line per register, at a fixed offset in a 64-byte aligned area. */
#define R16(M) M(0) M(1) M(2) M(3) M(4) M(5) M(6) M(7) M(8) M(9) M(10) M(11) M(12) M(13) M(14) M(15)
#define R32(M) R16(M) M(16) M(17) M(18) M(19) M(20) M(21) M(22) M(23) M(24) M(25) M(26) M(27) M(28) M(29) M(30) M(31)
#define K8(M) M(0) M(1) M(2) M(3) M(4) M(5) M(6) M(7)
#define ST_X(n) "movdqa %%xmm" #n ", " #n "*16(%0)\n\t"
#define LD_X(n) "movdqa " #n "*16(%0), %%xmm" #n "\n\t"
#define ST_Y(n) "vmovdqa %%ymm" #n ", " #n "*32(%0)\n\t"
#define LD_Y(n) "vmovdqa " #n "*32(%0), %%ymm" #n "\n\t"
#define ST_Z(n) "vmovdqa64 %%zmm" #n ", " #n "*64(%0)\n\t"
#define LD_Z(n) "vmovdqa64 " #n "*64(%0), %%zmm" #n "\n\t"
#define ST_K(n) "kmovq %%k" #n ", 2048+8*" #n "(%0)\n\t"
#define LD_K(n) "kmovq 2048+8*" #n "(%0), %%k" #n "\n\t"
#define SAVE_AREA (32 * 64 + 8 * 8) /* zmm0-31, k0-7; also >= the FXSAVE area (512) */

enum saved { SAVED_NOTHING, SAVED_FX, SAVED_XS, SAVED_XMM16, SAVED_YMM16, SAVED_ZMM16, SAVED_ZMM32_K };

/* Step 2 above. xcr0: the XCR0 in force for the call. *mask: the XSAVE components. */
static enum saved simd_save(u8 *area, enum xts_impl impl, u64 guest_xcr0, u64 xcr0, u64 *mask)
{
	if (save_mode == XTS_SAVE_NONE)
		return SAVED_NOTHING;
	if (save_mode == XTS_SAVE_XSAVE) {
		if (impl == XTS_AESNI) {
			fxsave64(area);
			return SAVED_FX;
		}
		/* VEX writes to ymm0-15 zero bits 511:256 of zmm0-15: save those too if enabled. */
		*mask = impl_xfeatures(impl) | (guest_xcr0 & XFEAT_ZMM_HI256);
		/* XSAVE writes only XSTATE_BV of the header; XRSTOR faults on a dirty rest. */
		for (int i = 0; i < 64; i += 8)
			*(volatile u64 *)(area + XSAVE_HDR + i) = 0;
		xsave64(area, *mask);
		return SAVED_XS;
	}
	if (impl == XTS_AESNI) {
		__asm__ volatile(R16(ST_X) : : "r"(area) : "memory");
		return SAVED_XMM16;
	}
	if (impl == XTS_VAES_AVX2 && (xcr0 & XFEAT_AVX512) != XFEAT_AVX512) {
		__asm__ volatile(R16(ST_Y) : : "r"(area) : "memory");
		return SAVED_YMM16;
	}
	if (impl == XTS_VAES_AVX2) {
		__asm__ volatile(R16(ST_Z) : : "r"(area) : "memory");
		return SAVED_ZMM16;
	}
	__asm__ volatile(R32(ST_Z) K8(ST_K) : : "r"(area) : "memory");
	return SAVED_ZMM32_K;
}

/* Step 4: the registers come back exactly as saved. */
static void simd_restore(const u8 *area, enum saved what, u64 mask)
{
	switch (what) {
	case SAVED_FX:
		fxrstor64(area);
		break;
	case SAVED_XS:
		xrstor64(area, mask);
		break;
	case SAVED_XMM16:
		__asm__ volatile(R16(LD_X) : : "r"(area) : "memory");
		break;
	case SAVED_YMM16:
		__asm__ volatile(R16(LD_Y) : : "r"(area) : "memory");
		break;
	case SAVED_ZMM16:
		__asm__ volatile(R16(LD_Z) : : "r"(area) : "memory");
		break;
	case SAVED_ZMM32_K:
		__asm__ volatile(R32(LD_Z) K8(LD_K) : : "r"(area) : "memory");
		break;
	case SAVED_NOTHING:
		break;
	}
}

/* Steps 1-5 around a SIMD implementation. Not instrumented by AddressSanitizer in host
 * builds: its stack poisoning may call library code that uses SIMD registers before they are
 * saved (the host unit test checks this path). */
__attribute__((no_sanitize_address, noinline)) static void simd_crypt(enum xts_impl impl, const struct xts_key *k,
    u64 sector, u8 *buf, size_t nsect, int decrypt)
{
	u8 raw[(SAVE_AREA > XSAVE_AREA_MAX ? SAVE_AREA : XSAVE_AREA_MAX) + 64];
	u8 *area = align_up(raw, 64);
	u64 need = impl_xfeatures(impl), guest_xcr0 = 0, mask = 0;
	bool switched = false;
	if (need && save_mode != XTS_SAVE_NONE) {
		guest_xcr0 = xgetbv0();
#ifndef HOST_TEST
		if ((guest_xcr0 | need) != guest_xcr0) { /* step 1 */
			xsetbv0(guest_xcr0 | need);
			switched = true;
		}
#endif
	}
	enum saved what = simd_save(area, impl, guest_xcr0, guest_xcr0 | need, &mask);
	if (impl == XTS_AESNI)
		xts_aesni_crypt(k, sector, buf, nsect, decrypt);
	else if (impl == XTS_VAES_AVX2)
		xts_vaes2_crypt(k, sector, buf, nsect, decrypt);
	else
		xts_vaes512_crypt(k, sector, buf, nsect, decrypt);
	simd_restore(area, what, mask);
	if (switched)
		xsetbv0(guest_xcr0); /* step 5 */
}

__attribute__((no_sanitize_address)) static void xts_crypt(const struct xts_key *k, u64 sector, u8 *buf, size_t nsect,
    int decrypt)
{
	enum xts_impl impl = xts_current();
	if (!nsect)
		return;
	if (impl == XTS_SOFT)
		xts_soft_crypt(k, sector, buf, nsect, decrypt);
	else
		simd_crypt(impl, k, sector, buf, nsect, decrypt);
}

void xts_encrypt(const struct xts_key *k, u64 sector, u8 *buf, size_t nsect)
{
	xts_crypt(k, sector, buf, nsect, 0);
}

void xts_decrypt(const struct xts_key *k, u64 sector, u8 *buf, size_t nsect)
{
	xts_crypt(k, sector, buf, nsect, 1);
}
