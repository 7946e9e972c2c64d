/**
 * Hot reload under load: while concurrent clients keep requesting (half over keep-alive connections,
 * half over a fresh, fully verified connection each), the server bundle is rotated 20 times with the
 * ways files really get replaced — a Kubernetes Secret `..data` swap, an in-place rewrite, a temp file
 * renamed over it, delete + recreate. Not one request may fail, no handshake may fail on either side,
 * /readyz stays 200, and every rotation is served to new connections within the promised 2 s.
 *
 * The figures (requests, req/s, rotations, distinct serials, pickup times) are printed with
 * t.diagnostic(). Rotations wait on a condition (the new serial seen by a fresh connection), never on
 * a sleep; the only timer paces the /readyz poller.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import https from 'node:https';
import type { TLSSocket } from 'node:tls';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { listenEchoUpstream } from '../../dist/echo-upstream.js';
import { createTestPki, type TestPki, type TestCert } from '../helpers/pki.js';
import { startTestCertgate, metricValue, type RunningCertgate } from '../helpers/certgate.js';
import { waitFor } from '../helpers/wait.js';

const DAY = 86_400_000;
const ROTATIONS = 20;
const KEEPALIVE_WORKERS = 6;
const FRESH_WORKERS = 6;
/** The promised 2 s, plus 1 s of slack: the new serial is noticed by the next fresh request, on a busy event loop. */
const PICKUP_MS = 3000;
/** Rotations done, the load still stops at this bound (it never should be reached: 20 × 3 s = 60 s). */
const MAX_LOAD_MS = 90_000;

type Pattern = 'k8s-swap' | 'in-place' | 'rename' | 'delete-recreate' | 'k8s-swap-restore';
/**
 * One cycle of five. rename and delete-recreate replace the user-visible symlink with a plain file, so
 * the next k8s swap also renames the `tls.pem -> ..data/tls.pem` symlink back over it (as a Secret
 * mounted afresh would look); the k8s-swap at the start of each cycle is kubelet's swap alone.
 */
const CYCLE: readonly Pattern[] = ['k8s-swap', 'in-place', 'rename', 'delete-recreate', 'k8s-swap-restore'];

let pki: TestPki;
let whoami: { url: string; close(): Promise<void> };
let upstreamRequests = 0;
let gate: RunningCertgate;
let dir: string;

/** The Secret volume: dir/secret/tls.pem -> ..data/tls.pem, ..data -> ..<version>. */
let secret: string;
let bundle: string;
let version = 0;
let currentVersionDir: string;

function writeVersion(pem: string): string {
  const name = `..2026_11_24_21_00_00.${String(++version).padStart(9, '0')}`;
  fs.mkdirSync(path.join(secret, name));
  fs.writeFileSync(path.join(secret, name, 'tls.pem'), pem, { mode: 0o640 });
  return name;
}

function k8sSwap(pem: string, restoreLink: boolean): void {
  const previous = currentVersionDir;
  const name = writeVersion(pem);
  fs.symlinkSync(name, path.join(secret, '..data_tmp'));
  fs.renameSync(path.join(secret, '..data_tmp'), path.join(secret, '..data'));
  currentVersionDir = name;
  if (restoreLink) {
    fs.symlinkSync(path.join('..data', 'tls.pem'), `${bundle}.link`);
    fs.renameSync(`${bundle}.link`, bundle);
  }
  fs.rmSync(path.join(secret, previous), { recursive: true, force: true });
}

function rotate(pattern: Pattern, pem: string): void {
  switch (pattern) {
    case 'k8s-swap':
      assert.ok(fs.lstatSync(bundle).isSymbolicLink(), 'the k8s layout is intact for a plain ..data swap');
      k8sSwap(pem, false);
      return;
    case 'k8s-swap-restore':
      k8sSwap(pem, true);
      return;
    case 'in-place':
      fs.writeFileSync(bundle, pem); // through the symlink: the current version's file is rewritten
      return;
    case 'rename':
      fs.writeFileSync(`${bundle}.tmp`, pem, { mode: 0o600 });
      fs.renameSync(`${bundle}.tmp`, bundle);
      return;
    case 'delete-recreate':
      fs.unlinkSync(bundle);
      fs.writeFileSync(bundle, pem, { mode: 0o600 });
      return;
  }
}

