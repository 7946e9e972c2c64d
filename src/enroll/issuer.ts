/**
 * The issuing CA of enrollment, loaded and checked once at start-up. Refused (certgate does not start):
 * a ca_key readable by every user, a key that does not belong to ca_cert, a ca_cert that is not a CA or
 * has expired, and a CA that tls.client_ca does not hold — certgate would then issue certificates that
 * its own listener refuses. Each error names the file, or the config file:line of the key.
 */
import { X509Certificate, createPrivateKey, createPublicKey } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Config, EnrollmentConfig, TlsConfig } from '../config/types.js';
import { CertgateError } from '../errors.js';
import { readCertificate } from '../x509/der.js';
import { printDn } from '../x509/dn.js';
import { importSigningKey, parseCert, type Issuer } from '../pki/x509.js';
import { parsePem } from '../x509/pem.js';

export interface IssuingCa {
  readonly issuer: Issuer;
  /** The same CA certificate, as Node reads it (for checking what was issued). */
  readonly x509: X509Certificate;
  /** The ca_cert file's certificates as PEM (the issuing CA first): the chain sent after each leaf. */
  readonly chainPem: string;
  /** RFC 4514. */
  readonly subject: string;
  readonly notAfter: Date;
}

/**
 * What enrollment reads of the config: its own section, the config file (errors point at its lines) and
 * tls.client_ca (the issuing CA must be one it trusts).
 */
export type EnrollmentSlice = Pick<Config, 'file'> & {
  readonly enrollment: EnrollmentConfig;
  readonly tls: Pick<TlsConfig, 'client_ca'>;
};

/** On any error nothing is started; the error names the file (or config file:line) and the fix. */
export async function loadIssuingCa(config: EnrollmentSlice): Promise<IssuingCa> {
  const e = config.enrollment;
  const at = (key: keyof EnrollmentConfig['lines']) => ({ file: config.file, line: e.lines[key] });
  const certs = parsePem(await readText(e.ca_cert, 'ca_cert', at('ca_cert'))).filter((b) => b.kind === 'certificate' && b.error === undefined);
  const first = certs[0];
  if (first === undefined) throw new CertgateError('CG_PEM_EMPTY', `enrollment.ca_cert: ${e.ca_cert} holds no certificate`, at('ca_cert'));
  const ca = new X509Certificate(first.der);
  const subject = printDn(readCertificate(ca.raw).subject);
  if (!ca.ca) throw new CertgateError('CG_CA_NOT_CA', `enrollment.ca_cert: ${subject} (${e.ca_cert}) is not a CA certificate`, at('ca_cert'));
  const notAfter = new Date(ca.validTo);
  if (notAfter.getTime() <= Date.now()) {
    throw new CertgateError('CG_CERT_EXPIRED', `enrollment.ca_cert: ${subject} expired on ${notAfter.toISOString()}`, { file: e.ca_cert });
  }
  const keyPem = await readCaKey(e, at('ca_key'));
  let privateKey: CryptoKey;
  try {
    const same = createPublicKey(createPrivateKey(keyPem)).export({ type: 'spki', format: 'der' }).equals(spki(ca));
    if (!same) throw new CertgateError('CG_KEY_MISMATCH', `enrollment.ca_key: ${e.ca_key} is not the key of ${subject} (${e.ca_cert})`, { file: e.ca_key });
    privateKey = await importSigningKey(keyPem);
  } catch (err) {
    if (err instanceof CertgateError) throw err;
    throw new CertgateError('CG_PEM_PARSE', `enrollment.ca_key: ${e.ca_key} is not a usable private key: ${(err as Error).message}`, { file: e.ca_key, cause: err });
  }
  await requireTrusted(ca, subject, config, at('ca_cert'));
  return { issuer: { cert: parseCert(first.pem), privateKey }, x509: ca, chainPem: certs.map((b) => b.pem).join(''), subject, notAfter };
}

async function readCaKey(e: EnrollmentConfig, where: { file: string; line: number }): Promise<string> {
  if (process.platform !== 'win32') {
    const mode = await stat(e.ca_key).then((s) => s.mode & 0o777, () => undefined);
    if (mode !== undefined && (mode & 0o004) !== 0) {
      throw new CertgateError('CG_KEY_PERMISSIONS', `enrollment.ca_key: ${e.ca_key} is readable by every user (mode ${mode.toString(8).padStart(4, '0')}); a CA key must not be`, {
        file: e.ca_key, hint: `chmod o-r ${path.basename(e.ca_key)} (600, or 640 with a group)`,
      });
    }
  }
  const pem = await readText(e.ca_key, 'ca_key', where);
  const keys = parsePem(pem).filter((b) => b.kind === 'key');
  if (keys.length === 0) throw new CertgateError('CG_KEY_MISSING', `enrollment.ca_key: ${e.ca_key} holds no private key`, where);
  if (keys.some((k) => k.encrypted)) {
    throw new CertgateError('CG_KEY_ENCRYPTED', `enrollment.ca_key: ${e.ca_key} is encrypted`, {
      file: e.ca_key, hint: 'enrollment needs an unencrypted CA key file (chmod 600): openssl pkey -in ca.key -out ca-plain.key',
    });
  }
  return pem;
}

/** The CA must be one tls.client_ca trusts: same subject and same key (a re-issued CA cert counts). */
async function requireTrusted(ca: X509Certificate, subject: string, config: EnrollmentSlice, where: { file: string; line: number }): Promise<void> {
  const pem = await readText(config.tls.client_ca, 'tls.client_ca', where);
  const caSubject = readCertificate(ca.raw).subject;
  const trusted = parsePem(pem).some((b) => {
    if (b.kind !== 'certificate' || b.error !== undefined) return false;
    try {
      const c = new X509Certificate(b.der);
      return readCertificate(c.raw).subject.equals(caSubject) && spki(c).equals(spki(ca));
    } catch {
      return false;
    }
  });
  if (!trusted) {
    throw new CertgateError('CG_CONFIG_INVALID',
      `enrollment.ca_cert: ${subject} is not in tls.client_ca (${config.tls.client_ca}); certgate would issue certificates it then refuses`,
      { ...where, hint: 'add the CA certificate to the tls.client_ca file, or point enrollment.ca_cert at a CA that file holds' });
  }
}

function spki(cert: X509Certificate): Buffer {
  return cert.publicKey.export({ type: 'spki', format: 'der' });
}

async function readText(file: string, key: string, where: { file: string; line: number }): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? String(err);
    throw new CertgateError('CG_FILE_READ', `enrollment: cannot read ${key} ${file}: ${code}`, { ...where, cause: err });
  }
}
