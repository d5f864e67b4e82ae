// The policy record (hv/handoff/policy_record.h) and the policy file: exact bytes, CRC, every
// malformed record refused with a precise message, schema and semantic errors naming the field.
// Fast: no QEMU.
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { chmodSync, copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import * as zlib from "node:zlib";
import {
  crc32,
  decodePolicy,
  encodePolicy,
  FLAG_ALLOW_NO_IOMMU,
  formatPolicy,
  PolicyRecordError,
  policyToJson,
  recordCrc,
  type Policy,
  wholeDiskPolicy,
} from "../src/lib/policyrecord.ts";
import { compilePolicyFile, compilePolicyText, PolicyFileError } from "../src/lib/policyfile.ts";
import { keyFingerprint } from "../src/lib/xts.ts";
import { REPO_ROOT } from "../src/lib/guestimage.ts";
import { HYPERVISOR, isQ35, piixIdeArgs, qemuArgs } from "../src/lib/qemu.ts";

const run = promisify(execFile);
const CLI = join(REPO_ROOT, "bin", "parapet.js");

/** A deterministic key whose halves differ: byte i = (seed + i * 7) & 0xff. */
function key(seed: number): Buffer {
  return Buffer.from(Array.from({ length: 64 }, (_, i) => (seed + i * 7) & 0xff));
}

const K0 = key(1),
  K1 = key(100);

/** Two keys, two drives, three ranges: every field has a value distinguishable from its neighbours. */
const SAMPLE: Policy = {
  keys: [K0, K1],
  drives: [
    {
      match: { pci: { bus: 0x12, dev: 0x1f, fn: 3 }, port: { channel: 1, position: 1 } },
      defaultAction: "encrypt",
      defaultKey: 1,
      // given out of order: the record stores them sorted by first LBA
      ranges: [
        { firstLba: 0x0102030405060708n, count: 0x10n, action: "deny", key: 0 },
        { firstLba: 0n, count: 2048n, action: "plain", key: 0 },
      ],
    },
    {
      match: { serial: "QM00002" },
      defaultAction: "plain",
      defaultKey: 0,
      ranges: [{ firstLba: 4096n, count: 0xffffffffn, action: "encrypt", key: 0 }],
    },
  ],
};

function expectedSampleBytes(): Buffer {
  const b = Buffer.alloc(32 + 2 * 64 + 2 * 48 + 3 * 24);
  assert.equal(b.length, 328);
  // header (offsets from struct policy_header)
  b.write("PARAPOL1", 0, "latin1");
  b.writeUInt16LE(1, 8); // version
  b.writeUInt16LE(32, 10); // header_size
  b.writeUInt32LE(328, 12); // total_size
  b.writeUInt16LE(2, 16); // nkeys
  b.writeUInt16LE(2, 18); // ndrives
  b.writeUInt16LE(3, 20); // nranges
  // flags @22 (0: no ALLOW_NO_IOMMU), crc32 @24, reserved1 @28 stay zero for now
  K0.copy(b, 32);
  K1.copy(b, 96);
  // drive 0 @160
  let d = 160;
  b[d + 0] = 0x01 | 0x02; // POLICY_MATCH_PCI | POLICY_MATCH_PORT
  b[d + 1] = 0x12; // pci_bus
  b[d + 2] = (0x1f << 3) | 3; // pci_devfn
  b[d + 3] = 1; // channel
  b[d + 4] = 1; // position
  b[d + 5] = 1; // default_action ENCRYPT
  b.writeUInt16LE(1, d + 6); // default_key
  // serial @8..27 zero (no serial criterion)
  b.writeUInt16LE(0, d + 28); // first_range
  b.writeUInt16LE(2, d + 30); // nranges
  // drive 1 @208
  d = 208;
  b[d + 0] = 0x04; // POLICY_MATCH_SERIAL
  b[d + 5] = 0; // PLAIN
  b.write("QM00002             ", d + 8, "latin1"); // 20 bytes, space padded
  b.writeUInt16LE(2, d + 28);
  b.writeUInt16LE(1, d + 30);
  // ranges @256, 24 bytes each
  let r = 256;
  b.writeBigUInt64LE(0n, r);
  b.writeBigUInt64LE(2048n, r + 8);
  b[r + 16] = 0; // plain
  r += 24;
  b.writeBigUInt64LE(0x0102030405060708n, r);
  b.writeBigUInt64LE(0x10n, r + 8);
  b[r + 16] = 2; // deny
  r += 24;
  b.writeBigUInt64LE(4096n, r);
  b.writeBigUInt64LE(0xffffffffn, r + 8);
  b[r + 16] = 1;
  b.writeUInt16LE(0, r + 18); // encrypt, key 0
  return b;
}

test("crc32 is IEEE 802.3 as zlib computes it", () => {
  assert.equal(crc32(Buffer.from("123456789")), 0xcbf43926);
  const z = (zlib as { crc32?: (d: Uint8Array) => number }).crc32;
  if (z) {
    const data = Buffer.from(Array.from({ length: 1000 }, (_, i) => (i * 31) & 0xff));
    assert.equal(crc32(data), z(data));
  }
});

test("the sample policy encodes to exactly the layout of policy_record.h", () => {
  const got = encodePolicy(SAMPLE);
  const want = expectedSampleBytes();
  // The CRC covers the whole record with the crc32 field as zero.
  want.writeUInt32LE(crc32(want), 24);
  assert.equal(got.toString("hex"), want.toString("hex"));
  assert.equal(recordCrc(got), got.readUInt32LE(24));
});

test("decode(encode(p)) gives p back (ranges sorted by LBA)", () => {
  const p = decodePolicy(encodePolicy(SAMPLE));
  assert.deepEqual(
    p.keys.map((k) => Buffer.from(k).toString("hex")),
    [K0.toString("hex"), K1.toString("hex")],
  );
  assert.deepEqual(p.drives[0].match, SAMPLE.drives[0].match);
  assert.deepEqual(p.drives[0].ranges, [SAMPLE.drives[0].ranges[1], SAMPLE.drives[0].ranges[0]]);
  assert.deepEqual(p.drives[1], SAMPLE.drives[1]);
});

test("allowNoIommu is header.flags bit 0 (offset 22); without it the flags are 0, as in records written before", () => {
  const plain = encodePolicy(SAMPLE);
  assert.equal(plain.readUInt16LE(22), 0);
  assert.equal(decodePolicy(plain).allowNoIommu, undefined);
  const rec = encodePolicy({ ...SAMPLE, allowNoIommu: true });
  assert.equal(rec.readUInt16LE(22), FLAG_ALLOW_NO_IOMMU);
  assert.equal(FLAG_ALLOW_NO_IOMMU, 0x0001);
  // Only the flag and the CRC differ.
  const want = Buffer.from(plain);
  want.writeUInt16LE(1, 22);
  want.writeUInt32LE(recordCrc(want), 24);
  assert.ok(rec.equals(want));
  assert.equal(decodePolicy(rec).allowNoIommu, true);
  assert.equal(encodePolicy(wholeDiskPolicy(K0, undefined, true)).readUInt16LE(22), 1);
  assert.match(formatPolicy(decodePolicy(rec)), /^without an IOMMU: allowed/m);
  assert.match(formatPolicy(decodePolicy(plain)), /^without an IOMMU: refused when the record carries keys/m);
  assert.equal((policyToJson(decodePolicy(rec)) as { allow_no_iommu: boolean }).allow_no_iommu, true);
});

test("the whole-disk policy: port match 0/0, encrypt with key 0, no ranges", () => {
  const rec = encodePolicy(wholeDiskPolicy(K0));
  assert.equal(rec.length, 32 + 64 + 48);
  assert.equal(rec.readUInt16LE(16), 1);
  assert.equal(rec.readUInt16LE(18), 1);
  assert.equal(rec.readUInt16LE(20), 0);
  const d = 96;
  assert.deepEqual([...rec.subarray(d, d + 8)], [0x02, 0, 0, 0, 0, 1, 0, 0]);
  assert.ok(rec.subarray(d + 8, d + 48).every((x) => x === 0));
});

/** Applies `mutate` to a valid sample record, fixes the CRC unless told not to, and expects `re`. */
function refused(mutate: (b: Buffer) => Buffer | void, re: RegExp, fixCrc = true): void {
  let b = encodePolicy(SAMPLE);
  b = mutate(b) ?? b;
  if (fixCrc && b.length >= 32 && b.subarray(0, 8).toString("latin1") === "PARAPOL1") b.writeUInt32LE(recordCrc(b), 24);
  assert.throws(
    () => decodePolicy(b),
    (e: unknown) => {
      assert.ok(e instanceof PolicyRecordError, `expected a PolicyRecordError, got ${e}`);
      assert.match(e.message, re);
      // never a key byte in a message
      for (const k of [K0, K1]) assert.ok(!e.message.includes(k.toString("hex").slice(0, 16)));
      return true;
    },
  );
}

test("every malformed header is refused with a precise message", () => {
  refused((b) => b.subarray(0, 20), /record is 20 bytes, shorter than its 32-byte header/);
  refused((b) => void b.write("PARAPOL2", 0, "latin1"), /bad magic at offset 0: "PARAPOL2".*not a Parapet policy record/);
  refused((b) => void b.writeUInt16LE(2, 8), /header\.version \(offset 8\) is 2; this tool reads version 1/);
  refused((b) => void b.writeUInt16LE(40, 10), /header\.header_size \(offset 10\) is 40, expected 32/);
  refused((b) => void b.writeUInt32LE(70000, 12), /header\.total_size \(offset 12\) is 70000, above the limit 65536/);
  refused((b) => b.subarray(0, b.length - 1), /total_size .* is 328 but the record is 327 bytes \(truncated\)/);
  refused((b) => Buffer.concat([b, Buffer.alloc(1)]), /is 328 but the record is 329 bytes \(trailing bytes\)/);
  refused(
    (b) => void b.writeUInt32LE(0xdeadbeef, 24),
    /header\.crc32 \(offset 24\) is 0xdeadbeef but the record's CRC-32 is 0x[0-9a-f]{8}: the record is corrupted/,
    false,
  );
  refused((b) => void (b[200] ^= 1), /header\.crc32 .* the record is corrupted/, false);
  refused((b) => void b.writeUInt16LE(17, 16), /header\.nkeys \(offset 16\) is 17, above the limit 16/);
  refused((b) => void b.writeUInt16LE(17, 18), /header\.ndrives \(offset 18\) is 17, above the limit 16/);
  refused((b) => void b.writeUInt16LE(257, 20), /header\.nranges \(offset 20\) is 257, above the limit 256/);
  refused((b) => void b.writeUInt16LE(3, 16), /take 32 \+ 64\*3 \+ 48\*2 \+ 24\*3 = 392 bytes/);
  refused((b) => void b.writeUInt16LE(2, 22), /header\.flags \(offset 22\) is 0x0002: unknown flag bits 0x0002 \(known: 0x0001 ALLOW_NO_IOMMU\)/);
  refused((b) => void b.writeUInt16LE(0x8001, 22), /header\.flags \(offset 22\) is 0x8001: unknown flag bits 0x8000/);
  refused((b) => void b.writeUInt32LE(5, 28), /header\.reserved1 \(offset 28\) is 0x5, must be 0/);
  refused(() => {
    const b = Buffer.alloc(32 + 64);
    b.write("PARAPOL1", 0, "latin1");
    b.writeUInt16LE(1, 8);
    b.writeUInt16LE(32, 10);
    b.writeUInt32LE(96, 12);
    b.writeUInt16LE(1, 16);
    K0.copy(b, 32);
    return b;
  }, /header\.ndrives is 0: the record names no drive/);
});

test("every malformed key, drive and range is refused with its field and offset", () => {
  const D0 = 160,
    D1 = 208,
    R0 = 256,
    R1 = 280,
    R2 = 304;
  refused((b) => void b.copy(b, 64, 32, 64), /keys\[0\] \(offset 32\) has two equal 32-byte halves/);
  refused((b) => void K0.copy(b, 96), /keys\[1\] is the same key as keys\[0\]/);
  refused((b) => void (b[D0] = 0x09), /drives\[0\]\.match \(offset 160\) is 0x09: unknown flag bits 0x08/);
  refused((b) => void (b[D0] = 0), /drives\[0\]\.match \(offset 160\) is 0: no criterion set/);
  refused((b) => void (b[D0] = 0x02), /drives\[0\]\.pci_bus\/pci_devfn \(offset 161\) must be 0 without POLICY_MATCH_PCI/);
  refused((b) => void (b[D0 + 3] = 2), /drives\[0\]\.channel \(offset 163\) is 2, must be 0 or 1/);
  refused((b) => void (b[D0 + 4] = 7), /drives\[0\]\.position \(offset 164\) is 7, must be 0 or 1/);
  refused((b) => void (b[D0] = 0x01), /drives\[0\]\.channel\/position \(offset 163\) must be 0 without POLICY_MATCH_PORT/);
  refused((b) => void (b[D0 + 10] = 0x41), /drives\[0\]\.serial \(offset 168\) must be zero without POLICY_MATCH_SERIAL/);
  refused((b) => void (b[D1 + 9] = 0x07), /drives\[1\]\.serial \(offset 216\) holds bytes that are not printable ASCII/);
  refused((b) => void b.fill(0x20, D1 + 8, D1 + 28), /drives\[1\]\.serial \(offset 216\) is all spaces/);
  refused((b) => void (b[D0 + 5] = 3), /drives\[0\]\.default_action \(offset 165\) is 3, not an action/);
  refused((b) => void b.writeUInt16LE(2, D0 + 6), /drives\[0\]\.default_key \(offset 166\) is 2 but the record has 2 keys/);
  refused((b) => void b.writeUInt16LE(1, D1 + 6), /drives\[1\]\.default_key \(offset 214\) is 1, must be 0 when the action is plain/);
  refused((b) => void b.writeUInt16LE(2, D1 + 30), /drives\[1\]: ranges \[2, 4\) \(offset 236\) go past the record's 3 ranges/);
  refused((b) => {
    b.writeUInt16LE(0, D1 + 30);
  }, /drives\[1\]\.first_range \(offset 236\) is 2, must be 0 when nranges is 0/);
  refused((b) => void (b[D0 + 40] = 1), /drives\[0\]\.reserved \(offset 200\) is not zero/);
  refused((b) => {
    b.writeUInt16LE(1, D1 + 28);
    b.writeUInt16LE(2, D1 + 30); // drive 1 takes ranges 1-2; range 1 is drive 0's
  }, /ranges\[1\] belongs to both drives\[0\] and drives\[1\]/);
  refused((b) => void b.writeUInt16LE(1, D0 + 30), /ranges\[1\] belongs to no drive/);
  refused((b) => void b.writeBigUInt64LE(0n, R0 + 8), /ranges\[0\] \(of drives\[0\]\)\.count \(offset 264\) is 0, must be >= 1/);
  refused(
    (b) => void b.writeBigUInt64LE(0xffffffffffffffffn, R1 + 8),
    /ranges\[1\] \(of drives\[0\]\): first_lba 72623859790382856 \+ count 18446744073709551615 \(offset 280\) exceeds 2\^64/,
  );
  refused((b) => void (b[R1 + 16] = 9), /ranges\[1\] \(of drives\[0\]\)\.action \(offset 296\) is 9, not an action/);
  refused((b) => void (b[R1 + 17] = 1), /ranges\[1\] \(of drives\[0\]\)\.reserved0 \(offset 297\) is 0x01, must be 0/);
  refused((b) => void b.writeUInt16LE(5, R2 + 18), /ranges\[2\] \(of drives\[1\]\)\.key \(offset 322\) is 5 but the record has 2 keys/);
  refused((b) => void b.writeUInt16LE(1, R0 + 18), /ranges\[0\] \(of drives\[0\]\)\.key \(offset 274\) is 1, must be 0 when the action is plain/);
  refused((b) => void b.writeUInt32LE(1, R2 + 20), /ranges\[2\] \(of drives\[1\]\)\.reserved1 \(offset 324\) is 0x1, must be 0/);
  refused(
    (b) => void b.writeBigUInt64LE(0x0102030405060710n, R0 + 8),
    /ranges\[1\] \(sectors 72623859790382856\.\.72623859790382871\) overlaps ranges\[0\] \(sectors 0\.\.72623859790382863\), both of drives\[0\]/,
  );
  refused((b) => {
    // drive 1 becomes a copy of drive 0's criteria
    b.copy(b, D1, D0, D0 + 5);
    b.fill(0, D1 + 8, D1 + 28);
  }, /drives\[1\] matches the same drive as drives\[0\] \(pci 12:1f\.3, channel 1 position 1\)/);
});

test("encodePolicy refuses what the record cannot hold", () => {
  const bad: Policy = {
    keys: [K0, Buffer.concat([K1.subarray(0, 32), K1.subarray(0, 32)])],
    drives: [
      { match: {}, defaultAction: "encrypt", defaultKey: 5, ranges: [{ firstLba: 0n, count: 0n, action: "plain", key: 0 }] },
      { match: { serial: "x".repeat(21) }, defaultAction: "plain", defaultKey: 1, ranges: [] },
    ],
  };
  assert.throws(
    () => encodePolicy(bad),
    (e: Error) => {
      for (const re of [
        /keys\[1\]: has two equal 32-byte halves/,
        /drives\[0\]\.match: no criterion/,
        /drives\[0\]\.default_key: key 5 does not exist/,
        /drives\[0\]\.ranges\[0\]\.count: must be >= 1/,
        /drives\[1\]\.match\.serial: is 21 characters, at most 20/,
        /drives\[1\]\.default_key: must be 0 when the action is plain/,
      ]) {
        assert.match(e.message, re);
      }
      return true;
    },
  );
  const many: Policy = {
    keys: [K0],
    drives: Array.from({ length: 17 }, (_, i) => ({ match: { serial: `S${i}` }, defaultAction: "plain" as const, defaultKey: 0, ranges: [] })),
  };
  assert.throws(() => encodePolicy(many), /drives: 17 drives, at most 16/);
});

// ---- the policy file ----

const made: string[] = [];
after(() => {
  for (const d of made) rmSync(d, { recursive: true, force: true });
});

function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), "parapet-policy-"));
  made.push(d);
  return d;
}

