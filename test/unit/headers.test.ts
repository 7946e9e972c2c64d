/**
 * The identity headers are what upstreams trust, so: every client-sent spelling of them is
 * stripped (case, `_` and `.` variants that WSGI/PHP fold into `-`), the set is exactly
 * SUCCESS + fields or NONE alone, and no value can carry CR/LF or a byte Node refuses.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { IncomingHttpHeaders } from 'node:http';
import { validateHeaderValue } from 'node:http';
import { describe, test } from 'node:test';
import type { HeadersConfig } from '../../dist/config/types.js';
import {
  FOREIGN_IDENTITY_HEADERS, identityHeaders, isClientControlledHeader, isStrippedHeader, stripClientControlled,
} from '../../dist/identity/headers.js';
import { identityFromCertificate } from '../../dist/identity/identity.js';
import type { ClientIdentity } from '../../dist/identity/types.js';
import { xfccElement } from '../../dist/identity/xfcc.js';
import { ava, craftCertificate, name, rdn, sanExtension } from '../helpers/openssl.js';

const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const INTERMEDIATE = craftCertificate(privateKey, { subject: name(rdn(ava('2.5.4.3', 0x0c, 'Intermediate'))) });
const LEAF = craftCertificate(privateKey, {
  subject: name(rdn(ava('2.5.4.10', 0x0c, 'Example, Inc.')), rdn(ava('2.5.4.3', 0x0c, 'svc-a'))),
  issuer: name(rdn(ava('2.5.4.3', 0x0c, 'Intermediate'))),
  extensions: [sanExtension([[0x86, 'spiffe://example.org/ns/prod/sa/svc-a'], [0x82, 'svc-a.internal'], [0x81, 'svc-a@example.org']])],
});
const BASE = identityFromCertificate(new X509Certificate(LEAF), [INTERMEDIATE]);

const DIALECT_DEFAULTS = { preset: 'certgate', names: {}, spiffe_id: false, tls_info: false } as const;
const ALL_OFF: HeadersConfig = { xfcc: false, forward_cert: false, rfc9440: false, pass_through: [], ...DIALECT_DEFAULTS };
const ALL_ON: HeadersConfig = { xfcc: true, forward_cert: true, rfc9440: true, pass_through: [], ...DIALECT_DEFAULTS };

function withFields(fields: Partial<ClientIdentity>): ClientIdentity {
  return { ...BASE, ...fields };
}

const NO_SAN = { uri: [], dns: [], email: [], ip: [] };

describe('client-controlled headers', () => {
  const STRIPPED = [
    'x-client-cert', 'X-Client-Cert', 'x-client-cert-verified', 'X-CLIENT-CERT-SUBJECT', 'x_client_cert_subject',
    'X_Client_Cert_Fingerprint', 'x.client.cert.san-uri', 'x-client_cert.issuer', 'x-client-cert-anything-new',
    'x-forwarded-client-cert', 'X_FORWARDED_CLIENT_CERT', 'x-forwarded-for', 'X-Forwarded-Proto', 'x_forwarded_host',
    'x.forwarded.port', 'forwarded', 'Forwarded', 'x-real-ip', 'X_Real_IP', 'x.real.ip',
    'client-cert', 'Client_Cert', 'client-cert-chain', 'client.cert.chain', 'CLIENT_CERT_CHAIN',
    // Look-alikes an upstream could take for ours: the prefixes are stripped, not just the exact names.
    'x-client-certificate', 'X_Client_Certs', 'client-certs', 'client-cert-chains', 'Client-Certificate',
  ];
  const KEPT = [
    'host', 'authorization', 'content-type', 'x-request-id', 'x-client', 'x-clientcert',
    'x-forwardedfor', 'x-real-ip-address',
  ];

  for (const header of STRIPPED) test(`strips ${header}`, () => assert.equal(isClientControlledHeader(header), true));
  for (const header of KEPT) test(`keeps ${header}`, () => assert.equal(isClientControlledHeader(header), false));

  test('stripClientControlled deletes them all in place and keeps the rest', () => {
    const headers: IncomingHttpHeaders = {};
    for (const h of [...STRIPPED, ...KEPT]) headers[h.toLowerCase()] = 'spoof';
    headers['x-forwarded-for'] = ['6.6.6.6', '7.7.7.7'] as unknown as string;
    stripClientControlled(headers);
    assert.deepEqual(Object.keys(headers).sort(), KEPT.map((h) => h.toLowerCase()).sort());
  });
});

/**
 * Issue 13 finding 11: apps moved from nginx/HAProxy, an AWS or Google load balancer, Cloudflare, Azure,
 * Envoy or an auth proxy read those platforms' identity headers. certgate terminates TLS, so nothing in
 * front of it can have set them: every copy comes from the client. The names below are the platforms'
 * documented ones, written here independently of the product's list.
 */
