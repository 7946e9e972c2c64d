/**
 * The live reload's triggers on the real CLI (issue 17): SIGHUP (the config, then the TLS material — also
 * when the config is broken), `certgate reload` (exit 0 applied/unchanged, 1 refused with the reasons
 * one per line, 2 usage/connection error; the admin token), and the config file watch through a
 * Kubernetes ConfigMap volume's `..data` symlink swap.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createTestPki, type TestPki } from '../helpers/pki.js';
import { startRecordingUpstream, type RecordingUpstream } from '../helpers/certgate.js';
import { mtlsRequest } from '../helpers/client.js';
import { waitFor } from '../helpers/wait.js';
import { CLI, REPO, killServeChildren, spawnServeConfig, type ServingProcess } from '../helpers/serve.js';
import { runCommand, killRunningCommands } from '../helpers/run.js';

let pki: TestPki;
let up: RecordingUpstream;
let dir: string;
const TOKEN = 'a-reload-token-of-enough-length';

before(async () => {
  pki = await createTestPki();
  up = await startRecordingUpstream();
  dir = mkdtempSync(path.join(os.tmpdir(), 'certgate-live-'));
  writeFileSync(path.join(dir, 'admin.token'), `${TOKEN}\n`);
});
after(async () => {
  killServeChildren();
  killRunningCommands();
  await up?.close();
  pki?.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

const creds = () => ({ ca: pki.root.cert, cert: pki.clients.good.pem, key: pki.clients.good.key });

function config(cn: string, extra: Record<string, unknown> = {}): string {
  return JSON.stringify({
    listen: '127.0.0.1:0', admin: { listen: '127.0.0.1:0', token_file: path.join(dir, 'admin.token') }, workers: 1, log: { level: 'info' },
    tls: { bundle: pki.serverBundle.pemPath, client_ca: pki.clientCa.path },
    routes: [{ name: 'api', path_prefix: '/', upstream: up.url, allow: { subject_cn: [cn] } }],
    ...extra,
  });
}

const reloadCli = (args: string[]) => runCommand(process.execPath, [CLI, 'reload', ...args], { cwd: REPO, env: { PATH: process.env.PATH ?? '' }, timeoutMs: 15_000 });

async function stop(serve: ServingProcess): Promise<void> {
  serve.child.kill('SIGTERM');
  await serve.exited;
}

test('SIGHUP re-reads the config (applied live), then the TLS material; a broken config keeps the old one and the TLS files are still re-read', async () => {
  const file = path.join(dir, 'sighup.yaml');
  writeFileSync(file, config('svc-a', { config_watch: false }));
  const serve = await spawnServeConfig(file);
  try {
    assert.equal((await mtlsRequest(serve.url.href, creds(), { path: '/' })).status, 200);
    writeFileSync(file, config('nobody', { config_watch: false }));
    serve.child.kill('SIGHUP');
    await waitFor(() => serve.logs.find((l) => l.msg === 'TLS material re-read: nothing changed'), 'the TLS re-read after the config');
    const applied = serve.logs.findIndex((l) => l.msg === 'config reloaded');
    assert.ok(applied >= 0 && applied < serve.logs.findIndex((l) => l.msg === 'TLS material re-read: nothing changed'), 'config first, then TLS');
    assert.equal((await mtlsRequest(serve.url.href, creds(), { path: '/' })).status, 403);
    writeFileSync(file, 'routes: [\n');
    const tlsLines = () => serve.logs.filter((l) => l.msg === 'TLS material re-read: nothing changed').length;
    serve.child.kill('SIGHUP');
    await waitFor(() => tlsLines() === 2, 'the old config\'s TLS files re-read despite the broken config');
    const failed = serve.logs.find((l) => l.msg === 'config reload failed: the old config keeps serving');
    assert.ok(failed !== undefined && failed.problem_file === file && typeof failed.line === 'number', JSON.stringify(failed));
    assert.equal((await mtlsRequest(serve.url.href, creds(), { path: '/' })).status, 403, 'the old config keeps serving');
  } finally {
    await stop(serve);
  }
});

test('certgate reload: 2 without the admin token, 0 applied, 0 unchanged, 1 refused with the reasons one per line, 2 when nothing listens', async () => {
  const file = path.join(dir, 'cli.yaml');
  writeFileSync(file, config('svc-a', { config_watch: false }));
  const serve = await spawnServeConfig(file);
  const tokenFile = path.join(dir, 'admin.token');
  try {
    writeFileSync(file, config('nobody', { config_watch: false }));
    const noToken = await reloadCli(['--admin', serve.admin]);
    assert.equal(noToken.code, 2, noToken.stderr);
    assert.match(noToken.stderr, /401/);
    assert.equal((await mtlsRequest(serve.url.href, creds(), { path: '/' })).status, 200, 'nothing applied without the token');
    const applied = await reloadCli(['--admin', serve.admin, '--token-file', tokenFile]);
    assert.equal(applied.code, 0, applied.stderr);
    assert.match(applied.stdout, /^applied: generation 2 \(routes changed: api\)/m);
    assert.equal((await mtlsRequest(serve.url.href, creds(), { path: '/' })).status, 403);
    const unchanged = await reloadCli(['--admin', serve.admin, '--token-file', tokenFile]);
    assert.equal(unchanged.code, 0, unchanged.stderr);
    assert.match(unchanged.stdout, /^unchanged: generation 2/m);
    writeFileSync(file, `${config('svc-a', { config_watch: false }).slice(0, -1)}, "routez": []}`);
    const refused = await reloadCli(['--admin', serve.admin, '--token-file', tokenFile]);
    assert.equal(refused.code, 1, refused.stderr);
    assert.match(refused.stdout, new RegExp(`^error: ${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:1:\\d+: .*\\[CG_CONFIG_`, 'm'));
    assert.match(refused.stdout, /^refused: generation 2 keeps serving/m);
    // admin.token_file is live: a reload that names another token file puts that token in force at once.
    const newToken = path.join(dir, 'admin2.token');
    writeFileSync(newToken, 'another-reload-token-of-enough-length\n');
    writeFileSync(file, JSON.stringify({ ...JSON.parse(config('nobody', { config_watch: false })), admin: { listen: '127.0.0.1:0', token_file: newToken }, http2: false }));
    const rotated = await reloadCli(['--admin', serve.admin, '--token-file', tokenFile]);
    assert.equal(rotated.code, 0, rotated.stdout + rotated.stderr);
    assert.match(rotated.stdout, /^applied: generation 3 \(changed: admin\.token_file, http2\)/m);
    assert.match(rotated.stdout, /^warning: http2 changed: restart to apply/m);
    assert.equal((await fetch(`${serve.admin}/status.json`, { headers: { authorization: `Bearer ${TOKEN}` } })).status, 401);
    assert.equal((await fetch(`${serve.admin}/status.json`, { headers: { authorization: 'Bearer another-reload-token-of-enough-length' } })).status, 200);
  } finally {
    await stop(serve);
  }
  const gone = await reloadCli(['--admin', serve.admin, '--token-file', tokenFile]);
  assert.equal(gone.code, 2);
  assert.equal((await reloadCli([])).code, 2);
});

test('config_watch: a Kubernetes ConfigMap `..data` swap is applied without a restart', async () => {
  // The kubelet's layout: certgate.yaml -> ..data/certgate.yaml, ..data -> ..<timestamp>/, swapped by renaming a new ..data link.
  const volume = path.join(dir, 'configmap');
  mkdirSync(path.join(volume, '..v1'), { recursive: true });
  writeFileSync(path.join(volume, '..v1', 'certgate.yaml'), config('svc-a'));
  symlinkSync('..v1', path.join(volume, '..data'));
  symlinkSync('..data/certgate.yaml', path.join(volume, 'certgate.yaml'));
  const serve = await spawnServeConfig(path.join(volume, 'certgate.yaml'));
  try {
    assert.equal((await mtlsRequest(serve.url.href, creds(), { path: '/' })).status, 200);
    mkdirSync(path.join(volume, '..v2'));
    writeFileSync(path.join(volume, '..v2', 'certgate.yaml'), config('nobody'));
    symlinkSync('..v2', path.join(volume, '..data_tmp'));
    renameSync(path.join(volume, '..data_tmp'), path.join(volume, '..data'));
    rmSync(path.join(volume, '..v1'), { recursive: true });
    await waitFor(async () => (await mtlsRequest(serve.url.href, creds(), { path: '/' })).status === 403, 'the swapped config applied');
    // The line follows the swap (what is applied after it, then the log; stdout is asynchronous): waited for.
    await waitFor(() => serve.logs.some((l) => l.msg === 'config reloaded' && l.reason === 'watch'), 'the watch reload\'s log line');
  } finally {
    await stop(serve);
  }
});

test('workers: 2 — the primary validates once and hands the config to every worker; every new connection after the answer is served by the new config', async () => {
  const file = path.join(dir, 'workers.yaml');
  writeFileSync(file, config('svc-a', { workers: 2, config_watch: false }));
  const serve = await spawnServeConfig(file);
  const auth = { authorization: `Bearer ${TOKEN}` };
  try {
    for (let i = 0; i < 6; i++) assert.equal((await mtlsRequest(serve.url.href, creds(), { path: '/' })).status, 200);
    writeFileSync(file, config('nobody', { workers: 2, config_watch: false }));
    const res = await fetch(`${serve.admin}/-/reload`, { method: 'POST', headers: auth });
    const json = await res.json() as { result: string; generation: number };
    assert.equal(res.status, 200, JSON.stringify(json));
    assert.deepEqual([json.result, json.generation], ['success', 2]);
    // The answer came after every worker confirmed; their log lines (asynchronous stdout) follow.
    await waitFor(() => new Set(serve.logs.filter((l) => l.msg === 'worker applied the config' && l.generation === 2).map((l) => l.pid)).size === 2, 'both workers\' swap lines');
    // New connections land on either worker (the kernel picks): none may still serve the old allow list.
    const statuses = await Promise.all(Array.from({ length: 12 }, () => mtlsRequest(serve.url.href, creds(), { path: '/' }).then((r) => r.status)));
    assert.deepEqual([...new Set(statuses)], [403]);
    const status = await (await fetch(`${serve.admin}/status.json`, { headers: auth })).json() as { config: { generation: number } };
    assert.equal(status.config.generation, 2);
    await waitFor(() => serve.logs.some((l) => l.msg === 'request' && l.config_generation === 2), 'access lines naming generation 2');
    // A broken edit: refused once by the primary, no worker touched.
    writeFileSync(file, 'routes: [\n');
    const refused = await fetch(`${serve.admin}/-/reload`, { method: 'POST', headers: auth });
    assert.equal(refused.status, 422);
    assert.deepEqual([...new Set(await Promise.all(Array.from({ length: 6 }, () => mtlsRequest(serve.url.href, creds(), { path: '/' }).then((r) => r.status))))], [403]);
  } finally {
    await stop(serve);
  }
});
