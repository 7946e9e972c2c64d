/**
 * A raw WebSocket test client over any socket (plain TCP to the echo upstream, verified TLS to certgate):
 * reads an HTTP response head, then frames, so tests see exactly the bytes on the wire.
 */
import net from 'node:net';
import tls from 'node:tls';
import { randomBytes } from 'node:crypto';
import type { ClientCreds } from './client.js';

export const WS_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

export interface Frame {
  readonly fin: boolean;
  readonly opcode: number;
  readonly masked: boolean;
  readonly payload: Buffer;
}

/** A client frame; masked unless told otherwise (RFC 6455 §5.3: clients must mask). */
export function clientFrame(opcode: number, payload: Buffer, opts: { mask?: boolean; fin?: boolean } = {}): Buffer {
  const mask = opts.mask ?? true;
  const len = payload.length;
  const b0 = ((opts.fin ?? true) ? 0x80 : 0) | opcode;
  const m = mask ? 0x80 : 0;
  let head: Buffer;
  if (len < 126) head = Buffer.from([b0, m | len]);
  else if (len < 0x10000) {
    head = Buffer.from([b0, m | 126, 0, 0]);
    head.writeUInt16BE(len, 2);
  } else {
    head = Buffer.alloc(10);
    head[0] = b0;
    head[1] = m | 127;
    head.writeBigUInt64BE(BigInt(len), 2);
  }
  if (!mask) return Buffer.concat([head, payload]);
  const key = randomBytes(4);
  return Buffer.concat([head, key, Buffer.from(payload.map((b, i) => b ^ (key[i & 3] as number)))]);
}

export class WsTestClient {
  private buf = Buffer.alloc(0);
  private waiters: (() => void)[] = [];
  closed = false;
  readonly closedPromise: Promise<void>;

  private constructor(readonly socket: net.Socket) {
    socket.on('data', (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      this.wake();
    });
    this.closedPromise = new Promise((resolve) =>
      socket.on('close', () => {
        this.closed = true;
        this.wake();
        resolve();
      }),
    );
    socket.on('error', () => {});
  }

  /** Plain TCP to an http:// URL (the echo upstream). */
  static connect(url: string): Promise<WsTestClient> {
    const { hostname, port } = new URL(url);
    return new Promise((resolve, reject) => {
      const s = net.connect(Number(port), hostname, () => resolve(new WsTestClient(s)));
      s.once('error', reject);
    });
  }

  /** Verified TLS to certgate on 127.0.0.1:port, with the given client certificate. */
  static connectTls(port: number, c: ClientCreds): Promise<WsTestClient> {
    return new Promise((resolve, reject) => {
      const s = tls.connect({
        host: '127.0.0.1', port, servername: 'localhost', ca: c.ca,
        ...(c.cert !== undefined && { cert: c.cert }), ...(c.key !== undefined && { key: c.key }),
      }, () => resolve(new WsTestClient(s)));
      s.once('error', reject);
    });
  }

  /** Bytes received and not yet consumed by head() or frame(). */
  rest(): Buffer {
    return this.buf;
  }

  /** Everything not yet consumed, once the server closed the connection. */
  async restAtClose(): Promise<string> {
    await this.closedPromise;
    return this.buf.toString('latin1');
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  private async until<T>(take: () => T | undefined): Promise<T> {
    for (;;) {
      const v = take();
      if (v !== undefined) return v;
      if (this.closed) throw new Error(`socket closed; unread: ${JSON.stringify(this.buf.toString('latin1'))}`);
      await new Promise<void>((r) => this.waiters.push(r));
    }
  }

  /** The response head; every header's values in arrival order (duplicates visible). */
  head(): Promise<{ status: number; headers: Map<string, string[]> }> {
    return this.until(() => {
      const end = this.buf.indexOf('\r\n\r\n');
      if (end === -1) return undefined;
      const lines = this.buf.subarray(0, end).toString('latin1').split('\r\n');
      this.buf = this.buf.subarray(end + 4);
      const headers = new Map<string, string[]>();
      for (const l of lines.slice(1)) {
        const c = l.indexOf(':');
        const k = l.slice(0, c).trim().toLowerCase();
        headers.set(k, [...(headers.get(k) ?? []), l.slice(c + 1).trim()]);
      }
      return { status: Number((lines[0] ?? '').split(' ')[1]), headers };
    });
  }

  frame(): Promise<Frame> {
    return this.until(() => {
      const b = this.buf;
      if (b.length < 2) return undefined;
      let len = (b[1] as number) & 0x7f;
      let off = 2;
      if (len === 126) {
        if (b.length < 4) return undefined;
        len = b.readUInt16BE(2);
        off = 4;
      } else if (len === 127) {
        if (b.length < 10) return undefined;
        len = Number(b.readBigUInt64BE(2));
        off = 10;
      }
      const masked = ((b[1] as number) & 0x80) !== 0;
      if (masked) off += 4;
      if (b.length < off + len) return undefined;
      this.buf = b.subarray(off + len);
      return { fin: ((b[0] as number) & 0x80) !== 0, opcode: (b[0] as number) & 0x0f, masked, payload: Buffer.from(b.subarray(off, off + len)) };
    });
  }
}
