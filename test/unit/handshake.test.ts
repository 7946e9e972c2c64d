import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import tls from 'node:tls';
import {
  REFUSAL_REASONS, describeRefusal, refusalReason, tlsClientErrorReason, type RefusalReason,
} from '../../dist/tls/handshake.js';
import { certToPem, createCa, createLeaf, keyToPem, type Issued } from '../../dist/pki/x509.js';

const DAY = 86_400_000;
const err = (code: string, message = code): Error & { code: string } => Object.assign(new Error(message), { code });

test('OpenSSL verify codes map to the fixed reasons', () => {
  const table: Array<[string, RefusalReason]> = [
    ['CERT_HAS_EXPIRED', 'expired'],
    ['CERT_NOT_YET_VALID', 'not_yet_valid'],
    ['UNABLE_TO_GET_ISSUER_CERT', 'unknown_ca'],
    ['UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'unknown_ca'],
    ['UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'unknown_ca'],
    ['SELF_SIGNED_CERT_IN_CHAIN', 'unknown_ca'],
    ['DEPTH_ZERO_SELF_SIGNED_CERT', 'unknown_ca'],
    ['CERT_UNTRUSTED', 'unknown_ca'],
    ['CERT_REVOKED', 'revoked'],
    ['CRL_HAS_EXPIRED', 'crl_expired'],
    ['CRL_NOT_YET_VALID', 'crl_expired'],
    ['CERT_SIGNATURE_FAILURE', 'bad_certificate'],
    ['UNABLE_TO_DECRYPT_CERT_SIGNATURE', 'bad_certificate'],
    ['INVALID_PURPOSE', 'bad_certificate'],
    ['INVALID_CA', 'bad_certificate'],
    ['PATH_LENGTH_EXCEEDED', 'bad_certificate'],
    ['CERT_REJECTED', 'bad_certificate'],
    ['UNABLE_TO_GET_CRL', 'other'],
    ['CRL_SIGNATURE_FAILURE', 'other'],
    ['SOMETHING_NEW', 'other'],
  ];
  for (const [code, reason] of table) {
    assert.equal(refusalReason(code), reason, code);
    assert.equal(refusalReason(err(code)), reason, `Error with code ${code}`);
  }
  assert.equal(refusalReason(new Error('CERT_REVOKED')), 'revoked'); // message-only Error
  assert.equal(refusalReason(null), 'other');
  assert.equal(refusalReason(undefined), 'other');
  assert.equal(refusalReason(''), 'other');
});

test('tlsClientError: authorizationError wins over the error code', () => {
  assert.equal(tlsClientErrorReason(err('ECONNRESET', 'socket hang up'), { authorizationError: 'CERT_HAS_EXPIRED' }), 'expired');
  assert.equal(tlsClientErrorReason(err('ECONNRESET'), { authorizationError: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' }), 'unknown_ca');
  assert.equal(tlsClientErrorReason(err('ECONNRESET'), { authorizationError: err('CERT_REVOKED') }), 'revoked');
  assert.equal(tlsClientErrorReason(err('ECONNRESET'), { authorizationError: null }), 'aborted');
  assert.equal(tlsClientErrorReason(err('ECONNRESET'), {}), 'aborted');
  assert.equal(tlsClientErrorReason(err('EPIPE'), undefined), 'aborted');
  assert.equal(tlsClientErrorReason(err('ERR_SSL_UNEXPECTED_EOF_WHILE_READING'), {}), 'aborted');
  assert.equal(tlsClientErrorReason(err('ERR_SSL_SOMETHING', 'error:0A000126:SSL routines::unexpected eof while reading'), {}), 'aborted');
  assert.equal(tlsClientErrorReason(err('ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE'), {}), 'no_certificate');
  assert.equal(tlsClientErrorReason(err('ERR_TLS_HANDSHAKE_TIMEOUT'), {}), 'timeout');
  for (const code of ['ERR_SSL_WRONG_VERSION_NUMBER', 'ERR_SSL_HTTP_REQUEST', 'ERR_SSL_UNSUPPORTED_PROTOCOL', 'ERR_SSL_NO_SHARED_CIPHER']) {
    assert.equal(tlsClientErrorReason(err(code), {}), 'protocol', code);
  }
  assert.equal(tlsClientErrorReason(err('EWHATEVER'), {}), 'other');
  assert.equal(tlsClientErrorReason(new Error('no code'), {}), 'other');
});

test('every reason has its own one-sentence description', () => {
  const texts = REFUSAL_REASONS.map((r) => describeRefusal(r));
  assert.equal(new Set(texts).size, REFUSAL_REASONS.length);
  for (const t of texts) assert.match(t, /^[A-Z][^\n]*\.$/);
});

// ---- against a real tls.Server (rejectUnauthorized: true), as 'tlsClientError' sees it ----------

let root: Issued;
let server: tls.Server;
let port: number;
let pending: ((r: RefusalReason) => void) | undefined;
const clients: Record<string, { cert: string; key: string }> = {};

before(async () => {
  root = await createCa({ subject: [['CN', 'Handshake Root']] });
  const other = await createCa({ subject: [['CN', 'Handshake Other']] });
  const leaf = await createLeaf({ issuer: root, subject: [['CN', 'localhost']], usage: 'server', san: { dns: ['localhost'] } });
  const mk = async (issuer: Issued, v: { notBefore?: Date; notAfter?: Date } = {}) => {
    const c = await createLeaf({ issuer, subject: [['CN', 'client']], usage: 'client', ...v });
    return { cert: certToPem(c.cert), key: keyToPem(c.privateKey) };
  };
  clients.good = await mk(root);
  clients.expired = await mk(root, { notBefore: new Date(Date.now() - 10 * DAY), notAfter: new Date(Date.now() - DAY) });
  clients.future = await mk(root, { notBefore: new Date(Date.now() + DAY), notAfter: new Date(Date.now() + 10 * DAY) });
  clients.other = await mk(other);
  server = tls.createServer({
    key: keyToPem(leaf.privateKey), cert: certToPem(leaf.cert), ca: certToPem(root.cert),
    requestCert: true, rejectUnauthorized: true,
  }, (s) => s.end());
  server.on('tlsClientError', (e: Error & { code?: string }, s: tls.TLSSocket) => {
    const resolve = pending;
    pending = undefined;
    resolve?.(tlsClientErrorReason(e, s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as net.AddressInfo).port;
});

after(() => new Promise<void>((resolve) => server.close(() => resolve())));

/** Runs `connect` and resolves with the reason the server's 'tlsClientError' computed. */
function refusalOf(connect: () => net.Socket): Promise<RefusalReason> {
  const seen = new Promise<RefusalReason>((resolve) => { pending = resolve; });
  const sock = connect();
  sock.on('error', () => { /* the client side fails in several ways; the server's view is asserted */ });
  return seen.finally(() => sock.destroy());
}

const tlsClient = (creds?: { cert: string; key: string }, extra: tls.ConnectionOptions = {}) => () =>
  tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca: certToPem(root.cert), ...creds, ...extra });

for (const [name, reason, maxVersion] of [
  ['expired', 'expired', 'TLSv1.3'], ['future', 'not_yet_valid', 'TLSv1.3'], ['other', 'unknown_ca', 'TLSv1.3'],
  ['expired', 'expired', 'TLSv1.2'], ['other', 'unknown_ca', 'TLSv1.2'],
] as const) {
  test(`real handshake (${maxVersion}): ${name} client certificate → ${reason}`, async () => {
    assert.equal(await refusalOf(tlsClient(clients[name], { maxVersion })), reason);
  });
}

test('real handshake: no client certificate → no_certificate; plain HTTP → protocol', async () => {
  assert.equal(await refusalOf(tlsClient()), 'no_certificate');
  assert.equal(await refusalOf(() => {
    const s = net.connect(port, '127.0.0.1', () => s.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
    return s;
  }), 'protocol');
});

test('real handshake: a good client is not refused (the harness can tell)', async () => {
  const ok = await new Promise<boolean>((resolve, reject) => {
    const s = tlsClient(clients.good)();
    s.on('secureConnect', () => { resolve(s.authorized); s.end(); });
    s.on('error', reject);
  });
  assert.equal(ok, true);
  assert.equal(pending, undefined);
});
