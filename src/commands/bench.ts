// `parapet bench`: benchmarks (logic in bench/). `parapet bench boot`: boot time bare vs. Parapet.
import { Option, type Command } from "@commander-js/extra-typings";
import { checked, integer, integerList, shown } from "../lib/cliopts.ts";
import { DEFAULT_IMAGE } from "../lib/guestimage.ts";
import { benchBoot, formatReport, TARGET_RATIO } from "../../bench/boot.ts";
import { writeJsonFile } from "../../bench/common.ts";
import { benchCrypto, formatCryptoReport, TARGET_CRYPTO_RATIO } from "../../bench/crypto.ts";
import { benchLoc, benchTwostepLoc, formatLoc, formatTwostepLoc } from "../../bench/loc.ts";
import { benchDisk, formatDiskReport, JOBS } from "../../bench/disk.ts";
import { benchTwostep, formatTwostepReport } from "../../bench/twostep.ts";
import { benchResume, formatResumeReport } from "../../bench/resume.ts";
import { parseSize } from "../lib/diskimage.ts";

/** Prints a benchmark's report, writes its raw results to --json, and fails the command when it failed. */
function finish(report: string, r: { error?: string }, o: { json?: string; quiet?: boolean }): void {
  process.stdout.write(report);
  if (o.json) {
    writeJsonFile(o.json, r);
    if (!o.quiet) process.stderr.write(`bench: raw results in ${o.json}\n`);
  }
  if (r.error) {
    process.stderr.write(`bench: ${r.error}\n`);
    process.exitCode = 1;
  }
}

export function registerBench(program: Command): void {
  const bench = program
    .command("bench")
    .description(
      "Benchmarks: 'parapet bench boot', 'parapet bench resume', 'parapet bench twostep', 'parapet bench disk', 'parapet bench crypto', 'parapet bench loc' (see their --help)",
    );
  registerBenchLoc(bench);
  registerBenchBoot(bench);
  registerBenchCrypto(bench);
  registerBenchDisk(bench);
  registerBenchTwostep(bench);
  registerBenchResume(bench);
}

function registerBenchLoc(bench: Command): void {
  bench
    .command("loc")
    .description(
      "Count the lines of code (non-blank, outside comments) of the ATA driver, the storage service and the crypto, " +
        "against the ATA driver's target and BitVisor's; of DMA isolation (hv/iommu: Intel VT-d, AMD-Vi and the " +
        "vendor-neutral layer) against its target of 800 lines for both kinds together; and of two-step execution: the hypervisor's code for it " +
        "(inside the TCB) against the preboot guest's ID-management TypeScript that esbuild bundles into its app " +
        "(outside), the share outside next to the SECURWARE'09 paper's 29.5 %, and the whole hypervisor now and at " +
        "the commit before two-step execution (read with git show; nothing is written).",
    )
    .action(() => {
      process.stdout.write(formatLoc(benchLoc()) + "\n" + formatTwostepLoc(benchTwostepLoc()));
    });
}

