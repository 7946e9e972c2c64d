/**
 * Live configuration (issue 17): admin.allowed_hosts and admin.clients_max are live — after a reload the
 * admin listener answers a newly allowed Host name (and refuses a removed one with 421), and /clients keeps
 * at most the new bound (a smaller one evicts the least recently connected at once).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { stringify } from 'yaml';
import { createTestPki, type TestPki } from '../helpers/pki.js';
import { rewriteConfig, startTestCertgate, startRecordingUpstream, type RunningCertgate, type RecordingUpstream } from '../helpers/certgate.js';
import { mtlsRequest } from '../helpers/client.js';

let pki: TestPki;
let up: RecordingUpstream;
let gate: RunningCertgate;

function settings(admin: Record<string, unknown>): Record<string, unknown> {
  return {
    listen: '127.0.0.1:0', admin: { listen: '127.0.0.1:0', ...admin }, config_watch: false,
    tls: { bundle: pki.serverBundle.pemPath, client_ca: pki.clientCa.path },
    routes: [{ name: 'api', path_prefix: '/', upstream: up.url }],
  };
}

async function reloadWith(body: string): Promise<Record<string, unknown>> {
  const { status, json } = await rewriteConfig(gate, body);
  assert.equal(status, 200);
  return json;
}

/** GET on the admin listener with this Host header (fetch does not let a caller choose it). */
function adminGet(path: string, host: string): Promise<{ status: number; body: string }> {
  const u = new URL(gate.adminUrl);
  return new Promise((resolve, reject) => {
    const req = http.get({ host: u.hostname, port: u.port, path, headers: { host }, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
  });
}

before(async () => {
  pki = await createTestPki();
  up = await startRecordingUpstream();
  gate = await startTestCertgate(settings({ allowed_hosts: ['old-admin.example'] }));
});
after(async () => {
  await gate?.close();
  await up?.close();
  pki?.cleanup();
});

const clientsCount = async (): Promise<number> => ((await (await fetch(`${gate.adminUrl}/clients`)).json()) as { count: number }).count;

test('a reload changing admin.allowed_hosts: the new name is answered, the removed one gets 421, no restart', async () => {
  assert.equal((await adminGet('/healthz', 'old-admin.example')).status, 200);
  const refused = await adminGet('/healthz', 'new-admin.example');
  assert.equal(refused.status, 421, refused.body);
  const r = await reloadWith(stringify(settings({ allowed_hosts: ['new-admin.example'] })));
  assert.equal(r.result, 'success', JSON.stringify(r));
  assert.equal(r.restart_to_apply, undefined, JSON.stringify(r));
  assert.equal((await adminGet('/healthz', 'new-admin.example')).status, 200);
  const gone = await adminGet('/healthz', 'old-admin.example');
  assert.equal(gone.status, 421, gone.body);
  assert.equal(JSON.parse(gone.body).reason, 'host_not_allowed');
});

test('a reload lowering admin.clients_max: /clients keeps the new bound at once, status.json shows it', async () => {
  for (const c of [pki.clients.good, pki.clients.direct]) {
    const res = await mtlsRequest(gate.url, { ca: pki.root.cert, cert: c.pem, key: c.key }, { path: '/x' });
    assert.equal(res.status, 200, res.body);
  }
  assert.equal(await clientsCount(), 2);
  const r = await reloadWith(stringify(settings({ allowed_hosts: ['new-admin.example'], clients_max: 1 })));
  assert.equal(r.result, 'success', JSON.stringify(r));
  assert.equal(r.restart_to_apply, undefined, JSON.stringify(r));
  assert.equal(await clientsCount(), 1);
  const status = await (await fetch(`${gate.adminUrl}/status.json`)).json() as { admin: { clients_max: number } };
  assert.equal(status.admin.clients_max, 1);
});
