/**
 * Issue 13, findings 4 and 9, over real TLS: a client with a valid but low-privilege certificate
 * (CN=svc-a) tries to reach an allow-listed upstream through the open catch-all route.
 *
 * Finding 4, malformed Host: the `admin.example.com` route has an allow list; `Host:
 * admin.example.com:1:2` (and the other spellings below) matched no host route, so the catch-all
 * forwarded it, and an upstream that cuts at the first ":" (or takes the first X-Forwarded-Host
 * element, Express `trust proxy`) served its admin virtual host. Now: 400 invalid_host before routing,
 * on plain requests, HTTP/1.0 requests and WebSocket upgrades alike; nothing reaches any upstream.
 * A valid Host is still forwarded byte for byte, and X-Forwarded-Host is that same value.
 *
 * Finding 9, names folded upstream: `/admin.`, `/admin%20`, `/admin::$DATA`, `/admin%3b`,
 * `/x/%252e%252e/admin` matched the catch-all (not `/admin`) and were forwarded as they are; a
 * Windows/IIS, trimming, double-decoding or decode-then-strip-params upstream served `/admin`. Now:
 * 400 with a reason by default; `strict_paths: false` forwards them as before.
 *
 * whoami_path (certgate's own answer, never forwarded) was answered right after the connection's
 * verdict, before the Host checks: `Host: admin.example.com:1:2` got 200 there and 400 on every other
 * path, on HTTP/1.1, HTTP/2 and upgrades. Now it is a step of admit after verdict → path → host, so
 * the same refusals (same JSON, same reasons) apply to it.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import tls from 'node:tls';
import { randomBytes } from 'node:crypto';
import { createTestPki, type TestPki, type TestCert } from '../helpers/pki.js';
import { startTestCertgate, startRecordingUpstream, type RunningCertgate, type RecordingUpstream } from '../helpers/certgate.js';
import { mtlsRequest, rawTlsExchange, type ClientCreds } from '../helpers/client.js';
import { h2Once } from '../helpers/h2.js';
import { listenEchoUpstream } from '../../dist/echo-upstream.js';

const T = { timeout: 20_000 };
const WHOAMI = '/.certgate/whoami';

let pki: TestPki;
let adminUp: RecordingUpstream;
let openUp: RecordingUpstream;
let wsUp: Awaited<ReturnType<typeof listenEchoUpstream>>;
let upgradesSeen = 0;
let gate: RunningCertgate;
let lax: RunningCertgate;
let guarded: RunningCertgate;

/** The admin host and /admin are allow-listed (CN=svc-direct); /ws and everything else are open. */
const routes = () => [
  { name: 'admin-host', host: 'admin.example.com', path_prefix: '/', upstream: adminUp.url, allow: { subject_cn: ['svc-direct'] } },
  { name: 'admin-path', path_prefix: '/admin', upstream: adminUp.url, allow: { subject_cn: ['svc-direct'] } },
  { name: 'ws', path_prefix: '/ws', upstream: wsUp.url },
  { name: 'catch-all', path_prefix: '/', upstream: openUp.url },
];

before(async () => {
  pki = await createTestPki();
  [adminUp, openUp, wsUp] = await Promise.all([startRecordingUpstream(), startRecordingUpstream(), listenEchoUpstream('127.0.0.1', 0)]);
  wsUp.server.on('upgrade', () => upgradesSeen++);
  const tlsConfig = { bundle: pki.serverBundle.pemPath, client_ca: pki.clientCa.path };
  [gate, lax, guarded] = await Promise.all([
    startTestCertgate({ tls: tlsConfig, routes: routes(), whoami_path: WHOAMI }),
    startTestCertgate({ tls: tlsConfig, routes: routes(), strict_paths: false }),
    // README's pattern: the catch-all is allow-listed too, so names outside /admin are not open to all.
    startTestCertgate({
      tls: tlsConfig,
      routes: [
        { name: 'admin', path_prefix: '/admin', upstream: adminUp.url, allow: { subject_cn: ['svc-direct'] } },
        { name: 'payments', path_prefix: '/payments', upstream: adminUp.url, allow: { subject_cn: ['svc-a', 'svc-direct'] } },
        { name: 'catch-all', path_prefix: '/', upstream: adminUp.url, allow: { subject_cn: ['svc-direct'] } },
      ],
    }),
  ]);
});
after(async () => {
  await Promise.all([gate?.close(), lax?.close(), guarded?.close()]);
  await Promise.all([adminUp?.close(), openUp?.close(), wsUp?.close()]);
  pki?.cleanup();
});

