/**
 * CRLs as operators' own `openssl ca` makes them, which certgate does not use as plain CRLs: delta CRLs
 * (deltaCRLIndicator) and CRLs signed with an algorithm certgate cannot verify. The attack these tests
 * stand against is a quiet one: an operator revokes a client, ships a CRL certgate ignores, and believes
 * the client is locked out while it is still served. Each such CRL must be named, with a code, by
 * `certgate check` and once in serve's log.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createOpensslCa, hasOpenssl, PSS, type OpensslCa, type OpensslCert } from '../helpers/openssl-ca.js';
import { startEchoUpstream, startTestCertgate, type RunningCertgate, type Upstream } from '../helpers/certgate.js';
import { mtlsRequest } from '../helpers/client.js';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const CLI = path.join(REPO, 'dist', 'cli.js');
const TIMEOUT = 60_000;

interface CheckRun {
  readonly code: number | null;
  readonly stdout: string;
}

function runCheck(config: string): Promise<CheckRun> {
  return new Promise((resolve, reject) => {
    const env: NodeJS.ProcessEnv = {};
    for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('CERTGATE_')) env[k] = v;
    const child = spawn(process.execPath, [CLI, 'check', '--config', config], { cwd: REPO, env, stdio: ['ignore', 'pipe', 'inherit'] });
    let stdout = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout }));
  });
}

const skip = (await hasOpenssl()) ? false : 'the openssl CLI is not installed';
if (skip !== false) console.log(`# crl-openssl.test: skipped: ${skip}`);

let tmp: string;
let upstream: Upstream;

before(async () => {
  if (skip !== false) return;
  tmp = mkdtempSync(path.join(os.tmpdir(), 'certgate-crl-openssl-'));
  upstream = await startEchoUpstream();
});
after(async () => {
  await upstream?.close();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

function write(name: string, data: string, mode = 0o644): string {
  const file = path.join(tmp, name);
  writeFileSync(file, data, { mode });
  return file;
}

/** A check config (YAML: JSON-quoted scalars are valid YAML). */
function config(name: string, tls: Record<string, string>): string {
  return write(`${name}.yaml`, [
    'listen: "127.0.0.1:0"',
    'tls:',
    ...Object.entries(tls).map(([k, v]) => `  ${k}: ${JSON.stringify(v)}`),
    'routes:',
    '  - path_prefix: /',
    '    upstream: http://127.0.0.1:9',
    '',
  ].join('\n'));
}

/** The check's lines carrying `code`. */
const linesWith = (r: CheckRun, code: string): string[] => r.stdout.split('\n').filter((l) => l.endsWith(`[${code}]`));

