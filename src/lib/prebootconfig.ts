// The preboot guest's configuration, /etc/parapet/preboot.json (JSON, version 1), validated
// the same way at build time on the host and at boot in the guest. Every error names the
// field, e.g.  preboot.json: drive.channel: must be 0 (primary) or 1 (secondary)
// docs/preboot.md describes the fields. Shared by the preboot app (src/preboot) and the host
// tools that build its image (src/lib/prebootimage.ts, parapet preboot site).
import { z } from "zod";
import { formatPath } from "./fieldpath.ts";
import { encodePolicy, parsePci, POLICY_MAX_SIZE, serialProblem, wholeDiskPolicy, type DriveMatch } from "./policyrecord.ts";
import { addressProblem, DEFAULT_RECORD_ADDRESS } from "./handoffpayload.ts";

export const CONFIG_PATH = "/etc/parapet/preboot.json";
export const DEFAULT_HEADER = "/etc/parapet/header.img";
export const DEFAULT_CONSOLE = "/dev/ttyS0";
export const PREBOOT_CONFIG_VERSION = 1;

export interface PrebootConfig {
  version: 1;
  /** The LUKS2 detached header inside the preboot filesystem. */
  header: string;
  /** Which disk the volume key applies to. */
  drive: DriveMatch;
  /** Wrong passphrases allowed before powering off. */
  retries: number;
  /** The console device of the passphrase dialogue. */
  console: string;
  /** Physical address of the handoff payload (the record is at +0x1000). */
  recordAddress: number;
  /**
   * The record may be used on a machine without a usable IOMMU (policy header flag
   * ALLOW_NO_IOMMU); otherwise Parapet refuses the handoff there. Default false.
   */
  allowNoIommu: boolean;
  /** Smart card (PKCS#11 token) users: asked for the PIN when an enrolled card is present. */
  token?: TokenConfig;
}

export interface TokenConfig {
  /** The PKCS#11 module (shared library) in the preboot filesystem. */
  module: string;
  /** The organisation CA certificate (PEM or DER) that the card's certificate must chain to. */
  ca: string;
  /** Only the token with this label; by default every token the module sees. */
  label?: string;
  /** Environment variables for the module, e.g. SOFTHSM2_CONF. */
  env: Record<string, string>;
}

export class PrebootConfigError extends Error {
  constructor(
    readonly file: string,
    readonly errors: string[],
  ) {
    super(errors.length === 1 ? `${file}: ${errors[0]}` : `${file}: ${errors.length} errors:\n  ${errors.join("\n  ")}`);
  }
}

const absolute = (what: string) => z.string({ error: `must be ${what} (a string)` }).startsWith("/", { error: `must be ${what} (an absolute path)` });

const Schema = z.strictObject(
  {
    version: z.literal(PREBOOT_CONFIG_VERSION, { error: `must be ${PREBOOT_CONFIG_VERSION} (the preboot config format this tool reads)` }),
    header: absolute("the path of the LUKS2 detached header").default(DEFAULT_HEADER),
    drive: z
      .strictObject(
        {
          transport: z.enum(["ide", "ahci"], { error: 'must be "ide" or "ahci"' }).default("ide"),
          channel: z.union([z.literal(0), z.literal(1)], { error: "must be 0 (primary) or 1 (secondary)" }).optional(),
          position: z.union([z.literal(0), z.literal(1)], { error: "must be 0 (master) or 1 (slave)" }).optional(),
          port: z
            .number({ error: "must be an AHCI port, 0-31" })
            .int({ error: "must be an AHCI port, 0-31" })
            .min(0, { error: "must be an AHCI port, 0-31" })
            .max(31, { error: "must be an AHCI port, 0-31" })
            .optional(),
          serial: z.string({ error: "must be the drive's serial number (a string)" }).optional(),
          pci: z.string({ error: 'must be the controller\'s PCI address "BB:DD.F" (a string)' }).optional(),
        },
        { error: "must be a map with transport, channel and position (IDE) or port (AHCI), and optionally serial, pci" },
      )
      .default({ transport: "ide" }),
    retries: z
      .number({ error: "must be a whole number from 1 to 10" })
      .int({ error: "must be a whole number from 1 to 10" })
      .min(1, { error: "must be at least 1" })
      .max(10, { error: "must be at most 10" })
      .default(3),
    console: absolute("the console device").default(DEFAULT_CONSOLE),
    recordAddress: z
      .union([z.number(), z.string().regex(/^0x[0-9a-f]+$/i)], {
        error: 'must be a physical address: a number, or a hexadecimal string "0x1000000"',
      })
      .default(DEFAULT_RECORD_ADDRESS),
    allowNoIommu: z.boolean({ error: "must be true or false (may the key be used on a machine without an IOMMU?)" }).default(false),
    token: z
      .strictObject(
        {
          module: absolute("the PKCS#11 module"),
          ca: absolute("the organisation CA certificate"),
          label: z
            .string({ error: "must be the token label (a string)" })
            .regex(/^[^\x00-\x1f]{1,32}$/, { error: "must be the token label: 1 to 32 printable characters" })
            .optional(),
          env: z
            .record(z.string(), z.string({ error: "must be the variable's value (a string)" }), {
              error: "must be a map of environment variables to values",
            })
            .default({}),
        },
        { error: "must be a map with module, ca and optionally label, env" },
      )
      .optional(),
  },
  { error: "must be a JSON object" },
);

