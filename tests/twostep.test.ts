// Two-step execution end to end (docs/preboot.md): a GRUB ISO with Parapet, the preboot guest
// and a LUKS2 detached header (parapet iso --preboot), booted in QEMU with the disk that header
// encrypts. The preboot guest asks for the passphrase on COM1, unlocks the header and hands the
// volume key to Parapet through its kexec payload; Parapet wipes the preboot guest's RAM and
// boots the target OS from the encrypted IDE disk through INT 13h. Checked: wrong passphrases
// are refused and, after the last one, the machine powers off with the disk untouched; a
// second user unlocks the same disk, and so does a PKCS#11 token user (SoftHSM2, its store
// and the organisation CA in the ISO's site archive) at PIN:; the target reads its files; a scan of all the target's
// RAM (/proc/kcore) finds neither the volume key nor the passphrase, but does find a marker
// planted there (the scan works); a second handoff from the target is refused.
import { test, describe, before } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { octal, prepare, preparePreboot, TMP } from "./fixture.ts";
import { newKey, plainImage, wholeDisk } from "./diskfixture.ts";
import { encodePolicy } from "../src/lib/policyrecord.ts";
import { luksAddPassphrase, luksFormat, volumeKey } from "../src/lib/luks.ts";
import { buildIso } from "../src/lib/iso.ts";
import { sitePreboot } from "../src/lib/prebootimage.ts";
import { TOKEN_CONFIG, tokenUser } from "./tokenfixture.ts";
import { QemuSession } from "../src/lib/qemu.ts";

const FAST = { iterations: 4, memoryKiB: 32768 }; // test keyslots: quick to unlock under TCG
const alice = "alice's passphrase, typed at COM1";
const bob = "bob has another one";
const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");