function writeKey(dir: string, name: string, k: Buffer): void {
  writeFileSync(join(dir, name), k, { mode: 0o600 });
}

async function fileErrors(text: string, dir = tmp()): Promise<string[]> {
  writeFileSync(join(dir, "p.yaml"), text);
  try {
    await compilePolicyFile(join(dir, "p.yaml"), "p.yaml");
  } catch (e) {
    assert.ok(e instanceof PolicyFileError, String(e));
    return e.errors;
  }
  assert.fail("the policy file was accepted");
}

test("the example policy compiles (with keys made for it) to what it says", async () => {
  const dir = tmp();
  copyFileSync(join(REPO_ROOT, "examples", "policy.yaml"), join(dir, "policy.yaml"));
  writeKey(dir, "system.key", K0);
  writeKey(dir, "data.key", K1);
  const c = await compilePolicyFile(join(dir, "policy.yaml"));
  assert.deepEqual(c.keyNames, ["system", "data"]);
  assert.deepEqual(c.warnings, []);
  const p = decodePolicy(encodePolicy(c.policy));
  assert.deepEqual(p.drives[0].match, { port: { channel: 0, position: 0 } });
  assert.equal(p.drives[0].defaultAction, "encrypt");
  assert.deepEqual(p.drives[0].ranges, [{ firstLba: 0n, count: 2048n, action: "plain", key: 0 }]);
  assert.deepEqual(p.drives[1].match, { port: { channel: 0, position: 1 }, serial: "QM00002" });
  assert.equal(p.drives[1].defaultKey, 1);
  assert.deepEqual(p.drives[1].ranges, [
    { firstLba: 0n, count: 2048n, action: "deny", key: 0 },
    { firstLba: 0x100000n, count: 0x100000n, action: "plain", key: 0 },
  ]);
});

