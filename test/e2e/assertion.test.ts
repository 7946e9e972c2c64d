/**
 * headers.assertion (issue 18) over real TLS, HTTP/1.1, HTTP/2 and WebSocket, with a real upstream.
 *
 * Setup: a certgate with an ES256 signing key and an Ed25519 key published beside it, two routes (`api`,
 * audience = its name; `admin`, audience https://admin.internal), a CRL, and an admin token (the JWKS must
 * stay open like /healthz). The upstream records every request.
 *
 * What must hold, each written as the attack it stops:
 * - A verified request carries one X-Client-Cert-Assertion that verifies against GET /.well-known/jwks.json
 *   and says what the identity headers say (sub, cnf/x5t#S256, serial, SANs, not_after).
 * - A client sending its own X-Client-Cert-Assertion, in any spelling, over HTTP/1.1, HTTP/2 or an Upgrade,
 *   never reaches the upstream: the upstream sees exactly certgate's.
 * - Cheap: one signature per connection and route, shared by keep-alive requests and HTTP/2 streams;
 *   another connection or route signs its own (ES256 signatures are randomised, so equal strings = reuse).
 * - An assertion is never reused across a config reload (an allow list edit), across a key rotation (the
 *   key file rewritten, picked up by the watch), or for another route's audience. A bad key on reload keeps
 *   the old keys serving.
 * - A client revoked while its connection lives gets no assertion: its next request is refused, nothing
 *   reaches the upstream.
 * - `certgate assertion jwks --config F` prints the endpoint's JWKS; `certgate check` and `serve` refuse an
 *   RSA key with file:line.
 */
