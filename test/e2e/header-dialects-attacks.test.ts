/**
 * Attacks on the header dialects (issue 18), over real TLS, HTTP/1.1 and HTTP/2.
 *
 * An upstream configured for a dialect trusts that dialect's names: the AWS ALB verify-mode headers, the
 * nginx X-SSL-Client-* set, the names an operator chose in `headers.names`, X-Client-TLS-*. A client with a
 * valid but low-privilege certificate (CN=svc-direct) sends those names itself — in any case, with `_` or
 * `.` for `-` (CGI/WSGI/PHP fold them onto the same variable), twice, hidden in an obs-fold continuation,
 * or as HTTP/2 fields — to claim CN=admin. None of its values may reach the upstream: each name the
 * dialect sends arrives exactly once, with certgate's value. certgate's default names stay stripped under
 * a preset too (an upstream may still read X-Client-Cert-Subject), and `headers.pass_through` cannot let a
 * sent name through.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createTestPki, type TestPki } from '../helpers/pki.js';
import { startTestCertgate, startRecordingUpstream, type RunningCertgate, type RecordingUpstream, type RecordedRequest } from '../helpers/certgate.js';
import { rawTlsExchange, type ClientCreds } from '../helpers/client.js';
import { h2Once } from '../helpers/h2.js';

const T = { timeout: 30_000 };

let pki: TestPki;
let upstream: RecordingUpstream;
let alb: RunningCertgate;
let nginx: RunningCertgate;
let renamed: RunningCertgate;
let count = 0;

before(async () => {
  pki = await createTestPki();
  upstream = await startRecordingUpstream();
  const base = { tls: { bundle: pki.serverBundle.pemPath, client_ca: pki.clientCa.path, watch: false }, routes: [{ name: 'api', upstream: upstream.url }] };
  [alb, nginx, renamed] = await Promise.all([
    startTestCertgate({ ...base, headers: { preset: 'aws-alb', tls_info: true } }),
    // pass_through of a foreign name the preset does not send is fine; it must not open the sent ones.
    startTestCertgate({ ...base, headers: { preset: 'nginx-ssl', pass_through: ['X-SSL-Client-Escaped-Cert'] } }),
    startTestCertgate({ ...base, headers: { names: { 'X-Client-Cert-Subject': 'X-User-DN', 'X-Client-Cert-Verified': 'Verified-By-Gate' }, tls_info: true } }),
  ]);
});
after(async () => {
  await Promise.all([alb?.close(), nginx?.close(), renamed?.close(), upstream?.close()]);
  pki?.cleanup();
});

const lowPrivilege = (): ClientCreds => ({ ca: pki.root.cert, cert: pki.clients.direct.pem, key: pki.clients.direct.key });

/** One HTTP/1.1 request carrying `lines`; the upstream's record, or undefined when certgate refused it (400). */
async function forgeH1(gate: RunningCertgate, lines: readonly string[]): Promise<RecordedRequest | undefined> {
  const path = `/forged/${++count}`;
  const raw = await rawTlsExchange('127.0.0.1', gate.port, lowPrivilege(),
    [`GET ${path} HTTP/1.1`, 'Host: localhost', 'Connection: close', ...lines, '', ''].join('\r\n'));
  const rec = upstream.requests.find((r) => r.url === path);
  if (rec === undefined) assert.match(raw, /^HTTP\/1\.1 400 /, `neither forwarded nor refused: ${raw.slice(0, 200)}`);
  else assert.match(raw, /^HTTP\/1\.1 200 /, raw.slice(0, 200));
  return rec;
}

async function forgeH2(gate: RunningCertgate, fields: Record<string, string | string[]>): Promise<RecordedRequest> {
  const path = `/forged/${++count}`;
  const reply = await h2Once(gate.url, lowPrivilege(), { ':path': path, ...fields });
  assert.equal(reply.status, 200, reply.body);
  const rec = upstream.requests.find((r) => r.url === path);
  assert.ok(rec !== undefined, `${path} reached the upstream`);
  return rec;
}

/** No forged value anywhere; each of `sent` exactly once (any case), with `expect`'s value where given. */
function assertClean(rec: RecordedRequest, sent: Readonly<Record<string, string | undefined>>): void {
  assert.deepEqual(rec.rawHeaders.filter(([, v]) => /forged/i.test(v)), [], 'a forged value reached the upstream');
  for (const [name, value] of Object.entries(sent)) {
    const got = rec.rawHeaders.filter(([k]) => k.toLowerCase() === name);
    assert.equal(got.length, 1, `${name} arrives once: ${JSON.stringify(got)}`);
    if (value !== undefined) assert.equal(got[0]![1], value, name);
  }
}

/** Every spelling a CGI/WSGI/PHP stack folds onto the same variable, plus a duplicate. */
function spellings(name: string, value: string): string[] {
  const lower = name.toLowerCase();
  return [
    `${name}: ${value}`, `${lower}: ${value}-dup`, `${name.toUpperCase()}: ${value}-upper`,
    `${name.replace(/-/g, '_')}: ${value}-underscore`, `${lower.replace(/-/g, '.')}: ${value}-dot`,
  ];
}

const ALB_NAMES = ['X-Amzn-Mtls-Clientcert-Subject', 'X-Amzn-Mtls-Clientcert-Issuer', 'X-Amzn-Mtls-Clientcert-Serial-Number',
  'X-Amzn-Mtls-Clientcert-Validity', 'X-Amzn-Mtls-Clientcert-Leaf'];