test("schema errors name the file, line, column and field path", async () => {
  const errs = await fileErrors(
    [
      "version: 1",
      "drives:",
      "  - match: {channel: 0, position: 0}",
      "    default: encrypt",
      "    colour: red",
      "    ranges:",
      "      - {first: 0, count: 10, action: plain}",
      "      - {first: 10, count: 10, action: plain}",
      "      - {first: 20, count: 0, action: plain}",
      "      - {first: -1, count: 1, action: maybe}",
      "  - match: {channel: 3, position: 0}",
      "    default: plain",
    ].join("\n"),
  );
  assert.deepEqual(errs, [
    "p.yaml:5:5: drives[0].colour: unknown field",
    "p.yaml:9:28: drives[0].ranges[2].count: must be >= 1",
    "p.yaml:10:17: drives[0].ranges[3].first: must be >= 0",
    "p.yaml:10:39: drives[0].ranges[3].action: must be plain, encrypt or deny",
    "p.yaml:11:22: drives[1].match.channel: must be 0, 1, primary or secondary",
  ]);
  assert.deepEqual(await fileErrors("version: 2\ndrives: []\n"), [
    "p.yaml:1:10: version: must be 1 (the policy file format this tool reads)",
    "p.yaml:2:9: drives: must list at least one drive",
  ]);
  assert.deepEqual(
    await fileErrors("version: 1\ndrives:\n  - match: {serial: 12}\n"),
    ["p.yaml:3:21: drives[0].match.serial: must be a string (quote it)", "p.yaml:3:5: drives[0].default: is required"].sort(
      (a, b) => Number(a.split(":")[2]) - Number(b.split(":")[2]),
    ),
  );
  const syntax = await fileErrors("version: 1\ndrives: [\n");
  assert.match(syntax[0], /^p\.yaml:\d+:\d+: YAML syntax: /);
});

