/**
 * The metrics the pipeline and its listener write, by shape. admin/metrics.ts creates them (every metric
 * name and help text lives there) and the admin listener serves them; proxy/ names only the fields it
 * counts with, so the pipeline imports nothing of admin/, which stands a floor higher and reads the
 * pipeline's stores. app/ passes admin's Metrics, which has these and more.
 */
import type { Counter, Gauge, Histogram } from 'prom-client';

export interface ProxyMetrics {
  readonly httpRequests: Counter<'route' | 'method' | 'code' | 'protocol'>;
  readonly httpDuration: Histogram<'route'>;
  readonly httpInFlight: Gauge;
  readonly handshakeFailures: Counter<'reason'>;
  readonly handshakes: Counter<'version' | 'resumed'>;
  readonly connectionsOpen: Gauge;
  readonly connectionsRejected: Counter<'reason'>;
  readonly authzDenied: Counter<'route'>;
  readonly upstreamErrors: Counter<'route' | 'kind'>;
  /** WebSocket tunnels closed because their client certificate stopped being trusted (revoked, expired, CA removed). */
  readonly tunnelsClosed: Counter<'reason'>;
  readonly upstreamDuration: Histogram<'route'>;
  /** Time left on the client certificate of each new verified connection (no per-client label). */
  readonly clientCertExpiry: Histogram;
  /** Open HTTP/2 client sessions (proxy/http2.ts). */
  readonly http2SessionsOpen: Gauge;
  /**
   * HTTP/2 streams or sessions certgate refused or reset itself, by reason (fixed set: HTTP2_REFUSAL_REASONS):
   * header_list_size (431), request_timeout (408), rapid_reset (the session closed), protocol (node:http2
   * ended the session: SETTINGS/PING/CONTINUATION floods, streams over max_concurrent_streams, bad frames).
   */
  readonly http2StreamsRefused: Counter<'reason'>;
}

/** Bounded label values for `method`: anything else is counted as OTHER (a client controls the method). */
const KNOWN_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'CONNECT', 'TRACE']);
export function methodLabel(method: string | undefined): string {
  return method !== undefined && KNOWN_METHODS.has(method) ? method : 'OTHER';
}
