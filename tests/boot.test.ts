// Parapet boots the test guest on QEMU's default pc machine (SMM on, as SeaBIOS uses it), and
// the guest checks, from inside, what Parapet hides and refuses. A bare boot of the same guest
// in the same run is the reference.
import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { prepare, bootGuest, parseMemmap, hvRegion, kv, parseExits, type MemEntry } from "./fixture.ts";
import type { QemuSession } from "../src/lib/qemu.ts";

const SVM = 1n << 2n,
  VMX = 1n << 5n,
  EFER_SVME = 1n << 12n;
const hex = (v: bigint) => "0x" + v.toString(16);

describe("Parapet on the default pc machine", () => {
  let g: QemuSession;
  let bareMap: MemEntry[];
  let bareCpuid80000001: Record<string, string>;
  let bareSstep: Record<string, string>[];

  before(async () => {
    await prepare();
    const bare = await bootGuest({ parapet: false });
    bareMap = parseMemmap(await bare.sh("ptest memmap"));
    bareCpuid80000001 = kv(await bare.sh("ptest cpuid 0x80000001"));
    bareSstep = [kv(await bare.sh("ptest sstep cpuid")), kv(await bare.sh("ptest sstep inb 0xcf8"))];
    assert.match(bare.console, /parapet_guest: absent/, "the guest module must see no hypervisor on bare QEMU");
    assert.equal((await bare.poweroff()).kind, "poweroff");
    g = await bootGuest();
  });

  after(() => g?.kill());

  test("the guest reaches userspace and finds Parapet's interface", async () => {
    assert.match(g.console, /parapet_guest: loaded/);
    const v = await g.sh("cat /proc/parapet/version");
    assert.match(v, /magic=0x54505250/);
    assert.match(v, /abi=0x00010004/);
    assert.match(g.hvLog(), /vcpu: cpu0: entering the guest at [0-9a-f]+:[0-9a-f]+ \(real mode\)/);
  });

  test("CPUID shows no SVM and no VMX", async () => {
    assert.notEqual(BigInt(bareCpuid80000001.ecx) & SVM, 0n, "the emulated CPU has SVM, so hiding it is meaningful");
    const ext = kv(await g.sh("ptest cpuid 0x80000001"));
    assert.equal(BigInt(ext.ecx) & SVM, 0n, `SVM bit visible: ${ext.ecx}`);
    const std = kv(await g.sh("ptest cpuid 1"));
    assert.equal(BigInt(std.ecx) & VMX, 0n);
    const svmLeaf = kv(await g.sh("ptest cpuid 0x8000000a"));
    for (const r of ["eax", "ebx", "ecx", "edx"]) assert.equal(BigInt(svmLeaf[r]), 0n, `leaf 8000000A ${r}`);
    const flags = await g.sh("grep -m1 '^flags' /proc/cpuinfo");
    assert.doesNotMatch(flags, /\b(svm|vmx)\b/);
  });

  // CPUID always exits to Parapet, and so does IN from 0xCF8 (PCI configuration, always hooked):
  // Parapet completes them, and must raise the single-step trap right after them as the
  // processor does (the bare run shows the processor's answer).
  test("single-stepping an instruction Parapet completes stops right after it", async () => {
    for (const r of bareSstep) assert.equal(r.at, r.next, `bare: ${JSON.stringify(r)}`);
    for (const cmd of ["ptest sstep cpuid", "ptest sstep inb 0xcf8"]) {
      const r = kv(await g.sh(cmd));
      assert.ok(r.at && r.at === r.next, `${cmd}: ${JSON.stringify(r)}`);
    }
  });

  test("the E820 map shows Parapet's memory as reserved, with no gap", async () => {
    const map = parseMemmap(await g.sh("ptest memmap"));
    const { base, end } = hvRegion(g.hvLog());
    const at = (m: MemEntry[], a: bigint) => m.filter((e) => e.start <= a && a <= e.end);
    // Parapet's region: reserved, from its first to its last byte.
    for (const a of [base, base + (end - base) / 2n, end - 1n]) {
      const hit = at(map, a);
      assert.equal(hit.length, 1, `address ${hex(a)} in ${hit.length} entries`);
      assert.equal(hit[0].type, "Reserved", `address ${hex(a)} is ${hit[0].type}`);
    }
    // Every byte the bare machine calls RAM is RAM or Reserved under Parapet: sample each entry's
    // edges and every MiB.
    for (const e of bareMap.filter((x) => x.type === "System RAM")) {
      for (let a = e.start; a <= e.end; a += 1n << 20n) {
        for (const p of [a, a + 0x3ffn > e.end ? e.end : a + 0x3ffn]) {
          const hit = at(map, p);
          assert.equal(hit.length, 1, `RAM byte ${hex(p)} is in ${hit.length} entries under Parapet`);
          assert.ok(["System RAM", "Reserved"].includes(hit[0].type), `${hex(p)} became ${hit[0].type}`);
        }
      }
      const last = at(map, e.end);
      assert.equal(last.length, 1, `RAM byte ${hex(e.end)} vanished`);
    }
    // Exactly Parapet's 16 MiB and its 2 KiB BIOS stub left usable RAM.
    const ram = (m: MemEntry[]) => m.filter((x) => x.type === "System RAM").reduce((s, x) => s + x.end - x.start + 1n, 0n);
    assert.equal(ram(bareMap) - ram(map), end - base + 2048n);
    // INT 12h and the BIOS data area agree with the map.
    assert.match(g.hvLog(), /bios: stub at [0-9a-f]+, base memory 639 -> 637 KiB/);
  });

  test("reading Parapet's memory through /dev/mem reveals nothing, and writing there harms nothing", async () => {
    const { base, end } = hvRegion(g.hvLog());
    const read = kv(await g.sh(`ptest devmem-read ${hex(base)} ${hex(end - base)}`, 300_000));
    assert.equal(read.error, undefined, `mmap of the region failed: ${JSON.stringify(read)}`);
    assert.equal(Number(read.bytes), Number(end - base));
    assert.equal(Number(read.nonzero), 0, `Parapet's region shows data: ${JSON.stringify(read)}`);
    const w = await g.sh(`ptest devmem-write ${hex(base)} 0x2000 0x5a`);
    assert.equal(w.trim(), "ok");
    // Parapet is untouched: it still answers, and its log and state are intact.
    assert.match(await g.sh("cat /proc/parapet/version"), /magic=0x54505250/);
    assert.match(await g.sh("cat /proc/parapet/log"), /parapet: mem: hypervisor at/);
    assert.doesNotMatch(g.hvLog(), /panic/);
  });

  test("EFER.SVME, VM_HSAVE_PA and VM_CR are refused as on a CPU without SVM", async () => {
    const efer = BigInt(kv((await g.exec("ptest rdmsr 0 0xc0000080")).out).value);
    assert.equal(efer & EFER_SVME, 0n, `guest sees EFER ${hex(efer)}`);
    assert.equal(kv((await g.exec(`ptest wrmsr 0 0xc0000080 ${hex(efer | EFER_SVME)}`)).out).error, "EIO");
    assert.equal(kv((await g.exec("ptest wrmsr 0 0xc0010117 0x1000000")).out).error, "EIO");
    assert.equal(kv((await g.exec("ptest rdmsr 0 0xc0010117")).out).error, "EIO");
    assert.equal(kv((await g.exec("ptest rdmsr 0 0xc0010114")).out).error, "EIO");
    assert.equal(kv((await g.exec("ptest wrmsr 0 0xc0010114 0x0")).out).error, "EIO");
    assert.equal(BigInt(kv((await g.exec("ptest rdmsr 0 0xc0000080")).out).value), efer, "EFER unchanged");
    // A legitimate EFER write (same value) still works.
    assert.equal((await g.sh(`ptest wrmsr 0 0xc0000080 ${hex(efer)}`)).trim(), "ok");
    assert.match(await g.sh("cat /proc/parapet/version"), /magic=0x54505250/);
  });

  test("VMMCALL from ring 3 raises #UD", async () => {
    assert.equal(kv((await g.exec("ptest vmmcall-user")).out).signal, "SIGILL");
  });

  test("SVM instructions executed in guest ring 0 get #UD and Parapet keeps running", async () => {
    const before = parseExits(await g.sh("cat /proc/parapet/exits")).counts.virt_insn;
    const insns = ["vmrun", "vmload", "vmsave", "stgi", "clgi", "skinit", "invlpga"];
    for (const insn of insns) {
      const r = await g.sh(`echo ${insn} > /proc/parapet/ring0; cat /proc/parapet/ring0`);
      assert.equal(r.trim(), `insn=${insn} trap=6`, `${insn} from ring 0`);
    }
    // Each was intercepted by Parapet (not a native fault), and Parapet still answers.
    const after = parseExits(await g.sh("cat /proc/parapet/exits")).counts.virt_insn;
    assert.equal(after - before, insns.length);
    assert.match(await g.sh("cat /proc/parapet/version"), /magic=0x54505250/);
  });

  test("the log ring and exit counters are readable through VMMCALL", async () => {
    const log = await g.sh("cat /proc/parapet/log");
    assert.match(log, /parapet: Parapet \d+\.\d+\.\d+ \(multiboot\)/);
    assert.match(log, /vcpu: cpu0: entering the guest/);
    const a = parseExits(await g.sh("cat /proc/parapet/exits"));
    assert.equal(a.cpus, 1);
    assert.ok(a.counts.cpuid > 0 && a.counts.rdmsr > 0 && a.counts.vmmcall > 0, JSON.stringify(a.counts));
    await g.sh("ptest cpuid 0; ptest cpuid 1; ptest cpuid 2");
    const b = parseExits(await g.sh("cat /proc/parapet/exits"));
    assert.ok(b.counts.cpuid >= a.counts.cpuid + 3, `cpuid ${a.counts.cpuid} -> ${b.counts.cpuid}`);
  });

  test("the guest powers off cleanly and Parapet never panicked", async () => {
    const fate = await g.poweroff();
    assert.equal(fate.kind, "poweroff", JSON.stringify(fate));
    assert.doesNotMatch(g.hvLog(), /panic|unexpected exit/);
  });
});
