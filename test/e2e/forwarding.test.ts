/**
 * What crosses certgate to the upstream, and what must not — over real TLS with verified clients.
 *
 * Attacks, and why the defence holds:
 * - Identity spoofing (Traefik's 2026 advisory shape): a client holding a perfectly valid certificate
 *   adds its own `X-Client-Cert-Subject: CN=admin` (or `X_Client_Cert_Subject`, `x.client.cert.*`, two
 *   copies, other case) hoping the upstream reads the forged copy — CGI/WSGI/PHP fold `-`, `_` and `.`
 *   into one HTTP_X_CLIENT_CERT_SUBJECT variable, and frameworks disagree on which duplicate wins. The
 *   same goes for X-Forwarded-*, Forwarded, X-Real-IP, XFCC and the RFC 9440 headers. certgate deletes
 *   every such name in every spelling before it sets its own, in every header mode and also for
 *   requests with `Expect:` (which http-proxy's proxyReq hook skips), because the headers are final on
 *   req.headers before forwarding. We assert on the upstream's rawHeaders, where duplicates stay visible.
 * - Hop-by-hop abuse: a client names an end-to-end header in `Connection` or sends Keep-Alive/TE/
 *   Proxy-Connection to steer certgate's upstream hop; the upstream likewise sends its own hop fields.
 *   Each hop's fields stay on that hop (RFC 9110 §7.6.1), and the client's `Connection: close` is honoured.
 * - Request smuggling (CVE-2026-29057 / GHSA-ggv3-7p47-pfv8): http-proxy rewrites a chunked DELETE/
 *   OPTIONS without Content-Length to `Content-Length: 0` and still streams the chunked body, which the
 *   upstream then parses as a second request on a reused keep-alive connection — here a `GET /smuggled`
 *   carrying a forged identity header. certgate answers such requests 411 before anything is forwarded,
 *   and forwards every other chunked request with `Connection: close`, so leftover bytes can never
 *   become a request on a shared upstream connection. Ambiguous framing (CL+TE, two Content-Lengths,
 *   obs-fold, bare LF, NUL) is refused by Node's strict parser with a 400 and never forwarded.
 * - Bodies stream both ways intact (5 MiB, sha256-compared), and upstream connections are pooled.
 *
 * Every "never reached the upstream" assertion is made after a later sentinel request has reached it.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes, X509Certificate } from 'node:crypto';
import https from 'node:https';
import type http2 from 'node:http2';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createTestPki, type TestPki, type TestCert } from '../helpers/pki.js';
import { startTestCertgate, startRecordingUpstream, type RunningCertgate, type RecordingUpstream, type RecordedRequest } from '../helpers/certgate.js';
import { mtlsRequest, rawTlsExchange, type ClientCreds } from '../helpers/client.js';
import { openssl } from '../helpers/openssl.js';
import { h2Once } from '../helpers/h2.js';

const T = { timeout: 30_000 };
const MIB = 1024 * 1024;

let pki: TestPki;
let upstream: RecordingUpstream;
/** Answers by path: /special/hop (hop-by-hop response fields), /special/big (5 MiB). */
let special: RecordingUpstream;
/** Its own pool, so connection reuse is measured without other tests' sockets. */
let reuseUpstream: RecordingUpstream;
let gateOff: RunningCertgate;
let gateOn: RunningCertgate;
let optionalOff: RunningCertgate;
let optionalOn: RunningCertgate;
let bigResponse: string;
/** Trailers that reached the upstream on /special/trailers (behaviour runs after 'end', when they are parsed). */
const upstreamTrailers: string[][] = [];
let opensslAvailable = true;

const ALL_ON = { xfcc: true, forward_cert: true, rfc9440: true };
const ALL_OFF = { xfcc: false, forward_cert: false, rfc9440: false };

before(async () => {
  pki = await createTestPki();
  bigResponse = randomBytes(5 * MIB / 2).toString('hex');
  upstream = await startRecordingUpstream();
  special = await startRecordingUpstream(specialBehaviour);
  reuseUpstream = await startRecordingUpstream();
  const tls = { bundle: pki.serverBundle.pemPath, client_ca: pki.clientCa.path };
  const routes = [
    { name: 'special', path_prefix: '/special', upstream: special.url },
    { name: 'reuse', path_prefix: '/reuse', upstream: reuseUpstream.url },
    { name: 'all', upstream: upstream.url },
  ];
  [gateOff, gateOn, optionalOff, optionalOn] = await Promise.all([
    startTestCertgate({ tls, routes, headers: ALL_OFF }),
    startTestCertgate({ tls, routes, headers: ALL_ON }),
    startTestCertgate({ tls: { ...tls, client_auth: 'optional' }, routes, headers: ALL_OFF }),
    startTestCertgate({ tls: { ...tls, client_auth: 'optional' }, routes, headers: ALL_ON }),
  ]);
  try {
    await openssl(['version']);
  } catch {
    opensslAvailable = false;
  }
});
after(async () => {
  await Promise.all([gateOff?.close(), gateOn?.close(), optionalOff?.close(), optionalOn?.close()]);
  await Promise.all([upstream?.close(), special?.close(), reuseUpstream?.close()]);
  pki?.cleanup();
});

