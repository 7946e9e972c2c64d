/**
 * WebSocket upgrades through certgate, over real TLS, to the built-in whoami upstream (which completes
 * the RFC 6455 handshake, sends one text frame with the JSON of the request it saw, then echoes frames).
 *
 * Attacks, and why the defence holds:
 * - Identity spoofing on the upgrade request: the Upgrade request is an ordinary HTTP request with
 *   headers, and http-proxy's ws path never runs the web passes — so a proxy that strips forged identity
 *   headers only on the web path would hand `X-Client-Cert-Subject: CN=admin` straight to the upstream.
 *   certgate runs the same admission and header preparation (strip, then set) for upgrades; the upstream's
 *   first frame shows exactly one X-Client-Cert-Subject, certgate's.
 * - Upgrading around the certificate check: an Upgrade from a client without a certificate gets the same
 *   400 JSON refusal as any request, written on the raw socket, and nothing reaches the upstream.
 * - h2c upgrade smuggling (`Upgrade: h2c`): a proxy that tunnels any upgrade hands the client a raw
 *   connection to the upstream, past every later per-request check. certgate tunnels only WebSocket
 *   upgrades; anything else never reaches the upstream.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import tls from 'node:tls';
import { createTestPki, type TestPki, type TestCert } from '../helpers/pki.js';
import { metricValue, startTestCertgate, type RunningCertgate } from '../helpers/certgate.js';
import { waitFor } from '../helpers/wait.js';
import { mtlsRequest, rawTlsExchange, type ClientCreds } from '../helpers/client.js';
import { listenEchoUpstream } from '../../dist/echo-upstream.js';
import { WS_GUID, WsTestClient, clientFrame } from '../helpers/websocket.js';

const T = { timeout: 30_000 };

let pki: TestPki;
/** startEchoUpstream() is listenEchoUpstream('127.0.0.1', 0); called directly to count what reaches its server. */
let whoami: Awaited<ReturnType<typeof listenEchoUpstream>>;
let gate: RunningCertgate;
let upgradesSeen = 0;
let requestsSeen = 0;

before(async () => {
  pki = await createTestPki();
  whoami = await listenEchoUpstream('127.0.0.1', 0);
  whoami.server.on('upgrade', () => upgradesSeen++);
  whoami.server.on('request', () => requestsSeen++);
  gate = await startTestCertgate({
    tls: { bundle: pki.serverBundle.pemPath, client_ca: pki.clientCa.path },
    routes: [{ name: 'ws', upstream: whoami.url }],
  });
});
after(async () => {
  await gate?.close();
  await whoami?.close();
  pki?.cleanup();
});

const creds = (c: TestCert | undefined): ClientCreds => ({ ca: pki.root.cert, ...(c && { cert: c.pem, key: c.key }) });

interface Echo {
  method: string;
  path: string;
  headers: Record<string, string | string[]>;
  raw_headers: [string, string][];
  body_len: number;
}

function upgradeRequest(key: string, extra: readonly string[] = [], connection = 'Upgrade'): string {
  return [
    'GET /chat?room=1 HTTP/1.1', `Host: localhost:${gate.port}`, 'Upgrade: websocket', `Connection: ${connection}`,
    `Sec-WebSocket-Key: ${key}`, 'Sec-WebSocket-Version: 13', ...extra, '', '',
  ].join('\r\n');
}

/** A request through certgate that reaches whoami: anything forwarded before it has arrived too. */
async function sentinel(): Promise<void> {
  const before = requestsSeen;
  const reply = await mtlsRequest(gate.url, creds(pki.clients.good), { path: '/sentinel' });
  assert.equal(reply.status, 200, reply.body);
  assert.equal(requestsSeen, before + 1);
}

