/**
 * The HTTP hop (src/proxy/hop.ts, issue #4), over real sockets: certgate forwards plain HTTP requests
 * with its own node:http client instead of http-proxy-3. What the upstream sees must not change:
 * - the request-target: the upstream URL's path and query + the client's target, query bytes unchanged;
 * - the framing: which requests carry Content-Length / Transfer-Encoding / Connection upstream;
 * - a client that aborts mid-upload tears its upstream request down (no upstream left waiting);
 * - upstream keep-alive connections are pooled and reused across requests and clients.
 * Plus two edges: an unsolicited 101 to an `Expect: 100-continue` request fails at once (502), and a
 * response arriving after certgate's own 504 is dropped (http-proxy-3's path threw ERR_HTTP_HEADERS_SENT
 * from its 'proxyRes' handler there: an uncaught exception that ended the process).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { createTestPki, type TestPki } from '../helpers/pki.js';
import { startTestCertgate, startRecordingUpstream, metricValue, type RunningCertgate, type RecordingUpstream } from '../helpers/certgate.js';
import { mtlsRequest, rawTlsExchange, type ClientCreds } from '../helpers/client.js';
import { rawTls, parseAnswer } from '../helpers/hostile.js';
import { waitFor } from '../helpers/wait.js';

const T = { timeout: 20_000 };

let pki: TestPki;
let creds: ClientCreds;
let recorder: RecordingUpstream;
/** Counts its TCP connections; records what each upload saw. */
let counting: http.Server;
let countingUrl: string;
let connections = 0;
interface Upload { bytes: number; closed: boolean; complete: boolean }
const uploads = new Map<string, Upload>();
/** A raw TCP upstream: answers /upgrade-101 with a 101, /late with 102s then a 200 after the route timeout. */
let raw: net.Server;
let rawUrl: string;
let lateAnswered = false;
/** An https upstream (the test server certificate: localhost, 127.0.0.1), recording what each TLS hop saw. */
let secure: https.Server;
let securePort = 0;
let secureConnections = 0;
const secureSeen: { url: string; host: string | undefined; servername: string | false | null | undefined }[] = [];
let gate: RunningCertgate;

const LATE_TIMEOUT_MS = 300;

before(async () => {
  pki = await createTestPki();
  creds = { ca: pki.root.cert, cert: pki.clients.good.pem, key: pki.clients.good.key };
  recorder = await startRecordingUpstream();
  counting = http.createServer((req, res) => {
    const up: Upload = { bytes: 0, closed: false, complete: false };
    uploads.set(req.url ?? '', up);
    req.on('data', (c: Buffer) => (up.bytes += c.length));
    req.on('close', () => {
      up.closed = true;
      up.complete = req.complete;
    });
    req.on('end', () => res.end(`ok ${req.url}`));
  });
  counting.on('connection', () => connections++);
  await new Promise<void>((resolve) => counting.listen(0, '127.0.0.1', resolve));
  countingUrl = `http://127.0.0.1:${(counting.address() as net.AddressInfo).port}`;
  raw = net.createServer((s) => {
    s.on('error', () => undefined);
    let head = '';
    s.on('data', (d: Buffer) => {
      head += d.toString('latin1');
      if (!head.includes('\r\n\r\n')) return;
      const path = /^[A-Z]+ (\S+)/.exec(head)?.[1] ?? '';
      head = '';
      if (path.startsWith('/upgrade-101')) {
        s.end('HTTP/1.1 101 Switching Protocols\r\nUpgrade: evil\r\nConnection: Upgrade\r\n\r\nraw bytes');
      } else if (path.startsWith('/late')) {
        // Keeps the socket busy (no inactivity timeout) past the route timeout, then answers.
        const tick = setInterval(() => s.write('HTTP/1.1 102 Processing\r\n\r\n'), 50);
        setTimeout(() => {
          clearInterval(tick);
          s.write('HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nlate', () => (lateAnswered = true));
        }, LATE_TIMEOUT_MS + 400);
        s.once('close', () => clearInterval(tick));
      } else {
        s.end('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n');
      }
    });
  });
  await new Promise<void>((resolve) => raw.listen(0, '127.0.0.1', resolve));
  rawUrl = `http://127.0.0.1:${(raw.address() as net.AddressInfo).port}`;
  secure = https.createServer({ key: pki.serverBundle.pem, cert: pki.serverBundle.pem }, (req, res) => {
    secureSeen.push({ url: req.url ?? '', host: req.headers.host, servername: (req.socket as import('node:tls').TLSSocket).servername });
    req.resume();
    req.on('end', () => res.end('tls ok'));
  });
  secure.on('secureConnection', () => secureConnections++);
  await new Promise<void>((resolve) => secure.listen(0, '127.0.0.1', resolve));
  securePort = (secure.address() as net.AddressInfo).port;
  gate = await startTestCertgate({
    tls: { bundle: pki.serverBundle.pemPath, client_ca: pki.clientCa.path },
    routes: [
      { name: 'base', path_prefix: '/joined', upstream: `${recorder.url}/base` },
      { name: 'base-slash', path_prefix: '/slashed', upstream: `${recorder.url}/base/` },
      { name: 'base-query', path_prefix: '/withq', upstream: `${recorder.url}/base?k=v` },
      { name: 'counting', path_prefix: '/counting', upstream: countingUrl },
      { name: 'expect-101', path_prefix: '/upgrade-101', upstream: rawUrl, timeout_ms: 10_000 },
      { name: 'late', path_prefix: '/late', upstream: rawUrl, timeout_ms: LATE_TIMEOUT_MS },
      { name: 'tls-name', path_prefix: '/tls-name', upstream: `https://localhost:${securePort}/v2`, upstream_ca: pki.root.certPath },
      { name: 'tls-ip', path_prefix: '/tls-ip', upstream: `https://127.0.0.1:${securePort}`, upstream_ca: pki.root.certPath },
      { name: 'tls-untrusted', path_prefix: '/tls-untrusted', upstream: `https://127.0.0.1:${securePort}`, upstream_ca: pki.otherRoot.certPath },
      { name: 'root', path_prefix: '/', upstream: recorder.url },
    ],
  });
});

