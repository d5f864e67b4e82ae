// `parapet policy`: compile a storage policy (keys + per-drive sector rules) into the binary
// record the hypervisor reads (hv/handoff/policy_record.h), check one, or show one.
import { Option, type Command } from "@commander-js/extra-typings";
import { bit, checked, integer, shown } from "../lib/cliopts.ts";
import { readRecord, writeRecord } from "../lib/recordfile.ts";
import { compilePolicyFile, PolicyFileError } from "../lib/policyfile.ts";
import {
  decodePolicy,
  encodePolicy,
  formatPolicy,
  parsePci,
  policyToJson,
  recordVersion,
  serialProblem,
  type DriveMatch,
  type Policy,
  wholeDiskPolicy,
} from "../lib/policyrecord.ts";
import { readKeyFile } from "../lib/xts.ts";

function counts(p: Policy): string {
  const n = p.drives.reduce((a, d) => a + d.ranges.length, 0);
  const pl = (k: number, w: string) => `${k} ${w}${k === 1 ? "" : "s"}`;
  return `${pl(p.keys.length, "key")}, ${pl(p.drives.length, "drive")}, ${pl(n, "range")}`;
}

/** The --serial argParser: the drive's IDENTIFY serial number, as a record can hold it. */
function serial(v: string): string {
  const why = serialProblem(v);
  if (why) throw new Error(why);
  return v;
}

function declarePolicy(program: Command) {
  return program
    .command("policy")
    .description(
      "Compile a storage policy into the binary record Parapet reads at boot (a Multiboot module: " +
        "parapet run --policy FILE). Either the common case, --whole-disk --key K: every sector of the boot " +
        "disk (the IDE primary master or AHCI port 0, whichever the machine has) encrypted with key K; or a policy " +
        "file (YAML or JSON, docs/policy.md) naming key files and, per drive, a default action and LBA ranges " +
        "(plain, encrypt with a key, deny). The record holds the keys: it is written with mode 0600, and no " +
        "key is ever printed. A record that carries keys is refused on a machine without a usable IOMMU " +
        "(DMA isolation) unless it says that is allowed (--allow-no-iommu, or allow_no_iommu: true in the file). " +
        "Exit status: 0 ok, 1 invalid policy or error.",
    )
    .argument("[file]", "policy file (YAML or JSON) to compile or --check")
    .option("-o, --output <file>", "record to write (mode 0600; replaced if it exists)")
    .addOption(new Option("--check", "validate the policy file and its key files only; write nothing").conflicts("wholeDisk"))
    .option("--whole-disk", "the common policy: every sector of one drive encrypted with --key")
    .option("--key <file>", "with --whole-disk: the 64-byte key file (parapet keygen)")
    .addOption(
      new Option("--transport <kind>", "with --whole-disk: only the drive on this transport (default: IDE and AHCI both)").choices([
        "ide",
        "ahci",
      ] as const),
    )
    .option("--port <n>", "with --whole-disk: AHCI port 0-31 (default 0; implies --transport ahci)", integer(0, 31))
    .option("--channel <n>", "with --whole-disk: IDE channel, 0/primary or 1/secondary (default 0)", bit(["primary", "secondary"]))
    .option("--position <n>", "with --whole-disk: drive on the channel, 0/master or 1/slave (default 0)", bit(["master", "slave"]))
    .option(
      "--serial <text>",
      "with --whole-disk: also (or only) match the drive's serial number (as ATA IDENTIFY or NVMe reports it)",
      checked(serial),
    )
    .option("--pci <BB:DD.F>", "with --whole-disk: only the controller at this PCI address (hex)", checked(parsePci))
    .option(
      "--allow-no-iommu",
      "let Parapet use the record's keys on a machine without a usable IOMMU, where any " +
        "bus master can read them and every decrypted sector from RAM (default: such a machine refuses the record); " +
        "with --whole-disk or a policy file (as allow_no_iommu: true in it)",
    )
    .option("-q, --quiet", "print only warnings and errors")
    .addHelpText(
      "after",
      "\nWith --whole-disk the record names the boot disk twice, the IDE primary master (channel 0 position 0)\n" +
        "and AHCI port 0, both with the same key: a machine boots from one of them. --transport, --channel,\n" +
        "--position and --port narrow it to one transport; given only --serial and/or --pci (and perhaps\n" +
        "--transport), the drive is matched by those alone.\n" +
        "Examples:\n" +
        "  parapet policy --whole-disk --key disk.key -o policy.bin\n" +
        "  parapet policy --whole-disk --key data.key --channel 0 --position 1 -o data.bin\n" +
        "  parapet policy --whole-disk --key data.key --transport ahci --port 2 -o data.bin\n" +
        "  parapet policy --whole-disk --key disk.key --allow-no-iommu -o policy.bin   # also on a machine without an IOMMU\n" +
        "  parapet policy examples/policy.yaml -o policy.bin\n" +
        "  parapet policy --check examples/policy.yaml\n" +
        "  parapet policy show policy.bin\n" +
        "  parapet run --policy policy.bin build/guest.img\n" +
        "Format and semantics: docs/policy.md; binary layout: hv/handoff/policy_record.h.",
    );
}

type PolicyCommand = ReturnType<typeof declarePolicy>;
type PolicyOptions = ReturnType<PolicyCommand["opts"]>;

