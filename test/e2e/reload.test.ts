/**
 * Hot reload of TLS material ("Hot reload of TLS material"), end to end: real files in a temp dir of
 * each test's own (pki's files are never rotated), the product's real watchers, real TLS clients on
 * 127.0.0.1 with verification ON. The served leaf is read from a fresh connection's peer certificate.
 *
 * - every way a file gets replaced (in place with a half-written moment, temp + rename, delete +
 *   recreate, the Kubernetes Secret `..data` swap, cert/key written one after the other) is picked up
 *   within the promised 2 s (also a change made as soon as start-up resolved), and a burst settles
 *   into one reload;
 * - bad material never replaces good: the old keeps serving, the failure is logged and counted, and
 *   the next good write is picked up;
 * - client_ca / crl changes reach new handshakes AND established keep-alive connections (400 with the
 *   reason, then close) whose client is no longer trusted — and only those: adding a CA or dropping an
 *   intermediate a client sends itself leaves its connection alone; a session ticket from before a CRL
 *   change does not get a revoked client back in;
 * - in-flight requests and established connections survive a server certificate swap;
 * - app.reload() and, in `certgate serve`, SIGHUP reload with the same validation (tls.watch: false).
 *
 * Waits are on conditions (waitFor), never sleeps. Each test starts its own certgate: served material,
 * counters and trust are per-instance state that would leak between tests.
 */
import { test, before, after, describe, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import https from 'node:https';
import tls, { type TLSSocket } from 'node:tls';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import type { IncomingHttpHeaders, ServerResponse } from 'node:http';
import { createTestPki, type TestPki, type TestCert } from '../helpers/pki.js';
import { startTestCertgate, startRecordingUpstream, metricValue, type RunningCertgate, type RecordingUpstream } from '../helpers/certgate.js';
import { waitFor } from '../helpers/wait.js';
import { CLI, REPO, spawnServeConfig, type ServingProcess } from '../helpers/serve.js';
import { runCommand } from '../helpers/run.js';
import { createCrl, crlToPem, importSigningKey, parseCert } from '../../dist/pki/x509.js';
import { SENT_CHAIN_EXPOSED } from '../../dist/identity/identity.js';

const DAY = 86_400_000;
/**
 * The contract promises that new handshakes use new material within 2 s of a change. Every poll of
 * waitFor opens a fresh TLS connection (a few ms, more on a machine running test files in parallel),
 * so the bound is the promised 2 s plus 1 s of slack for the polling itself — not a looser promise.
 */
const PICKUP_MS = 3000;

let pki: TestPki;
let upstream: RecordingUpstream;
/** Upstream answers held back by requests to /hold/...: the test ends them. */
const held: ServerResponse[] = [];

before(async () => {
  pki = await createTestPki();
  upstream = await startRecordingUpstream((req, res) => {
    if (!req.url?.startsWith('/hold')) return false;
    held.push(res);
    return true;
  });
});
after(async () => {
  await upstream?.close();
  pki?.cleanup();
});

// ---- clients --------------------------------------------------------------------------------------

interface Sent {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
  json(): Record<string, unknown>;
  /** The client side port of the TLS connection that carried the request. */
  readonly localPort: number;
  /** The agent reused an established connection for this request. */
  readonly reusedSocket: boolean;
  /** The server leaf's serial as this connection saw it (uppercase hex). */
  readonly serial: string;
}

interface SendOptions {
  readonly agent?: https.Agent;
  readonly path?: string;
  /** Send the client leaf alone, without its intermediate. */
  readonly leafOnly?: boolean;
}

/** One HTTPS request with a client certificate, the server verified against the test root. */
function send(url: string, client: TestCert, opts: SendOptions = {}): Promise<Sent> {
  const u = new URL(opts.path ?? '/', url);
  return new Promise((resolve, reject) => {
    const req = https.request({
      host: u.hostname, port: u.port, path: u.pathname, method: 'GET', servername: 'localhost',
      ca: pki.root.cert, cert: opts.leafOnly ? client.cert : client.pem, key: client.key,
      agent: opts.agent ?? false,
    }, (res) => {
      const socket = res.socket as TLSSocket;
      const localPort = socket.localPort ?? 0;
      const serial = socket.getPeerX509Certificate()?.serialNumber ?? '';
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        resolve({
          status: res.statusCode ?? 0, headers: res.headers, body, localPort, serial, reusedSocket: req.reusedSocket,
          json: () => JSON.parse(body) as Record<string, unknown>,
        });
      });
    });
    req.on('error', reject);
    req.end();
  });
}

/** The serial of the leaf the server presents to a NEW connection (a full, verified handshake). */
async function servedSerial(gate: { url: string }): Promise<string> {
  const r = await send(gate.url, pki.clients.good, { path: '/probe' });
  assert.equal(r.status, 200, `the probe request must be served: ${r.body}`);
  return r.serial;
}

/** Like servedSerial, but a handshake or request failure is returned, not thrown. */
async function servedOrError(gate: { url: string }): Promise<string> {
  try {
    return await servedSerial(gate);
  } catch (err) {
    return `ERROR ${(err as NodeJS.ErrnoException).code ?? ''} ${(err as Error).message}`;
  }
}

/** Waits until new connections see `serial`; returns how long that took after `since`. */
async function waitForSerial(gate: { url: string }, serial: string, what: string, since = Date.now()): Promise<number> {
  await waitFor(async () => (await servedSerial(gate)) === serial, `new connections to be served ${what} (serial ${serial})`, PICKUP_MS);
  return Date.now() - since;
}

interface Exchange {
  readonly status: number;
  readonly body: string;
  readonly reused: boolean;
  readonly session?: Buffer;
}

/** One HTTP/1.1 request over tls.connect, optionally resuming `session`; returns the newest session ticket. */
function tlsExchange(port: number, client: TestCert, path: string, session?: Buffer): Promise<Exchange> {
  return new Promise((resolve, reject) => {
    let latest: Buffer | undefined;
    let reused = false;
    const chunks: Buffer[] = [];
    const socket = tls.connect({
      host: '127.0.0.1', port, servername: 'localhost', ca: pki.root.cert, cert: client.pem, key: client.key,
      ...(session !== undefined && { session }),
    }, () => {
      reused = socket.isSessionReused();
      socket.write(`GET ${path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`);
    });
    socket.on('session', (s: Buffer) => (latest = s));
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', reject);
    socket.on('close', () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(raw)?.[1] ?? 0);
      resolve({ status, body: raw.slice(raw.indexOf('\r\n\r\n') + 4), reused, ...(latest !== undefined && { session: latest }) });
    });
  });
}

// ---- metrics and logs -------------------------------------------------------------------------------

interface Sample {
  readonly labels: Record<string, string>;
  readonly value: number;
}

/** Every sample of one metric in Prometheus text. */
function samples(text: string, name: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    const m = /^([^{\s]+)(\{([^}]*)\})?\s+(\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const labels = Object.fromEntries([...(m[3] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1]!, x[2]!]));
    out.push({ labels, value: Number(m[4]) });
  }
  return out;
}

function reloads(text: string, file: string, result: 'success' | 'failure'): number {
  return metricValue(text, 'certgate_reloads_total', { file, result }) ?? 0;
}

/** Every certgate_reloads_total sample of one result, whatever its file label. */
function reloadsAnyFile(text: string, result: 'success' | 'failure'): number {
  return samples(text, 'certgate_reloads_total').filter((s) => s.labels.result === result).reduce((sum, s) => sum + s.value, 0);
}

