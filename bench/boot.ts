// Boot-time benchmark: the test guest booted bare and under Parapet, alternately, in QEMU.
// Each boot is timed from QEMU start to QEMU exit (ready, read the exit counters, power off).
// Run through the CLI: `npx parapet bench boot --help`, or `npm run bench [-- options]`.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describeFate, QemuSession, type Fate } from "../src/lib/qemu.ts";
import { guestBenchConfig, guestBenchSettings, type GuestBenchConfig, type GuestBenchOptions } from "./common.ts";

/** VM exit reasons as indexed in /proc/parapet/exits. */
export const EXIT_REASONS = ["cpuid", "rdmsr", "wrmsr", "io", "vmmcall", "virt_insn", "npf", "shutdown", "other", "nmi", "iret", "step"] as const;

/** Target for the ratio of median boot times, Parapet / bare. */
export const TARGET_RATIO = 1.1;

/** The guest command run after READY in every boot (bare it fails: there is no /proc/parapet). */
const EXITS_CMD = "cat /proc/parapet/exits";

export type BenchBootOptions = GuestBenchOptions;

export type BootMode = "bare" | "parapet";

export interface BootRun {
  /** 1-based position in the sequence (bare, parapet, bare, parapet, …). */
  seq: number;
  mode: BootMode;
  /** QEMU start to QEMU exit. */
  wallMs: number;
  /** QEMU start to PARAPET-GUEST-READY on the console. */
  readyMs: number;
  /** QEMU start to the shell prompt answering (after `stty -echo`). */
  shellMs: number;
  /** Parapet only: VM exits since boot by reason name, and the CPU count Parapet reported. */
  exits?: Record<string, number>;
  exitsTotal?: number;
  hvCpus?: number;
  fate: Fate;
}

export interface Stats {
  n: number;
  medianMs: number;
  minMs: number;
  maxMs: number;
}

export interface BenchBootResult {
  config: GuestBenchConfig;
  runs: BootRun[];
  summary?: {
    bare: Stats;
    parapet: Stats;
    bareReady: Stats;
    parapetReady: Stats;
    /** Median Parapet wall time / median bare wall time. */
    ratio: number;
    target: number;
    pass: boolean;
    /** Median over the Parapet boots of each exit reason's count, and of the total. */
    exitsMedian: Record<string, number>;
    exitsTotalMedian: number;
  };
  /** Set when a boot failed; runs holds the boots before it. */
  error?: string;
}

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

function stats(xs: readonly number[]): Stats {
  return { n: xs.length, medianMs: median(xs), minMs: Math.min(...xs), maxMs: Math.max(...xs) };
}

/** Parses /proc/parapet/exits: `INDEX COUNT` lines, then `cpus=N`. */
export function parseExits(text: string): { exits: Record<string, number>; total: number; cpus?: number } {
  const exits: Record<string, number> = {};
  let total = 0;
  let cpus: number | undefined;
  for (const line of text.split("\n").map((l) => l.trim())) {
    let m = /^(\d+)\s+(\d+)$/.exec(line);
    if (m) {
      const name = EXIT_REASONS[Number(m[1])] ?? `reason${m[1]}`;
      exits[name] = (exits[name] ?? 0) + Number(m[2]);
      total += Number(m[2]);
      continue;
    }
    m = /^cpus=(\d+)$/.exec(line);
    if (m) cpus = Number(m[1]);
  }
  if (Object.keys(exits).length === 0) throw new Error(`no exit counts in /proc/parapet/exits:\n${text}`);
  return { exits, total, cpus };
}

async function bootOnce(seq: number, mode: BootMode, o: Required<Omit<BenchBootOptions, "log">>, dir: string): Promise<BootRun> {
  const s = new QemuSession({
    disk: o.disk,
    parapet: mode === "parapet",
    hvArgs: o.hvArgs,
    hvLog: join(dir, `hv-${seq}.log`),
    memory: o.memory,
    cpus: o.cpus,
    machine: o.machine,
    snapshot: true,
  });
  const deadline = s.started + o.timeoutSec * 1000;
  const left = () => Math.max(1000, deadline - Date.now());
  try {
    await s.waitFor(/PARAPET-GUEST-READY/, left());
    const readyMs = Date.now() - s.started;
    await s.ready(left());
    const shellMs = Date.now() - s.started;
    // The same command in both modes, so both guests do the same work after READY.
    const r = await s.exec(EXITS_CMD, left());
    let parsed: ReturnType<typeof parseExits> | undefined;
    if (mode === "parapet") {
      if (r.status !== 0) throw new Error(`${EXITS_CMD} failed under Parapet (status ${r.status}): ${r.out}`);
      parsed = parseExits(r.out);
    }
    const fate = await s.poweroff(left());
    const wallMs = Date.now() - s.started;
    if (fate.kind !== "poweroff") throw new Error(describeFate(fate));
    return { seq, mode, wallMs, readyMs, shellMs, exits: parsed?.exits, exitsTotal: parsed?.total, hvCpus: parsed?.cpus, fate };
  } catch (err) {
    s.kill();
    // A hypervisor panic or a QEMU error says more than "QEMU exited while waiting".
    const fate = await s.fate(10_000);
    const why = fate.kind === "panic" || fate.kind === "error" ? describeFate(fate) : err instanceof Error ? err.message : String(err);
    const log = mode === "parapet" ? `\nhypervisor log tail:\n${s.hvLog().slice(-1500)}` : "";
    throw new Error(`boot ${seq} (${mode}) failed: ${why}${log}`);
  }
}

