// Power transitions under Parapet (issue 12, hv/power/).
//
// Keys wiped: a guest whose disk is encrypted whole (a keyed policy record: Parapet holds the
// XTS key schedules, and an AES-256 schedule begins with the raw key, so both 32-byte halves
// sit in its RAM) resets or powers off the machine every way it can: the reset control register
// (port 0xCF9), port 0x92's fast reset, the 8042 (command 0xFE, and 0xD1 then an output port
// byte with bit 0 clear), the FADT's RESET_REG, a triple fault, ACPI S5 (`poweroff -f`) and a
// direct S4 write to PM1a_CNT. QEMU pauses instead of acting (-action
// reboot=shutdown,shutdown=pause), all of guest RAM is dumped through QMP, and neither key half
// may be anywhere in it; the hypervisor log must say it wiped them (WIPED). Controls: the same
// dump taken while the guest still runs finds both halves (every case), and a build with the
// wipe compiled out (build/parapet-nowipe.elf) leaves them in RAM after the reset.
//
// S3: the guest sleeps (`echo mem > /sys/power/state`) and wakes (the RTC alarm, or QMP
// system_wakeup): first bare, to show QEMU and the guest kernel can do it at all; then under
// Parapet on pc and q35 with 1 and 2 CPUs: after every resume each CPU still runs under Parapet,
// /proc/parapet/status counts the resume, Parapet's memory still reads as the decoy's zeros, and
// the protected disk works (what the guest writes reads back and lands as ciphertext); ten
// cycles in a row with disk I/O running across them.
//
// The firmware's own AP start page attacked: the guest plants real-mode code where SeaBIOS
// starts the APs on resume (0x10000); after every resume it must not have run, and the page
// must hold the guest's bytes again.
//
// The waking vector raced: a guest module sleeps by itself (PM1a_CNT written directly) while a
// kernel thread on the other CPU keeps writing the FACS waking vector; the machine must still
// wake into Parapet, which then runs the guest's (the attacker's) real-mode payload as a guest:
// it sees no SVM and its VMMCALL reaches Parapet.
//
// PARAPET_POWER_HV=build/parapet-nowipe.elf runs the reset and power-off cases against that
// hypervisor instead (each "no key half" assertion must then fail).
// Two QEMUs at a time (PARAPET_TEST_QEMUS=1: one). The S3 tests alone:
//   node --import tsx --test --test-name-pattern=S3 tests/power.test.ts
import { describe, test, before } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { copyFile, readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { prepare, hvRegion, kv, DEFAULT_IMAGE, REPO_ROOT, TMP } from "./fixture.ts";
import { newKey, writePolicy, wholeDisk, encryptedImage, decryptedCopy, patternCmd, pattern, DATA_OFFSET } from "./diskfixture.ts";
import { QemuSession, scanPatterns, type BootOptions, type PatternHits } from "../src/lib/qemu.ts";

/** What the hypervisor logs when it wiped the keys before a reset or power-off. */
export const WIPED = /power: .*keys wiped/;

/** Parapet built with the wipe compiled out (hv/Makefile). */
const NOWIPE_ELF = join(REPO_ROOT, "build", "parapet-nowipe.elf");

/** The hypervisor the reset and power-off cases boot (default build/parapet.elf). */
const PATHS_HV = process.env.PARAPET_POWER_HV;

/** Builds NOWIPE_ELF; the one place that knows its make target. */
function buildNoWipe(): string {
  execFileSync("make", ["-s", "-C", join(REPO_ROOT, "hv"), "nowipe"], { stdio: "inherit" });
  return NOWIPE_ELF;
}

const MiB = 1024 * 1024;
/** QEMUs run at once by each suite. */
const QEMUS = Number(process.env.PARAPET_TEST_QEMUS ?? 2);
const hex = (n: bigint | number) => `0x${n.toString(16)}`;
const delay = (ms: number) => new Promise((r) => setTimeout(r, ms));

type Machine = "pc" | "q35";

/** A keyed boot of `disk` on pc (no IOMMU: the record allows that) or q35 (VT-d, the disk on PIIX IDE). */
function keyedBoot(machine: Machine, cpus: number, disk: string, policy: string, extra: Partial<BootOptions> = {}): QemuSession {
  return new QemuSession({
    machine,
    cpus,
    disk,
    modules: [policy],
    qmp: true,
    ...(machine === "q35" ? { iommu: "intel" as const, piixIde: true } : {}),
    ...extra,
  });
}

async function ready(g: QemuSession): Promise<QemuSession> {
  try {
    await g.ready();
    return g;
  } catch (e) {
    g.kill();
    throw new Error(`${(e as Error).message}\nhypervisor log tail:\n${g.hvLog().slice(-3000)}`);
  }
}

/** A table from /sys/firmware/acpi/tables, read in the guest. */
async function acpiTable(g: QemuSession, name: string): Promise<Buffer> {
  return Buffer.from((await g.sh(`xxd -p /sys/firmware/acpi/tables/${name}`)).replace(/\s+/g, ""), "hex");
}

interface Fadt {
  revision: number;
  flags: number;
  pm1aCnt: number;
  reset?: { space: number; width: number; address: bigint; value: number };
}

/** The FADT fields these tests use (ACPI 6.5 §5.2.9). */
function parseFadt(t: Buffer): Fadt {
  const f: Fadt = { revision: t[8], flags: t.readUInt32LE(112), pm1aCnt: t.readUInt32LE(64) };
  if (t.length >= 129) {
    f.reset = { space: t[116], width: t[117], address: t.readBigUInt64LE(120), value: t[128] };
  }
  // X_PM1a_CNT_BLK (a GAS at 172) wins when set and in I/O space.
  if (t.length >= 184 && t[172] === 1 && t.readBigUInt64LE(176) !== 0n) f.pm1aCnt = Number(t.readBigUInt64LE(176));
  return f;
}

const FADT_RESET_REG_SUP = 1 << 10;

/** The SLP_TYPa of the DSDT's \_S<n> package: Name(_Sn_, Package(){ a, b, … }). */
function sleepType(dsdt: Buffer, n: number): number {
  const at = dsdt.indexOf(Buffer.from(`_S${n}_`));
  assert.ok(at > 0 && (dsdt[at - 1] === 0x08 || dsdt[at - 1] === 0x5c), `no Name(\\_S${n}) in the DSDT`);
  let p = at + 4;
  assert.equal(dsdt[p++], 0x12, `\\_S${n} is not a package`);
  p += 1 + (dsdt[p] >> 6); // PkgLength: its lead byte's bits 7-6 count the bytes that follow
  p += 1; // NumElements
  const op = dsdt[p];
  if (op === 0x0a) return dsdt[p + 1]; // BytePrefix
  if (op === 0x00 || op === 0x01) return op; // Zero, One
  throw new Error(`\\_S${n}: first element opcode ${hex(op)}`);
}

/** How a guest asks for the machine to reset or power off. */
interface PowerPath {
  name: string;
  machine: Machine;
  cpus: number;
  /** What QEMU must see in the end: a reset, or a power-off (S5, and S4, which QEMU turns into one). */
  end: "guest-reset" | "guest-shutdown";
  /** Makes the guest do it (the command does not return). */
  trigger: (g: QemuSession) => Promise<void>;
}

const sendLine = (g: QemuSession, cmd: string) => g.send(`${cmd}\n`);

const PATHS: PowerPath[] = [
  {
    name: "reset control register: 0x06 to port 0xCF9",
    machine: "pc",
    cpus: 1,
    end: "guest-reset",
    trigger: async (g) => sendLine(g, "ptest outb 0xcf9 0x06"),
  },
  {
    name: "reset control register: 0x0E to port 0xCF9",
    machine: "q35",
    cpus: 1,
    end: "guest-reset",
    trigger: async (g) => sendLine(g, "ptest outb 0xcf9 0x0e"),
  },
  {
    name: "port 0x92: fast reset (bit 0 set, A20 kept)",
    machine: "pc",
    cpus: 1,
    end: "guest-reset",
    trigger: async (g) => sendLine(g, "ptest outb 0x92 0x03"),
  },
  {
    name: "8042: command 0xFE (pulse reset) to port 0x64, from CPU 1",
    machine: "q35",
    cpus: 2,
    end: "guest-reset",
    trigger: async (g) => sendLine(g, "taskset -c 1 ptest outb 0x64 0xfe"),
  },
  {
    name: "8042: command 0xD1 (write output port), then 0xFE (bit 0 clear) to port 0x60",
    machine: "pc",
    cpus: 1,
    end: "guest-reset",
    trigger: async (g) => sendLine(g, "ptest outb 0x64 0xd1 && ptest outb 0x60 0xfe"),
  },
  {
    // pc's FADT is revision 1, without RESET_REG; q35's (revision 3) says I/O port 0xCF9, value 0x0F.
    name: "the FADT's RESET_REG (read from the guest's FACP)",
    machine: "q35",
    cpus: 1,
    end: "guest-reset",
    trigger: async (g) => {
      const fadt = parseFadt(await acpiTable(g, "FACP"));
      assert.ok(fadt.flags & FADT_RESET_REG_SUP, `FADT revision ${fadt.revision}, flags ${hex(fadt.flags)}: no RESET_REG_SUP`);
      const r = fadt.reset!;
      assert.deepEqual([r.space, r.width], [1, 8], `RESET_REG ${JSON.stringify(r, (_, v) => (typeof v === "bigint" ? hex(v) : v))}: not an I/O byte`);
      sendLine(g, `ptest outb ${hex(r.address)} ${hex(r.value)}`);
    },
  },
  {
    name: "triple fault on CPU 1",
    machine: "pc",
    cpus: 2,
    end: "guest-reset",
    trigger: async (g) => sendLine(g, "taskset -c 1 sh -c 'echo 1 > /proc/parapet/triple'"),
  },
  { name: "ACPI S5: poweroff -f", machine: "q35", cpus: 1, end: "guest-shutdown", trigger: async (g) => sendLine(g, "poweroff -f") },
  {
    name: "ACPI S4: SLP_TYP of \\_S4 with SLP_EN written to PM1a_CNT",
    machine: "pc",
    cpus: 1,
    end: "guest-shutdown",
    trigger: async (g) => {
      const fadt = parseFadt(await acpiTable(g, "FACP"));
      const s4 = sleepType(await acpiTable(g, "DSDT"), 4);
      const cur = Number(kv(await g.sh(`ptest inw ${hex(fadt.pm1aCnt)}`)).value);
      sendLine(g, `ptest outw ${hex(fadt.pm1aCnt)} ${hex((cur & ~0x3c00) | (s4 << 10) | (1 << 13))}`);
    },
  },
];

interface Outcome {
  /** The key halves in RAM while the guest still ran (the control). */
  before: PatternHits[];
  /** …and once QEMU paused instead of resetting or powering off. */
  after: PatternHits[];
  state: string;
  /** QMP events from the trigger on. */
  events: string[];
  /** The hypervisor log from the trigger on. */
  log: string;
  region: { base: bigint; end: bigint };
}

/** Dumps all guest RAM and counts the key halves in it. */
async function scanRam(g: QemuSession, halves: Buffer[], name: string): Promise<PatternHits[]> {
  const file = join(g.dir, name);
  try {
    await g.dumpRam(file);
    return await scanPatterns(file, halves);
  } finally {
    await rm(file, { force: true });
  }
}

/** Boots a keyed guest, makes it take `p`, and looks for the key in RAM before and after. */
async function takePath(p: PowerPath, image: string, policy: string, halves: Buffer[], hypervisor?: string): Promise<Outcome> {
  const g = await ready(keyedBoot(p.machine, p.cpus, image, policy, { snapshot: true, pauseOnExit: true, hypervisor }));
  try {
    assert.equal(kv(await g.sh("cat /proc/parapet/status")).keys, "1", "a policy with keys is in force");
    if (p.cpus > 1) assert.equal((await g.sh("cat /sys/devices/system/cpu/online")).trim(), `0-${p.cpus - 1}`);
    const region = hvRegion(g.hvLog());
    const before = await scanRam(g, halves, "ram-before.bin");
    const qmp = await g.qmpClientFor();
    const ev0 = qmp.events.length,
      log0 = g.hvLog().length;
    await p.trigger(g);
    const state = await g.waitUntilStopped(60_000);
    const after = await scanRam(g, halves, "ram-after.bin");
    return {
      before,
      after,
      state,
      region,
      log: g.hvLog().slice(log0),
      events: qmp.events.slice(ev0).map((e) => `${e.event}${e.data?.reason ? ` ${String(e.data.reason)}` : ""}`),
    };
  } finally {
    g.kill();
  }
}

const where = (h: PatternHits, region: { base: bigint; end: bigint }) =>
  h.offsets.map((o) => `${hex(o)}${BigInt(o) >= region.base && BigInt(o) < region.end ? " (Parapet's region)" : ""}`).join(", ");

describe("power: keys wiped before every reset and power-off", { concurrency: QEMUS }, () => {
  const key = newKey();
  const halves = [key.subarray(0, 32), key.subarray(32)];
  let image: string, policy: string;

  before(async () => {
    await prepare();
    policy = await writePolicy("power.pol", wholeDisk(key));
    image = await encryptedImage("power-enc.img", key);
  });

  for (const p of PATHS) {
    test(`${p.name} (${p.machine}, ${p.cpus} CPU${p.cpus > 1 ? "s" : ""}): no key half left in RAM`, async () => {
      const o = await takePath(p, image, policy, halves, PATHS_HV);
      o.before.forEach((h, i) => assert.ok(h.count >= 1, `control: key half ${i} not in RAM while the guest ran`));
      assert.equal(o.state, "shutdown", `QEMU's run state: ${o.state}; events: ${o.events.join(", ")}`);
      assert.ok(o.events.includes(`SHUTDOWN ${p.end}`), `the machine was to end with ${p.end}; QMP events: ${o.events.join(", ")}`);
      if (p.name.startsWith("ACPI S4")) assert.ok(o.events.includes("SUSPEND_DISK"), `S4 reached the platform as S4: ${o.events.join(", ")}`);
      o.after.forEach((h, i) =>
        assert.equal(
          h.count,
          0,
          `key half ${i} still in RAM ${h.count} time(s), at ${where(h, o.region)} (Parapet at ${hex(o.region.base)}-${hex(o.region.end)})`,
        ),
      );
      assert.match(o.log, WIPED, `the hypervisor log does not say the keys were wiped:\n${o.log.slice(-2000)}`);
    });
  }

  test("control: Parapet built without the wipe (parapet-nowipe.elf) leaves both key halves in RAM after a reset", async () => {
    const hv = buildNoWipe();
    const o = await takePath(PATHS[0], image, policy, halves, hv);
    assert.equal(o.state, "shutdown");
    o.after.forEach((h, i) => assert.ok(h.count >= 1, `key half ${i} not found after a reset without the wipe: the scan cannot fail`));
    assert.doesNotMatch(o.log, WIPED);
  });
});

// ---------------------------------------------------------------------------------------------
// S3

/**
 * q35: QEMU's wake resets the ICH9 LPC bridge, whose PMBASE (config 0x40) and ACPI_CNTL (0x44)
 * map the ACPI PM registers, and neither SeaBIOS's S3 resume path nor Linux restores them
 * (firmware does on real hardware): after the first resume the PM block reads 0xFFFF, so a
 * second `echo mem` "wakes" at once without sleeping. Bare, the guest saves those 8 bytes once
 * and writes them back after each resume, doing the firmware's part. Under Parapet it cannot
 * (Parapet drops guest writes there, the PM block being what it intercepts): Parapet has to.
 */
const LPC_CONFIG = "/sys/bus/pci/devices/0000:00:1f.0/config";
const saveLpc = (g: QemuSession) => g.sh(`dd if=${LPC_CONFIG} of=/tmp/lpc bs=1 skip=64 count=8 2>/dev/null`);
const restoreLpc = (g: QemuSession) => g.sh(`dd if=/tmp/lpc of=${LPC_CONFIG} bs=1 seek=64 count=8 conv=notrunc 2>/dev/null`);

/**
 * Puts the guest to sleep and wakes it (RTC alarm in 3 s, or QMP system_wakeup once QEMU says
 * suspended); bare on q35, restores the LPC's PM registers afterwards (saveLpc must have run).
 */
async function sleepResume(g: QemuSession, label: string, wake: "rtc" | "qmp"): Promise<void> {
  const from = g.console.length;
  const done = new RegExp(`S3-BACK-${label}=(\\d+)`);
  sendLine(g, `${wake === "rtc" ? "echo +3 > /sys/class/rtc/rtc0/wakealarm; " : ""}echo mem > /sys/power/state; echo S3-BACK-${label}=$?`);
  const deadline = Date.now() + 60_000;
  for (;;) {
    const m = done.exec(g.console.slice(from));
    if (m)
      throw new Error(
        `S3 ${label}: the guest did not sleep: echo mem > /sys/power/state ended with status ${m[1]}\n` +
          `hypervisor log tail:\n${g.hvLog().slice(-1500)}`,
      );
    const st = await g.status();
    if (st.status === "suspended") break;
    if (!st.running) throw new Error(`S3 ${label}: the VM stopped in state ${st.status}, not suspended`);
    if (Date.now() > deadline) throw new Error(`S3 ${label}: not suspended after 60 s; console tail:\n${g.tail()}`);
    await delay(100);
  }
  if (wake === "qmp") await g.qmp("system_wakeup");
  let m: RegExpExecArray;
  try {
    m = await g.waitFor(done, 120_000, from);
  } catch (e) {
    throw new Error(`S3 ${label}: no resume: ${(e as Error).message}\nhypervisor log tail:\n${g.hvLog().slice(-2000)}`);
  }
  assert.equal(m[1], "0", `S3 ${label}: echo mem > /sys/power/state failed (status ${m[1]})`);
  if (g.opts.machine === "q35" && g.opts.parapet === false) await restoreLpc(g);
}

/** Writes 64 KiB tagged `tag` to slot `slot` of the data partition with O_DIRECT and reads it back. */
async function diskRoundTrip(g: QemuSession, tag: string, slot: number): Promise<void> {
  const seek = DATA_OFFSET / 65536 + slot;
  await g.sh(
    `${patternCmd("/tmp/s3p", tag, 65536)} && dd if=/tmp/s3p of=/dev/bootdisk bs=64k seek=${seek} oflag=direct conv=fsync 2>/dev/null` +
      ` && dd if=/dev/bootdisk of=/tmp/s3q bs=64k skip=${seek} count=1 iflag=direct 2>/dev/null && cmp /tmp/s3p /tmp/s3q`,
    120_000,
  );
}

/** /proc/parapet/cpus: every online CPU, probed on itself, answers VMMCALL as its own vCPU and hides SVM. */
async function assertAllUnderParapet(g: QemuSession, cpus: number, where: string): Promise<void> {
  assert.equal((await g.sh("cat /sys/devices/system/cpu/online")).trim(), cpus > 1 ? `0-${cpus - 1}` : "0", `${where}: CPUs online`);
  const probes = (await g.sh("cat /proc/parapet/cpus"))
    .split("\n")
    .filter((l) => l.startsWith("cpu="))
    .map(kv);
  assert.equal(probes.length, cpus, `${where}: ${JSON.stringify(probes)}`);
  assert.equal(new Set(probes.map((c) => c.vcpu)).size, cpus, `${where}: every CPU its own vCPU: ${JSON.stringify(probes)}`);
  for (const c of probes) {
    assert.notEqual(c.vcpu, "none", `${where}: cpu${c.cpu}'s VMMCALL reached no hypervisor (it runs bare)`);
    assert.equal(c.svm, "0", `${where}: cpu${c.cpu} sees SVM (it runs bare)`);
    assert.equal(c.svme, "refused", `${where}: cpu${c.cpu} could set EFER.SVME`);
  }
}

/** After the n-th resume: every CPU under Parapet, the resume counted, the decoy, the disk, the PM block. */
async function checkResumed(g: QemuSession, n: number, cpus: number, tag: string, pm1aCnt: number): Promise<void> {
  const where = `after resume ${n}`;
  await assertAllUnderParapet(g, cpus, where);
  const cnt = kv(await g.sh(`ptest inw ${hex(pm1aCnt)}`)).value;
  assert.notEqual(
    cnt,
    "0xffff",
    `${where}: nothing answers at PM1a_CNT (${hex(pm1aCnt)}): the ACPI PM block is unmapped` +
      (g.opts.machine === "q35" ? " (the wake reset the ICH9's PMBASE/ACPI_CNTL, LPC config 0x40/0x44, and nobody restored them)" : ""),
  );
  const wake = await g.sh("cat /proc/parapet/wakepage");
  assert.match(
    wake,
    new RegExp(`^wakepage: page=${hex(FIRMWARE_AP_PAGE)} ran=0 code=intact$`),
    `${where}: the code planted where SeaBIOS starts the APs on resume ran, natively (svm=1) or at all, or was not put back: ${wake}`,
  );
  const st = kv(await g.sh("cat /proc/parapet/status"));
  assert.equal(st.s3_resumes, String(n), `${where}: /proc/parapet/status ${JSON.stringify(st)}`);
  assert.equal(st.sleeps_refused, "0", `${where}: ${JSON.stringify(st)}`);
  assert.equal(st.keys, "1", `${where}: the policy's keys are still in force`);
  const { base, end } = hvRegion(g.hvLog());
  const mem = kv(await g.sh(`ptest devmem-read ${hex(base)} ${hex(end - base)}`, 120_000));
  assert.equal(mem.bytes, String(end - base), `${where}: /dev/mem over Parapet's region: ${JSON.stringify(mem)}`);
  assert.equal(mem.nonzero, "0", `${where}: Parapet's region shows its contents, not the decoy: ${JSON.stringify(mem)}`);
  await diskRoundTrip(g, `${tag}-${n}`, n);
}

/**
 * The page SeaBIOS starts the application processors at on its S3 resume path (its
 * BUILD_AP_BOOT_ADDR). It does not wait for them and puts the page's bytes back: the guest's
 * code planted there (/proc/parapet/wakepage) ran natively on the AP at the first resume until
 * Parapet made every low RAM page start with a halt while the machine sleeps.
 */
const FIRMWARE_AP_PAGE = 0x10000;

/** More cycles after the first, ten in a row, with 1 and with 2 CPUs. */
const CYCLES = 10;
const BG_SEEK = (DATA_OFFSET + 16 * MiB) / 65536; // the background writer's 1 MiB, in 64 KiB blocks

/**
 * The background disk writer: writes 1 MiB of pattern A, reads it back and compares, then B, …
 * until /tmp/bgstop exists; counts good rounds in /tmp/bgn and failures in /tmp/bgfail.
 */
const BG_SCRIPT =
  `n=0; while [ ! -e /tmp/bgstop ]; do for x in a b; do ` +
  `dd if=/tmp/bg$x of=/dev/bootdisk bs=64k seek=${BG_SEEK} oflag=direct conv=fsync 2>/dev/null && ` +
  `dd if=/dev/bootdisk of=/tmp/bgr bs=64k skip=${BG_SEEK} count=16 iflag=direct 2>/dev/null && ` +
  `cmp -s /tmp/bg$x /tmp/bgr && n=$((n+1)) || echo $x >> /tmp/bgfail; echo $n > /tmp/bgn; done; done`;

describe("power: S3 sleep and resume", { concurrency: QEMUS }, () => {
  const key = newKey();
  let image: string, policy: string;

  before(async () => {
    await prepare();
    policy = await writePolicy("power-s3.pol", wholeDisk(key));
    image = await encryptedImage("power-s3-enc.img", key);
  });

  for (const machine of ["pc", "q35"] as const) {
    test(`S3 bare (${machine}): QEMU and the guest kernel sleep and resume (RTC alarm, then QMP system_wakeup)`, async () => {
      const g = await ready(new QemuSession({ machine, parapet: false, qmp: true, disk: DEFAULT_IMAGE, snapshot: true }));
      try {
        assert.match(await g.sh("cat /sys/power/mem_sleep"), /\[deep\]/, "S3 (deep) is the kernel's default suspend");
        assert.match(await g.sh("cat /sys/power/state"), /\bmem\b/);
        assert.match(await g.sh("dmesg | grep 'ACPI: PM: (supports'"), /S3/, "QEMU's DSDT offers \\_S3");
        if (machine === "q35") await saveLpc(g);
        const qmp = await g.qmpClientFor();
        const ev0 = qmp.events.length;
        await sleepResume(g, "bare-rtc", "rtc");
        await sleepResume(g, "bare-qmp", "qmp");
        const evs = qmp.events.slice(ev0).map((e) => e.event);
        assert.deepEqual(
          evs.filter((e) => e === "SUSPEND" || e === "WAKEUP"),
          ["SUSPEND", "WAKEUP", "SUSPEND", "WAKEUP"],
        );
        await g.sh(
          `${patternCmd("/tmp/p", "bare", 65536)} && dd if=/tmp/p of=/dev/bootdisk2 bs=64k oflag=direct 2>/dev/null && ` +
            "dd if=/dev/bootdisk2 of=/tmp/q bs=64k count=1 iflag=direct 2>/dev/null && cmp /tmp/p /tmp/q",
        );
      } finally {
        g.kill();
      }
    });
  }

  for (const [machine, cpus] of [
    ["pc", 1],
    ["pc", 2],
    ["q35", 1],
    ["q35", 2],
  ] as const) {
    describe(`S3 under Parapet (${machine}, ${cpus} CPU${cpus > 1 ? "s" : ""})`, { concurrency: 1 }, () => {
      const tag = `s3-${machine}-${cpus}`;
      let g: QemuSession | undefined, disk: string, pm1aCnt: number;
      const slots: number[] = [];

      test("one sleep (RTC wake): every CPU under Parapet, the resume counted, the decoy, the protected disk", async () => {
        disk = join(TMP, `power-${tag}.img`);
        await copyFile(image, disk); // writes land on this copy (no snapshot): the host reads them afterwards
        g = await ready(keyedBoot(machine, cpus, disk, policy));
        pm1aCnt = parseFadt(await acpiTable(g, "FACP")).pm1aCnt;
        await assertAllUnderParapet(g, cpus, "after boot");
        assert.equal(kv(await g.sh("cat /proc/parapet/status")).s3_resumes, "0");
        await g.sh(`echo ${hex(FIRMWARE_AP_PAGE)} > /proc/parapet/wakepage`);
        await diskRoundTrip(g, `${tag}-0`, 0);
        slots.push(0);
        await sleepResume(g, `${tag}-1`, "rtc");
        await checkResumed(g, 1, cpus, tag, pm1aCnt);
        slots.push(1);
      });

      test(`${CYCLES} more cycles in a row (RTC and QMP wakes alternating) with disk I/O running across them`, async () => {
        assert.ok(g?.alive, "needs the previous test's guest");
        await g.sh(`${patternCmd("/tmp/bga", `${tag}-bg-A`, MiB)}; ${patternCmd("/tmp/bgb", `${tag}-bg-B`, MiB)}; rm -f /tmp/bgstop /tmp/bgfail`);
        // Started from a subshell, so the interactive shell has no job to report on.
        await g.sh(`(sh -c '${BG_SCRIPT}' > /dev/null 2>&1 < /dev/null &)`);
        for (let i = 2; i < 2 + CYCLES; i++) {
          await sleepResume(g, `${tag}-${i}`, i % 2 ? "qmp" : "rtc");
          await checkResumed(g, i, cpus, tag, pm1aCnt);
          slots.push(i);
        }
        const n0 = Number(await g.sh("cat /tmp/bgn"));
        await delay(3000);
        const n1 = Number(await g.sh("touch /tmp/bgstop; sleep 3; cat /tmp/bgn"));
        assert.equal(await g.sh("cat /tmp/bgfail 2>/dev/null || true"), "", "the background writer read back what it did not write");
        assert.ok(n1 > n0, `the background writer still works after the last resume: ${n0} -> ${n1} rounds`);
        assert.ok(n1 >= CYCLES, `the background writer ran across the cycles: ${n1} rounds`);
        assert.equal((await g.poweroff()).kind, "poweroff");
      });

      test("on the medium: everything written between the resumes, as ciphertext", async () => {
        assert.ok(disk && slots.length > 0, "needs the previous tests");
        g?.kill();
        const raw = await readFile(disk);
        const plain = await decryptedCopy(disk, key);
        for (const n of slots) {
          const want = pattern(`${tag}-${n}`, 65536);
          const at = DATA_OFFSET + n * 65536;
          assert.ok(plain.subarray(at, at + 65536).equals(want), `slot ${n}: the plaintext written after resume ${n}`);
          assert.equal(raw.indexOf(want.subarray(0, 64)), -1, `slot ${n} in the clear on the medium`);
        }
        if (slots.length > 2) {
          const bg = plain.subarray(BG_SEEK * 65536, BG_SEEK * 65536 + MiB);
          assert.ok(bg.equals(pattern(`${tag}-bg-A`, MiB)) || bg.equals(pattern(`${tag}-bg-B`, MiB)), "the background writer's last round");
          assert.equal(raw.indexOf(pattern(`${tag}-bg-A`, 64)), -1);
          assert.equal(raw.indexOf(pattern(`${tag}-bg-B`, 64)), -1);
        }
        await rm(disk, { force: true });
      });
    });
  }
});

// ---------------------------------------------------------------------------------------------
// The waking vector raced

/** guest/module/sipi_payload.h and s3race.c: where the payload runs and what it records. */
const PAYLOAD = 0x70000;
const PAYLOAD_WORDS = { cpuidDone: 0x200, ecx: 0x204, ebx: 0x208, edx: 0x20c, fault: 0x210, done: 0x218, racerWrites: 0x220 };

describe("power: the FACS waking vector raced from a second CPU", () => {
  test("a guest that sleeps by itself while another CPU keeps rewriting the waking vector wakes under Parapet", async () => {
    await prepare();
    const g = await ready(new QemuSession({ machine: "pc", cpus: 2, disk: DEFAULT_IMAGE, snapshot: true, qmp: true }));
    try {
      // Blocks: this CPU writes PM1a_CNT itself, the machine sleeps, and Linux never comes back
      // (the payload runs at the waking vector instead).
      sendLine(g, "echo go > /proc/parapet/s3race");
      const deadline = Date.now() + 60_000;
      while ((await g.status()).status !== "suspended") {
        assert.ok(Date.now() < deadline, `not suspended after 60 s; hypervisor log tail:\n${g.hvLog().slice(-1500)}`);
        await delay(100);
      }
      await g.qmp("system_wakeup");
      const dump = join(TMP, "s3race-payload.bin");
      let page = Buffer.alloc(0);
      for (let i = 0; i < 100; i++) {
        await g.qmp("pmemsave", { val: PAYLOAD, size: 4096, filename: dump });
        page = await readFile(dump);
        if (page.readUInt32LE(PAYLOAD_WORDS.done) !== 0 || page.readUInt32LE(PAYLOAD_WORDS.fault) !== 0) break;
        await delay(200);
      }
      const log = g.hvLog();
      const w = (k: keyof typeof PAYLOAD_WORDS) => page.readUInt32LE(PAYLOAD_WORDS[k]);
      assert.match(
        log,
        /power: cpu\d: S3: guest waking vector real mode 70000; the firmware wakes Parapet at 8000/,
        "Parapet took the sleep and kept the attacker's vector as the guest's",
      );
      assert.match(log, /power: S3 resume 1 on cpu0: .* 1 other processor\(s\) back/);
      assert.ok(w("racerWrites") > 0, "the racer on the other CPU ran");
      assert.equal(
        w("fault"),
        0,
        `an instruction of the payload faulted (VMMCALL without a hypervisor?): ${hex(w("fault"))} at ${hex(page.readUInt32LE(0x214))}`,
      );
      assert.equal(w("done"), 0x444f4e45, "the payload ran to its end");
      assert.equal(w("ecx") & 4, 0, "the woken processor sees SVM: it runs bare");
      assert.equal(w("ebx"), 0x54505250, "VMMCALL after the wake-up reached Parapet");
      assert.equal(w("edx"), 0, "as vCPU 0");
    } finally {
      g.kill();
    }
  });
});