function specialBehaviour(req: IncomingMessage, res: ServerResponse): boolean {
  if (req.url === '/special/hop') {
    // The upstream's own hop fields; timeout=77 so they cannot be confused with Node's own `timeout=5`.
    res.writeHead(200, {
      'content-type': 'text/plain', 'content-length': '2',
      connection: 'keep-alive, x-upstream-private', 'x-upstream-private': '1', 'keep-alive': 'timeout=77, max=3',
      'x-end-to-end': 'kept',
    });
    res.end('ok');
    return true;
  }
  if (req.url === '/special/trailers') {
    upstreamTrailers.push([...req.rawTrailers]);
    return false;
  }
  if (req.url === '/special/big') {
    res.writeHead(200, { 'content-type': 'text/plain' });
    // Streamed in 64 KiB writes, chunked: the proxy must pass every byte through.
    const data = Buffer.from(bigResponse, 'latin1');
    for (let off = 0; off < data.length; off += 65_536) res.write(data.subarray(off, off + 65_536));
    res.end();
    return true;
  }
  return false;
}

// ---------------------------------------------------------------------------------------------------
// helpers

const creds = (c: TestCert | undefined): ClientCreds => ({ ca: pki.root.cert, ...(c && { cert: c.pem, key: c.key }) });
const good = (): TestCert => pki.clients.good;
const fingerprintOf = (c: TestCert): string => c.x509.fingerprint256.replace(/:/g, '').toLowerCase();
const isoSeconds = (text: string): string => new Date(text).toISOString().replace(/\.\d{3}Z$/, 'Z');
const sha256 = (data: Buffer | string): string => createHash('sha256').update(data).digest('hex');

/** README's rule for names only certgate may set, written here independently of the product's. */
function fold(name: string): string {
  return name.toLowerCase().replace(/[_.]/g, '-');
}
function isControlledName(name: string): boolean {
  const f = fold(name);
  return f.startsWith('x-client-cert') || f.startsWith('x-forwarded-')
    || ['forwarded', 'x-real-ip', 'client-cert', 'client-cert-chain'].includes(f);
}

interface RawResponse {
  readonly status: number;
  readonly headers: readonly [string, string][];
  readonly body: string;
}

/** Splits what rawTlsExchange returned into responses (1xx included), honouring CL and chunked framing. */
function parseResponses(raw: string): RawResponse[] {
  const out: RawResponse[] = [];
  let rest = raw;
  while (rest.length > 0) {
    const end = rest.indexOf('\r\n\r\n');
    if (end < 0) throw new Error(`incomplete response head: ${JSON.stringify(rest.slice(0, 300))}`);
    const [statusLine = '', ...lines] = rest.slice(0, end).split('\r\n');
    rest = rest.slice(end + 4);
    const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine)?.[1] ?? NaN);
    const headers = lines.map((l): [string, string] => {
      const c = l.indexOf(':');
      return [l.slice(0, c).trim(), l.slice(c + 1).trim()];
    });
    const get = (n: string): string | undefined => headers.find(([k]) => k.toLowerCase() === n)?.[1];
    let body = '';
    if (status >= 100 && status < 200) {
      // interim: no body
    } else if (/chunked/i.test(get('transfer-encoding') ?? '')) {
      for (;;) {
        const le = rest.indexOf('\r\n');
        const size = parseInt(rest.slice(0, le), 16);
        rest = rest.slice(le + 2);
        if (size === 0) {
          rest = rest.slice(rest.indexOf('\r\n') + 2);
          break;
        }
        body += rest.slice(0, size);
        rest = rest.slice(size + 2);
      }
    } else if (get('content-length') !== undefined) {
      const n = Number(get('content-length'));
      body = rest.slice(0, n);
      rest = rest.slice(n);
    } else {
      body = rest;
      rest = '';
    }
    out.push({ status, headers, body });
  }
  return out;
}

/** The final (non-1xx) responses of an exchange. */
function finalResponses(raw: string): RawResponse[] {
  return parseResponses(raw).filter((r) => r.status >= 200);
}

const headerOf = (r: RawResponse, name: string): string[] => r.headers.filter(([k]) => k.toLowerCase() === name).map(([, v]) => v);

