/**
 * The bare-Node references (issue 19): what Node's own TLS and HTTP cost with certgate's TLS settings and
 * nothing else, measured in the same run as nginx and certgate.
 *
 * - `answer`: node:https with the same mTLS options as certgate (the bundle's key and chain, the client CA,
 *   the CRL handed to OpenSSL, TLS 1.2–1.3 with certgate's suite list and order, a client certificate
 *   required and verified by OpenSSL: `rejectUnauthorized: true`) answering `200 ok` itself: no proxy hop.
 * - `proxy`: the same server forwarding every request to the upstream on an undici Pool (`dispatch()`, the
 *   engine certgate uses) with no feature at all: no identity headers, policy, access log, metrics or
 *   request id. The floor a Node proxy starts from.
 *
 * Run as a child process by run.ts (`node _bare.js '<json BareOptions>'`), one process, so that its CPU
 * and RSS are read from /proc like the others'.
 */
import https from 'node:https';
import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Pool, type Dispatcher } from 'undici';

export interface BareOptions {
  readonly mode: 'answer' | 'proxy';
  readonly port: number;
  /** certgate's bundle: key + leaf + chain in one PEM file. */
  readonly bundle: string;
  readonly ca: string;
  readonly crl: string;
  readonly upstreamPort: number;
  /** certgate's suite list (tls/context.ts CIPHERS), passed by run.ts from the build under test. */
  readonly ciphers: string;
}

function serve(o: BareOptions): void {
  const pem = readFileSync(o.bundle, 'utf8');
  const blocks = pem.match(/-----BEGIN ([A-Z0-9 ]+)-----[\s\S]+?-----END \1-----\n?/g) ?? [];
  const server = https.createServer({
    key: blocks.filter((b) => b.includes('PRIVATE KEY')).join(''),
    cert: blocks.filter((b) => b.includes('BEGIN CERTIFICATE')).join(''),
    ca: readFileSync(o.ca),
    crl: readFileSync(o.crl),
    requestCert: true,
    rejectUnauthorized: true,
    minVersion: 'TLSv1.2',
    maxVersion: 'TLSv1.3',
    ciphers: o.ciphers,
    honorCipherOrder: true,
    ALPNProtocols: ['http/1.1', 'http/1.0'],
    keepAliveTimeout: 5000,
  });
  if (o.mode === 'answer') {
    server.on('request', (_req: IncomingMessage, res: ServerResponse) => {
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '3' });
      res.end('ok\n');
    });
  } else {
    const pool = new Pool(`http://127.0.0.1:${o.upstreamPort}`, { connections: 256, pipelining: 1 });
    server.on('request', (req: IncomingMessage, res: ServerResponse) => {
      const headers = { ...req.headers };
      delete headers.connection;
      delete headers['keep-alive'];
      pool.dispatch({ path: req.url ?? '/', method: req.method ?? 'GET', headers, body: null }, new Relay(res));
    });
  }
  server.listen(o.port, '127.0.0.1');
  process.on('SIGTERM', () => process.exit(0));
}

/** The least a relay does: status and headers (minus the hop-by-hop ones), body chunks, end. */
class Relay implements Dispatcher.DispatchHandler {
  resume: (() => void) | undefined;
  constructor(readonly res: ServerResponse) {}
  onConnect(): void {}
  onHeaders(statusCode: number, raw: Buffer[], resume: () => void): boolean {
    const res = this.res;
    this.resume = resume;
    res.statusCode = statusCode;
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i]!.toString('latin1');
      const lower = name.toLowerCase();
      if (lower === 'connection' || lower === 'keep-alive' || lower === 'transfer-encoding') continue;
      res.appendHeader(name, raw[i + 1]!.toString('latin1'));
    }
    return true;
  }
  onData(chunk: Buffer): boolean {
    if (this.res.write(chunk)) return true;
    this.res.once('drain', () => this.resume?.());
    return false;
  }
  onComplete(): void {
    this.res.end();
  }
  onError(): void {
    this.res.destroy();
  }
}

if (process.argv[1] !== undefined && new URL(import.meta.url).pathname === process.argv[1]) {
  serve(JSON.parse(process.argv[2]!) as BareOptions);
}
