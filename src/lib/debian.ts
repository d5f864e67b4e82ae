// Debian packages for the test guest: fetched with `apt-get download`,
// unpacked with `dpkg -x` into a cache keyed by exact package version, never
// installed on the host. Also resolves kernel modules through modules.dep.
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { basename, join } from "node:path";
import { run, runText } from "./exec.ts";

export type Log = (message: string) => void;

/** A package unpacked in the cache. */
export interface UnpackedPackage {
  name: string;
  version: string;
  /** Directory the package's files were unpacked into. */
  root: string;
  /** False when it came from the cache without touching the network. */
  downloaded: boolean;
}

export interface DebianKernel {
  /** The package, e.g. linux-image-6.1.0-56-amd64, and its version. */
  pkg: UnpackedPackage;
  /** Kernel release, e.g. 6.1.0-56-amd64 (the `uname -r` of the guest). */
  kver: string;
  vmlinuz: string;
  /** <root>/lib/modules/<kver> (or usr/lib/modules), holding modules.dep. */
  modulesDir: string;
}

/** A kernel module to put in the initramfs. */
export interface KernelModule {
  name: string;
  /** The file in the unpacked package (maybe compressed). */
  source: string;
  /** Path relative to the modules directory, without any compression suffix. */
  relPath: string;
}

const MARKER = ".parapet-unpacked";

/** The version apt would install, from the local package lists (no network). */
export async function candidateVersion(pkg: string): Promise<string | undefined> {
  let text: string;
  try {
    text = await runText("apt-cache", ["policy", pkg]);
  } catch {
    return undefined;
  }
  const m = /^\s*Candidate:\s*(\S+)/m.exec(text);
  return m && m[1] !== "(none)" ? m[1] : undefined;
}

/** Version strings as used in cache directory names (epochs have a ':'). */
function fileVersion(version: string): string {
  return version.replace(/:/g, "%3a");
}

function aptGetArgs(): string[] {
  // As root, apt wants to drop to _apt, which cannot write our directory; say it may stay root.
  return process.getuid?.() === 0 ? ["-o", "APT::Sandbox::User=root"] : [];
}

/** Downloads NAME=VERSION's .deb into `dir`, returning its path. */
async function aptDownload(name: string, version: string, dir: string): Promise<string> {
  try {
    await run("apt-get", [...aptGetArgs(), "download", `${name}=${version}`], { cwd: dir });
  } catch (err) {
    throw new Error(
      `could not download ${name} ${version} from the Debian mirror ` +
        `(check network access, or run 'apt-get update' if the version is gone):\n` +
        (err instanceof Error ? err.message : String(err)),
    );
  }
  const debs = (await readdir(dir)).filter((f) => f.endsWith(".deb"));
  if (debs.length !== 1) throw new Error(`apt-get download ${name} left ${debs.length} .deb files in ${dir}`);
  return join(dir, debs[0]);
}

/** The newest cached unpack of `name` (used when apt has no package lists). */
async function newestCached(cacheDir: string, name: string): Promise<UnpackedPackage | undefined> {
  if (!existsSync(cacheDir)) return undefined;
  let best: { pkg: UnpackedPackage; mtime: number } | undefined;
  for (const entry of await readdir(cacheDir)) {
    if (!entry.startsWith(`${name}_`)) continue;
    const root = join(cacheDir, entry);
    if (!existsSync(join(root, MARKER))) continue;
    const mtime = (await stat(join(root, MARKER))).mtimeMs;
    const version = (await readFile(join(root, MARKER), "utf8")).trim();
    if (!best || mtime > best.mtime) best = { pkg: { name, version, root, downloaded: false }, mtime };
  }
  return best?.pkg;
}

/**
 * NAME at exactly VERSION, unpacked under cacheDir/NAME_VERSION/. Downloads and
 * unpacks only when that directory is not complete yet.
 */
