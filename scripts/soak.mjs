#!/usr/bin/env node
/**
 * Soak test (not in CI): N minutes of mixed good and hostile traffic against a real certgate process
 * (`node dist/cli.js serve`), with TLS material rotations (a new server leaf, a CRL re-issued with one
 * more revoked client) every --rotate-every seconds. Prints requests served, failures (any outcome other
 * than the expected one, per traffic kind), reloads, and the certgate process's RSS and open file
 * descriptors at the start (after warm-up) and at the end (after the traffic stopped and every
 * connection closed), with a sample every minute.
 *
 *   npm run soak -- --minutes 10 [--concurrency 16] [--rotate-every 15] [--workers 1|N|auto] [--keep]
 *   (--workers > 1: RSS and fds are summed over the primary and its workers)
 *   (diagnosis: --only <text> runs only the traffic kinds whose name contains it; --no-rotate)
 *
 * Needs a built dist/ (npm run soak builds it). Linux: RSS and fds are read from /proc/<pid>.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import tls from 'node:tls';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { initDevPki, issueClient, loadDevCa, revoke, writeFileAtomic } from '../dist/pki/dev-pki.js';
import { certToPem, createLeaf, keyToPem } from '../dist/pki/x509.js';

const REPO = fileURLToPath(new URL('../', import.meta.url));
const { values: opts } = parseArgs({
  options: {
    minutes: { type: 'string', default: '1' },
    concurrency: { type: 'string', default: '16' },
    'rotate-every': { type: 'string', default: '15' },
    keep: { type: 'boolean', default: false },
    only: { type: 'string' },
    'no-rotate': { type: 'boolean', default: false },
    'sample-every': { type: 'string', default: '60' },
    workers: { type: 'string', default: '1' },
  },
});
const MINUTES = Number(opts.minutes);
const CONCURRENCY = Number(opts.concurrency);
const ROTATE_MS = Number(opts['rotate-every']) * 1000;
const WORKERS = opts.workers === 'auto' ? 'auto' : Number(opts.workers);
if (!(MINUTES > 0) || !(CONCURRENCY > 0) || !(ROTATE_MS > 0)) {
  console.error('usage: npm run soak -- --minutes N [--concurrency C] [--rotate-every SECONDS] [--keep]');
  process.exit(2);
}

const dir = mkdtempSync(path.join(os.tmpdir(), 'certgate-soak-'));
const pkiDir = path.join(dir, 'pki');
const log = (...args) => console.log(new Date().toISOString().slice(11, 19), ...args);

// ---- PKI and clients --------------------------------------------------------------------------
await initDevPki(pkiDir);
const revokedClient = await issueClient(pkiDir, { cn: 'soak-revoked' });
await revoke(pkiDir, readFileSync(revokedClient.certPath, 'utf8'));
const ca = readFileSync(path.join(pkiDir, 'ca.crt'), 'utf8');
const goodPem = readFileSync(path.join(pkiDir, 'client.pem'), 'utf8');
const good = { ca, cert: goodPem, key: goodPem };
const revokedPem = readFileSync(revokedClient.pemPath, 'utf8');
const revoked = { ca, cert: revokedPem, key: revokedPem };

// ---- upstream (in this process) ---------------------------------------------------------------
const BIG = Buffer.alloc(64 * 1024, 0x61);
const upstream = http.createServer((req, res) => {
  req.resume();
  req.on('end', () => {
    if (req.url?.startsWith('/hang')) return; // the timeout route: never answers
    const body = req.url?.startsWith('/ok/big') ? BIG : Buffer.from(`{"ok":true,"url":${JSON.stringify(req.url)}}`);
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length });
    res.end(body);
  });
});
await new Promise((resolve) => upstream.listen(0, '127.0.0.1', resolve));
const upstreamUrl = `http://127.0.0.1:${upstream.address().port}`;
const deadPort = await new Promise((resolve) => {
  const s = net.createServer().listen(0, '127.0.0.1', () => {
    const { port } = s.address();
    s.close(() => resolve(port));
  });
});

// ---- certgate ---------------------------------------------------------------------------------
const configFile = path.join(dir, 'certgate.yaml');
writeFileSync(configFile, JSON.stringify({
  listen: '127.0.0.1:0', admin: { listen: '127.0.0.1:0' }, log: { level: 'info' },
  tls: { bundle: path.join(pkiDir, 'server.pem'), client_ca: path.join(pkiDir, 'ca.crt'), crl: path.join(pkiDir, 'crl.pem') },
  routes: [
    { name: 'ok', path_prefix: '/ok', upstream: upstreamUrl },
    { name: 'limited', path_prefix: '/limited', upstream: upstreamUrl, max_body_bytes: 1000 },
    { name: 'dead', path_prefix: '/dead', upstream: `http://127.0.0.1:${deadPort}` },
    { name: 'hang', path_prefix: '/hang', upstream: upstreamUrl, timeout_ms: 200 },
  ],
  limits: { handshake_timeout_ms: 2000, header_timeout_ms: 2000, request_timeout_ms: 5000, max_header_bytes: 8192 },
  workers: WORKERS,
}));
const child = spawn(process.execPath, [path.join(REPO, 'dist/cli.js'), 'serve', '--config', configFile], { stdio: ['ignore', 'pipe', 'pipe'] });
let stderr = '';
child.stderr.setEncoding('utf8').on('data', (d) => (stderr += d));
const exited = new Promise((resolve) => child.once('close', (code, signal) => resolve({ code, signal })));
const listening = await new Promise((resolve, reject) => {
  let partial = '';
  const onData = (d) => {
    const lines = (partial + d).split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) {
      if (!line.includes('"certgate listening"')) continue;
      child.stdout.off('data', onData);
      child.stdout.resume(); // access logs from here on: read and dropped
      resolve(JSON.parse(line));
    }
  };
  child.stdout.setEncoding('utf8').on('data', onData);
  void exited.then((e) => reject(new Error(`certgate exited before listening: ${JSON.stringify(e)} ${stderr}`)));
});
const gateUrl = new URL(listening.url);
const port = Number(gateUrl.port);
const admin = listening.admin;
log(`certgate pid ${child.pid} (workers: ${WORKERS}) on ${listening.url}, admin ${admin}; ${MINUTES} min, concurrency ${CONCURRENCY}, rotation every ${ROTATE_MS / 1000} s`);

// ---- measurements -----------------------------------------------------------------------------
/** certgate's process and, under --workers N, its workers (the primary's children). */
function processTree() {
  const pids = [child.pid];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === child.pid) pids.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}
