// The layer check (npm test, npm run check:layers): every import between the repository's
// TypeScript files must go down the layers below, and no import may close a cycle.
//
// The graph is the TypeScript compiler's own: ts.preProcessFile lists each file's imports
// (static, `import type`, re-exports and dynamic `import()`), and ts.resolveModuleName resolves
// them with the project's tsconfig.json, as tsc does. It needs nothing but the compiler the
// project already type-checks with. docs/architecture.md ("The TypeScript layers") explains
// the rules.
//
//   node --import tsx scripts/check-layers.ts [ROOT]     (ROOT: a repository; default this one)
// Exit status 0 when the graph follows the rules, 1 with one line per violation otherwise.
import ts from "typescript";
import { relative, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";

/** A folder (or file) of the repository and the layers its files may import. */
export interface Layer {
  name: string;
  /** Repository-relative path prefix: a folder ending in "/", or one file. */
  path: string;
  /** Layers this one may import (its own files are always allowed, cycles aside). */
  uses: string[];
  /** Files of this layer may not import each other (each is a top of its own). */
  isolated?: boolean;
}

export const LAYERS: Layer[] = [
  { name: "cli", path: "src/cli.ts", uses: ["commands"] },
  { name: "commands", path: "src/commands/", uses: ["bench", "lib"], isolated: true },
  { name: "preboot app", path: "src/preboot/", uses: ["lib"] },
  { name: "bench", path: "bench/", uses: ["lib"] },
  { name: "tests", path: "tests/", uses: ["lib", "scripts"] },
  { name: "scripts", path: "scripts/", uses: [] },
  { name: "lib", path: "src/lib/", uses: [] },
];

export interface Violation {
  kind: "upward" | "cycle" | "unplaced";
  message: string;
}

function layerOf(rel: string, layers: Layer[]): Layer | undefined {
  return layers.find((l) => (l.path.endsWith("/") ? rel.startsWith(l.path) : rel === l.path));
}

/** The project's files and, for each, the project files it imports (resolved as tsc does). */
export function importGraph(root: string): Map<string, Set<string>> {
  const configPath = ts.findConfigFile(root, ts.sys.fileExists, "tsconfig.json");
  if (!configPath || resolve(configPath, "..") !== resolve(root)) throw new Error(`${root}: no tsconfig.json`);
  const config = ts.readConfigFile(configPath, ts.sys.readFile);
  if (config.error) throw new Error(ts.flattenDiagnosticMessageText(config.error.messageText, "\n"));
  const parsed = ts.parseJsonConfigFileContent(config.config, ts.sys, root);
  const files = new Set(parsed.fileNames.map((f) => resolve(f)));
  const graph = new Map<string, Set<string>>();
  for (const file of files) {
    const rel = relative(root, file).split(sep).join("/");
    const edges = new Set<string>();
    const info = ts.preProcessFile(ts.sys.readFile(file) ?? "", true, true);
    for (const imp of info.importedFiles) {
      const r = ts.resolveModuleName(imp.fileName, file, parsed.options, ts.sys).resolvedModule;
      if (!r || r.isExternalLibraryImport) continue;
      const target = resolve(r.resolvedFileName);
      if (files.has(target)) edges.add(relative(root, target).split(sep).join("/"));
    }
    graph.set(rel, edges);
  }
  return graph;
}

/** Strongly connected components with more than one file (or a file importing itself). */
function cycles(graph: Map<string, Set<string>>): string[][] {
  const index = new Map<string, number>(),
    low = new Map<string, number>();
  const stack: string[] = [],
    onStack = new Set<string>(),
    out: string[][] = [];
  let next = 0;
  const visit = (v: string): void => {
    index.set(v, next);
    low.set(v, next++);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) !== index.get(v)) return;
    const scc: string[] = [];
    for (let w = ""; w !== v;) {
      w = stack.pop()!;
      onStack.delete(w);
      scc.push(w);
    }
    if (scc.length > 1 || graph.get(v)?.has(v)) out.push(scc.sort());
  };
  for (const v of [...graph.keys()].sort()) if (!index.has(v)) visit(v);
  return out;
}

/** Every import that goes up or sideways against LAYERS, and every cycle. */
export function checkLayers(root: string, layers: Layer[] = LAYERS): Violation[] {
  const graph = importGraph(root);
  const out: Violation[] = [];
  for (const [from, targets] of [...graph].sort(([a], [b]) => a.localeCompare(b))) {
    const own = layerOf(from, layers);
    if (!own) {
      out.push({ kind: "unplaced", message: `${from}: in no layer (add its folder to LAYERS in scripts/check-layers.ts)` });
      continue;
    }
    for (const to of [...targets].sort()) {
      const theirs = layerOf(to, layers);
      if (!theirs) continue; // reported as unplaced itself
      if (theirs === own ? !own.isolated : own.uses.includes(theirs.name)) continue;
      const allowed = [...(own.isolated ? [] : [own.name]), ...own.uses];
      const why = theirs === own ? `one ${own.name} file imports another` : `${own.name} may import only ${allowed.join(", ") || "itself"}`;
      out.push({ kind: "upward", message: `${from} imports ${to}: ${why} (${theirs.name} is not below ${own.name})` });
    }
  }
  for (const scc of cycles(graph)) out.push({ kind: "cycle", message: `import cycle: ${scc.join(" <-> ")}` });
  return out;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const root = resolve(process.argv[2] ?? resolve(fileURLToPath(import.meta.url), "..", ".."));
  const violations = checkLayers(root);
  const files = importGraph(root).size;
  for (const v of violations) process.stderr.write(`layers: ${v.message}\n`);
  if (violations.length) {
    process.stderr.write(
      `layers: ${violations.length} violation${violations.length === 1 ? "" : "s"} (docs/architecture.md, "The TypeScript layers")\n`,
    );
    process.exit(1);
  }
  process.stdout.write(`layers: ${files} files, imports follow the layers, no cycles\n`);
}
