// Builds the test guest's disk image: Debian's kernel, an initramfs with
// busybox, fio, cryptsetup, guest/init, ptest, ataatk, ahciatk, chosen kernel modules
// and parapet_guest.ko, on a syslinux-bootable FAT32 partition, followed by a
// raw data partition. See docs/guest.md.
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rename, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { installedVersion, type Log } from "./debian/apt.ts";
import { readModule, resolveModules, type KernelModule } from "./debian/modules.ts";
import { fetchBusybox, fetchKernel, type DebianKernel } from "./debian/packages.ts";
import type { StubLibrary } from "./debian/stubs.ts";
import { GUEST_LIB_DIR, resolveTools, type ToolClosure, type ToolSpec } from "./debian/tools.ts";
import {
  checkDiskSize,
  DATA_PARTITION_START_LBA,
  DEFAULT_DISK_BYTES,
  diskLayout,
  makeBootDisk,
  MIB,
  parseSize,
  SYSLINUX_MBR,
  type MbrPartition,
} from "./diskimage.ts";
import { requireTools, run, runText } from "./exec.ts";
import { Initramfs } from "./initramfs.ts";

/** The repository root (this file is src/lib/guestimage.ts). */
export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
export const DEBIAN_CACHE = join(REPO_ROOT, "cache", "debian");
export const DEFAULT_IMAGE = join(REPO_ROOT, "build", "guest.img");
/**
 * Kernel modules loaded at boot (dependencies are added): the MSR device; the
 * PIIX IDE disk (sd_mod first, so the disks have block devices as soon as
 * ata_piix has probed); AHCI (q35's own SATA controller); FAT with the code page and character sets that vfat
 * uses by default in Debian's kernel (cp437, ascii, utf8) and iso8859-1; and
 * dm-crypt with XTS and AES (AES-NI when the CPU has it; the generic AES is built in).
 */
export const DEFAULT_MODULES: readonly string[] = [
  "msr",
  "sd_mod",
  "ata_piix",
  "ahci",
  "vfat",
  "nls_cp437",
  "nls_ascii",
  "nls_utf8",
  "nls_iso8859_1",
  "dm_crypt",
  "ecb",
  "xts",
  "aesni_intel",
];
/**
 * The data partition starts at LBA 131072 whatever the size; in an image of the default
 * size (96 MiB) it is LBA 131072-196607, /dev/bootdisk2 in the guest.
 */
export { DATA_PARTITION_START_LBA, DEFAULT_DISK_BYTES };
export const DATA_PARTITION_SECTORS = diskLayout(DEFAULT_DISK_BYTES).data.sectors;

/**
 * Debian programs the guest can have, by the name `--tools` takes. fio links
 * the libraries of its Ceph, GlusterFS, NBD, RDMA and PMEM engines, whose own
 * dependencies come to about 70 MB (ICU alone 31 MB): the image replaces them
 * with stubs that end the program with a message if one of those engines is used.
 */
export const GUEST_TOOLS: Readonly<Record<string, ToolSpec>> = {
  fio: {
    package: "fio",
    binaries: ["fio"],
    stub: ["librados.so.2", "librbd.so.1", "libgfapi.so.0", "libnbd.so.0", "libibverbs.so.1", "librdmacm.so.1", "libpmem.so.1", "libpmemblk.so.1"],
  },
  cryptsetup: { package: "cryptsetup-bin", binaries: ["cryptsetup"] },
};
export const DEFAULT_TOOLS: readonly string[] = ["fio", "cryptsetup"];

