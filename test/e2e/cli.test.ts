/**
 * The `certgate` command line as a user runs it: `node dist/cli.js ...` in a child process, real
 * sockets on 127.0.0.1:0, the per-run test PKI (and a dev PKI made by `certs init`), verification on.
 * A child is awaited on its own exit or on its "certgate listening" log line, never on a sleep; every
 * child still running is killed in after().
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { listenEchoUpstream } from '../../dist/echo-upstream.js';
import { createTestPki, type TestPki } from '../helpers/pki.js';
import { collectJsonLines } from '../helpers/logs.js';
import { mtlsRequest } from '../helpers/client.js';
import { waitFor } from '../helpers/wait.js';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const CLI = path.join(REPO, 'dist', 'cli.js');
const DAY = 86_400_000;
const TEST_TIMEOUT = 30_000;

interface Exit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

interface Run extends Exit {
  readonly stdout: string;
  readonly stderr: string;
}

const children = new Set<ChildProcess>();

function track(child: ChildProcess): Promise<Exit> {
  children.add(child);
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    // 'close' (not 'exit'): every byte of stdout/stderr has been read by then.
    child.once('close', (code, signal) => {
      children.delete(child);
      resolve({ code, signal });
    });
  });
}

/** Runs a command to completion and collects its output. */
async function run(cmd: string, args: readonly string[], opts: { env?: NodeJS.ProcessEnv; input?: string } = {}): Promise<Run> {
  const child = spawn(cmd, args, { cwd: REPO, env: opts.env ?? childEnv(), stdio: ['pipe', 'pipe', 'pipe'] });
  const exited = track(child);
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  child.stdin.on('error', () => undefined); // a child that exits before reading stdin is not our failure
  child.stdin.end(opts.input ?? '');
  const exit = await exited;
  return { ...exit, stdout, stderr };
}

/** The environment for children: no inherited CERTGATE_* (a developer's shell must not change results). */
function childEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('CERTGATE_')) env[k] = v;
  return { ...env, ...extra };
}

function cli(args: readonly string[], opts: { env?: NodeJS.ProcessEnv } = {}): Promise<Run> {
  return run(process.execPath, [CLI, ...args], opts);
}

function lines(text: string): string[] {
  return text.split('\n').filter((l) => l.trim() !== '');
}

/** A usage/start-up failure: exactly one stderr line, no stack trace. Returns that line. */
function assertOneErrorLine(r: Run, what: string): string {
  const err = lines(r.stderr);
  assert.equal(err.length, 1, `${what}: expected exactly one stderr line, got ${err.length}:\n${r.stderr}`);
  assert.doesNotMatch(r.stderr, /^\s{4}at /m, `${what}: stack trace on stderr:\n${r.stderr}`);
  return err[0]!;
}

interface Serving {
  readonly child: ChildProcess;
  readonly url: string;
  readonly admin: string;
  readonly logLines: Record<string, unknown>[];
  readonly stderr: () => string;
  readonly exited: Promise<Exit>;
}

