// Boots QEMU with or without Parapet and talks to the guest through its serial console.
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { open } from "node:fs/promises";
import { connect, type Socket } from "node:net";
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
   * Put `disk` on port 0 of q35's own ICH9 AHCI controller (00:1f.2) explicitly: -drive if=none
   * plus -device ide-hd,bus=ide.0 (q35 only; excludes piixIde). `ahciDisks` and `ahciCdrom` add
   * more devices to the same controller.
   */
  ahci?: boolean;
  /** More raw images on the ICH9 AHCI controller (q35), each on its own port (1..5, not 0). */
  ahciDisks?: { image: string; port: number; snapshot?: boolean }[];
  /** An ISO (or an empty drive: "") as a CD-ROM on this ICH9 AHCI port (q35), not booted from. */
  ahciCdrom?: { image: string; port: number };
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
  /** The hypervisor ELF passed with -kernel (default build/parapet.elf, HYPERVISOR). */
  hypervisor?: string;
  /**
   * A QMP socket in the session's temporary directory (-qmp unix:PATH,server=on,wait=off), for
   * QemuSession.qmp(), status(), waitUntilStopped(), dumpRam().
   */
  qmp?: boolean;
  /**
   * A guest reset or power-off pauses QEMU instead of ending it (-action
   * reboot=shutdown,shutdown=pause; -no-reboot is always given): the run state becomes
   * "shutdown" with the guest's RAM intact, to be read with dumpRam() (needs qmp). QEMU then
   * runs until killed. To start over in the same QEMU: QMP set-action reboot=reset, system_reset,
   * cont (under -no-reboot a system_reset alone is a shutdown); SeaBIOS then resets the machine
   * once more itself (QEMU does not restore its shadowed ROM on reset), so set reboot=shutdown
   * back only once the guest runs again. That boot took as long as a fresh QEMU's (measured).
   */
  pauseOnExit?: boolean;
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

/** How a QEMU run ended, in one line. */
export function describeFate(f: Fate): string {
  switch (f.kind) {
    case "poweroff":
      return "the guest powered off";
    case "reset":
      return "the guest triple-faulted (machine reset)";
    case "panic":
      return `the hypervisor panicked: ${f.message}`;
    case "killed":
      return `stopped: ${f.reason}`;
    case "error":
      return `QEMU failed (exit ${f.code}): ${f.stderr}`;
  }
}

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
    "-device",
    "piix3-ide,id=pide",
    "-drive",
    `file=${resolve(image)},format=raw,if=none,id=${id}${o.snapshot ? ",snapshot=on" : ""}`,
    "-device",
    `ide-hd,drive=${id},bus=pide.0`,
  ];
}

/** Ports of q35's ICH9 AHCI controller: QEMU names their buses ide.0 .. ide.5. */
export const AHCI_PORTS = 6;

function ahciPort(port: number): number {
  if (!Number.isInteger(port) || port < 0 || port >= AHCI_PORTS) throw new Error(`AHCI port ${port}: q35's ICH9 AHCI has ports 0-${AHCI_PORTS - 1}`);
  return port;
}

/**
 * QEMU arguments that attach a raw image as the hard disk on port `port` of q35's own ICH9 AHCI
 * controller (00:1f.2, QEMU's buses ide.0 .. ide.5). `id` names the drive (default a<port>).
 */
export function ahciDiskArgs(image: string, port: number, o: { snapshot?: boolean; id?: string } = {}): string[] {
  const id = o.id ?? `a${ahciPort(port)}`;
  return [
    "-drive",
    `file=${resolve(image)},format=raw,if=none,id=${id}${o.snapshot ? ",snapshot=on" : ""}`,
    "-device",
    `ide-hd,drive=${id},bus=ide.${ahciPort(port)}`,
  ];
}

/** QEMU arguments for a CD-ROM on port `port` of q35's ICH9 AHCI controller; image "" is an empty tray. */
export function ahciCdromArgs(image: string, port: number, o: { id?: string } = {}): string[] {
  const id = o.id ?? `cd${ahciPort(port)}`;
  const file = image ? `file=${resolve(image)},format=raw,` : "";
  return ["-drive", `${file}if=none,id=${id},media=cdrom,readonly=on`, "-device", `ide-cd,drive=${id},bus=ide.${ahciPort(port)}`];
}

