// The journal beside an image, IMAGE.parapet-journal: it exists only while a conversion is
// unfinished. A header block (magic, the operation's parameters as JSON, SHA-256) and two
// alternating slots, each a copy of the chunk being rewritten (sequence number, LBA, sector
// count, SHA-256 over all of it and the operation's id). After a crash the newest valid slot
// names the only chunk that may be half written; a slot torn by the crash fails its checksum,
// and then the other slot is the newest valid one (convert.ts relies on exactly this).
import { createHash } from "node:crypto";
import { open, type FileHandle } from "node:fs/promises";
import { SECTOR, type Direction } from "../xts.ts";
import { rangeText, shownName } from "./common.ts";
import { writeAll } from "./io.ts";

export const JOURNAL_SUFFIX = ".parapet-journal";
export const journalPath = (image: string) => image + JOURNAL_SUFFIX;

const JOURNAL_MAGIC = "PRPTJRN1";
const SLOT_MAGIC = "PRPTSLOT";
const JOURNAL_HEADER = 4096;
const SLOT_HEADER = 64;

/** What the journal's header records about the operation; a resume must match it. */
export interface JournalParams {
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

function slotSize(chunkSectors: number): number {
  return SLOT_HEADER + chunkSectors * SECTOR;
}

function slotDigest(header32: Uint8Array, opId: string, data: Uint8Array): Buffer {
  return createHash("sha256").update(header32).update(Buffer.from(opId, "hex")).update(data).digest();
}

export function headerBlock(params: JournalParams): Buffer {
  const json = Buffer.from(JSON.stringify(params), "utf8");
  if (json.length > JOURNAL_HEADER - 12 - 32) throw new Error("journal parameters too long");
  const b = Buffer.alloc(JOURNAL_HEADER);
  b.write(JOURNAL_MAGIC, 0, "latin1");
  b.writeUInt32LE(json.length, 8);
  json.copy(b, 12);
  createHash("sha256")
    .update(b.subarray(0, JOURNAL_HEADER - 32))
    .digest()
    .copy(b, JOURNAL_HEADER - 32);
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
    new Error(
      `${shownName(path)} is damaged (${why}). The image may be partly converted; do not delete the journal ` +
        "before you have checked the image (docs/disk-encryption.md, 'Recovery').",
    );
  try {
    const h = Buffer.alloc(JOURNAL_HEADER);
    const { bytesRead } = await fh.read(h, 0, JOURNAL_HEADER, 0);
    if (bytesRead < JOURNAL_HEADER || h.subarray(0, 8).toString("latin1") !== JOURNAL_MAGIC) throw damaged("bad header");
    const digest = createHash("sha256")
      .update(h.subarray(0, JOURNAL_HEADER - 32))
      .digest();
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

export async function writeSlot(fh: FileHandle, params: JournalParams, seq: bigint, lba: bigint, data: Buffer): Promise<void> {
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

/** What an unfinished conversion has done and what finishes it, for refusals and parapet disk status. */
export function describeJournal(image: string, j: JournalInfo): string {
  const p = j.params;
  const first = BigInt(p.firstLba),
    count = BigInt(p.sectors),
    end = first + count;
  const half = p.direction === "encrypt" ? "half-encrypted" : "half-decrypted";
  const [doneState, todoState] = p.direction === "encrypt" ? ["encrypted", "plaintext"] : ["plaintext", "encrypted"];
  const range = first === 0n && count * BigInt(SECTOR) === BigInt(p.imageBytes) ? "" : ` --first-lba ${first} --sectors ${count}`;
  let where: string;
  if (!j.slot) where = "before converting anything";
  else {
    const at = j.slot.lba,
      chunkEnd = at + BigInt(j.slot.sectors);
    const pct = ((Number(at - first) / Number(count)) * 100).toFixed(1);
    const parts: string[] = [];
    if (at > first) parts.push(`${rangeText(first, at - first)} are ${doneState}`);
    parts.push(`${rangeText(at, chunkEnd - at)} were being rewritten (the journal restores them on resume)`);
    if (chunkEnd < end) parts.push(`${rangeText(chunkEnd, end - chunkEnd)} are still ${todoState}`);
    where = `at sector ${at} (${pct}% done): ${parts.join(", ")}`;
  }
  return (
    `${shownName(image)} is ${half}: an interrupted 'parapet disk ${p.direction}' (key fingerprint ${p.fingerprint}, ` +
    `${rangeText(first, count)}) stopped ${where}. ` +
    `Finish it first: parapet disk ${p.direction} --key <the key with fingerprint ${p.fingerprint}>${range} ${shownName(image)}`
  );
}
