// Converting a raw disk image in place between plaintext and XTS-AES-256 (dm-crypt
// aes-xts-plain64, tweak = absolute 512-byte sector number), safely against interruption.
//
// Files beside IMAGE (docs/disk-encryption.md explains them to users):
//   IMAGE.parapet-journal  exists only while a conversion is unfinished: the operation and,
//                          in two alternating slots, a copy of the chunk being rewritten
//   IMAGE.parapet-state    the marker: which sectors are encrypted, with which key fingerprint
//   IMAGE.parapet-lock     held while a command works on IMAGE (pid inside; stale ones are taken over)
//
// Conversion runs chunk by chunk in increasing LBA order. For each chunk: read it, write its
// pre-image into the next journal slot (sequence number, LBA, SHA-256 over all of it) and
// fsync the journal, then write the converted chunk and fsync the image. After a crash the
// newest valid slot names the only chunk that may be half written; its pre-image goes back,
// and conversion resumes from there. A slot torn by the crash fails its checksum; then the
// other slot is the newest valid one, its chunk was completely written and synced before
// the torn slot was begun, and redoing it from its pre-image is still exact.
import { randomBytes, createHash } from "node:crypto";
import { constants, existsSync } from "node:fs";
import { open, readFile, rename, rm, stat, writeFile, type FileHandle } from "node:fs/promises";
import { basename, dirname } from "node:path";
import { SECTOR, XtsCipher, type Direction } from "./xts.ts";

export const JOURNAL_SUFFIX = ".parapet-journal";
export const STATE_SUFFIX = ".parapet-state";
export const LOCK_SUFFIX = ".parapet-lock";
export const DEFAULT_CHUNK_SECTORS = 8192; // 4 MiB

const JOURNAL_MAGIC = "PRPTJRN1";
const SLOT_MAGIC = "PRPTSLOT";
const JOURNAL_HEADER = 4096;
const SLOT_HEADER = 64;

/** The command was refused; nothing on disk changed. */
export class DiskRefusal extends Error {}

export const journalPath = (image: string) => image + JOURNAL_SUFFIX;
export const statePath = (image: string) => image + STATE_SUFFIX;
export const lockPath = (image: string) => image + LOCK_SUFFIX;

export interface Extent {
  firstLba: bigint;
  sectors: bigint;
  /** key fingerprint (keyFingerprint) */
  key: string;
}

export interface Progress {
  /** sectors converted so far, of `total` */
  done: bigint;
  total: bigint;
  /** the LBA the next chunk starts at */
  next: bigint;
}

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

interface JournalParams {
  tool: "parapet disk";
  version: 1;
  opId: string;
  direction: Direction;
  fingerprint: string;
  firstLba: string;
  sectors: string;
  imageBytes: string;
  chunkSectors: number;
  started: string;
}

export interface JournalInfo {
  params: JournalParams;
  /** newest valid slot (undefined: no chunk was begun) */
  slot?: { seq: bigint; lba: bigint; sectors: number; data: Buffer };
}

interface StateFile {
  format: "parapet-disk-state";
  version: 1;
  cipher: "aes-xts-plain64";
  sectorSize: 512;
  encrypted: { firstLba: string; sectors: string; key: string }[];
}

const shownName = (p: string) => basename(p);

function rangeText(first: bigint, count: bigint): string {
  return count === 1n ? `sector ${first}` : `sectors ${first}..${first + count - 1n}`;
}

async function fsyncDir(path: string): Promise<void> {
  let fh: FileHandle | undefined;
  try {
    fh = await open(dirname(path), constants.O_RDONLY | constants.O_DIRECTORY);
    await fh.sync();
  } catch {
    // not every file system lets a directory be synced; the rename is still atomic
  } finally {
    await fh?.close();
  }
}

