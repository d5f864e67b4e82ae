// PKCS#11 tokens (smart cards) as LUKS users, the second kind of user of the two-step boot.
//
// A token user is a LUKS2 keyslot whose passphrase is a random 64-byte secret, plus a LUKS2
// token (JSON in the header, type "parapet-pkcs11") that holds the secret encrypted with
// RSA-OAEP to the public key of the user's certificate. Only the token, after a login with the
// user's PIN, can decrypt it: its private key never leaves the token. The certificate is
// checked against the organisation's CA when the user is enrolled and again at every unlock.
//
// Host tools: Debian's cryptsetup (cryptsetup-bin) and pkcs11-tool (opensc) with the token's
// PKCS#11 module (e.g. SoftHSM2's libsofthsm2.so, or opensc-pkcs11.so for a smart card).
// Also used by the preboot guest (Node.js 18): nothing here needs a newer Node.
import { constants as cryptoConstants, createHash, publicEncrypt, randomBytes, timingSafeEqual, X509Certificate } from "node:crypto";
import { readFile } from "node:fs/promises";
import { run, runText } from "./exec.ts";
import { luksAddPassphrase, LuksRefusal, volumeKey, type Pbkdf } from "./luks.ts";

/** The LUKS2 token type Parapet writes; cryptsetup keeps tokens of unknown types as they are. */
export const TOKEN_TYPE = "parapet-pkcs11";
/** Bytes of the random keyslot secret a token user unlocks. */
export const TOKEN_SECRET_BYTES = 64;
/** Smallest RSA modulus accepted in a token user's certificate. */
export const MIN_RSA_BITS = 2048;
/** LUKS2 allows token ids 0..31. */
const MAX_TOKENS = 32;
/** The environment variable that hands the PIN to pkcs11-tool (`--pin env:NAME`), never its argv. */
const PIN_VARIABLE = "PARAPET_PKCS11_PIN";

/**
 * The OAEP hash (and MGF1 hash) of the wrapped secret. SoftHSM2 2.6 and most smart cards
 * decrypt RSA-OAEP with SHA-1 only, so that is the default; OAEP's security does not rest on
 * the hash's collision resistance.
 */
export type OaepHash = "sha1" | "sha256";
const P11_HASH: Record<OaepHash, { hash: string; mgf: string }> = {
  sha1: { hash: "SHA-1", mgf: "MGF1-SHA1" },
  sha256: { hash: "SHA256", mgf: "MGF1-SHA256" },
};

/** A parapet-pkcs11 token from a LUKS2 header. */
export interface TokenEntry {
  /** LUKS2 token id. */
  id: number;
  /** The keyslots it unlocks: one, or none after the keyslot was killed. */
  keyslots: number[];
  /** The user's certificate, DER. */
  certificate: Buffer;
  /** CKA_ID of the key and certificate on the token, lowercase hex. */
  keyId: string;
  /** The token's label at enrolment. */
  tokenLabel: string;
  oaepHash: OaepHash;
  /** The keyslot secret, RSA-OAEP encrypted to the certificate's key. */
  wrapped: Buffer;
}

/** The organisation CA: a certificate as PEM text, PEM or DER bytes, or parsed. */
export type CaInput = X509Certificate | string | Uint8Array;

/** Reads the organisation CA certificate from a file (PEM or DER). */
export async function readCa(path: string): Promise<X509Certificate> {
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (e) {
    throw new LuksRefusal(`CA certificate ${path}: ${(e as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : (e as Error).message}`);
  }
  return parseCa(bytes, path);
}

function parseCa(ca: CaInput, name = "the CA certificate"): X509Certificate {
  if (ca instanceof X509Certificate) return ca;
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(typeof ca === "string" ? Buffer.from(ca) : Buffer.from(ca));
  } catch (e) {
    throw new LuksRefusal(`${name} is not an X.509 certificate (${(e as Error).message})`);
  }
  if (!cert.ca) throw new LuksRefusal(`${name} (${oneLine(cert.subject)}) is not a CA certificate (no basicConstraints CA:TRUE)`);
  return cert;
}

const oneLine = (dn: string) => dn.split("\n").filter(Boolean).join(", ");

/** SHA-256 of a certificate's DER, as hex: how Parapet names a token user. */
export function certificateFingerprint(der: Uint8Array): string {
  return createHash("sha256").update(der).digest("hex");
}

/**
 * Checks a token user's certificate (DER) against the organisation CA: issued by it (issuer
 * name and signature), within its validity dates and the CA's at `now`, and an RSA key of at
 * least MIN_RSA_BITS bits. Returns the parsed certificate; throws LuksRefusal otherwise.
 */