before(async () => {
  pki = await createTestPki();
  const w = await listenEchoUpstream('127.0.0.1', 0);
  w.server.on('request', () => void upstreamRequests++);
  whoami = w;
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'certgate-reload-load-'));
  secret = path.join(dir, 'secret');
  fs.mkdirSync(secret);
  currentVersionDir = writeVersion(pki.serverBundle.pem);
  fs.symlinkSync(currentVersionDir, path.join(secret, '..data'));
  bundle = path.join(secret, 'tls.pem');
  fs.symlinkSync(path.join('..data', 'tls.pem'), bundle);
  const clientCa = path.join(dir, 'client-ca.pem'); // a copy: pki's folder, where leaves are issued, is not watched
  fs.writeFileSync(clientCa, pki.clientCa.pem);
  gate = await startTestCertgate({ tls: { bundle, client_ca: clientCa }, routes: [{ name: 'all', upstream: whoami.url }] });
});

after(async () => {
  await gate?.close();
  await whoami?.close();
  if (dir !== undefined) fs.rmSync(dir, { recursive: true, force: true });
  pki?.cleanup();
});

interface Outcome {
  readonly ok: boolean;
  readonly serial?: string;
  readonly localPort?: number;
  readonly handshakeError?: boolean;
  readonly detail?: string;
}

/** One GET; never rejects. `handshakeError` when the TLS connection never got established. */
function request(client: TestCert, agent: https.Agent | false, n: number): Promise<Outcome> {
  return new Promise((resolve) => {
    let established = false;
    const req = https.request({
      host: '127.0.0.1', port: gate.port, path: `/load/${n}`, servername: 'localhost',
      ca: pki.root.cert, cert: client.pem, key: client.key, agent,
    }, (res) => {
      const socket = res.socket as TLSSocket;
      const serial = socket.getPeerX509Certificate()?.serialNumber;
      const localPort = socket.localPort;
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', (err) => resolve({ ok: false, detail: `response error ${err.message}` }));
      res.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        if (res.statusCode !== 200) {
          resolve({ ok: false, detail: `status ${res.statusCode}: ${body.slice(0, 200)}` });
          return;
        }
        const echo = JSON.parse(body) as { path: string; headers: Record<string, string> };
        const right = echo.path === `/load/${n}` && echo.headers['x-client-cert-verified'] === 'SUCCESS';
        resolve({ ok: right, ...(serial !== undefined && { serial }), ...(localPort !== undefined && { localPort }), ...(!right && { detail: `wrong echo ${body.slice(0, 200)}` }) });
      });
    });
    req.on('socket', (s) => {
      if (req.reusedSocket) established = true;
      else s.once('secureConnect', () => (established = true));
    });
    req.on('error', (err: NodeJS.ErrnoException) => {
      resolve({ ok: false, handshakeError: !established, detail: `${err.code ?? ''} ${err.message}` });
    });
    req.end();
  });
}

function failureCounts(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = /^certgate_tls_handshake_failures_total\{reason="([^"]+)"\}\s+(\S+)$/.exec(line);
    if (m) out.set(m[1]!, Number(m[2]));
  }
  return out;
}

