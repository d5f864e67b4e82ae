// Attacks on the mediated IDE controller from a guest program (ataatk) that drives it itself,
// with the guest's own driver unbound, on a disk encrypted whole: each is refused or made
// harmless, the disk is not corrupted, and Parapet keeps running.
import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { prepare, hvRegion, kv } from "./fixture.ts";
import { newKey, writePolicy, wholeDisk, plainImage, transformImage, decryptedCopy, DATA_PARTITION_START_LBA, DATA_OFFSET } from "./diskfixture.ts";
import { QemuSession } from "../src/lib/qemu.ts";

const LBA = DATA_PARTITION_START_LBA + 4096;

const MACHINES: { name: string; boot: (image: string) => Partial<ConstructorParameters<typeof QemuSession>[0]> }[] = [
  { name: "pc", boot: (image) => ({ disk: image }) },
  {
    name: "q35 (PIIX IDE; config space also through ECAM)",
    boot: (image) => ({ machine: "q35", disk: image, piixIde: true }),
  },
];

for (const machine of MACHINES)
  describe(`attacks on the mediated IDE controller, ${machine.name}`, () => {
    const key = newKey();
    let image: string;
    let orig: Buffer;
    let g: QemuSession;
    let atk: (args: string) => Promise<Record<string, string>>;

    before(async () => {
      await prepare();
      const policy = await writePolicy("atk.pol", wholeDisk(key));
      image = await plainImage(`atk-${machine.name.split(" ")[0]}.img`, "modprobe.blacklist=ata_piix");
      orig = (await readFile(image)).subarray(0, DATA_OFFSET);
      await transformImage(image, key, "encrypt");
      g = new QemuSession({ modules: [policy], cpus: 2, ...machine.boot(image) });
      try {
        await g.ready();
      } catch (e) {
        g.kill();
        throw new Error(`${(e as Error).message}\n${g.hvLog().slice(-3000)}`);
      }
      atk = async (args) => {
        const out = await g.sh(`ataatk --timeout 30000 ${args}`, 120_000);
        const line = out.split("\n").find((l) => l.startsWith("ataatk: result="));
        assert.ok(line, `no result line from ataatk ${args}: ${out}`);
        return kv(line.replace(/^ataatk: /, ""));
      };
    });
    after(() => g?.kill());

    const alive = async () => {
      assert.match(await g.sh("cat /proc/parapet/version"), /magic=0x54505250/);
      assert.doesNotMatch(g.hvLog(), /panic/);
    };

    test("the tool reaches the controller through Parapet: PIO and DMA reads both return plaintext", async () => {
      assert.match(await g.sh("ls /sys/bus/pci/drivers/ata_piix 2>&1 || true"), /No such file|^$|bind/);
      const id = await atk("identify 0 0");
      assert.equal(id.result, "ok");
      await atk(`write 0 0 ${LBA} 8 --pio --pattern 5a`);
      const pio = await atk(`read 0 0 ${LBA} 8 --pio`);
      const dma = await atk(`read 0 0 ${LBA} 8 --dma`);
      assert.equal(pio.result, "ok");
      assert.equal(dma.result, "ok");
      assert.equal(pio.sha256, dma.sha256, "DMA and PIO agree (both decrypted by Parapet)");
    });

    test("a PRD entry pointing into Parapet's memory is refused, in both directions", async () => {
      const { base } = hvRegion(g.hvLog());
      const target = "0x" + (base + 0x200000n).toString(16);
      const rd = await atk(`prd-at ${target} 0 0 ${LBA} 8`);
      assert.notEqual(rd.result, "ok", `DMA into Parapet's memory must not complete: ${JSON.stringify(rd)}`);
      const wr = await atk(`prd-at ${target} 0 0 ${LBA} 8 --write`);
      assert.notEqual(wr.landed, "memory", "nothing from Parapet's memory reaches the disk");
      assert.match(g.hvLog(), /refused: PRD buffer not in guest RAM/);
      await alive();
    });

    test("rewriting the PRD table and buffers during a transfer changes nothing", async () => {
      const w = await atk(`prd-race 0 0 ${LBA} 64`);
      assert.equal(w.landed, "A", `write race: ${JSON.stringify(w)}`);
      const r = await atk(`prd-race 0 0 ${LBA} 64 --read`);
      assert.equal(r.landed, "orig", `read race: ${JSON.stringify(r)}`);
      await alive();
    });

    test("relocating the bus-master BAR (sysfs and 0xCF8) keeps DMA mediated", async () => {
      const m = await atk("bar-move 0 0 0xd000 --via both");
      for (const via of ["sysfs", "cf8"]) {
        assert.equal(m[`${via}_dma`], "ok", `${via}: ${JSON.stringify(m)}`);
        assert.equal(m[`${via}_match`], "yes", `${via}: DMA through the moved ports must still be decrypted by Parapet`);
      }
      await alive();
    });

    if (machine.name.startsWith("q35"))
      test("relocating the bus-master BAR with a ring-0 write to its ECAM page keeps DMA mediated", async () => {
        const log = g.hvLog();
        const win = /ecam: window at ([0-9a-f]+)/.exec(log);
        const fn = /ata: ([0-9a-f]{2}):([0-9a-f]{2})\.(\d) mediated/.exec(log);
        assert.ok(win && fn, "Parapet traps the IDE function's ECAM page");
        const [bus, dev, f] = [parseInt(fn[1], 16), parseInt(fn[2], 16), Number(fn[3])];
        const bar4 = BigInt("0x" + win[1]) + BigInt((bus << 20) | (dev << 15) | (f << 12)) + 0x20n;
        const sysfs = `/sys/bus/pci/devices/0000:${fn[1]}:${fn[2]}.${f}/config`;
        const old = (await g.sh(`od -An -tx4 -j32 -N4 ${sysfs}`)).trim();
        await g.sh(`echo ${bar4.toString(16)} d001 > /proc/parapet/mmio`);
        assert.match(await g.sh("cat /proc/parapet/mmio"), /readback=0xd001/, "the ECAM write landed (read back through ECAM)");
        assert.equal((await g.sh(`od -An -tx4 -j32 -N4 ${sysfs}`)).trim(), "0000d001", "and 0xCF8 sees it too");
        const pio = await atk(`read 0 0 ${LBA} 8 --pio`);
        const dma = await atk(`read 0 0 ${LBA} 8 --dma`);
        assert.equal(dma.result, "ok", JSON.stringify(dma));
        assert.equal(dma.sha256, pio.sha256, "DMA through the moved ports is still decrypted by Parapet");
        await g.sh(`echo ${bar4.toString(16)} ${old} > /proc/parapet/mmio`);
        await alive();
      });

    test("two CPUs on one channel: commands issued on one CPU and finished on the other stay whole", async () => {
      const r = await atk(`race2 0 0 ${LBA + 2048} 8 --iters 12`);
      assert.equal(r.result, "ok", JSON.stringify(r));
      assert.equal(r.cpus, "2");
      assert.equal(r.mismatches, "0");
      assert.equal(r.errors, "0");
      // Without the guest's own lock both CPUs drive the channel at once: the guest may see
      // errors, but Parapet serialises each command and keeps running.
      // Colliding commands leave one thread waiting for a completion that was the other's:
      // short waits keep that bounded.
      const out = await g.sh(`ataatk --timeout 2000 race2 0 0 ${LBA + 2048} 8 --iters 6 --nolock`, 120_000);
      const wild = kv((out.split("\n").find((l) => l.startsWith("ataatk: result=")) ?? "").replace(/^ataatk: /, ""));
      assert.equal(wild.op, "race2", out);
      assert.equal(wild.cpus, "2", out);
      await alive();
      assert.equal((await atk(`read 0 0 ${LBA} 8 --dma`)).result, "ok");
    });

    test("unknown and dangerous commands are refused with ABRT", async () => {
      for (const op of ["0xf1", "0xf2", "0xf4", "0xf6", "0x92", "0xf9", "0x37", "0x5e", "0x5c", "0x80", "0xff", "0x06"]) {
        const r = await atk(`cmd 0 0 ${op}`);
        assert.equal(r.result, "aborted", `${op}: ${JSON.stringify(r)}`);
        assert.equal(Number(r.error) & 0x04, 0x04, `${op}: ABRT`);
      }
      assert.match(g.hvLog(), /ata: ch0: command f1 refused: not allowed on a protected drive/);
      assert.match(g.hvLog(), /ata: ch0: command 92 refused: not allowed on a protected drive/);
      await alive();
    });

    test("after all of it the disk is intact: the boot partition decrypts to the original", async () => {
      assert.equal((await g.poweroff()).kind, "poweroff");
      const plain = await decryptedCopy(image, key);
      assert.ok(plain.subarray(0, DATA_OFFSET).equals(orig), "MBR and boot partition unchanged");
    });
  });
