/**
 * Header dialects (issue 18), the pure part: identity → the header list per preset (names and value
 * formats as AWS and nginx write them), the opt-in headers, `headers.names` renames and the rules that
 * keep a rename from forging, splitting or shadowing a header, and the stripping of every sent name.
 * The same formats are checked byte for byte against a real nginx in test/e2e/header-dialects-nginx.test.ts.
 */
import assert from 'node:assert/strict';
import { createHash, generateKeyPairSync, X509Certificate } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { validateHeaderValue } from 'node:http';
import { describe, test } from 'node:test';
import { compileDialect, namesProblems, type DialectChoice, type DialectOptions } from '../../dist/identity/dialect.js';
import { albLeaf, spiffeId, wholeBytesHex, ALL_HEADER_NAMES } from '../../dist/identity/presets.js';
import { certificatePem } from '../../dist/identity/encode.js';
import { stripClientControlled } from '../../dist/identity/headers.js';
import { identityFromCertificate } from '../../dist/identity/identity.js';
import type { ClientIdentity } from '../../dist/identity/types.js';
import { parseConfig } from '../../dist/config/load.js';
import { CertgateError } from '../../dist/errors.js';
import { ava, craftCertificate, name, rdn, sanExtension } from '../helpers/openssl.js';

const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const LEAF = craftCertificate(privateKey, {
  subject: name(rdn(ava('2.5.4.10', 0x0c, 'Example, Inc.')), rdn(ava('2.5.4.3', 0x0c, 'svc-a'))),
  issuer: name(rdn(ava('2.5.4.3', 0x0c, 'Intermediate'))),
  extensions: [sanExtension([[0x86, 'spiffe://example.org/ns/prod/sa/svc-a'], [0x86, 'https://svc-a.example/'], [0x82, 'svc-a.internal']])],
});
const ID = identityFromCertificate(new X509Certificate(LEAF));
const TLS = { version: 'TLSv1.3', cipher: 'TLS_AES_128_GCM_SHA256' };

const CHOICE: DialectChoice = { preset: 'certgate', xfcc: false, forward_cert: false, rfc9440: false, spiffe_id: false, tls_info: false };
const dialect = (o: Partial<DialectOptions> = {}) => compileDialect({ ...CHOICE, names: {}, pass_through: [], ...o });
const withFields = (fields: Partial<ClientIdentity>): ClientIdentity => ({ ...ID, ...fields });

