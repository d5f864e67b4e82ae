// Lines of code of the trusted parts Parapet adds for disk protection: non-blank lines outside
// C comments, per file, against BitVisor's ATA driver (2,762 lines, VEE'09 Table 2) and, for
// DMA isolation (hv/iommu, VT-d and AMD-Vi), against its own target; and of
// two-step execution, the hypervisor's part against the preboot guest's (SECURWARE'09 Table 4).
import { spawnSync } from "node:child_process";
import { readFileSync, readdirSync } from "node:fs";
import { join, relative, resolve, sep } from "node:path";
import { buildSync } from "esbuild";
import { REPO_ROOT } from "../src/lib/guestimage.ts";
import { PREBOOT_BUNDLE } from "../src/lib/prebootimage.ts";

export const ATA_TARGET = 1000;
export const BITVISOR_ATA = 2762;
export const AHCI_TARGET = 1000;
/** BitVisor's AHCI driver (drivers/ahci.c), as the issue counts it. */
export const BITVISOR_AHCI = 1612;
/** DMA isolation (hv/iommu): Intel VT-d and AMD-Vi together, with their vendor-neutral layer. */
export const IOMMU_TARGET = 800;

/** Non-blank lines once C comments are removed. */
export function sloc(text: string): number {
  const stripped = text.replace(/\/\*[\s\S]*?\*\//g, "").replace(/\/\/[^\n]*/g, "");
  return stripped.split("\n").filter((l) => l.trim()).length;
}

export interface LocGroup {
  name: string;
  files: { path: string; lines: number }[];
  total: number;
  /** Part of the IOMMU code (hv/iommu): the vendor it serves, or the vendor-neutral layer. */
  iommu?: "VT-d" | "AMD-Vi" | "neutral";
}

function group(name: string, paths: string[]): LocGroup {
  const files = paths.map((p) => ({ path: p, lines: sloc(readFileSync(join(REPO_ROOT, p), "utf8")) }));
  return { name, files, total: files.reduce((s, f) => s + f.lines, 0) };
}

/** hv/iommu by vendor from the file name: vtd*, dmar* Intel VT-d; amdvi*, ivrs* AMD-Vi; the rest neutral. */
function iommuGroups(): LocGroup[] {
  const files = dir("hv/iommu");
  const kind = (p: string) => (/\/(vtd|dmar)[^/]*$/.test(p) ? "VT-d" : /\/(amdvi|ivrs)[^/]*$/.test(p) ? "AMD-Vi" : "neutral");
  return (
    [
      ["VT-d", "IOMMU, Intel VT-d (hv/iommu: vtd, dmar)"],
      ["AMD-Vi", "IOMMU, AMD-Vi (hv/iommu: amdvi, ivrs)"],
      ["neutral", "IOMMU, vendor-neutral layer (hv/iommu: iommu)"],
    ] as const
  ).map(([k, name]) => ({
    ...group(
      name,
      files.filter((p) => kind(p) === k),
    ),
    iommu: k,
  }));
}

const dir = (d: string) =>
  readdirSync(join(REPO_ROOT, d))
    .filter((f) => /\.[ch]$/.test(f))
    .sort()
    .map((f) => `${d}/${f}`);

export function benchLoc(): LocGroup[] {
  return [
    group("ATA driver (hv/drivers/ata)", dir("hv/drivers/ata")),
    group("AHCI driver (hv/drivers/ahci)", dir("hv/drivers/ahci")),
    group("storage service and policy record (hv/services, hv/handoff)", [...dir("hv/services"), ...dir("hv/handoff")]),
    group("crypto (hv/crypto)", dir("hv/crypto")),
    ...iommuGroups(),
    group("sleep, reset and power-off (hv/power)", dir("hv/power")),
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
  out.push(
    `ATA driver: ${ata} lines; target <= ${ATA_TARGET}: ${ata <= ATA_TARGET ? "PASS" : "MISS"}; ` +
      `BitVisor's ATA driver: ${BITVISOR_ATA} lines (ratio ${(ata / BITVISOR_ATA).toFixed(2)})`,
  );
  const ahci = groups.find((g) => g.name.startsWith("AHCI driver"));
  if (ahci)
    out.push(
      `AHCI driver: ${ahci.total} lines; target <= ${AHCI_TARGET}: ${ahci.total <= AHCI_TARGET ? "PASS" : "MISS"}; ` +
        `BitVisor's AHCI driver: ${BITVISOR_AHCI} lines (ratio ${(ahci.total / BITVISOR_AHCI).toFixed(2)})`,
    );
  const iommu = groups.filter((g) => g.iommu);
  if (iommu.length) {
    const total = iommu.reduce((s, g) => s + g.total, 0);
    out.push(
      `IOMMU (hv/iommu): ${total} lines (${iommu.map((g) => `${g.iommu} ${g.total}`).join(", ")}); ` +
        `target <= ${IOMMU_TARGET} for both kinds together, neutral layer included: ${total <= IOMMU_TARGET ? "PASS" : "MISS"}` +
        ` (vendor code alone: ${total - iommu.filter((g) => g.iommu === "neutral").reduce((s, g) => s + g.total, 0)})`,
    );
  }
  return out.join("\n") + "\n";
}

// ---- Two-step execution: what the hypervisor gained, against what runs outside it ----
//
// Inside the TCB: the hypervisor's code that exists for two-step execution (whole files, and
// the functions added to shared files). Outside: the ID-management code of the preboot guest,
// i.e. the repository's TypeScript files that esbuild puts into the preboot app, counted by the
// same rule (non-blank lines outside /* */ and // comments), and the bundled npm packages by
// name and bundled size. The paper (SECURWARE'09, Table 4) moved 29.5 % of BitVisor's ID
// management libraries out of the hypervisor.

/** The commit before two-step execution began on the hypervisor. */
export const BEFORE_TWOSTEP = "8197fb2";
/** The paper's reduction of the ID management libraries (4,198 of 14,243 LOC) and of the whole run-time portion. */
export const PAPER_SHARE = 29.5;
export const PAPER_TOTAL_REDUCTION = 10.1;

/** Hypervisor files that exist only for two-step execution. */
export const TWOSTEP_HV_FILES = [
  "hv/handoff/preboot.c",
  "hv/handoff/preboot.h",
  "hv/guest/linux.c",
  "hv/guest/linux.h",
  "hv/io/legacy.c",
  "hv/io/legacy.h",
];
/** Functions of shared files that exist only for two-step execution. */
export const TWOSTEP_HV_FUNCTIONS: readonly { path: string; fn: string }[] = [
  { path: "hv/core/lapic.c", fn: "lapic_save" },
  { path: "hv/core/lapic.c", fn: "lapic_restore" },
  { path: "hv/vmm/ioapic.c", fn: "ioapic_restore" },
  { path: "hv/vmm/apic.c", fn: "apic_init_others" },
  { path: "hv/drivers/ata/ata_pci.c", fn: "ata_reset" },
  { path: "hv/drivers/ata/ata_channel.c", fn: "ata_channel_reset" },
  { path: "hv/handoff/policy.c", fn: "policy_place_problem" },
];
/** Shared with the policy-module path, so not counted on either side. */
export const TWOSTEP_HV_SHARED = ["hv/handoff/module.c (handoff_install: the one path a record takes into force, module or handoff)"];

/**
 * One C function's text: from the line that names it at column 0 (not a declaration) to the
 * first `}` at column 0 after it (the kernel style hv/ is written in).
 */
export function cFunction(text: string, name: string): string {
  const lines = text.split("\n");
  const start = lines.findIndex((l) => /^[A-Za-z_]/.test(l) && new RegExp(`\\b${name}\\(`).test(l) && !/;\s*$/.test(l));
  if (start < 0) throw new Error(`function ${name} not found`);
  const end = lines.findIndex((l, i) => i > start && /^}/.test(l));
  if (end < 0) throw new Error(`function ${name}: no closing brace at column 0`);
  return lines.slice(start, end + 1).join("\n");
}

/** The hypervisor's source files as the Makefile builds them (.c, .S) plus headers; not hv/test, hv/fuzz. */
const isHvSource = (p: string) => /^hv\//.test(p) && /\.(c|h|S)$/.test(p) && !/^hv\/(test|fuzz)\//.test(p);

function hvFilesNow(d = "hv"): string[] {
  const out: string[] = [];
  for (const e of readdirSync(join(REPO_ROOT, d), { withFileTypes: true })) {
    const p = `${d}/${e.name}`;
    if (e.isDirectory()) out.push(...hvFilesNow(p));
    else if (isHvSource(p)) out.push(p);
  }
  return out.sort();
}

function git(args: string[]): string {
  const r = spawnSync("git", args, { cwd: REPO_ROOT, encoding: "utf8", maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`git ${args.join(" ")}: ${r.stderr.trim()}`);
  return r.stdout;
}

export interface HvTotal {
  label: string;
  files: number;
  lines: number;
}

/** The whole hypervisor now (working tree) and at `commit` (read with git show, nothing written). */
export function hvTotals(commit = BEFORE_TWOSTEP): { now: HvTotal; before: HvTotal } {
  const nowFiles = hvFilesNow();
  const now = nowFiles.reduce((s, p) => s + sloc(readFileSync(join(REPO_ROOT, p), "utf8")), 0);
  const oldFiles = git(["ls-tree", "-r", "--name-only", commit, "hv"]).split("\n").filter(isHvSource);
  const before = oldFiles.reduce((s, p) => s + sloc(git(["show", `${commit}:${p}`])), 0);
  const head = git(["log", "-1", "--format=%h"]).trim();
  const dirty = git(["diff", "--name-only", "HEAD", "--", "hv"]).trim() !== "";
  return {
    now: { label: `now (working tree at ${head}${dirty ? ", with uncommitted hv changes" : ""})`, files: nowFiles.length, lines: now },
    before: { label: `at ${commit} (before two-step execution)`, files: oldFiles.length, lines: before },
  };
}

export interface BundleDep {
  name: string;
  version: string;
  bytes: number;
  files: number;
}

/**
 * What esbuild puts into the preboot app: the repository files and the npm packages that
 * contribute bytes, built with the app's own options (PREBOOT_BUNDLE) plus a metafile.
 */
export function prebootBundleInputs(): { repoFiles: string[]; deps: BundleDep[]; bundleBytes: number } {
  const r = buildSync({ ...PREBOOT_BUNDLE, metafile: true });
  const out = Object.values(r.metafile!.outputs)[0];
  const repoFiles: string[] = [];
  const deps = new Map<string, BundleDep>();
  for (const [path, { bytesInOutput }] of Object.entries(out.inputs)) {
    const rel = relative(REPO_ROOT, resolve(process.cwd(), path)).split(sep).join("/");
    const m = /(?:^|\/)node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(rel);
    if (!m) {
      if (bytesInOutput > 0) repoFiles.push(rel);
      continue;
    }
    const d = deps.get(m[1]) ?? { name: m[1], version: "?", bytes: 0, files: 0 };
    d.bytes += bytesInOutput;
    d.files++;
    deps.set(m[1], d);
  }
  for (const d of deps.values()) {
    try {
      d.version = JSON.parse(readFileSync(join(REPO_ROOT, "node_modules", d.name, "package.json"), "utf8")).version;
    } catch {
      /* version unknown */
    }
  }
  return { repoFiles: repoFiles.sort(), deps: [...deps.values()].sort((a, b) => b.bytes - a.bytes), bundleBytes: out.bytes };
}

export interface TwostepLoc {
  inside: LocGroup;
  shared: string[];
  outside: LocGroup;
  deps: BundleDep[];
  bundleBytes: number;
  /** outside / (outside + inside), in per cent. */
  sharePct: number;
  hv: { now: HvTotal; before: HvTotal };
}

export function benchTwostepLoc(): TwostepLoc {
  const whole = group("x", TWOSTEP_HV_FILES).files;
  const fns = TWOSTEP_HV_FUNCTIONS.map(({ path, fn }) => ({
    path: `${path}: ${fn}()`,
    lines: sloc(cFunction(readFileSync(join(REPO_ROOT, path), "utf8"), fn)),
  }));
  const files = [...whole, ...fns];
  const inside: LocGroup = {
    name: "inside the TCB: hypervisor code for two-step execution",
    files,
    total: files.reduce((s, f) => s + f.lines, 0),
  };
  const bundle = prebootBundleInputs();
  const outside = group("outside the TCB: ID management in the preboot guest (repository TypeScript in the esbuild bundle)", bundle.repoFiles);
  return {
    inside,
    shared: TWOSTEP_HV_SHARED,
    outside,
    deps: bundle.deps,
    bundleBytes: bundle.bundleBytes,
    sharePct: (100 * outside.total) / (outside.total + inside.total),
    hv: hvTotals(),
  };
}

export function formatTwostepLoc(t: TwostepLoc): string {
  const out: string[] = ["Two-step execution"];
  for (const g of [t.inside, t.outside]) {
    out.push(`${g.name}: ${g.total} lines`);
    for (const f of g.files) out.push(`  ${String(f.lines).padStart(5)}  ${f.path}`);
  }
  out.push(`shared, not counted: ${t.shared.join("; ")}`);
  const kib = (n: number) => `${(n / 1024).toFixed(0)} KiB`;
  out.push(
    `bundled npm packages (minified bytes in the ${kib(t.bundleBytes)} app, not counted): ` +
      t.deps.map((d) => `${d.name} ${d.version} ${kib(d.bytes)}`).join(", "),
  );
  out.push("");
  out.push(
    `outside / (outside + inside) = ${t.outside.total} / ${t.outside.total + t.inside.total} = ${t.sharePct.toFixed(1)} %` +
      `  (paper: ${PAPER_SHARE} % of BitVisor's ID management libraries moved out)`,
  );
  const { now, before } = t.hv;
  const delta = now.lines - before.lines;
  out.push(
    `whole hypervisor (hv/ .c .h .S, not test/ or fuzz/): ${before.lines} lines in ${before.files} files ${before.label}; ` +
      `${now.lines} lines in ${now.files} files ${now.label}; ${delta >= 0 ? "+" : ""}${delta} (${((100 * delta) / before.lines).toFixed(1)} %)`,
  );
  return out.join("\n") + "\n";
}
