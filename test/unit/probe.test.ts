/**
 * The probe's pure parts, with this run's certificates: the s_client parser, the server-chain and
 * client-CA diagnoses, what a connection outcome means, the equivalent curl/requests calls, the
 * refusal hints, and whoami_path matching. The sockets are covered by test/e2e/probe.test.ts.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { X509Certificate } from 'node:crypto';
import { createTestPki, type TestPki } from '../helpers/pki.js';
import { parseSClient } from '../../dist/probe/observe.js';
import { clientCertificate, clientVersusCaNames, diagnoseServerChain, effectiveClientChain, outcome } from '../../dist/probe/diagnose.js';
import { equivalentCalls } from '../../dist/probe/report.js';
import { opensslText } from '../../dist/probe/connect.js';
import { refusalHint } from '../../dist/answers/refusal-hints.js';
import { createWhoamiEndpoint } from '../../dist/proxy/whoami-endpoint.js';
import { authorityKeyId } from '../../dist/x509/certificate.js';
import { REFUSAL_REASONS } from '../../dist/tls/handshake.js';
import type { Anchor } from '../../dist/probe/client-files.js';

let pki: TestPki;
let root: X509Certificate;
let inter: X509Certificate;
let otherRoot: X509Certificate;
let leaf: X509Certificate;
const NOW = new Date();

before(async () => {
  pki = await createTestPki();
  root = pki.root.x509;
  inter = pki.intermediate.x509;
  otherRoot = pki.otherRoot.x509;
  leaf = pki.serverBundle.x509;
});
after(() => pki?.cleanup());

const anchors = (...certs: X509Certificate[]): Anchor[] => certs.map((cert) => ({ cert, source: 'ca.pem' }));
const ROOT = 'CN=certgate test root CA,O=certgate test';
const INTER = 'CN=certgate test intermediate CA,O=certgate test';

/** The shape of `openssl s_client -showcerts -msg -nameopt RFC2253` output (OpenSSL 3.0), hex dumps cut. */
function sClientText(opts: { chain: X509Certificate[]; request: boolean; names: string[]; tls13?: boolean; alert?: string }): string {
  const v = opts.tls13 === false ? 'TLS 1.2' : 'TLS 1.3';
  return [
    'CONNECTED(00000003)',
    `>>> ${v}, Handshake [length 0136], ClientHello`,
    `<<< ${v}, Handshake [length 007a], ServerHello`,
    ...(opts.request ? [`<<< ${v}, Handshake [length 00b3], CertificateRequest`, '    0d 00 00 af 00 00 ac'] : []),
    `<<< ${v}, Handshake [length 03ed], Certificate`,
    opts.tls13 === false ? '<<< TLS 1.2, Handshake [length 0004], ServerHelloDone' : '<<< TLS 1.3, Handshake [length 0034], Finished',
    '---', 'Certificate chain',
    ...opts.chain.flatMap((c, i) => [` ${i} s:...`, '   i:...', c.toString().trim()]),
    '---', 'Server certificate', 'subject=CN=localhost', '---',
    ...(opts.names.length > 0 ? ['Acceptable client certificate CA names', ...opts.names] : ['No client certificate CA names sent']),
    'Requested Signature Algorithms: ECDSA+SHA256', 'Peer signing digest: SHA256', '---',
    `New, ${opts.tls13 === false ? 'TLSv1.2' : 'TLSv1.3'}, Cipher is TLS_AES_256_GCM_SHA384`,
    ...(opts.alert !== undefined ? [`<<< ${v}, Alert [length 0002], ${opts.alert}`] : []),
    '---', '',
  ].join('\n');
}

