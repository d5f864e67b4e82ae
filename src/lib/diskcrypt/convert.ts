// Converting a raw disk image in place between plaintext and XTS-AES-256 (dm-crypt
// aes-xts-plain64, tweak = absolute 512-byte sector number), safely against interruption.
//
// Files beside IMAGE (docs/disk-encryption.md explains them to users): the journal
// (journal.ts), the state marker (state.ts) and the lock (lock.ts).
//
// Conversion runs chunk by chunk in increasing LBA order. For each chunk: read it, write its
// pre-image into the next journal slot (sequence number, LBA, SHA-256 over all of it) and
// fsync the journal, then write the converted chunk and fsync the image. After a crash the
// newest valid slot names the only chunk that may be half written; its pre-image goes back,
// and conversion resumes from there. A slot torn by the crash fails its checksum; then the
// other slot is the newest valid one, its chunk was completely written and synced before
// the torn slot was begun, and redoing it from its pre-image is still exact.
import { randomBytes } from "node:crypto";
import { open, rm, type FileHandle } from "node:fs/promises";
import { SECTOR, XtsCipher, type Direction } from "../xts.ts";
import { DEFAULT_CHUNK_SECTORS, DiskRefusal, rangeText, resolveRange, shownName, type Progress } from "./common.ts";
import { fsyncDir, imageSectors, readExactly, readSector, writeAll, writeAtomic } from "./io.ts";
import { describeJournal, headerBlock, journalPath, readJournal, writeSlot, type JournalInfo, type JournalParams } from "./journal.ts";
import { acquireLock } from "./lock.ts";
import { hasBootSignature } from "./mbr.ts";
import { addExtent, readState, statePath, subtractExtent, writeState } from "./state.ts";

/** Points where the test suite may simulate a crash (throw, or kill the process). */
export type CrashPoint = "journal-created" | "after-journal" | "mid-image-write" | "after-image-write" | "before-journal-delete";

export interface ConvertOptions {
  image: string;
  key: Uint8Array;
  direction: Direction;
  /** Range to convert (default: the whole image). */
  firstLba?: bigint;
  sectors?: bigint;
  /** Skip the state-marker and boot-signature checks (not the journal: a half-converted image is never forced). */
  force?: boolean;
  chunkSectors?: number;
  progress?: (p: Progress) => void;
  /** Polled between chunks; when true the conversion stops cleanly, leaving the journal to resume from. */
  shouldStop?: () => boolean;
  /** Testing: called at each crash point with the chunk's index in this run. */
  hook?: (point: CrashPoint, chunk: number) => void | Promise<void>;
}

export interface ConvertResult {
  /** Resumed an interrupted conversion, from this LBA. */
  resumedFrom?: bigint;
  firstLba: bigint;
  sectors: bigint;
  /** Stopped early through shouldStop: the journal remains. */
  stopped: boolean;
  /** LBA reached (end of range when finished). */
  reached: bigint;
  fingerprint: string;
}

