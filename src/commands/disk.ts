// `parapet disk encrypt|decrypt|verify|status`: convert an existing raw disk image in place to or
// from XTS-AES-256 (dm-crypt aes-xts-plain64), resumable after any interruption, and check it.
import type { Command, OptionValues } from "@commander-js/extra-typings";
import { DEFAULT_CHUNK_SECTORS, DiskRefusal } from "../lib/diskcrypt/common.ts";
import { convertImage } from "../lib/diskcrypt/convert.ts";
import { describeImage } from "../lib/diskcrypt/status.ts";
import { verifyImage } from "../lib/diskcrypt/verify.ts";
import { EXIT_INTERRUPTED, EXIT_REFUSED, EXIT_VERIFY_FAILED, integer, sectorNumber } from "../lib/cliopts.ts";
import { progressReporter } from "../lib/progress.ts";
import { readKeyFile, SECTOR, type Direction } from "../lib/xts.ts";

const EXIT_TEXT =
  "Exit status: 0 done; 1 error (bad arguments, unreadable key or image, I/O error);\n" +
  "  2 refused: the state marker, the boot-signature check or an unfinished conversion says no,\n" +
  "    and nothing was changed; 3 verify found a problem;\n" +
  "  130 interrupted by Ctrl-C (run the same command again to resume).";

const mib = (sectors: bigint) => (Number(sectors) * SECTOR) / 2 ** 20;

/** --first-lba and --sectors, the range a command works on. */
function withRange<A extends unknown[], O extends OptionValues, G extends OptionValues>(c: Command<A, O, G>) {
  return c
    .option("--first-lba <n>", "first sector of the range (default 0)", sectorNumber)
    .option("--sectors <n>", "number of sectors (default: to the end of the image)", sectorNumber);
}

function declareConvert(disk: Command, direction: Direction) {
  const c = disk
    .command(direction)
    .description(
      (direction === "encrypt" ? "Encrypt a plaintext raw image in place" : "Decrypt an image encrypted with this key in place") +
        ": XTS-AES-256 with tweak = absolute 512-byte sector number, exactly as dm-crypt's aes-xts-plain64 " +
        "(so 'cryptsetup open --type plain --cipher aes-xts-plain64 --key-size 512 --key-file KEY' reads the result). " +
        "Streams in chunks with a journal (IMAGE.parapet-journal): after a crash or kill at any point, " +
        "running the same command again resumes and the result is exact. A marker (IMAGE.parapet-state) " +
        "records what is encrypted with which key fingerprint, so running the wrong command is refused.",
    )
    .summary(direction === "encrypt" ? "encrypt a plaintext image in place (resumable)" : "decrypt an encrypted image in place (resumable)")
    .argument("<image>", "raw disk image (a regular file, a whole number of 512-byte sectors)")
    .requiredOption("--key <file>", "64-byte key file (parapet keygen)");
  return withRange(c)
    .option(
      "--force",
      direction === "encrypt"
        ? "encrypt even if the marker says the range is encrypted or sector 0 lacks the 55 AA boot signature"
        : "decrypt even if the marker does not say the range is encrypted with this key",
    )
    .option("--chunk-sectors <n>", "sectors rewritten per journaled step", integer(1, 65536), DEFAULT_CHUNK_SECTORS)
    .option("-q, --quiet", "no progress, no summary")
    .addHelpText(
      "after",
      `\nExample: parapet disk ${direction} --key disk.key build/guest.img\n` +
        "Without a marker, encrypt checks that sector 0 ends in 55 AA (a plaintext MBR disk) when the range\n" +
        "starts at sector 0; decrypt always wants the marker (or --force).\n" +
        EXIT_TEXT,
    );
}

type ConvertOptions = ReturnType<ReturnType<typeof declareConvert>["opts"]>;

async function runConvert(direction: Direction, image: string, o: ConvertOptions): Promise<void> {
  const key = await readKeyFile(o.key);
  const bar = progressReporter(`${direction} ${image}`, o.quiet === true);
  let stop = false;
  const onSigint = () => {
    if (stop) process.exit(EXIT_INTERRUPTED); // second Ctrl-C: the journal still makes this safe
    stop = true;
    process.stderr.write("\nparapet: stopping after the current chunk (Ctrl-C again to stop at once; either way the same command resumes)\n");
  };
  process.on("SIGINT", onSigint);
  const t0 = Date.now();
  try {
    const r = await convertImage({
      image,
      key,
      direction,
      firstLba: o.firstLba,
      sectors: o.sectors,
      force: o.force,
      chunkSectors: o.chunkSectors,
      progress: bar.update,
      shouldStop: () => stop,
    });
    bar.finish();
    const range = `sectors ${r.firstLba}..${r.firstLba + r.sectors - 1n} (${mib(r.sectors).toFixed(1)} MiB)`;
    if (r.stopped) {
      process.stderr.write(`parapet: interrupted at sector ${r.reached}; run the same command again to resume\n`);
      process.exitCode = EXIT_INTERRUPTED;
      return;
    }
    const resumed = r.resumedFrom !== undefined ? `, resuming an interrupted run at sector ${r.resumedFrom}` : "";
    if (!o.quiet) {
      process.stdout.write(
        `${image}: ${direction === "encrypt" ? "encrypted" : "decrypted"} ${range} with key fingerprint ` +
          `${r.fingerprint} in ${((Date.now() - t0) / 1000).toFixed(1)} s${resumed}\n`,
      );
    }
  } catch (e) {
    bar.finish();
    if (e instanceof DiskRefusal) {
      process.stderr.write(`parapet: disk ${direction}: refused: ${e.message}\n`);
      process.exitCode = EXIT_REFUSED;
      return;
    }
    throw e;
  } finally {
    process.off("SIGINT", onSigint);
  }
}