describe('delta CRLs: certgate (like Node\'s OpenSSL) reads only complete CRLs, and says so', { skip }, () => {
  let ca: OpensslCa;
  let server: OpensslCert;
  let good: OpensslCert;
  let revoked: OpensslCert;
  let baseBefore: string; // complete CRL made before the revocation: lists nothing
  let delta: string; // delta CRL made after it: lists `revoked`
  let baseAfter: string; // complete CRL made after it: lists `revoked`

  before(async () => {
    ca = await createOpensslCa({ name: 'delta test CA' });
    [server, good, revoked] = [await ca.issue('server', 'server'), await ca.issue('svc-good', 'client'), await ca.issue('svc-revoked', 'client')];
    baseBefore = await ca.crl();
    await ca.revoke(revoked);
    delta = await ca.crl({ delta: true });
    baseAfter = await ca.crl();
  });
  after(() => ca?.cleanup());

  const tlsWith = (crl: string, more: Record<string, string> = {}) =>
    ({ bundle: write('server.pem', server.pem, 0o600), client_ca: ca.certPath, crl, ...more });

  it('a delta CRL revoking a client no complete CRL lists: check reports CG_CRL_DELTA as an error naming the serial, exit 1', { timeout: TIMEOUT }, async () => {
    const r = await runCheck(config('delta-new', tlsWith(write('delta-new.pem', baseBefore + delta))));
    assert.equal(r.code, 1, r.stdout);
    const lines = linesWith(r, 'CG_CRL_DELTA');
    assert.equal(lines.length, 1, r.stdout);
    assert.match(lines[0]!, /^error: .*delta-new\.pem: the CRL \(block 2\) of CN=delta test CA is a delta CRL .*1 serial\(s\) it revokes that no complete CRL of that CA lists \(1002\) are not revoked/);
    assert.match(r.stdout, /delta-new\.yaml loads, but refuses clients|1 error\(s\)/);
  });

  it('a delta CRL whose serials a complete CRL lists too: a warning, exit 0', { timeout: TIMEOUT }, async () => {
    const r = await runCheck(config('delta-covered', tlsWith(write('delta-covered.pem', baseAfter + delta))));
    assert.equal(r.code, 0, r.stdout);
    const lines = linesWith(r, 'CG_CRL_DELTA');
    assert.equal(lines.length, 1, r.stdout);
    assert.match(lines[0]!, /^warning: .*the CRL \(block 2\) of CN=delta test CA is a delta CRL .*every serial it lists is in a complete CRL of that CA/);
  });

  it('crl_mode chain, a CA whose only CRL is a delta: also CG_CRL_MISSING_CA (OpenSSL finds no CRL for it)', { timeout: TIMEOUT }, async () => {
    const r = await runCheck(config('delta-chain', tlsWith(write('delta-only.pem', delta), { crl_mode: 'chain' })));
    assert.equal(r.code, 1, r.stdout);
    assert.equal(linesWith(r, 'CG_CRL_DELTA').length, 1, r.stdout);
    assert.equal(linesWith(r, 'CG_CRL_MISSING_CA').length, 1, r.stdout);
  });

  it('serve and each reload load it and log CG_CRL_DELTA once at error level, and (the effect the error warns of) serves the client only the delta revokes', { timeout: TIMEOUT }, async () => {
    let gate: RunningCertgate | undefined;
    try {
      gate = await startTestCertgate({
        tls: tlsWith(write('delta-serve.pem', baseBefore + delta)), routes: [{ path_prefix: '/', upstream: upstream.url }],
      });
      const logged = gate.logs.lines.filter((l) => l.code === 'CG_CRL_DELTA');
      assert.equal(logged.length, 1, JSON.stringify(logged));
      assert.equal(logged[0]!.level, 50);
      const as = (c: OpensslCert) => ({ ca: ca.cert, cert: c.cert, key: c.key });
      assert.equal((await mtlsRequest(gate.url, as(good))).status, 200);
      assert.equal((await mtlsRequest(gate.url, as(revoked))).status, 200, 'a delta CRL revokes nothing: the check said so');
      // Each load says it once: a reload of the CRL file (its blocks reordered) logs it once more.
      write('delta-serve.pem', delta + baseBefore);
      assert.equal((await gate.app.reload('signal')).result, 'success');
      assert.equal(gate.logs.lines.filter((l) => l.code === 'CG_CRL_DELTA').length, 2);
    } finally {
      await gate?.close();
    }
  });
});

