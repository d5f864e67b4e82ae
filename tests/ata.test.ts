// The ATA parapass-through driver with transparent XTS-AES-256: a guest whose whole disk (MBR
// and boot loader included) is encrypted boots through SeaBIOS INT 13h and Linux ata_piix,
// writes through DMA and PIO, and the host finds exactly what it wrote, encrypted; a guest
// without Parapet opens the same image with stock cryptsetup.
import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { prepare, bootGuest, DEFAULT_IMAGE, TMP } from "./fixture.ts";
import {
  newKey,
  writePolicy,
  wholeDisk,
  encryptedImage,
  plainImage,
  transformImage,
  decryptedCopy,
  keyDisk,
  patternCmd,
  pattern,
  DATA_PARTITION_START_LBA,
  DATA_OFFSET,
  SECTOR,
} from "./diskfixture.ts";
import { QemuSession } from "../src/lib/qemu.ts";

const MiB = 1024 * 1024;

type Boot = ConstructorParameters<typeof QemuSession>[0];

async function bootEncrypted(disk: string, policy: string, extra: Partial<Boot> = {}) {
  const s = new QemuSession({ disk, modules: [policy], ...extra });
  try {
    await s.ready();
  } catch (e) {
    s.kill();
    throw new Error(`${(e as Error).message}\nconsole tail:\n${s.console.slice(-3000)}\nhypervisor log tail:\n${s.hvLog().slice(-3000)}`);
  }
  return s;
}

/** The guest writes a pattern to the data partition with O_DIRECT, reads it back, runs fio with
 * verification, and writes a file on the FAT32 partition; returns what it wrote. */
async function writeWorkload(g: QemuSession, tag: string, fio: boolean) {
  const seek = DATA_OFFSET / (64 * 1024);
  await g.sh(patternCmd("/tmp/p", tag, MiB));
  await g.sh(`dd if=/tmp/p of=/dev/bootdisk bs=64k seek=${seek} oflag=direct conv=fsync 2>/dev/null`);
  await g.sh(`dd if=/dev/bootdisk of=/tmp/q bs=64k skip=${seek} count=16 iflag=direct 2>/dev/null && cmp /tmp/p /tmp/q`);
  if (fio) {
    const out = await g.sh(
      `fio --name=verify --filename=/dev/bootdisk --offset=${DATA_OFFSET + 2 * MiB} --size=4M --rw=randwrite --bs=4k ` +
        `--direct=1 --ioengine=psync --verify=crc32c --verify_fatal=1 --do_verify=1 --randrepeat=0 --output-format=terse`,
      300_000,
    );
    assert.doesNotMatch(out, /verify: bad|error=/i);
  }
  const text = `written-under-parapet-${tag}`;
  await g.sh(`mountboot && echo ${text} > /boot/HELLO.TXT && umount /boot && sync`);
  return text;
}

