/**
 * `certgate probe` and certgate's `whoami_path`, over real sockets on 127.0.0.1:0 with this run's PKI.
 *
 * Setup: a certgate with whoami_path (routes `api`, allowed to CN=svc-a only, and `root`, both to a
 * recording upstream), the same without whoami_path, one in optional mode; and plain Node https
 * servers (not certgate) in the seeds' failure modes: a bundle without its intermediate, a
 * certificate for another host name, a server certificate from another CA, no client auth at all.
 * Action: `node dist/cli.js probe URL ...` as a user runs it, and plain mTLS requests to whoami_path.
 * Must hold: exit 0 only when the server verified the client; each failure names its cause in one
 * "error:" line with its code (the missing intermediate by name and key id, the acceptable CA names,
 * the certgate refusal reason); whoami shows exactly the identity headers the upstream receives and
 * is never forwarded. Clients verify the server in every test (no rejectUnauthorized: false).
 * Lines that need `openssl s_client` (the chain as sent, the CA names) skip when openssl is missing.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createPrivateKey } from 'node:crypto';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createTestPki, type TestPki } from '../helpers/pki.js';
import { metricValue, startRecordingUpstream, startTestCertgate, type RecordingUpstream, type RunningCertgate } from '../helpers/certgate.js';
import { mtlsRequest, rawTlsExchange } from '../helpers/client.js';
import { authorityKeyId } from '../../dist/x509/certificate.js';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const CLI = path.join(REPO, 'dist', 'cli.js');
const WHOAMI = '/.certgate/whoami';
const TIMEOUT = 30_000;
const OPENSSL = spawnSync('openssl', ['version'], { stdio: 'ignore' }).status === 0;
const NEEDS_OPENSSL = OPENSSL ? false : 'openssl is not installed: the chain as sent and the CA names cannot be read';
const CURL = spawnSync('curl', ['--version'], { stdio: 'ignore' }).status === 0;
const REQUESTS = spawnSync('python3', ['-c', 'import requests'], { stdio: 'ignore' }).status === 0;

interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly lines: string[];
}

function probe(args: readonly string[]): Promise<Run> {
  return new Promise((resolve, reject) => {
    // cwd = the PKI dir, so the files are named as a user would (good.pem, root.crt).
    const child = spawn(process.execPath, [CLI, 'probe', ...args], { cwd: pki.dir, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr, lines: stdout.split('\n') }));
  });
}

/** A tool in the PKI dir, asynchronously: certgate runs in this process and must keep answering. */
function runTool(cmd: string, args: readonly string[]): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: pki.dir, stdio: ['ignore', 'pipe', 'pipe'], timeout: 20_000 });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.once('error', reject);
    child.once('close', () => resolve({ stdout, stderr }));
  });
}

/** The one "error:" line carrying `code`, which must also contain every `parts` string. */
function errorLine(r: Run, code: string, ...parts: string[]): string {
  const line = r.lines.find((l) => l.startsWith('error:') && l.endsWith(`[${code}]`));
  assert.ok(line !== undefined, `an error line with [${code}] in:\n${r.stdout}${r.stderr}`);
  for (const p of parts) assert.ok(line.includes(p), `"${p}" in: ${line}`);
  return line;
}

let pki: TestPki;
let tmp: string;
let upstream: RecordingUpstream;
let gate: RunningCertgate;
let gateOff: RunningCertgate;
let gateOptional: RunningCertgate;
const servers: https.Server[] = [];
/** https://127.0.0.1:PORT of each plain Node server. */
const plain: Record<'good' | 'leafOnly' | 'rootOnlyClients' | 'otherHost' | 'otherCa' | 'noClientAuth', string> = {
  good: '', leafOnly: '', rootOnlyClients: '', otherHost: '', otherCa: '', noClientAuth: '',
};

