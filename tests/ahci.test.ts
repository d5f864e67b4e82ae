// The AHCI parapass-through driver (q35's ICH9 AHCI at 00:1f.2): a disk encrypted whole on
// AHCI port 0 boots through SeaBIOS's AHCI INT 13h and Linux's ahci driver, fio with libaio at
// queue depth 32 verifies, the medium holds only ciphertext that decrypts to what the guest
// wrote, an unprotected disk on port 1 and a CD-ROM on the same controller keep working; with
// the ahci driver unbound, ahciatk's attacks are refused and the disk still decrypts.
//
// Every attack is first run on the bare machine (no Parapet), where it must succeed (the DMA
// reaches its target, the command executes, the moved registers take effect): the bare results
// are kept and each Parapet case compares against them, so an attack that works under Parapet
// fails the test, and one that could not work anyway is noticed.
import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { prepare, hvRegion, kv } from "./fixture.ts";
import { newKey, writePolicy, wholeDisk, plainImage, transformImage, decryptedCopy, DATA_PARTITION_START_LBA, DATA_OFFSET } from "./diskfixture.ts";
import { QemuSession } from "../src/lib/qemu.ts";

const MiB = 1024 * 1024;
/** Sectors the attacks use, inside the data partition (LBA 131072 on). */
const LBA = DATA_PARTITION_START_LBA + 8192;
/** A fio verify job at queue depth 32 on a disk's data partition. */
const fioQd32 = (dev: string, offsetMiB: number) =>
  `fio --name=qd32 --filename=${dev} --offset=${DATA_OFFSET + offsetMiB * MiB} --size=8M --rw=randwrite --bs=4k --iodepth=32 ` +
  `--ioengine=libaio --direct=1 --verify=crc32c --verify_fatal=1 --do_verify=1 --randrepeat=0 --output-format=terse`;

type Boot = ConstructorParameters<typeof QemuSession>[0];

async function boot(opts: Boot): Promise<QemuSession> {
  const g = new QemuSession({ machine: "q35", ahci: true, ...opts });
  try {
    await g.ready();
  } catch (e) {
    g.kill();
    throw new Error(`${(e as Error).message}\nhypervisor log tail:\n${g.hvLog().slice(-3000)}`);
  }
  return g;
}

/** Runs ahciatk in the guest; its result line as key=value words. */
async function atk(g: QemuSession, args: string, timeoutMs = 120_000): Promise<Record<string, string>> {
  const out = await g.sh(`ahciatk --timeout 20000 ${args}`, timeoutMs);
  const line = out.split("\n").find((l) => l.startsWith("ahciatk: result="));
  assert.ok(line, `no result line from ahciatk ${args}: ${out}`);
  return kv(line.replace(/^ahciatk: /, ""));
}

/** The same checks on the guest's storage, bare or under Parapet. */
async function storageChecks(g: QemuSession): Promise<void> {
  assert.match(await g.sh("readlink /sys/bus/pci/devices/0000:00:1f.2/driver"), /ahci$/, "Linux's ahci driver owns 00:1f.2");
  assert.match(await g.sh("readlink /dev/bootdisk"), /^sd/);
  assert.match(await g.sh("ls -l /dev/disk/ata-0-0 /dev/disk/ata-1-0"), /ata-1-0/, "port 0 and port 1 disks");
  assert.match(await g.sh("mountboot && ls /boot && umount /boot"), /vmlinuz/, "the boot partition's files read back");
  // The CD-ROM on port 2: an ATAPI device (SCSI type 5) that the ahci driver found (the guest
  // has no sr driver, so no block device).
  assert.match(await g.sh("grep -l '^5$' /sys/bus/scsi/devices/*/type"), /\/type$/);
  for (const [dev, off] of [
    ["/dev/bootdisk", 8],
    ["/dev/disk/ata-1-0", 8],
  ] as const) {
    const out = await g.sh(fioQd32(dev, off), 600_000);
    assert.doesNotMatch(out, /verify: bad|error=/i, `fio on ${dev}`);
  }
}

/** Bare results of each attack, by name: what Parapet must prevent. */
const bareResults = new Map<string, Record<string, string>>();

