// The test guest's own pieces, checked on bare QEMU (no hypervisor): the disk layout, the
// stable disk names, fio, dm-crypt through cryptsetup (decrypted again on the host), and
// ataatk driving the IDE controller itself against a scratch disk on the secondary channel.
import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createDecipheriv, createHash } from "node:crypto";
import { mkdirSync, openSync, readFileSync, readSync, closeSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { prepare, bootGuest, kv, TMP, DEFAULT_IMAGE } from "./fixture.ts";
import { DATA_PARTITION_START_LBA, DATA_PARTITION_SECTORS } from "../src/lib/guestimage.ts";
import type { QemuSession } from "../src/lib/qemu.ts";

const SECTOR = 512;
const SCRATCH_SECTORS = 16384; // 8 MiB
const CRYPT_SECTORS = 64; // written through dm-crypt at the start of the scratch disk

function readSectors(file: string, lba: number, count: number): Buffer {
  const fd = openSync(file, "r");
  try {
    const buf = Buffer.alloc(count * SECTOR);
    readSync(fd, buf, 0, buf.length, lba * SECTOR);
    return buf;
  } finally {
    closeSync(fd);
  }
}

/** dm-crypt plain aes-xts-plain64: the IV of sector s is s, little-endian, padded to 16 bytes. */
function xtsDecrypt(key: Buffer, data: Buffer, firstSector: number): Buffer {
  const out = Buffer.alloc(data.length);
  for (let i = 0; i < data.length / SECTOR; i++) {
    const iv = Buffer.alloc(16);
    iv.writeBigUInt64LE(BigInt(firstSector + i));
    const d = createDecipheriv("aes-256-xts", key, iv);
    d.setAutoPadding(false);
    Buffer.concat([d.update(data.subarray(i * SECTOR, (i + 1) * SECTOR)), d.final()]).copy(out, i * SECTOR);
  }
  return out;
}

const sha256 = (b: Buffer) => createHash("sha256").update(b).digest("hex");

describe("the test guest on bare QEMU", () => {
  let g: QemuSession;
  const scratch = join(TMP, "guest-scratch.img");
  let key: Buffer;
  let cryptSha = "";
  const lbaPattern = 1000; // ataatk writes `--pattern lba` here, the host checks it

  before(async () => {
    await prepare();
    mkdirSync(TMP, { recursive: true });
    writeFileSync(scratch, Buffer.alloc(SCRATCH_SECTORS * SECTOR));
    g = await bootGuest({
      parapet: false,
      cpus: 2,
      extraArgs: ["-drive", `file=${scratch},format=raw,if=ide,index=2,media=disk`],
    });
  });

  after(() => g?.kill());

  test("the image has a bootable FAT32 partition and a raw data partition at the exported LBA", () => {
    const mbr = readSectors(DEFAULT_IMAGE, 0, 1);
    assert.equal(mbr.readUInt16LE(510), 0xaa55);
    const entry = (i: number) => ({
      boot: mbr[446 + 16 * i],
      type: mbr[446 + 16 * i + 4],
      start: mbr.readUInt32LE(446 + 16 * i + 8),
      sectors: mbr.readUInt32LE(446 + 16 * i + 12),
    });
    assert.deepEqual(entry(0), { boot: 0x80, type: 0x0c, start: 2048, sectors: DATA_PARTITION_START_LBA - 2048 });
    assert.deepEqual(entry(1), { boot: 0, type: 0xda, start: DATA_PARTITION_START_LBA, sectors: DATA_PARTITION_SECTORS });
    assert.equal(DATA_PARTITION_START_LBA, 131072);
  });

  test("init loads the modules, names the disks and the boot partition mounts read-write", async () => {
    assert.match(g.console, /init: disks: .*sda/);
    assert.doesNotMatch(g.console, /insmod .* failed/);
    for (const m of ["ata_piix", "sd_mod", "vfat", "dm_crypt", "xts", "msr"]) {
      assert.equal((await g.exec(`test -d /sys/module/${m}`)).status, 0, `module ${m} not loaded`);
    }
    const size = (dev: string) => g.sh(`cat /sys/class/block/$(readlink ${dev} | sed 's|.*/||')/size`);
    assert.equal(Number(await size("/dev/bootdisk2")), DATA_PARTITION_SECTORS);
    assert.equal(Number(await size("/dev/disk/ata-1-0")), SCRATCH_SECTORS);
    assert.equal(await g.sh("readlink /dev/disk/ata-0-0"), `../${await g.sh("readlink /dev/bootdisk")}`);
    // (The harness drops output lines that start like the command, hence the "cd /".)
    assert.match(await g.sh("cd / && mountboot"), /mountboot: \/dev\/bootdisk1 on \/boot/);
    await g.sh("echo written-by-the-guest > /boot/hello.txt && sync");
    assert.match(await g.sh("ls /boot"), /vmlinuz/);
    assert.equal(await g.sh("cat /boot/hello.txt"), "written-by-the-guest");
    await g.sh("umount /boot");
  });

  test("fio writes and verifies the data partition with O_DIRECT", async () => {
    const out = await g.sh(
      "fio --name=verify --filename=/dev/bootdisk2 --rw=randwrite --bs=4k --size=2M --direct=1 " +
        "--ioengine=libaio --iodepth=4 --verify=crc32c --do_verify=1 --randrepeat=0 2>&1",
      120_000,
    );
    assert.match(out, /err= 0/);
    assert.doesNotMatch(out, /verify: bad|bad magic|crc32c: verify failed/);
  });

  test("cryptsetup opens a plain aes-xts-plain64 mapping with a 512-bit key file", async () => {
    await g.sh("head -c 64 /dev/urandom > /tmp/key");
    key = Buffer.from((await g.sh("od -An -tx1 -v /tmp/key")).replace(/\s+/g, ""), "hex");
    assert.equal(key.length, 64);
    await g.sh("cryptsetup -q open --type plain --cipher aes-xts-plain64 --key-size 512 --key-file /tmp/key /dev/disk/ata-1-0 scratch");
    await g.sh(`dd if=/dev/urandom of=/tmp/data bs=512 count=${CRYPT_SECTORS} 2>/dev/null`);
    await g.sh(`dd if=/tmp/data of=/dev/mapper/scratch bs=4096 oflag=direct 2>/dev/null`);
    cryptSha = (await g.sh("sha256sum /tmp/data")).split(/\s+/)[0];
    await g.sh("cryptsetup close scratch");
  });

  describe("ataatk", () => {
    const run = async (cmd: string) => {
      const r = await g.exec(`ataatk ${cmd}`, 120_000);
      assert.equal(r.status, 0, `ataatk ${cmd} failed:\n${r.out}`);
      const line = r.out.split("\n").find((l) => l.startsWith("ataatk: result="));
      assert.ok(line, `no result line from ataatk ${cmd}:\n${r.out}`);
      return kv(line);
    };

    test("finds the PIIX controller, unbinds ata_piix and identifies the disks", async () => {
      const info = kv(await g.sh("ataatk info"));
      assert.equal(info.result, "ok");
      assert.equal(info.driver, "ata_piix");
      assert.equal(info.ch0, "0x1f0/0x3f6");
      assert.equal(info.ch1, "0x170/0x376");
      const id = await run("--unbind identify 1 0");
      assert.equal(id.result, "ok");
      assert.equal(id.model, "QEMU_HARDDISK");
      assert.equal(Number(id.sectors), SCRATCH_SECTORS);
      assert.equal(id.lba48, "1");
      assert.equal((await g.sh("ataatk info")).includes("driver=none"), true);
      assert.equal((await run("identify 0 0")).result, "ok");
      assert.equal((await run("identify 0 1")).result, "nodevice");
    });

    test("PIO and DMA, 28- and 48-bit, read back what the other wrote", async () => {
      for (const [w, r, extra] of [
        ["--pio", "--dma", ""],
        ["--dma", "--pio", ""],
        ["--dma", "--dma", "--lba48"],
        ["--pio", "--pio", "--lba48"],
      ]) {
        const lba = 2000 + (w === "--pio" ? 0 : 400) + (extra ? 800 : 0);
        const wr = await run(`write 1 0 ${lba} 40 ${w} ${extra} --pattern 5aa5c33c`);
        assert.equal(wr.result, "ok", JSON.stringify(wr));
        const rd = await run(`read 1 0 ${lba} 40 ${r} ${extra}`);
        assert.equal(rd.result, "ok", JSON.stringify(rd));
        assert.equal(rd.sha256, wr.sha256, `${w} write, ${r} read ${extra}`);
        assert.equal(rd.first, "5aa5c33c".repeat(4));
      }
      const big = await run("write 1 0 3000 300 --dma --lba48 --pattern lba");
      assert.equal(big.result, "ok");
      assert.equal((await run("read 1 0 3000 300 --pio --lba48")).sha256, big.sha256);
      assert.equal((await run(`write 1 0 ${lbaPattern} 8 --dma --pattern lba`)).result, "ok");
    });

    test("commands the device does not implement are aborted", async () => {
      for (const op of ["0xff", "0xf1 0 1", "0x92 3 1", "0xf9", "0x80"]) {
        const r = await run(`cmd 1 0 ${op}`);
        assert.equal(r.result, "aborted", `${op}: ${JSON.stringify(r)}`);
        assert.equal(r.error, "0x04");
      }
      assert.equal((await run("cmd 1 0 0xe5")).result, "ok"); // CHECK POWER MODE
    });

    test("prd-at, prd-race, bar-move, race2 and reset run to a result", async () => {
      const at = await run("prd-at self 1 0 2000 8");
      assert.equal(at.result, "ok");
      assert.equal(at.mem, "disk-data");
      const atw = await run("prd-at self 1 0 4000 8 --write");
      assert.equal(atw.result, "ok");
      assert.equal(atw.landed, "memory");
      const race = await run("prd-race 1 0 4100 64");
      assert.equal(race.result, "ok");
      assert.equal(Number(race.sectors_a) + Number(race.sectors_b) + Number(race.sectors_old) + Number(race.sectors_other), 64);
      assert.equal((await run("prd-race 1 0 4200 64 --read")).result, "ok");
      const moved = await run("bar-move 1 0 0xd000");
      assert.equal(moved.sysfs_readback, "0x0000d001");
      assert.equal(moved.sysfs_dma, "ok");
      assert.equal(moved.sysfs_match, "yes");
      assert.equal(moved.cf8_dma, "ok");
      assert.equal(moved.cf8_match, "yes");
      assert.equal(moved.cf8_restored, "1");
      assert.equal(kv(await g.sh("ataatk info")).bar4, moved.old);
      const r2 = await run("race2 1 0 5000 8 --iters 10");
      assert.equal(r2.result, "ok", JSON.stringify(r2));
      assert.equal(r2.cpus, "2");
      assert.equal(r2.mismatches, "0");
      assert.equal((await run("reset 1")).result, "ok");
      assert.equal((await run("read 1 0 2000 1 --dma")).result, "ok");
    });

    test("bind gives the controller back to ata_piix", async () => {
      assert.equal((await run("bind")).result, "ok");
      assert.match(await g.sh("ataatk info"), /driver=ata_piix/);
    });
  });

  test("the guest powers off, and the host finds the data on the scratch disk", async () => {
    assert.equal((await g.poweroff()).kind, "poweroff");
    // dm-crypt: the host's XTS decryption of the raw sectors is what the guest wrote.
    assert.ok(cryptSha && key, "the cryptsetup test did not run");
    const plain = xtsDecrypt(key, readSectors(scratch, 0, CRYPT_SECTORS), 0);
    assert.equal(sha256(plain), cryptSha);
    assert.notEqual(sha256(readSectors(scratch, 0, CRYPT_SECTORS)), cryptSha);
    // ataatk's DMA write of --pattern lba: every 8 bytes of sector s hold s.
    const raw = readSectors(scratch, lbaPattern, 8);
    for (let s = 0; s < 8; s++) assert.equal(raw.readBigUInt64LE(s * SECTOR + 504), BigInt(lbaPattern + s));
  });
});
