/**
 * Upstream-connection desync (issue #13, findings 1, 7 and 8): a request or an answer whose framing the
 * two ends of the upstream connection read differently lets one client's bytes become another request
 * (an allow-list bypass), or one upstream answer become another client's response. Every attack here is
 * sent by a client with a valid, low-privilege certificate, over real TLS, to a real upstream (nginx from
 * Debian where its parser is the point, a raw TCP upstream where the upstream must misbehave).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import tls from 'node:tls';
import { randomBytes } from 'node:crypto';
import { createTestPki, type TestPki } from '../helpers/pki.js';
import { startTestCertgate, type RunningCertgate } from '../helpers/certgate.js';
import { mtlsRequest, rawTlsExchange, type ClientCreds } from '../helpers/client.js';
import { waitFor } from '../helpers/wait.js';
import { NGINX, startNginx, type RunningNginx } from '../helpers/nginx.js';

const T = { timeout: 30_000 };

let pki: TestPki;
let creds: ClientCreds;
before(async () => {
  pki = await createTestPki();
  creds = { ca: pki.root.cert, cert: pki.clients.good.pem, key: pki.clients.good.key };
});
after(() => pki?.cleanup());

function upgradeHead(path: string, host: string, extra: readonly string[] = [], first: readonly string[] = []): string {
  return [
    `GET ${path} HTTP/1.1`, ...first, `Host: ${host}`, 'Upgrade: websocket', 'Connection: Upgrade',
    `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}`, 'Sec-WebSocket-Version: 13', ...extra, '', '',
  ].join('\r\n');
}

function parseAnswer(raw: string): { status: number; head: string; body: string } {
  const end = raw.indexOf('\r\n\r\n');
  assert.ok(end > 0, `an HTTP answer, got ${JSON.stringify(raw)}`);
  return { status: Number(raw.slice(9, 12)), head: raw.slice(0, end), body: raw.slice(end + 4) };
}

test('websocket smuggling: an upgrade declaring a body it never sends cannot make nginx read the next request as its body and serve a forbidden route', { ...T, skip: NGINX === undefined ? 'nginx is not installed' : false }, async () => {
  const nginx: RunningNginx = await startNginx(`
    location / { return 200 "public\\n"; }
    location /admin { return 200 "ADMIN\\n"; }`);
  const gate = await startTestCertgate({
    tls: { bundle: pki.serverBundle.pemPath, client_ca: pki.clientCa.path },
    routes: [
      { name: 'admin', path_prefix: '/admin', upstream: nginx.url, allow: { subject_cn: ['admin'] } },
      { name: 'public', upstream: nginx.url },
    ],
  });
  try {
    // Control: the allow list refuses this client on /admin.
    assert.equal((await mtlsRequest(gate.url, creds, { path: '/admin' })).status, 403);
    const host = `localhost:${gate.port}`;
    // The review's attack: N = the bytes of the second upgrade's request line and `x-a: ` as the upstream
    // would receive them, so that what is left starts with `GET /admin HTTP/1.1`.
    const n = 'GET /public HTTP/1.1\r\nx-a: '.length;
    const first = parseAnswer(await rawTlsExchange('127.0.0.1', gate.port, creds, upgradeHead('/public', host, [`Content-Length: ${n}`])));
    assert.equal(first.status, 400, first.head);
    assert.match(first.head, /\r\nconnection: close/i);
    assert.equal(JSON.parse(first.body).reason, 'upgrade_with_body');
    const second = parseAnswer(await rawTlsExchange('127.0.0.1', gate.port, creds, upgradeHead('/public', host, [], ['X-A: GET /admin HTTP/1.1'])));
    // nginx does not speak WebSocket here: its 200 is relayed, and that connection ends.
    assert.equal(second.status, 200, second.head);
    assert.equal(second.body, 'public\n');
    assert.match(second.head, /\r\nconnection: close/i);
    for (const te of ['chunked', 'gzip, chunked']) {
      const refused = parseAnswer(await rawTlsExchange('127.0.0.1', gate.port, creds, upgradeHead('/public', host, [`Transfer-Encoding: ${te}`])));
      assert.equal(refused.status, 400, refused.head);
      assert.equal(JSON.parse(refused.body).reason, 'upgrade_with_body');
    }
    // A Content-Length of 0 declares no body: forwarded (without it).
    const zero = parseAnswer(await rawTlsExchange('127.0.0.1', gate.port, creds, upgradeHead('/public', host, ['Content-Length: 0'])));
    assert.equal(zero.status, 200, zero.head);
    await waitFor(() => nginx.requests().length >= 2, 'nginx logged the forwarded upgrades');
    const lines = nginx.requests();
    assert.deepEqual(lines, ['GET /public HTTP/1.1 200', 'GET /public HTTP/1.1 200'], 'nginx served only the two bodiless upgrades, never /admin');
  } finally {
    await gate.close();
    await nginx.close();
  }
});

/**
 * A raw TCP upstream that parses request heads (no bodies) and answers as `answer` says, per connection.
 * It records each connection's requests and whether that connection has closed.
 */