export function checkCertificate(der: Uint8Array, caInput: CaInput, now: Date = new Date()): X509Certificate {
  const ca = parseCa(caInput);
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(Buffer.from(der));
  } catch (e) {
    throw new LuksRefusal(`the token's certificate is not an X.509 certificate (${(e as Error).message})`);
  }
  const who = `certificate '${oneLine(cert.subject)}'`;
  if (!cert.checkIssued(ca) || !cert.verify(ca.publicKey))
    throw new LuksRefusal(`${who} is not signed by the organisation CA '${oneLine(ca.subject)}' (issuer '${oneLine(cert.issuer)}')`);
  for (const [c, name] of [
    [cert, who],
    [ca, `CA certificate '${oneLine(ca.subject)}'`],
  ] as const) {
    const from = Date.parse(c.validFrom),
      to = Date.parse(c.validTo);
    if (!(from <= now.getTime())) throw new LuksRefusal(`${name} is not valid before ${c.validFrom}`);
    if (!(now.getTime() <= to)) throw new LuksRefusal(`${name} expired on ${c.validTo}`);
  }
  const key = cert.publicKey;
  const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
  if (key.asymmetricKeyType !== "rsa") throw new LuksRefusal(`${who} has a ${key.asymmetricKeyType} key; token users need RSA`);
  if (bits < MIN_RSA_BITS) throw new LuksRefusal(`${who} has a ${bits}-bit RSA key; token users need at least ${MIN_RSA_BITS} bits`);
  return cert;
}

/** RSA-OAEP encryption of `secret` to the certificate's public key. */
export function wrapSecret(secret: Uint8Array, cert: X509Certificate, oaepHash: OaepHash): Buffer {
  return publicEncrypt({ key: cert.publicKey, padding: cryptoConstants.RSA_PKCS1_OAEP_PADDING, oaepHash }, secret);
}

function checkKeyId(keyId: string): string {
  if (!/^(?:[0-9a-fA-F]{2}){1,64}$/.test(keyId)) throw new LuksRefusal(`token key id '${keyId}': expected an even number of hex digits (e.g. 01)`);
  return keyId.toLowerCase();
}

function checkLabel(label: string): string {
  if (label.length === 0 || Buffer.byteLength(label) > 32 || /[\x00-\x1f]/.test(label))
    throw new LuksRefusal(`token label '${label}': expected 1 to 32 bytes of printable text`);
  return label;
}

// ---- pkcs11-tool ----

/** A refused PIN: wrong, empty or malformed (`locked` when the token no longer takes any). */
export class PinRefusal extends LuksRefusal {
  constructor(
    message: string,
    readonly locked = false,
  ) {
    super(message);
  }
}

/** A pkcs11-tool failure: its last error line, with the PKCS#11 return value if it printed one. */
class P11Error extends Error {
  constructor(
    message: string,
    readonly rv: string | undefined,
  ) {
    super(message);
  }
}

async function p11(module: string, args: string[], opts: { input?: Uint8Array; pin?: Uint8Array } = {}): Promise<Buffer> {
  const env: NodeJS.ProcessEnv = {};
  if (opts.pin) env[PIN_VARIABLE] = Buffer.from(opts.pin).toString("utf8");
  const full = ["--module", module, ...args, ...(opts.pin ? ["--login", "--pin", `env:${PIN_VARIABLE}`] : [])];
  try {
    return (await run("pkcs11-tool", full, { input: opts.input, env })).stdout;
  } catch (e) {
    const msg = (e as Error).message;
    if (/^pkcs11-tool not found/.test(msg)) throw new Error("pkcs11-tool not found; install it with: apt-get install opensc");
    const lines = msg
      .split("\n")
      .slice(1)
      .filter((l) => l && !/^(Aborting\.|Using |OAEP parameters)/.test(l));
    const rv = /rv = (CKR_[A-Z_]+)/.exec(msg)?.[1];
    throw new P11Error(lines.join("; ") || msg.split("\n")[0], rv);
  }
}

/** Labels of the initialised tokens the PKCS#11 module sees (`pkcs11-tool --list-token-slots`). */
export async function listTokenLabels(module: string): Promise<string[]> {
  let out: string;
  try {
    out = (await p11(module, ["--list-token-slots"])).toString("utf8");
  } catch (e) {
    if (e instanceof P11Error) throw new LuksRefusal(`cannot list the tokens of PKCS#11 module ${module}: ${e.message}`);
    throw e;
  }
  return [...out.matchAll(/^\s*token label\s*:\s*(.*?)\s*$/gm)].map((m) => m[1]);
}

