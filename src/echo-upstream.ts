/**
 * The built-in echo upstream (`certgate whoami`) used by `npm start` and the tests: it answers every request
 * with what reached it, so a user or a test can see the identity headers certgate added.
 *
 * HTTP: `{"method","path","headers","raw_headers","body_len"}` as JSON. `headers` is Node's
 * merged view; `raw_headers` lists [name, value] pairs as received, so a duplicated header (a
 * client's spoofed X-Client-* next to certgate's) is visible even when its value holds commas.
 * The body is read and counted, never kept.
 *
 * WebSocket (RFC 6455, no extensions): after the 101 the server sends one text frame with the same
 * JSON (body_len 0), then echoes text/binary messages, answers pings, and returns a close frame.
 * Anything malformed closes the socket; nothing here throws into the server.
 */
import { createHash } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';

const WS_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
/** Largest message (and so buffered bytes) a client may send; the echo upstream is a test aid, not a sink. */
const MAX_MESSAGE = 1 << 20;

const OP_CONT = 0x0;
const OP_TEXT = 0x1;
const OP_BINARY = 0x2;
const OP_CLOSE = 0x8;
const OP_PING = 0x9;
const OP_PONG = 0xa;

const UTF8 = new TextDecoder('utf-8', { fatal: true });

/** Upgraded sockets per server: server.close() does not end them, listenEchoUpstream().close() must. */
const upgraded = new WeakMap<http.Server, Set<Duplex>>();

interface Echo {
  method: string;
  path: string;
  headers: http.IncomingHttpHeaders;
  raw_headers: [string, string][];
  body_len: number;
}

function describe(req: http.IncomingMessage, bodyLen: number): Echo {
  const raw: [string, string][] = [];
  for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) {
    raw.push([req.rawHeaders[i] as string, req.rawHeaders[i + 1] as string]);
  }
  return { method: req.method ?? '', path: req.url ?? '', headers: req.headers, raw_headers: raw, body_len: bodyLen };
}

export function createEchoUpstream(): http.Server {
  const server = http.createServer((req, res) => {
    let bodyLen = 0;
    req.on('data', (chunk: Buffer) => {
      bodyLen += chunk.length;
    });
    req.on('error', () => {
      res.destroy();
    });
    req.on('end', () => {
      const body = JSON.stringify(describe(req, bodyLen));
      res.writeHead(200, {
        'content-type': 'application/json',
        'content-length': Buffer.byteLength(body),
      });
      res.end(body);
    });
  });
  const sockets = new Set<Duplex>();
  upgraded.set(server, sockets);
  server.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
    try {
      handleUpgrade(req, socket, head, sockets);
    } catch {
      socket.destroy();
    }
  });
  // A client that breaks the HTTP framing gets a 400 from Node; never an unhandled error.
  server.on('clientError', (_err, socket) => {
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
    else socket.destroy();
  });
  return server;
}

export async function listenEchoUpstream(
  host: string,
  port: number,
): Promise<{ server: http.Server; url: string; close(): Promise<void> }> {
  const server = createEchoUpstream();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const addr = server.address() as AddressInfo;
  const shownHost = addr.address.includes(':') ? `[${addr.address}]` : addr.address;
  return {
    server,
    url: `http://${shownHost}:${addr.port}`,
    close: () =>
      new Promise<void>((resolve, reject) => {
        for (const s of upgraded.get(server) ?? []) s.destroy();
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeAllConnections();
      }),
  };
}

function handleUpgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer, sockets: Set<Duplex>): void {
  socket.on('error', () => socket.destroy());
  const key = req.headers['sec-websocket-key'];
  const isWebSocket =
    req.method === 'GET' &&
    (req.headers.upgrade ?? '').toLowerCase() === 'websocket' &&
    req.headers['sec-websocket-version'] === '13' &&
    typeof key === 'string' &&
    Buffer.from(key, 'base64').length === 16;
  if (!isWebSocket) {
    socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
    return;
  }
  const accept = createHash('sha1').update(key + WS_GUID).digest('base64');
  socket.write(
    'HTTP/1.1 101 Switching Protocols\r\n' +
      'Upgrade: websocket\r\n' +
      'Connection: Upgrade\r\n' +
      `Sec-WebSocket-Accept: ${accept}\r\n\r\n`,
  );
  (socket as Socket).setNoDelay?.(true);
  sockets.add(socket);
  socket.on('close', () => sockets.delete(socket));
  socket.write(frame(OP_TEXT, Buffer.from(JSON.stringify(describe(req, 0)))));

  const conn = new WsConnection(socket);
  socket.on('data', (chunk: Buffer) => conn.feed(chunk));
  socket.on('end', () => socket.end());
  if (head.length > 0) conn.feed(head);
}

