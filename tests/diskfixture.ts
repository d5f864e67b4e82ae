// Test disks: the scratch copies of the guest image (src/lib/guestdisk.ts, shared with the
// benchmarks), and what only the tests need: a key as a raw disk, recognisable patterns.
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { DATA_PARTITION_START_LBA, SECTOR } from "../src/lib/diskimage.ts";
import { WORK_DIR as TMP } from "../src/lib/guestdisk.ts";

export { DATA_PARTITION_START_LBA, SECTOR };
export {
  DATA_OFFSET,
  decryptedCopy,
  encryptedImage,
  newKey,
  plainImage,
  transformImage,
  wholeDisk,
  withoutIommu,
  writePolicy,
} from "../src/lib/guestdisk.ts";

/** A key file padded to one sector, to hand a bare guest as a raw disk. */
export async function keyDisk(name: string, key: Buffer): Promise<string> {
  const path = join(TMP, name);
  const sector = Buffer.alloc(SECTOR);
  key.copy(sector);
  await writeFile(path, sector, { mode: 0o600 });
  return path;
}

/** Shell lines for the guest that make `bytes` of a recognisable pattern in `file`. */
export function patternCmd(file: string, tag: string, bytes: number): string {
  return `yes '${tag}' | head -c ${bytes} > ${file}`;
}

/** The pattern patternCmd makes, built on the host for comparison. */
export function pattern(tag: string, bytes: number): Buffer {
  const line = Buffer.from(`${tag}\n`);
  const out = Buffer.alloc(bytes);
  for (let i = 0; i < bytes; i += line.length) line.copy(out, i, 0, Math.min(line.length, bytes - i));
  return out;
}