function declareVerify(disk: Command) {
  const c = disk
    .command("verify")
    .description(
      "Check, read-only, that an encrypted image decrypts with this key to a plausible disk: sector 0 an MBR " +
        "with the 55 AA signature and a sane partition table (and a GPT header in sector 1 behind a protective " +
        "MBR). With --plain REFERENCE, also decrypt every sector of the range and compare it with the same " +
        "sector of the plaintext reference image, reporting the first mismatching sector.",
    )
    .summary("check that an image decrypts with a key to a plausible disk, or to a reference image")
    .argument("<image>", "encrypted raw disk image")
    .requiredOption("--key <file>", "64-byte key file")
    .option("--plain <reference>", "plaintext image to compare every sector of the range with");
  return withRange(c)
    .option("-q, --quiet", "print only the verdict")
    .addHelpText(
      "after",
      "\nExample: cp build/guest.img plain.img && parapet disk encrypt --key disk.key build/guest.img &&\n" +
        "         parapet disk verify --key disk.key --plain plain.img build/guest.img\n" +
        EXIT_TEXT,
    );
}

type VerifyOptions = ReturnType<ReturnType<typeof declareVerify>["opts"]>;

async function runVerify(image: string, o: VerifyOptions): Promise<void> {
  const key = await readKeyFile(o.key);
  const bar = progressReporter(`verify ${image}`, o.quiet === true || !o.plain);
  let r;
  try {
    r = await verifyImage({ image, key, plain: o.plain, firstLba: o.firstLba, sectors: o.sectors, progress: bar.update });
  } catch (e) {
    bar.finish();
    if (e instanceof DiskRefusal) {
      process.stderr.write(`parapet: disk verify: refused: ${e.message}\n`);
      process.exitCode = EXIT_REFUSED;
      return;
    }
    throw e;
  }
  bar.finish();
  const out: string[] = [`${image}: sectors ${r.firstLba}..${r.firstLba + r.sectors - 1n}, key fingerprint ${r.fingerprint}`];
  if (r.markerNote) out.push(`  note: ${r.markerNote}`);
  if (r.mbr) {
    if (r.mbr.problems.length === 0) {
      out.push(`  sector 0 decrypts to an MBR with the 55 AA signature${r.mbr.partitions.length ? "" : " and no partitions"}`);
      for (const p of r.mbr.partitions) {
        out.push(
          `    partition ${p.index}: type ${p.type.toString(16).padStart(2, "0")}${p.bootable ? ", bootable" : ""}, ` +
            `sectors ${p.startLba}..${p.startLba + p.sectors - 1}${p.type === 0xee ? " (GPT protective; GPT header found)" : ""}`,
        );
      }
    } else {
      out.push("  sector 0 does not decrypt to a plausible MBR (wrong key, not encrypted, or damaged):");
      for (const p of r.mbr.problems) out.push(`    ${p}`);
    }
  }
  if (r.compared !== undefined) {
    out.push(
      r.mismatches === 0n
        ? `  all ${r.compared} sectors decrypt to exactly ${o.plain}`
        : `  ${r.mismatches} of ${r.compared} sectors differ from ${o.plain}; the first is sector ${r.firstMismatch}`,
    );
  }
  out.push(r.ok ? "OK" : "FAILED");
  if (o.quiet)
    process.stdout.write(
      `${image}: ${r.ok ? "OK" : `FAILED${r.firstMismatch !== undefined ? ` (first mismatching sector ${r.firstMismatch})` : ""}`}\n`,
    );
  else process.stdout.write(out.join("\n") + "\n");
  if (!r.ok) process.exitCode = EXIT_VERIFY_FAILED;
}

export function registerDisk(program: Command): void {
  const disk = program
    .command("disk")
    .description(
      "Encrypt, decrypt, verify or inspect a raw disk image in place (XTS-AES-256, dm-crypt aes-xts-plain64). " + "See docs/disk-encryption.md.",
    )
    .addHelpText("after", `\n${EXIT_TEXT}`);
  for (const direction of ["encrypt", "decrypt"] as const) {
    declareConvert(disk, direction).action((image, o) => runConvert(direction, image, o));
  }
  declareVerify(disk).action(runVerify);
  disk
    .command("status")
    .description(
      "Show what the marker and journal beside an image say: which sectors are encrypted with which key " +
        "fingerprint, and any unfinished conversion. Needs no key; changes nothing.",
    )
    .summary("show the marker and any unfinished conversion of an image")
    .argument("<image>", "raw disk image")
    .action(async (image) => {
      process.stdout.write(await describeImage(image));
    });
}
