// Where the shared libraries of Debian programs come from: an index of the sonames that the
// packages unpacked so far ship, and the search through a package's dependencies (likeliest
// first by Debian's library package naming) for a soname not found yet.
import { existsSync } from "node:fs";
import { lstat, readdir, readlink } from "node:fs/promises";
import { join, posix } from "node:path";
import { candidateVersions, fetchCandidate, packageDepends, type Log, type UnpackedPackage } from "./apt.ts";

/** Where Debian (bookworm, amd64) keeps shared libraries inside a package. */
const LIB_DIRS = ["lib/x86_64-linux-gnu", "usr/lib/x86_64-linux-gnu", "lib64", "lib", "usr/lib"];

/** A library file found in an unpacked package. */
export interface FoundLibrary {
  source: string;
  pkg: UnpackedPackage;
}

/** Follows symbolic links inside an unpacked package (absolute targets are relative to its root). */
export async function resolveInTree(root: string, rel: string): Promise<string | undefined> {
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
  const stem = so
    .replace(/\.so(\..*)?$/, "")
    .replace(/^lib/, "")
    .toLowerCase();
  const esc = stem.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  if (new RegExp(`^(lib)?${esc}(lib)?-?[0-9.]*[a-z]?$`).test(pkg)) return 3;
  if (pkg.startsWith(`lib${stem}`) || pkg.startsWith(stem)) return 2;
  if (pkg === "libc6") return 1; // glibc ships libm, libresolv, ld-linux, ...
  return /^(lib|zlib)/.test(pkg) ? 0 : -1;
}

/** The packages unpacked so far, by name, and the sonames they ship. */
export class LibraryIndex {
  readonly unpacked = new Map<string, UnpackedPackage>();
  private readonly bySoname = new Map<string, FoundLibrary>();

  constructor(
    private readonly cacheDir: string,
    private readonly log: Log,
  ) {}

  /** Adds an unpacked package and indexes its shared libraries (the first package to ship a soname keeps it). */
  async add(pkg: UnpackedPackage): Promise<void> {
    this.unpacked.set(pkg.name, pkg);
    for (const dir of LIB_DIRS) {
      const full = join(pkg.root, dir);
      if (!existsSync(full)) continue;
      for (const entry of await readdir(full)) {
        if (!/\.so(\.|$)/.test(entry) || this.bySoname.has(entry)) continue;
        const source = await resolveInTree(pkg.root, join(dir, entry));
        if (source) this.bySoname.set(entry, { source, pkg });
      }
    }
  }

  clear(): void {
    this.unpacked.clear();
    this.bySoname.clear();
  }

  lookup(so: string): FoundLibrary | undefined {
    return this.bySoname.get(so);
  }

  /** The candidate of package `name`, unpacked and indexed on first use. */
  private async get(name: string): Promise<UnpackedPackage> {
    let pkg = this.unpacked.get(name);
    if (!pkg) {
      pkg = await fetchCandidate(this.cacheDir, name, this.log);
      await this.add(pkg);
    }
    return pkg;
  }

  /** Finds `so` among the (transitive, library-like) dependencies of `owner`, four levels deep. */
  async find(so: string, owner: UnpackedPackage, via: string): Promise<FoundLibrary> {
    const seen = new Set<string>([owner.name]);
    let level = [owner];
    for (let depth = 0; depth < 4 && level.length; depth++) {
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
      const next: UnpackedPackage[] = [];
      for (const c of ranked) {
        if (!versions.get(c.name) && !this.unpacked.has(c.name)) continue; // virtual, or unknown to apt
        const pkg = await this.get(c.name);
        const hit = this.bySoname.get(so);
        if (hit) return hit;
        next.push(pkg);
      }
      level = next;
    }
    throw new Error(`cannot find ${so} (needed by ${via}) in the dependencies of ${owner.name} ${owner.version}`);
  }
}
