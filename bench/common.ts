// Helpers shared by the benchmarks (bench/boot.ts, bench/crypto.ts, bench/disk.ts): what they
// record about the host, the raw results as JSON, the guest benchmarks' settings. The command line
// that runs them is src/commands/bench.ts (`parapet bench`); bench/ never imports it.
import { spawnSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { loadavg } from "node:os";
import { DEFAULT_IMAGE } from "../src/lib/guestimage.ts";
import { QEMU } from "../src/lib/qemu.ts";

/** The first line of `qemu-system-x86_64 --version`, or "unknown". */
export function qemuVersion(): string {
  const r = spawnSync(QEMU, ["--version"], { encoding: "utf8" });
  return r.status === 0 ? r.stdout.split("\n")[0].trim() : "unknown";
}

/** The host's CPU model and CPU count. */
export function hostDescription(): string {
  const r = spawnSync("sh", ["-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2; nproc"], { encoding: "utf8" });
  const [cpu, n] = (r.stdout ?? "").split("\n").map((s) => s.trim());
  return `${cpu || "unknown CPU"}, ${n || "?"} host CPUs`;
}

/** Writes a benchmark's raw results as JSON, creating the directory if need be. */
export function writeJsonFile(file: string, result: unknown): void {
  mkdirSync(dirname(resolve(file)), { recursive: true });
  writeFileSync(file, JSON.stringify(result, null, 2) + "\n");
}

/** What every benchmark that boots the test guest in QEMU takes. */
export interface GuestBenchOptions {
  /** Repetitions of each kind (default 5). */
  runs?: number;
  cpus?: number;
  /** QEMU machine type (default pc). */
  machine?: string;
  memory?: string;
  /** Guest disk image (default build/guest.img); booted with snapshot=on, never modified. */
  disk?: string;
  /** Extra hypervisor options for the Parapet boots. */
  hvArgs?: string;
  /** Limit for one step (a boot, a suspend, a resume), in seconds (default 300). */
  timeoutSec?: number;
  /** Progress, one line per step; default silent. */
  log?: (msg: string) => void;
}

/** GuestBenchOptions with their defaults, checked (throws on a bad count). */
export function guestBenchSettings(opts: GuestBenchOptions) {
  const o = {
    runs: opts.runs ?? 5,
    cpus: opts.cpus ?? 1,
    machine: opts.machine ?? "pc",
    memory: opts.memory ?? "512M",
    disk: resolve(opts.disk ?? DEFAULT_IMAGE),
    hvArgs: opts.hvArgs ?? "",
    timeoutSec: opts.timeoutSec ?? 300,
  };
  if (!Number.isInteger(o.runs) || o.runs < 1) throw new Error(`runs ${o.runs}: expected a positive integer`);
  if (!Number.isInteger(o.cpus) || o.cpus < 1 || o.cpus > 16) throw new Error(`cpus ${o.cpus}: expected 1..16`);
  return o;
}

/** What a guest benchmark's JSON records about its configuration and the host it ran on; loadAvg
 * is the host's 1-minute load average when it started (other work skews the times). */
export type GuestBenchConfig = ReturnType<typeof guestBenchConfig>;
export function guestBenchConfig(o: ReturnType<typeof guestBenchSettings>) {
  return {
    runs: o.runs,
    cpus: o.cpus,
    machine: o.machine,
    memory: o.memory,
    disk: o.disk,
    hvArgs: o.hvArgs,
    qemu: qemuVersion(),
    host: hostDescription(),
    loadAvg: loadavg()[0],
    date: new Date().toISOString(),
  };
}
