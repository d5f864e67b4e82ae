// Builds the test guest's disk image: Debian's kernel, an initramfs with
// busybox, guest/init, ptest, chosen kernel modules and parapet_guest.ko,
// on a syslinux-bootable FAT32 partition. See docs/guest.md.
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import {
  fetchBusybox,
  fetchKernel,
  installedVersion,
  readModule,
  resolveModules,
  type DebianKernel,
  type KernelModule,
  type Log,
} from "./debian.ts";
import { checkDiskSize, makeBootDisk, MIB, parseSize, SYSLINUX_MBR } from "./diskimage.ts";
import { requireTools, run, runText } from "./exec.ts";
import { Initramfs } from "./initramfs.ts";

/** The repository root (this file is src/lib/guestimage.ts). */
export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
export const DEBIAN_CACHE = join(REPO_ROOT, "cache", "debian");
export const DEFAULT_IMAGE = join(REPO_ROOT, "build", "guest.img");
export const DEFAULT_MODULES: readonly string[] = ["msr"];

export interface GuestImageOptions {
  /** Output image path (default build/guest.img in the repository). */
  output?: string;
  /** Disk size in bytes, or a size string such as "64M" (default 64 MiB). */
  size?: number | string;
  /** Kernel modules to load at boot, with their dependencies (default ["msr"]). */
  modules?: readonly string[];
  /** Extra kernel command-line arguments after console=ttyS0,115200. */
  append?: string;
  /** Overwrite an existing output. */
  force?: boolean;
  /** Progress messages; default silent. */
  log?: Log;
}

export interface GuestImageResult {
  output: string;
  sizeBytes: number;
  /** Kernel release, e.g. 6.1.0-56-amd64. */
  kver: string;
  kernelPackage: string;
  kernelVersion: string;
  busyboxVersion: string;
  modules: string[];
  initramfsBytes: number;
  cmdline: string;
  seconds: number;
}

const HOST_TOOLS = ["apt-get", "apt-cache", "dpkg", "dpkg-deb", "dpkg-query", "depmod", "make", "cc", "strip", "mformat", "mcopy", "syslinux"];

/** The kernel command line the image boots with. */
export function kernelCmdline(append = ""): string {
  return ["console=ttyS0,115200", append.trim()].filter(Boolean).join(" ");
}

export function syslinuxConfig(cmdline: string): string {
  return [
    "SERIAL 0 115200",
    "DEFAULT parapet",
    "PROMPT 0",
    "TIMEOUT 0",
    "LABEL parapet",
    "  LINUX /vmlinuz",
    "  INITRD /initrd.gz",
    `  APPEND ${cmdline}`,
    "",
  ].join("\n");
}

/** Builds ptest and parapet_guest.ko for `kver` with guest/Makefile; returns their paths. */
async function buildGuestPrograms(kernel: DebianKernel, log: Log): Promise<{ ptest: string; module: string }> {
  const headers = `/usr/src/linux-headers-${kernel.kver}`;
  if (!existsSync(join(headers, "Makefile"))) {
    throw new Error(
      `no kernel headers for the guest kernel ${kernel.kver} in ${headers}; install them with: ` +
        `apt-get install linux-headers-${kernel.kver} (the image uses ${kernel.pkg.name} ${kernel.pkg.version})`,
    );
  }
  const headersVersion = await installedVersion(`linux-headers-${kernel.kver}`);
  if (headersVersion && headersVersion !== kernel.pkg.version) {
    log(`warning: linux-headers-${kernel.kver} is ${headersVersion}, the kernel is ${kernel.pkg.version} (same ABI, building anyway)`);
  }
  const out = join(REPO_ROOT, "build", "guest");
  try {
    await run("make", ["-C", join(REPO_ROOT, "guest"), `KVER=${kernel.kver}`, `GUEST_OUT=${out}`, "all"]);
  } catch (err) {
    throw new Error(`building the guest programs failed: ${err instanceof Error ? err.message : String(err)}`);
  }
  const ptest = join(out, "ptest");
  const module = join(out, "parapet_guest.ko");
  const magic = /vermagic=(\S+)/.exec((await readFile(module)).toString("latin1"));
  if (!magic || magic[1] !== kernel.kver) {
    throw new Error(`${module} is built for ${magic?.[1] ?? "an unknown kernel"}, not ${kernel.kver}`);
  }
  return { ptest, module };
}

/** Symlink paths of busybox's applets, as it lists them (e.g. bin/sh, sbin/insmod). */
async function busyboxApplets(binary: string): Promise<string[]> {
  const list = await runText(binary, ["--list-full"]);
  return list.split("\n").map((l) => l.trim()).filter((l) => l && l !== "bin/busybox");
}

