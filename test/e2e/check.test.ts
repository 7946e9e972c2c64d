/**
 * `certgate check` over a corpus of broken set-ups, as a user runs it: `node dist/cli.js check --config FILE`
 * in a child process, on material generated for this run (createTestPki plus a few hand-made
 * certificates). Each case asserts the exit status (0 usable with warnings, 1 errors) and the exact
 * finding line — the golden line below, after replacing the temp dir, dates and key ids, which change
 * every run, with <dir>, <date>, <time> and <keyid>.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createPrivateKey } from 'node:crypto';
import { appendFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  certToPem, createCrl, crlToPem, generateKeyPair, importSigningKey, parseCert, randomSerial, toName, x509,
} from '../../dist/pki/x509.js';
import { createTestPki, type TestPki } from '../helpers/pki.js';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const CLI = path.join(REPO, 'dist', 'cli.js');
const DAY = 86_400_000;
const TIMEOUT = 30_000;

interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

function runCheck(config: string, extra: readonly string[] = []): Promise<Run> {
  return new Promise((resolve, reject) => {
    const env: NodeJS.ProcessEnv = {};
    for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('CERTGATE_')) env[k] = v;
    const child = spawn(process.execPath, [CLI, 'check', '--config', config, ...extra], { cwd: REPO, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

let pki: TestPki;
let tmp: string;

/** The per-run parts of a line, replaced by placeholders. */
function normalise(text: string): string {
  return text
    .replaceAll(pki.dir, '<dir>')
    .replaceAll(tmp, '<dir>')
    .replace(/([0-9A-F]{2}:){19}[0-9A-F]{2}/g, '<keyid>')
    .replace(/\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{3})?Z/g, '<time>')
    .replace(/\d{4}-\d{2}-\d{2}/g, '<date>');
}

function write(name: string, data: string, mode = 0o600): string {
  const file = path.join(tmp, name);
  writeFileSync(file, data, { mode });
  return file;
}

/** A check config as YAML (JSON-quoted scalars are valid YAML); check never connects to the upstream. */
function config(name: string, tls: Record<string, string>, listen = '127.0.0.1:0'): string {
  return write(`${name}.yaml`, [
    `listen: ${JSON.stringify(listen)}`,
    'tls:',
    ...Object.entries(tls).map(([k, v]) => `  ${k}: ${JSON.stringify(v)}`),
    'routes:',
    '  - path_prefix: /',
    '    upstream: http://127.0.0.1:9',
    '',
  ].join('\n'), 0o644);
}

/** Runs check and asserts the exit status, the exact (normalised) finding line and the summary. */
async function expectFinding(configFile: string, exit: 0 | 1, golden: string): Promise<void> {
  const r = await runCheck(configFile);
  const out = normalise(r.stdout);
  assert.equal(r.code, exit, `exit status; output:\n${out}${r.stderr}`);
  const lines = out.split('\n');
  assert.ok(lines.includes(golden), `expected the line\n  ${golden}\nin:\n${out}`);
  const summary = lines.find((l) => l.startsWith('ok: ') || / error\(s\), /.test(l));
  assert.ok(summary !== undefined, `a summary line:\n${out}`);
  assert.equal(summary.startsWith('ok: '), exit === 0, `summary agrees with the exit status: ${summary}`);
}

const S = (): TestPki['serverBundle'] => pki.serverBundle;
const INTER = (): string => pki.intermediate.cert;

before(async () => {
  pki = await createTestPki();
  tmp = mkdtempSync(path.join(os.tmpdir(), 'certgate-check-'));
});

