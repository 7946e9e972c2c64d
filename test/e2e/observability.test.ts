/**
 * Observability under real traffic (real TLS sockets, per-run certificates).
 *
 * Setup: one certgate in front of a recording upstream, with routes api (open), locked (allow list no
 * client matches) and dead (nothing listens), the test CRL loaded, watching off (reloads are driven by
 * the test). Clients: good (30 days left), soon (3 days left), expired, revoked.
 * Action: requests, refusals, upstream failures, session resumption, reloads (good, then broken).
 * Must hold: every contract metric changes by exactly what the traffic did (values, not just names);
 * each request gives one access line with the issue's fields; X-Request-Id is kept when sane, generated
 * otherwise, forwarded and returned; /clients lists who called, soonest-expiring first; handshake-failure
 * logs are capped per reason with a summary; no key or PEM is ever logged; and every certgate_* metric the
 * Grafana dashboard and the Prometheus rules name is one certgate exports.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import https from 'node:https';
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { createTestPki, type TestPki, type TestCert } from '../helpers/pki.js';
import { startTestCertgate, startRecordingUpstream, metricValue, type RunningCertgate, type RecordingUpstream } from '../helpers/certgate.js';
import { mtlsRequest } from '../helpers/client.js';
import { waitFor } from '../helpers/wait.js';

const DAY = 86_400_000;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

let pki: TestPki;
let upstream: RecordingUpstream;
let gate: RunningCertgate;
let quiet: RunningCertgate;
let limited: RunningCertgate;
let soon: TestCert;
let servedBundle: string;
let releaseSlow: (() => void) | undefined;
const allGates: RunningCertgate[] = [];

before(async () => {
  pki = await createTestPki();
  soon = await pki.issueClient({ name: 'soon', subject: [['CN', 'svc-soon']], notAfter: new Date(Date.now() + 3 * DAY) });
  upstream = await startRecordingUpstream((req, res) => {
    if (req.url === '/api/slow') {
      releaseSlow = () => res.end('slow done');
      return true;
    }
    if (req.url === '/api/own-id') {
      res.writeHead(200, { 'x-request-id': 'chosen-by-upstream', 'content-type': 'text/plain' });
      res.end('ok');
      return true;
    }
    return false;
  });
  servedBundle = path.join(pki.dir, 'served.pem');
  copyFileSync(pki.serverBundle.pemPath, servedBundle);
  const tls = { bundle: servedBundle, client_ca: pki.clientCa.path, crl: pki.crlPath, watch: false };
  const routes = [
    { name: 'api', path_prefix: '/api', upstream: upstream.url },
    { name: 'locked', path_prefix: '/locked', upstream: upstream.url, allow: { subject_cn: ['nobody'] } },
    { name: 'dead', path_prefix: '/dead', upstream: 'http://127.0.0.1:1' },
  ];
  const plainTls = { bundle: pki.serverBundle.pemPath, client_ca: pki.clientCa.path, watch: false };
  [gate, quiet, limited] = await Promise.all([
    startTestCertgate({ tls, routes, admin: { listen: '127.0.0.1:0', clients_max: 50 } }),
    // Access log off, for a flood of refusals.
    startTestCertgate({ tls: plainTls, routes, log: { access: false } }),
    startTestCertgate({ tls: plainTls, routes, limits: { max_connections: 1 } }),
  ]);
  allGates.push(gate, quiet, limited);
});
after(async () => {
  releaseSlow?.();
  await Promise.all([gate?.close(), quiet?.close(), limited?.close(), upstream?.close()]);
  pki?.cleanup();
});

const as = (c: TestCert) => ({ ca: pki.root.cert, cert: c.pem, key: c.key });
const metric = async (g: RunningCertgate, name: string, labels: Record<string, string> = {}): Promise<number> =>
  metricValue(await g.metricsText(), name, labels) ?? 0;
const fingerprintOf = (c: TestCert) => c.x509.fingerprint256.replaceAll(':', '').toLowerCase();
const accessLine = (g: RunningCertgate, id: string) => waitFor(() => g.logs.find('request').find((l) => l.request_id === id), `the access line of ${id}`);

test('a forwarded request: counted by route/method/code, timed (proxy and upstream), one access line with every field', async () => {
  const before = {
    requests: await metric(gate, 'certgate_http_requests_total', { route: 'api', method: 'POST', code: '200' }),
    duration: await metric(gate, 'certgate_http_request_duration_seconds_count', { route: 'api' }),
    upstream: await metric(gate, 'certgate_upstream_duration_seconds_count', { route: 'api' }),
  };
  const r = await mtlsRequest(gate.url, as(pki.clients.good), { path: '/api/hello?x=1', method: 'POST', body: 'x'.repeat(100) });
  assert.equal(r.status, 200);
  const id = String(r.headers['x-request-id']);
  assert.match(id, UUID, 'generated when the client sent none');
  assert.equal(upstream.requests.at(-1)?.headers['x-request-id'], id, 'forwarded to the upstream');

  const line = await accessLine(gate, id);
  const text = await gate.metricsText();
  assert.equal(metricValue(text, 'certgate_http_requests_total', { route: 'api', method: 'POST', code: '200' }), before.requests + 1);
  assert.equal(metricValue(text, 'certgate_http_request_duration_seconds_count', { route: 'api' }), before.duration + 1);
  assert.equal(metricValue(text, 'certgate_upstream_duration_seconds_count', { route: 'api' }), before.upstream + 1);
  assert.ok((metricValue(text, 'certgate_upstream_duration_seconds_sum', { route: 'api' }) ?? 0) > 0);
  assert.equal(metricValue(text, 'certgate_http_requests_in_flight'), 0);

  assert.match(String(line.time), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  assert.equal(line.method, 'POST');
  assert.equal(line.path, '/api/hello?x=1');
  assert.equal(line.status, 200);
  assert.equal(line.route, 'api');
  assert.equal(typeof line.duration_ms, 'number');
  assert.equal(typeof line.upstream_ms, 'number');
  assert.ok(Number(line.upstream_ms) <= Number(line.duration_ms), JSON.stringify(line));
  assert.equal(line.bytes_in, 100);
  assert.ok(Number(line.bytes_out) > 0);
  assert.equal(line.remote_address, '127.0.0.1');
  assert.equal(line.tls_version, 'TLSv1.3');
  assert.equal(line.tls_resumed, false);
  assert.equal(line.client_subject, 'CN=svc-a,OU=payments');
  assert.equal(line.client_fingerprint, fingerprintOf(pki.clients.good));
  assert.equal(line.client_san_uri, 'spiffe://example.org/ns/prod/sa/svc-a');
  assert.equal(line.request_id, id);
  assert.equal(gate.logs.find('request').filter((l) => l.request_id === id).length, 1, 'exactly one line');
});

test('X-Request-Id: a sane client id is kept end to end, an unsafe one replaced, and the client always gets certgate\'s', async () => {
  const kept = await mtlsRequest(gate.url, as(pki.clients.good), { path: '/api/a', headers: { 'x-request-id': 'trace-7f3a.b_c:d/e' } });
  assert.equal(kept.headers['x-request-id'], 'trace-7f3a.b_c:d/e');
  assert.equal(upstream.requests.at(-1)?.headers['x-request-id'], 'trace-7f3a.b_c:d/e');
  assert.equal((await accessLine(gate, 'trace-7f3a.b_c:d/e')).path, '/api/a');

  for (const unsafe of ['x'.repeat(129), 'two words', 'caf\u00e9']) {
    const r = await mtlsRequest(gate.url, as(pki.clients.good), { path: '/api/b', headers: { 'x-request-id': unsafe } });
    const id = String(r.headers['x-request-id']);
    assert.match(id, UUID, `replaced: ${unsafe.slice(0, 20)}`);
    assert.equal(upstream.requests.at(-1)?.headers['x-request-id'], id);
  }

  const own = await mtlsRequest(gate.url, as(pki.clients.good), { path: '/api/own-id', headers: { 'x-request-id': 'mine-1' } });
  assert.equal(own.headers['x-request-id'], 'mine-1', 'the upstream\'s own id does not replace the one certgate logged');

  const notFound = await mtlsRequest(gate.url, as(pki.clients.good), { path: '/nowhere' });
  assert.equal(notFound.status, 404);
  const id = String(notFound.headers['x-request-id']);
  assert.match(id, UUID, 'certgate\'s own answers carry it too');
  const line = await accessLine(gate, id);
  assert.equal(line.route, '(none)');
  assert.equal(line.error, 'no_route');
});

test('in flight and open connections follow a request that waits on its upstream', async () => {
  const pending = mtlsRequest(gate.url, as(pki.clients.good), { path: '/api/slow' });
  await waitFor(async () => (await metric(gate, 'certgate_http_requests_in_flight')) === 1, 'in_flight = 1');
  assert.ok((await metric(gate, 'certgate_tls_connections_open')) >= 1);
  await waitFor(() => releaseSlow !== undefined, 'the upstream holding the request');
  releaseSlow!();
  assert.equal((await pending).body, 'slow done');
  await waitFor(async () => (await metric(gate, 'certgate_http_requests_in_flight')) === 0, 'in_flight back to 0');
  await waitFor(async () => (await metric(gate, 'certgate_tls_connections_open')) === 0, 'open connections back to 0');
});

test('handshakes by version and resumption: a resumed session is counted as resumed and logged so', async () => {
  const labels = (resumed: string) => ({ version: 'TLSv1.3', resumed });
  const fresh0 = await metric(gate, 'certgate_tls_handshakes_total', labels('false'));
  const resumed0 = await metric(gate, 'certgate_tls_handshakes_total', labels('true'));
  const agent = new https.Agent({ keepAlive: false, maxCachedSessions: 10 });
  try {
    const first = await mtlsRequest(gate.url, as(pki.clients.good), { path: '/api/r1', agent });
    // The TLS 1.3 ticket arrives after the handshake; the agent caches it on the socket's 'session' event.
    await new Promise((resolve) => setTimeout(resolve, 50));
    const second = await mtlsRequest(gate.url, as(pki.clients.good), { path: '/api/r2', agent });
    assert.equal(first.status, 200);
    assert.equal(second.status, 200);
    assert.equal(await metric(gate, 'certgate_tls_handshakes_total', labels('false')), fresh0 + 1);
    assert.equal(await metric(gate, 'certgate_tls_handshakes_total', labels('true')), resumed0 + 1);
    assert.equal((await accessLine(gate, String(second.headers['x-request-id']))).tls_resumed, true);
  } finally {
    agent.destroy();
  }
});

test('refusals: counted by reason (handshake verdicts, allow lists) and remembered per certificate in /clients', async () => {
  const expired0 = await metric(gate, 'certgate_tls_handshake_failures_total', { reason: 'expired' });
  const revoked0 = await metric(gate, 'certgate_tls_handshake_failures_total', { reason: 'revoked' });
  const denied0 = await metric(gate, 'certgate_authz_denied_total', { route: 'locked' });
  assert.equal((await mtlsRequest(gate.url, as(pki.clients.expired), { path: '/api/x' })).status, 400);
  assert.equal((await mtlsRequest(gate.url, as(pki.clients.revoked), { path: '/api/x' })).status, 400);
  assert.equal((await mtlsRequest(gate.url, as(pki.clients.good), { path: '/locked/x' })).status, 403);
  assert.equal(await metric(gate, 'certgate_tls_handshake_failures_total', { reason: 'expired' }), expired0 + 1);
  assert.equal(await metric(gate, 'certgate_tls_handshake_failures_total', { reason: 'revoked' }), revoked0 + 1);
  assert.equal(await metric(gate, 'certgate_authz_denied_total', { route: 'locked' }), denied0 + 1);

  const { clients } = await (await fetch(`${gate.adminUrl}/clients`)).json() as { clients: Record<string, unknown>[] };
  const bySubject = new Map(clients.map((c) => [c.subject, c]));
  assert.equal(bySubject.get('CN=svc-expired')?.last_refusal, 'expired');
  assert.equal(bySubject.get('CN=svc-revoked')?.last_refusal, 'revoked');
  assert.equal(bySubject.get('CN=svc-a,OU=payments')?.last_refusal, 'forbidden');
  assert.equal(bySubject.get('CN=svc-a,OU=payments')?.last_route, 'locked');
});

test('upstream errors by route and kind; the failed request is counted with its 502', async () => {
  const errors0 = await metric(gate, 'certgate_upstream_errors_total', { route: 'dead', kind: 'refused' });
  const requests0 = await metric(gate, 'certgate_http_requests_total', { route: 'dead', method: 'GET', code: '502' });
  const r = await mtlsRequest(gate.url, as(pki.clients.good), { path: '/dead/x' });
  assert.equal(r.status, 502);
  assert.equal(await metric(gate, 'certgate_upstream_errors_total', { route: 'dead', kind: 'refused' }), errors0 + 1);
  await waitFor(async () => (await metric(gate, 'certgate_http_requests_total', { route: 'dead', method: 'GET', code: '502' })) === requests0 + 1, 'the 502 counted');
  const text = await gate.metricsText();
  assert.equal(metricValue(text, 'certgate_upstream_errors_total', { route: 'api', kind: 'timeout' }), 0, 'every route × kind exists from the start');
});

test('client certificate time left: each new verified connection lands in its bucket (no per-client label)', async () => {
  const bucket = (le: string) => metric(gate, 'certgate_client_certificate_expiry_seconds_bucket', { le });
  const [week0, twoWeeks0, month0, count0] = [await bucket('604800'), await bucket('1209600'), await bucket('2592000'),
    await metric(gate, 'certgate_client_certificate_expiry_seconds_count')];
  assert.equal((await mtlsRequest(gate.url, as(soon), { path: '/api/soon' })).status, 200);
  assert.equal((await mtlsRequest(gate.url, as(pki.clients.good), { path: '/api/good' })).status, 200);
  assert.equal((await mtlsRequest(gate.url, as(pki.clients.expired), { path: '/api/x' })).status, 400);
  assert.equal(await bucket('604800'), week0 + 1, 'the 3-day client breaks within a week');
  assert.equal(await bucket('1209600'), twoWeeks0 + 1);
  assert.equal(await bucket('2592000'), month0 + 2, 'the 30-day client is within a month');
  assert.equal(await metric(gate, 'certgate_client_certificate_expiry_seconds_count'), count0 + 2, 'refused certificates are not observed');
  assert.doesNotMatch(await gate.metricsText(), /certgate_client_certificate_expiry_seconds_bucket\{[^}]*(subject|fingerprint)/);
});

test('/clients: the distinct certificates seen, soonest-expiring first, with counts, route and SANs', async () => {
  const before = await (await fetch(`${gate.adminUrl}/clients`)).json() as { clients: { fingerprint: string; requests: number }[] };
  const goodBefore = before.clients.find((c) => c.fingerprint === fingerprintOf(pki.clients.good))?.requests ?? 0;
  for (let i = 0; i < 3; i++) assert.equal((await mtlsRequest(gate.url, as(pki.clients.good), { path: '/api/count' })).status, 200);
  assert.equal((await mtlsRequest(gate.url, as(soon), { path: '/api/count' })).status, 200);
  const res = await fetch(`${gate.adminUrl}/clients`);
  assert.equal(res.headers.get('content-type'), 'application/json');
  const body = await res.json() as { count: number; clients: Record<string, unknown>[] };
  assert.equal(body.count, body.clients.length);
  const notAfters = body.clients.map((c) => String(c.not_after));
  assert.deepEqual(notAfters, [...notAfters].sort(), 'sorted by not_after');
  assert.equal(body.clients[0]?.subject, 'CN=svc-expired', 'the expired caller first');
  assert.equal(body.clients[1]?.subject, 'CN=svc-soon');
  const good = body.clients.find((c) => c.fingerprint === fingerprintOf(pki.clients.good))!;
  assert.equal(good.requests, goodBefore + 3);
  assert.equal(good.last_route, 'api');
  assert.deepEqual(good.san_uri, ['spiffe://example.org/ns/prod/sa/svc-a']);
  assert.equal(good.issuer, 'CN=certgate test intermediate CA,O=certgate test');
  assert.equal(good.not_after, new Date(pki.clients.good.x509.validTo).toISOString());
  assert.ok(Date.parse(String(good.first_seen)) <= Date.parse(String(good.last_seen)));
  assert.equal(new Set(body.clients.map((c) => c.fingerprint)).size, body.clients.length, 'one row per certificate');
});

test('certificate and CRL gauges; reloads counted by result; the last success time moves', async () => {
  const seconds = (d: string) => Date.parse(d) / 1000;
  let text = await gate.metricsText();
  assert.equal(metricValue(text, 'certgate_certificate_expiry_timestamp_seconds', { kind: 'server', subject: 'CN=localhost' }), seconds(pki.serverBundle.x509.validTo));
  assert.equal(metricValue(text, 'certgate_certificate_expiry_timestamp_seconds', { kind: 'chain', subject: 'CN=certgate test intermediate CA,O=certgate test' }), seconds(pki.intermediate.x509.validTo));
  assert.equal(metricValue(text, 'certgate_certificate_expiry_timestamp_seconds', { kind: 'client_ca', subject: 'CN=certgate test root CA,O=certgate test' }), seconds(pki.root.x509.validTo));
  const crlTimes = [...text.matchAll(/^certgate_crl_next_update_timestamp_seconds\{issuer="[^"]+"\} (\S+)$/gm)].map((m) => Number(m[1]));
  assert.equal(crlTimes.length, 2, 'one per CRL (intermediate, root)');
  for (const t of crlTimes) assert.ok(t > Date.now() / 1000 + 29 * 86_400, String(t));

  const success0 = metricValue(text, 'certgate_reloads_total', { file: 'all', result: 'success' }) ?? 0;
  const failure0 = metricValue(text, 'certgate_reloads_total', { file: 'all', result: 'failure' }) ?? 0;
  const last0 = metricValue(text, 'certgate_last_reload_success_timestamp_seconds') ?? 0;
  const renewed = await pki.issueClient({
    name: 'server-renewed', usage: 'server', subject: [['CN', 'localhost']], san: { dns: ['localhost'], ip: ['127.0.0.1', '::1'] },
    notAfter: new Date(Date.now() + 60 * DAY),
  });
  await new Promise((resolve) => setTimeout(resolve, 5)); // the timestamp gauge has ms resolution
  writeFileSync(servedBundle, renewed.pem);
  assert.equal((await gate.app.reload('signal')).result, 'success');
  writeFileSync(servedBundle, 'not a PEM at all\n');
  assert.equal((await gate.app.reload('signal')).result, 'failure');

  text = await gate.metricsText();
  assert.equal(metricValue(text, 'certgate_reloads_total', { file: 'all', result: 'success' }), success0 + 1);
  assert.equal(metricValue(text, 'certgate_reloads_total', { file: 'all', result: 'failure' }), failure0 + 1);
  assert.ok((metricValue(text, 'certgate_last_reload_success_timestamp_seconds') ?? 0) > last0);
  assert.equal(metricValue(text, 'certgate_certificate_expiry_timestamp_seconds', { kind: 'server', subject: 'CN=localhost' }), seconds(renewed.x509.validTo),
    'the failed reload left the renewed leaf serving');
  const status = await (await fetch(`${gate.adminUrl}/status.json`)).json() as { reloads: Record<string, unknown>[] };
  assert.deepEqual(status.reloads.slice(0, 2).map((r) => [r.trigger, r.result]), [['signal', 'failure'], ['signal', 'success']]);
  assert.match(String(status.reloads[0]?.code), /^CG_[A-Z_]+$/);
  assert.match(String(status.reloads[0]?.message), /served\.pem/, 'names the file');
  assert.equal(status.reloads[1]?.serial, renewed.x509.serialNumber.toUpperCase());
  assert.equal(status.reloads.at(-1)?.trigger, 'startup');
  writeFileSync(servedBundle, readFileSync(pki.serverBundle.pemPath));
  assert.equal((await gate.app.reload('signal')).result, 'success');
});

test('connections beyond limits.max_connections are rejected and counted', async () => {
  assert.equal(await metric(limited, 'certgate_connections_rejected_total', { reason: 'max_connections' }), 0);
  const agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
  try {
    assert.equal((await mtlsRequest(limited.url, as(pki.clients.good), { path: '/api/hold', agent })).status, 200);
    await waitFor(async () => (await metric(limited, 'certgate_tls_connections_open')) === 1, 'the kept-alive connection');
    await assert.rejects(mtlsRequest(limited.url, as(pki.clients.good), { path: '/api/second' }));
    await waitFor(async () => (await metric(limited, 'certgate_connections_rejected_total', { reason: 'max_connections' })) === 1, 'the rejection counted');
  } finally {
    agent.destroy();
  }
  await waitFor(async () => (await metric(limited, 'certgate_tls_connections_open')) === 0, 'the connection closed');
});

test('log.access: false writes no access line (metrics still count); a refusal flood logs 10 lines per reason, then one summary', async () => {
  const requests0 = await metric(quiet, 'certgate_http_requests_total', { route: '(none)', method: 'GET', code: '400' });
  const logged0 = quiet.logs.find('client certificate refused').filter((l) => l.reason === 'expired').length;
  assert.equal(logged0, 0);
  for (let i = 0; i < 25; i++) assert.equal((await mtlsRequest(quiet.url, as(pki.clients.expired), { path: '/api/x' })).status, 400);
  assert.equal(await metric(quiet, 'certgate_tls_handshake_failures_total', { reason: 'expired' }), 25, 'metrics count every one');
  await waitFor(async () => (await metric(quiet, 'certgate_http_requests_total', { route: '(none)', method: 'GET', code: '400' })) === requests0 + 25, 'the 400s counted');
  assert.equal(quiet.logs.find('client certificate refused').filter((l) => l.reason === 'expired').length, 10);
  assert.equal(quiet.logs.find('request').length, 0, 'no access lines with log.access: false');
  await quiet.close(); // pending summaries are written when the listener closes
  const summaries = quiet.logs.find('TLS handshake failures suppressed');
  assert.equal(summaries.length, 1);
  assert.equal(summaries[0]?.reason, 'expired');
  assert.equal(summaries[0]?.suppressed, 15);
});

test('keys, passphrases and PEMs never reach the log', () => {
  const secrets = [pki.serverBundle.key, pki.clients.good.key, soon.key].map((k) => k.split('\n')[1]!).filter((l) => l.length > 20);
  let lines = 0;
  for (const g of allGates) {
    for (const line of g.logs.lines) {
      lines += 1;
      const text = JSON.stringify(line);
      assert.doesNotMatch(text, /-----BEGIN|PRIVATE KEY/, text.slice(0, 200));
      for (const s of secrets) assert.ok(!text.includes(s), 'a key body appeared in a log line');
    }
  }
  assert.ok(lines > 50, `checked ${lines} lines`);
});

test('deploy/monitoring: the rules parse, and every certgate_* metric the dashboard and the rules name is exported', async () => {
  const root = new URL('../../deploy/monitoring/', import.meta.url);
  const rules = parseYaml(readFileSync(new URL('prometheus-rules.yaml', root), 'utf8')) as { groups: { name: string; rules: Record<string, unknown>[] }[] };
  const dashboard = JSON.parse(readFileSync(new URL('grafana-dashboard.json', root), 'utf8')) as { panels: { type: string; title: string; targets?: { expr: string }[] }[] };
  const exprs: string[] = [];
  const alerts = new Set<string>();
  assert.ok(rules.groups.length > 0);
  for (const group of rules.groups) {
    for (const rule of group.rules) {
      assert.equal(typeof rule.alert, 'string', JSON.stringify(rule));
      assert.equal(typeof rule.expr, 'string');
      assert.ok(['info', 'warning', 'critical'].includes(String((rule.labels as Record<string, unknown>).severity)), String(rule.alert));
      assert.equal(typeof (rule.annotations as Record<string, unknown>).summary, 'string');
      const expr = String(rule.expr);
      assert.equal((expr.match(/\(/g) ?? []).length, (expr.match(/\)/g) ?? []).length, `balanced parentheses in ${String(rule.alert)}`);
      alerts.add(String(rule.alert));
      exprs.push(expr);
    }
  }
  for (const a of ['CertgateServerCertificateExpiringSoon', 'CertgateClientCaExpiringSoon', 'CertgateReloadFailing', 'CertgateHandshakeFailureSpike', 'CertgateUpstreamErrorRatio']) {
    assert.ok(alerts.has(a), `the issue's alert ${a}`);
  }
  for (const p of dashboard.panels) for (const t of p.targets ?? []) exprs.push(t.expr);
  const titles = dashboard.panels.map((p) => p.title.toLowerCase()).join(' | ');
  for (const want of ['request rate', 'status code', 'p50 / p99', 'handshake failures', 'certificate expiry', 'client certificate time left', 'reloads']) {
    assert.ok(titles.includes(want), `a dashboard panel for ${want}: ${titles}`);
  }
  const exported = new Set([...(await gate.metricsText()).matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]));
  const named = new Set(exprs.flatMap((e) => [...e.matchAll(/\bcertgate_[a-z0-9_]+/g)].map((m) => m[0].replace(/_(bucket|sum|count)$/, ''))));
  assert.ok(named.size >= 14, [...named].join(' '));
  for (const name of named) assert.ok(exported.has(name), `${name} (named in deploy/monitoring) is not exported by certgate`);
});
