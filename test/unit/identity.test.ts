/**
 * identityFromCertificate must agree with openssl on every field the headers carry (subject,
 * issuer, SHA-256 fingerprint, serial, dates) and return the SANs exactly as the certificate was
 * made with them, including URIs holding `,` and `;` that Node's `subjectAltName` string quotes.
 * identityOf is exercised over a real loopback TLS handshake with a client chain.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import { SocketAddress } from 'node:net';
import type { AddressInfo } from 'node:net';
import tls from 'node:tls';
import { after, before, describe, test } from 'node:test';
import { identityFromCertificate, identityOf, SENT_CHAIN_EXPOSED, sentChainExposed, sentChainOf } from '../../dist/identity/identity.js';
import type { ClientIdentity } from '../../dist/identity/types.js';
import { ava, CertLab, craftCertificate, name, rdn, sanExtension, subj } from '../helpers/openssl.js';

let lab: CertLab;
after(() => lab.remove());
before(() => {
  lab = CertLab.create();
});

const SAN = {
  uri: ['spiffe://example.org/ns/prod/sa/svc-a', 'https://x.example/a,b;c?d=e&f=g', 'https://例え.jp/ü'],
  dns: ['svc-a.internal', '*.example.org'],
  email: ['svc-a@example.org'],
  ip: ['192.0.2.10', '2001:db8::1', '::1', '::ffff:192.0.2.1', 'fe80::1:0:0:0'],
};

const SAN_SECTION = [
  '[alt]',
  ...SAN.uri.map((v, i) => `URI.${i} = ${v}`),
  ...SAN.dns.map((v, i) => `DNS.${i} = ${v}`),
  ...SAN.email.map((v, i) => `email.${i} = ${v}`),
  ...SAN.ip.map((v, i) => `IP.${i} = ${v}`),
].join('\n');

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** openssl's `notBefore=Nov  4 19:17:32 2026 GMT`, parsed without Date's own parser. */
function opensslDate(text: string | undefined): number {
  const m = /^([A-Z][a-z]{2}) +(\d{1,2}) (\d{2}):(\d{2}):(\d{2}) (\d{4}) GMT$/.exec(text ?? '');
  assert.ok(m, `unexpected openssl date ${text}`);
  const [, mon = '', d, h, mi, s, y] = m;
  return Date.UTC(Number(y), MONTHS.indexOf(mon), Number(d), Number(h), Number(mi), Number(s));
}

