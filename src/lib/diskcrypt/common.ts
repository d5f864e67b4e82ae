// What every part of the in-place disk conversion shares: the refusal, the range of sectors a
// command works on, progress reports, and how sectors and files are named in messages.
import { basename } from "node:path";

export const DEFAULT_CHUNK_SECTORS = 8192; // 4 MiB

/** The command was refused; nothing on disk changed. */
export class DiskRefusal extends Error {}

export interface Progress {
  /** sectors converted so far, of `total` */
  done: bigint;
  total: bigint;
  /** the LBA the next chunk starts at */
  next: bigint;
}

/** A file beside the image as messages show it. */
export const shownName = (p: string) => basename(p);

export function rangeText(first: bigint, count: bigint): string {
  return count === 1n ? `sector ${first}` : `sectors ${first}..${first + count - 1n}`;
}

/** The range [first, first + count) a command names, checked against an image of `total` sectors. */
export function resolveRange(total: bigint, firstLba?: bigint, sectors?: bigint): { first: bigint; count: bigint } {
  const first = firstLba ?? 0n;
  if (first < 0n) throw new Error(`--first-lba ${first} is negative`);
  if (first >= total) throw new Error(`--first-lba ${first} is beyond the image's ${total} sectors`);
  const count = sectors ?? total - first;
  if (count < 1n) throw new Error(`--sectors ${count}: must be >= 1`);
  if (first + count > total) throw new Error(`sectors ${first}..${first + count - 1n} go past the image's end (${total} sectors)`);
  return { first, count };
}