function registerBenchBoot(bench: Command): void {
  bench
    .command("boot")
    .description(
      "Boot the test guest bare and under Parapet, alternating (bare, parapet, bare, …), --runs times each, " +
        "in QEMU (TCG, snapshot=on: the image is not modified). Each boot is timed from QEMU start to QEMU " +
        "exit: wait for the guest shell, run 'cat /proc/parapet/exits' (the VM exit counts since boot under " +
        "Parapet; it fails harmlessly bare), power off. One case per CPU count in --cpus (default 1 and 4: " +
        "every CPU runs under Parapet). Prints, per case, every boot, the medians, the ratio " +
        `parapet/bare against the target ${TARGET_RATIO.toFixed(2)} (PASS/MISS, informational) and the median ` +
        "VM exits during boot by reason. Exit status 0 unless a boot fails (then 1).",
    )
    .option("-n, --runs <n>", "boots of each kind", integer(1, 1000), 5)
    .option("-c, --cpus <list>", "CPU counts, one case each (-smp N), comma-separated", integerList(1, 16, "1,4"), [1, 4])
    .option("-M, --machine <type>", "QEMU machine type (pc, q35, …)", "pc")
    .option("-m, --memory <size>", "guest RAM", "512M")
    .option("--disk <file>", "test guest image (build it with: npx parapet image)", shown(DEFAULT_IMAGE))
    .option("--hv-args <options>", "extra hypervisor options for the Parapet boots", "")
    .option("-t, --timeout <seconds>", "limit for one boot", integer(1, 86400), 300)
    .option("--json <file>", "also write the raw results (every boot, summary) as JSON")
    .option("-q, --quiet", "no progress lines on stderr")
    .addHelpText(
      "after",
      "\nNeeds build/parapet.elf (make) and the test guest image (npx parapet image).\n" +
        "Example: parapet bench boot --runs 3 --cpus 1,4 --json build/bench-boot.json\n" +
        "Also: npm run bench -- --runs 3   (the same command)",
    )
    .action(async (o) => {
      const cases = [];
      for (const [i, cpus] of o.cpus.entries()) {
        const r = await benchBoot({
          runs: o.runs,
          cpus,
          machine: o.machine,
          memory: o.memory,
          disk: o.disk,
          hvArgs: o.hvArgs,
          timeoutSec: o.timeout,
          log: o.quiet ? undefined : (m) => process.stderr.write(`bench: -smp ${cpus}: ${m}\n`),
        });
        process.stdout.write((i ? "\n" : "") + formatReport(r));
        cases.push(r);
        if (r.error) {
          process.stderr.write(`bench: -smp ${cpus}: ${r.error}\n`);
          process.exitCode = 1;
        }
      }
      if (cases.length > 1) {
        process.stdout.write(
          "\nsummary: " + cases.map((r) => `-smp ${r.config.cpus} ratio ${r.summary ? r.summary.ratio.toFixed(3) : "n/a"}`).join(", ") + "\n",
        );
      }
      if (o.json) {
        writeJsonFile(o.json, { cases });
        if (!o.quiet) process.stderr.write(`bench: raw results in ${o.json}\n`);
      }
    });
}

function registerBenchCrypto(bench: Command): void {
  bench
    .command("crypto")
    .description(
      "XTS-AES-256 throughput of the hypervisor's crypto module (hv/crypto/, built for this host) against " +
        "OpenSSL's EVP aes-256-xts (IV set + update per 512-byte sector, as dm-crypt), in one process: every " +
        "implementation this CPU has, with each way of keeping the caller's SIMD state, per 512-byte sector and " +
        "per 4 KiB (8 sectors per call). Prints medians (MB/s, TSC cycles/byte) and the ratio ours/OpenSSL for " +
        `the hypervisor's configuration against the target ${TARGET_CRYPTO_RATIO.toFixed(2)} (PASS/MISS, informational).`,
    )
    .option("-n, --runs <n>", "interleaved runs of every variant", integer(1, 1000), 7)
    .option("--ms <ms>", "time per variant per run", integer(1, 10000), 40)
    .option("--kib <n>", "buffer size in KiB (walked sector by sector)", integer(1, 65536), 64)
    .option("--json <file>", "also write the raw results as JSON")
    .option("-q, --quiet", "no progress lines on stderr")
    .addHelpText(
      "after",
      "\nBuilds build/hv/xts-bench (make -C hv xts-bench; needs libssl-dev, installed by scripts/setup.sh).\n" +
        "Example: parapet bench crypto --runs 11 --json build/bench-crypto.json",
    )
    .action((o) => {
      const r = benchCrypto({
        runs: o.runs,
        ms: o.ms,
        kib: Math.max(4, o.kib),
        log: o.quiet ? undefined : (m) => process.stderr.write(`bench: ${m}\n`),
      });
      process.stdout.write(formatCryptoReport(r));
      if (o.json) {
        writeJsonFile(o.json, r);
        if (!o.quiet) process.stderr.write(`bench: raw results in ${o.json}\n`);
      }
    });
}