/** The certificate object with CKA_ID `keyId` on the token, DER, or undefined if it has none. */
export async function readTokenCertificate(module: string, tokenLabel: string, keyId: string): Promise<Buffer | undefined> {
  return readObject(module, tokenLabel, keyId, "cert");
}

async function readObject(module: string, tokenLabel: string, keyId: string, type: "cert" | "pubkey"): Promise<Buffer | undefined> {
  try {
    const der = await p11(module, ["--token-label", checkLabel(tokenLabel), "--read-object", "--type", type, "--id", checkKeyId(keyId)]);
    return der.length > 0 ? der : undefined;
  } catch (e) {
    if (!(e instanceof P11Error)) throw e;
    if (/object not found/i.test(e.message)) return undefined;
    if (/No slot with token named/i.test(e.message)) throw new LuksRefusal(`no token labelled '${tokenLabel}' (PKCS#11 module ${module})`);
    throw new LuksRefusal(`cannot read the ${type} with id ${keyId} from token '${tokenLabel}': ${e.message}`);
  }
}

/**
 * Decrypts `wrapped` with the token's private key `keyId` after a login with `pin`
 * (RSA-PKCS-OAEP on the token). The PIN reaches pkcs11-tool through its environment and the
 * ciphertext through its standard input: neither is in its argv or in a file.
 */
export async function tokenDecrypt(
  module: string,
  tokenLabel: string,
  keyId: string,
  wrapped: Uint8Array,
  pin: Uint8Array,
  oaepHash: OaepHash,
): Promise<Buffer> {
  if (pin.length === 0) throw new PinRefusal("the token PIN is empty");
  const h = P11_HASH[oaepHash];
  try {
    return await p11(
      module,
      [
        "--token-label",
        checkLabel(tokenLabel),
        "--decrypt",
        "-m",
        "RSA-PKCS-OAEP",
        "--hash-algorithm",
        h.hash,
        "--mgf",
        h.mgf,
        "--id",
        checkKeyId(keyId),
      ],
      { input: wrapped, pin },
    );
  } catch (e) {
    if (!(e instanceof P11Error)) throw e;
    switch (e.rv) {
      case "CKR_PIN_INCORRECT":
        throw new PinRefusal(`wrong PIN for token '${tokenLabel}'`);
      case "CKR_PIN_LOCKED":
        throw new PinRefusal(`the PIN of token '${tokenLabel}' is locked (too many wrong PINs); its security officer must unlock it`, true);
      case "CKR_PIN_LEN_RANGE":
      case "CKR_PIN_INVALID":
        throw new PinRefusal(`that is not a valid PIN for token '${tokenLabel}' (${e.rv})`);
    }
    if (/No slot with token named/i.test(e.message)) throw new LuksRefusal(`no token labelled '${tokenLabel}' (PKCS#11 module ${module})`);
    if (/object not found|private key not found|key not found/i.test(e.message))
      throw new LuksRefusal(`token '${tokenLabel}' has no private key with id ${keyId}`);
    throw new LuksRefusal(
      `token '${tokenLabel}' cannot decrypt the wrapped secret with key ${keyId} ` +
        `(RSA-OAEP ${oaepHash}; a tampered header, or a key that is not the certificate's): ${e.message}`,
    );
  }
}

// ---- the header's tokens ----

interface HeaderJson {
  keyslots?: Record<string, unknown>;
  tokens?: Record<string, Record<string, unknown>>;
}

async function headerJson(header: string): Promise<HeaderJson> {
  let text: string;
  try {
    text = await runText("cryptsetup", ["luksDump", "--dump-json-metadata", header]);
  } catch (e) {
    throw new LuksRefusal(`${header} is not a readable LUKS2 header (${(e as Error).message.split("\n").at(-1)})`);
  }
  return JSON.parse(text) as HeaderJson;
}

function parseEntry(id: number, t: Record<string, unknown>): TokenEntry | undefined {
  const str = (k: string) => (typeof t[k] === "string" ? (t[k] as string) : undefined);
  const cert = str("certificate"),
    keyId = str("key_id"),
    label = str("token_label"),
    hash = str("oaep_hash"),
    wrapped = str("wrapped");
  if (t.type !== TOKEN_TYPE || !cert || !keyId || !label || !wrapped || (hash !== "sha1" && hash !== "sha256") || !Array.isArray(t.keyslots))
    return undefined;
  return {
    id,
    keyslots: (t.keyslots as unknown[]).map(Number).filter((n) => Number.isInteger(n)),
    certificate: Buffer.from(cert, "base64"),
    keyId: keyId.toLowerCase(),
    tokenLabel: label,
    oaepHash: hash,
    wrapped: Buffer.from(wrapped, "base64"),
  };
}

