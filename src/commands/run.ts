// `parapet run`: boot a disk image under Parapet (or bare) in QEMU, console live, hypervisor log to a file.
import type { Command } from "commander";
import { join } from "node:path";
import { describeFate, isQ35, QemuSession, type Fate, type LogSink } from "../lib/qemu.ts";
import { REPO_ROOT, DEFAULT_IMAGE } from "../lib/guestimage.ts";
import { readRecord } from "../lib/recordfile.ts";
import { readPassphrase } from "../lib/luks.ts";

export const FATE_EXIT: Record<Fate["kind"], number> = { poweroff: 0, error: 1, reset: 2, panic: 3, killed: 4 };

const SINKS = ["e9", "com1", "com2", "com3", "com4", "none"];

export function registerRun(program: Command): void {
  program
    .command("run")
    .description("Boot a disk image under Parapet in QEMU: guest console live here, hypervisor log to a file.\n" +
      "By default on q35 with an emulated Intel IOMMU (-device intel-iommu) and the disk on a legacy PIIX IDE " +
      "controller (Parapet protects IDE disks; q35's own disk controller is AHCI); any other machine (--machine pc) " +
      "runs without an IOMMU, its disk where the machine puts IDE drives.\n" +
      "Exit status: 0 guest powered off, 2 guest triple fault, 3 hypervisor panic, 4 timeout, 1 QEMU error.")
    .argument("[disk]", "raw disk image to boot as the first IDE disk (primary master)", DEFAULT_IMAGE)
    .option("-m, --memory <size>", "guest RAM", "512M")
    .option("-c, --cpus <n>", "number of CPUs", "1")
    .option("-M, --machine <type>", "QEMU machine type (q35, pc, or with options such as pc,smm=on); only q35 gets the IOMMU " +
      "and the PIIX IDE controller", "q35")
    .option("--iommu <kind>", "on q35: the emulated IOMMU, intel (VT-d, -device intel-iommu) or amd (AMD-Vi, -device amd-iommu,pt=off)", "intel")
    .option("--no-iommu", "on q35: no emulated IOMMU (a policy record with keys is then refused unless it allows that: " +
      "parapet policy --allow-no-iommu)")
    .option("-l, --log <sink>", `hypervisor log sink: ${SINKS.join(", ")} (a COM port used for the log is hidden from the guest)`, "e9")
    .option("--hv-log <file>", "file that receives the hypervisor log", join(REPO_ROOT, "build", "hv.log"))
    .option("--hv-args <options>", "extra hypervisor command-line options, e.g. boot=0x81", "")
    .option("--iso <file>", "boot this GRUB ISO from CD instead of loading Parapet with -kernel")
    .option("--bare", "boot without Parapet (the baseline)")
    .option("--snapshot", "do not write guest changes to the disk image")
    .option("--policy <file>", "storage policy record (parapet policy -o) passed to Parapet as a Multiboot module (-initrd)")
    .option("--passphrase-file <file>", "two-step (an ISO from parapet iso --preboot): type this file's passphrase at the preboot guest's 'Passphrase:' prompt on COM1")
    .option("--commands <list>", "with the test guest: run these shell commands (separated by ';;') after it is ready, then power off")
    .option("-t, --timeout <seconds>", "stop QEMU after this many seconds (0: never)", "0")
    .action(async (disk: string, o) => {
      if (!SINKS.includes(o.log)) throw new Error(`--log ${o.log}: expected one of ${SINKS.join(", ")}`);
      const cpus = Number(o.cpus);
      if (!Number.isInteger(cpus) || cpus < 1 || cpus > 16) throw new Error(`--cpus ${o.cpus}: expected 1..16`);
      const timeout = Number(o.timeout);
      if (!(timeout >= 0)) throw new Error(`--timeout ${o.timeout}: expected seconds`);
      if (o.policy && (o.bare || o.iso)) throw new Error("--policy needs Parapet loaded by -kernel: not with --bare or --iso");
      const q35 = isQ35(o.machine);
      if (o.iommu !== false && o.iommu !== "intel" && o.iommu !== "amd") throw new Error(`--iommu ${o.iommu}: expected intel or amd`);
      const iommu: "intel" | "amd" | undefined = q35 && o.iommu !== false ? o.iommu : undefined;
      if (o.policy) {
        const { policy } = await readRecord(o.policy); // refuse a malformed record before booting
        if (!iommu && policy.keys.length > 0 && !policy.allowNoIommu) {
          process.stderr.write(`parapet: warning: ${o.policy} carries keys and does not allow a machine without an IOMMU; ` +
            `Parapet will refuse it here (${q35 ? "--no-iommu" : `machine ${o.machine}`}). Boot on q35 with the IOMMU, or rebuild ` +
            "the record with parapet policy --allow-no-iommu.\n");
        }
      }
      const s = new QemuSession({
        disk, cdrom: o.iso, modules: o.policy ? [o.policy] : undefined, parapet: !o.bare, logSink: o.log as LogSink, hvLog: o.hvLog, hvArgs: o.hvArgs,
        memory: o.memory, cpus, machine: o.machine, snapshot: o.snapshot, iommu, piixIde: q35,
      });
      const passphrase = o.passphraseFile ? await readPassphrase(o.passphraseFile) : undefined;
      const platform = q35 ? `${o.machine}${iommu ? ` with ${iommu}-iommu` : " without an IOMMU"}, disk on PIIX IDE` : `${o.machine} (no IOMMU)`;
      process.stderr.write(`parapet: ${o.bare ? "bare QEMU" : "Parapet"} on ${platform}; hypervisor log: ${s.hvLogPath}\n`);
      s.onConsole = (t) => process.stdout.write(t.replace(/[^\n]*__END[a-z0-9]+__\d+\r?\n?/g, ""));
      if (passphrase) {
        await s.waitFor(/Passphrase: /, 600_000);
        process.stdout.write("[parapet run: typing the passphrase from the file]");
        s.send(`${passphrase.toString("latin1")}\r`);
        passphrase.fill(0);
      }
      const stdin = process.stdin;
      if (o.commands) {
        await s.ready();
        for (const cmd of String(o.commands).split(";;").map((c) => c.trim()).filter(Boolean)) {
          process.stdout.write(`\n[parapet run] guest# ${cmd}\n`);
          await s.exec(cmd, 300_000);
        }
        s.send("poweroff -f\n");
      } else {
        if (stdin.isTTY) stdin.setRawMode(true);
        stdin.on("data", (d) => s.send(d.toString("latin1")));
      }
      const fate = await s.fate(timeout > 0 ? timeout * 1000 : 2 ** 31 - 1);
      if (stdin.isTTY) stdin.setRawMode(false);
      stdin.destroy();
      process.stderr.write(`\nparapet: ${describeFate(fate)} after ${((Date.now() - s.started) / 1000).toFixed(1)} s\n`);
      process.exitCode = FATE_EXIT[fate.kind];
    });
}
