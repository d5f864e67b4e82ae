// Resume-time benchmark: the test guest suspends to RAM (ACPI S3) and is woken, bare and under
// Parapet, --runs cycles each in one run (one boot per kind: bare first, then Parapet). A cycle
// is timed on the host from QMP system_wakeup (sent as soon as query-status says "suspended")
// to the marker the guest's shell prints right after `echo mem > /sys/power/state` returns.
// Run through the CLI: `npx parapet bench resume --help`.
import { performance } from "node:perf_hooks";
import { describeFate, isQ35, QemuSession } from "../src/lib/qemu.ts";
import { guestBenchConfig, guestBenchSettings, type GuestBenchConfig, type GuestBenchOptions } from "./common.ts";
import { median } from "./boot.ts";

export type BenchResumeOptions = GuestBenchOptions;

export type ResumeMode = "bare" | "parapet";

export interface ResumeCycle {
  mode: ResumeMode;
  /** 1-based, within its boot. */
  cycle: number;
  /** `echo mem > /sys/power/state` typed to query-status "suspended" (polled every 20 ms). */
  suspendMs: number;
  /** QMP system_wakeup sent to the guest's marker on the console: the figure compared. */
  resumeMs: number;
  /** system_wakeup sent to QEMU's WAKEUP event, by QEMU's timestamp (QEMU has reset the machine; the firmware starts). */
  wakeupEventMs: number;
}

export interface ResumeBoot {
  mode: ResumeMode;
  /** QEMU start to the guest's shell. */
  bootMs: number;
  /** Parapet only: s3_resumes of /proc/parapet/status after the cycles (ABI 1.4), when it says. */
  s3Resumes?: number;
}

export interface Stats {
  n: number;
  medianMs: number;
  minMs: number;
  maxMs: number;
}

export interface BenchResumeResult {
  config: GuestBenchConfig;
  boots: ResumeBoot[];
  cycles: ResumeCycle[];
  summary?: {
    bare: Stats;
    parapet: Stats;
    bareSuspend: Stats;
    parapetSuspend: Stats;
    /** Median Parapet resume / median bare resume. */
    ratio: number;
  };
  /** Set when a boot or cycle failed; boots and cycles hold what came before. */
  error?: string;
}

function stats(xs: readonly number[]): Stats {
  return { n: xs.length, medianMs: median(xs), minMs: Math.min(...xs), maxMs: Math.max(...xs) };
}

const delay = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * q35: the wake resets the ICH9 LPC's PMBASE and ACPI_CNTL (config 0x40-0x47), which SeaBIOS's
 * S3 path does not restore; bare, the guest saves them once and restores them after each resume
 * (untimed), as firmware would. Under Parapet that is Parapet's part (it drops guest writes there).
 */
const LPC = "/sys/bus/pci/devices/0000:00:1f.0/config";

/** One suspend and wake of a booted guest. */
async function cycle(s: QemuSession, mode: ResumeMode, n: number, timeoutMs: number): Promise<ResumeCycle> {
  const from = s.console.length;
  const marker = new RegExp(`RESUMED-${n}-(\\d+)`);
  const qmp = await s.qmpClientFor();
  const typed = performance.now();
  s.send(`echo mem > /sys/power/state; echo RESUMED-${n}-$?\n`);
  for (;;) {
    const m = marker.exec(s.console.slice(from));
    if (m) throw new Error(`cycle ${n}: the guest did not suspend (echo mem > /sys/power/state: status ${m[1]})`);
    const st = await s.status();
    if (st.status === "suspended") break;
    if (!st.running) throw new Error(`cycle ${n}: the VM stopped in state ${st.status}`);
    if (performance.now() - typed > timeoutMs) throw new Error(`cycle ${n}: not suspended after ${timeoutMs} ms`);
    await delay(20);
  }
  const suspended = performance.now();
  const ev0 = qmp.events.length;
  const woken = performance.now();
  await s.qmp("system_wakeup");
  const m = await s.waitFor(marker, timeoutMs, from);
  const resumed = performance.now();
  if (m[1] !== "0") throw new Error(`cycle ${n}: echo mem > /sys/power/state failed after the wake (status ${m[1]})`);
  const wake = await qmp.waitForEvent("WAKEUP", 1000, ev0);
  return { mode, cycle: n, suspendMs: suspended - typed, resumeMs: resumed - woken, wakeupEventMs: wake.qemuMs - (performance.timeOrigin + woken) };
}