test("semantic errors: keys, references, sizes, overlaps, duplicates, limits", async () => {
  const dir = tmp();
  writeKey(dir, "a.key", K0);
  writeKey(dir, "copy.key", K0);
  writeKey(dir, "short.key", K0.subarray(0, 32));
  writeKey(dir, "halves.key", Buffer.concat([K0.subarray(0, 32), K0.subarray(0, 32)]));
  const errs = await fileErrors(
    [
      "version: 1",
      "keys:",
      "  a: a.key",
      "  b: copy.key",
      "  c: short.key",
      "  d: halves.key",
      "  e: missing.key",
      "drives:",
      "  - match: {channel: 0, position: 0}",
      "    default: encrypt",
      "    key: z",
      "    ranges:",
      "      - {first: 100, count: 100, action: encrypt}",
      "      - {first: 150, end: 160, action: plain, key: a}",
      "      - {first: 300, last: 299, action: deny}",
      "      - {first: 400, count: 1, end: 401, action: deny}",
      "      - {first: 500, action: deny}",
      "      - {first: 281474976710000, count: 1000, action: plain}",
      "  - match: {channel: primary, position: master}",
      "    default: plain",
      "  - match: {channel: 1}",
      "    default: plain",
      "  - match: {pci: '0:1.9'}",
      "    default: plain",
    ].join("\n"),
    dir,
  );
  assert.deepEqual(errs, [
    "p.yaml:4:6: keys.b: key file copy.key holds the same key as keys.a",
    "p.yaml:5:6: keys.c: key file short.key is 32 bytes, expected exactly 64 (make one with: parapet keygen -o short.key)",
    "p.yaml:6:6: keys.d: key file halves.key has two equal 32-byte halves (XTS needs distinct data and tweak keys; generate a new one with: parapet keygen)",
    "p.yaml:7:6: keys.e: cannot read key file missing.key: no such file",
    "p.yaml:11:10: drives[0].key: unknown key 'z' (defined: a, b, c, d, e)",
    "p.yaml:13:9: drives[0].ranges[0].key: is required when action is encrypt",
    "p.yaml:14:9: drives[0].ranges[1]: sectors 150..159 overlap drives[0].ranges[0] (sectors 100..199)",
    "p.yaml:14:52: drives[0].ranges[1].key: only allowed when action is encrypt (it is plain)",
    "p.yaml:15:28: drives[0].ranges[2].last: must be >= first (300); last is the last sector of the range",
    "p.yaml:16:9: drives[0].ranges[3]: give only one of count, end and last (found count and end)",
    "p.yaml:17:9: drives[0].ranges[4]: needs its size: count, end (exclusive) or last (inclusive)",
    "p.yaml:18:9: drives[0].ranges[5]: sectors 281474976710000..281474976710999 go past 2^48, the end of 48-bit LBA addressing",
    "p.yaml:19:12: drives[1].match: matches the same drive as drives[0]",
    "p.yaml:21:12: drives[2].match.position: is required with channel (a drive's port is its channel and its position)",
    "p.yaml:23:18: drives[3].match.pci: '0:1.9' is not a PCI address BB:DD.F (hex bus 00-ff, device 00-1f, function 0-7)",
  ]);
  // Nothing in any message is key material.
  for (const e of errs) assert.ok(!e.includes(K0.toString("hex").slice(0, 12)));
});

