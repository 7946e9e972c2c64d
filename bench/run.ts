/**
 * `npm run bench`: certgate against nginx, both terminating mTLS with the same generated PKI (ECDSA P-256,
 * TLS 1.3, client certificate required, same CA and CRL, same allow rule), forwarding to the same upstream
 * (a separate nginx answering `return 200` on loopback), with identity headers and an access log on both.
 * Each phase runs the same load against each proxy in interleaved rounds (A B A B …) and prints medians:
 * req/s, p50/p99, failures, proxy CPU µs per request (from /proc: utime+stime of the whole process tree,
 * nginx's workers and cluster workers included), upstream connections and peak RSS, plus certgate's ratios
 * to nginx. Nothing is asserted on the numbers; they depend on the machine (see bench/README.md).
 *
 * `npm run bench -- --profile 10` instead runs certgate alone under `node --cpu-prof` with keep-alive load
 * and prints where its main thread spends the time per request.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { chmodSync, copyFileSync, mkdtempSync, mkdirSync, openSync, readFileSync, readdirSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import {
  H2_SESSIONS, H2_STREAMS, NGINX_PORT, PHASES, UPSTREAM_PORT, barePort, certgateAdminPort, certgatePort, parseVariant,
  type CertgateVariant, type Phase, type PhaseId,
} from './_config.js';
import { runAb, runSTime, type LoadResult } from './_load.js';
import { runH2 } from './_h2load.js';
import { CLK_TCK, establishedTo, machineTicks, processRss, processTree, reapedChildTicks, treeRss, treeTicks } from './_proc.js';
import type { BareOptions } from './_bare.js';
import { fmtInt, fmtRatio, markdown, median, mib, phaseTable, summarize, type Sample, type Summary } from './_report.js';
import { analyzeProfile } from './_profile.js';

const HERE = import.meta.dirname; // bench/.build
const BENCH = resolve(HERE, '..');
const ROOT = resolve(BENCH, '..');

const { values: args } = parseArgs({
  options: {
    seconds: { type: 'string', default: '5' },
    'short-seconds': { type: 'string', default: '3' },
    rounds: { type: 'string', default: '3' },
    concurrency: { type: 'string', short: 'c', default: '32' },
    phases: { type: 'string', default: PHASES.map((p) => p.id).join(',') },
    certgate: { type: 'string', default: `single,cluster-none:${os.availableParallelism()}` },
    dist: { type: 'string', default: join(ROOT, 'dist') },
    'nginx-workers': { type: 'string', default: 'auto' },
    'no-nginx': { type: 'boolean', default: false },
    bare: { type: 'string', default: 'answer,proxy' },
    'config-beside-logs': { type: 'boolean', default: false },
    'no-access-log': { type: 'boolean', default: false },
    'stime-parallel': { type: 'string', default: '4' },
    profile: { type: 'string' },
    'profile-phase': { type: 'string', default: 'keepalive' },
    json: { type: 'string' },
    keep: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
});

if (args.help) {
  console.log(`Usage: npm run bench -- [options]
  --seconds N          round length of the keep-alive and new-connection phases (default 5)
  --short-seconds N    round length of the other phases (default 3)
  --rounds N           rounds per proxy and phase, interleaved A B A B (default 3)
  -c, --concurrency N  ab -c (default 32)
  --phases LIST        ${PHASES.map((p) => p.id).join(',')}
  --certgate LIST      variants, comma-separated: [label=]single|cluster-none:N|cluster-rr:N[+assertion][@distdir]
                       (+assertion: headers.assertion on with an ES256 key, e.g. single,single+assertion)
                       (default single,cluster-none:<cores>: workers: 1, and workers: <cores>)
  --dist DIR           certgate build to run (default dist/)
  --nginx-workers N    worker_processes (default auto = cores)
  --no-nginx           certgate variants only (ratios then against the first)
  --bare LIST          bare-Node references (bench/_bare.ts), comma-separated, or none (default answer,proxy):
                       answer = node:https with certgate's mTLS options answering 200 itself;
                       proxy = the same forwarding on an undici Pool with no features
  --no-access-log      access log off for both (default: on for both)
  --config-beside-logs certgate's config in the folder its log is written to (before issue 19's watch fix,
                       chokidar then stat'ed the folder on every log write; default: a folder of its own)
  --stime-parallel N   concurrent openssl s_time processes (default 4)
  --profile SECONDS    profile certgate (node --cpu-prof) under --profile-phase load instead of comparing
  --json FILE          also write every round's numbers as JSON
  --keep               keep the temp directory (configs, logs, PKI)`);
  process.exit(0);
}

const SECONDS = Number(args.seconds);
const SHORT_SECONDS = Number(args['short-seconds']);
const ROUNDS = Number(args.rounds);
const CONCURRENCY = Number(args.concurrency);
const ACCESS_LOG = !args['no-access-log'];
const STIME_PARALLEL = Number(args['stime-parallel']);
const PROFILE_SECONDS = args.profile === undefined ? undefined : Number(args.profile);
const phases: Phase[] = args.phases.split(',').map((id) => {
  const p = PHASES.find((x) => x.id === id.trim());
  if (p === undefined) throw new Error(`unknown phase ${id}; known: ${PHASES.map((x) => x.id).join(', ')}`);
  return p;
});
const variants: CertgateVariant[] = args.certgate.split(',').map((s) => parseVariant(s.trim(), resolve(args.dist)));
const bareModes: ('answer' | 'proxy')[] = args.bare === 'none' || args.bare === '' ? [] : args.bare.split(',').map((m) => {
  const mode = m.trim();
  if (mode !== 'answer' && mode !== 'proxy') throw new Error(`--bare ${m}: answer, proxy or none`);
  return mode;
});
const BARE_LABEL = { answer: 'node https (answers)', proxy: 'node proxy (no features)' } as const;

const info = (msg: string): void => console.log(`=> ${msg}`);

// --- tools -------------------------------------------------------------------------------------------

function onPath(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

/** nginx and ab come from Debian (nginx, apache2-utils); installed here when we are root with apt-get. */
function ensureTools(): void {
  const missing = [!onPath('nginx') && 'nginx', !onPath('ab') && 'apache2-utils'].filter((x): x is string => typeof x === 'string');
  if (!onPath('openssl')) missing.push('openssl');
  if (missing.length === 0) return;
  const how = `apt-get install -y ${missing.join(' ')}`;
  if (process.getuid?.() === 0 && onPath('apt-get')) {
    info(`installing ${missing.join(', ')} (${how})`);
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    let r = spawnSync('apt-get', ['install', '-y', '-q', ...missing], { stdio: 'inherit', env });
    if (r.status !== 0) {
      spawnSync('apt-get', ['update', '-q'], { stdio: 'inherit', env });
      r = spawnSync('apt-get', ['install', '-y', '-q', ...missing], { stdio: 'inherit', env });
    }
    if (r.status === 0) return;
  }
  console.error(`bench: needs ${missing.join(', ')}. On Debian/Ubuntu: sudo ${how}`);
  process.exit(1);
}