after(() => {
  pki?.cleanup();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

describe('certgate check: server bundle', () => {
  it('lacks the intermediate between the leaf and the root it holds: error naming the issuer and its key id', { timeout: TIMEOUT }, async () => {
    const bundle = write('no-intermediate.pem', S().key + S().cert + pki.root.cert);
    await expectFinding(config('no-intermediate', { bundle, client_ca: pki.clientCa.path }), 1,
      'error: <dir>/no-intermediate.pem: the file lacks the intermediate between the leaf CN=localhost (block 2) and the root CN=certgate test root CA (block 3): the leaf\'s issuer CN=certgate test intermediate CA (authority key id <keyid>) is not in it, so clients that trust only the root cannot verify the server ("unable to get local issuer certificate") (fix: add the certificate of CN=certgate test intermediate CA after the leaf) [CG_CHAIN_INCOMPLETE]');
  });

  it('holds the leaf alone: a warning naming its issuer and key id (clients may trust that issuer)', { timeout: TIMEOUT }, async () => {
    const bundle = write('leaf-only.pem', S().key + S().cert);
    await expectFinding(config('leaf-only', { bundle, client_ca: pki.rootOnlyCa.path }), 0,
      'warning: <dir>/leaf-only.pem: the file holds only the leaf CN=localhost (block 2); its issuer CN=certgate test intermediate CA (authority key id <keyid>) is not in it. Clients that trust CN=certgate test intermediate CA itself verify the server; if it is an intermediate, clients that only trust the root cannot (fix: add the certificate of CN=certgate test intermediate CA after it, unless clients already have it) [CG_CHAIN_INCOMPLETE]');
  });

  it('in the wrong order: a warning saying certgate reorders it (exit 0)', { timeout: TIMEOUT }, async () => {
    const bundle = write('wrong-order.pem', INTER() + S().key + S().cert);
    await expectFinding(config('wrong-order', { bundle, client_ca: pki.clientCa.path }), 0,
      'warning: <dir>/wrong-order.pem: the certificates are not in leaf-first order: found CN=certgate test intermediate CA (block 1), CN=localhost (block 3); certgate serves CN=localhost (block 3) → CN=certgate test intermediate CA (block 1) (fix: the bundle was not in leaf-first order: certgate reorders it; reorder the file to silence this) [CG_CHAIN_REORDERED]');
  });

  it('with a key that does not match the leaf: error', { timeout: TIMEOUT }, async () => {
    const bundle = write('mismatch.pem', pki.clients.good.key + S().cert + INTER());
    await expectFinding(config('mismatch', { bundle, client_ca: pki.clientCa.path }), 1,
      'error: <dir>/mismatch.pem: the private key (block 1) does not match any of the 2 certificates; the first is CN=localhost (block 2) (fix: the private key does not belong to the leaf certificate: pair the right key and certificate) [CG_KEY_MISMATCH]');
  });

  it('with an encrypted key and no passphrase_file: error', { timeout: TIMEOUT }, async () => {
    const encrypted = createPrivateKey(S().key).export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: 's3cret' }) as string;
    const bundle = write('encrypted.pem', encrypted + S().cert + INTER());
    await expectFinding(config('encrypted', { bundle, client_ca: pki.clientCa.path }), 1,
      'error: <dir>/encrypted.pem: the private key (block 1) is encrypted (ENCRYPTED PRIVATE KEY) and tls.passphrase_file is not set (fix: the key is encrypted: set tls.passphrase_file) [CG_KEY_ENCRYPTED]');
  });

  it('with an encrypted key and the wrong passphrase: error naming the passphrase file', { timeout: TIMEOUT }, async () => {
    const encrypted = createPrivateKey(S().key).export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: 's3cret' }) as string;
    const bundle = write('encrypted-2.pem', encrypted + S().cert + INTER());
    const pass = write('wrong.pass', 'not-it\n');
    await expectFinding(config('wrong-pass', { bundle, passphrase_file: pass, client_ca: pki.clientCa.path }), 1,
      'error: <dir>/encrypted-2.pem: the passphrase in <dir>/wrong.pass does not decrypt the private key (block 1): bad decrypt (ERR_OSSL_BAD_DECRYPT) (fix: the passphrase does not decrypt the key: put the key\'s passphrase, alone on one line, in tls.passphrase_file) [CG_KEY_PASSPHRASE]');
  });

  it('with the right passphrase: usable (exit 0)', { timeout: TIMEOUT }, async () => {
    const encrypted = createPrivateKey(S().key).export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: 's3cret' }) as string;
    const bundle = write('encrypted-3.pem', encrypted + S().cert + INTER());
    const pass = write('right.pass', 's3cret\n');
    const r = await runCheck(config('right-pass', { bundle, passphrase_file: pass, client_ca: pki.clientCa.path }));
    assert.equal(r.code, 0, normalise(r.stdout));
    assert.doesNotMatch(r.stdout, /^error:/m);
  });

  it('with an expired leaf: error', { timeout: TIMEOUT }, async () => {
    const now = Date.now();
    const leaf = await pki.issueClient({
      name: 'srv-expired', usage: 'server', subject: [['CN', 'localhost']], san: { dns: ['localhost'] },
      notBefore: new Date(now - 20 * DAY), notAfter: new Date(now - DAY),
    });
    const bundle = write('expired.pem', leaf.key + leaf.cert + INTER());
    await expectFinding(config('expired', { bundle, client_ca: pki.clientCa.path }), 1,
      'error: <dir>/expired.pem: the leaf certificate CN=localhost (block 2) expired on <time> (fix: the certificate has expired: renew it) [CG_CERT_EXPIRED]');
  });

  it('with a leaf expiring in 3 days: a warning counting the days (exit 0)', { timeout: TIMEOUT }, async () => {
    const leaf = await pki.issueClient({
      name: 'srv-soon', usage: 'server', subject: [['CN', 'localhost']], san: { dns: ['localhost'] },
      notAfter: new Date(Date.now() + 3 * DAY + 3_600_000),
    });
    const bundle = write('soon.pem', leaf.key + leaf.cert + INTER());
    await expectFinding(config('soon', { bundle, client_ca: pki.clientCa.path }), 0,
      'warning: <dir>/soon.pem: the leaf certificate CN=localhost (block 2) expires in 3 days (<time>) (fix: the certificate expires soon: renew it) [CG_CERT_EXPIRES_SOON]');
  });

  it('with a leaf not valid yet: error', { timeout: TIMEOUT }, async () => {
    const now = Date.now();
    const leaf = await pki.issueClient({
      name: 'srv-future', usage: 'server', subject: [['CN', 'localhost']], san: { dns: ['localhost'] },
      notBefore: new Date(now + DAY), notAfter: new Date(now + 30 * DAY),
    });
    const bundle = write('future.pem', leaf.key + leaf.cert + INTER());
    const r = await runCheck(config('future', { bundle, client_ca: pki.clientCa.path }));
    assert.equal(r.code, 1, normalise(r.stdout));
    assert.match(normalise(r.stdout), /^error: <dir>\/future\.pem: the leaf certificate CN=localhost \(block 2\) is valid only from <time> \(now <time>\) \(fix: the certificate is not valid yet: set this host's clock right \(NTP\), or use a certificate whose notBefore has passed\) \[CG_CERT_NOT_YET_VALID\]$/m);
  });

  it('when listen names a DNS host the SANs lack: a warning naming the host and the SANs', { timeout: TIMEOUT }, async () => {
    await expectFinding(config('listen-host', { bundle: S().pemPath, client_ca: pki.clientCa.path }, 'api.example.com:8443'), 0,
      'warning: <dir>/server.pem: the listen host api.example.com is not covered by the leaf certificate CN=localhost (block 2) (subjectAltName: DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1) (fix: the server certificate does not name the listen host: reissue it with that SAN) [CG_CERT_NO_SAN]');
  });

  it('whose leaf is a CA certificate: error', { timeout: TIMEOUT }, async () => {
    const bundle = write('leaf-is-ca.pem', pki.intermediate.key + pki.intermediate.cert + pki.root.cert);
    await expectFinding(config('leaf-is-ca', { bundle, client_ca: pki.clientCa.path }), 1,
      'error: <dir>/leaf-is-ca.pem: the leaf certificate CN=certgate test intermediate CA (block 2) is a CA certificate (basicConstraints CA:TRUE); clients reject it as a server certificate (fix: the leaf certificate is a CA certificate: use an end-entity certificate) [CG_CERT_IS_CA]');
  });

  it('whose leaf lacks the serverAuth EKU (a client certificate): error', { timeout: TIMEOUT }, async () => {
    const bundle = write('client-as-server.pem', pki.clients.good.key + pki.clients.good.cert + INTER());
    await expectFinding(config('wrong-eku', { bundle, client_ca: pki.clientCa.path }), 1,
      'error: <dir>/client-as-server.pem: the leaf certificate CN=svc-a (block 2) has extendedKeyUsage clientAuth without serverAuth; clients reject it (fix: reissue it with extendedKeyUsage serverAuth) [CG_CERT_EKU]');
  });
});