/** RSS and open fds summed over the process tree. */
function processStats() {
  let rssKb = 0;
  let fds = 0;
  for (const pid of processTree()) {
    try {
      rssKb += Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN);
      fds += readdirSync(`/proc/${pid}/fd`).length;
    } catch {
      // gone meanwhile
    }
  }
  return { rssMb: Math.round(rssKb / 102.4) / 10, fds };
}
async function metrics() {
  const text = await new Promise((resolve, reject) => {
    http.get(`${admin}/metrics`, { agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (c) => (body += c)).on('end', () => resolve(body));
    }).on('error', reject);
  });
  const sum = (name, filter = () => true) => text.split('\n')
    .filter((l) => l.startsWith(name) && (l[name.length] === '{' || l[name.length] === ' ') && filter(l))
    .reduce((acc, l) => acc + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
  return {
    requests: sum('certgate_http_requests_total'),
    reloadsOk: sum('certgate_reloads_total', (l) => l.includes('result="success"')),
    reloadsFailed: sum('certgate_reloads_total', (l) => l.includes('result="failure"')),
    open: sum('certgate_tls_connections_open'),
    handshakes: sum('certgate_tls_handshakes_total'),
    heapMb: Math.round(sum('nodejs_heap_size_used_bytes') / 1048576),
    externalMb: Math.round(sum('nodejs_external_memory_bytes') / 1048576),
    handshakeFailures: sum('certgate_tls_handshake_failures_total'),
    upstreamErrors: sum('certgate_upstream_errors_total'),
  };
}
async function until(cond, what, ms = 15_000) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await cond()) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  log(`warning: gave up waiting for ${what}`);
  return false;
}