describe("ATA parapass-through with XTS-AES-256, pc machine", () => {
  const key = newKey();
  let policy: string, image: string;
  let written: string;
  let g: QemuSession | undefined;

  before(async () => {
    await prepare();
    policy = await writePolicy("ata-whole.pol", wholeDisk(key));
    image = await encryptedImage("ata-enc.img", key);
  });
  after(() => g?.kill());

  test("the raw image is ciphertext from its first sector on", async () => {
    const raw = await readFile(image);
    assert.notEqual(raw.readUInt16LE(510), 0xaa55, "the MBR signature must not be visible");
    assert.equal(raw.indexOf("SYSLINUX"), -1);
    const plain = await readFile(DEFAULT_IMAGE);
    assert.equal(plain.readUInt16LE(510), 0xaa55);
  });

  test("the guest boots from the encrypted disk (INT 13h, then ata_piix DMA) and its data lands encrypted", async () => {
    g = await bootEncrypted(image, policy);
    const log = g.hvLog();
    assert.match(log, /handoff: policy record: 1 keys, 2 drives, 0 ranges; module wiped/);
    assert.match(log, /ata: 00:01\.1 ch0 master: ATA serial '[^']+', protected by the policy/);
    assert.match(log, /ata: 00:01\.1 mediated/);
    assert.doesNotMatch(log, /[0-9a-f]{64}/, "no key material in the log");
    assert.match(await g.sh("cat /sys/class/ata_device/dev1.0/xfer_mode"), /^XFER_(MW|UDMA|U)_?DMA/);
    written = await writeWorkload(g, "dma", true);
    assert.equal((await g.poweroff()).kind, "poweroff");
    g = undefined;

    const raw = await readFile(image);
    const plain = await decryptedCopy(image, key);
    assert.ok(plain.subarray(DATA_OFFSET, DATA_OFFSET + MiB).equals(pattern("dma", MiB)), "the pattern is where the guest wrote it");
    assert.equal(raw.indexOf(pattern("dma", 64)), -1, "and never in the clear on the medium");
    assert.notEqual(plain.indexOf(written), -1, "the file's text is in the decrypted FAT32 partition");
    assert.equal(raw.indexOf(written), -1);
  });

  test("a guest without Parapet opens the image with cryptsetup (plain, aes-xts-plain64) and reads the same files", async () => {
    assert.ok(written, "needs the previous test's writes");
    const kd = await keyDisk("ata-key.disk", key);
    const bare = await bootGuest({
      parapet: false,
      extraArgs: ["-drive", `file=${image},format=raw,if=ide,index=1,snapshot=on`, "-drive", `file=${kd},format=raw,if=ide,index=2,snapshot=on`],
    });
    try {
      await bare.sh("dd if=/dev/disk/ata-1-0 of=/tmp/k bs=64 count=1 2>/dev/null");
      // Two plain mappings of one device (each partition with its own offset) need --shared.
      const open = (name: string, lba: number) =>
        `cryptsetup open --type plain --cipher aes-xts-plain64 --key-size 512 --key-file /tmp/k --offset ${lba} --skip ${lba} --shared -q /dev/disk/ata-0-1 ${name}`;
      await bare.sh(open("boot", 2048));
      await bare.sh("mkdir -p /mnt && mount -t vfat -o ro /dev/mapper/boot /mnt");
      assert.equal((await bare.sh("cat /mnt/HELLO.TXT")).trim(), written);
      assert.match(await bare.sh("ls /mnt"), /vmlinuz/);
      await bare.sh(open("data", DATA_PARTITION_START_LBA));
      await bare.sh(`${patternCmd("/tmp/p", "dma", MiB)} && dd if=/dev/mapper/data of=/tmp/q bs=64k count=16 2>/dev/null && cmp /tmp/p /tmp/q`);
    } finally {
      bare.kill();
    }
  });
});

describe("ATA parapass-through in PIO mode (libata.dma=0)", () => {
  test("boots and writes through PIO; the host decrypts what the guest wrote", async () => {
    await prepare();
    const key = newKey();
    const policy = await writePolicy("ata-pio.pol", wholeDisk(key));
    const image = await encryptedImage("ata-pio.img", key, "libata.dma=0");
    const g = await bootEncrypted(image, policy);
    try {
      assert.match(await g.sh("cat /sys/class/ata_device/dev1.0/xfer_mode"), /^XFER_PIO/);
      await writeWorkload(g, "pio", false);
      assert.equal((await g.poweroff()).kind, "poweroff");
    } finally {
      g.kill();
    }
    const plain = await decryptedCopy(image, key);
    assert.ok(plain.subarray(DATA_OFFSET, DATA_OFFSET + MiB).equals(pattern("pio", MiB)));
    assert.notEqual(plain.indexOf("written-under-parapet-pio"), -1);
  });
});

describe("ATA parapass-through on q35 with a PIIX IDE controller", () => {
  test("boots from the encrypted disk and reads and writes it", async () => {
    await prepare();
    const key = newKey();
    const policy = await writePolicy("ata-q35.pol", wholeDisk(key));
    const image = await encryptedImage("ata-q35.img", key);
    const g = await bootEncrypted(image, policy, { machine: "q35", piixIde: true });
    try {
      assert.match(g.hvLog(), /ata: [0-9a-f]{2}:[0-9a-f]{2}\.\d ch0 master: ATA serial '[^']+', protected by the policy/);
      await writeWorkload(g, "q35", false);
      assert.equal((await g.poweroff()).kind, "poweroff");
    } finally {
      g.kill();
    }
    const plain = await decryptedCopy(image, key);
    assert.ok(plain.subarray(DATA_OFFSET, DATA_OFFSET + MiB).equals(pattern("q35", MiB)));
  });
});

