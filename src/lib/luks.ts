// LUKS2 with a detached header for a whole disk image, by stock cryptsetup (Debian's
// cryptsetup-bin): the header (keyslots, one per user) lives in its own file, the data area of
// the disk starts at sector 0 and is XTS-AES-256 exactly as dm-crypt's aes-xts-plain64 with
// 512-byte sectors. So the disk keeps its own partition table in the clear for nobody, opens
// later with `cryptsetup open --header HDR IMG NAME`, and its volume key is the same 64-byte
// key Parapet's policy record and `parapet disk` use. The conversion of the data in place is
// `parapet disk encrypt`'s (resumable, journaled) with the volume key.
import { constants, createWriteStream, existsSync } from "node:fs";
import { mkdtemp, open, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { readFile, stat } from "node:fs/promises";
import type { Progress } from "./diskcrypt/common.ts";
import { convertImage, type ConvertResult } from "./diskcrypt/convert.ts";
import { readJournal } from "./diskcrypt/journal.ts";
import { run, runText } from "./exec.ts";

/** What `parapet luks format` asks of cryptsetup: the interface the README documents. */
export const LUKS_CIPHER = "aes-xts-plain64";
export const LUKS_KEY_BITS = 512;
export const LUKS_SECTOR = 512;
/** Header size: 16 KiB of metadata (two copies) and 2 MiB of keyslots (8 users of 256 000 bytes). */
export const LUKS_METADATA = "16k";
export const LUKS_KEYSLOTS = "2048k";

/** Key derivation for each user's keyslot. argon2id with 64 MiB stays usable in a small preboot guest. */
export interface Pbkdf {
  /** Milliseconds cryptsetup aims for on this machine (default 500). */
  iterTimeMs?: number;
  /** Fixed iteration (time-cost) count instead, for tests. */
  iterations?: number;
  /** argon2id memory in KiB (default 65536). */
  memoryKiB?: number;
}

export class LuksRefusal extends Error {}

function pbkdfArgs(p: Pbkdf = {}): string[] {
  const args = ["--pbkdf", "argon2id", "--pbkdf-memory", String(p.memoryKiB ?? 65536), "--pbkdf-parallel", "1"];
  if (p.iterations !== undefined) args.push("--pbkdf-force-iterations", String(p.iterations));
  else args.push("--iter-time", String(p.iterTimeMs ?? 500));
  return args;
}

/**
 * A passphrase file's contents: its bytes, less one trailing newline (as typed at a console).
 * Refuses an empty passphrase, and files that are not regular or are over 512 bytes.
 */
export async function readPassphrase(path: string): Promise<Buffer> {
  let st;
  try {
    st = await stat(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") throw new LuksRefusal(`passphrase file ${path}: no such file`);
    throw e;
  }
  if (!st.isFile()) throw new LuksRefusal(`passphrase file ${path} is not a regular file`);
  if (st.size > 512) throw new LuksRefusal(`passphrase file ${path} has ${st.size} bytes; a passphrase is at most 512`);
  let p = await readFile(path);
  if (p.at(-1) === 0x0a) p = p.subarray(0, p.at(-2) === 0x0d ? -2 : -1);
  if (p.length === 0) throw new LuksRefusal(`passphrase file ${path} is empty`);
  return Buffer.from(p);
}

/**
 * luksDump's device arguments: the header for the image, or the detached header file alone
 * (luksDump reads only the header; the preboot guest has no data device to name).
 */
function dumpTarget(header: string, image?: string): string[] {
  return image === undefined ? [header] : ["--header", header, image];
}

/**
 * The volume key, unlocked from the header with a passphrase (cryptsetup luksDump
 * --dump-volume-key). Without `image`, the detached header file is read alone.
 */
export async function volumeKey(header: string, image: string | undefined, passphrase: Uint8Array): Promise<Buffer> {
  let text: string;
  try {
    text = await runText("cryptsetup", ["luksDump", "--batch-mode", "--dump-volume-key", "--key-file", "-", ...dumpTarget(header, image)], {
      input: passphrase,
    });
  } catch (e) {
    throw new LuksRefusal(`cannot unlock ${header} with that passphrase (${(e as Error).message.split("\n").at(-1)})`);
  }
  const m = /MK dump:\s*((?:[0-9a-f]{2}\s+)+)/i.exec(text);
  const key = m ? Buffer.from(m[1].replace(/\s+/g, ""), "hex") : undefined;
  if (!key || key.length !== LUKS_KEY_BITS / 8) throw new Error(`cryptsetup luksDump printed no ${LUKS_KEY_BITS}-bit volume key for ${header}`);
  return key;
}

/** The header's data segment and keyslots, checked against what Parapet supports. */
export interface LuksInfo {
  cipher: string;
  keyBits: number;
  sectorBytes: number;
  offsetBytes: number;
  keyslots: number[];
}

export async function luksInfo(header: string, image?: string): Promise<LuksInfo> {
  const text = await runText("cryptsetup", ["luksDump", ...dumpTarget(header, image)]);
  if (!/^Version:\s*2$/m.test(text)) throw new LuksRefusal(`${header} is not a LUKS2 header`);
  const seg = /Data segments:\s*\n\s*0: crypt\n([\s\S]*?)\n\n/.exec(text)?.[1] ?? "";
  const field = (name: string) => new RegExp(`^\\s*${name}:\\s*(.+)$`, "m").exec(seg)?.[1].trim() ?? "";
  const slots = /Keyslots:\n([\s\S]*?)\n(?:Tokens|Digests):/.exec(text)?.[1] ?? "";
  return {
    cipher: field("cipher"),
    keyBits: Number(/^\s*Key:\s*(\d+) bits/m.exec(slots)?.[1] ?? 0),
    sectorBytes: Number(field("sector").replace(/\s*\[bytes\]/, "")),
    offsetBytes: Number(field("offset").replace(/\s*\[bytes\]/, "")),
    keyslots: [...slots.matchAll(/^\s{2}(\d+): luks2$/gm)].map((m) => Number(m[1])),
  };
}

/** Refuses a header whose data segment is not what Parapet's policy record can describe. */
export function checkSupported(header: string, info: LuksInfo): void {
  if (info.cipher !== LUKS_CIPHER || info.sectorBytes !== LUKS_SECTOR || info.offsetBytes !== 0 || info.keyBits !== LUKS_KEY_BITS)
    throw new LuksRefusal(
      `${header}: ${info.cipher || "no cipher"}, ${info.keyBits}-bit key, ${info.sectorBytes}-byte sectors at offset ` +
        `${info.offsetBytes}; Parapet needs ${LUKS_CIPHER}, ${LUKS_KEY_BITS} bits, ${LUKS_SECTOR}-byte sectors at offset 0`,
    );
}

export interface FormatOptions {
  image: string;
  header: string;
  passphrase: Uint8Array;
  pbkdf?: Pbkdf;
  progress?: (p: Progress) => void;
  shouldStop?: () => boolean;
}

/**
 * Make a new LUKS2 header for `image` (a plaintext disk) and encrypt the image in place with
 * its volume key. When the header exists and the image holds an unfinished conversion
 * journal, the conversion resumes with the key the passphrase unlocks; an existing header
 * is otherwise refused, so a key is never replaced under encrypted data.
 */
export async function luksFormat(o: FormatOptions): Promise<ConvertResult & { created: boolean }> {
  if (!existsSync(o.image)) throw new LuksRefusal(`disk image ${o.image}: no such file`);
  let created = false;
  if (existsSync(o.header)) {
    if (!(await readJournal(o.image)))
      throw new LuksRefusal(`${o.header} exists: refusing to replace a header (its key may protect data); remove it first if it is unused`);
  } else {
    await run(
      "cryptsetup",
      [
        "luksFormat",
        "--batch-mode",
        "--type",
        "luks2",
        "--header",
        o.header,
        "--cipher",
        LUKS_CIPHER,
        "--key-size",
        String(LUKS_KEY_BITS),
        "--sector-size",
        String(LUKS_SECTOR),
        "--luks2-metadata-size",
        LUKS_METADATA,
        "--luks2-keyslots-size",
        LUKS_KEYSLOTS,
        ...pbkdfArgs(o.pbkdf),
        "--key-file",
        "-",
        o.image,
      ],
      { input: o.passphrase },
    );
    created = true;
  }
  checkSupported(o.header, await luksInfo(o.header, o.image));
  const key = await volumeKey(o.header, o.image, o.passphrase);
  try {
    const r = await convertImage({ image: o.image, key, direction: "encrypt", progress: o.progress, shouldStop: o.shouldStop });
    return { ...r, created };
  } finally {
    key.fill(0);
  }
}

/** Add a user: a new passphrase keyslot, unlocked by an existing user's passphrase. */
export async function luksAddPassphrase(header: string, image: string, existing: Uint8Array, added: Uint8Array, pbkdf?: Pbkdf): Promise<number> {
  if (added.length === 0) throw new LuksRefusal("the new passphrase is empty");
  const before = new Set((await luksInfo(header, image)).keyslots);
  (await volumeKey(header, image, existing)).fill(0); // a clear refusal for a wrong passphrase
  // cryptsetup reads the existing passphrase from a FIFO in a private directory and the new one
  // from standard input: neither is ever written to a file.
  const dir = await mkdtemp(join(tmpdir(), "parapet-luks-"));
  const fifo = join(dir, "existing");
  try {
    await run("mkfifo", ["-m", "600", fifo]);
    const feed = new Promise<void>((resolve, reject) => {
      const w = createWriteStream(fifo); // opens once cryptsetup opens the other end
      w.on("error", reject);
      w.end(existing, () => resolve());
    });
    const add = run("cryptsetup", ["luksAddKey", "--batch-mode", "--header", header, ...pbkdfArgs(pbkdf), "--key-file", fifo, image, "-"], {
      input: added,
    });
    try {
      await Promise.all([add, feed]);
    } catch (e) {
      // cryptsetup failed before reading the FIFO: open its read end so the writer finishes.
      await open(fifo, constants.O_RDONLY | constants.O_NONBLOCK).then(
        (fh) => fh.close(),
        () => {},
      );
      await feed.catch(() => {});
      throw e;
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  const slot = (await luksInfo(header, image)).keyslots.find((s) => !before.has(s));
  if (slot === undefined) throw new Error(`cryptsetup luksAddKey added no keyslot to ${header}`);
  return slot;
}
