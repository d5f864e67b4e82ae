// Shared by the end-to-end tests: the hypervisor and test guest are built once, then booted.
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { buildGuestImage, REPO_ROOT, DEFAULT_IMAGE } from "../src/lib/guestimage.ts";
import { buildPreboot, DEFAULT_PREBOOT_DIR } from "../src/lib/prebootimage.ts";
import { QemuSession, type BootOptions } from "../src/lib/qemu.ts";

export { REPO_ROOT, DEFAULT_IMAGE };

/** Runs the `parapet` CLI; returns its exit status and its output (stdout, then stderr). */
export function cli(args: string[]): { status: number; out: string } {
  try {
    return { status: 0, out: execFileSync("node", [join(REPO_ROOT, "bin", "parapet.js"), ...args], { encoding: "utf8", stdio: "pipe" }) };
  } catch (e) {
    const err = e as { status: number; stdout: string; stderr: string };
    return { status: err.status, out: err.stdout + err.stderr };
  }
}

/** Build the hypervisor and (if missing) the test guest image. */
export async function prepare(): Promise<string> {
  execFileSync("make", ["-s", "-C", REPO_ROOT], { stdio: "inherit" });
  const inputs = [
    "build/guest/ptest",
    "build/guest/ataatk",
    "build/guest/ahciatk",
    "build/guest/parapet_guest.ko",
    "guest/init",
    "guest/namedisks",
    "guest/mountboot",
    "src/lib/guestimage.ts",
    "src/lib/diskimage.ts",
    "src/lib/initramfs.ts",
    ...readdirSync(join(REPO_ROOT, "src/lib/debian")).map((f) => `src/lib/debian/${f}`),
  ].map((p) => join(REPO_ROOT, p));
  const stale = !existsSync(DEFAULT_IMAGE) || inputs.some((p) => existsSync(p) && statSync(p).mtimeMs > statSync(DEFAULT_IMAGE).mtimeMs);
  if (stale) await buildGuestImage({ output: DEFAULT_IMAGE, force: true });
  return DEFAULT_IMAGE;
}

/**
 * Builds the preboot guest (build/preboot) when it is missing or older than any of its sources:
 * src/preboot/ and src/lib/ (the app's bundle and the image builder come from there).
 */
export async function preparePreboot(): Promise<{ vmlinuz: string; initrd: string }> {
  const out = join(DEFAULT_PREBOOT_DIR, "initrd.gz");
  const inputs = ["src/preboot", "src/lib"].flatMap((d) =>
    readdirSync(join(REPO_ROOT, d), { recursive: true, encoding: "utf8" }).map((f) => join(REPO_ROOT, d, f)),
  );
  if (!existsSync(out) || inputs.some((p) => statSync(p).mtimeMs > statSync(out).mtimeMs)) await buildPreboot({ force: true });
  return { vmlinuz: join(DEFAULT_PREBOOT_DIR, "vmlinuz"), initrd: out };
}

/** Bytes as a printf(1) format of octal escapes, to write binary through the guest shell. */
export const octal = (b: Uint8Array) => [...b].map((x) => `\\${x.toString(8).padStart(3, "0")}`).join("");

/** Boot the test guest (snapshot: the image is never modified) and wait for its shell. */
export async function bootGuest(opts: BootOptions = {}): Promise<QemuSession> {
  const s = new QemuSession({ disk: DEFAULT_IMAGE, snapshot: true, ...opts });
  try {
    await s.ready();
  } catch (e) {
    s.kill();
    throw new Error(`${(e as Error).message}\nhypervisor log tail:\n${s.hvLog().slice(-2000)}`);
  }
  return s;
}

export interface MemEntry {
  start: bigint;
  end: bigint;
  type: string;
}

/** Parse `ptest memmap` output (end inclusive, as Linux reports it). */
export function parseMemmap(text: string): MemEntry[] {
  const out: MemEntry[] = [];
  for (const line of text.split("\n")) {
    const m = /start=(0x[0-9a-f]+) end=(0x[0-9a-f]+) type=(.*)$/.exec(line.trim());
    if (m) out.push({ start: BigInt(m[1]), end: BigInt(m[2]), type: m[3].trim() });
  }
  return out;
}

/** The hypervisor's hidden region, as it logs it. */
export function hvRegion(hvLog: string): { base: bigint; end: bigint } {
  const m = /mem: hypervisor at ([0-9a-f]+)-([0-9a-f]+)/.exec(hvLog);
  if (!m) throw new Error(`no region line in the hypervisor log:\n${hvLog.slice(0, 2000)}`);
  return { base: BigInt("0x" + m[1]), end: BigInt("0x" + m[2]) + 1n };
}

/** `key=value` words of a ptest result line. */
export function kv(line: string): Record<string, string> {
  const r: Record<string, string> = {};
  for (const w of line.trim().split(/\s+/)) {
    const i = w.indexOf("=");
    if (i > 0) r[w.slice(0, i)] = w.slice(i + 1);
  }
  return r;
}

export const EXIT_NAMES = ["cpuid", "rdmsr", "wrmsr", "io", "vmmcall", "virt_insn", "npf", "shutdown", "other", "nmi", "iret", "step"];

/** Parse /proc/parapet/exits. */
export function parseExits(text: string): { counts: Record<string, number>; cpus: number } {
  const counts: Record<string, number> = {};
  let cpus = 0;
  for (const line of text.split("\n")) {
    const m = /^(\d+) (\d+)$/.exec(line.trim());
    if (m) counts[EXIT_NAMES[Number(m[1])] ?? `reason${m[1]}`] = Number(m[2]);
    const c = /^cpus=(\d+)/.exec(line.trim());
    if (c) cpus = Number(c[1]);
  }
  return { counts, cpus };
}

export { WORK_DIR as TMP } from "../src/lib/guestdisk.ts";