describe('presets: identity → headers', () => {
  test('certgate (the default) is README\'s set, unchanged', () => {
    assert.deepEqual(Object.keys(dialect().headers(ID, undefined)), [
      'x-client-cert-verified', 'x-client-cert-subject', 'x-client-cert-issuer', 'x-client-cert-fingerprint', 'x-client-cert-serial',
      'x-client-cert-not-before', 'x-client-cert-not-after', 'x-client-cert-san-uri', 'x-client-cert-san-dns',
    ]);
  });

  test('aws-alb: exactly the five verify-mode headers, in AWS\'s formats', () => {
    const h = dialect({ preset: 'aws-alb' }).headers(ID, undefined);
    assert.deepEqual(Object.keys(h), [
      'x-amzn-mtls-clientcert-serial-number', 'x-amzn-mtls-clientcert-issuer', 'x-amzn-mtls-clientcert-subject',
      'x-amzn-mtls-clientcert-validity', 'x-amzn-mtls-clientcert-leaf',
    ]);
    assert.equal(h['x-amzn-mtls-clientcert-serial-number'], ID.serial);
    assert.match(h['x-amzn-mtls-clientcert-serial-number']!, /^(?:[0-9A-F]{2})+$/);
    assert.equal(h['x-amzn-mtls-clientcert-subject'], 'CN=svc-a,O=Example\\, Inc.');
    assert.equal(h['x-amzn-mtls-clientcert-issuer'], 'CN=Intermediate');
    assert.match(h['x-amzn-mtls-clientcert-validity']!, /^NotBefore=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ;NotAfter=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    const leaf = h['x-amzn-mtls-clientcert-leaf']!;
    assert.ok(leaf.startsWith('-----BEGIN%20CERTIFICATE-----%0A'), leaf.slice(0, 40));
    assert.ok(leaf.endsWith('%0A-----END%20CERTIFICATE-----%0A'));
    assert.equal(decodeURIComponent(leaf), certificatePem(ID.der));
  });

  test('aws-alb Validity is AWS\'s documented shape, to the second', () => {
    const h = dialect({ preset: 'aws-alb' }).headers(withFields({
      notBefore: new Date('2023-09-21T01:50:17Z'), notAfter: new Date('2024-09-20T01:50:17Z'),
    }), undefined);
    assert.equal(h['x-amzn-mtls-clientcert-validity'], 'NotBefore=2023-09-21T01:50:17Z;NotAfter=2024-09-20T01:50:17Z');
  });

  test('aws-alb Leaf: "+=/" stay as they are (AWS: safe characters), space and newline are %20 and %0A, nothing else changes', () => {
    // A DER whose base64 holds + / and = padding.
    const der = Buffer.from('++//+w==', 'base64');
    assert.equal(der.toString('base64'), '++//+w==');
    assert.equal(albLeaf(der), '-----BEGIN%20CERTIFICATE-----%0A++//+w==%0A-----END%20CERTIFICATE-----%0A');
    const real = albLeaf(ID.der);
    assert.equal(real.replace(/%20/g, ' ').replace(/%0A/g, '\n'), certificatePem(ID.der));
    assert.doesNotMatch(real.replace(/%20|%0A/g, ''), /%/);
  });

  test('nginx-ssl: the six X-SSL-Client-* headers with nginx\'s values (SHA-1 fingerprint, escaped PEM)', () => {
    const h = dialect({ preset: 'nginx-ssl' }).headers(ID, undefined);
    assert.deepEqual(h, {
      'x-ssl-client-verify': 'SUCCESS',
      'x-ssl-client-s-dn': 'CN=svc-a,O=Example\\, Inc.',
      'x-ssl-client-i-dn': 'CN=Intermediate',
      'x-ssl-client-serial': wholeBytesHex(ID.serial),
      'x-ssl-client-fingerprint': createHash('sha1').update(ID.der).digest('hex'),
      // $ssl_client_escaped_cert: every byte but letters, digits, - . _ ~ escaped (+ / = too), uppercase hex.
      'x-ssl-client-cert': encodeURIComponent(certificatePem(ID.der)),
    });
    assert.match(h['x-ssl-client-fingerprint']!, /^[0-9a-f]{40}$/);
  });

  test('serials are whole bytes, as OpenSSL\'s i2a_ASN1_INTEGER (nginx) and AWS\'s 03A5B1 print them', () => {
    assert.equal(wholeBytesHex('3A5B1'), '03A5B1');
    assert.equal(wholeBytesHex('03A5B1'), '03A5B1');
    assert.equal(wholeBytesHex('0'), '00');
  });

  test('without a certificate (optional mode): certgate and nginx-ssl say NONE, aws-alb sends nothing', () => {
    assert.deepEqual(dialect().headers(undefined, undefined), { 'x-client-cert-verified': 'NONE' });
    assert.deepEqual(dialect({ preset: 'nginx-ssl' }).headers(undefined, undefined), { 'x-ssl-client-verify': 'NONE' });
    assert.deepEqual(dialect({ preset: 'aws-alb' }).headers(undefined, undefined), {});
    const d = dialect({ preset: 'aws-alb', tls_info: true });
    assert.deepEqual(d.headers(undefined, TLS), { 'x-client-tls-version': 'TLSv1.3', 'x-client-tls-cipher': 'TLS_AES_128_GCM_SHA256' });
    assert.equal(d.headers(undefined, TLS), d.headers(undefined, TLS), 'built once per connection (its TLS facts)');
  });

  test('a DN ending in an escaped space keeps its escape in every preset (\\20: HTTP would drop the space)', () => {
    const id = withFields({ subject: 'CN=a\\ ' });
    assert.equal(dialect().headers(id, undefined)['x-client-cert-subject'], 'CN=a\\20');
    assert.equal(dialect({ preset: 'aws-alb' }).headers(id, undefined)['x-amzn-mtls-clientcert-subject'], 'CN=a\\20');
    assert.equal(dialect({ preset: 'nginx-ssl' }).headers(id, undefined)['x-ssl-client-s-dn'], 'CN=a\\20');
  });

  test('every value of every preset and option is printable ASCII Node accepts, whatever the certificate holds', () => {
    const hostile = identityFromCertificate(new X509Certificate(craftCertificate(privateKey, {
      subject: name(rdn(ava('2.5.4.3', 0x0c, 'Jürgen 日本\r\nX-Injected: 1 '))),
      extensions: [sanExtension([[0x86, 'spiffe://x/\r\nX-Injected: 1'], [0x82, 'a.example']])],
    })));
    for (const preset of ['certgate', 'aws-alb', 'nginx-ssl'] as const) {
      const d = dialect({ preset, xfcc: true, forward_cert: true, rfc9440: true, spiffe_id: true, tls_info: true });
      for (const identity of [ID, hostile]) {
        for (const [header, value] of Object.entries(d.headers(identity, TLS))) {
          assert.doesNotThrow(() => validateHeaderValue(header, value), `${preset} ${header}`);
          assert.match(value, /^[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?$/, `${preset} ${header}: ${value}`);
        }
      }
    }
  });

  test('the opt-in headers come with any preset', () => {
    const h = dialect({ preset: 'aws-alb', spiffe_id: true, tls_info: true, forward_cert: true }).headers(ID, TLS);
    assert.equal(h['x-client-cert-spiffe-id'], 'spiffe://example.org/ns/prod/sa/svc-a');
    assert.equal(h['x-client-tls-version'], 'TLSv1.3');
    assert.equal(h['x-client-tls-cipher'], 'TLS_AES_128_GCM_SHA256');
    assert.ok(h['x-client-cert']!.startsWith('-----BEGIN%20CERTIFICATE-----%0A'));
    assert.equal(h['x-client-cert-subject'], undefined, 'aws-alb replaces certgate\'s identity headers');
  });

  test('built once per identity (per connection) and generation: the same frozen object', () => {
    const d = dialect({ preset: 'nginx-ssl' });
    const a = d.headers(ID, undefined);
    assert.equal(d.headers(ID, undefined), a);
    assert.ok(Object.isFrozen(a));
    assert.notEqual(dialect({ preset: 'nginx-ssl' }).headers(ID, undefined), a, 'a new generation builds its own');
  });
});

describe('X-Client-Cert-Spiffe-Id', () => {
  test('the one spiffe:// URI SAN; absent when none or several', () => {
    assert.equal(spiffeId(['https://a/', 'spiffe://example.org/a']), 'spiffe://example.org/a');
    assert.equal(spiffeId(['SPIFFE://example.org/a']), 'SPIFFE://example.org/a');
    assert.equal(spiffeId(['https://a/']), '');
    assert.equal(spiffeId([]), '');
    assert.equal(spiffeId(['spiffe://example.org/a', 'spiffe://example.org/b']), '');
    const none = dialect({ spiffe_id: true }).headers(withFields({ san: { ...ID.san, uri: ['spiffe://a/x', 'spiffe://a/y'] } }), undefined);
    assert.equal(none['x-client-cert-spiffe-id'], undefined);
  });
  test('percent-encodes what could split a header', () => {
    assert.equal(spiffeId(['spiffe://x/a,b\r\n']), 'spiffe://x/a%2Cb%0D%0A');
  });
});

describe('headers.names', () => {
  test('renames after the preset; the old name is no longer sent', () => {
    const d = dialect({ preset: 'nginx-ssl', names: { 'X-SSL-Client-S-DN': 'X-User-DN', 'x-ssl-client-verify': 'SSL-Client-Verify' } });
    const h = d.headers(ID, undefined);
    assert.equal(h['x-user-dn'], 'CN=svc-a,O=Example\\, Inc.');
    assert.equal(h['ssl-client-verify'], 'SUCCESS');
    assert.equal(h['x-ssl-client-s-dn'], undefined);
    assert.ok(d.sent.has('x-user-dn') && d.sent.has('ssl-client-verify') && !d.sent.has('x-ssl-client-s-dn'));
    assert.deepEqual(d.headers(undefined, undefined), { 'ssl-client-verify': 'NONE' });
  });

  const problem = (choice: Partial<DialectChoice>, names: Record<string, string>): string[] =>
    namesProblems({ ...CHOICE, ...choice }, names).map((p) => `${p.key} ${p.atKey ? 'key' : 'value'}: ${p.message} (fix: ${p.hint})`);

  test('a safe rename passes', () => {
    assert.deepEqual(problem({}, { 'X-Client-Cert-Subject': 'X-Subject', 'X-Client-Cert-Verified': 'X-Client-Cert-Verified' }), []);
    assert.deepEqual(problem({ preset: 'aws-alb', tls_info: true }, { 'X-Client-TLS-Version': 'X-Amzn-TLS-Version' }), []);
  });

  for (const target of ['Host', 'host', 'Content-Length', 'content-type', 'Transfer-Encoding', 'Connection', 'Keep-Alive', 'TE', 'Upgrade', 'Proxy-Authorization', 'HTTP2-Settings',
    'X-Forwarded-For', 'x-forwarded-host', 'Forwarded', 'X-Real-IP', 'X-Request-Id', 'Authorization', 'Cookie']) {
    test(`mapping a header to ${target} is refused`, () => {
      const [p] = problem({}, { 'X-Client-Cert-Subject': target });
      assert.match(p!, /value: .*has a meaning of its own/);
    });
  }

  for (const target of ['X Subject', 'X-Subject:', 'X-Subject\r\nX-Injected', 'X_Subject', 'X.Subject', '', ':authority', 'X-Sübject', 'x'.repeat(101)]) {
    test(`an invalid header name ${JSON.stringify(target.slice(0, 20))} is refused`, () => {
      assert.match(problem({}, { 'X-Client-Cert-Subject': target })[0]!, /value: .* is not a header name certgate can send/);
    });
  }

  test('another identity header\'s name is refused (the upstream would read one as the other)', () => {
    assert.match(problem({}, { 'X-Client-Cert-Subject': 'X-Client-Cert-Issuer' })[0]!, /name of another identity header/);
    assert.match(problem({ preset: 'aws-alb' }, { 'X-Amzn-Mtls-Clientcert-Issuer': 'X-Client-Cert-Subject' })[0]!, /another identity header/);
    assert.match(problem({}, { 'X-Client-Cert-Subject': 'X-Client-Certificate-Name' })[0]!, /another identity header/);
    assert.match(problem({}, { 'X-Client-Cert-Subject': 'X-Client-TLS-Anything' })[0]!, /another identity header/);
    assert.match(problem({}, { 'X-Client-Cert-Subject': 'X-SSL-Client-S-DN' })[0]!, /another identity header/);
  });

  test('two headers onto one name is refused', () => {
    const [p] = problem({}, { 'X-Client-Cert-Subject': 'X-Who', 'X-Client-Cert-Issuer': 'x-who' });
    assert.match(p!, /X-Client-Cert-Issuer value: "x-who" would carry two headers/);
  });

  test('the same key twice in another case is refused', () => {
    assert.match(problem({}, { 'X-Client-Cert-Subject': 'X-A', 'x-client-cert-subject': 'X-B' })[0]!, /renamed twice/);
  });

  test('an unknown name, or one this preset does not send, is refused at the key with the names it sends', () => {
    assert.match(problem({}, { 'X-Client-Cert-Subjekt': 'X-A' })[0]!, /key: "X-Client-Cert-Subjekt" is not a header certgate sends \(fix: use one of the names this config sends: X-Client-Cert-Verified, /);
    assert.match(problem({ preset: 'aws-alb' }, { 'X-Client-Cert-Subject': 'X-A' })[0]!, /key: "X-Client-Cert-Subject" is not sent with headers.preset: aws-alb/);
    assert.match(problem({}, { 'X-Client-TLS-Version': 'X-A' })[0]!, /is not sent with headers.preset: certgate/);
    assert.deepEqual(problem({ tls_info: true }, { 'X-Client-TLS-Version': 'X-A' }), []);
  });

  test('every README header name can be a key', () => {
    assert.ok(ALL_HEADER_NAMES.includes('X-Amzn-Mtls-Clientcert-Leaf') && ALL_HEADER_NAMES.includes('X-SSL-Client-Cert'));
    assert.ok(ALL_HEADER_NAMES.includes('X-Client-Cert-Spiffe-Id') && ALL_HEADER_NAMES.includes('X-Client-TLS-Cipher'));
  });
});

describe('stripping what a dialect sends', () => {
  test('a renamed name is stripped from clients in every spelling, and so is the default set', () => {
    const d = dialect({ preset: 'nginx-ssl', names: { 'X-SSL-Client-S-DN': 'X-User-DN' } });
    const headers: IncomingHttpHeaders = {
      'x-user-dn': 'forged', 'x_user_dn': 'forged', 'x.user.dn': 'forged', 'x-client-cert-subject': 'forged', 'x-ssl-client-s-dn': 'forged',
      'x-client-tls-version': 'forged', 'x_client_tls_cipher': 'forged', 'x-user-dnx': 'kept', accept: 'kept',
    };
    stripClientControlled(headers, d.passThrough, d.sent);
    assert.deepEqual(headers, { 'x-user-dnx': 'kept', accept: 'kept' });
  });

  test('a sent name is stripped even when pass_through names it', () => {
    const d = dialect({ preset: 'nginx-ssl', pass_through: ['x-ssl-client-s-dn', 'x-ssl-client-foo'] });
    const headers: IncomingHttpHeaders = { 'x-ssl-client-s-dn': 'forged', 'x_ssl_client_s_dn': 'forged', 'x-ssl-client-foo': 'passed' };
    stripClientControlled(headers, d.passThrough, d.sent);
    assert.deepEqual(headers, { 'x-ssl-client-foo': 'passed' });
  });
});

describe('config: headers.preset / names / spiffe_id / tls_info', () => {
  const FILE = '/etc/certgate/certgate.yaml';
  const MINIMAL = 'tls:\n  bundle: ../certs/server.pem\n  client_ca: ../certs/ca.pem\nroutes:\n  - upstream: http://127.0.0.1:3000\n';
  const problemsOf = (src: string): string[] => {
    try {
      parseConfig(src, FILE);
    } catch (err) {
      if (err instanceof CertgateError) return err.problems.map((p) => `${p.file}:${p.line}:${p.col}: ${p.message} (fix: ${p.hint})`);
      throw err;
    }
    return [];
  };

  test('accepted and kept as written', () => {
    const c = parseConfig(`${MINIMAL}headers:\n  preset: aws-alb\n  names:\n    X-Amzn-Mtls-Clientcert-Subject: X-Subject\n  spiffe_id: true\n  tls_info: true\n`, FILE);
    assert.equal(c.headers.preset, 'aws-alb');
    assert.deepEqual(c.headers.names, { 'X-Amzn-Mtls-Clientcert-Subject': 'X-Subject' });
    assert.equal(c.headers.spiffe_id, true);
    assert.equal(c.headers.tls_info, true);
  });

  test('an unknown preset is refused with the choices', () => {
    assert.match(problemsOf(`${MINIMAL}headers:\n  preset: envoy\n`)[0]!, /:7:11: headers\.preset: .*certgate.*aws-alb.*nginx-ssl/);
  });

  test('mapping to Host, X-Forwarded-For or Content-Length is refused at its file:line with a fix', () => {
    const lines = problemsOf(`${MINIMAL}headers:\n  names:\n    X-Client-Cert-Subject: Host\n    X-Client-Cert-Issuer: X-Forwarded-For\n    X-Client-Cert-Serial: Content-Length\n`);
    assert.equal(lines.length, 3, lines.join('\n'));
    assert.match(lines[0]!, /^\/etc\/certgate\/certgate\.yaml:8:28: headers\.names\.X-Client-Cert-Subject: "Host" has a meaning of its own .*\(fix: choose a name of your own/);
    assert.match(lines[1]!, /certgate\.yaml:9:27: headers\.names\.X-Client-Cert-Issuer: "X-Forwarded-For" has a meaning/);
    assert.match(lines[2]!, /certgate\.yaml:10:27: headers\.names\.X-Client-Cert-Serial: "Content-Length" has a meaning/);
  });

  test('pass_through naming a header the preset sends is refused at its file:line', () => {
    const lines = problemsOf(`${MINIMAL}headers:\n  preset: nginx-ssl\n  pass_through: [X-SSL-Client-Foo, X_SSL_Client_S_DN]\n`);
    assert.equal(lines.length, 1, lines.join('\n'));
    assert.match(lines[0]!, /certgate\.yaml:8:36: headers\.pass_through\[1\]: "X_SSL_Client_S_DN" is a header certgate sends/);
  });
});
