// The binary storage policy record that carries keys and per-drive sector policy to the
// hypervisor as a Multiboot module. hv/handoff/policy_record.h is the contract; this file
// encodes exactly that layout (version 2: drives on any transport), decodes versions 2 and 1
// (IDE drives only), and checks everything on the way in.
import { keyFingerprint, keyProblem, KEY_BYTES } from "./xts.ts";

export const POLICY_MAGIC = "PARAPOL1";
/** The version written. */
export const POLICY_VERSION = 2;
/** Still decoded: drive entries name IDE drives only, 512-byte blocks implied. */
export const POLICY_VERSION_1 = 1;
export const POLICY_MAX_SIZE = 64 * 1024;
export const POLICY_MAX_KEYS = 16;
export const POLICY_MAX_DRIVES = 16;
export const POLICY_MAX_RANGES = 256;

export const HEADER_SIZE = 32;
export const KEY_SIZE = KEY_BYTES;
export const DRIVE_SIZE = 48;
export const RANGE_SIZE = 24;
export const SERIAL_BYTES = 20;

export const MATCH_PCI = 0x01;
export const MATCH_PORT = 0x02;
export const MATCH_SERIAL = 0x04;
/** Version 2 only. */
export const MATCH_TRANSPORT = 0x08;
/** Version 2 only. */
export const MATCH_NSID = 0x10;
const MATCH_ALL_V1 = MATCH_PCI | MATCH_PORT | MATCH_SERIAL;
const MATCH_ALL = MATCH_ALL_V1 | MATCH_TRANSPORT | MATCH_NSID;

/** policy_drive.transport (enum storage_transport in hv/services/storage.h). */
export const TRANSPORTS = ["ide", "ahci", "nvme"] as const;
export type Transport = (typeof TRANSPORTS)[number];
export const TRANSPORT_CODE: Record<Transport, number> = { ide: 0, ahci: 1, nvme: 2 };
const TRANSPORT_NAME: Record<Transport, string> = { ide: "IDE", ahci: "AHCI", nvme: "NVMe" };

/** The logical block size a drive entry states when none is given; the only one Parapet supports today. */
export const DEFAULT_BLOCK_SIZE = 512;
export const BLOCK_SIZES = [512, 1024, 2048, 4096] as const;
export const AHCI_PORTS = 32;

/** header.flags (POLICY_FLAG_*): the keys may be used on a machine without a usable IOMMU. */
export const FLAG_ALLOW_NO_IOMMU = 0x0001;
const FLAGS_ALL = FLAG_ALLOW_NO_IOMMU;

export const ACTIONS = ["plain", "encrypt", "deny"] as const;
export type Action = (typeof ACTIONS)[number];
/** enum policy_action */
export const ACTION_CODE: Record<Action, number> = { plain: 0, encrypt: 1, deny: 2 };

/** struct policy_header field offsets. */
export const HDR = {
  magic: 0,
  version: 8,
  headerSize: 10,
  totalSize: 12,
  nkeys: 16,
  ndrives: 18,
  nranges: 20,
  flags: 22,
  crc32: 24,
  reserved1: 28,
} as const;
/** struct policy_drive field offsets (version 2). */
export const DRV = {
  match: 0,
  transport: 1,
  pciBus: 2,
  pciDevfn: 3,
  port: 4,
  position: 5,
  defaultAction: 6,
  reserved0: 7,
  defaultKey: 8,
  firstRange: 10,
  nranges: 12,
  reserved1: 14,
  nsid: 16,
  blockSize: 20,
  serial: 24,
  reserved2: 44,
} as const;
/** struct policy_drive_v1 field offsets (version 1). */
export const DRV1 = {
  match: 0,
  pciBus: 1,
  pciDevfn: 2,
  channel: 3,
  position: 4,
  defaultAction: 5,
  defaultKey: 6,
  serial: 8,
  firstRange: 28,
  nranges: 30,
  reserved: 32,
} as const;
/** struct policy_range field offsets. */
export const RNG = { firstLba: 0, count: 8, action: 16, reserved0: 17, key: 18, reserved1: 20 } as const;

export interface PciAddress {
  bus: number;
  dev: number;
  fn: number;
}

/**
 * Which drive an entry names; every criterion given must match. A port-like criterion implies
 * its transport: `port` IDE, `ahciPort` AHCI, `nsid` NVMe; `transport` is then left out (decoding
 * gives this canonical form), and is given only to name every drive of one transport.
 */
export interface DriveMatch {
  /** Only drives behind this kind of controller. */
  transport?: Transport;
  pci?: PciAddress;
  /** IDE: channel 0 primary / 1 secondary, position 0 master / 1 slave */
  port?: { channel: number; position: number };
  /** AHCI: the SATA port, 0-31 */
  ahciPort?: number;
  /** NVMe: the namespace id, 1..0xfffffffe */
  nsid?: number;
  /** Serial number as read (ATA IDENTIFY or NVMe; up to 20 characters; stored space padded). */
  serial?: string;
}

/** The transport a match names: given, or implied by its port-like criterion. */
export function matchTransport(m: DriveMatch): Transport | undefined {
  if (m.port) return "ide";
  if (m.ahciPort !== undefined) return "ahci";
  if (m.nsid !== undefined) return "nvme";
  return m.transport;
}

export interface PolicyRange {
  firstLba: bigint;
  count: bigint;
  action: Action;
  /** key index when action is encrypt, else 0 */
  key: number;
}

