// The human-edited storage policy file (YAML; JSON is YAML too) and its compilation into a
// Policy for the binary record. docs/policy.md describes the format. Every error names the
// file, the line and column, and the field path, e.g.
//   policy.yaml:14:16: drives[0].ranges[2].count: must be >= 1
import { readFile, stat } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { isMap, isSeq, LineCounter, parseDocument, type Document } from "yaml";
import { z } from "zod";
import {
  AHCI_PORTS,
  DEFAULT_BLOCK_SIZE,
  matchKey,
  POLICY_MAX_DRIVES,
  POLICY_MAX_KEYS,
  POLICY_MAX_RANGES,
  parsePci,
  serialProblem,
  type Action,
  type DriveMatch,
  type Policy,
  type PolicyDrive,
  type PolicyRange,
} from "./policyrecord.ts";
import { keyFingerprint, keyProblem, KEY_BYTES } from "./xts.ts";
import { formatPath, type Path } from "./fieldpath.ts";

/** Highest LBA + 1 that 48-bit ATA addressing reaches: ranges must end at or below it. */
export const MAX_LBA = 2 ** 48;
export const POLICY_FILE_VERSION = 1;

export class PolicyFileError extends Error {
  constructor(
    readonly file: string,
    readonly errors: string[],
  ) {
    super(`${file}: ${errors.length} error${errors.length === 1 ? "" : "s"}:\n  ${errors.join("\n  ")}`);
  }
}

export interface CompiledPolicy {
  policy: Policy;
  /** Key names in record order (index i of policy.keys is keyNames[i]). */
  keyNames: string[];
  warnings: string[];
}

// ---- schema (shape and types; meaning is checked afterwards) ----

const lba = (what: string) =>
  z
    .number({ error: `must be a whole number (${what})` })
    .int({ error: `must be a whole number (${what})` })
    .min(0, { error: "must be >= 0" })
    .max(MAX_LBA, { error: `must be <= ${MAX_LBA} (2^48, the end of 48-bit LBA addressing)` });

const ActionSchema = z.enum(["plain", "encrypt", "deny"], { error: "must be plain, encrypt or deny" });
const KeyRef = z.string({ error: "must be a key name (a string)" });

const RangeSchema = z.strictObject({
  first: lba("the first sector of the range"),
  count: z
    .number({ error: "must be a whole number of sectors" })
    .int({ error: "must be a whole number of sectors" })
    .min(1, { error: "must be >= 1" })
    .max(MAX_LBA, { error: `must be <= ${MAX_LBA}` })
    .optional(),
  end: lba("the first sector after the range").optional(),
  last: lba("the last sector of the range").optional(),
  action: ActionSchema,
  key: KeyRef.optional(),
});

const MatchSchema = z.strictObject({
  transport: z.enum(["ide", "ahci", "nvme"], { error: "must be ide, ahci or nvme" }).optional(),
  pci: z.string({ error: 'must be a PCI address "BB:DD.F" (a string)' }).optional(),
  channel: z.union([z.literal(0), z.literal(1), z.enum(["primary", "secondary"])], { error: "must be 0, 1, primary or secondary" }).optional(),
  position: z.union([z.literal(0), z.literal(1), z.enum(["master", "slave"])], { error: "must be 0, 1, master or slave" }).optional(),
  port: z
    .number({ error: `must be an AHCI port number, 0 to ${AHCI_PORTS - 1}` })
    .int({ error: `must be an AHCI port number, 0 to ${AHCI_PORTS - 1}` })
    .min(0, { error: `must be an AHCI port number, 0 to ${AHCI_PORTS - 1}` })
    .max(AHCI_PORTS - 1, { error: `must be an AHCI port number, 0 to ${AHCI_PORTS - 1}` })
    .optional(),
  nsid: z
    .number({ error: "must be an NVMe namespace id, 1 to 4294967294" })
    .int({ error: "must be an NVMe namespace id, 1 to 4294967294" })
    .min(1, { error: "must be an NVMe namespace id, 1 to 4294967294" })
    .max(0xfffffffe, { error: "must be an NVMe namespace id, 1 to 4294967294" })
    .optional(),
  serial: z.string({ error: "must be a string (quote it)" }).optional(),
});

