// Attacks on the preboot handoff (hv/handoff/preboot.c), made from ring 0 of a preboot guest
// through /proc/parapet/handoff (guest/module/handoff.c). The preboot guest here is the test
// guest's own kernel and initramfs, started by Parapet from its boot modules through the Linux
// boot protocol, with a shell: VMMCALL HANDOFF from ring 3, from the second CPU, with records
// truncated, oversized, corrupted, lying over Parapet's memory or outside RAM, is refused and
// the preboot guest keeps running; then a valid record from CPU 0 is accepted although that
// kernel was never shut down, and the target OS boots from the encrypted disk; in the target,
// no copy of the key the preboot guest held (its record, in a tmpfs file) is left in RAM.
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { hvRegion, octal, prepare, TMP } from "./fixture.ts";
import { encryptedImage, newKey, writePolicy, wholeDisk } from "./diskfixture.ts";
import { run } from "../src/lib/exec.ts";
import { PARTITION_START_LBA, SECTOR } from "../src/lib/diskimage.ts";
import { DEFAULT_IMAGE } from "../src/lib/guestimage.ts";
import { encodePolicy, wholeDiskPolicy } from "../src/lib/policyrecord.ts";
import { QemuSession } from "../src/lib/qemu.ts";

/** The test guest's kernel and initramfs, copied out of its boot partition: the preboot guest's modules. */
async function prebootModules(): Promise<string[]> {
  await prepare();
  for (const f of ["vmlinuz", "initrd.gz"]) {
    await run("mcopy", ["-i", `${DEFAULT_IMAGE}@@${PARTITION_START_LBA * SECTOR}`, "-o", `::/${f}`, join(TMP, `handoff-${f}`)], {
      env: { ...process.env, MTOOLS_SKIP_CHECK: "1" },
    });
  }
  return [`${join(TMP, "handoff-vmlinuz")} console=ttyS0,115200`, join(TMP, "handoff-initrd.gz")];
}

/** Hands `record` over from CPU 0 of the preboot guest and waits for the target's shell. */
async function handOver(s: QemuSession, record: Buffer): Promise<void> {
  await s.sh(`printf '${octal(record)}' > /tmp/rec`);
  const from = s.console.length;
  s.send("taskset -c 0 cp /tmp/rec /proc/parapet/handoff\n");
  const boot = await s.waitFor(/SYSLINUX/, 300_000, from);
  await s.ready(300_000, from + boot.index);
}