/** Writes a file atomically (temporary file, fsync, rename, directory fsync). */
async function writeAtomic(path: string, data: Uint8Array | string, mode = 0o644): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}`;
  const fh = await open(tmp, "w", mode);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, path);
  await fsyncDir(path);
}

async function readExactly(fh: FileHandle, buf: Buffer, position: bigint, what: string): Promise<void> {
  let got = 0;
  while (got < buf.length) {
    const { bytesRead } = await fh.read(buf, got, buf.length - got, Number(position) + got);
    if (bytesRead === 0) throw new Error(`${what}: unexpected end of file at byte ${Number(position) + got}`);
    got += bytesRead;
  }
}

async function writeAll(fh: FileHandle, buf: Uint8Array, position: number): Promise<void> {
  let put = 0;
  while (put < buf.length) {
    const { bytesWritten } = await fh.write(buf, put, buf.length - put, position + put);
    put += bytesWritten;
  }
}

// ---- the state marker ----

export async function readState(image: string): Promise<Extent[] | undefined> {
  let text: string;
  try {
    text = await readFile(statePath(image), "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw e;
  }
  try {
    const s = JSON.parse(text) as StateFile;
    if (s.format !== "parapet-disk-state" || s.version !== 1 || !Array.isArray(s.encrypted)) throw new Error("not a version 1 state marker");
    return s.encrypted.map((e) => {
      if (!/^\d+$/.test(e.firstLba) || !/^\d+$/.test(e.sectors) || !/^[0-9a-f]{16}$/.test(e.key)) throw new Error("bad extent");
      return { firstLba: BigInt(e.firstLba), sectors: BigInt(e.sectors), key: e.key };
    });
  } catch (e) {
    throw new Error(`${shownName(statePath(image))} is damaged (${(e as Error).message}); ` +
      "check the image with 'parapet disk verify', then remove the marker or use --force");
  }
}

async function writeState(image: string, extents: Extent[]): Promise<void> {
  if (extents.length === 0) {
    await rm(statePath(image), { force: true });
    await fsyncDir(statePath(image));
    return;
  }
  const s: StateFile = {
    format: "parapet-disk-state",
    version: 1,
    cipher: "aes-xts-plain64",
    sectorSize: 512,
    encrypted: extents.map((e) => ({ firstLba: e.firstLba.toString(), sectors: e.sectors.toString(), key: e.key })),
  };
  await writeAtomic(statePath(image), JSON.stringify(s, null, 2) + "\n");
}

/** Removes [first, end) from the extents. */
export function subtractExtent(extents: Extent[], first: bigint, end: bigint): Extent[] {
  const out: Extent[] = [];
  for (const e of extents) {
    const eEnd = e.firstLba + e.sectors;
    if (eEnd <= first || e.firstLba >= end) {
      out.push(e);
      continue;
    }
    if (e.firstLba < first) out.push({ ...e, sectors: first - e.firstLba });
    if (eEnd > end) out.push({ ...e, firstLba: end, sectors: eEnd - end });
  }
  return out;
}

/** Adds [first, end) encrypted with `key`, replacing what it covers and merging neighbours. */
export function addExtent(extents: Extent[], first: bigint, end: bigint, key: string): Extent[] {
  const all = [...subtractExtent(extents, first, end), { firstLba: first, sectors: end - first, key }];
  all.sort((a, b) => (a.firstLba < b.firstLba ? -1 : a.firstLba > b.firstLba ? 1 : 0));
  const out: Extent[] = [];
  for (const e of all) {
    const last = out.at(-1);
    if (last && last.key === e.key && last.firstLba + last.sectors === e.firstLba) last.sectors += e.sectors;
    else out.push({ ...e });
  }
  return out;
}

// ---- the journal ----

function slotSize(chunkSectors: number): number {
  return SLOT_HEADER + chunkSectors * SECTOR;
}

function slotDigest(header32: Uint8Array, opId: string, data: Uint8Array): Buffer {
  return createHash("sha256").update(header32).update(Buffer.from(opId, "hex")).update(data).digest();
}

function headerBlock(params: JournalParams): Buffer {
  const json = Buffer.from(JSON.stringify(params), "utf8");
  if (json.length > JOURNAL_HEADER - 12 - 32) throw new Error("journal parameters too long");
  const b = Buffer.alloc(JOURNAL_HEADER);
  b.write(JOURNAL_MAGIC, 0, "latin1");
  b.writeUInt32LE(json.length, 8);
  json.copy(b, 12);
  createHash("sha256").update(b.subarray(0, JOURNAL_HEADER - 32)).digest().copy(b, JOURNAL_HEADER - 32);
  return b;
}

/** Reads the journal of IMAGE: undefined when there is none; throws when it is unreadable. */
export async function readJournal(image: string): Promise<JournalInfo | undefined> {
  const path = journalPath(image);
  let fh: FileHandle;
  try {
    fh = await open(path, "r");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw e;
  }
  const damaged = (why: string) =>
    new Error(`${shownName(path)} is damaged (${why}). The image may be partly converted; do not delete the journal ` +
      "before you have checked the image (docs/disk-encryption.md, 'Recovery').");
  try {
    const h = Buffer.alloc(JOURNAL_HEADER);
    const { bytesRead } = await fh.read(h, 0, JOURNAL_HEADER, 0);
    if (bytesRead < JOURNAL_HEADER || h.subarray(0, 8).toString("latin1") !== JOURNAL_MAGIC) throw damaged("bad header");
    const digest = createHash("sha256").update(h.subarray(0, JOURNAL_HEADER - 32)).digest();
    if (!digest.equals(h.subarray(JOURNAL_HEADER - 32))) throw damaged("header checksum mismatch");
    const params = JSON.parse(h.subarray(12, 12 + h.readUInt32LE(8)).toString("utf8")) as JournalParams;
    if (params.tool !== "parapet disk" || params.version !== 1) throw damaged("unknown journal version");
    let best: JournalInfo["slot"];
    for (let k = 0; k < 2; k++) {
      const off = JOURNAL_HEADER + k * slotSize(params.chunkSectors);
      const sh = Buffer.alloc(SLOT_HEADER);
      const r = await fh.read(sh, 0, SLOT_HEADER, off);
      if (r.bytesRead < SLOT_HEADER || sh.subarray(0, 8).toString("latin1") !== SLOT_MAGIC) continue;
      const sectors = sh.readUInt32LE(24);
      if (sectors < 1 || sectors > params.chunkSectors) continue;
      const data = Buffer.alloc(sectors * SECTOR);
      const rd = await fh.read(data, 0, data.length, off + SLOT_HEADER);
      if (rd.bytesRead < data.length) continue;
      if (!slotDigest(sh.subarray(0, 32), params.opId, data).equals(sh.subarray(32, 64))) continue;
      const seq = sh.readBigUInt64LE(8);
      if (!best || seq > best.seq) best = { seq, lba: sh.readBigUInt64LE(16), sectors, data };
    }
    return { params, slot: best };
  } finally {
    await fh.close();
  }
}

async function writeSlot(fh: FileHandle, params: JournalParams, seq: bigint, lba: bigint, data: Buffer): Promise<void> {
  const sh = Buffer.alloc(SLOT_HEADER);
  sh.write(SLOT_MAGIC, 0, "latin1");
  sh.writeBigUInt64LE(seq, 8);
  sh.writeBigUInt64LE(lba, 16);
  sh.writeUInt32LE(data.length / SECTOR, 24);
  slotDigest(sh.subarray(0, 32), params.opId, data).copy(sh, 32);
  const off = JOURNAL_HEADER + Number(seq % 2n) * slotSize(params.chunkSectors);
  await writeAll(fh, Buffer.concat([sh, data]), off);
  await fh.datasync();
}

// ---- the lock ----

async function acquireLock(image: string): Promise<() => Promise<void>> {
  const path = lockPath(image);
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fh = await open(path, "wx", 0o644);
      await fh.writeFile(`${process.pid}\n`);
      await fh.close();
      return async () => {
        await rm(path, { force: true });
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
      const pid = Number((await readFile(path, "utf8").catch(() => "")).trim());
      let alive = false;
      if (Number.isInteger(pid) && pid > 0 && pid !== process.pid) {
        try {
          process.kill(pid, 0);
          alive = true;
        } catch (err) {
          alive = (err as NodeJS.ErrnoException).code === "EPERM";
        }
      }
      if (alive) throw new DiskRefusal(`another parapet disk command (pid ${pid}) is working on ${shownName(image)} (${shownName(path)})`);
      await rm(path, { force: true }); // stale: its process is gone
    }
  }
  throw new DiskRefusal(`cannot take the lock ${shownName(path)}`);
}

// ---- image helpers ----

export async function imageSectors(image: string): Promise<bigint> {
  const st = await stat(image).catch((e: NodeJS.ErrnoException) => {
    throw new Error(e.code === "ENOENT" ? `${image}: no such file` : `${image}: ${e.message}`);
  });
  if (!st.isFile()) throw new Error(`${image} is not a regular file (block devices are not supported: use cryptsetup for those)`);
  if (st.size % SECTOR !== 0) throw new Error(`${image} is ${st.size} bytes, not a whole number of ${SECTOR}-byte sectors`);
  return BigInt(st.size / SECTOR);
}

export function resolveRange(total: bigint, firstLba?: bigint, sectors?: bigint): { first: bigint; count: bigint } {
  const first = firstLba ?? 0n;
  if (first < 0n) throw new Error(`--first-lba ${first} is negative`);
  if (first >= total) throw new Error(`--first-lba ${first} is beyond the image's ${total} sectors`);
  const count = sectors ?? total - first;
  if (count < 1n) throw new Error(`--sectors ${count}: must be >= 1`);
  if (first + count > total) throw new Error(`sectors ${first}..${first + count - 1n} go past the image's end (${total} sectors)`);
  return { first, count };
}