export interface GuestImageOptions {
  /** Output image path (default build/guest.img in the repository). */
  output?: string;
  /** Disk size in bytes, or a size string such as "96M" (default 96 MiB; at least 65 MiB). */
  size?: number | string;
  /** Kernel modules to load at boot, with their dependencies (default DEFAULT_MODULES). */
  modules?: readonly string[];
  /** Debian programs to include, names of GUEST_TOOLS (default DEFAULT_TOOLS). */
  tools?: readonly string[];
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
  /** The Debian programs included, as "name version" of their packages. */
  tools: string[];
  initramfsBytes: number;
  /** The bootable FAT32 partition (/dev/bootdisk1 in the guest). */
  bootPartition: MbrPartition;
  /** The raw data partition (/dev/bootdisk2 in the guest), type 0xDA. */
  dataPartition: MbrPartition;
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

interface GuestPrograms {
  ptest: string;
  ataatk: string;
  ahciatk: string;
  module: string;
}

/** Builds ptest, ataatk, ahciatk and parapet_guest.ko for `kver` with guest/Makefile; returns their paths. */
async function buildGuestPrograms(kernel: DebianKernel, log: Log): Promise<GuestPrograms> {
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
  const ataatk = join(out, "ataatk");
  const ahciatk = join(out, "ahciatk");
  const module = join(out, "parapet_guest.ko");
  const magic = /vermagic=(\S+)/.exec((await readFile(module)).toString("latin1"));
  if (!magic || magic[1] !== kernel.kver) {
    throw new Error(`${module} is built for ${magic?.[1] ?? "an unknown kernel"}, not ${kernel.kver}`);
  }
  return { ptest, ataatk, ahciatk, module };
}

/** C source and linker version script of a stub library (see GUEST_TOOLS). */
export function stubSource(stub: StubLibrary): { c: string; map?: string } {
  const msg = `${stub.soname} is a stub in the Parapet test guest: this feature is not available\n`;
  const lines = [
    `/* Generated by parapet image: stands in for ${stub.soname}. */`,
    `static const char msg[] = ${JSON.stringify(msg)};`,
    "__attribute__((noreturn)) static void missing(void)",
    "{",
    "  long ret;",
    '  __asm__ volatile("syscall" : "=a"(ret) : "a"(1L), "D"(2L), "S"(msg), "d"(sizeof msg - 1) : "rcx", "r11", "memory");',
    '  __asm__ volatile("syscall" : : "a"(231L), "D"(127L) : "rcx", "r11", "memory");',
    "  __builtin_unreachable();",
    "}",
  ];
  const seen = new Set<string>();
  const nodes: string[] = [];
  const versions = [...stub.symbols.keys()].filter((v) => v !== "");
  for (const [version, names] of stub.symbols) {
    const mine = names.filter((n) => !seen.has(n));
    for (const n of mine) {
      seen.add(n);
      lines.push(`void ${n}(void) { missing(); }`);
    }
    if (version !== "") {
      // Unversioned imports go into the first version node, as its default version.
      const extra = version === versions[0] ? (stub.symbols.get("") ?? []) : [];
      nodes.push(
        `${version} {\n  global:\n${[...mine, ...extra].map((n) => `    ${n};\n`).join("")}${version === versions[0] ? "  local: *;\n" : ""}};\n`,
      );
    }
  }
  return { c: `${lines.join("\n")}\n`, map: nodes.length ? nodes.join("") : undefined };
}

/** Compiles the stub libraries (cached by source in build/guest/stubs/); returns soname -> path. */
async function buildStubs(stubs: readonly StubLibrary[]): Promise<Map<string, string>> {
  const dir = join(REPO_ROOT, "build", "guest", "stubs");
  const out = new Map<string, string>();
  for (const stub of stubs) {
    const { c, map } = stubSource(stub);
    const hash = createHash("sha256")
      .update(stub.soname)
      .update(c)
      .update(map ?? "")
      .digest("hex")
      .slice(0, 12);
    const lib = join(dir, `${stub.soname}-${hash}`);
    if (!existsSync(lib)) {
      await mkdir(dir, { recursive: true });
      const src = `${lib}.c`;
      await writeFile(src, c);
      const args = ["-shared", "-fPIC", "-nostdlib", "-O2", "-s", `-Wl,-soname,${stub.soname}`, "-o", `${lib}.tmp`, src];
      if (map) {
        await writeFile(`${lib}.map`, map);
        args.push(`-Wl,--version-script,${lib}.map`);
      }
      await run("cc", args);
      await rename(`${lib}.tmp`, lib);
    }
    out.set(stub.soname, lib);
  }
  return out;
}

/** Symlink paths of busybox's applets, as it lists them (e.g. bin/sh, sbin/insmod). */
export async function busyboxApplets(binary: string): Promise<string[]> {
  const list = await runText(binary, ["--list-full"]);
  return list
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l && l !== "bin/busybox");
}

