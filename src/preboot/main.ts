// The preboot guest's app (two-step execution): ask for the smart card's PIN (when the config
// has a token section and an enrolled card is present) or the passphrase on the serial
// console, unlock the LUKS2 detached header, compile the volume key into Parapet's policy record and
// hand it to the hypervisor with a kexec payload. Every way out is explicit: the handoff, or
// one clear line and power-off. Nothing is ever written to a disk. See docs/preboot.md.
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { checkSupported, luksInfo, LuksRefusal, volumeKey } from "../lib/luks.ts";
import { findTokenUser, PinRefusal, readCa, volumeKeyWithToken, type TokenUser } from "../lib/token.ts";
import { compileRecord, CONFIG_PATH, DEFAULT_CONSOLE, parseConfig, type PrebootConfig, type TokenConfig } from "../lib/prebootconfig.ts";
import { RECORD_OFFSET } from "../lib/handoffpayload.ts";
import { PrebootConsole } from "./console.ts";
import { kexecExec, kexecLoad, PAYLOAD_PATH, wipeFile, writePayload } from "./handoff.ts";

export const PROMPT = "Passphrase: ";
export const REFUSAL = "preboot: too many wrong passphrases; powering off, nothing was written";
export const PIN_PROMPT = "PIN: ";
export const PIN_REFUSAL = "preboot: too many wrong PINs; powering off, nothing was written";

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

/**
 * The smart card user whose card is inserted, or undefined (said on the console) when there is
 * none to use: no card, no enrolled certificate on it, or one the CA did not issue.
 */
async function findCard(con: PrebootConsole, token: TokenConfig, header: string): Promise<TokenUser | undefined> {
  // The module (e.g. SoftHSM2's SOFTHSM2_CONF) and pkcs11-tool read these; this process is
  // the only user of its environment.
  Object.assign(process.env, token.env);
  try {
    const user = await findTokenUser({ header, module: token.module, ca: await readCa(token.ca), tokenLabel: token.label });
    con.log(`smart card '${user.label}' found`);
    return user;
  } catch (e) {
    if (!(e instanceof LuksRefusal)) throw e;
    con.log(`no smart card to use (${e.message.split("\n")[0]}); asking for a passphrase instead`);
    return undefined;
  }
}

/**
 * One attempt: reads a secret after `prompt` and, unless it is empty, has `check` turn it into
 * the volume key. Returns the key, or what was wrong (`empty PIN`, `wrong passphrase`) when
 * `wrong` says so of the error; other errors go up. The secret is wiped in any case.
 */
async function ask(
  con: PrebootConsole,
  prompt: string,
  noun: string,
  check: (secret: Buffer) => Promise<Buffer>,
  wrong: (e: unknown) => boolean,
): Promise<Buffer | string> {
  const secret = await con.readSecret(prompt);
  try {
    return secret.length === 0 ? `empty ${noun}` : await check(secret);
  } catch (e) {
    if (!wrong(e)) throw e;
    return `wrong ${noun}`;
  } finally {
    secret.fill(0);
  }
}

/**
 * Asks for the PIN of an inserted smart card, or else for passphrases, until one unlocks the
 * header. Every wrong PIN or passphrase uses up one of the config's `retries` (a real card
 * locks itself after a few wrong PINs, so the preboot never tries more than that); a card
 * that refuses otherwise uses one up too and hands over to the passphrase. Returns the key,
 * or the refusal line after `retries` wrong attempts.
 */
async function unlock(con: PrebootConsole, config: PrebootConfig): Promise<Buffer | string> {
  const token = config.token;
  let card = token ? await findCard(con, token, config.header) : undefined;
  let refusal = REFUSAL;
  for (let attempt = 1; attempt <= config.retries; attempt++) {
    let result: Buffer | string;
    if (card && token) {
      const user = card;
      refusal = PIN_REFUSAL;
      try {
        result = await ask(
          con,
          PIN_PROMPT,
          "PIN",
          async (pin) => {
            con.log("checking the PIN with the smart card");
            return volumeKeyWithToken({ header: config.header, image: undefined, module: token.module, pin, ca: await readCa(token.ca), user });
          },
          (e) => e instanceof PinRefusal && !e.locked,
        );
      } catch (e) {
        if (!(e instanceof LuksRefusal)) throw e;
        con.log(`${e.message.split("\n")[0]}; asking for a passphrase instead`);
        card = undefined;
        result = "smart card refused";
      }
    } else {
      refusal = REFUSAL;
      result = await ask(
        con,
        PROMPT,
        "passphrase",
        (passphrase) => {
          con.log("checking the passphrase");
          return volumeKey(config.header, undefined, passphrase);
        },
        (e) => e instanceof LuksRefusal,
      );
    }
    if (typeof result !== "string") return result;
    const left = config.retries - attempt;
    if (left > 0) con.log(`${result}; ${left} attempt${left === 1 ? "" : "s"} left`);
  }
  return refusal;
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
  if (typeof key === "string") {
    say(key);
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