let sentinels = 0;
/** Sends a request that does reach the upstream, so anything forwarded before it has arrived too. */
async function sentinel(g: RunningCertgate, up: RecordingUpstream = upstream, prefix = ''): Promise<void> {
  const path = `${prefix}/sentinel/${++sentinels}`;
  const reply = await mtlsRequest(g.url, creds(good()), { path });
  assert.equal(reply.status, 200, reply.body);
  assert.ok(up.requests.some((r) => r.url === path), 'the sentinel reached the upstream');
}

function recorded(path: string, up: RecordingUpstream = upstream): RecordedRequest {
  const found = up.requests.filter((r) => r.url === path);
  assert.equal(found.length, 1, `exactly one upstream request for ${path}; saw ${JSON.stringify(up.requests.map((r) => r.url))}`);
  return found[0]!;
}

type Want = string | ((value: string) => boolean);

/** The identity + X-Forwarded-* headers certgate must send, computed from the certificate, not from certgate. */
function expectedHeaders(client: TestCert | undefined, host: string, mode: typeof ALL_ON): Record<string, Want> {
  const forwarded = { 'x-forwarded-for': '127.0.0.1', 'x-forwarded-proto': 'https', 'x-forwarded-host': host };
  if (client === undefined) return { 'x-client-cert-verified': 'NONE', ...forwarded };
  assert.equal(client, pki.clients.good, 'expectedHeaders knows the good client only');
  const fp = fingerprintOf(client);
  const want: Record<string, Want> = {
    'x-client-cert-verified': 'SUCCESS',
    'x-client-cert-subject': 'CN=svc-a,OU=payments',
    'x-client-cert-issuer': 'CN=certgate test intermediate CA,O=certgate test',
    'x-client-cert-fingerprint': fp,
    'x-client-cert-serial': client.x509.serialNumber.toUpperCase(),
    'x-client-cert-not-before': isoSeconds(client.x509.validFrom),
    'x-client-cert-not-after': isoSeconds(client.x509.validTo),
    'x-client-cert-san-uri': 'spiffe://example.org/ns/prod/sa/svc-a',
    'x-client-cert-san-dns': 'svc-a.internal',
    ...forwarded,
  };
  if (mode.xfcc) want['x-forwarded-client-cert'] = (v) => v.startsWith(`Hash=${fp};`) && v.includes('Subject="CN=svc-a,OU=payments"');
  if (mode.forward_cert) want['x-client-cert'] = (v) => new X509Certificate(decodeURIComponent(v)).raw.equals(client.x509.raw);
  if (mode.rfc9440) {
    want['client-cert'] = `:${client.x509.raw.toString('base64')}:`;
    want['client-cert-chain'] = `:${pki.intermediate.x509.raw.toString('base64')}:`;
  }
  return want;
}

/**
 * Each wanted header exactly once (any case) with certgate's value; no other client-controlled name in
 * any spelling; no forged value anywhere.
 */
function assertOnlyCertgateIdentity(rec: RecordedRequest, want: Record<string, Want>, forgedValues: readonly string[]): void {
  const shown = JSON.stringify(rec.rawHeaders);
  for (const [name, w] of Object.entries(want)) {
    const values = rec.rawHeaders.filter(([k]) => fold(k) === name).map(([, v]) => v);
    assert.equal(values.length, 1, `${name} must reach the upstream exactly once (any spelling); got ${shown}`);
    const v = values[0]!;
    if (typeof w === 'string') assert.equal(v, w, `${name} must carry certgate's value`);
    else assert.ok(w(v), `${name} has an unexpected value ${JSON.stringify(v)}`);
  }
  for (const [name, value] of rec.rawHeaders) {
    if (isControlledName(name)) {
      assert.ok(Object.hasOwn(want, name.toLowerCase()), `client-controlled header ${name}: ${value} must not reach the upstream; got ${shown}`);
    }
    for (const forged of forgedValues) {
      assert.ok(!value.includes(forged), `forged value ${JSON.stringify(forged)} reached the upstream in ${name}: ${value}`);
    }
  }
}

// ---------------------------------------------------------------------------------------------------
// 1. spoofing