describe('identityFromCertificate on a certificate made by openssl', () => {
  let identity: ClientIdentity;
  let x509: X509Certificate;
  let printed: Readonly<Record<string, string | undefined>>;

  before(async () => {
    const ca = await lab.request({ subj: subj([[['O', 'Example, Inc.']], [['CN', 'Issuing CA #2']]]), ext: ['basicConstraints = critical,CA:TRUE'] });
    const file = await lab.request({
      subj: subj([[['O', 'Example']], [['OU', 'payments']], [['OU', 'eu;west']], [['CN', 'svc-a'], ['UID', '42']], [['CN', 'Jürgen "J" ']]]),
      ext: ['subjectAltName = @alt'],
      sections: SAN_SECTION,
      caCert: ca,
      days: 30,
    });
    x509 = new X509Certificate(fs.readFileSync(file));
    identity = identityFromCertificate(x509);
    printed = await lab.print(file, ['-subject', '-issuer', '-serial', '-fingerprint', '-sha256', '-startdate', '-enddate']);
  });

  test('subject and issuer as openssl -nameopt RFC2253 prints them', () => {
    assert.equal(identity.subject, printed.subject);
    assert.equal(identity.issuer, printed.issuer);
    assert.equal(identity.issuer, 'CN=Issuing CA #2,O=Example\\, Inc.');
  });

  test('fingerprint is the lowercase SHA-256 of the DER', () => {
    const openssl = printed['SHA256 Fingerprint'] ?? printed['sha256 Fingerprint'];
    assert.ok(openssl);
    assert.equal(identity.fingerprint, openssl.replaceAll(':', '').toLowerCase());
    assert.match(identity.fingerprint, /^[0-9a-f]{64}$/);
  });

  test('serial is uppercase hex, as openssl x509 -serial', () => {
    assert.equal(identity.serial, printed.serial);
    assert.match(identity.serial, /^[0-9A-F]+$/);
  });

  test('validity dates', () => {
    assert.equal(identity.notBefore.getTime(), opensslDate(printed.notBefore));
    assert.equal(identity.notAfter.getTime(), opensslDate(printed.notAfter));
    assert.equal(identity.notAfter.getTime() - identity.notBefore.getTime(), 30 * 86_400_000);
  });

  test('SANs exactly as the certificate was made, in order', () => {
    assert.deepEqual(identity.san, SAN);
  });

  test('IP SANs in the text libuv inet_ntop gives (RFC 5952, dotted IPv4-mapped tail)', () => {
    // Node's subjectAltName prints OpenSSL's uppercase long form; SocketAddress canonicalises it.
    const nodeIps = (x509.subjectAltName ?? '').split(', ').filter((e) => e.startsWith('IP Address:')).map((e) => e.slice(11));
    const canonical = nodeIps.map((ip) => new SocketAddress({ address: ip, family: ip.includes(':') ? 'ipv6' : 'ipv4' }).address);
    assert.deepEqual(identity.san.ip, canonical);
  });

  test('CN and OU values decoded for policy matching', () => {
    assert.deepEqual(identity.subjectCn, ['svc-a', 'Jürgen "J" ']);
    assert.deepEqual(identity.subjectOu, ['payments', 'eu;west']);
  });

  test('der, chain and immutability', () => {
    assert.ok(identity.der.equals(x509.raw));
    assert.deepEqual(identity.chain, []);
    assert.ok(Object.isFrozen(identity) && Object.isFrozen(identity.san) && Object.isFrozen(identity.san.uri));
    const chain = [Buffer.from('intermediate')];
    assert.deepEqual(identityFromCertificate(x509, chain).chain, chain);
  });
});

describe('identityFromCertificate on crafted certificates', () => {
  test('GeneralizedTime dates, serial, and a certificate without SAN or subject', () => {
    const identity = identityFromCertificate(new X509Certificate(craftCertificate(lab.key, {
      subject: name(), issuer: name(rdn(ava('2.5.4.3', 0x0c, 'i'))),
    })));
    assert.equal(identity.notBefore.toISOString(), '2026-01-01T00:00:00.000Z');
    assert.equal(identity.notAfter.toISOString(), '2051-01-01T00:00:00.000Z');
    assert.equal(identity.serial, '0A0B0C');
    assert.equal(identity.subject, '');
    assert.equal(identity.issuer, 'CN=i');
    assert.deepEqual(identity.san, { uri: [], dns: [], email: [], ip: [] });
    assert.deepEqual([identity.subjectCn, identity.subjectOu], [[], []]);
  });

  test('SAN text is UTF-8 or refused, so two different SANs never compare equal', () => {
    const withSan = (uri: Buffer | string): X509Certificate => new X509Certificate(craftCertificate(lab.key, {
      subject: name(rdn(ava('2.5.4.3', 0x0c, 'x'))), extensions: [sanExtension([[0x86, uri]])],
    }));
    assert.deepEqual(identityFromCertificate(withSan('a\u00e9b')).san.uri, ['a\u00e9b']);
    // The Latin-1 bytes of the same text: accepted by OpenSSL and Node, refused here.
    assert.throws(() => identityFromCertificate(withSan(Buffer.from([0x61, 0xe9, 0x62]))), /uniformResourceIdentifier: neither ASCII nor UTF-8/);
  });

  test('an iPAddress that is not 4 or 16 octets is kept as #hex, never as an address', () => {
    const identity = identityFromCertificate(new X509Certificate(craftCertificate(lab.key, {
      subject: name(), extensions: [sanExtension([[0x87, Buffer.from([10, 0, 0, 0, 255, 0, 0, 0])], [0x87, Buffer.from([10, 0, 0, 1])]])],
    })));
    assert.deepEqual(identity.san.ip, ['#0a000000ff000000', '10.0.0.1']);
  });
});

