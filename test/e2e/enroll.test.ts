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
import { openssl } from '../helpers/openssl.js';

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
