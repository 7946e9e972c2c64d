/**
 * The metric names are a public contract (dashboards and alerts use them): every name the observability
 * issue lists is registered by createMetrics(), with the buckets it asks for, and the default process
 * metrics carry no certgate_ prefix. Also the pure pieces of the request path: X-Request-Id sanitising and
 * the per-reason log limiter.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createMetrics, CLIENT_EXPIRY_BUCKETS, LATENCY_BUCKETS } from '../../dist/admin/metrics.js';
import { methodLabel } from '../../dist/proxy/metrics.js';
import { requestIdFor } from '../../dist/proxy/telemetry.js';
import { createLogLimiter, type Logger } from '../../dist/log.js';

/** Name → type, exactly as the issue lists them. */
const CONTRACT: Record<string, string> = {
  certgate_http_requests_total: 'counter',
  certgate_http_request_duration_seconds: 'histogram',
  certgate_http_requests_in_flight: 'gauge',
  certgate_tls_handshakes_total: 'counter',
  certgate_tls_handshake_failures_total: 'counter',
  certgate_tls_connections_open: 'gauge',
  certgate_connections_rejected_total: 'counter',
  certgate_authz_denied_total: 'counter',
  certgate_upstream_errors_total: 'counter',
  certgate_tunnels_closed_total: 'counter',
  certgate_upstream_duration_seconds: 'histogram',
  certgate_certificate_expiry_timestamp_seconds: 'gauge',
  certgate_crl_next_update_timestamp_seconds: 'gauge',
  certgate_reloads_total: 'counter',
  certgate_last_reload_success_timestamp_seconds: 'gauge',
  certgate_client_certificate_expiry_seconds: 'histogram',
  // Issue 16 (HTTP/2).
  certgate_http2_sessions_open: 'gauge',
  certgate_http2_streams_refused_total: 'counter',
  // Issue 17 (live configuration).
  certgate_config_reloads_total: 'counter',
  certgate_config_last_reload_success_timestamp_seconds: 'gauge',
  certgate_config_generation: 'gauge',
};

const LABELS: Record<string, string[]> = {
  // protocol: http/1.0 | http/1.1 | h2 (issue 16).
  certgate_http_requests_total: ['route', 'method', 'code', 'protocol'],
  certgate_http_request_duration_seconds: ['route'],
  certgate_tls_handshakes_total: ['version', 'resumed'],
  certgate_tls_handshake_failures_total: ['reason'],
  certgate_connections_rejected_total: ['reason'],
  certgate_authz_denied_total: ['route'],
  certgate_upstream_errors_total: ['route', 'kind'],
  certgate_tunnels_closed_total: ['reason'],
  certgate_upstream_duration_seconds: ['route'],
  certgate_certificate_expiry_timestamp_seconds: ['kind', 'subject'],
  certgate_crl_next_update_timestamp_seconds: ['issuer'],
  certgate_reloads_total: ['file', 'result'],
  certgate_client_certificate_expiry_seconds: [],
  certgate_http2_sessions_open: [],
  certgate_http2_streams_refused_total: ['reason'],
  certgate_config_reloads_total: ['result'],
  certgate_config_last_reload_success_timestamp_seconds: [],
  certgate_config_generation: [],
};