// --- processes ---------------------------------------------------------------------------------------

const children: ChildProcess[] = [];
let tmp = '';

function start(cmd: string, argv: readonly string[], logName: string, env: NodeJS.ProcessEnv = process.env): ChildProcess {
  const out = openSync(join(tmp, `${logName}.out.log`), 'a');
  const err = openSync(join(tmp, `${logName}.err.log`), 'a');
  const child = spawn(cmd, argv, { cwd: ROOT, stdio: ['ignore', out, err], env });
  child.on('error', (e) => console.error(`${cmd}: ${e.message}`));
  children.push(child);
  return child;
}

function stopAll(): void {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGTERM');
}
process.on('exit', stopAll);
process.on('SIGINT', () => process.exit(130));
process.on('SIGTERM', () => process.exit(143));

function exited(child: ChildProcess, timeoutMs: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((res) => {
    const t = setTimeout(() => res(false), timeoutMs);
    child.once('exit', () => {
      clearTimeout(t);
      res(true);
    });
  });
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function waitFor(what: string, check: () => Promise<boolean>, child?: ChildProcess, logName?: string): Promise<void> {
  for (let i = 0; i < 150; i++) {
    if (child !== undefined && (child.exitCode !== null || child.signalCode !== null)) break;
    if (await check().catch(() => false)) return;
    await sleep(100);
  }
  const log = logName === undefined ? '' : ['err', 'out'].map((k) => {
    try {
      return readFileSync(join(tmp, `${logName}.${k}.log`), 'utf8').slice(-2000);
    } catch {
      return '';
    }
  }).join('\n');
  throw new Error(`${what} did not become ready\n${log}`);
}

const tcpOpen = (port: number): Promise<boolean> => new Promise((res) => {
  const s = net.connect(port, '127.0.0.1');
  s.once('connect', () => { s.destroy(); res(true); });
  s.once('error', () => res(false));
});

const httpGet = (url: string): Promise<{ status: number; body: string }> => new Promise((res, rej) => {
  http.get(url, (r) => {
    let body = '';
    r.setEncoding('utf8');
    r.on('data', (c: string) => (body += c));
    r.on('end', () => res({ status: r.statusCode ?? 0, body }));
  }).on('error', rej);
});

// --- setup -------------------------------------------------------------------------------------------

interface Pki { dir: string; serverPem: string; ca: string; crl: string; clientPem: string; clientCrt: string; clientKey: string }

function makePki(): Pki {
  const dir = join(tmp, 'pki');
  const cli = join(variants[0]?.dist ?? join(ROOT, 'dist'), 'cli.js');
  const r = spawnSync(process.execPath, [cli, 'certs', 'init', '--dir', dir], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`certs init failed: ${r.stderr}`);
  // nginx wants the key and the leaf+chain in separate files; certgate reads the bundle.
  const bundle = readFileSync(join(dir, 'server.pem'), 'utf8');
  const blocks = bundle.match(/-----BEGIN ([A-Z0-9 ]+)-----[\s\S]+?-----END \1-----\n?/g) ?? [];
  writeFileSync(join(dir, 'server.key'), blocks.filter((b) => b.includes('PRIVATE KEY')).join(''), { mode: 0o600 });
  writeFileSync(join(dir, 'server.crt'), blocks.filter((b) => b.includes('BEGIN CERTIFICATE')).join(''));
  return {
    dir, serverPem: join(dir, 'server.pem'), ca: join(dir, 'ca.crt'), crl: join(dir, 'crl.pem'),
    clientPem: join(dir, 'client.pem'), clientCrt: join(dir, 'client.crt'), clientKey: join(dir, 'client.key'),
  };
}

function fill(template: string, vars: Record<string, string | number>): string {
  return template.replace(/\{\{([A-Z_]+)\}\}/g, (_, k: string) => {
    if (!(k in vars)) throw new Error(`template variable ${k} not set`);
    return String(vars[k]);
  });
}

function writeNginxConfigs(pki: Pki): { upstream: string; proxy: string } {
  for (const d of ['nginx-proxy-tmp', 'nginx-upstream-tmp']) mkdirSync(join(tmp, d), { recursive: true });
  writeFileSync(join(tmp, '1m.bin'), Buffer.alloc(1 << 20, 0x61));
  const upstream = join(tmp, 'upstream.conf');
  writeFileSync(upstream, fill(readFileSync(join(BENCH, 'upstream.conf'), 'utf8'), { DIR: tmp, UPSTREAM_PORT }));
  const proxy = join(tmp, 'nginx.conf');
  writeFileSync(proxy, fill(readFileSync(join(BENCH, 'nginx.conf'), 'utf8'), {
    DIR: tmp, PKI: pki.dir, PORT: NGINX_PORT, UPSTREAM_PORT, WORKERS: args['nginx-workers'],
    ACCESS_LOG: ACCESS_LOG ? `access_log ${join(tmp, 'nginx-access.log')} bench buffer=64k flush=1s;` : 'access_log off;',
  }));
  return { upstream, proxy };
}

function writeCertgateConfig(pki: Pki, i: number, v: CertgateVariant): string {
  // Its own folder, as in a deployment (/etc/certgate): certgate watches the config's folder, and a log
  // written beside it would cost the watching process CPU per write (src/tls/watch.ts, issue 19).
  const dir = args['config-beside-logs'] ? tmp : join(tmp, `certgate-${i}`);
  mkdirSync(dir, { recursive: true });
  const file = join(dir, args['config-beside-logs'] ? `certgate-${i}.yaml` : 'certgate.yaml');
  const keyFile = join(dir, `assertion-${i}.key`);
  if (v.assertion) {
    writeFileSync(keyFile, generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'pem', type: 'pkcs8' }), { mode: 0o600 });
  }
  writeFileSync(file, `# written by bench/run.ts: the same PKI, upstream, policy and logging as bench/nginx.conf
listen: 127.0.0.1:${certgatePort(i)}
tls:
  bundle: ${pki.serverPem}
  client_ca: ${pki.ca}
  crl: ${pki.crl}
  client_auth: require
  min_version: TLSv1.2
headers:
  xfcc: false
  forward_cert: false
  rfc9440: false
${v.assertion ? `  assertion:\n    key_files: [${keyFile}]\n` : ''}routes:
  - name: bench
    path_prefix: /
    upstream: http://127.0.0.1:${UPSTREAM_PORT}
    timeout_ms: 30000
    allow:
      subject_cn: [dev-client]
admin:
  listen: 127.0.0.1:${certgateAdminPort(i)}
log:
  level: ${ACCESS_LOG ? 'info' : 'warn'}
${existsSync(join(v.dist, 'cluster')) ? `workers: ${v.workers}` : '# a build from before workers: N (one process)'}
`);
  return file;
}

