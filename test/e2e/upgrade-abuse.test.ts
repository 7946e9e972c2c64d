/**
 * What a client can make certgate hold (issue #13, findings 2, 3 and 6): memory when an upstream's answer
 * outruns a client that does not read, connection slots when a refused client never closes its side, and
 * a WebSocket tunnel kept open after its certificate was revoked, its CA removed from tls.client_ca, or it has expired. Real TLS, real sockets;
 * bounds are byte counts and awaited conditions, never timings or RSS.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { randomBytes } from 'node:crypto';
import { createTestPki, type TestPki, type TestCert } from '../helpers/pki.js';
import { metricValue, startTestCertgate, type RunningCertgate } from '../helpers/certgate.js';
import { waitFor } from '../helpers/wait.js';
import { WsTestClient, clientFrame } from '../helpers/websocket.js';
import { listenEchoUpstream } from '../../dist/echo-upstream.js';
import { createCrl, crlToPem, importSigningKey, parseCert } from '../../dist/pki/x509.js';

const T = { timeout: 60_000 };
const MiB = 1024 * 1024;
/**
 * What an upstream may get ahead of a client that reads nothing: the kernel's loopback socket buffers on
 * both hops (autotuned; measured 7.8–10.2 MiB here, on all three paths) plus stream buffers — never the
 * answer itself. Without backpressure the relay passes this within milliseconds (seen: 21 MiB, growing).
 */
const AHEAD_BOUND = 24 * MiB;
/**
 * The same once the client has read at full speed: Linux then autotunes the client's receive buffer (up to
 * net.ipv4.tcp_rmem's max, 32 MiB here), which holds what the client has not read yet — kernel, not
 * certgate (seen up to 25.4 MiB on Node 26 under CI load). Still far below the 512 MiB answer.
 */
const AHEAD_AFTER_READING_BOUND = 64 * MiB;
/** The endless answer's cap: an unbounded relay swallows it all long before the client reads a byte. */
const ANSWER_CAP = 512 * MiB;

let pki: TestPki;
before(async () => {
  pki = await createTestPki();
});
after(() => pki?.cleanup());

const credsOf = (c: TestCert | undefined) => ({ ca: pki.root.cert, ...(c && { cert: c.pem, key: c.key }) });

function upgradeHead(urlPath: string, port: number): string {
  return [
    `GET ${urlPath} HTTP/1.1`, `Host: localhost:${port}`, 'Upgrade: websocket', 'Connection: Upgrade',
    `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}`, 'Sec-WebSocket-Version: 13', '', '',
  ].join('\r\n');
}