test("limits of policy_record.h are enforced in the file", async () => {
  const dir = tmp();
  writeKey(dir, "a.key", K0);
  const drives = Array.from({ length: 17 }, (_, i) => `  - {match: {serial: "S${i}"}, default: plain}`);
  assert.deepEqual(await fileErrors(["version: 1", "drives:", ...drives].join("\n"), dir), ["p.yaml:3:3: drives: at most 16 drives"]);
  const ranges = Array.from({ length: 257 }, (_, i) => `      - {first: ${i * 10}, count: 1, action: deny}`);
  const errs = await fileErrors(
    ["version: 1", "drives:", "  - match: {channel: 0, position: 0}", "    default: plain", "    ranges:", ...ranges].join("\n"),
    dir,
  );
  assert.deepEqual(errs, ["p.yaml:3:3: drives: 257 ranges in all, at most 256"]);
});

test("unused keys are warned about and left out; key indices follow the file's order", async () => {
  const dir = tmp();
  writeKey(dir, "a.key", K0);
  writeKey(dir, "b.key", K1);
  chmodSync(join(dir, "b.key"), 0o644);
  const c = await compilePolicyText(
    ["version: 1", "keys: {unused: a.key, b: b.key}", "drives:", "  - {match: {channel: 0, position: 0}, default: encrypt, key: b}"].join("\n"),
    "p.yaml",
    dir,
  );
  assert.deepEqual(c.keyNames, ["b"]);
  assert.equal(c.policy.keys.length, 1);
  assert.equal(keyFingerprint(c.policy.keys[0]), keyFingerprint(K1));
  assert.deepEqual(c.warnings, [
    "p.yaml: keys.b: key file b.key is accessible to group or others (chmod 600 b.key)",
    "p.yaml: keys.unused: defined but not used; it is left out of the record",
  ]);
});

