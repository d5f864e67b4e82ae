// Builds the preboot guest of two-step execution (docs/preboot.md): Debian's kernel, and an
// initramfs with busybox, Debian's Node.js 18, cryptsetup, kexec, pkcs11-tool with the
// SoftHSM2 and OpenSC PKCS#11 modules, the preboot app bundled into one file, and
// src/preboot/init. The site's LUKS2 header and config go into a second,
// small archive (sitePreboot) that the ISO builder appends to initrd.gz.
import { X509Certificate } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, readdir, readFile, rename, stat, writeFile } from "node:fs/promises";
import { join, posix, resolve } from "node:path";
import { build, type BuildOptions } from "esbuild";
import { fetchCandidate, type Log } from "./debian/apt.ts";
import { fetchBusybox, fetchKernel } from "./debian/packages.ts";
import { resolveTools, type ToolSpec } from "./debian/tools.ts";
import { MIB } from "./diskimage.ts";
import { requireTools } from "./exec.ts";
import { addProgramsAndBusybox, baseInitramfs, DEBIAN_CACHE, REPO_ROOT } from "./guestimage.ts";
import { Initramfs } from "./initramfs.ts";
import { checkSupported, luksInfo } from "./luks.ts";
import { CONFIG_PATH, PrebootConfigError, validateConfig, type PrebootConfig } from "./prebootconfig.ts";

export const DEFAULT_PREBOOT_DIR = join(REPO_ROOT, "build", "preboot");
/** The app's source entry point and where its bundle lives in the preboot guest. */
export const PREBOOT_ENTRY = join(REPO_ROOT, "src", "preboot", "main.ts");
export const PREBOOT_INIT = join(REPO_ROOT, "src", "preboot", "init");
export const PREBOOT_APP_PATH = "/usr/lib/parapet/preboot.js";

/**
 * Debian's own Node.js: the nodejs package at the candidate version of libnode108, which it
 * depends on exactly (apt's candidate for nodejs itself may come from another repository).
 */
export const PREBOOT_TOOLS: readonly ToolSpec[] = [
  { package: "nodejs", binaries: ["node"], versionOf: "libnode108" },
  { package: "cryptsetup-bin", binaries: ["cryptsetup"] },
  { package: "kexec-tools", binaries: ["kexec"] },
  { package: "opensc", binaries: ["pkcs11-tool"] },
  packageFile("libsofthsm2", "usr/lib/softhsm/libsofthsm2.so"),
  packageFile("opensc-pkcs11", "usr/lib/x86_64-linux-gnu/opensc-pkcs11.so"),
];

/**
 * A file of a package that is not a program, e.g. a PKCS#11 module that pkcs11-tool loads
 * with dlopen, as a ToolSpec: resolveTools looks programs up first under the package's
 * usr/bin and follows symbolic links inside the package, so a path relative to usr/bin names
 * any file of the package. The file goes into the guest at `path`, with its DT_NEEDED closure
 * like a program's.
 */
function packageFile(pkg: string, path: string): ToolSpec {
  return { package: pkg, binaries: [posix.relative("usr/bin", path)] };
}

/** The PKCS#11 modules in the preboot guest (a config's token.module names one of them). */
export const PREBOOT_PKCS11_MODULES: readonly string[] = PREBOOT_TOOLS.flatMap((t) =>
  t.binaries.filter((b) => b.endsWith(".so")).map((b) => posix.join("/usr/bin", b)),
);

/**
 * Debian builds libnode with some of Node's own JavaScript dependencies taken from other
 * packages at fixed paths; it aborts at start-up without them.
 */
export const NODE_SHARED_BUILTINS: readonly { package: string; path: string }[] = [
  { package: "node-cjs-module-lexer", path: "/usr/share/nodejs/cjs-module-lexer/lexer.js" },
  { package: "node-cjs-module-lexer", path: "/usr/share/nodejs/cjs-module-lexer/dist/lexer.js" },
  { package: "node-undici", path: "/usr/share/nodejs/undici/undici-fetch.js" },
  { package: "node-acorn", path: "/usr/share/nodejs/acorn/dist/acorn.js" },
  { package: "node-acorn", path: "/usr/share/nodejs/acorn-walk/dist/walk.js" },
];

const HOST_TOOLS = ["apt-get", "apt-cache", "dpkg", "dpkg-deb", "dpkg-query", "depmod"];

export interface PrebootBuildOptions {
  /** Output directory for vmlinuz and initrd.gz (default build/preboot). */
  output?: string;
  force?: boolean;
  log?: Log;
}

