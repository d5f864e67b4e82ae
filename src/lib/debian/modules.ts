// Kernel modules for an initramfs: the named modules and everything they depend on, in load
// order, from the kernel package's modules.dep (built-in ones skipped), and their bytes.
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { basename, join } from "node:path";
import { run } from "../exec.ts";
import type { DebianKernel } from "./packages.ts";

/** A kernel module to put in the initramfs. */
export interface KernelModule {
  name: string;
  /** The file in the unpacked package (maybe compressed). */
  source: string;
  /** Path relative to the modules directory, without any compression suffix. */
  relPath: string;
}

/** Module name as the kernel sees it: file name without .ko[.xz|.zst|.gz], '-' as '_'. */
export function moduleName(path: string): string {
  return basename(path)
    .replace(/\.ko(\.(xz|zst|gz))?$/, "")
    .replace(/-/g, "_");
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
    deps.set(moduleName(path), {
      path,
      deps: line
        .slice(colon + 1)
        .trim()
        .split(/\s+/)
        .filter(Boolean),
    });
  }
  const builtinFile = join(kernel.modulesDir, "modules.builtin");
  const builtinSet = new Set(existsSync(builtinFile) ? (await readFile(builtinFile, "utf8")).split("\n").filter(Boolean).map(moduleName) : []);

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
      throw new Error(`kernel module '${name}'${via ? ` (needed by ${via})` : ""} is not in ${kernel.pkg.name} ${kernel.pkg.version}`);
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
