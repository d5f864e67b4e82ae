// CPU conformance: an unmodified guest must not be able to tell the CPU under Parapet from the
// bare one, except for what Parapet hides on purpose (SVM and VMX, its own memory). The guest
// module's /proc/parapet/conform (docs/guest.md) runs the same probes in a bare boot (the module
// loaded with bare=1) and in a boot under Parapet, on the same machine type with the same -cpu;
// every line it prints is an observation, and any line that differs is a failure.
import { describe, test, before } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { prepare, bootGuest, TMP } from "./fixture.ts";
import type { BootOptions, QemuSession } from "../src/lib/qemu.ts";

/** In the order the module runs them; one read each, so a family that brings the guest down hides no other. */
const FAMILIES = ["cpuid", "step", "nmi", "apicbase", "mmio.ram", "mmio.apic", "mmio.ioapic", "mmio.ecam"] as const;
type Family = (typeof FAMILIES)[number];
type Run = Map<Family, string[]>;

/** Both boots of a comparison: the same machine, CPU model, memory and CPU count. */
const CPU_MODEL = "EPYC,+svm,+npt";
const SHOWN = 60;

async function collect(g: QemuSession): Promise<Run> {
  const run: Run = new Map();
  let stopped = "";
  for (const f of FAMILIES) {
    if (!stopped && !g.alive) stopped = "QEMU had ended";
    if (stopped) {
      run.set(f, [`family.${f}=not-run: ${stopped}`]);
      continue;
    }
    try {
      const r = await g.exec(`echo ${f} > /proc/parapet/conform && cat /proc/parapet/conform`, 120_000);
      const lines = r.out
        .split("\n")
        .map((l) => l.trim())
        .filter((l) => l.length > 0);
      if (r.status !== 0) lines.push(`family.${f}=error: exit status ${r.status}`);
      run.set(f, lines);
    } catch (e) {
      // A guest that stopped answering would make every later family wait as long.
      stopped = `the guest stopped answering during ${f}`;
      run.set(f, [`family.${f}=error: ${(e as Error).message.split("\n")[0]}`]);
    }
  }
  return run;
}

function observations(lines: string[]): Map<string, string> {
  const m = new Map<string, string>();
  for (const l of lines) {
    const i = l.indexOf("=");
    const key = i < 0 ? l : l.slice(0, i);
    assert.ok(!m.has(key), `observation ${key} printed twice`);
    m.set(key, i < 0 ? "" : l.slice(i + 1));
  }
  return m;
}

/** The observations that differ, one line each: `key: bare=… | parapet=…`. */
function differences(bare: string[], hv: string[]): string[] {
  const a = observations(bare),
    b = observations(hv);
  const out: string[] = [];
  for (const [k, v] of a) {
    if (!b.has(k)) out.push(`${k}: bare=${v} | parapet=(missing)`);
    else if (b.get(k) !== v) out.push(`${k}: bare=${v} | parapet=${b.get(k)}`);
  }
  for (const [k, v] of b) if (!a.has(k)) out.push(`${k}: bare=(missing) | parapet=${v}`);
  return out;
}

function report(family: Family, bare: string[], diffs: string[]): string {
  // Counted per target (mmio.apic, mmio.ioapic_win, …) or per CPU (cpuid.cpu0, …).
  const perGroup = new Map<string, number>();
  for (const d of diffs) {
    const key = d.slice(0, d.indexOf(":"));
    const g = /^(mmio|cpuid|apicbase)\./.test(key) ? key.split(".").slice(0, 2).join(".") : family;
    perGroup.set(g, (perGroup.get(g) ?? 0) + 1);
  }
  const summary = [...perGroup].map(([g, n]) => `${g}: ${n}`).join(", ");
  const more = diffs.length > SHOWN ? `\n… and ${diffs.length - SHOWN} more` : "";
  return `${family}: ${diffs.length} of ${bare.length} observations differ (${summary}):\n${diffs.slice(0, SHOWN).join("\n")}${more}`;
}

const value = (lines: string[], key: string) => observations(lines).get(key);

