/**
 * Interop with the clients certgate's users actually run: curl, openssl s_client and Python requests,
 * against a real certgate (startTestCertgate, in-process) in front of the product's whoami upstream,
 * with the per-run test PKI. Verification is always on: every client verifies the server against the
 * test root (a root-only trust store, so the server must present the intermediate).
 * A missing tool is a skip naming the tool, never a silent pass.
 */
import { after, before, describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { listenEchoUpstream } from '../../dist/echo-upstream.js';
import { createTestPki, type TestPki } from '../helpers/pki.js';
import { metricValue, startTestCertgate, type RunningCertgate } from '../helpers/certgate.js';

interface Run {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

const children = new Set<ChildProcess>();
const TEST_TIMEOUT = 30_000;

/** Runs a tool to completion (stdin = `input`, then EOF) and collects its output. */
function run(cmd: string, args: readonly string[], input = ''): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    children.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.once('error', (err) => {
      children.delete(child);
      reject(err);
    });
    child.once('close', (code, signal) => {
      children.delete(child);
      resolve({ code, signal, stdout, stderr });
    });
    child.stdin.on('error', () => undefined);
    child.stdin.end(input);
  });
}

const toolCache = new Map<string, string | undefined>();
/** undefined when usable, else why not (for t.skip). */
function missing(name: string, cmd: string, args: readonly string[]): string | undefined {
  if (!toolCache.has(name)) {
    const r = spawnSync(cmd, args, { stdio: 'ignore' });
    toolCache.set(name, r.error === undefined && r.status === 0 ? undefined : `${name} is not installed`);
  }
  return toolCache.get(name);
}
const needCurl = (t: TestContext): boolean => skipIf(t, missing('curl', 'curl', ['--version']));
const needOpenssl = (t: TestContext): boolean => skipIf(t, missing('openssl', 'openssl', ['version']));
const needRequests = (t: TestContext): boolean => skipIf(t, missing('python3 with requests', 'python3', ['-c', 'import requests']));
function skipIf(t: TestContext, reason: string | undefined): boolean {
  if (reason === undefined) return false;
  t.skip(reason);
  return true;
}

interface Echo {
  method: string;
  path: string;
  headers: Record<string, string>;
}

let pki: TestPki;
let cg: RunningCertgate;
let upstream: { url: string; close(): Promise<void> };
let upstreamRequests = 0;

before(async () => {
  pki = await createTestPki();
  const w = await listenEchoUpstream('127.0.0.1', 0);
  w.server.on('request', () => void upstreamRequests++);
  upstream = w;
  cg = await startTestCertgate({
    tls: { bundle: pki.serverBundle.pemPath, client_ca: pki.clientCa.path },
    routes: [{ name: 'whoami', path_prefix: '/', upstream: w.url }],
  });
});

after(async () => {
  for (const child of children) child.kill('SIGKILL');
  try {
    await cg?.close();
    await upstream?.close();
  } finally {
    pki?.cleanup();
  }
});

async function metric(name: string, labels: Record<string, string>): Promise<number> {
  return metricValue(await cg.metricsText(), name, labels) ?? 0;
}

/** `openssl x509 -noout <what> -nameopt RFC2253` of a certificate file, without the `subject=`-style prefix. */
async function opensslField(file: string, what: string[]): Promise<string> {
  const r = await run('openssl', ['x509', '-in', file, '-noout', ...what]);
  assert.equal(r.code, 0, `openssl x509 ${what.join(' ')}: ${r.stderr}`);
  const out = r.stdout.trim();
  const eq = out.indexOf('=');
  assert.ok(eq > 0, `openssl output has a "name=" prefix: ${out}`);
  return out.slice(eq + 1);
}