interface Target {
  readonly label: string;
  readonly kind: 'nginx' | 'certgate' | 'bare';
  readonly port: number;
  readonly adminPort?: number;
  readonly child: ChildProcess;
  /** headers.assertion on: the check before measuring also wants X-Client-Cert-Assertion upstream. */
  readonly assertion?: boolean;
}

async function startNginx(conf: string, name: string, port: number): Promise<ChildProcess> {
  const child = start('nginx', ['-e', join(tmp, `${name}.startup.log`), '-p', tmp, '-c', conf], name);
  await waitFor(name, () => tcpOpen(port), child, name);
  return child;
}

async function startCertgate(v: CertgateVariant, i: number, pki: Pki, extraNodeArgs: readonly string[] = []): Promise<Target> {
  const cfg = writeCertgateConfig(pki, i, v);
  const name = `certgate-${i}`;
  const argv = [...extraNodeArgs, join(v.dist, 'cli.js'), 'serve', '--config', cfg];
  // workers: N > 1 is certgate's own node:cluster mode; SCHED_RR only when asked for, to compare.
  const env = { ...process.env, CERTGATE_CLUSTER_SCHED: v.mode === 'cluster-rr' ? 'rr' : 'none' };
  const child = start(process.execPath, argv, name, env);
  const admin = certgateAdminPort(i);
  await waitFor(v.label, async () => (await httpGet(`http://127.0.0.1:${admin}/readyz`)).status === 200, child, name);
  if (v.mode !== 'single') {
    // Every worker must be listening before the first round.
    await waitFor(`${v.label} workers`, async () => processTree(child.pid as number).length >= v.workers + 1, child, name);
    await sleep(500);
  }
  return { label: v.label, kind: 'certgate', port: certgatePort(i), adminPort: admin, child, assertion: v.assertion };
}

