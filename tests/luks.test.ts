// A whole disk under a LUKS2 detached header (`parapet luks`, stock cryptsetup): the header
// says what Parapet needs (aes-xts-plain64, 512-bit key, 512-byte sectors, data at 0); two
// users unlock the same volume key; a wrong passphrase, an empty one and a second format are
// refused; an interrupted format resumes; a guest without Parapet opens the disk with stock
// `cryptsetup open --header`; and with the volume key as a policy record the disk boots under
// Parapet.
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { prepare, bootGuest, TMP, cli } from "./fixture.ts";
import { plainImage, decryptedCopy, writePolicy, wholeDisk } from "./diskfixture.ts";
import { JOURNAL_SUFFIX } from "../src/lib/diskcrypt/journal.ts";
import { STATE_SUFFIX } from "../src/lib/diskcrypt/state.ts";
import { luksAddPassphrase, luksFormat, luksInfo, LuksRefusal, readPassphrase, volumeKey } from "../src/lib/luks.ts";
import { QemuSession } from "../src/lib/qemu.ts";

const FAST = { iterations: 4, memoryKiB: 32768 }; // test keyslots: quick to unlock
const alice = Buffer.from("correct horse battery staple");
const bob = Buffer.from("bob's other passphrase");
const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");

describe("parapet luks: a disk under a LUKS2 detached header", () => {
  let image: string, header: string, plain: Buffer, key: Buffer;

  before(async () => {
    await prepare();
    for (const suffix of [JOURNAL_SUFFIX, STATE_SUFFIX]) await rm(join(TMP, `luks.img${suffix}`), { force: true });
    image = await plainImage("luks.img");
    header = join(TMP, "luks.hdr");
    await rm(header, { force: true });
    plain = await readFile(image);
    // Stop after the first chunk, then resume: the same header and key finish the job.
    let chunks = 0;
    const first = await luksFormat({ image, header, passphrase: alice, pbkdf: FAST, shouldStop: () => ++chunks > 1 });
    assert.ok(first.created && first.stopped, `created=${first.created} stopped=${first.stopped}`);
    const second = await luksFormat({ image, header, passphrase: alice, pbkdf: FAST });
    assert.ok(!second.created && !second.stopped && second.resumedFrom !== undefined, `created=${second.created} resumedFrom=${second.resumedFrom}`);
    key = await volumeKey(header, image, alice);
  });

  test("the header holds what Parapet needs, and the data is the volume key's XTS from sector 0", async () => {
    assert.deepEqual(await luksInfo(header, image), { cipher: "aes-xts-plain64", keyBits: 512, sectorBytes: 512, offsetBytes: 0, keyslots: [0] });
    const raw = await readFile(image);
    assert.notEqual(raw.readUInt16LE(510), 0xaa55, "sector 0 is not a plaintext MBR any more");
    assert.ok((await decryptedCopy(image, key)).equals(plain), "decrypting with the volume key gives the original disk");
  });

  test("a second user unlocks the same volume key; a wrong or empty passphrase is refused", async () => {
    assert.equal(await luksAddPassphrase(header, image, alice, bob, FAST), 1);
    assert.ok((await volumeKey(header, image, bob)).equals(key));
    await assert.rejects(volumeKey(header, image, Buffer.from("wrong")), LuksRefusal);
    await assert.rejects(luksAddPassphrase(header, image, Buffer.from("wrong"), bob, FAST), /cannot unlock/);
    const empty = join(TMP, "empty.pass");
    await writeFile(empty, "\n");
    await assert.rejects(readPassphrase(empty), /is empty/);
    const typed = join(TMP, "typed.pass");
    await writeFile(typed, `${alice.toString()}\n`);
    assert.ok((await readPassphrase(typed)).equals(alice), "one trailing newline is not part of the passphrase");
  });

  test("the CLI refuses a second format, a wrong passphrase, and writes the volume key as a key file", async () => {
    const pass = join(TMP, "alice.pass");
    await writeFile(pass, alice);
    const again = cli(["luks", "format", "--disk", image, "--header", header, "--passphrase-file", pass]);
    assert.equal(again.status, 2, again.out);
    assert.match(again.out, /exists: refusing to replace a header/);
    const wrong = join(TMP, "wrong.pass");
    await writeFile(wrong, "wrong");
    const keyFile = join(TMP, "luks.key");
    await rm(keyFile, { force: true });
    const bad = cli(["luks", "key", "--disk", image, "--header", header, "--passphrase-file", wrong, "-o", keyFile]);
    assert.equal(bad.status, 2, bad.out);
    assert.ok(!existsSync(keyFile));
    const ok = cli(["luks", "key", "--disk", image, "--header", header, "--passphrase-file", pass, "-o", keyFile]);
    assert.equal(ok.status, 0, ok.out);
    assert.ok((await readFile(keyFile)).equals(key));
    assert.match(
      cli(["luks", "status", "--disk", image, "--header", header]).out,
      /LUKS2, aes-xts-plain64, 512-bit volume key, 512-byte sectors, data at byte 0; keyslots 0, 1/,
    );
    for (const sub of ["format", "add-user", "key", "status"]) assert.equal(cli(["luks", sub, "--help"]).status, 0);
  });

  test("a guest without Parapet opens the disk with stock cryptsetup and the detached header", async () => {
    // The encrypted disk and the header are the second and third IDE disks of the bare test guest.
    const g = await bootGuest({
      parapet: false,
      extraArgs: [
        "-drive",
        `file=${image},format=raw,if=ide,index=1,media=disk,snapshot=on`,
        "-drive",
        `file=${header},format=raw,if=ide,index=2,media=disk,snapshot=on`,
      ],
    });
    try {
      const plainBoot = sha(plain.subarray(2048 * 512, 2048 * 512 + 8 * 2 ** 20));
      await g.sh(
        `printf '%s' '${bob.toString().replace(/'/g, "'\\''")}' | cryptsetup open --header /dev/sdc --key-file - /dev/sdb luksdisk`,
        120_000,
      );
      const got = (await g.sh("dd if=/dev/mapper/luksdisk bs=512 skip=2048 count=16384 2>/dev/null | sha256sum", 120_000)).split(/\s+/)[0];
      assert.equal(got, plainBoot, "the first 8 MiB of the boot partition read back in plaintext");
      await g.sh("cryptsetup close luksdisk");
      assert.equal((await g.poweroff()).kind, "poweroff");
    } finally {
      g.kill();
    }
  });

  test("with the volume key as a whole-disk policy record, the LUKS disk boots under Parapet", async () => {
    const policy = await writePolicy("luks.pol", wholeDisk(key));
    const g = new QemuSession({ disk: image, modules: [policy], snapshot: true });
    try {
      await g.ready();
      assert.match(g.hvLog(), /ata: 00:01\.1 ch0 master: ATA serial '[^']+', protected by the policy/);
      assert.match(await g.sh("cat /proc/partitions"), /sda1/);
      assert.equal((await g.poweroff()).kind, "poweroff");
    } finally {
      g.kill();
    }
  });

  after(() => key?.fill(0));
});
