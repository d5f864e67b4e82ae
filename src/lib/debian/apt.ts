// The apt download cache: Debian packages fetched with `apt-get download` at exactly the
// version apt's local lists name, unpacked with `dpkg -x` into cacheDir/NAME_VERSION/ (with
// the package's Depends saved beside), never installed on the host. Without package lists the
// newest cached unpack stands in.
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { run, runText } from "../exec.ts";

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
export function fileVersion(version: string): string {
  return version.replace(/:/g, "%3a");
}

function aptGetArgs(): string[] {
  // As root, apt wants to drop to _apt, which cannot write our directory; say it may stay root.
  return process.getuid?.() === 0 ? ["-o", "APT::Sandbox::User=root"] : [];
}

/** Downloads NAME=VERSION's .deb into `dir`, returning its path. */
export async function aptDownload(name: string, version: string, dir: string): Promise<string> {
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
export async function newestCached(cacheDir: string, name: string): Promise<UnpackedPackage | undefined> {
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

/** The installed Debian version of a package, or undefined. */
export async function installedVersion(pkg: string): Promise<string | undefined> {
  try {
    const v = (await runText("dpkg-query", ["-W", "-f=${Version}", pkg])).trim();
    return v || undefined;
  } catch {
    return undefined;
  }
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
      const name = item
        .split("|")[0]
        .trim()
        .replace(/\s*[([].*$/, "")
        .replace(/:\w+$/, "");
      if (name && !names.includes(name)) names.push(name);
    }
  }
  return names;
}