interface Counts {
  /** certgate_reloads_total{file=<the file>} */
  readonly success: number;
  readonly failure: number;
  /** Summed over every file label: what waits are conditioned on, so a wrong label fails an assertion, not a wait. */
  readonly anySuccess: number;
  readonly anyFailure: number;
}

async function reloadCounts(gate: RunningCertgate, file: string): Promise<Counts> {
  const text = await gate.metricsText();
  return {
    success: reloads(text, file, 'success'), failure: reloads(text, file, 'failure'),
    anySuccess: reloadsAnyFile(text, 'success'), anyFailure: reloadsAnyFile(text, 'failure'),
  };
}

/** Waits until a reload with `result` has been counted (under any file label) since `before`. */
async function waitForCounted(gate: RunningCertgate, result: 'success' | 'failure', before: Counts, what: string): Promise<void> {
  const key = result === 'success' ? 'anySuccess' : 'anyFailure';
  await waitFor(async () => reloadsAnyFile(await gate.metricsText(), result) > before[key], what, PICKUP_MS);
}

/** The `file` label contract: the basename of the file that changed ("all" only for SIGHUP / poll). */
async function assertFileLabel(gate: RunningCertgate, file: string, result: 'success' | 'failure', before: Counts, pattern: string): Promise<void> {
  const text = await gate.metricsText();
  const got = samples(text, 'certgate_reloads_total').filter((s) => s.labels.result === result);
  assert.ok(reloads(text, file, result) > before[result],
    `PRODUCT BUG: after a ${pattern} of ${file}, the ${result} must be counted in certgate_reloads_total{file="${file}",result="${result}"} ` +
    `(file = basename of the file that changed; "all" is for SIGHUP/poll); got ${JSON.stringify(got)}`);
  const msg = result === 'success' ? 'TLS material reloaded' : 'TLS reload failed';
  const logged = gate.logs.find(msg).at(-1);
  assert.equal(logged?.file, file, `PRODUCT BUG: the last "${msg}" log line after a ${pattern} must name file=${file}: ${JSON.stringify(logged)}`);
}

const seconds = (validTo: string): number => new Date(validTo).getTime() / 1000;

/**
 * After a swap to `leaf` (written to `file` by `pattern`): counted, the last-success timestamp moved,
 * the server expiry gauge describes the new leaf only, and the count and log name that file.
 */
async function assertReloadRecorded(gate: RunningCertgate, file: string, leaf: TestCert, before: Counts, t0: number, pattern: string): Promise<void> {
  const text = await gate.metricsText();
  assert.ok(reloadsAnyFile(text, 'success') > before.anySuccess, 'the reload is counted in certgate_reloads_total{result="success"}');
  const last = metricValue(text, 'certgate_last_reload_success_timestamp_seconds');
  assert.ok(last !== undefined && last >= Math.floor(t0 / 1000), `certgate_last_reload_success_timestamp_seconds (${last}) must move to the reload (>= ${t0 / 1000})`);
  const server = samples(text, 'certgate_certificate_expiry_timestamp_seconds').filter((s) => s.labels.kind === 'server');
  assert.equal(server.length, 1, `exactly one kind="server" expiry sample (the current leaf); got ${JSON.stringify(server)}`);
  const cn = leaf.x509.subject.replace(/^CN=/, '');
  assert.ok(server[0]!.labels.subject?.includes(cn), `the server expiry sample names the new leaf ${cn}; got ${server[0]!.labels.subject}`);
  assert.equal(server[0]!.value, seconds(leaf.x509.validTo), 'the server expiry sample is the new leaf\'s notAfter');
  await assertFileLabel(gate, file, 'success', before, pattern);
}

// ---- material and workspaces ----------------------------------------------------------------------

let seq = 0;

/** A new server leaf from the intermediate; `.pem` is the bundle: key + leaf + intermediate. Distinct CN and notAfter. */
async function newServerLeaf(tag: string, validity: { notBefore?: Date; notAfter?: Date; issuer?: 'intermediate' | 'other' } = {}): Promise<TestCert> {
  const n = ++seq;
  const name = `srv-${tag}-${n}`;
  const now = Date.now();
  return pki.issueClient({
    name, usage: 'server', subject: [['CN', name]], san: { dns: ['localhost'], ip: ['127.0.0.1', '::1'] },
    issuer: validity.issuer ?? 'intermediate',
    notBefore: validity.notBefore ?? new Date(now - 5 * 60_000),
    // Second-aligned and distinct per leaf, so the expiry gauge tells them apart.
    notAfter: validity.notAfter ?? new Date(Math.floor((now + 20 * DAY) / 1000) * 1000 + n * 3_600_000),
  });
}

/** Write to a temp file next to `file`, then rename it over `file` (atomic replace). */
function renameOver(file: string, data: string | Buffer, mode = 0o600): void {
  const tmp = `${file}.tmp`;
  fs.writeFileSync(tmp, data, { mode });
  fs.renameSync(tmp, file);
}

interface Workspace {
  readonly dir: string;
  readonly gate: RunningCertgate;
  /** dir/server.pem: a copy of pki's server bundle. */
  readonly bundle: string;
  /** dir/client-ca.pem: a copy of pki's client CA (root + intermediate). */
  readonly clientCa: string;
  /** The serial served at start (pki.serverBundle). */
  readonly initialSerial: string;
}

/** A temp dir of this test's own, removed (after its certgate is closed) when the test ends. */
function tempDir(t: TestContext, cleanup: () => Promise<void> = async () => undefined): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'certgate-reload-'));
  t.after(async () => {
    await cleanup();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  return dir;
}

/** dir/server.pem + dir/client-ca.pem (+ `files`), and a certgate on them; `tls` adds/overrides keys. */
async function workspace(t: TestContext, tlsExtra: (dir: string) => Record<string, unknown> = () => ({}), files: Record<string, string> = {}): Promise<Workspace> {
  let gate: RunningCertgate | undefined;
  const dir = tempDir(t, async () => gate?.close());
  const bundle = path.join(dir, 'server.pem');
  const clientCa = path.join(dir, 'client-ca.pem');
  fs.writeFileSync(bundle, pki.serverBundle.pem, { mode: 0o600 });
  fs.writeFileSync(clientCa, pki.clientCa.pem, { mode: 0o644 });
  for (const [name, data] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), data, { mode: 0o644 });
  const extra = tlsExtra(dir);
  gate = await startTestCertgate({
    tls: { bundle, client_ca: clientCa, ...extra },
    routes: [{ name: 'all', upstream: upstream.url }],
  });
  const initialSerial = pki.serverBundle.x509.serialNumber;
  assert.equal(await servedSerial(gate), initialSerial, 'at start the pki server leaf is served');
  return { dir, gate, bundle, clientCa, initialSerial };
}

function keepAliveAgent(t: TestContext): https.Agent {
  const agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
  t.after(() => agent.destroy());
  return agent;
}

async function readyz(adminUrl: string): Promise<number> {
  return (await fetch(`${adminUrl}/readyz`)).status;
}

// ---- 1. change patterns ---------------------------------------------------------------------------

