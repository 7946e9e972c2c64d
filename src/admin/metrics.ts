/**
 * Every metric name certgate exports is written here and nowhere else: the names are part of the public
 * interface (dashboards and alerts depend on them) and must not change. Each app instance gets its own
 * Registry so tests (and several instances in one process) never share counters.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { REFUSAL_REASONS } from '../tls/handshake.js';
import type { ProxyMetrics } from '../proxy/metrics.js';

/**
 * Every metric: the ones the pipeline writes (named by shape in proxy/metrics.ts, so proxy/ imports nothing
 * of admin/) and those only the rest of certgate writes.
 */
export interface Metrics extends ProxyMetrics {
  readonly registry: Registry;
  readonly reloads: Counter<'file' | 'result'>;
  readonly lastReloadSuccess: Gauge;
  readonly certificateExpiry: Gauge<'kind' | 'subject'>;
  readonly crlNextUpdate: Gauge<'issuer'>;
  readonly enrollments: Counter<'result'>;
  /** Live config reloads (app/live-config.ts): success | failure | unchanged. */
  readonly configReloads: Counter<'result'>;
  readonly configLastReloadSuccess: Gauge;
  /** The configuration generation serving new requests (1 = the config certgate started with). */
  readonly configGeneration: Gauge;
}

/** Why certgate refused or reset HTTP/2 streams or sessions (certgate_http2_streams_refused_total{reason}). */
export const HTTP2_REFUSAL_REASONS = ['header_list_size', 'request_timeout', 'rapid_reset', 'protocol'] as const;

/** Request and upstream latency buckets: 1 ms (a local upstream) .. 30 s (the default route timeout). */
export const LATENCY_BUCKETS: readonly number[] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

const DAY = 86_400;
/** Time left on client certificates: "breaks within a day / week / two weeks / month / quarter / year". */
export const CLIENT_EXPIRY_BUCKETS: readonly number[] = [DAY, 7 * DAY, 14 * DAY, 30 * DAY, 90 * DAY, 365 * DAY];