/** The attacks, each with how it looks when it succeeded (bare) and how Parapet must answer. */
interface Attack {
  name: string;
  /** ahciatk arguments; `hidden` is an address in Parapet's region (bare: the same RAM address). */
  args: (hidden: string) => string;
  /** The attack worked: what the bare machine must show. */
  succeeded: (r: Record<string, string>) => boolean;
  /** Parapet's expected answer. */
  refused: (r: Record<string, string>) => boolean;
}

const ABORTED = (r: Record<string, string>) => r.result === "aborted" && (Number(r.error) & 0x04) === 0x04 && r.after === "ok";

export const ATTACKS: Attack[] = [
  {
    name: "PRD into hidden memory, device to memory",
    args: (h) => `prd-at ${h} 0 ${LBA} 8`,
    succeeded: (r) => r.result === "ok",
    // /dev/mem shows Parapet's region as zeros whatever it holds: only the device's answer tells.
    refused: (r) => r.result !== "ok",
  },
  {
    name: "PRD into hidden memory, memory to device",
    args: (h) => `prd-at ${h} 0 ${LBA} 8 --write`,
    succeeded: (r) => r.result === "ok" && r.landed !== "unchanged",
    refused: (r) => r.landed === "unchanged",
  },
  {
    name: "PRD at the LAPIC, memory to device",
    args: () => `prd-at 0xfee00000 0 ${LBA} 1 --write`,
    succeeded: (r) => r.result === "ok" && r.landed !== "unchanged",
    refused: (r) => r.landed === "unchanged",
  },
  {
    name: "PRD at the LAPIC, device to memory (NCQ)",
    args: () => `prd-at 0xfee00000 0 ${LBA} 1 --ncq`,
    succeeded: (r) => r.result === "ok",
    refused: (r) => r.result !== "ok",
  },
  {
    name: "the command table rewritten (LBA, PRDs) before the issue: the control",
    args: () => `race 0 ${LBA} 64 --before`,
    succeeded: (r) => r.at_alt === "B",
    // Before the issue the rewrite is the guest's own, legitimate command: mediated, it lands
    // whole and decrypts (never "other": data encrypted for one LBA written at another).
    refused: (r) => r.result === "ok" && r.at_alt === "B" && r.at_lba === "fill",
  },
  {
    name: "PxCLB moved while slots are outstanding, then the port restarted, a command from hidden memory",
    args: (h) => `clb-move 0 ${LBA} 8 --target ${h}`,
    succeeded: (r) => r.restarted !== "unchanged",
    refused: (r) => r.running === "unchanged" && r.restarted === "unchanged" && r.after === "ok",
  },
  {
    name: "PxCLB programmed through the index/data pair (BAR4), a command from hidden memory",
    args: (h) => `idp 0 ${LBA} 8 --target ${h}`,
    succeeded: (r) => r.cap_match === "yes" && r.landed !== "unchanged",
    refused: (r) => r.landed === "unchanged" && r.after === "ok",
  },
  {
    name: "DATA SET MANAGEMENT (TRIM) on the encrypted range",
    args: () => `cmd 0 0x06 1 1 ${LBA} --data-out`,
    succeeded: (r) => r.result === "ok",
    refused: ABORTED,
  },
  {
    name: "a slot whose header direction (write) contradicts its FIS (READ DMA EXT)",
    args: () => `cmd 0 0x25 0 8 ${LBA} --data-out`,
    succeeded: (r) => r.result === "ok",
    refused: ABORTED,
  },
  {
    name: "ABAR moved through 0xCF8, then DSM at the new address",
    args: () => `abar-move 0 0xfebd0000 --via cf8 --lba ${LBA}`,
    succeeded: (r) => r.readback === "0xfebd0000" && r.roundtrip === "ok" && r.dsm === "ok",
    refused: (r) => r.roundtrip === "ok" && r.dsm === "aborted" && r.restored === "1",
  },
  {
    name: "ABAR moved through sysfs, then DSM at the new address",
    args: () => `abar-move 0 0xfebd0000 --via sysfs --lba ${LBA}`,
    succeeded: (r) => r.readback === "0xfebd0000" && r.roundtrip === "ok" && r.dsm === "ok",
    refused: (r) => r.roundtrip === "ok" && r.dsm === "aborted" && r.restored === "1",
  },
];

/** Commands that the device itself refuses too (QEMU implements none): under Parapet they must
 * be refused by Parapet (its log says so), not only by the device. */
