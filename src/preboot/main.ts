// The preboot guest's app (two-step execution): ask for the passphrase on the serial console,
// unlock the LUKS2 detached header, compile the volume key into Parapet's policy record and
// hand it to the hypervisor with a kexec payload. Every way out is explicit: the handoff, or
// one clear line and power-off. Nothing is ever written to a disk. See docs/preboot.md.
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { checkSupported, luksInfo, LuksRefusal, volumeKey } from "../lib/luks.ts";
import { CONFIG_PATH, DEFAULT_CONSOLE, parseConfig, type PrebootConfig } from "./config.ts";
import { PrebootConsole } from "./console.ts";
import { compileRecord, kexecExec, kexecLoad, PAYLOAD_PATH, wipeFile, writePayload } from "./handoff.ts";
import { RECORD_OFFSET } from "./payload.ts";

export const PROMPT = "Passphrase: ";
export const REFUSAL = "preboot: too many wrong passphrases; powering off, nothing was written";

/** A failure that ends the preboot: its message is the whole story. */
class Stop extends Error {}

let output: PrebootConsole | undefined;

function say(line: string): void {
  if (output) output.write(`${line}\r\n`);
  else process.stderr.write(`${line}\n`);
}

/** Powers the machine off; never returns. */
function powerOff(): never {
  spawnSync("poweroff", ["-f"], { stdio: "ignore" });
  try {
    writeFileSync("/proc/sysrq-trigger", "o");
  } catch {
    // not Linux as PID 1's child: nothing more to try
  }
  process.exit(1);
}

/** One line of why, then power-off. */
function fail(message: string): never {
  try {
    wipeFile();
  } catch {
    // a payload that cannot be wiped lives in a tmpfs that power-off clears
  }
  say(`preboot: ${message}; powering off, nothing was written`);
  powerOff();
}

/** Asks for passphrases until one unlocks the header; undefined after `retries` wrong ones. */
async function unlock(con: PrebootConsole, config: PrebootConfig): Promise<Buffer | undefined> {
  for (let attempt = 1; attempt <= config.retries; attempt++) {
    const passphrase = await con.readSecret(PROMPT);
    try {
      if (passphrase.length > 0) {
        con.log("checking the passphrase");
        return await volumeKey(config.header, undefined, passphrase);
      }
    } catch (e) {
      if (!(e instanceof LuksRefusal)) throw e;
    } finally {
      passphrase.fill(0);
    }
    const left = config.retries - attempt;
    if (left > 0) con.log(`${passphrase.length === 0 ? "empty passphrase" : "wrong passphrase"}; ${left} attempt${left === 1 ? "" : "s"} left`);
  }
  return undefined;
}

async function main(): Promise<void> {
  let config: PrebootConfig;
  try {
    config = parseConfig(readFileSync(CONFIG_PATH, "utf8"), CONFIG_PATH);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    output = existsSync(DEFAULT_CONSOLE) ? new PrebootConsole(DEFAULT_CONSOLE) : undefined;
    throw new Stop(code ? `cannot read ${CONFIG_PATH} (${code})` : (e as Error).message.replace(/\n\s*/g, "; "));
  }
  const con = (output = new PrebootConsole(config.console));
  con.log("Parapet preboot: unlock the disk to continue booting");
  if (!existsSync(config.header)) throw new Stop(`no LUKS2 header at ${config.header}`);
  try {
    checkSupported(config.header, await luksInfo(config.header));
  } catch (e) {
    throw new Stop((e as Error).message.split("\n")[0]);
  }

  const key = await unlock(con, config);
  if (!key) {
    say(REFUSAL);
    powerOff();
  }
  let record: Buffer;
  try {
    record = compileRecord(key, config);
  } finally {
    key.fill(0);
  }
  const address = config.recordAddress;
  try {
    writePayload(record, address);
    con.log(`unlocked; loading the handoff payload (${record.length}-byte record at 0x${(address + RECORD_OFFSET).toString(16)})`);
  } finally {
    record.fill(0);
  }
  try {
    await kexecLoad(PAYLOAD_PATH);
  } catch (e) {
    throw new Stop(`kexec could not load the handoff payload: ${(e as Error).message.split("\n").slice(-1)[0]}`);
  } finally {
    wipeFile(PAYLOAD_PATH);
  }
  con.log("handing off to the hypervisor");
  try {
    await kexecExec();
  } catch (e) {
    throw new Stop(`kexec could not run the handoff payload: ${(e as Error).message.split("\n").slice(-1)[0]}`);
  }
  throw new Stop("kexec returned without running the handoff payload");
}

main().catch((e: unknown) => fail(e instanceof Error ? e.message : String(e)));
