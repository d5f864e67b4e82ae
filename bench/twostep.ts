// Boot-time benchmark of two-step execution (docs/preboot.md): the target OS (the test guest,
// its disk a LUKS2-formatted copy of the image) booted from a GRUB ISO that carries the preboot
// guest, against the same disk booted from a GRUB ISO that carries the volume key directly as a
// policy record module. Both are booted alternately (policy, two-step, policy, …), each in a fresh
// QEMU with snapshot=on. A boot is timed from QEMU spawn to PARAPET-GUEST-READY on the console
// (the target's init is done); two-step boots also record their phases.
// Run through the CLI (`npx parapet bench twostep --help`) or directly
// (`node --import tsx bench/twostep.ts [options]`).
import { existsSync } from "node:fs";
import { copyFile, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { loadavg } from "node:os";
import { join, resolve } from "node:path";
import { DEFAULT_IMAGE, REPO_ROOT } from "../src/lib/guestimage.ts";
import { DEFAULT_PREBOOT_DIR } from "../src/lib/prebootimage.ts";
import { buildIso } from "../src/lib/iso.ts";
import { luksFormat, volumeKey } from "../src/lib/luks.ts";
import { runText } from "../src/lib/exec.ts";
import { encodePolicy, wholeDiskPolicy } from "../src/lib/policyrecord.ts";
import { describeFate, QemuSession } from "../src/lib/qemu.ts";
import { hostDescription, qemuVersion } from "./common.ts";
import { median } from "./boot.ts";

/** The passphrase of the benchmark's only keyslot, typed at the preboot's prompt. */
const PASSPHRASE = "pass";

export interface BenchTwostepOptions {
  /** Boots of each kind (default 3). */
  runs?: number;
  cpus?: number;
  memory?: string;
  /** The plaintext test guest image to copy and LUKS-format (default build/guest.img); never modified. */
  disk?: string;
  /** Limit for one boot, in seconds (default 300). */
  timeoutSec?: number;
  /** Progress, one line per step; default silent. */
  log?: (msg: string) => void;
}

export type TwostepMode = "policy" | "twostep";

export interface TwostepRun {
  /** 1-based position in the sequence (policy, twostep, policy, …). */
  seq: number;
  mode: TwostepMode;
  /** QEMU spawn to PARAPET-GUEST-READY (the target's init done): the figure compared. */
  readyMs: number;
  /** QEMU spawn to the target's shell answering. */
  shellMs: number;
  /** Two-step only: spawn to `Passphrase: `; prompt to `preboot: handing off to the hypervisor`; handoff to READY. */
  promptMs?: number;
  unlockMs?: number;
  targetMs?: number;
  /** Two-step only: MiB of the preboot guest's RAM the hypervisor wiped (its log). */
  wipedMiB?: number;
}

export interface Stats {
  n: number;
  medianMs: number;
  minMs: number;
  maxMs: number;
}

export interface BenchTwostepResult {
  config: {
    runs: number;
    cpus: number;
    memory: string;
    disk: string;
    /** The keyslot's key derivation as luksDump reports it. */
    pbkdf: string;
    qemu: string;
    host: string;
    loadAvg: number;
    date: string;
  };
  runs: TwostepRun[];
  summary?: {
    policy: Stats;
    twostep: Stats;
    /** Median two-step READY / median policy READY. */
    ratio: number;
    prompt: Stats;
    unlock: Stats;
    target: Stats;
    wipedMiB: number;
  };
  error?: string;
}

function stats(xs: readonly number[]): Stats {
  return { n: xs.length, medianMs: median(xs), minMs: Math.min(...xs), maxMs: Math.max(...xs) };
}

/** The first keyslot's key derivation from `cryptsetup luksDump`: e.g. "argon2id, time cost 4, memory 65536 KiB, 1 thread". */
export function describePbkdf(dump: string): string {
  const f = (name: string) => new RegExp(`^\\s*${name}:\\s*(.+)$`, "m").exec(dump)?.[1].trim();
  const kdf = f("PBKDF");
  if (!kdf) return "unknown";
  if (kdf === "pbkdf2") return `pbkdf2, ${f("Iterations") ?? "?"} iterations`;
  return `${kdf}, time cost ${f("Time cost") ?? "?"}, memory ${f("Memory") ?? "?"} KiB, ${f("Threads") ?? "?"} thread(s)`;
}

interface Prepared {
  dir: string;
  image: string;
  isoTwostep: string;
  isoPolicy: string;
  pbkdf: string;
}

/** A LUKS-formatted copy of the image (default key derivation), and the two ISOs. */
async function prepare(disk: string, log: (m: string) => void): Promise<Prepared> {
  for (const f of ["vmlinuz", "initrd.gz"]) {
    if (!existsSync(join(DEFAULT_PREBOOT_DIR, f))) throw new Error(`${join(DEFAULT_PREBOOT_DIR, f)} is missing: run npx parapet preboot build`);
  }
  if (!existsSync(disk)) throw new Error(`disk image ${disk} does not exist (build one with: npx parapet image)`);
  const base = join(REPO_ROOT, "build", "test");
  await mkdir(base, { recursive: true });
  const dir = await mkdtemp(join(base, "bench-twostep-"));
  const image = join(dir, "disk.img");
  const header = join(dir, "disk.hdr");
  await copyFile(disk, image);
  log("LUKS2-formatting a copy of the image (the default argon2id keyslot of parapet luks format) …");
  const pass = Buffer.from(PASSPHRASE);
  await luksFormat({ image, header, passphrase: pass });
  const pbkdf = describePbkdf(await runText("cryptsetup", ["luksDump", "--header", header, image]));
  log(`keyslot: ${pbkdf}`);
  const key = await volumeKey(header, image, pass);
  const record = join(dir, "policy.rec");
  try {
    // Both ISOs boot QEMU's pc machine, which has no IOMMU: the records must allow that.
    await writeFile(record, encodePolicy(wholeDiskPolicy(key, undefined, true)), { mode: 0o600 });
  } finally {
    key.fill(0);
  }
  const isoTwostep = join(dir, "twostep.iso");
  const isoPolicy = join(dir, "policy.iso");
  log("building the ISOs (two-step, policy module) …");
  await buildIso({ output: isoTwostep, preboot: { header, allowNoIommu: true } });
  await buildIso({ output: isoPolicy, policy: record });
  return { dir, image, isoTwostep, isoPolicy, pbkdf };
}

async function bootOnce(seq: number, mode: TwostepMode, p: Prepared, o: { cpus: number; memory: string; timeoutSec: number }): Promise<TwostepRun> {
  const s = new QemuSession({
    cdrom: mode === "twostep" ? p.isoTwostep : p.isoPolicy,
    disk: p.image,
    snapshot: true,
    cpus: o.cpus,
    memory: o.memory,
    hvLog: join(p.dir, `hv-${seq}.log`),
  });
  const deadline = s.started + o.timeoutSec * 1000;
  const left = () => Math.max(1000, deadline - Date.now());
  try {
    let promptMs: number | undefined,
      handoffMs: number | undefined,
      from = 0;
    if (mode === "twostep") {
      const m = await s.waitFor(/Passphrase: /, left());
      promptMs = Date.now() - s.started;
      s.send(`${PASSPHRASE}\r`);
      from = m.index + m[0].length;
      const h = await s.waitFor(/preboot: handing off to the hypervisor/, left(), from);
      handoffMs = Date.now() - s.started;
      from += h.index + h[0].length;
    }
    await s.waitFor(/PARAPET-GUEST-READY/, left(), from);
    const readyMs = Date.now() - s.started;
    await s.ready(left(), from);
    const shellMs = Date.now() - s.started;
    const run: TwostepRun = { seq, mode, readyMs, shellMs };
    if (mode === "twostep") {
      const w = /handoff: (\d+) MiB of the preboot guest's RAM wiped/.exec(s.hvLog());
      if (!w) throw new Error("no 'handoff: N MiB of the preboot guest's RAM wiped' line in the hypervisor log");
      Object.assign(run, { promptMs, unlockMs: handoffMs! - promptMs!, targetMs: readyMs - handoffMs!, wipedMiB: Number(w[1]) });
    }
    s.kill();
    await s.fate(10_000);
    return run;
  } catch (err) {
    s.kill();
    const fate = await s.fate(10_000);
    const why = fate.kind === "panic" || fate.kind === "error" ? describeFate(fate) : err instanceof Error ? err.message : String(err);
    throw new Error(`boot ${seq} (${mode}) failed: ${why}\nhypervisor log tail:\n${s.hvLog().slice(-1500)}`);
  }
}

/** Boots policy and two-step alternately, `runs` times each; never throws for a failed boot (see `error`). */
export async function benchTwostep(opts: BenchTwostepOptions = {}): Promise<BenchTwostepResult> {
  const o = {
    runs: opts.runs ?? 3,
    cpus: opts.cpus ?? 2,
    memory: opts.memory ?? "512M",
    disk: resolve(opts.disk ?? DEFAULT_IMAGE),
    timeoutSec: opts.timeoutSec ?? 300,
  };
  if (!Number.isInteger(o.runs) || o.runs < 1) throw new Error(`runs ${o.runs}: expected a positive integer`);
  if (!Number.isInteger(o.cpus) || o.cpus < 1 || o.cpus > 16) throw new Error(`cpus ${o.cpus}: expected 1..16`);
  const log = opts.log ?? (() => {});
  const result: BenchTwostepResult = {
    config: {
      runs: o.runs,
      cpus: o.cpus,
      memory: o.memory,
      disk: o.disk,
      pbkdf: "unknown",
      qemu: qemuVersion(),
      host: hostDescription(),
      loadAvg: loadavg()[0],
      date: new Date().toISOString(),
    },
    runs: [],
  };
  let p: Prepared | undefined;
  try {
    p = await prepare(o.disk, log);
    result.config.pbkdf = p.pbkdf;
    let seq = 0;
    for (let i = 0; i < o.runs; i++) {
      for (const mode of ["policy", "twostep"] as const) {
        seq++;
        log(`boot ${seq}/${2 * o.runs}: ${mode} …`);
        const r = await bootOnce(seq, mode, p, o);
        result.runs.push(r);
        log(`boot ${seq}/${2 * o.runs}: ${mode} ${sec(r.readyMs)} s to READY`);
      }
    }
  } catch (err) {
    result.error = err instanceof Error ? err.message : String(err);
    return result;
  } finally {
    if (p) await rm(p.dir, { recursive: true, force: true });
  }
  const of = (mode: TwostepMode) => result.runs.filter((r) => r.mode === mode);
  const policy = stats(of("policy").map((r) => r.readyMs));
  const twostep = stats(of("twostep").map((r) => r.readyMs));
  result.summary = {
    policy,
    twostep,
    ratio: twostep.medianMs / policy.medianMs,
    prompt: stats(of("twostep").map((r) => r.promptMs!)),
    unlock: stats(of("twostep").map((r) => r.unlockMs!)),
    target: stats(of("twostep").map((r) => r.targetMs!)),
    wipedMiB: median(of("twostep").map((r) => r.wipedMiB!)),
  };
  return result;
}

const sec = (ms: number) => (ms / 1000).toFixed(2);
const opt = (ms: number | undefined) => (ms === undefined ? "-" : sec(ms)).padStart(8);

/** The human-readable report: every boot, medians, the ratio, the two-step phases. */
export function formatTwostepReport(r: BenchTwostepResult): string {
  const c = r.config;
  const out: string[] = [];
  out.push(`Two-step boot benchmark: ${c.runs} boot(s) each, policy module and two-step alternating; -smp ${c.cpus}, -m ${c.memory}, TCG, GRUB ISO`);
  out.push(`keyslot: ${c.pbkdf}`);
  out.push(`QEMU: ${c.qemu}; host: ${c.host}, load average ${c.loadAvg.toFixed(2)} at start`);
  out.push("");
  out.push("  #  mode      READY s  shell s  prompt s  unlock s  target s  wiped");
  for (const b of r.runs) {
    out.push(
      `${String(b.seq).padStart(3)}  ${b.mode.padEnd(8)} ${sec(b.readyMs).padStart(8)} ${sec(b.shellMs).padStart(8)}` +
        `  ${opt(b.promptMs)}  ${opt(b.unlockMs)}  ${opt(b.targetMs)}  ${b.wipedMiB === undefined ? "    -" : `${b.wipedMiB} MiB`}`,
    );
  }
  const s = r.summary;
  if (!s) return out.join("\n") + "\n";
  const line = (x: Stats) => `${sec(x.medianMs)} s  (min ${sec(x.minMs)}, max ${sec(x.maxMs)})`;
  out.push("");
  out.push(`median to READY  policy  ${line(s.policy)}`);
  out.push(`median to READY  twostep ${line(s.twostep)}`);
  out.push(`ratio twostep/policy ${s.ratio.toFixed(3)} (same run)`);
  out.push("");
  out.push("two-step phases (medians):");
  out.push(`  spawn -> Passphrase: prompt          ${line(s.prompt)}`);
  out.push(`  prompt -> preboot handing off        ${line(s.unlock)}`);
  out.push(`  handoff -> target READY              ${line(s.target)}`);
  out.push(`  preboot RAM wiped by the hypervisor  ${s.wipedMiB} MiB`);
  return out.join("\n") + "\n";
}