const REFUSED_OPCODES = ["0xf1 0 1 0 --data-out", "0xf2 0 1 0 --data-out", "0xf4", "0xf6", "0x92 3 1 0 --data-out", "0xc0", "0xff"];

describe("AHCI on the bare machine (q35, 2 CPUs): the controls", () => {
  let g: QemuSession;
  before(async () => {
    await prepare();
    const image = await plainImage("ahci-bare.img");
    const second = await plainImage("ahci-bare-2.img");
    g = await boot({ parapet: false, cpus: 2, disk: image, ahciDisks: [{ image: second, port: 1 }], ahciCdrom: { image: "", port: 2 } });
  });
  after(() => g?.kill());

  test("boots from AHCI port 0 (SeaBIOS INT 13h, Linux ahci); fio QD32 libaio verifies on both disks; the CD-ROM answers", async () => {
    await storageChecks(g);
  });

  test("ahciatk: round trips, non-NCQ and NCQ, 32 slots at once", async () => {
    assert.equal((await atk(g, "--unbind info")).result, "ok");
    for (const ncq of ["", " --ncq"]) {
      const w = await atk(g, `write 0 ${LBA} 16 --pattern lba${ncq}`);
      const r = await atk(g, `read 0 ${LBA} 16${ncq}`);
      assert.deepEqual([w.result, r.result], ["ok", "ok"]);
      assert.equal(r.sha256, w.sha256);
    }
    const m = await atk(g, `multi 0 ${LBA} 8 --slots 32 --ncq`);
    assert.deepEqual([m.result, m.mismatches], ["ok", "0"], JSON.stringify(m));
  });

  for (const a of ATTACKS)
    test(`bare: ${a.name} succeeds`, async () => {
      const r = await atk(g, a.args("0x1e000000"));
      bareResults.set(a.name, r);
      assert.ok(a.succeeded(r), `on the bare machine this attack must work: ${JSON.stringify(r)}`);
    });

  test("bare: HBA reset in the middle of a transfer, then a good round trip", async () => {
    const r = await atk(g, `hba-reset 0 ${LBA} 1024 --ncq`);
    assert.deepEqual([r.result, r.hr_cleared, r.roundtrip], ["ok", "1", "ok"], JSON.stringify(r));
  });
});

/** PARAPET_AHCI_ONLY=bare runs only the bare controls (until the driver exists). */
const ONLY = process.env.PARAPET_AHCI_ONLY;