/** A bare-Node reference (_bare.ts) with certgate's TLS suite list, read from the build under test. */
async function startBare(mode: 'answer' | 'proxy', pki: Pki): Promise<Target> {
  const dist = variants[0]?.dist ?? join(ROOT, 'dist');
  const { CIPHERS } = (await import(join(dist, 'tls', 'context.js'))) as { CIPHERS: string };
  const o: BareOptions = { mode, port: barePort(mode), bundle: pki.serverPem, ca: pki.ca, crl: pki.crl, upstreamPort: UPSTREAM_PORT, ciphers: CIPHERS };
  const name = `bare-${mode}`;
  const child = start(process.execPath, [join(HERE, '_bare.js'), JSON.stringify(o)], name);
  await waitFor(name, () => tcpOpen(o.port), child, name);
  return { label: BARE_LABEL[mode], kind: 'bare', port: o.port, child };
}

/** One request through a proxy with the client certificate, a forged identity header and a check of what arrived. */
function probe(port: number, pki: Pki, withCert: boolean): Promise<{ status: number; body: string }> {
  return new Promise((res, rej) => {
    const req = https.request({
      host: '127.0.0.1', port, path: '/.bench/echo', method: 'GET', servername: 'localhost',
      ca: readFileSync(pki.ca),
      ...(withCert && { cert: readFileSync(pki.clientCrt), key: readFileSync(pki.clientKey) }),
      headers: { 'x-client-cert-subject': 'CN=forged', 'x-forwarded-for': '6.6.6.6', connection: 'close' },
      minVersion: 'TLSv1.3',
    }, (r) => {
      let body = '';
      r.setEncoding('utf8');
      r.on('data', (c: string) => (body += c));
      r.on('end', () => res({ status: r.statusCode ?? 0, body }));
    });
    req.on('error', rej);
    req.end();
  });
}

async function validate(t: Target, pki: Pki, assertion = false): Promise<void> {
  const ok = await probe(t.port, pki, true);
  const problems: string[] = [];
  if (t.kind === 'bare') {
    // No features to check: it answers (or forwards) with the certificate and refuses the handshake without.
    if (ok.status !== 200) problems.push(`status ${ok.status}`);
    const refused = await probe(t.port, pki, false).catch((e: Error) => ({ status: 0, body: e.message }));
    if (refused.status !== 0) problems.push(`a client without certificate got ${refused.status}`);
    if (problems.length > 0) throw new Error(`${t.label} failed the check before measuring: ${problems.join('; ')}`);
    console.log(`   ${t.label}: 200 with the certificate; no certificate → handshake refused`);
    return;
  }
  if (assertion && !/^assertion=eyJ[\w-]+\.[\w-]+\.[\w-]+$/m.test(ok.body)) problems.push('X-Client-Cert-Assertion missing');
  if (ok.status !== 200) problems.push(`status ${ok.status}`);
  if (!/^subject=CN=dev-client,/m.test(ok.body)) problems.push('subject header missing or forged');
  if (!/^fingerprint=[0-9a-f]{40,64}$/m.test(ok.body)) problems.push('fingerprint header missing');
  if (!/^forwarded_for=127\.0\.0\.1$/m.test(ok.body)) problems.push('X-Forwarded-For not set by the proxy');
  const refused = await probe(t.port, pki, false).catch((e: Error) => ({ status: 0, body: e.message }));
  if (refused.status === 200) problems.push('a client without certificate was served');
  if (problems.length > 0) throw new Error(`${t.label} failed the check before measuring: ${problems.join('; ')}\n${ok.body}`);
  console.log(`   ${t.label}: 200 with subject + fingerprint${assertion ? ' + assertion' : ''}, forged headers replaced; no certificate → ${refused.status || 'refused'}`);
}