test('websocket: a verified client forging X-Client-Cert-Subject on the Upgrade gets a tunnel carrying only certgate\'s identity; frames echo', T, async () => {
  const good = pki.clients.good;
  const c = await WsTestClient.connectTls(gate.port, creds(good));
  try {
    const key = randomBytes(16).toString('base64');
    c.socket.write(upgradeRequest(key, [
      'X-Client-Cert-Subject: CN=admin', 'X_Client_Cert_Subject: CN=admin-underscore', 'x-client-cert-verified: SUCCESS',
      'X-Forwarded-For: 6.6.6.6', 'X-Forwarded-Proto: http', 'X-Real-IP: 6.6.6.7', 'X-Secret: 1', 'Keep-Alive: 5',
    ], 'Upgrade, x-secret'));
    const head = await c.head();
    assert.equal(head.status, 101);
    assert.deepEqual(head.headers.get('sec-websocket-accept'), [createHash('sha1').update(key + WS_GUID).digest('base64')]);

    const hello = await c.frame();
    assert.equal(hello.opcode, 0x1, 'the first frame is whoami\'s text frame');
    assert.equal(hello.masked, false);
    const echo = JSON.parse(hello.payload.toString('utf8')) as Echo;
    assert.equal(echo.method, 'GET');
    assert.equal(echo.path, '/chat?room=1');
    const raw = (name: string): string[] => echo.raw_headers.filter(([k]) => k.toLowerCase().replace(/[_.]/g, '-') === name).map(([, v]) => v);
    assert.deepEqual(raw('x-client-cert-subject'), ['CN=svc-a,OU=payments'], JSON.stringify(echo.raw_headers));
    assert.deepEqual(raw('x-client-cert-verified'), ['SUCCESS']);
    assert.deepEqual(raw('x-client-cert-fingerprint'), [good.x509.fingerprint256.replace(/:/g, '').toLowerCase()]);
    assert.deepEqual(raw('x-client-cert-issuer'), ['CN=certgate test intermediate CA,O=certgate test']);
    assert.deepEqual(raw('x-client-cert-san-uri'), ['spiffe://example.org/ns/prod/sa/svc-a']);
    assert.deepEqual(raw('x-forwarded-for'), ['127.0.0.1']);
    assert.deepEqual(raw('x-real-ip'), []);
    assert.deepEqual(raw('x-forwarded-host'), [`localhost:${gate.port}`]);
    // README: "-Proto: https … WebSocket upgrades are proxied with the same headers"; request-headers.ts sends
    // `wss` for upgrades (as Traefik does). Either way exactly one, never the client's.
    const proto = raw('x-forwarded-proto');
    assert.equal(proto.length, 1, JSON.stringify(proto));
    assert.ok(['https', 'wss'].includes(proto[0]!), `X-Forwarded-Proto: ${proto[0]}`);
    assert.deepEqual(raw('x-secret'), [], 'a header the client named in Connection is hop-by-hop');
    assert.deepEqual(raw('keep-alive'), []);
    assert.deepEqual(raw('connection').map((v) => v.toLowerCase()), ['upgrade']);
    for (const [name, value] of echo.raw_headers) {
      assert.ok(!/admin|6\.6\.6\./.test(value), `forged value reached the upstream: ${name}: ${value}`);
    }
    assert.equal(String(echo.headers.upgrade).toLowerCase(), 'websocket');

    const message = Buffer.from('hello through certgate — ünïcode');
    c.socket.write(clientFrame(0x1, message));
    const back = await c.frame();
    assert.equal(back.opcode, 0x1);
    assert.ok(back.payload.equals(message), `echoed ${JSON.stringify(back.payload.toString('utf8'))}`);

    const binary = randomBytes(300); // 16-bit length form
    c.socket.write(clientFrame(0x2, binary));
    const backBinary = await c.frame();
    assert.equal(backBinary.opcode, 0x2);
    assert.ok(backBinary.payload.equals(binary));

    c.socket.write(clientFrame(0x8, Buffer.from([0x03, 0xe8])));
    const close = await c.frame();
    assert.equal(close.opcode, 0x8);
    assert.equal(close.payload.readUInt16BE(0), 1000);
    await c.closedPromise;

    // The tunnel is one request: its access line (status 101, bytes both ways) and metrics when it ends;
    // the upstream saw the same X-Request-Id.
    const line = await waitFor(() => gate.logs.find('request').find((l) => l.path === '/chat?room=1' && l.status === 101), 'the tunnel\'s access line');
    assert.equal(line.route, 'ws');
    assert.equal(line.upgrade, 'websocket');
    assert.equal(line.client_subject, 'CN=svc-a,OU=payments');
    assert.ok((line.bytes_in as number) > 300 && (line.bytes_out as number) > 300, JSON.stringify(line));
    assert.deepEqual(raw('x-request-id'), [line.request_id]);
    assert.equal(metricValue(await gate.metricsText(), 'certgate_http_requests_total', { route: 'ws', method: 'GET', code: '101' }), 1);
  } finally {
    c.socket.destroy();
  }
});

