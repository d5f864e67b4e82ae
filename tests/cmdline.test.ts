// The hypervisor command line: log sinks, a COM port hidden from the guest, and refusal of bad options.
import { test, before } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { prepare, bootGuest, DEFAULT_IMAGE, TMP } from "./fixture.ts";
import { QemuSession } from "../src/lib/qemu.ts";

before(async () => {
  await prepare();
  mkdirSync(TMP, { recursive: true });
});

test("log=com2 writes the log to COM2 and hides that port from the guest", async () => {
  const hvLog = join(TMP, "com2.log");
  const g = await bootGuest({ logSink: "com2", hvLog });
  try {
    // Linux probes ttyS1 and finds no UART there; ttyS0 (the console) is untouched.
    const serial = await g.sh("cat /proc/tty/driver/serial");
    assert.match(serial, /^0: uart:16550A/m);
    assert.match(serial, /^1: uart:unknown/m);
    // Guest writes to the hidden port never reach the log.
    await g.sh("printf 'GUEST-WAS-HERE' | dd of=/dev/port bs=1 seek=$((0x2f8)) 2>/dev/null; true");
    const fate = await g.poweroff();
    assert.equal(fate.kind, "poweroff");
    const log = readFileSync(hvLog, "latin1");
    assert.match(log, /parapet: io: COM port 2f8 hidden from the guest/);
    assert.match(log, /vcpu: cpu0: entering the guest/);
    assert.doesNotMatch(log, /GUEST-WAS-HERE/);
  } finally {
    g.kill();
  }
});

test("log=none boots the guest and writes no log", async () => {
  const g = await bootGuest({ logSink: "none" });
  try {
    assert.match(await g.sh("cat /proc/parapet/log"), /entering the guest/); // the ring still keeps it
    assert.equal((await g.poweroff()).kind, "poweroff");
    assert.equal(g.hvLog(), "");
  } finally {
    g.kill();
  }
});

test("an unknown option is refused with a message naming it, before any guest runs", async () => {
  const s = new QemuSession({ disk: DEFAULT_IMAGE, snapshot: true, hvArgs: "frobnicate=1" });
  const fate = await s.fate(60_000);
  assert.equal(fate.kind, "panic");
  assert.match(fate.kind === "panic" ? fate.message : "", /cmdline: unknown option 'frobnicate'/);
  assert.doesNotMatch(s.console, /Linux version/);
});

test("a bad log sink is refused and named", async () => {
  const s = new QemuSession({ disk: DEFAULT_IMAGE, snapshot: true, hvArgs: "log=com9" });
  const fate = await s.fate(60_000);
  assert.equal(fate.kind, "panic");
  assert.match(fate.kind === "panic" ? fate.message : "", /log=com9/);
});
