// Boots QEMU with or without Parapet and talks to the guest through its serial console.
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { REPO_ROOT } from "./guestimage.ts";

export const HYPERVISOR = join(REPO_ROOT, "build", "parapet.elf");
export const QEMU = "qemu-system-x86_64";

export type LogSink = "e9" | "com1" | "com2" | "com3" | "com4" | "none";

export interface BootOptions {
  /** Raw disk image booted as the first IDE hard disk (primary master). */
  disk?: string;
  /**
   * Put `disk` on an added PIIX3 IDE controller (-device piix3-ide) rather than where the
   * machine puts if=ide drives: on q35 that is the ICH9 AHCI controller at 00:1f.2, which
   * Parapet does not mediate (it protects IDE disks only). On pc the disk is on PIIX already.
   */
  piixIde?: boolean;
  /**
   * An emulated IOMMU (q35 only): "intel" adds -device intel-iommu (VT-d); "amd" adds
   * -device amd-iommu,pt=off (AMD-Vi; with QEMU 10's default pt=on no emulated device's DMA is
   * ever translated). Every PCI device of q35's root bus is behind it, the machine's own ones
   * (AHCI, the NIC) included.
   */
  iommu?: "intel" | "amd";
  /** ISO booted from CD (then Parapet comes from the ISO, not from -kernel). */
  cdrom?: string;
  /** Boot under Parapet from -kernel (default), or bare (false). Ignored with cdrom. */
  parapet?: boolean;
  /** Extra hypervisor command-line options (log= is set from logSink). */
  hvArgs?: string;
  logSink?: LogSink;
  /** File that receives the hypervisor log (port 0xE9 or the chosen COM port). */
  hvLog?: string;
  memory?: string;
  cpus?: number;
  machine?: string;
  /** QEMU -cpu model (default EPYC,+svm,+npt: AMD-V with nested paging under TCG). */
  cpu?: string;
  /** Write guest disk changes to a temporary overlay instead of the image. */
  snapshot?: boolean;
  /**
   * Multiboot modules for Parapet (e.g. a policy record, or a preboot kernel and its initrd):
   * QEMU `-initrd a,b`. A module's command line follows its path after a space
   * ("vmlinuz console=ttyS0,115200"). Only with -kernel.
   */
  modules?: string[];
  extraArgs?: string[];
}

export type Fate =
  | { kind: "poweroff"; code: number }
  | { kind: "reset" }
  | { kind: "panic"; message: string }
  | { kind: "killed"; reason: string }
  | { kind: "error"; code: number | null; stderr: string };

const COM_INDEX: Record<string, number> = { com1: 0, com2: 1, com3: 2, com4: 3 };

/** Is this -machine value QEMU's q35 (the only x86 machine that takes an emulated IOMMU)? */
export function isQ35(machine: string): boolean {
  return /^(type=)?(pc-)?q35(-[0-9.]+)?(,|$)/.test(machine);
}

/**
 * QEMU arguments that attach a raw image as the primary master of an added PIIX3 IDE
 * controller (id pide): on q35 the machine's own if=ide bus is AHCI, which Parapet does not
 * mediate. `id` names the drive (default d0).
 */
export function piixIdeArgs(image: string, o: { snapshot?: boolean; id?: string } = {}): string[] {
  const id = o.id ?? "d0";
  return [
    "-device", "piix3-ide,id=pide",
    "-drive", `file=${resolve(image)},format=raw,if=none,id=${id}${o.snapshot ? ",snapshot=on" : ""}`,
    "-device", `ide-hd,drive=${id},bus=pide.0`,
  ];
}

