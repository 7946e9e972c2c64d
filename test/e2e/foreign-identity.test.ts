/**
 * Identity headers other platforms use (issue 13 finding 11), over real TLS.
 *
 * Attack: an app moved from nginx/HAProxy, an AWS ALB, Cloudflare, Azure, Google IAP, Envoy or an auth
 * proxy to certgate keeps reading the headers that platform set: `X-SSL-Client-S-DN`, `SSL_CLIENT_S_DN`,
 * `X-Amzn-Mtls-Clientcert-Subject`, `Cf-Client-Cert-Sha256`, `X-Original-URL`, `True-Client-IP`, ...
 * certgate terminates TLS, so nothing in front of it can have set them; a client with a valid but
 * low-privilege certificate (CN=svc-direct) forges them, in the spellings WSGI/PHP fold together, to
 * claim another identity, another address or another path. None of them may reach the upstream; the
 * upstream still gets certgate's own identity of the caller. `headers.pass_through` lets exactly the
 * named ones through (in every spelling of that name) and nothing else.
 * The header names are the platforms' documented ones, written here independently of the product's list.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createTestPki, type TestPki } from '../helpers/pki.js';
import { startTestCertgate, startRecordingUpstream, type RunningCertgate, type RecordingUpstream, type RecordedRequest } from '../helpers/certgate.js';
import { rawTlsExchange, type ClientCreds } from '../helpers/client.js';

const T = { timeout: 30_000 };

/** Per family: forged header lines; each value carries "forged" so a leak is visible in any header. */
const FAMILIES: Readonly<Record<string, readonly string[]>> = {
  'X-SSL-Client-* (nginx/HAProxy/Apache)': [
    'X-SSL-Client-S-DN: CN=admin,OU=forged', 'X_SSL_Client_S_DN: CN=admin-forged-underscore', 'x.ssl.client.verify: SUCCESS-forged',
    'X-SSL-Client-Cert: forged-pem', 'X-SSL-Cert: forged-pem-2', 'X-SSL: 1-forged',
  ],
  'SSL_CLIENT_* (CGI / ingress-nginx)': [
    'SSL_CLIENT_S_DN: CN=admin-forged-cgi', 'SSL_CLIENT_VERIFY: SUCCESS-forged-cgi', 'ssl-client-subject-dn: CN=admin-forged-ingress',
  ],
  'X-Client-Verify / X-Client-DN (nginx recipes)': ['X-Client-Verify: SUCCESS-forged', 'X-Client-DN: CN=admin-forged-dn'],
  'X-Amzn-Mtls-Clientcert-* (AWS ALB)': [
    'X-Amzn-Mtls-Clientcert-Subject: CN=admin-forged-alb', 'X-Amzn-Mtls-Clientcert-Leaf: forged-leaf', 'X-Amzn-Mtls-Clientcert: forged-chain',
    'x_amzn_mtls_clientcert_serial_number: forged-serial', 'X-Amzn-Oidc-Identity: forged-oidc',
  ],
  'Cf-Client-Cert-* / Cf-Cert-* (Cloudflare)': [
    'Cf-Client-Cert-Sha256: forged-sha', 'Cf-Client-Cert-Der-Base64: forged-der', 'Cf-Cert-Subject-Dn: CN=admin-forged-cf',
    'Cf-Access-Authenticated-User-Email: admin-forged@example.org', 'Cf-Connecting-IP: 203.0.113.66-forged',
  ],
  'X-ARR-ClientCert / X-MS-Client-Principal (Azure)': ['X-ARR-ClientCert: forged-arr', 'X-MS-Client-Principal-Name: admin-forged-ms'],
  'X-Goog-Authenticated-User-* (Google IAP)': ['X-Goog-Authenticated-User-Email: accounts.google.com:admin-forged@example.org'],
  'X-Envoy-* (Envoy / Istio)': ['X-Envoy-Internal: true-forged', 'X-Envoy-External-Address: 203.0.113.67-forged'],
  'auth proxies (Pomerium, authentik, oauth2-proxy, Authelia)': [
    'X-Pomerium-Claim-Email: admin-forged@example.org', 'X-Authentik-Username: admin-forged', 'X-Auth-Request-User: admin-forged', 'Remote-User: admin-forged',
  ],
  'client address (True-Client-IP, X-Client-IP, X-Cluster-Client-IP, Fastly-Client-IP)': [
    'True-Client-IP: 203.0.113.68-forged', 'True_Client_IP: 203.0.113.69-forged', 'X-Client-IP: 203.0.113.70-forged',
    'X-Cluster-Client-IP: 203.0.113.71-forged', 'Fastly-Client-IP: 203.0.113.72-forged',
  ],
  'client address outside the X-Forwarded-* family (X-Forwarded, Forwarded-For, Client-IP, and what get-client-IP code reads)': [
    'X-Forwarded: for=203.0.113.80-forged', 'X_Forwarded: 203.0.113.81-forged', 'Forwarded-For: 203.0.113.82-forged',
    'Forwarded_For: 203.0.113.83-forged', 'Client-IP: 203.0.113.84-forged', 'HTTP_CLIENT_IP: 203.0.113.85-forged',
    'HTTP_X_FORWARDED_FOR: 203.0.113.86-forged', 'Proxy-Client-IP: 203.0.113.87-forged', 'WL-Proxy-Client-IP: 203.0.113.88-forged',
    'X-Originating-IP: 203.0.113.89-forged', 'X-Remote-IP: 203.0.113.90-forged', 'X-Remote-Addr: 203.0.113.91-forged',
    'X-ProxyUser-Ip: 203.0.113.92-forged', 'X-AppEngine-User-IP: 203.0.113.93-forged', 'Cf-Pseudo-IPv4: 203.0.113.94-forged',
    'Fly-Client-IP: 203.0.113.95-forged', 'X-Azure-ClientIP: 203.0.113.96-forged', 'X-Azure-SocketIP: 203.0.113.97-forged',
    'DO-Connecting-IP: 203.0.113.98-forged', 'X-Original-Forwarded-For: 203.0.113.99-forged',
  ],
  'request-target overrides (X-Original-URL, X-Rewrite-URL, X-Original-URI)': [
    'X-Original-URL: /admin/forged', 'X_Original_URL: /admin/forged-underscore', 'X-Rewrite-URL: /admin/forged-rewrite', 'X-Original-URI: /admin/forged-uri',
  ],
};

