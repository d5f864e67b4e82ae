// `parapet run`: boot a disk image under Parapet (or bare) in QEMU, console live, hypervisor log to a file.
import { Option, type Command } from "@commander-js/extra-typings";
import { join } from "node:path";
import { integer, seconds } from "../lib/cliopts.ts";
import { describeFate, isQ35, QemuSession, type Fate, type LogSink } from "../lib/qemu.ts";
import { REPO_ROOT, DEFAULT_IMAGE } from "../lib/guestimage.ts";
import { readRecord } from "../lib/recordfile.ts";
import { readPassphrase } from "../lib/luks.ts";

export const FATE_EXIT: Record<Fate["kind"], number> = { poweroff: 0, error: 1, reset: 2, panic: 3, killed: 4 };

const SINKS = ["e9", "com1", "com2", "com3", "com4", "none"] as const satisfies readonly LogSink[];

function declareRun(program: Command) {
  return program
    .command("run")
    .description(
      "Boot a disk image under Parapet in QEMU: guest console live here, hypervisor log to a file.\n" +
        "By default on q35 with an emulated Intel IOMMU (-device intel-iommu) and the disk on a legacy PIIX IDE " +
        "controller (Parapet protects IDE disks; q35's own disk controller is AHCI); any other machine (--machine pc) " +
        "runs without an IOMMU, its disk where the machine puts IDE drives. With --disk-bus ahci (q35) the disk is on " +
        "port 0 of q35's own ICH9 AHCI controller (00:1f.2) instead; --ahci-disk and --ahci-cdrom add a second disk and a CD-ROM " +
        "to that controller.\n" +
        "Exit status: 0 guest powered off, 2 guest triple fault, 3 hypervisor panic, 4 timeout, 1 QEMU error.",
    )
    .argument("[disk]", "raw disk image to boot as the first IDE disk (primary master)", DEFAULT_IMAGE)
    .option("-m, --memory <size>", "guest RAM", "512M")
    .option("-c, --cpus <n>", "number of CPUs", integer(1, 16), 1)
    .option(
      "-M, --machine <type>",
      "QEMU machine type (q35, pc, or with options such as pc,smm=on); only q35 gets the IOMMU " + "and the PIIX IDE controller",
      "q35",
    )
    .addOption(
      new Option("--iommu <kind>", "on q35: the emulated IOMMU, intel (VT-d, -device intel-iommu) or amd (AMD-Vi, -device amd-iommu,pt=off)")
        .choices(["intel", "amd"] as const)
        .default("intel" as const),
    )
    .option(
      "--no-iommu",
      "on q35: no emulated IOMMU (a policy record with keys is then refused unless it allows that: " + "parapet policy --allow-no-iommu)",
    )
    .addOption(
      new Option(
        "--disk-bus <bus>",
        "where the disk goes: piix (an added PIIX3 IDE controller, q35's default), ahci (port 0 of q35's ICH9 AHCI, " +
          "-device ide-hd,bus=ide.0), machine (where the machine puts if=ide drives: pc's PIIX IDE, q35's AHCI)",
      ).choices(["piix", "ahci", "machine"] as const),
    )
    .option("--ahci-disk <file>", "on q35: a second raw disk image on AHCI port 1")
    .option("--ahci-cdrom <file>", "on q35: an ISO image as a CD-ROM on AHCI port 2 (not booted from; '' for an empty tray)")
    .addOption(
      new Option("-l, --log <sink>", "hypervisor log sink (a COM port used for the log is hidden from the guest)")
        .choices(SINKS)
        .default("e9" as const),
    )
    .option("--hv-log <file>", "file that receives the hypervisor log", join(REPO_ROOT, "build", "hv.log"))
    .option("--hv-args <options>", "extra hypervisor command-line options, e.g. boot=0x81", "")
    .option("--iso <file>", "boot this GRUB ISO from CD instead of loading Parapet with -kernel")
    .option("--bare", "boot without Parapet (the baseline)")
    .option("--snapshot", "do not write guest changes to the disk image")
    .addOption(
      new Option(
        "--policy <file>",
        "storage policy record (parapet policy -o) passed to Parapet as a Multiboot module (-initrd); " + "needs Parapet loaded by -kernel",
      ).conflicts(["bare", "iso"]),
    )
    .option(
      "--passphrase-file <file>",
      "two-step (an ISO from parapet iso --preboot): type this file's passphrase at the preboot guest's 'Passphrase:' prompt on COM1",
    )
    .option("--commands <list>", "with the test guest: run these shell commands (separated by ';;') after it is ready, then power off")
    .option("-t, --timeout <seconds>", "stop QEMU after this many seconds (0: never)", seconds, 0);
}

type RunOptions = ReturnType<ReturnType<typeof declareRun>["opts"]>;

