// The layer check (scripts/check-layers.ts) on this repository, and on scratch trees that break
// each rule once, so that it is known to be able to fail.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { checkLayers } from "../scripts/check-layers.ts";
import { REPO_ROOT } from "../src/lib/guestimage.ts";

/** A scratch repository with this tsconfig and the given files. */
function tree(files: Record<string, string>): string {
  const root = mkdtempSync(join(tmpdir(), "parapet-layers-"));
  const all: Record<string, string> = {
    "tsconfig.json": JSON.stringify({
      compilerOptions: { module: "NodeNext", moduleResolution: "NodeNext", allowImportingTsExtensions: true, noEmit: true },
      include: ["src/**/*.ts", "tests/**/*.ts", "bench/**/*.ts", "scripts/**/*.ts"],
    }),
    "src/lib/exec.ts": "export const run = 1;\n",
    "src/commands/run.ts": 'import { run } from "../lib/exec.ts";\nexport const registerRun = run;\n',
    "src/commands/disk.ts": "export const registerDisk = 2;\n",
    "src/cli.ts": 'import { registerRun } from "./commands/run.ts";\nexport default registerRun;\n',
    ...files,
  };
  for (const [path, text] of Object.entries(all)) {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), text);
  }
  return root;
}

function violations(files: Record<string, string>): string[] {
  const root = tree(files);
  try {
    return checkLayers(root).map((v) => v.message);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

test("this repository's imports follow the layers and close no cycle", () => {
  assert.deepEqual(checkLayers(REPO_ROOT), []);
});

test("a scratch tree that follows the layers passes", () => {
  assert.deepEqual(violations({}), []);
});

test("an upward import is reported: a library importing a command", () => {
  assert.deepEqual(violations({ "src/lib/exec.ts": 'import { registerDisk } from "../commands/disk.ts";\nexport const run = registerDisk;\n' }), [
    "src/lib/exec.ts imports src/commands/disk.ts: lib may import only lib (commands is not below lib)",
  ]);
});

test("benchmarks and tests may not import commands, nor benchmarks tests; commands not each other", () => {
  assert.deepEqual(
    violations({
      "bench/boot.ts":
        'import { registerRun } from "../src/commands/run.ts";\nimport { x } from "../tests/fixture.ts";\nexport const b = registerRun + x;\n',
      "tests/fixture.ts": "export const x = 1;\n",
      "tests/a.test.ts": 'import type { registerDisk } from "../src/commands/disk.ts";\nexport type T = typeof registerDisk;\n',
      "src/commands/disk.ts": 'import { registerRun } from "./run.ts";\nexport const registerDisk = registerRun;\n',
    }),
    [
      "bench/boot.ts imports src/commands/run.ts: bench may import only bench, lib (commands is not below bench)",
      "bench/boot.ts imports tests/fixture.ts: bench may import only bench, lib (tests is not below bench)",
      "src/commands/disk.ts imports src/commands/run.ts: one commands file imports another (commands is not below commands)",
      "tests/a.test.ts imports src/commands/disk.ts: tests may import only tests, lib, scripts (commands is not below tests)",
    ],
  );
});

test("a cycle is reported, a dynamic import() included", () => {
  assert.deepEqual(
    violations({
      "src/lib/a.ts": 'import { b } from "./b.ts";\nexport const a = b;\n',
      "src/lib/b.ts": 'export const b = 1;\nexport const later = () => import("./a.ts");\n',
    }),
    ["import cycle: src/lib/a.ts <-> src/lib/b.ts"],
  );
});

test("a file outside every layer is reported", () => {
  assert.deepEqual(violations({ "src/other/x.ts": "export const x = 1;\n" }), [
    "src/other/x.ts: in no layer (add its folder to LAYERS in scripts/check-layers.ts)",
  ]);
});