import { test, before, after, describe, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import https from 'node:https';
import { spawn } from 'node:child_process';
import { randomBytes, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { chmodSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify, type JSONWebKeySet, type JWTPayload } from 'jose';
import { createTestPki, type TestPki, type TestCert } from '../helpers/pki.js';
import { startTestCertgate, startRecordingUpstream, metricValue, type RunningCertgate, type RecordingUpstream, type RecordedRequest } from '../helpers/certgate.js';
import { mtlsRequest, rawTlsExchange, type ClientCreds, type Reply } from '../helpers/client.js';
import { h2Connect, h2Request } from '../helpers/h2.js';
import { clientFrame, WsTestClient } from '../helpers/websocket.js';
import { waitFor } from '../helpers/wait.js';
import { CLI, killServeChildren, spawnServe } from '../helpers/serve.js';
import { listenEchoUpstream } from '../../dist/echo-upstream.js';
import { createCrl, crlToPem, importSigningKey, parseCert } from '../../dist/pki/x509.js';

const T = { timeout: 60_000 };
const TOKEN = randomBytes(24).toString('hex');

let pki: TestPki;
let upstream: RecordingUpstream;
let echo: Awaited<ReturnType<typeof listenEchoUpstream>>;
let gate: RunningCertgate;
let dir: string;
let keyFile: string;
let nextFile: string;
let crlFile: string;
let victim: TestCert;
let revokingCrl: string;
let seq = 0;

const ec = (): KeyObject => generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
/** Written as a key rotation writes it: a temp file, then rename (0600). */
function writeKey(file: string, key: KeyObject): void {
  const tmp = `${file}.tmp-${++seq}`;
  writeFileSync(tmp, key.export({ format: 'pem', type: 'pkcs8' }), { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, file);
}

function settings(allowCn: readonly string[] = ['svc-a', 'svc-crl-victim']): Record<string, unknown> {
  return {
    tls: { bundle: pki.serverBundle.pemPath, client_ca: pki.clientCa.path, crl: crlFile, watch: false },
    whoami_path: '/.certgate/whoami',
    admin: { listen: '127.0.0.1:0', token_file: path.join(dir, 'admin-token') },
    headers: { assertion: { key_files: [keyFile, nextFile], issuer: 'certgate-test', ttl_ms: 60_000 } },
    routes: [
      { name: 'admin', path_prefix: '/admin', upstream: upstream.url, assertion_audience: 'https://admin.internal' },
      { name: 'ws', path_prefix: '/chat', upstream: echo.url },
      { name: 'api', upstream: upstream.url, allow: { subject_cn: allowCn } },
    ],
  };
}

before(async () => {
  pki = await createTestPki();
  [upstream, echo] = await Promise.all([startRecordingUpstream(), listenEchoUpstream('127.0.0.1', 0)]);
  dir = mkdtempSync(path.join(os.tmpdir(), 'certgate-assertion-'));
  keyFile = path.join(dir, 'assertion.key');
  nextFile = path.join(dir, 'next.key');
  writeKey(keyFile, ec());
  writeKey(nextFile, generateKeyPairSync('ed25519').privateKey);
  writeFileSync(path.join(dir, 'admin-token'), TOKEN, { mode: 0o600 });
  victim = await pki.issueClient({ name: 'assertion-victim', subject: [['CN', 'svc-crl-victim']] });
  const issuer = { cert: parseCert(pki.intermediate.cert), privateKey: await importSigningKey(pki.intermediate.key) };
  const [clean, revoking] = await Promise.all([
    createCrl({ issuer, crlNumber: 10n }),
    createCrl({ issuer, crlNumber: 11n, entries: [{ serial: victim.x509.serialNumber }] }),
  ]);
  crlFile = path.join(dir, 'crl.pem');
  writeFileSync(crlFile, crlToPem(clean) + pki.crlRootPem);
  revokingCrl = crlToPem(revoking) + pki.crlRootPem;
  gate = await startTestCertgate(settings());
});
after(async () => {
  killServeChildren();
  await gate?.close();
  await Promise.all([upstream?.close(), echo?.close()]);
  pki?.cleanup();
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
});

const creds = (c: TestCert): ClientCreds => ({ ca: pki.root.cert, cert: c.pem, key: c.key });

function keepAlive(t: TestContext): https.Agent {
  const agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
  t.after(() => agent.destroy());
  return agent;
}

async function jwks(): Promise<JSONWebKeySet> {
  const res = await fetch(`${gate.adminUrl}/.well-known/jwks.json`);
  assert.equal(res.status, 200);
  return await res.json() as JSONWebKeySet;
}

/** Verifies as an upstream would: against the published JWKS, issuer and this audience. */
async function verify(jws: string, audience: string): Promise<JWTPayload> {
  return (await jwtVerify(jws, createLocalJWKSet(await jwks()), { issuer: 'certgate-test', audience, algorithms: ['ES256', 'EdDSA'] })).payload;
}

/** GET `p` through certgate; returns the reply and what the upstream received for it. */
async function through(c: TestCert, p: string, agent?: https.Agent, headers: Record<string, string> = {}): Promise<{ reply: Reply; seen?: RecordedRequest }> {
  const reply = await mtlsRequest(gate.url, creds(c), { path: p, headers, ...(agent !== undefined && { agent }) });
  return { reply, seen: upstream.requests.find((r) => r.url === p) };
}

/** The assertion values (every spelling) the upstream received. */
function assertionsOf(seen: RecordedRequest | undefined): string[] {
  assert.ok(seen !== undefined, 'the request reached the upstream');
  return seen.rawHeaders.filter(([k]) => k.toLowerCase().replace(/[_.]/g, '-') === 'x-client-cert-assertion').map(([, v]) => v);
}

async function tokenOf(c: TestCert, p: string, agent?: https.Agent): Promise<string> {
  const { reply, seen } = await through(c, p, agent);
  assert.equal(reply.status, 200, reply.body);
  const values = assertionsOf(seen);
  assert.equal(values.length, 1, `exactly one assertion: ${JSON.stringify(values)}`);
  return values[0]!;
}

/** Rewrites the config file and applies it (as SIGHUP or POST /-/reload do). */
async function reloadConfig(s: Record<string, unknown>): Promise<string> {
  const tmp = `${gate.config.file}.tmp`;
  writeFileSync(tmp, stringify({ listen: '127.0.0.1:0', ...s }));
  renameSync(tmp, gate.config.file);
  const answer = await gate.app.reloadConfig!('test');
  return answer.result;
}

describe('what the upstream receives', () => {
  test('a verified request carries one assertion that verifies against the JWKS and says what the identity headers say', T, async () => {
    const p = `/claims/${++seq}`;
    const { reply, seen } = await through(pki.clients.good, p);
    assert.equal(reply.status, 200, reply.body);
    const [jws] = assertionsOf(seen);
    const claims = await verify(jws!, 'api');
    const h = seen!.headers;
    assert.equal(claims.sub, h['x-client-cert-subject']);
    assert.equal(claims.iss, 'certgate-test');
    assert.equal(claims.aud, 'api');
    assert.equal(claims.exp! - claims.iat!, 60);
    assert.equal(claims.nbf, claims.iat);
    const thumbprint = Buffer.from(String(h['x-client-cert-fingerprint']), 'hex').toString('base64url');
    assert.deepEqual(claims.cnf, { 'x5t#S256': thumbprint });
    assert.equal(claims['x5t#S256'], thumbprint);
    assert.equal(claims.serial, h['x-client-cert-serial']);
    assert.equal(claims.not_after, Date.parse(String(h['x-client-cert-not-after'])) / 1000);
    assert.deepEqual(claims.sans, { dns: ['svc-a.internal'], uri: ['spiffe://example.org/ns/prod/sa/svc-a'], email: [], ip: [] });
    assert.equal(h['x-client-cert-san-dns'], 'svc-a.internal');
    const header = decodeProtectedHeader(jws!);
    assert.equal(header.alg, 'ES256');
    assert.equal(header.kid, (await jwks()).keys[0]!.kid, 'the first key file signs');
  });

  test('the JWKS is open with admin.token_file set (like /healthz), and publishes every key file', T, async () => {
    assert.equal((await fetch(`${gate.adminUrl}/status.json`)).status, 401, 'precondition: the admin token is enforced');
    const res = await fetch(`${gate.adminUrl}/.well-known/jwks.json`);
    assert.equal(res.status, 200);
    assert.match(String(res.headers.get('content-type')), /application\/json/);
    const set = await res.json() as JSONWebKeySet;
    assert.deepEqual(set.keys.map((k) => [k.kty, k.alg, k.use]), [['EC', 'ES256', 'sig'], ['OKP', 'EdDSA', 'sig']]);
    for (const k of set.keys) assert.equal(k.d, undefined, 'no private member');
  });

  test('a route\'s assertion_audience is its aud; an assertion for one route does not verify for another', T, async () => {
    const jws = await tokenOf(pki.clients.good, `/admin/${++seq}`);
    assert.equal((await verify(jws, 'https://admin.internal')).aud, 'https://admin.internal');
    await assert.rejects(verify(jws, 'api'), /aud/);
  });
});

test('attack: a client never obtains a signed assertion from certgate itself (whoami_path shows the headers without it)', T, async () => {
  // A token handed to the client could be replayed around certgate, to a route its allow list refuses.
  const reply = await mtlsRequest(gate.url, creds(pki.clients.direct), { path: '/.certgate/whoami' });
  assert.equal(reply.status, 200, reply.body);
  assert.ok(reply.body.includes('x-client-cert-subject'), reply.body);
  assert.ok(!/x-client-cert-assertion|eyJ/i.test(reply.body), `no assertion in certgate's own answer: ${reply.body}`);
});

describe('attack: a client sends its own X-Client-Cert-Assertion', () => {
  const SPELLINGS = ['X-Client-Cert-Assertion', 'x-client-cert-assertion', 'X_Client_Cert_Assertion', 'x.client.cert.assertion', 'X-CLIENT-CERT-ASSERTION', 'X-Client_Cert.Assertion'];

  test('HTTP/1.1: no spelling reaches the upstream; it sees exactly certgate\'s assertion', T, async () => {
    const p = `/forged/h1/${++seq}`;
    const lines = SPELLINGS.map((s, i) => `${s}: forged-${i}.eyJzdWIiOiJDTj1hZG1pbiJ9.sig`);
    await rawTlsExchange('127.0.0.1', gate.port, creds(pki.clients.good), [`GET ${p} HTTP/1.1`, `Host: localhost:${gate.port}`, ...lines, 'Connection: close', '', ''].join('\r\n'));
    const seen = upstream.requests.find((r) => r.url === p);
    const values = assertionsOf(seen);
    assert.equal(values.length, 1, JSON.stringify(seen!.rawHeaders));
    assert.ok(!values[0]!.startsWith('forged'));
    await verify(values[0]!, 'api');
    for (const [k, v] of seen!.rawHeaders) assert.ok(!v.includes('forged'), `forged value reached the upstream: ${k}: ${v}`);
  });

  test('HTTP/2: no spelling reaches the upstream', T, async () => {
    const session = await h2Connect(gate.url, creds(pki.clients.good));
    try {
      const p = `/forged/h2/${++seq}`;
      const forged = Object.fromEntries(SPELLINGS.map((s, i) => [s.toLowerCase(), `forged-${i}`]));
      const reply = await h2Request(session, { ':path': p, ...forged });
      assert.equal(reply.status, 200, reply.body);
      const seen = upstream.requests.find((r) => r.url === p);
      assert.equal(assertionsOf(seen).length, 1);
      await verify(assertionsOf(seen)[0]!, 'api');
      for (const [k, v] of seen!.rawHeaders) assert.ok(!v.includes('forged'), `forged value reached the upstream: ${k}: ${v}`);
    } finally {
      session.close();
    }
  });

  test('WebSocket Upgrade: the tunnel\'s upstream sees certgate\'s assertion (aud: its route), not the client\'s', T, async () => {
    const c = await WsTestClient.connectTls(gate.port, creds(pki.clients.good));
    try {
      c.socket.write([
        'GET /chat/1 HTTP/1.1', `Host: localhost:${gate.port}`, 'Upgrade: websocket', 'Connection: Upgrade',
        `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}`, 'Sec-WebSocket-Version: 13',
        'X-Client-Cert-Assertion: forged-ws', 'X_Client_Cert_Assertion: forged-ws-underscore', '', '',
      ].join('\r\n'));
      assert.equal((await c.head()).status, 101);
      const hello = JSON.parse((await c.frame()).payload.toString('utf8')) as { raw_headers: [string, string][] };
      const values = hello.raw_headers.filter(([k]) => k.toLowerCase().replace(/[_.]/g, '-') === 'x-client-cert-assertion').map(([, v]) => v);
      assert.equal(values.length, 1, JSON.stringify(hello.raw_headers));
      assert.equal((await verify(values[0]!, 'ws')).aud, 'ws');
    } finally {
      c.socket.destroy();
    }
  });
  test('WebSocket Upgrade: a frame sent right behind the upgrade request, while the assertion is being signed, reaches the upstream (no bytes dropped)', T, async () => {
    // A new connection: its assertion is not cached, so the tunnel waits for a signature with the client's
    // early bytes already arrived. They must wait in the socket, not flow to no listener.
    const c = await WsTestClient.connectTls(gate.port, creds(pki.clients.good));
    try {
      // Two TLS records: the frame arrives as its own read, after the request (not in the upgrade's `head`).
      c.socket.write([
        'GET /chat/early HTTP/1.1', `Host: localhost:${gate.port}`, 'Upgrade: websocket', 'Connection: Upgrade',
        `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}`, 'Sec-WebSocket-Version: 13', '', '',
      ].join('\r\n'), () => c.socket.write(clientFrame(0x1, Buffer.from('sent-before-101'))));
      assert.equal((await c.head()).status, 101);
      await c.frame(); // the echo upstream's hello (the headers it received)
      const echoed = await c.frame();
      assert.equal(echoed.payload.toString('utf8'), 'sent-before-101');
    } finally {
      c.socket.destroy();
    }
  });
});

describe('one signature per connection and route', () => {
  test('keep-alive requests reuse the connection\'s assertion; another route and another connection sign their own', T, async (t) => {
    const agent = keepAlive(t);
    const a1 = await tokenOf(pki.clients.good, `/reuse/${++seq}`, agent);
    const a2 = await tokenOf(pki.clients.good, `/reuse/${++seq}`, agent);
    assert.equal(a2, a1, 'the same connection and route: the same assertion (no new signature)');
    const admin = await tokenOf(pki.clients.good, `/admin/reuse/${++seq}`, agent);
    assert.notEqual(admin, a1, 'another route on the same connection signs its own');
    const other = await tokenOf(pki.clients.good, `/reuse/${++seq}`);
    assert.notEqual(other, a1, 'another connection signs its own (ES256 signatures are randomised)');
  });

  test('HTTP/2: the streams of one session, sent together, share one assertion', T, async () => {
    const session = await h2Connect(gate.url, creds(pki.clients.good));
    try {
      const paths = Array.from({ length: 8 }, () => `/h2/share/${++seq}`);
      const replies = await Promise.all(paths.map((p) => h2Request(session, { ':path': p })));
      for (const r of replies) assert.equal(r.status, 200, r.body);
      const tokens = new Set(paths.map((p) => assertionsOf(upstream.requests.find((r) => r.url === p))[0]));
      assert.equal(tokens.size, 1, `one assertion for the session's streams, got ${tokens.size}`);
    } finally {
      session.close();
    }
  });
});

describe('never reused across a reload or a trust change', () => {
  test('attack: an allow list edit applied live re-signs on the same connection (no assertion from the old config)', T, async (t) => {
    const agent = keepAlive(t);
    const before = await tokenOf(pki.clients.good, `/reload/${++seq}`, agent);
    assert.equal(await reloadConfig(settings(['svc-a', 'svc-crl-victim', 'svc-new'])), 'success');
    const after = await tokenOf(pki.clients.good, `/reload/${++seq}`, agent);
    assert.notEqual(after, before, 'a new config generation signs anew');
    await verify(after, 'api');
    // And the edit that removes this client: refused, no assertion at all.
    assert.equal(await reloadConfig(settings(['svc-crl-victim'])), 'success');
    const p = `/reload/refused/${++seq}`;
    const { reply, seen } = await through(pki.clients.good, p, agent);
    assert.equal(reply.status, 403, reply.body);
    assert.equal(seen, undefined, 'refused: nothing reached the upstream');
    assert.equal(await reloadConfig(settings()), 'success');
  });

  test('a rotated key file is picked up by the watch: the new key signs, on the same connection too; a bad key keeps the old ones serving', T, async (t) => {
    const agent = keepAlive(t);
    const oldKid = (await jwks()).keys[0]!.kid;
    const before = await tokenOf(pki.clients.good, `/rotate/${++seq}`, agent);
    writeKey(keyFile, ec());
    const newKid = await waitFor(async () => {
      const kid = (await jwks()).keys[0]!.kid;
      return kid !== oldKid && kid;
    }, 'the rotated key to be published (config_watch follows the key files)', 10_000);
    const after = await tokenOf(pki.clients.good, `/rotate/${++seq}`, agent);
    assert.notEqual(after, before);
    assert.equal(decodeProtectedHeader(after).kid, newKid, 'the rotated key signs at once');
    await verify(after, 'api');

    const failures = metricValue(await (await fetch(`${gate.adminUrl}/metrics`)).text(), 'certgate_config_reloads_total', { result: 'failure' }) ?? 0;
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
    writeKey(keyFile, rsa);
    const answer = await gate.app.reloadConfig!('test');
    assert.equal(answer.result, 'failure');
    assert.equal(answer.problems?.[0]?.code, 'CG_ASSERTION_KEY');
    assert.match(String(answer.problems?.[0]?.message), /key_files\[0\].*RSA 2048-bit key cannot sign assertions/);
    assert.ok((metricValue(await (await fetch(`${gate.adminUrl}/metrics`)).text(), 'certgate_config_reloads_total', { result: 'failure' }) ?? 0) > failures);
    assert.equal((await jwks()).keys[0]!.kid, newKid, 'the JWKS still publishes the serving keys');
    const still = await tokenOf(pki.clients.good, `/rotate/${++seq}`, agent);
    assert.equal(decodeProtectedHeader(still).kid, newKid, 'the last good key still signs');
    assert.equal(still, after, 'nothing changed for the serving generation: its cached assertion stands');
    writeKey(keyFile, ec());
    await waitFor(async () => (await jwks()).keys[0]!.kid !== newKid, 'a good key to be picked up again', 10_000);
  });

  test('attack: a client revoked while its connection lives gets no assertion: refused, nothing forwarded', T, async (t) => {
    const agent = keepAlive(t);
    await tokenOf(victim, `/revoke/${++seq}`, agent);
    writeFileSync(crlFile, revokingCrl);
    assert.equal((await gate.app.reload('signal')).result, 'success');
    const p = `/revoke/after/${++seq}`;
    const { reply, seen } = await through(victim, p, agent);
    assert.equal(reply.status, 400, reply.body);
    assert.equal(reply.json().reason, 'revoked');
    assert.equal(seen, undefined, 'the revoked client\'s request never reached the upstream');
    // Other clients of the same CA: a new trust generation, a new assertion.
    await verify(await tokenOf(pki.clients.good, `/revoke/other/${++seq}`), 'api');
  });
});

describe('CLI', () => {
  function run(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
    return new Promise((resolve) => {
      const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      child.on('close', (code) => resolve({ code, stdout, stderr }));
    });
  }

  test('certgate assertion jwks --config F prints the JWKS the admin listener serves', T, async () => {
    const out = await run(['assertion', 'jwks', '--config', gate.config.file]);
    assert.equal(out.code, 0, out.stderr);
    assert.deepEqual(JSON.parse(out.stdout), await jwks());
  });

  test('workers: 2: the primary publishes the keys the workers sign with, and a rotated key reaches both', T, async () => {
    const cdir = mkdtempSync(path.join(os.tmpdir(), 'certgate-assertion-cluster-'));
    try {
      const clusterKey = path.join(cdir, 'assertion.key');
      writeKey(clusterKey, ec());
      const serving = await spawnServe(cdir, {
        listen: '127.0.0.1:0', admin: { listen: '127.0.0.1:0' }, workers: 2,
        tls: { bundle: pki.serverBundle.pemPath, client_ca: pki.clientCa.path },
        headers: { assertion: { key_files: [clusterKey] } },
        routes: [{ name: 'api', upstream: upstream.url }],
      }, 30_000);
      const published = async (): Promise<JSONWebKeySet> => await (await fetch(`${serving.admin}/.well-known/jwks.json`)).json() as JSONWebKeySet;
      const signedKids = async (n: number): Promise<Set<string>> => {
        const kids = new Set<string>();
        for (let i = 0; i < n; i++) {
          const p = `/cluster/${++seq}`;
          const reply = await mtlsRequest(serving.url.href, creds(pki.clients.good), { path: p });
          assert.equal(reply.status, 200, reply.body);
          const jws = assertionsOf(upstream.requests.find((r) => r.url === p))[0]!;
          await jwtVerify(jws, createLocalJWKSet(await published()), { issuer: 'certgate', audience: 'api' });
          kids.add(String(decodeProtectedHeader(jws).kid));
        }
        return kids;
      };
      const first = (await published()).keys[0]!.kid!;
      assert.deepEqual([...await signedKids(6)], [first], 'every worker signs with the published key');
      writeKey(clusterKey, ec());
      const rotated = await waitFor(async () => {
        const kid = (await published()).keys[0]!.kid;
        return kid !== first && kid;
      }, 'the primary to publish the rotated key', 15_000);
      await waitFor(async () => {
        const kids = await signedKids(4);
        return kids.size === 1 && kids.has(rotated);
      }, 'every worker to sign with the rotated key', 15_000);
      serving.child.kill('SIGTERM');
      assert.equal((await serving.exited).code, 0);
    } finally {
      rmSync(cdir, { recursive: true, force: true });
    }
  });

  test('an RSA key: certgate check names file:line and the fix (exit 1), serve refuses to start (exit 2)', T, async () => {
    const bad = mkdtempSync(path.join(os.tmpdir(), 'certgate-assertion-bad-'));
    try {
      const rsaFile = path.join(bad, 'rsa.key');
      writeKey(rsaFile, generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey);
      const file = path.join(bad, 'certgate.yaml');
      writeFileSync(file, stringify({
        listen: '127.0.0.1:0', admin: { listen: '127.0.0.1:0' }, workers: 1,
        tls: { bundle: pki.serverBundle.pemPath, client_ca: pki.clientCa.path },
        headers: { assertion: { key_files: [rsaFile] } },
        routes: [{ upstream: upstream.url }],
      }));
      const check = await run(['check', '--config', file]);
      assert.equal(check.code, 1);
      assert.match(check.stdout, new RegExp(`error: ${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:\\d+: headers\\.assertion\\.key_files\\[0\\] .*rsa\\.key: an RSA 2048-bit key cannot sign assertions: use an EC P-256 key.*\\[CG_ASSERTION_KEY\\]`));
      const serve = await run(['serve', '--config', file]);
      assert.equal(serve.code, 2, serve.stderr);
      assert.match(serve.stderr, /CG_ASSERTION_KEY/);
      const none = await run(['assertion', 'jwks', '--config', path.join(bad, 'none.yaml')]);
      assert.equal(none.code, 1);
    } finally {
      rmSync(bad, { recursive: true, force: true });
    }
  });
});