export interface PrebootBuildResult {
  vmlinuz: string;
  initrd: string;
  initrdBytes: number;
  appBytes: number;
  kver: string;
  /** Packages of the programs, "name version". */
  packages: string[];
  seconds: number;
}

/** The preboot app bundled by esbuild into one CommonJS file for Node.js 18. */
export async function bundlePrebootApp(): Promise<Buffer> {
  const r = await build(PREBOOT_BUNDLE);
  return Buffer.from(r.outputFiles[0].contents);
}

/** esbuild's options for the app (also what `parapet bench loc` measures the bundle with). */
export const PREBOOT_BUNDLE = {
  entryPoints: [PREBOOT_ENTRY],
  bundle: true,
  platform: "node",
  target: "node18",
  format: "cjs",
  write: false,
  minify: true,
  legalComments: "none",
  logLevel: "silent",
  banner: { js: "// Parapet preboot app (bundled from src/preboot by parapet preboot build)." },
} as const satisfies BuildOptions;

/** Builds vmlinuz and initrd.gz of the preboot guest. */
export async function buildPreboot(opts: PrebootBuildOptions = {}): Promise<PrebootBuildResult> {
  const started = Date.now();
  const log: Log = opts.log ?? (() => {});
  const outDir = resolve(opts.output ?? DEFAULT_PREBOOT_DIR);
  const vmlinuzOut = join(outDir, "vmlinuz");
  const initrdOut = join(outDir, "initrd.gz");
  for (const f of [vmlinuzOut, initrdOut]) {
    if (existsSync(f) && !opts.force) throw new Error(`${f} already exists; pass --force to overwrite it`);
  }
  requireTools(HOST_TOOLS);

  const kernel = await fetchKernel(DEBIAN_CACHE, log);
  log(`kernel ${kernel.pkg.name} ${kernel.pkg.version}${kernel.pkg.downloaded ? "" : " (cached)"}`);
  const busybox = await fetchBusybox(DEBIAN_CACHE, log);
  const tools = await resolveTools(DEBIAN_CACHE, PREBOOT_TOOLS, log);
  log(`programs: ${tools.programs.map((p) => p.guestPath).join(", ")}; ${tools.libraries.length} libraries`);
  const app = await bundlePrebootApp();
  log(`preboot app ${(app.length / 1024).toFixed(0)} KiB`);

  const fs = baseInitramfs();
  await addProgramsAndBusybox(fs, tools, new Map(), busybox.binary);
  for (const f of NODE_SHARED_BUILTINS) {
    const pkg = await fetchCandidate(DEBIAN_CACHE, f.package, log);
    fs.file(f.path, await readFile(join(pkg.root, f.path)));
  }
  // Debian's OpenSSL setup in Node reads this bundle; the preboot makes no TLS connection.
  fs.file("etc/ssl/certs/ca-certificates.crt", "");
  fs.file(PREBOOT_APP_PATH, app);
  fs.file("init", await readFile(PREBOOT_INIT), 0o755);
  fs.dir("etc/parapet", 0o755);
  const initrd = padTo4(fs.build());
  log(`initramfs ${(initrd.length / MIB).toFixed(1)} MiB`);

  await mkdir(outDir, { recursive: true });
  await writeFile(`${initrdOut}.tmp`, initrd);
  await rename(`${initrdOut}.tmp`, initrdOut);
  await writeFile(`${vmlinuzOut}.tmp`, await readFile(kernel.vmlinuz));
  await rename(`${vmlinuzOut}.tmp`, vmlinuzOut);
  return {
    vmlinuz: vmlinuzOut,
    initrd: initrdOut,
    initrdBytes: initrd.length,
    appBytes: app.length,
    kver: kernel.kver,
    packages: tools.packages.filter((p) => PREBOOT_TOOLS.some((t) => t.package === p.name)).map((p) => `${p.name} ${p.version}`),
    seconds: (Date.now() - started) / 1000,
  };
}

/**
 * The kernel takes an uncompressed cpio archive in a concatenated initrd only at an offset
 * that is a multiple of 4 (zeros between archives are skipped): initrd.gz is padded so that
 * the site archive can simply be appended to it.
 */
export function padTo4(initrd: Buffer): Buffer {
  const pad = (4 - (initrd.length % 4)) % 4;
  return pad ? Buffer.concat([initrd, Buffer.alloc(pad)]) : initrd;
}

/** initrd.gz followed by the site archive, at the 4-byte boundary the kernel needs. */
export function appendSite(initrd: Buffer, siteCpio: Buffer): Buffer {
  return Buffer.concat([padTo4(initrd), siteCpio]);
}

/** A file of the site archive besides the header and the config. */
export interface SiteFile {
  /** Absolute path in the preboot filesystem. */
  path: string;
  data: Uint8Array | string;
  /** Default 0600: site files are the site's secrets or trust anchors. */
  mode?: number;
}

