// `parapet iso`: a BIOS-bootable GRUB ISO that loads Parapet by multiboot2 (logic: src/lib/iso.ts).
import type { Command } from "@commander-js/extra-typings";
import { readFile } from "node:fs/promises";
import { shown } from "../lib/cliopts.ts";
import { buildIso, DEFAULT_HV, DEFAULT_ISO, ISO_PACKAGES, PREBOOT_CMDLINE, type IsoPreboot } from "../lib/iso.ts";

function declareIso(program: Command) {
  return program
    .command("iso")
    .description(
      "Build a BIOS-bootable GRUB ISO (grub-mkrescue, i386-pc only) whose grub.cfg loads Parapet with " +
        "'multiboot2 /boot/parapet.elf <hv-args>' and boots it at once (timeout 0). Parapet then boots " +
        "the guest from the first hard disk (BIOS drive 0x80), as on a real PC. GRUB writes to the " +
        "console only, never to a serial port, so COM1 carries just the guest console.",
    )
    .option("-o, --output <file>", "ISO to write", shown(DEFAULT_ISO))
    .option("--hv <file>", "hypervisor ELF to put on the ISO", shown(DEFAULT_HV))
    .option("--hv-args <options>", 'hypervisor command line, e.g. "log=e9" or "log=com2 boot=0x81" (empty: log=e9, boot=0x80)', "")
    .option(
      "--preboot",
      "two-step execution: also put the preboot guest (parapet preboot build) and the LUKS2 header on the ISO; Parapet runs it first, it asks for the passphrase on COM1 and hands the disk key over",
    )
    .option("--header <file>", "with --preboot: the disk's LUKS2 detached header (parapet luks format)")
    .option(
      "--site <file>",
      "with --preboot, instead of --header/--preboot-config: a site archive from 'parapet preboot site' (header, config, token CA and store)",
    )
    .option(
      "--preboot-config <file>",
      'with --preboot: the preboot config JSON (docs/preboot.md; default {"version": 1}: the primary master disk, 3 tries)',
    )
    .option("--preboot-dir <dir>", "with --preboot: where vmlinuz and initrd.gz are (default build/preboot)")
    .option("--preboot-cmdline <args>", "with --preboot: the preboot kernel's command line", PREBOOT_CMDLINE)
    .option(
      "--allow-no-iommu",
      "with --preboot --header: the record the preboot guest hands over may be used on a machine without " +
        'a usable IOMMU (sets "allowNoIommu": true in its config); by default Parapet refuses it there. A --policy record or a ' +
        "--site archive says this itself (parapet policy --allow-no-iommu; allowNoIommu in the site's config)",
    )
    .option(
      "--policy <file>",
      "a policy record (parapet policy) loaded as a module: the disk keys given directly, without a preboot guest; " +
        "whether it may be used without an IOMMU is in the record (parapet policy show)",
    )
    .option("-q, --quiet", "print only errors")
    .addHelpText(
      "after",
      `\nNeeds (Debian): apt-get install ${ISO_PACKAGES.join(" ")}\n` +
        "Boot it: qemu-system-x86_64 -accel tcg -cpu EPYC,+svm,+npt -m 512 -display none -serial stdio \\\n" +
        "  -debugcon file:build/hv.log -no-reboot -cdrom build/boot.iso -boot d \\\n" +
        "  -drive file=build/guest.img,format=raw,if=ide,index=0,media=disk,snapshot=on\n" +
        "or: parapet run --iso build/boot.iso --snapshot\n" +
        'Example: parapet iso -o build/boot.iso --hv-args "log=e9"\n' +
        "Two-step: parapet preboot build && parapet iso --preboot --header disk.hdr -o build/boot.iso\n" +
        "  (add --allow-no-iommu for a machine without an IOMMU, e.g. QEMU's pc machine)\n" +
        "  then boot it with the disk that header belongs to; type the passphrase at 'Passphrase:' on COM1.",
    );
}

type IsoCommand = ReturnType<typeof declareIso>;
type IsoOptions = ReturnType<IsoCommand["opts"]>;

export function registerIso(program: Command): void {
  declareIso(program).action(iso);
}

/** What --preboot and its options ask for; the options that go only with it are refused without it. */
async function prebootOf(o: IsoOptions, cmd: IsoCommand): Promise<IsoPreboot | undefined> {
  if (!o.preboot) {
    if (o.header || o.site || o.prebootConfig || o.prebootDir) cmd.error("--header, --site, --preboot-config and --preboot-dir go with --preboot");
    if (o.allowNoIommu)
      cmd.error("--allow-no-iommu goes with --preboot --header; a --policy record says it itself (parapet policy --allow-no-iommu)");
    return undefined;
  }
  if (!o.header === !o.site) cmd.error("--preboot needs --header <file> (the disk's LUKS2 detached header) or --site <file>, not both");
  if (o.site && o.prebootConfig) cmd.error("--preboot-config goes with --header; a site archive holds its own config");
  if (o.site && o.allowNoIommu) cmd.error('--allow-no-iommu goes with --header; a site archive\'s config says it itself ("allowNoIommu": true)');
  let config: unknown;
  if (o.prebootConfig) {
    try {
      config = JSON.parse(await readFile(o.prebootConfig, "utf8"));
    } catch (e) {
      throw new Error(`--preboot-config ${o.prebootConfig}: ${(e as Error).message}`);
    }
  }
  return {
    header: o.header,
    site: o.site,
    config,
    configName: o.prebootConfig,
    dir: o.prebootDir,
    cmdline: o.prebootCmdline,
    allowNoIommu: o.allowNoIommu,
  };
}

async function iso(o: IsoOptions, cmd: IsoCommand): Promise<void> {
  const preboot = await prebootOf(o, cmd);
  const r = await buildIso({
    output: o.output,
    hv: o.hv,
    hvArgs: o.hvArgs,
    policy: o.policy,
    preboot,
    log: o.quiet ? undefined : (m) => process.stderr.write(`iso: ${m}\n`),
  });
  process.stdout.write(
    `${shown(r.output)}: ${(r.sizeBytes / (1024 * 1024)).toFixed(1)} MiB, ${shown(r.hv)}` +
      `${r.hvArgs ? ` ${r.hvArgs}` : ""}` +
      `${r.preboot ? `, preboot guest (initrd ${(r.preboot.initrdBytes / (1024 * 1024)).toFixed(1)} MiB with ${shown(r.preboot.header)})` : ""}` +
      `, built in ${r.seconds.toFixed(1)} s\n`,
  );
}