/** Spawns `serve` and waits for its "certgate listening" JSON log line (or its early exit). */
async function startServe(args: readonly string[], env: NodeJS.ProcessEnv = childEnv()): Promise<Serving> {
  const child = spawn(process.execPath, [CLI, 'serve', ...args], { cwd: REPO, env, stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = track(child);
  let exit: Exit | undefined;
  void exited.then((e) => (exit = e), () => undefined);
  const logLines = collectJsonLines(child.stdout);
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const listening = await waitFor(() => {
    if (exit !== undefined) throw new Error(`serve exited (${JSON.stringify(exit)}) before listening; stderr:\n${stderr}`);
    return logLines.find((l) => l.msg === 'certgate listening');
  }, 'the "certgate listening" log line', 15_000);
  assert.equal(typeof listening.url, 'string', 'listening line has a url');
  assert.equal(typeof listening.admin, 'string', 'listening line has an admin url');
  return { child, url: listening.url as string, admin: listening.admin as string, logLines, stderr: () => stderr, exited };
}

/** The product's whoami upstream, plus a count of the requests that reached it. */
async function startCountingWhoami(): Promise<{ url: string; requests: () => number; close(): Promise<void> }> {
  const w = await listenEchoUpstream('127.0.0.1', 0);
  let n = 0;
  w.server.on('request', () => void n++);
  return { url: w.url, requests: () => n, close: () => w.close() };
}

function hasTool(cmd: string, args: readonly string[]): boolean {
  const r = spawnSync(cmd, args, { stdio: 'ignore' });
  return r.error === undefined && r.status === 0;
}

let pki: TestPki;
let tmp: string;
let whoami: Awaited<ReturnType<typeof startCountingWhoami>>;

/** Writes a file in the per-run temp dir; key-bearing files get 0600 like a real deployment. */
function writeTmp(name: string, data: string, mode = 0o600): string {
  const file = path.join(tmp, name);
  writeFileSync(file, data, { mode });
  return file;
}

/** A serve/check config as YAML text (JSON-quoted scalars are valid YAML). */
function configText(tls: { bundle: string; client_ca: string; crl?: string }): string {
  return [
    'listen: 127.0.0.1:0',
    'tls:',
    `  bundle: ${JSON.stringify(tls.bundle)}`,
    `  client_ca: ${JSON.stringify(tls.client_ca)}`,
    ...(tls.crl !== undefined ? [`  crl: ${JSON.stringify(tls.crl)}`] : []),
    'routes:',
    '  - name: whoami',
    '    path_prefix: /',
    `    upstream: ${JSON.stringify(whoami.url)}`,
    'admin:',
    '  listen: 127.0.0.1:0',
    'log:',
    '  level: info',
    '',
  ].join('\n');
}

let goodConfig: string;
/** Config whose bundle is key + expired server leaf + intermediate. */
let expiredConfig: string;
let expiredBundle: string;
/** Config whose bundle holds a key that does not belong to the leaf. */
let mismatchConfig: string;
let mismatchBundle: string;
let missingConfig: string;
let missingBundle: string;
/** A config with a typo key "cleint_auth" at line 5, column 3. */
let typoConfig: string;

before(async () => {
  pki = await createTestPki();
  tmp = mkdtempSync(path.join(os.tmpdir(), 'certgate-cli-'));
  whoami = await startCountingWhoami();

  goodConfig = writeTmp('good.yaml', configText({ bundle: pki.serverBundle.pemPath, client_ca: pki.clientCa.path }), 0o644);

  const now = Date.now();
  const expiredLeaf = await pki.issueClient({
    name: 'server-expired', usage: 'server', subject: [['CN', 'localhost']], san: { dns: ['localhost'], ip: ['127.0.0.1', '::1'] },
    notBefore: new Date(now - 20 * DAY), notAfter: new Date(now - DAY),
  });
  expiredBundle = writeTmp('server-expired-bundle.pem', expiredLeaf.key + expiredLeaf.cert + pki.intermediate.cert);
  expiredConfig = writeTmp('expired.yaml', configText({ bundle: expiredBundle, client_ca: pki.clientCa.path }), 0o644);

  // The good client's key in front of the server leaf: a well-formed bundle whose key is not the leaf's.
  mismatchBundle = writeTmp('server-mismatch-bundle.pem', pki.clients.good.key + pki.serverBundle.cert + pki.intermediate.cert);
  mismatchConfig = writeTmp('mismatch.yaml', configText({ bundle: mismatchBundle, client_ca: pki.clientCa.path }), 0o644);

  missingBundle = path.join(tmp, 'no-such-bundle.pem');
  missingConfig = writeTmp('missing.yaml', configText({ bundle: missingBundle, client_ca: pki.clientCa.path }), 0o644);

  typoConfig = writeTmp('typo.yaml', [
    'listen: 127.0.0.1:0',
    'tls:',
    `  bundle: ${JSON.stringify(pki.serverBundle.pemPath)}`,
    `  client_ca: ${JSON.stringify(pki.clientCa.path)}`,
    '  cleint_auth: require',
    'routes:',
    '  - path_prefix: /',
    `    upstream: ${JSON.stringify(whoami.url)}`,
    'admin:',
    '  listen: 127.0.0.1:0',
    '',
  ].join('\n'), 0o644);
});

after(async () => {
  for (const child of children) child.kill('SIGKILL');
  try {
    await whoami?.close();
  } finally {
    pki?.cleanup();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  }
});

describe('certgate --version and --help', () => {
  it('--version prints "certgate <package.json version>"', async () => {
    const pkg = JSON.parse(readFileSync(path.join(REPO, 'package.json'), 'utf8')) as { version: string };
    const r = await cli(['--version']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), `certgate ${pkg.version}`);
    assert.equal(r.stderr, '');
  });

  it('--help prints the top-level usage and exits 0', async () => {
    const r = await cli(['--help']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^Usage: certgate /m);
    for (const cmd of ['serve', 'check', 'certs', 'whoami']) assert.match(r.stdout, new RegExp(`^\\s+${cmd}\\b`, 'm'), `--help lists ${cmd}`);
  });

  for (const cmd of ['serve', 'check', 'certs', 'certs init', 'certs issue', 'certs sign', 'certs revoke', 'whoami']) {
    it(`${cmd} --help prints "Usage: certgate ${cmd}" and exits 0`, async () => {
      const r = await cli([...cmd.split(' '), '--help']);
      assert.equal(r.code, 0, `exit code; stderr:\n${r.stderr}`);
      assert.ok(lines(r.stdout)[0]?.startsWith(`Usage: certgate ${cmd}`), `first line is the usage of ${cmd}:\n${r.stdout}`);
      assert.equal(r.stderr, '');
    });
  }
});

describe('usage errors: exit 2, one stderr line, no stack trace', () => {
  const cases: [string, string[]][] = [
    ['an unknown command', ['frobnicate']],
    ['an unknown top-level flag', ['--frobnicate']],
    ['an unknown serve flag', ['serve', '--frobnicate']],
    ['a stray serve argument', ['serve', 'extra']],
    ['an unknown check flag', ['check', '--frobnicate']],
    ['check --config without its value', ['check', '--config']],
    ['an unknown certs subcommand', ['certs', 'frobnicate']],
    ['an unknown certs init flag', ['certs', 'init', '--frobnicate']],
    ['certs issue without --cn', ['certs', 'issue', '--dir', 'x']],
    ['an unknown whoami flag', ['whoami', '--frobnicate']],
  ];
  for (const [what, args] of cases) {
    it(`${what} (${args.join(' ')})`, async () => {
      const r = await cli(args);
      assert.equal(r.code, 2, `exit code; stderr:\n${r.stderr}`);
      const line = assertOneErrorLine(r, what);
      assert.match(line, /\[CG_USAGE\]$/, line);
      assert.match(line, /fix: run certgate .*--help/, line);
      assert.equal(r.stdout, '', 'nothing on stdout');
    });
  }
});

describe('serve refuses a bad config at once (exit 2, one line)', () => {
  it('a typo key: file:line:col and the fix', { timeout: TEST_TIMEOUT }, async () => {
    const r = await cli(['serve', '--config', typoConfig]);
    assert.equal(r.code, 2, `exit code; stderr:\n${r.stderr}`);
    const line = assertOneErrorLine(r, 'typo key');
    assert.ok(line.includes(`${typoConfig}:5:3:`), `names file:line:col (${typoConfig}:5:3): ${line}`);
    assert.match(line, /cleint_auth/, line);
    assert.match(line, /fix: rename it to "client_auth"/, line);
    assert.match(line, /\[CG_CONFIG_INVALID\]/, line);
    assert.doesNotMatch(r.stdout, /certgate listening/, 'nothing listened');
  });

  it('CERTGATE_CONFIG names the file when --config is absent', { timeout: TEST_TIMEOUT }, async () => {
    const r = await cli(['serve'], { env: childEnv({ CERTGATE_CONFIG: typoConfig }) });
    assert.equal(r.code, 2, `exit code; stderr:\n${r.stderr}`);
    const line = assertOneErrorLine(r, 'CERTGATE_CONFIG typo');
    assert.ok(line.includes(`${typoConfig}:5:3:`), `names the env's file: ${line}`);
    // and --config wins over the environment
    const c = await cli(['check', '--config', goodConfig], { env: childEnv({ CERTGATE_CONFIG: typoConfig }) });
    assert.equal(c.code, 0, `--config beats CERTGATE_CONFIG; output:\n${c.stdout}${c.stderr}`);
  });

  it('a missing bundle file: names the file', { timeout: TEST_TIMEOUT }, async () => {
    const r = await cli(['serve', '--config', missingConfig]);
    assert.equal(r.code, 2, `exit code; stderr:\n${r.stderr}`);
    const line = assertOneErrorLine(r, 'missing bundle');
    assert.ok(line.includes(missingBundle), `names ${missingBundle}: ${line}`);
    assert.match(line, /\[CG_FILE_READ\]/, line);
    assert.doesNotMatch(r.stdout, /certgate listening/, 'nothing listened');
  });

  it('a key that does not match the leaf: names the file', { timeout: TEST_TIMEOUT }, async () => {
    const r = await cli(['serve', '--config', mismatchConfig]);
    assert.equal(r.code, 2, `exit code; stderr:\n${r.stderr}`);
    const line = assertOneErrorLine(r, 'key mismatch');
    assert.ok(line.includes(mismatchBundle), `names ${mismatchBundle}: ${line}`);
    assert.match(line, /\[CG_KEY_MISMATCH\]/, line);
    assert.doesNotMatch(r.stdout, /certgate listening/, 'nothing listened');
  });

  it('an expired server leaf: CG_CERT_EXPIRED naming the bundle', { timeout: TEST_TIMEOUT }, async () => {
    const r = await cli(['serve', '--config', expiredConfig]);
    assert.equal(r.code, 2, `exit code; stderr:\n${r.stderr}`);
    const line = assertOneErrorLine(r, 'expired server leaf');
    assert.ok(line.includes(expiredBundle), `names ${expiredBundle}: ${line}`);
    assert.match(line, /\[CG_CERT_EXPIRED\]/, line);
    assert.doesNotMatch(r.stdout, /certgate listening/, 'nothing listened');
  });
});

describe('serve with a good config', () => {
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    it(`proxies an mTLS request with identity headers, then exits 0 on ${signal}`, { timeout: TEST_TIMEOUT }, async () => {
      const s = await startServe(['--config', goodConfig]);
      const ready = await fetch(`${s.admin}/readyz`);
      assert.equal(ready.status, 200, '/readyz once listening');
      const before = whoami.requests();
      const good = pki.clients.good;
      const r = await mtlsRequest(s.url, { cert: good.cert, key: good.key, ca: pki.root.cert }, { path: '/cli-test' });
      assert.equal(r.status, 200, r.body);
      const echo = r.json<{ path: string; headers: Record<string, string> }>();
      assert.equal(echo.path, '/cli-test');
      assert.equal(echo.headers['x-client-cert-verified'], 'SUCCESS');
      assert.equal(echo.headers['x-client-cert-subject'], 'CN=svc-a,OU=payments');
      assert.equal(echo.headers['x-client-cert-fingerprint'], good.x509.fingerprint256.replaceAll(':', '').toLowerCase());
      assert.equal(whoami.requests(), before + 1, 'the upstream saw the request');

      s.child.kill(signal);
      const exit = await s.exited;
      assert.deepEqual(exit, { code: 0, signal: null }, `exit after ${signal}; stderr:\n${s.stderr()}`);
      assert.ok(s.logLines.some((l) => l.msg === 'stopping' && l.signal === signal), `logged "stopping" with ${signal}`);
      assert.equal(s.stderr(), '', 'nothing on stderr');
    });
  }
});

