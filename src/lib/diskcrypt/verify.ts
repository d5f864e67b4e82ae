// parapet disk verify: does a range decrypt with a key to a plausible disk (sector 0 an MBR)
// and, given a plaintext reference image, to exactly that image? Read-only.
import { open } from "node:fs/promises";
import { SECTOR, XtsCipher } from "../xts.ts";
import { DEFAULT_CHUNK_SECTORS, DiskRefusal, rangeText, resolveRange, type Progress } from "./common.ts";
import { imageSectors, readExactly, readSector } from "./io.ts";
import { describeJournal, readJournal } from "./journal.ts";
import { checkMbr, type MbrCheck } from "./mbr.ts";
import { readState } from "./state.ts";

export interface VerifyOptions {
  image: string;
  key: Uint8Array;
  firstLba?: bigint;
  sectors?: bigint;
  /** a plaintext reference image to compare every sector of the range with */
  plain?: string;
  chunkSectors?: number;
  progress?: (p: Progress) => void;
}

export interface VerifyResult {
  firstLba: bigint;
  sectors: bigint;
  fingerprint: string;
  /** the marker's opinion, when it disagrees with this key */
  markerNote?: string;
  mbr?: MbrCheck;
  compared?: bigint;
  mismatches?: bigint;
  firstMismatch?: bigint;
  ok: boolean;
}

/** Checks that the range decrypts with `key` to a plausible disk and, with `plain`, to exactly that image. */
export async function verifyImage(o: VerifyOptions): Promise<VerifyResult> {
  const cipher = new XtsCipher(o.key);
  const total = await imageSectors(o.image);
  const { first, count } = resolveRange(total, o.firstLba, o.sectors);
  const end = first + count;
  const j = await readJournal(o.image);
  if (j) throw new DiskRefusal(describeJournal(o.image, j));
  const r: VerifyResult = { firstLba: first, sectors: count, fingerprint: cipher.fingerprint, ok: true };
  const extents = await readState(o.image);
  if (extents) {
    const other = extents.find((e) => e.key !== cipher.fingerprint && e.firstLba < end && e.firstLba + e.sectors > first);
    if (other)
      r.markerNote = `the marker says ${rangeText(other.firstLba, other.sectors)} are encrypted with key fingerprint ${other.key}, not ${cipher.fingerprint}`;
  } else r.markerNote = "the image has no state marker (not marked encrypted)";
  if (first === 0n) {
    const s0 = cipher.sectors("decrypt", await readSector(o.image, 0n), 0n);
    const s1 = total > 1n && end > 1n ? cipher.sectors("decrypt", await readSector(o.image, 1n), 1n) : undefined;
    r.mbr = checkMbr(s0, total, s1);
    if (r.mbr.problems.length) r.ok = false;
  } else if (!o.plain) {
    throw new Error("nothing to check: the range does not include sector 0 (the MBR); give --plain REFERENCE to compare sectors");
  }
  if (o.plain) {
    const refSectors = await imageSectors(o.plain);
    if (refSectors < end) throw new Error(`${o.plain} has ${refSectors} sectors, fewer than the range's end (${end})`);
    const chunk = o.chunkSectors ?? DEFAULT_CHUNK_SECTORS;
    const img = await open(o.image, "r");
    const ref = await open(o.plain, "r");
    let mismatches = 0n;
    try {
      for (let lba = first; lba < end;) {
        const n = Number(end - lba < BigInt(chunk) ? end - lba : BigInt(chunk));
        const a = Buffer.alloc(n * SECTOR),
          b = Buffer.alloc(n * SECTOR);
        await readExactly(img, a, lba * BigInt(SECTOR), o.image);
        await readExactly(ref, b, lba * BigInt(SECTOR), o.plain);
        const d = cipher.sectors("decrypt", a, lba);
        if (!d.equals(b)) {
          for (let i = 0; i < n; i++) {
            if (!d.subarray(i * SECTOR, (i + 1) * SECTOR).equals(b.subarray(i * SECTOR, (i + 1) * SECTOR))) {
              mismatches++;
              r.firstMismatch ??= lba + BigInt(i);
            }
          }
        }
        lba += BigInt(n);
        o.progress?.({ done: lba - first, total: count, next: lba });
      }
    } finally {
      await img.close();
      await ref.close();
    }
    r.compared = count;
    r.mismatches = mismatches;
    if (mismatches > 0n) r.ok = false;
  }
  return r;
}
