// The preboot guest of two-step execution (docs/preboot.md): its config errors name the field,
// the handoff payload's bytes decode to the intended instructions in 32- and 64-bit mode, the
// record carries the volume key for the configured drive, the site archive refuses a bad
// config at build time; and in bare QEMU (no hypervisor) three wrong passphrases power the
// machine off while the right one reaches the VMMCALL (a #UD there, so QEMU exits on the reset),
// and a SoftHSM2 smart card shipped in the site archive unlocks with its PIN after a wrong one.
import { test, describe, before } from "node:test";
import assert from "node:assert/strict";
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { preparePreboot, TMP } from "./fixture.ts";
import { luksFormat, volumeKey } from "../src/lib/luks.ts";
import { decodePolicy, POLICY_MAGIC } from "../src/lib/policyrecord.ts";
import { appendSite, sitePreboot, type SiteFile } from "../src/lib/prebootimage.ts";
import { QemuSession } from "../src/lib/qemu.ts";
import { compileRecord, parseConfig, PrebootConfigError, validateConfig } from "../src/lib/prebootconfig.ts";
import { handoffPayload, payloadCode, RECORD_OFFSET, REFUSED_MESSAGE, VMMCALL_HANDOFF } from "../src/lib/handoffpayload.ts";
import { GUEST_CA, MODULE, TOKEN_CONFIG, tokenUser } from "./tokenfixture.ts";

const FAST = { iterations: 4, memoryKiB: 32768 }; // test keyslots: quick to unlock, also under TCG
const RIGHT = "the right passphrase";
const PIN = "4321";

/** The errors a config gets, one string each. */
function errorsOf(value: unknown): string[] {
  try {
    validateConfig(value);
  } catch (e) {
    assert.ok(e instanceof PrebootConfigError, String(e));
    return e.errors;
  }
  assert.fail(`accepted: ${JSON.stringify(value)}`);
}

