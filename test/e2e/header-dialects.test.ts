/**
 * Header dialects (issue 18) over real sockets: `headers.preset: aws-alb | nginx-ssl`, `headers.names`,
 * `headers.spiffe_id` and `headers.tls_info`, on HTTP/1.1 and on HTTP/2 streams, to an upstream that
 * records every header line it received. Expected values are worked out independently of certgate
 * (helpers/dialects.ts: the openssl CLI, Python's quote for AWS's Leaf rule). The dialect is live config:
 * a reload switches the next request's headers. And `certgate check` refuses a rename onto Host,
 * X-Forwarded-For or Content-Length at its file:line.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { createTestPki, type TestPki } from '../helpers/pki.js';
import {
  rewriteConfig, startTestCertgate, startRecordingUpstream, type RunningCertgate, type RecordingUpstream, type RecordedRequest,
} from '../helpers/certgate.js';
import { h2Once } from '../helpers/h2.js';
import type { ClientCreds } from '../helpers/client.js';
import { certFacts, pythonQuote, tlsExchange, type CertFacts } from '../helpers/dialects.js';

const T = { timeout: 30_000 };
const REPO = fileURLToPath(new URL('../../', import.meta.url));

let pki: TestPki;
let upstream: RecordingUpstream;
let alb: RunningCertgate;
let nginx: RunningCertgate;
let renamed: RunningCertgate;
let good: CertFacts;
let count = 0;

const tlsSettings = () => ({ bundle: pki.serverBundle.pemPath, client_ca: pki.clientCa.path, watch: false });
const routes = () => [{ name: 'api', upstream: upstream.url }];

before(async () => {
  pki = await createTestPki();
  upstream = await startRecordingUpstream();
  good = await certFacts(pki.clients.good.certPath);
  [alb, nginx, renamed] = await Promise.all([
    startTestCertgate({ tls: tlsSettings(), routes: routes(), headers: { preset: 'aws-alb', tls_info: true }, whoami_path: '/.certgate/whoami' }),
    startTestCertgate({ tls: tlsSettings(), routes: routes(), headers: { preset: 'nginx-ssl' } }),
    startTestCertgate({
      tls: tlsSettings(), routes: routes(),
      headers: { names: { 'X-Client-Cert-Subject': 'X-User-DN', 'x-client-cert-verified': 'X-Auth-Verified' }, spiffe_id: true, tls_info: true },
    }),
  ]);
});
after(async () => {
  await Promise.all([alb?.close(), nginx?.close(), renamed?.close(), upstream?.close()]);
  pki?.cleanup();
});

const goodClient = (): ClientCreds => ({ ca: pki.root.cert, cert: pki.clients.good.pem, key: pki.clients.good.key });

function recorded(path: string): RecordedRequest {
  const rec = upstream.requests.find((r) => r.url === path);
  assert.ok(rec !== undefined, `${path} reached the upstream`);
  return rec;
}

/** One header's values as the upstream received them (every line, any case). */
const linesOf = (rec: RecordedRequest, name: string): string[] => rec.rawHeaders.filter(([k]) => k.toLowerCase() === name).map(([, v]) => v);

/** One HTTP/1.1 request; the recorded request and the TLS the client negotiated. */
async function viaH1(gate: RunningCertgate, extra: readonly string[] = []) {
  const path = `/h1/${++count}`;
  const x = await tlsExchange(gate.port, goodClient(), [`GET ${path} HTTP/1.1`, 'Host: localhost', 'Connection: close', ...extra, '', ''].join('\r\n'));
  assert.match(x.raw, /^HTTP\/1\.1 200 /, x.raw.slice(0, 200));
  return { rec: recorded(path), version: x.version, cipher: x.cipher };
}

async function viaH2(gate: RunningCertgate) {
  const path = `/h2/${++count}`;
  const reply = await h2Once(gate.url, goodClient(), { ':path': path });
  assert.equal(reply.status, 200);
  return recorded(path);
}

