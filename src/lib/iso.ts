// Builds a BIOS-bootable GRUB ISO that loads Parapet by multiboot2, the way a real PC
// is set up: GRUB starts Parapet, and Parapet boots the guest OS from the first hard
// disk (BIOS drive 0x80, or boot= on the hypervisor command line).
import { existsSync, statSync } from "node:fs";
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { findTool, run } from "./exec.ts";
import { REPO_ROOT } from "./guestimage.ts";
import { appendSite, checkHeaderFile, DEFAULT_PREBOOT_DIR, sitePreboot } from "./prebootimage.ts";

export const DEFAULT_ISO = join(REPO_ROOT, "build", "boot.iso");
export const DEFAULT_HV = join(REPO_ROOT, "build", "parapet.elf");

/** Where Debian's grub-pc-bin puts GRUB's BIOS (i386-pc) modules and boot images. */
export const GRUB_PC_DIR = process.env.PARAPET_GRUB_PC_DIR ?? "/usr/lib/grub/i386-pc";

/** Debian packages that grub-mkrescue needs for an i386-pc ISO. */
export const ISO_PACKAGES = ["grub-pc-bin", "grub-common", "xorriso", "mtools"] as const;

/** Host tools the ISO builder runs (grub-mkrescue calls xorriso and, on some platforms, mformat). */
const ISO_TOOLS: Readonly<Record<string, string>> = {
  "grub-mkrescue": "grub-common",
  xorriso: "xorriso",
  mformat: "mtools",
};

/** GRUB modules the ISO needs besides what grub-mkrescue always adds (keeps the ISO small). */
const GRUB_MODULES = ["normal", "configfile", "multiboot2", "iso9660", "biosdisk", "part_msdos", "echo", "test"];

/** The preboot guest's kernel command line on the ISO: the console on COM1, quiet boot. */
export const PREBOOT_CMDLINE = "console=ttyS0,115200 quiet";

/** Two-step execution: the preboot guest that Parapet runs first (docs/preboot.md). */
export interface IsoPreboot {
  /** Directory holding vmlinuz and initrd.gz from `parapet preboot build` (default build/preboot). */
  dir?: string;
  /** The LUKS2 detached header file (or give `site`). */
  header?: string;
  /** A site archive from `parapet preboot site` (header, config, token files), instead of header/config. */
  site?: string;
  /** The preboot config, parsed JSON (default { version: 1 }: drive 0/0, 3 tries). */
  config?: unknown;
  configName?: string;
  /**
   * Set the config's allowNoIommu: the record the preboot guest hands over may be used on a
   * machine without a usable IOMMU. Only with `header` (a site archive's config says it itself).
   */
  allowNoIommu?: boolean;
  /** Kernel command line (default PREBOOT_CMDLINE). */
  cmdline?: string;
}

export interface IsoOptions {
  /** ISO to write (default build/boot.iso in the repository). */
  output?: string;
  /** Hypervisor ELF (default build/parapet.elf in the repository). */
  hv?: string;
  /** Hypervisor command-line options, e.g. "log=e9 boot=0x80" (default none: log=e9, boot=0x80). */
  hvArgs?: string;
  /** A policy record (parapet policy) for GRUB to load as a module: the keys given directly. */
  policy?: string;
  /** Put the preboot guest and the header on the ISO (two-step execution). */
  preboot?: IsoPreboot;
  /** Overwrite an existing output (default true: the ISO is a build product). */
  force?: boolean;
  /** Progress messages; default silent. */
  log?: (msg: string) => void;
}

export interface IsoResult {
  output: string;
  sizeBytes: number;
  hv: string;
  hvArgs: string;
  grubCfg: string;
  /** With a preboot guest: the kernel and initrd (with the site archive) sizes. */
  preboot?: { kernelBytes: number; initrdBytes: number; header: string };
  seconds: number;
}

/**
 * Checks the hypervisor arguments: GRUB parses its config file as a shell-like language,
 * so only plain key=value words are accepted (no quotes, `$`, `;`, braces or newlines).
 */
