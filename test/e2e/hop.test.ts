/**
 * The HTTP hop (src/proxy/hop.ts, issue #4), over real sockets: certgate forwards plain HTTP requests
 * over an undici Pool per route instead of http-proxy-3 (then node:http). What the upstream sees:
 * - the request-target: the upstream URL's path and query + the client's target, query bytes unchanged;
 * - the framing: every body framed once and consistently (Content-Length or chunked), Connection/Host;
 * - a client that aborts mid-upload tears its upstream request down (no upstream left waiting);
 * - upstream keep-alive connections are pooled and reused across requests, clients and Host headers.
 * Plus the edges: an unsolicited 101 to an `Expect: 100-continue` request fails at once (502); a response
 * arriving after certgate's own 504 is dropped (http-proxy-3's path threw ERR_HTTP_HEADERS_SENT from its
 * 'proxyRes' handler there: an uncaught exception that ended the process); an upstream that answers
 * before the upload ends; a client that stops reading; a request given up while it waits for a pooled
 * connection; a transfer coding undici cannot forward.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import tls from 'node:tls';
import { Pool } from 'undici';
import { createHop, hopTarget } from '../../dist/proxy/hop.js';
import type { RouteConfig } from '../../dist/config/types.js';
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
/** Answers /early/upload with 401 at once, without reading the body; anything else after reading it. */
let early: http.Server;
let earlyUrl: string;
/** Streams an endless response (as fast as it is read) to /stall-reader/*; counts its open connections. */
let endless: http.Server;
let endlessUrl: string;
let endlessOpen = 0;
let gate: RunningCertgate;

const LATE_TIMEOUT_MS = 300;
const STALL_TIMEOUT_MS = 500;

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
  early = http.createServer((req, res) => {
    if (req.url === '/early/upload') {
      res.writeHead(401, { 'content-type': 'text/plain' });
      res.end('not you');
      return;
    }
    req.resume();
    req.on('end', () => res.end(`next ok ${req.url}`));
  });
  await new Promise<void>((resolve) => early.listen(0, '127.0.0.1', resolve));
  earlyUrl = `http://127.0.0.1:${(early.address() as net.AddressInfo).port}`;
  endless = http.createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'application/octet-stream' });
    const chunk = Buffer.alloc(64 * 1024, 0x65);
    const pump = (): void => {
      while (!res.destroyed && res.write(chunk));
      if (!res.destroyed) res.once('drain', pump);
    };
    pump();
  });
  const closedPort = net.createServer();
  await new Promise<void>((resolve) => closedPort.listen(0, '127.0.0.1', resolve));
  const deadPort = (closedPort.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => closedPort.close(() => resolve()));
  endless.on('connection', (s: net.Socket) => {
    endlessOpen++;
    s.once('close', () => endlessOpen--);
  });
  await new Promise<void>((resolve) => endless.listen(0, '127.0.0.1', resolve));
  endlessUrl = `http://127.0.0.1:${(endless.address() as net.AddressInfo).port}`;
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
      { name: 'early', path_prefix: '/early', upstream: earlyUrl },
      { name: 'dead', path_prefix: '/dead', upstream: `http://127.0.0.1:${deadPort}` },
      { name: 'stall', path_prefix: '/stall-reader', upstream: endlessUrl, timeout_ms: STALL_TIMEOUT_MS },
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
  for (const server of [early, endless]) {
    server?.closeAllConnections();
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  }
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
    // `^` in the path: kept by Node 20/22's URL parser, encoded by Node 24's (http-proxy-3 followed the runtime); in the query, kept
    ['/root/a;p=1/%7e/%41|^~?q=%7e|^', `/root/a;p=1/%7e/%41|${new URL('http://h/^').pathname.slice(1)}~?q=%7e|^`],
    // http-proxy-3 read the target through WHATWG URL; the hop keeps doing so where that changes it.
    ['/joined/a/../x?z', '/base/joined/x?z'],
  ];
  for (const [sent, seen] of cases) {
    const answer = await rawRequest(`GET ${sent} HTTP/1.1`);
    assert.equal(answer.status, 200, `${sent}: ${answer.statusLine} ${answer.body}`);
    assert.equal(JSON.parse(answer.body).url, seen, `${sent} must reach the upstream as ${seen}`);
  }
});

