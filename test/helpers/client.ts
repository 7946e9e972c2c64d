/**
 * Real TLS clients for tests, verification always ON (the server is verified against the test CA).
 * Each request uses a fresh connection (agent: false) unless an agent is passed, so no session
 * resumption leaks between tests.
 */
import https from 'node:https';
import tls from 'node:tls';
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';

export interface ClientCreds {
  readonly cert?: string;
  readonly key?: string;
  /** CA(s) that verify the server. */
  readonly ca: string;
}

export interface Reply {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
  json<T = Record<string, unknown>>(): T;
}

export interface RequestOptions {
  readonly method?: string;
  readonly path?: string;
  readonly headers?: OutgoingHttpHeaders;
  readonly body?: string | Buffer;
  readonly agent?: https.Agent;
}

export function mtlsRequest(baseUrl: string, creds: ClientCreds, opts: RequestOptions = {}): Promise<Reply> {
  const url = new URL(opts.path ?? '/', baseUrl);
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host: url.hostname.replace(/^\[(.*)\]$/, '$1'), port: url.port, path: url.pathname + url.search,
        method: opts.method ?? 'GET', headers: opts.headers ?? {},
        ca: creds.ca, ...(creds.cert !== undefined && { cert: creds.cert }), ...(creds.key !== undefined && { key: creds.key }),
        servername: 'localhost', agent: opts.agent ?? false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const body = Buffer.concat(chunks).toString('utf8');
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body, json: <T>() => JSON.parse(body) as T });
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(opts.body);
  });
}

/** Sends raw bytes over a verified TLS connection and returns everything the server sent until it closed. */
export function rawTlsExchange(host: string, port: number, creds: ClientCreds, payload: string | Buffer, opts: { endAfterWrite?: boolean } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const socket = tls.connect({
      host, port, servername: 'localhost', ca: creds.ca,
      ...(creds.cert !== undefined && { cert: creds.cert }), ...(creds.key !== undefined && { key: creds.key }),
    }, () => {
      socket.write(payload);
      if (opts.endAfterWrite) socket.end();
    });
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', (err) => (chunks.length > 0 ? resolve(Buffer.concat(chunks).toString('latin1')) : reject(err)));
    socket.on('close', () => resolve(Buffer.concat(chunks).toString('latin1')));
  });
}