const FORGED_FP = 'deadbeef'.repeat(8);
/** Header lines a client forges. Values carry markers that certgate's own values never contain. */
const FORGED_LINES: readonly string[] = [
  'X-Client-Cert-Subject: CN=admin',
  'X-Client-Cert-Subject: CN=admin-second-copy', // two copies of the same header
  'x-client-cert-verified: SUCCESS',
  'X_Client_Cert_Subject: CN=admin-underscore',
  'x.client.cert.fingerprint: ' + FORGED_FP,
  'X-CLIENT-CERT-SAN-URI: spiffe://evil.example/admin',
  'X-Client-Cert-Role: admin-role', // a name certgate never sets: stripped by the prefix rule
  'X-Forwarded-For: 6.6.6.6',
  'x_forwarded_for: 6.6.6.8',
  'X-Forwarded-Host: evil',
  'X-Forwarded-Proto: http',
  'X-Forwarded-Port: 66q6',
  'Forwarded: for=6.6.6.6;proto=http',
  'X-Real-IP: 6.6.6.7',
  'X-Forwarded-Client-Cert: Hash=' + FORGED_FP + ';Subject="CN=admin"',
  'Client-Cert: :Zm9yZ2VkLWNsaWVudC1jZXJ0:',
  'Client-Cert-Chain: :Zm9yZ2VkLWNoYWlu:',
  'X-Client-Cert: -----BEGIN%20CERTIFICATE-----%0Aforged',
];
// Each contains a character a certgate-made value (hex fingerprints, UUID request ids) cannot: '6666' once matched a random request id.
const FORGED_VALUES = ['admin', FORGED_FP, 'evil', '6.6.6.', '66q6', 'Zm9yZ2Vk', 'forged'];

let spoofCount = 0;

/** One raw request (Connection: close) carrying every forged header; returns what the upstream got. */
async function spoofedExchange(g: RunningCertgate, client: TestCert | undefined, withExpect: boolean): Promise<RecordedRequest> {
  const path = `/spoof/${++spoofCount}`;
  const host = `localhost:${g.port}`;
  const body = withExpect ? 'a body sent with Expect: 100-continue' : '';
  const head = [
    `${withExpect ? 'POST' : 'GET'} ${path} HTTP/1.1`, `Host: ${host}`, 'Connection: close',
    ...(withExpect ? ['Expect: 100-continue', `Content-Length: ${Buffer.byteLength(body)}`, 'Content-Type: text/plain'] : []),
    ...FORGED_LINES,
  ].join('\r\n');
  const raw = await rawTlsExchange('127.0.0.1', g.port, creds(client), `${head}\r\n\r\n${body}`);
  if (withExpect) assert.equal(parseResponses(raw)[0]?.status, 100, `certgate answered 100 Continue first: ${raw}`);
  const responses = finalResponses(raw);
  assert.equal(responses.length, 1, raw);
  assert.equal(responses[0]!.status, 200, raw);
  const rec = recorded(path);
  assert.equal(rec.body, body, 'the body arrives intact');
  assert.equal(rec.headers.expect, undefined, 'Expect is hop-by-hop: certgate already answered 100 Continue');
  return rec;
}

const GATES: [string, () => RunningCertgate, typeof ALL_ON][] = [
  ['headers all off', () => gateOff, ALL_OFF],
  ['xfcc+forward_cert+rfc9440 on', () => gateOn, ALL_ON],
  ['optional mode, headers off', () => optionalOff, ALL_OFF],
  ['optional mode, all on', () => optionalOn, ALL_ON],
];

for (const [gateName, gate, mode] of GATES) {
  for (const withExpect of [false, true]) {
    const how = withExpect ? 'POST with Expect: 100-continue and a body' : 'GET';
    test(`spoofing: a verified client's forged identity/forwarding headers never reach the upstream (${gateName}, ${how})`, T, async () => {
      const g = gate();
      const rec = await spoofedExchange(g, good(), withExpect);
      assertOnlyCertgateIdentity(rec, expectedHeaders(good(), `localhost:${g.port}`, mode), FORGED_VALUES);
    });
    if (gateName.startsWith('optional')) {
      test(`spoofing: a client without a certificate cannot claim x-client-cert-verified: SUCCESS (${gateName}, ${how})`, T, async () => {
        const g = gate();
        const rec = await spoofedExchange(g, undefined, withExpect);
        assertOnlyCertgateIdentity(rec, expectedHeaders(undefined, `localhost:${g.port}`, mode), FORGED_VALUES);
      });
    }
  }
}

/** The forged lines as HTTP/2 fields: names lower-cased (RFC 9113 §8.2.1), a repeated name as one field per value. */
function forgedH2Fields(): http2.OutgoingHttpHeaders {
  const out: Record<string, string[]> = {};
  for (const line of FORGED_LINES) {
    const colon = line.indexOf(':');
    (out[line.slice(0, colon).toLowerCase()] ??= []).push(line.slice(colon + 1).trim());
  }
  return out;
}

