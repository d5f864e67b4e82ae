// The real-PC path: GRUB (from a BIOS-bootable ISO) starts Parapet by Multiboot 2, and Parapet
// boots the guest from the first hard disk.
import { test, before } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { mkdirSync } from "node:fs";
import { prepare, bootGuest, TMP } from "./fixture.ts";
import { buildIso } from "../src/lib/iso.ts";

let iso: string;

before(async () => {
  await prepare();
  mkdirSync(TMP, { recursive: true });
  iso = join(TMP, "boot.iso");
  await buildIso({ output: iso, force: true });
});

test("GRUB starts Parapet by Multiboot 2 and the guest boots from the hard disk", async () => {
  const g = await bootGuest({ cdrom: iso });
  try {
    const log = g.hvLog();
    assert.match(log, /parapet: Parapet \d+\.\d+\.\d+ \(multiboot2\)/);
    assert.match(log, /bios: stub at [0-9a-f]+, .* boot drive 80/);
    assert.match(await g.sh("cat /proc/parapet/version"), /magic=0x54505250/);
    assert.equal(BigInt(/ecx=(0x[0-9a-f]+)/.exec(await g.sh("ptest cpuid 0x80000001"))![1]) & 4n, 0n);
    assert.equal((await g.poweroff()).kind, "poweroff");
    assert.doesNotMatch(g.hvLog(), /panic/);
  } finally {
    g.kill();
  }
});