const DriveSchema = z.strictObject({
  name: z.string({ error: "must be a string" }).optional(),
  match: MatchSchema,
  block_size: z
    .union([z.literal(512), z.literal(1024), z.literal(2048), z.literal(4096)], {
      error: "must be 512, 1024, 2048 or 4096 (the drive's logical block size in bytes)",
    })
    .optional(),
  default: ActionSchema,
  key: KeyRef.optional(),
  ranges: z.array(RangeSchema, { error: "must be a list of ranges" }).optional(),
});

const FileSchema = z.strictObject({
  version: z.literal(POLICY_FILE_VERSION, { error: `must be ${POLICY_FILE_VERSION} (the policy file format this tool reads)` }),
  allow_no_iommu: z.boolean({ error: "must be true or false (may the keys be used on a machine without an IOMMU?)" }).optional(),
  keys: z
    .record(z.string(), z.string({ error: "must be the path of a key file (a string)" }), { error: "must be a map of key name: key file" })
    .optional(),
  drives: z
    .array(DriveSchema, { error: "must be a list of drives" })
    .min(1, { error: "must list at least one drive" })
    .max(POLICY_MAX_DRIVES, { error: `at most ${POLICY_MAX_DRIVES} drives` }),
});

type FileShape = z.infer<typeof FileSchema>;

function valueAt(root: unknown, path: Path): unknown {
  let v = root;
  for (const p of path) {
    if (v === null || typeof v !== "object") return undefined;
    v = (v as Record<PropertyKey, unknown>)[p as string];
  }
  return v;
}

function typeName(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "a list";
  if (typeof v === "object") return "a map";
  if (typeof v === "string") return `the string ${JSON.stringify(v)}`;
  return `${typeof v} ${String(v)}`;
}

const KEY_NAME = /^[A-Za-z_][A-Za-z0-9_-]*$/;

/** Parses, validates and compiles a policy file; reads the key files it names. */
export async function compilePolicyFile(file: string, shownName = file): Promise<CompiledPolicy> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new PolicyFileError(shownName, [`${shownName}: cannot read: ${code === "ENOENT" ? "no such file" : (code ?? (e as Error).message)}`]);
  }
  return compilePolicyText(text, shownName, dirname(resolve(file)));
}

/** As compilePolicyFile, from text; key paths are relative to `baseDir`. */
export async function compilePolicyText(text: string, shownName: string, baseDir: string): Promise<CompiledPolicy> {
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, uniqueKeys: true, prettyErrors: false });
  const where = (offset: number | undefined) => {
    if (offset === undefined) return shownName;
    const p = lc.linePos(offset);
    return `${shownName}:${p.line}:${p.col}`;
  };
  if (doc.errors.length) {
    throw new PolicyFileError(
      shownName,
      doc.errors.map((e) => `${where(e.pos[0])}: YAML syntax: ${e.message.split("\n")[0].replace(/ at line \d+, column \d+:?$/, "")}`),
    );
  }
  const data: unknown = doc.toJS({ maxAliasCount: 100 });
  const errors: string[] = [];
  const at = (path: Path, msg: string, keyOf?: string) =>
    errors.push(`${where(locate(doc, path, keyOf))}: ${formatPath(keyOf ? [...path, keyOf] : path)}: ${msg}`);

  if (data === null || typeof data !== "object" || Array.isArray(data)) {
    throw new PolicyFileError(shownName, [`${shownName}: the file must be a map with version, keys and drives (see docs/policy.md)`]);
  }
  const parsed = FileSchema.safeParse(data);
  if (!parsed.success) {
    for (const iss of parsed.error.issues) {
      if (iss.code === "unrecognized_keys") {
        for (const k of iss.keys) at(iss.path, "unknown field", k);
        continue;
      }
      const v = valueAt(data, iss.path);
      if (v === undefined && iss.path.length) at(iss.path, "is required");
      else if (iss.code === "invalid_type" && !/^must /.test(iss.message)) at(iss.path, `must be ${iss.expected}, not ${typeName(v)}`);
      else at(iss.path, iss.message);
    }
    throw new PolicyFileError(shownName, byPosition(errors));
  }
  return await compileChecked(parsed.data, baseDir, at, shownName, errors);
}

/** Sorts "file:line:col: ..." messages by line and column (stable otherwise). */
function byPosition(errors: string[]): string[] {
  const pos = (e: string) => {
    const m = /^.*?:(\d+):(\d+): /.exec(e);
    return m ? Number(m[1]) * 1e6 + Number(m[2]) : 0;
  };
  return errors
    .map((e, i) => ({ e, i, p: pos(e) }))
    .sort((a, b) => a.p - b.p || a.i - b.i)
    .map((x) => x.e);
}

