import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import { listenEchoUpstream } from '../../dist/echo-upstream.js';
import { WsTestClient, clientFrame } from '../helpers/websocket.js';

type Whoami = Awaited<ReturnType<typeof listenEchoUpstream>>;

interface Echo {
  method: string;
  path: string;
  headers: Record<string, string | string[]>;
  raw_headers: [string, string][];
  body_len: number;
}

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** One HTTP request; `chunks` are written one by one (chunked, no content-length). */
function request(url: string, opts: { method?: string; path?: string; headers?: http.OutgoingHttpHeaders; chunks?: Buffer[] }): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      `${url}${opts.path ?? '/'}`,
      { method: opts.method ?? 'GET', headers: opts.headers ?? {}, agent: false },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    for (const c of opts.chunks ?? []) req.write(c);
    req.end();
  });
}



function handshake(key: string, extra = ''): string {
  return (
    'GET /ws/chat?room=1 HTTP/1.1\r\n' +
    'Host: whoami.test\r\n' +
    'Upgrade: websocket\r\n' +
    'Connection: Upgrade\r\n' +
    `Sec-WebSocket-Key: ${key}\r\n` +
    'Sec-WebSocket-Version: 13\r\n' +
    extra +
    '\r\n'
  );
}

/** Connects, upgrades, reads the 101 and the JSON frame. */
async function openWebSocket(url: string, firstFrames: Buffer[] = []): Promise<{ c: WsTestClient; hello: Echo }> {
  const c = await WsTestClient.connect(url);
  const key = randomBytes(16).toString('base64');
  c.socket.write(Buffer.concat([Buffer.from(handshake(key)), ...firstFrames]));
  const head = await c.head();
  assert.equal(head.status, 101);
  const hello = await c.frame();
  assert.equal(hello.opcode, 0x1);
  return { c, hello: JSON.parse(hello.payload.toString('utf8')) as Echo };
}