/** The QEMU command line for these options. */
export function qemuArgs(o: BootOptions, hvLog: string): string[] {
  const sink = o.logSink ?? "e9";
  const machine = o.machine ?? "pc";
  if (o.iommu && !isQ35(machine)) throw new Error(`an emulated IOMMU needs -machine q35 (not ${machine})`);
  const args = [
    "-accel", "tcg", "-cpu", o.cpu ?? "EPYC,+svm,+npt",
    "-machine", machine,
    "-m", o.memory ?? "512M",
    "-smp", String(o.cpus ?? 1),
    "-display", "none", "-vga", "none", "-no-reboot", "-monitor", "none",
  ];
  // QEMU 10 accepts intel-iommu anywhere among the devices (every device's DMA address space
  // is bound when machine creation is done); first is where older QEMUs wanted it.
  if (o.iommu === "intel") args.push("-device", "intel-iommu");
  if (o.iommu === "amd") args.push("-device", "amd-iommu,pt=off");
  // Serial ports: the guest console is COM1 unless the hypervisor logs there.
  const com = COM_INDEX[sink];
  const serials: string[] = [];
  if (com === undefined) serials.push("stdio");
  else for (let i = 0; i <= com; i++) serials.push(i === com ? `file:${hvLog}` : i === 0 ? "stdio" : "null");
  for (const s of serials) args.push("-serial", s);
  if (sink === "e9") args.push("-debugcon", `file:${hvLog}`);
  if (o.modules?.length && (o.cdrom || o.parapet === false)) throw new Error("Multiboot modules need Parapet loaded with -kernel (not --iso, not --bare)");
  if (o.cdrom) {
    args.push("-cdrom", o.cdrom, "-boot", "d");
  } else if (o.parapet !== false) {
    if (!existsSync(HYPERVISOR)) throw new Error(`${HYPERVISOR} is missing: run make first`);
    args.push("-kernel", HYPERVISOR, "-append", [`log=${sink}`, o.hvArgs ?? ""].join(" ").trim());
    if (o.modules?.length) {
      const mods = o.modules.map((m) => {
        const space = m.indexOf(" ");
        const path = resolve(space < 0 ? m : m.slice(0, space));
        if (path.includes(",")) throw new Error(`module path ${path} contains a comma, which QEMU's -initrd list cannot carry`);
        if (!existsSync(path)) throw new Error(`module ${path} does not exist`);
        // QEMU splits the list at commas; a doubled comma is a literal one.
        return space < 0 ? path : `${path}${m.slice(space).replace(/,/g, ",,")}`;
      });
      args.push("-initrd", mods.join(","));
    }
  }
  if (o.disk) {
    if (!existsSync(o.disk)) throw new Error(`disk image ${o.disk} does not exist (build one with: npx parapet image)`);
    if (o.piixIde) args.push(...piixIdeArgs(o.disk, { snapshot: o.snapshot }));
    else args.push("-drive", `file=${resolve(o.disk)},format=raw,if=ide,index=0,media=disk${o.snapshot ? ",snapshot=on" : ""}`);
  } else if (o.piixIde) throw new Error("piixIde puts the disk on a PIIX IDE controller: give a disk");
  args.push(...(o.extraArgs ?? []));
  return args;
}

/** The test guest's shell prompt (guest/init sets PS1). */
const PROMPT = "guest# ";

/** Lines QEMU prints about CPU features TCG cannot emulate: noise for our purposes. */
const NOISE = /TCG doesn't support requested feature/;

/** A running QEMU with the guest console on its stdio. */
export class QemuSession {
  readonly proc: ChildProcess;
  readonly hvLogPath: string;
  readonly started = Date.now();
  console = "";
  private stderr = "";
  private listeners: Array<() => void> = [];
  private exited: Promise<Fate>;
  private panicTimer: NodeJS.Timeout;
  private fateOverride: Fate | undefined;
  onConsole: ((text: string) => void) | undefined;

  constructor(readonly opts: BootOptions) {
    this.hvLogPath = opts.hvLog ?? join(mkdtempSync(join(tmpdir(), "parapet-")), "hv.log");
    this.proc = spawn(QEMU, qemuArgs(opts, this.hvLogPath), { stdio: ["pipe", "pipe", "pipe"] });
    this.proc.stdout!.setEncoding("latin1");
    this.proc.stdout!.on("data", (d: string) => {
      this.console += d;
      this.onConsole?.(d);
      for (const l of this.listeners.splice(0)) l();
    });
    this.proc.stderr!.setEncoding("utf8");
    this.proc.stderr!.on("data", (d: string) => {
      this.stderr += d.split("\n").filter((l) => !NOISE.test(l)).join("\n");
    });
    // A panicked hypervisor halts forever: watch its log and stop QEMU when it says so.
    this.panicTimer = setInterval(() => {
      const m = /parapet: panic: (.*)/.exec(this.hvLog());
      if (m) {
        this.fateOverride = { kind: "panic", message: m[1] };
        this.proc.kill("SIGKILL");
      }
    }, 500);
    this.exited = new Promise((res) => {
      this.proc.on("error", (err) => res({ kind: "error", code: null, stderr: err.message }));
      this.proc.on("exit", (code) => {
        clearInterval(this.panicTimer);
        for (const l of this.listeners.splice(0)) l();
        if (this.fateOverride) return res(this.fateOverride);
        const m = /parapet: panic: (.*)/.exec(this.hvLog());
        if (m) return res({ kind: "panic", message: m[1] });
        if (code === 0 && /guest shutdown \(triple fault\)/.test(this.hvLog())) return res({ kind: "reset" });
        if (code === 0) return res({ kind: "poweroff", code: 0 });
        res({ kind: "error", code, stderr: this.stderr.trim() });
      });
    });
  }

