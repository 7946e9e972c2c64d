/**
 * Live configuration (issue 17): `listen` and `admin.listen` change live. The new address is bound first;
 * the old listener closes only once the new one listens, and its connections finish the requests they
 * have in flight (then close, as on shutdown). A bind failure (the address in use) fails the whole reload:
 * the old config keeps serving, and the answer names the key, the address and the OS error.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import https from 'node:https';
import net from 'node:net';
import { freePort } from '../helpers/ports.js';
import type { AddressInfo } from 'node:net';
import { stringify } from 'yaml';
import { createTestPki, type TestPki } from '../helpers/pki.js';
import { rewriteConfig, startTestCertgate, startRecordingUpstream, metricValue, type RunningCertgate, type RecordingUpstream } from '../helpers/certgate.js';
import { mtlsRequest } from '../helpers/client.js';
import { waitFor } from '../helpers/wait.js';
import { h2Connect, h2Request } from '../helpers/h2.js';

let pki: TestPki;
let up: RecordingUpstream;
let gate: RunningCertgate;
const held: (() => void)[] = [];

function settings(listen: string, admin: string, routeName = 'api'): string {
  return stringify({
    listen, admin: { listen: admin }, config_watch: false,
    tls: { bundle: pki.serverBundle.pemPath, client_ca: pki.clientCa.path },
    routes: [{ name: routeName, path_prefix: '/', upstream: up.url }],
  });
}


function connectRefused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(false);
    });
    s.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ECONNREFUSED'));
  });
}

before(async () => {
  pki = await createTestPki();
  up = await startRecordingUpstream((req, res) => {
    if (req.url !== '/hold') return false;
    held.push(() => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('held');
    });
    return true;
  });
  gate = await startTestCertgate({
    listen: '127.0.0.1:0', admin: { listen: '127.0.0.1:0' }, config_watch: false,
    tls: { bundle: pki.serverBundle.pemPath, client_ca: pki.clientCa.path },
    routes: [{ name: 'api', path_prefix: '/', upstream: up.url }],
  });
});
after(async () => {
  for (const release of held) release();
  await gate?.close();
  await up?.close();
  pki?.cleanup();
});

const creds = () => ({ ca: pki.root.cert, cert: pki.clients.good.pem, key: pki.clients.good.key });

test('a listen address in use fails the whole reload: the answer names listen, the address and EADDRINUSE; nothing changed', async () => {
  const blocker = net.createServer();
  await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
  const taken = (blocker.address() as AddressInfo).port;
  try {
    const failuresBefore = metricValue(await gate.metricsText(), 'certgate_config_reloads_total', { result: 'failure' }) ?? 0;
    const r = await rewriteConfig(gate, settings(`127.0.0.1:${taken}`, '127.0.0.1:0', 'renamed'));
    assert.equal(r.status, 422, JSON.stringify(r.json));
    const problems = r.json.problems as { code: string; message: string }[];
    assert.equal(problems[0]?.code, 'CG_LISTEN');
    assert.match(problems[0]!.message, new RegExp(`^listen 127\\.0\\.0\\.1:${taken}: EADDRINUSE`));
    assert.equal(r.json.generation, 1);
    // The route rename in the same edit did not apply; the old address still serves.
    const status = await (await fetch(`${gate.adminUrl}/status.json`)).json() as { routes: { name: string }[] };
    assert.deepEqual(status.routes.map((x) => x.name), ['api']);
    const ok = await mtlsRequest(gate.app.url, creds(), { path: '/x' });
    assert.equal(ok.status, 200, ok.body);
    assert.equal(metricValue(await gate.metricsText(), 'certgate_config_reloads_total', { result: 'failure' }), failuresBefore + 1);
  } finally {
    await new Promise<void>((resolve) => blocker.close(() => resolve()));
  }
});

test('listen moves live: the new address serves, the old one refuses new connections, a request in flight on it finishes and its connection closes', async () => {
  const oldUrl = gate.app.url;
  const oldPort = Number(new URL(oldUrl).port);
  const agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
  try {
    const inFlight = mtlsRequest(oldUrl, creds(), { path: '/hold', agent });
    await waitFor(() => held.length === 1, 'the slow request reached the upstream');
    const port = await freePort();
    const r = await rewriteConfig(gate, settings(`127.0.0.1:${port}`, '127.0.0.1:0'));
    assert.equal(r.json.result, 'success', JSON.stringify(r.json));
    assert.equal(r.json.restart_to_apply, undefined, 'listen is live');
    assert.equal(gate.app.url, `https://127.0.0.1:${port}`);
    const fresh = await mtlsRequest(gate.app.url, creds(), { path: '/new' });
    assert.equal(fresh.status, 200, fresh.body);
    assert.ok(await connectRefused(oldPort), 'the old address accepts no new connection');
    held.shift()!();
    const slow = await inFlight;
    assert.equal(slow.status, 200, slow.body);
    assert.equal(slow.body, 'held');
    assert.equal(slow.headers.connection, 'close', 'the drained connection closes after its request');
  } finally {
    agent.destroy();
  }
});

test('admin.listen moves live: the reload is answered, the new admin address serves, the old one refuses', async () => {
  const oldAdmin = gate.app.adminUrl;
  const port = await freePort();
  const r = await rewriteConfig(gate, settings(new URL(gate.app.url).host, `127.0.0.1:${port}`));
  assert.equal(r.json.result, 'success', JSON.stringify(r.json));
  assert.equal(gate.app.adminUrl, `http://127.0.0.1:${port}`);
  const res = await fetch(`${gate.app.adminUrl}/status.json`);
  assert.equal(res.status, 200);
  await waitFor(() => connectRefused(Number(new URL(oldAdmin).port)), 'the old admin address closed');
});

test('listen moves live with an HTTP/2 session open on the old address: it gets GOAWAY, its stream in flight finishes', async () => {
  const session = await h2Connect(gate.app.url, creds());
  try {
    const goaway = new Promise<void>((resolve) => session.once('goaway', () => resolve()));
    const inFlight = h2Request(session, { ':path': '/hold' });
    await waitFor(() => held.length === 1, 'the HTTP/2 stream reached the upstream');
    const port = await freePort();
    const adminAt = new URL(gate.app.adminUrl).host;
    const res = await rewriteAt(settings(`127.0.0.1:${port}`, adminAt));
    assert.equal(res.result, 'success', JSON.stringify(res));
    await goaway;
    held.shift()!();
    const slow = await inFlight;
    assert.equal(slow.status, 200, slow.body);
    assert.equal(slow.body, 'held');
    const fresh = await mtlsRequest(gate.app.url, creds(), { path: '/after' });
    assert.equal(fresh.status, 200, fresh.body);
  } finally {
    session.close();
  }
});

/** rewriteConfig against the admin listener where it is now (it moved in the test before). */
async function rewriteAt(body: string): Promise<Record<string, unknown>> {
  const { writeFileSync, renameSync } = await import('node:fs');
  writeFileSync(`${gate.config.file}.tmp`, body);
  renameSync(`${gate.config.file}.tmp`, gate.config.file);
  const res = await fetch(`${gate.app.adminUrl}/-/reload`, { method: 'POST' });
  return await res.json() as Record<string, unknown>;
}