describe('certgate check: client CAs and CRLs', () => {
  it('a client_ca certificate without the CA flag: error', { timeout: TIMEOUT }, async () => {
    await expectFinding(config('ca-not-ca', { bundle: S().pemPath, client_ca: pki.clients.good.certPath }), 1,
      'error: <dir>/good.crt: CN=svc-a is not a CA certificate (no basicConstraints CA:TRUE); Node cannot use it to verify clients (fix: a certificate in tls.client_ca is not a CA (no CA flag or keyCertSign): use the issuing CA certificate) [CG_CA_NOT_CA]');
  });

  it('a client CA whose keyUsage lacks keyCertSign: error', { timeout: TIMEOUT }, async () => {
    const keys = await generateKeyPair();
    const name = toName([['O', 'certgate test'], ['CN', 'no-certsign CA']]);
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: randomSerial(), subject: name, issuer: name, publicKey: keys.publicKey, signingKey: keys.privateKey,
      signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' } as EcdsaParams,
      notBefore: new Date(Date.now() - DAY), notAfter: new Date(Date.now() + 30 * DAY),
      extensions: [
        new x509.BasicConstraintsExtension(true, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.cRLSign, true),
      ],
    });
    const ca = write('no-certsign.pem', certToPem(cert), 0o644);
    await expectFinding(config('no-certsign', { bundle: S().pemPath, client_ca: ca }), 1,
      'error: <dir>/no-certsign.pem: CN=no-certsign CA has keyUsage without keyCertSign; OpenSSL will not accept certificates it signed (fix: a certificate in tls.client_ca is not a CA (no CA flag or keyCertSign): use the issuing CA certificate) [CG_CA_NOT_CA]');
  });

  it('client_ca holding only the server\'s own CAs: informational, exit 0', { timeout: TIMEOUT }, async () => {
    await expectFinding(config('self-only', { bundle: S().pemPath, client_ca: pki.clientCa.path }), 0,
      'info: <dir>/client-ca.pem: tls.client_ca holds only the CA(s) that issued the server certificate (CN=certgate test root CA, CN=certgate test intermediate CA); only clients issued by them are accepted (fix: nothing to do if that is intended; otherwise add the CAs that issue your client certificates) [CG_CA_SELF_ONLY]');
  });

  // issue 14: this was a warning with exit 0 ("usable") while every client of that CA was refused.
  it('a stale CRL (nextUpdate passed), crl_mode leaf, crl_stale refuse (the defaults): an error, exit 1 (its CA\'s clients are refused)', { timeout: TIMEOUT }, async () => {
    await expectFinding(config('stale-leaf', { bundle: S().pemPath, client_ca: pki.clientCa.path, crl: pki.expiredCrlPath }), 1,
      'error: <dir>/crl-expired.pem: the CRL (block 1) of CN=certgate test intermediate CA expired: its nextUpdate was <time>; certgate refuses that CA\'s clients (crl_expired) until a fresh CRL arrives (CRL_HAS_EXPIRED) (fix: a CRL is past its nextUpdate: the clients of its CA are refused (unless tls.crl_stale: allow); write a fresh CRL from that CA to tls.crl) [CG_CRL_EXPIRED]');
    // serve starts with it (a stale CRL never stops the server): the summary says what holds.
    const r = await runCheck(path.join(tmp, 'stale-leaf.yaml'));
    assert.match(r.stdout, /1 error\(s\), 0 warning\(s\): .*stale-leaf\.yaml loads, but refuses clients/);
  });

  it('a stale CRL under crl_stale: allow: a warning, exit 0 (the last CRL keeps being used)', { timeout: TIMEOUT }, async () => {
    await expectFinding(config('stale-allow', { bundle: S().pemPath, client_ca: pki.clientCa.path, crl: pki.expiredCrlPath, crl_stale: 'allow' }), 0,
      'warning: <dir>/crl-expired.pem: the CRL (block 1) of CN=certgate test intermediate CA expired: its nextUpdate was <time>; tls.crl_stale: allow keeps using it (CRL_HAS_EXPIRED) (fix: a CRL is past its nextUpdate: the clients of its CA are refused (unless tls.crl_stale: allow); write a fresh CRL from that CA to tls.crl) [CG_CRL_EXPIRED]');
  });

  it('a stale CRL, crl_mode chain: error (Node refuses every client of that CA)', { timeout: TIMEOUT }, async () => {
    await expectFinding(config('stale-chain', { bundle: S().pemPath, client_ca: pki.clientCa.path, crl: pki.expiredCrlPath, crl_mode: 'chain' }), 1,
      'error: <dir>/crl-expired.pem: the CRL (block 1) of CN=certgate test intermediate CA expired: its nextUpdate was <time>; Node refuses every client of that CA (CRL_HAS_EXPIRED) (fix: a CRL is past its nextUpdate: the clients of its CA are refused (unless tls.crl_stale: allow); write a fresh CRL from that CA to tls.crl) [CG_CRL_EXPIRED]');
  });

  it('a CRL signed by no configured CA: error naming its issuer and the configured CAs', { timeout: TIMEOUT }, async () => {
    const other = { cert: parseCert(pki.otherRoot.cert), privateKey: await importSigningKey(pki.otherRoot.key) };
    const crl = write('foreign-crl.pem', crlToPem(await createCrl({ issuer: other })), 0o644);
    await expectFinding(config('foreign-crl', { bundle: S().pemPath, client_ca: pki.clientCa.path, crl }), 1,
      'error: <dir>/foreign-crl.pem: the CRL of CN=unrelated root CA is issued by O=elsewhere, CN=unrelated root CA, which is not in tls.client_ca (CN=certgate test root CA, CN=certgate test intermediate CA) (fix: a CRL is signed by no CA in tls.client_ca: use the CRL of a configured client CA) [CG_CRL_ISSUER]');
  });
});