test(`${ROTATIONS} rotations under concurrent keep-alive and fresh-connection load: no request or handshake fails`, { timeout: 180_000 }, async (t) => {
  const leaves = await Promise.all(Array.from({ length: ROTATIONS }, (_, i) => pki.issueClient({
    name: `load-srv-${i}`, usage: 'server', subject: [['CN', `load-srv-${i}`]], san: { dns: ['localhost'], ip: ['127.0.0.1', '::1'] },
    notBefore: new Date(Date.now() - 5 * 60_000), notAfter: new Date(Date.now() + 20 * DAY),
  })));
  const failuresBefore = failureCounts(await gate.metricsText());
  const reloadsBefore = await gate.metricsText();

  let stop = false;
  let requests = 0;
  let keepAliveRequests = 0;
  let freshRequests = 0;
  let n = 0;
  const failures: string[] = [];
  let handshakeErrors = 0;
  /** Serial → when a fresh connection first saw it. */
  const seenFresh = new Map<string, number>();
  const keepAlivePorts: Set<number>[] = [];

  const worker = async (kind: 'keepalive' | 'fresh', index: number): Promise<void> => {
    const agent = kind === 'keepalive' ? new https.Agent({ keepAlive: true, maxSockets: 1 }) : false;
    const ports = new Set<number>();
    if (kind === 'keepalive') keepAlivePorts[index] = ports;
    const client = index % 2 === 0 ? pki.clients.good : pki.clients.direct;
    try {
      while (!stop) {
        const o = await request(client, agent, ++n);
        requests++;
        if (kind === 'keepalive') keepAliveRequests++;
        else freshRequests++;
        if (!o.ok) {
          failures.push(`${kind}#${index}: ${o.detail ?? '?'}`);
          if (o.handshakeError) handshakeErrors++;
          continue;
        }
        if (kind === 'fresh' && o.serial !== undefined && !seenFresh.has(o.serial)) seenFresh.set(o.serial, Date.now());
        if (kind === 'keepalive' && o.localPort !== undefined) ports.add(o.localPort);
      }
    } finally {
      if (agent) agent.destroy();
    }
  };

  let readyzChecks = 0;
  const readyzBad: string[] = [];
  const readyzTimer = setInterval(() => {
    fetch(`${gate.adminUrl}/readyz`).then((r) => {
      readyzChecks++;
      if (r.status !== 200) readyzBad.push(String(r.status));
    }, (err: Error) => readyzBad.push(err.message));
  }, 25);

  const started = Date.now();
  const workers = [
    ...Array.from({ length: KEEPALIVE_WORKERS }, (_, i) => worker('keepalive', i)),
    ...Array.from({ length: FRESH_WORKERS }, (_, i) => worker('fresh', i)),
  ];
  const pickups: { pattern: Pattern; ms: number }[] = [];
  try {
    await waitFor(() => seenFresh.has(pki.serverBundle.x509.serialNumber), 'the load to start', PICKUP_MS);
    for (let i = 0; i < ROTATIONS && Date.now() - started < MAX_LOAD_MS; i++) {
      const pattern = CYCLE[i % CYCLE.length]!;
      const serial = leaves[i]!.x509.serialNumber;
      const t0 = Date.now();
      rotate(pattern, leaves[i]!.pem);
      await waitFor(() => seenFresh.has(serial) || failures.length > 0,
        `rotation ${i + 1} (${pattern}) to be served to fresh connections`, PICKUP_MS);
      if (failures.length > 0) break;
      pickups.push({ pattern, ms: (seenFresh.get(serial) ?? Date.now()) - t0 });
    }
  } finally {
    stop = true;
    await Promise.all(workers);
    clearInterval(readyzTimer);
  }
  const elapsed = (Date.now() - started) / 1000;
  const text = await gate.metricsText();
  const failuresAfter = failureCounts(text);
  const sorted = pickups.map((p) => p.ms).sort((a, b) => a - b);
  const reloadDelta = (result: string): number => {
    const sum = (s: string): number => s.split('\n').filter((l) => l.startsWith('certgate_reloads_total{') && l.includes(`result="${result}"`))
      .reduce((acc, l) => acc + Number(l.split(/\s+/).at(-1)), 0);
    return sum(text) - sum(reloadsBefore);
  };

  t.diagnostic(`requests: ${requests} in ${elapsed.toFixed(1)} s = ${Math.round(requests / elapsed)} req/s ` +
    `(keep-alive ${keepAliveRequests}, fresh connections ${freshRequests}; upstream saw ${upstreamRequests})`);
  t.diagnostic(`rotations: ${pickups.length} (${CYCLE.join(', ')} × ${ROTATIONS / CYCLE.length}); distinct serials seen by fresh connections: ${seenFresh.size}`);
  t.diagnostic(`pickup after the write (ms): median ${sorted[Math.floor(sorted.length / 2)] ?? '-'}, max ${sorted.at(-1) ?? '-'}; ` +
    `by pattern ${pickups.map((p) => `${p.pattern}:${p.ms}`).join(' ')}`);
  t.diagnostic(`reloads: ${reloadDelta('success')} success, ${reloadDelta('failure')} failure; keep-alive connections per worker: ` +
    `${keepAlivePorts.map((s) => s.size).join(',')}; /readyz checks: ${readyzChecks}, not 200: ${readyzBad.length}`);

  assert.deepEqual(failures.slice(0, 10), [], `${failures.length} failed requests (first 10 shown)`);
  assert.equal(handshakeErrors, 0, 'no client-side handshake error');
  assert.deepEqual(Object.fromEntries(failuresAfter), Object.fromEntries(failuresBefore), 'certgate_tls_handshake_failures_total unchanged for every reason');
  assert.equal(pickups.length, ROTATIONS, `all ${ROTATIONS} rotations done`);
  assert.ok(seenFresh.size >= 18, `at least 18 distinct serials seen by fresh connections (saw ${seenFresh.size})`);
  assert.deepEqual(readyzBad, [], '/readyz stayed 200 throughout');
  assert.ok(readyzChecks > 0);
  for (const [i, ports] of keepAlivePorts.entries()) {
    assert.equal(ports.size, 1, `keep-alive worker ${i} kept its one established connection across every swap (ports ${[...ports].join(',')})`);
  }
  assert.equal(upstreamRequests, requests, 'every request reached the upstream exactly once');
  assert.notEqual(metricValue(text, 'certgate_tls_connections_open'), undefined);
});
