// What parapet disk status shows: the marker, an unfinished conversion and the lock of an
// image, and without a marker whether sector 0 looks like a plaintext MBR disk.
import { existsSync } from "node:fs";
import { SECTOR } from "../xts.ts";
import { rangeText, shownName } from "./common.ts";
import { imageSectors, readSector } from "./io.ts";
import { describeJournal, readJournal } from "./journal.ts";
import { lockPath } from "./lock.ts";
import { hasBootSignature } from "./mbr.ts";
import { readState } from "./state.ts";

/** Human-readable state of an image: marker, journal, lock. */
export async function describeImage(image: string): Promise<string> {
  const total = await imageSectors(image);
  const lines = [`${image}: ${total} sectors (${((Number(total) * SECTOR) / 2 ** 20).toFixed(1)} MiB)`];
  const j = await readJournal(image);
  if (j) lines.push(`  unfinished conversion: ${describeJournal(image, j)}`);
  const s = await readState(image);
  if (!s || s.length === 0) {
    lines.push("  marker: none (not marked encrypted)");
    const s0 = await readSector(image, 0n);
    lines.push(
      `  sector 0 ${hasBootSignature(s0) ? "ends in 55 AA (looks like a plaintext MBR disk)" : "does not end in 55 AA (not a plaintext MBR disk: encrypted, blank or unpartitioned)"}`,
    );
  } else {
    for (const e of s) lines.push(`  encrypted: ${rangeText(e.firstLba, e.sectors)} with key fingerprint ${e.key}`);
  }
  if (existsSync(lockPath(image))) lines.push(`  lock: ${shownName(lockPath(image))} exists (a command is running, or one was killed)`);
  return lines.join("\n") + "\n";
}