after(async () => {
  await gate?.close();
  await recorder?.close();
  counting?.closeAllConnections();
  await new Promise<void>((resolve) => (counting ? counting.close(() => resolve()) : resolve()));
  await new Promise<void>((resolve) => (raw ? raw.close(() => resolve()) : resolve()));
  secure?.closeAllConnections();
  await new Promise<void>((resolve) => (secure ? secure.close(() => resolve()) : resolve()));
  pki?.cleanup();
});

/** One request sent byte for byte (no client-side URL parsing), answered on its own connection. */
async function rawRequest(head: string, body = ''): Promise<ReturnType<typeof parseAnswer>> {
  const out = await rawTlsExchange('127.0.0.1', gate.port, creds, `${head}\r\nHost: localhost\r\nConnection: close\r\n\r\n${body}`);
  return parseAnswer(out.slice(out.lastIndexOf('HTTP/1.1 ')));
}

async function upstreamErrors(route: string): Promise<number> {
  const text = await gate.metricsText();
  let n = 0;
  for (const kind of ['refused', 'reset', 'timeout', 'dns', 'tls', 'other']) n += metricValue(text, 'certgate_upstream_errors_total', { route, kind }) ?? 0;
  return n;
}

test('hop: the upstream sees its URL path + the request target (http-proxy-3 prependPath), the query byte for byte', T, async () => {
  const cases: [sent: string, seen: string][] = [
    ['/joined/x?b=2&a=1+2&&c=%2F%zz;d&e=&f=%E2%9C%93&g=a/b?c', '/base/joined/x?b=2&a=1+2&&c=%2F%zz;d&e=&f=%E2%9C%93&g=a/b?c'],
    ['/joined', '/base/joined'],
    ['/joined/', '/base/joined/'],
    ['/slashed/x?y', '/base/slashed/x?y'],
    ['/withq/x?y=1', '/base/withq/x?k=v&y=1'],
    ['/withq/x', '/base/withq/x?k=v'],
    ['/root/a;p=1/%7e/%41|^~?q=%7e|^', '/root/a;p=1/%7e/%41|^~?q=%7e|^'],
    // http-proxy-3 read the target through WHATWG URL; the hop keeps doing so where that changes it.
    ['/joined/a/../x?z', '/base/joined/x?z'],
  ];
  for (const [sent, seen] of cases) {
    const answer = await rawRequest(`GET ${sent} HTTP/1.1`);
    assert.equal(answer.status, 200, `${sent}: ${answer.statusLine} ${answer.body}`);
    assert.equal(JSON.parse(answer.body).url, seen, `${sent} must reach the upstream as ${seen}`);
  }
});