function registerBenchResume(bench: Command): void {
  bench
    .command("resume")
    .description(
      "Resume time from ACPI S3 (suspend to RAM), bare and under Parapet in the same run: the test guest boots once " +
        "bare and once under Parapet (QEMU, TCG, snapshot=on: the image is not modified) and in each sleeps and wakes " +
        "--runs times. A cycle types 'echo mem > /sys/power/state; echo RESUMED-N-$?', polls QMP query-status every " +
        "20 ms until it says suspended, sends QMP system_wakeup and waits for the marker on the console: the resume " +
        "time is system_wakeup to the marker (host clock), which spans QEMU's machine reset, the firmware's resume " +
        "path, under Parapet its own resume, and the guest kernel's. Prints every cycle (suspend time, wake event, " +
        "resume time), the medians and the ratio parapet/bare. Exit status 0 unless a boot or cycle fails (then 1).",
    )
    .option("-n, --runs <n>", "sleep/resume cycles of each kind", integer(1, 1000), 5)
    .option("-c, --cpus <n>", "CPUs (-smp N)", integer(1, 16), 1)
    .option("-M, --machine <type>", "QEMU machine type (pc, q35, …)", "pc")
    .option("-m, --memory <size>", "guest RAM", "512M")
    .option("--disk <file>", "test guest image (build it with: npx parapet image)", shown(DEFAULT_IMAGE))
    .option("--hv-args <options>", "extra hypervisor options for the Parapet boot", "")
    .option("-t, --timeout <seconds>", "limit for the boot, and for each suspend and resume", integer(1, 86400), 300)
    .option("--json <file>", "also write the raw results (every cycle, summary) as JSON")
    .option("-q, --quiet", "no progress lines on stderr")
    .addHelpText(
      "after",
      "\nNeeds build/parapet.elf (make) and the test guest image (npx parapet image).\n" +
        "Example: parapet bench resume --runs 5 --json build/bench-resume.json\n",
    )
    .action(async (o) => {
      const r = await benchResume({
        runs: o.runs,
        cpus: o.cpus,
        machine: o.machine,
        memory: o.memory,
        disk: o.disk,
        hvArgs: o.hvArgs,
        timeoutSec: o.timeout,
        log: o.quiet ? undefined : (m) => process.stderr.write(`bench: ${m}\n`),
      });
      finish(formatResumeReport(r), r, o);
    });
}

function registerBenchTwostep(bench: Command): void {
  bench
    .command("twostep")
    .description(
      "Boot time of two-step execution: the test guest on a LUKS2-formatted copy of its image (the default " +
        "argon2id keyslot of 'parapet luks format', made once per run; the report names its cost) booted from a " +
        "GRUB ISO with the preboot guest (two-step: prompt, unlock, handoff, wipe, target), against the baseline, " +
        "the same disk booted from a GRUB ISO with the volume key given directly as a policy record module. " +
        "Alternating (policy, two-step, policy, …), --runs times each, in QEMU (TCG, snapshot=on: the disk is " +
        "not modified). Each boot is timed from QEMU spawn to PARAPET-GUEST-READY on the console (the target's " +
        "init is done); the passphrase is sent the moment 'Passphrase: ' appears. Prints every boot, the medians, " +
        "the ratio two-step/policy of the same run, and the two-step phases (spawn to prompt, prompt to the app's " +
        "handoff line, handoff to READY) with the MiB of preboot RAM the hypervisor wiped. Exit status 0 unless a " +
        "boot fails (then 1).",
    )
    .option("-n, --runs <n>", "boots of each kind", integer(1, 1000), 3)
    .option("-c, --cpus <n>", "CPUs (-smp N)", integer(1, 16), 2)
    .option("-m, --memory <size>", "guest RAM", "512M")
    .option("--disk <file>", "plaintext test guest image to copy and format (build it with: npx parapet image)", shown(DEFAULT_IMAGE))
    .option("-t, --timeout <seconds>", "limit for one boot", integer(1, 86400), 300)
    .option("--json <file>", "also write the raw results (every boot, summary) as JSON")
    .option("-q, --quiet", "no progress lines on stderr")
    .addHelpText(
      "after",
      "\nNeeds build/parapet.elf (make), the test guest image (npx parapet image), the preboot guest\n" +
        "(npx parapet preboot build), cryptsetup and the GRUB ISO tools. Works in build/test/bench-twostep-*,\n" +
        "removed afterwards.\n" +
        "Example: parapet bench twostep --runs 3 --json build/bench-twostep.json",
    )
    .action(async (o) => {
      const r = await benchTwostep({
        runs: o.runs,
        cpus: o.cpus,
        memory: o.memory,
        disk: o.disk,
        timeoutSec: o.timeout,
        log: o.quiet ? undefined : (m) => process.stderr.write(`bench: ${m}\n`),
      });
      finish(formatTwostepReport(r), r, o);
    });
}