describe('a server bundle change is served to new handshakes within 2 s, however the file is replaced', () => {
  test('in-place rewrite with a half-written moment: refused and counted, the old leaf serves, then the completed file is served', async (t) => {
    const ws = await workspace(t);
    const next = await newServerLeaf('inplace');
    const before = await reloadCounts(ws.gate, 'server.pem');
    const half = Math.floor(next.pem.length / 2);
    const fd = fs.openSync(ws.bundle, 'w'); // truncates: the half-written moment begins
    try {
      fs.writeSync(fd, next.pem.slice(0, half));
      // Within the 2 s promise (+ poll slack) the product reads the half-written file and refuses it.
      await waitForCounted(ws.gate, 'failure', before, 'the half-written bundle to be tried and counted as a failed reload');
      assert.equal(await servedOrError(ws.gate), ws.initialSerial, 'while the file is half written, the old leaf keeps serving');
      const failed = ws.gate.logs.find('TLS reload failed').at(-1);
      assert.match(String(failed?.code), /^CG_[A-Z_]+$/, `"TLS reload failed" carries a code: ${JSON.stringify(failed)}`);
      await assertFileLabel(ws.gate, 'server.pem', 'failure', before, 'half-written in-place rewrite');
      assert.equal(await readyz(ws.gate.adminUrl), 200, '/readyz stays 200 after a failed reload');
      fs.writeSync(fd, next.pem.slice(half));
    } finally {
      fs.closeSync(fd);
    }
    const t0 = Date.now();
    const ms = await waitForSerial(ws.gate, next.x509.serialNumber, 'the completed in-place bundle', t0);
    t.diagnostic(`in place: new leaf served ${ms} ms after the write completed`);
    await assertReloadRecorded(ws.gate, 'server.pem', next, before, t0, 'in-place rewrite');
  });

  test('write to a temp file + rename over the bundle', async (t) => {
    const ws = await workspace(t);
    const next = await newServerLeaf('rename');
    const before = await reloadCounts(ws.gate, 'server.pem');
    // As certbot-style tools do: the temp file is written, then renamed a moment later (here: after one
    // probe, which also shows that a temp file next to the bundle changes nothing served).
    const tmp = `${ws.bundle}.tmp`;
    fs.writeFileSync(tmp, next.pem, { mode: 0o600 });
    assert.equal(await servedSerial(ws.gate), ws.initialSerial, 'a temp file next to the bundle is not served');
    const t0 = Date.now();
    fs.renameSync(tmp, ws.bundle);
    const ms = await waitForSerial(ws.gate, next.x509.serialNumber, 'the renamed-over bundle', t0);
    t.diagnostic(`rename: new leaf served ${ms} ms after the rename`);
    await assertReloadRecorded(ws.gate, 'server.pem', next, before, t0, 'temp file + rename');
  });

  test('delete, then recreate: the old leaf serves while the file is missing', async (t) => {
    const ws = await workspace(t);
    const next = await newServerLeaf('recreate');
    const before = await reloadCounts(ws.gate, 'server.pem');
    fs.unlinkSync(ws.bundle);
    // A missing file is material that cannot be loaded: tried, refused, counted.
    await waitForCounted(ws.gate, 'failure', before, 'the missing bundle to be counted as a failed reload');
    assert.equal(await servedOrError(ws.gate), ws.initialSerial, 'while the file is missing, the old leaf keeps serving');
    assert.equal(await readyz(ws.gate.adminUrl), 200, '/readyz stays 200 while the file is missing');
    const t0 = Date.now();
    fs.writeFileSync(ws.bundle, next.pem, { mode: 0o600 });
    const ms = await waitForSerial(ws.gate, next.x509.serialNumber, 'the recreated bundle', t0);
    t.diagnostic(`delete + recreate: new leaf served ${ms} ms after the recreate`);
    await assertReloadRecorded(ws.gate, 'server.pem', next, before, t0, 'delete + recreate');
  });

  test('Kubernetes Secret volume swap: tls.pem -> ..data/tls.pem, ..data renamed over by a new ..data_tmp symlink', async (t) => {
    let gate: RunningCertgate | undefined;
    const dir = tempDir(t, async () => gate?.close());
    // What kubelet's AtomicWriter builds: a timestamped folder, ..data pointing at it, user-visible symlinks.
    const secret = path.join(dir, 'secret');
    fs.mkdirSync(secret);
    const tsDir = (n: number): string => `..2026_11_24_21_0${n}_00.00000000${n}`;
    const writeVersion = (n: number, pem: string): void => {
      fs.mkdirSync(path.join(secret, tsDir(n)));
      fs.writeFileSync(path.join(secret, tsDir(n), 'tls.pem'), pem, { mode: 0o640 });
    };
    writeVersion(1, pki.serverBundle.pem);
    fs.symlinkSync(tsDir(1), path.join(secret, '..data'));
    fs.symlinkSync(path.join('..data', 'tls.pem'), path.join(secret, 'tls.pem'));
    const clientCa = path.join(dir, 'client-ca.pem');
    fs.writeFileSync(clientCa, pki.clientCa.pem);
    gate = await startTestCertgate({ tls: { bundle: path.join(secret, 'tls.pem'), client_ca: clientCa }, routes: [{ name: 'all', upstream: upstream.url }] });
    assert.equal(await servedSerial(gate), pki.serverBundle.x509.serialNumber);

    const next = await newServerLeaf('k8s');
    const before = await reloadCounts(gate, 'tls.pem');
    writeVersion(2, next.pem);
    fs.symlinkSync(tsDir(2), path.join(secret, '..data_tmp'));
    const t0 = Date.now();
    fs.renameSync(path.join(secret, '..data_tmp'), path.join(secret, '..data'));
    fs.rmSync(path.join(secret, tsDir(1)), { recursive: true }); // kubelet removes the old version
    const ms = await waitForSerial(gate, next.x509.serialNumber, 'the swapped Secret version', t0);
    t.diagnostic(`k8s ..data swap: new leaf served ${ms} ms after the swap`);
    assert.equal(fs.lstatSync(path.join(secret, 'tls.pem')).isSymbolicLink(), true, 'the user-visible file itself was never touched');
    await assertReloadRecorded(gate, 'tls.pem', next, before, t0, 'Kubernetes ..data swap');
  });

  test('separate cert and key files written one after the other: the mismatched moment keeps the old pair', async (t) => {
    let gate: RunningCertgate | undefined;
    const dir = tempDir(t, async () => gate?.close());
    const certFile = path.join(dir, 'server.crt');
    const keyFile = path.join(dir, 'server.key');
    fs.writeFileSync(certFile, pki.serverBundle.cert + pki.intermediate.cert);
    fs.writeFileSync(keyFile, pki.serverBundle.key, { mode: 0o600 });
    // A copy: pki's own folder (where newServerLeaf writes) must not be one of the watched folders.
    const clientCa = path.join(dir, 'client-ca.pem');
    fs.writeFileSync(clientCa, pki.clientCa.pem);
    gate = await startTestCertgate({ tls: { cert: certFile, key: keyFile, client_ca: clientCa }, routes: [{ name: 'all', upstream: upstream.url }] });
    assert.equal(await servedSerial(gate), pki.serverBundle.x509.serialNumber);

    const next = await newServerLeaf('split');
    const keyBefore = await reloadCounts(gate, 'server.key');
    fs.writeFileSync(keyFile, next.key); // in place, the key first
    await waitForCounted(gate, 'failure', keyBefore, 'the new key with the old certificate to be tried and refused');
    assert.equal(gate.logs.find('TLS reload failed').at(-1)?.code, 'CG_KEY_MISMATCH', 'a key/cert mismatch is refused as such');
    assert.equal(await servedOrError(gate), pki.serverBundle.x509.serialNumber, 'the old pair keeps serving');
    await assertFileLabel(gate, 'server.key', 'failure', keyBefore, 'in-place rewrite');
    const certBefore = await reloadCounts(gate, 'server.crt');
    const t0 = Date.now();
    fs.writeFileSync(certFile, next.cert + pki.intermediate.cert); // then the certificate
    await waitForSerial(gate, next.x509.serialNumber, 'the complete new pair', t0);
    await assertReloadRecorded(gate, 'server.crt', next, certBefore, t0, 'in-place rewrite');
  });

  test('a change made right after start-up is picked up: the watch is armed before startCertgate resolves', async (t) => {
    let gate: RunningCertgate | undefined;
    const dir = tempDir(t, async () => gate?.close());
    const bundle = path.join(dir, 'server.pem');
    fs.writeFileSync(bundle, pki.serverBundle.pem, { mode: 0o600 });
    fs.writeFileSync(path.join(dir, 'client-ca.pem'), pki.clientCa.pem);
    const next = await newServerLeaf('early');
    gate = await startTestCertgate({ tls: { bundle, client_ca: path.join(dir, 'client-ca.pem') }, routes: [{ name: 'all', upstream: upstream.url }] });
    const t0 = Date.now();
    fs.writeFileSync(bundle, next.pem); // nothing awaited since start-up resolved
    try {
      await waitForSerial(gate, next.x509.serialNumber, 'the bundle rewritten right after start-up', t0);
    } catch (err) {
      assert.fail(`PRODUCT BUG: a change made as soon as startCertgate() resolved was not picked up within the 2 s promise ` +
        `(the file watch is not armed yet when start-up resolves; only the recheck_interval_ms poll would catch it): ${(err as Error).message}`);
    }
  });

  test('a burst of writes settles into one reload of the final content', async (t) => {
    const ws = await workspace(t);
    const leaves = await Promise.all([1, 2, 3, 4, 5].map(() => newServerLeaf('burst')));
    const final = leaves.at(-1)!;
    const before = await reloadCounts(ws.gate, 'server.pem');
    const logsBefore = ws.gate.logs.find('TLS material reloaded').length;
    for (const leaf of leaves) renameOver(ws.bundle, leaf.pem); // five replacements within a few ms
    await waitForSerial(ws.gate, final.x509.serialNumber, 'the last write of the burst');
    // Nothing else is pending: a programmatic reload finds the serving material current.
    assert.equal((await ws.gate.app.reload('test: burst settled')).result, 'unchanged');
    const after = await reloadCounts(ws.gate, 'server.pem');
    assert.equal(after.anySuccess - before.anySuccess, 1, 'the burst was loaded once');
    assert.equal(ws.gate.logs.find('TLS material reloaded').length - logsBefore, 1, 'one "TLS material reloaded" line for the burst');
    assert.equal(after.anyFailure, before.anyFailure, 'no reload failed during the burst (every write was atomic)');
  });
});

