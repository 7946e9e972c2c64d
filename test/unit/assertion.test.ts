/**
 * headers.assertion (issue 18), the pure parts and the key files:
 * - the claims: sub byte for byte as X-Client-Cert-Subject, cnf/x5t#S256 = base64url(SHA-256(DER)) (RFC 8705),
 *   exp = iat + ttl, typed SANs, serial and not_after;
 * - the cache rules: one signature per connection (identity object), route and trust generation, reused
 *   for three quarters of the lifetime, concurrent misses share one signature, a failed one is not kept;
 * - the key files: ES256 from P-256, EdDSA from Ed25519, kid = RFC 7638 thumbprint (computed here by
 *   hand), every other key type refused with file:line and fix;
 * - the config keys: issuer, ttl_ms bounds, assertion_audience; the header is stripped from clients in
 *   every spelling.
 */
import assert from 'node:assert/strict';
import { createHash, createPublicKey, generateKeyPairSync, X509Certificate, type KeyObject } from 'node:crypto';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { compactVerify, decodeProtectedHeader, importJWK } from 'jose';
import { parseConfig } from '../../dist/config/load.js';
import { CertgateError, formatProblem } from '../../dist/errors.js';
import { assertionClaims } from '../../dist/identity/assertion.js';
import { identityHeaders, isStrippedHeader, stripClientControlled } from '../../dist/identity/headers.js';
import { identityFromCertificate } from '../../dist/identity/identity.js';
import type { ClientIdentity } from '../../dist/identity/types.js';
import { createAssertionSigner, freshUntil, reusable, REUSE_FRACTION, type SignFn } from '../../dist/proxy/assertion.js';
import type { RouteConfig } from '../../dist/config/types.js';
import { inspectAssertionKeys, loadAssertionKeys, type AssertionKeys } from '../../dist/tls/assertion-keys.js';
import { ava, craftCertificate, name, rdn, sanExtension } from '../helpers/openssl.js';

const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const LEAF = craftCertificate(privateKey, {
  // A DN ending in an escaped space: the header spells it `\20`, and sub must be the same bytes.
  subject: name(rdn(ava('2.5.4.10', 0x0c, 'Example, Inc. ')), rdn(ava('2.5.4.3', 0x0c, 'svc-a'))),
  issuer: name(rdn(ava('2.5.4.3', 0x0c, 'Intermediate'))),
  extensions: [sanExtension([[0x86, 'spiffe://example.org/ns/prod/sa/svc-a'], [0x82, 'svc-a.internal'], [0x81, 'svc-a@example.org'], [0x87, Buffer.from([10, 0, 0, 7])]])],
});
const IDENTITY = identityFromCertificate(new X509Certificate(LEAF));
const DIR = mkdtempSync(path.join(os.tmpdir(), 'certgate-assertion-unit-'));
after(() => rmSync(DIR, { recursive: true, force: true }));

function writeKey(file: string, key: KeyObject | string, mode = 0o600): string {
  const p = path.join(DIR, file);
  writeFileSync(p, typeof key === 'string' ? key : key.export({ format: 'pem', type: 'pkcs8' }), { mode });
  chmodSync(p, mode);
  return p;
}
const cfg = (files: string[]) => ({ key_files: files, issuer: 'certgate', ttl_ms: 60_000, lines: files.map((_, i) => 10 + i) });

describe('claims', () => {
  const NOW = Date.UTC(2026, 11, 6, 12, 0, 0, 789);
  const c = assertionClaims(IDENTITY, { issuer: 'certgate', audience: 'orders', now: NOW, ttlMs: 60_000 });

  test('sub is X-Client-Cert-Subject byte for byte (RFC 4514, the trailing space as \\20)', () => {
    assert.equal(c.sub, identityHeaders(IDENTITY, { xfcc: false, forward_cert: false, rfc9440: false })['x-client-cert-subject']);
    assert.equal(c.sub, 'CN=svc-a,O=Example\\, Inc.\\20');
  });

  test('cnf and x5t#S256 are base64url(SHA-256(DER)) (RFC 8705 §3.1)', () => {
    const expected = createHash('sha256').update(new X509Certificate(LEAF).raw).digest('base64url');
    assert.deepEqual(c.cnf, { 'x5t#S256': expected });
    assert.equal(c['x5t#S256'], expected);
  });

  test('times are whole seconds: nbf = iat, exp = iat + ttl', () => {
    assert.equal(c.iat, Math.floor(NOW / 1000));
    assert.equal(c.nbf, c.iat);
    assert.equal(c.exp, c.iat + 60);
    assert.equal(c.not_after, Math.floor(IDENTITY.notAfter.getTime() / 1000));
  });

  test('iss, aud, serial and typed SANs', () => {
    assert.equal(c.iss, 'certgate');
    assert.equal(c.aud, 'orders');
    assert.equal(c.serial, IDENTITY.serial);
    assert.deepEqual(JSON.parse(JSON.stringify(c.sans)), {
      dns: ['svc-a.internal'], uri: ['spiffe://example.org/ns/prod/sa/svc-a'], email: ['svc-a@example.org'], ip: ['10.0.0.7'],
    });
  });
});

