/**
 * Live configuration (issue 17): the tls file paths are live. A reload naming another bundle reads and
 * validates it before the swap and the next handshake presents it; a reload naming an unusable PEM fails as
 * a whole (the route edit in the same file is not applied either, the old certificate keeps serving); after
 * a path change the file watch follows the new files (a rotation written to the new path is picked up).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import tls from 'node:tls';
import { copyFileSync, writeFileSync, renameSync } from 'node:fs';
import path from 'node:path';
import { stringify } from 'yaml';
import { createTestPki, type TestPki, type TestCert } from '../helpers/pki.js';
import { rewriteConfig, startTestCertgate, startRecordingUpstream, metricValue, type RunningCertgate, type RecordingUpstream } from '../helpers/certgate.js';
import { mtlsRequest } from '../helpers/client.js';
import { waitFor } from '../helpers/wait.js';

let pki: TestPki;
let up: RecordingUpstream;
let gate: RunningCertgate;
let second: TestCert;
let third: TestCert;

function settings(bundle: string, routeName = 'api'): string {
  return stringify({
    listen: '127.0.0.1:0', admin: { listen: '127.0.0.1:0' }, config_watch: false,
    tls: { bundle, client_ca: pki.clientCa.path },
    routes: [{ name: routeName, path_prefix: '/', upstream: up.url }],
  });
}

/** The serial of the certificate the next handshake presents. */
function servedSerial(): Promise<string> {
  const u = new URL(gate.url);
  return new Promise((resolve, reject) => {
    const socket = tls.connect({
      host: u.hostname, port: Number(u.port), servername: 'localhost', ca: pki.root.cert,
      cert: pki.clients.good.pem, key: pki.clients.good.key,
    }, () => {
      const serial = socket.getPeerCertificate().serialNumber.toUpperCase();
      socket.end();
      resolve(serial);
    });
    socket.once('error', reject);
  });
}

const serialOf = (c: TestCert): string => c.x509.serialNumber.toUpperCase();

before(async () => {
  pki = await createTestPki();
  up = await startRecordingUpstream();
  const server = { usage: 'server' as const, subject: [['CN', 'localhost']] as [string, string][], san: { dns: ['localhost'], ip: ['127.0.0.1'] } };
  second = await pki.issueClient({ name: 'live-second', ...server });
  third = await pki.issueClient({ name: 'live-third', ...server });
  gate = await startTestCertgate({
    listen: '127.0.0.1:0', admin: { listen: '127.0.0.1:0' }, config_watch: false,
    tls: { bundle: pki.serverBundle.pemPath, client_ca: pki.clientCa.path },
    routes: [{ name: 'api', path_prefix: '/', upstream: up.url }],
  });
});
after(async () => {
  await gate?.close();
  await up?.close();
  pki?.cleanup();
});

test('a reload naming an unusable bundle fails as a whole: the old certificate and the old routes keep serving', async () => {
  const broken = path.join(pki.dir, 'broken-bundle.pem');
  writeFileSync(broken, '-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n');
  const r = await rewriteConfig(gate, settings(broken, 'renamed'));
  assert.equal(r.status, 422, JSON.stringify(r.json));
  assert.equal(r.json.result, 'failure');
  assert.ok((r.json.problems as { file?: string }[]).some((p) => p.file === broken), JSON.stringify(r.json.problems));
  assert.equal(await servedSerial(), serialOf(pki.serverBundle));
  assert.equal(r.json.generation, 1);
  const status = await (await fetch(`${gate.adminUrl}/status.json`)).json() as { routes: { name: string }[] };
  assert.deepEqual(status.routes.map((x) => x.name), ['api']);
});

test('a reload naming another bundle: the next handshake presents it, without a restart', async () => {
  const r = await rewriteConfig(gate, settings(second.pemPath));
  assert.equal(r.json.result, 'success', JSON.stringify(r.json));
  assert.equal(r.json.restart_to_apply, undefined, 'tls.bundle is live');
  assert.equal(await servedSerial(), serialOf(second));
  const ok = await mtlsRequest(gate.url, { ca: pki.root.cert, cert: pki.clients.good.pem, key: pki.clients.good.key }, { path: '/x' });
  assert.equal(ok.status, 200, ok.body);
  const m = await gate.metricsText();
  assert.equal(metricValue(m, 'certgate_config_generation'), 2);
});

test('after a path change the watch follows the new file: a rotation written there is served', async () => {
  // A watched copy: config_watch is off, tls.watch (default on) watches the bundle's folder.
  const live = path.join(pki.dir, 'watched', 'bundle.pem');
  const { mkdirSync } = await import('node:fs');
  mkdirSync(path.dirname(live), { recursive: true });
  copyFileSync(second.pemPath, live);
  const r = await rewriteConfig(gate, settings(live));
  assert.equal(r.json.result, 'success', JSON.stringify(r.json));
  assert.equal(await servedSerial(), serialOf(second));
  writeFileSync(`${live}.tmp`, third.pem, { mode: 0o600 });
  renameSync(`${live}.tmp`, live);
  await waitFor(async () => (await servedSerial()) === serialOf(third), 'the rotated certificate at the new path served', 10_000);
});

test('a client CA removed by a tls.client_ca path change: the client on an open keep-alive connection is refused on its next request', async () => {
  const https = await import('node:https');
  const otherOnly = path.join(pki.dir, 'other-root-only.pem');
  writeFileSync(otherOnly, pki.otherRoot.cert);
  const agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
  const c = { ca: pki.root.cert, cert: pki.clients.good.pem, key: pki.clients.good.key };
  try {
    const first = await mtlsRequest(gate.url, c, { path: '/x', agent });
    assert.equal(first.status, 200, first.body);
    const body = stringify({
      listen: '127.0.0.1:0', admin: { listen: '127.0.0.1:0' }, config_watch: false,
      tls: { bundle: second.pemPath, client_ca: otherOnly },
      routes: [{ name: 'api', path_prefix: '/', upstream: up.url }],
    });
    const r = await rewriteConfig(gate, body);
    assert.equal(r.json.result, 'success', JSON.stringify(r.json));
    const sockets = new Set<unknown>();
    const next = await mtlsRequest(gate.url, c, { path: '/x', agent });
    for (const list of Object.values(agent.sockets)) for (const s of list ?? []) sockets.add(s);
    for (const list of Object.values(agent.freeSockets)) for (const s of list ?? []) sockets.add(s);
    assert.notEqual(next.status, 200, next.body);
    assert.match(next.body, /certificate|untrusted|issuer/i);
    assert.ok(sockets.size <= 1, 'the same connection (no reconnect)');
  } finally {
    agent.destroy();
  }
});
