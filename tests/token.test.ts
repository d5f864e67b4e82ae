// PKCS#11 tokens as LUKS users (src/lib/token.ts), on SoftHSM2 software tokens: a token user is
// enrolled only with a certificate the organisation CA issued; its keyslot secret, unwrapped by
// the token, gives the same volume key as a passphrase; two token users share a disk; a wrong
// PIN, another CA's certificate, an unenrolled certificate and a tampered header are refused;
// stock cryptsetup still sees the passphrase keyslot and the token; revocation works.
// Host only (no guest): needs cryptsetup-bin, softhsm2, opensc and openssl.
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { luksFormat, luksInfo, LuksRefusal, volumeKey } from "../src/lib/luks.ts";
import {
  checkCertificate,
  enrolToken,
  headerTokens,
  listTokenLabels,
  TOKEN_SECRET_BYTES,
  TOKEN_TYPE,
  unlockWithToken,
  volumeKeyWithToken,
} from "../src/lib/token.ts";
import { cli } from "./fixture.ts";
import { makeCa, makeStore, makeToken, MODULE, sh } from "./tokenfixture.ts";

const FAST = { iterations: 4, memoryKiB: 32768 }; // test keyslots: quick to unlock
const alice = Buffer.from("correct horse battery staple");

/** A small image under a new detached header, first user `alice`. */
async function makeDisk(dir: string): Promise<{ image: string; header: string }> {
  const image = join(dir, "disk.img"),
    header = join(dir, "disk.hdr");
  const plain = Buffer.alloc(4 * 2 ** 20);
  plain.writeUInt16LE(0xaa55, 510); // what luksFormat expects of a plaintext MBR disk
  await writeFile(image, plain);
  await luksFormat({ image, header, passphrase: alice, pbkdf: FAST });
  return { image, header };
}

const pin = (s: string) => Buffer.from(s);