async function expectAlb(rec: RecordedRequest): Promise<void> {
  const leaf = await pythonQuote(good.pem, '+=/');
  assert.ok(leaf.startsWith('-----BEGIN%20CERTIFICATE-----%0A'), leaf.slice(0, 40));
  const expected: Record<string, string> = {
    'x-amzn-mtls-clientcert-serial-number': good.serial,
    'x-amzn-mtls-clientcert-issuer': good.issuer,
    'x-amzn-mtls-clientcert-subject': good.subject,
    'x-amzn-mtls-clientcert-validity': `NotBefore=${good.notBefore};NotAfter=${good.notAfter}`,
    'x-amzn-mtls-clientcert-leaf': leaf,
  };
  for (const [name, value] of Object.entries(expected)) assert.deepEqual(linesOf(rec, name), [value], name);
  // aws-alb replaces certgate's identity headers: none of the default names reaches the upstream.
  assert.deepEqual(rec.rawHeaders.filter(([k]) => /^x-client-cert/i.test(k)), []);
}

test('preset aws-alb over HTTP/1.1: AWS\'s five verify-mode headers, byte for byte, and the connection\'s TLS facts', T, async () => {
  const { rec, version, cipher } = await viaH1(alb);
  await expectAlb(rec);
  assert.deepEqual(linesOf(rec, 'x-client-tls-version'), [version]);
  assert.deepEqual(linesOf(rec, 'x-client-tls-cipher'), [cipher]);
  assert.match(version, /^TLSv1\.[23]$/);
});

test('preset aws-alb over HTTP/2: the same headers on a stream', T, async () => {
  const rec = await viaH2(alb);
  await expectAlb(rec);
  assert.deepEqual(linesOf(rec, 'x-client-tls-version'), ['TLSv1.3']);
  assert.equal(linesOf(rec, 'x-client-tls-cipher').length, 1);
});

test('whoami_path (certgate probe) shows the preset\'s headers the upstream would see', T, async () => {
  const reply = await h2Once(alb.url, goodClient(), { ':path': '/.certgate/whoami' });
  assert.equal(reply.status, 200, reply.body);
  const headers = reply.json<{ headers: Record<string, string> }>().headers;
  assert.equal(headers['x-amzn-mtls-clientcert-subject'], good.subject);
  assert.equal(headers['x-amzn-mtls-clientcert-serial-number'], good.serial);
  assert.equal(headers['x-client-tls-version'], 'TLSv1.3');
  assert.equal(headers['x-client-cert-subject'], undefined);
});

