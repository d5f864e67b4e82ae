// Lines of code of the trusted parts Parapet adds for disk protection: non-blank lines outside
// C comments, per file, against BitVisor's ATA driver (2,762 lines, VEE'09 Table 2).
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { REPO_ROOT } from "../src/lib/guestimage.ts";

export const ATA_TARGET = 1000;
export const BITVISOR_ATA = 2762;

/** Non-blank lines once C comments are removed. */
export function sloc(text: string): number {
  const stripped = text.replace(/\/\*[\s\S]*?\*\//g, "").replace(/\/\/[^\n]*/g, "");
  return stripped.split("\n").filter((l) => l.trim()).length;
}

export interface LocGroup { name: string; files: { path: string; lines: number }[]; total: number }

function group(name: string, paths: string[]): LocGroup {
  const files = paths.map((p) => ({ path: p, lines: sloc(readFileSync(join(REPO_ROOT, p), "utf8")) }));
  return { name, files, total: files.reduce((s, f) => s + f.lines, 0) };
}

const dir = (d: string) => readdirSync(join(REPO_ROOT, d)).filter((f) => /\.[ch]$/.test(f)).sort().map((f) => `${d}/${f}`);

export function benchLoc(): LocGroup[] {
  return [
    group("ATA driver (hv/drivers/ata)", dir("hv/drivers/ata")),
    group("storage service and policy record (hv/services, hv/handoff)", [...dir("hv/services"), ...dir("hv/handoff")]),
    group("crypto (hv/crypto)", dir("hv/crypto")),
  ];
}

export function formatLoc(groups: LocGroup[]): string {
  const out: string[] = [];
  for (const g of groups) {
    out.push(`${g.name}: ${g.total} lines`);
    for (const f of g.files) out.push(`  ${String(f.lines).padStart(5)}  ${f.path}`);
  }
  const ata = groups[0].total;
  out.push("");
  out.push(`ATA driver: ${ata} lines; target <= ${ATA_TARGET}: ${ata <= ATA_TARGET ? "PASS" : "MISS"}; ` +
    `BitVisor's ATA driver: ${BITVISOR_ATA} lines (ratio ${(ata / BITVISOR_ATA).toFixed(2)})`);
  return out.join("\n") + "\n";
}