describe('whoami', () => {
  let w: Whoami;
  before(async () => {
    w = await listenEchoUpstream('127.0.0.1', 0);
  });
  after(async () => {
    await w.close();
  });

  it('reports its url with the real port', () => {
    assert.match(w.url, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.notEqual(new URL(w.url).port, '0');
  });

  it('echoes method, path with query, headers and the body length as JSON', { timeout: 5000 }, async () => {
    const body = randomBytes(100_000);
    const res = await request(w.url, {
      method: 'POST',
      path: '/api/x?y=1&z=%2F',
      headers: { 'x-client-subject': 'CN=alice,O=Example', 'content-length': body.length },
      chunks: [body],
    });
    assert.equal(res.status, 200);
    assert.equal(res.headers['content-type'], 'application/json');
    const echo = JSON.parse(res.body) as Echo;
    assert.equal(echo.method, 'POST');
    assert.equal(echo.path, '/api/x?y=1&z=%2F');
    assert.equal(echo.headers['x-client-subject'], 'CN=alice,O=Example');
    assert.equal(echo.headers['content-length'], '100000');
    assert.equal(echo.body_len, 100_000);
  });

  it('counts a chunked body streamed in pieces', { timeout: 5000 }, async () => {
    const chunks = [Buffer.alloc(1), Buffer.alloc(70_000), Buffer.alloc(4_321)];
    const res = await request(w.url, { method: 'PUT', path: '/up', chunks });
    const echo = JSON.parse(res.body) as Echo;
    assert.equal(echo.headers['transfer-encoding'], 'chunked');
    assert.equal(echo.body_len, 74_322);
  });

  it('answers a GET without body with body_len 0', { timeout: 5000 }, async () => {
    const echo = JSON.parse((await request(w.url, { path: '/' })).body) as Echo;
    assert.deepEqual([echo.method, echo.path, echo.body_len], ['GET', '/', 0]);
  });

  it('lists duplicated headers separately in raw_headers', { timeout: 5000 }, async () => {
    const c = await WsTestClient.connect(w.url);
    c.socket.write(
      'GET /dup HTTP/1.1\r\nHost: x\r\nX-Client-Subject: CN=evil,O=x\r\nX-Client-Subject: CN=real\r\nConnection: close\r\n\r\n',
    );
    const head = await c.head();
    assert.equal(head.status, 200);
    await c.closedPromise;
    // The body is what is left after the head (content-length given; the server closed).
    const echo = JSON.parse(c.rest().toString('utf8')) as Echo;
    assert.deepEqual(
      echo.raw_headers.filter(([n]) => n.toLowerCase() === 'x-client-subject'),
      [['X-Client-Subject', 'CN=evil,O=x'], ['X-Client-Subject', 'CN=real']],
    );
  });

  it('completes a WebSocket handshake, sends the JSON, echoes text frames', { timeout: 5000 }, async () => {
    const c = await WsTestClient.connect(w.url);
    const key = randomBytes(16).toString('base64');
    // The first frame rides in the same packet as the handshake (Node hands it over as `head`).
    c.socket.write(
      Buffer.concat([
        Buffer.from(handshake(key, 'X-Client-Spiffe-Id: spiffe://example.org/ns/prod/sa/svc\r\n')),
        clientFrame(0x1, Buffer.from('hello')),
      ]),
    );
    const head = await c.head();
    assert.equal(head.status, 101);
    assert.equal(head.headers.get('upgrade')?.[0]?.toLowerCase(), 'websocket');
    assert.equal(
      head.headers.get('sec-websocket-accept')?.[0],
      createHash('sha1').update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64'),
    );

    const hello = await c.frame();
    assert.deepEqual([hello.fin, hello.opcode, hello.masked], [true, 0x1, false]);
    const echo = JSON.parse(hello.payload.toString('utf8')) as Echo;
    assert.equal(echo.method, 'GET');
    assert.equal(echo.path, '/ws/chat?room=1');
    assert.equal(echo.headers['x-client-spiffe-id'], 'spiffe://example.org/ns/prod/sa/svc');
    assert.equal(echo.body_len, 0);

    const e1 = await c.frame();
    assert.deepEqual([e1.opcode, e1.masked, e1.payload.toString()], [0x1, false, 'hello']);

    // 16-bit length, split across two TCP writes.
    const long = Buffer.from('é'.repeat(200));
    const f = clientFrame(0x1, long);
    c.socket.write(f.subarray(0, 3));
    c.socket.write(f.subarray(3));
    const e2 = await c.frame();
    assert.equal(e2.payload.toString('utf8'), 'é'.repeat(200));

    // A fragmented message comes back whole; a ping in between is answered.
    c.socket.write(
      Buffer.concat([
        clientFrame(0x1, Buffer.from('frag-'), { fin: false }),
        clientFrame(0x9, Buffer.from('p')),
        clientFrame(0x0, Buffer.from('ment')),
      ]),
    );
    const pong = await c.frame();
    assert.deepEqual([pong.opcode, pong.payload.toString()], [0xa, 'p']);
    const e3 = await c.frame();
    assert.deepEqual([e3.opcode, e3.fin, e3.payload.toString()], [0x1, true, 'frag-ment']);

    const code = Buffer.alloc(2);
    code.writeUInt16BE(1000);
    c.socket.write(clientFrame(0x8, Buffer.concat([code, Buffer.from('bye')])));
    const close = await c.frame();
    assert.equal(close.opcode, 0x8);
    assert.equal(close.payload.readUInt16BE(0), 1000);
    await c.closedPromise;
  });

  it('closes on an unmasked client frame (1002) and keeps serving', { timeout: 5000 }, async () => {
    const { c } = await openWebSocket(w.url);
    c.socket.write(clientFrame(0x1, Buffer.from('x'), { mask: false }));
    const close = await c.frame();
    assert.equal(close.opcode, 0x8);
    assert.equal(close.payload.readUInt16BE(0), 1002);
    await c.closedPromise;
    assert.equal((await request(w.url, { path: '/still' })).status, 200);
  });

  it('closes on garbage bytes, a reserved opcode, or invalid UTF-8 text', { timeout: 5000 }, async () => {
    const bad: [Buffer, number][] = [
      [Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]), 1002],
      [clientFrame(0x3, Buffer.from('x')), 1002],
      [clientFrame(0x1, Buffer.from([0xc0, 0xae])), 1007],
      [clientFrame(0x0, Buffer.from('no start')), 1002],
    ];
    for (const [bytes, want] of bad) {
      const { c } = await openWebSocket(w.url);
      c.socket.write(bytes);
      const close = await c.frame();
      assert.equal(close.opcode, 0x8);
      assert.equal(close.payload.readUInt16BE(0), want, bytes.toString('hex'));
      await c.closedPromise;
    }
    assert.equal((await request(w.url, { path: '/still' })).status, 200);
  });

  it('closes with 1009 on a frame larger than 1 MiB without buffering it', { timeout: 5000 }, async () => {
    const { c } = await openWebSocket(w.url);
    const h = Buffer.from([0x81, 0x80 | 127, 0, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff, 1, 2, 3, 4]);
    c.socket.write(h);
    const close = await c.frame();
    assert.equal(close.payload.readUInt16BE(0), 1009);
    await c.closedPromise;
  });

  it('refuses an upgrade that is not a valid WebSocket handshake with 400', { timeout: 5000 }, async () => {
    for (const req of [
      'GET / HTTP/1.1\r\nHost: x\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n',
      'GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n',
      `GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 8\r\n\r\n`,
    ]) {
      const c = await WsTestClient.connect(w.url);
      c.socket.write(req);
      assert.equal((await c.head()).status, 400, req);
      await c.closedPromise;
    }
  });

  it('close() ends open WebSockets and keep-alive connections instead of hanging', { timeout: 5000 }, async () => {
    const own = await listenEchoUpstream('127.0.0.1', 0);
    const { c } = await openWebSocket(own.url);
    const agent = new http.Agent({ keepAlive: true });
    await new Promise<void>((resolve, reject) => {
      http.get(`${own.url}/`, { agent }, (res) => {
        res.resume();
        res.on('end', resolve);
      }).on('error', reject);
    });
    await own.close();
    await c.closedPromise;
    assert.equal(c.closed, true);
    agent.destroy();
  });
});