describe('metric names (public contract)', () => {
  it('registers every contract metric with its type and labels', async () => {
    const m = createMetrics({ defaultMetrics: false });
    const text = await m.registry.metrics();
    for (const [name, type] of Object.entries(CONTRACT)) {
      assert.match(text, new RegExp(`^# TYPE ${name} ${type}$`, 'm'), name);
      const metric = m.registry.getSingleMetric(name) as unknown as { labelNames: string[] } | undefined;
      assert.deepEqual([...(metric?.labelNames ?? [])].sort(), [...(LABELS[name] ?? [])].sort(), `${name} labels`);
    }
    assert.equal(text.match(/^# TYPE certgate_/gm)?.length, Object.keys(CONTRACT).length + 1, 'plus certgate_enrollments_total, nothing unplanned');
  });

  it('latency histograms span 1 ms .. 30 s; client expiry buckets are 1, 7, 14, 30, 90, 365 days', async () => {
    assert.equal(LATENCY_BUCKETS[0], 0.001);
    assert.equal(LATENCY_BUCKETS.at(-1), 30);
    const day = 86_400;
    assert.deepEqual(CLIENT_EXPIRY_BUCKETS, [day, 7 * day, 14 * day, 30 * day, 90 * day, 365 * day]);
    const m = createMetrics({ defaultMetrics: false });
    m.clientCertExpiry.observe(3 * day);
    const text = await m.registry.metrics();
    assert.match(text, /^certgate_client_certificate_expiry_seconds_bucket\{le="86400"\} 0$/m);
    assert.match(text, /^certgate_client_certificate_expiry_seconds_bucket\{le="604800"\} 1$/m, 'a 3-day client is "breaks within a week"');
    m.upstreamDuration.observe({ route: 'api' }, 0.0005);
    m.httpDuration.observe({ route: 'api' }, 31);
    const after = await m.registry.metrics();
    assert.match(after, /^certgate_upstream_duration_seconds_bucket\{le="0.001",route="api"\} 1$/m);
    assert.match(after, /^certgate_http_request_duration_seconds_bucket\{le="30",route="api"\} 0$/m);
    assert.match(after, /^certgate_http_request_duration_seconds_bucket\{le="\+Inf",route="api"\} 1$/m);
  });

  it('default process and Node metrics keep their standard names (no certgate_ prefix)', async () => {
    const m = createMetrics();
    const text = await m.registry.metrics();
    assert.match(text, /^# TYPE process_cpu_user_seconds_total counter$/m);
    assert.match(text, /^# TYPE nodejs_eventloop_lag_seconds gauge$/m);
    assert.doesNotMatch(text, /^# TYPE certgate_(process|nodejs)_/m);
  });

  it('every handshake refusal reason exists at 0 before the first refusal', async () => {
    const m = createMetrics({ defaultMetrics: false });
    const text = await m.registry.metrics();
    for (const reason of ['no_certificate', 'unknown_ca', 'expired', 'revoked', 'crl_expired', 'bad_certificate']) {
      assert.match(text, new RegExp(`^certgate_tls_handshake_failures_total\\{reason="${reason}"\\} 0$`, 'm'));
    }
  });

  it('methods are a bounded label', () => {
    assert.equal(methodLabel('GET'), 'GET');
    assert.equal(methodLabel('BREW'), 'OTHER');
    assert.equal(methodLabel(undefined), 'OTHER');
  });
});

describe('X-Request-Id', () => {
  const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

  it('keeps a sane client token', () => {
    for (const id of ['abc', 'req-42', '0f0e:7a/b.c_d~e', 'x'.repeat(128), '"quoted"&<ok>']) assert.equal(requestIdFor(id), id);
  });

  it('generates a UUID when absent, empty, too long, spaced, non-ASCII, control characters, or repeated', () => {
    const bad: (string | string[] | undefined)[] = [undefined, '', 'x'.repeat(129), 'a b', 'caf\u00e9', 'a\tb', 'a\u0000b', 'a, b', ['a', 'b']];
    for (const id of bad) {
      const got = requestIdFor(id);
      assert.match(got, UUID, JSON.stringify(id));
    }
    assert.notEqual(requestIdFor(undefined), requestIdFor(undefined), 'fresh per request');
  });
});

describe('log limiter (handshake-failure floods)', () => {
  function fakeLog(): { log: Logger; lines: Record<string, unknown>[] } {
    const lines: Record<string, unknown>[] = [];
    const write = (level: string) => (o: Record<string, unknown>) => lines.push({ level, ...o });
    return { log: { debug: write('debug'), info: write('info'), warn: write('warn'), error: write('error') } as unknown as Logger, lines };
  }

  it('logs the burst per key, counts the rest, and summarises them once per window', () => {
    const { log, lines } = fakeLog();
    let now = 0;
    const limiter = createLogLimiter(log, { msg: 'suppressed', field: 'reason', burst: 3, windowMs: 1000, now: () => now });
    for (let i = 0; i < 10; i++) limiter.write('warn', 'expired', { msg: 'refused', i });
    limiter.write('warn', 'unknown_ca', { msg: 'refused', i: 100 });
    assert.equal(lines.filter((l) => l.msg === 'refused').length, 4, '3 expired + 1 unknown_ca');
    now = 1500; // next window: the first write rolls it over and writes the summary of the last one
    limiter.write('warn', 'expired', { msg: 'refused', i: 10 });
    const summaries = lines.filter((l) => l.msg === 'suppressed');
    assert.deepEqual(summaries, [{ level: 'warn', msg: 'suppressed', reason: 'expired', suppressed: 7, window_ms: 1000, burst: 3 }]);
    assert.equal(lines.at(-1)?.i, 10, 'a new window logs again');
    limiter.close();
    assert.equal(lines.filter((l) => l.msg === 'suppressed').length, 1, 'nothing pending: no empty summary');
  });

  it('close() writes what is still pending, at the level of the suppressed lines', () => {
    const { log, lines } = fakeLog();
    const limiter = createLogLimiter(log, { msg: 'suppressed', field: 'reason', burst: 1, windowMs: 60_000 });
    limiter.write('debug', 'aborted', { msg: 'failed' });
    limiter.write('debug', 'aborted', { msg: 'failed' });
    limiter.write('debug', 'aborted', { msg: 'failed' });
    limiter.close();
    assert.deepEqual(lines.map((l) => [l.level, l.msg, l.suppressed]), [['debug', 'failed', undefined], ['debug', 'suppressed', 2]]);
  });
});