export function createMetrics(opts: { defaultMetrics?: boolean } = {}): Metrics {
  const registry = new Registry();
  if (opts.defaultMetrics !== false) collectDefaultMetrics({ register: registry });
  const registers = [registry];
  const handshakeFailures = new Counter({
    name: 'certgate_tls_handshake_failures_total',
    help: 'TLS connections refused or failed, by reason (fixed set)',
    labelNames: ['reason'] as const, registers,
  });
  // Pre-create every reason so a rate() over a never-seen reason is 0, not absent.
  for (const reason of REFUSAL_REASONS) handshakeFailures.inc({ reason }, 0);
  return {
    registry,
    handshakeFailures,
    httpRequests: new Counter({
      name: 'certgate_http_requests_total', help: 'HTTP requests answered, by route, method, status code and protocol (http/1.0 | http/1.1 | h2)',
      labelNames: ['route', 'method', 'code', 'protocol'] as const, registers,
    }),
    httpDuration: new Histogram({
      name: 'certgate_http_request_duration_seconds', help: 'Time from request to response end, by route',
      labelNames: ['route'] as const, registers,
      buckets: [...LATENCY_BUCKETS],
    }),
    httpInFlight: new Gauge({ name: 'certgate_http_requests_in_flight', help: 'Requests being served now', registers, aggregator: 'sum' }),
    handshakes: new Counter({
      name: 'certgate_tls_handshakes_total', help: 'Completed TLS handshakes, by protocol version and resumption',
      labelNames: ['version', 'resumed'] as const, registers,
    }),
    connectionsOpen: new Gauge({ name: 'certgate_tls_connections_open', help: 'Open TLS connections', registers, aggregator: 'sum' }),
    connectionsRejected: new Counter({
      name: 'certgate_connections_rejected_total', help: 'Connections closed right after accept, by reason: max_connections (a limit), proxy_protocol (a PROXY header refused, missing, malformed or too slow)',
      labelNames: ['reason'] as const, registers,
    }),
    authzDenied: new Counter({
      name: 'certgate_authz_denied_total', help: 'Requests refused by a route allow list', labelNames: ['route'] as const, registers,
    }),
    upstreamErrors: new Counter({
      name: 'certgate_upstream_errors_total', help: 'Upstream failures, by route and kind',
      labelNames: ['route', 'kind'] as const, registers,
    }),
    tunnelsClosed: new Counter({
      name: 'certgate_tunnels_closed_total', help: 'WebSocket tunnels closed because their client certificate is no longer trusted, by reason',
      labelNames: ['reason'] as const, registers,
    }),
    upstreamDuration: new Histogram({
      name: 'certgate_upstream_duration_seconds', help: 'Time from forwarding a request until the upstream\'s response headers arrived, by route',
      labelNames: ['route'] as const, registers, buckets: [...LATENCY_BUCKETS],
    }),
    clientCertExpiry: new Histogram({
      name: 'certgate_client_certificate_expiry_seconds',
      help: 'Seconds left on the client certificate of each new verified connection (le="604800": clients that break within a week)',
      registers, buckets: [...CLIENT_EXPIRY_BUCKETS],
    }),
    reloads: new Counter({
      name: 'certgate_reloads_total', help: 'TLS material reloads, by changed file and result (success | failure; unchanged: a SIGHUP or POST /-/reload re-read that found nothing new, once per file)',
      labelNames: ['file', 'result'] as const, registers,
      // node:cluster: the primary validates every reload and each worker repeats it; a sum would count one
      // rotation once per process. The primary's count (the highest) is the one a single process would show.
      aggregator: 'max',
    }),
    configReloads: new Counter({
      name: 'certgate_config_reloads_total', help: 'Live config reloads, by result (success: applied | failure: refused, the old config kept | unchanged: the file had not changed)',
      labelNames: ['result'] as const, registers, aggregator: 'max',
    }),
    configLastReloadSuccess: new Gauge({
      // node:cluster: only the primary reloads the config (its workers' gauges stay 0): max is the primary's.
      name: 'certgate_config_last_reload_success_timestamp_seconds', help: 'When a config was last applied (start-up included)', registers, aggregator: 'max',
    }),
    configGeneration: new Gauge({
      name: 'certgate_config_generation', help: 'The configuration generation serving new requests (1 at start-up, +1 per applied config)', registers, aggregator: 'max',
    }),
    lastReloadSuccess: new Gauge({
      name: 'certgate_last_reload_success_timestamp_seconds', help: 'When TLS material was last loaded successfully', registers,
      // node:cluster: the AggregatorRegistry sums gauges by default; the stalest worker is the honest answer.
      aggregator: 'min',
    }),
    certificateExpiry: new Gauge({
      name: 'certgate_certificate_expiry_timestamp_seconds', help: 'notAfter of the loaded certificates (kind = server | chain | client_ca)',
      labelNames: ['kind', 'subject'] as const, registers, aggregator: 'min',
    }),
    crlNextUpdate: new Gauge({
      name: 'certgate_crl_next_update_timestamp_seconds', help: 'nextUpdate of each loaded CRL, by issuer',
      labelNames: ['issuer'] as const, registers, aggregator: 'min',
    }),
    // result: the fixed set in enroll/handler.ts (ENROLL_RESULTS), pre-created there when enrollment is on.
    enrollments: new Counter({
      name: 'certgate_enrollments_total', help: 'POST /enroll attempts, by result (issued or why refused)',
      labelNames: ['result'] as const, registers,
    }),
    http2SessionsOpen: new Gauge({ name: 'certgate_http2_sessions_open', help: 'Open HTTP/2 client sessions', registers, aggregator: 'sum' }),
    http2StreamsRefused: http2Refused(registers),
  };
}

function http2Refused(registers: Registry[]): Counter<'reason'> {
  const c = new Counter({
    name: 'certgate_http2_streams_refused_total', help: 'HTTP/2 streams (or whole sessions) refused or reset by certgate, by reason',
    labelNames: ['reason'] as const, registers,
  });
  for (const reason of HTTP2_REFUSAL_REASONS) c.inc({ reason }, 0);
  return c;
}

/** The cluster primary's own metrics (workers: N), next to the aggregated ones of its workers. */
export interface ClusterMetrics {
  readonly workers: Gauge;
  readonly workerRestarts: Counter<'reason'>;
}

export function createClusterMetrics(registry: Registry): ClusterMetrics {
  const registers = [registry];
  return {
    workers: new Gauge({ name: 'certgate_workers', help: 'Worker processes serving the TLS listener now (workers: N)', registers, aggregator: 'first' }),
    workerRestarts: new Counter({
      name: 'certgate_worker_restarts_total', help: 'Workers replaced after they died, by reason (exit | signal)',
      labelNames: ['reason'] as const, registers,
    }),
  };
}