// ---- traffic ----------------------------------------------------------------------------------
const keepAlive = new https.Agent({ keepAlive: true, maxSockets: Math.max(2, CONCURRENCY / 2) });

function request({ creds = good, method = 'GET', pathName = '/ok/x', body, agent = keepAlive, headers = {} }) {
  return new Promise((resolve) => {
    const req = https.request({
      host: '127.0.0.1', port, method, path: pathName, servername: 'localhost', agent, headers,
      ca: creds.ca, ...(creds.cert !== undefined && { cert: creds.cert, key: creds.key }),
    }, (res) => {
      let n = 0;
      res.on('data', (c) => (n += c.length));
      res.on('end', () => resolve({ status: res.statusCode, bytes: n }));
      res.on('error', (e) => resolve({ status: res.statusCode, error: e.code ?? e.message }));
    });
    req.setTimeout(10_000, () => req.destroy(new Error('client timeout')));
    req.on('error', (e) => resolve({ error: e.code ?? e.message }));
    req.end(body);
  });
}

/** Raw TCP or TLS bytes; resolves with what came back once the server closed (or after `abandonMs`). */
function raw({ bytes, useTls = false, abandonMs }) {
  return new Promise((resolve) => {
    const chunks = [];
    const socket = useTls
      ? tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ...good }, () => socket.write(bytes))
      : net.connect(port, '127.0.0.1', () => socket.write(bytes));
    socket.on('data', (c) => chunks.push(c));
    socket.on('error', () => undefined);
    const timer = setTimeout(() => socket.destroy(), abandonMs ?? 10_000);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks).toString('latin1'));
    });
  });
}
const status = (text) => Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0);

/** true when `got` is the expected outcome, else a short description of what happened instead. */
const expect = (got, want) => (got.status === want ? true : JSON.stringify(got).slice(0, 160));
const expectRaw = (text, want) => (status(text) === want ? true : JSON.stringify(text.slice(0, 80)));