// ---- the CLI (a few runs of the real command) ----

async function cli(args: string[], cwd: string): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await run(process.execPath, [CLI, ...args], { cwd });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const x = e as { code: number; stdout: string; stderr: string };
    return { code: x.code, stdout: x.stdout, stderr: x.stderr };
  }
}

test("CLI: keygen, policy --whole-disk, show, --check; files 0600; keys never printed", async () => {
  const dir = tmp();
  let r = await cli(["keygen", "-o", "disk.key"], dir);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(statSync(join(dir, "disk.key")).mode & 0o777, 0o600);
  const k = readFileSync(join(dir, "disk.key"));
  assert.equal(k.length, 64);
  assert.notEqual(k.subarray(0, 32).toString("hex"), k.subarray(32).toString("hex"));
  assert.match(r.stdout, new RegExp(`fingerprint ${keyFingerprint(k)}`));
  r = await cli(["keygen", "-o", "disk.key"], dir);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /disk\.key exists; refusing to overwrite a key/);
  assert.ok(readFileSync(join(dir, "disk.key")).equals(k), "the key was not touched");

  r = await cli(["policy", "--whole-disk", "--key", "disk.key", "-o", "policy.bin"], dir);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(statSync(join(dir, "policy.bin")).mode & 0o777, 0o600);
  const rec = readFileSync(join(dir, "policy.bin"));
  assert.ok(rec.equals(encodePolicy(wholeDiskPolicy(k))));
  r = await cli(["policy", "show", "policy.bin"], dir);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /Parapet policy record v1, 144 bytes, crc32 0x[0-9a-f]{8} \(valid\)/);
  assert.match(r.stdout, /key 0: XTS-AES-256, fingerprint [0-9a-f]{16}/);
  assert.match(r.stdout, /drive 0: any IDE controller, primary channel, master \(channel 0 position 0\)\n    every sector: encrypt with key 0/);
  const hex = k.toString("hex");
  for (const out of [r.stdout, r.stderr]) {
    for (let i = 0; i + 16 <= hex.length; i += 16) assert.ok(!out.includes(hex.slice(i, i + 16)), "key bytes printed");
  }

  rec[100] ^= 0xff;
  writeFileSync(join(dir, "broken.bin"), rec);
  r = await cli(["policy", "show", "broken.bin"], dir);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /broken\.bin: invalid policy record: header\.crc32 \(offset 24\) .* the record is corrupted/);

  writeFileSync(
    join(dir, "p.yaml"),
    "version: 1\nkeys: {k: disk.key}\ndrives:\n  - {match: {channel: 0, position: 0}, default: encrypt, key: k, ranges: [{first: 0, count: 0, action: plain}]}\n",
  );
  r = await cli(["policy", "--check", "p.yaml"], dir);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^p\.yaml:4:\d+: drives\[0\]\.ranges\[0\]\.count: must be >= 1$/m);
  assert.ok(!existsSync(join(dir, "p.bin")));
  writeFileSync(
    join(dir, "p.yaml"),
    "version: 1\nkeys: {k: disk.key}\ndrives:\n  - {match: {channel: 0, position: 0}, default: encrypt, key: k, ranges: [{first: 0, count: 1, action: plain}]}\n",
  );
  r = await cli(["policy", "--check", "p.yaml"], dir);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /p\.yaml: valid: 1 key, 1 drive, 1 range; the record would be 168 bytes/);
});