/** Boots bare and under Parapet alternately, `runs` times each; never throws for a failed boot (see `error`). */
export async function benchBoot(opts: BenchBootOptions = {}): Promise<BenchBootResult> {
  const o = guestBenchSettings(opts);
  const log = opts.log ?? (() => {});
  const result: BenchBootResult = {
    config: guestBenchConfig(o),
    runs: [],
  };
  const dir = mkdtempSync(join(tmpdir(), "parapet-bench-"));
  try {
    let seq = 0;
    for (let i = 0; i < o.runs; i++) {
      for (const mode of ["bare", "parapet"] as const) {
        seq++;
        log(`boot ${seq}/${2 * o.runs}: ${mode} …`);
        const r = await bootOnce(seq, mode, o, dir);
        result.runs.push(r);
        log(
          `boot ${seq}/${2 * o.runs}: ${mode} ${(r.wallMs / 1000).toFixed(2)} s` + (r.exitsTotal !== undefined ? `, ${r.exitsTotal} VM exits` : ""),
        );
      }
    }
  } catch (err) {
    result.error = err instanceof Error ? err.message : String(err);
    return result;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const of = (mode: BootMode) => result.runs.filter((r) => r.mode === mode);
  const bare = stats(of("bare").map((r) => r.wallMs));
  const parapet = stats(of("parapet").map((r) => r.wallMs));
  const exitsMedian: Record<string, number> = {};
  const names = [...new Set([...EXIT_REASONS, ...of("parapet").flatMap((r) => Object.keys(r.exits ?? {}))])];
  for (const name of names) exitsMedian[name] = median(of("parapet").map((r) => r.exits?.[name] ?? 0));
  const ratio = parapet.medianMs / bare.medianMs;
  result.summary = {
    bare,
    parapet,
    bareReady: stats(of("bare").map((r) => r.readyMs)),
    parapetReady: stats(of("parapet").map((r) => r.readyMs)),
    ratio,
    target: TARGET_RATIO,
    pass: ratio <= TARGET_RATIO,
    exitsMedian,
    exitsTotalMedian: median(of("parapet").map((r) => r.exitsTotal ?? 0)),
  };
  return result;
}

const sec = (ms: number) => (ms / 1000).toFixed(2);

/** The human-readable report: every boot, medians, ratio against the target, exits by reason. */
export function formatReport(r: BenchBootResult): string {
  const c = r.config;
  const out: string[] = [];
  out.push(`Boot benchmark: ${c.runs} boot(s) each, bare and Parapet alternating; -smp ${c.cpus}, -machine ${c.machine}, -m ${c.memory}, TCG`);
  out.push(`QEMU: ${c.qemu}; host: ${c.host}, load average ${c.loadAvg.toFixed(2)} at start`);
  out.push("");
  out.push("  #  mode      wall s  READY s  shell s  VM exits");
  for (const b of r.runs) {
    out.push(
      `${String(b.seq).padStart(3)}  ${b.mode.padEnd(8)} ${sec(b.wallMs).padStart(7)}  ${sec(b.readyMs).padStart(7)}` +
        `  ${sec(b.shellMs).padStart(7)}  ${b.exitsTotal !== undefined ? String(b.exitsTotal).padStart(8) : "       -"}`,
    );
  }
  const s = r.summary;
  if (!s) return out.join("\n") + "\n";
  out.push("");
  out.push(`median wall time  bare    ${sec(s.bare.medianMs)} s  (min ${sec(s.bare.minMs)}, max ${sec(s.bare.maxMs)})`);
  out.push(`median wall time  parapet ${sec(s.parapet.medianMs)} s  (min ${sec(s.parapet.minMs)}, max ${sec(s.parapet.maxMs)})`);
  out.push(`median to READY   bare    ${sec(s.bareReady.medianMs)} s, parapet ${sec(s.parapetReady.medianMs)} s`);
  out.push(`ratio parapet/bare ${s.ratio.toFixed(3)}  target <= ${s.target.toFixed(2)}: ${s.pass ? "PASS" : "MISS"}`);
  out.push("");
  out.push("median VM exits during boot (Parapet):");
  EXIT_REASONS.forEach((name, i) => out.push(`  ${String(i).padStart(2)} ${name.padEnd(9)} ${String(s.exitsMedian[name] ?? 0).padStart(10)}`));
  for (const [name, n] of Object.entries(s.exitsMedian)) {
    if (!(EXIT_REASONS as readonly string[]).includes(name)) out.push(`     ${name.padEnd(9)} ${String(n).padStart(10)}`);
  }
  out.push(`     ${"total".padEnd(9)} ${String(s.exitsTotalMedian).padStart(10)}`);
  return out.join("\n") + "\n";
}