// --- measuring ---------------------------------------------------------------------------------------

function phaseSeconds(p: Phase): number {
  return p.long ? SECONDS : SHORT_SECONDS;
}

async function load(p: Phase, t: Target, pki: Pki, seconds: number): Promise<LoadResult> {
  if (p.tool === 'h2') {
    return runH2({
      url: `https://127.0.0.1:${t.port}${p.path ?? '/'}`, cert: pki.clientCrt, key: pki.clientKey, ca: pki.ca,
      sessions: H2_SESSIONS, streams: H2_STREAMS, seconds,
    });
  }
  if (p.tool === 's_time') {
    return runSTime({ host: '127.0.0.1', port: t.port, cert: pki.clientCrt, key: pki.clientKey, ca: pki.ca, seconds, reuse: p.reuse === true, parallel: STIME_PARALLEL });
  }
  return runAb({
    url: `https://127.0.0.1:${t.port}${p.path ?? '/'}`, clientPem: pki.clientPem, concurrency: CONCURRENCY, seconds,
    keepAlive: p.keepAlive === true, ...(p.post === true && { postFile: join(tmp, 'post64k.bin') }),
  });
}

async function measure(p: Phase, t: Target, pki: Pki, round: number): Promise<Sample> {
  const pids = processTree(t.child.pid as number);
  let peakRss = 0;
  let peakRootRss = 0;
  let peakWorkerRss = 0;
  let upstreamConns = 0;
  const sampleRss = (): void => {
    peakRss = Math.max(peakRss, treeRss(pids));
    peakRootRss = Math.max(peakRootRss, processRss(pids[0] as number));
    for (const pid of pids.slice(1)) peakWorkerRss = Math.max(peakWorkerRss, processRss(pid));
  };
  sampleRss();
  const sampler = setInterval(() => {
    sampleRss();
    upstreamConns = Math.max(upstreamConns, establishedTo(UPSTREAM_PORT, pids));
  }, 200);
  const m0 = machineTicks();
  const p0 = treeTicks(pids);
  const c0 = reapedChildTicks();
  const t0 = process.hrtime.bigint();
  let r: LoadResult;
  try {
    r = await load(p, t, pki, phaseSeconds(p));
  } finally {
    clearInterval(sampler);
  }
  const wall = Number(process.hrtime.bigint() - t0) / 1e9;
  const proxyTicks = treeTicks(pids) - p0;
  const clientTicks = reapedChildTicks() - c0;
  const m1 = machineTicks();
  const cores = (ticks: number): number => ticks / CLK_TCK / wall;
  return {
    target: t.label, phase: p.id, round, completed: r.completed, perSecond: r.perSecond,
    ...(r.p50Ms !== undefined && { p50Ms: r.p50Ms }), ...(r.p99Ms !== undefined && { p99Ms: r.p99Ms }),
    failures: r.failures,
    cpuUsPerReq: r.completed > 0 ? (proxyTicks * 1e6) / CLK_TCK / r.completed : Number.NaN,
    proxyCores: cores(proxyTicks), clientCores: cores(clientTicks),
    otherCores: Math.max(0, cores(m1.busy - m0.busy) - cores(proxyTicks) - cores(clientTicks)),
    peakRss, upstreamConns, peakRootRss, ...(pids.length > 1 && { peakWorkerRss }), ...(r.tls !== undefined && { tls: r.tls }),
    ...(r.keepAliveRequests !== undefined && r.completed > 0 && { keepAliveShare: r.keepAliveRequests / r.completed }),
    ...(r.failures > 0 && { failureKinds: r.failureKinds ?? 'see the tool output' }),
  };
}

async function handshakeCounts(t: Target): Promise<string> {
  if (t.adminPort === undefined) return '';
  const r = await httpGet(`http://127.0.0.1:${t.adminPort}/metrics`).catch(() => ({ status: 0, body: '' }));
  return r.body.split('\n').filter((l) => l.startsWith('certgate_tls_handshakes_total{')).map((l) => l.replace('certgate_tls_handshakes_total', '')).join('  ');
}

// --- profile mode ------------------------------------------------------------------------------------

