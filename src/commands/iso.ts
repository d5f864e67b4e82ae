// `parapet iso`: a BIOS-bootable GRUB ISO that loads Parapet by multiboot2 (logic: src/lib/iso.ts).
import type { Command } from "commander";
import { relative } from "node:path";
import { buildIso, DEFAULT_HV, DEFAULT_ISO, ISO_PACKAGES } from "../lib/iso.ts";

function shown(path: string): string {
  const rel = relative(process.cwd(), path);
  return rel && !rel.startsWith("..") ? rel : path;
}

export function registerIso(program: Command): void {
  program
    .command("iso")
    .description(
      "Build a BIOS-bootable GRUB ISO (grub-mkrescue, i386-pc only) whose grub.cfg loads Parapet with " +
        "'multiboot2 /boot/parapet.elf <hv-args>' and boots it at once (timeout 0). Parapet then boots " +
        "the guest from the first hard disk (BIOS drive 0x80), as on a real PC. GRUB writes to the " +
        "console only, never to a serial port, so COM1 carries just the guest console.",
    )
    .option("-o, --output <file>", "ISO to write", shown(DEFAULT_ISO))
    .option("--hv <file>", "hypervisor ELF to put on the ISO", shown(DEFAULT_HV))
    .option("--hv-args <options>", "hypervisor command line, e.g. \"log=e9\" or \"log=com2 boot=0x81\" (empty: log=e9, boot=0x80)", "")
    .option("-q, --quiet", "print only errors")
    .addHelpText(
      "after",
      `\nNeeds (Debian): apt-get install ${ISO_PACKAGES.join(" ")}\n` +
        "Boot it: qemu-system-x86_64 -accel tcg -cpu EPYC,+svm,+npt -m 512 -display none -serial stdio \\\n" +
        "  -debugcon file:build/hv.log -no-reboot -cdrom build/boot.iso -boot d \\\n" +
        "  -drive file=build/guest.img,format=raw,if=ide,index=0,media=disk,snapshot=on\n" +
        "or: parapet run --iso build/boot.iso --snapshot\n" +
        "Example: parapet iso -o build/boot.iso --hv-args \"log=e9\"",
    )
    .action(async (o: { output: string; hv: string; hvArgs: string; quiet?: boolean }) => {
      const r = await buildIso({
        output: o.output,
        hv: o.hv,
        hvArgs: o.hvArgs,
        log: o.quiet ? undefined : (m) => process.stderr.write(`iso: ${m}\n`),
      });
      process.stdout.write(
        `${shown(r.output)}: ${(r.sizeBytes / (1024 * 1024)).toFixed(1)} MiB, ${shown(r.hv)}` +
          `${r.hvArgs ? ` ${r.hvArgs}` : ""}, built in ${r.seconds.toFixed(1)} s\n`,
      );
    });
}