/** The parapet-pkcs11 tokens in a LUKS2 header (a header file alone will do). */
export async function headerTokens(header: string): Promise<TokenEntry[]> {
  const j = await headerJson(header);
  return Object.entries(j.tokens ?? {})
    .map(([id, t]) => parseEntry(Number(id), t))
    .filter((t): t is TokenEntry => t !== undefined)
    .sort((a, b) => a.id - b.id);
}

// ---- enrolment ----

export interface EnrolOptions {
  header: string;
  image: string;
  /** An existing user's passphrase (to add the keyslot). */
  existing: Uint8Array;
  /** The token's PKCS#11 module, e.g. /usr/lib/softhsm/libsofthsm2.so. */
  module: string;
  tokenLabel: string;
  /** CKA_ID (hex) of the certificate and the private key on the token. */
  keyId: string;
  ca: CaInput;
  /** The user's PIN: with it, the token must decrypt the wrapped secret before the keyslot is added. */
  pin?: Uint8Array;
  oaepHash?: OaepHash;
  pbkdf?: Pbkdf;
  now?: Date;
}

export interface EnrolResult {
  keyslot: number;
  tokenId: number;
  subject: string;
  fingerprint: string;
  /** Whether the token decrypted the wrapped secret at enrolment (a PIN was given). */
  tested: boolean;
}

/**
 * Enrols a token user: checks the token's certificate against the CA, adds a keyslot for a new
 * random secret (unlocked by an existing user's passphrase) and stores the secret, wrapped to
 * the certificate's key, as a parapet-pkcs11 LUKS2 token bound to that keyslot.
 */
export async function enrolToken(o: EnrolOptions): Promise<EnrolResult> {
  const keyId = checkKeyId(o.keyId),
    label = checkLabel(o.tokenLabel),
    oaepHash = o.oaepHash ?? "sha1";
  if (!P11_HASH[oaepHash]) throw new LuksRefusal(`OAEP hash ${oaepHash}: expected sha1 or sha256`);
  const ca = parseCa(o.ca);
  const der = await readTokenCertificate(o.module, label, keyId);
  if (!der) throw new LuksRefusal(`token '${label}' has no certificate with id ${keyId}`);
  const cert = checkCertificate(der, ca, o.now);
  const subject = oneLine(cert.subject),
    fingerprint = certificateFingerprint(der);

  const j = await headerJson(o.header);
  const tokens = Object.entries(j.tokens ?? {});
  const same = tokens.map(([id, t]) => parseEntry(Number(id), t)).find((t) => t && t.keyslots.length > 0 && t.certificate.equals(der));
  if (same)
    throw new LuksRefusal(`certificate '${subject}' is already enrolled in ${o.header} (token ${same.id}, keyslot ${same.keyslots.join(", ")})`);
  const tokenId = [...Array(MAX_TOKENS).keys()].find((i) => !(String(i) in (j.tokens ?? {})));
  if (tokenId === undefined) throw new LuksRefusal(`${o.header} has no free LUKS2 token id`);

  // The key on the token must be the certificate's: its public key object, when it has one,
  // and the trial decryption below, when a PIN is given.
  const pub = await readObject(o.module, label, keyId, "pubkey").catch(() => undefined); // some cards keep none
  if (pub && !cert.publicKey.export({ type: "spki", format: "der" }).equals(pub))
    throw new LuksRefusal(`the public key with id ${keyId} on token '${label}' is not the key of certificate '${subject}'`);

  const secret = randomBytes(TOKEN_SECRET_BYTES);
  try {
    const wrapped = wrapSecret(secret, cert, oaepHash);
    if (o.pin) {
      const back = await tokenDecrypt(o.module, label, keyId, wrapped, o.pin, oaepHash);
      const ok = back.length === secret.length && timingSafeEqual(back, secret);
      back.fill(0);
      if (!ok) throw new LuksRefusal(`token '${label}' decrypted the test secret wrongly: key ${keyId} is not the certificate's`);
    }
    const keyslot = await luksAddPassphrase(o.header, o.image, o.existing, secret, o.pbkdf);
    const json = JSON.stringify({
      type: TOKEN_TYPE,
      keyslots: [String(keyslot)],
      certificate: der.toString("base64"),
      key_id: keyId,
      token_label: label,
      oaep_hash: oaepHash,
      wrapped: wrapped.toString("base64"),
    });
    try {
      await run("cryptsetup", ["token", "import", "--json-file", "-", "--token-id", String(tokenId), "--key-slot", String(keyslot), o.header], {
        input: Buffer.from(json),
      });
    } catch (e) {
      // No token, no user: take the keyslot out again, so no unreachable keyslot stays behind.
      await run("cryptsetup", ["luksKillSlot", "--batch-mode", "--header", o.header, "--key-file", "-", o.image, String(keyslot)], {
        input: o.existing,
      }).catch(() => {});
      // The usual cause: Parapet's header keeps 12 KiB of JSON, room for about 6 token users
      // with 2048-bit certificates (4 with 4096-bit ones) besides the keyslots.
      throw new LuksRefusal(
        `cannot store the token in ${o.header}, probably no room left in its metadata ` +
          `(cryptsetup: ${(e as Error).message.split("\n").at(-1)}); keyslot ${keyslot} removed again`,
      );
    }
    return { keyslot, tokenId, subject, fingerprint, tested: o.pin !== undefined };
  } finally {
    secret.fill(0);
  }
}