export function checkHvArgs(hvArgs: string): string {
  const words = hvArgs.trim().split(/\s+/).filter(Boolean);
  for (const w of words) {
    if (!/^[A-Za-z0-9_.:,+-]+=[A-Za-z0-9_.:,+/-]*$/.test(w)) {
      throw new Error(`--hv-args: '${w}' is not a plain key=value option (e.g. log=e9 boot=0x80)`);
    }
  }
  return words.join(" ");
}

/** A kernel command line GRUB will pass through unchanged: printable, no quotes, `$`, `;`, `\\` or braces. */
export function checkKernelCmdline(cmdline: string): string {
  const c = cmdline.trim().replace(/\s+/g, " ");
  if (!/^[A-Za-z0-9_.:,+=/@%-]*( [A-Za-z0-9_.:,+=/@%-]+)*$/.test(c)) {
    throw new Error(`preboot command line '${cmdline}': only plain words (letters, digits, _ . : , + = / @ % -) are allowed`);
  }
  if (c.length > 255) throw new Error(`preboot command line is ${c.length} bytes; Parapet takes at most 255`);
  return c;
}

/**
 * The grub.cfg on the ISO: no menu, no delay, console only, multiboot2 Parapet and boot it;
 * with `prebootCmdline`, the preboot kernel (its command line on the module line) and its
 * initrd follow as modules, in that order (hv/handoff/preboot.h).
 */
export function grubConfig(hvArgs = "", prebootCmdline?: string, policy = false): string {
  const args = checkHvArgs(hvArgs);
  const mods = policy ? ["\tmodule2 /boot/policy.rec"] : [];
  if (prebootCmdline !== undefined)
    mods.push(`\tmodule2 /boot/preboot/vmlinuz ${checkKernelCmdline(prebootCmdline)}`.trimEnd(), "\tmodule2 /boot/preboot/initrd.img");
  return [
    "# Written by parapet iso. GRUB stays off the serial ports (console only), so COM1",
    "# carries only the guest's console.",
    "set timeout=0",
    "set timeout_style=hidden",
    "set default=0",
    "terminal_input console",
    "terminal_output console",
    "",
    'menuentry "Parapet" {',
    `\tmultiboot2 /boot/parapet.elf${args ? ` ${args}` : ""}`,
    ...mods,
    "\tboot",
    "}",
    "",
  ].join("\n");
}

/** Throws one error naming every missing tool and the Debian packages to install. */
export function checkIsoTools(): void {
  const missing = Object.keys(ISO_TOOLS).filter((t) => !findTool(t));
  const noPc = !existsSync(join(GRUB_PC_DIR, "moddep.lst"));
  if (missing.length === 0 && !noPc) return;
  const what = [...missing];
  if (noPc) what.push(`GRUB's BIOS modules (${GRUB_PC_DIR})`);
  throw new Error(`cannot build a GRUB ISO: missing ${what.join(", ")}; ` + `install with: apt-get install ${ISO_PACKAGES.join(" ")}`);
}