/** curl with the status code appended on a last line of its own. */
async function curl(args: readonly string[], path = '/'): Promise<Run & { status: string; body: string }> {
  const r = await run('curl', ['-sS', '--cacert', pki.root.certPath, '-w', '\n%{http_code}', ...args, `${cg.url}${path}`]);
  const cut = r.stdout.lastIndexOf('\n');
  return { ...r, body: cut < 0 ? '' : r.stdout.slice(0, cut), status: r.stdout.slice(cut + 1) };
}

describe('curl', () => {
  for (const name of ['good', 'hostileDn'] as const) {
    it(`--cert ${name}.pem: subject, issuer, fingerprint and serial match openssl x509`, { timeout: TEST_TIMEOUT }, async (t) => {
      if (needCurl(t) || needOpenssl(t)) return;
      const client = pki.clients[name];
      const before = upstreamRequests;
      const r = await curl(['--cert', client.pemPath], '/interop');
      assert.equal(r.status, '200', `curl: ${r.stderr}\n${r.body}`);
      const echo = JSON.parse(r.body) as Echo;
      assert.equal(echo.path, '/interop');
      const h = echo.headers;
      assert.equal(h['x-client-cert-verified'], 'SUCCESS');
      assert.equal(h['x-client-cert-subject'], await opensslField(client.certPath, ['-subject', '-nameopt', 'RFC2253']), 'subject as openssl prints it');
      assert.equal(h['x-client-cert-issuer'], await opensslField(client.certPath, ['-issuer', '-nameopt', 'RFC2253']), 'issuer as openssl prints it');
      const fp = await opensslField(client.certPath, ['-fingerprint', '-sha256']);
      assert.equal(h['x-client-cert-fingerprint'], fp.replaceAll(':', '').toLowerCase(), 'fingerprint = openssl -fingerprint -sha256, lowercased, no colons');
      assert.equal(h['x-client-cert-serial'], await opensslField(client.certPath, ['-serial']), 'serial as openssl prints it');
      assert.equal(upstreamRequests, before + 1);
    });
  }

  it('the good client\'s subject is the one the test PKI documents', { timeout: TEST_TIMEOUT }, async (t) => {
    if (needOpenssl(t)) return;
    // Guards the comparison above against an openssl that prints something else entirely.
    assert.equal(await opensslField(pki.clients.good.certPath, ['-subject', '-nameopt', 'RFC2253']), 'CN=svc-a,OU=payments');
    assert.equal(
      await opensslField(pki.clients.hostileDn.certPath, ['-subject', '-nameopt', 'RFC2253']),
      'CN=a\\,O=admin\\+x \\"q\\" \\<b\\>\\;,OU=J\\C3\\BCrgen \\E6\\97\\A5\\E6\\9C\\AC',
    );
  });

  it('without a client certificate: 400 client_certificate_required, nothing forwarded', { timeout: TEST_TIMEOUT }, async (t) => {
    if (needCurl(t)) return;
    const before = upstreamRequests;
    const r = await curl([]);
    assert.equal(r.status, '400', `curl: ${r.stderr}\n${r.body}`);
    const body = JSON.parse(r.body) as Record<string, unknown>;
    assert.equal(body.error, 'client_certificate_required');
    assert.equal(typeof body.message, 'string');
    assert.equal(upstreamRequests, before, 'the upstream saw nothing');
  });

  it('with the expired client: 400 client_certificate_invalid, reason expired', { timeout: TEST_TIMEOUT }, async (t) => {
    if (needCurl(t)) return;
    const before = upstreamRequests;
    const r = await curl(['--cert', pki.clients.expired.pemPath]);
    assert.equal(r.status, '400', `curl: ${r.stderr}\n${r.body}`);
    const body = JSON.parse(r.body) as Record<string, unknown>;
    assert.equal(body.error, 'client_certificate_invalid');
    assert.equal(body.reason, 'expired');
    assert.equal(upstreamRequests, before, 'the upstream saw nothing');
  });

  for (const [flag, version] of [[['--tlsv1.3'], 'TLSv1.3'], [['--tls-max', '1.2'], 'TLSv1.2']] as const) {
    it(`${flag.join(' ')} negotiates ${version} and gets through`, { timeout: TEST_TIMEOUT }, async (t) => {
      if (needCurl(t)) return;
      const handshakes = await metric('certgate_tls_handshakes_total', { version, resumed: 'false' });
      const r = await curl(['-v', ...flag, '--cert', pki.clients.good.pemPath]);
      assert.equal(r.status, '200', `curl: ${r.stderr}\n${r.body}`);
      assert.equal((JSON.parse(r.body) as Echo).headers['x-client-cert-subject'], 'CN=svc-a,OU=payments');
      assert.match(r.stderr, new RegExp(`SSL connection using ${version.replace('.', '\\.')} `), 'curl -v names the version');
      assert.equal(await metric('certgate_tls_handshakes_total', { version, resumed: 'false' }), handshakes + 1, `server counted a ${version} handshake`);
    });
  }

  it('--tls-max 1.1 fails to handshake (refused by the server, nothing forwarded)', { timeout: TEST_TIMEOUT }, async (t) => {
    if (needCurl(t)) return;
    const before = upstreamRequests;
    const failures = await metric('certgate_tls_handshake_failures_total', { reason: 'protocol' });
    const r = await curl(['--tls-max', '1.1', '--cert', pki.clients.good.pemPath]);
    assert.notEqual(r.code, 0, 'curl fails');
    assert.equal(r.body, '', 'no HTTP answer');
    assert.equal(r.status, '000', 'no HTTP status');
    // The ClientHello reached certgate and certgate refused it: not a client-side refusal to even try.
    assert.equal(await metric('certgate_tls_handshake_failures_total', { reason: 'protocol' }), failures + 1, 'server counted a protocol failure');
    assert.equal(upstreamRequests, before, 'the upstream saw nothing');
  });
});

