/**
 * Tools for the hardening suites (hostile clients, limits, upstream faults): raw TCP and TLS sessions
 * that report when the *server* closed them, a captured real ClientHello, a raw upstream that records
 * every connection and byte (the "victim" that must see nothing), and a count of the server-side
 * sockets still open on a port (read from /proc/net/tcp, so connections still in their handshake,
 * which no metric counts yet, are included).
 */
import net from 'node:net';
import tls from 'node:tls';
import { readFileSync } from 'node:fs';
import assert from 'node:assert/strict';
import { mtlsRequest, type ClientCreds } from './client.js';
import { metricValue, type RunningCertgate } from './certgate.js';
import { waitFor } from './wait.js';

/** The parts of a running certgate these helpers need (in-process or a spawned CLI). */
export type RunningCertgateLike = Pick<RunningCertgate, 'metricsText' | 'port' | 'url'>;

/** What a raw session saw: everything the server sent and whether (and when) the server closed it. */
export interface RawSession {
  readonly socket: net.Socket;
  /** Everything received so far. */
  received(): Buffer;
  /** Resolves when the connection is closed, with the time from connect to close. */
  readonly closed: Promise<{ ms: number; received: Buffer; error?: string }>;
}

function track(socket: net.Socket, started: number): RawSession {
  const chunks: Buffer[] = [];
  let error: string | undefined;
  socket.on('data', (c: Buffer) => chunks.push(c));
  socket.on('error', (e: NodeJS.ErrnoException) => (error = e.code ?? e.message));
  const closed = new Promise<{ ms: number; received: Buffer; error?: string }>((resolve) => {
    socket.once('close', () => resolve({ ms: Date.now() - started, received: Buffer.concat(chunks), ...(error !== undefined && { error }) }));
  });
  return { socket, received: () => Buffer.concat(chunks), closed };
}

/** A plain TCP connection to host:port that writes `bytes` (if any) once connected and never closes its side. */
export async function rawTcp(port: number, bytes?: Buffer | string, opts: { end?: boolean } = {}): Promise<RawSession> {
  const started = Date.now();
  const socket = net.connect(port, '127.0.0.1');
  const session = track(socket, started);
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', () => resolve());
    socket.once('error', reject);
  });
  if (bytes !== undefined) socket.write(bytes);
  if (opts.end === true) socket.end();
  return session;
}

/** A verified TLS connection (good client certificate), handshake finished; the caller writes. */
export async function rawTls(port: number, creds: ClientCreds): Promise<RawSession & { socket: tls.TLSSocket }> {
  const started = Date.now();
  const socket = tls.connect({
    host: '127.0.0.1', port, servername: 'localhost', ca: creds.ca,
    ...(creds.cert !== undefined && { cert: creds.cert }), ...(creds.key !== undefined && { key: creds.key }),
  });
  const session = track(socket, started);
  await new Promise<void>((resolve, reject) => {
    socket.once('secureConnect', () => resolve());
    socket.once('error', reject);
  });
  return session as RawSession & { socket: tls.TLSSocket };
}

/** Writes `text` one byte at a time, `everyMs` apart, until the server closes the socket or `maxBytes` are sent. */
export function drip(session: RawSession, text: string, everyMs: number, maxBytes = 10_000): void {
  let i = 0;
  const timer = setInterval(() => {
    if (session.socket.destroyed || !session.socket.writable || i >= Math.min(text.length, maxBytes)) {
      clearInterval(timer);
      return;
    }
    session.socket.write(text[i++]!);
  }, everyMs);
  session.socket.once('close', () => clearInterval(timer));
}

/**
 * The first flight of a real Node TLS client (a complete ClientHello record), captured by a local TCP
 * server that reads it and hangs up. Replayed to certgate, it starts a genuine handshake we then abandon.
 */
export async function captureClientHello(creds: ClientCreds): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const server = net.createServer((s) => {
      s.once('data', (d: Buffer) => {
        resolve(d);
        s.destroy();
        server.close();
      });
    });
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      const c = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca: creds.ca, cert: creds.cert, key: creds.key });
      c.on('error', () => undefined);
      c.once('close', () => undefined);
    });
    server.on('error', reject);
  });
}

/** A raw TCP server recording every connection and byte it receives; it never answers. */
export interface RawUpstream {
  readonly url: string;
  readonly port: number;
  connections(): number;
  bytes(): string;
  close(): Promise<void>;
}

export async function startRawUpstream(): Promise<RawUpstream> {
  let count = 0;
  let data = '';
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    count++;
    sockets.add(s);
    s.on('data', (d: Buffer) => (data += d.toString('latin1')));
    s.on('error', () => undefined);
    s.once('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`, port,
    connections: () => count,
    bytes: () => data,
    close: () => new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    }),
  };
}

const HELD_STATES = new Set(['01', '03', '08']); // ESTABLISHED, SYN_RECV, CLOSE_WAIT: still the server's to close

/**
 * Server-side TCP sockets on local `port` that the server still holds (established, not yet accepted, or
 * closed by the peer but not by the server). undefined where /proc/net/tcp is not available (not Linux).
 */
export function serverSockets(port: number): number | undefined {
  let total = 0;
  let found = false;
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    found = true;
    for (const line of text.split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      const local = cols[1];
      const state = cols[3];
      if (local === undefined || state === undefined) continue;
      const localPort = parseInt(local.slice(local.lastIndexOf(':') + 1), 16);
      if (localPort === port && HELD_STATES.has(state)) total++;
    }
  }
  return found ? total : undefined;
}

/**
 * Waits until the proxy holds no client connection any more: the TLS-connections gauge is 0 and no
 * server-side socket (handshaking ones included) is left on its port. Every test client must be closed first.
 */
export async function waitForNoConnections(gate: RunningCertgateLike, what = 'open connections back to baseline (0)', timeoutMs = 5000): Promise<void> {
  await waitFor(async () => {
    const open = metricValue(await gate.metricsText(), 'certgate_tls_connections_open');
    const sockets = serverSockets(gate.port);
    return open === 0 && (sockets === undefined || sockets === 0);
  }, `${what} (gauge ${metricValue(await gate.metricsText(), 'certgate_tls_connections_open')}, sockets ${serverSockets(gate.port)})`, timeoutMs);
}

/** After a hostile input: a good client still gets 200, then every connection is gone again. */
export async function assertStillServing(gate: RunningCertgateLike, creds: ClientCreds): Promise<void> {
  const r = await mtlsRequest(gate.url, creds, { path: '/still-serving' });
  assert.equal(r.status, 200, `a good client still gets 200 afterwards; got ${r.status} ${r.body}`);
  await waitForNoConnections(gate);
}

/** Deterministic bytes (mulberry32), so a garbage payload that breaks something can be replayed. */
export function seededBytes(seed: number, length: number): Buffer {
  let a = seed >>> 0;
  const out = Buffer.alloc(length);
  for (let i = 0; i < length; i++) {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    out[i] = ((t ^ (t >>> 14)) >>> 0) & 0xff;
  }
  return out;
}

/** The status line and JSON body of a raw HTTP/1.1 answer ('' / undefined when there was none). */
export function parseAnswer(raw: Buffer | string): { statusLine: string; status: number | undefined; headers: string; body: string } {
  const text = typeof raw === 'string' ? raw : raw.toString('latin1');
  const end = text.indexOf('\r\n\r\n');
  const head = end === -1 ? text : text.slice(0, end);
  const statusLine = head.split('\r\n')[0] ?? '';
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(statusLine);
  return { statusLine, status: m === null ? undefined : Number(m[1]), headers: head, body: end === -1 ? '' : text.slice(end + 4) };
}
