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
  recordVersion,
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

/** Two keys, four drives (IDE, any transport, AHCI, NVMe), three ranges: every field has a value
 * distinguishable from its neighbours. */
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
    { match: { pci: { bus: 0, dev: 0x1f, fn: 2 }, ahciPort: 5 }, defaultAction: "deny", defaultKey: 0, ranges: [] },
    { match: { nsid: 7, serial: "NVME-SN" }, blockSize: 4096, defaultAction: "plain", defaultKey: 0, ranges: [] },
  ],
};

/** SAMPLE as version 2 writes it (struct policy_drive), CRC included. */
function expectedSampleBytes(): Buffer {
  const b = Buffer.alloc(32 + 2 * 64 + 4 * 48 + 3 * 24);
  assert.equal(b.length, 424);
  b.write("PARAPOL1", 0, "latin1");
  b.writeUInt16LE(2, 8); // version
  b.writeUInt16LE(32, 10); // header_size
  b.writeUInt32LE(424, 12); // total_size
  b.writeUInt16LE(2, 16); // nkeys
  b.writeUInt16LE(4, 18); // ndrives
  b.writeUInt16LE(3, 20); // nranges
  K0.copy(b, 32);
  K1.copy(b, 96);
  // drive 0 @160: IDE secondary slave behind 12:1f.3
  let d = 160;
  b[d + 0] = 0x01 | 0x02 | 0x08; // PCI | PORT | TRANSPORT
  b[d + 1] = 0; // transport IDE
  b[d + 2] = 0x12; // pci_bus
  b[d + 3] = (0x1f << 3) | 3; // pci_devfn
  b[d + 4] = 1; // port (channel)
  b[d + 5] = 1; // position
  b[d + 6] = 1; // default_action ENCRYPT
  b.writeUInt16LE(1, d + 8); // default_key
  b.writeUInt16LE(0, d + 10); // first_range
  b.writeUInt16LE(2, d + 12); // nranges
  b.writeUInt32LE(512, d + 20); // block_size
  // drive 1 @208: serial only, any transport
  d = 208;
  b[d + 0] = 0x04; // SERIAL
  b[d + 6] = 0; // PLAIN
  b.writeUInt16LE(2, d + 10);
  b.writeUInt16LE(1, d + 12);
  b.writeUInt32LE(512, d + 20);
  b.write("QM00002             ", d + 24, "latin1");
  // drive 2 @256: AHCI port 5 behind 00:1f.2
  d = 256;
  b[d + 0] = 0x01 | 0x02 | 0x08;
  b[d + 1] = 1; // AHCI
  b[d + 2] = 0;
  b[d + 3] = (0x1f << 3) | 2;
  b[d + 4] = 5;
  b[d + 6] = 2; // DENY
  b.writeUInt32LE(512, d + 20);
  // drive 3 @304: NVMe namespace 7, 4096-byte blocks
  d = 304;
  b[d + 0] = 0x04 | 0x08 | 0x10; // SERIAL | TRANSPORT | NSID
  b[d + 1] = 2; // NVMe
  b.writeUInt32LE(7, d + 16); // nsid
  b.writeUInt32LE(4096, d + 20);
  b.write("NVME-SN             ", d + 24, "latin1");
  // ranges @352
  let r = 352;
  b.writeBigUInt64LE(0n, r);
  b.writeBigUInt64LE(2048n, r + 8);
  r += 24;
  b.writeBigUInt64LE(0x0102030405060708n, r);
  b.writeBigUInt64LE(0x10n, r + 8);
  b[r + 16] = 2;
  r += 24;
  b.writeBigUInt64LE(4096n, r);
  b.writeBigUInt64LE(0xffffffffn, r + 8);
  b[r + 16] = 1;
  b.writeUInt32LE(crc32(b), 24);
  return b;
}