describe("preboot config", () => {
  test("defaults fill every field but version", () => {
    assert.deepEqual(parseConfig('{"version": 1}'), {
      version: 1,
      header: "/etc/parapet/header.img",
      drive: { port: { channel: 0, position: 0 } },
      retries: 3,
      console: "/dev/ttyS0",
      recordAddress: 0x1000000,
      allowNoIommu: false,
    });
    const c = validateConfig({
      version: 1,
      drive: { channel: 1, position: 1, serial: "QM00001", pci: "00:01.1" },
      recordAddress: "0x2000000",
      retries: 10,
    });
    assert.deepEqual(c.drive, { port: { channel: 1, position: 1 }, serial: "QM00001", pci: { bus: 0, dev: 1, fn: 1 } });
    assert.equal(c.recordAddress, 0x2000000);
  });

  test("every error names its field", () => {
    assert.deepEqual(errorsOf({}), ["version: must be 1 (the preboot config format this tool reads)"]);
    assert.deepEqual(errorsOf({ version: 1, extra: true }), ["extra: unknown field"]);
    assert.deepEqual(errorsOf({ version: 1, drive: { channel: 2, bus: 0 } }).sort(), [
      "drive.bus: unknown field",
      "drive.channel: must be 0 (primary) or 1 (secondary)",
    ]);
    // AHCI: a port, not IDE's channel and position.
    assert.deepEqual(errorsOf({ version: 1, drive: { transport: "sata" } }), ['drive.transport: must be "ide" or "ahci"']);
    assert.deepEqual(errorsOf({ version: 1, drive: { transport: "ahci", port: 32 } }), ["drive.port: must be an AHCI port, 0-31"]);
    assert.deepEqual(errorsOf({ version: 1, drive: { transport: "ahci", channel: 0 } }), [
      "drive.channel: an IDE field; this drive is on AHCI (drive.port)",
    ]);
    assert.deepEqual(errorsOf({ version: 1, drive: { port: 1 } }), ['drive.port: an AHCI port; say drive.transport: "ahci"']);
    assert.deepEqual(errorsOf({ version: 1, retries: 0 }), ["retries: must be at least 1"]);
    assert.deepEqual(errorsOf({ version: 1, allowNoIommu: "yes" }), [
      "allowNoIommu: must be true or false (may the key be used on a machine without an IOMMU?)",
    ]);
    assert.deepEqual(errorsOf({ version: 1, retries: 2.5 }), ["retries: must be a whole number from 1 to 10"]);
    assert.deepEqual(errorsOf({ version: 1, header: "header.img" }), ["header: must be the path of the LUKS2 detached header (an absolute path)"]);
    assert.deepEqual(errorsOf({ version: 1, recordAddress: 0x1000010 }), ["recordAddress: must be page aligned (a multiple of 0x1000)"]);
    assert.deepEqual(errorsOf({ version: 1, recordAddress: 0xfffff000 }), ["recordAddress: must leave the payload below 4 GiB"]);
    assert.deepEqual(errorsOf({ version: 1, drive: { serial: "x".repeat(21), pci: "00:20.0" } }), [
      "drive.serial: is 21 characters, at most 20",
      "drive.pci: '00:20.0': PCI device 20 is above 1f",
    ]);
    assert.throws(() => parseConfig("{version: 1}", "p.json"), /^Error: p\.json: not valid JSON/);
    assert.deepEqual(errorsOf({ version: 1, token: { module: "libsofthsm2.so", label: "", extra: 1 } }).sort(), [
      "token.ca: must be the organisation CA certificate (a string)",
      "token.extra: unknown field",
      "token.label: must be the token label: 1 to 32 printable characters",
      "token.module: must be the PKCS#11 module (an absolute path)",
    ]);
    assert.deepEqual(errorsOf({ version: 1, token: { module: "/m.so", ca: "/ca.pem", env: { "1X": "y" } } }), [
      'token.env["1X"]: not an environment variable name (letters, digits and _, not first a digit)',
    ]);
    assert.deepEqual(errorsOf({ version: 1, token: { module: "/m.so", ca: "/ca.pem", env: { X: 1 } } }), [
      "token.env.X: must be the variable's value (a string)",
    ]);
    assert.deepEqual(validateConfig(TOKEN_CONFIG).token, { module: MODULE, ca: GUEST_CA, env: TOKEN_CONFIG.token.env });
  });
});