describe('check', () => {
  it('a good config: exit 0 and an "ok:" line', { timeout: TEST_TIMEOUT }, async () => {
    const r = await cli(['check', '--config', goodConfig]);
    assert.equal(r.code, 0, `exit code; output:\n${r.stdout}${r.stderr}`);
    assert.ok(lines(r.stdout).some((l) => l.startsWith('ok:') && l.includes(goodConfig)), r.stdout);
    assert.doesNotMatch(r.stdout, /^error:/m);
  });

  it('an expired server leaf: exit 1, CG_CERT_EXPIRED naming the bundle', { timeout: TEST_TIMEOUT }, async () => {
    const r = await cli(['check', '--config', expiredConfig]);
    assert.equal(r.code, 1, `exit code; output:\n${r.stdout}${r.stderr}`);
    assert.ok(
      lines(r.stdout).some((l) => l.startsWith('error:') && l.includes('CG_CERT_EXPIRED') && l.includes(expiredBundle)),
      `an error line with CG_CERT_EXPIRED and ${expiredBundle}:\n${r.stdout}`,
    );
    assert.doesNotMatch(r.stdout, /^ok:/m);
  });

  it('a key/leaf mismatch: exit 1, CG_KEY_MISMATCH naming the bundle', { timeout: TEST_TIMEOUT }, async () => {
    const r = await cli(['check', '--config', mismatchConfig]);
    assert.equal(r.code, 1, `exit code; output:\n${r.stdout}${r.stderr}`);
    assert.ok(
      lines(r.stdout).some((l) => l.startsWith('error:') && l.includes('CG_KEY_MISMATCH') && l.includes(mismatchBundle)),
      `an error line with CG_KEY_MISMATCH and ${mismatchBundle}:\n${r.stdout}`,
    );
  });

  it('--json prints a parseable array of findings', { timeout: TEST_TIMEOUT }, async () => {
    const good = await cli(['check', '--config', goodConfig, '--json']);
    assert.equal(good.code, 0, good.stdout + good.stderr);
    const goodFindings = JSON.parse(good.stdout) as { severity: string; code: string; message: string }[];
    assert.ok(Array.isArray(goodFindings), 'an array');
    for (const f of goodFindings) {
      assert.match(f.severity, /^(warning|info)$/, JSON.stringify(f));
      assert.match(f.code, /^CG_[A-Z_]+$/, JSON.stringify(f));
      assert.equal(typeof f.message, 'string');
    }

    const bad = await cli(['check', '--config', mismatchConfig, '--json']);
    assert.equal(bad.code, 1, bad.stdout + bad.stderr);
    const badFindings = JSON.parse(bad.stdout) as { severity: string; code: string; file?: string }[];
    assert.ok(Array.isArray(badFindings), 'an array');
    assert.ok(
      badFindings.some((f) => f.severity === 'error' && f.code === 'CG_KEY_MISMATCH' && f.file === mismatchBundle),
      JSON.stringify(badFindings, null, 2),
    );
  });

  it('CERTGATE_CONFIG names the file when --config is absent', { timeout: TEST_TIMEOUT }, async () => {
    const r = await cli(['check'], { env: childEnv({ CERTGATE_CONFIG: mismatchConfig }) });
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stdout, /CG_KEY_MISMATCH/);
  });

  it('a usage error exits 2', async () => {
    const r = await cli(['check', '--config', goodConfig, '--frobnicate']);
    assert.equal(r.code, 2, r.stdout + r.stderr);
    assertOneErrorLine(r, 'check usage');
  });
});

