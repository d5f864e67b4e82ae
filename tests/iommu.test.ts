// DMA isolation (issue 11). A ring-0 guest module drives devices Parapet does not mediate (the
// q35 chipset's AHCI controller, an e1000 NIC, QEMU's fw_cfg DMA) at Parapet's hidden region,
// where the disk keys' schedules live: with an IOMMU every such DMA is blocked, logged and
// counted, and Parapet keeps running, while the same module's DMA to its own RAM works and the
// protected IDE disk and an unprotected AHCI disk pass fio --verify under translation. The same
// attacks on a machine without an IOMMU (a record made with --allow-no-iommu) succeed: that
// is what shows these tests able to fail. Without an IOMMU a keyed record lacking the flag is
// refused. Two boots run at a time.
import { describe, test, before } from "node:test";
import assert from "node:assert/strict";
import { readFile, writeFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { prepare, hvRegion, kv, TMP } from "./fixture.ts";
import { newKey, writePolicy, encryptedImage, DATA_OFFSET } from "./diskfixture.ts";
import { wholeDiskPolicy } from "../src/lib/policyrecord.ts";
import { QemuSession, type BootOptions } from "../src/lib/qemu.ts";

const MiB = 1024 * 1024;
const SCRATCH_BYTES = 64 * MiB;
const HV_LBA = 8192; // where the AHCI write of Parapet's region lands on the scratch disk
const CTL_LBA = 49152; // the control: the module's own buffer
const BACK_LBA = 53248; // the control: scratch -> module buffer -> scratch
const STOLEN_LBA = 57344; // the write attack's result: scratch -> Parapet's region -> scratch
const FIO_OFFSET = 40 * MiB;

/** 32-byte cells "<TAG> %08x" padded with '.', then '\n': the dmabuf pattern of guest/module/dma.c. */
function cells(tag: string, bytes: number): Buffer {
  const b = Buffer.alloc(bytes);
  for (let i = 0; i < bytes; i += 32) b.write(`${`${tag} ${i.toString(16).padStart(8, "0")}`.padEnd(31, ".")}\n`, i, "latin1");
  return b;
}

async function scratchDisk(name: string): Promise<string> {
  const path = join(TMP, name);
  await rm(path, { force: true });
  const b = Buffer.alloc(SCRATCH_BYTES);
  cells("SCRATCH-B", MiB).copy(b, 0);
  await writeFile(path, b);
  return path;
}

function boot(opts: BootOptions, scratch: string, pcap: string): QemuSession {
  return new QemuSession({
    machine: "q35",
    piixIde: true,
    cpus: 2,
    snapshot: true,
    ...opts,
    extraArgs: [
      "-drive",
      `file=${scratch},format=raw,if=none,id=scratch`,
      "-device",
      "ide-hd,drive=scratch,bus=ide.1",
      "-netdev",
      "hubport,id=n0,hubid=0",
      "-device",
      "e1000,netdev=n0",
      "-object",
      `filter-dump,id=f0,netdev=n0,file=${pcap}`,
    ],
  });
}

async function ready(g: QemuSession): Promise<void> {
  try {
    await g.ready();
  } catch (e) {
    g.kill();
    throw new Error(`${(e as Error).message}\nhypervisor log tail:\n${g.hvLog().slice(-3000)}`);
  }
}

/** One probe of the guest module: write the command, read the result line. */
async function probe(g: QemuSession, file: string, cmd: string): Promise<Record<string, string>> {
  return kv(await g.sh(`echo '${cmd}' > /proc/parapet/${file}; cat /proc/parapet/${file}`, 300_000));
}

const hex = (n: bigint) => `0x${n.toString(16)}`;

interface Attacks {
  ahciOut: Record<string, string>;
  ahciIn: Record<string, string>;
  nic: Record<string, string>;
  dmabuf: bigint;
}

/** The DMA attacks on Parapet's region, and the controls on the module's own buffer. */
async function attack(g: QemuSession): Promise<Attacks> {
  const { base, end } = hvRegion(g.hvLog());
  const dmabuf = BigInt(kv(await g.sh("cat /proc/parapet/dmabuf")).phys);
  // AHCI (00:1f.2, port 1, the scratch disk; Linux's ahci is not loaded): all 16 MiB of
  // Parapet's region to the disk, and the disk into its last 64 KiB (then back out, to see it).
  const ahciOut = await probe(g, "ahci", `auto 1 write ${hex(base)} ${end - base} ${HV_LBA}`);
  const ahciIn = await probe(g, "ahci", `auto 1 read ${hex(end - 65536n)} 65536 0`);
  await probe(g, "ahci", `auto 1 write ${hex(end - 65536n)} 65536 ${STOLEN_LBA}`);
  // Controls: the module's buffer to the disk; the disk into the buffer and back out.
  assert.equal((await probe(g, "ahci", `auto 1 write ${hex(dmabuf)} ${MiB} ${CTL_LBA}`)).status, "ok");
  assert.equal((await probe(g, "ahci", `auto 1 read ${hex(dmabuf)} 65536 0`)).status, "ok");
  assert.equal((await probe(g, "ahci", `auto 1 write ${hex(dmabuf)} 65536 ${BACK_LBA}`)).status, "ok");
  // e1000: the whole region in 16000-byte frames, then the module's buffer (the control).
  const nic = await probe(g, "e1000", `auto ${hex(base)} 16000 ${Math.ceil(Number(end - base) / 16000)}`);
  // (from 64 KiB on: the first 64 KiB now hold the disk's bytes)
  assert.equal((await probe(g, "e1000", `auto ${hex(dmabuf + 65536n)} 16000 2`)).status, "ok");
  return { ahciOut, ahciIn, nic, dmabuf };
}

/** fio with verification on a block device region (the workload tests/ata.test.ts runs). */
async function fio(g: QemuSession, dev: string, offset: number): Promise<void> {
  const out = await g.sh(
    `fio --name=verify --filename=${dev} --offset=${offset} --size=4M --rw=randwrite --bs=4k --direct=1 ` +
      `--ioengine=psync --verify=crc32c --verify_fatal=1 --do_verify=1 --randrepeat=0 --output-format=terse`,
    300_000,
  );
  assert.doesNotMatch(out, /verify: bad|error=/i);
}

const count = (hay: Buffer, needle: Buffer) => {
  let n = 0;
  for (let i = hay.indexOf(needle); i >= 0; i = hay.indexOf(needle, i + 1)) n++;
  return n;
};

describe("DMA isolation", { concurrency: 2 }, () => {
  const key = newKey();
  const halves = [key.subarray(0, 32), key.subarray(32)];
  let image: string;

  before(async () => {
    await prepare();
    // The ahci driver stays out until the attacks are done (the module drives 00:1f.2 itself).
    image = await encryptedImage("iommu-enc.img", key, "modprobe.blacklist=ahci");
  });

  test("q35 with intel-iommu: DMA of AHCI, e1000 and fw_cfg never reaches Parapet's memory; devices keep working", async () => {
    const policy = await writePolicy("iommu.pol", { ...wholeDiskPolicy(key), allowNoIommu: false });
    const scratch = await scratchDisk("iommu-scratch.img");
    const pcap = join(TMP, "iommu.pcap");
    const g = boot({ disk: image, modules: [policy], iommu: "intel" }, scratch, pcap);
    try {
      await ready(g);
      assert.match(g.hvLog(), /iommu: VT-d: 1 unit\(s\), DMA translation on .* DMA isolation ON/);
      assert.deepEqual(kv(await g.sh("cat /proc/parapet/status")), {
        dma_isolation: "1",
        keys: "1",
        dma_blocked: "0",
        iommu_units: "1",
        s3_resumes: "0",
        sleeps_refused: "0",
      });
      // The guest is offered no IOMMU: no DMAR in its ACPI tables, and the registers refuse it.
      assert.doesNotMatch(await g.sh("ls /sys/firmware/acpi/tables"), /DMAR/);
      const gcmd = kv(await g.sh("echo 'fed90018 0' > /proc/parapet/mmio; cat /proc/parapet/mmio"));
      assert.equal(gcmd.readback, "0xffffffff");

      const a = await attack(g);
      const log = await g.sh("cat /proc/parapet/log");
      assert.match(log, /guest write of IOMMU register fed90018 refused/);
      assert.match(log, /iommu: DMA read blocked: requester 00:1f\.2 address /);
      assert.match(log, /iommu: DMA write blocked: requester 00:1f\.2 address /);
      const nicBdf = (await g.sh("for d in /sys/bus/pci/devices/*; do grep -q 0x100e $d/device && basename $d; done; true"))
        .trim()
        .replace(/^0000:/, "")
        .replace(/\./, "\\.");
      assert.match(log, new RegExp(`iommu: DMA read blocked: requester ${nicBdf} address `));
      const st = kv(await g.sh("cat /proc/parapet/status"));
      assert.equal(st.dma_isolation, "1");
      assert.ok(Number(st.dma_blocked) >= 3, `blocked: ${st.dma_blocked}`);
      assert.equal(a.nic.sent, String(Math.ceil((16 * MiB) / 16000)), JSON.stringify(a.nic));

      // fw_cfg: the items that carried Parapet and its modules read as empty; its DMA cannot
      // touch Parapet's region; the device keeps working for everything else.
      const { base } = hvRegion(g.hvLog());
      assert.match(await g.sh("ptest fwcfg sig"), /sig=QEMU/);
      assert.equal(kv(await g.sh("ptest fwcfg find 0x11 1048576 50415241504f4c31")).hits, "0");
      assert.equal(kv(await g.sh(`ptest fwcfg find 0x11 1048576 ${halves[0].toString("hex")}`)).hits, "0");
      assert.match(kv(await g.sh("ptest fwcfg read 0x08 4")).bytes, /^(00000000)?$/);
      assert.equal(Number((await probe(g, "fwcfg", `dma read 0x0 ${hex(base)} 4`)).control) & 1, 1);
      const files = await g.sh("ptest fwcfg dir");
      const writable = /key=(0x[0-9a-f]+) size=\d+ name=etc\/smi\/requested-features/.exec(files);
      if (writable) assert.equal(Number((await probe(g, "fwcfg", `dma write ${writable[1]} ${hex(base)} 8`)).control) & 1, 1);
      assert.equal((await probe(g, "fwcfg", `dma read 0x0 ${hex(a.dmabuf)} 4`)).control, "0x00000000");

      // The protected IDE disk (shadow buffers in Parapet's memory, reachable by that controller
      // alone) and an unprotected AHCI disk, both through the translation.
      await fio(g, "/dev/bootdisk", DATA_OFFSET + 2 * MiB);
      await g.sh("for ko in $(grep ahci /lib/modules/load-order); do insmod $ko; done; sleep 2");
      const sd = (await g.sh("ls /sys/block/ | grep sd | grep -v sda")).trim();
      assert.match(sd, /^sd[b-z]$/);
      await fio(g, `/dev/${sd}`, FIO_OFFSET);
      assert.match(await g.sh("cat /proc/parapet/version"), /magic=0x54505250/);
      const fate = await g.poweroff();
      assert.equal(fate.kind, "poweroff", JSON.stringify(fate));
      assert.doesNotMatch(g.hvLog(), /panic/);
    } finally {
      g.kill();
    }
    const disk = await readFile(scratch);
    const frames = await readFile(pcap);
    for (const h of halves) {
      assert.equal(count(disk, h), 0, "a key half reached the AHCI disk");
      assert.equal(count(frames, h), 0, "a key half left through the NIC");
    }
    assert.ok(
      disk.subarray(HV_LBA * 512, HV_LBA * 512 + 16 * MiB).every((b) => b === 0),
      "bytes of Parapet's region on the disk",
    );
    assert.ok(
      !disk.subarray(STOLEN_LBA * 512, STOLEN_LBA * 512 + 65536).equals(cells("SCRATCH-B", 65536)),
      "the disk's bytes went into Parapet's region",
    );
    assert.ok(disk.subarray(CTL_LBA * 512, CTL_LBA * 512 + MiB).equals(cells("PARAPET-DMABUF", MiB)), "control: the module's buffer on disk");
    assert.ok(disk.subarray(BACK_LBA * 512, BACK_LBA * 512 + 65536).equals(cells("SCRATCH-B", 65536)), "control: disk -> RAM -> disk");
    assert.ok(frames.includes(cells("PARAPET-DMABUF", MiB).subarray(65536, 65536 + 4096)), "control: the module's buffer on the wire");
  });

  test("without an IOMMU (record made with --allow-no-iommu): the same attacks reach Parapet's memory, with the warning logged", async () => {
    const policy = await writePolicy("iommu-allow.pol", { ...wholeDiskPolicy(key), allowNoIommu: true });
    const scratch = await scratchDisk("iommu-scratch-none.img");
    const pcap = join(TMP, "iommu-none.pcap");
    const g = boot({ disk: image, modules: [policy] }, scratch, pcap);
    try {
      await ready(g);
      assert.match(g.hvLog(), /no DMAR or IVRS table: no IOMMU, DMA isolation OFF/);
      assert.match(g.hvLog(), /WARNING: DMA isolation is OFF and the record allows it/);
      assert.deepEqual(kv(await g.sh("cat /proc/parapet/status")), {
        dma_isolation: "0",
        keys: "1",
        dma_blocked: "0",
        iommu_units: "0",
        s3_resumes: "0",
        sleeps_refused: "0",
      });
      const a = await attack(g);
      assert.equal(a.ahciOut.status, "ok");
      assert.equal(a.ahciIn.status, "ok");
      const fate = await g.poweroff();
      assert.equal(fate.kind, "poweroff", JSON.stringify(fate));
    } finally {
      g.kill();
    }
    const disk = await readFile(scratch);
    const frames = await readFile(pcap);
    for (const h of halves) {
      assert.ok(count(disk, h) > 0, "negative control: the key schedule is on the AHCI disk");
      assert.ok(count(frames, h) > 0, "negative control: the key schedule left through the NIC");
    }
    assert.ok(
      disk.subarray(STOLEN_LBA * 512, STOLEN_LBA * 512 + 65536).equals(cells("SCRATCH-B", 65536)),
      "negative control: the disk's bytes went into Parapet's region",
    );
  });

  test("q35 with amd-iommu: AMD-Vi translation keeps AHCI DMA out of Parapet's memory", async () => {
    const policy = await writePolicy("iommu-amd.pol", { ...wholeDiskPolicy(key), allowNoIommu: false });
    const scratch = await scratchDisk("iommu-scratch-amd.img");
    const g = boot({ disk: image, modules: [policy], iommu: "amd" }, scratch, join(TMP, "iommu-amd.pcap"));
    try {
      await ready(g);
      assert.match(g.hvLog(), /iommu: AMD-Vi: 1 unit\(s\), DMA translation on .* DMA isolation ON/);
      assert.deepEqual(kv(await g.sh("cat /proc/parapet/status")).dma_isolation, "1");
      assert.doesNotMatch(await g.sh("ls /sys/firmware/acpi/tables"), /IVRS/);
      const { base, end } = hvRegion(g.hvLog());
      await probe(g, "ahci", `auto 1 write ${hex(base)} ${end - base} ${HV_LBA}`);
      const dmabuf = BigInt(kv(await g.sh("cat /proc/parapet/dmabuf")).phys);
      assert.equal((await probe(g, "ahci", `auto 1 write ${hex(dmabuf)} ${MiB} ${CTL_LBA}`)).status, "ok");
      await fio(g, "/dev/bootdisk", DATA_OFFSET + 2 * MiB);
      const fate = await g.poweroff();
      assert.equal(fate.kind, "poweroff", JSON.stringify(fate));
    } finally {
      g.kill();
    }
    const disk = await readFile(scratch);
    for (const h of halves) assert.equal(count(disk, h), 0, "a key half reached the AHCI disk");
    assert.ok(
      disk.subarray(HV_LBA * 512, HV_LBA * 512 + 16 * MiB).every((b) => b === 0),
      "bytes of Parapet's region on the disk",
    );
    assert.ok(disk.subarray(CTL_LBA * 512, CTL_LBA * 512 + MiB).equals(cells("PARAPET-DMABUF", MiB)), "control: the module's buffer on disk");
  });

  test("without an IOMMU a record with keys and without --allow-no-iommu is refused, naming why", async () => {
    const policy = await writePolicy("iommu-strict.pol", { ...wholeDiskPolicy(key), allowNoIommu: false });
    const g = new QemuSession({ machine: "q35", piixIde: true, disk: image, snapshot: true, modules: [policy] });
    const fate = await g.fate(120_000);
    assert.equal(fate.kind, "panic", JSON.stringify(fate));
    assert.match(
      (fate as { message: string }).message,
      /policy record \(module 0\) refused: it carries keys and DMA isolation is off \(no usable IOMMU/,
    );
    assert.match((fate as { message: string }).message, /--allow-no-iommu/);
  });
});
