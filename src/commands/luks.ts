// `parapet luks format|add-user|key|status`: a whole disk image under a LUKS2 detached header
// (stock cryptsetup; see src/lib/luks.ts and docs/luks.md).
import { Option, type Command, type OptionValues } from "@commander-js/extra-typings";
import { existsSync } from "node:fs";
import { EXIT_INTERRUPTED, EXIT_REFUSED, integer } from "../lib/cliopts.ts";
import { progressReporter } from "../lib/progress.ts";
import { DiskRefusal } from "../lib/diskcrypt/common.ts";
import { luksAddPassphrase, luksFormat, luksInfo, LuksRefusal, readPassphrase, volumeKey, type Pbkdf } from "../lib/luks.ts";
import { writePrivateFileAtomic } from "../lib/privatefile.ts";
import { enrolToken, readCa } from "../lib/token.ts";

const EXIT_TEXT =
  "Exit status: 0 done; 1 error (bad arguments, cryptsetup missing or failing, I/O error);\n" +
  "  2 refused (wrong passphrase, existing header, unsupported header), nothing changed;\n" +
  "  130 interrupted by Ctrl-C (run the same command again to resume).";

const ITER_TIME = integer(1, 60_000, "milliseconds");

/** --disk, --header and --passphrase-file, which every sub-command but status takes. */
function common<A extends unknown[], O extends OptionValues, G extends OptionValues>(c: Command<A, O, G>, passphraseHelp: string) {
  return c
    .requiredOption("--disk <image>", "raw disk image (a regular file)")
    .requiredOption("--header <file>", "the detached LUKS2 header file")
    .requiredOption("--passphrase-file <file>", passphraseHelp);
}

function pbkdf(o: { iterTime?: number; iterations?: number }): Pbkdf {
  return { iterTimeMs: o.iterTime, iterations: o.iterations };
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

function declareFormat(luks: Command) {
  return common(luks.command("format"), "the first user's passphrase")
    .summary("encrypt a plaintext image in place under a new detached header (resumable)")
    .description(
      "Create a new LUKS2 header file (cryptsetup luksFormat: aes-xts-plain64, 512-bit volume key, 512-byte " +
        "sectors, data at offset 0, argon2id with 64 MiB for the keyslot) and encrypt the image in place with its volume " +
        "key, journaled like 'parapet disk encrypt': after an interruption the same command resumes (the header is " +
        "kept and its key reused). An existing header is otherwise refused.",
    )
    .option("--iter-time <ms>", "keyslot key-derivation time on this machine (cryptsetup --iter-time)", ITER_TIME, 500)
    .option("-q, --quiet", "no progress, no summary")
    .addHelpText("after", "\nExample: parapet luks format --disk disk.img --header disk.hdr --passphrase-file pass.txt\n" + EXIT_TEXT);
}

async function format(o: ReturnType<ReturnType<typeof declareFormat>["opts"]>): Promise<void> {
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
      process.stdout.write(
        `${o.disk}: encrypted under ${o.header} (${r.created ? "new header" : "existing header, resumed"}), ` +
          `volume key fingerprint ${r.fingerprint}\n`,
      );
  } finally {
    process.off("SIGINT", onSigint);
    passphrase.fill(0);
  }
}

function declareAddUser(luks: Command) {
  return common(luks.command("add-user"), "an existing user's passphrase")
    .summary("add a user: a passphrase, or a PKCS#11 token (smart card)")
    .description(
      "Add a keyslot for another user, unlocked by an existing user's passphrase (cryptsetup luksAddKey). " +
        "Several users then open the same disk. The new user is either a passphrase (--new-passphrase-file) or a " +
        "PKCS#11 token (--token-module, --token-label, --token-key-id, --ca): the token's certificate must be issued by " +
        "the organisation CA; a random keyslot secret is encrypted (RSA-OAEP) to the certificate's key and kept in the " +
        "header as a LUKS2 token, which only the token can decrypt at boot. See docs/tokens.md.",
    )
    .option("--new-passphrase-file <file>", "the new user's passphrase")
    .option(
      "--token-module <library>",
      "PKCS#11 module of the new user's token (e.g. /usr/lib/softhsm/libsofthsm2.so, " + "or opensc-pkcs11.so for a smart card)",
    )
    .option("--token-label <label>", "the token's label (pkcs11-tool --list-token-slots shows it)")
    .option("--token-key-id <hex>", "CKA_ID of the certificate and its RSA private key on the token, in hex (e.g. 01)")
    .option("--ca <file>", "the organisation CA certificate (PEM or DER) that must have issued the token's certificate")
    .option(
      "--token-pin-file <file>",
      "the token user's PIN: the token then test-decrypts before the keyslot is added " +
        "(recommended; without it only the certificate and public key are checked)",
    )
    .addOption(
      new Option("--token-oaep-hash <hash>", "RSA-OAEP hash the token decrypts with: sha1 (SoftHSM2, most cards) or sha256")
        .choices(["sha1", "sha256"] as const)
        .default("sha1" as const),
    )
    .option("--iter-time <ms>", "keyslot key-derivation time on this machine", ITER_TIME, 500)
    .addHelpText(
      "after",
      "\nExamples:\n  parapet luks add-user --disk disk.img --header disk.hdr --passphrase-file alice.txt " +
        "--new-passphrase-file bob.txt\n  parapet luks add-user --disk disk.img --header disk.hdr --passphrase-file alice.txt " +
        "--token-module /usr/lib/softhsm/libsofthsm2.so --token-label carol --token-key-id 01 --ca org-ca.pem " +
        "--token-pin-file carol.pin\n" +
        EXIT_TEXT,
    );
}