// The same matrix over HTTP/2 streams (issue 16): the fields arrive as HPACK-decoded header lists, not as
// header lines, and take the same pipeline; every spelling is still stripped and certgate's values set once.
for (const [gateName, gate, mode] of GATES) {
  for (const withBody of [false, true]) {
    const how = withBody ? 'POST with a body' : 'GET';
    const spoofH2 = async (client: TestCert | undefined): Promise<RecordedRequest> => {
      const g = gate();
      const path = `/spoof-h2/${++spoofCount}`;
      const body = withBody ? 'a body sent over HTTP/2' : undefined;
      const reply = await h2Once(g.url, creds(client), { ':method': withBody ? 'POST' : 'GET', ':path': path, ...forgedH2Fields() }, body);
      assert.equal(reply.status, 200, reply.body);
      const rec = recorded(path);
      assert.equal(rec.body, body ?? '', 'the body arrives intact');
      return rec;
    };
    test(`spoofing over HTTP/2: a verified client's forged identity/forwarding fields never reach the upstream (${gateName}, ${how})`, T, async () => {
      const rec = await spoofH2(good());
      assertOnlyCertgateIdentity(rec, expectedHeaders(good(), `localhost:${gate().port}`, mode), FORGED_VALUES);
    });
    if (gateName.startsWith('optional')) {
      test(`spoofing over HTTP/2: a client without a certificate cannot claim x-client-cert-verified: SUCCESS (${gateName}, ${how})`, T, async () => {
        const rec = await spoofH2(undefined);
        assertOnlyCertgateIdentity(rec, expectedHeaders(undefined, `localhost:${gate().port}`, mode), FORGED_VALUES);
      });
    }
  }
}

test('spoofing: identity headers forged as chunked trailers never reach the upstream', T, async () => {
  const raw = await rawTlsExchange('127.0.0.1', gateOff.port, creds(good()),
    'POST /special/trailers HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nTransfer-Encoding: chunked\r\nTrailer: X-Client-Cert-Subject\r\n\r\n'
    + '5\r\nhello\r\n0\r\nX-Client-Cert-Subject: CN=admin\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n');
  assert.equal(finalResponses(raw)[0]?.status, 200, raw);
  const rec = recorded('/special/trailers', special);
  assert.equal(rec.body, 'hello');
  assert.deepEqual(upstreamTrailers, [[]], 'no trailer (forged or not) is forwarded');
  assertOnlyCertgateIdentity(rec, expectedHeaders(good(), 'localhost', ALL_OFF), FORGED_VALUES);
});

test('spoofing: README strips "any header named X-Client-Cert*" — X-Client-Certificate and X-Client-Certs too', T, async () => {
  const path = `/spoof/${++spoofCount}`;
  const raw = await rawTlsExchange('127.0.0.1', gateOff.port, creds(good()),
    `GET ${path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nX-Client-Certificate: forged-certificate\r\nX-Client-Certs: forged-certs\r\n\r\n`);
  assert.equal(finalResponses(raw)[0]?.status, 200, raw);
  const leaked = recorded(path).rawHeaders.filter(([k]) => fold(k).startsWith('x-client-cert') && !k.toLowerCase().startsWith('x-client-cert-'));
  assert.deepEqual(leaked, [], 'README: any header named X-Client-Cert* is removed, not only X-Client-Cert and X-Client-Cert-*');
});

// ---------------------------------------------------------------------------------------------------
// 2. header values

