// Disk benchmark: fio in the test guest on its IDE disk, in three configurations measured in
// one run: bare QEMU, Parapet mediating the disk without transforming it (drive policy
// 'plain'), and Parapet encrypting the whole disk (XTS-AES-256), on -machine pc. With --iommu
// instead, on q35 with the disk on an added PIIX IDE controller: bare QEMU, Parapet encrypting
// without an IOMMU, and Parapet encrypting with intel-iommu (DMA isolation on). Each
// configuration boots once and runs every job (--repeat times); the report gives bandwidth,
// IOPS, the ratios, under Parapet the VM exits per MiB transferred, by reason, and with --iommu
// the exits the IOMMU adds.
// Run through the CLI: `npx parapet bench disk --help`.
import { existsSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { DEFAULT_IMAGE } from "../src/lib/guestimage.ts";
import { describeFate, QemuSession, HYPERVISOR } from "../src/lib/qemu.ts";
import { BOOT_DISK, type Policy } from "../src/lib/policyrecord.ts";
import { DATA_OFFSET, encryptedImage, newKey, plainImage, wholeDisk, WORK_DIR as TMP, writePolicy } from "../src/lib/guestdisk.ts";
import { EXIT_REASONS, median, parseExits } from "./boot.ts";
import { hostDescription, qemuVersion } from "./common.ts";

const MiB = 1024 * 1024;

/** One fio job: a fixed access pattern on the benchmark region. */
export interface DiskJob {
  name: string;
  rw: "read" | "write" | "randread" | "randwrite";
  /** Block size in bytes: with hugepage buffers each I/O is one ATA command of this size. */
  bs: number;
  /** Commands in flight (default 1, psync); above 1 fio uses libaio (AHCI: NCQ). */
  iodepth?: number;
}

/** The jobs, in the order they run. 4 MiB is above Parapet's 1 MiB shadow buffer: it splits them. */
export const JOBS: readonly DiskJob[] = [
  { name: "seq-read-1M", rw: "read", bs: MiB },
  { name: "seq-write-1M", rw: "write", bs: MiB },
  { name: "seq-read-4M", rw: "read", bs: 4 * MiB },
  { name: "seq-write-4M", rw: "write", bs: 4 * MiB },
  { name: "rand-read-4k", rw: "randread", bs: 4096 },
  { name: "rand-write-4k", rw: "randwrite", bs: 4096 },
];

/** The --ahci jobs: sequential 1 MiB and random 4 KiB, at queue depth 1 and 32 (NCQ). */
export const AHCI_JOBS: readonly DiskJob[] = [
  { name: "seq-read-1M", rw: "read", bs: MiB },
  { name: "seq-write-1M", rw: "write", bs: MiB },
  { name: "rand-read-4k", rw: "randread", bs: 4096 },
  { name: "rand-write-4k", rw: "randwrite", bs: 4096 },
  { name: "seq-read-1M-qd32", rw: "read", bs: MiB, iodepth: 32 },
  { name: "seq-write-1M-qd32", rw: "write", bs: MiB, iodepth: 32 },
  { name: "rand-read-4k-qd32", rw: "randread", bs: 4096, iodepth: 32 },
  { name: "rand-write-4k-qd32", rw: "randwrite", bs: 4096, iodepth: 32 },
];

export const CONFIGS = ["bare", "pass", "encrypt", "q35-bare", "no-iommu", "iommu", "ahci-bare", "ahci-pass", "ahci-encrypt"] as const;
export type ConfigName = (typeof CONFIGS)[number];
/** The configurations of one run, in the order they boot: by default, and with --iommu. */
export const DEFAULT_CONFIGS: readonly ConfigName[] = ["bare", "pass", "encrypt"];
export const IOMMU_CONFIGS: readonly ConfigName[] = ["q35-bare", "no-iommu", "iommu"];
export const AHCI_CONFIGS: readonly ConfigName[] = ["ahci-bare", "ahci-pass", "ahci-encrypt"];

export const CONFIG_TITLES: Record<ConfigName, string> = {
  bare: "bare QEMU, no Parapet, plain image",
  pass: "Parapet, drive policy 'plain': mediated, not transformed",
  encrypt: "Parapet, whole disk encrypted (XTS-AES-256)",
  "q35-bare": "bare QEMU q35, no Parapet, plain image",
  "no-iommu": "Parapet on q35 without an IOMMU, whole disk encrypted (record allows no IOMMU)",
  iommu: "Parapet on q35 with intel-iommu (DMA isolation on), whole disk encrypted, same record",
  "ahci-bare": "bare QEMU q35, disk on the ICH9 AHCI port 0, plain image",
  "ahci-pass": "Parapet on q35 (intel-iommu), AHCI port 0, drive policy 'plain': mediated, not transformed",
  "ahci-encrypt": "Parapet on q35 (intel-iommu), AHCI port 0, whole disk encrypted (XTS-AES-256)",
};

/** How a configuration boots: QEMU machine, emulated IOMMU, which image copy and policy record (none: bare). */
const CONFIG_SETUP: Record<ConfigName, { machine: "pc" | "q35"; iommu?: "intel"; ahci?: boolean; image: "plain" | "enc"; policy?: "pass" | "enc" }> =
  {
    bare: { machine: "pc", image: "plain" },
    pass: { machine: "pc", image: "plain", policy: "pass" },
    encrypt: { machine: "pc", image: "enc", policy: "enc" },
    "q35-bare": { machine: "q35", image: "plain" },
    "no-iommu": { machine: "q35", image: "enc", policy: "enc" },
    iommu: { machine: "q35", iommu: "intel", image: "enc", policy: "enc" },
    // The records name the boot disk whatever its transport (IDE primary master, AHCI port 0).
    "ahci-bare": { machine: "q35", ahci: true, image: "plain" },
    "ahci-pass": { machine: "q35", iommu: "intel", ahci: true, image: "plain", policy: "pass" },
    "ahci-encrypt": { machine: "q35", iommu: "intel", ahci: true, image: "enc", policy: "enc" },
  };

/** The MiB/s ratios reported per job: numerator, denominator, column heading. */
const RATIOS: readonly [ConfigName, ConfigName, string][] = [
  ["pass", "bare", "pass/bare"],
  ["encrypt", "bare", "enc/bare"],
  ["no-iommu", "q35-bare", "no-iommu/bare"],
  ["iommu", "q35-bare", "iommu/bare"],
  ["iommu", "no-iommu", "iommu/no-iommu"],
  ["ahci-pass", "ahci-bare", "pass/bare"],
  ["ahci-encrypt", "ahci-bare", "enc/bare"],
];

/** Largest ATA command Linux may issue (its default, 1280 KiB, would split the 4 MiB jobs itself). */
const MAX_SECTORS_KB = 4096;
/** 2 MiB hugepages for fio's buffers: physically contiguous, so one I/O is one command. */
const HUGEPAGES_QD1 = 8;
/** With the QD32 jobs fio holds 32 blocks in flight: 32 MiB of buffers for 1 MiB blocks, plus slack. */
const HUGEPAGES_QD32 = 20;

export interface BenchDiskOptions {
  /** Seconds per fio job (default 10). */
  runtimeSec?: number;
  /** Bytes of the data partition the jobs use, from its start (default 16 MiB). */
  sizeBytes?: number;
  /** Rounds of all jobs in each boot; figures are medians (default 1). */
  repeat?: number;
  /** Names of the jobs to run (default all of JOBS). */
  jobs?: string[];
  memory?: string;
  /** Limit for reaching the guest shell, in seconds (default 300). */
  bootTimeoutSec?: number;
  /** Keep the image copies and policy records (in build/test) afterwards. */
  keep?: boolean;
  /** The q35 configurations (IOMMU_CONFIGS) instead of the pc ones (DEFAULT_CONFIGS). */
  iommu?: boolean;
  /** The AHCI configurations (AHCI_CONFIGS) and jobs (AHCI_JOBS: QD1 and QD32) instead. */
  ahci?: boolean;
  /** Progress; default silent. */
  log?: (msg: string) => void;
}

export interface JobRun {
  config: ConfigName;
  job: string;
  /** 1-based round within the configuration's boot. */
  round: number;
  /** Bandwidth and IOPS as fio reports them (read plus write). */
  mibps: number;
  iops: number;
  /** Data moved and fio's runtime. */
  ioMiB: number;
  runtimeMs: number;
  /** ATA commands completed on /dev/sda during the job, and their mean size (/sys/block/sda/stat). */
  ataCmds: number;
  cmdKiB: number;
  /** Parapet only: VM exits during the job, by reason name, and their total. */
  exits?: Record<string, number>;
  exitsTotal?: number;
}

export interface ConfigInfo {
  /** QEMU's machine, with the emulated IOMMU if any, and where the disk is. */
  machine: string;
  /** The guest's transfer mode (e.g. XFER_MW_DMA_2). */
  xferMode: string;
  /** Seconds from QEMU start to the shell. */
  bootSec: number;
  /** Parapet's log lines about the IDE controller. */
  ataLog?: string[];
  /** q35 under Parapet: its log lines about the IOMMU (the first 10). */
  iommuLog?: string[];
}

export interface JobSummary {
  job: string;
  bs: number;
  rw: DiskJob["rw"];
  /** Medians over the rounds, per configuration (absent when the configuration did not run). */
  mibps: Partial<Record<ConfigName, number>>;
  iops: Partial<Record<ConfigName, number>>;
  cmdKiB: Partial<Record<ConfigName, number>>;
  /** Median MiB/s of the configuration / median MiB/s bare (the same as ratios["pass/bare"], ratios["encrypt/bare"]). */
  passRatio?: number;
  encryptRatio?: number;
  /** Median MiB/s of one configuration / another's, keyed "numerator/denominator" by config name (RATIOS). */
  ratios: Record<string, number>;
  /** Parapet configurations: median exits per MiB, by reason, and in total; exits per ATA command. */
  exitsPerMiB: Partial<Record<ConfigName, Record<string, number>>>;
  exitsPerMiBTotal: Partial<Record<ConfigName, number>>;
  exitsPerCmd: Partial<Record<ConfigName, number>>;
  /** With --iommu: exits of 'iommu' minus those of 'no-iommu' (medians), per MiB and per ATA command, by reason and in total. */
  iommuExtraExits?: { perMiB: Record<string, number>; perMiBTotal: number; perCmd: Record<string, number>; perCmdTotal: number };
}

export interface BenchDiskResult {
  config: {
    runtimeSec: number;
    sizeBytes: number;
    offsetBytes: number;
    repeat: number;
    jobs: DiskJob[];
    /** The configurations of this run, in boot order (DEFAULT_CONFIGS, or IOMMU_CONFIGS with --iommu). */
    configNames: ConfigName[];
    iommu: boolean;
    machine: string;
    memory: string;
    qemu: string;
    host: string;
    /** Host 1-minute load average at the start and at the end (other work skews the figures). */
    loadAvgStart: number;
    loadAvgEnd?: number;
    date: string;
  };
  configs: Partial<Record<ConfigName, ConfigInfo>>;
  runs: JobRun[];
  summary: JobSummary[];
  /** Set when something failed; runs and summary hold what was measured before. */
  error?: string;
}

/** The policy of the pass-through configuration: the boot disk (IDE primary master, AHCI port 0)
 * named, nothing transformed. */
export function plainPolicy(key: Uint8Array): Policy {
  return { keys: [key], drives: BOOT_DISK.map((match) => ({ match, defaultAction: "plain" as const, defaultKey: 0, ranges: [] })) };
}

/** The fio command line of a job (JSON to `out`, no progress on the console). */
export function fioCommand(job: DiskJob, o: { runtimeSec: number; sizeBytes: number }, out: string): string {
  return [
    "fio",
    `--name=${job.name}`,
    "--filename=/dev/sda",
    `--offset=${DATA_OFFSET}`,
    `--size=${o.sizeBytes}`,
    `--rw=${job.rw}`,
    `--bs=${job.bs}`,
    "--direct=1",
    `--ioengine=${(job.iodepth ?? 1) > 1 ? "libaio" : "psync"}`,
    `--iodepth=${job.iodepth ?? 1}`,
    "--numjobs=1",
    "--mem=shmhuge",
    "--time_based",
    `--runtime=${o.runtimeSec}`,
    "--randrepeat=1",
    "--eta=never",
    "--output-format=json",
    `--output=${out}`,
  ].join(" ");
}

interface FioFigures {
  mibps: number;
  iops: number;
  ioMiB: number;
  runtimeMs: number;
}

/** Bandwidth, IOPS and volume of fio's JSON report (one job; read and write added up). */
export function parseFio(text: string): FioFigures {
  const a = text.indexOf("{"),
    b = text.lastIndexOf("}");
  if (a < 0 || b < a) throw new Error(`no JSON in fio's output:\n${text.slice(0, 1500)}`);
  let doc: unknown;
  try {
    doc = JSON.parse(text.slice(a, b + 1));
  } catch (err) {
    throw new Error(`fio's JSON does not parse (${(err as Error).message}):\n${text.slice(0, 1500)}`);
  }
  const job = (doc as { jobs?: Array<Record<string, unknown>> }).jobs?.[0];
  if (!job) throw new Error("fio's JSON has no job");
  if (job.error) throw new Error(`fio reports error ${String(job.error)}`);
  let bw = 0,
    iops = 0,
    bytes = 0,
    runtimeMs = 0;
  for (const dir of ["read", "write"]) {
    const d = job[dir] as { io_bytes?: number; bw_bytes?: number; iops?: number; runtime?: number } | undefined;
    if (!d) continue;
    bw += d.bw_bytes ?? 0;
    iops += d.iops ?? 0;
    bytes += d.io_bytes ?? 0;
    runtimeMs = Math.max(runtimeMs, d.runtime ?? 0);
  }
  if (bytes === 0) throw new Error("fio moved no data");
  return { mibps: bw / MiB, iops, ioMiB: bytes / MiB, runtimeMs };
}

/** /sys/block/DEV/stat: I/Os completed and sectors moved (reads plus writes). */
export function parseBlockStat(text: string): { ios: number; sectors: number } {
  const f = text.trim().split(/\s+/).map(Number);
  if (f.length < 7 || f.some((n) => !Number.isFinite(n))) throw new Error(`unexpected /sys/block/sda/stat: ${text}`);
  return { ios: f[0] + f[4], sectors: f[2] + f[6] };
}

const GUEST_DIR = "/tmp/bd";

/** Output of a guest command, taken after a marker the shell prints first: a prompt that arrives
 * late from the previous command can then never be mistaken for output. */
async function guestOutput(s: QemuSession, cmd: string, timeoutMs = 60_000): Promise<string> {
  const out = await s.sh(`echo PARAPET""BENCH""OUT; ${cmd}`, timeoutMs);
  const m = /PARAPETBENCHOUT(?:\n|$)/.exec(out);
  if (!m) throw new Error(`no output marker in the guest's answer to ${cmd}:\n${out.slice(0, 1500)}`);
  return out.slice(m.index + m[0].length);
}

/** Exit counts of two readings of /proc/parapet/exits: later minus earlier, by reason. */
export function exitsDelta(before: string, after: string): { exits: Record<string, number>; total: number } {
  const e0 = parseExits(before),
    e1 = parseExits(after);
  const names = Object.keys(e1.exits);
  if (names.length !== Object.keys(e0.exits).length || names.some((n) => e0.exits[n] === undefined)) {
    throw new Error(`the two readings of /proc/parapet/exits differ in their reasons:\n${before}\n---\n${after}`);
  }
  const exits: Record<string, number> = {};
  for (const n of names) {
    exits[n] = e1.exits[n] - e0.exits[n];
    if (exits[n] < 0) throw new Error(`exit count of ${n} went down:\n${before}\n---\n${after}`);
  }
  return { exits, total: e1.total - e0.total };
}

interface Session {
  config: ConfigName;
  image: string;
  policy?: string;
}

type RunSettings = Required<Omit<BenchDiskOptions, "log" | "jobs" | "keep" | "iommu" | "ahci">>;

/** Under Parapet: its log must say the disk is mediated, and on q35 whether DMA isolation is on. */
async function checkParapet(s: QemuSession, setup: (typeof CONFIG_SETUP)[ConfigName], info: ConfigInfo): Promise<void> {
  const hv = s.hvLog();
  info.ataLog = hv
    .split("\n")
    .filter((l) => /(ata|ahci): /.test(l))
    .map((l) => l.trim());
  const named = setup.ahci ? /ahci: .*port 0: .*protected by the policy/ : /ata: .*ch0 master: .*protected by the policy/;
  if (!named.test(hv) || !(setup.ahci ? /ahci: .*mediated/ : /ata: .*mediated/).test(hv)) {
    throw new Error(`Parapet does not mediate the disk (no 'protected by the policy' / 'mediated' in its log)`);
  }
  if (setup.machine === "q35") {
    info.iommuLog = hv
      .split("\n")
      .filter((l) => /iommu: /.test(l))
      .map((l) => l.trim())
      .slice(0, 10);
    const want = setup.iommu ? "ON" : "OFF";
    if (!new RegExp(`iommu: .*DMA isolation ${want}`).test(hv)) throw new Error(`Parapet's log does not say 'DMA isolation ${want}'`);
  }
  parseExits(await guestOutput(s, "cat /proc/parapet/exits"));
}

/** The guest's disk: its transfer mode, room for the region, huge pages and request size for fio. */
async function prepareGuest(s: QemuSession, o: RunSettings, info: ConfigInfo, deep = false): Promise<void> {
  const HUGEPAGES = deep ? HUGEPAGES_QD32 : HUGEPAGES_QD1;
  // The ATA port of sda: 1 on pc; on q35 the AHCI ports come first.
  info.xferMode = (await guestOutput(s, `p=$(readlink -f /sys/block/sda); p=\${p#*/ata}; cat /sys/class/ata_device/dev\${p%%/*}.0/xfer_mode`)).trim();
  const sectors = Number((await guestOutput(s, "cat /sys/block/sda/size")).trim());
  if (!(sectors * 512 >= DATA_OFFSET + o.sizeBytes)) {
    throw new Error(`/dev/sda has ${sectors} sectors in the guest, fewer than the region needs (${DATA_OFFSET + o.sizeBytes} bytes)`);
  }
  await s.sh(`echo ${HUGEPAGES} > /proc/sys/vm/nr_hugepages && [ "$(awk '/HugePages_Free/ {print $2}' /proc/meminfo)" -ge ${HUGEPAGES} ]`);
  // At most what the controller's driver takes (ahci's limit is below ata_piix's).
  const q = "/sys/block/sda/queue";
  await s.sh(
    `m=$(cat ${q}/max_hw_sectors_kb); [ "$m" -lt ${MAX_SECTORS_KB} ] || m=${MAX_SECTORS_KB}; echo $m > ${q}/max_sectors_kb && mkdir -p ${GUEST_DIR}`,
  );
}

/** One fio job in the guest, with the block and (under Parapet) exit counters right around it. */
async function runJob(s: QemuSession, config: ConfigName, job: DiskJob, round: number, o: RunSettings, parapet: boolean): Promise<JobRun> {
  const d = GUEST_DIR;
  // Counters right before and after fio, in one command line: nothing else runs in between.
  const snap = (n: number) => (parapet ? `cat /proc/parapet/exits > ${d}/e${n}; ` : "") + `cat /sys/block/sda/stat > ${d}/s${n}`;
  const r = await s.exec(
    `rm -f ${d}/*; ${snap(0)}; ${fioCommand(job, o, `${d}/fio.json`)} 2> ${d}/fio.err; r=$?; ${snap(1)}; [ $r -eq 0 ]`,
    (o.runtimeSec + 180) * 1000,
  );
  if (r.status !== 0) {
    const err = await s.exec(`cat ${d}/fio.err ${d}/fio.json 2>/dev/null | head -c 2000`);
    throw new Error(`fio ${job.name} failed in the guest:\n${err.out || r.out}`);
  }
  const fio = parseFio(await guestOutput(s, `cat ${d}/fio.json`));
  const st0 = parseBlockStat(await guestOutput(s, `cat ${d}/s0`));
  const st1 = parseBlockStat(await guestOutput(s, `cat ${d}/s1`));
  const ataCmds = st1.ios - st0.ios;
  const run: JobRun = {
    config,
    job: job.name,
    round,
    ...fio,
    ataCmds,
    cmdKiB: ataCmds > 0 ? ((st1.sectors - st0.sectors) * 512) / 1024 / ataCmds : 0,
  };
  if (parapet) {
    const delta = exitsDelta(await guestOutput(s, `cat ${d}/e0`), await guestOutput(s, `cat ${d}/e1`));
    run.exits = delta.exits;
    run.exitsTotal = delta.total;
  }
  return run;
}

/** Boots one configuration, runs every round of every job, powers off. Runs go to `runs` as they finish. */
async function runConfig(
  sess: Session,
  jobs: readonly DiskJob[],
  o: RunSettings,
  dir: string,
  runs: JobRun[],
  setCurrent: (s: QemuSession | undefined) => void,
  log: (m: string) => void,
): Promise<ConfigInfo> {
  const setup = CONFIG_SETUP[sess.config];
  const parapet = setup.policy !== undefined;
  const q35 = setup.machine === "q35";
  const s = new QemuSession({
    disk: sess.image,
    parapet,
    modules: sess.policy ? [sess.policy] : undefined,
    hvLog: join(dir, `hv-${sess.config}.log`),
    memory: o.memory,
    cpus: 1,
    machine: setup.machine,
    iommu: setup.iommu,
    piixIde: q35 && !setup.ahci,
    ahci: setup.ahci,
    snapshot: false,
  });
  setCurrent(s);
  try {
    await s.ready(o.bootTimeoutSec * 1000);
    const info: ConfigInfo = {
      machine:
        setup.machine +
        (setup.iommu ? ` + ${setup.iommu}-iommu` : "") +
        (setup.ahci ? ", disk on ICH9 AHCI port 0" : q35 ? ", disk on PIIX3 IDE" : ""),
      xferMode: "",
      bootSec: (Date.now() - s.started) / 1000,
    };
    if (parapet) await checkParapet(s, setup, info);
    await prepareGuest(
      s,
      o,
      info,
      jobs.some((j) => (j.iodepth ?? 1) > 1),
    );
    log(`${sess.config}: guest up after ${info.bootSec.toFixed(1)} s, ${info.xferMode}`);
    for (let round = 1; round <= o.repeat; round++) {
      for (const job of jobs) {
        const run = await runJob(s, sess.config, job, round, o, parapet);
        runs.push(run);
        log(
          `${sess.config}: ${job.name}${o.repeat > 1 ? ` (round ${round})` : ""}: ${run.mibps.toFixed(1)} MiB/s, ` +
            `${Math.round(run.iops)} IOPS, ${run.cmdKiB.toFixed(0)} KiB/cmd` +
            (run.exitsTotal !== undefined ? `, ${(run.exitsTotal / run.ioMiB).toFixed(1)} exits/MiB` : ""),
        );
      }
    }
    const fate = await s.poweroff(60_000);
    if (fate.kind !== "poweroff") throw new Error(`at power off: ${describeFate(fate)}`);
    return info;
  } catch (err) {
    s.kill();
    const fate = await s.fate(10_000);
    const why = fate.kind === "panic" || fate.kind === "error" ? describeFate(fate) : err instanceof Error ? err.message : String(err);
    const hvTail = parapet ? `\nhypervisor log tail:\n${s.hvLog().slice(-1500)}` : "";
    throw new Error(`${sess.config}: ${why}${hvTail}`);
  } finally {
    s.kill();
    setCurrent(undefined);
  }
}

/** Medians per job and configuration, ratios against bare, exits per MiB. */
export function summarize(jobs: readonly DiskJob[], runs: readonly JobRun[]): JobSummary[] {
  const out: JobSummary[] = [];
  for (const job of jobs) {
    const js: JobSummary = {
      job: job.name,
      bs: job.bs,
      rw: job.rw,
      mibps: {},
      iops: {},
      cmdKiB: {},
      ratios: {},
      exitsPerMiB: {},
      exitsPerMiBTotal: {},
      exitsPerCmd: {},
    };
    for (const c of CONFIGS) {
      const rs = runs.filter((r) => r.job === job.name && r.config === c);
      if (rs.length === 0) continue;
      js.mibps[c] = median(rs.map((r) => r.mibps));
      js.iops[c] = median(rs.map((r) => r.iops));
      js.cmdKiB[c] = median(rs.map((r) => r.cmdKiB));
      if (rs.every((r) => r.exits)) {
        const names = [...new Set(rs.flatMap((r) => Object.keys(r.exits!)))];
        const per: Record<string, number> = {};
        for (const n of names) per[n] = median(rs.map((r) => (r.exits![n] ?? 0) / r.ioMiB));
        js.exitsPerMiB[c] = per;
        js.exitsPerMiBTotal[c] = median(rs.map((r) => r.exitsTotal! / r.ioMiB));
        js.exitsPerCmd[c] = median(rs.map((r) => (r.ataCmds > 0 ? r.exitsTotal! / r.ataCmds : NaN)));
      }
    }
    const bare = js.mibps.bare;
    if (bare) {
      if (js.mibps.pass !== undefined) js.passRatio = js.mibps.pass / bare;
      if (js.mibps.encrypt !== undefined) js.encryptRatio = js.mibps.encrypt / bare;
    }
    for (const [a, b] of RATIOS) {
      const x = js.mibps[a],
        y = js.mibps[b];
      if (x !== undefined && y) js.ratios[`${a}/${b}`] = x / y;
    }
    const [on, off] = [js.exitsPerMiB.iommu, js.exitsPerMiB["no-iommu"]];
    if (on && off) {
      const names = [...new Set([...Object.keys(on), ...Object.keys(off)])];
      const perCmd = (c: ConfigName, n: string) =>
        median(runs.filter((r) => r.job === job.name && r.config === c).map((r) => (r.exits![n] ?? 0) / r.ataCmds));
      js.iommuExtraExits = {
        perMiB: Object.fromEntries(names.map((n) => [n, (on[n] ?? 0) - (off[n] ?? 0)])),
        perMiBTotal: js.exitsPerMiBTotal.iommu! - js.exitsPerMiBTotal["no-iommu"]!,
        perCmd: Object.fromEntries(names.map((n) => [n, perCmd("iommu", n) - perCmd("no-iommu", n)])),
        perCmdTotal: js.exitsPerCmd.iommu! - js.exitsPerCmd["no-iommu"]!,
      };
    }
    out.push(js);
  }
  return out;
}

/** Runs the three configurations one after the other; never throws for a failed boot or job (see `error`). */
/** The options with their defaults, checked; the jobs to run. */
function settings(opts: BenchDiskOptions): { o: RunSettings; jobs: DiskJob[] } {
  const o = {
    runtimeSec: opts.runtimeSec ?? 10,
    sizeBytes: opts.sizeBytes ?? 16 * MiB,
    repeat: opts.repeat ?? 1,
    memory: opts.memory ?? "512M",
    bootTimeoutSec: opts.bootTimeoutSec ?? 300,
  };
  if (!Number.isInteger(o.runtimeSec) || o.runtimeSec < 1) throw new Error(`runtime ${o.runtimeSec}: expected a positive whole number of seconds`);
  if (!Number.isInteger(o.repeat) || o.repeat < 1) throw new Error(`repeat ${o.repeat}: expected a positive integer`);
  const all = opts.ahci ? AHCI_JOBS : JOBS;
  let jobs: DiskJob[] = [...all];
  if (opts.jobs?.length) {
    const unknown = opts.jobs.filter((n) => !all.some((j) => j.name === n));
    if (unknown.length) throw new Error(`unknown job(s) ${unknown.join(", ")}; the jobs are ${all.map((j) => j.name).join(", ")}`);
    jobs = all.filter((j) => opts.jobs!.includes(j.name));
  }
  const largest = Math.max(...jobs.map((j) => j.bs));
  if (o.sizeBytes < largest || o.sizeBytes % largest !== 0) {
    throw new Error(`size ${o.sizeBytes} bytes: expected a multiple of ${largest / MiB} MiB (the largest block size)`);
  }
  if (!existsSync(HYPERVISOR)) throw new Error(`${HYPERVISOR} is missing: run make first`);
  if (!existsSync(DEFAULT_IMAGE)) throw new Error(`${DEFAULT_IMAGE} is missing: build the test guest with npx parapet image`);
  const imageBytes = statSync(DEFAULT_IMAGE).size;
  if (DATA_OFFSET + o.sizeBytes > imageBytes) {
    throw new Error(
      `size ${o.sizeBytes / MiB} MiB does not fit the data partition of ${DEFAULT_IMAGE} ` +
        `(${(imageBytes - DATA_OFFSET) / MiB} MiB from offset ${DATA_OFFSET / MiB} MiB)`,
    );
  }
  return { o, jobs };
}

/** The copies of the guest image and the records every configuration boots with. */
async function prepareSessions(configNames: ConfigName[]): Promise<Session[]> {
  const key = newKey();
  const plain = await plainImage("bench-disk-plain.img");
  const encrypted = await encryptedImage("bench-disk-enc.img", key);
  const passPolicy = await writePolicy("bench-disk-plain.pol", plainPolicy(key));
  const encPolicy = await writePolicy("bench-disk-enc.pol", wholeDisk(key));
  const images = { plain, enc: encrypted },
    policies = { pass: passPolicy, enc: encPolicy };
  return configNames.map((config) => {
    const setup = CONFIG_SETUP[config];
    return { config, image: images[setup.image], policy: setup.policy && policies[setup.policy] };
  });
}

export async function benchDisk(opts: BenchDiskOptions = {}): Promise<BenchDiskResult> {
  const { o, jobs } = settings(opts);
  if (opts.iommu && opts.ahci) throw new Error("--iommu and --ahci are two different sets of configurations: one at a time");
  const configNames = [...(opts.ahci ? AHCI_CONFIGS : opts.iommu ? IOMMU_CONFIGS : DEFAULT_CONFIGS)];
  const log = opts.log ?? (() => {});
  const result: BenchDiskResult = {
    config: {
      runtimeSec: o.runtimeSec,
      sizeBytes: o.sizeBytes,
      offsetBytes: DATA_OFFSET,
      repeat: o.repeat,
      jobs,
      configNames,
      iommu: !!opts.iommu,
      machine: opts.iommu ? "q35" : "pc",
      memory: o.memory,
      qemu: qemuVersion(),
      host: hostDescription(),
      loadAvgStart: loadavg()[0],
      date: new Date().toISOString(),
    },
    configs: {},
    runs: [],
    summary: [],
  };

  const dir = mkdtempSync(join(tmpdir(), "parapet-bench-disk-"));
  const files = ["bench-disk-plain.img", "bench-disk-enc.img", "bench-disk-plain.pol", "bench-disk-enc.pol"].map((f) => join(TMP, f));
  const cleanup = () => {
    rmSync(dir, { recursive: true, force: true });
    if (!opts.keep) for (const f of files) rmSync(f, { force: true });
  };
  // Ctrl-C or a kill: stop QEMU and remove the copies before leaving.
  let current: QemuSession | undefined;
  const onSignal = (sig: NodeJS.Signals) => {
    current?.kill();
    cleanup();
    process.stderr.write(`bench: ${sig}, stopped\n`);
    process.exit(sig === "SIGINT" ? 130 : 143);
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  try {
    log("preparing a plain copy and an encrypted copy of the test guest image …");
    for (const sess of await prepareSessions(configNames)) {
      log(`${sess.config}: booting (${CONFIG_TITLES[sess.config]}) …`);
      result.configs[sess.config] = await runConfig(sess, jobs, o, dir, result.runs, (s) => (current = s), log);
    }
  } catch (err) {
    result.error = err instanceof Error ? err.message : String(err);
  } finally {
    current?.kill();
    process.removeListener("SIGINT", onSignal);
    process.removeListener("SIGTERM", onSignal);
    cleanup();
  }
  result.config.loadAvgEnd = loadavg()[0];
  result.summary = summarize(jobs, result.runs);
  return result;
}

// ---- report ----

const fmtBw = (x: number | undefined) => (x === undefined ? "-" : x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2));
const fmtInt = (x: number | undefined) => (x === undefined ? "-" : String(Math.round(x)));
const fmtRatio = (x: number | undefined) => (x === undefined ? "-" : x.toFixed(3));
const fmtExits = (x: number | undefined) => (x === undefined ? "-" : x === 0 ? "0" : x >= 100 ? x.toFixed(0) : x >= 1 ? x.toFixed(1) : x.toFixed(3));
const fmtBs = (bs: number) => (bs >= MiB ? `${bs / MiB}M` : `${bs / 1024}k`);

function table(head: string[][], rows: string[][], leftCols = 1): string[] {
  const all = [...head, ...rows];
  const width = all[0].map((_, i) => Math.max(...all.map((r) => (r[i] ?? "").length)));
  return all.map((r) =>
    r
      .map((c, i) => (i < leftCols ? c.padEnd(width[i]) : c.padStart(width[i])))
      .join("  ")
      .trimEnd(),
  );
}

/** The human-readable report. */
/** What was measured and on what: the settings, the host, one line per configuration. */
function reportHeader(r: BenchDiskResult): string[] {
  const c = r.config;
  const out: string[] = [];
  out.push(
    `Disk benchmark: fio on /dev/sda from ${c.offsetBytes / MiB} MiB (the data partition), ${c.sizeBytes / MiB} MiB region, ` +
      `O_DIRECT, psync, iodepth 1, hugepage buffers, ${c.runtimeSec} s per job, ${c.repeat} round(s) per boot` +
      (c.repeat > 1 ? " (medians)" : ""),
  );
  out.push(
    `-machine ${c.machine} -smp 1 -m ${c.memory}, TCG` +
      (c.machine === "q35" ? ", disk on an added PIIX3 IDE controller" : "") +
      `; ${c.qemu}; host: ${c.host}`,
  );
  out.push(`host load average ${c.loadAvgStart.toFixed(2)} at start` + (c.loadAvgEnd !== undefined ? `, ${c.loadAvgEnd.toFixed(2)} at end` : ""));
  const w = Math.max(8, ...c.configNames.map((n) => n.length + 1));
  for (const name of c.configNames) {
    const info = r.configs[name];
    out.push(`  ${name.padEnd(w)} ${CONFIG_TITLES[name]}` + (info ? `; guest ${info.xferMode}, shell after ${info.bootSec.toFixed(1)} s` : ""));
  }
  return out;
}

/** MiB/s and IOPS per job and configuration, the ratios, KiB per ATA command. */
function throughputTable(r: BenchDiskResult): string[] {
  const names = r.config.configNames;
  const ratios = RATIOS.filter(([a, b]) => names.includes(a) && names.includes(b));
  const pad = (n: number) => Array<string>(Math.max(0, n)).fill("");
  const rows = r.summary.map((s) => [
    s.job,
    fmtBs(s.bs),
    ...names.map((n) => fmtBw(s.mibps[n])),
    ...names.map((n) => fmtInt(s.iops[n])),
    ...ratios.map(([a, b]) => fmtRatio(s.ratios[`${a}/${b}`])),
    fmtInt(names.map((n) => s.cmdKiB[n]).find((x) => x !== undefined)),
  ]);
  return table(
    [
      ["", "", "MiB/s", ...pad(names.length - 1), "IOPS", ...pad(names.length - 1), "ratio", ...pad(ratios.length - 1), "KiB per"],
      ["job", "bs", ...names, ...names, ...ratios.map(([, , h]) => h), "ATA cmd"],
    ],
    rows,
    1,
  );
}

const fmtDelta = (x: number) => {
  const t = fmtExits(Math.abs(x));
  return x === 0 ? "0" : /^0\.0+$/.test(t) ? t : (x > 0 ? "+" : "-") + t;
};

/** The exits the IOMMU adds (iommu minus no-iommu), when the run measured both. */
function iommuExtraTable(r: BenchDiskResult, reasons: string[]): string[] {
  const extra = r.summary.filter((s) => s.iommuExtraExits);
  if (!extra.length) return [];
  const out = ["", "VM exits the IOMMU adds (iommu minus no-iommu; 0: none), per ATA command by reason, and in total per command and per MiB:"];
  out.push(
    ...table(
      [["job", ...reasons, "per cmd", "per MiB"]],
      extra.map((s) => {
        const d = s.iommuExtraExits!;
        return [s.job, ...reasons.map((n) => fmtDelta(d.perCmd[n] ?? 0)), fmtDelta(d.perCmdTotal), fmtDelta(d.perMiBTotal)];
      }),
      1,
    ),
  );
  const worst = extra.reduce((w, s) => (Math.abs(s.iommuExtraExits!.perCmd.io ?? 0) > Math.abs(w.iommuExtraExits!.perCmd.io ?? 0) ? s : w));
  const d = worst.iommuExtraExits!.perCmd.io ?? 0;
  out.push(`I/O exits per ATA command, iommu minus no-iommu: ` + (d === 0 ? "0 in every job" : `largest difference ${fmtDelta(d)} (${worst.job})`));
  return out;
}

/** Under Parapet: VM exits per MiB by reason, per command, and what the IOMMU adds. */
function exitsTables(r: BenchDiskResult): string[] {
  const parapetNames = r.config.configNames.filter((n) => CONFIG_SETUP[n].policy);
  const parapetRuns = r.summary.filter((s) => parapetNames.some((n) => s.exitsPerMiB[n]));
  if (!parapetRuns.length) return [];
  // Reasons that occurred anywhere, in EXIT_REASONS order, then any others.
  const seen = new Set<string>();
  for (const s of parapetRuns) for (const per of Object.values(s.exitsPerMiB)) for (const [n, v] of Object.entries(per ?? {})) if (v > 0) seen.add(n);
  const reasons = [...EXIT_REASONS.filter((n) => seen.has(n)), ...[...seen].filter((n) => !(EXIT_REASONS as readonly string[]).includes(n))];
  const out = ["", "VM exits per MiB transferred under Parapet, by reason (from /proc/parapet/exits right before and after fio):"];
  const erows: string[][] = [];
  for (const s of parapetRuns) {
    let first = true;
    for (const cfg of parapetNames) {
      const per = s.exitsPerMiB[cfg];
      if (!per) continue;
      erows.push([
        first ? s.job : "",
        cfg,
        fmtExits(s.exitsPerMiBTotal[cfg]),
        ...reasons.map((n) => fmtExits(per[n] ?? 0)),
        fmtExits(s.exitsPerCmd[cfg]),
        fmtInt(s.cmdKiB[cfg]),
      ]);
      first = false;
    }
  }
  out.push(...table([["job", "config", "total", ...reasons, "per cmd", "KiB/cmd"]], erows, 2));
  out.push(...iommuExtraTable(r, reasons));
  return out;
}

export function formatDiskReport(r: BenchDiskResult): string {
  const out = [...reportHeader(r), "", ...throughputTable(r), ...exitsTables(r)];
  if (r.error) out.push("", `FAILED: ${r.error}`);
  return out.join("\n") + "\n";
}