/** Reads client frames from a byte stream; one per upgraded socket. */
class WsConnection {
  private buf: Buffer = Buffer.alloc(0);
  private fragments: Buffer[] = [];
  private fragmentOp = 0;
  private fragmentLen = 0;
  private closed = false;

  constructor(private readonly socket: Duplex) {}

  feed(chunk: Buffer): void {
    if (this.closed) return;
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    try {
      while (!this.closed) {
        if (!this.readFrame()) break;
      }
    } catch {
      this.fail(1002);
    }
  }

  /** Consumes one complete frame from buf; false when more bytes are needed. */
  private readFrame(): boolean {
    const b = this.buf;
    if (b.length < 2) return false;
    const b0 = b[0] as number;
    const b1 = b[1] as number;
    const fin = (b0 & 0x80) !== 0;
    const opcode = b0 & 0x0f;
    const masked = (b1 & 0x80) !== 0;
    let len = b1 & 0x7f;
    let off = 2;
    // RSV bits need an extension (none negotiated); clients must mask (RFC 6455 5.1).
    if ((b0 & 0x70) !== 0 || !masked) return this.fail(1002);
    if (len === 126) {
      if (b.length < 4) return false;
      len = b.readUInt16BE(2);
      off = 4;
    } else if (len === 127) {
      if (b.length < 10) return false;
      const big = b.readBigUInt64BE(2);
      if (big > BigInt(MAX_MESSAGE)) return this.fail(1009);
      len = Number(big);
      off = 10;
    }
    if (len > MAX_MESSAGE) return this.fail(1009);
    if (b.length < off + 4 + len) return false;
    const mask = b.subarray(off, off + 4);
    const payload = Buffer.allocUnsafe(len);
    for (let i = 0; i < len; i++) payload[i] = (b[off + 4 + i] as number) ^ (mask[i & 3] as number);
    this.buf = b.subarray(off + 4 + len);
    this.onFrame(fin, opcode, payload);
    return true;
  }

  private onFrame(fin: boolean, opcode: number, payload: Buffer): void {
    if (opcode >= 0x8) {
      // Control frames: never fragmented, payload at most 125 bytes.
      if (!fin || payload.length > 125) {
        this.fail(1002);
        return;
      }
      if (opcode === OP_CLOSE) {
        this.closed = true;
        // Echo the status code (not the reason), as RFC 6455 5.5.1 suggests.
        this.closeWith(frame(OP_CLOSE, payload.length >= 2 ? payload.subarray(0, 2) : Buffer.alloc(0)));
      } else if (opcode === OP_PING) {
        this.socket.write(frame(OP_PONG, payload));
      } else if (opcode !== OP_PONG) {
        this.fail(1002);
      }
      return;
    }
    if (opcode === OP_TEXT || opcode === OP_BINARY) {
      if (this.fragmentOp !== 0) {
        this.fail(1002);
        return;
      }
      this.fragmentOp = opcode;
    } else if (opcode !== OP_CONT || this.fragmentOp === 0) {
      this.fail(1002);
      return;
    }
    this.fragments.push(payload);
    this.fragmentLen += payload.length;
    if (this.fragmentLen > MAX_MESSAGE) {
      this.fail(1009);
      return;
    }
    if (!fin) return;
    const message = this.fragments.length === 1 ? payload : Buffer.concat(this.fragments);
    const op = this.fragmentOp;
    this.fragments = [];
    this.fragmentOp = 0;
    this.fragmentLen = 0;
    if (op === OP_TEXT) {
      try {
        UTF8.decode(message);
      } catch {
        this.fail(1007);
        return;
      }
    }
    this.socket.write(frame(op, message));
  }

  /** Sends a close frame with `code` and drops the connection; returns false for readFrame(). */
  private fail(code: number): false {
    if (this.closed) return false;
    this.closed = true;
    const body = Buffer.alloc(2);
    body.writeUInt16BE(code);
    this.closeWith(frame(OP_CLOSE, body));
    return false;
  }

  /** Sends the last frame, then closes the TCP connection (the server closes first, RFC 6455 7.1.1). */
  private closeWith(last: Buffer): void {
    this.buf = Buffer.alloc(0);
    this.socket.end(last, () => this.socket.destroy());
  }
}

/** An unmasked server frame with FIN set. */
function frame(opcode: number, payload: Buffer): Buffer {
  const len = payload.length;
  let header: Buffer;
  if (len < 126) {
    header = Buffer.from([0x80 | opcode, len]);
  } else if (len < 0x10000) {
    header = Buffer.alloc(4);
    header[0] = 0x80 | opcode;
    header[1] = 126;
    header.writeUInt16BE(len, 2);
  } else {
    header = Buffer.alloc(10);
    header[0] = 0x80 | opcode;
    header[1] = 127;
    header.writeBigUInt64BE(BigInt(len), 2);
  }
  return Buffer.concat([header, payload]);
}
