/**
 * Live configuration (issue 17) over real sockets: POST /-/reload and the config file watch apply a
 * valid config at once (the next request on a kept-alive connection is routed and authorized under it);
 * an invalid edit changes nothing and is reported with file:line; a request in flight during the swap
 * finishes on the upstream it started on; restart-to-apply keys are reported, the rest applied.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import https from 'node:https';
import { writeFileSync } from 'node:fs';
import { stringify } from 'yaml';
import { createTestPki, type TestPki } from '../helpers/pki.js';
import { rewriteConfig, startTestCertgate, startRecordingUpstream, metricValue, type RunningCertgate, type RecordingUpstream } from '../helpers/certgate.js';
import { mtlsRequest } from '../helpers/client.js';
import { waitFor } from '../helpers/wait.js';

let pki: TestPki;
let a: RecordingUpstream;
let b: RecordingUpstream;
let gate: RunningCertgate;
/** Requests to /hold on `a` wait here until released. */
const held: (() => void)[] = [];

function settings(routes: unknown[], extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    listen: '127.0.0.1:0', admin: { listen: '127.0.0.1:0' },
    tls: { bundle: pki.serverBundle.pemPath, client_ca: pki.clientCa.path },
    routes, ...extra,
  };
}

/** Writes the config as an editor does (temp file, then rename) and asks for a reload. */
function rewrite(body: string): Promise<{ status: number; json: Record<string, unknown> }> {
  return rewriteConfig(gate, body);
}

before(async () => {
  pki = await createTestPki();
  a = await startRecordingUpstream((req, res) => {
    if (req.url !== '/hold') return false;
    held.push(() => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('held by a');
    });
    return true;
  });
  b = await startRecordingUpstream();
  const initial = settings([
    { name: 'api', path_prefix: '/', upstream: a.url, allow: { subject_cn: ['svc-a'] } },
  ], { config_watch: false });
  gate = await startTestCertgate(initial);
});
after(async () => {
  for (const release of held) release();
  await gate?.close();
  await Promise.all([a?.close(), b?.close()]);
  pki?.cleanup();
});

const creds = () => ({ ca: pki.root.cert, cert: pki.clients.good.pem, key: pki.clients.good.key });

test('allow list change applies to the next request on a live keep-alive connection (403 without reconnecting)', async () => {
  const agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
  try {
    const first = await mtlsRequest(gate.url, creds(), { path: '/x', agent });
    assert.equal(first.status, 200, first.body);
    const sockets = new Set<unknown>();
    const r = await rewrite(stringify(settings([
      { name: 'api', path_prefix: '/', upstream: a.url, allow: { subject_cn: ['someone-else'] } },
    ], { config_watch: false })));
    assert.equal(r.status, 200, JSON.stringify(r.json));
    assert.equal(r.json.result, 'success');
    assert.equal(r.json.generation, 2);
    assert.match(String(r.json.changes), /routes changed: api/);
    const second = await mtlsRequest(gate.url, creds(), { path: '/x', agent });
    assert.equal(second.status, 403, second.body);
    for (const list of Object.values(agent.sockets)) for (const s of list ?? []) sockets.add(s);
    for (const list of Object.values(agent.freeSockets)) for (const s of list ?? []) sockets.add(s);
    assert.equal(sockets.size, 1, 'the same kept-alive connection served both requests');
    // The access line names the generation that served each request.
    const lines = await waitFor(() => {
      const l = gate.logs.find('request').filter((x) => x.path === '/x');
      return l.length === 2 && l;
    }, 'both access lines');
    assert.deepEqual(lines.map((l) => [l.status, l.config_generation]), [[200, 1], [403, 2]]);
    const m = await gate.metricsText();
    assert.equal(metricValue(m, 'certgate_config_reloads_total', { result: 'success' }), 1);
    assert.equal(metricValue(m, 'certgate_config_generation'), 2);
  } finally {
    agent.destroy();
  }
});