describe("handoff payload", () => {
  const address = 0x1000000;
  const record = Buffer.alloc(144, 0xa5);

  test("the code: mov eax/ebx/ecx imm32, vmmcall, then the refusal on COM1 and a halt loop", () => {
    const code = payloadCode(address, record.length);
    let i = 0;
    const imm = (op: number) => {
      assert.equal(code[i], op, `opcode at ${i}`);
      const v = code.readUInt32LE(i + 1);
      i += 5;
      return v;
    };
    assert.equal(imm(0xb8), VMMCALL_HANDOFF);
    assert.equal(imm(0xbb), address + RECORD_OFFSET);
    assert.equal(imm(0xb9), record.length);
    assert.deepEqual([...code.subarray(i, i + 3)], [0x0f, 0x01, 0xd9], "vmmcall");
    i += 3;
    assert.deepEqual([...code.subarray(i, i + 4)], [0x66, 0xba, 0xf8, 0x03], "mov dx, 0x3f8");
    i += 4;
    let text = "";
    while (code[i] === 0xb0) {
      assert.equal(code[i + 2], 0xee, "out dx, al");
      text += String.fromCharCode(code[i + 1]);
      i += 3;
    }
    assert.equal(text, REFUSED_MESSAGE);
    assert.deepEqual([...code.subarray(i)], [0xfa, 0xf4, 0xeb, 0xfc], "cli; hlt; jmp to the cli");
    assert.throws(() => payloadCode(address + 8, 16), /page aligned/);
  });

  test("the ELF: ET_EXEC, EM_X86_64, one PT_LOAD at physical = virtual = the address, record at +0x1000", () => {
    const elf = handoffPayload(record, address);
    assert.equal(elf.subarray(0, 4).toString("latin1"), "\x7fELF");
    assert.deepEqual([elf[4], elf[5]], [2, 1], "ELFCLASS64, little endian");
    assert.equal(elf.readUInt16LE(16), 2);
    assert.equal(elf.readUInt16LE(18), 62);
    assert.equal(elf.readBigUInt64LE(24), BigInt(address), "entry");
    assert.equal(elf.readUInt16LE(56), 1, "one program header");
    const ph = Number(elf.readBigUInt64LE(32));
    assert.equal(elf.readUInt32LE(ph), 1, "PT_LOAD");
    const offset = Number(elf.readBigUInt64LE(ph + 8));
    assert.equal(elf.readBigUInt64LE(ph + 16), BigInt(address));
    assert.equal(elf.readBigUInt64LE(ph + 24), BigInt(address));
    assert.equal(Number(elf.readBigUInt64LE(ph + 32)), RECORD_OFFSET + record.length);
    assert.equal(offset % 0x1000, 0);
    assert.ok(elf.subarray(offset, offset + 20).equals(payloadCode(address, record.length).subarray(0, 20)));
    assert.ok(elf.subarray(offset + RECORD_OFFSET).equals(record));
  });

  test("the record: the volume key, for the whole configured drive", () => {
    const key = Buffer.alloc(64);
    for (let i = 0; i < 64; i++) key[i] = i * 7 + 1;
    const config = validateConfig({ version: 1, drive: { channel: 0, position: 1, serial: "QM00002" } });
    const rec = compileRecord(key, config);
    assert.equal(rec.subarray(0, 8).toString("latin1"), POLICY_MAGIC);
    const p = decodePolicy(rec);
    assert.equal(p.keys.length, 1);
    assert.ok(Buffer.from(p.keys[0]).equals(key));
    assert.deepEqual(
      p.drives.map((d) => ({ ...d, match: { ...d.match } })),
      [{ match: { port: { channel: 0, position: 1 }, serial: "QM00002" }, defaultAction: "encrypt", defaultKey: 0, ranges: [] }],
    );
    assert.equal(rec.readUInt16LE(22), 0, "no ALLOW_NO_IOMMU unless the config says so");
    const ahci = decodePolicy(compileRecord(key, validateConfig({ version: 1, drive: { transport: "ahci", port: 2 } })));
    assert.equal(ahci.drives.length, 1);
    assert.equal(ahci.drives[0].match.ahciPort, 2, "the record names AHCI port 2");
    assert.equal(ahci.drives[0].match.port, undefined);
    const lax = compileRecord(key, validateConfig({ version: 1, allowNoIommu: true }));
    assert.equal(lax.readUInt16LE(22), 1);
    assert.equal(decodePolicy(lax).allowNoIommu, true);
  });
});

