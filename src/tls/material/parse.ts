/**
 * The TLS files' bytes → certificates, the private key and CRLs, each with the file and block it came from
 * (pure; the key is decrypted here). Malformed, missing and unexpected blocks become findings.
 */
import { createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import { basename } from 'node:path';
import { CODES, problem, type ErrorCode, type Problem } from '../../errors.js';
import { describeBlock, looksLikeDer, parsePem, type PemBlock } from '../../x509/pem.js';
import { parseCrl } from '../../x509/crl.js';
import type { CertRef, CrlRef, KeyRef } from '../checks/refs.js';
import type { Inputs, ReadFile } from './files.js';
import { errText } from './node-errors.js';

/** Split a file into blocks; report malformed blocks and files that hold no PEM at all. */
export function blocksOf(file: ReadFile, expect: string, problems: Problem[], emptyCode: ErrorCode = 'CG_PEM_EMPTY'): PemBlock[] {
  if (file.bytes === undefined) return [];
  const blocks = parsePem(file.bytes);
  if (blocks.length === 0) {
    if (looksLikeDer(file.bytes)) {
      problems.push(problem('error', 'CG_PEM_PARSE', 'the file is binary DER, not PEM', { file: file.path,
        hint: `convert it to PEM, e.g. openssl x509 -inform der -in ${basename(file.path)} -out ${basename(file.path)}.pem (openssl crl / openssl pkey for CRLs and keys)` }));
    } else {
      problems.push(problem('error', emptyCode, `the file holds no PEM block (expected ${expect})`, { file: file.path }));
    }
  }
  for (const b of blocks) {
    if (b.error !== undefined) {
      problems.push(problem('error', 'CG_PEM_PARSE', `${describeBlock(b)} starting at line ${b.line} is malformed: ${b.error}`, { file: file.path }));
    }
  }
  return blocks;
}

function ref<T extends object>(value: T, file: string, block: PemBlock, total: number): T & { file: string; block?: number } {
  return { ...value, file, ...(total > 1 && { block: block.index }) };
}

function blockWhere(block: PemBlock, total: number): string {
  return total > 1 ? ` (block ${block.index})` : '';
}

export function parseCerts(file: ReadFile, blocks: PemBlock[], problems: Problem[]): CertRef[] {
  const out: CertRef[] = [];
  for (const b of blocks) {
    if (b.kind !== 'certificate' || b.error !== undefined) continue;
    try {
      out.push(ref({ cert: new X509Certificate(b.pem) }, file.path, b, blocks.length));
    } catch (err) {
      problems.push(problem('error', 'CG_PEM_PARSE', `${describeBlock(b)} is not a valid certificate: ${errText(err)}`, { file: file.path }));
    }
  }
  return out;
}

export function foundLabels(blocks: PemBlock[]): string {
  const labels = [...new Set(blocks.map((b) => b.label))];
  return labels.length > 0 ? ` (found: ${labels.join(', ')})` : '';
}

export interface LoadedKey {
  readonly key?: KeyRef;
  readonly block?: PemBlock;
}

/** Pick the private key block, decrypt it with the passphrase when it is encrypted. */
export function loadKey(inputs: Inputs, blocks: PemBlock[], passphrase: string | undefined, problems: Problem[]): LoadedKey {
  const { keyPath } = inputs;
  const keys = blocks.filter((b) => b.kind === 'key' && b.error === undefined);
  if (inputs.key.bytes !== undefined && blocks.length > 0 && !blocks.some((b) => b.kind === 'key')) {
    problems.push(problem('error', 'CG_KEY_MISSING', `the file holds no private key${foundLabels(blocks)}`, { file: keyPath }));
  }
  const block = keys[0];
  if (block === undefined) return {};
  if (keys.length > 1) {
    problems.push(problem('warning', 'CG_PEM_PARSE',
      `the file holds ${keys.length} private keys; certgate uses the first, ${describeBlock(block)}`, { file: keyPath,
      hint: 'keep one private key in the file' }));
  }
  const at = `the private key${blockWhere(block, blocks.length)}`;
  if (block.encrypted && passphrase === undefined) {
    if (inputs.pass === undefined) {
      problems.push(problem('error', 'CG_KEY_ENCRYPTED', `${at} is encrypted (${block.label}) and tls.passphrase_file is not set`, { file: keyPath }));
    }
    return { block }; // an unreadable passphrase file was reported as CG_FILE_READ
  }
  try {
    const k: KeyObject = createPrivateKey({ key: block.pem, format: 'pem', ...(passphrase !== undefined && { passphrase }) });
    return { key: ref({ key: k }, keyPath, block, blocks.length), block };
  } catch (err) {
    if (block.encrypted) {
      problems.push(problem('error', 'CG_KEY_PASSPHRASE',
        `the passphrase in ${inputs.pass?.path ?? ''} does not decrypt ${at}: ${errText(err)}`, { file: keyPath }));
    } else {
      problems.push(problem('error', 'CG_PEM_PARSE', `${at} (${block.label}) does not load: ${errText(err)}`, { file: keyPath,
        hint: block.label === 'OPENSSH PRIVATE KEY' ? 'convert it to PKCS#8: ssh-keygen -p -m PKCS8 -f <file>' : CODES.CG_PEM_PARSE }));
    }
    return { block };
  }
}

/** Each CRL block parsed; `blocks` are the ones that parsed, in the same order as `crls`. */
export function loadCrls(file: ReadFile, problems: Problem[]): { crls: CrlRef[]; blocks: PemBlock[] } {
  const crls: CrlRef[] = [];
  const parsed: PemBlock[] = [];
  const blocks = blocksOf(file, 'X509 CRL blocks', problems);
  for (const b of blocks) {
    if (b.kind !== 'crl' || b.error !== undefined) continue;
    try {
      crls.push(ref({ crl: parseCrl(b.der) }, file.path, b, blocks.length));
      parsed.push(b);
    } catch (err) {
      problems.push(problem('error', 'CG_PEM_PARSE', `${describeBlock(b)} is not a valid CRL: ${errText(err)}`, { file: file.path }));
    }
  }
  if (file.bytes !== undefined && blocks.length > 0 && !blocks.some((b) => b.kind === 'crl')) {
    problems.push(problem('error', 'CG_PEM_EMPTY', `the file holds no X509 CRL block${foundLabels(blocks)}`, { file: file.path }));
  }
  return { crls, blocks: parsed };
}
