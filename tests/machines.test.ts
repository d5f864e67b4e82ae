// The same guest boots under Parapet on QEMU's q35 machine (SMM on by default there too), and
// with an explicitly SMM-enabled pc machine: SeaBIOS enters SMM while the guest runs, which
// clears the saved EFER.SVME; Parapet must keep running.
import { test, before } from "node:test";
import assert from "node:assert/strict";
import { prepare, bootGuest, kv, parseMemmap, hvRegion } from "./fixture.ts";

before(async () => {
  await prepare();
});

for (const machine of ["q35", "pc,smm=on"]) {
  test(`Linux boots under Parapet on -machine ${machine} and powers off`, async () => {
    const g = await bootGuest({ machine });
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
}