test('hop: request framing upstream — Content-Length/Transfer-Encoding/Connection/Host as http-proxy-3 sent them', T, async () => {
  const cases: [head: string, body: string, want: Record<string, string | undefined>][] = [
    ['GET /framing/get HTTP/1.1', '', { 'content-length': undefined, 'transfer-encoding': undefined }],
    ['HEAD /framing/head HTTP/1.1', '', { 'content-length': undefined, 'transfer-encoding': undefined }],
    // http-proxy's deleteLength: a DELETE/OPTIONS without Content-Length goes out with Content-Length: 0
    ['DELETE /framing/delete HTTP/1.1', '', { 'content-length': '0', 'transfer-encoding': undefined }],
    ['OPTIONS /framing/options HTTP/1.1', '', { 'content-length': '0', 'transfer-encoding': undefined }],
    ['POST /framing/post-empty HTTP/1.1', '', { 'content-length': '0', 'transfer-encoding': undefined }],
    ['POST /framing/post-zero HTTP/1.1\r\nContent-Length: 0', '', { 'content-length': '0', 'transfer-encoding': undefined }],
    ['POST /framing/post-body HTTP/1.1\r\nContent-Length: 5', 'hello', { 'content-length': '5', 'transfer-encoding': undefined }],
    ['DELETE /framing/delete-body HTTP/1.1\r\nContent-Length: 5', 'hello', { 'content-length': '5', 'transfer-encoding': undefined }],
    ['PUT /framing/put-chunked HTTP/1.1\r\nTransfer-Encoding: chunked', '5\r\nhello\r\n0\r\n\r\n', { 'content-length': undefined, 'transfer-encoding': 'chunked', connection: 'close' }],
  ];
  for (const [head, body, want] of cases) {
    const answer = await rawRequest(head, body);
    assert.equal(answer.status, 200, `${head}: ${answer.statusLine}`);
    const path = head.split(' ')[1]!;
    const rec = recorder.requests.find((r) => r.url === path);
    assert.ok(rec !== undefined, `${path} reached the upstream`);
    assert.equal(rec.method, head.split(' ')[0]);
    assert.equal(rec.body, body === '' ? '' : 'hello');
    assert.equal(rec.headers.host, 'localhost', "the client's Host is kept (changeOrigin off)");
    assert.equal(rec.headers.connection, want.connection ?? 'keep-alive', `${head}: connection`);
    for (const name of ['content-length', 'transfer-encoding'] as const) assert.equal(rec.headers[name], want[name], `${head}: ${name}`);
  }
});

test('hop: a client aborting mid-upload destroys its upstream request: the upstream sees the abort, nothing hangs, nothing is counted', T, async () => {
  const errorsBefore = await upstreamErrors('counting');
  const session = await rawTls(gate.port, creds);
  session.socket.write('POST /counting/upload HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/octet-stream\r\nContent-Length: 10000000\r\n\r\n');
  session.socket.write(Buffer.alloc(256 * 1024, 0x61));
  const up = await waitFor(() => {
    const u = uploads.get('/counting/upload');
    return u !== undefined && u.bytes > 0 ? u : undefined;
  }, 'the upload to start reaching the upstream');
  assert.equal(up.closed, false, 'the upstream is still reading the body');
  session.socket.destroy();
  await waitFor(() => up.closed, 'the upstream request to be torn down after the client left');
  assert.equal(up.complete, false, 'the upstream saw an aborted request, not a complete one');
  assert.ok(up.bytes < 10_000_000);
  assert.equal(await upstreamErrors('counting'), errorsBefore, 'a client that leaves is not an upstream fault');
});