test('hop: request framing upstream — undici frames every body (Content-Length or chunked), Connection/Host as before', T, async () => {
  // What changed from the node:http hop (http-proxy-3's framing): a bodiless DELETE/OPTIONS no longer says
  // `Content-Length: 0` (undici follows RFC 9110 §8.6; no body either way). What must hold: one request
  // upstream, its body intact, exactly one consistent framing, `Connection: close` after a chunked body.
  type Framing = { cl: string | undefined; te: string | undefined };
  const cases: [head: string, body: string, want: Framing][] = [
    ['GET /framing/get HTTP/1.1', '', { cl: undefined, te: undefined }],
    ['HEAD /framing/head HTTP/1.1', '', { cl: undefined, te: undefined }],
    ['DELETE /framing/delete HTTP/1.1', '', { cl: undefined, te: undefined }],
    ['OPTIONS /framing/options HTTP/1.1', '', { cl: undefined, te: undefined }],
    ['POST /framing/post-empty HTTP/1.1', '', { cl: '0', te: undefined }],
    ['POST /framing/post-zero HTTP/1.1\r\nContent-Length: 0', '', { cl: '0', te: undefined }],
    ['POST /framing/post-body HTTP/1.1\r\nContent-Length: 5', 'hello', { cl: '5', te: undefined }],
    ['DELETE /framing/delete-body HTTP/1.1\r\nContent-Length: 5', 'hello', { cl: '5', te: undefined }],
    ['GET /framing/get-body HTTP/1.1\r\nContent-Length: 5', 'hello', { cl: '5', te: undefined }],
    // Arrived whole with its head, still forwarded chunked (not with a Content-Length undici could measure).
    ['PUT /framing/put-chunked HTTP/1.1\r\nTransfer-Encoding: chunked', '5\r\nhello\r\n0\r\n\r\n', { cl: undefined, te: 'chunked' }],
  ];
  for (const [head, body, want] of cases) {
    const answer = await rawRequest(head, body);
    assert.equal(answer.status, 200, `${head}: ${answer.statusLine}`);
    const path = head.split(' ')[1]!;
    const seen = recorder.requests.filter((r) => r.url === path);
    assert.equal(seen.length, 1, `${path} reached the upstream once`);
    const rec = seen[0]!;
    assert.equal(rec.method, head.split(' ')[0]);
    assert.equal(rec.body, body === '' ? '' : 'hello');
    assert.equal(rec.headers.host, 'localhost', "the client's Host is kept (changeOrigin off)");
    const framing = rec.rawHeaders.filter(([k]) => ['content-length', 'transfer-encoding'].includes(k.toLowerCase()));
    assert.ok(framing.length <= 1, `${head}: at most one framing field, got ${JSON.stringify(framing)}`);
    const cl = rec.headers['content-length'];
    const te = rec.headers['transfer-encoding'];
    assert.deepEqual({ cl, te }, want, `${head}: framing`);
    // Neither a chunked request body nor a HEAD (whose answer's framing the upstream may get wrong, issue #13)
    // leaves its upstream connection reusable.
    assert.equal(rec.headers.connection, te === 'chunked' || rec.method === 'HEAD' ? 'close' : 'keep-alive',
      `${head}: connection (a chunked request body or a HEAD never leaves its upstream connection reusable)`);
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
  // undici would take each request's TLS servername from its Host header (and reconnect when it changes).
  const otherHost = await mtlsRequest(gate.url, creds, { path: '/tls-name/other-host', headers: { host: 'other.example.test' } });
  assert.equal(otherHost.status, 200, otherHost.body);
  assert.deepEqual(secureSeen.at(-1), { url: '/v2/tls-name/other-host', host: 'other.example.test', servername: 'localhost' });
  assert.equal(secureConnections, pooled, 'another Host header still rides the pooled TLS connection');

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

test('hop: a streamed request body leaves certgate\'s own view of the client intact (access line address and bytes) and keep-alive working', T, async () => {
  const agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
  try {
    for (let i = 0; i < 2; i++) {
      const reply = await mtlsRequest(gate.url, creds, { method: 'POST', path: `/counting/streamed/${i}`, agent, body: Buffer.alloc(200_000, 0x62) });
      assert.equal(reply.status, 200, reply.body);
      assert.equal(uploads.get(`/counting/streamed/${i}`)?.bytes, 200_000);
      const id = String(reply.headers['x-request-id']);
      const line = await waitFor(() => gate.logs.find('request').find((l) => l.request_id === id), `the access line of request ${i}`);
      assert.equal(line.remote_address, '127.0.0.1', JSON.stringify(line));
      assert.equal(line.bytes_in, 200_000);
      assert.ok(Number(line.bytes_out) > 0, JSON.stringify(line));
      assert.equal(line.completed, true);
    }
  } finally {
    agent.destroy();
  }
});

test('hop: an upstream answering before the upload ends — the client gets that answer, the rest of its body is dropped, its connection serves the next request', T, async () => {
  const before = await upstreamErrors('early');
  const session = await rawTls(gate.port, creds);
  const size = 4 * 1024 * 1024;
  const first = 64 * 1024;
  session.socket.write(`POST /early/upload HTTP/1.1\r\nHost: localhost\r\nContent-Length: ${size}\r\n\r\n`);
  session.socket.write(Buffer.alloc(first, 0x61));
  await waitFor(() => session.received().toString('latin1').includes('not you'), 'the early 401');
  assert.match(session.received().toString('latin1'), /^HTTP\/1\.1 401 /);
  session.socket.write(Buffer.alloc(size - first, 0x61));
  session.socket.write('GET /early/next HTTP/1.1\r\nHost: localhost\r\n\r\n');
  try {
    await waitFor(() => session.received().toString('latin1').includes('next ok /early/next'), 'the next request on the same connection to be answered');
  } finally {
    session.socket.destroy();
  }
  assert.equal(await upstreamErrors('early'), before, 'an early answer is not an upstream fault');
});

test('hop: a client that stops reading a streamed response is cut timeout_ms later and its upstream connection closed (not counted); one that reads is never cut', T, async () => {
  const before = await upstreamErrors('stall');
  const socket = tls.connect({ host: '127.0.0.1', port: gate.port, servername: 'localhost', ca: creds.ca, cert: creds.cert!, key: creds.key! });
  socket.on('error', () => undefined);
  let received = 0;
  let cut = false;
  socket.on('data', (c: Buffer) => (received += c.length));
  const closed = new Promise<void>((resolve) => socket.once('close', () => {
    cut = true;
    resolve();
  }));
  await new Promise<void>((resolve) => socket.once('secureConnect', () => resolve()));
  const started = Date.now();
  socket.write('GET /stall-reader/x HTTP/1.1\r\nHost: localhost\r\n\r\n');
  try {
    // Reading all the while: certgate's writes back up and drain over and over for several timeouts.
    await waitFor(() => cut || (received > 4 * 1024 * 1024 && Date.now() - started > 3 * STALL_TIMEOUT_MS), 'the client to read for three timeouts');
    assert.equal(cut, false, 'a client that keeps reading is not cut');
    assert.equal(endlessOpen, 1, 'its upstream connection is streaming');
    socket.pause(); // buffers fill, certgate's writes stop being taken; timeout_ms later it gives up
    await waitFor(() => endlessOpen === 0, 'the upstream connection to be closed', 10_000);
    socket.resume(); // take what was buffered: the connection then ends, cut by certgate
    await closed;
  } finally {
    socket.destroy();
  }
  assert.equal(await upstreamErrors('stall'), before);
});

test('hop: a body on its way to an upstream that cannot be reached → 502, and the rest of the body is read so the connection serves the next request', T, async () => {
  const session = await rawTls(gate.port, creds);
  const size = 8 * 1024 * 1024;
  session.socket.write(`POST /dead/upload HTTP/1.1\r\nHost: localhost\r\nContent-Length: ${size}\r\n\r\n`);
  session.socket.write(Buffer.alloc(size, 0x61));
  session.socket.write('GET /root/after-dead HTTP/1.1\r\nHost: localhost\r\n\r\n');
  try {
    await waitFor(() => session.received().toString('latin1').includes('"url":"/root/after-dead"'), 'the next request on the same connection to be answered');
  } finally {
    session.socket.destroy();
  }
  assert.match(session.received().toString('latin1'), /^HTTP\/1\.1 502 /, 'the upload itself got a 502');
});

test('hop: a transfer coding before chunked (gzip, chunked) → 501 and nothing forwarded (undici would send the coded body as plain chunked)', T, async () => {
  const answer = await rawRequest('POST /framing/gzip-chunked HTTP/1.1\r\nTransfer-Encoding: gzip, chunked', '5\r\nhello\r\n0\r\n\r\n');
  assert.equal(answer.status, 501, `${answer.statusLine} ${answer.body}`);
  assert.equal(JSON.parse(answer.body).error, 'not_implemented');
  assert.match(answer.headers, /^connection: close$/im);
  const sentinel = await mtlsRequest(gate.url, creds, { path: '/framing/after-gzip' });
  assert.equal(sentinel.status, 200, sentinel.body);
  assert.deepEqual(recorder.requests.filter((r) => r.url === '/framing/gzip-chunked'), []);
});

test('hop: a request given up while it waits for a pooled connection never reaches the upstream, and that connection stays pooled', T, async () => {
  // hop.ts alone, over a one-connection undici Pool: the second request has to queue.
  const seen: string[] = [];
  let held: http.ServerResponse | undefined;
  let upstreamConnections = 0;
  const upstream = http.createServer((req, res) => {
    seen.push(req.url ?? '');
    req.resume();
    if (req.url === '/hold') held = res;
    else res.end('ok');
  });
  upstream.on('connection', () => upstreamConnections++);
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
  const upstreamUrl = `http://127.0.0.1:${(upstream.address() as net.AddressInfo).port}`;
  const pool = new Pool(upstreamUrl, { connections: 1, pipelining: 1 });
  const errors: string[] = [];
  const hop = createHop({ onError: (err) => errors.push(String(err.code)), onResponse: () => undefined, draining: () => false });
  const target = hopTarget({ name: 'queue', upstream: new URL(upstreamUrl), timeout_ms: 10_000 } as unknown as RouteConfig, pool);
  let frontClosed = 0;
  const front = http.createServer((req, res) => {
    res.on('close', () => frontClosed++);
    delete req.headers.connection; // hop-by-hop: request-headers.ts strips it before the hop
    hop(req, res, target, false);
  });
  await new Promise<void>((resolve) => front.listen(0, '127.0.0.1', resolve));
  const frontUrl = `http://127.0.0.1:${(front.address() as net.AddressInfo).port}`;
  const get = (path: string): Promise<string> => new Promise((resolve, reject) => {
    http.get(`${frontUrl}${path}`, { agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve(body));
    }).on('error', reject);
  });
  try {
    const first = get('/hold');
    await waitFor(() => held !== undefined, 'the first request to hold the only connection');
    const queued = http.get(`${frontUrl}/queued`, { agent: false });
    queued.on('error', () => undefined);
    await waitFor(() => pool.stats.queued === 1, 'the second request to queue for the connection');
    queued.destroy();
    await waitFor(() => frontClosed === 1, 'certgate to see the queued request\'s client leave');
    held!.end('released');
    assert.equal(await first, 'released');
    assert.equal(await get('/after'), 'ok');
    assert.deepEqual(seen, ['/hold', '/after'], 'the given-up request never reached the upstream');
    assert.equal(upstreamConnections, 1, 'dropping it did not cost the pooled connection');
    assert.deepEqual(errors, [], 'a client that left is not an upstream fault');
  } finally {
    await pool.destroy();
    for (const server of [front, upstream]) {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  }
});