test('websocket: an Upgrade without a client certificate (require mode) → 400 client_certificate_required, no upgrade upstream', T, async () => {
  const upgradesBefore = upgradesSeen;
  const raw = await rawTlsExchange('127.0.0.1', gate.port, creds(undefined),
    upgradeRequest(randomBytes(16).toString('base64'), ['X-Client-Cert-Subject: CN=admin', 'x-client-cert-verified: SUCCESS']));
  const end = raw.indexOf('\r\n\r\n');
  assert.ok(end > 0, raw);
  assert.match(raw, /^HTTP\/1\.1 400 /, raw);
  assert.match(raw.slice(0, end), /\r\nconnection: close\r\n/i);
  assert.match(raw.slice(0, end), /\r\ncontent-type: application\/json/i);
  const body = JSON.parse(raw.slice(end + 4)) as Record<string, unknown>;
  assert.equal(body.error, 'client_certificate_required');
  await sentinel();
  assert.equal(upgradesSeen, upgradesBefore, 'the upstream saw no upgrade');
});

test('websocket: an Upgrade with an expired certificate → 400 client_certificate_invalid/expired, no upgrade upstream', T, async () => {
  const upgradesBefore = upgradesSeen;
  const raw = await rawTlsExchange('127.0.0.1', gate.port, creds(pki.clients.expired), upgradeRequest(randomBytes(16).toString('base64')));
  const end = raw.indexOf('\r\n\r\n');
  assert.match(raw, /^HTTP\/1\.1 400 /, raw);
  const body = JSON.parse(raw.slice(end + 4)) as Record<string, unknown>;
  assert.equal(body.error, 'client_certificate_invalid');
  assert.equal(body.reason, 'expired');
  await sentinel();
  assert.equal(upgradesSeen, upgradesBefore, 'the upstream saw no upgrade');
  // A refused upgrade is a request too: one access line with certgate's answer.
  await waitFor(() => gate.logs.find('request').find((l) => l.status === 400 && l.upgrade === 'websocket' && l.error === 'client_certificate_invalid'), 'the refused upgrade\'s access line');
});

test('h2c upgrade smuggling: Upgrade: h2c from a verified client is not tunnelled to the upstream', T, async () => {
  const upgradesBefore = upgradesSeen;
  const requestsBefore = requestsSeen;
  const c = await WsTestClient.connectTls(gate.port, creds(pki.clients.good));
  c.socket.write([
    'GET /h2c HTTP/1.1', `Host: localhost:${gate.port}`, 'Upgrade: h2c', 'Connection: Upgrade, HTTP2-Settings',
    'HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA', '', '',
  ].join('\r\n'));
  const rest = await c.restAtClose();
  assert.doesNotMatch(rest, /^HTTP\/1\.1 101/, 'no protocol switch');
  await sentinel();
  assert.equal(upgradesSeen, upgradesBefore, 'the upstream saw no upgrade');
  assert.equal(requestsSeen, requestsBefore + 1, 'only the sentinel reached the upstream');
});