/**
 * The drives that --whole-disk names: the boot disk on IDE and on AHCI unless told otherwise.
 * The port criteria default to the boot disk's only when no --serial or --pci names the drive.
 */
function wholeDiskMatch(o: PolicyOptions, cmd: PolicyCommand): DriveMatch[] {
  const ideOpts = o.channel !== undefined || o.position !== undefined;
  const ahciOpts = o.port !== undefined;
  if (ideOpts && ahciOpts) cmd.error("--port names an AHCI port; --channel and --position an IDE drive: give one or the other");
  if (ideOpts && o.transport === "ahci") cmd.error("--channel and --position name an IDE drive; with --transport ahci give --port");
  if (ahciOpts && o.transport === "ide") cmd.error("--port names an AHCI port; with --transport ide give --channel and --position");
  const common: DriveMatch = {};
  if (o.pci !== undefined) common.pci = o.pci;
  if (o.serial !== undefined) common.serial = o.serial;
  const named = o.pci !== undefined || o.serial !== undefined;
  const transports = o.transport
    ? [o.transport]
    : ideOpts
      ? ["ide" as const]
      : ahciOpts
        ? ["ahci" as const]
        : named
          ? []
          : ["ide" as const, "ahci" as const];
  if (!transports.length) return [common];
  return transports.map((t): DriveMatch => {
    if (t === "ide") {
      return ideOpts || !named ? { ...common, port: { channel: o.channel ?? 0, position: o.position ?? 0 } } : { ...common, transport: "ide" };
    }
    return ahciOpts || !named ? { ...common, ahciPort: o.port ?? 0 } : { ...common, transport: "ahci" };
  });
}

/** The policy a file compiles to, warnings printed; undefined (exit status 1) when it has errors. */
async function compileFile(file: string, o: PolicyOptions): Promise<Policy | undefined> {
  try {
    const c = await compilePolicyFile(file, shown(file));
    for (const w of c.warnings) process.stderr.write(`parapet: warning: ${w}\n`);
    return o.allowNoIommu ? { ...c.policy, allowNoIommu: true } : c.policy;
  } catch (e) {
    if (!(e instanceof PolicyFileError)) throw e;
    for (const line of e.errors) process.stderr.write(`${line}\n`);
    process.stderr.write(`parapet: ${e.file}: ${e.errors.length} error${e.errors.length === 1 ? "" : "s"}; nothing written\n`);
    process.exitCode = 1;
    return undefined;
  }
}

async function compile(file: string | undefined, o: PolicyOptions, cmd: PolicyCommand): Promise<void> {
  const say = (m: string) => {
    if (!o.quiet) process.stdout.write(m);
  };
  let compiled: Policy;
  if (o.wholeDisk) {
    if (file !== undefined) cmd.error("give either --whole-disk or a policy file, not both");
    if (!o.key) cmd.error("--whole-disk needs --key FILE (make one with: parapet keygen -o disk.key)");
    compiled = wholeDiskPolicy(await readKeyFile(o.key), wholeDiskMatch(o, cmd), o.allowNoIommu === true);
  } else {
    if (file === undefined) cmd.error("give a policy file, or --whole-disk --key FILE (see parapet policy --help)");
    for (const opt of ["key", "transport", "port", "channel", "position", "serial", "pci"] as const) {
      if (o[opt] !== undefined) cmd.error(`--${opt} goes with --whole-disk; a policy file names its drives and keys itself`);
    }
    const c = await compileFile(file, o);
    if (!c) return;
    compiled = c;
    if (o.check) {
      const record = encodePolicy(compiled);
      say(`${shown(file)}: valid: ${counts(compiled)}; the record would be ${record.length} bytes\n`);
      return;
    }
  }
  if (!o.output) cmd.error("missing -o FILE: where to write the record (or --check to validate only)");
  const record = encodePolicy(compiled);
  decodePolicy(record); // what we write must read back
  await writeRecord(o.output, record);
  say(`${o.output}: policy record, ${record.length} bytes, ${counts(compiled)} (mode 0600: it holds the keys)\n`);
  say(formatPolicy(compiled).trimEnd().replace(/^/gm, "  ") + "\n");
}

export function registerPolicy(program: Command): void {
  const policy = declarePolicy(program).action(compile);
  policy
    .command("show")
    .description(
      "Decode a policy record and print it, keys as fingerprints only, and whether its keys may be used on a " +
        "machine without an IOMMU (where DMA isolation is absent). Checks everything (magic, version, " +
        "sizes, CRC-32, flags, reserved fields, key and range indices, overlaps) and says exactly what is wrong. " +
        "Exit status: 0 valid, 1 invalid or unreadable.",
    )
    .argument("<record>", "policy record (parapet policy -o)")
    .option("--json", "print JSON (fingerprints, LBAs as decimal strings)")
    .action(async (path, o) => {
      let r;
      try {
        r = await readRecord(path);
      } catch (e) {
        process.stderr.write(`parapet: ${(e as Error).message}\n`);
        process.exitCode = 1;
        return;
      }
      if (o.json) {
        process.stdout.write(JSON.stringify(policyToJson(r.policy, recordVersion(r.bytes)), null, 2) + "\n");
        return;
      }
      process.stdout.write(
        `${path}: ` + formatPolicy(r.policy, { size: r.bytes.length, crc: r.bytes.readUInt32LE(24), version: recordVersion(r.bytes) }),
      );
    });
}
