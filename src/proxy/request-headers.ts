/**
 * The pipeline's headers step: the headers the upstream sees, written over the request's own (the hop
 * sends them as they are). Hop-by-hop fields and client copies of certgate's headers go, in every
 * spelling — the generation's dialect's names too, renamed or not (identity/headers.ts); the verified
 * identity, in the dialect's names and formats (identity/dialect.ts), its signed assertion (when
 * headers.assertion is set: proxy/assertion.ts; not renamable) and X-Forwarded-* are set.
 */
import type { TLSSocket } from 'node:tls';
import type { ClientIdentity } from '../identity/types.js';
import type { HeaderDialect, TlsInfo } from '../identity/dialect.js';
import { ASSERTION_HEADER, stripClientControlled } from '../identity/headers.js';
import { stripHopByHop } from './hop-by-hop.js';
import type { RequestView } from './request-view.js';
import { clientAddressOf } from './client-address.js';

export function prepareHeaders(
  req: Pick<RequestView, 'headers' | 'socket'>, identity: ClientIdentity | undefined, upgrade: boolean, dialect: HeaderDialect,
  h2Upstream = false, assertion?: string,
): void {
  const h = req.headers;
  const te = h.te;
  stripHopByHop(h, upgrade);
  // `te: trailers` is the one TE an HTTP/2 hop carries (RFC 9113 §8.2.2), and gRPC servers require it.
  if (h2Upstream && typeof te === 'string' && te.trim().toLowerCase() === 'trailers') h.te = 'trailers';
  stripClientControlled(h, dialect.passThrough, dialect.sent);
  Object.assign(h, dialect.headers(identity, dialect.tlsInfo ? tlsInfoOf(req.socket) : undefined));
  if (assertion !== undefined) h[ASSERTION_HEADER] = assertion;
  // The connection's client address: the PROXY header's behind a trusted load balancer (client-address.ts).
  h['x-forwarded-for'] = clientAddressOf(req.socket).address ?? '';
  h['x-forwarded-proto'] = 'https';
  if (h.host !== undefined) h['x-forwarded-host'] = h.host;
  // Defence in depth (httpxy #158): never reuse an upstream connection after a chunked request body.
  if (h['transfer-encoding'] !== undefined) h.connection = 'close';
}

/** Per connection: an HTTP/2 stream's request view carries the session's TLS socket itself (http2.ts). */
const tlsInfos = new WeakMap<object, TlsInfo | undefined>();

/** The connection's protocol and cipher, OpenSSL's names (`TLSv1.3`, `TLS_AES_128_GCM_SHA256`), read once. */
function tlsInfoOf(socket: RequestView['socket']): TlsInfo | undefined {
  if (tlsInfos.has(socket)) return tlsInfos.get(socket);
  const tls = socket as Partial<TLSSocket>;
  const version = typeof tls.getProtocol === 'function' ? tls.getProtocol() : null;
  const cipher = typeof tls.getCipher === 'function' ? tls.getCipher()?.name : undefined;
  const info = version === null || version === undefined || cipher === undefined ? undefined : Object.freeze({ version, cipher });
  tlsInfos.set(socket, info);
  return info;
}