describe("PKCS#11 token users of a LUKS2 detached header (SoftHSM2)", () => {
  let dir: string;
  const dirs: string[] = [];
  const savedConf = process.env.SOFTHSM2_CONF;

  before(async () => {
    for (const tool of ["softhsm2-util", "pkcs11-tool", "openssl", "cryptsetup"])
      assert.ok(
        sh("sh", ["-c", `command -v ${tool} || true`]).length > 0,
        `${tool} is not installed (apt-get install softhsm2 opensc openssl cryptsetup-bin)`,
      );
    assert.ok(existsSync(MODULE), `${MODULE}: install softhsm2`);
  });

  /** A fresh directory, SoftHSM2 store, organisation CA and disk for one test. */
  async function fresh(name: string) {
    dir = await mkdtemp(join(tmpdir(), `parapet-token-${name}-`));
    dirs.push(dir);
    await makeStore(dir);
    const ca = makeCa(dir, "org-ca");
    const disk = await makeDisk(dir);
    return { ca, ...disk };
  }

  test("an enrolled token gives the same volume key as the passphrase, and the header holds the token", async () => {
    const { ca, image, header } = await fresh("enrol");
    const der = makeToken("carol", "1234", ca);
    const r = await enrolToken({
      header,
      image,
      existing: alice,
      module: MODULE,
      tokenLabel: "carol",
      keyId: "01",
      ca: ca.cert,
      pin: pin("1234"),
      pbkdf: FAST,
    });
    assert.deepEqual(
      { keyslot: r.keyslot, tokenId: r.tokenId, subject: r.subject, tested: r.tested },
      { keyslot: 1, tokenId: 0, subject: "CN=carol", tested: true },
    );

    const [t, ...rest] = await headerTokens(header);
    assert.equal(rest.length, 0);
    assert.deepEqual(
      { ...t, certificate: undefined, wrapped: undefined },
      { id: 0, keyslots: [1], keyId: "01", tokenLabel: "carol", oaepHash: "sha1", certificate: undefined, wrapped: undefined },
    );
    assert.ok(t.certificate.equals(der), "the header keeps the certificate's DER");
    assert.equal(t.wrapped.length, 256, "the secret is wrapped to the 2048-bit key");

    const secret = await unlockWithToken({ header, module: MODULE, pin: pin("1234"), ca: ca.cert });
    assert.equal(secret.length, TOKEN_SECRET_BYTES);
    const byPassphrase = await volumeKey(header, image, alice);
    assert.ok((await volumeKey(header, image, secret)).equals(byPassphrase), "the token's keyslot secret unlocks the volume key");
    assert.ok((await volumeKeyWithToken({ header, image, module: MODULE, pin: pin("1234"), ca: await readFile(ca.pem) })).equals(byPassphrase));

    // Stock cryptsetup: the passphrase keyslot, the token's keyslot and the token itself.
    assert.deepEqual((await luksInfo(header, image)).keyslots, [0, 1]);
    const dump = sh("cryptsetup", ["luksDump", header]).toString();
    assert.match(dump, new RegExp(`Tokens:\\n  0: ${TOKEN_TYPE}\\n\\s+Keyslot:\\s+1\\n`));
    sh("cryptsetup", ["open", "--test-passphrase", "--key-slot", "0", "--header", header, "--key-file", "-", image], alice);
    sh("cryptsetup", ["open", "--test-passphrase", "--key-slot", "1", "--header", header, "--key-file", "-", image], secret);

    // Enrolling the same certificate again is refused.
    await assert.rejects(
      enrolToken({ header, image, existing: alice, module: MODULE, tokenLabel: "carol", keyId: "01", ca: ca.cert, pbkdf: FAST }),
      (e: Error) => e instanceof LuksRefusal && /already enrolled/.test(e.message),
    );
  });

  test("two token users open the same disk, each with its own token and PIN", async () => {
    const { ca, image, header } = await fresh("two");
    makeToken("carol", "1234", ca);
    makeToken("dave", "5678", ca, { keyId: "a1b2" });
    const c = await enrolToken({
      header,
      image,
      existing: alice,
      module: MODULE,
      tokenLabel: "carol",
      keyId: "01",
      ca: ca.cert,
      pin: pin("1234"),
      pbkdf: FAST,
    });
    // Without a PIN the enrolment checks the certificate and public key only.
    const d = await enrolToken({ header, image, existing: alice, module: MODULE, tokenLabel: "dave", keyId: "A1B2", ca: ca.cert, pbkdf: FAST });
    assert.deepEqual([c.keyslot, c.tokenId, d.keyslot, d.tokenId, d.tested], [1, 0, 2, 1, false]);
    assert.deepEqual((await listTokenLabels(MODULE)).sort(), ["carol", "dave"]);

    const key = await volumeKey(header, image, alice);
    const kc = await volumeKeyWithToken({ header, image, module: MODULE, pin: pin("1234"), ca: ca.cert, tokenLabel: "carol" });
    const kd = await volumeKeyWithToken({ header, image, module: MODULE, pin: pin("5678"), ca: ca.cert, tokenLabel: "dave" });
    assert.ok(kc.equals(key) && kd.equals(key));
    const sc = await unlockWithToken({ header, module: MODULE, pin: pin("1234"), ca: ca.cert, tokenLabel: "carol" });
    const sd = await unlockWithToken({ header, module: MODULE, pin: pin("5678"), ca: ca.cert, tokenLabel: "dave" });
    assert.ok(!sc.equals(sd), "each token user has a keyslot secret of its own");
  });

  test("a wrong PIN is refused, at unlock and at enrolment (and no keyslot is added)", async () => {
    const { ca, image, header } = await fresh("pin");
    makeToken("carol", "1234", ca);
    await assert.rejects(
      enrolToken({ header, image, existing: alice, module: MODULE, tokenLabel: "carol", keyId: "01", ca: ca.cert, pin: pin("9999"), pbkdf: FAST }),
      (e: Error) => e instanceof LuksRefusal && /wrong PIN for token 'carol'/.test(e.message),
    );
    assert.deepEqual((await luksInfo(header, image)).keyslots, [0], "a refused enrolment leaves the header as it was");
    assert.deepEqual(await headerTokens(header), []);
    await enrolToken({ header, image, existing: alice, module: MODULE, tokenLabel: "carol", keyId: "01", ca: ca.cert, pbkdf: FAST });
    await assert.rejects(
      unlockWithToken({ header, module: MODULE, pin: pin("0000"), ca: ca.cert }),
      (e: Error) => e instanceof LuksRefusal && /wrong PIN for token 'carol'/.test(e.message),
    );
    await assert.rejects(volumeKeyWithToken({ header, image, module: MODULE, pin: pin("0000"), ca: ca.cert }), LuksRefusal);
    // A wrong existing passphrase is refused before anything changes.
    makeToken("dave", "5678", ca);
    await assert.rejects(
      enrolToken({ header, image, existing: Buffer.from("wrong"), module: MODULE, tokenLabel: "dave", keyId: "01", ca: ca.cert, pbkdf: FAST }),
      /cannot unlock/,
    );
    assert.equal((await headerTokens(header)).length, 1);
  });

  test("a certificate from another CA is refused at enrolment and at unlock; an unenrolled token is refused", async () => {
    const { ca, image, header } = await fresh("ca");
    const other = makeCa(dir, "other-ca");
    makeToken("mallory", "1234", other);
    await assert.rejects(
      enrolToken({ header, image, existing: alice, module: MODULE, tokenLabel: "mallory", keyId: "01", ca: ca.cert, pin: pin("1234"), pbkdf: FAST }),
      (e: Error) => e instanceof LuksRefusal && /certificate 'CN=mallory' is not signed by the organisation CA 'CN=org-ca'/.test(e.message),
    );
    assert.deepEqual((await luksInfo(header, image)).keyslots, [0]);

    // Enrolled under the other CA (e.g. a header written by someone else), it is refused at
    // unlock by a preboot that trusts the organisation CA only.
    await enrolToken({ header, image, existing: alice, module: MODULE, tokenLabel: "mallory", keyId: "01", ca: other.cert, pbkdf: FAST });
    await assert.rejects(
      unlockWithToken({ header, module: MODULE, pin: pin("1234"), ca: ca.cert }),
      (e: Error) => e instanceof LuksRefusal && /not signed by the organisation CA/.test(e.message),
    );
    assert.equal((await unlockWithToken({ header, module: MODULE, pin: pin("1234"), ca: other.cert })).length, TOKEN_SECRET_BYTES);

    // A token of the organisation whose certificate is not in the header.
    makeToken("erin", "1234", ca);
    await assert.rejects(
      unlockWithToken({ header, module: MODULE, pin: pin("1234"), ca: ca.cert, tokenLabel: "erin" }),
      (e: Error) => e instanceof LuksRefusal && /certificate on 'erin' id 01 is not enrolled/.test(e.message),
    );
    await assert.rejects(
      unlockWithToken({ header, module: MODULE, pin: pin("1234"), ca: ca.cert, tokenLabel: "nobody" }),
      (e: Error) => e instanceof LuksRefusal && /no token labelled 'nobody'/.test(e.message),
    );
  });

  test("a tampered wrapped secret is refused; revoking the keyslot and the token ends the user", async () => {
    const { ca, image, header } = await fresh("tamper");
    makeToken("carol", "1234", ca);
    const r = await enrolToken({ header, image, existing: alice, module: MODULE, tokenLabel: "carol", keyId: "01", ca: ca.cert, pbkdf: FAST });
    const json = JSON.parse(sh("cryptsetup", ["token", "export", "--token-id", String(r.tokenId), header]).toString());
    const wrapped = Buffer.from(json.wrapped, "base64");
    wrapped[100] ^= 0x01;
    json.wrapped = wrapped.toString("base64");
    sh("cryptsetup", ["token", "remove", "--token-id", String(r.tokenId), header]);
    sh("cryptsetup", ["token", "import", "--json-file", "-", "--token-id", String(r.tokenId), header], Buffer.from(JSON.stringify(json)));
    await assert.rejects(
      unlockWithToken({ header, module: MODULE, pin: pin("1234"), ca: ca.cert }),
      (e: Error) => e instanceof LuksRefusal && /cannot decrypt the wrapped secret/.test(e.message),
    );

    // Revocation as docs/tokens.md says: kill the keyslot (with another user's passphrase), remove the token.
    sh("cryptsetup", ["luksKillSlot", "--batch-mode", "--header", header, "--key-file", "-", image, String(r.keyslot)], alice);
    await assert.rejects(unlockWithToken({ header, module: MODULE, pin: pin("1234"), ca: ca.cert }), /has no token users/);
    sh("cryptsetup", ["token", "remove", "--token-id", String(r.tokenId), header]);
    assert.deepEqual(await headerTokens(header), []);
    assert.ok((await volumeKey(header, image, alice)).length === 64, "the passphrase user still opens the disk");
  });

  test("certificates: validity dates, key size and the CA itself are checked", async () => {
    dir = await mkdtemp(join(tmpdir(), "parapet-token-cert-"));
    dirs.push(dir);
    const ca = makeCa(dir, "org-ca");
    const leaf = (name: string, bits: number) => {
      const key = join(dir, `${name}.key`),
        csr = join(dir, `${name}.csr`),
        der = join(dir, `${name}.der`);
      sh("openssl", ["req", "-new", "-newkey", `rsa:${bits}`, "-nodes", "-keyout", key, "-out", csr, "-subj", `/CN=${name}`]);
      sh("openssl", ["x509", "-req", "-in", csr, "-CA", ca.pem, "-CAkey", ca.key, "-days", "10", "-outform", "DER", "-out", der]);
      return execFileSync("cat", [der]);
    };
    const ok = leaf("frank", 2048);
    assert.equal(checkCertificate(ok, ca.cert).subject.trim(), "CN=frank");
    const day = 86_400_000;
    assert.throws(() => checkCertificate(ok, ca.cert, new Date(Date.now() + 20 * day)), /certificate 'CN=frank' expired on/);
    assert.throws(() => checkCertificate(ok, ca.cert, new Date(Date.now() - 2 * day)), /is not valid before/);
    assert.throws(() => checkCertificate(leaf("small", 1024), ca.cert), /1024-bit RSA key; token users need at least 2048/);
    assert.throws(
      () => checkCertificate(ok, ok),
      (e: Error) => e instanceof LuksRefusal && /is not a CA certificate/.test(e.message),
    );
    assert.throws(() => checkCertificate(Buffer.from("not a certificate"), ca.cert), /not an X.509 certificate/);
  });

  test("the CLI enrols a token user (exit 0) and refuses another CA's certificate (exit 2)", async () => {
    const { ca, image, header } = await fresh("cli");
    makeToken("carol", "1234", ca);
    const other = makeCa(dir, "other-ca");
    makeToken("mallory", "1234", other);
    const pass = join(dir, "alice.pass"),
      pinFile = join(dir, "carol.pin");
    await writeFile(pass, `${alice}\n`);
    await writeFile(pinFile, "1234\n");
    const base = ["luks", "add-user", "--disk", image, "--header", header, "--passphrase-file", pass, "--iter-time", "50"];
    const tok = (label: string) => ["--token-module", MODULE, "--token-label", label, "--token-key-id", "01", "--ca", ca.pem];
    const bad = cli([...base, ...tok("mallory")]);
    assert.equal(bad.status, 2, bad.out);
    assert.match(bad.out, /refused: certificate 'CN=mallory' is not signed by the organisation CA/);
    const incomplete = cli([...base, "--token-module", MODULE, "--token-label", "carol"]);
    assert.equal(incomplete.status, 1, incomplete.out);
    assert.match(incomplete.out, /needs --token-key-id, --ca/);
    const ok = cli([...base, ...tok("carol"), "--token-pin-file", pinFile]);
    assert.equal(ok.status, 0, ok.out);
    assert.match(ok.out, /keyslot 1 and token 0 added for 'CN=carol' \(certificate SHA-256 [0-9a-f]{64}\), test decryption on the token passed/);
    assert.ok(
      (await volumeKeyWithToken({ header, image, module: MODULE, pin: pin("1234"), ca: ca.cert })).equals(await volumeKey(header, image, alice)),
    );
    assert.match(cli(["luks", "add-user", "--help"]).out, /--token-module <library>[\s\S]*--token-pin-file <file>/);
  });

  after(async () => {
    if (savedConf === undefined) delete process.env.SOFTHSM2_CONF;
    else process.env.SOFTHSM2_CONF = savedConf;
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });
});