/** The first two drives of SAMPLE as a version 1 record (struct policy_drive_v1), CRC included. */
function v1SampleBytes(): Buffer {
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
  b.writeUInt32LE(crc32(b), 24);
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

test("the sample policy encodes to exactly the version 2 layout of policy_record.h", () => {
  const got = encodePolicy(SAMPLE);
  const want = expectedSampleBytes();
  // The CRC covers the whole record with the crc32 field as zero.
  assert.equal(got.toString("hex"), want.toString("hex"));
  assert.equal(recordCrc(got), got.readUInt32LE(24));
  assert.equal(recordVersion(got), 2);
});

test("a version 1 record still decodes: its drives are IDE drives of 512-byte blocks", () => {
  const v1 = v1SampleBytes();
  assert.equal(recordVersion(v1), 1);
  const p = decodePolicy(v1);
  assert.deepEqual(p.drives[0].match, SAMPLE.drives[0].match);
  assert.deepEqual(p.drives[0].ranges, [SAMPLE.drives[0].ranges[1], SAMPLE.drives[0].ranges[0]]);
  // a serial-only entry of version 1 names IDE drives only
  assert.deepEqual(p.drives[1], { ...SAMPLE.drives[1], match: { transport: "ide", serial: "QM00002" } });
  assert.equal(p.drives[1].blockSize, undefined);
  const text = formatPolicy(p, { size: v1.length, crc: v1.readUInt32LE(24), version: 1 });
  assert.match(text, /^Parapet policy record v1, 328 bytes/);
  assert.match(text, /drive 0: IDE controller at PCI 12:1f\.3, secondary channel, slave \(channel 1 position 1\)/);
  assert.match(text, /drive 1: any IDE controller, serial number 'QM00002'/);
  // Rewritten as version 2, the same drives.
  const again = decodePolicy(encodePolicy(p));
  assert.deepEqual(again.drives, p.drives);
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
  assert.deepEqual(p.drives.slice(2), SAMPLE.drives.slice(2));
  const text = formatPolicy(p);
  assert.match(text, /drive 1: any controller \(IDE, AHCI or NVMe\), serial number 'QM00002'/);
  assert.match(text, /drive 2: AHCI controller at PCI 00:1f\.2, port 5\n    every sector: deny/);
  assert.match(
    text,
    /drive 3: any NVMe controller, namespace 7, serial number 'NVME-SN'\n    logical block size 4096 bytes: Parapet supports only 512/,
  );
  const json = policyToJson(p, 2) as { version: number; drives: { match: unknown; block_size: number }[] };
  assert.equal(json.version, 2);
  assert.deepEqual(json.drives[0].match, { transport: "ide", pci: "12:1f.3", channel: 1, position: 1 });
  assert.deepEqual(json.drives[2].match, { transport: "ahci", pci: "00:1f.2", port: 5 });
  assert.deepEqual(json.drives[3].match, { transport: "nvme", nsid: 7, serial: "NVME-SN" });
  assert.deepEqual(
    json.drives.map((d) => d.block_size),
    [512, 512, 512, 4096],
  );
  // transport given with the port-like criterion that implies it: the same bytes; decoding leaves it out
  const explicit = { ...SAMPLE, drives: SAMPLE.drives.map((d, i) => (i === 2 ? { ...d, match: { ...d.match, transport: "ahci" as const } } : d)) };
  assert.ok(encodePolicy(explicit).equals(encodePolicy(SAMPLE)));
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

test("the whole-disk policy: the IDE primary master and AHCI port 0, both encrypt with key 0, no ranges", () => {
  const rec = encodePolicy(wholeDiskPolicy(K0));
  assert.equal(rec.length, 32 + 64 + 2 * 48);
  assert.equal(rec.readUInt16LE(8), 2);
  assert.equal(rec.readUInt16LE(16), 1);
  assert.equal(rec.readUInt16LE(18), 2);
  assert.equal(rec.readUInt16LE(20), 0);
  for (const [d, transport] of [
    [96, 0],
    [144, 1],
  ]) {
    // match PORT | TRANSPORT, transport, bus, devfn, port 0, position 0, ENCRYPT, reserved0, key 0
    assert.deepEqual([...rec.subarray(d, d + 10)], [0x0a, transport, 0, 0, 0, 0, 1, 0, 0, 0]);
    assert.equal(rec.readUInt32LE(d + 20), 512);
    assert.ok(rec.subarray(d + 10, d + 20).every((x) => x === 0));
    assert.ok(rec.subarray(d + 24, d + 48).every((x) => x === 0));
  }
  assert.deepEqual(
    decodePolicy(rec).drives.map((d) => d.match),
    [{ port: { channel: 0, position: 0 } }, { ahciPort: 0 }],
  );
  // One drive when told which.
  assert.equal(encodePolicy(wholeDiskPolicy(K0, { ahciPort: 3 })).readUInt16LE(18), 1);
});

/**
 * Applies `mutate` to a valid record (by default the version 1 sample, whose header and v1 drive
 * entries these checks cover), fixes the CRC unless told not to, and expects `re`.
 */
function refused(mutate: (b: Buffer) => Buffer | void, re: RegExp, fixCrc = true, base = v1SampleBytes()): void {
  let b = base;
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
  refused((b) => void b.writeUInt16LE(3, 8), /header\.version \(offset 8\) is 3; this tool reads versions 1 and 2/);
  refused((b) => void b.writeUInt16LE(0, 8), /header\.version \(offset 8\) is 0; this tool reads versions 1 and 2/);
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

test("every malformed key, version 1 drive and range is refused with its field and offset", () => {
  const D0 = 160,
    D1 = 208,
    R0 = 256,
    R1 = 280,
    R2 = 304;
  refused((b) => void b.copy(b, 64, 32, 64), /keys\[0\] \(offset 32\) has two equal 32-byte halves/);
  refused((b) => void K0.copy(b, 96), /keys\[1\] is the same key as keys\[0\]/);
  refused((b) => void (b[D0] = 0x09), /drives\[0\]\.match \(offset 160\) is 0x09: unknown flag bits 0x08 for a version 1 record/);
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
  }, /drives\[1\] matches the same drive as drives\[0\] \(IDE, pci 12:1f\.3, channel 1 position 1\)/);
});

test("every malformed version 2 drive entry is refused with its field and offset", () => {
  const refused2 = (mutate: (b: Buffer) => void, re: RegExp) => refused(mutate, re, true, expectedSampleBytes());
  const D0 = 160,
    D1 = 208,
    D2 = 256,
    D3 = 304;
  refused2((b) => void (b[D0] = 0x2b), /drives\[0\]\.match \(offset 160\) is 0x2b: unknown flag bits 0x20/);
  refused2((b) => void (b[D0] = 0), /drives\[0\]\.match \(offset 160\) is 0: no criterion set/);
  refused2((b) => void (b[D2 + 1] = 3), /drives\[2\]\.transport \(offset 257\) is 3, not a transport \(0 IDE, 1 AHCI, 2 NVMe\)/);
  refused2((b) => void (b[D1 + 1] = 1), /drives\[1\]\.transport \(offset 209\) is 1, must be 0 without POLICY_MATCH_TRANSPORT/);
  refused2((b) => void (b[D0] = 0x03), /drives\[0\]\.match \(offset 160\) has POLICY_MATCH_PORT without POLICY_MATCH_TRANSPORT/);
  refused2((b) => void (b[D0 + 1] = 2), /drives\[0\]\.match \(offset 160\) has POLICY_MATCH_PORT with transport NVMe/);
  refused2((b) => void (b[D0 + 4] = 2), /drives\[0\]\.port \(offset 164\) is 2: an IDE channel is 0 or 1/);
  refused2((b) => void (b[D0 + 5] = 2), /drives\[0\]\.position \(offset 165\) is 2: an IDE position is 0 \(master\) or 1 \(slave\)/);
  refused2((b) => void (b[D2 + 4] = 32), /drives\[2\]\.port \(offset 260\) is 32: an AHCI port is 0-31/);
  refused2((b) => void (b[D2 + 5] = 1), /drives\[2\]\.position \(offset 261\) is 1, must be 0 for AHCI/);
  refused2((b) => void (b[D1 + 4] = 1), /drives\[1\]\.port\/position \(offset 212\) must be 0 without POLICY_MATCH_PORT/);
  refused2((b) => void (b[D1 + 3] = 8), /drives\[1\]\.pci_bus\/pci_devfn \(offset 210\) must be 0 without POLICY_MATCH_PCI/);
  refused2((b) => void (b[D2] |= 0x10), /drives\[2\]\.match \(offset 256\) has POLICY_MATCH_NSID but the transport is not NVMe/);
  refused2((b) => void b.writeUInt32LE(0, D3 + 16), /drives\[3\]\.nsid \(offset 320\) is 0x0: not a namespace id \(1\.\.0xfffffffe\)/);
  refused2((b) => void b.writeUInt32LE(0xffffffff, D3 + 16), /drives\[3\]\.nsid \(offset 320\) is 0xffffffff: not a namespace id/);
  refused2((b) => void b.writeUInt32LE(9, D2 + 16), /drives\[2\]\.nsid \(offset 272\) is 9, must be 0 without POLICY_MATCH_NSID/);
  refused2((b) => void (b[D2 + 30] = 0x41), /drives\[2\]\.serial \(offset 280\) must be zero without POLICY_MATCH_SERIAL/);
  refused2((b) => void (b[D1 + 25] = 0x07), /drives\[1\]\.serial \(offset 232\) holds bytes that are not printable ASCII/);
  refused2(
    (b) => void b.writeUInt32LE(0, D0 + 20),
    /drives\[0\]\.block_size \(offset 180\) is 0: a version 2 entry states the drive's logical block size/,
  );
  for (const n of [256, 513, 768, 3072, 8192]) {
    refused2(
      (b) => void b.writeUInt32LE(n, D0 + 20),
      new RegExp(`drives\\[0\\]\\.block_size \\(offset 180\\) is ${n} is not a power of two in 512\\.\\.4096`),
    );
  }
  refused2((b) => void (b[D0 + 6] = 3), /drives\[0\]\.default_action \(offset 166\) is 3, not an action/);
  refused2((b) => void b.writeUInt16LE(2, D0 + 8), /drives\[0\]\.default_key \(offset 168\) is 2 but the record has 2 keys/);
  refused2((b) => void b.writeUInt16LE(0, D1 + 12), /drives\[1\]\.first_range \(offset 218\) is 2, must be 0 when nranges is 0/);
  refused2((b) => void (b[D0 + 7] = 1), /drives\[0\]\.reserved0 \(offset 167\) is not zero/);
  refused2((b) => void (b[D0 + 15] = 1), /drives\[0\]\.reserved1 \(offset 175\) is not zero/);
  refused2((b) => void (b[D3 + 46] = 1), /drives\[3\]\.reserved2 \(offset 350\) is not zero/);
  refused2((b) => {
    // drive 3 becomes a copy of drive 2's criteria
    b.copy(b, D3, D2, D2 + 6);
    b.fill(0, D3 + 16, D3 + 20);
    b.fill(0, D3 + 24, D3 + 44);
  }, /drives\[3\] matches the same drive as drives\[2\] \(AHCI, pci 00:1f\.2, port 5\)/);
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
  assert.deepEqual(p.drives[2], { match: { ahciPort: 2 }, defaultAction: "deny", defaultKey: 0, ranges: [] });
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
  assert.match(r.stdout, /Parapet policy record v2, 192 bytes, crc32 0x[0-9a-f]{8} \(valid\)/);
  assert.match(r.stdout, /key 0: XTS-AES-256, fingerprint [0-9a-f]{16}/);
  assert.match(r.stdout, /drive 0: any IDE controller, primary channel, master \(channel 0 position 0\)\n    every sector: encrypt with key 0/);
  assert.match(r.stdout, /drive 1: any AHCI controller, port 0\n    every sector: encrypt with key 0/);
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

test("CLI: --whole-disk narrowed by --transport, --port, --channel, --serial; conflicting options refused", async () => {
  const dir = tmp();
  writeKey(dir, "disk.key", K0);
  const drives = async (...args: string[]) => {
    const r = await cli(["policy", "--whole-disk", "--key", "disk.key", "-q", "-o", "w.bin", ...args], dir);
    assert.equal(r.code, 0, r.stderr);
    return decodePolicy(readFileSync(join(dir, "w.bin"))).drives.map((d) => d.match);
  };
  assert.deepEqual(await drives(), [{ port: { channel: 0, position: 0 } }, { ahciPort: 0 }]);
  assert.deepEqual(await drives("--transport", "ide"), [{ port: { channel: 0, position: 0 } }]);
  assert.deepEqual(await drives("--transport", "ahci"), [{ ahciPort: 0 }]);
  assert.deepEqual(await drives("--port", "7"), [{ ahciPort: 7 }]);
  assert.deepEqual(await drives("--transport", "ahci", "--port", "31", "--pci", "00:1f.2"), [{ pci: { bus: 0, dev: 0x1f, fn: 2 }, ahciPort: 31 }]);
  assert.deepEqual(await drives("--channel", "1"), [{ port: { channel: 1, position: 0 } }]);
  assert.deepEqual(await drives("--serial", "QM00001"), [{ serial: "QM00001" }]);
  assert.deepEqual(await drives("--serial", "QM00001", "--transport", "ahci"), [{ transport: "ahci", serial: "QM00001" }]);
  for (const [args, re] of [
    [["--port", "1", "--channel", "0"], /--port names an AHCI port; --channel and --position an IDE drive/],
    [["--transport", "ahci", "--position", "1"], /--channel and --position name an IDE drive; with --transport ahci give --port/],
    [["--transport", "ide", "--port", "1"], /--port names an AHCI port; with --transport ide give --channel and --position/],
    [["--port", "32"], /option '--port <n>' argument '32' is invalid\. expected an integer 0\.\.31/],
    [["--transport", "nvme"], /option '--transport <kind>' argument 'nvme' is invalid/],
  ] as const) {
    const r = await cli(["policy", "--whole-disk", "--key", "disk.key", "-o", "x.bin", ...args], dir);
    assert.equal(r.code, 1, args.join(" "));
    assert.match(r.stderr, re);
  }
  const r = await cli(["policy", "--port", "1", "p.yaml"], dir);
  assert.match(r.stderr, /--port goes with --whole-disk/);
});

test("CLI: policy show decodes a version 1 record (written before version 2) and checks it", async () => {
  const dir = tmp();
  writeFileSync(join(dir, "old.bin"), v1SampleBytes(), { mode: 0o600 });
  let r = await cli(["policy", "show", "old.bin"], dir);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^old\.bin: Parapet policy record v1, 328 bytes, crc32 0x[0-9a-f]{8} \(valid\)$/m);
  assert.match(
    r.stdout,
    /drive 0: IDE controller at PCI 12:1f\.3, secondary channel, slave \(channel 1 position 1\)\n    every other sector: encrypt with key 1/,
  );
  assert.match(r.stdout, /drive 1: any IDE controller, serial number 'QM00002'/);
  r = await cli(["policy", "show", "--json", "old.bin"], dir);
  const j = JSON.parse(r.stdout);
  assert.equal(j.version, 1);
  assert.deepEqual(j.drives[1].match, { transport: "ide", serial: "QM00002" });
  const bad = v1SampleBytes();
  bad[160 + 3] = 2; // v1 channel
  bad.writeUInt32LE(recordCrc(bad), 24);
  writeFileSync(join(dir, "bad.bin"), bad, { mode: 0o600 });
  r = await cli(["policy", "show", "bad.bin"], dir);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /drives\[0\]\.channel \(offset 163\) is 2, must be 0 or 1/);
});

test("the policy file names AHCI drives (transport: ahci, port), NVMe namespaces, and block sizes", async () => {
  const dir = tmp();
  writeKey(dir, "a.key", K0);
  const c = await compilePolicyText(
    [
      "version: 1",
      "keys: {a: a.key}",
      "drives:",
      "  - {match: {transport: ahci, port: 0}, default: encrypt, key: a}",
      '  - {match: {transport: ahci, port: 2, pci: "00:1f.2"}, default: deny}',
      '  - {match: {transport: ahci, serial: "QM00005"}, default: plain}',
      "  - {match: {transport: ide}, default: plain}",
      "  - {match: {transport: nvme, nsid: 1}, block_size: 4096, default: deny}",
      "  - {match: {channel: 0, position: 0}, block_size: 512, default: encrypt, key: a}",
      '  - {match: {serial: "ANY"}, default: plain}',
    ].join("\n"),
    "p.yaml",
    dir,
  );
  assert.deepEqual(
    c.policy.drives.map((d) => [d.match, d.blockSize]),
    [
      [{ ahciPort: 0 }, undefined],
      [{ pci: { bus: 0, dev: 0x1f, fn: 2 }, ahciPort: 2 }, undefined],
      [{ transport: "ahci", serial: "QM00005" }, undefined],
      [{ transport: "ide" }, undefined],
      [{ nsid: 1 }, 4096],
      [{ port: { channel: 0, position: 0 } }, undefined],
      [{ serial: "ANY" }, undefined],
    ],
  );
  assert.deepEqual(c.warnings, [
    "p.yaml: drives[4].block_size: 4096: Parapet protects only drives of 512-byte logical blocks today; a drive this entry names is denied entirely",
  ]);
  const p = decodePolicy(encodePolicy(c.policy));
  assert.deepEqual(
    p.drives.map((d) => d.match),
    c.policy.drives.map((d) => d.match),
  );
  assert.equal(p.drives[4].blockSize, 4096);
});

test("policy file errors for AHCI, NVMe and block sizes name the field", async () => {
  // the schema: types and ranges
  assert.deepEqual(
    await fileErrors(
      [
        "version: 1",
        "drives:",
        "  - {match: {transport: ahci, port: 3}, default: plain}",
        "  - {match: {transport: ahci, port: 32}, default: plain}",
        "  - {match: {transport: ahci, port: 5}, default: plain}",
        "  - {match: {transport: sata}, default: plain}",
        "  - {match: {transport: ahci, port: 6}, default: plain}",
        "  - {match: {transport: ahci, port: 7}, default: plain}",
        "  - {match: {transport: nvme, nsid: 0}, default: plain}",
        "  - {match: {transport: ahci, port: 8}, block_size: 1000, default: plain}",
      ].join("\n"),
    ),
    [
      "p.yaml:4:37: drives[1].match.port: must be an AHCI port number, 0 to 31",
      "p.yaml:6:25: drives[3].match.transport: must be ide, ahci or nvme",
      "p.yaml:9:37: drives[6].match.nsid: must be an NVMe namespace id, 1 to 4294967294",
      "p.yaml:10:53: drives[7].block_size: must be 512, 1024, 2048 or 4096 (the drive's logical block size in bytes)",
    ],
  );
  // the meaning: which transport a criterion belongs to, duplicates
  assert.deepEqual(
    await fileErrors(
      [
        "version: 1",
        "drives:",
        "  - {match: {port: 1}, default: plain}",
        "  - {match: {transport: ahci, channel: 0, position: 0}, default: plain}",
        "  - {match: {transport: ide, port: 1}, default: plain}",
        "  - {match: {nsid: 1}, default: plain}",
        "  - {match: {transport: ahci, port: 4}, default: plain}",
        "  - {match: {transport: ahci, port: 4}, default: deny}",
      ].join("\n"),
    ),
    [
      "p.yaml:3:20: drives[0].match.port: is an AHCI port: give transport: ahci with it (an IDE drive is named by channel and position)",
      "p.yaml:4:25: drives[1].match.transport: is ahci, but channel and position name an IDE drive (an AHCI drive is named by port, an NVMe one by nsid)",
      "p.yaml:5:36: drives[2].match.port: is an AHCI port, but transport is ide",
      "p.yaml:6:20: drives[3].match.nsid: is an NVMe namespace: give transport: nvme with it",
      "p.yaml:8:13: drives[5].match: matches the same drive as drives[4]",
    ],
  );
});