// ---- 2. bad material ------------------------------------------------------------------------------

interface BadCase {
  readonly name: string;
  /** The file the bad content goes to. */
  readonly file: 'server.pem' | 'client-ca.pem';
  /** The error code expected in "TLS reload failed", where the README's table names exactly one. */
  readonly code?: string;
  content(): Promise<string | Buffer>;
}

const BAD: BadCase[] = [
  { name: 'garbage bytes', file: 'server.pem', content: async () => randomBytes(700) },
  {
    name: 'a truncated PEM (the new bundle cut in the middle of the leaf)', file: 'server.pem',
    content: async () => {
      const b = await newServerLeaf('truncated');
      return b.pem.slice(0, b.key.length + Math.floor(b.cert.length / 2));
    },
  },
  {
    name: 'a key that does not match the leaf', file: 'server.pem', code: 'CG_KEY_MISMATCH',
    content: async () => {
      const b = await newServerLeaf('mismatch');
      return pki.clients.good.key + b.cert + pki.intermediate.cert;
    },
  },
  {
    name: 'a leaf from an unrelated CA (key + leaf, issued by otherRoot)', file: 'server.pem',
    content: async () => (await newServerLeaf('otherca', { issuer: 'other' })).pem,
  },
  {
    name: 'a leaf from an unrelated CA followed by our intermediate (chain from the wrong CA)', file: 'server.pem',
    content: async () => {
      const b = await newServerLeaf('otherchain', { issuer: 'other' });
      return b.key + b.cert + pki.intermediate.cert;
    },
  },
  {
    name: 'an already-expired leaf', file: 'server.pem', code: 'CG_CERT_EXPIRED',
    content: async () => (await newServerLeaf('expired', { notBefore: new Date(Date.now() - 20 * DAY), notAfter: new Date(Date.now() - DAY) })).pem,
  },
  { name: 'an empty client_ca file', file: 'client-ca.pem', code: 'CG_CA_EMPTY', content: async () => '' },
];

describe('bad material never replaces good: the old keeps serving, the failure is counted, the next good write loads', () => {
  for (const bad of BAD) {
    test(bad.name, async (t) => {
      const ws = await workspace(t);
      const target = path.join(ws.dir, bad.file);
      const content = await bad.content();
      const before = await reloadCounts(ws.gate, bad.file);
      // Written in place (no temp file next to it), so the file label is the file's own in every case.
      fs.writeFileSync(target, content);
      await waitFor(async () => {
        const text = await ws.gate.metricsText();
        return reloadsAnyFile(text, 'failure') > before.anyFailure || reloadsAnyFile(text, 'success') > before.anySuccess;
      }, `the bad ${bad.file} to be tried (certgate_reloads_total to move)`, PICKUP_MS);

      const served = await servedOrError(ws.gate);
      const now = await reloadCounts(ws.gate, bad.file);
      assert.equal(served, ws.initialSerial,
        `PRODUCT BUG: ${bad.name} written to ${bad.file} replaced the good material (reloads_total success ${before.anySuccess} -> ${now.anySuccess}); ` +
        `new connections verifying against the test root now get: ${served}`);
      assert.equal(now.anySuccess, before.anySuccess, 'the bad material was not counted as a successful reload');
      assert.ok(now.anyFailure > before.anyFailure, 'the failure is counted in certgate_reloads_total{result="failure"}');
      const failed = ws.gate.logs.find('TLS reload failed').at(-1);
      assert.match(String(failed?.code), /^CG_[A-Z_]+$/, `"TLS reload failed" carries a code: ${JSON.stringify(failed)}`);
      if (bad.code !== undefined) assert.equal(failed?.code, bad.code);
      await assertFileLabel(ws.gate, bad.file, 'failure', before, 'bad in-place rewrite');
      assert.equal(await readyz(ws.gate.adminUrl), 200, '/readyz stays 200');
      // The old trust keeps serving too: a client sending its leaf alone needs the intermediate of the old client_ca.
      assert.equal((await send(ws.gate.url, pki.clients.good, { leafOnly: true })).status, 200, 'the old client_ca keeps serving');

      // Recovery: the next good write is tried and picked up.
      if (bad.file === 'server.pem') {
        const good = await newServerLeaf('recover');
        const t0 = Date.now();
        fs.writeFileSync(ws.bundle, good.pem);
        await waitForSerial(ws.gate, good.x509.serialNumber, 'the good bundle written after the bad one', t0);
        await assertReloadRecorded(ws.gate, 'server.pem', good, before, t0, 'in-place rewrite');
      } else {
        // A client_ca that differs from the serving one (it also trusts otherRoot), so the load is observable.
        assert.equal((await send(ws.gate.url, pki.clients.otherCa)).status, 400, 'before: otherRoot clients are not trusted');
        fs.writeFileSync(ws.clientCa, pki.clientCa.pem + pki.otherRoot.cert);
        await waitFor(async () => (await send(ws.gate.url, pki.clients.otherCa)).status === 200,
          'the good client_ca written after the empty one to be used by new handshakes', PICKUP_MS);
        await assertFileLabel(ws.gate, 'client-ca.pem', 'success', before, 'in-place rewrite');
      }
    });
  }
});

// ---- 3. trust changes ------------------------------------------------------------------------------