interface RawConn { readonly id: number; readonly requests: string[]; closed: boolean; state: Record<string, unknown> }
async function startRawUpstream(answer: (conn: RawConn, requestLine: string, socket: net.Socket) => void) {
  const conns: RawConn[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    const conn: RawConn = { id: conns.length, requests: [], closed: false, state: {} };
    conns.push(conn);
    let buf = '';
    socket.on('data', (d: Buffer) => {
      buf += d.toString('latin1');
      for (let end = buf.indexOf('\r\n\r\n'); end !== -1; end = buf.indexOf('\r\n\r\n')) {
        const line = buf.slice(0, buf.indexOf('\r\n'));
        buf = buf.slice(end + 4);
        conn.requests.push(line);
        answer(conn, line, socket);
      }
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      conn.closed = true;
      sockets.delete(socket);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    conns,
    close: () => new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    }),
  };
}

test('an upstream connection used for a refused upgrade (403 keep-alive) is relayed, closed, and never pooled for the next upgrade', T, async () => {
  const upstream = await startRawUpstream((_conn, _line, socket) => {
    socket.write('HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: 9\r\nConnection: keep-alive\r\nKeep-Alive: timeout=60\r\n\r\nforbidden');
  });
  const gate = await startTestCertgate({
    tls: { bundle: pki.serverBundle.pemPath, client_ca: pki.clientCa.path },
    routes: [{ name: 'ws', upstream: upstream.url }],
  });
  try {
    const host = `localhost:${gate.port}`;
    for (let i = 0; i < 2; i++) {
      const answer = parseAnswer(await rawTlsExchange('127.0.0.1', gate.port, creds, upgradeHead(`/chat/${i}`, host)));
      assert.equal(answer.status, 403, answer.head);
      assert.equal(answer.body, 'forbidden');
      assert.match(answer.head, /\r\nconnection: close(\r\n|$)/i);
      assert.doesNotMatch(answer.head, /keep-alive: /i, 'the upstream\'s hop-by-hop fields stay on its hop');
      await waitFor(() => upstream.conns[i]?.closed === true, `upstream connection ${i} closed by certgate`);
    }
    assert.deepEqual(upstream.conns.map((c) => c.requests.length), [1, 1], 'one upgrade attempt per upstream connection');
  } finally {
    await gate.close();
    await upstream.close();
  }
});

test('h2c and non-GET upgrades get 400 upgrade_not_websocket (not a silently destroyed socket) and never reach the upstream', T, async () => {
  const upstream = await startRawUpstream((_c, _l, socket) => socket.write('HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n'));
  const gate = await startTestCertgate({
    tls: { bundle: pki.serverBundle.pemPath, client_ca: pki.clientCa.path },
    routes: [{ name: 'ws', upstream: upstream.url }],
  });
  try {
    const host = `localhost:${gate.port}`;
    const attempts = [
      `GET /h2c HTTP/1.1\r\nHost: ${host}\r\nUpgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n`,
      `POST /ws HTTP/1.1\r\nHost: ${host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n`,
      `GET /tls HTTP/1.1\r\nHost: ${host}\r\nUpgrade: TLS/1.2\r\nConnection: Upgrade\r\n\r\n`,
    ];
    for (const attempt of attempts) {
      const answer = parseAnswer(await rawTlsExchange('127.0.0.1', gate.port, creds, attempt));
      assert.equal(answer.status, 400, `${attempt.split('\r\n')[0]}: ${answer.head}`);
      assert.match(answer.head, /\r\ncontent-type: application\/json/i);
      const body = JSON.parse(answer.body) as Record<string, unknown>;
      assert.equal(body.error, 'bad_request');
      assert.equal(body.reason, 'upgrade_not_websocket');
    }
    assert.equal(upstream.conns.length, 0, 'nothing reached the upstream');
  } finally {
    await gate.close();
    await upstream.close();
  }
});