/** An upstream that answers every request with an endless stream, writing only as fast as it is read. */
async function startFirehose() {
  const state = { flushed: 0, blocked: false, done: false, connections: 0 };
  const sockets = new Set<net.Socket>();
  const chunk = Buffer.alloc(64 * 1024, 0x61);
  const server = net.createServer((socket) => {
    sockets.add(socket);
    state.connections++;
    socket.on('error', () => {});
    socket.on('close', () => sockets.delete(socket));
    let head = '';
    const onData = (d: Buffer): void => {
      head += d.toString('latin1');
      if (!head.includes('\r\n\r\n')) return;
      socket.removeListener('data', onData);
      socket.resume();
      const upgrade = head.startsWith('GET /tunnel');
      socket.write(upgrade
        ? 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: x\r\n\r\n'
        : 'HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n');
      const pump = (): void => {
        while (!socket.destroyed) {
          if (state.flushed >= ANSWER_CAP) {
            state.done = true;
            socket.end();
            return;
          }
          const ok = socket.write(chunk, (err) => {
            if (!err) state.flushed += chunk.length;
          });
          if (!ok) {
            state.blocked = true;
            socket.once('drain', () => {
              state.blocked = false;
              pump();
            });
            return;
          }
        }
      };
      pump();
    };
    socket.on('data', onData);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`, state,
    close: () => new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    }),
  };
}

/**
 * The upstream has stopped: its write is waiting for 'drain' and nothing was flushed over the last 20
 * polls. Without backpressure it never looks like this for long: every loop turn drains it.
 */
const stallSeen = new WeakMap<object, { flushed: number; polls: number }>();
function stalled(state: { flushed: number; blocked: boolean }): boolean {
  const last = stallSeen.get(state);
  if (!state.blocked || last === undefined || last.flushed !== state.flushed) {
    stallSeen.set(state, { flushed: state.flushed, polls: 0 });
    return false;
  }
  last.polls += 1;
  return last.polls >= 20;
}

for (const [name, request] of [
  ['a plain GET', (port: number) => `GET /download HTTP/1.1\r\nHost: localhost:${port}\r\n\r\n`],
  ['an upgrade answered without 101', (port: number) => upgradeHead('/download', port)],
  ['an open WebSocket tunnel', (port: number) => upgradeHead('/tunnel', port)],
] as const) {
  test(`slow reader: ${name} — the upstream can never get more than a bounded amount ahead of what the client has read`, T, async (t) => {
    const upstream = await startFirehose();
    const gate = await startTestCertgate({
      tls: { bundle: pki.serverBundle.pemPath, client_ca: pki.clientCa.path },
      routes: [{ name: 'firehose', upstream: upstream.url, timeout_ms: 60_000 }],
    });
    const c = credsOf(pki.clients.good);
    let received = 0;
    const socket = tls.connect({ host: '127.0.0.1', port: gate.port, servername: 'localhost', ca: c.ca, cert: c.cert, key: c.key });
    try {
      await new Promise<void>((resolve, reject) => {
        socket.once('secureConnect', resolve);
        socket.once('error', reject);
      });
      socket.on('error', () => {});
      socket.pause();
      socket.write(request(gate.port));
      // The client reads nothing: the upstream must come to a stall within the bound (a relay without
      // backpressure takes everything: the bound is passed long before the cap).
      await waitFor(() => upstream.state.flushed > AHEAD_BOUND || stalled(upstream.state), 'the upstream to stall or pass the bound', 30_000);
      assert.ok(upstream.state.flushed <= AHEAD_BOUND, `the upstream got ${(upstream.state.flushed / MiB).toFixed(1)} MiB ahead of a client that read nothing`);
      t.diagnostic(`ahead of a client that read nothing: ${(upstream.state.flushed / MiB).toFixed(1)} MiB`);
      // Reading resumes the flow, and the bound holds against what the client has read.
      socket.on('data', (d: Buffer) => {
        received += d.length;
      });
      socket.resume();
      const target = upstream.state.flushed + 8 * MiB;
      await waitFor(() => received >= target, 'the client to read 8 MiB more', 30_000);
      socket.pause();
      await waitFor(() => upstream.state.flushed - received > AHEAD_AFTER_READING_BOUND || stalled(upstream.state), 'the upstream to stall again or pass the bound', 30_000);
      t.diagnostic(`ahead after reading: ${((upstream.state.flushed - received) / MiB).toFixed(1)} MiB`);
      assert.ok(upstream.state.flushed - received <= AHEAD_AFTER_READING_BOUND,
        `the upstream got ${((upstream.state.flushed - received) / MiB).toFixed(1)} MiB ahead of the client`);
    } finally {
      socket.destroy();
      await gate.close();
      await upstream.close();
    }
  });
}

async function openConnections(gate: RunningCertgate): Promise<number> {
  return metricValue(await gate.metricsText(), 'certgate_tls_connections_open') ?? -1;
}

test('slot holding: refused upgrades and Connection: close answers end their connection even when the client never closes its side', T, async () => {
  const whoami = await listenEchoUpstream('127.0.0.1', 0);
  const gate = await startTestCertgate({
    tls: { bundle: pki.serverBundle.pemPath, client_ca: pki.clientCa.path },
    routes: [{ name: 'admin', path_prefix: '/admin', upstream: whoami.url, allow: { subject_cn: ['admin'] } }, { name: 'app', upstream: whoami.url }],
    limits: { max_connections: 8 },
  });
  const held: tls.TLSSocket[] = [];
  try {
    const attempts: [TestCert | undefined, string][] = [
      [undefined, upgradeHead('/chat', gate.port)], // no certificate: 400
      [pki.clients.good, upgradeHead('/admin/chat', gate.port)], // not on the allow list: 403
      [pki.clients.good, `GET /h2c HTTP/1.1\r\nHost: localhost\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n`], // 400 upgrade_not_websocket
      [pki.clients.good, `GET /plain HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`], // an ordinary close
    ];
    // 2 rounds × 4 = max_connections: held forever, they would lock every later client out.
    for (let round = 0; round < 2; round++) {
      for (const [cert, request] of attempts) {
        const c = credsOf(cert);
        // allowHalfOpen: this client keeps its side open after certgate's answer and FIN.
        const s = tls.connect({
          host: '127.0.0.1', port: gate.port, servername: 'localhost', ca: c.ca, ...(cert && { cert: c.cert, key: c.key }),
          ...({ allowHalfOpen: true } as object), // missing from tls.ConnectionOptions' types; net.Socket reads it
        });
        s.on('error', () => {});
        held.push(s);
        let answer = '';
        s.on('data', (d: Buffer) => (answer += d.toString('latin1')));
        await new Promise<void>((resolve, reject) => {
          s.once('secureConnect', resolve);
          s.once('close', () => reject(new Error('closed before the handshake (max_connections full?)')));
        });
        s.write(request);
        await new Promise<void>((resolve) => s.once('end', resolve));
        assert.match(answer, /^HTTP\/1\.1 [24]0[03] /, answer);
      }
    }
    // 8 connections were answered and are held half-open by their clients; certgate has closed them all.
    await waitFor(async () => (await openConnections(gate)) === 0, 'certgate to close every answered connection');
    const ok = await new Promise<number>((resolve, reject) => {
      const c = credsOf(pki.clients.good);
      const s = tls.connect({ host: '127.0.0.1', port: gate.port, servername: 'localhost', ca: c.ca, cert: c.cert, key: c.key }, () => {
        s.write('GET /after HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n');
      });
      let data = '';
      s.on('data', (d: Buffer) => (data += d.toString('latin1')));
      s.on('end', () => resolve(Number(data.slice(9, 12))));
      s.on('error', reject);
    });
    assert.equal(ok, 200, 'a new client is served: no slot is held');
  } finally {
    for (const s of held) s.destroy();
    await gate.close();
    await whoami.close();
  }
});

test('slot holding by a silent upstream: an upgrade the upstream accepts but never answers gets 504 at the route\'s timeout_ms and its connection ends; the slot is freed', T, async () => {
  // Accepts, reads, never writes: before a 101 the client socket must be under the route's timeout like any request's.
  const upstreamSockets = new Set<net.Socket>();
  const silent = net.createServer((socket) => {
    upstreamSockets.add(socket);
    socket.on('error', () => {});
  });
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  const gate = await startTestCertgate({
    tls: { bundle: pki.serverBundle.pemPath, client_ca: pki.clientCa.path },
    routes: [{ name: 'silent', upstream: `http://127.0.0.1:${(silent.address() as net.AddressInfo).port}`, timeout_ms: 300 }],
    limits: { max_connections: 2 },
  });
  const held: tls.TLSSocket[] = [];
  try {
    for (let i = 0; i < 2; i++) {
      const c = credsOf(pki.clients.good);
      const s = tls.connect({ host: '127.0.0.1', port: gate.port, servername: 'localhost', ca: c.ca, cert: c.cert, key: c.key, ...({ allowHalfOpen: true } as object) });
      s.on('error', () => {});
      held.push(s);
      let answer = '';
      s.on('data', (d: Buffer) => (answer += d.toString('latin1')));
      await new Promise<void>((resolve, reject) => {
        s.once('secureConnect', resolve);
        s.once('close', () => reject(new Error('closed before the handshake (max_connections full?)')));
      });
      s.write(upgradeHead('/ws', gate.port));
      await new Promise<void>((resolve) => s.once('end', resolve));
      assert.match(answer, /^HTTP\/1\.1 504 /, answer);
      assert.match(answer, /"error":"upstream_timeout"/);
    }
    await waitFor(async () => (await openConnections(gate)) === 0, 'certgate to close both answered connections');
    const after = await new Promise<number>((resolve, reject) => {
      const c = credsOf(pki.clients.good);
      const s = tls.connect({ host: '127.0.0.1', port: gate.port, servername: 'localhost', ca: c.ca, cert: c.cert, key: c.key }, () => {
        s.write(upgradeHead('/ws', gate.port));
      });
      let data = '';
      s.on('data', (d: Buffer) => (data += d.toString('latin1')));
      s.on('close', () => resolve(Number(data.slice(9, 12))));
      s.on('error', reject);
    });
    assert.equal(after, 504, 'a new client gets a slot (and the same answer)');
  } finally {
    for (const s of held) s.destroy();
    await gate.close();
    for (const s of upstreamSockets) s.destroy();
    await new Promise<void>((resolve) => silent.close(() => resolve()));
  }
});

