// Dynamically linked Debian programs for the guests and the shared-library closure they need:
// every library they load, found by following DT_NEEDED (and the dynamic loader, PT_INTERP)
// through the packages' dependencies (libraries.ts), stubs for the libraries a ToolSpec says
// to stub (stubs.ts), and a record of which packages held the libraries last time.
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { basename, join } from "node:path";
import { readElf, type ElfInfo } from "../elf.ts";
import { candidateVersion, candidateVersions, fetchCandidate, newestCached, unpackPackage, type Log, type UnpackedPackage } from "./apt.ts";
import { LibraryIndex, resolveInTree } from "./libraries.ts";
import { stubLibraries, type StubLibrary } from "./stubs.ts";

/** Where programs are inside a package. */
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

export interface ToolClosure {
  programs: ToolFile[];
  libraries: ToolFile[];
  /** Symbolic links, e.g. the dynamic loader's PT_INTERP path. */
  symlinks: { guestPath: string; target: string }[];
  stubs: StubLibrary[];
  /** The packages the programs and their libraries came from. */
  packages: UnpackedPackage[];
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

/** A library of the closure, and the package it came from. */
type ClosureLibrary = ToolFile & { pkg: UnpackedPackage };

/** A program or library whose own DT_NEEDED are still to be followed. */
interface Pending {
  source: string;
  pkg: UnpackedPackage;
  what: string;
}

/**
 * Where the record of which packages held the libraries last time is kept, for exactly these
 * specs at their current versions: with it no dependency needs looking into (no apt-cache calls).
 */
async function recordPath(cacheDir: string, specs: readonly ToolSpec[]): Promise<string> {
  await candidateVersions(specs.map((s) => s.versionOf ?? s.package));
  const specVersions = await Promise.all(specs.map(specVersion));
  const key = createHash("sha256")
    .update(JSON.stringify(specs.map((s, i) => [s, specVersions[i] ?? "cached"])))
    .digest("hex")
    .slice(0, 16);
  return join(cacheDir, "meta", `tools-${key}.json`);
}

/** Unpacks and indexes the packages a record names; false (and an empty index) when it cannot. */
async function loadRecord(cacheDir: string, record: string, index: LibraryIndex, log: Log): Promise<boolean> {
  if (!existsSync(record)) return false;
  try {
    for (const { name, version } of JSON.parse(await readFile(record, "utf8")) as { name: string; version: string }[]) {
      if (!index.unpacked.has(name)) await index.add(await unpackPackage(cacheDir, name, version, log));
    }
    return true;
  } catch (err) {
    // e.g. a recorded version is gone from the cache and the mirror: resolve afresh.
    log(`ignoring ${record}: ${err instanceof Error ? err.message.split("\n")[0] : String(err)}`);
    index.clear();
    return false;
  }
}

/** The programs the specs name, found in their packages (fetched and indexed when new). */
async function findPrograms(
  cacheDir: string,
  specs: readonly ToolSpec[],
  index: LibraryIndex,
  log: Log,
): Promise<{ programs: ToolFile[]; pending: Pending[] }> {
  const programs: ToolFile[] = [];
  const pending: Pending[] = [];
  for (const spec of specs) {
    let pkg = index.unpacked.get(spec.package);
    if (!pkg) {
      pkg = await fetchSpecPackage(cacheDir, spec, log);
      await index.add(pkg);
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
      pending.push({ source: found.source, pkg, what: bin });
    }
  }
  return { programs, pending };
}

/** Follows DT_NEEDED and PT_INTERP from `pending` until every library loaded is found. */
async function followNeeded(pending: Pending[], index: LibraryIndex, stubbed: ReadonlySet<string>) {
  const libraries = new Map<string, ClosureLibrary>();
  const symlinks: { guestPath: string; target: string }[] = [];
  const elves = new Map<string, ElfInfo>(); // host source -> parsed
  const stubUsers: ElfInfo[] = [];
  for (let item = pending.shift(); item; item = pending.shift()) {
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
      const hit = index.lookup(so) ?? (await index.find(so, item.pkg, item.what));
      libraries.set(so, { guestPath: `${GUEST_LIB_DIR}/${so}`, source: hit.source, pkg: hit.pkg });
      pending.push({ source: hit.source, pkg: hit.pkg, what: so });
    }
  }
  const libraryElves = [...libraries.values()].map((l) => elves.get(l.source)!);
  return { libraries, symlinks, stubs: stubLibraries(stubUsers, stubbed, libraryElves) };
}

/**
 * The programs of `specs` with every shared library they load, found by
 * following DT_NEEDED (and the dynamic loader, PT_INTERP) through the
 * packages' dependencies: a library is looked for in packages unpacked so far,
 * then in the Depends of the package that needed it, likeliest first, each
 * downloaded and unpacked (cached by version) only when looked into.
 */
export async function resolveTools(cacheDir: string, specs: readonly ToolSpec[], log: Log): Promise<ToolClosure> {
  const index = new LibraryIndex(cacheDir, log);
  const record = await recordPath(cacheDir, specs);
  const recorded = await loadRecord(cacheDir, record, index, log);
  const { programs, pending } = await findPrograms(cacheDir, specs, index, log);
  const { libraries, symlinks, stubs } = await followNeeded(pending, index, new Set(specs.flatMap((s) => s.stub ?? [])));
  const pkgs = [...new Set([...specs.map((s) => index.unpacked.get(s.package)!), ...[...libraries.values()].map((l) => l.pkg)])];
  if (!recorded) {
    await mkdir(join(cacheDir, "meta"), { recursive: true });
    await writeFile(
      record,
      `${JSON.stringify(
        pkgs.map(({ name, version }) => ({ name, version })),
        null,
        1,
      )}\n`,
    );
  }
  return {
    programs,
    libraries: [...libraries.values()].map(({ guestPath, source }) => ({ guestPath, source })),
    symlinks,
    stubs,
    packages: pkgs,
  };
}