test('an invalid edit (unknown key, bad YAML, missing PEM) changes nothing and is reported with file:line', async () => {
  const before = (await gate.metricsText());
  const failuresBefore = metricValue(before, 'certgate_config_reloads_total', { result: 'failure' }) ?? 0;
  const generationBefore = metricValue(before, 'certgate_config_generation');
  // Unknown key: rejected with the line it is on.
  const unknown = await rewrite(`${stringify(settings([{ name: 'api', path_prefix: '/', upstream: b.url }], { config_watch: false }))}\nroutez: []\n`);
  assert.equal(unknown.status, 422, JSON.stringify(unknown.json));
  assert.equal(unknown.json.result, 'failure');
  const problems = unknown.json.problems as { file?: string; line?: number; code: string }[];
  assert.ok(problems.some((p) => p.file === gate.config.file && typeof p.line === 'number'), JSON.stringify(problems));
  // Bad YAML.
  const yaml = await rewrite('routes: [\n  - {name: api\n');
  assert.equal(yaml.json.result, 'failure');
  // A missing PEM: the whole config refused.
  const pem = await rewrite(stringify({ ...settings([{ name: 'api', path_prefix: '/', upstream: b.url }], { config_watch: false }), tls: { bundle: '/nonexistent/bundle.pem', client_ca: pki.clientCa.path } }));
  assert.equal(pem.json.result, 'failure');
  // Still the old config: the allow list that refuses svc-a, and the old upstream.
  const r = await mtlsRequest(gate.url, creds(), { path: '/x' });
  assert.equal(r.status, 403, r.body);
  const after = await gate.metricsText();
  assert.equal(metricValue(after, 'certgate_config_reloads_total', { result: 'failure' }), failuresBefore + 3);
  assert.equal(metricValue(after, 'certgate_config_generation'), generationBefore);
  const status = await (await fetch(`${gate.adminUrl}/status.json`)).json() as { config: { last_failure: { problems: unknown[] } | null }; reloads: { file: string; result: string }[] };
  assert.ok(status.config.last_failure !== null && status.config.last_failure.problems.length > 0);
  assert.equal(status.reloads[0]?.file, 'config');
  assert.equal(status.reloads[0]?.result, 'failure');
});

test('a request in flight during the swap completes on its old upstream; the next goes to the new one; restart-to-apply keys are reported', async () => {
  await rewrite(stringify(settings([{ name: 'api', path_prefix: '/', upstream: a.url }], { config_watch: false })));
  const inFlight = mtlsRequest(gate.url, creds(), { path: '/hold' });
  await waitFor(() => held.length === 1, 'the slow request reached upstream a');
  const r = await rewrite(stringify(settings([{ name: 'api2', path_prefix: '/', upstream: b.url }], { config_watch: false, http2: false })));
  assert.equal(r.json.result, 'success', JSON.stringify(r.json));
  assert.deepEqual(r.json.restart_to_apply, ['http2']);
  assert.match(String(r.json.changes), /routes added: api2; routes removed: api/);
  const bBefore = b.requests.length;
  const next = await mtlsRequest(gate.url, creds(), { path: '/new' });
  assert.equal(next.status, 200, next.body);
  assert.equal(b.requests.length, bBefore + 1);
  held.shift()!();
  const slow = await inFlight;
  assert.equal(slow.status, 200, slow.body);
  assert.equal(slow.body, 'held by a');
  assert.ok(gate.logs.lines.some((l) => l.msg === 'restart to apply' && l.setting === 'http2'));
  // The same bytes again: unchanged, generation kept.
  const again = await fetch(`${gate.adminUrl}/-/reload`, { method: 'POST' });
  const json = await again.json() as { result: string };
  assert.equal(json.result, 'unchanged');
});

test('a loadable error (a stale CRL under crl_stale: refuse) does not block a reload: serve starts with it, so a route edit applies', async () => {
  const stale = (routes: unknown[]) => ({
    listen: '127.0.0.1:0', admin: { listen: '127.0.0.1:0' }, config_watch: false,
    tls: { bundle: pki.serverBundle.pemPath, client_ca: pki.clientCa.path, crl: pki.expiredCrlPath, crl_stale: 'refuse' }, routes,
  });
  const g = await startTestCertgate(stale([{ name: 'one', path_prefix: '/', upstream: a.url }]));
  try {
    writeFileSync(g.config.file, stringify(stale([{ name: 'two', path_prefix: '/', upstream: b.url }])));
    const res = await fetch(`${g.adminUrl}/-/reload`, { method: 'POST' });
    const json = await res.json() as { result: string; changes: string };
    assert.equal(json.result, 'success', JSON.stringify(json));
    assert.match(json.changes, /routes added: two; routes removed: one/);
  } finally {
    await g.close();
  }
});
