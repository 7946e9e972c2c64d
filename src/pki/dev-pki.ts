/**
 * The development PKI behind `certgate certs ...`: one self-signed dev CA in a folder, a localhost server
 * bundle, a client certificate (PEM and .p12) and the CA's CRL. Everything is built in memory by x509.ts,
 * then each file is written to a temporary name and renamed over the target, so a watcher (or a
 * running certgate) never reads a half-written file.
 */
import { X509Certificate, createPrivateKey, randomBytes } from 'node:crypto';
import { mkdir, open, readFile, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { CertgateError } from '../errors.js';
import { buildP12 } from './p12.js';
import {
  certToPem, createCa, createCrl, createLeaf, crlFromPem, crlNumberOf, crlToPem, importSigningKey, keyToPem, parseCert,
  type CrlEntry, type Issuer, type KeyType, type NameSpec,
} from './x509.js';

export const CA_DAYS = 3650;
/**
 * Apple platforms refuse TLS server certificates valid for more than 825 days (mkcert uses the same cap),
 * so no leaf we issue lives longer, server or client.
 */
export const LEAF_MAX_DAYS = 825;
/**
 * A dev CRL is re-issued with a 30-day window. Once it passes nextUpdate, Node and OpenSSL refuse every
 * client of the CA (CRL_HAS_EXPIRED), so it must be re-issued before then: `certgate certs revoke` does,
 * and so does `certgate certs init --force`.
 */
export const CRL_DAYS = 30;

export const DEV_FILES = {
  caCert: 'ca.crt', caKey: 'ca.key', serverPem: 'server.pem',
  clientCert: 'client.crt', clientKey: 'client.key', clientPem: 'client.pem',
  clientP12: 'client.p12', clientP12Pass: 'client.p12.pass', crl: 'crl.pem',
} as const;

const ORG = 'certgate dev';
const SECRET = 0o600;
const PUBLIC = 0o644;

/** Writes via a temporary file in the same folder and rename(2), so readers see the old or the new file. */
export async function writeFileAtomic(file: string, data: string | Uint8Array, mode: number): Promise<void> {
  await writeFilesAtomic([[file, data, mode]]);
}

/**
 * Writes every file to a temporary name first and renames them only once all were written, so a failure
 * (disk full, permissions) leaves the old set untouched instead of a mix of two CAs.
 */
export async function writeFilesAtomic(files: ReadonlyArray<readonly [file: string, data: string | Uint8Array, mode: number]>): Promise<void> {
  const tag = `${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  const written: string[] = [];
  try {
    for (const [file, data, mode] of files) {
      const fh = await open(`${file}.${tag}`, 'wx', mode);
      written.push(`${file}.${tag}`);
      try {
        await fh.writeFile(data);
        await fh.chmod(mode); // open()'s mode is filtered by the umask; the result must not depend on it
        await fh.sync();
      } finally {
        await fh.close();
      }
    }
    for (const [file] of files) await rename(`${file}.${tag}`, file);
  } catch (err) {
    await Promise.all(written.map((tmp) => rm(tmp, { force: true })));
    throw err;
  }
}

async function exists(file: string): Promise<boolean> {
  return stat(file).then(() => true, (err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return false;
    throw err;
  });
}

/** Creates the dev PKI in `dir`. Returns the files written. Refuses to overwrite any of them unless `force`. */
export async function initDevPki(dir: string, opts: { rsa?: boolean; force?: boolean } = {}): Promise<string[]> {
  const at = (name: string): string => path.join(dir, name);
  const present = [];
  for (const name of Object.values(DEV_FILES)) if (await exists(at(name))) present.push(at(name));
  if (present.length > 0 && opts.force !== true) {
    throw new CertgateError('CG_PKI_EXISTS', `refusing to overwrite ${present.join(', ')}`);
  }
  const keyType: KeyType = opts.rsa === true ? 'rsa' : 'ec';
  const ca = await createCa({ subject: [['O', ORG], ['CN', 'certgate dev CA']], keyType, days: CA_DAYS });
  const [server, client, crl] = await Promise.all([
    createLeaf({
      issuer: ca, keyType, usage: 'server', days: LEAF_MAX_DAYS, subject: [['O', ORG], ['CN', 'localhost']],
      san: { dns: ['localhost'], ip: ['127.0.0.1', '::1'] },
    }),
    createLeaf({
      issuer: ca, keyType, usage: 'client', days: LEAF_MAX_DAYS, subject: [['O', ORG], ['OU', 'dev'], ['CN', 'dev-client']],
      san: { uri: ['spiffe://certgate.local/dev-client'] },
    }),
    createCrl({ issuer: ca, nextUpdate: new Date(Date.now() + CRL_DAYS * 86_400_000) }),
  ]);
  const password = randomBytes(18).toString('base64url');
  const p12 = await buildP12({ privateKey: client.privateKey, cert: client.cert, chain: [ca.cert], password, friendlyName: 'dev-client' });
  const caPem = certToPem(ca.cert);
  const clientKey = keyToPem(client.privateKey);
  const clientCert = certToPem(client.cert);
  const files: Array<[string, string | Uint8Array, number]> = [
    [DEV_FILES.caCert, caPem, PUBLIC],
    [DEV_FILES.caKey, keyToPem(ca.privateKey), SECRET],
    // Key first, then the leaf, then its chain: the leaf must be the bundle's first certificate.
    [DEV_FILES.serverPem, keyToPem(server.privateKey) + certToPem(server.cert) + caPem, SECRET],
    [DEV_FILES.clientCert, clientCert, PUBLIC],
    [DEV_FILES.clientKey, clientKey, SECRET],
    [DEV_FILES.clientPem, clientKey + clientCert, SECRET],
    [DEV_FILES.clientP12, p12, SECRET],
    [DEV_FILES.clientP12Pass, `${password}\n`, SECRET],
    [DEV_FILES.crl, crlToPem(crl), PUBLIC],
  ];
  await mkdir(dir, { recursive: true });
  await writeFilesAtomic(files.map(([name, data, mode]) => [at(name), data, mode] as const));
  return files.map(([name]) => at(name));
}

interface DevCa extends Issuer {
  readonly keyType: KeyType;
  readonly pem: string;
}

/** Reads ca.crt + ca.key from `dir`. Throws CG_PKI_CA_MISSING when either is absent. */
export async function loadDevCa(dir: string): Promise<DevCa> {
  const certFile = path.join(dir, DEV_FILES.caCert);
  const keyFile = path.join(dir, DEV_FILES.caKey);
  const missing = [];
  for (const f of [certFile, keyFile]) if (!(await exists(f))) missing.push(f);
  if (missing.length > 0) throw new CertgateError('CG_PKI_CA_MISSING', `missing ${missing.join(', ')}`);
  const [pem, keyPem] = await Promise.all([readFile(certFile, 'utf8'), readFile(keyFile, 'utf8')]);
  const privateKey = await importSigningKey(keyPem);
  if (!new X509Certificate(pem).checkPrivateKey(createPrivateKey(keyPem))) {
    throw new CertgateError('CG_KEY_MISMATCH', `${keyFile} is not the key of ${certFile}`);
  }
  return { cert: parseCert(pem), privateKey, pem, keyType: privateKey.algorithm.name === 'ECDSA' ? 'ec' : 'rsa' };
}

export function checkDays(days: number | undefined): number {
  if (days === undefined) return LEAF_MAX_DAYS;
  if (!Number.isInteger(days) || days < 1 || days > LEAF_MAX_DAYS) {
    throw new CertgateError('CG_USAGE', `--days must be a whole number from 1 to ${LEAF_MAX_DAYS}, got ${days}`);
  }
  return days;
}

export interface IssueOptions {
  readonly cn: string;
  readonly ou?: string;
  readonly sanUri?: readonly string[];
  readonly sanDns?: readonly string[];
  readonly days?: number;
  /** Path prefix of the three files; default `dir/<cn>`. */
  readonly out?: string;
}

/** Issues a client certificate from the dev CA; writes PREFIX.crt, PREFIX.key (0600), PREFIX.pem (key + cert, 0600). */
export async function issueClient(dir: string, opts: IssueOptions): Promise<{ certPath: string; keyPath: string; pemPath: string }> {
  const days = checkDays(opts.days);
  if (opts.out === undefined && !/^[A-Za-z0-9_-][A-Za-z0-9._-]*$/.test(opts.cn)) {
    throw new CertgateError('CG_USAGE', `the CN "${opts.cn}" is not usable as a file name; pass --out PREFIX`);
  }
  const ca = await loadDevCa(dir);
  const subject: NameSpec = [['O', ORG], ...(opts.ou === undefined ? [] : [['OU', opts.ou] as const]), ['CN', opts.cn]];
  const leaf = await createLeaf({
    issuer: ca, keyType: ca.keyType, usage: 'client', days, subject,
    san: { uri: opts.sanUri ?? [], dns: opts.sanDns ?? [] },
  });
  const prefix = opts.out ?? path.join(dir, opts.cn);
  const key = keyToPem(leaf.privateKey);
  const cert = certToPem(leaf.cert);
  const paths = { certPath: `${prefix}.crt`, keyPath: `${prefix}.key`, pemPath: `${prefix}.pem` };
  await mkdir(path.dirname(prefix), { recursive: true });
  await writeFilesAtomic([[paths.certPath, cert, PUBLIC], [paths.keyPath, key, SECRET], [paths.pemPath, key + cert, SECRET]]);
  return paths;
}

/**
 * Adds the certificate's serial to the dev CA's crl.pem and re-issues it (new thisUpdate/nextUpdate,
 * CRL number + 1), keeping earlier revocations. Only certificates this CA signed can be revoked.
 */
export async function revoke(dir: string, certPem: string): Promise<{ serial: string; crlPath: string; alreadyRevoked: boolean; nextUpdate: Date }> {
  const ca = await loadDevCa(dir);
  let cert;
  try {
    cert = parseCert(certPem);
  } catch (err) {
    throw new CertgateError('CG_PEM_PARSE', `the certificate does not parse: ${(err as Error).message}`, { cause: err });
  }
  if (!(await cert.verify({ publicKey: ca.cert.publicKey, signatureOnly: true }))) {
    throw new CertgateError('CG_PKI_FOREIGN_CERT', `serial ${cert.serialNumber.toUpperCase()} (${cert.subject}) was not issued by ${path.join(dir, DEV_FILES.caCert)}`);
  }
  const crlPath = path.join(dir, DEV_FILES.crl);
  let entries: CrlEntry[] = [];
  let crlNumber = 0n;
  if (await exists(crlPath)) {
    const old = crlFromPem(await readFile(crlPath, 'utf8'));
    if (!(await old.verify({ publicKey: ca.cert.publicKey }))) {
      throw new CertgateError('CG_CRL_ISSUER', `${crlPath} is not signed by the dev CA`);
    }
    entries = old.entries.map((e) => ({ serial: e.serialNumber, revokedAt: e.revocationDate }));
    crlNumber = crlNumberOf(old);
  }
  const serial = cert.serialNumber.toUpperCase();
  const alreadyRevoked = entries.some((e) => e.serial.toUpperCase() === serial);
  if (!alreadyRevoked) entries.push({ serial, revokedAt: new Date() });
  const nextUpdate = new Date(Date.now() + CRL_DAYS * 86_400_000);
  const crl = await createCrl({ issuer: ca, entries, nextUpdate, crlNumber: crlNumber + 1n });
  await writeFileAtomic(crlPath, crlToPem(crl), PUBLIC);
  return { serial, crlPath, alreadyRevoked, nextUpdate };
}