/** Refuses the command when the marker (or, without one, sector 0) says it would be wrong. */
async function checkBeforeStart(image: string, dir: Direction, cipher: XtsCipher, first: bigint, count: bigint): Promise<void> {
  const end = first + count;
  const fp = cipher.fingerprint;
  const extents = (await readState(image)) ?? [];
  const overlapping = extents.filter((e) => e.firstLba < end && e.firstLba + e.sectors > first);
  const marker = shownName(statePath(image));
  const img = shownName(image);
  if (dir === "encrypt") {
    if (overlapping.length) {
      const e = overlapping[0];
      throw new DiskRefusal(
        `${img} is marked encrypted (${rangeText(e.firstLba, e.sectors)}, key fingerprint ${e.key}, in ${marker}); ` +
          "encrypting it again would need both keys to read it. Nothing was changed. If the marker is wrong, use --force.",
      );
    }
    if (first === 0n) {
      const s0 = await readSector(image, 0n);
      if (hasBootSignature(s0)) return;
      if (hasBootSignature(cipher.sectors("decrypt", s0, 0n))) {
        throw new DiskRefusal(
          `${img} looks encrypted with this key already: sector 0 decrypts to a boot sector ending in 55 AA ` +
            `(there is no marker ${marker}, perhaps it was lost). Nothing was changed. Use --force to encrypt anyway.`,
        );
      }
      throw new DiskRefusal(
        `sector 0 of ${img} does not end in 55 AA, as a plaintext MBR disk's does: the image may be ` +
          "encrypted already (with another key), blank, or not partitioned. Nothing was changed. Use --force to encrypt it anyway.",
      );
    }
    return;
  }
  // decrypt: every sector of the range must be marked encrypted with this key.
  const other = overlapping.find((e) => e.key !== fp);
  if (other) {
    throw new DiskRefusal(
      `${img} is marked encrypted with key fingerprint ${other.key} (${rangeText(other.firstLba, other.sectors)}), ` +
        `but this key's fingerprint is ${fp}. Nothing was changed. Decrypting with the wrong key would destroy the data.`,
    );
  }
  let covered = 0n;
  for (const e of overlapping) {
    const a = e.firstLba > first ? e.firstLba : first;
    const b = e.firstLba + e.sectors < end ? e.firstLba + e.sectors : end;
    covered += b - a;
  }
  if (covered === count) return;
  let hint = "";
  if (first === 0n) {
    const s0 = await readSector(image, 0n);
    if (hasBootSignature(s0)) hint = " Sector 0 ends in 55 AA, as a plaintext disk's does: it looks decrypted already.";
    else if (hasBootSignature(cipher.sectors("decrypt", s0, 0n))) {
      hint = " But sector 0 decrypts with this key to a boot sector ending in 55 AA: the marker was probably lost; use --force to decrypt.";
    } else hint = " Sector 0 neither ends in 55 AA nor decrypts with this key to a boot sector.";
  }
  const what = overlapping.length ? `only partly marked encrypted (${covered} of ${count} sectors)` : "not marked encrypted";
  throw new DiskRefusal(`${img} is ${what} in ${marker}.${hint} Nothing was changed. Use --force if you are sure.`);
}

/** What a run works on: the range, its journal (resumed or new), and how to report crash points. */
interface Run {
  o: ConvertOptions;
  cipher: XtsCipher;
  first: bigint;
  end: bigint;
  journal: JournalInfo;
  resuming: boolean;
  hook: NonNullable<ConvertOptions["hook"]>;
}

/** The journal of an unfinished run of the same command, or a new one after the checks say yes. */
async function startJournal(
  o: ConvertOptions,
  cipher: XtsCipher,
  first: bigint,
  count: bigint,
  imageBytes: string,
): Promise<{ journal: JournalInfo; resuming: boolean }> {
  const fp = cipher.fingerprint;
  const journal = await readJournal(o.image);
  if (journal) {
    const p = journal.params;
    const same =
      p.direction === o.direction &&
      p.fingerprint === fp &&
      p.firstLba === first.toString() &&
      p.sectors === count.toString() &&
      p.imageBytes === imageBytes;
    if (!same) {
      const why =
        p.imageBytes !== imageBytes
          ? ` (and the image's size changed: ${p.imageBytes} bytes then, ${imageBytes} now)`
          : p.fingerprint !== fp
            ? ` This key's fingerprint is ${fp}.`
            : "";
      throw new DiskRefusal(`${describeJournal(o.image, journal)}${why}`);
    }
    return { journal, resuming: true };
  }
  if (!o.force) await checkBeforeStart(o.image, o.direction, cipher, first, count);
  const params: JournalParams = {
    tool: "parapet disk",
    version: 1,
    opId: randomBytes(16).toString("hex"),
    direction: o.direction,
    fingerprint: fp,
    firstLba: first.toString(),
    sectors: count.toString(),
    imageBytes,
    chunkSectors: o.chunkSectors ?? DEFAULT_CHUNK_SECTORS,
    started: new Date().toISOString(),
  };
  if (!Number.isInteger(params.chunkSectors) || params.chunkSectors < 1 || params.chunkSectors > 65536) {
    throw new Error(`chunk size ${params.chunkSectors} sectors: expected 1..65536`);
  }
  await writeAtomic(journalPath(o.image), headerBlock(params), 0o600);
  await o.hook?.("journal-created", -1);
  return { journal: { params }, resuming: false };
}