/** `established`: the request went over a connection verified under the old trust. */
async function assertRefusedWith(r: Sent, reason: string, what: string, established = false): Promise<void> {
  if (established && r.status === 200) {
    assert.fail(`PRODUCT BUG: ${what}: its next request after the trust change was SERVED (forwarded upstream, 200, connection: ${String(r.headers.connection)}) ` +
      `instead of 400 {"error":"client_certificate_invalid","reason":"${reason}"}: ${r.body}`);
  }
  assert.equal(r.status, 400, `${what}: ${r.body}`);
  assert.equal(r.json().error, 'client_certificate_invalid', what);
  assert.equal(r.json().reason, reason, `${what}: ${r.body}`);
  assert.equal(r.headers.connection, 'close', `${what}: the connection is closed after the refusal`);
}

describe('client_ca changes: new handshakes and established keep-alive connections use the new trust', () => {
  test('client_ca rewritten to an unrelated root: 400 unknown_ca on new AND established connections; restored, accepted again', async (t) => {
    const ws = await workspace(t);
    const agent = keepAliveAgent(t);
    const first = await send(ws.gate.url, pki.clients.good, { agent, path: '/ca/ka-1' });
    assert.equal(first.status, 200, first.body);
    const second = await send(ws.gate.url, pki.clients.good, { agent, path: '/ca/ka-2' });
    assert.equal(second.status, 200, second.body);
    assert.ok(second.reusedSocket && second.localPort === first.localPort, 'precondition: the agent keeps the connection alive');

    const before = await reloadCounts(ws.gate, 'client-ca.pem');
    fs.writeFileSync(ws.clientCa, pki.otherRoot.cert); // in place
    await waitFor(async () => (await send(ws.gate.url, pki.clients.good, { path: '/ca/new' })).status === 400,
      'new handshakes of the good client to be refused under the new client_ca', PICKUP_MS);
    await assertRefusedWith(await send(ws.gate.url, pki.clients.good, { path: '/ca/new-2' }), 'unknown_ca', 'a new connection');
    assert.ok((await reloadCounts(ws.gate, 'client-ca.pem')).success > before.success, 'counted under file="client-ca.pem"');
    const cas = samples(await ws.gate.metricsText(), 'certgate_certificate_expiry_timestamp_seconds').filter((s) => s.labels.kind === 'client_ca');
    assert.equal(cas.length, 1, `the client_ca expiry gauge describes the current client_ca only: ${JSON.stringify(cas)}`);
    assert.match(cas[0]!.labels.subject ?? '', /unrelated root CA/);

    const third = await send(ws.gate.url, pki.clients.good, { agent, path: '/ca/ka-3' });
    assert.ok(third.reusedSocket, 'the request went over the established connection');
    assert.equal(third.localPort, first.localPort, 'the same TLS connection (same local port)');
    await assertRefusedWith(third, 'unknown_ca', 'the established keep-alive connection of a client whose CA is no longer in client_ca', true);
    assert.ok(!upstream.requests.some((r) => r.url === '/ca/ka-3' || r.url === '/ca/new-2'), 'refused requests never reach the upstream');

    fs.writeFileSync(ws.clientCa, pki.clientCa.pem);
    await waitFor(async () => (await send(ws.gate.url, pki.clients.good, { path: '/ca/restored' })).status === 200,
      'the restored client_ca to accept the good client again', PICKUP_MS);
    const fourth = await send(ws.gate.url, pki.clients.good, { agent, path: '/ca/ka-4' });
    assert.equal(fourth.status, 200, fourth.body);
    assert.notEqual(fourth.localPort, first.localPort, 'the refused connection was closed; the agent opened a new one');
  });

  test('intermediate removed from client_ca (root only): a client sending its leaf alone is refused on new and established connections; one sending its chain is not', async (t) => {
    const ws = await workspace(t);
    const leafOnly = keepAliveAgent(t);
    const withChain = keepAliveAgent(t);
    const a1 = await send(ws.gate.url, pki.clients.good, { agent: leafOnly, leafOnly: true, path: '/root/leaf-1' });
    const b1 = await send(ws.gate.url, pki.clients.good, { agent: withChain, path: '/root/chain-1' });
    assert.equal(a1.status, 200, `precondition: the intermediate in client_ca completes a leaf-only client's chain: ${a1.body}`);
    assert.equal(b1.status, 200, b1.body);

    fs.writeFileSync(ws.clientCa, pki.rootOnlyCa.pem);
    await waitFor(async () => (await send(ws.gate.url, pki.clients.good, { leafOnly: true, path: '/root/new' })).status === 400,
      'new leaf-only handshakes to be refused once the intermediate is gone from client_ca', PICKUP_MS);
    await assertRefusedWith(await send(ws.gate.url, pki.clients.good, { leafOnly: true, path: '/root/new-2' }), 'unknown_ca', 'a new leaf-only connection');
    assert.equal((await send(ws.gate.url, pki.clients.good, { path: '/root/new-chain' })).status, 200, 'a new connection sending the chain is accepted');

    const a2 = await send(ws.gate.url, pki.clients.good, { agent: leafOnly, leafOnly: true, path: '/root/leaf-2' });
    assert.ok(a2.reusedSocket && a2.localPort === a1.localPort, 'the leaf-only request went over its established connection');
    const b2 = await send(ws.gate.url, pki.clients.good, { agent: withChain, path: '/root/chain-2' });
    assert.ok(b2.reusedSocket && b2.localPort === b1.localPort, 'the chain-sending request went over its established connection');
    if (!SENT_CHAIN_EXPOSED) {
      // This Node hides what the client sent: neither connection can be re-verified without a handshake.
      // Both are told to reconnect (421); on the new connection OpenSSL decides (above: leaf-only refused).
      t.diagnostic(`Node ${process.version} hides the sent chain: established connections get 421`);
      for (const r of [a2, b2]) {
        assert.equal(r.status, 421, r.body);
        assert.equal(r.json().error, 'reauthentication_required');
        assert.equal(r.headers.connection, 'close');
      }
    } else {
      await assertRefusedWith(a2, 'unknown_ca', 'the established connection of a leaf-only client whose intermediate left client_ca', true);
      assert.equal(b2.status, 200, `PRODUCT BUG: the established connection of a client that sent its intermediate, and is still trusted ` +
        `under the root-only client_ca (a new connection of it is accepted, above), must keep working; got ${b2.status} ` +
        `connection: ${String(b2.headers.connection)} ${b2.body}`);
    }

    fs.writeFileSync(ws.clientCa, pki.clientCa.pem);
    await waitFor(async () => (await send(ws.gate.url, pki.clients.good, { leafOnly: true, path: '/root/restored' })).status === 200,
      'the restored client_ca to accept leaf-only clients again', PICKUP_MS);
  });
});

test('client_ca gains a CA (a CA rotation begins): established connections of every still-trusted client keep working', async (t) => {
  const ws = await workspace(t);
  const clients = [
    { name: 'full chain', client: pki.clients.good, opts: {} as SendOptions },
    { name: 'leaf only', client: pki.clients.good, opts: { leafOnly: true } as SendOptions },
    { name: 'root-issued', client: pki.clients.direct, opts: {} as SendOptions },
  ].map((c) => ({ ...c, agent: keepAliveAgent(t) }));
  const first = new Map<string, Sent>();
  for (const c of clients) {
    const r = await send(ws.gate.url, c.client, { ...c.opts, agent: c.agent, path: `/grow/${c.name}/1` });
    assert.equal(r.status, 200, `${c.name}: ${r.body}`);
    first.set(c.name, r);
  }
  fs.writeFileSync(ws.clientCa, pki.clientCa.pem + pki.otherRoot.cert);
  await waitFor(async () => (await send(ws.gate.url, pki.clients.otherCa, { path: '/grow/new-ca' })).status === 200,
    'a client of the added CA to be accepted on a new connection', PICKUP_MS);
  for (const c of clients) {
    const r = await send(ws.gate.url, c.client, { ...c.opts, agent: c.agent, path: `/grow/${c.name}/2` });
    assert.ok(r.reusedSocket && r.localPort === first.get(c.name)!.localPort, `${c.name}: the request went over the established connection`);
    assert.equal(r.status, 200, `${c.name}: still trusted after a CA was added, its established connection keeps working: ${r.body}`);
    assert.notEqual(r.headers.connection, 'close', `${c.name}: and stays open`);
  }
});

