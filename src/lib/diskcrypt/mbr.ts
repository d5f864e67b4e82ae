// The plausibility check of a (decrypted) sector 0: the 55 AA boot signature, a sane MBR
// partition table, and a GPT header in sector 1 behind a protective MBR.

export const hasBootSignature = (s: Uint8Array) => s[510] === 0x55 && s[511] === 0xaa;

export interface MbrCheck {
  signature: boolean;
  partitions: { index: number; bootable: boolean; type: number; startLba: number; sectors: number }[];
  problems: string[];
  gpt?: boolean;
}

/** Checks that a (decrypted) sector 0 is a plausible MBR for a disk of `totalSectors`. */
export function checkMbr(s0: Uint8Array, totalSectors: bigint, lba1?: Uint8Array): MbrCheck {
  const r: MbrCheck = { signature: hasBootSignature(s0), partitions: [], problems: [] };
  if (!r.signature) {
    r.problems.push(
      `sector 0 ends in ${Buffer.from(s0.subarray(510, 512))
        .toString("hex")
        .replace(/(..)(..)/, "$1 $2")}, not 55 aa`,
    );
    return r;
  }
  const dv = Buffer.from(s0.buffer, s0.byteOffset, s0.length);
  for (let i = 0; i < 4; i++) {
    const o = 446 + 16 * i;
    const status = dv[o],
      type = dv[o + 4],
      start = dv.readUInt32LE(o + 8),
      size = dv.readUInt32LE(o + 12);
    if (type === 0) continue;
    const n = i + 1;
    if (status !== 0x00 && status !== 0x80) r.problems.push(`partition ${n}: status byte ${status.toString(16)}, expected 00 or 80`);
    if (type === 0xee) {
      r.gpt = true;
      r.partitions.push({ index: n, bootable: status === 0x80, type, startLba: start, sectors: size });
      continue;
    }
    if (start < 1) r.problems.push(`partition ${n}: starts at sector ${start}`);
    if (size < 1) r.problems.push(`partition ${n}: has no sectors`);
    if (BigInt(start) + BigInt(size) > totalSectors) {
      r.problems.push(`partition ${n}: sectors ${start}..${start + size - 1} go past the disk's end (${totalSectors} sectors)`);
    }
    r.partitions.push({ index: n, bootable: status === 0x80, type, startLba: start, sectors: size });
  }
  const ps = r.partitions.filter((p) => p.type !== 0xee).sort((a, b) => a.startLba - b.startLba);
  for (let i = 1; i < ps.length; i++) {
    if (ps[i].startLba < ps[i - 1].startLba + ps[i - 1].sectors) r.problems.push(`partitions ${ps[i - 1].index} and ${ps[i].index} overlap`);
  }
  if (r.gpt && lba1 && Buffer.from(lba1.subarray(0, 8)).toString("latin1") !== "EFI PART") {
    r.problems.push("the MBR is a GPT protective MBR but sector 1 holds no GPT header ('EFI PART')");
  }
  return r;
}