async function profileMode(pki: Pki, seconds: number): Promise<void> {
  const phase = PHASES.find((p) => p.id === args['profile-phase']);
  if (phase === undefined) throw new Error(`--profile-phase: unknown phase ${args['profile-phase']}`);
  const profDir = join(tmp, 'cpuprofile');
  mkdirSync(profDir, { recursive: true });
  const v = variants[0] as CertgateVariant;
  if (v.mode !== 'single') throw new Error('--profile runs one process: use --certgate single');
  const t = await startCertgate(v, 0, pki, ['--cpu-prof', '--cpu-prof-dir', profDir]);
  await validate(t, pki, t.assertion);
  info(`warm-up 2 s, then ${phase.id} load for ${seconds} s under node --cpu-prof`);
  await load(PHASES[0] as Phase, t, pki, 2);
  const before = await requestCount(t);
  const s = await measure(phase, t, pki, 1);
  const after = await requestCount(t);
  t.child.kill('SIGTERM');
  if (!(await exited(t.child, 30_000))) throw new Error('certgate did not exit after SIGTERM: no profile written');
  const file = readdirSync(profDir).find((f) => f.endsWith('.cpuprofile'));
  if (file === undefined) throw new Error(`no .cpuprofile in ${profDir}`);
  // The profile covers start-up and warm-up too: its per-request figures divide by every request served.
  const served = after;
  console.log(`\n${phase.title}: ${fmtInt(s.perSecond)} ${phase.unit}/s, ${fmtInt(s.cpuUsPerReq)} µs CPU/${phase.unit} (whole process), ${fmtInt(after - before)} requests in the timed run, ${fmtInt(served)} in the profile\n`);
  console.log(analyzeProfile(join(profDir, file), served).text);
  // The temp directory goes away at the end: keep the profile beside it.
  const kept = join(os.tmpdir(), `certgate-${new Date().toISOString().replace(/[:.]/g, '-')}.cpuprofile`);
  copyFileSync(join(profDir, file), kept);
  console.log(`\nprofile: ${kept} (open in Chrome DevTools → Performance, or speedscope)`);
}

async function requestCount(t: Target): Promise<number> {
  const r = await httpGet(`http://127.0.0.1:${t.adminPort}/metrics`);
  let n = 0;
  for (const m of r.body.matchAll(/^certgate_http_requests_total\{[^}]*\} (\d+)/gm)) n += Number(m[1]);
  return n;
}

