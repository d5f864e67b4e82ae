// A BIOS-bootable raw disk: MBR with syslinux's boot code, a bootable FAT32
// partition at 1 MiB (63 MiB, filled with mtools and made bootable with
// `syslinux --offset`) and a raw data partition from 64 MiB to the end of the
// disk, for tests that read and write sectors — no root, no mounts, no loop
// devices.
import { existsSync } from "node:fs";
import { open, readFile, rename, rm, writeFile } from "node:fs/promises";
import { run } from "./exec.ts";

export const SECTOR = 512;
export const MIB = 1024 * 1024;
/** The boot partition starts at 1 MiB (LBA 2048), the usual alignment. */
export const PARTITION_START_LBA = 2048;
/** The boot (FAT32) partition is 63 MiB: LBA 2048-131071. */
export const BOOT_PARTITION_SECTORS = 63 * (MIB / 512);
/** The data partition starts at 64 MiB, whatever the disk size, and runs to the end of the disk. */
export const DATA_PARTITION_START_LBA = PARTITION_START_LBA + BOOT_PARTITION_SECTORS;
/** The default disk: 96 MiB, so a 32 MiB data partition (LBA 131072-196607). */
export const DEFAULT_DISK_BYTES = 96 * MIB;
/** Smallest disk: the boot partition and a 1 MiB data partition. */
export const MIN_DISK_BYTES = DATA_PARTITION_START_LBA * 512 + MIB;
export const SYSLINUX_MBR = "/usr/lib/syslinux/mbr/mbr.bin";

const HEADS = 255;
const SECTORS_PER_TRACK = 63;

/** Partition type 0x0C: FAT32 addressed by LBA. */
export const PART_TYPE_FAT32_LBA = 0x0c;
/** Partition type 0xDA: non-file-system data. */
export const PART_TYPE_NON_FS_DATA = 0xda;

export interface MbrPartition {
  bootable: boolean;
  type: number;
  startLba: number;
  sectors: number;
}

/**
 * Parses a size such as "64M", "64MiB", "1G", "512K" or "67108864B"; a bare
 * number means MiB. Returns bytes.
 */
export function parseSize(text: string): number {
  const m = /^\s*(\d+)\s*([kmgt]?)(i?b)?\s*$/i.exec(text);
  if (!m) throw new Error(`bad size '${text}' (use e.g. 64M, 1G)`);
  const n = Number(m[1]);
  const unit = m[2].toLowerCase();
  if (!unit && m[3] && m[3].toLowerCase() === "b") return n;
  const shift = { "": 20, k: 10, m: 20, g: 30, t: 40 }[unit] ?? 20;
  return n * 2 ** shift;
}

/** CHS bytes (head, sector|cyl-high, cyl-low) for an LBA, or the "beyond CHS" marker. */
export function chsBytes(lba: number): [number, number, number] {
  const cylinder = Math.floor(lba / (HEADS * SECTORS_PER_TRACK));
  if (cylinder > 1023) return [0xfe, 0xff, 0xff];
  const head = Math.floor(lba / SECTORS_PER_TRACK) % HEADS;
  const sector = (lba % SECTORS_PER_TRACK) + 1;
  return [head, sector | ((cylinder >> 2) & 0xc0), cylinder & 0xff];
}

/** One 16-byte MBR partition table entry. */
export function partitionEntry(p: MbrPartition): Buffer {
  if (p.startLba < 1 || p.sectors < 1 || p.startLba + p.sectors > 2 ** 32) {
    throw new Error(`partition does not fit an MBR: start ${p.startLba}, ${p.sectors} sectors`);
  }
  const e = Buffer.alloc(16);
  e[0] = p.bootable ? 0x80 : 0x00;
  e.set(chsBytes(p.startLba), 1);
  e[4] = p.type;
  e.set(chsBytes(p.startLba + p.sectors - 1), 5);
  e.writeUInt32LE(p.startLba, 8);
  e.writeUInt32LE(p.sectors, 12);
  return e;
}

/** A 512-byte MBR: boot code (≤ 440 bytes), disk signature, up to 4 partitions, 0x55AA. */
export function buildMbr(bootCode: Buffer, partitions: readonly MbrPartition[], diskSignature: number): Buffer {
  if (bootCode.length > 440) throw new Error(`MBR boot code is ${bootCode.length} bytes, more than 440`);
  if (partitions.length > 4) throw new Error("an MBR holds at most 4 partitions");
  const mbr = Buffer.alloc(SECTOR);
  bootCode.copy(mbr, 0);
  mbr.writeUInt32LE(diskSignature >>> 0, 440);
  partitions.forEach((p, i) => partitionEntry(p).copy(mbr, 446 + 16 * i));
  mbr[510] = 0x55;
  mbr[511] = 0xaa;
  return mbr;
}