describe('cache rules', () => {
  test('reused for three quarters of the lifetime, then replaced', () => {
    assert.equal(REUSE_FRACTION, 0.75);
    assert.equal(freshUntil(1000, 60_000), 1_000_000 + 45_000);
    assert.equal(reusable({ trust: 2, until: 5000 }, 2, 4999), true);
    assert.equal(reusable({ trust: 2, until: 5000 }, 2, 5000), false, 'at the refresh point');
    assert.equal(reusable({ trust: 2, until: 5000 }, 3, 10), false, 'another trust generation');
    assert.equal(reusable(undefined, 2, 10), false);
  });

  const route = (name: string, audience?: string): RouteConfig => ({
    name, path_prefix: '/', upstream: new URL('http://127.0.0.1:1'), timeout_ms: 1000, ...(audience !== undefined && { assertion_audience: audience }),
  });
  const fakeKeys = {} as AssertionKeys;

  function counting(): { sign: SignFn; calls: { aud: string; iat: number }[] } {
    const calls: { aud: string; iat: number }[] = [];
    return { calls, sign: async (claims) => {
      calls.push({ aud: claims.aud, iat: claims.iat });
      return `jws-${calls.length}`;
    } };
  }

  test('one signature per connection, route and trust generation; concurrent misses share it', async () => {
    const { sign, calls } = counting();
    const signer = createAssertionSigner({ issuer: 'certgate', ttl_ms: 60_000 }, fakeKeys, sign);
    const t0 = 1_000_000_000_000;
    const a = signer.token(IDENTITY, route('api'), 0, t0);
    const b = signer.token(IDENTITY, route('api'), 0, t0 + 1);
    assert.equal(a, b, 'two streams of one session missing together share one signature');
    assert.equal(await a, 'jws-1');
    assert.equal(signer.token(IDENTITY, route('api'), 0, t0 + 44_000), 'jws-1', 'a hit is the string itself, no Promise');
    assert.equal(await signer.token(IDENTITY, route('api'), 0, t0 + 45_000), 'jws-2', 'past three quarters of 60 s: re-signed');
    assert.equal(await signer.token(IDENTITY, route('admin', 'https://admin.internal'), 0, t0 + 45_001), 'jws-3', 'another route');
    assert.equal(await signer.token(IDENTITY, route('api'), 1, t0 + 45_002), 'jws-4', 'a trust change');
    const otherConnection: ClientIdentity = { ...IDENTITY };
    assert.equal(await signer.token(otherConnection, route('api'), 1, t0 + 45_003), 'jws-5', 'another connection, same certificate');
    assert.deepEqual(calls.map((c) => c.aud), ['api', 'api', 'https://admin.internal', 'api', 'api']);
    assert.equal(signer.signed, 5);
  });

  test('a failed signature is not cached: the next request tries again', async () => {
    let fail = true;
    const signer = createAssertionSigner({ issuer: 'certgate', ttl_ms: 60_000 }, fakeKeys, async () => {
      if (fail) throw new Error('boom');
      return 'ok';
    });
    await assert.rejects(Promise.resolve(signer.token(IDENTITY, route('api'), 0, 1000)), /boom/);
    fail = false;
    assert.equal(await signer.token(IDENTITY, route('api'), 0, 1001), 'ok');
  });
});