/** The QEMU command line for these options; `qmpSocket` is where the QMP socket goes (o.qmp). */
export function qemuArgs(o: BootOptions, hvLog: string, qmpSocket?: string): string[] {
  const sink = o.logSink ?? "e9";
  const machine = o.machine ?? "pc";
  if (o.iommu && !isQ35(machine)) throw new Error(`an emulated IOMMU needs -machine q35 (not ${machine})`);
  const args = [
    "-accel",
    "tcg",
    "-cpu",
    o.cpu ?? "EPYC,+svm,+npt",
    "-machine",
    machine,
    "-m",
    o.memory ?? "512M",
    "-smp",
    String(o.cpus ?? 1),
    "-display",
    "none",
    "-vga",
    "none",
    "-no-reboot",
    "-monitor",
    "none",
  ];
  if (o.qmp) {
    if (!qmpSocket) throw new Error("qmp: no socket path given");
    if (qmpSocket.includes(",")) throw new Error(`QMP socket path ${qmpSocket} contains a comma`);
    args.push("-qmp", `unix:${qmpSocket},server=on,wait=off`);
  }
  if (o.pauseOnExit) args.push("-action", "reboot=shutdown,shutdown=pause");
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
  if (o.modules?.length && (o.cdrom || o.parapet === false))
    throw new Error("Multiboot modules need Parapet loaded with -kernel (not --iso, not --bare)");
  if (o.cdrom) {
    args.push("-cdrom", o.cdrom, "-boot", "d");
  } else if (o.parapet !== false) {
    const hv = resolve(o.hypervisor ?? HYPERVISOR);
    if (!existsSync(hv)) throw new Error(`${hv} is missing: run make first`);
    args.push("-kernel", hv, "-append", [`log=${sink}`, o.hvArgs ?? ""].join(" ").trim());
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
  const ahciUsed = o.ahci || o.ahciDisks?.length || o.ahciCdrom;
  if (ahciUsed && !isQ35(machine)) throw new Error(`the ICH9 AHCI controller is q35's (not ${machine})`);
  if (o.ahci && o.piixIde) throw new Error("the disk goes either on PIIX IDE (piixIde) or on AHCI (ahci), not both");
  if (o.ahci && !o.disk) throw new Error("ahci puts the disk on the AHCI controller: give a disk");
  const ports = [...(o.ahci ? [0] : []), ...(o.ahciDisks ?? []).map((d) => d.port), ...(o.ahciCdrom ? [o.ahciCdrom.port] : [])];
  if (new Set(ports).size !== ports.length) throw new Error(`two devices on one AHCI port (${ports.join(", ")})`);
  if (o.disk) {
    if (!existsSync(o.disk)) throw new Error(`disk image ${o.disk} does not exist (build one with: npx parapet image)`);
    if (o.piixIde) args.push(...piixIdeArgs(o.disk, { snapshot: o.snapshot }));
    else if (o.ahci) args.push(...ahciDiskArgs(o.disk, 0, { snapshot: o.snapshot }));
    else args.push("-drive", `file=${resolve(o.disk)},format=raw,if=ide,index=0,media=disk${o.snapshot ? ",snapshot=on" : ""}`);
  } else if (o.piixIde) throw new Error("piixIde puts the disk on a PIIX IDE controller: give a disk");
  for (const d of o.ahciDisks ?? []) {
    if (d.port === 0 && o.ahci) throw new Error("AHCI port 0 holds the boot disk");
    if (!existsSync(d.image)) throw new Error(`disk image ${d.image} does not exist`);
    args.push(...ahciDiskArgs(d.image, d.port, { snapshot: d.snapshot ?? o.snapshot }));
  }
  if (o.ahciCdrom) {
    if (o.ahciCdrom.image && !existsSync(o.ahciCdrom.image)) throw new Error(`CD image ${o.ahciCdrom.image} does not exist`);
    args.push(...ahciCdromArgs(o.ahciCdrom.image, o.ahciCdrom.port));
  }
  args.push(...(o.extraArgs ?? []));
  return args;
}

/** An asynchronous QMP event, with the host time it arrived (Date.now()). */
export interface QmpEvent {
  event: string;
  data?: Record<string, unknown>;
  /** QEMU's own timestamp of the event, in ms since the epoch. */
  qemuMs: number;
  /** When the client read it. */
  hostMs: number;
}

/** The answer of query-status. */
export interface RunState {
  running: boolean;
  status: string;
}

/**
 * A minimal QMP client (QEMU Machine Protocol, JSON lines over a Unix socket): the greeting and
 * qmp_capabilities, then commands matched to their answers by id; events are kept in `events`.
 */
export class QmpClient {
  readonly events: QmpEvent[] = [];
  private buf = "";
  private nextId = 1;
  private pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void; cmd: string }>();
  private greeted: Promise<void>;
  private closed: Error | undefined;
  private eventListeners: Array<() => void> = [];

  private constructor(private readonly sock: Socket) {
    let greet: () => void;
    this.greeted = new Promise((res) => (greet = res));
    sock.setEncoding("utf8");
    sock.on("data", (d: string) => {
      this.buf += d;
      for (let nl = this.buf.indexOf("\n"); nl >= 0; nl = this.buf.indexOf("\n")) {
        const line = this.buf.slice(0, nl).trim();
        this.buf = this.buf.slice(nl + 1);
        if (!line) continue;
        const msg = JSON.parse(line) as {
          QMP?: unknown;
          event?: string;
          data?: Record<string, unknown>;
          timestamp?: { seconds: number; microseconds: number };
          id?: number;
          return?: unknown;
          error?: { class: string; desc: string };
        };
        if (msg.QMP) greet();
        else if (msg.event) {
          const t = msg.timestamp;
          this.events.push({ event: msg.event, data: msg.data, qemuMs: t ? t.seconds * 1000 + t.microseconds / 1000 : NaN, hostMs: Date.now() });
          for (const l of this.eventListeners.splice(0)) l();
        } else if (msg.id !== undefined) {
          const p = this.pending.get(msg.id);
          this.pending.delete(msg.id);
          if (!p) continue;
          if (msg.error) p.reject(new Error(`QMP ${p.cmd}: ${msg.error.class}: ${msg.error.desc}`));
          else p.resolve(msg.return);
        }
      }
    });
    const fail = (e: Error) => {
      this.closed ??= e;
      for (const p of this.pending.values()) p.reject(e);
      this.pending.clear();
      for (const l of this.eventListeners.splice(0)) l();
    };
    sock.on("error", fail);
    sock.on("close", () => fail(new Error("QMP connection closed")));
  }

  /** Connects to `path` (retrying while QEMU has not yet made the socket) and negotiates capabilities. */
  static async connect(path: string, timeoutMs = 30_000): Promise<QmpClient> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      let c: QmpClient | undefined;
      try {
        const sock = await new Promise<Socket>((res, rej) => {
          const s = connect(path, () => {
            s.off("error", rej);
            res(s);
          });
          s.once("error", rej);
        });
        c = new QmpClient(sock);
        await Promise.race([
          c.greeted,
          new Promise((_, rej) => setTimeout(() => rej(new Error("no QMP greeting")), Math.max(1000, deadline - Date.now()))),
        ]);
        await c.command("qmp_capabilities");
        return c;
      } catch (e) {
        c?.close();
        if (Date.now() > deadline) throw new Error(`QMP: cannot connect to ${path}: ${(e as Error).message}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }

  /** Runs a QMP command; resolves with its "return" value, throws on an "error" answer. */
  command<T = unknown>(execute: string, args?: Record<string, unknown>): Promise<T> {
    if (this.closed) return Promise.reject(this.closed);
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject, cmd: execute });
      this.sock.write(JSON.stringify(args ? { execute, arguments: args, id } : { execute, id }) + "\n");
    });
  }

  /** The first event named `name` at index `from` or later of `events`. */
  async waitForEvent(name: string, timeoutMs: number, from = 0): Promise<QmpEvent> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const e = this.events.slice(from).find((x) => x.event === name);
      if (e) return e;
      if (this.closed) throw new Error(`waiting for QMP event ${name}: ${this.closed.message}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out after ${timeoutMs} ms waiting for QMP event ${name}`);
      await new Promise<void>((res) => {
        const t = setTimeout(res, left);
        this.eventListeners.push(() => {
          clearTimeout(t);
          res();
        });
      });
    }
  }

  close(): void {
    this.sock.destroy();
  }
}

/** A QEMU -m size ("512M", "1G", "512": MiB) in bytes. */
export function memoryBytes(size: string): number {
  const m = /^(\d+)([KMGT]?)i?B?$/i.exec(size.trim());
  if (!m) throw new Error(`memory size ${size}: expected e.g. 512M or 1G`);
  const unit = { "": 2 ** 20, K: 2 ** 10, M: 2 ** 20, G: 2 ** 30, T: 2 ** 40 }[m[2].toUpperCase()]!;
  return Number(m[1]) * unit;
}

/** Occurrences of each pattern in a buffer or a file, and the first few offsets of each. */
export interface PatternHits {
  count: number;
  offsets: number[];
}

/**
 * Counts each byte pattern in `source` (a Buffer, or a file read in 64 MiB chunks that overlap by
 * the longest pattern less one byte, so a match across a chunk boundary is counted once).
 */
export async function scanPatterns(source: string | Buffer, patterns: readonly Uint8Array[], keepOffsets = 8): Promise<PatternHits[]> {
  const hits = patterns.map(() => ({ count: 0, offsets: [] as number[] }));
  if (patterns.some((p) => p.length === 0)) throw new Error("scanPatterns: empty pattern");
  const overlap = Math.max(...patterns.map((p) => p.length)) - 1;
  const scan = (buf: Buffer, base: number, from: number) => {
    patterns.forEach((p, i) => {
      // Count a match only when it ends at or after `from` (earlier ones ended in the carried bytes).
      for (let at = buf.indexOf(p); at >= 0; at = buf.indexOf(p, at + 1)) {
        if (at + p.length <= from) continue;
        if (hits[i].offsets.length < keepOffsets) hits[i].offsets.push(base + at);
        hits[i].count++;
      }
    });
  };
  if (Buffer.isBuffer(source)) {
    scan(source, 0, 0);
    return hits;
  }
  const f = await open(source, "r");
  try {
    const chunk = 64 * 2 ** 20;
    const buf = Buffer.alloc(chunk + overlap);
    let carry = 0,
      pos = 0;
    for (;;) {
      const { bytesRead } = await f.read(buf, carry, chunk, pos);
      if (bytesRead === 0) break;
      const n = carry + bytesRead;
      scan(buf.subarray(0, n), pos - carry, carry);
      pos += bytesRead;
      carry = Math.min(overlap, n);
      buf.copy(buf, 0, n - carry, n);
    }
  } finally {
    await f.close();
  }
  return hits;
}

/** The test guest's shell prompt (guest/init sets PS1). */
const PROMPT = "guest# ";

/** Lines QEMU prints about CPU features TCG cannot emulate: noise for our purposes. */
const NOISE = /TCG doesn't support requested feature/;

/** QEMUs of this process still running: killed when the process exits (a paused one would never end). */
const live = new Set<ChildProcess>();
process.on("exit", () => {
  for (const p of live) p.kill("SIGKILL");
});

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

  /** The session's temporary directory (the default hypervisor log, the QMP socket). */
  readonly dir: string;
  private qmpClient: Promise<QmpClient> | undefined;

  constructor(readonly opts: BootOptions) {
    this.dir = mkdtempSync(join(tmpdir(), "parapet-"));
    this.hvLogPath = opts.hvLog ?? join(this.dir, "hv.log");
    this.proc = spawn(QEMU, qemuArgs(opts, this.hvLogPath, join(this.dir, "qmp.sock")), { stdio: ["pipe", "pipe", "pipe"] });
    live.add(this.proc);
    this.proc.stdout!.setEncoding("latin1");
    this.proc.stdout!.on("data", (d: string) => {
      this.console += d;
      this.onConsole?.(d);
      for (const l of this.listeners.splice(0)) l();
    });
    this.proc.stderr!.setEncoding("utf8");
    this.proc.stderr!.on("data", (d: string) => {
      this.stderr += d
        .split("\n")
        .filter((l) => !NOISE.test(l))
        .join("\n");
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
        live.delete(this.proc);
        clearInterval(this.panicTimer);
        void this.qmpClient?.then(
          (c) => c.close(),
          () => {},
        );
        rmSync(join(this.dir, "qmp.sock"), { force: true });
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

  /** How QEMU ended: exit code or signal, and what it printed on stderr (noise filtered). */
  private exitReason(): string {
    const how = this.proc.signalCode ? `signal ${this.proc.signalCode}` : `exit code ${this.proc.exitCode}`;
    const err = this.stderr.trim();
    return `QEMU exited (${how}${err ? `; stderr: ${err.slice(-2000)}` : ""})`;
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
      if (!this.alive) throw new Error(`${this.exitReason()} while waiting for ${re}; console tail:\n${this.tail()}`);
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
    const lines = m[1]
      .replace(/\r/g, "")
      .replace(/\x1b\[[0-9;]*[a-zA-Z]/g, "")
      .split("\n");
    // The previous prompt may have been cut where `from` fell: drop the rest of it too.
    const tail = [...Array(PROMPT.length - 2).keys()].map((i) => PROMPT.slice(i + 1)).find((t) => lines[0].startsWith(t));
    if (tail) lines[0] = lines[0].slice(tail.length);
    const out = lines.map((l) => l.replace(/^(guest# )+/, "")).filter((l) => !l.startsWith(cmd.slice(0, 20)) || cmd.length === 0);
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

  /** The QMP client (BootOptions.qmp), connected on first use. */
  qmpClientFor(): Promise<QmpClient> {
    if (!this.opts.qmp) return Promise.reject(new Error("this session has no QMP socket (BootOptions.qmp)"));
    this.qmpClient ??= QmpClient.connect(join(this.dir, "qmp.sock"));
    return this.qmpClient;
  }

  /** Runs a QMP command (BootOptions.qmp); resolves with its result, throws on a QMP error. */
  async qmp<T = unknown>(command: string, args?: Record<string, unknown>): Promise<T> {
    return (await this.qmpClientFor()).command<T>(command, args);
  }

  /** query-status: whether the guest's CPUs run, and QEMU's run state ("running", "shutdown", "suspended", …). */
  status(): Promise<RunState> {
    return this.qmp<RunState>("query-status");
  }

  /**
   * Polls query-status until the VM no longer runs (a pause after a guest reset or power-off
   * with pauseOnExit: "shutdown"; S3: "suspended"; …) and returns that run state.
   */
  async waitUntilStopped(timeoutMs = 120_000, pollMs = 200): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (!this.alive) throw new Error(`QEMU exited while waiting for the VM to stop; console tail:\n${this.tail()}`);
      const st = await this.status();
      if (!st.running) return st.status;
      if (Date.now() > deadline) throw new Error(`the VM still runs (${st.status}) after ${timeoutMs} ms; console tail:\n${this.tail()}`);
      await new Promise((r) => setTimeout(r, pollMs));
    }
  }

  /**
   * Writes guest-physical memory 0 .. the -m size to `path` (QMP pmemsave; best with the VM
   * stopped). RAM is contiguous from 0 only while it all fits below the PCI hole, so sizes above
   * 2 GiB are refused (pc moves RAM above 3.5 GiB, q35 above 2 or 2.75 GiB, to beyond 4 GiB).
   */
  async dumpRam(path: string): Promise<number> {
    const size = memoryBytes(this.opts.memory ?? "512M");
    if (size > 2 ** 31) throw new Error(`dumpRam: ${this.opts.memory} of RAM is not contiguous from 0; at most 2 GiB`);
    await this.qmp("pmemsave", { val: 0, size, filename: resolve(path) });
    return size;
  }

  kill(): void {
    if (this.alive) {
      this.fateOverride ??= { kind: "killed", reason: "killed by the harness" };
      this.proc.kill("SIGKILL");
    }
  }
}