/** Where to point for a path: the node itself, or the deepest existing parent. */
function locate(doc: Document, path: Path, keyOf?: string): number | undefined {
  let node: unknown = doc.contents;
  let offset: number | undefined = (doc.contents as { range?: number[] } | null)?.range?.[0];
  const steps = keyOf !== undefined ? [...path, keyOf] : [...path];
  for (let i = 0; i < steps.length; i++) {
    const p = steps[i];
    if (isMap(node)) {
      const pair = node.items.find((it) => (it.key as { value?: unknown } | null)?.value === p);
      if (!pair) break;
      const last = i === steps.length - 1 && keyOf !== undefined;
      const target = (last ? pair.key : (pair.value ?? pair.key)) as { range?: number[] } | null;
      offset = target?.range?.[0] ?? offset;
      node = pair.value;
    } else if (isSeq(node) && typeof p === "number") {
      const item = node.items[p] as { range?: number[] } | undefined;
      if (!item) break;
      offset = item.range?.[0] ?? offset;
      node = item;
    } else break;
  }
  return offset;
}

type At = (path: Path, msg: string, keyOf?: string) => void;

/** The key files the policy names, read and checked: sizes, halves, duplicates, permissions. */
async function readKeys(f: FileShape, baseDir: string, at: At, shownName: string, warnings: string[]): Promise<Map<string, Buffer>> {
  const keyDefs = Object.entries(f.keys ?? {});
  if (keyDefs.length > POLICY_MAX_KEYS) at(["keys"], `${keyDefs.length} keys, at most ${POLICY_MAX_KEYS}`);
  const keyBytes = new Map<string, Buffer>();
  const byFingerprint = new Map<string, string>();
  for (const [name, rel] of keyDefs) {
    if (!KEY_NAME.test(name)) {
      at(["keys"], "key names are letters, digits, _ and -, starting with a letter or _", name);
      continue;
    }
    const buf = await readKey(resolve(baseDir, rel), rel, name, at, shownName, warnings);
    if (!buf) continue;
    const fp = keyFingerprint(buf);
    const same = byFingerprint.get(fp);
    if (same !== undefined) at(["keys", name], `key file ${rel} holds the same key as keys.${same}`);
    byFingerprint.set(fp, name);
    keyBytes.set(name, buf);
  }
  return keyBytes;
}