// --- main --------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  ensureTools();
  for (const v of variants) {
    if (!existsSync(join(v.dist, 'cli.js'))) throw new Error(`${v.dist}/cli.js missing: run npm run build first`);
  }
  tmp = mkdtempSync(join(os.tmpdir(), 'certgate-bench-'));
  // nginx workers run as an unprivileged user: they must reach 1m.bin (keys stay 0600, read by the master).
  chmodSync(tmp, 0o755);
  info(`temp dir ${tmp}`);
  const pki = makePki();
  writeFileSync(join(tmp, 'post64k.bin'), Buffer.alloc(64 * 1024, 0x62));
  const confs = writeNginxConfigs(pki);
  await startNginx(confs.upstream, 'nginx-upstream', UPSTREAM_PORT);
  const nginxVersion = spawnSync('nginx', ['-v'], { encoding: 'utf8' }).stderr.trim();

  if (PROFILE_SECONDS !== undefined) {
    await profileMode(pki, PROFILE_SECONDS);
    return;
  }

  const targets: Target[] = [];
  if (!args['no-nginx']) {
    const child = await startNginx(confs.proxy, 'nginx-proxy', NGINX_PORT);
    await sleep(300); // workers up
    targets.push({ label: 'nginx', kind: 'nginx', port: NGINX_PORT, child });
  }
  for (const mode of bareModes) targets.push(await startBare(mode, pki));
  for (const [i, v] of variants.entries()) targets.push(await startCertgate(v, i, pki));
  const reference = targets[0]?.label as string;

  info('checking each proxy before measuring');
  for (const t of targets) await validate(t, pki, t.assertion);
  info('warm-up: 2 s keep-alive each');
  for (const t of targets) await load(PHASES[0] as Phase, t, pki, 2);

  const samples: Sample[] = [];
  const startedAt = Date.now();
  for (const p of phases) {
    info(`${p.title}: ${ROUNDS} rounds × ${phaseSeconds(p)} s, interleaved ${targets.map((t) => t.label).join(' / ')}`);
    for (let round = 1; round <= ROUNDS; round++) {
      for (const t of targets) {
        // The bare-Node references speak HTTP/1.1 only (they are its reference).
        if (p.tool === 'h2' && t.kind === 'bare') continue;
        const s = await measure(p, t, pki, round);
        samples.push(s);
        console.log(`   round ${round} ${t.label.padEnd(24)} ${fmtInt(s.perSecond).padStart(7)} ${p.unit}/s  p99 ${s.p99Ms ?? '–'} ms  ` +
          `${s.keepAliveShare !== undefined ? `ka ${(100 * s.keepAliveShare).toFixed(0)}%  ` : ''}fail ${s.failures}${s.failureKinds !== undefined ? ` (${s.failureKinds})` : ''}  ${fmtInt(s.cpuUsPerReq)} µs/${p.unit}  proxy ${s.proxyCores.toFixed(2)} / client ${s.clientCores.toFixed(2)} / other ${s.otherCores.toFixed(2)} cores`);
        await sleep(200);
      }
    }
  }
  const elapsed = (Date.now() - startedAt) / 1000;

  // --- report ---
  const cpus = os.cpus();
  console.log(`\n## certgate vs nginx — ${new Date().toISOString().slice(0, 10)}\n`);
  console.log(`Machine: ${cpus.length} × ${cpus[0]?.model.trim() ?? '?'}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, Linux ${os.release()}; ` +
    `Node ${process.version} (OpenSSL ${process.versions.openssl}); ${nginxVersion}; ab ${abVersion()}; ${opensslVersion()}.`);
  console.log(`Load: ab -c ${CONCURRENCY} -E client.pem -f TLS1.3, ${ROUNDS} interleaved rounds per phase (${SECONDS} s keep-alive/new-connection, ` +
    `${SHORT_SECONDS} s others); s_time ×${STIME_PARALLEL} processes. Access log ${ACCESS_LOG ? 'on' : 'off'} for both. ` +
    `nginx worker_processes ${args['nginx-workers']}. Medians of the rounds; failures summed. Measuring took ${elapsed.toFixed(0)} s.`);
  console.log('ab percentiles are whole milliseconds: a p99 ratio between small numbers (2 vs 3 ms) is coarse.');
  console.log('CPU µs/req = the proxy process tree\'s utime+stime over the round / completed requests (nginx workers and master, cluster primary and workers). ' +
    '"client cores" is ab/openssl, "other cores" everything else on the machine (the upstream nginx and any other work).\n');

  const byPhase = new Map<PhaseId, Summary[]>();
  for (const p of phases) {
    const rows = targets.filter((t) => samples.some((s) => s.phase === p.id && s.target === t.label))
      .map((t) => summarize(t.label, samples.filter((s) => s.phase === p.id && s.target === t.label)));
    byPhase.set(p.id, rows);
    console.log(phaseTable(p.title, p.unit, rows, reference, p.tool === 'ab'));
    const notes: string[] = [];
    // What ab negotiated with each proxy (protocol, suite): nginx follows the client's suite order, certgate its own.
    const suites = targets.map((t) => [t.label, samples.find((s) => s.phase === p.id && s.target === t.label && s.tls !== undefined)?.tls] as const)
      .filter((x): x is readonly [string, string] => x[1] !== undefined);
    if (suites.length > 0) notes.push(`ab negotiated ${suites.map(([l, v]) => `${l} ${v}`).join(', ')}`);
    if (p.keepAlive === true) {
      // ab speaks HTTP/1.0 with "Connection: Keep-Alive": a proxy that answers "Connection: close" makes every
      // request a new TLS handshake, and the phase measures handshakes, not keep-alive requests.
      notes.push(`requests on a reused connection: ${targets.map((t) => {
        const v = samples.filter((s) => s.phase === p.id && s.target === t.label && s.keepAliveShare !== undefined).map((s) => s.keepAliveShare as number);
        return `${t.label} ${v.length === 0 ? '–' : `${(100 * median(v)).toFixed(0)}%`}`;
      }).join(', ')}`);
    }
    console.log(notes.length > 0 ? `\n(${notes.join('; ')})\n` : '');
  }

  // The headline table, shaped like the issue's.
  const get = (id: PhaseId, label: string): Summary | undefined => byPhase.get(id)?.find((r) => r.target === label);
  const ref = (id: PhaseId): Summary | undefined => get(id, reference);
  const head = ['proxy', 'keep-alive req/s', '× nginx', 'CPU µs/req', 'CPU × nginx', 'p99 ms (× nginx)', 'new conn/s', '× nginx', 'resumed conn/s', '× nginx',
    'POST 64 KiB req/s', '× nginx', '1 MiB req/s', '× nginx', 'peak RSS MiB'];
  const body = targets.map((t) => {
    const ka = get('keepalive', t.label);
    const nc = get('newconn', t.label);
    const rs = get('resume-reuse', t.label);
    const po = get('post64k', t.label);
    const mb = get('get1m', t.label);
    const rss = Math.max(...[...byPhase.values()].map((rows) => rows.find((r) => r.target === t.label)?.peakRss ?? 0));
    return [
      t.label, fmtInt(ka?.perSecond ?? NaN), fmtRatio(ka?.perSecond, ref('keepalive')?.perSecond),
      fmtInt(ka?.cpuUsPerReq ?? NaN), fmtRatio(ka?.cpuUsPerReq, ref('keepalive')?.cpuUsPerReq),
      ka?.p99Ms === undefined ? '–' : `${ka.p99Ms} (${fmtRatio(ka.p99Ms, ref('keepalive')?.p99Ms)})`,
      fmtInt(nc?.perSecond ?? NaN), fmtRatio(nc?.perSecond, ref('newconn')?.perSecond),
      fmtInt(rs?.perSecond ?? NaN), fmtRatio(rs?.perSecond, ref('resume-reuse')?.perSecond),
      fmtInt(po?.perSecond ?? NaN), fmtRatio(po?.perSecond, ref('post64k')?.perSecond),
      fmtInt(mb?.perSecond ?? NaN), fmtRatio(mb?.perSecond, ref('get1m')?.perSecond),
      mib(rss),
    ];
  });
  console.log(`### Summary (medians; ratios × ${reference}; p99 in whole ms)\n\n${markdown(head, body)}\n`);
  console.log(issueTable(targets.map((t) => t.label), reference, get, byPhase));
  for (const t of targets) {
    const c = await handshakeCounts(t);
    if (c !== '') console.log(`${t.label} certgate_tls_handshakes_total: ${c}`);
  }
  if (args.json !== undefined) writeFileSync(args.json, JSON.stringify({ machine: os.cpus()[0]?.model, samples }, null, 2));
}