test('headers.tls_info reports each connection\'s own protocol and cipher (a TLS 1.2 client gets its cipher)', T, async () => {
  const path = `/h1/${++count}`;
  const x = await tlsExchange(alb.port, goodClient(), `GET ${path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`,
    { maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-AES256-GCM-SHA384' });
  assert.match(x.raw, /^HTTP\/1\.1 200 /);
  const rec = recorded(path);
  assert.deepEqual(linesOf(rec, 'x-client-tls-version'), ['TLSv1.2']);
  assert.deepEqual(linesOf(rec, 'x-client-tls-cipher'), ['ECDHE-ECDSA-AES256-GCM-SHA384']);
});

async function expectNginx(rec: RecordedRequest): Promise<void> {
  const expected: Record<string, string> = {
    'x-ssl-client-verify': 'SUCCESS',
    'x-ssl-client-s-dn': good.subject,
    'x-ssl-client-i-dn': good.issuer,
    'x-ssl-client-serial': good.serial,
    'x-ssl-client-fingerprint': good.sha1,
    'x-ssl-client-cert': await pythonQuote(good.pem, ''),
  };
  for (const [name, value] of Object.entries(expected)) assert.deepEqual(linesOf(rec, name), [value], name);
  assert.deepEqual(rec.rawHeaders.filter(([k]) => /^x-client-(cert|tls)/i.test(k)), []);
}

test('preset nginx-ssl over HTTP/1.1: the X-SSL-Client-* set with nginx\'s formats (SHA-1 fingerprint, escaped PEM)', T, async () => {
  await expectNginx((await viaH1(nginx)).rec);
});

test('preset nginx-ssl over HTTP/2', T, async () => {
  await expectNginx(await viaH2(nginx));
});

async function expectRenamed(rec: RecordedRequest): Promise<void> {
  assert.deepEqual(linesOf(rec, 'x-user-dn'), [good.subject]);
  assert.deepEqual(linesOf(rec, 'x-auth-verified'), ['SUCCESS']);
  assert.deepEqual(linesOf(rec, 'x-client-cert-subject'), [], 'renamed: the old name is not sent');
  assert.deepEqual(linesOf(rec, 'x-client-cert-verified'), []);
  assert.deepEqual(linesOf(rec, 'x-client-cert-issuer'), [good.issuer], 'the others keep their names');
  assert.deepEqual(linesOf(rec, 'x-client-cert-spiffe-id'), ['spiffe://example.org/ns/prod/sa/svc-a']);
}

test('headers.names and spiffe_id over HTTP/1.1: renamed headers under their new names only, the one SPIFFE ID', T, async () => {
  const { rec, version } = await viaH1(renamed);
  await expectRenamed(rec);
  assert.deepEqual(linesOf(rec, 'x-client-tls-version'), [version]);
});

test('headers.names and spiffe_id over HTTP/2', T, async () => {
  const rec = await viaH2(renamed);
  await expectRenamed(rec);
  assert.deepEqual(linesOf(rec, 'x-client-tls-version'), ['TLSv1.3']);
});

test('headers.spiffe_id: a certificate without a spiffe:// URI SAN gets no X-Client-Cert-Spiffe-Id', T, async () => {
  const path = `/h1/${++count}`;
  const x = await tlsExchange(renamed.port, { ca: pki.root.cert, cert: pki.clients.direct.pem, key: pki.clients.direct.key },
    `GET ${path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`);
  assert.match(x.raw, /^HTTP\/1\.1 200 /);
  assert.deepEqual(linesOf(recorded(path), 'x-client-cert-spiffe-id'), []);
  assert.deepEqual(linesOf(recorded(path), 'x-user-dn'), ['CN=svc-direct']);
});

test('client_auth: optional, no certificate: nginx-ssl says X-SSL-Client-Verify: NONE, aws-alb sends none of its headers; tls_info still', T, async () => {
  const optional = { ...tlsSettings(), client_auth: 'optional' };
  const [n, a] = await Promise.all([
    startTestCertgate({ tls: optional, routes: routes(), headers: { preset: 'nginx-ssl', tls_info: true } }),
    startTestCertgate({ tls: optional, routes: routes(), headers: { preset: 'aws-alb', tls_info: true } }),
  ]);
  try {
    const anonymous = async (gate: RunningCertgate): Promise<RecordedRequest> => {
      const path = `/anon/${++count}`;
      const x = await tlsExchange(gate.port, { ca: pki.root.cert }, `GET ${path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nX-SSL-Client-Verify: SUCCESS\r\nX-Amzn-Mtls-Clientcert-Subject: CN=admin\r\n\r\n`);
      assert.match(x.raw, /^HTTP\/1\.1 200 /, x.raw.slice(0, 200));
      return recorded(path);
    };
    const fromNginx = await anonymous(n);
    assert.deepEqual(linesOf(fromNginx, 'x-ssl-client-verify'), ['NONE']);
    assert.deepEqual(fromNginx.rawHeaders.filter(([k]) => /^x-ssl|^x-amzn|^x-client-cert/i.test(k)).map(([k]) => k.toLowerCase()), ['x-ssl-client-verify']);
    assert.equal(linesOf(fromNginx, 'x-client-tls-version').length, 1);
    const fromAlb = await anonymous(a);
    assert.deepEqual(fromAlb.rawHeaders.filter(([k]) => /^x-ssl|^x-amzn|^x-client-cert/i.test(k)), []);
    assert.equal(linesOf(fromAlb, 'x-client-tls-cipher').length, 1);
  } finally {
    await Promise.all([n.close(), a.close()]);
  }
});

test('the dialect is live config: a reload to another preset changes the next request\'s headers, a bad rename changes nothing', T, async () => {
  const gate = await startTestCertgate({ tls: tlsSettings(), routes: routes(), headers: { preset: 'nginx-ssl' } });
  try {
    const body = (headers: Record<string, unknown>): string => stringify({
      listen: '127.0.0.1:0', admin: { listen: '127.0.0.1:0' }, tls: tlsSettings(), routes: routes(), headers,
    });
    assert.deepEqual(linesOf((await viaH1(gate)).rec, 'x-ssl-client-verify'), ['SUCCESS']);
    const bad = await rewriteConfig(gate, body({ preset: 'aws-alb', names: { 'X-Amzn-Mtls-Clientcert-Subject': 'Host' } }));
    assert.equal(bad.status, 422);
    assert.match(JSON.stringify(bad.json.problems), /headers\.names\.X-Amzn-Mtls-Clientcert-Subject: \\"Host\\" has a meaning of its own/);
    assert.deepEqual(linesOf((await viaH1(gate)).rec, 'x-ssl-client-verify'), ['SUCCESS'], 'the old dialect keeps serving');
    const ok = await rewriteConfig(gate, body({ preset: 'aws-alb', names: { 'X-Amzn-Mtls-Clientcert-Subject': 'X-Subject' } }));
    assert.equal(ok.status, 200, JSON.stringify(ok.json));
    const after = (await viaH1(gate)).rec;
    assert.deepEqual(linesOf(after, 'x-subject'), [good.subject]);
    assert.deepEqual(linesOf(after, 'x-ssl-client-verify'), []);
    assert.equal(linesOf(after, 'x-amzn-mtls-clientcert-leaf').length, 1);
  } finally {
    await gate.close();
  }
});

test('certgate check refuses headers.names onto Host, X-Forwarded-For and Content-Length, each at its file:line with a fix', T, async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'certgate-names-'));
  try {
    const file = path.join(dir, 'certgate.yaml');
    writeFileSync(file, [
      'tls:', `  bundle: ${pki.serverBundle.pemPath}`, `  client_ca: ${pki.clientCa.path}`,
      'routes:', '  - upstream: http://127.0.0.1:3000',
      'headers:', '  preset: nginx-ssl', '  names:',
      '    X-SSL-Client-S-DN: Host', '    X-SSL-Client-I-DN: X-Forwarded-For', '    X-SSL-Client-Serial: Content-Length', '',
    ].join('\n'));
    const env: NodeJS.ProcessEnv = {};
    for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('CERTGATE_')) env[k] = v;
    const run = await new Promise<{ code: number | null; out: string }>((resolve, reject) => {
      const child = spawn(process.execPath, [path.join(REPO, 'dist', 'cli.js'), 'check', '--config', file], { cwd: REPO, env, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
      child.stderr.setEncoding('utf8').on('data', (d: string) => (out += d));
      child.once('error', reject);
      child.once('close', (code) => resolve({ code, out }));
    });
    assert.notEqual(run.code, 0, run.out);
    assert.match(run.out, new RegExp(`${file.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}:9:24: headers\\.names\\.X-SSL-Client-S-DN: "Host" has a meaning of its own[^\\n]*fix: choose a name of your own`));
    assert.match(run.out, /certgate\.yaml:10:24: headers\.names\.X-SSL-Client-I-DN: "X-Forwarded-For" has a meaning of its own/);
    assert.match(run.out, /certgate\.yaml:11:26: headers\.names\.X-SSL-Client-Serial: "Content-Length" has a meaning of its own/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