describe("preboot guest", () => {
  let header: string, image: string;
  /** A second header with a passphrase user and a SoftHSM2 token user, and the guest's store. */
  let tokenHeader: string, tokenFiles: SiteFile[];

  before(async () => {
    await mkdir(TMP, { recursive: true });
    image = join(TMP, "preboot-disk.img");
    header = join(TMP, "preboot-disk.hdr");
    for (const f of [image, header, `${image}.parapet-state`]) await rm(f, { force: true });
    const disk = Buffer.alloc(4 << 20);
    disk.writeUInt16LE(0xaa55, 510); // a (blank) MBR disk
    await writeFile(image, disk);
    await luksFormat({ image, header, passphrase: Buffer.from(RIGHT), pbkdf: FAST });

    // The token user: a CA, a token with a key and a CA-issued certificate, enrolled on the host.
    tokenHeader = join(TMP, "preboot-token.hdr");
    const tokenImage = join(TMP, "preboot-token.img");
    for (const f of [tokenImage, tokenHeader, `${tokenImage}.parapet-state`]) await rm(f, { force: true });
    await writeFile(tokenImage, disk);
    await luksFormat({ image: tokenImage, header: tokenHeader, passphrase: Buffer.from(RIGHT), pbkdf: FAST });
    tokenFiles = await tokenUser({ header: tokenHeader, image: tokenImage, existing: Buffer.from(RIGHT), pin: PIN, workDir: TMP, pbkdf: FAST });
  });

  test("the header alone unlocks the same volume key as header and disk", async () => {
    const alone = await volumeKey(header, undefined, Buffer.from(RIGHT));
    assert.ok(alone.equals(await volumeKey(header, image, Buffer.from(RIGHT))));
  });

  test("the site archive holds the header and config, and refuses a bad config or header on the host", async () => {
    const hdr = await readFile(header);
    const { cpio } = sitePreboot({ header: hdr, config: { version: 1, retries: 2 } });
    assert.equal(cpio.subarray(0, 6).toString("latin1"), "070701");
    const text = cpio.toString("latin1");
    assert.ok(text.includes("etc/parapet/header.img\0") && text.includes("etc/parapet/preboot.json\0"));
    assert.ok(text.includes('"retries": 2'));
    assert.throws(() => sitePreboot({ header: hdr, config: { version: 1, retries: 11 } }), /preboot\.json: retries: must be at most 10/);
    assert.throws(() => sitePreboot({ header: Buffer.alloc(8192), config: { version: 1 } }), /not a LUKS header/);
    assert.equal(appendSite(Buffer.alloc(5), cpio).indexOf("070701"), 8, "the site archive starts 4-byte aligned");

    // With a token section: the CA, the module and the files the module's env names are checked.
    const tok = sitePreboot({ header: hdr, config: TOKEN_CONFIG, files: tokenFiles }).cpio.toString("latin1");
    assert.ok(tok.includes("etc/parapet/ca.pem\0") && tok.includes("etc/parapet/softhsm/softhsm2.conf\0"));
    assert.match(tok, /etc\/parapet\/softhsm\/tokens\/[0-9a-f-]+\/token\.object\0/);
    const noCa = tokenFiles.filter((f) => f.path !== GUEST_CA);
    assert.throws(
      () => sitePreboot({ header: hdr, config: TOKEN_CONFIG, files: noCa }),
      /preboot\.json: token\.ca: \/etc\/parapet\/ca\.pem is not in the site archive/,
    );
    const leafAsCa = [...noCa, { path: GUEST_CA, data: "not a certificate" }];
    assert.throws(
      () => sitePreboot({ header: hdr, config: TOKEN_CONFIG, files: leafAsCa }),
      /token\.ca: \/etc\/parapet\/ca\.pem is not a CA certificate/,
    );
    assert.throws(
      () => sitePreboot({ header: hdr, config: TOKEN_CONFIG, files: tokenFiles.filter((f) => !f.path.endsWith(".conf")) }),
      /token\.env\.SOFTHSM2_CONF: \/etc\/parapet\/softhsm\/softhsm2\.conf is not in the site archive/,
    );
    assert.throws(
      () =>
        sitePreboot({ header: hdr, config: { ...TOKEN_CONFIG, token: { ...TOKEN_CONFIG.token, module: "/usr/lib/none.so" } }, files: tokenFiles }),
      /token\.module: \/usr\/lib\/none\.so is neither in the preboot image/,
    );
  });

  describe("in bare QEMU (TCG, no hypervisor)", () => {
    let initrd: string, tokenInitrd: string, vmlinuz: string;

    before(async () => {
      const built = await preparePreboot();
      const out = built.initrd;
      vmlinuz = built.vmlinuz;
      const { cpio } = sitePreboot({ header: await readFile(header), config: { version: 1 } });
      initrd = join(TMP, "preboot-initrd.gz");
      await writeFile(initrd, appendSite(await readFile(out), cpio));
      const token = sitePreboot({ header: await readFile(tokenHeader), config: TOKEN_CONFIG, files: tokenFiles });
      tokenInitrd = join(TMP, "preboot-token-initrd.gz");
      await writeFile(tokenInitrd, appendSite(await readFile(out), token.cpio));
    });

    function boot(withToken = false): QemuSession {
      return new QemuSession({
        parapet: false,
        logSink: "none",
        memory: "512M",
        extraArgs: ["-kernel", vmlinuz, "-initrd", withToken ? tokenInitrd : initrd, "-append", "console=ttyS0,115200 quiet"],
      });
    }

    async function exited(s: QemuSession, ms: number): Promise<number | null> {
      if (!s.alive) return s.proc.exitCode;
      return new Promise((res, rej) => {
        const t = setTimeout(() => rej(new Error(`QEMU still running after ${ms} ms; console tail:\n${s.tail()}`)), ms);
        s.proc.on("exit", (code) => {
          clearTimeout(t);
          res(code);
        });
      });
    }

    test("three wrong passphrases: the refusal line, then power-off", async () => {
      const s = boot();
      try {
        let from = 0;
        for (const wrong of ["wrong one", "", "still wrong"]) {
          const m = await s.waitFor(/Passphrase: /, from === 0 ? 180_000 : 60_000, from);
          if (from === 0) process.stdout.write(`boot to the first prompt: ${((Date.now() - s.started) / 1000).toFixed(1)} s\n`);
          from += m.index + m[0].length;
          s.send(`${wrong}\r`);
        }
        await s.waitFor(/too many wrong passphrases; powering off, nothing was written/, 60_000, from);
        assert.equal(await exited(s, 30_000), 0);
        assert.match(s.console, /wrong passphrase; 2 attempts left/);
        assert.match(s.console, /empty passphrase; 1 attempt left/);
        assert.doesNotMatch(s.console, /wrong one|still wrong/, "the passphrases are never echoed");
        assert.match(s.console, /reboot: Power down/);
      } finally {
        s.kill();
      }
    });

    test("the right passphrase: unlocked, the payload loaded, and the handoff's VMMCALL reached", async () => {
      const s = boot();
      try {
        await s.waitFor(/Passphrase: /, 180_000);
        s.send(`${RIGHT}\r`);
        await s.waitFor(/preboot: unlocked; loading the handoff payload \(144-byte record at 0x1001000\)/, 60_000);
        await s.waitFor(/preboot: handing off to the hypervisor/, 60_000);
        // No hypervisor: VMMCALL raises #UD, the machine triple-faults, and -no-reboot ends QEMU.
        assert.equal(await exited(s, 60_000), 0);
        assert.doesNotMatch(s.console, /the right passphrase|powering off|reboot: Power down/);
      } finally {
        s.kill();
      }
    });

    test("a smart card (SoftHSM2 in the site archive): a wrong PIN, then the right one reaches the handoff", async () => {
      const s = boot(true);
      try {
        const first = await s.waitFor(/PIN: /, 180_000);
        process.stdout.write(`boot to the PIN prompt: ${((Date.now() - s.started) / 1000).toFixed(1)} s\n`);
        assert.match(s.console, /preboot: smart card 'carol' found/);
        const prompted = first.index + first[0].length;
        s.send("9999\r");
        const again = await s.waitFor(/wrong PIN; 2 attempts left[\s\S]*?PIN: /, 60_000, prompted);
        s.send(`${PIN}\r`);
        const from = prompted + again.index + again[0].length;
        await s.waitFor(/preboot: unlocked; loading the handoff payload \(144-byte record at 0x1001000\)/, 60_000, from);
        await s.waitFor(/preboot: handing off to the hypervisor/, 60_000, from);
        // No hypervisor: VMMCALL raises #UD, the machine triple-faults, and -no-reboot ends QEMU.
        assert.equal(await exited(s, 60_000), 0);
        assert.doesNotMatch(s.console, /Passphrase: |powering off|reboot: Power down/);
        assert.doesNotMatch(s.console.slice(first.index), new RegExp(`9999|${PIN}`), "the PINs are never echoed");
      } finally {
        s.kill();
      }
    });
  });
});