  /** The hypervisor log so far. */
  hvLog(): string {
    try {
      return readFileSync(this.hvLogPath, "latin1");
    } catch {
      return "";
    }
  }

  get alive(): boolean {
    return this.proc.exitCode === null && this.proc.signalCode === null;
  }

  /** Resolves with the console text once it matches `re` after position `from`. */
  async waitFor(re: RegExp, timeoutMs: number, from = 0): Promise<RegExpExecArray> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = re.exec(this.console.slice(from));
      if (m) return m;
      if (!this.alive) throw new Error(`QEMU exited while waiting for ${re}; console tail:\n${this.tail()}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out after ${timeoutMs} ms waiting for ${re}; console tail:\n${this.tail()}`);
      await new Promise<void>((res) => {
        const t = setTimeout(res, Math.min(left, 1000));
        this.listeners.push(() => {
          clearTimeout(t);
          res();
        });
      });
    }
  }

  tail(n = 1500): string {
    return this.console.slice(-n);
  }

  send(text: string): void {
    this.proc.stdin!.write(text);
  }

  /** Wait for the test guest's shell (the first one at or after console offset `from`) and make its output plain (no echo). */
  async ready(timeoutMs = 240_000, from = 0): Promise<void> {
    const m = await this.waitFor(/PARAPET-GUEST-READY/, timeoutMs, from);
    await this.waitFor(/guest# /, 30_000, from + m.index);
    await this.exec("stty -echo");
  }

  /** Run one shell command in the guest; returns its output (prompt and echo removed) and status. */
  async exec(cmd: string, timeoutMs = 60_000): Promise<{ out: string; status: number }> {
    const tag = `__END${Math.random().toString(36).slice(2, 10)}__`;
    const from = this.console.length;
    this.send(`${cmd}; echo ${tag}$?\n`);
    const m = await this.waitFor(new RegExp(`([\\s\\S]*?)${tag}(\\d+)`), timeoutMs, from);
    const lines = m[1].replace(/\r/g, "").replace(/\x1b\[[0-9;]*[a-zA-Z]/g, "").split("\n");
    // The previous prompt may have been cut where `from` fell: drop the rest of it too.
    const tail = [...Array(PROMPT.length - 2).keys()].map((i) => PROMPT.slice(i + 1)).find((t) => lines[0].startsWith(t));
    if (tail) lines[0] = lines[0].slice(tail.length);
    const out = lines
      .map((l) => l.replace(/^(guest# )+/, ""))
      .filter((l) => !l.startsWith(cmd.slice(0, 20)) || cmd.length === 0);
    return { out: out.join("\n").trim(), status: Number(m[2]) };
  }

  /** Output of a guest command; fails when its exit status is not 0. */
  async sh(cmd: string, timeoutMs = 60_000): Promise<string> {
    const r = await this.exec(cmd, timeoutMs);
    if (r.status !== 0) throw new Error(`guest command failed with status ${r.status}: ${cmd}\n${r.out}`);
    return r.out;
  }

  /** Power the guest off and return how QEMU ended. */
  async poweroff(timeoutMs = 60_000): Promise<Fate> {
    this.send("poweroff -f\n");
    return this.fate(timeoutMs);
  }

  /** How the run ended; kills QEMU after timeoutMs. */
  async fate(timeoutMs = 600_000): Promise<Fate> {
    const t = setTimeout(() => {
      this.fateOverride = { kind: "killed", reason: `no end after ${timeoutMs} ms` };
      this.proc.kill("SIGKILL");
    }, timeoutMs);
    try {
      return await this.exited;
    } finally {
      clearTimeout(t);
    }
  }

  kill(): void {
    if (this.alive) {
      this.fateOverride ??= { kind: "killed", reason: "killed by the harness" };
      this.proc.kill("SIGKILL");
    }
  }
}
