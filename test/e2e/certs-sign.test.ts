/**
 * `certgate certs sign --csr` (the operator's CLI path to a client certificate), run as an operator runs
 * it: `node dist/cli.js` in a child process, against a dev PKI made by `certs init`.
 *
 * Attack (issue 13 finding 5, on the CLI): the signing library read the CSR a second time and copied its
 * SAN extension. A CSR whose SAN Extension holds several values — the OID, one OCTET STRING with an
 * otherName UPN `administrator@corp.example` and a directoryName `CN=admin`, one with the URI the
 * operator expects — was signed with the hidden names, and the operator saw none of them. Now the CSR is
 * read once, by enrollment's parser (enroll/csr.ts): a malformed or duplicated extension, a SAN outside
 * its type's syntax (a NUL, CR LF) or of a kind certgate does not issue (otherName, directoryName) is
 * refused with CG_CSR_INVALID (exit 1, nothing printed on stdout or written); an honest request gets a
 * certificate certgate builds itself — the CSR's key, its subject, its checked SANs, certgate's own
 * extensions — and every name issued is printed. The honest certificate then goes through a real
 * certgate, whose upstream sees exactly those names.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { OID, craftCsr, critical, csrPem, ecKey, extension, extensionRequest, generalNames, gn, keyPem, octets, san, smuggledSan } from '../helpers/csr.js';
import { ava, name, rdn } from '../helpers/openssl.js';
import { startRecordingUpstream, startTestCertgate, type RecordingUpstream, type RunningCertgate } from '../helpers/certgate.js';
import { mtlsRequest } from '../helpers/client.js';
import { CLI, REPO } from '../helpers/serve.js';
import { runCommand, type Run } from '../helpers/run.js';

const T = { timeout: 30_000 };
const GRANTED = 'spiffe://example.org/ns/prod/sa/svc-b';
const CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';

let dir: string;
let n = 0;

/** The real CLI, as an operator runs it (the shared runner: exit code, stdout, stderr; killed after 20 s). */
function cli(...args: string[]): Promise<Run> {
  return runCommand(process.execPath, [CLI, ...args], { cwd: REPO, env: process.env, timeoutMs: 20_000 });
}

/** Writes the CSR and runs `certs sign --out`; returns the run and where the chain would be. */
async function sign(der: Buffer): Promise<Run & { out: string }> {
  const csr = path.join(dir, `req-${++n}.csr`);
  const out = path.join(dir, `req-${n}.crt`);
  writeFileSync(csr, csrPem(der));
  return { ...(await cli('certs', 'sign', '--dir', dir, '--csr', csr, '--out', out)), out };
}

function assertRefused(r: Run & { out: string }, what: RegExp): void {
  assert.equal(r.code, 1, `exit 1 (like the other certs errors): ${r.stdout}${r.stderr}`);
  assert.match(r.stderr, /\[CG_CSR_INVALID\]/);
  assert.match(r.stderr, what);
  assert.equal(r.stdout, '', 'nothing printed');
  assert.ok(!existsSync(r.out), 'no certificate written');
}

