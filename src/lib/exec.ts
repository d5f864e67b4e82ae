// Runs host tools for the image builder, turning "not installed" and
// "failed" into errors that name the Debian package to install.
import { spawn } from "node:child_process";
import { accessSync, constants } from "node:fs";
import { delimiter, join } from "node:path";

/** The Debian package that provides each host tool the image builder uses. */
export const TOOL_PACKAGES: Readonly<Record<string, string>> = {
  "apt-get": "apt",
  "apt-cache": "apt",
  dpkg: "dpkg",
  "dpkg-deb": "dpkg",
  "dpkg-query": "dpkg",
  depmod: "kmod",
  make: "make",
  cc: "gcc",
  gcc: "gcc",
  strip: "binutils",
  mformat: "mtools",
  mcopy: "mtools",
  syslinux: "syslinux",
  xz: "xz-utils",
  zstd: "zstd",
  cryptsetup: "cryptsetup-bin",
};

export function packageFor(tool: string): string {
  return TOOL_PACKAGES[tool] ?? tool;
}

/** The full path of `tool` on PATH, or undefined. */
export function findTool(tool: string): string | undefined {
  for (const dir of (process.env.PATH ?? "/usr/bin:/bin").split(delimiter)) {
    if (!dir) continue;
    const candidate = join(dir, tool);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** Throws one error listing every missing tool and the packages that provide them. */
export function requireTools(tools: readonly string[]): void {
  const missing = tools.filter((t) => !findTool(t));
  if (missing.length === 0) return;
  const pkgs = [...new Set(missing.map(packageFor))];
  throw new Error(`missing host tool${missing.length > 1 ? "s" : ""}: ${missing.join(", ")}; ` + `install with: apt-get install ${pkgs.join(" ")}`);
}

export interface RunOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Written to the program's standard input (else it gets none). */
  input?: Uint8Array;
}

export interface RunResult {
  stdout: Buffer;
  stderr: string;
}

/** Runs `cmd args`, resolving with its output; rejects with a readable error. */
export function run(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      cwd: opts.cwd,
      env: { ...process.env, LC_ALL: "C", ...opts.env },
      stdio: [opts.input ? "pipe" : "ignore", "pipe", "pipe"],
    });
    if (opts.input) {
      child.stdin!.on("error", () => {}); // a program that exits early: its status tells
      child.stdin!.end(opts.input);
    }
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout!.on("data", (b: Buffer) => out.push(b));
    child.stderr!.on("data", (b: Buffer) => err.push(b));
    child.on("error", (e: NodeJS.ErrnoException) => {
      if (e.code === "ENOENT") {
        reject(new Error(`${cmd} not found; install it with: apt-get install ${packageFor(cmd)}`));
      } else {
        reject(new Error(`cannot run ${cmd}: ${e.message}`));
      }
    });
    child.on("close", (code, signal) => {
      const stderr = Buffer.concat(err).toString("utf8");
      if (code === 0) {
        resolve({ stdout: Buffer.concat(out), stderr });
        return;
      }
      const output = (stderr.trim() || Buffer.concat(out).toString("utf8").trim()).split("\n").slice(-25).join("\n");
      const how = signal ? `killed by ${signal}` : `exit status ${code}`;
      reject(new Error(`${cmd} ${args.join(" ")} failed (${how})${output ? `:\n${output}` : ""}`));
    });
  });
}

/** Like run(), returning stdout as text. */
export async function runText(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<string> {
  return (await run(cmd, args, opts)).stdout.toString("utf8");
}