// issue 14: below 2000 was a start-up error; nginx users write `keepalive_timeout 1s`.
describe('certgate check: limits.keepalive_timeout_ms below 2000', () => {
  it('is accepted with a warning saying why and what to do, exit 0', { timeout: TIMEOUT }, async () => {
    const file = write('keepalive-1500.yaml', [
      'listen: "127.0.0.1:0"',
      'tls:',
      `  bundle: ${JSON.stringify(S().pemPath)}`,
      `  client_ca: ${JSON.stringify(pki.rootOnlyCa.path)}`,
      'limits:',
      '  keepalive_timeout_ms: 1500',
      'routes:',
      '  - upstream: http://127.0.0.1:9',
      '',
    ].join('\n'), 0o644);
    await expectFinding(file, 0,
      'warning: <dir>/keepalive-1500.yaml: limits.keepalive_timeout_ms is 1500: Node advertises it as "Keep-Alive: timeout=1" (whole seconds, rounded down) and Node.js clients (http.Agent) keep a connection 1 s less than advertised, so they reuse none: each of their requests opens a new TLS connection. Other clients (curl, Go, Python, browsers) reuse connections for 1500 ms (fix: set limits.keepalive_timeout_ms: 2000 (or more) if Node.js clients call certgate; nothing to do if none do) [CG_KEEPALIVE_SHORT]');
  });
});

