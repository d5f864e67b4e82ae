// Debian packages for the test guest: fetched with `apt-get download`,
// unpacked with `dpkg -x` into a cache keyed by exact package version, never
// installed on the host. Also resolves kernel modules through modules.dep,
// and the shared libraries of Debian programs through DT_NEEDED.
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { lstat, mkdir, mkdtemp, readdir, readFile, readlink, rename, rm, stat, writeFile } from "node:fs/promises";
import { basename, join, posix } from "node:path";
import { readElf, type ElfInfo } from "./elf.ts";
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
/** The package's Pre-Depends and Depends fields, saved at unpack time. */
const CONTROL = ".parapet-depends";

/** Candidate versions already asked for in this process (apt-cache takes about 0.5 s a call). */
const candidates = new Map<string, string | undefined>();

/** The versions apt would install, from the local package lists (no network), in one apt-cache call. */
export async function candidateVersions(pkgs: readonly string[]): Promise<Map<string, string | undefined>> {
  const ask = [...new Set(pkgs)].filter((p) => !candidates.has(p));
  if (ask.length) {
    let text = "";
    try {
      text = await runText("apt-cache", ["policy", ...ask]);
    } catch {
      // no lists, or an unknown name: treat each as unknown
    }
    for (const p of ask) candidates.set(p, undefined);
    for (const block of text.split(/^(?=\S)/m)) {
      const name = /^(\S+?):(?:amd64)?\s*$/m.exec(block)?.[1];
      const m = /^\s*Candidate:\s*(\S+)/m.exec(block);
      if (name && ask.includes(name)) candidates.set(name, m && m[1] !== "(none)" ? m[1] : undefined);
    }
  }
  return new Map(pkgs.map((p) => [p, candidates.get(p)]));
}