describe("handoff attacks from a preboot guest (the test guest's kernel as the preboot kernel)", () => {
  let s: QemuSession, key: Buffer, record: Buffer;

  before(async () => {
    const modules = await prebootModules();
    key = newKey();
    record = encodePolicy(wholeDisk(key));
    await writePolicy("handoff.pol", wholeDisk(key));
    const disk = await encryptedImage("handoff.img", key);
    s = new QemuSession({ disk, snapshot: true, cpus: 2, modules });
    await s.ready(300_000);
    await s.sh(`printf '${octal(record)}' > /tmp/rec`);
  });

  after(() => s?.kill());

  /** Hands over what `cmd` writes (from CPU 0 unless told), returning the shell's error text. */
  async function handoff(source: string, cpu = 0): Promise<string> {
    const r = await s.exec(`taskset -c ${cpu} ${source} 2>&1`);
    assert.notEqual(r.status, 0, `the handoff was accepted: ${r.out}`);
    return r.out;
  }

  test("Parapet started the preboot kernel from its modules, through the 32-bit boot protocol", () => {
    const log = s.hvLog();
    assert.match(
      log,
      /preboot: kernel \(module 0, \d+ KiB\) at [0-9a-f]+, initrd [0-9a-f]+-[0-9a-f]+, command line '\S+handoff-vmlinuz console=ttyS0,115200'/,
    );
    assert.match(log, /vcpu: cpu0: entering the guest at 10:[0-9a-f]+ \(Linux 32-bit entry\)/);
  });

  test("from ring 3: #UD, as on a machine without Parapet", async () => {
    const out = await s.exec(`taskset -c 0 ptest vmmcall-user 3 0x1000000 ${record.length}`);
    assert.match(out.out, /signal=SIGILL/);
  });

  test("from the second CPU: refused (EPERM)", async () => {
    assert.match(await handoff("cp /tmp/rec /proc/parapet/handoff", 1), /Operation not permitted/);
    assert.match(s.hvLog(), /handoff: cpu1: refused: not the boot CPU/);
  });

  test("malformed records are refused (EINVAL): truncated, oversized, corrupted", async () => {
    assert.match(await handoff("head -c 100 /tmp/rec > /tmp/short; taskset -c 0 cp /tmp/short /proc/parapet/handoff"), /Invalid argument/);
    assert.match(await handoff("dd if=/dev/zero of=/proc/parapet/handoff bs=65537 count=1"), /Invalid argument/);
    // One bit of the first key flipped: the CRC no longer matches.
    const bad = Buffer.from(record);
    bad[40] ^= 1;
    await s.sh(`printf '${octal(bad)}' > /tmp/bad`);
    assert.match(await handoff("cp /tmp/bad /proc/parapet/handoff"), /Invalid argument/);
    const log = s.hvLog();
    assert.match(log, /handoff: record at [0-9a-f]+ \(100 bytes\) refused: /);
    assert.match(log, /handoff: record at [0-9a-f]+ \(65537 bytes\) refused: record larger than 64 KiB/);
    assert.match(log, /handoff: record at [0-9a-f]+ \(192 bytes\) refused: .*CRC/i);
  });

  test("without an IOMMU (pc), a well-formed record with keys but without --allow-no-iommu is refused (EINVAL), naming why", async () => {
    await s.sh(`printf '${octal(encodePolicy({ ...wholeDiskPolicy(key), allowNoIommu: false }))}' > /tmp/strict`);
    assert.match(await handoff("cp /tmp/strict /proc/parapet/handoff"), /Invalid argument/);
    assert.match(s.hvLog(), /handoff: record at [0-9a-f]+ \(192 bytes\) refused: it carries keys and DMA isolation is off/);
  });

  test("records over Parapet's memory or outside RAM are refused (EFAULT)", async () => {
    const hv = hvRegion(s.hvLog());
    const at = (a: bigint, n: number) => handoff(`sh -c 'echo raw ${a.toString(16)} ${n.toString(16)} > /proc/parapet/handoff'`);
    assert.match(await at(hv.base - 64n, 4096), /Bad address/);
    assert.match(await at(hv.base + 0x1000n, 144), /Bad address/);
    assert.match(await at(0xf0000n, 144), /Bad address/); // the BIOS ROM: reserved, not RAM
    assert.match(await at(0xfffffffffff0n, 144), /Bad address/); // beyond memory
    const log = s.hvLog();
    assert.match(log, /refused: record overlaps Parapet's memory/);
    assert.match(log, /refused: record is not all in the guest's RAM/);
  });

  test("after every refusal the preboot guest still runs; a valid record is accepted and the target boots from the encrypted disk without the key in its RAM", async () => {
    assert.equal((await s.sh("echo alive")).trim(), "alive");
    await handOver(s, record);
    const log = s.hvLog();
    assert.match(log, /handoff: policy record from the preboot guest accepted \(192 bytes at [0-9a-f]+\)/);
    assert.match(log, /vcpu: cpu1: INIT; waiting for STARTUP/);
    assert.match(log, /ata: 00:01\.1 reset: bus master stopped, both channels SRST/);
    assert.match(log, /vcpu: cpu0: entering the guest at 9f40:0 \(real mode\)/);
    assert.match(await s.sh("cat /proc/cmdline"), /BOOT_IMAGE=\/vmlinuz/);
    assert.match(await s.sh("mountboot && cat /boot/syslinux.cfg"), /LINUX \/vmlinuz/);
    const marker = randomBytes(24).toString("hex");
    await s.sh(`echo ${marker} > /tmp/marker`);
    const scan = await s.sh(
      `ptest kcore-scan ${key.subarray(0, 32).toString("hex")} ${key.subarray(32).toString("hex")} ` + `${Buffer.from(marker).toString("hex")}`,
      300_000,
    );
    const m = /scanned=(\d+) hits0=(\d+) hits1=(\d+) hits2=(\d+)/.exec(scan);
    assert.ok(m, scan);
    assert.deepEqual([m[2], m[3]], ["0", "0"], `the key is still in RAM: ${scan}`);
    assert.ok(Number(m[4]) >= 1, `the planted marker was not found: ${scan}`);
  });
});

describe("the handoff on q35 (ECAM mediation set up at the handoff, a PIIX IDE controller)", () => {
  test("the target boots from the encrypted disk and the function's ECAM page is trapped", async () => {
    const modules = await prebootModules();
    const key = newKey();
    const disk = await encryptedImage("handoff-q35.img", key);
    const s = new QemuSession({ machine: "q35", cpus: 2, modules, disk, snapshot: true, piixIde: true });
    try {
      await s.ready(300_000);
      assert.doesNotMatch(s.hvLog(), /ecam: /, "no PCI mediation during the preboot phase");
      await handOver(s, encodePolicy(wholeDisk(key)));
      const log = s.hvLog();
      assert.match(log, /handoff: policy record from the preboot guest accepted/);
      assert.match(log, /ata: [0-9a-f]{2}:[0-9a-f]{2}\.\d ch0 master: ATA serial '[^']+', protected by the policy/);
      assert.match(log, /ecam: window at [0-9a-f]+, buses \d+-\d+; [1-9]\d* function pages trapped/);
      assert.match(await s.sh("mountboot && cat /boot/syslinux.cfg"), /LINUX \/vmlinuz/);
    } finally {
      s.kill();
    }
  });
});