test('HEAD poisoning: an upstream that sends a body after its HEAD answer cannot put it in front of the next client\'s response', T, async () => {
  // The upstream misbehaves on purpose: after a HEAD (or a 204/304 that declares a body) it sends a whole
  // forged response when the next request arrives on that connection, then the real answer.
  const upstream = await startRawUpstream((conn, line, socket) => {
    if (conn.state.poison === true) socket.write('HTTP/1.1 200 OK\r\nX-Poison: 1\r\nContent-Length: 6\r\n\r\npoison');
    if (line.startsWith('HEAD ')) {
      socket.write('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 40\r\n\r\n');
      conn.state.poison = true;
      conn.state.poisonedAfter = conn.requests.length;
    } else if (line.startsWith('GET /no-content')) {
      socket.write('HTTP/1.1 204 No Content\r\nContent-Length: 6\r\n\r\n');
      conn.state.poison = true;
      conn.state.poisonedAfter = conn.requests.length;
    } else if (line.startsWith('GET /not-modified')) {
      socket.write('HTTP/1.1 304 Not Modified\r\nContent-Length: 6\r\n\r\n');
      conn.state.poison = true;
      conn.state.poisonedAfter = conn.requests.length;
    } else {
      socket.write('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 4\r\n\r\nreal');
    }
  });
  const gate = await startTestCertgate({
    tls: { bundle: pki.serverBundle.pemPath, client_ca: pki.clientCa.path },
    routes: [{ name: 'app', upstream: upstream.url }],
  });
  try {
    for (const [first, status] of [['HEAD', 200], ['GET /no-content', 204], ['GET /not-modified', 304]] as const) {
      const [method, path = '/head'] = first.split(' ') as [string, string?];
      const a = await mtlsRequest(gate.url, creds, { method, path });
      assert.equal(a.status, status);
      assert.equal(a.body, '');
      // Another client, next: the pool would hand it the same upstream connection.
      const b = await mtlsRequest(gate.url, { ca: pki.root.cert, cert: pki.clients.direct.pem, key: pki.clients.direct.key }, { path: '/next' });
      assert.equal(b.status, 200);
      assert.equal(b.headers['x-poison'], undefined, `after ${first}: the next client got the upstream's leftover response`);
      assert.equal(b.body, 'real');
    }
    const poisoned = upstream.conns.filter((c) => c.state.poison === true);
    assert.equal(poisoned.length, 3);
    assert.ok(poisoned.every((c) => c.requests.length === c.state.poisonedAfter),
      `no upstream connection served a request after a HEAD or a body-declaring 204/304: ${JSON.stringify(upstream.conns.map((c) => c.requests))}`);
    await waitFor(() => upstream.conns.filter((c) => c.state.poison === true).every((c) => c.closed), 'those connections closed');
  } finally {
    await gate.close();
    await upstream.close();
  }
});