test("allow_no_iommu in a policy file and --allow-no-iommu set header.flags; show says so", async () => {
  const dir = tmp();
  writeKey(dir, "disk.key", K0);
  const body = "keys: {k: disk.key}\ndrives:\n  - {match: {channel: 0, position: 0}, default: encrypt, key: k}\n";
  writeFileSync(join(dir, "yes.yaml"), `version: 1\nallow_no_iommu: true\n${body}`);
  writeFileSync(join(dir, "no.yaml"), `version: 1\nallow_no_iommu: false\n${body}`);
  writeFileSync(join(dir, "unset.yaml"), `version: 1\n${body}`);
  assert.equal((await compilePolicyFile(join(dir, "yes.yaml"))).policy.allowNoIommu, true);
  assert.equal((await compilePolicyFile(join(dir, "no.yaml"))).policy.allowNoIommu, undefined);
  assert.equal((await compilePolicyFile(join(dir, "unset.yaml"))).policy.allowNoIommu, undefined);
  assert.deepEqual(await fileErrors(`version: 1\nallow_no_iommu: yes\n${body}`, dir), [
    "p.yaml:2:17: allow_no_iommu: must be true or false (may the keys be used on a machine without an IOMMU?)",
  ]);
  const noKeys = await compilePolicyText(
    'version: 1\nallow_no_iommu: true\ndrives:\n  - {match: {serial: "QM00001"}, default: deny}\n',
    "n.yaml",
    dir,
  );
  assert.deepEqual(noKeys.warnings, ["n.yaml: allow_no_iommu: has no effect, the record carries no keys"]);

  let r = await cli(["policy", "--whole-disk", "--key", "disk.key", "--allow-no-iommu", "-o", "w.bin"], dir);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(readFileSync(join(dir, "w.bin")).readUInt16LE(22), 1);
  r = await cli(["policy", "show", "w.bin"], dir);
  assert.match(r.stdout, /^without an IOMMU: allowed/m);
  r = await cli(["policy", "unset.yaml", "--allow-no-iommu", "-o", "f.bin"], dir);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(readFileSync(join(dir, "f.bin")).readUInt16LE(22), 1);
  r = await cli(["policy", "--whole-disk", "--key", "disk.key", "-o", "d.bin"], dir);
  assert.equal(readFileSync(join(dir, "d.bin")).readUInt16LE(22), 0);
  r = await cli(["policy", "show", "d.bin"], dir);
  assert.match(r.stdout, /^without an IOMMU: refused when the record carries keys \(DMA isolation required\)/m);
  r = await cli(["policy", "show", "--json", "d.bin"], dir);
  assert.equal(JSON.parse(r.stdout).allow_no_iommu, false);
});

