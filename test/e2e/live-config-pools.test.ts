/**
 * Live configuration (issue 17): upstream pools across a reload. An upstream the new config builds exactly
 * as before keeps its pooled (kept-alive) connections — the upstream sees no new connection after a
 * reload that changes only an allow list; a changed upstream (here its timeout_ms) gets a new pool, and the
 * pool no longer used closes its connections once the last request holding the old generation has ended.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { stringify } from 'yaml';
import { createTestPki, type TestPki } from '../helpers/pki.js';
import { rewriteConfig, startTestCertgate, type RunningCertgate } from '../helpers/certgate.js';
import { mtlsRequest } from '../helpers/client.js';
import { waitFor } from '../helpers/wait.js';

let pki: TestPki;
let gate: RunningCertgate;
let upstream: http.Server;
let upstreamUrl: string;
/** Every TCP connection the upstream accepted, and which of them are still open. */
const accepted: Socket[] = [];
const open = new Set<Socket>();

function settings(route: Record<string, unknown>): string {
  return stringify({
    listen: '127.0.0.1:0', admin: { listen: '127.0.0.1:0' }, config_watch: false,
    tls: { bundle: pki.serverBundle.pemPath, client_ca: pki.clientCa.path },
    routes: [{ name: 'api', path_prefix: '/', upstream: upstreamUrl, ...route }],
  });
}

before(async () => {
  pki = await createTestPki();
  upstream = http.createServer({ keepAliveTimeout: 60_000 }, (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end('ok');
  });
  upstream.on('connection', (socket: Socket) => {
    accepted.push(socket);
    open.add(socket);
    socket.once('close', () => open.delete(socket));
  });
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
  upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
  gate = await startTestCertgate({
    listen: '127.0.0.1:0', admin: { listen: '127.0.0.1:0' }, config_watch: false,
    tls: { bundle: pki.serverBundle.pemPath, client_ca: pki.clientCa.path },
    routes: [{ name: 'api', path_prefix: '/', upstream: upstreamUrl, allow: { subject_cn: ['svc-a'] } }],
  });
});
after(async () => {
  await gate?.close();
  upstream?.closeAllConnections();
  await new Promise<void>((resolve) => (upstream ? upstream.close(() => resolve()) : resolve()));
  pki?.cleanup();
});

const creds = () => ({ ca: pki.root.cert, cert: pki.clients.good.pem, key: pki.clients.good.key });

test('a reload that changes only an allow list keeps the upstream pool: the kept-alive upstream connection serves on', async () => {
  const first = await mtlsRequest(gate.url, creds(), { path: '/one' });
  assert.equal(first.status, 200, first.body);
  assert.equal(accepted.length, 1);
  const r = await rewriteConfig(gate, settings({ allow: { subject_cn: ['svc-a', 'svc-b'] } }));
  assert.equal(r.json.result, 'success', JSON.stringify(r.json));
  const second = await mtlsRequest(gate.url, creds(), { path: '/two' });
  assert.equal(second.status, 200, second.body);
  assert.equal(accepted.length, 1, 'the second request reused the pooled upstream connection (no new connection)');
  assert.equal(open.size, 1, 'the pooled connection is still open');
});

test('a changed upstream (timeout_ms) gets a new pool; the old pool closes its connections once unused', async () => {
  const before = accepted.length;
  const kept = accepted[accepted.length - 1]!;
  const r = await rewriteConfig(gate, settings({ allow: { subject_cn: ['svc-a', 'svc-b'] }, timeout_ms: 20_000 }));
  assert.equal(r.json.result, 'success', JSON.stringify(r.json));
  const next = await mtlsRequest(gate.url, creds(), { path: '/three' });
  assert.equal(next.status, 200, next.body);
  assert.equal(accepted.length, before + 1, 'the new pool opened its own connection');
  // Nothing holds the old generation: its pool is destroyed, and the upstream sees its connection close.
  await waitFor(() => !open.has(kept), 'the old pool\'s connection closed');
  assert.equal(open.size, 1);
});