const hasBootSignature = (s: Uint8Array) => s[510] === 0x55 && s[511] === 0xaa;

async function readSector(image: string, lba: bigint): Promise<Buffer> {
  const fh = await open(image, "r");
  try {
    const b = Buffer.alloc(SECTOR);
    await readExactly(fh, b, lba * BigInt(SECTOR), image);
    return b;
  } finally {
    await fh.close();
  }
}

function describeJournal(image: string, j: JournalInfo): string {
  const p = j.params;
  const first = BigInt(p.firstLba), count = BigInt(p.sectors), end = first + count;
  const half = p.direction === "encrypt" ? "half-encrypted" : "half-decrypted";
  const [doneState, todoState] = p.direction === "encrypt" ? ["encrypted", "plaintext"] : ["plaintext", "encrypted"];
  const range = first === 0n && count * BigInt(SECTOR) === BigInt(p.imageBytes) ? "" : ` --first-lba ${first} --sectors ${count}`;
  let where: string;
  if (!j.slot) where = "before converting anything";
  else {
    const at = j.slot.lba, chunkEnd = at + BigInt(j.slot.sectors);
    const pct = ((Number(at - first) / Number(count)) * 100).toFixed(1);
    const parts: string[] = [];
    if (at > first) parts.push(`${rangeText(first, at - first)} are ${doneState}`);
    parts.push(`${rangeText(at, chunkEnd - at)} were being rewritten (the journal restores them on resume)`);
    if (chunkEnd < end) parts.push(`${rangeText(chunkEnd, end - chunkEnd)} are still ${todoState}`);
    where = `at sector ${at} (${pct}% done): ${parts.join(", ")}`;
  }
  return `${shownName(image)} is ${half}: an interrupted 'parapet disk ${p.direction}' (key fingerprint ${p.fingerprint}, ` +
    `${rangeText(first, count)}) stopped ${where}. ` +
    `Finish it first: parapet disk ${p.direction} --key <the key with fingerprint ${p.fingerprint}>${range} ${shownName(image)}`;
}

