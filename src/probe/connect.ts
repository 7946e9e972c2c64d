/**
 * The verified connection: one HTTPS GET as requests/aiohttp/curl make it — the server certificate
 * verified against the given CA (or the built-in roots) and its name checked against the URL's host
 * (Node's defaults, never turned off), the client certificate presented when the server asks.
 * The result records how far it got, so a failure can be told apart: before the handshake finished
 * (the client refused the server), or after it (in TLS 1.3 the server's verdict on the client
 * certificate arrives after the client's handshake is complete).
 */
import https from 'node:https';
import type { IncomingHttpHeaders } from 'node:http';
import type { X509Certificate } from 'node:crypto';
import { isIP } from 'node:net';
import type { TLSSocket } from 'node:tls';

export interface ClientTls {
  readonly cert?: string;
  readonly key?: string;
  readonly passphrase?: string;
  /** Absent: Node's built-in roots. */
  readonly ca?: readonly string[];
}

export interface Attempt {
  /** The client finished its side of the handshake: the server certificate was verified. */
  readonly handshake: boolean;
  readonly protocol?: string;
  readonly cipher?: string;
  /** The server chain as Node linked it (after a verified handshake only). */
  readonly peerChain: readonly X509Certificate[];
  readonly http?: { readonly status: number; readonly headers: IncomingHttpHeaders; readonly body: string };
  readonly error?: { readonly code: string; readonly message: string };
}

const MAX_BODY = 64 * 1024;

/** GET `path` on `origin`; never rejects. */
export function attempt(origin: URL, path: string, tls: ClientTls, timeoutMs: number): Promise<Attempt> {
  return new Promise((resolve) => {
    let handshake = false;
    let protocol: string | undefined;
    let cipher: string | undefined;
    let peerChain: X509Certificate[] = [];
    let settled = false;
    const finish = (extra: Pick<Attempt, 'http' | 'error'>): void => {
      if (settled) return;
      settled = true;
      resolve({ handshake, peerChain, ...(protocol !== undefined && { protocol }), ...(cipher !== undefined && { cipher }), ...extra });
    };
    const host = origin.hostname.replace(/^\[(.*)\]$/, '$1');
    let req;
    try {
      req = https.request({
        host, port: origin.port === '' ? 443 : Number(origin.port), path, method: 'GET',
        headers: { 'user-agent': 'certgate-probe', accept: 'application/json, */*' },
        ...(isIP(host) === 0 && { servername: host }),
        ...(tls.ca !== undefined && { ca: [...tls.ca] }),
        ...(tls.cert !== undefined && { cert: tls.cert }),
        ...(tls.key !== undefined && { key: tls.key }),
        ...(tls.passphrase !== undefined && { passphrase: tls.passphrase }),
        agent: false,
        timeout: timeoutMs,
      });
    } catch (err) {
      finish({ error: errorOf(err) });
      return;
    }
    req.on('socket', (socket) => {
      (socket as TLSSocket).once('secureConnect', () => {
        const s = socket as TLSSocket;
        handshake = true;
        protocol = s.getProtocol() ?? undefined;
        cipher = s.getCipher()?.standardName;
        peerChain = linked(s.getPeerX509Certificate());
      });
    });
    req.on('timeout', () => req.destroy(Object.assign(new Error(`no answer within ${timeoutMs} ms`), { code: 'ETIMEDOUT' })));
    req.on('error', (err) => finish({ error: errorOf(err) }));
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        if (size < MAX_BODY) chunks.push(c);
        size += c.length;
      });
      res.on('error', (err) => finish({ error: errorOf(err) }));
      res.on('end', () => finish({ http: { status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8').slice(0, MAX_BODY) } }));
    });
    req.end();
  });
}

function errorOf(err: unknown): { code: string; message: string } {
  const e = err as { code?: unknown; message?: unknown };
  return { code: typeof e.code === 'string' ? e.code : 'ERR_UNKNOWN', message: typeof e.message === 'string' ? opensslText(e.message) : String(err) };
}

/**
 * "80…:error:0A00045C:SSL routines:ssl3_read_bytes:tlsv13 alert certificate required:../ssl/rec_layer_s3.c:1601:SSL alert number 116"
 * → "tlsv13 alert certificate required (SSL alert number 116)": the words clients print, without OpenSSL's bookkeeping.
 */
export function opensslText(message: string): string {
  const first = message.split('\n')[0]?.trim() ?? '';
  const m = /^[0-9A-F]+:error:[0-9A-F]+:[^:]*:[^:]*:([^:]+)(?::[^:]*:\d+)?(?::(SSL alert number \d+))?$/.exec(first);
  return m === null ? first : `${m[1]}${m[2] !== undefined ? ` (${m[2]})` : ''}`;
}

/** Leaf first, following issuerCertificate (which Node fills from what the server sent, plus the anchor). */
function linked(leaf: X509Certificate | undefined): X509Certificate[] {
  const out: X509Certificate[] = [];
  let c = leaf;
  while (c !== undefined && out.length < 16 && !out.some((o) => o.fingerprint256 === c?.fingerprint256)) {
    out.push(c);
    c = c.issuerCertificate;
  }
  return out;
}