export interface SitePrebootOptions {
  /** The LUKS2 detached header's bytes. */
  header: Uint8Array;
  /** The config, parsed JSON (validated here with the guest's own schema). */
  config: unknown;
  /** Shown in config errors (default preboot.json). */
  configName?: string;
  /** More files, e.g. the organisation CA at /etc/parapet/ca.pem and a SoftHSM2 token store. */
  files?: readonly SiteFile[];
}

/**
 * The site's part of the preboot guest: an uncompressed cpio archive holding the header (at
 * the config's `header` path), /etc/parapet/preboot.json and any further `files`. The kernel
 * unpacks archives concatenated after initrd.gz in order, so appending this one to it adds
 * the files. With a `token` section, its CA certificate must be one of the files, its module
 * one of PREBOOT_PKCS11_MODULES or a file, and each of its `env` values that is an absolute
 * path a file or a directory of the archive.
 */
export function sitePreboot(o: SitePrebootOptions): { cpio: Buffer; config: PrebootConfig } {
  const name = o.configName ?? "preboot.json";
  const config = validateConfig(o.config, name);
  if (o.header.length < 4096 || Buffer.from(o.header.subarray(0, 6)).toString("latin1") !== "LUKS\xba\xbe") {
    throw new Error("the header is not a LUKS header (no LUKS magic in its first bytes)");
  }
  if (posix.normalize(config.header) === CONFIG_PATH) throw new Error(`header: must not be ${CONFIG_PATH}`);
  const fs = new Initramfs();
  fs.dir("etc/parapet", 0o755);
  fs.file(config.header, Buffer.from(o.header), 0o600);
  fs.file(CONFIG_PATH, `${JSON.stringify(o.config, null, 2)}\n`, 0o644);
  const files = new Map<string, SiteFile>();
  for (const f of o.files ?? []) {
    const path = posix.normalize(f.path);
    if (!path.startsWith("/")) throw new Error(`site file ${f.path}: must be an absolute path`);
    if (path === CONFIG_PATH || path === posix.normalize(config.header))
      throw new Error(`site file ${path}: the ${path === CONFIG_PATH ? "config" : "header"} is already there`);
    fs.file(path, typeof f.data === "string" ? f.data : Buffer.from(f.data), f.mode ?? 0o600);
    files.set(path, f);
  }
  const t = config.token;
  if (t) {
    const problems: string[] = [];
    const ca = files.get(posix.normalize(t.ca));
    if (!ca) problems.push(`token.ca: ${t.ca} is not in the site archive (add the organisation CA certificate)`);
    else if (!isCaCertificate(ca.data)) problems.push(`token.ca: ${t.ca} is not a CA certificate (PEM or DER with basicConstraints CA:TRUE)`);
    if (!PREBOOT_PKCS11_MODULES.includes(posix.normalize(t.module)) && !files.has(posix.normalize(t.module)))
      problems.push(`token.module: ${t.module} is neither in the preboot image (${PREBOOT_PKCS11_MODULES.join(", ")}) nor in the site archive`);
    for (const [k, v] of Object.entries(t.env)) {
      if (v.startsWith("/") && !fs.has(v)) problems.push(`token.env.${k}: ${v} is not in the site archive`);
    }
    if (problems.length) throw new PrebootConfigError(name, problems);
  }
  return { cpio: fs.cpio(), config };
}

function isCaCertificate(data: Uint8Array | string): boolean {
  try {
    return new X509Certificate(typeof data === "string" ? Buffer.from(data) : Buffer.from(data)).ca;
  } catch {
    return false;
  }
}

/**
 * Site files from the host: each `host` file goes to `guest`; a directory goes with
 * everything below it (modes kept, e.g. a SoftHSM2 token store).
 */
export async function readSiteFiles(specs: readonly { host: string; guest: string }[]): Promise<SiteFile[]> {
  const out: SiteFile[] = [];
  const walk = async (host: string, guest: string): Promise<void> => {
    const st = await stat(host);
    if (st.isDirectory()) {
      for (const entry of (await readdir(host)).sort()) await walk(join(host, entry), posix.join(guest, entry));
    } else if (st.isFile()) {
      out.push({ path: guest, data: await readFile(host), mode: st.mode & 0o777 });
    } else throw new Error(`${host}: not a file or a directory`);
  };
  for (const s of specs) await walk(s.host, s.guest);
  return out;
}

/** Refuses a header file whose data segment Parapet cannot use (host check before building). */
export async function checkHeaderFile(path: string): Promise<void> {
  checkSupported(path, await luksInfo(path));
}
