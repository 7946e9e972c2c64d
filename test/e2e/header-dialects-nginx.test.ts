/**
 * `headers.preset: nginx-ssl` against the real thing (issue 18): nginx from Debian terminates mTLS with
 * the recipe apps were written against —
 *   proxy_set_header X-SSL-Client-S-DN $ssl_client_s_dn;  (and -Verify, -I-DN, -Serial, -Fingerprint,
 *   -Cert = $ssl_client_escaped_cert; X-Client-TLS-Version $ssl_protocol, X-Client-TLS-Cipher $ssl_cipher)
 * — and certgate with the nginx-ssl preset (and tls_info) sits beside it, both in front of one recording
 * upstream. The same client certificate, over the same TLS version and cipher, must give the same bytes in
 * every header. Certificates: the suite's plain client, the hostile DN (comma, plus, quote, <, >, ;,
 * non-ASCII), and one openssl itself issues with a multi-valued RDN, a leading `#`, a backslash, an
 * emailAddress and AWS's example serial 03A5B1 (a leading zero byte) — and one whose serial has the high bit set.
 * .ci/run installs nginx-light; without nginx this file says it skipped.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { createTestPki, type TestPki } from '../helpers/pki.js';
import { startTestCertgate, startRecordingUpstream, type RunningCertgate, type RecordingUpstream, type RecordedRequest } from '../helpers/certgate.js';
import { NGINX, startNginx, type RunningNginx } from '../helpers/nginx.js';
import { openssl } from '../helpers/openssl.js';
import { tlsExchange } from '../helpers/dialects.js';
import type { ClientCreds } from '../helpers/client.js';

const T = { timeout: 60_000, skip: NGINX === undefined ? 'nginx is not installed (apt-get install nginx-light)' : false };

const HEADERS: Readonly<Record<string, string>> = {
  'X-SSL-Client-Verify': '$ssl_client_verify',
  'X-SSL-Client-S-DN': '$ssl_client_s_dn',
  'X-SSL-Client-I-DN': '$ssl_client_i_dn',
  'X-SSL-Client-Serial': '$ssl_client_serial',
  'X-SSL-Client-Fingerprint': '$ssl_client_fingerprint',
  'X-SSL-Client-Cert': '$ssl_client_escaped_cert',
  'X-Client-TLS-Version': '$ssl_protocol',
  'X-Client-TLS-Cipher': '$ssl_cipher',
};

let pki: TestPki;
let upstream: RecordingUpstream;
let nginx: RunningNginx | undefined;
let gate: RunningCertgate | undefined;
let count = 0;

/** A client certificate openssl issues from the suite's intermediate: `subj` as `openssl req -subj` with -multivalue-rdn. */
async function opensslClient(name: string, subj: string, serial: string): Promise<ClientCreds> {
  const file = (f: string): string => path.join(pki.dir, `${name}-${f}`);
  writeFileSync(file('ext.cnf'), 'extendedKeyUsage = clientAuth\nsubjectAltName = URI:spiffe://example.org/ns/prod/sa/special\n');
  await openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', file('key.pem'),
    '-utf8', '-multivalue-rdn', '-subj', subj, '-out', file('csr.pem')]);
  await openssl(['x509', '-req', '-in', file('csr.pem'), '-CA', pki.intermediate.certPath, '-CAkey', pki.intermediate.keyPath,
    '-set_serial', serial, '-days', '2', '-extfile', file('ext.cnf'), '-out', file('cert.pem')]);
  const { readFileSync } = await import('node:fs');
  const cert = readFileSync(file('cert.pem'), 'utf8');
  return { ca: pki.root.cert, cert: cert + pki.intermediate.cert, key: readFileSync(file('key.pem'), 'utf8') };
}

let clients: Record<string, ClientCreds> = {};