export interface PolicyDrive {
  match: DriveMatch;
  /**
   * The drive's logical block size in bytes (default 512). A drive the entry names whose block
   * size differs, or is not 512 (the only size Parapet supports today), is denied entirely.
   */
  blockSize?: number;
  defaultAction: Action;
  /** key index when defaultAction is encrypt, else 0 */
  defaultKey: number;
  ranges: PolicyRange[];
}

export interface Policy {
  /** 64-byte XTS-AES-256 keys, referred to by index. */
  keys: Uint8Array[];
  drives: PolicyDrive[];
  /**
   * The keys may be used on a machine without a usable IOMMU (header flag ALLOW_NO_IOMMU).
   * Without it Parapet refuses a record that carries keys on such a machine: any bus master
   * could read the keys, and every decrypted sector, from RAM.
   */
  allowNoIommu?: boolean;
}

export class PolicyRecordError extends Error {}

// CRC-32 (IEEE 802.3, reflected, as zlib): zlib.crc32 exists only from Node 20.15 on.
const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

export function crc32(data: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < data.length; i++) c = CRC_TABLE[(c ^ data[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** The record's CRC: over the whole record with the crc32 field taken as zero. */
export function recordCrc(record: Uint8Array): number {
  const copy = Buffer.from(record);
  copy.writeUInt32LE(0, HDR.crc32);
  return crc32(copy);
}

export function recordSize(nkeys: number, ndrives: number, nranges: number): number {
  return HEADER_SIZE + KEY_SIZE * nkeys + DRIVE_SIZE * ndrives + RANGE_SIZE * nranges;
}

export function formatPci(p: PciAddress): string {
  const h = (n: number, w: number) => n.toString(16).padStart(w, "0");
  return `${h(p.bus, 2)}:${h(p.dev, 2)}.${p.fn}`;
}

/** Parses "BB:DD.F" (hexadecimal bus and device, function 0-7; segment 0 only). */
export function parsePci(text: string): PciAddress {
  const m = /^(?:0{0,4}:)?([0-9a-f]{1,2}):([0-9a-f]{1,2})\.([0-7])$/i.exec(text.trim());
  if (!m) throw new Error(`'${text}' is not a PCI address BB:DD.F (hex bus 00-ff, device 00-1f, function 0-7)`);
  const bus = parseInt(m[1], 16),
    dev = parseInt(m[2], 16),
    fn = Number(m[3]);
  if (dev > 0x1f) throw new Error(`'${text}': PCI device ${dev.toString(16)} is above 1f`);
  return { bus, dev, fn };
}

/** Why a serial number cannot be stored, or undefined. */
export function serialProblem(serial: string): string | undefined {
  if (serial.length === 0 || serial.trim().length === 0) return "must not be empty";
  if (serial.length > SERIAL_BYTES) return `is ${serial.length} characters, at most ${SERIAL_BYTES}`;
  if (!/^[\x20-\x7e]+$/.test(serial)) return "must be printable ASCII";
  return undefined;
}

function describeMatch(m: DriveMatch): string {
  const parts: string[] = [];
  const t = matchTransport(m);
  if (t) parts.push(TRANSPORT_NAME[t]);
  if (m.pci) parts.push(`pci ${formatPci(m.pci)}`);
  if (m.port) parts.push(`channel ${m.port.channel} position ${m.port.position}`);
  if (m.ahciPort !== undefined) parts.push(`port ${m.ahciPort}`);
  if (m.nsid !== undefined) parts.push(`namespace ${m.nsid}`);
  if (m.serial !== undefined) parts.push(`serial '${m.serial}'`);
  return parts.join(", ") || "(nothing)";
}

/** Two matches with the same key name the same drives. */
export function matchKey(m: DriveMatch): string {
  return JSON.stringify([
    matchTransport(m) ?? null,
    m.pci ? formatPci(m.pci) : null,
    m.port ?? null,
    m.ahciPort ?? null,
    m.nsid ?? null,
    m.serial ?? null,
  ]);
}

/** Why a drive's match cannot be stored (each problem with its field under `at`). */
function matchProblems(m: DriveMatch, at: string): string[] {
  const errs: string[] = [];
  const named = [m.port && "port (IDE)", m.ahciPort !== undefined && "ahciPort (AHCI)", m.nsid !== undefined && "nsid (NVMe)"].filter(
    (x): x is string => typeof x === "string",
  );
  if (!m.pci && !m.port && m.serial === undefined && m.transport === undefined && !named.length) {
    errs.push(`${at}.match: no criterion (transport, pci, port, namespace or serial)`);
  }
  if (named.length > 1) errs.push(`${at}.match: names a drive on two transports (${named.join(" and ")})`);
  if (m.transport !== undefined && !(TRANSPORTS as readonly string[]).includes(m.transport)) {
    errs.push(`${at}.match.transport: '${String(m.transport)}' is not ide, ahci or nvme`);
  } else if (m.transport !== undefined && named.length === 1 && matchTransport(m) !== m.transport) {
    errs.push(`${at}.match.transport: is ${m.transport}, but ${named[0]} names a drive of another transport`);
  }
  if (
    m.pci &&
    (m.pci.bus > 0xff || m.pci.dev > 0x1f || m.pci.fn > 7 || [m.pci.bus, m.pci.dev, m.pci.fn].some((v) => !Number.isInteger(v) || v < 0))
  ) {
    errs.push(`${at}.match.pci: not a PCI address`);
  }
  if (m.port && (![0, 1].includes(m.port.channel) || ![0, 1].includes(m.port.position))) {
    errs.push(`${at}.match: channel and position must each be 0 or 1`);
  }
  if (m.ahciPort !== undefined && (!Number.isInteger(m.ahciPort) || m.ahciPort < 0 || m.ahciPort >= AHCI_PORTS)) {
    errs.push(`${at}.match.ahciPort: ${m.ahciPort} is not an AHCI port (0-${AHCI_PORTS - 1})`);
  }
  if (m.nsid !== undefined && (!Number.isInteger(m.nsid) || m.nsid < 1 || m.nsid > 0xfffffffe)) {
    errs.push(`${at}.match.nsid: ${m.nsid} is not an NVMe namespace id (1..4294967294)`);
  }
  if (m.serial !== undefined) {
    const why = serialProblem(m.serial);
    if (why) errs.push(`${at}.match.serial: ${why}`);
  }
  return errs;
}

/** Why a block size cannot be stored, or undefined. */
export function blockSizeProblem(n: number): string | undefined {
  return (BLOCK_SIZES as readonly number[]).includes(n) ? undefined : `${n} is not a power of two in 512..4096`;
}

/**
 * Checks a policy against everything the record format and the hypervisor require: limits,
 * key sizes, indices, overlaps. Returns the problems, each prefixed with a field path.
 */
export function policyProblems(p: Policy): string[] {
  const errs: string[] = [];
  if (p.keys.length > POLICY_MAX_KEYS) errs.push(`keys: ${p.keys.length} keys, at most ${POLICY_MAX_KEYS}`);
  if (p.drives.length === 0) errs.push("drives: no drive (a policy names at least one)");
  if (p.drives.length > POLICY_MAX_DRIVES) errs.push(`drives: ${p.drives.length} drives, at most ${POLICY_MAX_DRIVES}`);
  const nranges = p.drives.reduce((n, d) => n + d.ranges.length, 0);
  if (nranges > POLICY_MAX_RANGES) errs.push(`ranges: ${nranges} ranges in all, at most ${POLICY_MAX_RANGES}`);
  const fps = new Map<string, number>();
  p.keys.forEach((k, i) => {
    const why = keyProblem(k);
    if (why) errs.push(`keys[${i}]: ${why}`);
    const fp = keyFingerprint(k);
    const prev = fps.get(fp);
    if (prev !== undefined) errs.push(`keys[${i}]: the same key as keys[${prev}]`);
    else fps.set(fp, i);
  });
  const keyIndex = (path: string, action: Action, key: number) => {
    if (!Number.isInteger(key) || key < 0 || key > 0xffff) errs.push(`${path}: ${key} is not a key index`);
    else if (action === "encrypt" && key >= p.keys.length)
      errs.push(`${path}: key ${key} does not exist (${p.keys.length} key${p.keys.length === 1 ? "" : "s"})`);
    else if (action !== "encrypt" && key !== 0) errs.push(`${path}: must be 0 when the action is ${action}`);
  };
  const seen = new Map<string, number>();
  p.drives.forEach((d, di) => {
    const at = `drives[${di}]`;
    const m = d.match;
    errs.push(...matchProblems(m, at));
    if (d.blockSize !== undefined) {
      const why = blockSizeProblem(d.blockSize);
      if (why) errs.push(`${at}.block_size: ${why}`);
    }
    const mk = matchKey(m);
    const dup = seen.get(mk);
    if (dup !== undefined) errs.push(`${at}.match: the same drive as drives[${dup}] (${describeMatch(m)})`);
    else seen.set(mk, di);
    keyIndex(`${at}.default_key`, d.defaultAction, d.defaultKey);
    const sorted = d.ranges.map((r, ri) => ({ r, ri })).sort((a, b) => (a.r.firstLba < b.r.firstLba ? -1 : a.r.firstLba > b.r.firstLba ? 1 : 0));
    d.ranges.forEach((r, ri) => {
      const rat = `${at}.ranges[${ri}]`;
      if (r.firstLba < 0n || r.firstLba >= 1n << 64n) errs.push(`${rat}.first_lba: outside 0..2^64-1`);
      if (r.count < 1n) errs.push(`${rat}.count: must be >= 1`);
      else if (r.firstLba + r.count >= 1n << 64n) errs.push(`${rat}: first_lba + count exceeds 2^64 - 1`);
      keyIndex(`${rat}.key`, r.action, r.key);
    });
    for (let i = 1; i < sorted.length; i++) {
      const a = sorted[i - 1],
        b = sorted[i];
      if (a.r.count >= 1n && b.r.firstLba < a.r.firstLba + a.r.count) {
        errs.push(
          `${at}.ranges[${b.ri}]: sectors ${b.r.firstLba}.. overlap ${at}.ranges[${a.ri}] (sectors ${a.r.firstLba}..${a.r.firstLba + a.r.count - 1n})`,
        );
      }
    }
  });
  return errs;
}

/** Builds the binary record. Throws PolicyRecordError listing every problem. */
export function encodePolicy(p: Policy): Buffer {
  const errs = policyProblems(p);
  if (errs.length) throw new PolicyRecordError(`cannot encode the policy:\n  ${errs.join("\n  ")}`);
  const nranges = p.drives.reduce((n, d) => n + d.ranges.length, 0);
  const size = recordSize(p.keys.length, p.drives.length, nranges);
  const b = Buffer.alloc(size);
  b.write(POLICY_MAGIC, HDR.magic, "latin1");
  b.writeUInt16LE(POLICY_VERSION, HDR.version);
  b.writeUInt16LE(HEADER_SIZE, HDR.headerSize);
  b.writeUInt32LE(size, HDR.totalSize);
  b.writeUInt16LE(p.keys.length, HDR.nkeys);
  b.writeUInt16LE(p.drives.length, HDR.ndrives);
  b.writeUInt16LE(nranges, HDR.nranges);
  b.writeUInt16LE(p.allowNoIommu ? FLAG_ALLOW_NO_IOMMU : 0, HDR.flags);
  let off = HEADER_SIZE;
  for (const k of p.keys) {
    b.set(k, off);
    off += KEY_SIZE;
  }
  const rangesAt = off + DRIVE_SIZE * p.drives.length;
  let ri = 0;
  for (const d of p.drives) {
    const m = d.match;
    const t = matchTransport(m);
    b[off + DRV.match] =
      (m.pci ? MATCH_PCI : 0) |
      (m.port || m.ahciPort !== undefined ? MATCH_PORT : 0) |
      (m.serial !== undefined ? MATCH_SERIAL : 0) |
      (t ? MATCH_TRANSPORT : 0) |
      (m.nsid !== undefined ? MATCH_NSID : 0);
    if (t) b[off + DRV.transport] = TRANSPORT_CODE[t];
    if (m.pci) {
      b[off + DRV.pciBus] = m.pci.bus;
      b[off + DRV.pciDevfn] = (m.pci.dev << 3) | m.pci.fn;
    }
    if (m.port) {
      b[off + DRV.port] = m.port.channel;
      b[off + DRV.position] = m.port.position;
    } else if (m.ahciPort !== undefined) b[off + DRV.port] = m.ahciPort;
    if (m.nsid !== undefined) b.writeUInt32LE(m.nsid, off + DRV.nsid);
    b.writeUInt32LE(d.blockSize ?? DEFAULT_BLOCK_SIZE, off + DRV.blockSize);
    b[off + DRV.defaultAction] = ACTION_CODE[d.defaultAction];
    b.writeUInt16LE(d.defaultKey, off + DRV.defaultKey);
    if (m.serial !== undefined) b.write(m.serial.padEnd(SERIAL_BYTES, " "), off + DRV.serial, SERIAL_BYTES, "latin1");
    // Ranges are stored sorted by first LBA, each drive's ranges contiguous, in drive order.
    const ranges = [...d.ranges].sort((x, y) => (x.firstLba < y.firstLba ? -1 : x.firstLba > y.firstLba ? 1 : 0));
    b.writeUInt16LE(ranges.length ? ri : 0, off + DRV.firstRange);
    b.writeUInt16LE(ranges.length, off + DRV.nranges);
    for (const r of ranges) {
      const ro = rangesAt + RANGE_SIZE * ri++;
      b.writeBigUInt64LE(r.firstLba, ro + RNG.firstLba);
      b.writeBigUInt64LE(r.count, ro + RNG.count);
      b[ro + RNG.action] = ACTION_CODE[r.action];
      b.writeUInt16LE(r.key, ro + RNG.key);
    }
    off += DRIVE_SIZE;
  }
  b.writeUInt32LE(recordCrc(b), HDR.crc32);
  return b;
}

const hex = (n: number | bigint, w = 0) => `0x${n.toString(16).padStart(w, "0")}`;

function fail(msg: string): never {
  throw new PolicyRecordError(msg);
}

interface RecordHeader {
  version: number;
  nkeys: number;
  ndrives: number;
  nranges: number;
  flags: number;
}

/** The header: magic, version, sizes, CRC-32 over the whole record, counts, flags. */
function decodeHeader(b: Buffer): RecordHeader {
  if (b.length < HEADER_SIZE) fail(`record is ${b.length} bytes, shorter than its ${HEADER_SIZE}-byte header`);
  const magic = b.subarray(0, 8);
  if (!magic.equals(Buffer.from(POLICY_MAGIC, "latin1"))) {
    fail(
      `bad magic at offset 0: ${JSON.stringify(magic.toString("latin1"))} (${magic.toString("hex")}), expected "${POLICY_MAGIC}": not a Parapet policy record (a policy file is compiled into one with: parapet policy FILE -o RECORD)`,
    );
  }
  const version = b.readUInt16LE(HDR.version);
  if (version !== POLICY_VERSION && version !== POLICY_VERSION_1) {
    fail(`header.version (offset ${HDR.version}) is ${version}; this tool reads versions ${POLICY_VERSION_1} and ${POLICY_VERSION}`);
  }
  const headerSize = b.readUInt16LE(HDR.headerSize);
  if (headerSize !== HEADER_SIZE) fail(`header.header_size (offset ${HDR.headerSize}) is ${headerSize}, expected ${HEADER_SIZE}`);
  const total = b.readUInt32LE(HDR.totalSize);
  if (total > POLICY_MAX_SIZE) fail(`header.total_size (offset ${HDR.totalSize}) is ${total}, above the limit ${POLICY_MAX_SIZE}`);
  if (total !== b.length) {
    fail(
      `header.total_size (offset ${HDR.totalSize}) is ${total} but the record is ${b.length} bytes` +
        (b.length < total ? " (truncated)" : " (trailing bytes)"),
    );
  }
  const stored = b.readUInt32LE(HDR.crc32),
    computed = recordCrc(b);
  if (stored !== computed)
    fail(`header.crc32 (offset ${HDR.crc32}) is ${hex(stored, 8)} but the record's CRC-32 is ${hex(computed, 8)}: the record is corrupted`);
  const nkeys = b.readUInt16LE(HDR.nkeys),
    ndrives = b.readUInt16LE(HDR.ndrives),
    nranges = b.readUInt16LE(HDR.nranges);
  if (nkeys > POLICY_MAX_KEYS) fail(`header.nkeys (offset ${HDR.nkeys}) is ${nkeys}, above the limit ${POLICY_MAX_KEYS}`);
  if (ndrives > POLICY_MAX_DRIVES) fail(`header.ndrives (offset ${HDR.ndrives}) is ${ndrives}, above the limit ${POLICY_MAX_DRIVES}`);
  if (nranges > POLICY_MAX_RANGES) fail(`header.nranges (offset ${HDR.nranges}) is ${nranges}, above the limit ${POLICY_MAX_RANGES}`);
  const want = recordSize(nkeys, ndrives, nranges);
  if (total !== want) {
    fail(
      `header.total_size is ${total} but ${nkeys} keys, ${ndrives} drives and ${nranges} ranges take ` +
        `32 + 64*${nkeys} + 48*${ndrives} + 24*${nranges} = ${want} bytes`,
    );
  }
  const flags = b.readUInt16LE(HDR.flags);
  if (flags & ~FLAGS_ALL) {
    fail(
      `header.flags (offset ${HDR.flags}) is ${hex(flags, 4)}: unknown flag bits ${hex(flags & ~FLAGS_ALL, 4)} ` +
        `(known: ${hex(FLAG_ALLOW_NO_IOMMU, 4)} ALLOW_NO_IOMMU)`,
    );
  }
  const r1 = b.readUInt32LE(HDR.reserved1);
  if (r1 !== 0) fail(`header.reserved1 (offset ${HDR.reserved1}) is ${hex(r1)}, must be 0`);
  if (ndrives === 0) fail("header.ndrives is 0: the record names no drive");
  return { version, nkeys, ndrives, nranges, flags };
}

function actionOf(code: number, path: string, at: number): Action {
  const a = ACTIONS[code];
  if (a === undefined) fail(`${path} (offset ${at}) is ${code}, not an action (0 plain, 1 encrypt, 2 deny)`);
  return a;
}

function checkKeyIndex(nkeys: number, action: Action, key: number, path: string, at: number): void {
  if (action === "encrypt" && key >= nkeys) fail(`${path} (offset ${at}) is ${key} but the record has ${nkeys} key${nkeys === 1 ? "" : "s"}`);
  if (action !== "encrypt" && key !== 0) fail(`${path} (offset ${at}) is ${key}, must be 0 when the action is ${action}`);
}

/** The serial field at `at` (offset `o`): printable when the match uses it, zero otherwise. */
function decodeSerial(b: Buffer, o: number, used: boolean, at: string, flag: string): string | undefined {
  const serial = b.subarray(o, o + SERIAL_BYTES);
  if (used) {
    const text = serial.toString("latin1");
    if (!/^[\x20-\x7e]{20}$/.test(text)) fail(`${at}.serial (offset ${o}) holds bytes that are not printable ASCII`);
    if (text.trim() === "") fail(`${at}.serial (offset ${o}) is all spaces`);
    return text.replace(/ +$/, "");
  }
  if (serial.some((c) => c !== 0)) fail(`${at}.serial (offset ${o}) must be zero without ${flag}`);
  return undefined;
}

/** A version 1 entry's match at `off` (an IDE drive); unused fields must be zero. */
function decodeMatchV1(b: Buffer, off: number, at: string): DriveMatch {
  const flags = b[off + DRV1.match];
  if (flags & ~MATCH_ALL_V1) {
    fail(`${at}.match (offset ${off + DRV1.match}) is ${hex(flags, 2)}: unknown flag bits ${hex(flags & ~MATCH_ALL_V1, 2)} for a version 1 record`);
  }
  if (flags === 0) fail(`${at}.match (offset ${off + DRV1.match}) is 0: no criterion set`);
  const match: DriveMatch = {};
  const bus = b[off + DRV1.pciBus],
    devfn = b[off + DRV1.pciDevfn];
  if (flags & MATCH_PCI) match.pci = { bus, dev: devfn >> 3, fn: devfn & 7 };
  else if (bus || devfn) fail(`${at}.pci_bus/pci_devfn (offset ${off + DRV1.pciBus}) must be 0 without POLICY_MATCH_PCI`);
  const channel = b[off + DRV1.channel],
    position = b[off + DRV1.position];
  if (flags & MATCH_PORT) {
    if (channel > 1) fail(`${at}.channel (offset ${off + DRV1.channel}) is ${channel}, must be 0 or 1`);
    if (position > 1) fail(`${at}.position (offset ${off + DRV1.position}) is ${position}, must be 0 or 1`);
    match.port = { channel, position };
  } else if (channel || position) fail(`${at}.channel/position (offset ${off + DRV1.channel}) must be 0 without POLICY_MATCH_PORT`);
  const serial = decodeSerial(b, off + DRV1.serial, (flags & MATCH_SERIAL) !== 0, at, "POLICY_MATCH_SERIAL");
  if (serial !== undefined) match.serial = serial;
  if (!match.port) match.transport = "ide"; // version 1 named IDE drives only
  return match;
}

/** A version 2 entry's match at `off`; unused fields must be zero. */
function decodeMatchV2(b: Buffer, off: number, at: string): DriveMatch {
  const o = (f: keyof typeof DRV) => off + DRV[f];
  const flags = b[o("match")];
  if (flags & ~MATCH_ALL) fail(`${at}.match (offset ${o("match")}) is ${hex(flags, 2)}: unknown flag bits ${hex(flags & ~MATCH_ALL, 2)}`);
  if (flags === 0) fail(`${at}.match (offset ${o("match")}) is 0: no criterion set`);
  const match: DriveMatch = {};
  const code = b[o("transport")];
  let t: Transport | undefined;
  if (flags & MATCH_TRANSPORT) {
    t = TRANSPORTS[code];
    if (t === undefined) fail(`${at}.transport (offset ${o("transport")}) is ${code}, not a transport (0 IDE, 1 AHCI, 2 NVMe)`);
  } else if (code) fail(`${at}.transport (offset ${o("transport")}) is ${code}, must be 0 without POLICY_MATCH_TRANSPORT`);
  const bus = b[o("pciBus")],
    devfn = b[o("pciDevfn")];
  if (flags & MATCH_PCI) match.pci = { bus, dev: devfn >> 3, fn: devfn & 7 };
  else if (bus || devfn) fail(`${at}.pci_bus/pci_devfn (offset ${o("pciBus")}) must be 0 without POLICY_MATCH_PCI`);
  const port = b[o("port")],
    position = b[o("position")];
  if (flags & MATCH_PORT) {
    if (t === undefined) {
      fail(`${at}.match (offset ${o("match")}) has POLICY_MATCH_PORT without POLICY_MATCH_TRANSPORT: a port means nothing without its transport`);
    }
    if (t === "nvme") fail(`${at}.match (offset ${o("match")}) has POLICY_MATCH_PORT with transport NVMe: an NVMe drive is named by its namespace`);
    if (t === "ide") {
      if (port > 1) fail(`${at}.port (offset ${o("port")}) is ${port}: an IDE channel is 0 or 1`);
      if (position > 1) fail(`${at}.position (offset ${o("position")}) is ${position}: an IDE position is 0 (master) or 1 (slave)`);
      match.port = { channel: port, position };
    } else {
      if (port >= AHCI_PORTS) fail(`${at}.port (offset ${o("port")}) is ${port}: an AHCI port is 0-${AHCI_PORTS - 1}`);
      if (position) fail(`${at}.position (offset ${o("position")}) is ${position}, must be 0 for AHCI`);
      match.ahciPort = port;
    }
  } else if (port || position) fail(`${at}.port/position (offset ${o("port")}) must be 0 without POLICY_MATCH_PORT`);
  const nsid = b.readUInt32LE(o("nsid"));
  if (flags & MATCH_NSID) {
    if (t !== "nvme") fail(`${at}.match (offset ${o("match")}) has POLICY_MATCH_NSID but the transport is not NVMe`);
    if (nsid === 0 || nsid === 0xffffffff) fail(`${at}.nsid (offset ${o("nsid")}) is ${hex(nsid)}: not a namespace id (1..0xfffffffe)`);
    match.nsid = nsid;
  } else if (nsid) fail(`${at}.nsid (offset ${o("nsid")}) is ${nsid}, must be 0 without POLICY_MATCH_NSID`);
  const serial = decodeSerial(b, o("serial"), (flags & MATCH_SERIAL) !== 0, at, "POLICY_MATCH_SERIAL");
  if (serial !== undefined) match.serial = serial;
  if (t && !match.port && match.ahciPort === undefined && match.nsid === undefined) match.transport = t;
  return { ...(match.transport && { transport: match.transport }), ...match };
}

/** Range entry `ri` (of drive `at`) at offset `ro`. */
function decodeRange(b: Buffer, h: RecordHeader, ro: number, rat: string): PolicyRange {
  const firstLba = b.readBigUInt64LE(ro + RNG.firstLba),
    cnt = b.readBigUInt64LE(ro + RNG.count);
  if (cnt === 0n) fail(`${rat}.count (offset ${ro + RNG.count}) is 0, must be >= 1`);
  if (firstLba + cnt >= 1n << 64n) fail(`${rat}: first_lba ${firstLba} + count ${cnt} (offset ${ro}) exceeds 2^64 - 1`);
  const action = actionOf(b[ro + RNG.action], `${rat}.action`, ro + RNG.action);
  if (b[ro + RNG.reserved0] !== 0) fail(`${rat}.reserved0 (offset ${ro + RNG.reserved0}) is ${hex(b[ro + RNG.reserved0], 2)}, must be 0`);
  const key = b.readUInt16LE(ro + RNG.key);
  checkKeyIndex(h.nkeys, action, key, `${rat}.key`, ro + RNG.key);
  const rr1 = b.readUInt32LE(ro + RNG.reserved1);
  if (rr1 !== 0) fail(`${rat}.reserved1 (offset ${ro + RNG.reserved1}) is ${hex(rr1)}, must be 0`);
  return { firstLba, count: cnt, action, key };
}

/** Drive entry `di` at `off` with its ranges; `owner` records which drive took each range. */
function decodeDrive(b: Buffer, h: RecordHeader, di: number, off: number, rangesAt: number, owner: number[]): PolicyDrive {
  const at = `drives[${di}]`;
  const v1 = h.version === POLICY_VERSION_1;
  const L = v1 ? DRV1 : DRV;
  const match = v1 ? decodeMatchV1(b, off, at) : decodeMatchV2(b, off, at);
  let blockSize = DEFAULT_BLOCK_SIZE;
  if (!v1) {
    blockSize = b.readUInt32LE(off + DRV.blockSize);
    if (blockSize === 0) fail(`${at}.block_size (offset ${off + DRV.blockSize}) is 0: a version 2 entry states the drive's logical block size`);
    const why = blockSizeProblem(blockSize);
    if (why) fail(`${at}.block_size (offset ${off + DRV.blockSize}) is ${why}`);
  }
  const defaultAction = actionOf(b[off + L.defaultAction], `${at}.default_action`, off + L.defaultAction);
  const defaultKey = b.readUInt16LE(off + L.defaultKey);
  checkKeyIndex(h.nkeys, defaultAction, defaultKey, `${at}.default_key`, off + L.defaultKey);
  const first = b.readUInt16LE(off + L.firstRange),
    count = b.readUInt16LE(off + L.nranges);
  if (count > 0 && first + count > h.nranges) {
    fail(`${at}: ranges [${first}, ${first + count}) (offset ${off + L.firstRange}) go past the record's ${h.nranges} ranges`);
  }
  if (count === 0 && first !== 0) fail(`${at}.first_range (offset ${off + L.firstRange}) is ${first}, must be 0 when nranges is 0`);
  const reserved: [string, number, number][] = v1
    ? [["reserved", DRV1.reserved, DRIVE_SIZE]]
    : [
        ["reserved0", DRV.reserved0, DRV.reserved0 + 1],
        ["reserved1", DRV.reserved1, DRV.reserved1 + 2],
        ["reserved2", DRV.reserved2, DRIVE_SIZE],
      ];
  for (const [name, from, to] of reserved) {
    const nz = b.subarray(off + from, off + to).findIndex((c) => c !== 0);
    if (nz >= 0) fail(`${at}.${name} (offset ${off + from + nz}) is not zero`);
  }
  const ranges: PolicyRange[] = [];
  for (let ri = first; ri < first + count; ri++) {
    if (owner[ri] >= 0) fail(`ranges[${ri}] belongs to both drives[${owner[ri]}] and ${at}`);
    owner[ri] = di;
    ranges.push(decodeRange(b, h, rangesAt + RANGE_SIZE * ri, `ranges[${ri}] (of ${at})`));
  }
  const sorted = ranges.map((r, i) => ({ r, i: first + i })).sort((x, y) => (x.r.firstLba < y.r.firstLba ? -1 : x.r.firstLba > y.r.firstLba ? 1 : 0));
  for (let i = 1; i < sorted.length; i++) {
    const a = sorted[i - 1],
      c = sorted[i];
    if (c.r.firstLba < a.r.firstLba + a.r.count) {
      fail(
        `ranges[${c.i}] (sectors ${c.r.firstLba}..${c.r.firstLba + c.r.count - 1n}) overlaps ranges[${a.i}] ` +
          `(sectors ${a.r.firstLba}..${a.r.firstLba + a.r.count - 1n}), both of ${at}`,
      );
    }
  }
  return { match, ...(blockSize !== DEFAULT_BLOCK_SIZE && { blockSize }), defaultAction, defaultKey, ranges };
}

/** No two drives match alike, no two keys are the same. */
function checkUnique(drives: PolicyDrive[], keys: Uint8Array[]): void {
  const dups = new Map<string, number>();
  drives.forEach((d, i) => {
    const k = matchKey(d.match);
    const j = dups.get(k);
    if (j !== undefined) fail(`drives[${i}] matches the same drive as drives[${j}] (${describeMatch(d.match)})`);
    dups.set(k, i);
  });
  const fps = new Map<string, number>();
  keys.forEach((k, i) => {
    const j = fps.get(keyFingerprint(k));
    if (j !== undefined) fail(`keys[${i}] is the same key as keys[${j}]`);
    fps.set(keyFingerprint(k), i);
  });
}

/** The version a record says it is (the u16 at offset 8), or undefined when it is too short. */
export function recordVersion(buf: Uint8Array): number | undefined {
  return buf.length >= HDR.version + 2 ? buf[HDR.version] | (buf[HDR.version + 1] << 8) : undefined;
}

/**
 * Decodes and checks a record, version 2 or 1. Every check names what is wrong and where (field
 * path and byte offset); nothing in a message reveals key bytes.
 */
export function decodePolicy(buf: Uint8Array): Policy {
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.length);
  const h = decodeHeader(b);
  const keys: Uint8Array[] = [];
  let off = HEADER_SIZE;
  for (let i = 0; i < h.nkeys; i++, off += KEY_SIZE) {
    const k = Buffer.from(b.subarray(off, off + KEY_SIZE));
    const why = keyProblem(k);
    if (why) fail(`keys[${i}] (offset ${off}) ${why}`);
    keys.push(k);
  }
  const rangesAt = off + DRIVE_SIZE * h.ndrives;
  const owner = new Array<number>(h.nranges).fill(-1);
  const drives: PolicyDrive[] = [];
  for (let di = 0; di < h.ndrives; di++, off += DRIVE_SIZE) drives.push(decodeDrive(b, h, di, off, rangesAt, owner));
  const orphan = owner.indexOf(-1);
  if (orphan >= 0) fail(`ranges[${orphan}] belongs to no drive`);
  checkUnique(drives, keys);
  return { keys, drives, ...(h.flags & FLAG_ALLOW_NO_IOMMU ? { allowNoIommu: true } : {}) };
}

function actionText(action: Action, key: number, keys: Uint8Array[]): string {
  return action === "encrypt" ? `encrypt with key ${key} (${keyFingerprint(keys[key])})` : action;
}

export function describeDriveMatch(m: DriveMatch): string {
  const parts: string[] = [];
  const t = matchTransport(m);
  const ctrl = t ? `${TRANSPORT_NAME[t]} controller` : "controller";
  if (m.pci) parts.push(`${ctrl} at PCI ${formatPci(m.pci)}${t ? "" : " (IDE, AHCI or NVMe)"}`);
  else parts.push(`any ${ctrl}${t ? "" : " (IDE, AHCI or NVMe)"}`);
  if (m.port) {
    parts.push(
      `${m.port.channel === 0 ? "primary" : "secondary"} channel, ${m.port.position === 0 ? "master" : "slave"} ` +
        `(channel ${m.port.channel} position ${m.port.position})`,
    );
  }
  if (m.ahciPort !== undefined) parts.push(`port ${m.ahciPort}`);
  if (m.nsid !== undefined) parts.push(`namespace ${m.nsid}`);
  if (m.serial !== undefined) parts.push(`serial number '${m.serial}'`);
  else if (t && !m.port && m.ahciPort === undefined && m.nsid === undefined) parts.push("every drive");
  return parts.join(", ");
}

/** A human-readable description of a decoded record; keys appear only as fingerprints. */
export function formatPolicy(p: Policy, info?: { size: number; crc: number; version?: number }): string {
  const lines: string[] = [];
  if (info) lines.push(`Parapet policy record v${info.version ?? POLICY_VERSION}, ${info.size} bytes, crc32 ${hex(info.crc, 8)} (valid)`);
  lines.push(
    `without an IOMMU: ${
      p.allowNoIommu
        ? "allowed (the record's keys are used even where DMA isolation is absent)"
        : "refused when the record carries keys (DMA isolation required)"
    }`,
  );
  lines.push(`keys: ${p.keys.length}`);
  p.keys.forEach((k, i) => lines.push(`  key ${i}: XTS-AES-256, fingerprint ${keyFingerprint(k)}`));
  lines.push(`drives: ${p.drives.length}`);
  p.drives.forEach((d, i) => {
    lines.push(`  drive ${i}: ${describeDriveMatch(d.match)}`);
    if ((d.blockSize ?? DEFAULT_BLOCK_SIZE) !== DEFAULT_BLOCK_SIZE) {
      lines.push(`    logical block size ${d.blockSize} bytes: Parapet supports only 512, so the drive is denied entirely`);
    }
    lines.push(`    ${d.ranges.length ? "every other sector" : "every sector"}: ${actionText(d.defaultAction, d.defaultKey, p.keys)}`);
    for (const r of d.ranges) {
      lines.push(`    sectors ${r.firstLba}..${r.firstLba + r.count - 1n} (${r.count}): ${actionText(r.action, r.key, p.keys)}`);
    }
  });
  return lines.join("\n") + "\n";
}

/** The decoded record as plain JSON (fingerprints instead of keys; LBAs as decimal strings). */
export function policyToJson(p: Policy, version?: number): unknown {
  return {
    ...(version !== undefined && { version }),
    allow_no_iommu: p.allowNoIommu === true,
    keys: p.keys.map((k) => ({ fingerprint: keyFingerprint(k) })),
    drives: p.drives.map((d) => {
      const t = matchTransport(d.match);
      return {
        match: {
          ...(t ? { transport: t } : {}),
          ...(d.match.pci ? { pci: formatPci(d.match.pci) } : {}),
          ...(d.match.port ?? {}),
          ...(d.match.ahciPort !== undefined ? { port: d.match.ahciPort } : {}),
          ...(d.match.nsid !== undefined ? { nsid: d.match.nsid } : {}),
          ...(d.match.serial !== undefined ? { serial: d.match.serial } : {}),
        },
        block_size: d.blockSize ?? DEFAULT_BLOCK_SIZE,
        default: d.defaultAction,
        ...(d.defaultAction === "encrypt" ? { key: d.defaultKey } : {}),
        ranges: d.ranges.map((r) => ({
          first: r.firstLba.toString(),
          count: r.count.toString(),
          action: r.action,
          ...(r.action === "encrypt" ? { key: r.key } : {}),
        })),
      };
    }),
  };
}

/**
 * The boot disk, whatever its transport: the IDE primary master and AHCI port 0. A machine
 * boots from one of them; where it has both, both are governed by the same entry's policy.
 */
export const BOOT_DISK: readonly DriveMatch[] = [{ port: { channel: 0, position: 0 } }, { ahciPort: 0 }];

/**
 * The common policy: every sector of the named drive(s) encrypted with one key (allowNoIommu:
 * see Policy). By default the boot disk: one entry for each of BOOT_DISK.
 */
export function wholeDiskPolicy(key: Uint8Array, match: DriveMatch | readonly DriveMatch[] = BOOT_DISK, allowNoIommu = false): Policy {
  const matches = Array.isArray(match) ? match : [match as DriveMatch];
  return {
    keys: [key],
    drives: matches.map((m) => ({ match: m, defaultAction: "encrypt" as const, defaultKey: 0, ranges: [] })),
    ...(allowNoIommu && { allowNoIommu }),
  };
}