/**
 * Issue 19's table: keep-alive req/s, CPU µs/req, p99, new conn/s, CPU µs per new connection (the newconn
 * phase: one handshake + one request each), RSS (the whole tree, and its root / largest other process), and
 * the HTTP/2 phase when it ran; each with its ratio to the reference (nginx).
 */
function issueTable(labels: readonly string[], reference: string, get: (id: PhaseId, label: string) => Summary | undefined,
  byPhase: ReadonlyMap<PhaseId, Summary[]>): string {
  const x = (v: number | undefined, r: number | undefined): string => (v === undefined || !Number.isFinite(v) ? '–' : `${fmtInt(v)} (${fmtRatio(v, r)}×)`);
  const p99 = (s: Summary | undefined, r: Summary | undefined): string => (s?.p99Ms === undefined ? '–' : `${s.p99Ms} (${fmtRatio(s.p99Ms, r?.p99Ms)}×)`);
  const withH2 = byPhase.has('h2');
  const head = ['', 'keep-alive req/s', 'CPU µs/req', 'p99 ms', 'new conn/s', 'CPU µs/conn', 'p99 ms (new conn)', 'peak RSS MiB (root / largest other)',
    ...(withH2 ? ['h2 req/s', 'h2 CPU µs/req'] : [])];
  const rows = labels.map((label) => {
    const ka = get('keepalive', label);
    const nc = get('newconn', label);
    const h2 = get('h2', label);
    const rk = get('keepalive', reference);
    const rn = get('newconn', reference);
    const rh = get('h2', reference);
    const all = [...byPhase.values()].map((rows) => rows.find((r) => r.target === label)).filter((r): r is Summary => r !== undefined);
    const max = (f: (r: Summary) => number | undefined): number | undefined => {
      const v = all.map(f).filter((n): n is number => n !== undefined && Number.isFinite(n));
      return v.length === 0 ? undefined : Math.max(...v);
    };
    const worker = max((r) => r.peakWorkerRss);
    const rss = `${mib(max((r) => r.peakRss) ?? NaN)} (${mib(max((r) => r.peakRootRss) ?? NaN)}${worker === undefined ? '' : ` / ${mib(worker)}`})`;
    return [label, x(ka?.perSecond, rk?.perSecond), x(ka?.cpuUsPerReq, rk?.cpuUsPerReq), p99(ka, rk),
      x(nc?.perSecond, rn?.perSecond), x(nc?.cpuUsPerReq, rn?.cpuUsPerReq), p99(nc, rn), rss,
      ...(withH2 ? [x(h2?.perSecond, rh?.perSecond), x(h2?.cpuUsPerReq, rh?.cpuUsPerReq)] : [])];
  });
  return `### Issue 19's table (medians; (×) = ratio to ${reference}; CPU from /proc, the robust figure on a shared machine)\n\n${markdown(head, rows)}\n`;
}

function abVersion(): string {
  const r = spawnSync('ab', ['-V'], { encoding: 'utf8' });
  return /Version ([\d.]+)/.exec(r.stdout)?.[1] ?? '?';
}
function opensslVersion(): string {
  return spawnSync('openssl', ['version'], { encoding: 'utf8' }).stdout.trim();
}

try {
  await main();
} catch (err) {
  console.error(`bench: ${(err as Error).stack ?? String(err)}`);
  process.exitCode = 1;
} finally {
  stopAll();
  await Promise.all(children.map((c) => exited(c, 10_000)));
  if (!args.keep && tmp !== '') rmSync(tmp, { recursive: true, force: true });
  else if (tmp !== '') info(`kept ${tmp}`);
}