for (const machine of ["pc", "q35"]) {
  describe(`the CPU under Parapet answers as the bare CPU on ${machine}, 2 CPUs`, () => {
    let bare: Run, hv: Run;
    const boot: BootOptions = { machine, cpus: 2, cpu: CPU_MODEL, memory: "512M" };

    before(async () => {
      await prepare();
      mkdirSync(TMP, { recursive: true });
      // One QEMU at a time: the bare boot, then Parapet's.
      const b = await bootGuest({ ...boot, parapet: false });
      try {
        assert.match(b.console, /parapet_guest: absent/);
        await b.sh("insmod /lib/parapet/parapet_guest.ko bare=1");
        bare = await collect(b);
        await b.poweroff();
      } finally {
        b.kill();
      }
      const g = await bootGuest(boot);
      try {
        assert.match(g.console, /parapet_guest: loaded/);
        hv = await collect(g);
        if (g.alive) await g.poweroff();
      } finally {
        g.kill();
      }
      for (const [side, run] of [
        ["bare", bare],
        ["parapet", hv],
      ] as const)
        writeFileSync(join(TMP, `cpu-${machine}-${side}.txt`), [...run.values()].flat().join("\n") + "\n");
    });

    test("the bare run finishes every family and shows what the hardware does", () => {
      for (const f of FAMILIES) {
        const lines = bare.get(f)!;
        assert.equal(lines[0], `family.${f}.begin=yes`, lines.join("\n"));
        assert.equal(lines.at(-1), `family.${f}.end=yes`, lines.slice(-5).join("\n"));
        assert.deepEqual(
          lines.filter((l) => /=error|trap=/.test(l)),
          [],
          `${f}: errors or exceptions on the bare CPU`,
        );
      }
      // Single-step: the #DB right after each instruction (its length), DR6.BS.
      const step = bare.get("step")!;
      const lengths = { nop: 1, cpuid: 2, in92: 2, incf8: 1, in80: 2, rdmsr_efer: 2, rdmsr_star: 2, apic: 6 };
      for (const [p, n] of Object.entries(lengths)) assert.equal(value(step, `step.${p}`), `+${n} dr6=4000 hits=1`, p);
      // NMI inside the NMI handler: held until the handler's IRET, none lost.
      const nmi = bare.get("nmi")!;
      assert.equal(value(nmi, "nmi.handler_calls"), "2");
      assert.equal(value(nmi, "nmi.nested_in_handler"), "0");
      assert.equal(value(nmi, "nmi.max_depth"), "1");
      assert.equal(value(nmi, "nmi.total"), "2");
      // CPUID.OSXSAVE follows CR4 on every CPU; the APIC IDs are the CPUs' own.
      const cpuid = bare.get("cpuid")!;
      for (const cpu of [0, 1]) {
        assert.equal(value(cpuid, `cpuid.cpu${cpu}.osxsave`), "cr4:1 cpuid:1");
        assert.equal(value(cpuid, `cpuid.cpu${cpu}.osxsave_cleared`), "cr4:0 cpuid:0");
        assert.equal(value(cpuid, `cpuid.cpu${cpu}.apic_id`), `leaf1:${cpu} leafb:${cpu} reg:${cpu}`);
      }
      // The xAPIC page moves and answers at its new base; the MSR goes back.
      const ab = bare.get("apicbase")!;
      assert.match(value(ab, "apicbase.cpu0")!, /^wrmsr:ok moved:fee10900 id:00000000 version:000[0-9a-f]{5} restored:fee00900$/);
      assert.match(value(ab, "apicbase.cpu1")!, /^wrmsr:ok moved:fee10800 id:01000000 version:000[0-9a-f]{5} restored:fee00800$/);
      // Every trapped kind of page was reached (ECAM only on q35), and restored.
      assert.match(value(bare.get("mmio.apic")!, "mmio.apic.mov_st32")!, /mem=00000071$/);
      assert.equal(value(bare.get("mmio.apic")!, "mmio.apic.restored"), "1");
      assert.equal(value(bare.get("mmio.ioapic")!, "mmio.ioapic_win.restored"), "1");
      const ecam = bare.get("mmio.ecam")!;
      if (machine === "q35") {
        assert.match(value(ecam, "mmio.ecam.page")!, /vendor=8086 device=29c0/);
        assert.equal(value(ecam, "mmio.ecam.restored"), "1");
      } else {
        assert.match(value(ecam, "mmio.ecam")!, /^not-run: no MCFG table/);
      }
    });

    for (const f of FAMILIES) {
      test(`${f}: the same observations under Parapet`, () => {
        const diffs = differences(bare.get(f)!, hv.get(f)!);
        assert.ok(diffs.length === 0, report(f, bare.get(f)!, diffs));
      });
    }
  });
}