for (const cpus of ONLY === "bare" ? [] : [1, 2])
  describe(`AHCI parapass-through with XTS-AES-256, q35, ${cpus} CPU${cpus > 1 ? "s" : ""}`, () => {
    const key = newKey();
    let image: string, orig: Buffer;
    let g: QemuSession | undefined;

    before(async () => {
      await prepare();
      // The whole-disk record names the boot disk as IDE primary master and as AHCI port 0.
      const policy = await writePolicy(`ahci-${cpus}.pol`, wholeDisk(key));
      image = await plainImage(`ahci-enc-${cpus}.img`);
      orig = (await readFile(image)).subarray(0, DATA_OFFSET);
      await transformImage(image, key, "encrypt");
      const second = await plainImage(`ahci-plain-${cpus}.img`);
      g = await boot({
        cpus,
        disk: image,
        modules: [policy],
        ahciDisks: [{ image: second, port: 1, snapshot: true }],
        ahciCdrom: { image: "", port: 2 },
      });
    });
    after(() => g?.kill());

    const alive = async () => {
      assert.match(await g!.sh("cat /proc/parapet/version"), /magic=0x54505250/);
      assert.doesNotMatch(g!.hvLog(), /panic/);
    };

    test("the encrypted disk boots through AHCI; fio QD32 verifies on it and on the unprotected port 1 disk; the CD-ROM answers", async () => {
      assert.match(g!.hvLog(), /ahci: 00:1f\.2/i, "Parapet mediates the AHCI controller");
      await storageChecks(g!);
      await g!.sh(
        `yes ahci-${cpus} | head -c ${MiB} > /tmp/p && dd if=/tmp/p of=/dev/bootdisk bs=64k seek=${DATA_OFFSET / 65536} oflag=direct conv=fsync 2>/dev/null`,
      );
      await g!.sh(`mountboot && echo written-over-ahci-${cpus} > /boot/AHCI.TXT && umount /boot && sync`);
      await alive();
    });

    if (cpus === 2) {
      test("ahciatk round trips through Parapet (non-NCQ, NCQ, 32 slots)", async () => {
        assert.equal((await atk(g!, "--unbind info")).result, "ok");
        const w = await atk(g!, `write 0 ${LBA} 16 --pattern lba`);
        const r = await atk(g!, `read 0 ${LBA} 16 --ncq`);
        assert.equal(r.result, "ok");
        assert.equal(r.sha256, w.sha256, "what was written reads back (both through Parapet's XTS)");
        const m = await atk(g!, `multi 0 ${LBA} 8 --slots 32 --ncq`);
        assert.deepEqual([m.result, m.mismatches], ["ok", "0"], JSON.stringify(m));
      });

      for (const a of ATTACKS)
        test(`Parapet: ${a.name} is refused`, async () => {
          const { base } = hvRegion(g!.hvLog());
          const r = await atk(g!, a.args("0x" + (base + 0x200000n).toString(16)));
          const bare = bareResults.get(a.name);
          if (bare) assert.ok(a.succeeded(bare), `the bare run showed the attack working: ${JSON.stringify(bare)}`);
          assert.ok(a.refused(r), `under Parapet: ${JSON.stringify(r)}`);
          assert.ok(!a.succeeded(r) || a.name.includes("control"), `the attack worked as it does bare: ${JSON.stringify(r)}`);
          await alive();
        });

      test("Parapet: the command table rewritten from CPU 1 right after the issue changes nothing", async () => {
        for (const dir of ["", " --read", " --ncq"]) {
          const r = await atk(g!, `race 0 ${LBA} 64${dir}`);
          assert.equal(r.result, "ok", JSON.stringify(r));
          if (dir === " --read") assert.ok(["A", "B"].includes(r.buf_a) || r.buf_b === "B", JSON.stringify(r));
          else
            for (const k of ["at_lba", "at_alt"]) assert.notEqual(r[k], "other", `${k}: never data encrypted for another LBA: ${JSON.stringify(r)}`);
        }
        await alive();
      });

      test("Parapet: SECURITY, DOWNLOAD MICROCODE, vendor and unknown opcodes are refused with ABRT and the port keeps working", async () => {
        for (const op of REFUSED_OPCODES) {
          const r = await atk(g!, `cmd 0 ${op}`);
          assert.ok(ABORTED(r), `${op}: ${JSON.stringify(r)}`);
        }
        assert.match(g!.hvLog(), /ahci: .*command f1 refused/, "Parapet refused SECURITY itself");
        assert.match(g!.hvLog(), /ahci: .*command 92 refused/);
        await alive();
      });

      test("Parapet: HBA reset in the middle of a transfer, then a good round trip", async () => {
        const r = await atk(g!, `hba-reset 0 ${LBA} 1024 --ncq`);
        assert.deepEqual([r.result, r.hr_cleared, r.roundtrip], ["ok", "1", "ok"], JSON.stringify(r));
        await alive();
      });

      test("Parapet: ABAR moved by a store into the function's ECAM page stays mediated", async () => {
        const r = await atk(g!, `abar-move 0 0xfebd0000 --via ecam --lba ${LBA}`);
        assert.equal(r.roundtrip, "ok", JSON.stringify(r));
        assert.equal(r.dsm, "aborted", JSON.stringify(r));
        await alive();
      });
    }

    test("afterwards the medium holds ciphertext that decrypts to what the guest wrote", async () => {
      assert.equal((await g!.poweroff()).kind, "poweroff");
      g = undefined;
      const raw = await readFile(image);
      const plain = await decryptedCopy(image, key);
      assert.ok(plain.subarray(0, 2048 * 512).equals(orig.subarray(0, 2048 * 512)), "MBR and gap decrypt to the original");
      const line = Buffer.from(`ahci-${cpus}\n`);
      assert.ok(plain.subarray(DATA_OFFSET, DATA_OFFSET + line.length).equals(line), "the guest's pattern decrypts in place");
      assert.equal(raw.indexOf(Buffer.concat([line, line, line])), -1, "and is nowhere in the clear");
      assert.notEqual(plain.indexOf(`written-over-ahci-${cpus}`), -1, "the file written on the FAT32 partition");
      assert.equal(raw.indexOf(`written-over-ahci-${cpus}`), -1);
      assert.notEqual(raw.readUInt16LE(510), 0xaa55, "no plaintext MBR");
    });
  });
