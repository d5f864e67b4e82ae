// `parapet bench`: benchmarks (logic in bench/). `parapet bench boot`: boot time bare vs. Parapet.
import type { Command } from "commander";
import { relative } from "node:path";
import { DEFAULT_IMAGE } from "../lib/guestimage.ts";
import { benchBoot, formatReport, TARGET_RATIO, writeJson } from "../../bench/boot.ts";

function positiveInt(name: string, max: number) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1 || n > max) throw new Error(`${name} ${v}: expected an integer 1..${max}`);
    return n;
  };
}

function shown(path: string): string {
  const rel = relative(process.cwd(), path);
  return rel && !rel.startsWith("..") ? rel : path;
}

export function registerBench(program: Command): void {
  const bench = program.command("bench").description("Benchmarks: run 'parapet bench boot' (see its --help)");
  bench
    .command("boot")
    .description(
      "Boot the test guest bare and under Parapet, alternating (bare, parapet, bare, …), --runs times each, " +
        "in QEMU (TCG, snapshot=on: the image is not modified). Each boot is timed from QEMU start to QEMU " +
        "exit: wait for the guest shell, run 'cat /proc/parapet/exits' (the VM exit counts since boot under " +
        "Parapet; it fails harmlessly bare), power off. Prints every boot, the medians, the ratio " +
        `parapet/bare against the target ${TARGET_RATIO.toFixed(2)} (PASS/MISS, informational) and the median ` +
        "VM exits during boot by reason. Exit status 0 unless a boot fails (then 1).",
    )
    .option("-n, --runs <n>", "boots of each kind", positiveInt("--runs", 1000), 5)
    .option("-c, --cpus <n>", "number of CPUs", positiveInt("--cpus", 16), 1)
    .option("-M, --machine <type>", "QEMU machine type (pc, q35, …)", "pc")
    .option("-m, --memory <size>", "guest RAM", "512M")
    .option("--disk <file>", "test guest image (build it with: npx parapet image)", shown(DEFAULT_IMAGE))
    .option("--hv-args <options>", "extra hypervisor options for the Parapet boots", "")
    .option("-t, --timeout <seconds>", "limit for one boot", positiveInt("--timeout", 86400), 300)
    .option("--json <file>", "also write the raw results (every boot, summary) as JSON")
    .option("-q, --quiet", "no progress lines on stderr")
    .addHelpText(
      "after",
      "\nNeeds build/parapet.elf (make) and the test guest image (npx parapet image).\n" +
        "Example: parapet bench boot --runs 3 --json build/bench-boot.json\n" +
        "Also: npm run bench -- --runs 3   (bench/boot.ts run directly takes the same options)",
    )
    .action(async (o: {
      runs: number; cpus: number; machine: string; memory: string; disk: string; hvArgs: string;
      timeout: number; json?: string; quiet?: boolean;
    }) => {
      const r = await benchBoot({
        runs: o.runs, cpus: o.cpus, machine: o.machine, memory: o.memory, disk: o.disk, hvArgs: o.hvArgs,
        timeoutSec: o.timeout,
        log: o.quiet ? undefined : (m) => process.stderr.write(`bench: ${m}\n`),
      });
      process.stdout.write(formatReport(r));
      if (o.json) {
        await writeJson(o.json, r);
        if (!o.quiet) process.stderr.write(`bench: raw results in ${o.json}\n`);
      }
      if (r.error) {
        process.stderr.write(`bench: ${r.error}\n`);
        process.exitCode = 1;
      }
    });
}