/** One key file: a regular file of KEY_BYTES bytes whose halves differ, or undefined after saying why not. */
async function readKey(file: string, rel: string, name: string, at: At, shownName: string, warnings: string[]): Promise<Buffer | undefined> {
  let buf: Buffer;
  try {
    const st = await stat(file);
    if (!st.isFile()) {
      at(["keys", name], `${rel} is not a regular file`);
      return undefined;
    }
    if (st.size !== KEY_BYTES) {
      at(["keys", name], `key file ${rel} is ${st.size} bytes, expected exactly ${KEY_BYTES} (make one with: parapet keygen -o ${rel})`);
      return undefined;
    }
    if (st.mode & 0o077) warnings.push(`${shownName}: keys.${name}: key file ${rel} is accessible to group or others (chmod 600 ${rel})`);
    buf = await readFile(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    at(["keys", name], `cannot read key file ${rel}: ${code === "ENOENT" ? "no such file" : (code ?? (e as Error).message)}`);
    return undefined;
  }
  const why = keyProblem(buf);
  if (why) {
    at(["keys", name], `key file ${rel} ${why}`);
    return undefined;
  }
  return buf;
}

/** Checks an action's key field against the keys defined, and remembers which keys are used. */
type KeyCheck = (path: Path, action: Action, key: string | undefined, where: string) => void;

function keyChecker(defined: string[], used: Set<string>, at: At): KeyCheck {
  return (path, action, key, where) => {
    if (action === "encrypt") {
      if (key === undefined) {
        at(path, `is required when ${where} is encrypt`, "key");
        return;
      }
      if (!defined.includes(key)) {
        at([...path, "key"], `unknown key '${key}' (${defined.length ? `defined: ${defined.join(", ")}` : "the file defines no keys"})`);
        return;
      }
      used.add(key);
    } else if (key !== undefined) {
      at([...path, "key"], `only allowed when ${where} is encrypt (it is ${action})`);
    }
  };
}

type DriveShape = FileShape["drives"][number];
type RangeShape = NonNullable<DriveShape["ranges"]>[number];
interface RangeEntry {
  r: Omit<PolicyRange, "key">;
  key?: string;
  idx: number;
}

/**
 * The drive a match names: a transport; a PCI address; a port (IDE: channel and position
 * together; AHCI: port, with transport: ahci); an NVMe namespace (nsid, with transport: nvme);
 * a serial number.
 */
function driveMatch(m: DriveShape["match"], dp: Path, at: At): DriveMatch {
  const match: DriveMatch = {};
  const mp: Path = [...dp, "match"];
  const t = m.transport;
  if (m.pci !== undefined) {
    try {
      match.pci = parsePci(m.pci);
    } catch (e) {
      at([...mp, "pci"], (e as Error).message);
    }
  }
  const ide = m.channel !== undefined || m.position !== undefined;
  if (ide && t !== undefined && t !== "ide") {
    at([...mp, "transport"], `is ${t}, but channel and position name an IDE drive (an AHCI drive is named by port, an NVMe one by nsid)`);
  } else if ((m.channel === undefined) !== (m.position === undefined)) {
    const [missing, given] = m.channel === undefined ? ["channel", "position"] : ["position", "channel"];
    at(mp, `is required with ${given} (a drive's port is its channel and its position)`, missing);
  } else if (m.channel !== undefined && m.position !== undefined) {
    match.port = {
      channel: m.channel === "primary" ? 0 : m.channel === "secondary" ? 1 : m.channel,
      position: m.position === "master" ? 0 : m.position === "slave" ? 1 : m.position,
    };
  }
  if (m.port !== undefined) {
    if (t === undefined) at([...mp, "port"], "is an AHCI port: give transport: ahci with it (an IDE drive is named by channel and position)");
    else if (t !== "ahci") at([...mp, "port"], `is an AHCI port, but transport is ${t}`);
    else if (!ide) match.ahciPort = m.port;
  }
  if (m.nsid !== undefined) {
    if (t !== "nvme") at([...mp, "nsid"], `is an NVMe namespace: give transport: nvme with it${t ? ` (transport is ${t})` : ""}`);
    else match.nsid = m.nsid;
  }
  if (t !== undefined && !match.port && match.ahciPort === undefined && match.nsid === undefined && !ide && m.port === undefined) {
    match.transport = t;
  }
  if (m.serial !== undefined) {
    const why = serialProblem(m.serial);
    if (why) at([...mp, "serial"], why);
    else match.serial = m.serial;
  }
  if ([m.transport, m.pci, m.channel, m.position, m.port, m.nsid, m.serial].every((v) => v === undefined)) {
    at(mp, "names no drive: give transport, pci, channel and position (IDE), port (AHCI), nsid (NVMe), and/or serial");
  }
  return match;
}

/** A range's sector count from exactly one of count, end (exclusive) and last (inclusive). */
function rangeCount(r: RangeShape, rp: Path, at: At): number | undefined {
  const given = (["count", "end", "last"] as const).filter((k) => r[k] !== undefined);
  let count: number | undefined;
  if (given.length !== 1) {
    at(
      rp,
      given.length
        ? `give only one of count, end and last (found ${given.join(" and ")})`
        : "needs its size: count, end (exclusive) or last (inclusive)",
    );
  } else if (r.count !== undefined) count = r.count;
  else if (r.end !== undefined) {
    if (r.end <= r.first) at([...rp, "end"], `must be > first (${r.first}); end is the first sector after the range`);
    else count = r.end - r.first;
  } else if (r.last !== undefined) {
    if (r.last < r.first) at([...rp, "last"], `must be >= first (${r.first}); last is the last sector of the range`);
    else if (r.last >= MAX_LBA) at([...rp, "last"], `must be < ${MAX_LBA} (2^48)`);
    else count = r.last - r.first + 1;
  }
  if (count !== undefined && r.first + count > MAX_LBA) {
    at(rp, `sectors ${r.first}..${r.first + count - 1} go past 2^48, the end of 48-bit LBA addressing`);
    count = undefined;
  }
  return count;
}

/** A drive's ranges, each checked; overlaps reported with both ranges' field paths. */
function driveRanges(d: DriveShape, dp: Path, at: At, keyFor: KeyCheck): RangeEntry[] {
  const ranges: RangeEntry[] = [];
  (d.ranges ?? []).forEach((r, ri) => {
    const rp: Path = [...dp, "ranges", ri];
    const count = rangeCount(r, rp, at);
    keyFor(rp, r.action, r.key, "action");
    if (count !== undefined) ranges.push({ r: { firstLba: BigInt(r.first), count: BigInt(count), action: r.action }, key: r.key, idx: ri });
  });
  const sorted = [...ranges].sort((a, b) => (a.r.firstLba < b.r.firstLba ? -1 : a.r.firstLba > b.r.firstLba ? 1 : 0));
  for (let i = 1; i < sorted.length; i++) {
    const a = sorted[i - 1],
      b = sorted[i];
    if (b.r.firstLba < a.r.firstLba + a.r.count) {
      at(
        [...dp, "ranges", b.idx],
        `sectors ${b.r.firstLba}..${b.r.firstLba + b.r.count - 1n} overlap ` +
          `${formatPath([...dp, "ranges", a.idx])} (sectors ${a.r.firstLba}..${a.r.firstLba + a.r.count - 1n})`,
      );
    }
  }
  return ranges;
}

interface DriveEntry {
  d: Omit<PolicyDrive, "defaultKey" | "ranges">;
  defaultKey?: string;
  ranges: RangeEntry[];
}

/** Every drive checked: its match (no two alike), default action, ranges; at most POLICY_MAX_RANGES in all. */
function compileDrives(f: FileShape, at: At, errors: string[], keyFor: KeyCheck): DriveEntry[] {
  const drives: DriveEntry[] = [];
  const seenMatch = new Map<string, number>();
  let totalRanges = 0;
  f.drives.forEach((d, di) => {
    const dp: Path = ["drives", di];
    const errorsBefore = errors.length;
    const match = driveMatch(d.match, dp, at);
    const mk = matchKey(match);
    const prev = seenMatch.get(mk);
    if (errors.length > errorsBefore) {
      // a match with errors cannot be compared
    } else if (prev !== undefined) {
      at([...dp, "match"], `matches the same drive as drives[${prev}]${f.drives[prev].name ? ` (${f.drives[prev].name})` : ""}`);
    } else seenMatch.set(mk, di);
    keyFor(dp, d.default, d.key, "default");
    const ranges = driveRanges(d, dp, at, keyFor);
    totalRanges += (d.ranges ?? []).length;
    const blockSize = d.block_size ?? DEFAULT_BLOCK_SIZE;
    drives.push({ d: { match, ...(blockSize !== DEFAULT_BLOCK_SIZE && { blockSize }), defaultAction: d.default }, defaultKey: d.key, ranges });
  });
  if (totalRanges > POLICY_MAX_RANGES) at(["drives"], `${totalRanges} ranges in all, at most ${POLICY_MAX_RANGES}`);
  return drives;
}

async function compileChecked(f: FileShape, baseDir: string, at: At, shownName: string, errors: string[]): Promise<CompiledPolicy> {
  const warnings: string[] = [];
  const keyBytes = await readKeys(f, baseDir, at, shownName, warnings);
  const defined = Object.keys(f.keys ?? {});
  const used = new Set<string>();
  const drives = compileDrives(f, at, errors, keyChecker(defined, used, at));
  if (errors.length) throw new PolicyFileError(shownName, byPosition(errors));

  // Only keys that something uses go into the record, in the order the file defines them.
  const keyNames = defined.filter((n) => used.has(n));
  for (const n of defined) if (!used.has(n)) warnings.push(`${shownName}: keys.${n}: defined but not used; it is left out of the record`);
  f.drives.forEach((d, di) => {
    if (d.block_size !== undefined && d.block_size !== DEFAULT_BLOCK_SIZE) {
      warnings.push(
        `${shownName}: drives[${di}].block_size: ${d.block_size}: Parapet protects only drives of 512-byte logical blocks today; ` +
          "a drive this entry names is denied entirely",
      );
    }
  });
  const index = (name: string | undefined) => (name === undefined ? 0 : keyNames.indexOf(name));
  if (f.allow_no_iommu && keyNames.length === 0) {
    warnings.push(`${shownName}: allow_no_iommu: has no effect, the record carries no keys`);
  }
  const policy: Policy = {
    ...(f.allow_no_iommu && { allowNoIommu: true }),
    keys: keyNames.map((n) => keyBytes.get(n)!),
    drives: drives.map(({ d, defaultKey, ranges }) => ({
      ...d,
      defaultKey: d.defaultAction === "encrypt" ? index(defaultKey) : 0,
      ranges: ranges.map(({ r, key }) => ({ ...r, key: r.action === "encrypt" ? index(key) : 0 })),
    })),
  };
  return { policy, keyNames, warnings };
}
