// Test fixtures for PKCS#11 token users on SoftHSM2 software tokens (tests/token.test.ts,
// tests/preboot.test.ts, tests/twostep.test.ts): an organisation CA, a token store of its own, and tokens holding an
// RSA key pair generated on the token with a certificate the CA issued for it.
// Needs softhsm2, opensc (pkcs11-tool) and openssl on the host.
import { execFileSync } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { Pbkdf } from "../src/lib/luks.ts";
import { readSiteFiles, type SiteFile } from "../src/lib/prebootimage.ts";
import { enrolToken } from "../src/lib/token.ts";

export const MODULE = "/usr/lib/softhsm/libsofthsm2.so";
export const SO_PIN = "87654321";

export function sh(cmd: string, args: string[], input?: Uint8Array): Buffer {
  return execFileSync(cmd, args, { input, stdio: [input ? "pipe" : "ignore", "pipe", "pipe"] });
}

export interface Ca {
  dir: string;
  pem: string;
  key: string;
  cert: X509Certificate;
}

/** An organisation CA: a self-signed RSA certificate with basicConstraints CA:TRUE. */
export function makeCa(dir: string, name: string): Ca {
  const pem = join(dir, `${name}.pem`),
    key = join(dir, `${name}.key`);
  sh("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", pem, "-subj", `/CN=${name}`, "-days", "30"]);
  return { dir, pem, key, cert: new X509Certificate(execFileSync("cat", [pem])) };
}

/** A softhsm2.conf whose tokens live in `tokendir`. */
export function softhsmConf(tokendir: string): string {
  return `directories.tokendir = ${tokendir}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n`;
}

/**
 * A SoftHSM2 store of its own in `dir` (SOFTHSM2_CONF, inherited by pkcs11-tool and the CLI);
 * returns its token directory.
 */
export async function makeStore(dir: string): Promise<string> {
  const tokens = join(dir, "tokens");
  sh("mkdir", ["-p", tokens]);
  const conf = join(dir, "softhsm2.conf");
  await writeFile(conf, softhsmConf(tokens));
  process.env.SOFTHSM2_CONF = conf;
  return tokens;
}

/**
 * A token labelled `label` with PIN `pin`, an RSA key pair generated on it (id `keyId`) and
 * a certificate for its public key issued by `ca` (the key never leaves the token).
 */
export function makeToken(label: string, pin: string, ca: Ca, opts: { keyId?: string; bits?: number } = {}): Buffer {
  const keyId = opts.keyId ?? "01";
  const p11 = (...args: string[]) => sh("pkcs11-tool", ["--module", MODULE, "--token-label", label, ...args]);
  sh("softhsm2-util", ["--init-token", "--free", "--label", label, "--pin", pin, "--so-pin", SO_PIN]);
  p11("--login", "--pin", pin, "--keypairgen", "--key-type", `rsa:${opts.bits ?? 2048}`, "--id", keyId, "--label", `${label}-key`, "--usage-decrypt");
  const pubDer = join(ca.dir, `${label}.pub.der`),
    pubPem = join(ca.dir, `${label}.pub.pem`),
    certDer = join(ca.dir, `${label}.crt.der`);
  p11("--read-object", "--type", "pubkey", "--id", keyId, "-o", pubDer);
  sh("openssl", ["pkey", "-pubin", "-inform", "DER", "-in", pubDer, "-out", pubPem]);
  sh("openssl", [
    "x509",
    "-new",
    "-force_pubkey",
    pubPem,
    "-subj",
    `/CN=${label}`,
    "-CA",
    ca.pem,
    "-CAkey",
    ca.key,
    "-days",
    "30",
    "-outform",
    "DER",
    "-out",
    certDer,
  ]);
  p11("--login", "--pin", pin, "--write-object", certDer, "--type", "cert", "--id", keyId, "--label", `${label}-cert`);
  return execFileSync("cat", [certDer]);
}

/** Where a site archive puts the organisation CA and the SoftHSM2 store in the preboot guest. */
export const GUEST_CA = "/etc/parapet/ca.pem";
export const GUEST_SOFTHSM = "/etc/parapet/softhsm";
/** A preboot config with a SoftHSM2 token user (the store comes in the site archive). */
export const TOKEN_CONFIG = {
  version: 1,
  token: { module: MODULE, ca: GUEST_CA, env: { SOFTHSM2_CONF: `${GUEST_SOFTHSM}/softhsm2.conf` } },
};

/**
 * A SoftHSM2 token "carol" (PIN `pin`) with a CA-issued certificate, enrolled as a user of
 * `header` (unlocked with `existing`); returns the site files that carry the CA and the store
 * into the preboot guest. SOFTHSM2_CONF is as before afterwards.
 */
export async function tokenUser(o: {
  header: string;
  image: string;
  existing: Buffer;
  pin: string;
  workDir: string;
  pbkdf?: Pbkdf;
}): Promise<SiteFile[]> {
  const saved = process.env.SOFTHSM2_CONF;
  const dir = await mkdtemp(join(o.workDir, "token-"));
  try {
    const tokens = await makeStore(dir);
    const ca = makeCa(dir, "org-ca");
    makeToken("carol", o.pin, ca);
    await enrolToken({
      header: o.header,
      image: o.image,
      existing: o.existing,
      module: MODULE,
      tokenLabel: "carol",
      keyId: "01",
      ca: ca.cert,
      pbkdf: o.pbkdf,
    });
    return [
      ...(await readSiteFiles([
        { host: ca.pem, guest: GUEST_CA },
        { host: tokens, guest: `${GUEST_SOFTHSM}/tokens` },
      ])),
      { path: `${GUEST_SOFTHSM}/softhsm2.conf`, data: softhsmConf(`${GUEST_SOFTHSM}/tokens`) },
    ];
  } finally {
    if (saved === undefined) delete process.env.SOFTHSM2_CONF;
    else process.env.SOFTHSM2_CONF = saved;
    await rm(dir, { recursive: true, force: true }); // the store is in the returned files now
  }
}
