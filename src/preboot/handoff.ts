// From the policy record to the hypervisor: write the handoff payload into a tmpfs, load it
// with kexec and run it (the record: compileRecord in src/lib/prebootconfig.ts).
import { openSync, closeSync, fstatSync, writeSync, fsyncSync, unlinkSync, mkdirSync, existsSync } from "node:fs";
import { dirname } from "node:path";
import { run } from "../lib/exec.ts";
import { handoffPayload } from "../lib/handoffpayload.ts";

/** Where the payload is written: /run is a tmpfs in the preboot guest, never a disk. */
export const PAYLOAD_PATH = "/run/parapet/handoff.elf";

/** Writes the payload for `record` (mode 0600); the caller wipes it with wipeFile. */
export function writePayload(record: Uint8Array, address: number, path = PAYLOAD_PATH): number {
  const payload = handoffPayload(record, address);
  try {
    if (!existsSync(dirname(path))) mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    const fd = openSync(path, "wx", 0o600);
    try {
      writeSync(fd, payload);
    } finally {
      closeSync(fd);
    }
    return payload.length;
  } finally {
    payload.fill(0);
  }
}

/** Overwrites a file with zeros and removes it; silent when it does not exist. */
export function wipeFile(path = PAYLOAD_PATH): void {
  let fd: number;
  try {
    fd = openSync(path, "r+");
  } catch {
    return;
  }
  try {
    const size = fstatSync(fd).size;
    if (size > 0) writeSync(fd, Buffer.alloc(size), 0, size, 0);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  unlinkSync(path);
}

/** The kexec arguments that load the payload: an ELF64 entered directly, no boot protocol. */
export function kexecLoadArgs(path = PAYLOAD_PATH): string[] {
  return ["-l", path, "--type=elf-x86_64", "--args-none"];
}

/** `kexec -l`: the kernel copies the segment; the file is not needed afterwards. */
export async function kexecLoad(path = PAYLOAD_PATH): Promise<void> {
  await run("kexec", kexecLoadArgs(path));
}

/** `kexec -e`: returns only when the kernel refused to jump. */
export async function kexecExec(): Promise<void> {
  await run("kexec", ["-e"]);
}
