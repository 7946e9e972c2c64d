/**
 * tls/reloader.ts: what an operator sees of a reload. An explicit trigger (SIGHUP: reason "signal") always
 * leaves one log line and counts every file it re-read, even when nothing changed; the periodic backstop
 * and file-watch re-reads that find nothing new stay silent and uncounted; a cluster worker (no own
 * triggers: the primary re-read first, logged and counted) does neither for the primary's forwarded
 * trigger. Real files from the test PKI, a recording logger and metrics; no server (a stand-in swap).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createTestPki, type TestPki } from '../helpers/pki.js';
import { logSink } from '../helpers/logs.js';
import { createLogger } from '../../dist/log.js';
import { loadTls } from '../../dist/tls/material.js';
import { createSessionTickets } from '../../dist/tls/context.js';
import { createReloader, type ReloadMetrics, type Reloader } from '../../dist/tls/reloader.js';
import type { TlsConfig } from '../../dist/config/types.js';

let pki: TestPki;
before(async () => {
  pki = await createTestPki();
});
after(() => pki?.cleanup());

interface Counted {
  readonly file: string;
  readonly result: string;
}

interface Rig {
  readonly reloader: Reloader;
  readonly counted: Counted[];
  readonly lines: Record<string, unknown>[];
  readonly dir: string;
  readonly bundle: string;
}

/** A reloader on copies of the test PKI's server bundle, client CA and CRL in a temp dir of the test's own. */
async function rig(t: { after(fn: () => unknown): void }, opts: { ownTriggers?: boolean } = {}): Promise<Rig> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'certgate-reloader-'));
  const bundle = path.join(dir, 'server.pem');
  const ca = path.join(dir, 'client-ca.pem');
  const crl = path.join(dir, 'crl.pem');
  fs.writeFileSync(bundle, pki.serverBundle.pem, { mode: 0o600 });
  fs.writeFileSync(ca, pki.clientCa.pem);
  fs.writeFileSync(crl, pki.crlPem);
  const tlsConfig: TlsConfig = {
    bundle, client_ca: ca, crl, client_auth: 'require', min_version: 'TLSv1.2', crl_mode: 'leaf', crl_stale: 'refuse',
    watch: false, recheck_interval_ms: 3_600_000, allow_insecure_key_permissions: false,
  };
  const counted: Counted[] = [];
  const metrics: ReloadMetrics = {
    reloads: { inc: (labels) => void counted.push({ ...labels }) },
    lastReloadSuccess: { set: () => undefined },
    certificateExpiry: { reset: () => undefined, set: () => undefined },
    crlNextUpdate: { reset: () => undefined, set: () => undefined },
  };
  const sink = logSink();
  const reloader = createReloader({
    tls: tlsConfig, listenHost: '127.0.0.1', tickets: createSessionTickets(), initial: await loadTls(tlsConfig, { listenHost: '127.0.0.1' }),
    metrics, log: createLogger({ level: 'info', destination: sink }), ...(opts.ownTriggers !== undefined && { ownTriggers: opts.ownTriggers }),
  });
  await reloader.start({ setSecureContext: () => undefined });
  t.after(async () => {
    await reloader.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  return { reloader, counted, lines: sink.lines, dir, bundle };
}

const reloadLines = (lines: readonly Record<string, unknown>[]): Record<string, unknown>[] =>
  lines.filter((l) => typeof l.msg === 'string' && /^TLS (material|reload)/.test(l.msg));

test('SIGHUP with nothing changed: one line naming the files re-read and "nothing changed"; unchanged counted once per file', async (t) => {
  const r = await rig(t);
  assert.deepEqual(await r.reloader.reload('signal'), { result: 'unchanged' });
  const lines = reloadLines(r.lines);
  assert.equal(lines.length, 1, `one line per SIGHUP; got ${JSON.stringify(r.lines)}`);
  const line = lines[0]!;
  assert.match(String(line.msg), /nothing changed/);
  assert.equal(line.reason, 'signal');
  assert.deepEqual(line.files, ['server.pem', 'client-ca.pem', 'crl.pem'], 'the files re-read, by the label the metrics use');
  assert.deepEqual(line.changed, []);
  assert.deepEqual(r.counted, [
    { file: 'server.pem', result: 'unchanged' }, { file: 'client-ca.pem', result: 'unchanged' }, { file: 'crl.pem', result: 'unchanged' },
  ]);
});

test('SIGHUP after a change: the "reloaded" line says which file changed and what was re-read', async (t) => {
  const r = await rig(t);
  const next = await pki.issueClient({ name: 'reloader-next', usage: 'server', subject: [['CN', 'localhost']], san: { dns: ['localhost'], ip: ['127.0.0.1'] } });
  fs.writeFileSync(r.bundle, next.pem, { mode: 0o600 });
  assert.equal((await r.reloader.reload('signal')).result, 'success');
  const lines = reloadLines(r.lines);
  assert.equal(lines.length, 1, JSON.stringify(r.lines));
  assert.equal(lines[0]!.msg, 'TLS material reloaded');
  assert.deepEqual(lines[0]!.changed, ['server.pem']);
  assert.deepEqual(lines[0]!.files, ['server.pem', 'client-ca.pem', 'crl.pem']);
  assert.deepEqual(r.counted, [{ file: 'all', result: 'success' }], 'a swap counts once, as before (file="all" for SIGHUP)');
});

test('the backstop re-read and a file event that finds nothing new leave no line and count nothing', async (t) => {
  const r = await rig(t);
  assert.deepEqual(await r.reloader.reload('poll'), { result: 'unchanged' });
  assert.deepEqual(await r.reloader.reload('watch', 'server.pem'), { result: 'unchanged' });
  assert.deepEqual(reloadLines(r.lines), []);
  assert.deepEqual(r.counted, []);
});

test('a SIGHUP that merges into a queued file-event run is still answered by its line and counted', async (t) => {
  const r = await rig(t);
  const first = r.reloader.reload('poll');
  const queued = r.reloader.reload('watch', 'server.pem');
  const signal = r.reloader.reload('signal');
  await Promise.all([first, queued, signal]);
  const lines = reloadLines(r.lines);
  assert.equal(lines.length, 1, JSON.stringify(r.lines));
  assert.equal(lines[0]!.reason, 'signal');
  assert.equal(r.counted.filter((c) => c.result === 'unchanged').length, 3);
});

test('a cluster worker (no own triggers) re-reading on the primary\'s word neither logs nor counts an unchanged re-read', async (t) => {
  const r = await rig(t, { ownTriggers: false });
  assert.deepEqual(await r.reloader.reload('signal'), { result: 'unchanged' });
  assert.deepEqual(reloadLines(r.lines), []);
  assert.deepEqual(r.counted, []);
});