/** The version apt would install, from the local package lists (no network). */
export async function candidateVersion(pkg: string): Promise<string | undefined> {
  return (await candidateVersions([pkg])).get(pkg);
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
    await writeFile(join(tree, CONTROL), await runText("dpkg-deb", ["-f", deb, "Pre-Depends", "Depends"]));
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

/** The version of a tool's package that a ToolSpec asks for (its own candidate by default). */
export async function specVersion(spec: ToolSpec): Promise<string | undefined> {
  if (spec.version) return spec.version;
  return candidateVersion(spec.versionOf ?? spec.package);
}

/** A tool's package at the version its ToolSpec asks for, or the newest cached one when apt knows none. */
export async function fetchSpecPackage(cacheDir: string, spec: ToolSpec, log: Log): Promise<UnpackedPackage> {
  if (!spec.version && !spec.versionOf) return fetchCandidate(cacheDir, spec.package, log);
  const version = await specVersion(spec);
  if (version) return unpackPackage(cacheDir, spec.package, version, log);
  const cached = await newestCached(cacheDir, spec.package);
  if (cached) {
    log(`apt knows no ${spec.versionOf}; using the cached ${spec.package} ${cached.version}`);
    return cached;
  }
  throw new Error(`apt has no candidate for ${spec.versionOf}; run 'apt-get update' (as root) and retry`);
}

/** The candidate version of a package, or the newest one in the cache when apt knows none. */
export async function fetchCandidate(cacheDir: string, name: string, log: Log): Promise<UnpackedPackage> {
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

// ---------------------------------------------------------------------------
// Dynamically linked Debian programs and the shared libraries they need.

/** Where Debian (bookworm, amd64) keeps shared libraries inside a package. */
const LIB_DIRS = ["lib/x86_64-linux-gnu", "usr/lib/x86_64-linux-gnu", "lib64", "lib", "usr/lib"];
const BIN_DIRS = ["usr/bin", "usr/sbin", "bin", "sbin"];
/** Where the guest gets every library (the dynamic loader's own directory, always searched). */
export const GUEST_LIB_DIR = "/lib/x86_64-linux-gnu";

/** A Debian program to put in the guest. */
export interface ToolSpec {
  /** The package that ships it, e.g. cryptsetup-bin. */
  package: string;
  /** Program names, looked up in the package's usr/bin, usr/sbin, bin, sbin. */
  binaries: readonly string[];
  /** Exact version of `package` to fetch instead of apt's candidate. */
  version?: string;
  /**
   * Fetch `package` at the candidate version of this other package: e.g. Debian's nodejs at
   * the candidate of libnode108, which nodejs depends on exactly, when apt's candidate for
   * nodejs itself comes from another repository.
   */
  versionOf?: string;
  /**
   * Shared libraries replaced by generated stubs: the program links them only
   * for optional features the guest does not use, and their own dependencies
   * are far larger than everything else in the image.
   */
  stub?: readonly string[];
}

/** One file of a resolved tool set, as it goes into the guest. */
export interface ToolFile {
  /** Absolute path in the guest. */
  guestPath: string;
  /** The host file (symbolic links inside the package already followed). */
  source: string;
}

/** A stub library to generate: every symbol the programs import from it, by version. */
export interface StubLibrary {
  soname: string;
  /** Version name ("" for unversioned) -> symbol names. */
  symbols: Map<string, string[]>;
}

export interface ToolClosure {
  programs: ToolFile[];
  libraries: ToolFile[];
  /** Symbolic links, e.g. the dynamic loader's PT_INTERP path. */
  symlinks: { guestPath: string; target: string }[];
  stubs: StubLibrary[];
  /** The packages the programs and their libraries came from. */
  packages: UnpackedPackage[];
}

/** The Pre-Depends and Depends of an unpacked package, as package names (first alternatives). */
export async function packageDepends(pkg: UnpackedPackage): Promise<string[]> {
  let text: string;
  const saved = join(pkg.root, CONTROL);
  if (existsSync(saved)) {
    text = await readFile(saved, "utf8");
  } else {
    // Unpacked before the fields were saved: ask apt's lists.
    text = (await runText("apt-cache", ["show", `${pkg.name}=${pkg.version}`])).split("\n\n")[0];
  }
  const names: string[] = [];
  // dpkg-deb prints "Field: value" lines when asked for several fields.
  for (const m of text.matchAll(/^(?:Pre-Depends|Depends):(.*(?:\n[ \t].*)*)/gm)) {
    for (const item of m[1].split(",")) {
      const name = item.split("|")[0].trim().replace(/\s*[([].*$/, "").replace(/:\w+$/, "");
      if (name && !names.includes(name)) names.push(name);
    }
  }
  return names;
}

/** Follows symbolic links inside an unpacked package (absolute targets are relative to its root). */
async function resolveInTree(root: string, rel: string): Promise<string | undefined> {
  let path = posix.normalize(`/${rel}`);
  for (let hops = 0; hops < 40; hops++) {
    const host = join(root, path);
    let st;
    try {
      st = await lstat(host);
    } catch {
      return undefined;
    }
    if (!st.isSymbolicLink()) return st.isFile() ? host : undefined;
    const target = await readlink(host);
    path = posix.normalize(target.startsWith("/") ? target : posix.join(posix.dirname(path), target));
  }
  return undefined;
}

/** How likely package `pkg` ships soname `so`, by Debian's library package naming (higher first). */
function sonameScore(so: string, pkg: string): number {
  const stem = so.replace(/\.so(\..*)?$/, "").replace(/^lib/, "").toLowerCase();
  const esc = stem.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  if (new RegExp(`^(lib)?${esc}(lib)?-?[0-9.]*[a-z]?$`).test(pkg)) return 3;
  if (pkg.startsWith(`lib${stem}`) || pkg.startsWith(stem)) return 2;
  if (pkg === "libc6") return 1; // glibc ships libm, libresolv, ld-linux, ...
  return /^(lib|zlib)/.test(pkg) ? 0 : -1;
}

/**
 * The programs of `specs` with every shared library they load, found by
 * following DT_NEEDED (and the dynamic loader, PT_INTERP) through the
 * packages' dependencies: a library is looked for in packages unpacked so far,
 * then in the Depends of the package that needed it, likeliest first, each
 * downloaded and unpacked (cached by version) only when looked into.
 */
export async function resolveTools(cacheDir: string, specs: readonly ToolSpec[], log: Log): Promise<ToolClosure> {
  const unpacked = new Map<string, UnpackedPackage>();
  const bySoname = new Map<string, { source: string; pkg: UnpackedPackage }>();
  const indexPackage = async (pkg: UnpackedPackage): Promise<void> => {
    for (const dir of LIB_DIRS) {
      const full = join(pkg.root, dir);
      if (!existsSync(full)) continue;
      for (const entry of await readdir(full)) {
        if (!/\.so(\.|$)/.test(entry) || bySoname.has(entry)) continue;
        const source = await resolveInTree(pkg.root, join(dir, entry));
        if (source) bySoname.set(entry, { source, pkg });
      }
    }
  };
  const getPackage = async (name: string): Promise<UnpackedPackage> => {
    let pkg = unpacked.get(name);
    if (!pkg) {
      pkg = await fetchCandidate(cacheDir, name, log);
      unpacked.set(name, pkg);
      await indexPackage(pkg);
    }
    return pkg;
  };
  /** Finds `so` among the (transitive, library-like) dependencies of `owner`. */
  const findLibrary = async (so: string, owner: UnpackedPackage, via: string): Promise<{ source: string; pkg: UnpackedPackage }> => {
    const seen = new Set<string>([owner.name]);
    let level = [owner];
    for (let depth = 0; depth < 4 && level.length; depth++) {
      const next: UnpackedPackage[] = [];
      const deps: string[] = [];
      for (const p of level) {
        for (const d of await packageDepends(p)) {
          if (seen.has(d)) continue;
          seen.add(d);
          deps.push(d);
        }
      }
      const versions = await candidateVersions(deps);
      const ranked = deps
        .map((name, i) => ({ name, i, score: sonameScore(so, name) }))
        .filter((c) => c.score >= 0)
        .sort((a, b) => b.score - a.score || a.i - b.i);
      for (const c of ranked) {
        if (!versions.get(c.name) && !unpacked.has(c.name)) continue; // virtual, or unknown to apt
        const pkg = await getPackage(c.name);
        const hit = bySoname.get(so);
        if (hit) return hit;
        next.push(pkg);
      }
      level = next;
    }
    throw new Error(`cannot find ${so} (needed by ${via}) in the dependencies of ${owner.name} ${owner.version}`);
  };

  const stubbed = new Set(specs.flatMap((s) => s.stub ?? []));
  const programs: ToolFile[] = [];
  const libraries = new Map<string, ToolFile & { pkg: UnpackedPackage }>();
  const symlinks: { guestPath: string; target: string }[] = [];
  const elves = new Map<string, ElfInfo>(); // host source -> parsed
  const stubUsers: ElfInfo[] = [];
  const queue: { source: string; pkg: UnpackedPackage; what: string }[] = [];

  // Which packages held the libraries last time, for exactly these programs at these
  // versions: with that record no dependency needs looking into (no apt-cache calls).
  await candidateVersions(specs.map((s) => s.versionOf ?? s.package));
  const specVersions = await Promise.all(specs.map(specVersion));
  const key = createHash("sha256")
    .update(JSON.stringify(specs.map((s, i) => [s, specVersions[i] ?? "cached"])))
    .digest("hex")
    .slice(0, 16);
  const record = join(cacheDir, "meta", `tools-${key}.json`);
  let recorded = existsSync(record);
  if (recorded) {
    try {
      for (const { name, version } of JSON.parse(await readFile(record, "utf8")) as { name: string; version: string }[]) {
        if (unpacked.has(name)) continue;
        const pkg = await unpackPackage(cacheDir, name, version, log);
        unpacked.set(name, pkg);
        await indexPackage(pkg);
      }
    } catch (err) {
      // e.g. a recorded version is gone from the cache and the mirror: resolve afresh.
      log(`ignoring ${record}: ${err instanceof Error ? err.message.split("\n")[0] : String(err)}`);
      unpacked.clear();
      bySoname.clear();
      recorded = false;
    }
  }
  for (const spec of specs) {
    let pkg = unpacked.get(spec.package);
    if (!pkg) {
      pkg = await fetchSpecPackage(cacheDir, spec, log);
      unpacked.set(spec.package, pkg);
      await indexPackage(pkg);
    }
    for (const bin of spec.binaries) {
      let found: { rel: string; source: string } | undefined;
      for (const dir of BIN_DIRS) {
        const source = await resolveInTree(pkg.root, join(dir, bin));
        if (source) {
          found = { rel: join(dir, bin), source };
          break;
        }
      }
      if (!found) throw new Error(`${spec.package} ${pkg.version} has no program ${bin}`);
      programs.push({ guestPath: `/${found.rel}`, source: found.source });
      queue.push({ source: found.source, pkg, what: bin });
    }
  }
  while (queue.length) {
    const item = queue.shift()!;
    if (elves.has(item.source)) continue;
    const info = readElf(await readFile(item.source), item.source);
    elves.set(item.source, info);
    const wanted = [...info.needed];
    if (info.interp) {
      const base = basename(info.interp);
      wanted.push(base);
      const target = `${GUEST_LIB_DIR}/${base}`;
      if (info.interp !== target && !symlinks.some((l) => l.guestPath === info.interp)) {
        symlinks.push({ guestPath: info.interp, target });
      }
    }
    if (info.needed.some((so) => stubbed.has(so))) stubUsers.push(info);
    for (const so of wanted) {
      if (stubbed.has(so) || libraries.has(so)) continue;
      const hit = bySoname.get(so) ?? (await findLibrary(so, item.pkg, item.what));
      libraries.set(so, { guestPath: `${GUEST_LIB_DIR}/${so}`, source: hit.source, pkg: hit.pkg });
      queue.push({ source: hit.source, pkg: hit.pkg, what: so });
    }
  }

  // Stubs: every import of a stubbed library's version, and every unversioned
  // import that no real library defines, so that BIND_NOW loading succeeds.
  const defined = new Set<string>();
  for (const lib of libraries.values()) {
    for (const e of elves.get(lib.source)!.exports) {
      defined.add(e.name);
      if (e.version) defined.add(`${e.name}@${e.version}`);
    }
  }
  const stubs = new Map<string, StubLibrary>();
  const stubFor = (so: string): StubLibrary => {
    let s = stubs.get(so);
    if (!s) stubs.set(so, (s = { soname: so, symbols: new Map() }));
    return s;
  };
  const add = (s: StubLibrary, version: string, name: string): void => {
    const list = s.symbols.get(version) ?? [];
    if (!list.includes(name)) list.push(name);
    s.symbols.set(version, list);
  };
  for (const info of stubUsers) {
    const mine = info.needed.filter((so) => stubbed.has(so));
    for (const so of mine) stubFor(so);
    const loose: string[] = [];
    for (const sym of info.imports) {
      if (sym.versionFile && stubbed.has(sym.versionFile)) add(stubFor(sym.versionFile), sym.version!, sym.name);
      else if (!sym.version && !sym.weak && !defined.has(sym.name)) loose.push(sym.name);
    }
    // Unversioned imports cannot say which library they expect: any loaded one may define them.
    const plain = mine.filter((so) => ![...stubFor(so).symbols.keys()].some((v) => v !== ""));
    for (const name of loose) for (const so of plain.length ? plain : mine.slice(0, 1)) add(stubFor(so), "", name);
  }

  const pkgs = [...new Set([...specs.map((s) => unpacked.get(s.package)!), ...[...libraries.values()].map((l) => l.pkg)])];
  if (!recorded) {
    await mkdir(join(cacheDir, "meta"), { recursive: true });
    await writeFile(record, `${JSON.stringify(pkgs.map(({ name, version }) => ({ name, version })), null, 1)}\n`);
  }
  return {
    programs,
    libraries: [...libraries.values()].map(({ guestPath, source }) => ({ guestPath, source })),
    symlinks,
    stubs: [...stubs.values()],
    packages: pkgs,
  };
}