describe('CRL updates: a newly revoked client is refused on new handshakes, established connections and resumed sessions', () => {
  test('revoke a client by rewriting the CRL, then un-revoke it', async (t) => {
    const victim = await pki.issueClient({ name: `crl-victim-${++seq}`, subject: [['CN', 'svc-crl-victim']] });
    const issuer = { cert: parseCert(pki.intermediate.cert), privateKey: await importSigningKey(pki.intermediate.key) };
    const nextUpdate = new Date(Math.floor((Date.now() + 10 * DAY) / 1000) * 1000);
    const [clean, revoking, cleanAgain] = await Promise.all([
      createCrl({ issuer, crlNumber: 10n }),
      createCrl({ issuer, crlNumber: 11n, nextUpdate, entries: [{ serial: victim.x509.serialNumber }] }),
      createCrl({ issuer, crlNumber: 12n }),
    ]);
    const ws = await workspace(t, (dir) => ({ crl: path.join(dir, 'crl.pem') }), { 'crl.pem': crlToPem(clean) + pki.crlRootPem });
    const crlFile = path.join(ws.dir, 'crl.pem');

    const agent = keepAliveAgent(t);
    const k1 = await send(ws.gate.url, victim, { agent, path: '/crl/ka-1' });
    assert.equal(k1.status, 200, k1.body);
    // A session ticket, saved before the CRL change; resuming it works while the trust is unchanged.
    const t1 = await tlsExchange(ws.gate.port, victim, '/crl/ticket-1');
    assert.equal(t1.status, 200, t1.body);
    assert.ok(t1.session, 'precondition: the server issued a session ticket');
    const control = await tlsExchange(ws.gate.port, victim, '/crl/ticket-control', t1.session);
    assert.equal(control.reused, true, 'precondition: the saved session resumes while the CRL is unchanged');
    assert.equal(control.status, 200, control.body);
    const k2 = await send(ws.gate.url, victim, { agent, path: '/crl/ka-2' });
    assert.ok(k2.reusedSocket && k2.localPort === k1.localPort && k2.status === 200, 'precondition: the keep-alive connection is reused');

    const before = await reloadCounts(ws.gate, 'crl.pem');
    fs.writeFileSync(crlFile, crlToPem(revoking) + pki.crlRootPem);
    await waitFor(async () => (await send(ws.gate.url, victim, { path: '/crl/new' })).status === 400,
      'new handshakes of the revoked client to be refused', PICKUP_MS);
    await assertRefusedWith(await send(ws.gate.url, victim, { path: '/crl/new-2' }), 'revoked', 'a new connection of the revoked client');
    assert.equal((await send(ws.gate.url, pki.clients.good, { path: '/crl/other' })).status, 200, 'another client of the same CA still passes');
    assert.ok((await reloadCounts(ws.gate, 'crl.pem')).success > before.success, 'counted under file="crl.pem"');
    const crlGauge = samples(await ws.gate.metricsText(), 'certgate_crl_next_update_timestamp_seconds');
    assert.ok(crlGauge.some((s) => s.value === nextUpdate.getTime() / 1000),
      `certgate_crl_next_update_timestamp_seconds shows the new CRL's nextUpdate ${nextUpdate.toISOString()}: ${JSON.stringify(crlGauge)}`);

    const k3 = await send(ws.gate.url, victim, { agent, path: '/crl/ka-3' });
    assert.ok(k3.reusedSocket, 'the request went over the established connection');
    assert.equal(k3.localPort, k1.localPort, 'the same TLS connection (same local port)');
    await assertRefusedWith(k3, 'revoked', 'the established keep-alive connection of the revoked client', true);

    const resumed = await tlsExchange(ws.gate.port, victim, '/crl/ticket-after', t1.session);
    t.diagnostic(`session ticket from before the CRL change: reused=${resumed.reused}, status=${resumed.status}`);
    assert.equal(resumed.status, 400, `a session from before the CRL change must not be served (reused=${resumed.reused}): ${resumed.body}`);
    assert.equal(JSON.parse(resumed.body).reason, 'revoked');
    for (const p of ['/crl/new-2', '/crl/ka-3', '/crl/ticket-after']) {
      assert.ok(!upstream.requests.some((r) => r.url === p), `${p} (refused) never reached the upstream`);
    }

    fs.writeFileSync(crlFile, crlToPem(cleanAgain) + pki.crlRootPem);
    await waitFor(async () => (await send(ws.gate.url, victim, { path: '/crl/unrevoked' })).status === 200,
      'the client to be accepted again once the CRL no longer lists it', PICKUP_MS);
  });
});

// ---- setSecureContext: what is established survives ------------------------------------------------

test('a server certificate swap lets in-flight requests complete and established connections keep working', async (t) => {
  const ws = await workspace(t);
  const agent = keepAliveAgent(t);
  const k1 = await send(ws.gate.url, pki.clients.good, { agent, path: '/swap/ka-1' });
  assert.equal(k1.status, 200);
  const heldBefore = held.length;
  const inFlight = send(ws.gate.url, pki.clients.good, { path: '/hold/swap' });
  inFlight.catch(() => undefined); // awaited below; must not surface as unhandled if the test fails first
  await waitFor(() => held.length > heldBefore, 'the slow request to reach the upstream');
  t.after(() => {
    held[heldBefore]?.end();
  });

  const next = await newServerLeaf('inflight');
  renameOver(ws.bundle, next.pem);
  await waitForSerial(ws.gate, next.x509.serialNumber, 'the new leaf');
  assert.equal(await readyz(ws.gate.adminUrl), 200, '/readyz is 200 after the swap');

  const k2 = await send(ws.gate.url, pki.clients.good, { agent, path: '/swap/ka-2' });
  assert.equal(k2.status, 200, k2.body);
  assert.ok(k2.reusedSocket && k2.localPort === k1.localPort, 'the established connection carried on (its original handshake)');
  assert.equal(k1.serial, ws.initialSerial);

  const res = held[heldBefore]!;
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end('{"held":true}');
  const done = await inFlight;
  assert.equal(done.status, 200, 'the in-flight request completed');
  assert.equal(done.body, '{"held":true}');
  assert.equal(done.serial, ws.initialSerial);
});

// ---- programmatic reload ---------------------------------------------------------------------------

test('app.reload() with tls.watch: false: unchanged, success (served at once), failure (old keeps serving)', async (t) => {
  const ws = await workspace(t, () => ({ watch: false }));
  assert.deepEqual(await ws.gate.app.reload('test: nothing changed'), { result: 'unchanged' });

  const next = await newServerLeaf('programmatic');
  renameOver(ws.bundle, next.pem);
  const ok = await ws.gate.app.reload('test: new bundle');
  assert.equal(ok.result, 'success');
  assert.equal(await servedSerial(ws.gate), next.x509.serialNumber, 'served as soon as reload() resolved');

  renameOver(ws.bundle, 'not a PEM file\n');
  const bad = await ws.gate.app.reload('test: garbage');
  assert.equal(bad.result, 'failure');
  assert.equal(await servedSerial(ws.gate), next.x509.serialNumber, 'the last good leaf keeps serving');
  assert.equal(ws.gate.logs.find('TLS reload failed').length >= 1, true, 'the failure is logged');

  const text = await ws.gate.metricsText();
  const byWatch = samples(text, 'certgate_reloads_total').filter((s) => s.labels.file === 'server.pem');
  assert.deepEqual(byWatch, [], 'with tls.watch: false no reload is triggered by the file changes themselves');
});