describe("ATA parapass-through: plaintext and denied ranges of a policy", () => {
  test("a plaintext range reaches the medium as written; a denied range is refused and Parapet keeps running", async () => {
    await prepare();
    const key = newKey();
    const L = BigInt(DATA_PARTITION_START_LBA);
    const policy = await writePolicy("ata-ranges.pol", {
      keys: [key],
      drives: [
        {
          match: { port: { channel: 0, position: 0 } },
          defaultAction: "encrypt",
          defaultKey: 0,
          ranges: [
            { firstLba: L, count: 2048n, action: "plain", key: 0 },
            { firstLba: L + 4096n, count: 2048n, action: "deny", key: 0 },
          ],
        },
      ],
    });
    // Encrypt the image as the policy says: everything but the plaintext range.
    const image = await plainImage("ata-ranges.img");
    await transformImage(image, key, "encrypt", 0, DATA_PARTITION_START_LBA);
    await transformImage(image, key, "encrypt", DATA_PARTITION_START_LBA + 2048);
    // The record is recognised by its content: here it is the second module, after another file.
    const other = join(TMP, "not-a-policy.bin");
    await writeFile(other, Buffer.from("some other boot module\n"));
    const g = await bootEncrypted(image, policy, { modules: [other, policy] });
    assert.match(g.hvLog(), /handoff: module 0 \(\d+ bytes\) is not a policy record; ignored/);
    assert.match(g.hvLog(), /handoff: policy record: 1 keys, 1 drives, 2 ranges; module wiped/);
    try {
      const seek = DATA_OFFSET / (64 * 1024);
      await g.sh(patternCmd("/tmp/p", "plain", MiB));
      await g.sh(`dd if=/tmp/p of=/dev/bootdisk bs=64k seek=${seek} oflag=direct conv=fsync 2>/dev/null`);
      const denied = (DATA_PARTITION_START_LBA + 4096) / 128; // in 64 KiB blocks
      const rd = await g.exec(`dd if=/dev/bootdisk of=/dev/null bs=64k skip=${denied} count=1 iflag=direct`, 180_000);
      assert.notEqual(rd.status, 0, `reading a denied range must fail: ${rd.out}`);
      const wr = await g.exec(`dd if=/tmp/p of=/dev/bootdisk bs=64k seek=${denied} count=1 oflag=direct`, 180_000);
      assert.notEqual(wr.status, 0, `writing a denied range must fail: ${wr.out}`);
      assert.match(g.hvLog(), /ata: ch0: command [0-9a-f]{2} refused: sectors denied by the policy/);
      // Parapet and the disk still work.
      await g.sh(`dd if=/dev/bootdisk of=/tmp/q bs=64k skip=${seek} count=16 iflag=direct 2>/dev/null && cmp /tmp/p /tmp/q`);
      assert.match(await g.sh("cat /proc/parapet/version"), /magic=/);
      assert.equal((await g.poweroff()).kind, "poweroff");
    } finally {
      g.kill();
    }
    const raw = await readFile(image);
    assert.ok(raw.subarray(DATA_OFFSET, DATA_OFFSET + MiB).equals(pattern("plain", MiB)), "plaintext range written as is");
    const deniedOff = (DATA_PARTITION_START_LBA + 4096) * SECTOR;
    assert.equal(raw.subarray(deniedOff, deniedOff + 65536).indexOf(pattern("plain", 64)), -1, "nothing written to the denied range");
  });
});

describe("a malformed policy record", () => {
  test("is refused at start with a message naming the problem, and the guest never runs", async () => {
    await prepare();
    const key = newKey();
    const good = await readFile(await writePolicy("ata-good.pol", wholeDisk(key)));
    const cases: [string, (b: Buffer) => void, RegExp][] = [
      [
        "corrupted byte",
        (b) => {
          b[40] ^= 0xff;
        },
        /crc32 mismatch/,
      ],
      [
        "unknown version",
        (b) => {
          b[8] = 9;
        },
        /unsupported version/,
      ],
      ["truncated", () => {}, /record truncated/],
    ];
    for (const [name, damage, why] of cases) {
      let bad = Buffer.from(good);
      damage(bad);
      if (name === "truncated") bad = bad.subarray(0, bad.length - 10);
      const path = join(TMP, "ata-bad.pol");
      await writeFile(path, bad);
      const s = new QemuSession({ disk: DEFAULT_IMAGE, snapshot: true, modules: [path] });
      const fate = await s.fate(120_000);
      assert.equal(fate.kind, "panic", `${name}: ${JSON.stringify(fate)}`);
      assert.match((fate as { message: string }).message, /handoff: policy record \(module 0\) refused: /);
      assert.match((fate as { message: string }).message, why, name);
      assert.doesNotMatch(s.console, /PARAPET-GUEST-READY/);
    }
  });
});
