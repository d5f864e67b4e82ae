// Crypto benchmark: the hypervisor's XTS-AES-256 (hv/crypto/) against OpenSSL's EVP aes-256-xts,
// measured in one process on this host by a native C program (bench/crypto/xts_bench.c, built by
// `make -C hv xts-bench`, linked with libcrypto). Run through the CLI:
// `npx parapet bench crypto --help`.
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { REPO_ROOT } from "../src/lib/guestimage.ts";

/** Target for ours / OpenSSL throughput (every unit and direction, the hypervisor's configuration). */
export const TARGET_CRYPTO_RATIO = 1.2;

export const XTS_BENCH = join(REPO_ROOT, "build", "hv", "xts-bench");

export interface BenchCryptoOptions {
  /** Interleaved runs of every variant; the report uses the median (default 7). */
  runs?: number;
  /** Time per variant per run, in ms (default 40). */
  ms?: number;
  /** Buffer walked sector by sector, in KiB (default 64: stays in L2). */
  kib?: number;
  log?: (msg: string) => void;
}

export type SaveMode = "regs" | "xsave" | "none";

export interface CryptoVariant {
  /** "openssl" or one of ours: soft, aesni, vaes-avx2, vaes-avx512. */
  impl: string;
  /** Ours: how the caller's SIMD state is kept (crypto/xts.h); null for OpenSSL. */
  save: SaveMode | null;
  op: "encrypt" | "decrypt";
  /** 512: one call per sector; 4096: one call per 8 consecutive sectors. */
  unitBytes: 512 | 4096;
  medianMBps: number;
  medianTscCyclesPerByte: number;
  /** Every run, MB/s. */
  mbps: number[];
}

export interface CryptoBenchRaw {
  cpu: string;
  openssl: string;
  tscGhz: number;
  runs: number;
  ms: number;
  bufferKiB: number;
  /** What the hypervisor picks on this CPU (crypto/xts.c best()). */
  auto: string;
  results: CryptoVariant[];
}

export interface CryptoRatio {
  unitBytes: 512 | 4096;
  op: "encrypt" | "decrypt";
  oursMBps: number;
  opensslMBps: number;
  ratio: number;
}

export interface BenchCryptoResult extends CryptoBenchRaw {
  date: string;
  /** Ours as the hypervisor runs it (auto choice, save=regs) / OpenSSL, per unit and direction. */
  ratios: CryptoRatio[];
  minRatio: number;
  target: number;
  pass: boolean;
}

/** Builds build/hv/xts-bench (needs libcrypto's headers: libssl-dev, see scripts/setup.sh). */
export function buildCryptoBench(): string {
  const r = spawnSync("make", ["-s", "-C", join(REPO_ROOT, "hv"), "xts-bench"], { encoding: "utf8" });
  if (r.status !== 0) {
    throw new Error(
      `building xts-bench failed (OpenSSL headers missing? apt-get install libssl-dev, or bash scripts/setup.sh):\n` + `${r.stdout}${r.stderr}`,
    );
  }
  return XTS_BENCH;
}

export function ratios(raw: CryptoBenchRaw): CryptoRatio[] {
  const find = (impl: string, save: SaveMode | null, unitBytes: number, op: string) =>
    raw.results.find((v) => v.impl === impl && v.save === save && v.unitBytes === unitBytes && v.op === op);
  const out: CryptoRatio[] = [];
  for (const unitBytes of [512, 4096] as const) {
    for (const op of ["encrypt", "decrypt"] as const) {
      const ours = find(raw.auto, "regs", unitBytes, op);
      const ossl = find("openssl", null, unitBytes, op);
      if (!ours || !ossl) continue;
      out.push({ unitBytes, op, oursMBps: ours.medianMBps, opensslMBps: ossl.medianMBps, ratio: ours.medianMBps / ossl.medianMBps });
    }
  }
  return out;
}