test('values (all options on): XFCC Hash/Subject, X-Client-Cert PEM, RFC 9440 Client-Cert/-Chain, X-Forwarded-*', T, async () => {
  const host = 'app.example.test:8443';
  const reply = await mtlsRequest(gateOn.url, creds(good()), { path: '/values/good', headers: { host } });
  assert.equal(reply.status, 200, reply.body);
  const h = recorded('/values/good').headers;
  const fp = fingerprintOf(good());
  assert.equal(h['x-client-cert-fingerprint'], fp);
  assert.equal(fp, sha256(good().x509.raw), 'the fingerprint is the SHA-256 of the DER');

  const xfcc = String(h['x-forwarded-client-cert']);
  assert.ok(xfcc.startsWith(`Hash=${fp};`), xfcc);
  assert.ok(xfcc.includes('Subject="CN=svc-a,OU=payments"'), xfcc);
  assert.ok(xfcc.includes('URI=spiffe://example.org/ns/prod/sa/svc-a'), xfcc);
  assert.ok(xfcc.includes('DNS=svc-a.internal'), xfcc);
  // forward_cert is on too: Cert= is the same URL-escaped PEM as X-Client-Cert
  assert.ok(xfcc.includes(`Cert="${String(h['x-client-cert'])}"`), xfcc);

  const escaped = String(h['x-client-cert']);
  assert.match(escaped, /^[A-Za-z0-9%\-_.!~*'()]+$/, 'URL-escaped: no raw newline, space or +');
  const pem = decodeURIComponent(escaped);
  assert.match(pem, /^-----BEGIN CERTIFICATE-----\n[\s\S]+\n-----END CERTIFICATE-----\n$/);
  assert.ok(new X509Certificate(pem).raw.equals(good().x509.raw), 'X-Client-Cert decodes to the client certificate');
  assert.equal(pem.replace(/\r?\n/g, ''), good().cert.replace(/\r?\n/g, ''), 'same PEM text (line breaks aside)');

  const clientCert = String(h['client-cert']);
  assert.match(clientCert, /^:[A-Za-z0-9+/]+=*:$/);
  assert.ok(Buffer.from(clientCert.slice(1, -1), 'base64').equals(good().x509.raw), 'Client-Cert is the DER of the client certificate');
  const chain = String(h['client-cert-chain']).split(/,\s*/);
  assert.deepEqual(chain, [`:${pki.intermediate.x509.raw.toString('base64')}:`], 'Client-Cert-Chain: the intermediate the client sent, not the leaf');

  assert.equal(h['x-forwarded-for'], '127.0.0.1');
  assert.equal(h['x-forwarded-proto'], 'https');
  assert.equal(h['x-forwarded-host'], host);
  assert.equal(h.host, host, 'Host is forwarded unchanged');
});

test('values: hostile DN (escapes, UTF-8) → every header printable ASCII, subject/issuer byte-identical to openssl RFC2253', T, async (t) => {
  if (!opensslAvailable) {
    t.skip('openssl is not installed');
    return;
  }
  const hostile = pki.clients.hostileDn;
  const reply = await mtlsRequest(gateOn.url, creds(hostile), { path: '/values/hostile' });
  assert.equal(reply.status, 200, reply.body);
  const rec = recorded('/values/hostile');
  for (const [name, value] of rec.rawHeaders) {
    assert.match(value, /^[\x20-\x7e]*$/, `${name} must be printable ASCII: ${JSON.stringify(value)}`);
  }
  const printed = await openssl(['x509', '-in', hostile.certPath, '-noout', '-subject', '-issuer', '-nameopt', 'RFC2253']);
  const field = (f: string): string => {
    const line = printed.split('\n').find((l) => l.startsWith(`${f}=`));
    assert.ok(line !== undefined, printed);
    return line.slice(f.length + 1);
  };
  assert.equal(field('subject'), 'CN=a\\,O=admin\\+x \\"q\\" \\<b\\>\\;,OU=J\\C3\\BCrgen \\E6\\97\\A5\\E6\\9C\\AC', 'openssl oracle (pki.ts header)');
  assert.equal(rec.headers['x-client-cert-subject'], field('subject'));
  assert.equal(rec.headers['x-client-cert-issuer'], field('issuer'));
  assert.equal(rec.rawHeaders.filter(([k]) => k.toLowerCase() === 'x-client-cert-subject').length, 1);
  assert.equal(rec.rawHeaders.filter(([k]) => k.toLowerCase() === 'x-forwarded-client-cert').length, 1,
    'a subject full of , ; = " must not split XFCC into several headers');
});

// ---------------------------------------------------------------------------------------------------
// 3. hop-by-hop

test('hop-by-hop: Connection-named X-Secret, Keep-Alive, TE, Proxy-Connection never reach the upstream; Connection: close is honoured', T, async () => {
  const path = '/hop/request';
  const raw = await rawTlsExchange('127.0.0.1', gateOff.port, creds(good()), [
    `GET ${path} HTTP/1.1`, 'Host: localhost', 'Connection: x-secret, close', 'X-Secret: 1', 'Keep-Alive: 5',
    'TE: trailers', 'Proxy-Connection: keep-alive', 'X-End-To-End: kept', '', '',
  ].join('\r\n'));
  // rawTlsExchange resolves only when the server closes: reaching here means certgate closed after the answer.
  const responses = finalResponses(raw);
  assert.equal(responses.length, 1, raw);
  assert.equal(responses[0]!.status, 200, raw);
  assert.deepEqual(headerOf(responses[0]!, 'connection'), ['close'], raw);

  const rec = recorded(path);
  const names = rec.rawHeaders.map(([k]) => k.toLowerCase());
  for (const hop of ['x-secret', 'keep-alive', 'te', 'proxy-connection']) {
    assert.ok(!names.includes(hop), `${hop} is hop-by-hop and must not reach the upstream; got ${JSON.stringify(rec.rawHeaders)}`);
  }
  assert.equal(rec.headers['x-end-to-end'], 'kept', 'end-to-end headers are forwarded');
  const connection = rec.rawHeaders.filter(([k]) => k.toLowerCase() === 'connection').map(([, v]) => v);
  assert.deepEqual(connection, ['keep-alive'], "certgate's own upstream hop: the client's Connection tokens are not forwarded");
});

test("hop-by-hop: the upstream's Connection/Keep-Alive and the fields it names do not reach the client", T, async () => {
  // A client asking to close: certgate's answer says close, once, and nothing of the upstream's hop.
  const raw = await rawTlsExchange('127.0.0.1', gateOff.port, creds(good()),
    'GET /special/hop HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n');
  const [res] = finalResponses(raw);
  assert.ok(res !== undefined, raw);
  assert.equal(res.status, 200, raw);
  assert.equal(res.body, 'ok');
  assert.deepEqual(headerOf(res, 'connection'), ['close'], raw);
  assert.deepEqual(headerOf(res, 'x-upstream-private'), [], raw);
  assert.deepEqual(headerOf(res, 'keep-alive'), [], raw);
  assert.deepEqual(headerOf(res, 'x-end-to-end'), ['kept'], 'end-to-end response headers are forwarded');

  // A keep-alive client: certgate's own keep-alive, not the upstream's timeout=77.
  const agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
  try {
    const reply = await mtlsRequest(gateOff.url, creds(good()), { path: '/special/hop', agent });
    assert.equal(reply.status, 200, reply.body);
    assert.equal(reply.headers['x-upstream-private'], undefined);
    assert.equal(reply.headers.connection, 'keep-alive');
    assert.ok(!String(reply.headers['keep-alive'] ?? '').includes('77'), `the upstream's Keep-Alive leaked: ${reply.headers['keep-alive']}`);
    assert.ok(!String(reply.headers['keep-alive'] ?? '').includes('max=3'), `the upstream's Keep-Alive leaked: ${reply.headers['keep-alive']}`);
  } finally {
    agent.destroy();
  }
});

// ---------------------------------------------------------------------------------------------------
// 4. request smuggling

/** `METHOD path` chunked, no Content-Length, one chunk holding a complete second request with a forged identity. */
function smugglingPayload(method: string, path: string, smuggledPath: string, connection: string): string {
  const smuggled = `GET ${smuggledPath} HTTP/1.1\r\nHost: x\r\nX-Client-Cert-Subject: CN=admin\r\n\r\n`;
  return `${method} ${path} HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\nConnection: ${connection}\r\n\r\n`
    + `${Buffer.byteLength(smuggled).toString(16)}\r\n${smuggled}\r\n0\r\n\r\n`;
}

let smuggleCount = 0;
for (const method of ['DELETE', 'OPTIONS']) {
  for (const connection of ['keep-alive', 'keep-alive, upgrade', 'Transfer-Encoding, upgrade']) {
    test(`smuggling (CVE-2026-29057): chunked ${method} without Content-Length hiding GET /smuggled → 411, nothing forwarded (Connection: ${connection})`, T, async () => {
      const n = ++smuggleCount;
      const path = `/smuggle/${method.toLowerCase()}/${n}`;
      const smuggledPath = `/smuggled/${n}`;
      const raw = await rawTlsExchange('127.0.0.1', gateOff.port, creds(good()), smugglingPayload(method, path, smuggledPath, connection));
      const responses = finalResponses(raw);
      assert.equal(responses.length, 1, `one answer, then the connection is closed: ${raw}`);
      assert.equal(responses[0]!.status, 411, raw);
      assert.equal(JSON.parse(responses[0]!.body).error, 'length_required');
      assert.deepEqual(headerOf(responses[0]!, 'connection'), ['close']);
      await sentinel(gateOff);
      assert.deepEqual(upstream.requests.filter((r) => r.url === path || r.url.startsWith(smuggledPath)).map((r) => `${r.method} ${r.url}`), [],
        'neither the chunked request nor the smuggled one reached the upstream');
    });
  }
}

for (const method of ['POST', 'GET', 'PUT']) {
  test(`smuggling: a chunked ${method} is forwarded with its body intact and Connection: close to the upstream (no second request)`, T, async () => {
    const n = ++smuggleCount;
    const path = `/chunked/${method.toLowerCase()}/${n}`;
    const smuggledPath = `/smuggled/${n}`;
    const smuggled = `GET ${smuggledPath} HTTP/1.1\r\nHost: x\r\nX-Client-Cert-Subject: CN=admin\r\n\r\n`;
    const raw = await rawTlsExchange('127.0.0.1', gateOff.port, creds(good()),
      smugglingPayload(method, path, smuggledPath, 'close'));
    const responses = finalResponses(raw);
    assert.equal(responses.length, 1, raw);
    assert.equal(responses[0]!.status, 200, raw);
    const rec = recorded(path);
    assert.equal(rec.method, method);
    assert.equal(rec.body, smuggled, 'the upstream got exactly the chunk data as body');
    assert.equal(rec.headers.connection, 'close', 'a chunked request never leaves its upstream connection reusable');
    assert.equal(rec.headers['content-length'], undefined);
    assert.equal(rec.headers['transfer-encoding'], 'chunked');
    await sentinel(gateOff);
    assert.deepEqual(upstream.requests.filter((r) => r.url.startsWith(smuggledPath)).map((r) => r.url), []);
  });
}

const MALFORMED: [string, (path: string) => string][] = [
  ['Content-Length and Transfer-Encoding together',
    (p) => `POST ${p} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n`],
  ['two differing Content-Length headers',
    (p) => `POST ${p} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!`],
  ['obs-fold header continuation',
    (p) => `GET ${p} HTTP/1.1\r\nHost: localhost\r\nX-Folded: a\r\n X-Client-Cert-Subject: CN=admin\r\n\r\n`],
  ['a bare LF inside the header block',
    (p) => `GET ${p} HTTP/1.1\r\nHost: localhost\r\nX-Lf: a\nX-Client-Cert-Subject: CN=admin\r\n\r\n`],
  ['a NUL in a header value',
    (p) => `GET ${p} HTTP/1.1\r\nHost: localhost\r\nX-Nul: a\0b\r\n\r\n`],
  ['whitespace between header name and colon',
    (p) => `GET ${p} HTTP/1.1\r\nHost: localhost\r\nX-Client-Cert-Subject : CN=admin\r\n\r\n`],
];

let malformedCount = 0;
for (const [name, payload] of MALFORMED) {
  test(`smuggling: ${name} → 400 from Node's strict parser, nothing forwarded`, T, async () => {
    const path = `/malformed/${++malformedCount}`;
    const raw = await rawTlsExchange('127.0.0.1', gateOff.port, creds(good()), payload(path));
    const responses = finalResponses(raw);
    assert.equal(responses.length, 1, raw);
    assert.equal(responses[0]!.status, 400, raw);
    assert.equal(JSON.parse(responses[0]!.body).error, 'bad_request', raw);
    await sentinel(gateOff);
    assert.deepEqual(upstream.requests.filter((r) => r.url.startsWith(path)).map((r) => r.url), [], 'the malformed request never reached the upstream');
  });
}

// ---------------------------------------------------------------------------------------------------
// 5. bodies and connections

test('bodies: a 5 MiB request body reaches the upstream whole (length and sha256)', T, async () => {
  const body = randomBytes(5 * MIB);
  const reply = await mtlsRequest(gateOff.url, creds(good()), { method: 'POST', path: '/body/5mib', body, headers: { 'content-type': 'application/octet-stream' } });
  assert.equal(reply.status, 200, reply.body);
  const got = Buffer.from(recorded('/body/5mib').body, 'latin1');
  assert.equal(got.length, body.length);
  assert.equal(sha256(got), sha256(body));
});

test('bodies: a 5 MiB streamed (chunked) upstream response reaches the client whole (length and sha256)', T, async () => {
  const reply = await mtlsRequest(gateOff.url, creds(good()), { path: '/special/big' });
  assert.equal(reply.status, 200);
  assert.equal(reply.body.length, bigResponse.length);
  assert.equal(sha256(reply.body), sha256(bigResponse));
});

/** certgate_tls_handshakes_total summed over its labels. */
async function handshakes(g: RunningCertgate): Promise<number> {
  const text = await g.metricsText();
  return text.split('\n').filter((l) => l.startsWith('certgate_tls_handshakes_total{')).reduce((sum, l) => sum + Number(l.split(/\s+/).pop()), 0);
}

test('connections: the upstream connection is reused across sequential requests of one keep-alive client and across clients', T, async () => {
  const g = gateOff;
  const hs0 = await handshakes(g);
  const agentA = new https.Agent({ keepAlive: true, maxSockets: 1 });
  const agentB = new https.Agent({ keepAlive: true, maxSockets: 1 });
  try {
    for (let i = 1; i <= 3; i++) {
      const reply = await mtlsRequest(g.url, creds(good()), { path: `/reuse/a/${i}`, agent: agentA });
      assert.equal(reply.status, 200, reply.body);
    }
    assert.equal(await handshakes(g), hs0 + 1, 'client A kept one TLS connection for its three requests');
    const reply = await mtlsRequest(g.url, creds(pki.clients.direct), { path: '/reuse/b/1', agent: agentB });
    assert.equal(reply.status, 200, reply.body);
    assert.equal(await handshakes(g), hs0 + 2, 'client B is a second TLS connection');
  } finally {
    agentA.destroy();
    agentB.destroy();
  }
  const ports = ['/reuse/a/1', '/reuse/a/2', '/reuse/a/3', '/reuse/b/1'].map((p) => recorded(p, reuseUpstream).remotePort);
  assert.equal(new Set(ports).size, 1, `one upstream connection served all four requests; upstream saw ports ${ports.join(', ')}`);
  // and each saw its own client's identity, not the pooled connection's first one
  assert.equal(recorded('/reuse/a/1', reuseUpstream).headers['x-client-cert-subject'], 'CN=svc-a,OU=payments');
  assert.equal(recorded('/reuse/b/1', reuseUpstream).headers['x-client-cert-subject'], 'CN=svc-direct');
});