describe('identity headers other platforms use', () => {
  const FOREIGN = [
    // nginx / HAProxy / Apache recipes, and the CGI spelling (SSL_CLIENT_*) ingress-nginx also uses with dashes
    'X-SSL-Client-S-DN', 'X-SSL-Client-I-DN', 'X-SSL-Client-Cert', 'X-SSL-Client-Verify', 'X-SSL-Client-DN',
    'X-SSL-Client-CN', 'X-SSL-Cert', 'X-SSL-Issuer', 'X-SSL', 'X_SSL_Client_S_DN', 'x.ssl.client.s.dn',
    'SSL_CLIENT_S_DN', 'SSL_CLIENT_VERIFY', 'SSL_CLIENT_CERT', 'SSL_CLIENT_M_SERIAL', 'ssl-client-verify',
    'ssl-client-subject-dn', 'ssl-client-issuer-dn', 'ssl-client-cert',
    'X-Client-Verify', 'X-Client-Verified', 'X-Client-DN', 'X-Client-S-DN', 'X-Client-I-DN',
    // AWS ALB (mTLS verify + passthrough, TLS, OIDC authentication)
    'X-Amzn-Mtls-Clientcert', 'X-Amzn-Mtls-Clientcert-Serial-Number', 'X-Amzn-Mtls-Clientcert-Issuer',
    'X-Amzn-Mtls-Clientcert-Subject', 'X-Amzn-Mtls-Clientcert-Validity', 'X-Amzn-Mtls-Clientcert-Leaf',
    'x_amzn_mtls_clientcert_subject', 'X-Amzn-TLS-Version', 'X-Amzn-TLS-Cipher-Suite',
    'X-Amzn-Oidc-Identity', 'X-Amzn-Oidc-Data', 'X-Amzn-Oidc-Accesstoken',
    // Cloudflare (forwarded client certificate, "Add TLS client auth headers", Access, client address)
    'Cf-Client-Cert-Der-Base64', 'Cf-Client-Cert-Sha256', 'Cf-Cert-Verified', 'Cf-Cert-Presented', 'Cf-Cert-Revoked',
    'Cf-Cert-Subject-Dn', 'Cf-Cert-Issuer-Dn', 'Cf-Cert-Serial', 'Cf-Cert-Fingerprint-Sha256',
    'Cf-Access-Authenticated-User-Email', 'Cf-Access-Jwt-Assertion', 'Cf-Connecting-IP', 'Cf-Connecting-IPv6',
    // Azure App Service (client certificate, Easy Auth)
    'X-ARR-ClientCert', 'X-ARR-SSL', 'X-MS-Client-Principal', 'X-MS-Client-Principal-Name', 'X-MS-Client-Principal-Id',
    'X-MS-Client-Principal-Idp',
    // Google IAP
    'X-Goog-Authenticated-User-Email', 'X-Goog-Authenticated-User-Id', 'X-Goog-IAP-JWT-Assertion',
    // Envoy / Istio (Envoy itself strips x-envoy-* from external requests)
    'X-Envoy-Internal', 'X-Envoy-External-Address', 'X-Envoy-Original-Path', 'X-Envoy-Peer-Metadata', 'X-Envoy-Peer-Metadata-Id',
    // auth proxies: Pomerium, authentik, oauth2-proxy, Authelia
    'X-Pomerium-Jwt-Assertion', 'X-Pomerium-Claim-Email', 'X-Authentik-Username', 'X-Authentik-Email',
    'X-Auth-Request-User', 'X-Auth-Request-Email', 'Remote-User', 'Remote-Email', 'Remote-Groups', 'Remote-Name',
    // the client's address (Akamai, Cloudflare Enterprise, Fastly, Rackspace/others)
    'True-Client-IP', 'True_Client_IP', 'X-Client-IP', 'X-Cluster-Client-IP', 'Fastly-Client-IP',
    // the client's address outside the X-Forwarded-* family: what request-ip, ipware and the classic
    // PHP/Java "get client IP" snippets read (HTTP_X_FORWARDED, HTTP_FORWARDED_FOR, HTTP_CLIENT_IP,
    // getHeader("Proxy-Client-IP"), getHeader("HTTP_X_FORWARDED_FOR") taken literally), and edge platforms
    'X-Forwarded', 'X_Forwarded', 'Forwarded-For', 'Forwarded_For', 'forwarded.for', 'Client-IP', 'HTTP_CLIENT_IP',
    'HTTP_X_FORWARDED_FOR', 'Proxy-Client-IP', 'WL-Proxy-Client-IP', 'X-Originating-IP', 'X-Remote-IP', 'X-Remote-Addr',
    'X-ProxyUser-Ip', 'X-AppEngine-User-IP', 'Cf-Pseudo-IPv4', 'Fly-Client-IP', 'X-Azure-ClientIP', 'X-Azure-SocketIP',
    'DO-Connecting-IP', 'X-Original-Forwarded-For',
    // request-target overrides (IIS URL Rewrite/ARR, Symfony, Laminas; nginx auth_request)
    'X-Original-URL', 'X_Original_URL', 'X-Rewrite-URL', 'X-Original-URI',
  ];
  // Names the same platforms (and ordinary clients) send for other purposes: tracing, SDK ids, geo.
  const KEPT = [
    'x-amzn-trace-id', 'x-amzn-requestid', 'cf-ray', 'cf-ipcountry', 'x-client-id', 'x-client-version',
    'x-ms-client-request-id', 'x-goog-user-project', 'x-goog-api-client', 'x-sslx', 'ssl', 'remote-addr',
    'x-original-host', 'x-envoy', 'true-client', 'x-arr-log-id', 'user-agent', 'accept', 'cookie',
    'x-forwardedfor', 'client-id', 'client-ip-address', 'x-remote', 'x-originating-host',
  ];

  for (const header of FOREIGN) test(`strips ${header} by default`, () => assert.equal(isStrippedHeader(header), true));
  for (const header of KEPT) test(`keeps ${header}`, () => assert.equal(isStrippedHeader(header), false));
  test('certgate\'s own names are stripped too, and none of the foreign ones counts as certgate\'s own', () => {
    for (const own of ['x-client-cert-subject', 'X_Forwarded_For', 'forwarded', 'x.real.ip', 'client-cert-chain']) assert.equal(isStrippedHeader(own), true, own);
    for (const f of FOREIGN) assert.equal(isClientControlledHeader(f), false, `${f} is not certgate's own (whoami shows only certgate's own)`);
  });

  test('stripClientControlled removes every foreign family by default, in place', () => {
    const headers: IncomingHttpHeaders = {};
    for (const h of [...FOREIGN, ...KEPT]) headers[h.toLowerCase()] = 'spoof';
    stripClientControlled(headers);
    assert.deepEqual(Object.keys(headers).sort(), KEPT.map((h) => h.toLowerCase()).sort());
  });

  test('pass_through lets the named ones through, in every spelling that folds to the name', () => {
    const headers: IncomingHttpHeaders = {
      'x-ssl-client-s-dn': 'a', 'x_ssl_client_s_dn': 'b', 'x-ssl-client-i-dn': 'c', 'true-client-ip': 'd', 'x-original-url': 'e',
      'x-forwarded': 'f', 'forwarded_for': 'g', 'client-ip': 'h',
    };
    stripClientControlled(headers, ['x-ssl-client-s-dn', 'true-client-ip', 'x-forwarded', 'forwarded-for']);
    assert.deepEqual(headers, { 'x-ssl-client-s-dn': 'a', 'x_ssl_client_s_dn': 'b', 'true-client-ip': 'd', 'x-forwarded': 'f', 'forwarded_for': 'g' });
  });

  test('pass_through can never let certgate\'s own names through (the config refuses them; this is the backstop)', () => {
    const headers: IncomingHttpHeaders = { 'x-client-cert-subject': 'CN=admin', 'x-forwarded-for': '6.6.6.6', 'x-real-ip': '6.6.6.7' };
    stripClientControlled(headers, ['x-client-cert-subject', 'x-forwarded-for', 'x-real-ip']);
    assert.deepEqual(headers, {});
  });

  test('every family in FOREIGN_IDENTITY_HEADERS is documented: a source, and a row in README', () => {
    const readme = readFileSync('README.md', 'utf8');
    assert.ok(FOREIGN_IDENTITY_HEADERS.length > 0);
    for (const f of FOREIGN_IDENTITY_HEADERS) {
      assert.match(f.pattern, /^[a-z0-9-]+\*?$/, `${f.pattern}: lower case, '-' only, optional trailing *`);
      assert.ok(f.from.length > 0, `${f.pattern} says who sets it`);
      assert.ok(readme.includes(`\`${f.pattern}\``), `README lists ${f.pattern}`);
    }
  });
});

