// Scratch copies of the test guest's disk image, for the end-to-end tests and the benchmarks:
// a copy optionally booting with extra kernel arguments, encrypted whole (MBR and boot loader
// included) with Node's XTS, plus the policy record that lets Parapet open it. They live in
// WORK_DIR (build/test).
import { randomBytes } from "node:crypto";
import { copyFile, mkdir, open, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { run } from "./exec.ts";
import { kernelCmdline, syslinuxConfig, DEFAULT_IMAGE, REPO_ROOT } from "./guestimage.ts";
import { PARTITION_START_LBA, DATA_PARTITION_START_LBA, SECTOR } from "./diskimage.ts";
import { encodePolicy, type Policy, wholeDiskPolicy } from "./policyrecord.ts";
import { XtsCipher } from "./xts.ts";

/** Where the scratch copies, records and logs of tests and benchmarks go. */
export const WORK_DIR = join(REPO_ROOT, "build", "test");
export const DATA_OFFSET = DATA_PARTITION_START_LBA * SECTOR;

/** A random XTS-AES-256 key (64 bytes, halves differ). */
export function newKey(): Buffer {
  for (;;) {
    const k = randomBytes(64);
    if (!k.subarray(0, 32).equals(k.subarray(32))) return k;
  }
}

/**
 * Test records allow a machine without an IOMMU (header flag ALLOW_NO_IOMMU): most tests boot
 * QEMU's pc machine, which has none, and Parapet refuses a record with keys there otherwise
 * (docs/policy.md). This is the one place that says so; a policy that sets allowNoIommu
 * itself (false included) keeps its own choice.
 */
export const withoutIommu = (policy: Policy): Policy => ({ ...policy, allowNoIommu: policy.allowNoIommu ?? true });

/** Writes a policy record (withoutIommu) and returns its path. */
export async function writePolicy(name: string, policy: Policy): Promise<string> {
  await mkdir(WORK_DIR, { recursive: true });
  const path = join(WORK_DIR, name);
  await writeFile(path, encodePolicy(withoutIommu(policy)), { mode: 0o600 });
  return path;
}

/** The whole-disk policy for `key`, allowed without an IOMMU (withoutIommu). */
export const wholeDisk = (key: Buffer) => withoutIommu(wholeDiskPolicy(key));

/** Transforms sectors [first, first + count) of an image file in place, in 4 MiB chunks. */
export async function transformImage(path: string, key: Buffer, dir: "encrypt" | "decrypt", first = 0, count?: number): Promise<void> {
  const f = await open(path, "r+");
  try {
    const total = (await f.stat()).size / SECTOR;
    const end = count === undefined ? total : first + count;
    const cipher = new XtsCipher(key);
    const chunk = 8192;
    for (let lba = first; lba < end; lba += chunk) {
      const n = Math.min(chunk, end - lba);
      const buf = Buffer.alloc(n * SECTOR);
      await f.read(buf, 0, buf.length, lba * SECTOR);
      const out = cipher.sectors(dir, buf, BigInt(lba));
      await f.write(out, 0, out.length, lba * SECTOR);
    }
  } finally {
    await f.close();
  }
}

/** A copy of the test guest image booting with `append` on the kernel command line. */
export async function plainImage(name: string, append = ""): Promise<string> {
  await mkdir(WORK_DIR, { recursive: true });
  const path = join(WORK_DIR, name);
  await rm(path, { force: true });
  await copyFile(DEFAULT_IMAGE, path);
  if (append) {
    const cfg = `${path}.syslinux.cfg`;
    await writeFile(cfg, syslinuxConfig(kernelCmdline(append)));
    try {
      await run("mcopy", ["-i", `${path}@@${PARTITION_START_LBA * SECTOR}`, "-o", cfg, "::/syslinux.cfg"], {
        env: { ...process.env, MTOOLS_SKIP_CHECK: "1" },
      });
    } finally {
      await rm(cfg, { force: true });
    }
  }
  return path;
}

/** The same, encrypted whole with `key`. */
export async function encryptedImage(name: string, key: Buffer, append = ""): Promise<string> {
  const path = await plainImage(name, append);
  await transformImage(path, key, "encrypt");
  return path;
}

/** The plaintext of a whole encrypted image, in memory (test images are small). */
export async function decryptedCopy(path: string, key: Buffer): Promise<Buffer> {
  const buf = await readFile(path);
  return new XtsCipher(key).sectors("decrypt", buf, 0n);
}