before(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'certgate-sign-'));
  const init = await cli('certs', 'init', '--dir', dir);
  assert.equal(init.code, 0, init.stderr);
});
after(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('attack: certs sign --csr with the review\'s 3-element SAN extension (UPN + DirName hidden beside the shown URI) is refused, in either order', T, async () => {
  const hidden = generalNames(gn.upn('administrator@corp.example'), gn.dirName('admin'), gn.uri(GRANTED));
  const shown = generalNames(gn.uri(GRANTED));
  for (const ext of [smuggledSan(hidden, shown), smuggledSan(shown, hidden)]) {
    const r = await sign(craftCsr(ecKey(), { cn: 'svc-b', attributes: [extensionRequest(ext)] }));
    assertRefused(r, /extension subjectAltName is not \{OID, critical BOOLEAN \(optional\), OCTET STRING value\}/);
    assert.doesNotMatch(r.stdout + r.stderr, /BEGIN CERTIFICATE/);
  }
});

test('attack: certs sign --csr with duplicated or malformed extensions (two SANs, two extensionRequests, trailing bytes) is refused', T, async () => {
  const uri = san(gn.uri(GRANTED));
  const cases: Array<[Buffer[], RegExp]> = [
    [[extensionRequest(uri, san(gn.upn('administrator@corp.example')))], /appears twice/],
    [[extensionRequest(uri), extensionRequest(san(gn.dirName('admin')))], /two extensionRequest/],
    [[extensionRequest(extension(OID.SAN, octets(Buffer.concat([generalNames(gn.uri(GRANTED)), generalNames(gn.dirName('admin'))]))))], /subjectAltName extension is malformed/],
    [[extensionRequest(extension(OID.SAN, Buffer.from([0x02, 1, 1]), octets(generalNames(gn.uri(GRANTED)))))], /not \{OID, critical BOOLEAN/],
  ];
  for (const [attributes, what] of cases) assertRefused(await sign(craftCsr(ecKey(), { cn: 'svc-b', attributes })), what);
});

test('attack: certs sign --csr asking, in a well-formed extension, for names certgate does not issue (otherName UPN, directoryName) is refused, naming them', T, async () => {
  const r = await sign(craftCsr(ecKey(), { cn: 'svc-b', attributes: [extensionRequest(san(gn.uri(GRANTED), gn.upn('administrator@corp.example'), gn.dirName('admin')))] }));
  assertRefused(r, /othername:1\.3\.6\.1\.4\.1\.311\.20\.2\.3.*DirName:CN=admin/);
});

test('attack: certs sign --csr with DNS names outside their syntax (admin\\0.example.com, x\\r\\ny.example.com) is refused', T, async () => {
  for (const bad of ['admin\0.example.com', 'x\r\ny.example.com']) {
    assertRefused(await sign(craftCsr(ecKey(), { cn: 'svc-b', attributes: [extensionRequest(san(gn.dns(bad)))] })), /SAN DNS .* has the label/);
  }
});

test('certs sign --csr asking for a wildcard (DNS *.example.com, URI …/*) or an email/IP name is refused, as enrollment refuses it', T, async () => {
  assertRefused(await sign(craftCsr(ecKey(), { cn: 'svc-b', attributes: [extensionRequest(san(gn.dns('*.example.com'), gn.uri('spiffe://example.org/ns/*')))] })),
    /SAN URI "spiffe:\/\/example.org\/ns\/\*" has a "\*".*SAN DNS "\*.example.com" is a wildcard/);
  assertRefused(await sign(craftCsr(ecKey(), { cn: 'svc-b', attributes: [extensionRequest(san(gn.email('a@example.org'), gn.ip([10, 0, 0, 1])))] })),
    /names certgate does not issue: email:a@example.org, IP:10.0.0.1/);
});

let upstream: RecordingUpstream | undefined;
let gate: RunningCertgate | undefined;
after(async () => {
  await gate?.close();
  await upstream?.close();
});

test('an honest CSR: certgate-built certificate (the CSR\'s key, subject and checked SANs, certgate\'s extensions, not the requested CA:TRUE/serverAuth); every name printed; a real certgate reads exactly those', T, async () => {
  const key = ecKey();
  const subject = name(rdn(ava('2.5.4.10', 0x0c, 'ext')), rdn(ava(OID.OU, 0x0c, 'payments')), rdn(ava(OID.CN, 0x0c, 'svc-b')));
  const asksForMore = [
    extension(OID.BASIC_CONSTRAINTS, critical(), octets(Buffer.from([0x30, 3, 1, 1, 0xff]))),
    extension(OID.EKU, octets(Buffer.from([0x30, 0x0a, 0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x01]))),
  ];
  const r = await sign(craftCsr(key, { subject, attributes: [extensionRequest(san(gn.uri(GRANTED), gn.dns('svc-b.internal')), ...asksForMore)] }));
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout.trim(), r.out);
  for (const shown of ['CN=svc-b,OU=payments,O=ext', `URI:${GRANTED}`, 'DNS:svc-b.internal']) assert.ok(r.stderr.includes(shown), `stderr names ${shown}: ${r.stderr}`);
  const chain = readFileSync(r.out, 'utf8');
  const leaf = new X509Certificate(chain);
  const ca = new X509Certificate(readFileSync(path.join(dir, 'ca.crt')));
  assert.ok(leaf.checkIssued(ca) && leaf.verify(ca.publicKey));
  assert.ok(leaf.checkPrivateKey(createPrivateKey(keyPem(key))), 'the CSR\'s key');
  assert.equal(leaf.subject, 'O=ext\nOU=payments\nCN=svc-b');
  assert.equal(leaf.subjectAltName, `DNS:svc-b.internal, URI:${GRANTED}`);
  assert.equal(leaf.ca, false, 'CA:TRUE asked for, not given');
  assert.deepEqual(leaf.keyUsage, [CLIENT_AUTH], 'serverAuth asked for, not given');

  // Through a real certgate trusting the dev CA: the upstream is told exactly these names.
  upstream = await startRecordingUpstream();
  gate = await startTestCertgate({ tls: { bundle: path.join(dir, 'server.pem'), client_ca: path.join(dir, 'ca.crt') }, routes: [{ upstream: upstream.url }] });
  const reply = await mtlsRequest(gate.url, { ca: readFileSync(path.join(dir, 'ca.crt'), 'utf8'), cert: chain, key: keyPem(key) }, { path: '/signed' });
  assert.equal(reply.status, 200, reply.body);
  const seen = upstream.requests.at(-1)!.headers;
  assert.equal(seen['x-client-cert-subject'], 'CN=svc-b,OU=payments,O=ext');
  assert.equal(seen['x-client-cert-san-uri'], GRANTED);
  assert.equal(seen['x-client-cert-san-dns'], 'svc-b.internal');
});
