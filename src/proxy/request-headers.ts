/**
 * The pipeline's headers step: the headers the upstream sees, written over the request's own (the hop
 * sends them as they are). Hop-by-hop fields and client copies of certgate's headers go, in every
 * spelling (identity/headers.ts); the verified identity, its signed assertion (when headers.assertion is
 * set: proxy/assertion.ts) and X-Forwarded-* are set.
 */
import type { HeadersConfig } from '../config/types.js';
import type { ClientIdentity } from '../identity/types.js';
import { ASSERTION_HEADER, identityHeaders, stripClientControlled } from '../identity/headers.js';
import { stripHopByHop } from './hop-by-hop.js';
import type { RequestView } from './request-view.js';

export function prepareHeaders(
  req: Pick<RequestView, 'headers' | 'socket'>, identity: ClientIdentity | undefined, upgrade: boolean, options: HeadersConfig,
  h2Upstream = false, assertion?: string,
): void {
  const h = req.headers;
  const te = h.te;
  stripHopByHop(h, upgrade);
  // `te: trailers` is the one TE an HTTP/2 hop carries (RFC 9113 §8.2.2), and gRPC servers require it.
  if (h2Upstream && typeof te === 'string' && te.trim().toLowerCase() === 'trailers') h.te = 'trailers';
  stripClientControlled(h, options.pass_through);
  Object.assign(h, identityHeaders(identity, options));
  if (assertion !== undefined) h[ASSERTION_HEADER] = assertion;
  h['x-forwarded-for'] = req.socket.remoteAddress ?? '';
  h['x-forwarded-proto'] = 'https';
  if (h.host !== undefined) h['x-forwarded-host'] = h.host;
  // Defence in depth (httpxy #158): never reuse an upstream connection after a chunked request body.
  if (h['transfer-encoding'] !== undefined) h.connection = 'close';
}