/** Validates parsed JSON; `file` names the config in errors. */
export function validateConfig(value: unknown, file = "preboot.json"): PrebootConfig {
  const r = Schema.safeParse(value);
  if (!r.success) {
    const errors = r.error.issues.map((i) => {
      const where = formatPath(i.path);
      if (i.code === "unrecognized_keys") {
        return i.keys.map((k) => `${formatPath([...i.path, k])}: unknown field`).join("; ");
      }
      return `${where}: ${i.message}`;
    });
    throw new PrebootConfigError(file, errors);
  }
  const c = r.data;
  const errors: string[] = [];
  const d = c.drive;
  const drive: DriveMatch =
    d.transport === "ahci" ? { transport: "ahci", ahciPort: d.port ?? 0 } : { port: { channel: d.channel ?? 0, position: d.position ?? 0 } };
  if (d.transport === "ahci" && (d.channel !== undefined || d.position !== undefined))
    errors.push(`drive.${d.channel !== undefined ? "channel" : "position"}: an IDE field; this drive is on AHCI (drive.port)`);
  if (d.transport === "ide" && d.port !== undefined) errors.push('drive.port: an AHCI port; say drive.transport: "ahci"');
  if (c.drive.serial !== undefined) {
    const why = serialProblem(c.drive.serial);
    if (why) errors.push(`drive.serial: ${why}`);
    else drive.serial = c.drive.serial;
  }
  if (c.drive.pci !== undefined) {
    try {
      drive.pci = parsePci(c.drive.pci);
    } catch (e) {
      errors.push(`drive.pci: ${(e as Error).message}`);
    }
  }
  for (const name of Object.keys(c.token?.env ?? {})) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name))
      errors.push(`${formatPath(["token", "env", name])}: not an environment variable name (letters, digits and _, not first a digit)`);
  }
  const address = typeof c.recordAddress === "string" ? parseInt(c.recordAddress.slice(2), 16) : c.recordAddress;
  const why = addressProblem(address, POLICY_MAX_SIZE); // room for the largest record
  if (why) errors.push(`recordAddress: ${why}`);
  if (errors.length) throw new PrebootConfigError(file, errors);
  const config: PrebootConfig = {
    version: 1,
    header: c.header,
    drive,
    retries: c.retries,
    console: c.console,
    recordAddress: address,
    allowNoIommu: c.allowNoIommu,
  };
  if (c.token)
    config.token = { module: c.token.module, ca: c.token.ca, env: c.token.env, ...(c.token.label !== undefined && { label: c.token.label }) };
  return config;
}

/** Parses and validates the config's text. */
export function parseConfig(text: string, file = "preboot.json"): PrebootConfig {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new PrebootConfigError(file, [`not valid JSON: ${(e as Error).message}`]);
  }
  return validateConfig(value, file);
}

/**
 * The binary policy record: the whole configured drive encrypted with the volume key; with the
 * config's allowNoIommu, usable on a machine without an IOMMU too (header flag ALLOW_NO_IOMMU).
 */
export function compileRecord(key: Uint8Array, config: Pick<PrebootConfig, "drive" | "allowNoIommu">): Buffer {
  return encodePolicy(wholeDiskPolicy(key, config.drive, config.allowNoIommu));
}
