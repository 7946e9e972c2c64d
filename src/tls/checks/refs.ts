/**
 * Certificates, keys and CRLs with the place they came from (file and, for multi-block files, the 1-based
 * block number), and how findings name them (pure). Problem.file carries the file; messages mention block
 * numbers and, when a finding involves two files, the other file's name.
 */
import { basename } from 'node:path';
import type { KeyObject, X509Certificate } from 'node:crypto';
import { authorityKeyId } from '../../x509/certificate.js';
import type { Crl } from '../../x509/crl.js';

export interface CertRef {
  readonly cert: X509Certificate;
  readonly file: string;
  /** 1-based PEM block number; set when the file holds more than one block. */
  readonly block?: number;
}

export interface KeyRef {
  readonly key: KeyObject;
  readonly file: string;
  readonly block?: number;
}

export interface CrlRef {
  readonly crl: Crl;
  readonly file: string;
  readonly block?: number;
}

/** "CN=localhost", or the whole subject on one line when it has no CN. */
export function displayName(dn: string): string {
  const parts = dn.split('\n').filter((l) => l !== '');
  const cn = parts.find((l) => l.startsWith('CN='));
  if (cn !== undefined) return cn;
  return parts.length > 0 ? parts.join(', ') : '(empty subject)';
}

/** " (block 2)", or " (cert.pem block 2)" / " (in cert.pem)" when `ref` lives in another file than `from`. */
export function where(ref: { file: string; block?: number }, from?: string): string {
  const other = from !== undefined && ref.file !== from;
  if (ref.block !== undefined) return other ? ` (${basename(ref.file)} block ${ref.block})` : ` (block ${ref.block})`;
  return other ? ` (in ${basename(ref.file)})` : '';
}

export function certText(ref: CertRef, from?: string): string {
  return `${displayName(ref.cert.subject)}${where(ref, from)}`;
}

export function day(d: Date): string {
  return d.toISOString().slice(0, 10);
}

/** "the issuer CN=Foo CA (authority key id AA:BB:…)". */
export function missingIssuer(cert: X509Certificate): string {
  const aki = authorityKeyId(cert);
  return `${displayName(cert.issuer)}${aki !== undefined ? ` (authority key id ${aki})` : ''}`;
}
