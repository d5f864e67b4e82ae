// Host-side unit tests of the hypervisor's hardware-free modules, built with ASan + UBSan.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { REPO_ROOT } from "./fixture.ts";

test("hypervisor unit tests pass under AddressSanitizer and UBSan", () => {
  const r = spawnSync("make", ["-s", "-C", `${REPO_ROOT}/hv`, "test"], { encoding: "utf8" });
  process.stdout.write(r.stdout.split("\n").filter((l) => l.startsWith("FAIL") || l.startsWith("unit:")).map((l) => `# ${l}\n`).join(""));
  assert.equal(r.status, 0, `unit tests failed:\n${r.stdout}\n${r.stderr}`);
  assert.match(r.stdout, /unit: \d+ passed, 0 failed/);
});