/** An initramfs with the directories, device nodes and user database every guest needs. */
export function baseInitramfs(): Initramfs {
  const fs = new Initramfs();
  for (const d of ["bin", "sbin", "usr/bin", "usr/sbin", "etc", "lib", "proc", "sys", "dev", "run", "tmp", "root"]) {
    fs.dir(d, d === "tmp" ? 0o1777 : d === "root" ? 0o700 : 0o755);
  }
  // The kernel opens /dev/console for init before init can mount devtmpfs.
  fs.charDevice("dev/console", 5, 1, 0o600);
  fs.charDevice("dev/null", 1, 3, 0o666);
  fs.file("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n");
  fs.file("etc/group", "root:x:0:\n");
  return fs;
}

/**
 * Adds Debian programs with their libraries (and stubs), then busybox and a link for each of
 * its applets that no Debian program already provides.
 */
export async function addProgramsAndBusybox(fs: Initramfs, tools: ToolClosure, stubs: Map<string, string>, busybox: string): Promise<void> {
  // Debian programs first: they win over busybox applets of the same name.
  for (const p of tools.programs) fs.file(p.guestPath, await readFile(p.source), 0o755);
  for (const l of tools.libraries) fs.file(l.guestPath, await readFile(l.source), 0o755);
  for (const [soname, path] of stubs) fs.file(`${GUEST_LIB_DIR}/${soname}`, await readFile(path), 0o755);
  for (const l of tools.symlinks) fs.symlink(l.guestPath, l.target);
  fs.dir("run/cryptsetup", 0o700);

  fs.file("bin/busybox", await readFile(busybox), 0o755);
  for (const applet of await busyboxApplets(busybox)) {
    if (!fs.has(applet)) fs.symlink(applet, "/bin/busybox");
  }
}

async function buildInitramfs(
  kernel: DebianKernel,
  busybox: string,
  modules: readonly KernelModule[],
  programs: GuestPrograms,
  tools: ToolClosure,
  stubs: Map<string, string>,
): Promise<Buffer> {
  const fs = baseInitramfs();
  await addProgramsAndBusybox(fs, tools, stubs, busybox);
  fs.file("init", await readFile(join(REPO_ROOT, "guest", "init")), 0o755);
  fs.file("bin/ptest", await readFile(programs.ptest), 0o755);
  fs.file("bin/ataatk", await readFile(programs.ataatk), 0o755);
  fs.file("bin/ahciatk", await readFile(programs.ahciatk), 0o755);
  for (const script of ["namedisks", "mountboot"]) {
    fs.file(`bin/${script}`, await readFile(join(REPO_ROOT, "guest", script)), 0o755);
  }

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
  const sizeBytes = typeof opts.size === "number" ? opts.size : opts.size ? parseSize(opts.size) : DEFAULT_DISK_BYTES;
  const moduleNames = [...(opts.modules ?? DEFAULT_MODULES)].map((m) => m.trim()).filter(Boolean);
  const toolNames = [...new Set([...(opts.tools ?? DEFAULT_TOOLS)].map((t) => t.trim()).filter(Boolean))];
  for (const t of toolNames) {
    if (!GUEST_TOOLS[t]) throw new Error(`unknown guest tool '${t}' (known: ${Object.keys(GUEST_TOOLS).join(", ")})`);
  }
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
  const tools = await resolveTools(
    DEBIAN_CACHE,
    toolNames.map((t) => GUEST_TOOLS[t]),
    log,
  );
  if (toolNames.length) {
    log(
      `programs: ${tools.programs.map((p) => p.guestPath).join(", ")}; ${tools.libraries.length} libraries, ` +
        `stubs for ${tools.stubs.map((s) => s.soname).join(", ") || "none"}`,
    );
  }
  const programs = await buildGuestPrograms(kernel, log);
  const stubs = await buildStubs(tools.stubs);

  const initrd = await buildInitramfs(kernel, busybox.binary, modules, programs, tools, stubs);
  log(`initramfs ${(initrd.length / MIB).toFixed(1)} MiB`);

  await mkdir(dirname(output), { recursive: true });
  let layout = diskLayout(sizeBytes);
  const work = await mkdtemp(join(tmpdir(), "parapet-image-"));
  try {
    const initrdPath = join(work, "initrd.gz");
    await writeFile(initrdPath, initrd);
    layout = await makeBootDisk({
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
    tools: tools.packages.filter((p) => toolNames.some((t) => GUEST_TOOLS[t].package === p.name)).map((p) => `${p.name} ${p.version}`),
    initramfsBytes: initrd.length,
    bootPartition: layout.boot,
    dataPartition: layout.data,
    cmdline,
    seconds: (Date.now() - started) / 1000,
  };
}