async function runMode(
  mode: ResumeMode,
  o: Required<Omit<BenchResumeOptions, "log">>,
  result: BenchResumeResult,
  log: (m: string) => void,
): Promise<void> {
  const s = new QemuSession({
    disk: o.disk,
    parapet: mode === "parapet",
    hvArgs: o.hvArgs,
    memory: o.memory,
    cpus: o.cpus,
    machine: o.machine,
    snapshot: true,
    qmp: true,
  });
  try {
    log(`${mode}: booting …`);
    await s.ready(o.timeoutSec * 1000);
    const boot: ResumeBoot = { mode, bootMs: Date.now() - s.started };
    result.boots.push(boot);
    const lpc = mode === "bare" && isQ35(o.machine);
    if (lpc) await s.sh(`dd if=${LPC} of=/tmp/lpc bs=1 skip=64 count=8 2>/dev/null`);
    for (let i = 1; i <= o.runs; i++) {
      const c = await cycle(s, mode, i, o.timeoutSec * 1000);
      if (lpc) await s.sh(`dd if=/tmp/lpc of=${LPC} bs=1 seek=64 count=8 conv=notrunc 2>/dev/null`);
      result.cycles.push(c);
      log(`${mode}: cycle ${i}/${o.runs}: suspend ${c.suspendMs.toFixed(1)} ms, resume ${c.resumeMs.toFixed(1)} ms`);
    }
    if (mode === "parapet") {
      const m = /s3_resumes=(\d+)/.exec(await s.sh("cat /proc/parapet/status"));
      if (m) boot.s3Resumes = Number(m[1]);
    }
    const fate = await s.poweroff(o.timeoutSec * 1000);
    if (fate.kind !== "poweroff") throw new Error(describeFate(fate));
  } catch (err) {
    s.kill();
    const fate = await s.fate(10_000);
    const why = fate.kind === "panic" || fate.kind === "error" ? describeFate(fate) : err instanceof Error ? err.message : String(err);
    const tail = mode === "parapet" ? `\nhypervisor log tail:\n${s.hvLog().slice(-1500)}` : "";
    throw new Error(`${mode}: ${why}${tail}`);
  }
}

/** Bare, then Parapet: one boot each, `runs` sleep/resume cycles each; never throws for a failed cycle (see `error`). */
export async function benchResume(opts: BenchResumeOptions = {}): Promise<BenchResumeResult> {
  const o = guestBenchSettings(opts);
  const log = opts.log ?? (() => {});
  const result: BenchResumeResult = {
    config: guestBenchConfig(o),
    boots: [],
    cycles: [],
  };
  try {
    for (const mode of ["bare", "parapet"] as const) await runMode(mode, o, result, log);
  } catch (err) {
    result.error = err instanceof Error ? err.message : String(err);
    return result;
  }
  const of = (mode: ResumeMode) => result.cycles.filter((c) => c.mode === mode);
  const bare = stats(of("bare").map((c) => c.resumeMs));
  const parapet = stats(of("parapet").map((c) => c.resumeMs));
  result.summary = {
    bare,
    parapet,
    bareSuspend: stats(of("bare").map((c) => c.suspendMs)),
    parapetSuspend: stats(of("parapet").map((c) => c.suspendMs)),
    ratio: parapet.medianMs / bare.medianMs,
  };
  return result;
}

const ms = (x: number) => x.toFixed(1);

/** The human-readable report: every cycle, the medians and the ratio. */
export function formatResumeReport(r: BenchResumeResult): string {
  const c = r.config;
  const out: string[] = [];
  out.push(
    `Resume benchmark: ${c.runs} S3 cycle(s) each, bare then Parapet (one boot each); -smp ${c.cpus}, -machine ${c.machine}, -m ${c.memory}, TCG`,
  );
  out.push(`QEMU: ${c.qemu}; host: ${c.host}, load average ${c.loadAvg.toFixed(2)} at start`);
  out.push("");
  for (const b of r.boots) {
    out.push(
      `${b.mode.padEnd(8)} boot ${(b.bootMs / 1000).toFixed(2)} s` +
        (b.s3Resumes !== undefined ? `; /proc/parapet/status afterwards: s3_resumes=${b.s3Resumes}` : ""),
    );
  }
  out.push("");
  out.push("  mode      cycle  suspend ms  wake event ms  resume ms");
  for (const x of r.cycles) {
    out.push(
      `  ${x.mode.padEnd(8)} ${String(x.cycle).padStart(6)}  ${ms(x.suspendMs).padStart(10)}  ${ms(x.wakeupEventMs).padStart(13)}  ${ms(x.resumeMs).padStart(9)}`,
    );
  }
  const s = r.summary;
  if (!s) return out.join("\n") + "\n";
  out.push("");
  out.push(`median resume   bare    ${ms(s.bare.medianMs)} ms  (min ${ms(s.bare.minMs)}, max ${ms(s.bare.maxMs)})`);
  out.push(`median resume   parapet ${ms(s.parapet.medianMs)} ms  (min ${ms(s.parapet.minMs)}, max ${ms(s.parapet.maxMs)})`);
  out.push(`median suspend  bare    ${ms(s.bareSuspend.medianMs)} ms, parapet ${ms(s.parapetSuspend.medianMs)} ms`);
  out.push(`ratio parapet/bare (resume) ${s.ratio.toFixed(3)}`);
  return out.join("\n") + "\n";
}