export async function unpackPackage(cacheDir: string, name: string, version: string, log: Log): Promise<UnpackedPackage> {
  const root = join(cacheDir, `${name}_${fileVersion(version)}`);
  if (existsSync(join(root, MARKER))) return { name, version, root, downloaded: false };

  await mkdir(cacheDir, { recursive: true });
  const work = await mkdtemp(join(cacheDir, `.tmp-${name}-`));
  try {
    log(`downloading ${name} ${version}`);
    const deb = await aptDownload(name, version, work);
    const tree = join(work, "root");
    await run("dpkg", ["-x", deb, tree]);
    await writeFile(join(tree, MARKER), `${version}\n`);
    if (existsSync(join(root, MARKER))) return { name, version, root, downloaded: true };
    await rm(root, { recursive: true, force: true }); // an unfinished earlier unpack
    try {
      await rename(tree, root);
    } catch (err) {
      // Another build finished the same unpack first.
      if (!existsSync(join(root, MARKER))) throw err;
    }
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  return { name, version, root, downloaded: true };
}

/** The candidate version of a package, or the newest one in the cache when apt knows none. */
async function fetchCandidate(cacheDir: string, name: string, log: Log): Promise<UnpackedPackage> {
  const version = await candidateVersion(name);
  if (version) return unpackPackage(cacheDir, name, version, log);
  const cached = await newestCached(cacheDir, name);
  if (cached) {
    log(`apt knows no ${name}; using the cached ${cached.version}`);
    return cached;
  }
  throw new Error(`apt has no candidate for ${name}; run 'apt-get update' (as root) and retry`);
}

interface MetaRecord {
  name: string;
  version: string;
}

/**
 * The package a meta-package (linux-image-amd64) points at, learnt from the
 * meta-package's own Depends and remembered per meta-package version.
 */
async function resolveMeta(cacheDir: string, meta: string, depPrefix: string, log: Log): Promise<MetaRecord> {
  const metaDir = join(cacheDir, "meta");
  const version = await candidateVersion(meta);
  if (!version) {
    // No package lists: fall back to the newest meta-package we resolved before.
    if (existsSync(metaDir)) {
      const files = (await readdir(metaDir)).filter((f) => f.startsWith(`${meta}_`) && f.endsWith(".json"));
      const dated = await Promise.all(files.map(async (f) => ({ f, t: (await stat(join(metaDir, f))).mtimeMs })));
      dated.sort((a, b) => b.t - a.t);
      if (dated.length > 0) {
        const rec = JSON.parse(await readFile(join(metaDir, dated[0].f), "utf8")) as MetaRecord;
        log(`apt knows no ${meta}; using the cached ${rec.name} ${rec.version}`);
        return rec;
      }
    }
    throw new Error(`apt has no candidate for ${meta}; run 'apt-get update' (as root) and retry`);
  }
  const record = join(metaDir, `${meta}_${fileVersion(version)}.json`);
  if (existsSync(record)) return JSON.parse(await readFile(record, "utf8")) as MetaRecord;

  await mkdir(metaDir, { recursive: true });
  const work = await mkdtemp(join(cacheDir, `.tmp-${meta}-`));
  try {
    const deb = await aptDownload(meta, version, work);
    const depends = (await runText("dpkg-deb", ["-f", deb, "Depends"])).trim();
    const m = new RegExp(`(?:^|,\\s*)(${depPrefix}[^\\s,(|]+)\\s*\\(=\\s*([^)\\s]+)\\)`).exec(depends);
    if (!m) throw new Error(`cannot find the ${depPrefix}* package in ${meta}'s Depends: ${depends}`);
    const rec: MetaRecord = { name: m[1], version: m[2] };
    await writeFile(record, `${JSON.stringify(rec, null, 2)}\n`);
    return rec;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** Debian's generic amd64 kernel (the candidate of linux-image-amd64), unpacked with modules.dep. */
export async function fetchKernel(cacheDir: string, log: Log): Promise<DebianKernel> {
  const rec = await resolveMeta(cacheDir, "linux-image-amd64", "linux-image-", log);
  const pkg = await unpackPackage(cacheDir, rec.name, rec.version, log);
  const kver = rec.name.replace(/^linux-image-/, "");
  const vmlinuz = join(pkg.root, "boot", `vmlinuz-${kver}`);
  if (!existsSync(vmlinuz)) throw new Error(`${rec.name} ${rec.version} has no boot/vmlinuz-${kver}`);
  const base = [pkg.root, join(pkg.root, "usr")].find((b) => existsSync(join(b, "lib", "modules", kver)));
  if (!base) throw new Error(`${rec.name} ${rec.version} has no lib/modules/${kver}`);
  const modulesDir = join(base, "lib", "modules", kver);
  // Debian makes modules.dep in the package's postinst; we make it once per unpack.
  if (!existsSync(join(modulesDir, "modules.dep"))) {
    log(`running depmod for ${kver}`);
    await run("depmod", ["-b", base, kver]);
  }
  return { pkg, kver, vmlinuz, modulesDir };
}

/** busybox from busybox-static: returns the static binary's path and the package. */
export async function fetchBusybox(cacheDir: string, log: Log): Promise<{ pkg: UnpackedPackage; binary: string }> {
  const pkg = await fetchCandidate(cacheDir, "busybox-static", log);
  const binary = [join(pkg.root, "bin", "busybox"), join(pkg.root, "usr", "bin", "busybox")].find((p) => existsSync(p));
  if (!binary) throw new Error(`busybox-static ${pkg.version} has no bin/busybox`);
  return { pkg, binary };
}

/** Module name as the kernel sees it: file name without .ko[.xz|.zst|.gz], '-' as '_'. */
export function moduleName(path: string): string {
  return basename(path).replace(/\.ko(\.(xz|zst|gz))?$/, "").replace(/-/g, "_");
}

/**
 * The named modules plus everything they depend on, in load order
 * (dependencies first), from the kernel's modules.dep. Built-in modules are skipped.
 */
export async function resolveModules(kernel: DebianKernel, names: readonly string[]): Promise<{ modules: KernelModule[]; builtin: string[] }> {
  const deps = new Map<string, { path: string; deps: string[] }>();
  for (const line of (await readFile(join(kernel.modulesDir, "modules.dep"), "utf8")).split("\n")) {
    const colon = line.indexOf(":");
    if (colon < 0) continue;
    const path = line.slice(0, colon).trim();
    deps.set(moduleName(path), { path, deps: line.slice(colon + 1).trim().split(/\s+/).filter(Boolean) });
  }
  const builtinFile = join(kernel.modulesDir, "modules.builtin");
  const builtinSet = new Set(
    existsSync(builtinFile) ? (await readFile(builtinFile, "utf8")).split("\n").filter(Boolean).map(moduleName) : [],
  );

  const order: KernelModule[] = [];
  const done = new Set<string>();
  const active = new Set<string>();
  const builtin: string[] = [];
  const visit = (name: string, via: string | undefined): void => {
    if (done.has(name)) return;
    const entry = deps.get(name);
    if (!entry) {
      if (builtinSet.has(name)) {
        if (!builtin.includes(name)) builtin.push(name);
        return;
      }
      throw new Error(
        `kernel module '${name}'${via ? ` (needed by ${via})` : ""} is not in ${kernel.pkg.name} ${kernel.pkg.version}`,
      );
    }
    if (active.has(name)) throw new Error(`kernel module dependency loop at ${name}`);
    active.add(name);
    for (const dep of entry.deps) visit(moduleName(dep), name);
    active.delete(name);
    done.add(name);
    order.push({
      name,
      source: join(kernel.modulesDir, entry.path),
      relPath: entry.path.replace(/\.ko\.(xz|zst|gz)$/, ".ko"),
    });
  };
  for (const n of names) visit(moduleName(n), undefined);
  return { modules: order, builtin };
}

/** A module file's contents, decompressed when Debian shipped it compressed. */
export async function readModule(mod: KernelModule): Promise<Buffer> {
  if (mod.source.endsWith(".ko")) return readFile(mod.source);
  if (mod.source.endsWith(".ko.gz")) {
    const { gunzipSync } = await import("node:zlib");
    return gunzipSync(await readFile(mod.source));
  }
  const tool = mod.source.endsWith(".ko.xz") ? "xz" : "zstd";
  return (await run(tool, ["-dc", mod.source])).stdout;
}

/** The installed Debian version of a package, or undefined. */
export async function installedVersion(pkg: string): Promise<string | undefined> {
  try {
    const v = (await runText("dpkg-query", ["-W", "-f=${Version}", pkg])).trim();
    return v || undefined;
  } catch {
    return undefined;
  }
}