export interface DiskLayout {
  /** The bootable FAT32 partition (first MBR entry, /dev/sda1 in the guest). */
  boot: MbrPartition;
  /** The raw data partition (second MBR entry, /dev/sda2 in the guest). */
  data: MbrPartition;
}

/** Where the partitions of a disk of `sizeBytes` are. */
export function diskLayout(sizeBytes: number): DiskLayout {
  checkDiskSize(sizeBytes);
  return {
    boot: { bootable: true, type: PART_TYPE_FAT32_LBA, startLba: PARTITION_START_LBA, sectors: BOOT_PARTITION_SECTORS },
    data: {
      bootable: false,
      type: PART_TYPE_NON_FS_DATA,
      startLba: DATA_PARTITION_START_LBA,
      sectors: sizeBytes / SECTOR - DATA_PARTITION_START_LBA,
    },
  };
}

export interface BootDiskFile {
  /** Name in the FAT root directory. */
  name: string;
  /** Host file to copy. */
  source: string;
}

export interface BootDiskOptions {
  output: string;
  sizeBytes: number;
  volumeLabel?: string;
  files: readonly BootDiskFile[];
  /** Contents of /syslinux.cfg. */
  syslinuxCfg: string;
}

/** Throws unless `sizeBytes` is a usable disk size. */
export function checkDiskSize(sizeBytes: number): void {
  if (!Number.isSafeInteger(sizeBytes) || sizeBytes % SECTOR !== 0) {
    throw new Error(`disk size ${sizeBytes} is not a whole number of ${SECTOR}-byte sectors`);
  }
  if (sizeBytes < MIN_DISK_BYTES) {
    throw new Error(`disk size must be at least ${MIN_DISK_BYTES / MIB} MiB (a 63 MiB FAT32 partition at 1 MiB, then data)`);
  }
  if (sizeBytes / SECTOR > 2 ** 32) throw new Error("disk size must be below 2 TiB for an MBR partition table");
}

/** Writes the whole disk to a temporary file next to `output`, then renames it into place. */
export async function makeBootDisk(opts: BootDiskOptions): Promise<DiskLayout> {
  const { sizeBytes } = opts;
  const layout = diskLayout(sizeBytes);
  if (!existsSync(SYSLINUX_MBR)) {
    throw new Error(`${SYSLINUX_MBR} is missing; install it with: apt-get install syslinux-common`);
  }
  const bootCode = (await readFile(SYSLINUX_MBR)).subarray(0, 440);
  const sectors = layout.boot.sectors;
  // Disk signature: fixed, so images differ only when their contents do.
  const mbr = buildMbr(bootCode, [layout.boot, layout.data], 0x50525054);

  const tmp = `${opts.output}.tmp-${process.pid}`;
  const part = `${tmp}@@${PARTITION_START_LBA * SECTOR}`;
  const env = { MTOOLS_SKIP_CHECK: "1" };
  try {
    const fh = await open(tmp, "w");
    try {
      await fh.truncate(sizeBytes);
      await fh.write(mbr, 0, mbr.length, 0);
    } finally {
      await fh.close();
    }
    await run(
      "mformat",
      [
        "-i",
        part,
        "-F",
        "-v",
        opts.volumeLabel ?? "PARAPET",
        "-T",
        String(sectors),
        "-h",
        String(HEADS),
        "-s",
        String(SECTORS_PER_TRACK),
        "-H",
        String(PARTITION_START_LBA),
        "::",
      ],
      { env },
    );
    const cfg = `${tmp}.syslinux.cfg`;
    await writeFile(cfg, opts.syslinuxCfg);
    try {
      await run("mcopy", ["-i", part, "-o", cfg, "::/syslinux.cfg"], { env });
    } finally {
      await rm(cfg, { force: true });
    }
    for (const f of opts.files) {
      await run("mcopy", ["-i", part, "-o", f.source, `::/${f.name}`], { env });
    }
    await run("syslinux", ["--offset", String(PARTITION_START_LBA * SECTOR), "--install", tmp]);
    await rename(tmp, opts.output);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
  return layout;
}