describe('parseSClient', () => {
  it('reads the chain as sent, the CertificateRequest and its CA names, the protocol and alerts', () => {
    const o = parseSClient(sClientText({ chain: [leaf, inter], request: true, names: [ROOT, INTER], alert: 'fatal certificate_required' }));
    assert.equal(o.connected, true);
    assert.deepEqual(o.chain.map((c) => c.fingerprint256), [leaf.fingerprint256, inter.fingerprint256]);
    assert.equal(o.certificateRequested, true);
    assert.deepEqual(o.caNames, [ROOT, INTER]);
    assert.equal(o.protocol, 'TLSv1.3');
    assert.deepEqual(o.alerts, ['fatal certificate_required']);
  });

  it('a complete server flight without CertificateRequest means "not asked" (TLS 1.2 too)', () => {
    const o = parseSClient(sClientText({ chain: [leaf], request: false, names: [], tls13: false }));
    assert.equal(o.certificateRequested, false);
    assert.deepEqual(o.caNames, []);
    assert.equal(o.protocol, 'TLSv1.2');
  });

  it('a CertificateRequest naming no CA', () => {
    const o = parseSClient(sClientText({ chain: [leaf], request: true, names: [] }));
    assert.equal(o.certificateRequested, true);
    assert.deepEqual(o.caNames, []);
  });

  it('no handshake at all: nothing is claimed', () => {
    const o = parseSClient('40F7A1E2B07F0000:error:8000006F:system library:BIO_connect:Connection refused\nconnect:errno=111\n');
    assert.equal(o.connected, false);
    assert.equal(o.certificateRequested, undefined);
    assert.deepEqual(o.chain, []);
  });
});

