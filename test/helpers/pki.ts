/**
 * A throw-away PKI for tests, generated in memory (ECDSA P-256, ~0.1 s) and written to a fresh temp dir.
 * Call it once per test file, in `before()`, and `cleanup()` in `after()`:
 *
 *   const pki = await createTestPki();
 *   after(() => pki.cleanup());
 *   tls server: { key: pki.serverBundle.pem, cert: pki.serverBundle.pem, ca: pki.clientCa.pem }  (or the *Path files)
 *   client:     { key: pki.clients.good.key, cert: pki.clients.good.cert, ca: pki.root.cert }
 *
 * Trust layout (RFC 4514 subjects as `openssl x509 -subject -nameopt RFC2253` prints them):
 *   root          CN=certgate test root CA,O=certgate test          (self-signed, valid -30 d … +90 d)
 *   intermediate  CN=certgate test intermediate CA,O=certgate test  (signed by root, pathLen 0)
 *   otherRoot     CN=unrelated root CA,O=elsewhere                  (trusted by nobody)
 *   serverBundle  CN=localhost, SAN DNS:localhost IP:127.0.0.1 IP:::1, EKU serverAuth, issued by intermediate;
 *                 serverBundle.pem/pemPath = key + leaf + intermediate (certgate's tls.bundle)
 *   clientCa      root + intermediate (what tls.client_ca should hold); rootOnlyCa: the root alone
 *
 * Clients (pki.clients.*; EKU clientAuth and issued by the intermediate unless said otherwise; leaves valid 30 days):
 *   good            CN=svc-a,OU=payments; SAN URI:spiffe://example.org/ns/prod/sa/svc-a, DNS:svc-a.internal
 *   direct          CN=svc-direct, issued by the root itself
 *   expired         CN=svc-expired, notAfter yesterday           → CERT_HAS_EXPIRED
 *   notYetValid     CN=svc-future, notBefore tomorrow            → CERT_NOT_YET_VALID
 *   otherCa         CN=svc-other, issued by otherRoot           → UNABLE_TO_VERIFY_LEAF_SIGNATURE
 *   revoked         CN=svc-revoked, listed in the intermediate's CRL → CERT_REVOKED (when CRLs are loaded)
 *   serverAuthOnly  CN=svc-server-only, EKU serverAuth only     → INVALID_PURPOSE
 *   hostileDn       CN=`a,O=admin+x "q" <b>;`, OU=`Jürgen 日本` (UTF8String), i.e. in RFC 4514:
 *                   CN=a\,O=admin\+x \"q\" \<b\>\;,OU=J\C3\BCrgen \E6\97\A5\E6\9C\AC
 * A client's `pem` is key + cert, plus the intermediate when the intermediate issued it (what a client sends).
 *
 * CRLs (Node loads only the FIRST CRL of a concatenated PEM buffer; split before passing an array):
 *   crlPath         intermediate CRL (lists `revoked`) then root CRL; both valid for 30 days
 *   expiredCrlPath  intermediate CRL past its nextUpdate (also lists `revoked`) then a valid root CRL
 *
 * `issueClient(opts)` mints one more certificate (client by default; `usage: 'server'` for a server leaf).
 * Keys are unencrypted PKCS#8, files 0600. Nothing is cached across processes.
 */
import { X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  certToPem, createCa, createCrl, createLeaf, crlToPem, keyToPem,
  type Issued, type KeyType, type NameSpec, type SanSpec, type Usage,
} from '../../dist/pki/x509.js';

export interface TestCert {
  /** The leaf certificate, PEM. */
  readonly cert: string;
  /** Its private key, unencrypted PKCS#8 PEM. */
  readonly key: string;
  /** key + cert (+ intermediate when issued by the intermediate), PEM. */
  readonly pem: string;
  readonly certPath: string;
  readonly keyPath: string;
  readonly pemPath: string;
  readonly x509: X509Certificate;
}

export interface TestCa {
  readonly cert: string;
  readonly key: string;
  readonly certPath: string;
  readonly keyPath: string;
  readonly x509: X509Certificate;
}

export interface TestIssueOptions {
  /** File name prefix inside pki.dir; must be unique within this PKI. */
  readonly name: string;
  /** Default [['CN', name]]; least-specific first, e.g. [['OU', 'payments'], ['CN', 'svc-a']]. */
  readonly subject?: NameSpec;
  /** Default 'intermediate'. */
  readonly issuer?: 'intermediate' | 'root' | 'other';
  /** Default 'client' (EKU clientAuth); 'server' gives EKU serverAuth. */
  readonly usage?: Usage;
  readonly san?: SanSpec;
  /** Default: 5 minutes ago … +30 days. */
  readonly notBefore?: Date;
  readonly notAfter?: Date;
  readonly keyType?: KeyType;
}

export interface TestPki {
  /** The temp dir holding every file below. */
  readonly dir: string;
  readonly root: TestCa;
  readonly intermediate: TestCa;
  readonly otherRoot: TestCa;
  readonly serverBundle: TestCert;
  readonly clientCa: { readonly path: string; readonly pem: string };
  readonly rootOnlyCa: { readonly path: string; readonly pem: string };
  readonly clients: {
    readonly good: TestCert; readonly direct: TestCert; readonly expired: TestCert; readonly notYetValid: TestCert;
    readonly otherCa: TestCert; readonly revoked: TestCert; readonly serverAuthOnly: TestCert; readonly hostileDn: TestCert;
  };
  readonly crlPath: string;
  readonly crlPem: string;
  readonly crlRootPem: string;
  readonly crlRootPath: string;
  readonly crlIntermediatePem: string;
  readonly crlIntermediatePath: string;
  readonly expiredCrlPath: string;
  readonly expiredCrlPem: string;
  issueClient(opts: TestIssueOptions): Promise<TestCert>;
  /** Removes the temp dir. Safe to call twice. */
  cleanup(): void;
}

