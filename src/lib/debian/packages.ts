// Particular packages the guest images are built from: Debian's generic amd64 kernel, found
// through its meta-package linux-image-amd64 (with modules.dep made once per unpack), and the
// static busybox.
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { run, runText } from "../exec.ts";
import { aptDownload, candidateVersion, fetchCandidate, fileVersion, unpackPackage, type Log, type UnpackedPackage } from "./apt.ts";

export interface DebianKernel {
  /** The package, e.g. linux-image-6.1.0-56-amd64, and its version. */
  pkg: UnpackedPackage;
  /** Kernel release, e.g. 6.1.0-56-amd64 (the `uname -r` of the guest). */
  kver: string;
  vmlinuz: string;
  /** <root>/lib/modules/<kver> (or usr/lib/modules), holding modules.dep. */
  modulesDir: string;
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