test('hop: one upstream keep-alive connection serves sequential requests of several clients (GET, POST with body); a chunked body closes it', T, async () => {
  const agentA = new https.Agent({ keepAlive: true, maxSockets: 1 });
  const agentB = new https.Agent({ keepAlive: true, maxSockets: 1 });
  // Settle the pool first: whatever earlier tests left (the aborted upload's connection is gone).
  await waitFor(() => uploads.get('/counting/upload')?.closed !== false, 'no upload in flight');
  const first = await mtlsRequest(gate.url, creds, { path: '/counting/warm', agent: agentA });
  assert.equal(first.status, 200, first.body);
  const base = connections;
  try {
    for (let i = 0; i < 10; i++) {
      const agent = i % 2 === 0 ? agentA : agentB;
      const get = await mtlsRequest(gate.url, creds, { path: `/counting/get/${i}`, agent });
      assert.equal(get.status, 200, get.body);
      const post = await mtlsRequest(gate.url, creds, { method: 'POST', path: `/counting/post/${i}`, agent, body: 'x'.repeat(1000 * (i + 1)) });
      assert.equal(post.status, 200, post.body);
      assert.equal(uploads.get(`/counting/post/${i}`)?.bytes, 1000 * (i + 1));
    }
    const fresh = await mtlsRequest(gate.url, creds, { path: '/counting/fresh-client' }); // its own TLS connection
    assert.equal(fresh.status, 200, fresh.body);
    assert.equal(connections, base, `21 requests from 3 client connections reused the pooled upstream connection (saw ${connections - base} new)`);

    // Contrast (the count can move): a chunked request body leaves no upstream connection reusable.
    const chunked = await rawRequest('POST /counting/chunked HTTP/1.1\r\nTransfer-Encoding: chunked', '5\r\nhello\r\n0\r\n\r\n');
    assert.equal(chunked.status, 200, chunked.statusLine);
    const after = await mtlsRequest(gate.url, creds, { path: '/counting/after-chunked', agent: agentA });
    assert.equal(after.status, 200, after.body);
    assert.equal(connections, base + 1, 'the request after a chunked one opened a new upstream connection');
  } finally {
    agentA.destroy();
    agentB.destroy();
  }
});

test('hop: an unsolicited 101 to an Expect: 100-continue request → 502 at once (not at the route timeout), counted once', T, async () => {
  const before = await upstreamErrors('expect-101');
  const started = Date.now();
  const answer = await rawRequest('POST /upgrade-101/expect HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 5', 'hello');
  assert.equal(answer.status, 502, `${answer.statusLine} ${answer.body}`);
  assert.equal(JSON.parse(answer.body).kind, 'other');
  assert.ok(Date.now() - started < 5000, `answered after ${Date.now() - started} ms, not at the 10 s route timeout`);
  await waitFor(async () => (await upstreamErrors('expect-101')) === before + 1, 'the 101 to be counted once');
});

test('hop: a response arriving after certgate already answered 504 is dropped; certgate keeps serving', T, async () => {
  lateAnswered = false;
  const before = await upstreamErrors('late');
  const answer = await rawRequest('GET /late/x HTTP/1.1');
  assert.equal(answer.status, 504, `${answer.statusLine} ${answer.body}`);
  await waitFor(() => lateAnswered, 'the upstream to send its late 200');
  const still = await mtlsRequest(gate.url, creds, { path: '/root/still-serving' });
  assert.equal(still.status, 200, still.body);
  assert.equal(await upstreamErrors('late'), before + 1, 'the timeout is counted once');
});

test('hop: https upstreams — verified with upstream_ca against the URL host (SNI from the URL, not Host), pooled; a wrong CA → 502 tls', T, async () => {
  const byName = await mtlsRequest(gate.url, creds, { path: '/tls-name/x?q=1', headers: { host: 'app.example.test' } });
  assert.equal(byName.status, 200, byName.body);
  assert.equal(byName.body, 'tls ok');
  assert.deepEqual(secureSeen.at(-1), { url: '/v2/tls-name/x?q=1', host: 'app.example.test', servername: 'localhost' });
  const pooled = secureConnections;
  for (let i = 0; i < 3; i++) {
    const again = await mtlsRequest(gate.url, creds, { path: `/tls-name/again/${i}` });
    assert.equal(again.status, 200, again.body);
  }
  assert.equal(secureConnections, pooled, 'later requests reuse the pooled TLS connection to the upstream');

  const byIp = await mtlsRequest(gate.url, creds, { path: '/tls-ip/y' });
  assert.equal(byIp.status, 200, byIp.body);
  assert.equal(secureSeen.at(-1)?.url, '/tls-ip/y');
  assert.ok(!secureSeen.at(-1)?.servername, 'no SNI for an IP upstream (verified against its IP SAN)');

  const seen = secureSeen.length;
  const untrusted = await mtlsRequest(gate.url, creds, { path: '/tls-untrusted/z' });
  assert.equal(untrusted.status, 502, untrusted.body);
  assert.equal(untrusted.json().kind, 'tls');
  assert.equal(secureSeen.length, seen, 'nothing reached an upstream certgate could not verify');
});
