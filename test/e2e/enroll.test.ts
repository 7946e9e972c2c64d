/**
 * Client certificate enrollment end to end (seed 002's CSR flow, done safely), over real sockets:
 * a real certgate (admin listener on 127.0.0.1:0) with enrollment from the test PKI's intermediate,
 * tokens made by the real `certs token` command, CSRs made by `openssl req` (and by Python
 * `cryptography` when installed), and every issued certificate then used for a real mTLS request
 * through certgate, whose upstream must see the enrolled identity.
 *
 * Attacks, each by name: replaying a token (also after a restart), an expired/unknown/wrong token,
 * asking for another CN or an extra SAN, a tampered CSR, a weak key, an oversized body, and racing
 * several requests with one token (exactly one certificate). Misconfigurations refuse start-up.
 * Issue 13 finding 5 (names the token never granted): a smuggled SAN (one SAN Extension with two
 * extnValues hiding an otherName UPN and a DirName), duplicated/malformed extensions, NUL / CR LF /
 * wildcard SANs under a *.example.com grant, and extensions the CSR asks for (CA:TRUE, keyCertSign,
 * serverAuth) that must never reach the certificate; CSRs crafted by helpers/csr.ts.
 */
import { test, before, after, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { runCerts } from '../../dist/commands/certs.js';
import { appendToken, createToken } from '../../dist/enroll/tokens.js';
import { CertgateError } from '../../dist/errors.js';
import { createTestPki, type TestPki } from '../helpers/pki.js';
import { metricValue, startRecordingUpstream, startTestCertgate, type RecordingUpstream, type RunningCertgate } from '../helpers/certgate.js';
import { mtlsRequest } from '../helpers/client.js';
import { ava, name, openssl, rdn } from '../helpers/openssl.js';
import { OID, craftCsr, critical, csrPem, ecKey, extension, extensionRequest, generalNames, gn, keyPem, octets, san, smuggledSan } from '../helpers/csr.js';
import { x509 } from '../../dist/pki/x509.js';

const DAY = 86_400_000;
const MAX_DAYS = 30;
const CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';
let pki: TestPki;
let upstream: RecordingUpstream;
let gate: RunningCertgate;
let work: string;

const noOpenssl = spawnSync('openssl', ['version']).status === 0 ? undefined : 'openssl is not installed';
const noCryptography = spawnSync('python3', ['-c', 'import cryptography']).status === 0 ? undefined : 'python3 with the cryptography package is not installed';

function settings(enrollment: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    tls: { bundle: pki.serverBundle.pemPath, client_ca: pki.clientCa.path },
    routes: [{ upstream: upstream.url }],
    enrollment: {
      ca_cert: pki.intermediate.certPath, ca_key: pki.intermediate.keyPath, max_days: MAX_DAYS,
      tokens_file: path.join(work, 'enroll-tokens.yaml'), state_file: path.join(work, 'state', 'enroll-used.json'), ...enrollment,
    },
  };
}