test("qemuArgs: an emulated IOMMU (intel, amd with pt=off) on q35 only, and the disk on an added PIIX IDE controller", () => {
  const dir = tmp();
  const disk = join(dir, "d.img");
  writeFileSync(disk, Buffer.alloc(512));
  const args = qemuArgs({ machine: "q35", iommu: "intel", disk, piixIde: true, snapshot: true, parapet: false }, join(dir, "hv.log"));
  const joined = args.join(" ");
  assert.match(
    joined,
    /-machine q35 .*-device intel-iommu .*-device piix3-ide,id=pide -drive file=\S+d\.img,format=raw,if=none,id=d0,snapshot=on -device ide-hd,drive=d0,bus=pide\.0/,
  );
  assert.doesNotMatch(joined, /if=ide/);
  assert.deepEqual(piixIdeArgs(disk).slice(0, 2), ["-device", "piix3-ide,id=pide"]);
  assert.throws(
    () => qemuArgs({ machine: "pc", iommu: "intel", parapet: false }, join(dir, "hv.log")),
    /an emulated IOMMU needs -machine q35 \(not pc\)/,
  );
  assert.throws(() => qemuArgs({ machine: "pc", iommu: "amd", parapet: false }, join(dir, "hv.log")), /needs -machine q35/);
  assert.match(qemuArgs({ machine: "q35", iommu: "amd", parapet: false }, join(dir, "hv.log")).join(" "), /-device amd-iommu,pt=off/);
  for (const m of ["q35", "q35,smm=on", "pc-q35-10.0", "type=q35"]) assert.ok(isQ35(m), m);
  for (const m of ["pc", "pc,smm=on", "pc-i440fx-10.0", "microvm"]) assert.ok(!isQ35(m), m);
  // The library default is unchanged: pc, the disk on the machine's IDE, no IOMMU.
  const plain = qemuArgs({ disk, parapet: false }, join(dir, "hv.log")).join(" ");
  assert.match(plain, /-machine pc .*-drive file=\S+d\.img,format=raw,if=ide,index=0,media=disk/);
  assert.doesNotMatch(plain, /iommu|piix3-ide/);
});

test("run --policy: the record goes to QEMU as a Multiboot module (-initrd) beside -kernel", (t) => {
  const dir = tmp();
  const rec = join(dir, "policy.bin");
  writeFileSync(rec, encodePolicy(wholeDiskPolicy(K0)), { mode: 0o600 });
  assert.throws(() => qemuArgs({ modules: [rec], parapet: false }, join(dir, "hv.log")), /Multiboot modules need Parapet loaded with -kernel/);
  assert.throws(
    () => qemuArgs({ modules: [rec], cdrom: join(dir, "boot.iso") }, join(dir, "hv.log")),
    /Multiboot modules need Parapet loaded with -kernel/,
  );
  if (!existsSync(HYPERVISOR)) {
    t.skip("build/parapet.elf is not built (make)");
    return;
  }
  const args = qemuArgs({ modules: [rec, rec] }, join(dir, "hv.log"));
  const k = args.indexOf("-kernel");
  assert.equal(args[k + 1], HYPERVISOR);
  assert.equal(args[args.indexOf("-initrd") + 1], `${rec},${rec}`);
  assert.throws(() => qemuArgs({ modules: [join(dir, "missing.bin")] }, join(dir, "hv.log")), /module .*missing\.bin does not exist/);
});
