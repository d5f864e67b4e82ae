// `parapet image`: builds the test guest's BIOS-bootable disk image.
import type { Command } from "@commander-js/extra-typings";
import { shown } from "../lib/cliopts.ts";
import { buildGuestImage, DEFAULT_MODULES, DEFAULT_TOOLS, GUEST_TOOLS } from "../lib/guestimage.ts";

export function registerImage(program: Command): void {
  program
    .command("image")
    .description(
      "Build the test guest disk image: Debian's generic kernel and an initramfs with busybox, fio, cryptsetup, " +
        "guest/init, ptest, ataatk, ahciatk and parapet_guest.ko, on a syslinux-bootable FAT32 partition (MBR, raw), " +
        "then a raw data partition (type 0xDA) from 64 MiB to the end of the disk. " +
        "Debian packages are fetched with apt-get download into cache/debian/ (never installed).",
    )
    .option("-o, --output <file>", "image to write (default: build/guest.img in the repository)")
    .option("--size <size>", "disk size, e.g. 96M or 1G (a bare number is MiB; at least 65M; the data partition is the part past 64M)", "96M")
    .option(
      "--modules <list>",
      "comma-separated kernel modules to load at boot; their dependencies are added (empty for none)",
      DEFAULT_MODULES.join(","),
    )
    .option(
      "--tools <list>",
      `comma-separated Debian programs to include with their libraries (${Object.keys(GUEST_TOOLS).join(", ")}; empty for none)`,
      DEFAULT_TOOLS.join(","),
    )
    .option("--append <args>", "extra kernel command-line arguments after console=ttyS0,115200", "")
    .option("--force", "overwrite the output if it exists")
    .option("-q, --quiet", "print only errors")
    .addHelpText(
      "after",
      "\nThe kernel's headers must be installed (apt-get install linux-headers-amd64) to build\n" +
        "parapet_guest.ko; guest/Makefile builds ptest and the module into build/guest/.\n" +
        "Example: parapet image -o build/guest.img --modules msr --append 'loglevel=4' --force",
    )
    .action(async (opts) => {
      const log = opts.quiet ? undefined : (msg: string) => process.stderr.write(`image: ${msg}\n`);
      const result = await buildGuestImage({
        output: opts.output,
        size: opts.size,
        modules: opts.modules.split(","),
        tools: opts.tools.split(","),
        append: opts.append,
        force: opts.force,
        log,
      });
      process.stdout.write(
        `${shown(result.output)}: ${result.sizeBytes / (1024 * 1024)} MiB, kernel ${result.kver} (${result.kernelVersion}), ` +
          `initramfs ${(result.initramfsBytes / 1024).toFixed(0)} KiB, built in ${result.seconds.toFixed(1)} s\n`,
      );
    });
}
