// Host-side unit tests of the hypervisor's hardware-free modules, built with ASan + UBSan.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { REPO_ROOT } from "./fixture.ts";

test("hypervisor unit tests pass under AddressSanitizer and UBSan", () => {
  const r = spawnSync("make", ["-s", "-C", `${REPO_ROOT}/hv`, "test"], { encoding: "utf8" });
  process.stdout.write(
    r.stdout
      .split("\n")
      .filter((l) => l.startsWith("FAIL") || l.startsWith("unit:"))
      .map((l) => `# ${l}\n`)
      .join(""),
  );
  assert.equal(r.status, 0, `unit tests failed:\n${r.stdout}\n${r.stderr}`);
  assert.match(r.stdout, /unit: \d+ passed, 0 failed/);
});

test("libFuzzer targets run clean for a bounded number of inputs", () => {
  // hv/fuzz/fuzz_*.c: the instruction decoder, the guest page walker, string I/O and the other
  // parsers of guest-controlled input; each for FUZZ_RUNS inputs or FUZZ_SECONDS, from a fixed seed.
  const r = spawnSync("make", ["-s", "-C", `${REPO_ROOT}/hv`, "fuzz"], { encoding: "utf8" });
  process.stdout.write(
    r.stdout
      .split("\n")
      .filter((l) => l.startsWith("fuzz:"))
      .map((l) => `# ${l}\n`)
      .join(""),
  );
  assert.equal(r.status, 0, `fuzzing failed (needs clang and libclang-rt-14-dev: scripts/setup.sh):\n${r.stdout}\n${r.stderr}`);
  assert.match(r.stdout, /fuzz: fuzz_decode: Done \d+ runs/);
  assert.match(r.stdout, /fuzz: fuzz_gwalk: Done \d+ runs/);
  for (const t of ["fuzz_acpi", "fuzz_acpi_pm", "fuzz_ivrs", "fuzz_fwcfg"]) assert.match(r.stdout, new RegExp(`fuzz: ${t}: Done \\d+ runs`));
});