export function registerRun(program: Command): void {
  declareRun(program).action(run);
}

/** Warns when the record will be refused on this machine (it carries keys, and there is no IOMMU). */
async function checkPolicy(o: RunOptions, iommu: string | undefined): Promise<void> {
  if (!o.policy) return;
  const { policy } = await readRecord(o.policy); // refuse a malformed record before booting
  if (!iommu && policy.keys.length > 0 && !policy.allowNoIommu) {
    process.stderr.write(
      `parapet: warning: ${o.policy} carries keys and does not allow a machine without an IOMMU; ` +
        `Parapet will refuse it here (${isQ35(o.machine) ? "--no-iommu" : `machine ${o.machine}`}). Boot on q35 with the IOMMU, or rebuild ` +
        "the record with parapet policy --allow-no-iommu.\n",
    );
  }
}

/** The guest's console on ours: typed commands (--commands) or our keyboard, until QEMU ends. */
async function attachConsole(s: QemuSession, o: RunOptions): Promise<void> {
  s.onConsole = (t) => process.stdout.write(t.replace(/[^\n]*__END[a-z0-9]+__\d+\r?\n?/g, ""));
  const passphrase = o.passphraseFile ? await readPassphrase(o.passphraseFile) : undefined;
  if (passphrase) {
    await s.waitFor(/Passphrase: /, 600_000);
    process.stdout.write("[parapet run: typing the passphrase from the file]");
    s.send(`${passphrase.toString("latin1")}\r`);
    passphrase.fill(0);
  }
  if (o.commands) {
    await s.ready();
    for (const cmd of String(o.commands)
      .split(";;")
      .map((c) => c.trim())
      .filter(Boolean)) {
      process.stdout.write(`\n[parapet run] guest# ${cmd}\n`);
      await s.exec(cmd, 300_000);
    }
    s.send("poweroff -f\n");
  } else {
    if (process.stdin.isTTY) process.stdin.setRawMode(true);
    process.stdin.on("data", (d) => s.send(d.toString("latin1")));
  }
}

/** Where the disk goes: --disk-bus, else PIIX IDE on q35 and the machine's own IDE elsewhere. */
export function diskBus(o: { machine: string; diskBus?: "piix" | "ahci" | "machine" }): "piix" | "ahci" | "machine" {
  const q35 = isQ35(o.machine);
  const bus = o.diskBus ?? (q35 ? "piix" : "machine");
  if (!q35 && bus !== "machine") throw new Error(`--disk-bus ${bus} needs --machine q35 (the ${o.machine} machine's disks are on its own PIIX IDE)`);
  return bus;
}

async function run(disk: string, o: RunOptions): Promise<void> {
  const q35 = isQ35(o.machine);
  const bus = diskBus(o);
  if (!q35 && (o.ahciDisk !== undefined || o.ahciCdrom !== undefined)) throw new Error("--ahci-disk and --ahci-cdrom need --machine q35");
  const iommu = q35 && o.iommu !== false ? o.iommu : undefined;
  await checkPolicy(o, iommu);
  const s = new QemuSession({
    disk,
    cdrom: o.iso,
    modules: o.policy ? [o.policy] : undefined,
    parapet: !o.bare,
    logSink: o.log,
    hvLog: o.hvLog,
    hvArgs: o.hvArgs,
    memory: o.memory,
    cpus: o.cpus,
    machine: o.machine,
    snapshot: o.snapshot,
    iommu,
    piixIde: bus === "piix",
    ahci: bus === "ahci",
    ahciDisks: o.ahciDisk !== undefined ? [{ image: o.ahciDisk, port: 1 }] : undefined,
    ahciCdrom: o.ahciCdrom !== undefined ? { image: o.ahciCdrom, port: 2 } : undefined,
  });
  const where = { piix: "PIIX IDE", ahci: "ICH9 AHCI port 0", machine: q35 ? "ICH9 AHCI (if=ide)" : "" }[bus];
  const platform = q35 ? `${o.machine}${iommu ? ` with ${iommu}-iommu` : " without an IOMMU"}, disk on ${where}` : `${o.machine} (no IOMMU)`;
  process.stderr.write(`parapet: ${o.bare ? "bare QEMU" : "Parapet"} on ${platform}; hypervisor log: ${s.hvLogPath}\n`);
  await attachConsole(s, o);
  const fate = await s.fate(o.timeout > 0 ? o.timeout * 1000 : 2 ** 31 - 1);
  if (process.stdin.isTTY) process.stdin.setRawMode(false);
  process.stdin.destroy();
  process.stderr.write(`\nparapet: ${describeFate(fate)} after ${((Date.now() - s.started) / 1000).toFixed(1)} s\n`);
  process.exitCode = FATE_EXIT[fate.kind];
}