before(async () => {
  pki = await createTestPki();
  upstream = await startRecordingUpstream();
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'certgate-enroll-'));
  fs.mkdirSync(path.join(work, 'state'));
  gate = await startTestCertgate(settings());
});
after(async () => {
  await gate?.close();
  await upstream?.close();
  pki?.cleanup();
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

/** A token from the real `certgate certs token` command; returns the bearer it printed. */
async function token(...args: string[]): Promise<string> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runCerts(['token', '--dir', work, ...args], { stdout: (t) => out.push(t), stderr: (t) => err.push(t) });
  assert.equal(code, 0, err.join('\n'));
  return out[0]!;
}

let count = 0;
/** `openssl req -new` with a fresh key. */
async function csr(o: { subj: string; san?: string; newkey?: string[]; der?: boolean }): Promise<{ body: Buffer; key: string }> {
  const base = path.join(work, `c${++count}`);
  await openssl(['req', '-new', ...(o.newkey ?? ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256']), '-nodes', '-keyout', `${base}.key`,
    '-subj', o.subj, ...(o.san ? ['-addext', `subjectAltName=${o.san}`] : []), ...(o.der ? ['-outform', 'DER'] : []), '-out', `${base}.csr`]);
  return { body: fs.readFileSync(`${base}.csr`), key: fs.readFileSync(`${base}.key`, 'utf8') };
}

interface Answer {
  readonly status: number;
  readonly type: string | null;
  readonly text: string;
  json(): Record<string, unknown>;
}

async function enroll(bearer: string | undefined, body: Buffer | string, headers: Record<string, string> = {}, g = gate): Promise<Answer> {
  const res = await fetch(`${g.adminUrl}/enroll`, {
    method: 'POST', body: typeof body === 'string' ? body : new Uint8Array(body), headers: { ...(bearer !== undefined && { authorization: `Bearer ${bearer}` }), ...headers },
  });
  const text = await res.text();
  return { status: res.status, type: res.headers.get('content-type'), text, json: () => JSON.parse(text) as Record<string, unknown> };
}

/** Uses the issued chain + key for a real mTLS request; returns what the upstream saw. */
async function callThrough(chainPem: string, key: string): Promise<Record<string, string | string[] | undefined>> {
  const r = await mtlsRequest(gate.url, { ca: pki.root.cert, cert: chainPem, key }, { path: '/whoami' });
  assert.equal(r.status, 200, r.body);
  return upstream.requests.at(-1)!.headers;
}

function leafOf(chainPem: string): X509Certificate {
  return new X509Certificate(chainPem.slice(0, chainPem.indexOf('-----END CERTIFICATE-----') + 25));
}

test('happy path (openssl req): 201 with cert + chain; clientAuth only, no CA flag, random serial, ≤ max_days; it works through certgate', { skip: noOpenssl }, async (t: TestContext) => {
  t.plan(14);
  const bearer = await token('--cn', 'svc-enrolled', '--ou', 'payments', '--san-uri', 'spiffe://example.org/ns/*/sa/svc-enrolled');
  const req = await csr({ subj: '/OU=payments/CN=svc-enrolled', san: 'URI:spiffe://example.org/ns/prod/sa/svc-enrolled' });
  const r = await enroll(bearer, req.body);
  t.assert.equal(r.status, 201, r.text);
  t.assert.equal(r.type, 'application/pem-certificate-chain');
  t.assert.equal(r.text.match(/-----BEGIN CERTIFICATE-----/g)?.length, 2, 'leaf + issuing CA');
  const leaf = leafOf(r.text);
  t.assert.equal(leaf.ca, false);
  t.assert.deepEqual(leaf.keyUsage, [CLIENT_AUTH]);
  t.assert.ok(leaf.checkIssued(pki.intermediate.x509) && leaf.verify(pki.intermediate.x509.publicKey), 'signed by enrollment.ca_cert');
  t.assert.match(leaf.serialNumber, /^[0-9A-F]{32}$/, '128-bit random serial');
  const lifetime = new Date(leaf.validTo).getTime() - new Date(leaf.validFrom).getTime();
  t.assert.ok(lifetime <= MAX_DAYS * DAY, `validity ${lifetime / DAY} days ≤ max_days ${MAX_DAYS}`);
  t.assert.ok(lifetime >= MAX_DAYS * DAY - 1000, 'the full max_days when the token sets no cert_days');
  const seen = await callThrough(r.text, req.key);
  t.assert.equal(seen['x-client-cert-subject'], 'CN=svc-enrolled,OU=payments');
  t.assert.equal(seen['x-client-cert-san-uri'], 'spiffe://example.org/ns/prod/sa/svc-enrolled');
  t.assert.equal(seen['x-client-cert-serial'], leaf.serialNumber);
  const other = await enroll(await token('--cn', 'svc-enrolled'), (await csr({ subj: '/CN=svc-enrolled' })).body);
  t.assert.equal(other.status, 201, other.text);
  t.assert.notEqual(leafOf(other.text).serialNumber, leaf.serialNumber, 'a fresh serial every time');
});

test('Python cryptography CSR sent as DER with Content-Type: application/pkcs10 (seed 002\'s client): 201 and usable', { skip: noCryptography }, async (t: TestContext) => {
  t.plan(3);
  const base = path.join(work, 'py');
  const script = `
import sys
from cryptography import x509
from cryptography.x509.oid import NameOID
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
key = ec.generate_private_key(ec.SECP384R1())
req = (x509.CertificateSigningRequestBuilder()
       .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "py-client")]))
       .add_extension(x509.SubjectAlternativeName([x509.DNSName("py-client.svc.internal")]), critical=False)
       .sign(key, hashes.SHA256()))
open(sys.argv[1] + ".key", "wb").write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
open(sys.argv[1] + ".der", "wb").write(req.public_bytes(serialization.Encoding.DER))
`;
  const py = spawnSync('python3', ['-c', script, base], { encoding: 'utf8' });
  assert.equal(py.status, 0, py.stderr);
  const bearer = await token('--cn', 'py-client', '--san-dns', '*.svc.internal');
  const r = await enroll(bearer, fs.readFileSync(`${base}.der`), { 'content-type': 'application/pkcs10' });
  t.assert.equal(r.status, 201, r.text);
  const seen = await callThrough(r.text, fs.readFileSync(`${base}.key`, 'utf8'));
  t.assert.equal(seen['x-client-cert-subject'], 'CN=py-client');
  t.assert.equal(seen['x-client-cert-san-dns'], 'py-client.svc.internal');
});

test('replayed token → 401 token_used, also after a restart (a new certgate on the same state_file)', { skip: noOpenssl }, async (t: TestContext) => {
  t.plan(5);
  const bearer = await token('--cn', 'svc-once');
  t.assert.equal((await enroll(bearer, (await csr({ subj: '/CN=svc-once' })).body)).status, 201);
  const replay = await enroll(bearer, (await csr({ subj: '/CN=svc-once' })).body);
  t.assert.equal(replay.status, 401);
  t.assert.deepEqual([replay.json().error, replay.json().reason], ['unauthorized', 'token_used']);
  const restarted = await startTestCertgate(settings());
  t.after(() => restarted.close());
  const again = await enroll(bearer, (await csr({ subj: '/CN=svc-once' })).body, {}, restarted);
  t.assert.equal(again.status, 401);
  t.assert.equal(again.json().reason, 'token_used');
});

test('expired, unknown, wrong-secret and missing tokens → 401 with the reason; nothing is issued', { skip: noOpenssl }, async (t: TestContext) => {
  t.plan(8);
  const expired = createToken({ cn: 'svc-late', days: 1 }, new Date(Date.now() - 2 * DAY));
  await appendToken(path.join(work, 'enroll-tokens.yaml'), expired.entry);
  const body = (await csr({ subj: '/CN=svc-late' })).body;
  const good = await token('--cn', 'svc-late');
  const cases: Array<[string | undefined, string]> = [
    [expired.bearer, 'token_expired'],
    [`ffffffffffffffff.${good.split('.')[1]}`, 'token_invalid'],
    [`${good.split('.')[0]}.${'x'.repeat(43)}`, 'token_invalid'],
    [undefined, 'token_missing'],
  ];
  for (const [bearer, reason] of cases) {
    const r = await enroll(bearer, body);
    t.assert.equal(r.status, 401, r.text);
    t.assert.equal(r.json().reason, reason);
  }
});

test('CSR asking for another CN, an extra SAN or an O → 403 naming each mismatch; the token stays usable', { skip: noOpenssl }, async (t: TestContext) => {
  t.plan(8);
  const bearer = await token('--cn', 'svc-b', '--san-uri', 'spiffe://example.org/svc-b');
  const wrongCn = await enroll(bearer, (await csr({ subj: '/CN=svc-admin' })).body);
  t.assert.equal(wrongCn.status, 403);
  t.assert.equal(wrongCn.json().reason, 'identity_mismatch');
  t.assert.match(String(wrongCn.json().message), /subject CN "svc-admin" is not allowed; this token allows CN "svc-b"/);
  const extraSan = await enroll(bearer, (await csr({ subj: '/CN=svc-b', san: 'URI:spiffe://example.org/svc-b,URI:spiffe://example.org/admin' })).body);
  t.assert.equal(extraSan.status, 403);
  t.assert.deepEqual(extraSan.json().mismatches, ['SAN URI "spiffe://example.org/admin" is not allowed; this token allows "spiffe://example.org/svc-b"']);
  const withO = await enroll(bearer, (await csr({ subj: '/O=admins/CN=svc-b' })).body);
  t.assert.match(String(withO.json().message), /subject attribute O is not allowed/);
  const fixed = await enroll(bearer, (await csr({ subj: '/CN=svc-b', san: 'URI:spiffe://example.org/svc-b' })).body);
  t.assert.equal(fixed.status, 201, fixed.text);
  t.assert.equal(leafOf(fixed.text).subject, 'CN=svc-b');
});

test('tampered CSR → 400 signature; RSA-1024 key → 400 key_size; not a CSR → 400', { skip: noOpenssl }, async (t: TestContext) => {
  t.plan(6);
  const bearer = await token('--cn', 'svc-bad');
  const der = (await csr({ subj: '/CN=svc-bad', der: true })).body;
  der[der.indexOf('svc-bad') + 4] = 'B'.charCodeAt(0);
  const tampered = await enroll(bearer, der, { 'content-type': 'application/pkcs10' });
  t.assert.equal(tampered.status, 400);
  t.assert.deepEqual([tampered.json().error, tampered.json().reason], ['bad_csr', 'signature']);
  const weak = await enroll(bearer, (await csr({ subj: '/CN=svc-bad', newkey: ['-newkey', 'rsa:1024'] })).body);
  t.assert.equal(weak.status, 400);
  t.assert.equal(weak.json().reason, 'key_size');
  const junk = await enroll(bearer, 'please sign me');
  t.assert.equal(junk.status, 400);
  t.assert.equal(junk.json().reason, 'not_a_csr');
});

test('65 KiB body → 413, answered (not reset)', async (t: TestContext) => {
  t.plan(2);
  const r = await enroll(await token('--cn', 'svc-big'), Buffer.alloc(65 * 1024, 0x41));
  t.assert.equal(r.status, 413);
  t.assert.equal(r.json().error, 'payload_too_large');
});

test('double-spend race: six concurrent requests with one token → exactly one 201, five 401 token_used, one state entry', { skip: noOpenssl }, async (t: TestContext) => {
  t.plan(3);
  const bearer = await token('--cn', 'svc-race');
  const bodies = await Promise.all(Array.from({ length: 6 }, () => csr({ subj: '/CN=svc-race' })));
  const answers = await Promise.all(bodies.map((b) => enroll(bearer, b.body)));
  const statuses = answers.map((a) => a.status).sort();
  t.assert.deepEqual(statuses, [201, 401, 401, 401, 401, 401], answers.map((a) => a.text).join('\n'));
  t.assert.ok(answers.filter((a) => a.status === 401).every((a) => a.json().reason === 'token_used'));
  const state = JSON.parse(fs.readFileSync(path.join(work, 'state', 'enroll-used.json'), 'utf8')) as { spent: Record<string, unknown> };
  t.assert.ok(state.spent[bearer.split('.')[0]!], 'the spend is on disk');
});

test('every attempt is logged with the token id and never the secret, and counted by result', { skip: noOpenssl }, async (t: TestContext) => {
  t.plan(6);
  const bearer = await token('--cn', 'svc-logged');
  const [id, secret] = bearer.split('.') as [string, string];
  const metrics = async (result: string): Promise<number> => metricValue(await gate.metricsText(), 'certgate_enrollments_total', { result }) ?? -1;
  const [issued, mismatch] = [await metrics('issued'), await metrics('identity_mismatch')];
  await enroll(bearer, (await csr({ subj: '/CN=svc-other' })).body);
  await enroll(bearer, (await csr({ subj: '/CN=svc-logged' })).body);
  t.assert.equal(await metrics('issued'), issued + 1);
  t.assert.equal(await metrics('identity_mismatch'), mismatch + 1);
  const lines = gate.logs.find('enrollment').filter((l) => l.token_id === id);
  t.assert.deepEqual(lines.map((l) => l.result), ['identity_mismatch', 'issued']);
  t.assert.deepEqual((lines[0]!.requested as { cn: string[] }).cn, ['svc-other']);
  t.assert.equal(lines[1]!.subject, 'CN=svc-logged');
  t.assert.ok(!JSON.stringify(gate.logs.lines).includes(secret), 'the secret appears in no log line');
});

test('start-up refuses a CA missing from tls.client_ca (config file:line) and a world-readable ca_key', async (t: TestContext) => {
  t.plan(5);
  await assert.rejects(startTestCertgate(settings({ ca_cert: pki.otherRoot.certPath, ca_key: pki.otherRoot.keyPath })), (err: unknown) => {
    t.assert.ok(err instanceof CertgateError && err.code === 'CG_CONFIG_INVALID', String(err));
    const e = err as CertgateError;
    t.assert.match(e.message, /enrollment\.ca_cert: CN=unrelated root CA,O=elsewhere is not in tls\.client_ca/);
    const line = fs.readFileSync(e.file!, 'utf8').split('\n')[e.line! - 1];
    t.assert.match(String(line), /ca_cert:/, 'the line named is the ca_cert key');
    return true;
  });
  const loose = path.join(work, 'loose-ca.key');
  fs.copyFileSync(pki.intermediate.keyPath, loose);
  fs.chmodSync(loose, 0o644);
  await assert.rejects(startTestCertgate(settings({ ca_key: loose })), (err: unknown) => {
    t.assert.equal((err as CertgateError).code, 'CG_KEY_PERMISSIONS');
    t.assert.equal((err as CertgateError).file, loose);
    return true;
  });
});

// ---- Issue 13 finding 5: names the token never granted ----------------------------------------------

/** Every SAN of every type in `pem`'s first certificate, read by @peculiar/x509 (not certgate's reader). */
function sansOf(chainPem: string): string[] {
  const cert = new x509.X509Certificate(leafOf(chainPem).raw);
  const ext = cert.getExtension(x509.SubjectAlternativeNameExtension);
  return ext === null ? [] : ext.names.items.map((n) => `${n.type}:${n.value}`);
}

test('smuggled SAN: one SAN extension with two extnValues (otherName UPN + DirName hidden next to the granted URI) → 400 extensions, nothing issued', async (t: TestContext) => {
  t.plan(7);
  const granted = 'spiffe://example.org/ns/prod/sa/svc-smuggle';
  const bearer = await token('--cn', 'svc-smuggle', '--san-uri', granted);
  const hidden = generalNames(gn.upn('administrator@corp.example'), gn.dirName('admin'), gn.uri(granted));
  const shown = generalNames(gn.uri(granted));
  const key = ecKey();
  for (const ext of [smuggledSan(hidden, shown), smuggledSan(shown, hidden)]) {
    const r = await enroll(bearer, csrPem(craftCsr(key, { cn: 'svc-smuggle', attributes: [extensionRequest(ext)] })));
    t.assert.equal(r.status, 400, r.text);
    t.assert.deepEqual([r.json().error, r.json().reason], ['bad_csr', 'extensions']);
  }
  // The token was not spent: the same key with one honest SAN extension is issued exactly the URI.
  const fixed = await enroll(bearer, csrPem(craftCsr(key, { cn: 'svc-smuggle', attributes: [extensionRequest(san(gn.uri(granted)))] })));
  t.assert.equal(fixed.status, 201, fixed.text);
  t.assert.deepEqual(sansOf(fixed.text), [`url:${granted}`]);
  const seen = await callThrough(fixed.text, keyPem(key));
  t.assert.equal(seen['x-client-cert-san-uri'], granted);
});

test('duplicated or malformed extensions: two SANs, two extensionRequests, two basicConstraints, an extension with a non-BOOLEAN critical → 400 extensions', async (t: TestContext) => {
  t.plan(10);
  const granted = 'spiffe://example.org/svc-dup';
  const bearer = await token('--cn', 'svc-dup', '--san-uri', granted);
  const uri = san(gn.uri(granted));
  const bc = (ca: boolean): Buffer => extension(OID.BASIC_CONSTRAINTS, critical(), octets(Buffer.from(ca ? [0x30, 3, 1, 1, 0xff] : [0x30, 0])));
  const cases: Array<[string, Buffer[]]> = [
    ['two SAN extensions', [extensionRequest(uri, san(gn.upn('administrator@corp.example')))]],
    ['two extensionRequest attributes', [extensionRequest(uri), extensionRequest(san(gn.dirName('admin')))]],
    ['two basicConstraints (one CA:TRUE)', [extensionRequest(uri, bc(false), bc(true))]],
    ['critical is an INTEGER', [extensionRequest(extension(OID.SAN, Buffer.from([0x02, 1, 1]), octets(generalNames(gn.uri(granted)))))]],
    ['SAN extnValue with trailing bytes', [extensionRequest(extension(OID.SAN, octets(Buffer.concat([generalNames(gn.uri(granted)), generalNames(gn.dirName('admin'))]))))]],
  ];
  for (const [what, attributes] of cases) {
    const r = await enroll(bearer, csrPem(craftCsr(ecKey(), { cn: 'svc-dup', attributes })));
    t.assert.equal(r.status, 400, `${what}: ${r.text}`);
    t.assert.equal(r.json().reason, 'extensions', what);
  }
});

test('control characters and wildcards in SANs under a *.example.com grant: NUL, CR LF, space, "_" → 400 san_syntax; "*.example.com" itself → 403; a.example.com → 201', async (t: TestContext) => {
  t.plan(16);
  const bearer = await token('--cn', 'svc-dns', '--san-dns', '*.example.com', '--san-uri', 'spiffe://example.org/**');
  const ask = (...names: Buffer[]): Promise<Answer> => enroll(bearer, csrPem(craftCsr(ecKey(), { cn: 'svc-dns', attributes: [extensionRequest(san(...names))] })));
  for (const bad of [gn.dns('admin\0.example.com'), gn.dns('x\r\ny.example.com'), gn.dns('a b.example.com'), gn.dns('a_b.example.com'),
    gn.uri('spiffe://example.org/a\r\nx-admin: 1'), gn.uri('spiffe://example.org/a b')]) {
    const r = await ask(bad);
    t.assert.equal(r.status, 400, r.text);
    t.assert.deepEqual([r.json().error, r.json().reason], ['bad_csr', 'san_syntax']);
  }
  const wildcard = await ask(gn.dns('*.example.com'));
  t.assert.equal(wildcard.status, 403, wildcard.text);
  t.assert.match(String(wildcard.json().message), /SAN DNS "\*\.example\.com" is a wildcard/);
  const good = await ask(gn.dns('a.example.com'), gn.uri('spiffe://example.org/ns/a'));
  t.assert.equal(good.status, 201, good.text);
  t.assert.deepEqual(sansOf(good.text).sort(), ['dns:a.example.com', 'url:spiffe://example.org/ns/a']);
});

test('extensions the CSR asks for are never copied: CA:TRUE, keyCertSign, serverAuth, an unknown critical extension → only certgate\'s own; the audit line lists every issued name', async (t: TestContext) => {
  t.plan(9);
  const bearer = await token('--cn', 'svc-ext', '--ou', 'payments', '--san-uri', 'spiffe://example.org/svc-ext', '--san-dns', 'svc-ext.internal');
  const key = ecKey();
  const requested = extensionRequest(
    san(gn.dns('svc-ext.internal'), gn.uri('spiffe://example.org/svc-ext')),
    extension(OID.BASIC_CONSTRAINTS, critical(), octets(Buffer.from([0x30, 3, 1, 1, 0xff]))),
    extension(OID.KEY_USAGE, critical(), octets(Buffer.from([0x03, 2, 1, 0x06]))), // keyCertSign | cRLSign
    extension(OID.EKU, octets(Buffer.concat([Buffer.from([0x30, 10]), Buffer.from([0x06, 8, 0x2b, 6, 1, 5, 5, 7, 3, 1])]))), // serverAuth
    extension('1.3.6.1.4.1.99999.7', critical(), octets(Buffer.from([0x05, 0]))),
  );
  const subject = name(rdn(ava(OID.OU, 0x0c, 'payments')), rdn(ava(OID.CN, 0x0c, 'svc-ext')));
  const r = await enroll(bearer, csrPem(craftCsr(key, { subject, attributes: [requested] })));
  t.assert.equal(r.status, 201, r.text);
  const cert = new x509.X509Certificate(leafOf(r.text).raw);
  t.assert.deepEqual(cert.extensions.map((e) => e.type).sort(),
    ['2.5.29.14', '2.5.29.15', '2.5.29.17', '2.5.29.19', '2.5.29.35', '2.5.29.37'], 'SKI, keyUsage, SAN, basicConstraints, AKI, EKU: no foreign extension');
  t.assert.equal(leafOf(r.text).ca, false);
  t.assert.deepEqual(leafOf(r.text).keyUsage, [CLIENT_AUTH]);
  t.assert.ok(!(cert.getExtension(x509.KeyUsagesExtension)!.usages & x509.KeyUsageFlags.keyCertSign), 'no keyCertSign');
  t.assert.deepEqual(sansOf(r.text).sort(), ['dns:svc-ext.internal', 'url:spiffe://example.org/svc-ext']);
  const line = gate.logs.find('enrollment').filter((l) => l.result === 'issued').at(-1)!;
  t.assert.equal(line.subject, 'CN=svc-ext,OU=payments');
  t.assert.deepEqual(line.san, ['DNS:svc-ext.internal', 'URI:spiffe://example.org/svc-ext']);
  const seen = await callThrough(r.text, keyPem(key));
  t.assert.equal(seen['x-client-cert-san-dns'], 'svc-ext.internal');
});