/** A tunnel through certgate to whoami, its 101 and first frame read. */
async function openTunnel(gate: RunningCertgate, cert: TestCert): Promise<WsTestClient> {
  const ws = await WsTestClient.connectTls(gate.port, credsOf(cert));
  ws.socket.write(upgradeHead('/ws', gate.port));
  assert.equal((await ws.head()).status, 101);
  await ws.frame();
  return ws;
}

async function echoes(ws: WsTestClient): Promise<boolean> {
  const message = randomBytes(8);
  ws.socket.write(clientFrame(0x2, message));
  return (await ws.frame()).payload.equals(message);
}

test('revoked tunnel: a WebSocket tunnel opened before its certificate was revoked is closed after the CRL reload, logged once, counted; others live on', T, async () => {
  const whoami = await listenEchoUpstream('127.0.0.1', 0);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'certgate-tunnel-crl-'));
  const crlFile = path.join(dir, 'crl.pem');
  const victim = await pki.issueClient({ name: 'tunnel-victim', subject: [['CN', 'svc-tunnel-victim']] });
  const issuer = { cert: parseCert(pki.intermediate.cert), privateKey: await importSigningKey(pki.intermediate.key) };
  const [clean, revoking] = await Promise.all([
    createCrl({ issuer, crlNumber: 20n }),
    createCrl({ issuer, crlNumber: 21n, entries: [{ serial: victim.x509.serialNumber }] }),
  ]);
  fs.writeFileSync(crlFile, crlToPem(clean) + pki.crlRootPem);
  const gate = await startTestCertgate({
    tls: { bundle: pki.serverBundle.pemPath, client_ca: pki.clientCa.path, crl: crlFile },
    routes: [{ name: 'ws', upstream: whoami.url }],
  });
  try {
    const doomed = await openTunnel(gate, victim);
    const bystander = await openTunnel(gate, pki.clients.good);
    assert.ok(await echoes(doomed), 'precondition: the tunnel works before the revocation');
    fs.writeFileSync(crlFile, crlToPem(revoking) + pki.crlRootPem);
    await waitFor(() => doomed.closed, 'the revoked client\'s tunnel to be closed', 10_000);
    assert.ok(await echoes(bystander), 'a tunnel of a client still trusted keeps working');
    const text = await gate.metricsText();
    assert.equal(metricValue(text, 'certgate_tunnels_closed_total', { reason: 'revoked' }), 1);
    const lines = gate.logs.find('websocket tunnel closed: client certificate no longer trusted');
    assert.equal(lines.length, 1, JSON.stringify(lines));
    assert.equal(lines[0]!.reason, 'revoked');
    assert.equal(lines[0]!.client_subject, 'CN=svc-tunnel-victim');
    bystander.socket.destroy();
  } finally {
    await gate.close();
    await whoami.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('untrusted CA tunnel: a WebSocket tunnel of a client whose CA was removed from tls.client_ca is closed after the reload, logged once, counted; a client of a CA still trusted keeps its tunnel', T, async () => {
  const whoami = await listenEchoUpstream('127.0.0.1', 0);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'certgate-tunnel-ca-'));
  const clientCa = path.join(dir, 'client-ca.pem');
  // Both CAs trusted at first: this run's intermediate (and root) and the unrelated root of svc-other.
  fs.writeFileSync(clientCa, pki.clientCa.pem + pki.otherRoot.cert);
  const gate = await startTestCertgate({
    tls: { bundle: pki.serverBundle.pemPath, client_ca: clientCa },
    routes: [{ name: 'ws', upstream: whoami.url }],
  });
  try {
    const doomed = await openTunnel(gate, pki.clients.otherCa);
    const bystander = await openTunnel(gate, pki.clients.good);
    assert.ok(await echoes(doomed), 'precondition: the tunnel works while its CA is trusted');
    fs.writeFileSync(clientCa, pki.clientCa.pem); // the unrelated root is no longer trusted
    await waitFor(() => doomed.closed, 'the tunnel of the client whose CA was removed to be closed', 10_000);
    assert.ok(await echoes(bystander), 'a tunnel of a client still trusted keeps working');
    assert.equal(metricValue(await gate.metricsText(), 'certgate_tunnels_closed_total', { reason: 'unknown_ca' }), 1);
    const lines = gate.logs.find('websocket tunnel closed: client certificate no longer trusted');
    assert.equal(lines.length, 1, JSON.stringify(lines));
    assert.equal(lines[0]!.reason, 'unknown_ca');
    bystander.socket.destroy();
  } finally {
    await gate.close();
    await whoami.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('expired tunnel: a WebSocket tunnel is closed when its client certificate reaches notAfter', T, async () => {
  const whoami = await listenEchoUpstream('127.0.0.1', 0);
  // Whole seconds: X.509 times have no fractions. Long enough to connect, short enough to wait for.
  const notAfter = new Date(Math.ceil((Date.now() + 4000) / 1000) * 1000);
  const shortLived = await pki.issueClient({ name: 'tunnel-short', subject: [['CN', 'svc-short-lived']], notAfter });
  const gate = await startTestCertgate({
    tls: { bundle: pki.serverBundle.pemPath, client_ca: pki.clientCa.path },
    routes: [{ name: 'ws', upstream: whoami.url }],
  });
  try {
    const ws = await openTunnel(gate, shortLived);
    assert.ok(await echoes(ws));
    await waitFor(() => ws.closed, 'the tunnel to close at notAfter', 15_000);
    assert.ok(Date.now() >= notAfter.getTime(), 'not before notAfter');
    assert.equal(metricValue(await gate.metricsText(), 'certgate_tunnels_closed_total', { reason: 'expired' }), 1);
  } finally {
    await gate.close();
    await whoami.close();
  }
});