/** kind → [weight, run() → true when the outcome was the expected one, else what happened]. */
const KINDS = {
  'good keep-alive GET': [40, async () => expect(await request({}), 200)],
  'good keep-alive 64 KiB GET': [5, async () => { const r = await request({ pathName: '/ok/big' }); return r.bytes === BIG.length ? expect(r, 200) : JSON.stringify(r); }],
  'good POST (new connection)': [10, async () => expect(await request({ method: 'POST', pathName: '/limited/p', body: 'x'.repeat(500), agent: false }), 200)],
  'body over max_body_bytes → 413': [4, async () => expect(await request({ method: 'POST', pathName: '/limited/p', body: 'x'.repeat(5000), agent: false }), 413)],
  'dead upstream → 502': [4, async () => expect(await request({ pathName: '/dead/x' }), 502)],
  'silent upstream → 504': [3, async () => expect(await request({ pathName: '/hang/x' }), 504)],
  'no route → 404': [3, async () => expect(await request({ pathName: '/nowhere' }), 404)],
  'no client certificate → 400': [5, async () => expect(await request({ creds: { ca }, agent: false }), 400)],
  'revoked client → 400': [3, async () => expect(await request({ creds: revoked, agent: false }), 400)],
  'garbage bytes → closed': [4, async () => { const t = await raw({ bytes: Buffer.from(Array.from({ length: 300 }, (_, i) => (i * 7919) & 0xff)) }); return t === '' ? true : JSON.stringify(t.slice(0, 80)); }],
  'plain HTTP → 400': [3, async () => expectRaw(await raw({ bytes: 'GET / HTTP/1.1\r\nHost: x\r\n\r\n' }), 400)],
  'oversized headers → 431': [3, async () => expectRaw(await raw({ useTls: true, bytes: `GET /ok HTTP/1.1\r\nHost: x\r\nX-Big: ${'b'.repeat(10_000)}\r\n\r\n` }), 431)],
  'CL+TE smuggling → 400': [3, async () => expectRaw(await raw({ useTls: true, bytes: 'POST /ok HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n' }), 400)],
  'absolute-URI → 400': [2, async () => expectRaw(await raw({ useTls: true, bytes: `GET http://127.0.0.1:${deadPort}/ HTTP/1.1\r\nHost: x\r\n\r\n` }), 400)],
  'abandoned handshake (slowloris, client gives up after 300 ms)': [2, async () => { await raw({ bytes: Buffer.from('160301', 'hex'), abandonMs: 300 }); return true; }],
  'abandoned headers (slowloris, client gives up after 300 ms)': [2, async () => { await raw({ useTls: true, bytes: 'GET /ok HTTP/1.1\r\nHost: x\r\n', abandonMs: 300 }); return true; }],
};
const table = Object.entries(KINDS).filter(([kind]) => opts.only === undefined || kind.includes(opts.only)).flatMap(([kind, [weight]]) => Array(weight).fill(kind));
if (table.length === 0) throw new Error(`--only ${opts.only}: no traffic kind matches`);
const counts = Object.fromEntries(Object.keys(KINDS).map((k) => [k, { ok: 0, failed: 0, samples: [] }]));
let rng = 0x5eed; // mulberry32: a fixed traffic sequence per run
const next = () => {
  rng = (rng + 0x6d2b79f5) >>> 0;
  let t = Math.imul(rng ^ (rng >>> 15), rng | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return (t ^ (t >>> 14)) >>> 0;
};

async function worker(deadline) {
  while (Date.now() < deadline) {
    const kind = table[next() % table.length];
    let outcome;
    try {
      outcome = await KINDS[kind][1]();
    } catch (err) {
      outcome = `threw ${err.message}`;
    }
    const c = counts[kind];
    if (outcome === true) c.ok++;
    else {
      c.failed++;
      if (c.samples.length < 3) c.samples.push(outcome);
    }
  }
}

// ---- rotations --------------------------------------------------------------------------------
let rotations = 0;
async function rotate() {
  rotations++;
  if (rotations % 2 === 1) {
    const caIssuer = await loadDevCa(pkiDir);
    const leaf = await createLeaf({
      issuer: caIssuer, keyType: caIssuer.keyType, usage: 'server', days: 30,
      subject: [['O', 'certgate soak'], ['CN', 'localhost']], san: { dns: ['localhost'], ip: ['127.0.0.1', '::1'] },
    });
    await writeFileAtomic(path.join(pkiDir, 'server.pem'), keyToPem(leaf.privateKey) + certToPem(leaf.cert) + caIssuer.pem, 0o600);
  } else {
    const extra = await issueClient(pkiDir, { cn: `soak-revoked-${rotations}` });
    await revoke(pkiDir, readFileSync(extra.certPath, 'utf8'));
  }
}

// ---- run --------------------------------------------------------------------------------------
await Promise.all(Array.from({ length: CONCURRENCY }, () => worker(Date.now() + 5000))); // warm-up
for (const c of Object.values(counts)) {
  c.ok = c.failed = 0;
  c.samples.length = 0;
}
const m0 = await metrics();
const start = processStats();
log(`start (after 5 s warm-up): RSS ${start.rssMb} MB (JS heap ${m0.heapMb} MB, external ${m0.externalMb} MB), fds ${start.fds}`);
const deadline = Date.now() + MINUTES * 60_000;
const rotator = setInterval(() => void (opts['no-rotate'] ? undefined : rotate().catch((e) => log('rotation failed:', e.message))), ROTATE_MS);
/** The first sample: RSS drift is measured from here (the first minute includes the process's own warm-up). */
let firstSample;
const sampler = setInterval(async () => {
  const s = processStats();
  const m = await metrics();
  firstSample ??= { rssMb: s.rssMb, handshakes: m.handshakes };
  const served = Object.values(counts).reduce((a, c) => a + c.ok, 0);
  const failed = Object.values(counts).reduce((a, c) => a + c.failed, 0);
  log(`RSS ${s.rssMb} MB (JS heap ${m.heapMb} MB, external ${m.externalMb} MB), fds ${s.fds}, open TLS ${m.open}, outcomes ok ${served} failed ${failed}, reloads ${m.reloadsOk - m0.reloadsOk}`);
}, Number(opts['sample-every']) * 1000);
await Promise.all(Array.from({ length: CONCURRENCY }, () => worker(deadline)));
clearInterval(rotator);
clearInterval(sampler);
keepAlive.destroy();
await until(async () => (await metrics()).open === 0, 'every TLS connection to close');
await until(() => serverSockets() === 0, 'every server-side socket to close');
const m1 = await metrics();
const end = processStats();

function serverSockets() {
  let n = 0;
  for (const f of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text = '';
    try {
      text = readFileSync(f, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols[1] && parseInt(cols[1].split(':').pop(), 16) === port && ['01', '03', '08'].includes(cols[3])) n++;
    }
  }
  return n;
}

child.kill('SIGTERM');
const exit = await exited;
upstream.close();

const served = Object.values(counts).reduce((a, c) => a + c.ok, 0);
const failed = Object.values(counts).reduce((a, c) => a + c.failed, 0);
console.log('\n== certgate soak ==');
console.log(`duration            ${MINUTES} min, concurrency ${CONCURRENCY}`);
console.log(`outcomes            ${served + failed} (as expected ${served}, failures ${failed})`);
console.log(`HTTP requests       ${m1.requests - m0.requests} answered by certgate (certgate_http_requests_total)`);
console.log(`rotations           ${rotations} (reloads ok ${m1.reloadsOk - m0.reloadsOk}, failed ${m1.reloadsFailed - m0.reloadsFailed})`);
console.log(`handshake failures  ${m1.handshakeFailures - m0.handshakeFailures}, upstream errors ${m1.upstreamErrors - m0.upstreamErrors}`);
console.log(`RSS                 ${start.rssMb} MB → ${end.rssMb} MB (${(end.rssMb - start.rssMb).toFixed(1)} MB); JS heap ${m0.heapMb} → ${m1.heapMb} MB, external ${m0.externalMb} → ${m1.externalMb} MB`);
if (firstSample !== undefined) {
  const conns = m1.handshakes - firstSample.handshakes;
  const kb = ((end.rssMb - firstSample.rssMb) * 1024) / Math.max(1, conns);
  console.log(`RSS drift           ${firstSample.rssMb} MB at the first sample → ${end.rssMb} MB over ${conns} more TLS handshakes (${kb.toFixed(2)} KB per handshake; flat is < 0.5)`);
}
console.log(`open fds            ${start.fds} → ${end.fds}`);
console.log(`exit after SIGTERM  ${JSON.stringify(exit)}`);
if (exit.code !== 0 && stderr !== '') console.log(`certgate stderr:\n${stderr}`);
console.log('per kind (ok / failed):');
for (const [kind, c] of Object.entries(counts)) {
  console.log(`  ${String(c.ok).padStart(8)} / ${String(c.failed).padEnd(6)} ${kind}`);
  for (const sample of c.samples) console.log(`                    e.g. ${sample}`);
}
if (opts.keep) console.log(`kept ${dir}`);
else rmSync(dir, { recursive: true, force: true });
process.exitCode = failed === 0 && exit.code === 0 ? 0 : 1;