describe('certs init/issue/revoke: the dev PKI end to end', () => {
  let dir: string;
  let devConfig: string;
  let serving: Serving;

  before(async () => {
    dir = path.join(tmp, 'dev-pki');
    const init = await cli(['certs', 'init', '--dir', dir]);
    assert.equal(init.code, 0, init.stderr);
    for (const f of ['ca.crt', 'ca.key', 'server.pem', 'client.crt', 'client.key', 'client.pem', 'client.p12', 'client.p12.pass', 'crl.pem']) {
      assert.ok(existsSync(path.join(dir, f)), `certs init wrote ${f}`);
    }
    const issueBad = await cli(['certs', 'issue', '--dir', dir, '--cn', 'svc-revoked', '--ou', 'payments']);
    assert.equal(issueBad.code, 0, issueBad.stderr);
    assert.deepEqual(lines(issueBad.stdout), ['crt', 'key', 'pem'].map((x) => path.join(dir, `svc-revoked.${x}`)));
    const revoke = await cli(['certs', 'revoke', '--dir', dir, '--cert', path.join(dir, 'svc-revoked.crt')]);
    assert.equal(revoke.code, 0, revoke.stderr);
    assert.match(revoke.stdout, /revoked; .*crl\.pem re-issued/);
    const issueOk = await cli(['certs', 'issue', '--dir', dir, '--cn', 'svc-ok', '--san-uri', 'spiffe://example.org/svc-ok']);
    assert.equal(issueOk.code, 0, issueOk.stderr);

    devConfig = writeTmp('dev.yaml', configText({
      bundle: path.join(dir, 'server.pem'), client_ca: path.join(dir, 'ca.crt'), crl: path.join(dir, 'crl.pem'),
    }), 0o644);
    serving = await startServe(['--config', devConfig]);
  });

  after(async () => {
    if (serving && serving.child.exitCode === null && serving.child.signalCode === null) {
      serving.child.kill('SIGTERM');
      await serving.exited;
    }
  });

  it('check accepts the dev PKI config', { timeout: TEST_TIMEOUT }, async () => {
    const r = await cli(['check', '--config', devConfig]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /^ok:/m);
  });

  it('curl --cert D/client.pem --cacert D/ca.crt gets through with its identity', { timeout: TEST_TIMEOUT }, async (t) => {
    if (!hasTool('curl', ['--version'])) return t.skip('curl is not installed');
    const before = whoami.requests();
    const r = await run('curl', ['-sS', '--cert', path.join(dir, 'client.pem'), '--cacert', path.join(dir, 'ca.crt'), `${serving.url}/dev`]);
    assert.equal(r.code, 0, `curl failed: ${r.stderr}`);
    const echo = JSON.parse(r.stdout) as { path: string; headers: Record<string, string> };
    assert.equal(echo.path, '/dev');
    assert.equal(echo.headers['x-client-cert-verified'], 'SUCCESS');
    assert.match(echo.headers['x-client-cert-issuer'] ?? '', /^CN=certgate dev CA/);
    assert.equal(whoami.requests(), before + 1);
  });

  it('a certificate from certs issue (and its .crt/.key pair) is accepted', { timeout: TEST_TIMEOUT }, async () => {
    const r = await mtlsRequest(serving.url, {
      cert: readFileSync(path.join(dir, 'svc-ok.crt'), 'utf8'), key: readFileSync(path.join(dir, 'svc-ok.key'), 'utf8'),
      ca: readFileSync(path.join(dir, 'ca.crt'), 'utf8'),
    });
    assert.equal(r.status, 200, r.body);
    const echo = r.json<{ headers: Record<string, string> }>();
    assert.match(echo.headers['x-client-cert-subject'] ?? '', /^CN=svc-ok,/);
    assert.equal(echo.headers['x-client-cert-san-uri'], 'spiffe://example.org/svc-ok');
  });

  it('a certificate revoked with certs revoke is refused: 400 client_certificate_invalid/revoked, nothing forwarded', { timeout: TEST_TIMEOUT }, async () => {
    const before = whoami.requests();
    const r = await mtlsRequest(serving.url, {
      cert: readFileSync(path.join(dir, 'svc-revoked.crt'), 'utf8'), key: readFileSync(path.join(dir, 'svc-revoked.key'), 'utf8'),
      ca: readFileSync(path.join(dir, 'ca.crt'), 'utf8'),
    });
    assert.equal(r.status, 400, r.body);
    const body = r.json();
    assert.equal(body.error, 'client_certificate_invalid');
    assert.equal(body.reason, 'revoked');
    assert.equal(whoami.requests(), before, 'the upstream saw nothing');
  });

  it('curl with the revoked certificate gets the same 400 JSON', { timeout: TEST_TIMEOUT }, async (t) => {
    if (!hasTool('curl', ['--version'])) return t.skip('curl is not installed');
    const before = whoami.requests();
    const r = await run('curl', ['-sS', '--cert', path.join(dir, 'svc-revoked.pem'), '--cacert', path.join(dir, 'ca.crt'), '-w', '\n%{http_code}', `${serving.url}/`]);
    const [body, status] = [r.stdout.slice(0, r.stdout.lastIndexOf('\n')), r.stdout.slice(r.stdout.lastIndexOf('\n') + 1)];
    assert.equal(status, '400', `curl: ${r.stderr}`);
    const json = JSON.parse(body) as Record<string, unknown>;
    assert.equal(json.error, 'client_certificate_invalid');
    assert.equal(json.reason, 'revoked');
    assert.equal(whoami.requests(), before, 'the upstream saw nothing');
  });
});