describe('openssl s_client', () => {
  const request = 'GET /s_client HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n';
  const sClient = (caFile: string): Promise<Run> => run('openssl', [
    's_client', '-connect', `127.0.0.1:${cg.port}`, '-servername', 'localhost', '-verify_ip', '127.0.0.1',
    '-CAfile', caFile, '-cert', pki.clients.good.certPath, '-key', pki.clients.good.keyPath,
    // -ign_eof: after stdin's EOF keep reading until the server closes (it must, given Connection: close).
    '-verify_return_error', '-ign_eof',
  ], request);

  /**
   * s_client prints session details (TLS 1.3 tickets arrive after the handshake) through a buffered
   * stream and the application data with raw writes, so the two interleave on stdout: find the HTTP
   * head and the JSON body by content, not by line.
   */
  function httpAnswer(out: string): { head: string; echo: Echo } {
    const at = out.indexOf('HTTP/1.1 ');
    assert.ok(at >= 0, `no HTTP answer in the s_client output:\n${out}`);
    const headEnd = out.indexOf('\r\n\r\n', at);
    assert.ok(headEnd > at, 'a complete HTTP head');
    const head = out.slice(at, headEnd);
    const from = out.indexOf('{"method"', headEnd);
    assert.ok(from > 0, 'a whoami JSON body');
    for (let end = out.indexOf('}', from); end > 0; end = out.indexOf('}', end + 1)) {
      try {
        return { head, echo: JSON.parse(out.slice(from, end + 1)) as Echo };
      } catch {
        // not the closing brace yet
      }
    }
    assert.fail(`the whoami JSON body does not parse:\n${out.slice(from)}`);
  }

  let rootOnly: Promise<{ r: Run; forwarded: number }> | undefined;
  /** One s_client exchange with a root-only trust store, shared by the tests below. */
  const rootOnlyExchange = (): Promise<{ r: Run; forwarded: number }> => {
    rootOnly ??= (async () => {
      const before = upstreamRequests;
      const r = await sClient(pki.root.certPath);
      return { r, forwarded: upstreamRequests - before };
    })();
    return rootOnly;
  };

  it('a root-only client verifies: the server presents the intermediate at depth 1', { timeout: TEST_TIMEOUT }, async (t) => {
    if (needOpenssl(t)) return;
    const { r } = await rootOnlyExchange();
    const out = r.stdout;
    assert.match(out, /^Certificate chain$/m, `s_client output:\n${out}\n${r.stderr}`);
    assert.match(out, /^ 0 s:CN ?= ?localhost$/m, 'depth 0: the server leaf');
    assert.match(out, /^ 1 s:O ?= ?certgate test, ?CN ?= ?certgate test intermediate CA$/m, 'depth 1: the intermediate, sent by the server');
    assert.doesNotMatch(out, /^ 2 s:/m, 'the root is not sent (the client has it)');
    assert.match(r.stderr, /^depth=1 .*certgate test intermediate CA$/m, 'verified at depth 1');
    assert.match(out, /Verify return code: 0 \(ok\)/);
  });

  it('an HTTP request written to its stdin gets the whoami answer', { timeout: TEST_TIMEOUT }, async (t) => {
    if (needOpenssl(t)) return;
    const { r, forwarded } = await rootOnlyExchange();
    const { head, echo } = httpAnswer(r.stdout);
    assert.match(head, /^HTTP\/1\.1 200 OK\r\n/);
    assert.equal(echo.path, '/s_client');
    assert.equal(echo.headers['x-client-cert-verified'], 'SUCCESS');
    assert.equal(echo.headers['x-client-cert-subject'], 'CN=svc-a,OU=payments');
    assert.equal(forwarded, 1, 'the upstream saw the request');
  });

  it('the client\'s "Connection: close" is honoured: no upstream keep-alive headers leak into the answer', { timeout: TEST_TIMEOUT }, async (t) => {
    if (needOpenssl(t)) return;
    const { r } = await rootOnlyExchange();
    const { head } = httpAnswer(r.stdout);
    const headers = head.split('\r\n').slice(1).map((l) => l.toLowerCase());
    // RFC 9112 §9.6: the server closes after answering a "close" request; RFC 9110 §7.6.1: a proxy must not
    // forward the upstream's hop-by-hop Connection/Keep-Alive fields. certgate answers with the upstream's
    // "connection: keep-alive" + "keep-alive: timeout=5" and holds the socket open until its idle timeout.
    assert.ok(!headers.some((h) => h.startsWith('keep-alive:')), `PRODUCT BUG: upstream's Keep-Alive header forwarded to the client:\n${head}`);
    assert.ok(!headers.includes('connection: keep-alive'), `PRODUCT BUG: "connection: keep-alive" answered to a "Connection: close" request:\n${head}`);
  });

  it('control: trusting another root fails verification and sends nothing', { timeout: TEST_TIMEOUT }, async (t) => {
    if (needOpenssl(t)) return;
    const before = upstreamRequests;
    const r = await sClient(pki.otherRoot.certPath);
    assert.doesNotMatch(r.stdout, /Verify return code: 0 \(ok\)/);
    assert.doesNotMatch(r.stdout, /HTTP\/1\.1/);
    assert.match(r.stderr, /verify error|certificate verify failed/i, r.stderr);
    assert.equal(upstreamRequests, before, 'the upstream saw nothing');
  });
});

