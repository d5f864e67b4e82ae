// `parapet keygen`: a new random 64-byte XTS-AES-256 key file (dm-crypt plain format).
import { Option, type Command } from "@commander-js/extra-typings";
import { randomBytes } from "node:crypto";
import { open } from "node:fs/promises";
import { writePrivateFileAtomic } from "../lib/privatefile.ts";
import { keyFingerprint, keyProblem, readKeyFile, KEY_BYTES } from "../lib/xts.ts";

/** A fresh key whose two halves differ (equal halves would weaken XTS; Node refuses them too). */
export function newKey(): Buffer {
  for (;;) {
    const k = randomBytes(KEY_BYTES);
    if (!keyProblem(k)) return k;
  }
}

/** Writes a key file with mode 0600; refuses an existing file unless `force`. */
export async function writeKeyFile(path: string, key: Uint8Array, force = false): Promise<void> {
  if (!force) {
    let fh;
    try {
      fh = await open(path, "wx", 0o600);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "EEXIST") {
        throw new Error(`${path} exists; refusing to overwrite a key (data encrypted with it would be lost). Use --force to replace it.`);
      }
      throw e;
    }
    try {
      await fh.chmod(0o600);
      await fh.writeFile(key);
      await fh.sync();
    } finally {
      await fh.close();
    }
    return;
  }
  await writePrivateFileAtomic(path, key);
}

export function registerKeygen(program: Command): void {
  program
    .command("keygen")
    .description(
      "Write a new random disk key: 64 bytes from the system's CSPRNG, bytes 0-31 the XTS data key and " +
        "32-63 the tweak key (the dm-crypt plain key-file format for aes-xts-plain64, key size 512). " +
        "The file gets mode 0600. Prints the key's fingerprint, never the key.",
    )
    .option("-o, --output <file>", "key file to write")
    .addOption(new Option("--fingerprint <file>", "instead: print the fingerprint of an existing key file (and check it)").conflicts("output"))
    .option("--force", "replace an existing file (whatever was encrypted with the old key becomes unreadable without a copy of it)")
    .addHelpText(
      "after",
      "\nKeep a copy of the key somewhere safe: without it an encrypted disk cannot be read by anyone.\n" +
        "Examples:\n" +
        "  parapet keygen -o disk.key\n" +
        "  parapet keygen --fingerprint disk.key\n" +
        "  parapet policy --whole-disk --key disk.key -o policy.bin\n" +
        "  parapet disk encrypt --key disk.key build/guest.img\n" +
        "See docs/disk-encryption.md.",
    )
    .action(async (o, cmd) => {
      if (o.fingerprint !== undefined) {
        const key = await readKeyFile(o.fingerprint);
        process.stdout.write(`${o.fingerprint}: 64-byte XTS-AES-256 key, fingerprint ${keyFingerprint(key)}\n`);
        return;
      }
      if (o.output === undefined) return cmd.error("missing -o FILE: the key file to write");
      const key = newKey();
      await writeKeyFile(o.output, key, o.force);
      process.stdout.write(`${o.output}: new 64-byte XTS-AES-256 key, fingerprint ${keyFingerprint(key)}\n`);
    });
}
