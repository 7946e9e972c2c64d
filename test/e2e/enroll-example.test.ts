/**
 * examples/enroll/enroll.py run as a user runs it (a python3 child process), against a live certgate:
 * started in-process with `enrollment` issuing from the test PKI's intermediate, in front of the whoami
 * upstream; tokens made by the real CLI (`node dist/cli.js certs token`). The script makes its key and
 * CSR with the openssl command, enrolls, and calls through certgate with the new certificate (verified
 * against the test ROOT only, so certgate must send its intermediate); the upstream must see the
 * enrolled identity. A replayed token and a CSR for another CN must fail with certgate's reason printed
 * and leave the files of an earlier enrollment untouched.
 *
 * A missing python3 + requests or openssl is a skip naming it, never a pass (.ci/run installs them).
 * The script runs with an async spawn: certgate lives in this process, so a spawnSync would starve it.
 */
import { after, before, describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createTestPki, type TestPki } from '../helpers/pki.js';
import { startTestCertgate, startEchoUpstream, type RunningCertgate, type Upstream } from '../helpers/certgate.js';
import { killRunningCommands, runCommand, type Run } from '../helpers/run.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const SCRIPT = path.join(ROOT, 'examples', 'enroll', 'enroll.py');
const CLI = path.join(ROOT, 'dist', 'cli.js');
const TEST_TIMEOUT = 20_000;
const CN = 'ex-client';
const SAN_URI = `spiffe://example.org/ns/prod/sa/${CN}`;

// ---- which tools are here (Debian's python3 first, whose python3-requests .ci/run installs, then PATH's) ----
function works(cmd: string, args: readonly string[]): boolean {
  const r = spawnSync(cmd, args, { stdio: 'ignore' });
  return r.error === undefined && r.status === 0;
}
const PYTHON = ['/usr/bin/python3', 'python3'].find((py) => works(py, ['-c', 'import requests']));
const missing = [
  ...(PYTHON === undefined ? ['python3 with requests (Debian: python3-requests)'] : []),
  ...(works('openssl', ['version']) ? [] : ['the openssl command (Debian: openssl)']),
];
const skip = missing.length > 0 ? `not installed: ${missing.join(', ')}` : false;

/** Runs a command to completion (killed after timeoutMs) without blocking the in-process certgate. */
function run(cmd: string, args: readonly string[], env: NodeJS.ProcessEnv = {}, timeoutMs = 15_000): Promise<Run> {
  const base = { ...process.env };
  delete base.CERTGATE_ENROLL_TOKEN;
  return runCommand(cmd, args, { cwd: ROOT, env: { ...base, ...env }, timeoutMs });
}

let pki: TestPki;
let whoami: Upstream;
let gate: RunningCertgate;
let work: string;

before(async () => {
  pki = await createTestPki();
  whoami = await startEchoUpstream();
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'certgate-enroll-example-'));
  fs.mkdirSync(path.join(work, 'state'));
  gate = await startTestCertgate({
    tls: { bundle: pki.serverBundle.pemPath, client_ca: pki.clientCa.path },
    routes: [{ name: 'whoami', path_prefix: '/', upstream: whoami.url }],
    enrollment: {
      ca_cert: pki.intermediate.certPath, ca_key: pki.intermediate.keyPath, max_days: 30,
      tokens_file: path.join(work, 'enroll-tokens.yaml'), state_file: path.join(work, 'state', 'enroll-used.json'),
    },
  });
});

