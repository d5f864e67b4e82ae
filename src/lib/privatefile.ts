// Files that hold keys (key files, policy records): mode 0600, put in place atomically.
import { open, rename, rm } from "node:fs/promises";

/**
 * Writes `data` to `${path}.tmp-PID` with mode 0600, syncs it and renames it over `path`: `path`
 * holds either what it held before or all of `data`. The temporary file must not exist already
 * (so a planted file or symlink there is never written through); on an error it is removed.
 */
export async function writePrivateFileAtomic(path: string, data: Uint8Array): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}`;
  const fh = await open(tmp, "wx", 0o600);
  try {
    await fh.chmod(0o600);
    await fh.writeFile(data);
    await fh.sync();
  } catch (e) {
    await fh.close();
    await rm(tmp, { force: true });
    throw e;
  }
  await fh.close();
  await rename(tmp, path);
}