/** Converts one chunk at `next`: its pre-image into journal slot `seq` first, then the image. */
async function convertChunk(r: Run, img: FileHandle, jfh: FileHandle, next: bigint, seq: bigint, index: number): Promise<number> {
  const chunk = BigInt(r.journal.params.chunkSectors);
  const n = Number(r.end - next < chunk ? r.end - next : chunk);
  const pre = Buffer.alloc(n * SECTOR);
  await readExactly(img, pre, next * BigInt(SECTOR), r.o.image);
  const post = r.cipher.sectors(r.o.direction, pre, next);
  await writeSlot(jfh, r.journal.params, seq, next, pre);
  await r.hook("after-journal", index);
  const pos = Number(next * BigInt(SECTOR));
  if (r.o.hook) {
    // Two writes, so that a test can crash between them (a torn chunk).
    const half = Math.floor(n / 2) * SECTOR;
    await writeAll(img, post.subarray(0, half), pos);
    await img.datasync();
    await r.hook("mid-image-write", index);
    await writeAll(img, post.subarray(half), pos + half);
  } else {
    await writeAll(img, post, pos);
  }
  await img.datasync();
  await r.hook("after-image-write", index);
  return n;
}

/** Runs the chunks from the journal's position to the end of the range, or until told to stop. */
async function convertChunks(r: Run): Promise<{ resumedFrom?: bigint; reached: bigint; stopped: boolean }> {
  const { o, first, end } = r;
  const img = await open(o.image, "r+");
  const jfh = await open(journalPath(o.image), "r+");
  try {
    let next = first,
      seq = 0n;
    if (r.journal.slot) {
      // The chunk of the newest slot may be half written: put its pre-image back, redo it.
      const s = r.journal.slot;
      await writeAll(img, s.data, Number(s.lba * BigInt(SECTOR)));
      await img.datasync();
      next = s.lba;
      seq = s.seq + 1n;
    }
    const resumedFrom = r.resuming ? next : undefined;
    o.progress?.({ done: next - first, total: end - first, next });
    for (let index = 0; next < end; index++, seq++) {
      if (o.shouldStop?.()) return { resumedFrom, reached: next, stopped: true };
      next += BigInt(await convertChunk(r, img, jfh, next, seq, index));
      o.progress?.({ done: next - first, total: end - first, next });
    }
    return { resumedFrom, reached: end, stopped: false };
  } finally {
    await jfh.close();
    await img.close();
  }
}

/** Encrypts or decrypts a range of an image in place; resumes an interrupted run of the same command. */
export async function convertImage(o: ConvertOptions): Promise<ConvertResult> {
  const cipher = new XtsCipher(o.key);
  const fp = cipher.fingerprint;
  const release = await acquireLock(o.image);
  try {
    const total = await imageSectors(o.image);
    const { first, count } = resolveRange(total, o.firstLba, o.sectors);
    const end = first + count;
    const { journal, resuming } = await startJournal(o, cipher, first, count, (total * BigInt(SECTOR)).toString());
    const hook = o.hook ?? (() => {});
    const done = await convertChunks({ o, cipher, first, end, journal, resuming, hook });
    const result = { resumedFrom: done.resumedFrom, firstLba: first, sectors: count, stopped: done.stopped, reached: done.reached, fingerprint: fp };
    if (done.stopped) return result;
    const extents = (await readState(o.image).catch(() => undefined)) ?? [];
    await writeState(o.image, o.direction === "encrypt" ? addExtent(extents, first, end, fp) : subtractExtent(extents, first, end));
    await hook("before-journal-delete", -1);
    await rm(journalPath(o.image), { force: true });
    await fsyncDir(journalPath(o.image));
    return result;
  } finally {
    await release();
  }
}
