// The hypervisor's XTS-AES-256 (hv/crypto/, built for the host as build/hv/xts-tool with ASan and
// UBSan) against Node's crypto (OpenSSL's aes-256-xts, one cipher object per 512-byte sector, as
// dm-crypt aes-xts-plain64): every implementation this CPU has, random keys, sector numbers below
// and beyond 2^32 (and across the 2^64 wrap), multi-sector buffers, both directions.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createCipheriv, createDecipheriv, randomBytes, randomInt } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { REPO_ROOT } from "./fixture.ts";

const TOOL = join(REPO_ROOT, "build", "hv", "xts-tool");
const SECTOR = 512;
const U64_MASK = (1n << 64n) - 1n;

type Dir = "encrypt" | "decrypt";

function run(args: string[], input: Buffer = Buffer.alloc(0)) {
  const r = spawnSync(TOOL, args, { input, maxBuffer: 64 << 20 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr.toString() };
}

/** Ours: `xts-tool DIR IMPL KEYHEX SECTOR` over the whole buffer. */
function ours(dir: Dir, impl: string, key: Buffer, sector: bigint, data: Buffer): Buffer {
  const r = run([dir, impl, key.toString("hex"), `0x${sector.toString(16)}`], data);
  assert.equal(r.status, 0, `xts-tool ${dir} ${impl} failed: ${r.stderr}`);
  assert.equal(r.stdout.length, data.length);
  return r.stdout;
}

/** The reference: Node's aes-256-xts, one cipher per sector, IV = sector number, 64-bit LE. */
function reference(dir: Dir, key: Buffer, sector: bigint, data: Buffer): Buffer {
  const out: Buffer[] = [];
  for (let off = 0, s = sector; off < data.length; off += SECTOR, s = (s + 1n) & U64_MASK) {
    const iv = Buffer.alloc(16);
    iv.writeBigUInt64LE(s);
    const c = dir === "encrypt" ? createCipheriv("aes-256-xts", key, iv) : createDecipheriv("aes-256-xts", key, iv);
    out.push(c.update(data.subarray(off, off + SECTOR)), c.final());
  }
  return Buffer.concat(out);
}

/** Random 64-byte key with distinct halves (OpenSSL refuses to encrypt with equal ones). */
function randomKey(): Buffer {
  for (;;) {
    const k = randomBytes(64);
    if (!k.subarray(0, 32).equals(k.subarray(32))) return k;
  }
}

function randomSector(i: number): bigint {
  const r64 = randomBytes(8).readBigUInt64LE();
  switch (i % 5) {
    case 0:
      return BigInt(randomInt(0, 2 ** 32)); // below 2^32
    case 1:
      return r64 | (1n << 40n); // beyond 2^32
    case 2:
      return (1n << 32n) - BigInt(randomInt(1, 4)); // runs across 2^32
    case 3:
      return U64_MASK - BigInt(randomInt(0, 8)); // wraps at 2^64, as plain64
    default:
      return r64;
  }
}

function cpuFlags(): Set<string> {
  const m = /^flags\s*:(.*)$/m.exec(readFileSync("/proc/cpuinfo", "utf8"));
  return new Set((m?.[1] ?? "").trim().split(/\s+/));
}

test("build xts-tool (make -C hv xts-tool)", () => {
  const r = spawnSync("make", ["-s", "-C", join(REPO_ROOT, "hv"), "xts-tool"], { encoding: "utf8" });
  assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
});

function implementations(): { auto: string; available: string[] } {
  const r = run(["list"]);
  assert.equal(r.status, 0, r.stderr);
  const lines = r.stdout.toString().trim().split("\n");
  return { auto: lines[0], available: lines.slice(1) };
}

test("xts-tool lists what this CPU has, and picks the widest", () => {
  const { auto, available } = implementations();
  const flags = cpuFlags();
  const want = ["soft"];
  if (flags.has("aes")) want.push("aesni");
  if (flags.has("aes") && flags.has("vaes") && flags.has("avx2")) want.push("vaes-avx2");
  if (flags.has("aes") && flags.has("vaes") && flags.has("avx512f") && flags.has("avx512bw")) want.push("vaes-avx512");
  assert.deepEqual(available, want);
  assert.equal(auto, want[want.length - 1]);
});

test("IEEE 1619 vector 10 (sector 0xff) through the tool, every implementation", () => {
  const key = Buffer.from(
    "2718281828459045235360287471352662497757247093699959574966967627" + "3141592653589793238462643383279502884197169399375105820974944592",
    "hex",
  );
  const pt = Buffer.alloc(SECTOR, 0).map((_, i) => i & 0xff);
  const head = "1c3b3a102f770386e4836c99e370cf9bea00803f5e482357a4ae12d414a3e63b";
  for (const impl of implementations().available) {
    const ct = ours("encrypt", impl, key, 0xffn, Buffer.from(pt));
    assert.equal(ct.subarray(0, 32).toString("hex"), head, impl);
    assert.deepEqual(ct, reference("encrypt", key, 0xffn, Buffer.from(pt)), impl);
  }
});

test("every implementation equals Node's aes-256-xts (OpenSSL): random keys, sectors, runs", async (t) => {
  const counts = [1, 2, 3, 8, 9, 16, 33];
  for (const impl of implementations().available) {
    await t.test(impl, () => {
      for (let i = 0; i < 14; i++) {
        const key = randomKey();
        const sector = randomSector(i);
        const n = counts[i % counts.length];
        const plain = randomBytes(n * SECTOR);
        const what = `${impl}: sector 0x${sector.toString(16)}, ${n} sector(s)`;
        const ct = ours("encrypt", impl, key, sector, plain);
        assert.ok(ct.equals(reference("encrypt", key, sector, plain)), `${what}: encryption differs from OpenSSL`);
        assert.ok(ours("decrypt", impl, key, sector, ct).equals(plain), `${what}: decryption does not invert`);
        const other = randomBytes(n * SECTOR); // OpenSSL's ciphertext of other data
        assert.ok(
          ours("decrypt", impl, key, sector, reference("encrypt", key, sector, other)).equals(other),
          `${what}: does not decrypt OpenSSL's ciphertext`,
        );
        assert.ok(reference("decrypt", key, sector, ct).equals(plain), `${what}: OpenSSL cannot decrypt ours`);
      }
    });
  }
});

test("xts-tool refuses bad input", () => {
  const key = randomKey().toString("hex");
  assert.equal(run(["encrypt", "soft", key, "1"], Buffer.alloc(100)).status, 2); // not whole sectors
  assert.equal(run(["encrypt", "soft", key.slice(2), "1"], Buffer.alloc(512)).status, 2); // short key
  assert.equal(run(["encrypt", "soft", key.replace(/^../, "zz"), "1"], Buffer.alloc(512)).status, 2);
  assert.equal(run(["encrypt", "soft", key, "-1"], Buffer.alloc(512)).status, 2);
  assert.equal(run(["encrypt", "nonesuch", key, "1"], Buffer.alloc(512)).status, 2);
  assert.equal(run(["frobnicate", "soft", key, "1"], Buffer.alloc(512)).status, 2);
  const missing = ["aesni", "vaes-avx2", "vaes-avx512"].filter((i) => !implementations().available.includes(i));
  for (const impl of missing) assert.equal(run(["encrypt", impl, key, "1"], Buffer.alloc(512)).status, 3);
  // An empty input is zero sectors: nothing out.
  const r = run(["encrypt", "soft", key, "1"]);
  assert.equal(r.status, 0);
  assert.equal(r.stdout.length, 0);
});