/** Human-readable state of an image: marker, journal, lock. */
export async function describeImage(image: string): Promise<string> {
  const total = await imageSectors(image);
  const lines = [`${image}: ${total} sectors (${(Number(total) * SECTOR / 2 ** 20).toFixed(1)} MiB)`];
  const j = await readJournal(image);
  if (j) lines.push(`  unfinished conversion: ${describeJournal(image, j)}`);
  const s = await readState(image);
  if (!s || s.length === 0) {
    lines.push("  marker: none (not marked encrypted)");
    const s0 = await readSector(image, 0n);
    lines.push(`  sector 0 ${hasBootSignature(s0) ? "ends in 55 AA (looks like a plaintext MBR disk)" : "does not end in 55 AA (not a plaintext MBR disk: encrypted, blank or unpartitioned)"}`);
  } else {
    for (const e of s) lines.push(`  encrypted: ${rangeText(e.firstLba, e.sectors)} with key fingerprint ${e.key}`);
  }
  if (existsSync(lockPath(image))) lines.push(`  lock: ${shownName(lockPath(image))} exists (a command is running, or one was killed)`);
  return lines.join("\n") + "\n";
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
      throw new DiskRefusal(`${img} is marked encrypted (${rangeText(e.firstLba, e.sectors)}, key fingerprint ${e.key}, in ${marker}); ` +
        "encrypting it again would need both keys to read it. Nothing was changed. If the marker is wrong, use --force.");
    }
    if (first === 0n) {
      const s0 = await readSector(image, 0n);
      if (hasBootSignature(s0)) return;
      if (hasBootSignature(cipher.sectors("decrypt", s0, 0n))) {
        throw new DiskRefusal(`${img} looks encrypted with this key already: sector 0 decrypts to a boot sector ending in 55 AA ` +
          `(there is no marker ${marker}, perhaps it was lost). Nothing was changed. Use --force to encrypt anyway.`);
      }
      throw new DiskRefusal(`sector 0 of ${img} does not end in 55 AA, as a plaintext MBR disk's does: the image may be ` +
        "encrypted already (with another key), blank, or not partitioned. Nothing was changed. Use --force to encrypt it anyway.");
    }
    return;
  }
  // decrypt: every sector of the range must be marked encrypted with this key.
  const other = overlapping.find((e) => e.key !== fp);
  if (other) {
    throw new DiskRefusal(`${img} is marked encrypted with key fingerprint ${other.key} (${rangeText(other.firstLba, other.sectors)}), ` +
      `but this key's fingerprint is ${fp}. Nothing was changed. Decrypting with the wrong key would destroy the data.`);
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

/** Encrypts or decrypts a range of an image in place; resumes an interrupted run of the same command. */
export async function convertImage(o: ConvertOptions): Promise<ConvertResult> {
  const cipher = new XtsCipher(o.key);
  const fp = cipher.fingerprint;
  const release = await acquireLock(o.image);
  try {
    const total = await imageSectors(o.image);
    const { first, count } = resolveRange(total, o.firstLba, o.sectors);
    const end = first + count;
    const imageBytes = (total * BigInt(SECTOR)).toString();
    const hook = o.hook ?? (() => {});
    let journal = await readJournal(o.image);
    const resuming = journal !== undefined;
    let resumedFrom: bigint | undefined;
    let seq = 0n;
    let next = first;
    if (journal) {
      const p = journal.params;
      const same = p.direction === o.direction && p.fingerprint === fp && p.firstLba === first.toString() &&
        p.sectors === count.toString() && p.imageBytes === imageBytes;
      if (!same) {
        const why = p.imageBytes !== imageBytes ? ` (and the image's size changed: ${p.imageBytes} bytes then, ${imageBytes} now)` :
          p.fingerprint !== fp ? ` This key's fingerprint is ${fp}.` : "";
        throw new DiskRefusal(`${describeJournal(o.image, journal)}${why}`);
      }
    } else {
      if (!o.force) await checkBeforeStart(o.image, o.direction, cipher, first, count);
      const params: JournalParams = {
        tool: "parapet disk", version: 1, opId: randomBytes(16).toString("hex"), direction: o.direction, fingerprint: fp,
        firstLba: first.toString(), sectors: count.toString(), imageBytes, chunkSectors: o.chunkSectors ?? DEFAULT_CHUNK_SECTORS,
        started: new Date().toISOString(),
      };
      if (!Number.isInteger(params.chunkSectors) || params.chunkSectors < 1 || params.chunkSectors > 65536) {
        throw new Error(`chunk size ${params.chunkSectors} sectors: expected 1..65536`);
      }
      await writeAtomic(journalPath(o.image), headerBlock(params), 0o600);
      journal = { params };
      await hook("journal-created", -1);
    }
    const params = journal.params;
    const chunk = params.chunkSectors;
    const img = await open(o.image, "r+");
    const jfh = await open(journalPath(o.image), "r+");
    try {
      if (journal.slot) {
        // The chunk of the newest slot may be half written: put its pre-image back, redo it.
        const s = journal.slot;
        await writeAll(img, s.data, Number(s.lba * BigInt(SECTOR)));
        await img.datasync();
        next = s.lba;
        seq = s.seq + 1n;
      }
      if (resuming) resumedFrom = next;
      let index = 0;
      o.progress?.({ done: next - first, total: count, next });
      while (next < end) {
        if (o.shouldStop?.()) return { resumedFrom, firstLba: first, sectors: count, stopped: true, reached: next, fingerprint: fp };
        const n = Number(end - next < BigInt(chunk) ? end - next : BigInt(chunk));
        const pre = Buffer.alloc(n * SECTOR);
        await readExactly(img, pre, next * BigInt(SECTOR), o.image);
        const post = cipher.sectors(o.direction, pre, next);
        await writeSlot(jfh, params, seq, next, pre);
        await hook("after-journal", index);
        const pos = Number(next * BigInt(SECTOR));
        if (o.hook) {
          // Two writes, so that a test can crash between them (a torn chunk).
          const half = Math.floor(n / 2) * SECTOR;
          await writeAll(img, post.subarray(0, half), pos);
          await img.datasync();
          await hook("mid-image-write", index);
          await writeAll(img, post.subarray(half), pos + half);
        } else {
          await writeAll(img, post, pos);
        }
        await img.datasync();
        await hook("after-image-write", index);
        next += BigInt(n);
        seq++;
        index++;
        o.progress?.({ done: next - first, total: count, next });
      }
    } finally {
      await jfh.close();
      await img.close();
    }
    const extents = (await readState(o.image).catch(() => undefined)) ?? [];
    await writeState(o.image, o.direction === "encrypt" ? addExtent(extents, first, end, fp) : subtractExtent(extents, first, end));
    await hook("before-journal-delete", -1);
    await rm(journalPath(o.image), { force: true });
    await fsyncDir(journalPath(o.image));
    return { resumedFrom, firstLba: first, sectors: count, stopped: false, reached: end, fingerprint: fp };
  } finally {
    await release();
  }
}

// ---- verify ----

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
    r.problems.push(`sector 0 ends in ${Buffer.from(s0.subarray(510, 512)).toString("hex").replace(/(..)(..)/, "$1 $2")}, not 55 aa`);
    return r;
  }
  const dv = Buffer.from(s0.buffer, s0.byteOffset, s0.length);
  for (let i = 0; i < 4; i++) {
    const o = 446 + 16 * i;
    const status = dv[o], type = dv[o + 4], start = dv.readUInt32LE(o + 8), size = dv.readUInt32LE(o + 12);
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
    if (other) r.markerNote = `the marker says ${rangeText(other.firstLba, other.sectors)} are encrypted with key fingerprint ${other.key}, not ${cipher.fingerprint}`;
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
      for (let lba = first; lba < end; ) {
        const n = Number(end - lba < BigInt(chunk) ? end - lba : BigInt(chunk));
        const a = Buffer.alloc(n * SECTOR), b = Buffer.alloc(n * SECTOR);
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