const as = (c: TestCert): ClientCreds => ({ ca: pki.root.cert, cert: c.pem, key: c.key });
/** The attacker: a valid certificate that no allow list names. */
const attacker = () => as(pki.clients.good);
const seen = () => adminUp.requests.length + openUp.requests.length + upgradesSeen;

function answer(raw: string): { status: number; body: Record<string, unknown> } {
  const status = Number(/^HTTP\/1\.1 (\d{3}) /.exec(raw)?.[1] ?? 0);
  const text = raw.slice(raw.indexOf('\r\n\r\n') + 4);
  let body: Record<string, unknown> = {};
  try {
    body = JSON.parse(text) as Record<string, unknown>;
  } catch {
    // not JSON: the status assertion reports it
  }
  return { status, body };
}

/** Sends `head`, returns what came back: everything up to the server's close, or the head of a 101. */
function exchange(creds: ClientCreds, head: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    const socket = tls.connect({ host: '127.0.0.1', port: gate.port, servername: 'localhost', ...creds }, () => socket.write(head));
    socket.on('data', (c: Buffer) => {
      text += c.toString('latin1');
      // A tunnel that opened would stay open: the head of its 101 is all this test needs.
      if (/^HTTP\/1\.1 101 [^]*\r\n\r\n/.test(text)) socket.destroy();
    });
    socket.on('close', () => resolve(text));
    socket.on('error', (err) => (text === '' ? reject(err) : resolve(text)));
  });
}

const MALFORMED_HOSTS: readonly [host: string, how: string][] = [
  ['admin.example.com:1:2', 'a framework cutting at the first ":" dispatches to admin.example.com'],
  ['admin.example.com,www.example.com', 'Express trust proxy takes the first X-Forwarded-Host element'],
  ['x@admin.example.com', 'userinfo before the host'],
  ['admin.example.com/x', 'a path after the host'],
  ['admin.example.com..', 'two trailing dots'],
  ['admin.example.com;', 'a trailing ";"'],
  ['admin.example.com:', 'an empty port'],
  ['admin.example.com:99999', 'a port above 65535'],
  ['admin%2Eexample.com', 'percent-encoding'],
  ['ａdmin.example.com', 'fullwidth letters a WHATWG URL parser maps to admin.example.com'],
  ['admin.example.com x', 'a space and a second word'],
  ['[::1%25lo]', 'an IPv6 zone id'],
];