describe('certgate check --json', () => {
  it('carries the same code and severity per finding, and the same exit status', { timeout: TIMEOUT }, async () => {
    const bundle = write('json-mismatch.pem', pki.clients.good.key + S().cert + INTER());
    const r = await runCheck(config('json-mismatch', { bundle, client_ca: pki.clientCa.path }), ['--json']);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    const findings = JSON.parse(r.stdout) as { severity: string; code: string; file?: string; hint?: string }[];
    const f = findings.find((x) => x.code === 'CG_KEY_MISMATCH');
    assert.ok(f !== undefined, r.stdout);
    assert.equal(f.severity, 'error');
    assert.equal(f.file, bundle);
    assert.equal(typeof f.hint, 'string');
  });
});

describe('certgate check: admin listener', () => {
  const tls = (): Record<string, string> => ({ bundle: S().pemPath, client_ca: pki.clientCa.path });

  it('beyond loopback without admin.token_file: a warning at admin.listen with the fix (exit 0)', { timeout: TIMEOUT }, async () => {
    const file = config('admin-exposed', tls());
    appendFileSync(file, 'admin:\n  listen: 0.0.0.0:9090\n');
    await expectFinding(file, 0, 'warning: <dir>/admin-exposed.yaml:9: admin.listen 0.0.0.0:9090 is reachable beyond loopback and admin.token_file is not set:'
      + ' anyone who reaches it reads /clients (who calls, from where), /status.json and the status page'
      + ' (fix: set admin.token_file (e.g. openssl rand -hex 32 > admin-token): then every admin path but /healthz /readyz /metrics needs the token; or listen on 127.0.0.1:9090) [CG_ADMIN_EXPOSED]');
  });

  it('beyond loopback with admin.token_file, or on loopback: no admin warning', { timeout: TIMEOUT }, async () => {
    const token = write('admin-token', 'c0ffee5e2b7d4a9f8e1d6c3b0a9f8e7d\n');
    const guarded = config('admin-guarded', tls());
    appendFileSync(guarded, `admin:\n  listen: 0.0.0.0:9090\n  token_file: ${JSON.stringify(token)}\n`);
    const local = config('admin-local', tls());
    appendFileSync(local, 'admin:\n  listen: 127.0.0.1:9090\n');
    for (const file of [guarded, local]) {
      const r = await runCheck(file);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.doesNotMatch(r.stdout, /CG_ADMIN_EXPOSED/);
    }
  });
});
