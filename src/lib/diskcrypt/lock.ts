// The lock beside an image, IMAGE.parapet-lock: held while a command works on IMAGE, with its
// pid inside; a lock whose process is gone is stale and taken over.
import { open, readFile, rm } from "node:fs/promises";
import { DiskRefusal, shownName } from "./common.ts";

export const LOCK_SUFFIX = ".parapet-lock";
export const lockPath = (image: string) => image + LOCK_SUFFIX;

/** Takes the lock of `image`; returns its release. */
export async function acquireLock(image: string): Promise<() => Promise<void>> {
  const path = lockPath(image);
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fh = await open(path, "wx", 0o644);
      await fh.writeFile(`${process.pid}\n`);
      await fh.close();
      return async () => {
        await rm(path, { force: true });
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
      const pid = Number((await readFile(path, "utf8").catch(() => "")).trim());
      let alive = false;
      if (Number.isInteger(pid) && pid > 0 && pid !== process.pid) {
        try {
          process.kill(pid, 0);
          alive = true;
        } catch (err) {
          alive = (err as NodeJS.ErrnoException).code === "EPERM";
        }
      }
      if (alive) throw new DiskRefusal(`another parapet disk command (pid ${pid}) is working on ${shownName(image)} (${shownName(path)})`);
      await rm(path, { force: true }); // stale: its process is gone
    }
  }
  throw new DiskRefusal(`cannot take the lock ${shownName(path)}`);
}