const DAY = 86_400_000;
const ORG = 'certgate test';

export async function createTestPki(): Promise<TestPki> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'certgate-pki-'));
  const now = Date.now();
  const caWindow = { notBefore: new Date(now - 30 * DAY), notAfter: new Date(now + 90 * DAY) };
  const write = (name: string, data: string, mode = 0o644): string => {
    const file = path.join(dir, name);
    fs.writeFileSync(file, data, { mode });
    return file;
  };
  const writeCa = (name: string, ca: Issued): TestCa => {
    const cert = certToPem(ca.cert);
    const key = keyToPem(ca.privateKey);
    return { cert, key, certPath: write(`${name}.crt`, cert), keyPath: write(`${name}.key`, key, 0o600), x509: new X509Certificate(cert) };
  };

  const [root, otherRoot] = await Promise.all([
    createCa({ subject: [['O', ORG], ['CN', 'certgate test root CA']], ...caWindow }),
    createCa({ subject: [['O', 'elsewhere'], ['CN', 'unrelated root CA']], ...caWindow }),
  ]);
  const inter = await createCa({ subject: [['O', ORG], ['CN', 'certgate test intermediate CA']], issuer: root, ...caWindow });
  const issuers = { root, intermediate: inter, other: otherRoot };
  const interPem = certToPem(inter.cert);

  const issueClient = async (o: TestIssueOptions): Promise<TestCert> => {
    const issuerName = o.issuer ?? 'intermediate';
    const leaf = await createLeaf({
      issuer: issuers[issuerName], subject: o.subject ?? [['CN', o.name]], usage: o.usage ?? 'client',
      notBefore: o.notBefore ?? new Date(now - 5 * 60_000), notAfter: o.notAfter ?? new Date(now + 30 * DAY),
      ...(o.san && { san: o.san }), ...(o.keyType && { keyType: o.keyType }),
    });
    const cert = certToPem(leaf.cert);
    const key = keyToPem(leaf.privateKey);
    const pem = key + cert + (issuerName === 'intermediate' ? interPem : '');
    return {
      cert, key, pem, x509: new X509Certificate(cert),
      certPath: write(`${o.name}.crt`, cert), keyPath: write(`${o.name}.key`, key, 0o600), pemPath: write(`${o.name}.pem`, pem, 0o600),
    };
  };

  const [serverBundle, good, direct, expired, notYetValid, otherCa, revoked, serverAuthOnly, hostileDn] = await Promise.all([
    issueClient({ name: 'server', usage: 'server', subject: [['CN', 'localhost']], san: { dns: ['localhost'], ip: ['127.0.0.1', '::1'] } }),
    issueClient({
      name: 'good', subject: [['OU', 'payments'], ['CN', 'svc-a']],
      san: { uri: ['spiffe://example.org/ns/prod/sa/svc-a'], dns: ['svc-a.internal'] },
    }),
    issueClient({ name: 'direct', subject: [['CN', 'svc-direct']], issuer: 'root' }),
    issueClient({ name: 'expired', subject: [['CN', 'svc-expired']], notBefore: new Date(now - 20 * DAY), notAfter: new Date(now - DAY) }),
    issueClient({ name: 'not-yet-valid', subject: [['CN', 'svc-future']], notBefore: new Date(now + DAY), notAfter: new Date(now + 30 * DAY) }),
    issueClient({ name: 'other-ca', subject: [['CN', 'svc-other']], issuer: 'other' }),
    issueClient({ name: 'revoked', subject: [['CN', 'svc-revoked']] }),
    issueClient({ name: 'server-auth-only', subject: [['CN', 'svc-server-only']], usage: 'server' }),
    issueClient({ name: 'hostile-dn', subject: [['OU', 'Jürgen 日本'], ['CN', 'a,O=admin+x "q" <b>;']] }),
  ]);

  const entries = [{ serial: revoked.x509.serialNumber }];
  const [crlRoot, crlInter, crlInterExpired] = await Promise.all([
    createCrl({ issuer: root }),
    createCrl({ issuer: inter, entries }),
    createCrl({ issuer: inter, entries, thisUpdate: new Date(now - 10 * DAY), nextUpdate: new Date(now - DAY) }),
  ]);
  const crlRootPem = crlToPem(crlRoot);
  const crlIntermediatePem = crlToPem(crlInter);
  const crlPem = crlIntermediatePem + crlRootPem;
  const expiredCrlPem = crlToPem(crlInterExpired) + crlRootPem;
  const clientCaPem = certToPem(root.cert) + interPem;

  return {
    dir,
    root: writeCa('root', root),
    intermediate: writeCa('intermediate', inter),
    otherRoot: writeCa('other-root', otherRoot),
    serverBundle,
    clientCa: { path: write('client-ca.pem', clientCaPem), pem: clientCaPem },
    rootOnlyCa: { path: write('root-only-ca.pem', certToPem(root.cert)), pem: certToPem(root.cert) },
    clients: { good, direct, expired, notYetValid, otherCa, revoked, serverAuthOnly, hostileDn },
    crlPath: write('crl.pem', crlPem), crlPem,
    crlRootPem, crlRootPath: write('crl-root.pem', crlRootPem),
    crlIntermediatePem, crlIntermediatePath: write('crl-intermediate.pem', crlIntermediatePem),
    expiredCrlPath: write('crl-expired.pem', expiredCrlPem), expiredCrlPem,
    issueClient,
    cleanup: () => fs.rmSync(dir, { recursive: true, force: true }),
  };
}