after(async () => {
  killRunningCommands();
  await gate?.close();
  await whoami?.close();
  pki?.cleanup();
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

/** A token from the real CLI (`node dist/cli.js certs token`), which prints only the bearer on stdout. */
async function makeToken(...args: string[]): Promise<string> {
  const r = await run(process.execPath, [CLI, 'certs', 'token', '--dir', work, ...args]);
  assert.equal(r.code, 0, r.stderr);
  const bearer = r.stdout.trim();
  assert.match(bearer, /^[0-9a-f]{16}\.[A-Za-z0-9_-]{43}$/, `certs token printed: ${r.stdout}`);
  return bearer;
}

function script(args: readonly string[], env: NodeJS.ProcessEnv = {}): Promise<Run> {
  return run(PYTHON!, [SCRIPT, ...args], env);
}

const show = (r: Run): string => `exit ${r.code}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;

/** Each test skips by itself (not the suite), so the run's `# skipped` count shows it. */
const T = { timeout: TEST_TIMEOUT, skip };

describe('examples/enroll/enroll.py against a live certgate', () => {
  let outDir: string;
  let tokenFile: string;
  let bearer: string;

  it('--help describes the script and exits 0', T, async (t: TestContext) => {
    t.plan(3);
    const r = await script(['--help']);
    t.assert.equal(r.code, 0, show(r));
    t.assert.match(r.stdout, /--admin-url/);
    t.assert.match(r.stdout, /CERTGATE_ENROLL_TOKEN/);
  });

  it('enrolls with a --token-file token, then calls through certgate: the upstream sees the enrolled CN, verified', T, async (t: TestContext) => {
    t.plan(10);
    bearer = await makeToken('--cn', CN, '--san-uri', `spiffe://example.org/ns/*/sa/${CN}`);
    tokenFile = path.join(work, 'ex-client.token');
    fs.writeFileSync(tokenFile, `${bearer}\n`, { mode: 0o600 });
    outDir = path.join(work, 'out');
    const r = await script([
      '--admin-url', gate.adminUrl, '--token-file', tokenFile, '--cn', CN, '--san-uri', SAN_URI,
      '--out-dir', outDir, '--ca', pki.root.certPath, '--url', `${gate.url}/whoami`,
    ]);
    t.assert.equal(r.code, 0, show(r));
    t.assert.match(r.stdout, new RegExp(`^  x-client-cert-subject: CN=${CN}$`, 'm'), show(r));
    t.assert.match(r.stdout, /^ {2}x-client-cert-verified: SUCCESS$/m, show(r));
    t.assert.match(r.stdout, new RegExp(`^  x-client-cert-san-uri: ${SAN_URI}$`, 'm'), show(r));
    t.assert.match(r.stdout, /GET \S+\/whoami -> HTTP 200/);
    const keyFile = path.join(outDir, `${CN}.key`);
    t.assert.equal(fs.statSync(keyFile).mode & 0o777, 0o600, 'the private key is 0600');
    const chain = fs.readFileSync(path.join(outDir, `${CN}.crt`), 'utf8');
    t.assert.equal(chain.match(/-----BEGIN CERTIFICATE-----/g)?.length, 2, 'certificate + the issuing CA');
    const leaf = new X509Certificate(chain.slice(0, chain.indexOf('-----END CERTIFICATE-----') + 25));
    t.assert.equal(leaf.subject, `CN=${CN}`);
    t.assert.ok(leaf.checkIssued(pki.intermediate.x509), 'issued by enrollment.ca_cert');
    t.assert.deepEqual(fs.readdirSync(outDir).sort(), [`${CN}.crt`, `${CN}.key`], 'no staging files left behind');
  });

  it('the same token again (from CERTGATE_ENROLL_TOKEN) → non-zero, prints that the token was used; the first key and cert are untouched', T, async (t: TestContext) => {
    t.plan(5);
    assert.ok(bearer !== undefined, 'needs the enrollment above');
    const before = [fs.readFileSync(path.join(outDir, `${CN}.key`)), fs.readFileSync(path.join(outDir, `${CN}.crt`))];
    const r = await script(
      ['--admin-url', gate.adminUrl, '--cn', CN, '--san-uri', SAN_URI, '--out-dir', outDir, '--ca', pki.root.certPath, '--url', `${gate.url}/whoami`],
      { CERTGATE_ENROLL_TOKEN: bearer },
    );
    t.assert.equal(r.code, 1, show(r));
    t.assert.match(r.stderr, /HTTP 401 \(unauthorized, token_used\)/, show(r));
    t.assert.match(r.stderr, /token was already used/, show(r));
    t.assert.deepEqual([fs.readFileSync(path.join(outDir, `${CN}.key`)), fs.readFileSync(path.join(outDir, `${CN}.crt`))], before);
    t.assert.doesNotMatch(r.stdout + r.stderr, new RegExp(bearer.split('.')[1]!.replace(/[-]/g, '\\-')), 'the secret is never printed');
  });

  it('a CSR for another CN → non-zero, prints the 403 mismatch; no key is left behind', T, async (t: TestContext) => {
    t.plan(4);
    const token = await makeToken('--cn', 'ex-other');
    const out = path.join(work, 'out-mismatch');
    const r = await script(['--admin-url', gate.adminUrl, '--cn', 'ex-admin', '--out-dir', out], { CERTGATE_ENROLL_TOKEN: token });
    t.assert.equal(r.code, 1, show(r));
    t.assert.match(r.stderr, /HTTP 403 \(forbidden, identity_mismatch\)/, show(r));
    t.assert.match(r.stderr, /subject CN "ex-admin" is not allowed; this token allows CN "ex-other"/, show(r));
    t.assert.deepEqual(fs.readdirSync(out), [], 'a refused enrollment leaves no key');
  });

  it('no token → exit 2 naming --token-file and CERTGATE_ENROLL_TOKEN, before any request', T, async (t: TestContext) => {
    t.plan(2);
    const r = await script(['--admin-url', gate.adminUrl, '--cn', CN, '--out-dir', path.join(work, 'out-none')]);
    t.assert.equal(r.code, 2, show(r));
    t.assert.match(r.stderr, /--token-file FILE or set CERTGATE_ENROLL_TOKEN/);
  });
});