type AddUserCommand = ReturnType<typeof declareAddUser>;
type AddUserOptions = ReturnType<AddUserCommand["opts"]>;

/** The new user is a passphrase or a complete set of token options, never both. */
function checkAddUser(o: AddUserOptions, cmd: AddUserCommand): boolean {
  const token = [o.tokenModule, o.tokenLabel, o.tokenKeyId, o.ca, o.tokenPinFile].some((v) => v !== undefined);
  if (token === (o.newPassphraseFile !== undefined))
    cmd.error("give either --new-passphrase-file or the token options (--token-module, --token-label, --token-key-id, --ca)");
  if (token) {
    const missing = (["tokenModule", "tokenLabel", "tokenKeyId", "ca"] as const).filter((k) => o[k] === undefined);
    if (missing.length > 0)
      cmd.error(`a token user needs ${missing.map((k) => `--${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`).join(", ")}`);
  }
  return token;
}

async function addPassphraseUser(o: AddUserOptions, existing: Buffer): Promise<void> {
  const added = await readPassphrase(o.newPassphraseFile!);
  try {
    const slot = await luksAddPassphrase(o.header, o.disk, existing, added, pbkdf(o));
    process.stdout.write(`${o.header}: keyslot ${slot} added\n`);
  } finally {
    added.fill(0);
  }
}

async function addTokenUser(o: AddUserOptions, existing: Buffer): Promise<void> {
  const ca = await readCa(o.ca!);
  const pin = o.tokenPinFile !== undefined ? await readPassphrase(o.tokenPinFile) : undefined;
  try {
    const r = await enrolToken({
      header: o.header,
      image: o.disk,
      existing,
      module: o.tokenModule!,
      tokenLabel: o.tokenLabel!,
      keyId: o.tokenKeyId!,
      ca,
      pin,
      oaepHash: o.tokenOaepHash,
      pbkdf: pbkdf(o),
    });
    process.stdout.write(
      `${o.header}: keyslot ${r.keyslot} and token ${r.tokenId} added for '${r.subject}' ` +
        `(certificate SHA-256 ${r.fingerprint})${r.tested ? ", test decryption on the token passed" : ""}\n`,
    );
    if (!r.tested)
      process.stderr.write("parapet: note: no --token-pin-file, so the token did not test-decrypt; try an unlock before relying on it\n");
  } finally {
    pin?.fill(0);
  }
}

async function addUser(o: AddUserOptions, cmd: AddUserCommand): Promise<void> {
  const token = checkAddUser(o, cmd);
  const existing = await readPassphrase(o.passphraseFile);
  try {
    await (token ? addTokenUser(o, existing) : addPassphraseUser(o, existing));
  } finally {
    existing.fill(0);
  }
}

function declareKey(luks: Command) {
  return common(luks.command("key"), "a user's passphrase")
    .summary("write the volume key as a 64-byte key file (for parapet policy --key)")
    .description(
      "Unlock the header and write the volume key, mode 0600, as a key file that 'parapet policy " +
        "--whole-disk --key' and 'parapet disk' take: the disk's data is the same XTS-AES-256 as a plain dm-crypt disk.",
    )
    .requiredOption("-o, --output <file>", "key file to write (never overwritten)")
    .addHelpText("after", "\nExample: parapet luks key --disk disk.img --header disk.hdr --passphrase-file pass.txt -o disk.key\n" + EXIT_TEXT);
}

async function writeKey(o: ReturnType<ReturnType<typeof declareKey>["opts"]>): Promise<void> {
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
}

export function registerLuks(program: Command): void {
  const luks = program
    .command("luks")
    .description(
      "A whole disk image under a LUKS2 detached header: users' keyslots in the header file, the disk's " +
        "data from sector 0 in XTS-AES-256 (aes-xts-plain64, 512-bit key, 512-byte sectors), opened later with stock " +
        "'cryptsetup open --header HDR IMG NAME'. Uses Debian's cryptsetup. See docs/luks.md.",
    )
    .addHelpText("after", `\nThe passphrase is the file's bytes without one trailing newline.\n${EXIT_TEXT}`);
  declareFormat(luks).action((o) => refusing("format", () => format(o)));
  declareAddUser(luks).action((o, cmd) => refusing("add-user", () => addUser(o, cmd)));
  declareKey(luks).action((o) => refusing("key", () => writeKey(o)));
  luks
    .command("status")
    .summary("show the header's data segment and keyslots")
    .requiredOption("--disk <image>", "raw disk image")
    .requiredOption("--header <file>", "the detached LUKS2 header file")
    .action((o) =>
      refusing("status", async () => {
        const i = await luksInfo(o.header, o.disk);
        process.stdout.write(
          `${o.header}: LUKS2, ${i.cipher}, ${i.keyBits}-bit volume key, ${i.sectorBytes}-byte sectors, ` +
            `data at byte ${i.offsetBytes}; keyslots ${i.keyslots.join(", ") || "none"}\n`,
        );
      }),
    );
}
