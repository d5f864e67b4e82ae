// The handoff payload: a tiny ELF64 executable that the preboot guest loads with `kexec -l`
// and runs with `kexec -e`. It carries Parapet's binary policy record and gives the
// hypervisor its guest-physical address with one VMMCALL from ring 0.
//
// One PT_LOAD segment at physical = virtual = `address` (page aligned, below 4 GiB):
//   +0x0000  the code (below), padded with zeros to 0x1000
//   +0x1000  the policy record
// The code runs the same in 32-bit protected mode and in 64-bit long mode (kexec's
// purgatory may enter in either), so it uses only instructions that decode alike in both:
//   B8 03 00 00 00     mov eax, 3                 VMMCALL_HANDOFF
//   BB <imm32>         mov ebx, address + 0x1000  the record's physical address
//   B9 <imm32>         mov ecx, record length
//   0F 01 D9           vmmcall
// VMMCALL returns only when the hypervisor refused the record; then the code prints
// REFUSED_MESSAGE on COM1, one byte at a time, and halts for good:
//   66 BA F8 03        mov dx, 0x3f8
//   B0 <c> EE          mov al, c; out dx, al      (for each byte of the message)
//   FA F4 EB FC        cli; hlt; jmp back to cli
// Without a hypervisor, VMMCALL raises #UD with no handler and the machine resets.

/** VMMCALL function number of the handoff (RAX). */
export const VMMCALL_HANDOFF = 3;
/** Where the record sits in the segment, after the code's page. */
export const RECORD_OFFSET = 0x1000;
export const PAGE = 0x1000;
/** The default load address: 16 MiB. */
export const DEFAULT_RECORD_ADDRESS = 0x1000000;
export const COM1 = 0x3f8;
export const REFUSED_MESSAGE = "parapet: handoff refused\r\n";

const ELF_HEADER = 64;
const PHDR = 56;

/** Why `address` cannot hold a payload of `recordLength` bytes, or undefined. */
export function addressProblem(address: number, recordLength = 0): string | undefined {
  if (!Number.isSafeInteger(address) || address <= 0) return "must be a positive whole number";
  if (address % PAGE !== 0) return `must be page aligned (a multiple of 0x${PAGE.toString(16)})`;
  if (address + RECORD_OFFSET + recordLength > 2 ** 32) return "must leave the payload below 4 GiB";
  return undefined;
}

/** The payload's code for a record of `recordLength` bytes loaded at `address` + RECORD_OFFSET. */
export function payloadCode(address: number, recordLength: number): Buffer {
  const problem = addressProblem(address, recordLength);
  if (problem) throw new Error(`payload address 0x${address.toString(16)}: ${problem}`);
  if (!Number.isInteger(recordLength) || recordLength <= 0) throw new Error(`payload record length ${recordLength}: must be positive`);
  const imm32 = (op: number, v: number) => {
    const b = Buffer.alloc(5);
    b[0] = op;
    b.writeUInt32LE(v >>> 0, 1);
    return b;
  };
  const out: Buffer[] = [
    imm32(0xb8, VMMCALL_HANDOFF),
    imm32(0xbb, address + RECORD_OFFSET),
    imm32(0xb9, recordLength),
    Buffer.from([0x0f, 0x01, 0xd9]),
    Buffer.from([0x66, 0xba, COM1 & 0xff, COM1 >> 8]),
  ];
  for (const c of Buffer.from(REFUSED_MESSAGE, "latin1")) out.push(Buffer.from([0xb0, c, 0xee]));
  out.push(Buffer.from([0xfa, 0xf4, 0xeb, 0xfc]));
  const code = Buffer.concat(out);
  if (code.length > RECORD_OFFSET) throw new Error("payload code does not fit its page");
  return code;
}

/**
 * The ELF64 executable (ET_EXEC, EM_X86_64) holding the code and `record`: the header page,
 * then the segment at file offset 0x1000 (offsets and addresses agree modulo the page size).
 */
export function handoffPayload(record: Uint8Array, address: number): Buffer {
  const code = payloadCode(address, record.length);
  const segment = Buffer.alloc(RECORD_OFFSET + record.length);
  code.copy(segment, 0);
  segment.set(record, RECORD_OFFSET);
  const file = Buffer.alloc(PAGE + segment.length);

  // ELF header
  file.write("\x7fELF", 0, "latin1");
  file[4] = 2; // ELFCLASS64
  file[5] = 1; // little endian
  file[6] = 1; // EV_CURRENT
  file.writeUInt16LE(2, 16); // ET_EXEC
  file.writeUInt16LE(62, 18); // EM_X86_64
  file.writeUInt32LE(1, 20); // e_version
  file.writeBigUInt64LE(BigInt(address), 24); // e_entry
  file.writeBigUInt64LE(BigInt(ELF_HEADER), 32); // e_phoff
  file.writeBigUInt64LE(0n, 40); // e_shoff
  file.writeUInt32LE(0, 48); // e_flags
  file.writeUInt16LE(ELF_HEADER, 52); // e_ehsize
  file.writeUInt16LE(PHDR, 54); // e_phentsize
  file.writeUInt16LE(1, 56); // e_phnum
  file.writeUInt16LE(64, 58); // e_shentsize
  file.writeUInt16LE(0, 60); // e_shnum
  file.writeUInt16LE(0, 62); // e_shstrndx

  // The one program header
  const ph = ELF_HEADER;
  file.writeUInt32LE(1, ph); // PT_LOAD
  file.writeUInt32LE(7, ph + 4); // PF_R | PF_W | PF_X
  file.writeBigUInt64LE(BigInt(PAGE), ph + 8); // p_offset
  file.writeBigUInt64LE(BigInt(address), ph + 16); // p_vaddr
  file.writeBigUInt64LE(BigInt(address), ph + 24); // p_paddr
  file.writeBigUInt64LE(BigInt(segment.length), ph + 32); // p_filesz
  file.writeBigUInt64LE(BigInt(segment.length), ph + 40); // p_memsz
  file.writeBigUInt64LE(BigInt(PAGE), ph + 48); // p_align

  segment.copy(file, PAGE);
  segment.fill(0);
  return file;
}