/** The preboot guest's kernel, and its initramfs with the site appended (from a header and config, or a site archive). */
async function prebootFiles(pre: IsoPreboot): Promise<{ kernel: Buffer; initrd: Buffer; header: string }> {
  const dir = resolve(pre.dir ?? DEFAULT_PREBOOT_DIR);
  const files = ["vmlinuz", "initrd.gz"].map((f) => join(dir, f));
  for (const f of files) if (!existsSync(f)) throw new Error(`${f} does not exist (build the preboot guest with: parapet preboot build)`);
  if (!pre.header === !pre.site) throw new Error("the preboot guest needs the header (--header) or a site archive (--site), not both");
  let cpio: Buffer;
  const from = resolve((pre.header ?? pre.site)!);
  if (!existsSync(from)) throw new Error(`${from}: no such file`);
  if (pre.allowNoIommu && pre.site)
    throw new Error('allowNoIommu goes with a header: a site archive\'s config says it itself ("allowNoIommu": true)');
  if (pre.header) {
    await checkHeaderFile(from);
    let config = pre.config ?? { version: 1 };
    if (pre.allowNoIommu) {
      if (config === null || typeof config !== "object" || Array.isArray(config))
        throw new Error(`${pre.configName ?? "preboot config"}: must be a JSON object`);
      if ((config as { allowNoIommu?: unknown }).allowNoIommu === false) {
        throw new Error(
          `${pre.configName ?? "preboot config"} says "allowNoIommu": false, and allowing a machine without an IOMMU was asked for: give one or the other`,
        );
      }
      config = { ...config, allowNoIommu: true };
    }
    cpio = sitePreboot({ header: await readFile(from), config, configName: pre.configName }).cpio;
  } else {
    cpio = await readFile(from);
    if (cpio.subarray(0, 6).toString("latin1") !== "070701") throw new Error(`${from} is not a site archive (parapet preboot site)`);
  }
  return { kernel: await readFile(files[0]), initrd: appendSite(await readFile(files[1]), cpio), header: from };
}

/** Builds the ISO with grub-mkrescue (i386-pc only). */
export async function buildIso(opts: IsoOptions = {}): Promise<IsoResult> {
  const t0 = Date.now();
  const log = opts.log ?? (() => {});
  const output = resolve(opts.output ?? DEFAULT_ISO);
  const hv = resolve(opts.hv ?? DEFAULT_HV);
  const hvArgs = checkHvArgs(opts.hvArgs ?? "");
  if (!existsSync(hv)) throw new Error(`hypervisor ${hv} does not exist (build it with: make -C hv)`);
  if (existsSync(output) && opts.force === false) throw new Error(`${output} exists (use --force to overwrite)`);
  checkIsoTools();

  const pre = opts.preboot;
  if (pre && opts.policy) throw new Error("a policy record and a preboot guest: the keys come from one or the other");
  const preboot = pre && (await prebootFiles(pre));
  const policy = opts.policy ? resolve(opts.policy) : undefined;
  if (policy && !existsSync(policy)) throw new Error(`policy record ${policy}: no such file`);
  const grubCfg = grubConfig(hvArgs, pre ? (pre.cmdline ?? PREBOOT_CMDLINE) : undefined, policy !== undefined);
  const work = await mkdtemp(join(tmpdir(), "parapet-iso-"));
  try {
    const root = join(work, "root");
    await mkdir(join(root, "boot", "grub"), { recursive: true });
    await copyFile(hv, join(root, "boot", "parapet.elf"));
    if (policy) await copyFile(policy, join(root, "boot", "policy.rec"));
    if (preboot) {
      await mkdir(join(root, "boot", "preboot"));
      await writeFile(join(root, "boot", "preboot", "vmlinuz"), preboot.kernel);
      await writeFile(join(root, "boot", "preboot", "initrd.img"), preboot.initrd);
    }
    await writeFile(join(root, "boot", "grub", "grub.cfg"), grubCfg);
    await mkdir(dirname(output), { recursive: true });
    const tmpOut = join(work, "boot.iso");
    log(`grub-mkrescue (i386-pc) → ${output}`);
    await run("grub-mkrescue", [
      "-d",
      GRUB_PC_DIR,
      "--install-modules",
      GRUB_MODULES.join(" "),
      "--fonts=",
      "--locales=",
      "--themes=",
      "-o",
      tmpOut,
      root,
      // xorriso (mkisofs mode) options after the source: a stable volume name.
      "-V",
      "PARAPET",
    ]);
    await copyFile(tmpOut, output);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  return {
    output,
    sizeBytes: statSync(output).size,
    hv,
    hvArgs,
    grubCfg,
    preboot: preboot && { kernelBytes: preboot.kernel.length, initrdBytes: preboot.initrd.length, header: preboot.header },
    seconds: (Date.now() - t0) / 1000,
  };
}