test('max_body_bytes race: a chunked body over the limit never reaches the upstream whole — never byte limit + 1, never the last chunk — in every run', T, async () => {
  const LIMIT = 1024;
  const seen = new Map<string, { bytes: number; complete: boolean; closed: boolean }>();
  const upstream = http.createServer((req, res) => {
    const r = { bytes: 0, complete: false, closed: false };
    seen.set(req.url ?? '', r);
    req.on('data', (c: Buffer) => (r.bytes += c.length));
    req.on('end', () => {
      r.complete = true;
      res.end('stored');
    });
    req.on('close', () => (r.closed = true));
    req.on('error', () => {});
  });
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
  const gate = await startTestCertgate({
    tls: { bundle: pki.serverBundle.pemPath, client_ca: pki.clientCa.path },
    routes: [{ name: 'upload', upstream: `http://127.0.0.1:${(upstream.address() as net.AddressInfo).port}`, max_body_bytes: LIMIT }],
  });
  try {
    const chunk = (n: number): string => `${n.toString(16)}\r\n${'a'.repeat(n)}\r\n`;
    const shapes: [string, string][] = [
      ['one write: 30 chunks of 1000 bytes and the terminator', Array.from({ length: 30 }, () => chunk(1000)).join('') + '0\r\n\r\n'],
      ['limit exactly, then one byte more', chunk(LIMIT) + chunk(1) + '0\r\n\r\n'],
      ['small chunks crossing the limit', Array.from({ length: 40 }, () => chunk(100)).join('') + '0\r\n\r\n'],
    ];
    for (let round = 0; round < 12; round++) {
      const [what, body] = shapes[round % shapes.length]!;
      const path = `/upload/${round}`;
      const raw = await rawTlsExchange('127.0.0.1', gate.port, creds,
        `POST ${path} HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n${body}`);
      const answer = parseAnswer(raw);
      assert.equal(answer.status, 413, `${what}: ${answer.head}`);
      assert.equal(JSON.parse(answer.body).limit, LIMIT);
      // Whatever reached the upstream has ended by the time a later request on the same route is served.
      const sentinel = await mtlsRequest(gate.url, creds, { path: `/sentinel/${round}` });
      assert.equal(sentinel.status, 200);
      const r = seen.get(path);
      if (r !== undefined) await waitFor(() => r.closed || r.complete, `${what}: the upstream request ended`);
      assert.ok(r === undefined || r.bytes <= LIMIT, `${what}: the upstream received ${r?.bytes} bytes (limit ${LIMIT})`);
      assert.ok(r === undefined || !r.complete, `${what}: the upstream received a complete body (round ${round})`);
    }
  } finally {
    await gate.close();
    upstream.closeAllConnections();
    await new Promise<void>((resolve) => upstream.close(() => resolve()));
  }
});

test('refused Expect: 100-continue: the body a refused request declared is read as its body, never as the next request on the connection', T, async () => {
  const seen: string[] = [];
  const upstream = http.createServer((req, res) => {
    seen.push(`${req.method} ${req.url}`);
    req.resume();
    req.on('end', () => res.end('ok'));
  });
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(upstream.address() as net.AddressInfo).port}`;
  const gate = await startTestCertgate({
    tls: { bundle: pki.serverBundle.pemPath, client_ca: pki.clientCa.path },
    routes: [{ name: 'admin', path_prefix: '/admin', upstream: url, allow: { subject_cn: ['admin'] } }, { name: 'app', upstream: url }],
  });
  const socket = await new Promise<tls.TLSSocket>((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port: gate.port, servername: 'localhost', ca: creds.ca, cert: creds.cert, key: creds.key }, () => resolve(s));
    s.once('error', reject);
  });
  try {
    let got = '';
    socket.on('data', (d: Buffer) => (got += d.toString('latin1')));
    const smuggled = 'GET /admin/secret HTTP/1.1\r\nHost: localhost\r\n\r\n';
    for (const framing of [`Content-Length: ${smuggled.length}`, 'Transfer-Encoding: chunked']) {
      got = '';
      socket.write(`POST /admin/upload HTTP/1.1\r\nHost: localhost\r\nExpect: 100-continue\r\n${framing}\r\n\r\n`);
      await waitFor(() => / 403 /.test(got), `${framing}: the refusal`);
      // The client sends the body anyway (it may have sent it before any answer): it must be consumed as the
      // refused request's body, then the connection serves the next real request.
      socket.write(framing.startsWith('Content-Length') ? smuggled : `${smuggled.length.toString(16)}\r\n${smuggled}\r\n0\r\n\r\n`);
      socket.write('GET /next HTTP/1.1\r\nHost: localhost\r\n\r\n');
      await waitFor(() => /\r\n\r\nok$/.test(got), `${framing}: the next request's answer`);
      const statuses = [...got.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => m[1]).filter((s) => s !== '100');
      assert.deepEqual(statuses, ['403', '200'], `${framing}: ${got}`);
    }
    assert.deepEqual(seen, ['GET /next', 'GET /next'], 'the upstream never saw the smuggled /admin request');
  } finally {
    socket.destroy();
    await gate.close();
    upstream.closeAllConnections();
    await new Promise<void>((resolve) => upstream.close(() => resolve()));
  }
});