before(async () => {
  if (NGINX === undefined) return;
  pki = await createTestPki();
  upstream = await startRecordingUpstream();
  const chain = path.join(pki.dir, 'nginx-server-chain.pem');
  writeFileSync(chain, pki.serverBundle.cert + pki.intermediate.cert);
  const sets = Object.entries(HEADERS).map(([h, v]) => `proxy_set_header ${h} ${v};`).join('\n      ');
  nginx = await startNginx(`location / {\n      proxy_pass ${upstream.url};\n      ${sets}\n    }`, {
    listen: 'ssl',
    server: [
      `ssl_certificate ${chain};`, `ssl_certificate_key ${pki.serverBundle.keyPath};`,
      `ssl_client_certificate ${pki.clientCa.path};`, 'ssl_verify_client on;', 'ssl_verify_depth 3;',
      'ssl_protocols TLSv1.2 TLSv1.3;',
    ].join('\n    '),
  });
  gate = await startTestCertgate({
    tls: { bundle: pki.serverBundle.pemPath, client_ca: pki.clientCa.path, watch: false },
    routes: [{ name: 'api', upstream: upstream.url }],
    headers: { preset: 'nginx-ssl', tls_info: true },
  });
  clients = {
    'plain (OU=payments, CN=svc-a)': { ca: pki.root.cert, cert: pki.clients.good.pem, key: pki.clients.good.key },
    'hostile DN (comma, plus, quote, <>, ;, non-ASCII)': { ca: pki.root.cert, cert: pki.clients.hostileDn.pem, key: pki.clients.hostileDn.key },
    'openssl-made: multi-valued RDN, leading #, backslash, emailAddress, serial 03A5B1': await opensslClient('special',
      '/C=FR/O=Société Générale, "Paris"/OU=a\\+b;c<d>+UID=42/CN=#José Müller=x \\\\/emailAddress=j@x.fr', '0x03A5B1'),
    'serial with the high bit set': await opensslClient('highbit', '/CN=high bit', '0x8000000000000001'),
  };
});
after(async () => {
  await Promise.all([gate?.close(), nginx?.close(), upstream?.close()]);
  pki?.cleanup();
});

async function send(port: number, creds: ClientCreds, tls: { maxVersion?: 'TLSv1.2'; ciphers: string }): Promise<RecordedRequest> {
  const url = `/compare/${++count}`;
  const x = await tlsExchange(port, creds, `GET ${url} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`, tls);
  assert.match(x.raw, /^HTTP\/1\.1 200 /, x.raw.slice(0, 300));
  const rec = upstream.requests.find((r) => r.url === url);
  assert.ok(rec !== undefined);
  return rec;
}

/** The values of the compared headers, by lower-case name (every line kept, so a duplicate shows). */
function compared(rec: RecordedRequest): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const name of Object.keys(HEADERS)) out[name.toLowerCase()] = rec.rawHeaders.filter(([k]) => k.toLowerCase() === name.toLowerCase()).map(([, v]) => v);
  return out;
}

const TLS_CHOICES = {
  'TLS 1.3': { ciphers: 'TLS_AES_128_GCM_SHA256' },
  'TLS 1.2': { maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-AES128-GCM-SHA256' },
} as const;

for (const [label, tlsChoice] of Object.entries(TLS_CHOICES)) {
  test(`nginx-ssl preset and tls_info are byte for byte what nginx sends, for each certificate (${label})`, T, async () => {
    for (const [what, creds] of Object.entries(clients)) {
      const fromNginx = compared(await send(Number(new URL(nginx!.url).port), creds, tlsChoice));
      const fromCertgate = compared(await send(gate!.port, creds, tlsChoice));
      for (const [name, values] of Object.entries(fromNginx)) assert.equal(values.length, 1, `nginx sent ${name} once (${what})`);
      assert.deepEqual(fromCertgate, fromNginx, what);
    }
  });
}

test('the compared values are the interesting ones (the test would notice a vacuous match)', T, async () => {
  const special = compared(await send(gate!.port, clients['openssl-made: multi-valued RDN, leading #, backslash, emailAddress, serial 03A5B1']!, TLS_CHOICES['TLS 1.3']));
  assert.deepEqual(special['x-ssl-client-s-dn'], ['emailAddress=j@x.fr,CN=\\#Jos\\C3\\A9 M\\C3\\BCller=x \\\\,UID=42+OU=a\\+b\\;c\\<d\\>,O=Soci\\C3\\A9t\\C3\\A9 G\\C3\\A9n\\C3\\A9rale\\, \\"Paris\\",C=FR']);
  assert.deepEqual(special['x-ssl-client-serial'], ['03A5B1']);
  assert.match(special['x-ssl-client-fingerprint']![0]!, /^[0-9a-f]{40}$/);
  assert.match(special['x-ssl-client-cert']![0]!, /^-----BEGIN%20CERTIFICATE-----%0A[A-Za-z0-9%]+%0A-----END%20CERTIFICATE-----%0A$/);
  assert.deepEqual(special['x-client-tls-version'], ['TLSv1.3']);
  assert.deepEqual(special['x-client-tls-cipher'], ['TLS_AES_128_GCM_SHA256']);
});