function registerBenchDisk(bench: Command): void {
  bench
    .command("disk")
    .description(
      "Disk throughput of the test guest (fio, O_DIRECT, psync, on the data partition of its IDE disk, -machine pc) " +
        "in three configurations measured in one run: bare QEMU; Parapet with drive policy 'plain' (mediated, not " +
        "transformed); Parapet with the whole disk encrypted (XTS-AES-256). Each configuration boots once and runs " +
        `every job (${JOBS.map((j) => j.name).join(", ")}) --repeat times. Prints MiB/s and IOPS (medians), the ` +
        "ratios pass/bare and encrypt/bare, and under Parapet the VM exits per MiB transferred by reason. " +
        "With --iommu the three configurations are instead, on -machine q35 with the disk on an added PIIX3 IDE " +
        "controller: bare QEMU; Parapet encrypting without an IOMMU (the record allows that); Parapet encrypting " +
        "with -device intel-iommu (DMA isolation on); the ratios are no-iommu/bare, iommu/bare and iommu/no-iommu, " +
        "and the report adds the VM exits the IOMMU adds (iommu minus no-iommu, per ATA command and per MiB). " +
        "Works on copies of the image (build/test/bench-disk-*), removed afterwards. Exit status 1 when a boot or job fails.",
    )
    .option("-r, --runtime <seconds>", "time per fio job", integer(1, 3600), 10)
    .addOption(
      new Option("-s, --size <size>", "region of the data partition the jobs use (e.g. 16M; a multiple of the largest block size)")
        .argParser(checked(parseSize))
        .default(parseSize("16M"), "16M"),
    )
    .option("-n, --repeat <n>", "rounds of all jobs in each boot (figures are medians)", integer(1, 100), 1)
    .option("--jobs <names>", "comma-separated subset of the jobs")
    .option("-m, --memory <size>", "guest RAM", "512M")
    .option("-t, --timeout <seconds>", "limit for each boot to reach the guest shell", integer(1, 86400), 300)
    .option("--json [file]", "machine-readable results: to FILE (the table still printed), or alone instead of the table")
    .option("--iommu", "q35, disk on PIIX IDE: bare, Parapet encrypting without an IOMMU, and with intel-iommu (instead of pc: bare, pass, encrypt)")
    .option(
      "--ahci",
      "q35, disk on the ICH9 AHCI port 0: bare, Parapet pass-through and Parapet encrypting (intel-iommu), " +
        "jobs sequential 1 MiB and random 4 KiB at QD1 (psync) and QD32 (libaio, NCQ)",
    )
    .option("--keep", "keep the image copies and policy records in build/test")
    .option("-q, --quiet", "no progress lines on stderr")
    .addHelpText(
      "after",
      "\nNeeds build/parapet.elf (make) and the test guest image (npx parapet image).\n" +
        "Example: parapet bench disk --runtime 10 --json build/bench-disk.json\n" +
        "The AHCI driver: parapet bench disk --ahci --runtime 10 --json build/bench-disk-ahci.json\n" +
        "What DMA isolation costs: parapet bench disk --iommu --runtime 10 --json build/bench-disk-iommu.json\n" +
        "Quick check: parapet bench disk --runtime 3 --jobs seq-read-1M,rand-write-4k",
    )
    .action(async (o) => {
      const r = await benchDisk({
        iommu: o.iommu,
        ahci: o.ahci,
        runtimeSec: o.runtime,
        sizeBytes: o.size,
        repeat: o.repeat,
        memory: o.memory,
        bootTimeoutSec: o.timeout,
        jobs: o.jobs
          ?.split(",")
          .map((s) => s.trim())
          .filter(Boolean),
        keep: o.keep,
        log: o.quiet ? undefined : (m) => process.stderr.write(`bench: ${m}\n`),
      });
      if (o.json === true) process.stdout.write(JSON.stringify(r, null, 2) + "\n");
      else process.stdout.write(formatDiskReport(r));
      if (typeof o.json === "string") {
        writeJsonFile(o.json, r);
        if (!o.quiet) process.stderr.write(`bench: raw results in ${o.json}\n`);
      }
      if (r.error) {
        process.stderr.write(`bench: ${r.error}\n`);
        process.exitCode = 1;
      }
    });
}