describe('RSA-PSS-signed CRLs (id-RSASSA-PSS with its hash, MGF1 hash and salt length) revoke, over real TLS', { skip }, () => {
  let ca: OpensslCa;
  let server: OpensslCert;
  let good: OpensslCert;
  let revoked: OpensslCert;
  let crlPath: string;
  const gates: RunningCertgate[] = [];

  before(async () => {
    // Everything PSS-signed: the CA itself, the server's and the clients' certificates (which OpenSSL
    // verifies in the handshake and certgate's issuedBy with X509Certificate.verify) and the CRL.
    ca = await createOpensslCa({ name: 'pss root CA', sigopts: PSS });
    [server, good, revoked] = [await ca.issue('server', 'server'), await ca.issue('svc-good', 'client'), await ca.issue('svc-revoked', 'client')];
    await ca.revoke(revoked);
    crlPath = write('pss-crl.pem', await ca.crl({ sigopts: PSS }));
  });
  after(async () => {
    await Promise.all(gates.map((g) => g.close()));
    ca?.cleanup();
  });

  const tls = (more: Record<string, string> = {}) =>
    ({ bundle: write('pss-server.pem', server.pem, 0o600), client_ca: ca.certPath, crl: crlPath, ...more });
  const as = (c: OpensslCert) => ({ ca: ca.cert, cert: c.cert, key: c.key });

  for (const mode of ['leaf', 'chain'] as const) {
    it(`crl_mode ${mode}: the client the PSS CRL revokes is refused (400 revoked), an unrevoked one is served`, { timeout: TIMEOUT }, async () => {
      const gate = await startTestCertgate({ tls: tls({ crl_mode: mode }), routes: [{ path_prefix: '/', upstream: upstream.url }] });
      gates.push(gate);
      const refused = await mtlsRequest(gate.url, as(revoked));
      assert.equal(refused.status, 400, refused.body);
      assert.equal(refused.json().reason, 'revoked');
      assert.equal((await mtlsRequest(gate.url, as(good))).status, 200);
    });
  }

  it('check: the PSS CRL is used (no CRL finding), exit 0; other PSS hashes and salt lengths verify too', { timeout: TIMEOUT }, async () => {
    const r = await runCheck(config('pss', tls()));
    assert.equal(r.code, 0, r.stdout);
    assert.doesNotMatch(r.stdout, /CG_CRL_/);
    for (const [md, salt] of [['sha384', '48'], ['sha512', '20'], ['sha256', '0']] as const) {
      const other = write(`pss-${md}-${salt}.pem`, await ca.crl({ md, sigopts: ['rsa_padding_mode:pss', `rsa_pss_saltlen:${salt}`] }));
      const o = await runCheck(config(`pss-${md}-${salt}`, tls({ crl: other })));
      assert.equal(o.code, 0, `${md}, salt ${salt}: ${o.stdout}`);
    }
  });
});

describe('a CRL signed with an algorithm certgate cannot verify is refused by name (CG_CRL_SIGNATURE), never ignored', { skip }, () => {
  let ca: OpensslCa;
  let server: OpensslCert;
  let crl: string;

  before(async () => {
    ca = await createOpensslCa({ name: 'unsupported sig CA' });
    server = await ca.issue('server', 'server');
    await ca.revoke(await ca.issue('svc-revoked', 'client'));
    // RSASSA-PSS whose MGF1 runs over another hash than the signature's: valid, rare, and beyond
    // node:crypto's verify() (it uses one hash for both).
    crl = await ca.crl({ sigopts: [...PSS, 'rsa_mgf1_md:sha1'] });
  });
  after(() => ca?.cleanup());

  it('check: an error naming the algorithm and why (not "a different key"), exit 1; serve refuses to start with that code', { timeout: TIMEOUT }, async () => {
    const tls = { bundle: write('unsupported-server.pem', server.pem, 0o600), client_ca: ca.certPath, crl: write('unsupported.pem', crl) };
    const r = await runCheck(config('unsupported', tls));
    assert.equal(r.code, 1, r.stdout);
    const lines = linesWith(r, 'CG_CRL_SIGNATURE');
    assert.equal(lines.length, 1, r.stdout);
    assert.match(lines[0]!, /^error: .*unsupported\.pem: the CRL of CN=unsupported sig CA is signed with RSASSA-PSS \(1\.2\.840\.113549\.1\.1\.10\): RSASSA-PSS with MGF1 over sha1 but the hash sha256 .*, which certgate cannot verify/);
    assert.equal(linesWith(r, 'CG_CRL_ISSUER').length, 0, r.stdout);
    await assert.rejects(startTestCertgate({ tls, routes: [{ path_prefix: '/', upstream: upstream.url }] }), { code: 'CG_CRL_SIGNATURE' });
  });
});