// ---- 4. SIGHUP in `certgate serve` -----------------------------------------------------------------

/** The real CLI on `config`, killed when the test ends. */
async function startServe(t: TestContext, config: string): Promise<ServingProcess> {
  const serve = await spawnServeConfig(config);
  t.after(() => {
    if (serve.child.exitCode === null && serve.child.signalCode === null) serve.child.kill('SIGKILL');
  });
  return serve;
}

test('certgate serve with tls.watch: false: SIGHUP reloads; a bad file on SIGHUP keeps the old leaf and the process; SIGTERM exits 0', async (t) => {
  const dir = tempDir(t);
  const bundle = path.join(dir, 'server.pem');
  fs.writeFileSync(bundle, pki.serverBundle.pem, { mode: 0o600 });
  const config = path.join(dir, 'certgate.yaml');
  fs.writeFileSync(config, JSON.stringify({
    listen: '127.0.0.1:0', admin: { listen: '127.0.0.1:0' }, log: { level: 'info' },
    tls: { bundle, client_ca: pki.clientCa.path, watch: false },
    routes: [{ name: 'all', upstream: upstream.url }],
  }));
  const serve = await startServe(t, config);
  const gate = { url: serve.url.origin };
  const metrics = async (): Promise<string> => (await fetch(`${serve.admin}/metrics`)).text();
  assert.equal(await servedSerial(gate), pki.serverBundle.x509.serialNumber);

  const next = await newServerLeaf('sighup');
  renameOver(bundle, next.pem);
  const t0 = Date.now();
  serve.child.kill('SIGHUP');
  const ms = await waitForSerial(gate, next.x509.serialNumber, 'the bundle after SIGHUP', t0);
  t.diagnostic(`SIGHUP: new leaf served ${ms} ms after the signal`);
  await waitFor(async () => reloads(await metrics(), 'all', 'success') === 1, 'certgate_reloads_total{file="all",result="success"} to be 1', PICKUP_MS);
  assert.ok(serve.logs.some((l) => l.msg === 'TLS material reloaded' && l.file === 'all'), 'logged with file=all');

  fs.writeFileSync(bundle, 'garbage, not a PEM\n', { mode: 0o600 });
  serve.child.kill('SIGHUP');
  await waitFor(async () => reloads(await metrics(), 'all', 'failure') >= 1, 'the SIGHUP reload of a bad file to be counted as a failure', PICKUP_MS);
  const failed = serve.logs.find((l) => l.msg === 'TLS reload failed');
  assert.equal(failed?.file, 'all', JSON.stringify(failed));
  assert.match(String(failed?.code), /^CG_/, JSON.stringify(failed));
  assert.equal(await servedSerial(gate), next.x509.serialNumber, 'the last good leaf keeps serving');
  assert.equal(serve.exit(), undefined, `the process stays up; stderr: ${serve.stderr()}`);
  assert.equal(await readyz(serve.admin), 200);
  assert.deepEqual(samples(await metrics(), 'certgate_reloads_total').filter((s) => s.labels.file !== 'all'), [],
    'with tls.watch: false, no reload was triggered by the file writes themselves');

  serve.child.kill('SIGTERM');
  const exit = await waitFor(() => serve.exit(), 'serve to exit after SIGTERM', 10_000);
  assert.deepEqual({ code: exit.code, signal: exit.signal }, { code: 0, signal: null }, `stderr: ${serve.stderr()}`);
});

/**
 * issue 14: an operator who sent SIGHUP and changed nothing saw nothing. Now one line answers every SIGHUP
 * (from the process that re-read: under workers: N the primary, which tells no worker when nothing changed)
 * and certgate_reloads_total{file,result="unchanged"} moves once per file re-read.
 */
for (const workers of [1, 2]) {
  test(`SIGHUP with nothing changed leaves a trace (workers: ${workers}): one "nothing changed" line naming the files re-read, unchanged counted per file`, { timeout: 60_000 }, async (t) => {
    const dir = tempDir(t);
    const bundle = path.join(dir, 'server.pem');
    const ca = path.join(dir, 'client-ca.pem');
    const crl = path.join(dir, 'crl.pem');
    fs.writeFileSync(bundle, pki.serverBundle.pem, { mode: 0o600 });
    fs.writeFileSync(ca, pki.clientCa.pem);
    fs.writeFileSync(crl, pki.crlPem);
    const config = path.join(dir, 'certgate.yaml');
    fs.writeFileSync(config, JSON.stringify({
      listen: '127.0.0.1:0', admin: { listen: '127.0.0.1:0' }, log: { level: 'info' }, workers,
      // watch: false: the rotation below must reach certgate by the SIGHUP, not by a file event racing it.
      tls: { bundle, client_ca: ca, crl, watch: false },
      routes: [{ name: 'all', upstream: upstream.url }],
    }));
    const serve = await startServe(t, config);
    const metrics = async (): Promise<string> => (await fetch(`${serve.admin}/metrics`)).text();
    const unchanged = (text: string, file: string): number => metricValue(text, 'certgate_reloads_total', { file, result: 'unchanged' }) ?? 0;
    const nothing = (): Record<string, unknown>[] => serve.logs.filter((l) => l.msg === 'TLS material re-read: nothing changed');

    serve.child.kill('SIGHUP');
    // The 2 s pickup contract is for file changes; a SIGHUP's line only has to come. Seen once past 3 s under
    // workers: 2 with the whole suite running on 2 cores.
    const SIGNAL_MS = 10_000;
    const line = await waitFor(() => nothing()[0], 'PRODUCT BUG: a SIGHUP that changed nothing must be answered by a log line', SIGNAL_MS);
    assert.equal(line.reason, 'signal');
    assert.deepEqual(line.files, ['server.pem', 'client-ca.pem', 'crl.pem']);
    assert.equal(line.pid, serve.child.pid, 'logged by the process that received the signal and re-read (the primary under workers: N)');
    await waitFor(async () => unchanged(await metrics(), 'crl.pem') === 1, 'certgate_reloads_total{file="crl.pem",result="unchanged"} to be 1', SIGNAL_MS);
    const text = await metrics();
    for (const file of ['server.pem', 'client-ca.pem']) assert.equal(unchanged(text, file), 1, `unchanged counted once for ${file}`);
    assert.equal(nothing().length, 1, `one line for one SIGHUP, not one per process: ${JSON.stringify(nothing())}`);
    assert.equal(samples(text, 'certgate_reloads_total').filter((s) => s.labels.result !== 'unchanged').length, 0, 'nothing was swapped or failed');

    const next = await newServerLeaf(`sighup-trace-${workers}`);
    renameOver(bundle, next.pem);
    serve.child.kill('SIGHUP');
    const reloaded = await waitFor(() => serve.logs.find((l) => l.msg === 'TLS material reloaded' && l.pid === serve.child.pid),
      'the SIGHUP after a change to be logged as a reload', SIGNAL_MS);
    assert.equal(reloaded.reason, 'signal');
    assert.deepEqual(reloaded.changed, ['server.pem'], 'the line says which file changed');
    assert.equal(nothing().length, 1);
  });
}

