// File I/O the conversion can rely on after a crash: whole reads and writes, atomic
// replacement with the directory synced, and the image's size in sectors.
import { constants } from "node:fs";
import { open, rename, stat, type FileHandle } from "node:fs/promises";
import { dirname } from "node:path";
import { SECTOR } from "../xts.ts";

export async function fsyncDir(path: string): Promise<void> {
  let fh: FileHandle | undefined;
  try {
    fh = await open(dirname(path), constants.O_RDONLY | constants.O_DIRECTORY);
    await fh.sync();
  } catch {
    // not every file system lets a directory be synced; the rename is still atomic
  } finally {
    await fh?.close();
  }
}

/** Writes a file atomically (temporary file, fsync, rename, directory fsync). */
export async function writeAtomic(path: string, data: Uint8Array | string, mode = 0o644): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}`;
  const fh = await open(tmp, "w", mode);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, path);
  await fsyncDir(path);
}

export async function readExactly(fh: FileHandle, buf: Buffer, position: bigint, what: string): Promise<void> {
  let got = 0;
  while (got < buf.length) {
    const { bytesRead } = await fh.read(buf, got, buf.length - got, Number(position) + got);
    if (bytesRead === 0) throw new Error(`${what}: unexpected end of file at byte ${Number(position) + got}`);
    got += bytesRead;
  }
}

export async function writeAll(fh: FileHandle, buf: Uint8Array, position: number): Promise<void> {
  let put = 0;
  while (put < buf.length) {
    const { bytesWritten } = await fh.write(buf, put, buf.length - put, position + put);
    put += bytesWritten;
  }
}

export async function readSector(image: string, lba: bigint): Promise<Buffer> {
  const fh = await open(image, "r");
  try {
    const b = Buffer.alloc(SECTOR);
    await readExactly(fh, b, lba * BigInt(SECTOR), image);
    return b;
  } finally {
    await fh.close();
  }
}

/** The image's size in sectors: a regular file of whole sectors, or an error saying what it is. */
export async function imageSectors(image: string): Promise<bigint> {
  const st = await stat(image).catch((e: NodeJS.ErrnoException) => {
    throw new Error(e.code === "ENOENT" ? `${image}: no such file` : `${image}: ${e.message}`);
  });
  if (!st.isFile()) throw new Error(`${image} is not a regular file (block devices are not supported: use cryptsetup for those)`);
  if (st.size % SECTOR !== 0) throw new Error(`${image} is ${st.size} bytes, not a whole number of ${SECTOR}-byte sectors`);
  return BigInt(st.size / SECTOR);
}