describe('identityOf over a real TLS connection', () => {
  let server: tls.Server;
  let port: number;
  let rootPem: string;
  let client: { key: string; cert: string; inter: string };
  let interDer: Buffer;
  let serverContext: tls.SecureContextOptions;
  type Probe = (socket: tls.TLSSocket) => unknown;
  let probe: Probe = () => undefined;
  const results: unknown[] = [];

  before(async () => {
    const rootKey = lab.newKey('root.key');
    const interKey = lab.newKey('inter.key');
    const leafKey = lab.newKey('leaf.key');
    const caExt = ['basicConstraints = critical,CA:TRUE', 'keyUsage = critical,keyCertSign,cRLSign'];
    const root = await lab.request({ subj: '/CN=Test Root', key: rootKey, ext: caExt });
    const inter = await lab.request({ subj: '/CN=Test Intermediate', key: interKey, caCert: root, caKey: rootKey, ext: caExt });
    const [leaf, serverCert] = await Promise.all([
      lab.request({ subj: '/O=Example/CN=svc-a', key: leafKey, caCert: inter, caKey: interKey, ext: ['extendedKeyUsage = clientAuth'] }),
      lab.request({ subj: '/CN=localhost', caCert: root, caKey: rootKey, ext: ['extendedKeyUsage = serverAuth', 'subjectAltName = DNS:localhost'] }),
    ]);
    rootPem = fs.readFileSync(root, 'utf8');
    const interPem = fs.readFileSync(inter, 'utf8');
    interDer = new X509Certificate(interPem).raw;
    client = { key: fs.readFileSync(leafKey, 'utf8'), cert: fs.readFileSync(leaf, 'utf8'), inter: interPem };
    serverContext = { key: fs.readFileSync(lab.keyFile), cert: fs.readFileSync(serverCert), ca: [rootPem] };
    server = tls.createServer({
      ...serverContext,
      requestCert: true, rejectUnauthorized: false,
    }, (socket) => {
      results.push({ authorized: socket.authorized, value: probe(socket) });
      socket.end();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });

  after(() => new Promise<void>((resolve) => server.close(() => resolve())));

  /** One handshake with verification on; resolves with what the server-side probe returned. */
  async function connect(certChain: string | undefined, run: Probe): Promise<{ authorized: boolean; value: unknown }> {
    probe = run;
    results.length = 0;
    const socket = tls.connect({
      host: '127.0.0.1', port, servername: 'localhost', ca: [rootPem],
      ...(certChain !== undefined && { key: client.key, cert: certChain }),
    });
    socket.resume();
    await new Promise<void>((resolve, reject) => socket.on('close', () => resolve()).on('error', reject));
    assert.equal(results.length, 1);
    return results[0] as { authorized: boolean; value: unknown };
  }

  /**
   * Node 24.21 reads the peer certificate itself during the handshake, which empties the chain
   * before any handler runs (nodejs/node#65579); 20 and 22 leave it to the first reader. Asked
   * of Node directly, so the chain assertions below hold on every runtime and fail on ours.
   */
  let expectedChain: Buffer[] = [];
  before(async () => {
    const { value } = await connect(client.cert + client.inter, (socket) => socket.getPeerCertificate(true).issuerCertificate !== undefined);
    expectedChain = value === true ? [interDer] : [];
  });

  test('once per socket; a later needChain upgrades it with the intermediates', async (t) => {
    if (expectedChain.length === 0) t.diagnostic(`Node ${process.version} hides the client chain from handlers`);
    const { authorized, value } = await connect(client.cert + client.inter, (socket) => {
      const first = identityOf(socket, false);
      return { first, again: identityOf(socket, false), chained: identityOf(socket, true), chainedAgain: identityOf(socket, true), weaker: identityOf(socket, false) };
    });
    assert.equal(authorized, true);
    const r = value as Record<'first' | 'again' | 'chained' | 'chainedAgain' | 'weaker', ClientIdentity | undefined>;
    assert.ok(r.first && r.chained);
    assert.equal(r.first.subject, 'CN=svc-a,O=Example');
    assert.equal(r.first.issuer, 'CN=Test Intermediate');
    assert.deepEqual(r.first.chain, []);
    assert.equal(r.again, r.first);
    assert.notEqual(r.chained, r.first);
    assert.deepEqual(r.chained.chain, expectedChain);
    assert.equal(r.chained.fingerprint, r.first.fingerprint);
    assert.equal(r.chainedAgain, r.chained);
    assert.equal(r.weaker, r.chained);
  });

  test('needChain on first use; a root the client sends along is left out', async () => {
    for (const sent of [client.cert + client.inter, client.cert + client.inter + rootPem]) {
      const { authorized, value } = await connect(sent, (socket) => identityOf(socket, true));
      assert.equal(authorized, true);
      assert.deepEqual((value as ClientIdentity).chain, expectedChain);
    }
  });

  test('a client that sends only its leaf has no chain', async () => {
    const { value } = await connect(client.cert, (socket) => identityOf(socket, true));
    assert.deepEqual((value as ClientIdentity).chain, []);
  });

  /** Runs `body` with client_ca = root + intermediate (a leaf-only client then verifies). */
  async function withIntermediateTrusted(body: () => Promise<void>): Promise<void> {
    server.setSecureContext({ ...serverContext, ca: [rootPem, client.inter] });
    try {
      await body();
    } finally {
      server.setSecureContext(serverContext);
    }
  }

  /** getPeerX509Certificate leaks native memory on every call (Node 20-24): identityOf must never call it. */
  function forbidPeerX509(socket: tls.TLSSocket): void {
    Object.defineProperty(socket, 'getPeerX509Certificate', { value: () => { throw new Error('identityOf called getPeerX509Certificate'); } });
  }

  test('never through getPeerX509Certificate; the chain is the one OpenSSL validated, completed from client_ca', async () => {
    await withIntermediateTrusted(async () => {
      for (const sent of [client.cert, client.cert + client.inter]) {
        const { authorized, value } = await connect(sent, (socket) => {
          forbidPeerX509(socket);
          return [identityOf(socket, false), identityOf(socket, true)];
        });
        assert.equal(authorized, true);
        const [plain, chained] = value as [ClientIdentity, ClientIdentity];
        assert.equal(plain.subject, 'CN=svc-a,O=Example');
        assert.deepEqual(plain.chain, []);
        assert.deepEqual(chained.chain, [interDer], 'the intermediate, whether the client sent it or client_ca held it');
      }
    });
  });

  test('SENT_CHAIN_EXPOSED says what this Node does', () => {
    assert.equal(SENT_CHAIN_EXPOSED, expectedChain.length > 0, `Node ${process.version}`);
  });

  test('sentChainExposed: only the 24.21 line hides the sent chain (measured on 20.20 to 26.12)', () => {
    for (const v of ['20.20.2', '22.23.5', '24.0.0', '24.20.0', '24.22.1', '26.0.0', '26.10.0', '26.12.1']) assert.equal(sentChainExposed(v), true, v);
    for (const v of ['24.21.0', '24.21.4']) assert.equal(sentChainExposed(v), false, v);
  });

  test('sentChainOf: exactly what the client sent, also after identityOf read the validated chain (undefined where Node hides it)', async () => {
    await withIntermediateTrusted(async () => {
      const none = SENT_CHAIN_EXPOSED ? [] : undefined;
      const leafOnly = await connect(client.cert, (socket) => [identityOf(socket, true)?.chain, sentChainOf(socket), sentChainOf(socket)]);
      assert.deepEqual(leafOnly.value, [[interDer], none, none]);
      const sent = SENT_CHAIN_EXPOSED ? [interDer] : undefined;
      const withChain = await connect(client.cert + client.inter, (socket) => [identityOf(socket, true)?.chain, sentChainOf(socket), sentChainOf(socket)]);
      assert.deepEqual(withChain.value, [[interDer], sent, sent]);
    });
  });

  test('undefined when the client sent no certificate, also when asked again', async () => {
    const { authorized, value } = await connect(undefined, (socket) => [identityOf(socket, false), identityOf(socket, true)]);
    assert.equal(authorized, false);
    assert.deepEqual(value, [undefined, undefined]);
  });
});
