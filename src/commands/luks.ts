// `parapet luks format|add-user|key|status`: a whole disk image under a LUKS2 detached header
// (stock cryptsetup; see src/lib/luks.ts and docs/luks.md).
import type { Command } from "commander";
import { existsSync } from "node:fs";
import { EXIT_INTERRUPTED, EXIT_REFUSED, progressReporter } from "./disk.ts";
import { DiskRefusal } from "../lib/diskcrypt.ts";
import { luksAddPassphrase, luksFormat, luksInfo, LuksRefusal, readPassphrase, volumeKey, type Pbkdf } from "../lib/luks.ts";
import { writePrivateFileAtomic } from "../lib/privatefile.ts";

const EXIT_TEXT =
  "Exit status: 0 done; 1 error (bad arguments, cryptsetup missing or failing, I/O error);\n" +
  "  2 refused (wrong passphrase, existing header, unsupported header), nothing changed;\n" +
  "  130 interrupted by Ctrl-C (run the same command again to resume).";

function ms(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > 60_000) throw new Error(`--iter-time ${v}: expected 1..60000 milliseconds`);
  return n;
}

interface Common { disk: string; header: string; passphraseFile: string; iterTime?: number; iterations?: number }

function pbkdf(o: Common): Pbkdf {
  return { iterTimeMs: o.iterTime, iterations: o.iterations };
}

function common(c: Command, passphraseHelp: string): Command {
  return c
    .requiredOption("--disk <image>", "raw disk image (a regular file)")
    .requiredOption("--header <file>", "the detached LUKS2 header file")
    .requiredOption("--passphrase-file <file>", passphraseHelp);
}

/** Runs an action, turning refusals into exit status 2 with one line. */
async function refusing(what: string, fn: () => Promise<void>): Promise<void> {
  try {
    await fn();
  } catch (e) {
    if (e instanceof LuksRefusal || e instanceof DiskRefusal) {
      process.stderr.write(`parapet: luks ${what}: refused: ${e.message}\n`);
      process.exitCode = EXIT_REFUSED;
      return;
    }
    throw e;
  }
}

export function registerLuks(program: Command): void {
  const luks = program
    .command("luks")
    .description("A whole disk image under a LUKS2 detached header: users' keyslots in the header file, the disk's " +
      "data from sector 0 in XTS-AES-256 (aes-xts-plain64, 512-bit key, 512-byte sectors), opened later with stock " +
      "'cryptsetup open --header HDR IMG NAME'. Uses Debian's cryptsetup. See docs/luks.md.")
    .addHelpText("after", `\nThe passphrase is the file's bytes without one trailing newline.\n${EXIT_TEXT}`);

  common(luks.command("format"), "the first user's passphrase")
    .summary("encrypt a plaintext image in place under a new detached header (resumable)")
    .description("Create a new LUKS2 header file (cryptsetup luksFormat: aes-xts-plain64, 512-bit volume key, 512-byte " +
      "sectors, data at offset 0, argon2id with 64 MiB for the keyslot) and encrypt the image in place with its volume " +
      "key, journaled like 'parapet disk encrypt': after an interruption the same command resumes (the header is " +
      "kept and its key reused). An existing header is otherwise refused.")
    .option("--iter-time <ms>", "keyslot key-derivation time on this machine (cryptsetup --iter-time)", ms, 500)
    .option("-q, --quiet", "no progress, no summary")
    .addHelpText("after", "\nExample: parapet luks format --disk disk.img --header disk.hdr --passphrase-file pass.txt\n" + EXIT_TEXT)
    .action((o: Common & { quiet?: boolean }) => refusing("format", async () => {
      const passphrase = await readPassphrase(o.passphraseFile);
      const bar = progressReporter(`luks format ${o.disk}`, o.quiet === true);
      let stop = false;
      const onSigint = () => {
        if (stop) process.exit(EXIT_INTERRUPTED);
        stop = true;
        process.stderr.write("\nparapet: stopping after the current chunk (the same command resumes)\n");
      };
      process.on("SIGINT", onSigint);
      try {
        const r = await luksFormat({ image: o.disk, header: o.header, passphrase, pbkdf: pbkdf(o), progress: bar.update, shouldStop: () => stop });
        bar.finish();
        if (r.stopped) {
          process.stderr.write(`parapet: interrupted at sector ${r.reached}; run the same command again to resume\n`);
          process.exitCode = EXIT_INTERRUPTED;
          return;
        }
        if (!o.quiet)
          process.stdout.write(`${o.disk}: encrypted under ${o.header} (${r.created ? "new header" : "existing header, resumed"}), ` +
            `volume key fingerprint ${r.fingerprint}\n`);
      } finally {
        process.off("SIGINT", onSigint);
        passphrase.fill(0);
      }
    }));

  common(luks.command("add-user"), "an existing user's passphrase")
    .summary("add a user (a passphrase keyslot)")
    .description("Add a keyslot for another passphrase (cryptsetup luksAddKey), unlocked by an existing user's. " +
      "Several users then open the same disk.")
    .requiredOption("--new-passphrase-file <file>", "the new user's passphrase")
    .option("--iter-time <ms>", "keyslot key-derivation time on this machine", ms, 500)
    .addHelpText("after", "\nExample: parapet luks add-user --disk disk.img --header disk.hdr --passphrase-file alice.txt " +
      "--new-passphrase-file bob.txt\n" + EXIT_TEXT)
    .action((o: Common & { newPassphraseFile: string }) => refusing("add-user", async () => {
      const existing = await readPassphrase(o.passphraseFile);
      const added = await readPassphrase(o.newPassphraseFile);
      try {
        const slot = await luksAddPassphrase(o.header, o.disk, existing, added, pbkdf(o));
        process.stdout.write(`${o.header}: keyslot ${slot} added\n`);
      } finally {
        existing.fill(0);
        added.fill(0);
      }
    }));

  common(luks.command("key"), "a user's passphrase")
    .summary("write the volume key as a 64-byte key file (for parapet policy --key)")
    .description("Unlock the header and write the volume key, mode 0600, as a key file that 'parapet policy " +
      "--whole-disk --key' and 'parapet disk' take: the disk's data is the same XTS-AES-256 as a plain dm-crypt disk.")
    .requiredOption("-o, --output <file>", "key file to write (never overwritten)")
    .addHelpText("after", "\nExample: parapet luks key --disk disk.img --header disk.hdr --passphrase-file pass.txt -o disk.key\n" + EXIT_TEXT)
    .action((o: Common & { output: string }) => refusing("key", async () => {
      if (existsSync(o.output)) throw new LuksRefusal(`${o.output} exists; not overwriting a key file`);
      const passphrase = await readPassphrase(o.passphraseFile);
      const key = await volumeKey(o.header, o.disk, passphrase);
      try {
        await writePrivateFileAtomic(o.output, key);
      } finally {
        key.fill(0);
        passphrase.fill(0);
      }
      process.stdout.write(`${o.output}: volume key written (mode 0600)\n`);
    }));

  luks.command("status")
    .summary("show the header's data segment and keyslots")
    .requiredOption("--disk <image>", "raw disk image")
    .requiredOption("--header <file>", "the detached LUKS2 header file")
    .action((o: { disk: string; header: string }) => refusing("status", async () => {
      const i = await luksInfo(o.header, o.disk);
      process.stdout.write(`${o.header}: LUKS2, ${i.cipher}, ${i.keyBits}-bit volume key, ${i.sectorBytes}-byte sectors, ` +
        `data at byte ${i.offsetBytes}; keyslots ${i.keyslots.join(", ") || "none"}\n`);
    }));
}