const NGINX_NAMES = ['X-SSL-Client-Verify', 'X-SSL-Client-S-DN', 'X-SSL-Client-I-DN', 'X-SSL-Client-Serial', 'X-SSL-Client-Fingerprint', 'X-SSL-Client-Cert'];
const DEFAULT_NAMES = ['X-Client-Cert-Subject', 'X-Client-Cert-Verified', 'X-Client-Cert-Fingerprint'];
const TLS_NAMES = ['X-Client-TLS-Version', 'X-Client-TLS-Cipher', 'X-Client-TLS-Anything'];

test('spoofing the aws-alb headers: a client\'s X-Amzn-Mtls-Clientcert-* in any case, _ or . spelling and duplicated never reach the upstream', T, async () => {
  const rec = await forgeH1(alb, ALB_NAMES.flatMap((n) => spellings(n, 'CN=admin-forged')));
  assertClean(rec!, { 'x-amzn-mtls-clientcert-subject': 'CN=svc-direct', 'x-amzn-mtls-clientcert-leaf': undefined, 'x-amzn-mtls-clientcert-validity': undefined });
});

test('spoofing certgate\'s default names under the aws-alb preset: X-Client-Cert-Subject from a client is still stripped', T, async () => {
  const rec = await forgeH1(alb, DEFAULT_NAMES.flatMap((n) => spellings(n, 'CN=admin-forged')));
  assertClean(rec!, { 'x-amzn-mtls-clientcert-subject': 'CN=svc-direct' });
  assert.deepEqual(rec!.rawHeaders.filter(([k]) => /^x.client.cert/i.test(k)), []);
});

test('spoofing X-Client-TLS-*: a client claiming another protocol or cipher is stripped; certgate\'s own values arrive once', T, async () => {
  const rec = await forgeH1(alb, TLS_NAMES.flatMap((n) => spellings(n, 'TLSv1.0-forged')));
  assertClean(rec!, { 'x-client-tls-version': undefined, 'x-client-tls-cipher': undefined });
  assert.deepEqual(rec!.rawHeaders.filter(([k]) => /anything/i.test(k)), []);
});

test('spoofing X-Client-TLS-* where tls_info is off: stripped all the same', T, async () => {
  const rec = await forgeH1(nginx, TLS_NAMES.flatMap((n) => spellings(n, 'TLSv1.0-forged')));
  assertClean(rec!, {});
  assert.deepEqual(rec!.rawHeaders.filter(([k]) => /tls/i.test(k)), []);
});

test('spoofing the nginx-ssl headers: X-SSL-Client-* in every spelling never reach the upstream, even beside a pass_through entry', T, async () => {
  const rec = await forgeH1(nginx, [...NGINX_NAMES.flatMap((n) => spellings(n, 'CN=admin-forged')), 'X-SSL-Client-Escaped-Cert: passed-on-purpose']);
  assertClean(rec!, { 'x-ssl-client-verify': 'SUCCESS', 'x-ssl-client-s-dn': 'CN=svc-direct', 'x-ssl-client-cert': undefined });
  assert.deepEqual(rec!.rawHeaders.filter(([k]) => k.toLowerCase() === 'x-ssl-client-escaped-cert').map(([, v]) => v), ['passed-on-purpose']);
});

test('spoofing renamed headers: a client\'s X-User-DN / Verified-By-Gate (names no built-in rule knows) never reach the upstream', T, async () => {
  const rec = await forgeH1(renamed, [...spellings('X-User-DN', 'CN=admin-forged'), ...spellings('Verified-By-Gate', 'SUCCESS-forged'),
    ...DEFAULT_NAMES.flatMap((n) => spellings(n, 'CN=admin-forged'))]);
  assertClean(rec!, { 'x-user-dn': 'CN=svc-direct', 'verified-by-gate': 'SUCCESS' });
});

test('obs-fold: a folded continuation cannot smuggle a preset header\'s value or name to the upstream', T, async () => {
  for (const [gate, name] of [[alb, 'X-Amzn-Mtls-Clientcert-Subject'], [nginx, 'X-SSL-Client-S-DN'], [renamed, 'X-User-DN']] as const) {
    for (const lines of [
      [`${name}: CN=svc-direct`, ' CN=admin-forged'],
      ['X-Harmless: a', ` ${name}: CN=admin-forged`],
      ['X-Harmless: a', `\t${name}: CN=admin-forged`],
    ]) {
      const rec = await forgeH1(gate, lines);
      if (rec !== undefined) assertClean(rec, { [name.toLowerCase()]: 'CN=svc-direct' });
    }
  }
});

test('HTTP/2: the preset\'s, the renamed and the X-Client-TLS-* fields from a client stream never reach the upstream', T, async () => {
  const albRec = await forgeH2(alb, {
    'x-amzn-mtls-clientcert-subject': 'CN=admin-forged', 'x_amzn_mtls_clientcert_subject': 'CN=admin-forged-underscore',
    'x-amzn-mtls-clientcert-leaf': ['forged-1', 'forged-2'], 'x-client-cert-subject': 'CN=admin-forged', 'x-client-tls-version': 'TLSv1.0-forged',
  });
  assertClean(albRec, { 'x-amzn-mtls-clientcert-subject': 'CN=svc-direct', 'x-client-tls-version': 'TLSv1.3' });
  const nginxRec = await forgeH2(nginx, { 'x-ssl-client-s-dn': 'CN=admin-forged', 'x.ssl.client.verify': 'SUCCESS-forged' });
  assertClean(nginxRec, { 'x-ssl-client-s-dn': 'CN=svc-direct', 'x-ssl-client-verify': 'SUCCESS' });
  const renamedRec = await forgeH2(renamed, { 'x-user-dn': 'CN=admin-forged', 'x_user_dn': 'CN=admin-forged-underscore', 'verified-by-gate': 'forged' });
  assertClean(renamedRec, { 'x-user-dn': 'CN=svc-direct', 'verified-by-gate': 'SUCCESS' });
});