async function listenPlain(opts: https.ServerOptions): Promise<string> {
  const server = https.createServer(opts, (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end('hello from a plain Node server\n');
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

function write(name: string, data: string, mode = 0o600): string {
  const file = path.join(pki.dir, name);
  writeFileSync(file, data, { mode });
  return file;
}

before(async () => {
  pki = await createTestPki();
  tmp = mkdtempSync(path.join(os.tmpdir(), 'certgate-probe-'));
  upstream = await startRecordingUpstream();
  const tls = { bundle: pki.serverBundle.pemPath, client_ca: pki.clientCa.path };
  const routes = [
    { name: 'api', path_prefix: '/api', upstream: upstream.url, allow: { subject_cn: ['svc-a'] } },
    { name: 'root', path_prefix: '/', upstream: upstream.url },
  ];
  [gate, gateOff, gateOptional] = await Promise.all([
    startTestCertgate({ tls, routes, whoami_path: WHOAMI }),
    startTestCertgate({ tls, routes }),
    startTestCertgate({ tls: { ...tls, client_auth: 'optional' }, routes, whoami_path: WHOAMI }),
  ]);

  const S = pki.serverBundle;
  const otherHost = await pki.issueClient({ name: 'srv-other-host', usage: 'server', subject: [['CN', 'api.example.com']], san: { dns: ['api.example.com'] } });
  const otherCaServer = await pki.issueClient({ name: 'srv-other-ca', usage: 'server', issuer: 'other', subject: [['CN', 'localhost']], san: { ip: ['127.0.0.1'] } });
  const verifyClients = { requestCert: true, rejectUnauthorized: true } as const;
  plain.good = await listenPlain({ key: S.key, cert: S.cert + pki.intermediate.cert, ca: pki.clientCa.pem, ...verifyClients });
  // The seed-004 server: its bundle holds the leaf alone. Its CA store must not hold the intermediate
  // either, or OpenSSL completes the chain from it (auto chain building) and the bug hides.
  plain.leafOnly = await listenPlain({ key: S.key, cert: S.cert, ca: pki.rootOnlyCa.pem, ...verifyClients });
  // Trusts the clients' root only: a client must send its intermediate itself.
  plain.rootOnlyClients = await listenPlain({ key: S.key, cert: S.cert + pki.intermediate.cert, ca: pki.rootOnlyCa.pem, ...verifyClients });
  plain.otherHost = await listenPlain({ key: otherHost.key, cert: otherHost.cert + pki.intermediate.cert, ca: pki.clientCa.pem, ...verifyClients });
  plain.otherCa = await listenPlain({ key: otherCaServer.key, cert: otherCaServer.cert + pki.otherRoot.cert, ca: pki.clientCa.pem, ...verifyClients });
  plain.noClientAuth = await listenPlain({ key: S.key, cert: S.cert + pki.intermediate.cert });

  const encrypted = createPrivateKey(pki.clients.good.key).export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: 's3cret' }) as string;
  write('good-encrypted.key', encrypted);
  write('good.pass', 's3cret\n');
  write('wrong.pass', 'guess\n');
  write('good-chain.crt', pki.clients.good.cert + pki.intermediate.cert, 0o644);
});

after(async () => {
  await Promise.all(servers.map((s) => new Promise<void>((resolve) => {
    s.closeAllConnections();
    s.close(() => resolve());
  })));
  await Promise.all([gate?.close(), gateOff?.close(), gateOptional?.close()]);
  await upstream?.close();
  pki?.cleanup();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

const good = (): { cert: string; key: string; ca: string } => ({ cert: pki.clients.good.cert + pki.intermediate.cert, key: pki.clients.good.key, ca: pki.root.cert });
const whoamiRequests = (): number => upstream.requests.filter((r) => r.url.startsWith(WHOAMI)).length;

describe('whoami_path: certgate answers it itself', () => {
  it('shows a verified client exactly the identity and X-Forwarded-* headers the upstream receives', { timeout: TIMEOUT }, async () => {
    const before = whoamiRequests();
    const seen = await mtlsRequest(gate.url, good(), { path: `${WHOAMI}?path=/api/orders` });
    assert.equal(seen.status, 200, seen.body);
    const answer = seen.json<{ certgate: string; headers: Record<string, string>; route: { name: string; allowed: boolean; path: string } }>();
    assert.equal(answer.certgate, 'certgate-whoami/1');
    assert.deepEqual(answer.route, { path: '/api/orders', name: 'api', allowed: true });

    const forwarded = await mtlsRequest(gate.url, good(), { path: '/api/orders' });
    assert.equal(forwarded.status, 200);
    const received = upstream.requests.at(-1);
    assert.ok(received !== undefined && received.url === '/api/orders');
    const ours = (h: Record<string, unknown>): Record<string, unknown> =>
      Object.fromEntries(Object.entries(h).filter(([k]) => /^(x-client-cert|client-cert|x-forwarded-)/.test(k)));
    // The source port differs per connection; X-Forwarded-For carries the address only.
    assert.deepEqual(answer.headers, ours(received.headers));
    assert.equal(answer.headers['x-client-cert-subject'], 'CN=svc-a,OU=payments');
    assert.equal(whoamiRequests(), before, 'whoami never reaches the upstream');
  });

  it('tells a client the route refuses it, without naming who would be allowed', { timeout: TIMEOUT }, async () => {
    const direct = { cert: pki.clients.direct.cert, key: pki.clients.direct.key, ca: pki.root.cert };
    const r = await mtlsRequest(gate.url, direct, { path: `${WHOAMI}?path=/api` });
    assert.equal(r.status, 200, r.body);
    assert.deepEqual(r.json().route, { path: '/api', name: 'api', allowed: false });
    assert.doesNotMatch(r.body, /svc-a/, 'the allow list is not leaked');
  });

  it('a refused client gets the usual 400 refusal, with its reason and a plain hint; nothing is forwarded', { timeout: TIMEOUT }, async () => {
    const before = whoamiRequests();
    const expired = { cert: pki.clients.expired.cert + pki.intermediate.cert, key: pki.clients.expired.key, ca: pki.root.cert };
    const r = await mtlsRequest(gate.url, expired, { path: WHOAMI });
    assert.equal(r.status, 400, r.body);
    const body = r.json<{ error: string; reason: string; hint: string }>();
    assert.deepEqual([body.error, body.reason], ['client_certificate_invalid', 'expired']);
    assert.match(body.hint, /renewed/);
    assert.equal(whoamiRequests(), before);
  });

  it('without a certificate (client_auth: optional) it says it needs one', { timeout: TIMEOUT }, async () => {
    const r = await mtlsRequest(gateOptional.url, { ca: pki.root.cert }, { path: WHOAMI });
    assert.equal(r.status, 400, r.body);
    assert.equal(r.json().error, 'client_certificate_required');
  });

  it('a WebSocket upgrade to whoami_path is refused, not forwarded', { timeout: TIMEOUT }, async () => {
    const before = whoamiRequests();
    const { port } = new URL(gate.url);
    const reply = await rawTlsExchange('127.0.0.1', Number(port), good(),
      `GET ${WHOAMI} HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`);
    assert.match(reply, /^HTTP\/1\.1 400 /, reply);
    assert.match(reply, /"reason":"whoami_path"/);
    assert.equal(whoamiRequests(), before);
  });

  it('is off when whoami_path is not set: the path is routed like any other', { timeout: TIMEOUT }, async () => {
    const before = whoamiRequests();
    const r = await mtlsRequest(gateOff.url, good(), { path: WHOAMI });
    assert.equal(r.status, 200, r.body);
    assert.deepEqual(r.json(), { ok: true, url: WHOAMI }, 'the recording upstream answered');
    assert.equal(whoamiRequests(), before + 1);
  });
});

describe('certgate probe against certgate', () => {
  it('a good client: exit 0, the identity headers the upstream sees, the route, and the working curl/requests calls', { timeout: TIMEOUT }, async () => {
    const refusals = gate.logs.find('client certificate refused').length;
    const noCert = metricValue(await gate.metricsText(), 'certgate_tls_handshake_failures_total', { reason: 'no_certificate' }) ?? 0;
    const r = await probe([`${gate.url}/api/x`, '--cert', 'good.pem', '--ca', 'root.crt']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    // The openssl observation presents the certificate too: a good probe leaves no refusal behind.
    assert.equal(gate.logs.find('client certificate refused').length, refusals, 'no refusal logged');
    assert.equal(metricValue(await gate.metricsText(), 'certgate_tls_handshake_failures_total', { reason: 'no_certificate' }) ?? 0, noCert);
    assert.ok(r.lines.includes('Result: OK: the server verified your certificate and answered 200'), r.stdout);
    assert.ok(r.lines.includes('  x-client-cert-subject: CN=svc-a,OU=payments'), r.stdout);
    assert.ok(r.lines.includes('  route for /api/x: api (allowed)'), r.stdout);
    assert.ok(r.lines.includes(`  curl --cert good.pem --cacert root.crt ${gate.url}/api/x`), r.stdout);
    assert.ok(r.lines.includes(`  requests.get("${gate.url}/api/x", cert="good.pem", verify="root.crt")`), r.stdout);
    assert.doesNotMatch(r.stdout, /^error:/m);
  });

  it('lists the server chain as sent and the CA names certgate accepts', { timeout: TIMEOUT, skip: NEEDS_OPENSSL }, async () => {
    const r = await probe([`${gate.url}/`, '--cert', 'good.pem', '--ca', 'root.crt']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const at = r.lines.indexOf('Server certificate chain, as the server sent it:');
    assert.ok(at >= 0, r.stdout);
    assert.equal(r.lines[at + 1], '  0  CN=localhost');
    assert.equal(r.lines[at + 3], '  1  CN=certgate test intermediate CA,O=certgate test');
    const names = r.lines.indexOf('  the server asks for a client certificate issued by one of:');
    assert.deepEqual(r.lines.slice(names + 1, names + 3), ['    CN=certgate test root CA,O=certgate test', '    CN=certgate test intermediate CA,O=certgate test']);
    assert.ok(r.lines.includes('  yours chains to CN=certgate test intermediate CA,O=certgate test: listed'), r.stdout);
  });

  it('untrusted server CA (--ca is another root): names the root the CA file lacks', { timeout: TIMEOUT, skip: NEEDS_OPENSSL }, async () => {
    const r = await probe([`${gate.url}/`, '--cert', 'good.pem', '--ca', 'other-root.crt']);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    errorLine(r, 'CG_PROBE_SERVER_UNTRUSTED', 'needs CN=certgate test root CA,O=certgate test', 'which is not in other-root.crt (which holds CN=unrelated root CA,O=elsewhere)');
    assert.match(r.stdout, /^Handshake: failed: unable to get local issuer certificate \(UNABLE_TO_GET_ISSUER_CERT_LOCALLY\)$/m);
  });

  it('a client from another CA: the CA names certgate accepts, and certgate\'s refusal reason unknown_ca with its hint', { timeout: TIMEOUT, skip: NEEDS_OPENSSL }, async () => {
    const r = await probe([`${gate.url}/`, '--cert', 'other-ca.pem', '--ca', 'root.crt']);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    errorLine(r, 'CG_PROBE_CLIENT_CA', 'issued by CN=unrelated root CA,O=elsewhere',
      'the server accepts client certificates issued by CN=certgate test root CA,O=certgate test; CN=certgate test intermediate CA,O=certgate test');
    errorLine(r, 'CG_PROBE_REFUSED', '400 client_certificate_invalid, reason unknown_ca', 'fix: your certificate was not issued by a CA this server trusts');
  });

  it('an expired client: certgate\'s reason expired, and the probe\'s own CG_CERT_EXPIRED', { timeout: TIMEOUT }, async () => {
    const r = await probe([`${gate.url}/`, '--cert', 'expired.pem', '--ca', 'root.crt']);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    errorLine(r, 'CG_PROBE_REFUSED', 'reason expired');
    errorLine(r, 'CG_CERT_EXPIRED', 'your client certificate CN=svc-expired expired on');
  });

  it('no client certificate: says certgate requires one', { timeout: TIMEOUT }, async () => {
    const r = await probe([`${gate.url}/`, '--ca', 'root.crt']);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    errorLine(r, 'CG_PROBE_NO_CLIENT_CERT', 'the server (certgate) requires a client certificate and none was given: 400 client_certificate_required');
  });

  it('a verified client the route does not allow: 403 named, and whoami shows who it is and the refusal', { timeout: TIMEOUT }, async () => {
    const r = await probe([`${gate.url}/api/x`, '--cert', 'direct.pem', '--ca', 'root.crt']);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    errorLine(r, 'CG_PROBE_REFUSED', 'does not allow it on route api: 403 forbidden');
    assert.ok(r.lines.includes('  x-client-cert-subject: CN=svc-direct'), r.stdout);
    assert.ok(r.lines.includes('  route for /api/x: api (you are NOT allowed)'), r.stdout);
  });

  it('the printed curl call works as printed', { timeout: TIMEOUT, skip: CURL ? false : 'curl is not installed' }, async () => {
    const r = await probe([`${gate.url}/api/x`, '--cert', 'good.pem', '--ca', 'root.crt']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const curl = r.lines.find((l) => l.startsWith('  curl '))?.trim();
    assert.ok(curl !== undefined, r.stdout);
    const run = await runTool('sh', ['-c', `${curl} -sS -o /dev/null -w '%{http_code}'`]);
    assert.equal(run.stdout, '200', `${curl}\n${run.stderr}`);
  });

  it('the printed Python requests call works as printed', { timeout: TIMEOUT, skip: REQUESTS ? false : 'python3 with requests is not installed' }, async () => {
    const r = await probe([`${gate.url}/api/x`, '--cert', 'good.pem', '--ca', 'root.crt']);
    const call = r.lines.find((l) => l.startsWith('  requests.get('))?.trim();
    assert.ok(call !== undefined, r.stdout);
    const run = await runTool('python3', ['-c', `import requests\nr = ${call}\nprint(r.status_code, r.json()["url"])`]);
    assert.equal(run.stdout.trim(), '200 /api/x', `${call}\n${run.stderr}`);
  });

  it('--json: the same report as data', { timeout: TIMEOUT }, async () => {
    const r = await probe([`${gate.url}/api/x`, '--cert', 'good.pem', '--ca', 'root.crt', '--json']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const report = JSON.parse(r.stdout) as {
      ok: boolean; handshake: { completed: boolean }; http: { status: number };
      whoami: { answer: { headers: Record<string, string>; route: { name: string } } }; findings: unknown[];
    };
    assert.equal(report.ok, true);
    assert.equal(report.handshake.completed, true);
    assert.equal(report.http.status, 200);
    assert.equal(report.whoami.answer.headers['x-client-cert-subject'], 'CN=svc-a,OU=payments');
    assert.equal(report.whoami.answer.route.name, 'api');
  });
});

describe('certgate probe against a plain Node https server (not certgate)', () => {
  it('works: exit 0; no whoami there', { timeout: TIMEOUT }, async () => {
    const r = await probe([`${plain.good}/`, '--cert', 'good.pem', '--ca', 'root.crt']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.ok(r.lines.some((l) => l.startsWith('certgate whoami: GET /.certgate/whoami -> 200: not available')), r.stdout);
  });

  it('the server\'s bundle lacks the intermediate (seed 004): names the missing certificate and its key id', { timeout: TIMEOUT, skip: NEEDS_OPENSSL }, async () => {
    const r = await probe([`${plain.leafOnly}/`, '--cert', 'good.pem', '--ca', 'root.crt']);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    const keyId = authorityKeyId(pki.serverBundle.x509);
    assert.ok(keyId !== undefined);
    errorLine(r, 'CG_PROBE_CHAIN_INCOMPLETE',
      `the server certificate CN=localhost was issued by CN=certgate test intermediate CA,O=certgate test (key id ${keyId}), which the server did not send`,
      'clients say: unable to get local issuer certificate', 'the server\'s certificate file lacks it');
  });

  it('a client certificate from another CA: lists the acceptable CA names, and the server\'s refusal', { timeout: TIMEOUT, skip: NEEDS_OPENSSL }, async () => {
    const r = await probe([`${plain.good}/`, '--cert', 'other-ca.pem', '--ca', 'root.crt']);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    const names = r.lines.indexOf('  the server asks for a client certificate issued by one of:');
    assert.ok(names > 0, r.stdout);
    assert.deepEqual(r.lines.slice(names + 1, names + 3), ['    CN=certgate test root CA,O=certgate test', '    CN=certgate test intermediate CA,O=certgate test']);
    errorLine(r, 'CG_PROBE_CLIENT_CA', 'CN=svc-other is issued by CN=unrelated root CA,O=elsewhere');
    errorLine(r, 'CG_PROBE_REFUSED');
  });

  it('a client certificate sent without its intermediate, to a server trusting the root only: says to append it', { timeout: TIMEOUT, skip: NEEDS_OPENSSL }, async () => {
    const r = await probe([`${plain.rootOnlyClients}/`, '--cert', 'good.crt', '--key', 'good.key', '--ca', 'root.crt']);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    errorLine(r, 'CG_PROBE_CLIENT_CA', 'CN=svc-a,OU=payments is issued by CN=certgate test intermediate CA,O=certgate test; the server accepts client certificates issued by CN=certgate test root CA,O=certgate test, and you send your certificate alone',
      'append its certificate to your cert file');
    errorLine(r, 'CG_PROBE_REFUSED');
  });

  it('... but with the intermediate in --ca, OpenSSL clients send it from there: works, and says so', { timeout: TIMEOUT, skip: NEEDS_OPENSSL }, async () => {
    const r = await probe([`${plain.rootOnlyClients}/`, '--cert', 'good.crt', '--key', 'good.key', '--ca', 'client-ca.pem']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.ok(r.lines.includes('  sent along from client-ca.pem (OpenSSL clients complete a lone certificate\'s chain from their CA file): CN=certgate test intermediate CA,O=certgate test; CN=certgate test root CA,O=certgate test'), r.stdout);
    assert.ok(r.lines.includes('  yours chains to CN=certgate test root CA,O=certgate test: listed'), r.stdout);
  });

  it('the URL\'s host is not in the server certificate', { timeout: TIMEOUT }, async () => {
    const r = await probe([`${plain.otherHost}/`, '--cert', 'good.pem', '--ca', 'root.crt']);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    errorLine(r, 'CG_PROBE_HOSTNAME', 'does not name 127.0.0.1: it names DNS:api.example.com', 'connect with a name the certificate lists (e.g. api.example.com)');
  });

  it('the CA file holds the client\'s CA, not the server\'s (seeds 001/003): says which root is missing and why', { timeout: TIMEOUT, skip: NEEDS_OPENSSL }, async () => {
    const r = await probe([`${plain.otherCa}/`, '--cert', 'good.pem', '--ca', 'root.crt']);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    errorLine(r, 'CG_PROBE_SERVER_UNTRUSTED', 'the server\'s chain ends at the root CN=unrelated root CA,O=elsewhere, which is not in root.crt',
      'root.crt holds CN=certgate test root CA,O=certgate test, the CA of your client certificate');
  });

  it('the CA file is not where --ca says: CG_FILE_READ, and no verified connection is attempted', { timeout: TIMEOUT }, async () => {
    const r = await probe([`${plain.good}/`, '--cert', 'good.pem', '--ca', 'certs/ca-bundle.crt']);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.ok(r.lines.some((l) => l === 'error: certs/ca-bundle.crt: cannot read --ca certs/ca-bundle.crt: it does not exist (fix: check the path given to --ca) [CG_FILE_READ]'), r.stdout);
    assert.ok(r.lines.includes('Handshake: not attempted (see below)'), r.stdout);
  });

  it('an encrypted key without --pass-file (seed 002): says so, and what Python requests can do about it', { timeout: TIMEOUT }, async () => {
    const r = await probe([`${plain.good}/`, '--cert', 'good-chain.crt', '--key', 'good-encrypted.key', '--ca', 'root.crt']);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    errorLine(r, 'CG_KEY_ENCRYPTED', 'the private key in good-encrypted.key is encrypted (ENCRYPTED PRIVATE KEY) and no --pass-file was given', 'Python requests cannot use an encrypted key');
    assert.ok(r.lines.some((l) => l.includes('(without a client certificate: yours could not be used, see below)')), r.stdout);
  });

  it('an encrypted key with the wrong passphrase', { timeout: TIMEOUT }, async () => {
    const r = await probe([`${plain.good}/`, '--cert', 'good-chain.crt', '--key', 'good-encrypted.key', '--pass-file', 'wrong.pass', '--ca', 'root.crt']);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    errorLine(r, 'CG_KEY_PASSPHRASE', 'the passphrase in wrong.pass does not decrypt the private key in good-encrypted.key');
  });

  it('an encrypted key with the right passphrase works, and the equivalent calls show how to use it', { timeout: TIMEOUT }, async () => {
    const r = await probe([`${plain.good}/`, '--cert', 'good-chain.crt', '--key', 'good-encrypted.key', '--pass-file', 'good.pass', '--ca', 'root.crt']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.ok(r.lines.includes(`  curl --cert good-chain.crt --key good-encrypted.key --pass "$(cat good.pass)" --cacert root.crt ${plain.good}/`), r.stdout);
    assert.ok(r.lines.includes('  ctx.load_cert_chain("good-chain.crt", "good-encrypted.key", password=open("good.pass").read().rstrip("\\n"))'), r.stdout);
  });

  it('a key that does not match the certificate', { timeout: TIMEOUT }, async () => {
    const r = await probe([`${plain.good}/`, '--cert', 'good.crt', '--key', 'other-ca.key', '--ca', 'root.crt']);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    errorLine(r, 'CG_KEY_MISMATCH', 'the private key in other-ca.key does not belong to the certificate CN=svc-a,OU=payments');
  });

  it('no client certificate for a server that requires one: the alert named', { timeout: TIMEOUT }, async () => {
    const r = await probe([`${plain.good}/`, '--ca', 'root.crt']);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    const line = errorLine(r, 'CG_PROBE_NO_CLIENT_CERT');
    assert.match(line, /certificate_required|handshake_failure/);
  });

  it('a server that does not ask for a client certificate: a warning, exit 0', { timeout: TIMEOUT, skip: NEEDS_OPENSSL }, async () => {
    const r = await probe([`${plain.noClientAuth}/`, '--cert', 'good.pem', '--ca', 'root.crt']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.ok(r.lines.includes('  the server does not ask for a client certificate'), r.stdout);
    assert.ok(r.lines.some((l) => l.startsWith('warning:') && l.endsWith('[CG_PROBE_NO_CERT_REQUEST]')), r.stdout);
  });

  it('nothing listens: CG_PROBE_CONNECT', { timeout: TIMEOUT }, async () => {
    const closed = https.createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const r = await probe([`https://127.0.0.1:${port}/`, '--ca', 'root.crt']);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    errorLine(r, 'CG_PROBE_CONNECT', `could not reach 127.0.0.1:${port}: ECONNREFUSED`);
  });
});

describe('certgate probe usage', () => {
  it('without a URL, or with an http:// one: exit 2, one line', async () => {
    for (const args of [[], ['http://127.0.0.1:1/'], ['https://127.0.0.1:1/', '--key', 'good.key']]) {
      const r = await probe(args);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stdout}${r.stderr}`);
      assert.match(r.stderr.trim(), /^certgate: error: .*\[CG_USAGE\]$/);
    }
  });
});