describe("two-step execution: preboot guest, handoff, target OS on a LUKS2-encrypted disk", () => {
  let image: string, header: string, iso: string, ahciIso: string, tokenIso: string, key: Buffer;
  const pin = "2468";

  before(async () => {
    await prepare();
    await preparePreboot();
    image = await plainImage("twostep.img");
    header = join(TMP, "twostep.hdr");
    await rm(header, { force: true });
    await rm(`${image}.parapet-state`, { force: true });
    await luksFormat({ image, header, passphrase: Buffer.from(alice), pbkdf: FAST });
    await luksAddPassphrase(header, image, Buffer.from(alice), Buffer.from(bob), FAST);
    key = await volumeKey(header, image, Buffer.from(alice));
    iso = join(TMP, "twostep.iso");
    // These boots use QEMU's pc machine, which has no IOMMU: the preboot configs allow that
    // (allowNoIommu), or Parapet would refuse the records they hand over.
    await buildIso({ output: iso, preboot: { header, allowNoIommu: true } });
    // The same disk on q35's AHCI port 0: a config that names it there.
    ahciIso = join(TMP, "twostep-ahci.iso");
    await buildIso({ output: ahciIso, preboot: { header, config: { version: 1, drive: { transport: "ahci", port: 0 } }, allowNoIommu: true } });
    // carol's card, enrolled on the same header; a second ISO whose site archive holds the
    // token config, the CA and the SoftHSM2 store (the "card" the preboot guest finds).
    const files = await tokenUser({ header, image, existing: Buffer.from(alice), pin, workDir: TMP, pbkdf: FAST });
    const site = join(TMP, "twostep-token.cpio");
    await writeFile(site, sitePreboot({ header: await readFile(header), config: { ...TOKEN_CONFIG, allowNoIommu: true }, files }).cpio);
    tokenIso = join(TMP, "twostep-token.iso");
    await buildIso({ output: tokenIso, preboot: { site } });
  });

  function boot(cdrom = iso): QemuSession {
    return new QemuSession({ cdrom, disk: image, cpus: 2, memory: "512M" });
  }

  /** Answers the preboot's prompts in order; returns where the console was after the last. */
  async function answer(s: QemuSession, replies: string[]): Promise<number> {
    let from = 0;
    for (const r of replies) {
      const m = await s.waitFor(/Passphrase: /, from === 0 ? 300_000 : 120_000, from);
      from += m.index + m[0].length;
      s.send(`${r}\r`);
    }
    return from;
  }

  test("a wrong passphrase, then alice's: the target boots from the encrypted disk, reads its files, and its RAM holds no key", async () => {
    const s = boot();
    try {
      await answer(s, ["not it", alice]);
      await s.ready(300_000);
      const log = s.hvLog();
      assert.match(log, /preboot: kernel \(module 0, \d+ KiB\) at [0-9a-f]+, initrd/);
      assert.match(log, /handoff: policy record from the preboot guest accepted \(144 bytes at 1001000\)/);
      assert.match(log, /handoff: \d+ MiB of the preboot guest's RAM wiped/);
      assert.match(log, /ata: 00:01\.1 ch0 master: ATA serial '[^']+', protected by the policy/);
      assert.match(s.console, /wrong passphrase; 2 attempts left/);
      assert.match(s.console, /preboot: handing off to the hypervisor/);
      // The target booted from the disk (syslinux's command line) and reads its boot partition.
      assert.match(await s.sh("cat /proc/cmdline"), /BOOT_IMAGE=\/vmlinuz/);
      assert.match(await s.sh("mountboot && cat /boot/syslinux.cfg"), /LINUX \/vmlinuz/);
      // The whole of the target's RAM: no volume key (either XTS half), no passphrase; a
      // marker written to a tmpfs file is found, so the scan sees RAM.
      const marker = randomBytes(32).toString("hex");
      await s.sh(`echo ${marker} > /tmp/marker`);
      const scan = await s.sh(
        `ptest kcore-scan ${key.subarray(0, 32).toString("hex")} ${key.subarray(32).toString("hex")} ` +
          `${Buffer.from(alice).toString("hex")} ${Buffer.from(marker).toString("hex")}`,
        300_000,
      );
      const m = /segments=(\d+) scanned=(\d+) hits0=(\d+) hits1=(\d+) hits2=(\d+) hits3=(\d+)/.exec(scan);
      assert.ok(m, scan);
      assert.ok(Number(m[2]) > 400 * 1024 * 1024, `scanned only ${m[2]} bytes`);
      assert.deepEqual([m[3], m[4], m[5]], ["0", "0", "0"], `key or passphrase found in the target's RAM: ${scan}`);
      assert.ok(Number(m[6]) >= 1, `the planted marker was not found: ${scan}`);
    } finally {
      s.kill();
    }
  });

  test("on q35 with the disk on AHCI port 0: the preboot guest's Linux drove the HBA, the target still boots through SeaBIOS's AHCI", async () => {
    const s = new QemuSession({ cdrom: ahciIso, disk: image, cpus: 2, memory: "512M", machine: "q35", iommu: "intel", ahci: true });
    try {
      await answer(s, [alice]);
      await s.ready(300_000);
      const log = s.hvLog();
      assert.match(log, /handoff: policy record from the preboot guest accepted/);
      // The HBA the preboot guest's ahci driver left on its (now wiped) lists is reset and given
      // back to firmware's lists before Parapet takes its ports.
      assert.match(log, /ahci: 00:1f\.2 reset: HBA reset, ports back on firmware's lists/);
      assert.match(log, /ahci: 00:1f\.2 port 0: ATA serial '[^']+', protected by the policy/);
      assert.match(await s.sh("cat /proc/cmdline"), /BOOT_IMAGE=\/vmlinuz/);
      assert.match(await s.sh("mountboot && cat /boot/syslinux.cfg"), /LINUX \/vmlinuz/);
    } finally {
      s.kill();
    }
  });

  test("bob's passphrase unlocks the same disk; a second handoff from the target OS is refused", async () => {
    const s = boot();
    try {
      await answer(s, [bob]);
      await s.ready(300_000);
      assert.match(await s.sh("mountboot && ls /boot"), /vmlinuz/);
      // A well-formed record (another key) through the same call, from CPU 0 of the target.
      const again = await s.exec(
        `printf '${octal(encodePolicy(wholeDisk(newKey())))}' > /tmp/r && ` + "taskset -c 0 cp /tmp/r /proc/parapet/handoff",
      );
      assert.notEqual(again.status, 0);
      assert.match(again.out, /Operation not permitted/);
      assert.match(s.hvLog(), /handoff: cpu0: refused: the handoff already happened/);
      assert.match(await s.sh("ls /boot"), /vmlinuz/, "the target keeps running with its keys");
    } finally {
      s.kill();
    }
  });

  test("carol's token at PIN: (one wrong PIN first) unlocks the same disk", async () => {
    const s = boot(tokenIso);
    try {
      let m = await s.waitFor(/PIN: /, 300_000);
      s.send("0000\r");
      m = await s.waitFor(/PIN: /, 120_000, m.index + m[0].length);
      s.send(`${pin}\r`);
      await s.ready(300_000);
      assert.match(s.hvLog(), /handoff: policy record from the preboot guest accepted \(144 bytes at 1001000\)/);
      assert.doesNotMatch(s.console, /Passphrase: /, "the token was used, not a passphrase");
      assert.match(await s.sh("mountboot && cat /boot/syslinux.cfg"), /LINUX \/vmlinuz/);
    } finally {
      s.kill();
    }
  });

  test("three wrong passphrases: refused, power-off, the disk untouched", async () => {
    const before = sha(await readFile(image));
    const s = boot();
    try {
      await answer(s, ["a", "b", "c"]);
      const fate = await s.fate(120_000);
      assert.deepEqual(fate, { kind: "poweroff", code: 0 });
      assert.match(s.console, /preboot: too many wrong passphrases; powering off, nothing was written/);
      assert.doesNotMatch(s.hvLog(), /handoff: policy record from the preboot guest accepted/);
    } finally {
      s.kill();
    }
    assert.equal(sha(await readFile(image)), before, "the disk image changed");
  });
});
