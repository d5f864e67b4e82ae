// `parapet preboot build|site`: the preboot guest of two-step execution (docs/preboot.md).
import type { Command } from "@commander-js/extra-typings";
import { existsSync } from "node:fs";
import { readFile, writeFile } from "node:fs/promises";
import { checked, repeatable, shown } from "../lib/cliopts.ts";
import { PrebootConfigError } from "../lib/prebootconfig.ts";
import { buildPreboot, checkHeaderFile, readSiteFiles, sitePreboot } from "../lib/prebootimage.ts";

/** A --file value, HOST=GUEST with an absolute GUEST path. */
function siteFile(v: string): { host: string; guest: string } {
  const i = v.lastIndexOf("=");
  if (i <= 0 || !v.startsWith("/", i + 1)) throw new Error("expected HOST=GUEST with an absolute GUEST path");
  return { host: v.slice(0, i), guest: v.slice(i + 1) };
}

export function registerPreboot(program: Command): void {
  const preboot = program
    .command("preboot")
    .description(
      "The preboot guest of two-step execution: a small Linux that Parapet boots before the real OS. " +
        "Its app (Node.js 18) asks for a passphrase on the serial console, unlocks a LUKS2 detached header with " +
        "cryptsetup, compiles the volume key into a policy record and hands it to the hypervisor through a kexec " +
        "payload (VMMCALL). See docs/preboot.md.",
    );

  registerBuild(preboot);
  registerSite(preboot);
}

function registerBuild(preboot: Command): void {
  preboot
    .command("build")
    .summary("build the preboot guest's kernel and initramfs")
    .description(
      "Write vmlinuz (Debian's kernel, as the test guest's) and initrd.gz (busybox, Debian's nodejs 18, " +
        "cryptsetup, kexec, the preboot app bundled into one file, src/preboot/init). Debian packages are fetched " +
        "with apt-get download into cache/debian/ (never installed). The site's header and config are not in it: " +
        "see 'parapet preboot site'.",
    )
    .option("-o, --output <dir>", "output directory (default: build/preboot in the repository)")
    .option("--force", "overwrite existing outputs")
    .option("-q, --quiet", "print only errors")
    .addHelpText("after", "\nExample: parapet preboot build -o build/preboot --force")
    .action(async (o) => {
      const log = o.quiet ? undefined : (m: string) => process.stderr.write(`preboot: ${m}\n`);
      const r = await buildPreboot({ output: o.output, force: o.force, log });
      process.stdout.write(
        `${shown(r.vmlinuz)}: kernel ${r.kver}\n${shown(r.initrd)}: ${(r.initrdBytes / 1048576).toFixed(1)} MiB ` +
          `(${r.packages.join(", ")}; app ${(r.appBytes / 1024).toFixed(0)} KiB) in ${r.seconds.toFixed(1)} s\n`,
      );
    });
}

function registerSite(preboot: Command): void {
  preboot
    .command("site")
    .summary("write the site archive: the LUKS2 header, the preboot config and the smart card files")
    .description(
      "Validate the config (JSON, docs/preboot.md) and the header (LUKS2, aes-xts-plain64, 512-bit key, " +
        "512-byte sectors, data at 0) and write an uncompressed cpio archive holding both, and any further files, " +
        "to append to initrd.gz (cat initrd.gz site.cpio > initrd-site.gz): the kernel unpacks both archives. " +
        "With a token section in the config (smart card users, docs/tokens.md) the archive must hold its CA " +
        "certificate (--ca) and every file its env names (--file). The record the preboot guest hands over is refused " +
        'on a machine without a usable IOMMU unless the config says "allowNoIommu": true.',
    )
    .requiredOption("--header <file>", "the disk's LUKS2 detached header (parapet luks format)")
    .requiredOption("--config <file>", "the preboot config (JSON)")
    .requiredOption("-o, --output <file>", "the cpio archive to write")
    .option("--ca <file>", "the organisation CA certificate (PEM or DER), stored at the config's token.ca path")
    .option(
      "--file <host=guest>",
      "add a host file (or a directory, with everything below it) at an absolute path " +
        "of the preboot filesystem, e.g. a SoftHSM2 store: --file store/softhsm2.conf=/etc/parapet/softhsm/softhsm2.conf " +
        "(repeatable)",
      repeatable(checked(siteFile)),
    )
    .option("--force", "overwrite the output")
    .addHelpText(
      "after",
      "\nExamples:\n  parapet preboot site --header disk.hdr --config preboot.json -o build/preboot/site.cpio\n" +
        "  parapet preboot site --header disk.hdr --config preboot.json --ca org-ca.pem \\\n" +
        "      --file store/tokens=/etc/parapet/softhsm/tokens --file store/guest.conf=/etc/parapet/softhsm/softhsm2.conf -o site.cpio",
    )
    .action(async (o, cmd) => {
      if (existsSync(o.output) && !o.force) throw new Error(`${o.output} already exists; pass --force to overwrite it`);
      let config: unknown;
      try {
        config = JSON.parse(await readFile(o.config, "utf8"));
      } catch (e) {
        if (e instanceof SyntaxError) throw new PrebootConfigError(o.config, [`not valid JSON: ${e.message}`]);
        throw e;
      }
      await checkHeaderFile(o.header);
      const specs = [...(o.file ?? [])];
      if (o.ca) {
        const ca = (config as { token?: { ca?: unknown } } | null)?.token?.ca;
        if (typeof ca !== "string") return cmd.error("--ca needs a token section with a ca path in the config");
        specs.push({ host: o.ca, guest: ca });
      }
      const files = await readSiteFiles(specs);
      const site = sitePreboot({ header: await readFile(o.header), config, configName: o.config, files });
      await writeFile(o.output, site.cpio, { mode: 0o600 });
      process.stdout.write(
        `${shown(o.output)}: header at ${site.config.header}` +
          `${files.length ? `, ${files.length} more file${files.length === 1 ? "" : "s"}` : ""}, ${site.cpio.length} bytes` +
          `${site.config.allowNoIommu ? "; its record may be used on a machine without an IOMMU (allowNoIommu)" : ""}\n`,
      );
    });
}
