/* libFuzzer: the MMIO instruction decoder and the prefix decoder of string I/O, on any bytes in
 * any code mode; what it accepts must be self-consistent. */
#include "vmm/decode.h"
#include "vmm/vcpu.h"
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const u8 *data, size_t size)
{
	if (size < 1)
		return 0;
	enum cpu_mode mode = (enum cpu_mode)(data[0] % 3);
	const u8 *b = data + 1;
	unsigned n = (unsigned)(size - 1 > 32 ? 32 : size - 1);
	u8 copy[32];
	memcpy(copy, b, n); /* exactly n readable bytes: ASan sees any over-read */
	u8 *exact = malloc(n ? n : 1);
	memcpy(exact, copy, n);

	struct prefixes p;
	if (decode_prefixes(exact, n, mode, &p) == DECODE_OK) {
		if (p.len >= n || p.len >= INSN_MAX_LEN)
			abort();
		if (p.opsize != 2 && p.opsize != 4 && p.opsize != 8)
			abort();
		if (p.seg < -1 || p.seg >= SEG_NR)
			abort();
	}
	struct insn in;
	if (decode_insn(exact, n, mode, &in) == DECODE_OK) {
		if (in.len == 0 || in.len > n || in.len > INSN_MAX_LEN || in.mode != mode)
			abort();
		if (in.size != 1 && in.size != 2 && in.size != 4 && in.size != 8)
			abort();
		if (in.op >= OP_NR || in.form > FORM_STRING || in.access < ACC_READ || in.access > ACC_RMW)
			abort();
		if (in.reg > 15 || in.base > 15 || in.index > 15 || in.seg < 0 || in.seg >= SEG_NR)
			abort();
		if (in.reg_size < in.size || (in.reg_high8 && (in.reg > 3 || in.reg_size != 1)))
			abort();
		if (mode != MODE_64 && (in.reg > 7 || in.base > 7 || in.index > 7 || in.rip_rel))
			abort();
		if (in.form == FORM_MEM_IMM && in.size < 8 && (in.imm >> (8 * in.size)))
			abort();
		/* LOCK only on a read-modify-write of one operand; REP only on strings. */
		if (in.lock && (in.access != ACC_RMW || in.form == FORM_STRING))
			abort();
		if (in.rep && in.form != FORM_STRING)
			abort();
		u64 gpr[16];
		for (int i = 0; i < 16; i++)
			gpr[i] = 0x0123456789ABCDEFull * (u64)(i + 1);
		u64 ea = insn_mem_offset(&in, gpr, 0xFFFFFFFFFFFFFFF0ull);
		if ((in.addrsize == 2 && ea > 0xFFFF) || (in.addrsize == 4 && ea > 0xFFFFFFFFull))
			abort();
	}
	free(exact);
	return 0;
}