describe('diagnoseServerChain', () => {
  it('a chain that reaches a root in the CA file: trusted, the path named', () => {
    const d = diagnoseServerChain({ chain: [leaf, inter], anchors: anchors(root), caLabel: 'ca.pem', caFile: 'ca.pem', host: '127.0.0.1', now: NOW });
    assert.equal(d.trusted, true);
    assert.deepEqual(d.path, ['CN=localhost', INTER, `${ROOT} (in ca.pem)`]);
    assert.deepEqual(d.problems, []);
  });

  it('the server sent its leaf alone (seed 004): CG_PROBE_CHAIN_INCOMPLETE naming the issuer and its key id', () => {
    const d = diagnoseServerChain({ chain: [leaf], anchors: anchors(root), caLabel: 'ca.pem', caFile: 'ca.pem', host: 'localhost', now: NOW });
    assert.equal(d.trusted, false);
    assert.equal(d.problems.length, 1);
    const p = d.problems[0]!;
    assert.equal(p.code, 'CG_PROBE_CHAIN_INCOMPLETE');
    assert.equal(p.severity, 'error');
    assert.ok(p.message.startsWith(`the server certificate CN=localhost was issued by ${INTER} (key id ${authorityKeyId(leaf)}), which the server did not send and ca.pem (which holds ${ROOT}) does not hold`), p.message);
    assert.match(p.message, /clients say: unable to get local issuer certificate; Node: unable to verify the first certificate/);
    assert.equal(p.file, undefined, 'a server-side fault: not pinned on the CA file');
  });

  it('a chain up to an intermediate whose root the CA file lacks: CG_PROBE_SERVER_UNTRUSTED naming the root', () => {
    const d = diagnoseServerChain({ chain: [leaf, inter], anchors: anchors(otherRoot), caLabel: 'other.pem', caFile: 'other.pem', host: 'localhost', now: NOW });
    assert.equal(d.problems[0]?.code, 'CG_PROBE_SERVER_UNTRUSTED');
    assert.match(d.problems[0]!.message, /needs CN=certgate test root CA,O=certgate test \(key id [0-9A-F:]+\), which is not in other\.pem \(which holds CN=unrelated root CA,O=elsewhere\)/);
  });

  it('a CA file holding a different certificate of the issuer\'s name (re-created CA)', async () => {
    // A second test PKI: its root has the same name as ours and another key.
    const second = await createTestPki();
    try {
      const d = diagnoseServerChain({ chain: [leaf, inter], anchors: anchors(second.root.x509), caLabel: 'old.pem', caFile: 'old.pem', host: 'localhost', now: NOW });
      assert.equal(d.problems[0]?.code, 'CG_PROBE_SERVER_UNTRUSTED');
      assert.match(d.problems[0]!.message, /old\.pem holds a certificate named CN=certgate test root CA,O=certgate test, but it did not sign CN=certgate test intermediate CA/);
    } finally {
      second.cleanup();
    }
  });

  it('a self-signed root sent by the server but not trusted, with the client\'s own CA in the file (seeds 001/003)', () => {
    const d = diagnoseServerChain({
      chain: [leaf, inter, root], anchors: anchors(otherRoot), caLabel: 'ca.pem', caFile: 'ca.pem', host: 'localhost', now: NOW,
      clientSent: [pki.clients.otherCa.x509],
    });
    const p = d.problems[0]!;
    assert.equal(p.code, 'CG_PROBE_SERVER_UNTRUSTED');
    assert.match(p.message, /^the server's chain ends at the root CN=certgate test root CA,O=certgate test, which is not in ca\.pem/);
    assert.match(p.message, /ca\.pem holds CN=unrelated root CA,O=elsewhere, the CA of your client certificate/);
  });

  it('the URL\'s host not in the SANs: CG_PROBE_HOSTNAME listing the names it has', () => {
    const d = diagnoseServerChain({ chain: [leaf, inter], anchors: anchors(root), caLabel: 'ca.pem', host: 'api.example.com', now: NOW });
    assert.equal(d.trusted, true);
    assert.equal(d.problems[0]?.code, 'CG_PROBE_HOSTNAME');
    assert.match(d.problems[0]!.message, /does not name api\.example\.com: it names DNS:localhost, IP Address:127\.0\.0\.1/);
  });

  it('an expired server certificate: CG_CERT_EXPIRED for the server', () => {
    const later = new Date(Date.now() + 60 * 86_400_000);
    const d = diagnoseServerChain({ chain: [leaf, inter], anchors: anchors(root), caLabel: 'ca.pem', host: 'localhost', now: later });
    assert.ok(d.problems.some((p) => p.code === 'CG_CERT_EXPIRED' && p.message.startsWith('the server certificate CN=localhost expired on')), JSON.stringify(d.problems));
  });
});

describe('the client certificate against the CA names', () => {
  it('accepted when a certificate it sends is issued by a listed CA', () => {
    const d = clientVersusCaNames([pki.clients.good.x509, inter], [ROOT], [], 'good.pem');
    assert.equal(d.acceptedBy, ROOT);
    assert.deepEqual(d.problems, []);
  });

  it('a lone leaf is completed from the CA file, as OpenSSL clients do', () => {
    const chain = effectiveClientChain([pki.clients.good.x509], [root, inter]);
    assert.deepEqual(chain.map((c) => c.fingerprint256), [pki.clients.good.x509, inter, root].map((c) => c.fingerprint256));
    assert.equal(effectiveClientChain([pki.clients.good.x509, inter], [root]).length, 2, 'a file with intermediates is sent as it is');
    const d = clientVersusCaNames([pki.clients.good.x509], [ROOT], [root, inter], 'good.crt');
    assert.equal(d.acceptedBy, ROOT);
    assert.equal(d.completedFrom.length, 2);
  });

  it('not accepted: a warning listing the accepted names (the caller raises it when the server refuses)', () => {
    const d = clientVersusCaNames([pki.clients.otherCa.x509], [ROOT, INTER], [], 'other.pem');
    assert.equal(d.acceptedBy, undefined);
    assert.equal(d.problems[0]?.code, 'CG_PROBE_CLIENT_CA');
    assert.equal(d.problems[0]?.severity, 'warning');
    assert.match(d.problems[0]!.message, /the server accepts client certificates issued by CN=certgate test root CA,O=certgate test; CN=certgate test intermediate CA,O=certgate test/);
  });

  it('the client certificate itself: expired, and made for servers only', () => {
    assert.equal(clientCertificate(pki.clients.expired.x509, NOW, 'e.pem')[0]?.code, 'CG_CERT_EXPIRED');
    assert.equal(clientCertificate(pki.clients.serverAuthOnly.x509, NOW, 's.pem')[0]?.code, 'CG_CERT_EKU');
    assert.deepEqual(clientCertificate(pki.clients.good.x509, NOW, 'g.pem'), []);
  });
});

describe('outcome: what the verified connection\'s result means', () => {
  const ctx = { presented: true, serverExplained: false, host: 'h', port: 1 };
  const http = (status: number, body: unknown) => ({ handshake: true, peerChain: [], http: { status, headers: {}, body: JSON.stringify(body) } });

  it('certgate\'s 400 refusal: its reason, and its hint as the fix', () => {
    const [p] = outcome(http(400, { error: 'client_certificate_invalid', reason: 'revoked', message: 'client certificate refused: CERT_REVOKED', hint: 'ask for a new one' }), ctx);
    assert.equal(p?.code, 'CG_PROBE_REFUSED');
    assert.match(p!.message, /400 client_certificate_invalid, reason revoked/);
    assert.equal(p!.hint, 'ask for a new one');
  });

  it('certgate\'s 403 names the route; a 200 is no finding', () => {
    assert.match(outcome(http(403, { error: 'forbidden', route: 'api' }), ctx)[0]!.message, /on route api: 403 forbidden/);
    assert.deepEqual(outcome(http(200, { ok: true }), ctx), []);
  });

  it('server alerts after the handshake, in plain words; certificate_required without a --cert is CG_PROBE_NO_CLIENT_CERT', () => {
    const alert = (code: string, presented: boolean) => outcome({ handshake: true, peerChain: [], error: { code, message: 'x' } }, { ...ctx, presented })[0];
    assert.equal(alert('ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED', false)?.code, 'CG_PROBE_NO_CLIENT_CERT');
    assert.match(alert('ERR_SSL_TLSV1_ALERT_UNKNOWN_CA', true)!.message, /does not trust the CA of your client certificate/);
    assert.match(alert('ECONNRESET', true)!.message, /closed the connection right after the handshake/);
  });

  it('a server verification error already explained by the chain diagnosis is not repeated', () => {
    const a = { handshake: false, peerChain: [], error: { code: 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', message: 'unable to get local issuer certificate' } };
    assert.deepEqual(outcome(a, { ...ctx, serverExplained: true }), []);
    assert.equal(outcome(a, ctx)[0]?.code, 'CG_PROBE_SERVER_UNTRUSTED');
    assert.equal(outcome({ handshake: false, peerChain: [], error: { code: 'ECONNREFUSED', message: 'connect ECONNREFUSED' } }, ctx)[0]?.code, 'CG_PROBE_CONNECT');
  });

  it('OpenSSL error text is cut to the words clients print', () => {
    assert.equal(opensslText('806C:error:0A00045C:SSL routines:ssl3_read_bytes:tlsv13 alert certificate required:../ssl/record/rec_layer_s3.c:1601:SSL alert number 116\n'),
      'tlsv13 alert certificate required (SSL alert number 116)');
    assert.equal(opensslText('unable to get local issuer certificate'), 'unable to get local issuer certificate');
  });
});

describe('equivalent calls', () => {
  it('curl and requests with cert, key and CA; paths with spaces quoted for the shell', () => {
    const e = equivalentCalls({ url: 'https://h:8443/x', cert: 'my cert.pem', key: 'k.pem', ca: 'ca.pem', encryptedKey: false });
    assert.equal(e.curl, `curl --cert 'my cert.pem' --key k.pem --cacert ca.pem https://h:8443/x`);
    assert.deepEqual(e.requests, ['requests.get("https://h:8443/x", cert=("my cert.pem", "k.pem"), verify="ca.pem")']);
    assert.match(e.sslContext[0]!, /^ctx = ssl\.create_default_context\(cafile="ca\.pem"\)/);
  });

  it('an encrypted key: requests cannot take it, so the calls show how to decrypt a copy', () => {
    const e = equivalentCalls({ url: 'https://h/', cert: 'c.pem', key: 'k.pem', passFile: 'p.txt', encryptedKey: true });
    assert.match(e.requests.join('\n'), /openssl pkey -in k\.pem -passin file:p\.txt -out client\.plain\.key/);
    assert.match(e.requests.join('\n'), /verify=True\)$/);
    assert.match(e.curl, /--pass "\$\(cat p\.txt\)"/);
  });
});

describe('refusal hints and whoami_path matching', () => {
  it('every refusal reason has its own plain hint', () => {
    const hints = REFUSAL_REASONS.map((r) => refusalHint(r));
    for (const h of hints) assert.ok(h.length > 20, h);
    assert.equal(new Set(hints).size, hints.length);
  });

  it('matches the exact path, with any query, and nothing else', () => {
    const w = createWhoamiEndpoint({ path: '/.certgate/whoami', match: () => undefined, policies: new Map(), verbose: false, sent: new Set(), upstreamHeaders: () => ({}) });
    assert.equal(w.matches('/.certgate/whoami'), true);
    assert.equal(w.matches('/.certgate/whoami?path=/api'), true);
    assert.equal(w.matches('/.certgate/whoami/x'), false);
    assert.equal(w.matches('/.certgate/whoami2'), false);
    assert.equal(w.matches(undefined), false);
  });
});