describe('Python requests', () => {
  /**
   * One requests.get; prints JSON {status, body} or {error: <exception class>, detail}. `tls` pins both
   * the minimum and the maximum protocol version through an HTTPAdapter's SSLContext (verification on).
   */
  const SCRIPT = `
import json, ssl, sys
import requests
from requests.adapters import HTTPAdapter
a = json.loads(sys.argv[1])
class Pinned(HTTPAdapter):
    def init_poolmanager(self, *args, **kwargs):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        v = getattr(ssl.TLSVersion, a["tls"])
        ctx.minimum_version = v
        ctx.maximum_version = v
        kwargs["ssl_context"] = ctx
        return super().init_poolmanager(*args, **kwargs)
s = requests.Session()
if a.get("tls"):
    s.mount("https://", Pinned())
cert = a.get("cert")
if isinstance(cert, list):
    cert = tuple(cert)
try:
    r = s.get(a["url"], cert=cert, verify=a["verify"], timeout=20)
    print(json.dumps({"status": r.status_code, "body": r.text}))
except requests.exceptions.SSLError as e:
    print(json.dumps({"error": "SSLError", "detail": str(e)}))
except Exception as e:
    print(json.dumps({"error": type(e).__name__, "detail": str(e)}))
`;
  interface PyResult {
    status?: number;
    body?: string;
    error?: string;
    detail?: string;
  }
  async function py(args: { cert?: string | [string, string]; verify: string; tls?: 'TLSv1_2' | 'TLSv1_3'; path?: string }): Promise<PyResult> {
    const r = await run('python3', ['-c', SCRIPT, JSON.stringify({ url: `${cg.url}${args.path ?? '/'}`, ...args })]);
    assert.equal(r.code, 0, `python3: ${r.stderr}`);
    return JSON.parse(r.stdout) as PyResult;
  }

  it('cert=(crt, key), verify=root CA: 200 and the subject header', { timeout: TEST_TIMEOUT }, async (t) => {
    if (needRequests(t)) return;
    const before = upstreamRequests;
    const r = await py({ cert: [pki.clients.good.certPath, pki.clients.good.keyPath], verify: pki.root.certPath, path: '/py' });
    assert.equal(r.status, 200, JSON.stringify(r));
    const echo = JSON.parse(r.body ?? '') as Echo;
    assert.equal(echo.path, '/py');
    assert.equal(echo.headers['x-client-cert-subject'], 'CN=svc-a,OU=payments');
    assert.equal(upstreamRequests, before + 1);
  });

  it('cert=combined PEM (key + cert + intermediate in one file): 200', { timeout: TEST_TIMEOUT }, async (t) => {
    if (needRequests(t)) return;
    const r = await py({ cert: pki.clients.good.pemPath, verify: pki.root.certPath });
    assert.equal(r.status, 200, JSON.stringify(r));
    assert.equal((JSON.parse(r.body ?? '') as Echo).headers['x-client-cert-subject'], 'CN=svc-a,OU=payments');
  });

  it('verify= a bundle lacking our root: requests.exceptions.SSLError (the server is really verified)', { timeout: TEST_TIMEOUT }, async (t) => {
    if (needRequests(t)) return;
    const before = upstreamRequests;
    const r = await py({ cert: pki.clients.good.pemPath, verify: pki.otherRoot.certPath });
    assert.equal(r.error, 'SSLError', JSON.stringify(r));
    assert.match(r.detail ?? '', /CERTIFICATE_VERIFY_FAILED/);
    assert.equal(upstreamRequests, before, 'the upstream saw nothing');
  });

  for (const tls of ['TLSv1_3', 'TLSv1_2'] as const) {
    const version = tls.replace('_', '.');
    it(`no client certificate over ${version}: the HTTP 400 JSON answer, not an SSLError`, { timeout: TEST_TIMEOUT }, async (t) => {
      if (needRequests(t)) return;
      const before = upstreamRequests;
      const handshakes = await metric('certgate_tls_handshakes_total', { version, resumed: 'false' });
      const r = await py({ verify: pki.root.certPath, tls });
      assert.equal(r.error, undefined, `Python saw ${r.error} instead of the HTTP answer: ${r.detail}`);
      assert.equal(r.status, 400, JSON.stringify(r));
      const body = JSON.parse(r.body ?? '') as Record<string, unknown>;
      assert.equal(body.error, 'client_certificate_required');
      assert.equal(upstreamRequests, before, 'the upstream saw nothing');
      assert.equal(await metric('certgate_tls_handshakes_total', { version, resumed: 'false' }), handshakes + 1, `the connection was ${version}`);
    });
  }
});
