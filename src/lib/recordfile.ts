// Policy record files: read and decoded with errors that name the file, written with mode 0600
// (a record holds keys). Used by `parapet policy` and `parapet run --policy`.
import { open } from "node:fs/promises";
import { writePrivateFileAtomic } from "./privatefile.ts";
import { decodePolicy, PolicyRecordError, POLICY_MAX_SIZE, type Policy } from "./policyrecord.ts";

/** Writes the record with mode 0600 (it holds keys), atomically. */
export async function writeRecord(path: string, record: Uint8Array): Promise<void> {
  await writePrivateFileAtomic(path, record);
}

/** Reads and decodes a record file; errors name the file. */
export async function readRecord(path: string): Promise<{ policy: Policy; bytes: Buffer }> {
  let bytes: Buffer;
  try {
    const fh = await open(path, "r");
    try {
      const size = (await fh.stat()).size;
      if (size > POLICY_MAX_SIZE) throw new PolicyRecordError(`${path}: ${size} bytes, larger than any policy record (${POLICY_MAX_SIZE})`);
      bytes = await fh.readFile();
    } finally {
      await fh.close();
    }
  } catch (e) {
    if (e instanceof PolicyRecordError) throw e;
    throw new Error(`${path}: ${(e as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : (e as Error).message}`);
  }
  try {
    return { policy: decodePolicy(bytes), bytes };
  } catch (e) {
    if (e instanceof PolicyRecordError) throw new PolicyRecordError(`${path}: invalid policy record: ${e.message}`);
    throw e;
  }
}