async function buildInitramfs(
  kernel: DebianKernel,
  busybox: string,
  modules: readonly KernelModule[],
  programs: { ptest: string; module: string },
): Promise<Buffer> {
  const fs = new Initramfs();
  for (const d of ["bin", "sbin", "usr/bin", "usr/sbin", "etc", "lib", "proc", "sys", "dev", "run", "tmp", "root"]) {
    fs.dir(d, d === "tmp" ? 0o1777 : d === "root" ? 0o700 : 0o755);
  }
  // The kernel opens /dev/console for init before init can mount devtmpfs.
  fs.charDevice("dev/console", 5, 1, 0o600);
  fs.charDevice("dev/null", 1, 3, 0o666);
  fs.file("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n");
  fs.file("etc/group", "root:x:0:\n");

  fs.file("bin/busybox", await readFile(busybox), 0o755);
  for (const applet of await busyboxApplets(busybox)) {
    if (!fs.has(applet)) fs.symlink(applet, "/bin/busybox");
  }
  fs.file("init", await readFile(join(REPO_ROOT, "guest", "init")), 0o755);
  fs.file("bin/ptest", await readFile(programs.ptest), 0o755);

  const order: string[] = [];
  for (const mod of modules) {
    const path = `/lib/modules/${kernel.kver}/${mod.relPath}`;
    fs.file(path, await readModule(mod));
    order.push(path);
  }
  fs.file("lib/modules/load-order", order.map((p) => `${p}\n`).join(""));
  fs.file("lib/parapet/parapet_guest.ko", await readFile(programs.module));
  return fs.build();
}

/** Builds the test guest's BIOS-bootable raw disk image. */
export async function buildGuestImage(opts: GuestImageOptions = {}): Promise<GuestImageResult> {
  const started = Date.now();
  const log: Log = opts.log ?? (() => {});
  const output = resolve(opts.output ?? DEFAULT_IMAGE);
  const sizeBytes = typeof opts.size === "number" ? opts.size : parseSize(opts.size ?? "64M");
  const moduleNames = [...(opts.modules ?? DEFAULT_MODULES)].map((m) => m.trim()).filter(Boolean);
  const cmdline = kernelCmdline(opts.append);

  checkDiskSize(sizeBytes);
  if (existsSync(output) && !opts.force) {
    throw new Error(`${output} already exists; pass --force to overwrite it`);
  }
  requireTools(HOST_TOOLS);
  if (!existsSync(SYSLINUX_MBR)) {
    throw new Error(`${SYSLINUX_MBR} is missing; install it with: apt-get install syslinux-common`);
  }

  const kernel = await fetchKernel(DEBIAN_CACHE, log);
  log(`kernel ${kernel.pkg.name} ${kernel.pkg.version}${kernel.pkg.downloaded ? "" : " (cached)"}`);
  const busybox = await fetchBusybox(DEBIAN_CACHE, log);
  log(`busybox-static ${busybox.pkg.version}${busybox.pkg.downloaded ? "" : " (cached)"}`);
  const { modules, builtin } = await resolveModules(kernel, moduleNames);
  if (builtin.length) log(`built into the kernel, nothing to load: ${builtin.join(", ")}`);
  log(`modules: ${modules.map((m) => m.name).join(", ") || "(none)"}`);
  const programs = await buildGuestPrograms(kernel, log);

  const initrd = await buildInitramfs(kernel, busybox.binary, modules, programs);
  log(`initramfs ${(initrd.length / MIB).toFixed(1)} MiB`);

  await mkdir(dirname(output), { recursive: true });
  const work = await mkdtemp(join(tmpdir(), "parapet-image-"));
  try {
    const initrdPath = join(work, "initrd.gz");
    await writeFile(initrdPath, initrd);
    await makeBootDisk({
      output,
      sizeBytes,
      files: [
        { name: "vmlinuz", source: kernel.vmlinuz },
        { name: "initrd.gz", source: initrdPath },
      ],
      syslinuxCfg: syslinuxConfig(cmdline),
    });
  } finally {
    await rm(work, { recursive: true, force: true });
  }

  return {
    output,
    sizeBytes,
    kver: kernel.kver,
    kernelPackage: kernel.pkg.name,
    kernelVersion: kernel.pkg.version,
    busyboxVersion: busybox.pkg.version,
    modules: modules.map((m) => m.name),
    initramfsBytes: initrd.length,
    cmdline,
    seconds: (Date.now() - started) / 1000,
  };
}