let pki: TestPki;
let upstream: RecordingUpstream;
let strict: RunningCertgate;
let passing: RunningCertgate;
let count = 0;

before(async () => {
  pki = await createTestPki();
  upstream = await startRecordingUpstream();
  const base = { tls: { bundle: pki.serverBundle.pemPath, client_ca: pki.clientCa.path, watch: false }, routes: [{ name: 'api', upstream: upstream.url }] };
  [strict, passing] = await Promise.all([
    startTestCertgate(base),
    startTestCertgate({ ...base, headers: { pass_through: ['True-Client-IP', 'x_original_url', 'Forwarded-For'] } }),
  ]);
});
after(async () => {
  await Promise.all([strict?.close(), passing?.close(), upstream?.close()]);
  pki?.cleanup();
});

/** The low-privilege client: a valid certificate, CN=svc-direct. */
const lowPrivilege = (): ClientCreds => ({ ca: pki.root.cert, cert: pki.clients.direct.pem, key: pki.clients.direct.key });

/** One request (Connection: close) carrying `lines`; returns what the upstream received. */
async function forge(g: RunningCertgate, lines: readonly string[]): Promise<RecordedRequest> {
  const path = `/forged/${++count}`;
  const raw = await rawTlsExchange('127.0.0.1', g.port, lowPrivilege(),
    [`GET ${path} HTTP/1.1`, 'Host: localhost', 'Connection: close', ...lines, '', ''].join('\r\n'));
  assert.match(raw, /^HTTP\/1\.1 200 /, raw.slice(0, 300));
  const rec = upstream.requests.find((r) => r.url === path);
  assert.ok(rec !== undefined, `${path} reached the upstream`);
  return rec;
}

const fold = (name: string): string => name.toLowerCase().replace(/[_.]/g, '-');
const nameOf = (line: string): string => line.slice(0, line.indexOf(':'));

for (const [family, lines] of Object.entries(FAMILIES)) {
  test(`spoofing: a low-privilege client forging ${family} gets none of it to the upstream`, T, async () => {
    const rec = await forge(strict, lines);
    const forgedNames = new Set(lines.map((l) => fold(nameOf(l))));
    const leaked = rec.rawHeaders.filter(([k, v]) => forgedNames.has(fold(k)) || v.includes('forged'));
    assert.deepEqual(leaked, [], `forged ${family} reached the upstream`);
    assert.equal(rec.headers['x-client-cert-subject'], 'CN=svc-direct', 'the upstream still learns who really called');
  });
}

test('spoofing: every family at once in one request: none of it reaches the upstream', T, async () => {
  const rec = await forge(strict, Object.values(FAMILIES).flat());
  assert.deepEqual(rec.rawHeaders.filter(([, v]) => v.includes('forged')), []);
});

test('headers.pass_through lets the named ones through, in every spelling of that name, and nothing else', T, async () => {
  const rec = await forge(passing, Object.values(FAMILIES).flat());
  const passed = rec.rawHeaders.filter(([, v]) => v.includes('forged')).map(([k, v]) => `${k.toLowerCase()}: ${v}`).sort();
  assert.deepEqual(passed, [
    'true-client-ip: 203.0.113.68-forged', 'true_client_ip: 203.0.113.69-forged',
    'x-original-url: /admin/forged', 'x_original_url: /admin/forged-underscore',
    'forwarded-for: 203.0.113.82-forged', 'forwarded_for: 203.0.113.83-forged',
  ].sort());
  assert.equal(rec.headers['x-client-cert-subject'], 'CN=svc-direct');
});
