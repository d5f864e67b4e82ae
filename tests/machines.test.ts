// The guest boots under Parapet on QEMU's q35 machine, and SMIs taken while the guest runs
// (QEMU's pc machine has SMM on by default) leave Parapet running.
import { test, before } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { prepare, bootGuest, kv, parseMemmap, hvRegion, TMP } from "./fixture.ts";

before(async () => {
  await prepare();
  mkdirSync(TMP, { recursive: true });
});

test("Linux boots under Parapet on -machine q35 and powers off", async () => {
  const g = await bootGuest({ machine: "q35" });
  try {
    assert.match(await g.sh("cat /proc/parapet/version"), /magic=0x54505250/);
    assert.equal(BigInt(kv(await g.sh("ptest cpuid 0x80000001")).ecx) & 4n, 0n);
    const { base } = hvRegion(g.hvLog());
    const hit = parseMemmap(await g.sh("ptest memmap")).filter((e) => e.start <= base && base <= e.end);
    assert.equal(hit.length, 1);
    assert.equal(hit[0].type, "Reserved");
    const fate = await g.poweroff();
    assert.equal(fate.kind, "poweroff", JSON.stringify(fate));
    assert.doesNotMatch(g.hvLog(), /panic|VMEXIT_INVALID/);
  } finally {
    g.kill();
  }
});

test("SMIs raised by the guest enter SMM in guest mode, and Parapet keeps running", async () => {
  // QEMU's interrupt trace prints the CPU state, EFER included, before each "SMM: enter".
  const trace = join(TMP, "smm-trace.log");
  const g = await bootGuest({ machine: "pc,smm=on", extraArgs: ["-d", "int", "-D", trace] });
  try {
    // A write to the APM control port (0xB2) raises an SMI on PIIX4; SeaBIOS's handler runs.
    await g.sh("for i in 1 2 3; do printf '\\000' | dd of=/dev/port bs=1 seek=178 2>/dev/null; done");
    // Exits after the SMIs still work: CPUID and VMMCALL.
    assert.equal(BigInt(kv(await g.sh("ptest cpuid 0x80000001")).ecx) & 4n, 0n);
    assert.match(await g.sh("cat /proc/parapet/version"), /magic=0x54505250/);
    const fate = await g.poweroff();
    assert.equal(fate.kind, "poweroff", JSON.stringify(fate));
    assert.doesNotMatch(g.hvLog(), /panic|VMEXIT_INVALID/);
    // SMM entries with EFER.SVME set happened while the guest ran under Parapet.
    const efers = [...readFileSync(trace, "latin1").matchAll(/EFER=([0-9a-f]+)\s*\nSMM: enter/g)].map((m) => BigInt("0x" + m[1]));
    const inGuest = efers.filter((e) => (e & 0x1000n) !== 0n).length;
    assert.ok(inGuest >= 3, `SMM entries with SVME set: ${inGuest} of ${efers.length}`);
  } finally {
    g.kill();
  }
});