describe('identityHeaders', () => {
  test('NONE, and nothing else, without a certificate', () => {
    assert.deepEqual(identityHeaders(undefined, ALL_ON), { 'x-client-cert-verified': 'NONE' });
  });

  test('SUCCESS with every field', () => {
    assert.deepEqual(identityHeaders(BASE, ALL_OFF), {
      'x-client-cert-verified': 'SUCCESS',
      'x-client-cert-subject': 'CN=svc-a,O=Example\\, Inc.',
      'x-client-cert-issuer': 'CN=Intermediate',
      'x-client-cert-fingerprint': BASE.fingerprint,
      'x-client-cert-serial': '0A0B0C',
      'x-client-cert-not-before': '2026-01-01T00:00:00Z',
      'x-client-cert-not-after': '2051-01-01T00:00:00Z',
      'x-client-cert-san-uri': 'spiffe://example.org/ns/prod/sa/svc-a',
      'x-client-cert-san-dns': 'svc-a.internal',
      'x-client-cert-san-email': 'svc-a@example.org',
    });
  });

  test('headers with no value are left out', () => {
    const headers = identityHeaders(withFields({ subject: '', san: NO_SAN, chain: [] }), { xfcc: false, forward_cert: false, rfc9440: true });
    for (const absent of ['x-client-cert-subject', 'x-client-cert-san-uri', 'x-client-cert-san-dns', 'x-client-cert-san-email', 'client-cert-chain']) {
      assert.equal(absent in headers, false, absent);
    }
    assert.equal(headers['x-client-cert-verified'], 'SUCCESS');
    assert.ok(headers['client-cert']);
  });

  test('dates are YYYY-MM-DDTHH:MM:SSZ in UTC', () => {
    const headers = identityHeaders(withFields({ notBefore: new Date(Date.UTC(2026, 0, 2, 3, 4, 5, 678)), notAfter: new Date('2027-12-31T23:59:59+02:00') }), ALL_OFF);
    assert.equal(headers['x-client-cert-not-before'], '2026-01-02T03:04:05Z');
    assert.equal(headers['x-client-cert-not-after'], '2027-12-31T21:59:59Z');
  });

  test('SAN lists: joined by ",", and ",", "%", non-ASCII and controls percent-encoded', () => {
    const uri = ['https://x.example/a,b;c', '100%', 'https://例え.jp/ü', 'a\r\nb\u0000c\u007f\td'];
    const headers = identityHeaders(withFields({ san: { uri, dns: ['xn--r8jz45g.jp'], email: ['"q,a"@x'], ip: ['::1'] } }), ALL_OFF);
    assert.equal(headers['x-client-cert-san-uri'],
      'https://x.example/a%2Cb;c,100%25,https://%E4%BE%8B%E3%81%88.jp/%C3%BC,a%0D%0Ab%00c%7F%09d');
    assert.deepEqual((headers['x-client-cert-san-uri'] ?? '').split(',').map(decodeURIComponent), uri);
    assert.equal(headers['x-client-cert-san-email'], '"q%2Ca"@x');
    assert.equal('x-client-cert-san-ip' in headers, false);
  });

  test('a DN ending in an escaped space keeps it through HTTP whitespace trimming', () => {
    const headers = identityHeaders(withFields({ subject: 'CN=a\\ ', issuer: 'CN=\\ b' }), ALL_OFF);
    assert.equal(headers['x-client-cert-subject'], 'CN=a\\20');
    assert.equal(headers['x-client-cert-issuer'], 'CN=\\ b');
  });

  test('xfcc, forward_cert and rfc9440 each add their headers', () => {
    const headers = identityHeaders(BASE, ALL_ON);
    assert.equal(headers['x-forwarded-client-cert'], xfccElement(BASE, true));
    // nginx's $ssl_client_escaped_cert: the PEM, URL-encoded; it decodes back to the same DER.
    const pem = decodeURIComponent(headers['x-client-cert'] ?? '');
    assert.equal(pem, new X509Certificate(LEAF).toString());
    assert.ok(new X509Certificate(pem).raw.equals(LEAF));
    assert.equal(headers['client-cert'], `:${LEAF.toString('base64')}:`);
    assert.equal(headers['client-cert-chain'], `:${INTERMEDIATE.toString('base64')}:`);
    const two = identityHeaders(withFields({ chain: [INTERMEDIATE, LEAF] }), ALL_ON);
    assert.equal(two['client-cert-chain'], `:${INTERMEDIATE.toString('base64')}:, :${LEAF.toString('base64')}:`);
    assert.equal(identityHeaders(BASE, { xfcc: true, forward_cert: false, rfc9440: false })['x-forwarded-client-cert'], xfccElement(BASE, false));
    const off = identityHeaders(BASE, ALL_OFF);
    for (const name of ['x-forwarded-client-cert', 'x-client-cert', 'client-cert', 'client-cert-chain']) assert.equal(name in off, false);
  });

  test('cached per identity and options; frozen', () => {
    const a = identityHeaders(BASE, { ...ALL_ON });
    assert.equal(identityHeaders(BASE, { ...ALL_ON }), a);
    const b = identityHeaders(BASE, ALL_OFF);
    assert.notEqual(b, a);
    assert.equal('client-cert' in b, false);
    assert.ok(Object.isFrozen(a) && Object.isFrozen(b));
    assert.throws(() => {
      (a as Record<string, string>)['x-client-cert-subject'] = 'CN=spoof';
    }, TypeError);
  });

  test('every value is printable ASCII that Node accepts, whatever the certificate holds', () => {
    const hostile = withFields({
      subject: identityFromCertificate(new X509Certificate(craftCertificate(privateKey, {
        subject: name(rdn(ava('2.5.4.3', 0x0c, 'Jürgen 日本\r\nX-Injected: 1\u0000 ')), rdn(ava('2.5.4.3', 0x1e, Buffer.from('00e9007f', 'hex')))),
      }))).subject,
      san: {
        uri: ['https://x/\r\nX-Injected: 1', 'é;="\\', '\u2028'], dns: ['\u0000.evil', 'ü.example'], email: ['a\nb@c'], ip: [],
      },
      chain: [INTERMEDIATE],
    });
    for (const identity of [BASE, hostile]) {
      for (const [header, value] of Object.entries(identityHeaders(identity, ALL_ON))) {
        assert.doesNotThrow(() => validateHeaderValue(header, value), header);
        assert.match(value, /^[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?$/, `${header}: ${value}`);
      }
    }
  });
});
