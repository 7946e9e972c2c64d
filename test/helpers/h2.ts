/**
 * A real HTTP/2 client for tests (node:http2 over TLS, verification ON against the test CA, ALPN h2 only).
 * One session per h2Connect; h2Request sends one stream on it and collects status, headers, body, trailers.
 */
import http2 from 'node:http2';
import type { ClientCreds } from './client.js';

export interface H2Reply {
  readonly status: number;
  readonly headers: http2.IncomingHttpHeaders;
  readonly trailers: http2.IncomingHttpHeaders;
  readonly body: string;
  json<T = Record<string, unknown>>(): T;
}

export function h2Connect(url: string, creds: ClientCreds, opts: http2.SecureClientSessionOptions = {}): Promise<http2.ClientHttp2Session> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(url, {
      ca: creds.ca, ...(creds.cert !== undefined && { cert: creds.cert }), ...(creds.key !== undefined && { key: creds.key }),
      servername: 'localhost', ALPNProtocols: ['h2'], ...opts,
    });
    session.once('connect', () => {
      session.off('error', reject);
      // Errors after connecting surface on the streams (or in a test's own listener).
      session.on('error', () => {});
      resolve(session);
    });
    session.once('error', reject);
  });
}

export function h2Request(
  session: http2.ClientHttp2Session, headers: http2.OutgoingHttpHeaders, body?: string | Buffer | readonly (string | Buffer)[],
): Promise<H2Reply> {
  return new Promise((resolve, reject) => {
    const stream = session.request({ ':method': 'GET', ':path': '/', ...headers }, { endStream: body === undefined });
    let status = 0;
    let resHeaders: http2.IncomingHttpHeaders = {};
    let trailers: http2.IncomingHttpHeaders = {};
    const chunks: Buffer[] = [];
    stream.on('response', (h) => {
      status = Number(h[':status']);
      resHeaders = h;
    });
    stream.on('trailers', (t) => {
      trailers = t;
    });
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      resolve({ status, headers: resHeaders, trailers, body: text, json: <T>() => JSON.parse(text) as T });
    });
    stream.on('error', reject);
    if (body !== undefined) {
      for (const part of Array.isArray(body) ? body : [body]) stream.write(part);
      stream.end();
    }
  });
}

/** Opens a session, sends one request, closes the session. */
export async function h2Once(url: string, creds: ClientCreds, headers: http2.OutgoingHttpHeaders, body?: string | Buffer): Promise<H2Reply> {
  const session = await h2Connect(url, creds);
  try {
    return await h2Request(session, headers, body);
  } finally {
    session.close();
  }
}
