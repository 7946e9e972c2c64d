/**
 * Live configuration (issue 17): the listener limits Node lets a running server change — header_timeout_ms,
 * request_timeout_ms, keepalive_timeout_ms, max_connections — apply at the swap, over real sockets:
 * the next response advertises the new keep-alive, a slow request is answered 408 under the new timeouts,
 * a connection beyond the new max_connections is closed at accept. None of them is "restart to apply".
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import https from 'node:https';
import tls from 'node:tls';
import type http2 from 'node:http2';
import { h2Connect, h2Request } from '../helpers/h2.js';
import { stringify } from 'yaml';
import { createTestPki, type TestPki } from '../helpers/pki.js';
import { rewriteConfig, startTestCertgate, startRecordingUpstream, metricValue, type RunningCertgate, type RecordingUpstream } from '../helpers/certgate.js';
import { mtlsRequest, rawTlsExchange } from '../helpers/client.js';
import { waitFor } from '../helpers/wait.js';

let pki: TestPki;
let up: RecordingUpstream;
let gate: RunningCertgate;

function settings(limits: Record<string, number>): Record<string, unknown> {
  return {
    listen: '127.0.0.1:0', admin: { listen: '127.0.0.1:0' }, config_watch: false,
    tls: { bundle: pki.serverBundle.pemPath, client_ca: pki.clientCa.path },
    routes: [{ name: 'api', path_prefix: '/', upstream: up.url }],
    limits,
  };
}

async function reloadWith(body: string): Promise<Record<string, unknown>> {
  const { status, json } = await rewriteConfig(gate, body);
  assert.equal(status, 200);
  return json;
}

before(async () => {
  pki = await createTestPki();
  up = await startRecordingUpstream();
  // Start-up values a test could not wait out: a slow request is answered only after a minute.
  gate = await startTestCertgate(settings({ header_timeout_ms: 60_000, request_timeout_ms: 60_000, keepalive_timeout_ms: 5000, max_connections: 100 }));
});
after(async () => {
  await gate?.close();
  await up?.close();
  pki?.cleanup();
});

const creds = () => ({ ca: pki.root.cert, cert: pki.clients.good.pem, key: pki.clients.good.key });

test('a reload changing header/request/keep-alive timeouts and max_connections applies them on the running listener', { timeout: 30_000 }, async () => {
  // A keep-alive client: only to it does Node advertise Keep-Alive: timeout=.
  const agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
  const first = await mtlsRequest(gate.url, creds(), { path: '/x', agent });
  assert.equal(first.status, 200, first.body);
  assert.match(String(first.headers['keep-alive']), /timeout=5\b/);

  const r = await reloadWith(stringify(settings({ header_timeout_ms: 300, request_timeout_ms: 600, keepalive_timeout_ms: 9000, max_connections: 1 })));
  assert.equal(r.result, 'success', JSON.stringify(r));
  assert.equal(r.restart_to_apply, undefined, JSON.stringify(r));
  assert.match(String(r.changes), /limits changed: /);

  // keepalive_timeout_ms: the next response advertises (and keeps) the new value.
  const next = await mtlsRequest(gate.url, creds(), { path: '/x', agent });
  assert.equal(next.status, 200, next.body);
  assert.match(String(next.headers['keep-alive']), /timeout=9\b/);
  agent.destroy();

  // max_connections is 1 from here: each connection below starts once the one before has closed on the proxy's side.
  const idle = async (): Promise<void> => {
    await waitFor(async () => metricValue(await (await fetch(`${gate.adminUrl}/metrics`)).text(), 'certgate_tls_connections_open') === 0, 'earlier connections closed');
  };
  await idle();
  // header_timeout_ms: headers that never end are answered 408 under the new timeout (not after a minute).
  const u = new URL(gate.url);
  const slowHeaders = await rawTlsExchange(u.hostname, Number(u.port), creds(), 'GET /x HTTP/1.1\r\nHost: localhost\r\n');
  assert.match(slowHeaders, /^HTTP\/1\.1 408 /);
  await idle();
  // request_timeout_ms: a body that never arrives whole ends the connection under the new timeout (the request
  // was already handed on, so Node closes instead of answering); under the start-up value it would stay open a minute.
  const slowBody = await rawTlsExchange(u.hostname, Number(u.port), creds(), 'POST /x HTTP/1.1\r\nHost: localhost\r\nContent-Length: 10\r\n\r\nabc');
  assert.doesNotMatch(slowBody, /^HTTP\/1\.1 2/);

  // max_connections: 1 — with one connection open, the next is closed at accept and counted.
  const rejected = async (): Promise<number> => metricValue(await (await fetch(`${gate.adminUrl}/metrics`)).text(), 'certgate_connections_rejected_total', { reason: 'max_connections' }) ?? 0;
  await idle();
  const before = await rejected();
  const held = tls.connect({ host: u.hostname, port: Number(u.port), servername: 'localhost', ...creds() });
  try {
    await new Promise<void>((resolve, reject) => {
      held.once('secureConnect', resolve);
      held.once('error', reject);
    });
    await assert.rejects(mtlsRequest(gate.url, creds(), { path: '/x' }));
    await waitFor(async () => (await rejected()) === before + 1, 'the connection beyond max_connections is counted');
  } finally {
    held.destroy();
  }
});

test('limits.max_concurrent_streams is live for HTTP/2 sessions opened after the reload; a session already open keeps its own', async () => {
  // A PING's answer comes after the server's SETTINGS (its first frame): by then remoteSettings are the server's.
  const remoteMax = async (session: http2.ClientHttp2Session): Promise<number | undefined> => {
    await new Promise<void>((resolve, reject) => session.ping((err) => (err ? reject(err) : resolve())));
    return session.remoteSettings.maxConcurrentStreams;
  };
  // The defaults again (the test before leaves max_connections at 1).
  assert.equal((await reloadWith(stringify(settings({})))).result, 'success');
  const before = await h2Connect(gate.url, creds());
  try {
    assert.equal(await remoteMax(before), 100);
    const json = await reloadWith(stringify(settings({ max_concurrent_streams: 7 })));
    assert.equal(json.result, 'success', JSON.stringify(json));
    assert.ok(!JSON.stringify(json.restart_to_apply ?? []).includes('max_concurrent_streams'), JSON.stringify(json));
    const after = await h2Connect(gate.url, creds());
    try {
      assert.equal(await remoteMax(after), 7);
      // The older session still announces its own and serves.
      assert.equal(before.remoteSettings.maxConcurrentStreams, 100);
      assert.equal((await h2Request(before, { ':path': '/x' })).status, 200);
    } finally {
      after.close();
    }
  } finally {
    before.close();
  }
});