for (const [host, how] of MALFORMED_HOSTS) {
  test(`host-routed allow list bypass with Host ${JSON.stringify(host)} (${how}) → 400 invalid_host, nothing forwarded`, T, async () => {
    const before = seen();
    const raw = await rawTlsExchange('127.0.0.1', gate.port, attacker(), `GET /x HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
    const { status, body } = answer(raw);
    assert.equal(status, 400, raw);
    assert.equal(body.error, 'bad_request');
    assert.equal(body.reason, 'invalid_host');
    assert.match(String(body.message), /Host/);
    assert.match(raw, /\r\nconnection: close\r\n/i);
    assert.equal(seen(), before, 'no upstream may see a request with a malformed Host');
  });
}

test('host-routed allow list bypass over HTTP/1.0: a malformed Host is refused too (an absent one stays allowed)', T, async () => {
  const before = seen();
  const raw = await rawTlsExchange('127.0.0.1', gate.port, attacker(), 'GET /x HTTP/1.0\r\nHost: admin.example.com:1:2\r\n\r\n');
  assert.equal(answer(raw).status, 400, raw);
  assert.equal(answer(raw).body.reason, 'invalid_host');
  assert.equal(seen(), before);
  const bare = await rawTlsExchange('127.0.0.1', gate.port, attacker(), 'GET /x HTTP/1.0\r\n\r\n');
  assert.equal(answer(bare).status, 200, bare);
  assert.equal(seen(), before + 1, 'HTTP/1.0 without Host is forwarded, once');
});

test('host-routed allow list bypass through a WebSocket upgrade with Host admin.example.com:1:2 → 400 invalid_host, no tunnel', T, async () => {
  const before = seen();
  const key = randomBytes(16).toString('base64');
  const upgrade = (host: string) =>
    `GET /ws HTTP/1.1\r\nHost: ${host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`;
  const raw = await exchange(attacker(), upgrade('admin.example.com:1:2'));
  assert.equal(answer(raw).status, 400, raw);
  assert.equal(answer(raw).body.reason, 'invalid_host');
  assert.equal(seen(), before, 'the upgrade never reached an upstream');
  // The same upgrade with a valid Host is tunnelled (the refusal above is the Host's, not the upgrade's).
  const ok = await exchange(attacker(), upgrade('localhost'));
  assert.match(ok, /^HTTP\/1\.1 101 /, ok);
});

test('a valid Host still selects the host route, is forwarded byte for byte, and X-Forwarded-Host is that value', T, async () => {
  for (const host of ['ADMIN.Example.COM.:8443', 'admin.example.com', '[::1]:8443', '127.0.0.1:8443', 'under_score.local']) {
    const before = { admin: adminUp.requests.length, open: openUp.requests.length };
    const raw = await rawTlsExchange('127.0.0.1', gate.port, as(pki.clients.direct), `GET /x HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
    assert.equal(answer(raw).status, 200, `${host}: ${raw}`);
    const isAdmin = host.toLowerCase().startsWith('admin.');
    const got = (isAdmin ? adminUp : openUp).requests.at(-1)!;
    assert.equal(adminUp.requests.length, before.admin + (isAdmin ? 1 : 0), host);
    assert.equal(openUp.requests.length, before.open + (isAdmin ? 0 : 1), host);
    assert.deepEqual(got.rawHeaders.filter(([n]) => n.toLowerCase() === 'host').map(([, v]) => v), [host]);
    assert.equal(got.headers['x-forwarded-host'], host);
  }
  const denied = await mtlsRequest(gate.url, attacker(), { path: '/x', headers: { host: 'ADMIN.Example.COM.:8443' } });
  assert.equal(denied.status, 403, 'the admin host route still applies its allow list');
});

const FOLDED_PATHS: readonly [path: string, reason: string, how: string][] = [
  ['/admin.', 'trailing_dot_or_space', 'Windows/IIS drop a trailing dot'],
  ['/admin..', 'trailing_dot_or_space', 'Windows/IIS drop trailing dots'],
  ['/admin%20', 'trailing_dot_or_space', 'Windows drops a trailing space'],
  ['/admin%09', 'trailing_dot_or_space', 'trim() drops a trailing tab'],
  ['/%20admin', 'trailing_dot_or_space', 'Spring trimTokens drops a leading space'],
  ['/admin%C2%A0', 'trailing_dot_or_space', 'Unicode-aware trims drop a trailing NBSP'],
  ['/admin::$DATA', 'ntfs_stream', 'NTFS serves the default stream of admin'],
  ['/admin%3b', 'encoded_semicolon', 'decode-then-strip-params servers serve admin'],
  ['/x/%252e%252e/admin', 'double_encoding', 'a server that decodes twice reads /x/../admin'],
  ['/%2561dmin', 'double_encoding', 'a server that decodes twice reads /admin'],
];

for (const [path, reason, how] of FOLDED_PATHS) {
  test(`path folded into /admin upstream, ${path} (${how}) → 400 ${reason} by default; forwarded as is with strict_paths: false`, T, async () => {
    const before = seen();
    const raw = await rawTlsExchange('127.0.0.1', gate.port, attacker(), `GET ${path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`);
    const { status, body } = answer(raw);
    assert.equal(status, 400, raw);
    assert.deepEqual([body.error, body.reason], ['bad_request', reason]);
    assert.match(String(body.message), /\w/);
    assert.equal(seen(), before, 'nothing forwarded');

    const adminBefore = adminUp.requests.length;
    const off = await rawTlsExchange('127.0.0.1', lax.port, attacker(), `GET ${path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`);
    assert.equal(answer(off).status, 200, off);
    assert.equal(openUp.requests.at(-1)!.url, path, 'strict_paths: false forwards the path as it was sent, to the catch-all');
    assert.equal(adminUp.requests.length, adminBefore);
  });
}

test('a path that only looks like one of them is still forwarded: /a/./b resolves, /admin.json is another name', T, async () => {
  const r1 = await mtlsRequest(gate.url, attacker(), { path: '/a/./b' });
  assert.equal(r1.status, 200, r1.body);
  const r2 = await mtlsRequest(gate.url, attacker(), { path: '/admin.json' });
  assert.equal(r2.status, 200, 'an allow list on /admin does not cover /admin.json (README says so)');
  assert.equal(openUp.requests.at(-1)!.url, '/admin.json');
});

test("README's catch-all allow list: a low-privilege client reaches its own prefix, not /admin.json or /admin.", T, async () => {
  const ok = await mtlsRequest(guarded.url, attacker(), { path: '/payments/x' });
  assert.equal(ok.status, 200, ok.body);
  const before = adminUp.requests.length;
  for (const path of ['/admin.json', '/admin', '/admin-old', '/x']) {
    const r = await mtlsRequest(guarded.url, attacker(), { path });
    assert.equal(r.status, 403, `${path}: ${r.body}`);
  }
  assert.equal(adminUp.requests.length, before);
  assert.equal((await mtlsRequest(guarded.url, as(pki.clients.direct), { path: '/admin.json' })).status, 200);
});

/** The same request line on whoami_path and on an ordinary path: the two answers, parsed. */
async function whoamiAndOther(creds: ClientCreds, head: (path: string) => string): Promise<[ReturnType<typeof answer>, ReturnType<typeof answer>, string]> {
  const raw = await rawTlsExchange('127.0.0.1', gate.port, creds, head(WHOAMI));
  const other = await rawTlsExchange('127.0.0.1', gate.port, creds, head('/x'));
  return [answer(raw), answer(other), raw];
}

for (const host of ['admin.example.com:1:2', 'x@admin.example.com', 'admin.example.com,www.example.com']) {
  test(`whoami_path answered around the Host check: Host ${JSON.stringify(host)} → the same 400 invalid_host as any other path`, T, async () => {
    const before = seen();
    const [who, other, raw] = await whoamiAndOther(attacker(), (p) => `GET ${p} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
    assert.equal(who.status, 400, raw);
    assert.deepEqual(who.body, other.body, 'the same JSON as the refusal on /x');
    assert.equal(who.body.reason, 'invalid_host');
    assert.match(raw, /\r\nconnection: close\r\n/i);
    assert.equal(seen(), before);
  });
}

test('whoami_path answered around the Host check: a missing Host, two Host lines → missing_host, duplicate_host as on any other path', T, async () => {
  const cases: [string, (p: string) => string][] = [
    ['missing_host', (p) => `GET ${p} HTTP/1.1\r\nConnection: close\r\n\r\n`],
    ['duplicate_host', (p) => `GET ${p} HTTP/1.1\r\nHost: localhost\r\nHost: admin.example.com\r\nConnection: close\r\n\r\n`],
  ];
  for (const [reason, head] of cases) {
    const [who, other, raw] = await whoamiAndOther(attacker(), head);
    assert.equal(who.status, 400, `${reason}: ${raw}`);
    assert.deepEqual(who.body, other.body);
    assert.equal(who.body.reason, reason);
  }
});

test('whoami_path answered around the Host check over HTTP/2: a malformed :authority, a Host beside another :authority → 400 as any other path', T, async () => {
  const cases: [string, Record<string, string>][] = [
    ['invalid_host', { ':authority': 'admin.example.com:1:2' }],
    ['authority_mismatch', { ':authority': 'localhost', host: 'admin.example.com' }],
  ];
  for (const [reason, headers] of cases) {
    // One session each: invalid_host closes the connection (GOAWAY), as on any other path.
    const who = await h2Once(gate.url, attacker(), { ':path': WHOAMI, ...headers });
    const other = await h2Once(gate.url, attacker(), { ':path': '/x', ...headers });
    assert.equal(who.status, 400, `${reason}: ${who.body}`);
    assert.deepEqual(who.json(), other.json());
    assert.equal(who.json().reason, reason);
  }
  // A valid request is still answered by certgate itself.
  const ok = await h2Once(gate.url, attacker(), { ':path': WHOAMI });
  assert.equal(ok.status, 200, ok.body);
  assert.equal(ok.json().certgate, 'certgate-whoami/1');
});

test('whoami_path answered around the Host check on an upgrade: Host admin.example.com:1:2 → 400 invalid_host, not whoami\'s own refusal', T, async () => {
  const key = randomBytes(16).toString('base64');
  const upgrade = (p: string) => `GET ${p} HTTP/1.1\r\nHost: admin.example.com:1:2\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`;
  const before = seen();
  const who = answer(await exchange(attacker(), upgrade(WHOAMI)));
  const other = answer(await exchange(attacker(), upgrade('/ws')));
  assert.equal(who.status, 400);
  assert.deepEqual(who.body, other.body);
  assert.equal(who.body.reason, 'invalid_host');
  assert.equal(seen(), before);
});

test('whoami_path upgrade without a client certificate: the verdict\'s 400 client_certificate_required, as on any other path', T, async () => {
  const key = randomBytes(16).toString('base64');
  const upgrade = (p: string) => `GET ${p} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`;
  const anonymous = { ca: pki.root.cert };
  const who = answer(await exchange(anonymous, upgrade(WHOAMI)));
  const other = answer(await exchange(anonymous, upgrade('/ws')));
  assert.equal(who.status, 400);
  assert.equal(who.body.error, 'client_certificate_required');
  assert.deepEqual(who.body, other.body);
});
