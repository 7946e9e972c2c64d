/**
 * A load balancer's side of the PROXY protocol, for tests: v1 and v2 headers built byte by byte (as
 * HAProxy's proxy-protocol.txt lays them out, independently of src/net/proxy-protocol.ts), and a verified
 * mTLS request (HTTP/1.1 or h2) sent over a TCP connection that first wrote such a header.
 */
import net from 'node:net';
import tls from 'node:tls';
import https from 'node:https';
import http2 from 'node:http2';
import type { ClientCreds, Reply } from './client.js';

export const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);

/** `PROXY TCP4 src dst sport dport\r\n` (or TCP6, or UNKNOWN alone). */
export function v1Header(proto: 'TCP4' | 'TCP6' | 'UNKNOWN', src = '', dst = '', sport = 0, dport = 0): Buffer {
  return Buffer.from(proto === 'UNKNOWN' ? 'PROXY UNKNOWN\r\n' : `PROXY ${proto} ${src} ${dst} ${sport} ${dport}\r\n`, 'latin1');
}

export interface V2Options {
  readonly command?: 'proxy' | 'local';
  /** Absent: AF_UNSPEC without addresses. */
  readonly family?: 'ipv4' | 'ipv6';
  readonly src?: string;
  readonly dst?: string;
  readonly sport?: number;
  readonly dport?: number;
  /** TLVs appended after the addresses: [type, value]. */
  readonly tlvs?: readonly (readonly [number, Buffer])[];
  /** Overrides the length field (for hostile headers). */
  readonly length?: number;
}

function v4(a: string): Buffer {
  return Buffer.from(a.split('.').map(Number));
}

function v6(a: string): Buffer {
  const [head, tail] = a.includes('::') ? a.split('::') as [string, string] : [a, ''];
  const h = head === '' ? [] : head.split(':');
  const t = tail === '' ? [] : tail.split(':');
  const groups = a.includes('::') ? [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t] : h;
  const out = Buffer.alloc(16);
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), i * 2));
  return out;
}

export function v2Header(o: V2Options = {}): Buffer {
  const cmd = o.command === 'local' ? 0x20 : 0x21;
  const fam = o.family === 'ipv4' ? 0x11 : o.family === 'ipv6' ? 0x21 : 0x00;
  const ports = Buffer.alloc(4);
  ports.writeUInt16BE(o.sport ?? 0, 0);
  ports.writeUInt16BE(o.dport ?? 0, 2);
  const addr = o.family === 'ipv4' ? Buffer.concat([v4(o.src!), v4(o.dst!), ports])
    : o.family === 'ipv6' ? Buffer.concat([v6(o.src!), v6(o.dst!), ports]) : Buffer.alloc(0);
  const tlvs = (o.tlvs ?? []).map(([type, value]) => {
    const h = Buffer.alloc(3);
    h[0] = type;
    h.writeUInt16BE(value.length, 1);
    return Buffer.concat([h, value]);
  });
  const body = Buffer.concat([addr, ...tlvs]);
  const fixed = Buffer.alloc(4);
  fixed[0] = cmd;
  fixed[1] = fam;
  fixed.writeUInt16BE(o.length ?? body.length, 2);
  return Buffer.concat([V2_SIGNATURE, fixed, body]);
}

/** A TCP connection to host:port that has written `header` (nothing more). */
export function connectWithHeader(port: number, header: Buffer, host = '127.0.0.1'): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const raw = net.connect({ host, port }, () => {
      raw.off('error', reject);
      raw.write(header);
      resolve(raw);
    });
    raw.once('error', reject);
  });
}

export interface ProxiedOptions {
  readonly path?: string;
  readonly h2?: boolean;
  readonly host?: string;
}

/** A verified mTLS GET over a connection that starts with `header`: HTTP/1.1, or h2 (ALPN h2 only). */
export async function proxiedRequest(port: number, header: Buffer, creds: ClientCreds, opts: ProxiedOptions = {}): Promise<Reply> {
  const raw = await connectWithHeader(port, header, opts.host);
  const secure = tls.connect({
    socket: raw, servername: 'localhost', ca: creds.ca, ALPNProtocols: opts.h2 === true ? ['h2'] : ['http/1.1'],
    ...(creds.cert !== undefined && { cert: creds.cert }), ...(creds.key !== undefined && { key: creds.key }),
  });
  return opts.h2 === true ? h2Get(secure, opts.path ?? '/') : h1Get(secure, port, opts.path ?? '/');
}

function collect(res: NodeJS.ReadableStream, status: number, headers: Reply['headers'], resolve: (r: Reply) => void, reject: (e: Error) => void): void {
  const chunks: Buffer[] = [];
  res.on('data', (c: Buffer) => chunks.push(c));
  res.on('end', () => {
    const body = Buffer.concat(chunks).toString('utf8');
    resolve({ status, headers, body, json: <T>() => JSON.parse(body) as T });
  });
  res.on('error', reject);
}

function h1Get(secure: tls.TLSSocket, port: number, path: string): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = https.request({ host: 'localhost', port, path, createConnection: () => secure }, (res) => {
      collect(res, res.statusCode ?? 0, res.headers, resolve, reject);
    });
    req.on('error', reject);
    req.end();
  });
}

function h2Get(secure: tls.TLSSocket, path: string): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const session = http2.connect('https://localhost', { createConnection: () => secure });
    session.on('error', reject);
    const stream = session.request({ ':path': path });
    stream.on('response', (headers) => {
      collect(stream, Number(headers[':status']), headers as Reply['headers'], (r) => {
        session.close();
        resolve(r);
      }, reject);
    });
    stream.on('error', reject);
    stream.end();
  });
}

/** Resolves when the server closes `socket` (with what it sent before), whatever the client does meanwhile. */
export function closedByServer(socket: net.Socket): Promise<{ data: Buffer }> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', () => undefined);
    socket.on('close', () => resolve({ data: Buffer.concat(chunks) }));
  });
}
