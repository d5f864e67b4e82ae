// The state marker beside an image, IMAGE.parapet-state (JSON): which sectors are encrypted with
// which key fingerprint, as extents kept sorted and merged. docs/disk-encryption.md shows it.
import { readFile, rm } from "node:fs/promises";
import { shownName } from "./common.ts";
import { fsyncDir, writeAtomic } from "./io.ts";

export const STATE_SUFFIX = ".parapet-state";
export const statePath = (image: string) => image + STATE_SUFFIX;

export interface Extent {
  firstLba: bigint;
  sectors: bigint;
  /** key fingerprint (keyFingerprint) */
  key: string;
}

interface StateFile {
  format: "parapet-disk-state";
  version: 1;
  cipher: "aes-xts-plain64";
  sectorSize: 512;
  encrypted: { firstLba: string; sectors: string; key: string }[];
}

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
    throw new Error(
      `${shownName(statePath(image))} is damaged (${(e as Error).message}); ` +
        "check the image with 'parapet disk verify', then remove the marker or use --force",
    );
  }
}

export async function writeState(image: string, extents: Extent[]): Promise<void> {
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