export function benchCrypto(opts: BenchCryptoOptions = {}): BenchCryptoResult {
  const runs = opts.runs ?? 7,
    ms = opts.ms ?? 40,
    kib = opts.kib ?? 64;
  opts.log?.("building build/hv/xts-bench");
  const bin = buildCryptoBench();
  opts.log?.(`measuring: ${runs} runs x ${ms} ms per variant`);
  const r = spawnSync(bin, ["--runs", String(runs), "--ms", String(ms), "--kib", String(kib)], {
    encoding: "utf8",
    maxBuffer: 16 << 20,
  });
  if (r.status !== 0) throw new Error(`xts-bench failed (status ${r.status}):\n${r.stderr}`);
  const raw = JSON.parse(r.stdout) as CryptoBenchRaw;
  const rs = ratios(raw);
  const minRatio = rs.length ? Math.min(...rs.map((x) => x.ratio)) : 0;
  return {
    ...raw,
    date: new Date().toISOString(),
    ratios: rs,
    minRatio,
    target: TARGET_CRYPTO_RATIO,
    pass: rs.length === 4 && minRatio >= TARGET_CRYPTO_RATIO,
  };
}

const SAVE_LABEL: Record<SaveMode, string> = {
  regs: "save=regs (hypervisor default)",
  xsave: "save=xsave (FXSAVE/XSAVE)",
  none: "save=none (host only)",
};

export function formatCryptoReport(r: BenchCryptoResult): string {
  const out: string[] = [];
  out.push("XTS-AES-256, 512-byte sectors: hv/crypto/ against OpenSSL EVP aes-256-xts (IV set + update per sector)");
  out.push(`host: ${r.cpu}, TSC ${r.tscGhz.toFixed(2)} GHz; ${r.openssl}`);
  out.push(`median of ${r.runs} interleaved runs x ${r.ms} ms per variant, ${r.bufferKiB} KiB buffer; hypervisor's choice here: ${r.auto}`);
  out.push("");
  const cell = (v?: CryptoVariant) =>
    v ? `${v.medianMBps.toFixed(0).padStart(6)} MB/s ${v.medianTscCyclesPerByte.toFixed(2).padStart(6)}` : "".padEnd(18);
  out.push(`${"".padEnd(46)}${"512 B: 1 sector per call".padEnd(40)}4 KiB: 8 sectors per call`);
  out.push(`${"MB/s, TSC cycles/byte".padEnd(46)}${"encrypt".padEnd(20)}${"decrypt".padEnd(20)}${"encrypt".padEnd(20)}decrypt`);
  const rows: { impl: string; save: SaveMode | null }[] = [];
  for (const v of r.results) if (!rows.some((x) => x.impl === v.impl && x.save === v.save)) rows.push({ impl: v.impl, save: v.save });
  for (const row of rows) {
    const label = row.save ? `${row.impl.padEnd(12)} ${row.impl === "soft" ? "(no SIMD: nothing to save)" : SAVE_LABEL[row.save]}` : "openssl";
    const cells = ([512, 4096] as const).flatMap((u) =>
      (["encrypt", "decrypt"] as const).map((op) =>
        cell(r.results.find((v) => v.impl === row.impl && v.save === row.save && v.unitBytes === u && v.op === op)),
      ),
    );
    out.push(`${label.padEnd(46)}${cells.join("  ")}`);
  }
  out.push("");
  out.push(`ours = ${r.auto}, save=regs (what the hypervisor runs on this CPU) / OpenSSL, same run:`);
  for (const x of r.ratios) {
    out.push(
      `  ${String(x.unitBytes).padStart(4)} B ${x.op.padEnd(7)}  ${x.oursMBps.toFixed(0).padStart(6)} / ${x.opensslMBps.toFixed(0).padStart(6)} MB/s = ${x.ratio.toFixed(2)}`,
    );
  }
  out.push(`lowest ratio ${r.minRatio.toFixed(2)}  target >= ${r.target.toFixed(2)}: ${r.pass ? "PASS" : "MISS"}`);
  return out.join("\n") + "\n";
}