/**
 * issue 14: explicit triggers are SIGHUP "now; the admin reload endpoint later". POST /-/reload (and
 * `certgate reload`, which wraps it) does what SIGHUP does: the config, then the TLS material — answered,
 * logged and counted the same way — so an operator who cannot signal the process (a container, another
 * user) can still make certgate re-read a rotated bundle with tls.watch: false. Before: the endpoint
 * re-read the config only, and a rotated bundle stayed unserved.
 */
for (const workers of [1, 2]) {
  test(`POST /-/reload is an explicit trigger like SIGHUP (workers: ${workers}): the TLS files re-read, "nothing changed" logged and counted, a rotation served, a broken bundle refused with 422`, { timeout: 60_000 }, async (t) => {
    const dir = tempDir(t);
    const bundle = path.join(dir, 'server.pem');
    const ca = path.join(dir, 'client-ca.pem');
    fs.writeFileSync(bundle, pki.serverBundle.pem, { mode: 0o600 });
    fs.writeFileSync(ca, pki.clientCa.pem);
    const config = path.join(dir, 'certgate.yaml');
    fs.writeFileSync(config, JSON.stringify({
      listen: '127.0.0.1:0', admin: { listen: '127.0.0.1:0' }, log: { level: 'info' }, workers, config_watch: false,
      tls: { bundle, client_ca: ca, watch: false },
      routes: [{ name: 'all', upstream: upstream.url }],
    }));
    const serve = await startServe(t, config);
    const gate = { url: serve.url.origin };
    const metrics = async (): Promise<string> => (await fetch(`${serve.admin}/metrics`)).text();
    const unchanged = (text: string, file: string): number => metricValue(text, 'certgate_reloads_total', { file, result: 'unchanged' }) ?? 0;
    const post = async (): Promise<{ status: number; body: { result: string; tls?: { result: string; problems?: { code: string }[] } } }> => {
      const res = await fetch(`${serve.admin}/-/reload`, { method: 'POST' });
      return { status: res.status, body: await res.json() as never };
    };

    const same = await post();
    assert.equal(same.status, 200, JSON.stringify(same.body));
    assert.equal(same.body.result, 'unchanged', 'the config part of the answer keeps its contract');
    assert.equal(same.body.tls?.result, 'unchanged', `PRODUCT BUG: POST /-/reload did not re-read the TLS material: ${JSON.stringify(same.body)}`);
    // The answer can overtake the log line: the line goes through pino's asynchronous destination and the
    // child's stdout pipe (under workers: 2 seen 2 times in 3 on a loaded machine).
    const line = await waitFor(() => serve.logs.find((l) => l.msg === 'TLS material re-read: nothing changed'),
      'PRODUCT BUG: a POST /-/reload that changed nothing must be answered by a log line, as SIGHUP is', 10_000);
    assert.equal(line.reason, 'admin');
    assert.deepEqual(line.files, ['server.pem', 'client-ca.pem']);
    const text = await metrics();
    for (const file of ['server.pem', 'client-ca.pem']) assert.equal(unchanged(text, file), 1, `unchanged counted once for ${file}`);

    const next = await newServerLeaf(`admin-reload-${workers}`);
    renameOver(bundle, next.pem);
    const rotated = await post();
    assert.equal(rotated.status, 200, JSON.stringify(rotated.body));
    assert.equal(rotated.body.tls?.result, 'success');
    // workers: N — the primary validated and answered; each worker re-reads and swaps on its word.
    await waitForSerial(gate, next.x509.serialNumber, 'the bundle rotated before POST /-/reload');

    renameOver(bundle, '-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n');
    const broken = await post();
    assert.equal(broken.status, 422, `a refused TLS re-read is a failed reload: ${JSON.stringify(broken.body)}`);
    // The config's validation reads every PEM it names (as `certgate check` does), so it is refused too.
    assert.equal(broken.body.result, 'failure');
    assert.equal(broken.body.tls?.result, 'failure', 'the TLS re-read runs even when the config was refused, as on SIGHUP');
    assert.ok((broken.body.tls?.problems ?? []).length > 0, 'the answer carries the problems');
    assert.equal(await servedSerial(gate), next.x509.serialNumber, 'the material serving keeps serving');

    // certgate reload wraps the endpoint: it prints the TLS part and exits 1 when that was refused.
    const cli = await runCommand(process.execPath, [CLI, 'reload', '--admin', serve.admin], { cwd: REPO, env: { PATH: process.env.PATH ?? '' }, timeoutMs: 15_000 });
    assert.equal(cli.code, 1, cli.stdout + cli.stderr);
    assert.match(cli.stdout, /^refused: generation 1 keeps serving$/m);
    assert.match(cli.stdout, /^TLS material refused: the material serving keeps serving$/m);
    renameOver(bundle, next.pem);
    const fixed = await runCommand(process.execPath, [CLI, 'reload', '--admin', serve.admin], { cwd: REPO, env: { PATH: process.env.PATH ?? '' }, timeoutMs: 15_000 });
    assert.equal(fixed.code, 0, fixed.stdout + fixed.stderr);
    assert.match(fixed.stdout, /^unchanged: generation 1 keeps serving$/m);
    assert.match(fixed.stdout, /^TLS material: re-read, nothing changed$/m);
  });
}

/**
 * issue 14: a stale CRL refuses its CA's clients (crl_expired, or OpenSSL in chain mode) — `certgate check`
 * calls that an error — but it must never stop the server or block a server-certificate rotation: start-up
 * and reloads load such material and log the finding at error level.
 */
for (const crlMode of ['leaf', 'chain'] as const) {
  test(`a stale CRL (crl_mode ${crlMode}) neither stops start-up nor blocks a server-certificate rotation; it is logged at error level`, async (t) => {
    let gate: RunningCertgate | undefined;
    const dir = tempDir(t, async () => gate?.close());
    const bundle = path.join(dir, 'server.pem');
    fs.writeFileSync(bundle, pki.serverBundle.pem, { mode: 0o600 });
    // The intermediate's CRL is stale; the root's is current (chain mode needs one for every CA).
    try {
      gate = await startTestCertgate({
        tls: { bundle, client_ca: pki.clientCa.path, crl: pki.expiredCrlPath, crl_mode: crlMode, crl_stale: 'refuse', watch: false },
        routes: [{ name: 'all', upstream: upstream.url }],
      });
    } catch (err) {
      assert.fail(`PRODUCT BUG: a stale CRL stopped certgate from starting (crl_mode ${crlMode}): ${String(err)}`);
    }
    const errorLines = (): Record<string, unknown>[] => gate!.logs.lines.filter((l) => l.code === 'CG_CRL_EXPIRED');
    assert.deepEqual(errorLines().map((l) => l.level), [50], 'logged once at start-up, at error level (pino 50)');
    // A client of the root (whose CRL is current) is served; the intermediate's clients are refused.
    const direct = await send(gate.url, pki.clients.direct, { path: '/probe' });
    assert.equal(direct.status, 200, direct.body);
    assert.equal(direct.serial, pki.serverBundle.x509.serialNumber);

    const next = await newServerLeaf(`stale-crl-${crlMode}`);
    renameOver(bundle, next.pem);
    const r = await gate.app.reload('test: rotation with a stale CRL');
    assert.equal(r.result, 'success', `PRODUCT BUG: a stale CRL blocked the server-certificate rotation: ${JSON.stringify(r)}`);
    assert.equal((await send(gate.url, pki.clients.direct, { path: '/probe' })).serial, next.x509.serialNumber, 'the new leaf is served');
    assert.deepEqual(errorLines().map((l) => l.level), [50, 50], 'the reload logs it again, at error level');
  });
}