describe('key files', () => {
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const ed = generateKeyPairSync('ed25519');

  test('P-256 signs ES256 and Ed25519 is published as EdDSA; kid = RFC 7638 thumbprint', async () => {
    const keys = await loadAssertionKeys(cfg([writeKey('ec.pem', ec.privateKey), writeKey('ed.pem', ed.privateKey)]), '/etc/certgate.yaml');
    assert.equal(keys.signing.alg, 'ES256');
    const [first, second] = keys.jwks.keys;
    const ecJwk = createPublicKey(ec.privateKey).export({ format: 'jwk' });
    // RFC 7638 §3.2: the required members only, lexicographic order, no whitespace.
    const thumb = (members: string) => createHash('sha256').update(members).digest('base64url');
    assert.equal(first!.kid, thumb(`{"crv":"P-256","kty":"EC","x":"${ecJwk.x}","y":"${ecJwk.y}"}`));
    const edJwk = createPublicKey(ed.privateKey).export({ format: 'jwk' });
    assert.equal(second!.kid, thumb(`{"crv":"Ed25519","kty":"OKP","x":"${edJwk.x}"}`));
    assert.deepEqual({ alg: first!.alg, use: first!.use, alg2: second!.alg }, { alg: 'ES256', use: 'sig', alg2: 'EdDSA' });
    assert.equal(keys.signing.kid, first!.kid);
    for (const k of keys.jwks.keys) assert.equal('d' in k, false, 'no private member is published');
  });

  test('an Ed25519 key first signs EdDSA; a signature verifies with the published key', async () => {
    const keys = await loadAssertionKeys(cfg([writeKey('ed-first.pem', ed.privateKey)]), '/etc/certgate.yaml');
    const signer = createAssertionSigner({ issuer: 'certgate', ttl_ms: 60_000 }, keys);
    const route: RouteConfig = { name: 'api', path_prefix: '/', upstream: new URL('http://127.0.0.1:1'), timeout_ms: 1000 };
    const jws = await signer.token(IDENTITY, route, 0);
    assert.deepEqual(decodeProtectedHeader(jws), { alg: 'EdDSA', kid: keys.signing.kid, typ: 'JWT' });
    const { payload } = await compactVerify(jws, await importJWK(keys.jwks.keys[0]!, 'EdDSA'));
    assert.equal(JSON.parse(Buffer.from(payload).toString()).aud, 'api');
  });

  test('a public key may be published beside the signing key, not instead of it', async () => {
    const pub = writeKey('next.pub.pem', createPublicKey(ed.privateKey).export({ format: 'pem', type: 'spki' }) as string, 0o644);
    const keys = await loadAssertionKeys(cfg([writeKey('sign.pem', ec.privateKey), pub]), '/etc/certgate.yaml');
    assert.equal(keys.jwks.keys.length, 2);
    const { problems } = await inspectAssertionKeys(cfg([pub]), '/etc/certgate.yaml');
    assert.match(problems[0]!.message, /public key: the first key file signs/);
  });

  async function refusal(files: string[]): Promise<string[]> {
    const { keys, problems } = await inspectAssertionKeys(cfg(files), '/etc/certgate.yaml');
    assert.equal(keys, undefined);
    return problems.map(formatProblem);
  }

  test('RSA, P-384 and encrypted keys are refused with file:line and fix', async () => {
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const p384 = generateKeyPairSync('ec', { namedCurve: 'P-384' });
    const encrypted = ec.privateKey.export({ format: 'pem', type: 'pkcs8', cipher: 'aes-256-cbc', passphrase: 'secret' }) as string;
    const lines = await refusal([writeKey('rsa.pem', rsa.privateKey), writeKey('p384.pem', p384.privateKey), writeKey('enc.pem', encrypted)]);
    assert.equal(lines.length, 3);
    assert.match(lines[0]!, /^error: \/etc\/certgate\.yaml:10: headers\.assertion\.key_files\[0\] .*rsa\.pem: an RSA 2048-bit key cannot sign assertions: use an EC P-256 key .*Ed25519.*\[CG_ASSERTION_KEY\]$/);
    assert.match(lines[1]!, /:11: .*p384\.pem: an EC key on secp384r1 \(only P-256 signs ES256\) cannot sign/);
    assert.match(lines[2]!, /:12: .*enc\.pem: the key is encrypted/);
  });

  test('a missing file, a file without a key, a repeated key and a world-readable signing key are refused', async () => {
    const ecFile = writeKey('ec-again.pem', ec.privateKey);
    const lines = await refusal([path.join(DIR, 'missing.pem'), writeKey('cert.pem', LEAF.toString()), ecFile, ecFile]);
    assert.match(lines[0]!, /:10: .*missing\.pem: cannot read it \(ENOENT\).*\[CG_FILE_READ\]/);
    assert.match(lines[1]!, /:11: .*cert\.pem: no private key PEM in it/);
    assert.equal(lines.length, 2, 'key problems are reported before duplicates are compared');
    assert.match((await refusal([ecFile, ecFile]))[0]!, /:11: .*the same key as key_files\[0\]/);
    const open = writeKey('open.pem', ec.privateKey, 0o644);
    assert.match((await refusal([open]))[0]!, /readable by every user.*chmod 600.*\[CG_KEY_PERMISSIONS\]/);
    assert.ok((await inspectAssertionKeys(cfg([open]), '/etc/certgate.yaml', true)).keys, 'tls.allow_insecure_key_permissions lets it through');
  });

  test('loadAssertionKeys throws a CertgateError naming the config line', async () => {
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
    await assert.rejects(loadAssertionKeys(cfg([writeKey('rsa2.pem', rsa.privateKey)]), '/etc/certgate.yaml'),
      (err: unknown) => err instanceof CertgateError && err.code === 'CG_ASSERTION_KEY' && err.line === 10);
  });
});

