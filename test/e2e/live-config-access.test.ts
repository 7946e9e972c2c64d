/**
 * Live configuration (issue 17): log.access is live — a reload turning it on makes the next request's
 * access line appear (and turning it off stops them), without a restart and without "restart to apply".
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { stringify } from 'yaml';
import { createTestPki, type TestPki } from '../helpers/pki.js';
import { rewriteConfig, startTestCertgate, startRecordingUpstream, type RunningCertgate, type RecordingUpstream } from '../helpers/certgate.js';
import { mtlsRequest } from '../helpers/client.js';
import { waitFor } from '../helpers/wait.js';

let pki: TestPki;
let up: RecordingUpstream;
let gate: RunningCertgate;

function settings(access: boolean): Record<string, unknown> {
  return {
    listen: '127.0.0.1:0', admin: { listen: '127.0.0.1:0' }, config_watch: false,
    tls: { bundle: pki.serverBundle.pemPath, client_ca: pki.clientCa.path },
    routes: [{ name: 'api', path_prefix: '/', upstream: up.url }],
    log: { access },
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
  gate = await startTestCertgate(settings(false));
});
after(async () => {
  await gate?.close();
  await up?.close();
  pki?.cleanup();
});

const creds = () => ({ ca: pki.root.cert, cert: pki.clients.good.pem, key: pki.clients.good.key });
const accessLine = (id: string) => gate.logs.lines.find((l) => l.msg === 'request' && l.request_id === id);

test('a reload turning log.access on writes the next request\'s access line; turning it off stops them', async () => {
  const quiet = await mtlsRequest(gate.url, creds(), { path: '/one', headers: { 'x-request-id': 'before-reload' } });
  assert.equal(quiet.status, 200, quiet.body);

  const on = await reloadWith(stringify(settings(true)));
  assert.equal(on.result, 'success', JSON.stringify(on));
  assert.equal(on.restart_to_apply, undefined, JSON.stringify(on));
  const logged = await mtlsRequest(gate.url, creds(), { path: '/two', headers: { 'x-request-id': 'access-on' } });
  assert.equal(logged.status, 200, logged.body);
  const line = await waitFor(() => accessLine('access-on'), 'the access line of the request after the reload');
  assert.equal(line.config_generation, 2);
  // The request before the reload wrote none (its response had closed by then).
  assert.equal(accessLine('before-reload'), undefined);

  const off = await reloadWith(stringify(settings(false)));
  assert.equal(off.result, 'success', JSON.stringify(off));
  await mtlsRequest(gate.url, creds(), { path: '/three', headers: { 'x-request-id': 'access-off' } });
  // A later request that is logged shows the order: the one after turning it off wrote nothing.
  const on2 = await reloadWith(stringify({ ...settings(true), whoami_path: '/-/whoami' }));
  assert.equal(on2.result, 'success', JSON.stringify(on2));
  await mtlsRequest(gate.url, creds(), { path: '/four', headers: { 'x-request-id': 'access-on-again' } });
  await waitFor(() => accessLine('access-on-again'), 'the access line after turning it on again');
  assert.equal(accessLine('access-off'), undefined);
});
