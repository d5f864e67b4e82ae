// A small initramfs writer: cpio "newc" (the format the kernel unpacks),
// compressed with gzip. Entries are owned by root whatever user builds them,
// and device nodes need no mknod on the host.
import { gzipSync } from "node:zlib";

export type CpioEntry =
  | { kind: "dir"; path: string; mode: number }
  | { kind: "file"; path: string; mode: number; data: Buffer }
  | { kind: "symlink"; path: string; target: string }
  | { kind: "char"; path: string; mode: number; major: number; minor: number };

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const S_IFCHR = 0o020000;

function hex8(n: number): string {
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new Error(`cpio field out of range: ${n}`);
  return n.toString(16).padStart(8, "0");
}

function pad4(n: number): number {
  return (4 - (n % 4)) % 4;
}

/** One newc record: 110-byte header, NUL-terminated name, data, each padded to 4 bytes. */
function record(ino: number, mode: number, nlink: number, name: string, data: Buffer, rdev: [number, number] = [0, 0]): Buffer {
  const nameBytes = Buffer.from(`${name}\0`, "utf8");
  const header =
    "070701" +
    hex8(ino) +
    hex8(mode) +
    hex8(0) + // uid
    hex8(0) + // gid
    hex8(nlink) +
    hex8(0) + // mtime: fixed, so the archive depends only on its contents
    hex8(data.length) +
    hex8(0) + // devmajor
    hex8(0) + // devminor
    hex8(rdev[0]) +
    hex8(rdev[1]) +
    hex8(nameBytes.length) +
    hex8(0); // check
  const head = Buffer.concat([Buffer.from(header, "ascii"), nameBytes]);
  return Buffer.concat([head, Buffer.alloc(pad4(head.length)), data, Buffer.alloc(pad4(data.length))]);
}

/** Serialises entries (in the given order) as an uncompressed newc archive. */
export function writeCpio(entries: readonly CpioEntry[]): Buffer {
  const parts: Buffer[] = [];
  let ino = 1;
  for (const e of entries) {
    const name = e.path.replace(/^\/+/, "");
    switch (e.kind) {
      case "dir":
        parts.push(record(ino++, S_IFDIR | e.mode, 2, name, Buffer.alloc(0)));
        break;
      case "file":
        parts.push(record(ino++, S_IFREG | e.mode, 1, name, e.data));
        break;
      case "symlink":
        parts.push(record(ino++, S_IFLNK | 0o777, 1, name, Buffer.from(e.target, "utf8")));
        break;
      case "char":
        parts.push(record(ino++, S_IFCHR | e.mode, 1, name, Buffer.alloc(0), [e.major, e.minor]));
        break;
    }
  }
  parts.push(record(0, 0, 1, "TRAILER!!!", Buffer.alloc(0)));
  return Buffer.concat(parts);
}

/** Collects an initramfs tree; parent directories are added automatically, before their contents. */
export class Initramfs {
  private readonly entries = new Map<string, CpioEntry>();

  private norm(path: string): string {
    const p = `/${path.split("/").filter(Boolean).join("/")}`;
    if (p === "/" || p.split("/").includes("..")) throw new Error(`bad initramfs path: ${path}`);
    return p;
  }

  private parents(path: string): void {
    const parts = path.split("/").filter(Boolean);
    for (let i = 1; i < parts.length; i++) {
      const dir = `/${parts.slice(0, i).join("/")}`;
      if (!this.entries.has(dir)) this.entries.set(dir, { kind: "dir", path: dir, mode: 0o755 });
    }
  }

  private add(entry: CpioEntry): this {
    const path = this.norm(entry.path);
    this.parents(path);
    const existing = this.entries.get(path);
    if (existing && !(existing.kind === "dir" && entry.kind === "dir")) {
      throw new Error(`initramfs path added twice: ${path}`);
    }
    this.entries.set(path, { ...entry, path });
    return this;
  }

  has(path: string): boolean {
    return this.entries.has(this.norm(path));
  }

  dir(path: string, mode = 0o755): this {
    return this.add({ kind: "dir", path, mode });
  }

  file(path: string, data: Buffer | string, mode = 0o644): this {
    return this.add({ kind: "file", path, mode, data: typeof data === "string" ? Buffer.from(data, "utf8") : data });
  }

  symlink(path: string, target: string): this {
    return this.add({ kind: "symlink", path, target });
  }

  charDevice(path: string, major: number, minor: number, mode = 0o600): this {
    return this.add({ kind: "char", path, mode, major, minor });
  }

  /** Number of entries so far. */
  get size(): number {
    return this.entries.size;
  }

  /** The uncompressed newc archive. */
  cpio(): Buffer {
    return writeCpio([...this.entries.values()]);
  }

  /** The gzip-compressed archive, ready to be an initrd. */
  build(): Buffer {
    return gzipSync(this.cpio(), { level: 9 });
  }
}