// ---- unlock (the preboot guest) ----

export interface UnlockOptions {
  header: string;
  module: string;
  pin: Uint8Array;
  ca: CaInput;
  /** Only this token; by default every token the module sees. */
  tokenLabel?: string;
  now?: Date;
}

/** A token user whose token is inserted: the token's label and the header token it matches. */
export interface TokenUser {
  label: string;
  entry: TokenEntry;
}

/**
 * Finds, without a PIN, the token user whose token is inserted: the header's parapet-pkcs11
 * tokens are matched to the certificates on the token (DER), and the matching certificate is
 * checked against the CA. Throws LuksRefusal when no token is present, none carries an
 * enrolled certificate, or the certificate fails the CA check.
 */
export async function findTokenUser(o: Omit<UnlockOptions, "pin">): Promise<TokenUser> {
  const ca = parseCa(o.ca);
  const entries = (await headerTokens(o.header)).filter((t) => t.keyslots.length > 0);
  if (entries.length === 0) throw new LuksRefusal(`${o.header} has no token users`);
  const labels = o.tokenLabel !== undefined ? [checkLabel(o.tokenLabel)] : await listTokenLabels(o.module);
  if (labels.length === 0) throw new LuksRefusal(`no token found (PKCS#11 module ${o.module}); insert the smart card`);
  const keyIds = [...new Set(entries.map((e) => e.keyId))];
  const seen: string[] = [];
  for (const label of labels) {
    for (const keyId of keyIds) {
      const der = await readTokenCertificate(o.module, label, keyId);
      if (!der) continue;
      seen.push(`'${label}' id ${keyId}`);
      const entry = entries.find((e) => e.keyId === keyId && e.certificate.equals(der));
      if (!entry) continue;
      checkCertificate(der, ca, o.now);
      return { label, entry };
    }
  }
  throw new LuksRefusal(
    seen.length === 0
      ? `no certificate on ${labels.map((l) => `token '${l}'`).join(", ")} with an id enrolled in ${o.header}`
      : `the certificate on ${seen.join(", ")} is not enrolled in ${o.header}`,
  );
}

/**
 * The keyslot secret of the token user whose token is inserted (findTokenUser, unless `user`
 * is one it found before): the token decrypts the wrapped secret after one login with `pin`.
 * Throws LuksRefusal for a wrong PIN (PinRefusal), a certificate the CA did not sign, a token
 * that is not enrolled, and a wrapped secret the token cannot decrypt (tampered).
 */
export async function unlockWithToken(o: UnlockOptions & { user?: TokenUser }): Promise<Buffer> {
  const { label, entry } = o.user ?? (await findTokenUser(o));
  // One login only: a wrong PIN ends the attempt rather than using up the token's retries.
  const secret = await tokenDecrypt(o.module, label, entry.keyId, entry.wrapped, o.pin, entry.oaepHash);
  if (secret.length !== TOKEN_SECRET_BYTES) {
    secret.fill(0);
    throw new LuksRefusal(
      `token '${label}' decrypted token ${entry.id} of ${o.header} to ${secret.length} bytes, not ${TOKEN_SECRET_BYTES}: tampered header`,
    );
  }
  return secret;
}

/**
 * The volume key, unlocked with the inserted token: unlockWithToken, then the keyslot (from
 * the header alone when `image` is not given, as in the preboot guest).
 */
export async function volumeKeyWithToken(o: UnlockOptions & { image: string | undefined; user?: TokenUser }): Promise<Buffer> {
  const secret = await unlockWithToken(o);
  try {
    return await volumeKey(o.header, o.image, secret);
  } finally {
    secret.fill(0);
  }
}