describe('config and stripping', () => {
  const FILE = '/etc/certgate/certgate.yaml';
  const MINIMAL = 'tls:\n  bundle: server.pem\n  client_ca: ca.crt\nroutes:\n  - name: api\n    upstream: http://127.0.0.1:3000\n';

  function problemsOf(source: string): string[] {
    try {
      parseConfig(source, FILE);
    } catch (err) {
      assert.ok(err instanceof CertgateError);
      return err.problems.map(formatProblem);
    }
    assert.fail('expected the config to be refused');
  }

  test('headers.assertion: defaults, absolute key paths with their lines, assertion_audience', () => {
    const c = parseConfig(`${MINIMAL}    assertion_audience: https://api.internal\nheaders:\n  assertion:\n    key_files:\n      - keys/a.pem\n      - /abs/b.pem\n`, FILE);
    assert.deepEqual(c.headers.assertion, { key_files: ['/etc/certgate/keys/a.pem', '/abs/b.pem'], issuer: 'certgate', ttl_ms: 60_000, lines: [11, 12] });
    assert.equal(c.routes[0]!.assertion_audience, 'https://api.internal');
    assert.equal(parseConfig(MINIMAL, FILE).headers.assertion, undefined);
  });

  test('issuer, ttl_ms and key_files are refused with file:line and the bounds', () => {
    const at = (body: string) => problemsOf(`${MINIMAL}headers:\n  assertion:\n${body}`).join('\n');
    assert.match(at('    key_files: []\n'), /certgate\.yaml:9:.*at least one key file/);
    assert.match(at('    key_files: [a.pem]\n    issuer: ""\n'), /headers\.assertion\.issuer.*non-empty/);
    assert.match(at('    key_files: [a.pem]\n    issuer: " certgate"\n'), /issuer.*leading or trailing/);
    assert.match(at('    key_files: [a.pem]\n    ttl_ms: 1000\n'), /ttl_ms.*at least 5000/);
    assert.match(at('    key_files: [a.pem]\n    ttl_ms: 7200000\n'), /ttl_ms.*at most 3600000/);
    assert.match(at('    key_files: [a.pem]\n    ttl_ms: 60500\n'), /ttl_ms.*whole seconds/);
    assert.match(problemsOf(`${MINIMAL}    assertion_audience: "two words"\n`).join('\n'), /assertion_audience.*without spaces/);
  });

  test('a client\'s X-Client-Cert-Assertion is stripped in every spelling', () => {
    const spellings = ['X-Client-Cert-Assertion', 'x-client-cert-assertion', 'X_Client_Cert_Assertion', 'x.client.cert.assertion', 'X-CLIENT-CERT-ASSERTION', 'x-client_cert.assertion'];
    for (const s of spellings) assert.equal(isStrippedHeader(s), true, s);
    const headers = Object.fromEntries(spellings.map((s) => [s.toLowerCase(), 'forged']));
    stripClientControlled(headers);
    assert.deepEqual(headers, {});
  });
});
