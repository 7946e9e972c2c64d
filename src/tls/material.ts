/**
 * Reads the TLS files named in the config, checks them, and turns them into what
 * `tls.createSecureContext()` / `server.setSecureContext()` needs:
 * the leaf first then its intermediates in issuing order, client CAs one PEM each,
 * CRLs one PEM each (Node loads only the first CRL of a concatenated buffer).
 */
import 'reflect-metadata';
import { createHash, createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { basename } from 'node:path';
import { createSecureContext, type SecureContextOptions } from 'node:tls';
import * as px from '@peculiar/x509';
import { CertgateError, CODES, type ErrorCode, type Problem } from '../errors.js';
import type { TlsConfig } from '../config/types.js';
import { describeBlock, looksLikeDer, parsePem, toPem, type PemBlock } from './pem.js';
import {
  checkChainValidity, checkClientCas, checkCrls, checkLeaf, checkServerChain,
  type CertRef, type CrlRef, type KeyRef,
} from './checks.js';

export interface TlsCrlInfo {
  /** The CRL's issuer name, e.g. "CN=certgate dev CA, O=certgate". */
  readonly issuer: string;
  readonly thisUpdate: Date;
  /** When the CRL goes stale. A CRL without nextUpdate never does: then this is the largest Date (+275760-09-13). */
  readonly nextUpdate: Date;
}

export interface TlsMaterial {
  /** The private key PEM (still encrypted when it was; pass `passphrase` along). */
  readonly key: string | Buffer;
  readonly passphrase?: string;
  /** Leaf + intermediates, leaf first, in issuing order. */
  readonly cert: string;
  /** The client CA certificates, one PEM each. */
  readonly ca: string[];
  /** One PEM per CRL; absent when tls.crl is not set. */
  readonly crl?: string[];
  readonly leaf: X509Certificate;
  /** The intermediates (and a root, if the bundle had one), in issuing order. */
  readonly chain: readonly X509Certificate[];
  readonly clientCas: readonly X509Certificate[];
  readonly crls: readonly TlsCrlInfo[];
  /** sha256 (hex) over every input file's bytes and whether a passphrase is set. */
  readonly digest: string;
  /** Warnings and info found (material exists only when there were no errors). */
  readonly problems: readonly Problem[];
}

export interface InspectOptions {
  /** The clock to check validity against; defaults to the current time. */
  readonly now?: Date;
  /** The configured listen host; a DNS name not covered by the leaf's SANs is a warning. */
  readonly listenHost?: string;
}

export interface InspectResult {
  readonly material?: TlsMaterial;
  /** Every finding: errors, warnings, info. */
  readonly problems: Problem[];
}

const NEVER = new Date(8.64e15);

function problem(severity: Problem['severity'], code: ErrorCode, message: string, file?: string, hint?: string): Problem {
  return { severity, code, message, hint: hint ?? CODES[code], ...(file !== undefined && { file }) };
}

function errCode(err: unknown): string {
  const e = err as { code?: unknown; message?: unknown };
  return typeof e.code === 'string' ? e.code : '';
}

function errText(err: unknown): string {
  const e = err as { code?: unknown; message?: unknown };
  const msg = typeof e.message === 'string' ? e.message.replace(/^error:[0-9A-F]+:[^:]*:[^:]*:/, '') : String(err);
  return typeof e.code === 'string' && !msg.includes(e.code) ? `${msg} (${e.code})` : msg;
}

interface ReadFile {
  readonly path: string;
  readonly bytes?: Buffer;
}

/** Read a file, turning failure into CG_FILE_READ. */
async function readInput(path: string, what: string, problems: Problem[]): Promise<ReadFile> {
  try {
    return { path, bytes: await readFile(path) };
  } catch (err) {
    const code = errCode(err);
    const why = code === 'ENOENT' ? 'it does not exist'
      : code === 'EACCES' ? 'permission denied'
        : code === 'EISDIR' ? 'it is a directory'
          : errText(err);
    problems.push(problem('error', 'CG_FILE_READ', `cannot read ${what} ${path}: ${why}`, path));
    return { path };
  }
}

/** Split a file into blocks; report malformed blocks and files that hold no PEM at all. */
function blocksOf(file: ReadFile, expect: string, problems: Problem[], emptyCode: ErrorCode = 'CG_PEM_EMPTY'): PemBlock[] {
  if (file.bytes === undefined) return [];
  const blocks = parsePem(file.bytes);
  if (blocks.length === 0) {
    if (looksLikeDer(file.bytes)) {
      problems.push(problem('error', 'CG_PEM_PARSE', `${file.path} is binary DER, not PEM`, file.path,
        `convert it to PEM, e.g. openssl x509 -inform der -in ${basename(file.path)} -out ${basename(file.path)}.pem (openssl crl / openssl pkey for CRLs and keys)`));
    } else {
      problems.push(problem('error', emptyCode, `${file.path} holds no PEM block (expected ${expect})`, file.path));
    }
  }
  for (const b of blocks) {
    if (b.error !== undefined) {
      problems.push(problem('error', 'CG_PEM_PARSE', `${describeBlock(b)} starting at line ${b.line} is malformed: ${b.error}`, file.path));
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

function parseCerts(file: ReadFile, blocks: PemBlock[], problems: Problem[]): CertRef[] {
  const out: CertRef[] = [];
  for (const b of blocks) {
    if (b.kind !== 'certificate' || b.error !== undefined) continue;
    try {
      out.push(ref({ cert: new X509Certificate(b.pem) }, file.path, b, blocks.length));
    } catch (err) {
      problems.push(problem('error', 'CG_PEM_PARSE', `${describeBlock(b)} is not a valid certificate: ${errText(err)}`, file.path));
    }
  }
  return out;
}

function foundLabels(blocks: PemBlock[]): string {
  const labels = [...new Set(blocks.map((b) => b.label))];
  return labels.length > 0 ? ` (found: ${labels.join(', ')})` : '';
}

/** Inspect everything tls: names; `material` is set only when no error was found. */
export async function inspectTls(tls: TlsConfig, opts: InspectOptions = {}): Promise<InspectResult> {
  const now = opts.now ?? new Date();
  const problems: Problem[] = [];

  const certPath = tls.bundle ?? tls.cert;
  if (certPath === undefined) {
    problems.push(problem('error', 'CG_KEY_MISSING', 'tls sets neither bundle nor cert', undefined,
      'set tls.bundle (key + certificates in one file) or tls.cert (+ tls.key)'));
    return { problems };
  }
  const keyPath = tls.bundle ?? tls.key ?? certPath;

  // ---- read every input (each path once)
  const cache = new Map<string, Promise<ReadFile>>();
  const read = (path: string, what: string): Promise<ReadFile> => {
    let p = cache.get(path);
    if (p === undefined) { p = readInput(path, what, problems); cache.set(path, p); }
    return p;
  };
  const certFile = await read(certPath, tls.bundle !== undefined ? 'tls.bundle' : 'tls.cert');
  const keyFile = await read(keyPath, tls.bundle !== undefined ? 'tls.bundle' : tls.key !== undefined ? 'tls.key' : 'tls.cert');
  const passFile = tls.passphrase_file !== undefined ? await read(tls.passphrase_file, 'tls.passphrase_file') : undefined;
  const caFile = await read(tls.client_ca, 'tls.client_ca');
  const crlFile = tls.crl !== undefined ? await read(tls.crl, 'tls.crl') : undefined;

  // ---- permissions: a world-readable key is refused (group-readable 0440/0640 is fine)
  if (process.platform !== 'win32') {
    if (keyFile.bytes !== undefined) {
      try {
        const mode = (await stat(keyPath)).mode & 0o777;
        if ((mode & 0o004) !== 0) {
          problems.push(problem('error', 'CG_KEY_PERMISSIONS',
            `the private key file ${keyPath} is readable by every user (mode ${mode.toString(8).padStart(4, '0')})`, keyPath,
            `chmod o-r ${basename(keyPath)} (600, or 640/440 with a group)`));
        }
      } catch { /* read worked; a racing rename is caught on the next load */ }
    }
    if (passFile?.bytes !== undefined && tls.passphrase_file !== undefined) {
      try {
        const mode = (await stat(tls.passphrase_file)).mode & 0o777;
        if ((mode & 0o004) !== 0) {
          problems.push(problem('warning', 'CG_KEY_PERMISSIONS',
            `the passphrase file ${tls.passphrase_file} is readable by every user (mode ${mode.toString(8).padStart(4, '0')})`,
            tls.passphrase_file, `chmod o-r ${basename(tls.passphrase_file)}`));
        }
      } catch { /* ignore */ }
    }
  }

  // ---- digest over the inputs
  const hash = createHash('sha256');
  for (const [role, f] of [['cert', certFile], ['key', keyFile], ['client_ca', caFile], ['crl', crlFile]] as const) {
    if (f?.bytes === undefined) continue;
    hash.update(`${role}\0${f.bytes.length}\0`).update(f.bytes);
  }
  hash.update(`passphrase\0${passFile !== undefined ? 1 : 0}`);
  const digest = hash.digest('hex');

  // ---- server certificates and key
  const certBlocks = blocksOf(certFile, 'CERTIFICATE blocks', problems);
  const certs = parseCerts(certFile, certBlocks, problems);
  if (certFile.bytes !== undefined && certBlocks.length > 0 && !certBlocks.some((b) => b.kind === 'certificate')) {
    problems.push(problem('error', 'CG_PEM_EMPTY', `${certPath} holds no CERTIFICATE block${foundLabels(certBlocks)}`, certPath));
  }

  const keyBlocks = keyPath === certPath ? certBlocks : blocksOf(keyFile, 'a PRIVATE KEY block', problems, 'CG_KEY_MISSING');
  let passphrase: string | undefined;
  if (passFile?.bytes !== undefined) passphrase = passFile.bytes.toString('utf8').replace(/[\r\n]+$/, '');

  let key: KeyRef | undefined;
  let keyBlock: PemBlock | undefined;
  const keys = keyBlocks.filter((b) => b.kind === 'key' && b.error === undefined);
  if (keyFile.bytes !== undefined && keyBlocks.length > 0 && keys.length === 0 && !keyBlocks.some((b) => b.kind === 'key')) {
    problems.push(problem('error', 'CG_KEY_MISSING', `${keyPath} holds no private key${foundLabels(keyBlocks)}`, keyPath));
  }
  if (keys.length > 1) {
    problems.push(problem('warning', 'CG_PEM_PARSE',
      `${keyPath} holds ${keys.length} private keys; certgate uses the first, ${describeBlock(keys[0] as PemBlock)}`, keyPath,
      'keep one private key in the file'));
  }
  keyBlock = keys[0];
  if (keyBlock !== undefined) {
    const at = `the private key${blockWhere(keyBlock, keyBlocks.length)}`;
    if (keyBlock.encrypted && tls.passphrase_file === undefined) {
      problems.push(problem('error', 'CG_KEY_ENCRYPTED', `${at} is encrypted (${keyBlock.label}) and tls.passphrase_file is not set`, keyPath));
    } else if (!keyBlock.encrypted || passphrase !== undefined) {
      try {
        const k: KeyObject = createPrivateKey({ key: keyBlock.pem, format: 'pem', ...(passphrase !== undefined && { passphrase }) });
        key = ref({ key: k }, keyPath, keyBlock, keyBlocks.length);
      } catch (err) {
        if (keyBlock.encrypted) {
          problems.push(problem('error', 'CG_KEY_PASSPHRASE',
            `the passphrase in ${tls.passphrase_file ?? ''} does not decrypt ${at}: ${errText(err)}`, keyPath));
        } else {
          problems.push(problem('error', 'CG_PEM_PARSE', `${at} (${keyBlock.label}) does not load: ${errText(err)}`, keyPath,
            keyBlock.label === 'OPENSSH PRIVATE KEY'
              ? 'convert it to PKCS#8: ssh-keygen -p -m PKCS8 -f <file>' : CODES.CG_PEM_PARSE));
        }
      }
    }
  }

  // ---- client CAs
  const caBlocks = blocksOf(caFile, 'CA CERTIFICATE blocks', problems, 'CG_CA_EMPTY');
  const cas = parseCerts(caFile, caBlocks, problems);

  // ---- CRLs
  const crls: CrlRef[] = [];
  const crlBlocks: PemBlock[] = [];
  if (crlFile !== undefined) {
    const blocks = blocksOf(crlFile, 'X509 CRL blocks', problems);
    for (const b of blocks) {
      if (b.kind !== 'crl' || b.error !== undefined) continue;
      try {
        crls.push(ref({ crl: new px.X509Crl(new Uint8Array(b.der)) }, crlFile.path, b, blocks.length));
        crlBlocks.push(b);
      } catch (err) {
        problems.push(problem('error', 'CG_PEM_PARSE', `${describeBlock(b)} is not a valid CRL: ${errText(err)}`, crlFile.path));
      }
    }
    if (crlFile.bytes !== undefined && blocks.length > 0 && !blocks.some((b) => b.kind === 'crl')) {
      problems.push(problem('error', 'CG_PEM_EMPTY', `${crlFile.path} holds no X509 CRL block${foundLabels(blocks)}`, crlFile.path));
    }
  }

  // ---- checks
  let leaf: CertRef | undefined;
  let chain: CertRef[] = [];
  if (key !== undefined && certs.length > 0) {
    const server = checkServerChain({ key, certs, knownIssuers: cas });
    problems.push(...server.problems);
    leaf = server.leaf;
    chain = server.chain;
    if (leaf !== undefined) {
      problems.push(...checkLeaf(leaf, now, opts.listenHost), ...checkChainValidity(chain, now));
    }
  }
  if (caFile.bytes !== undefined && !problems.some((p) => p.code === 'CG_CA_EMPTY' && p.file === caFile.path)) {
    problems.push(...checkClientCas({
      cas, file: caFile.path, now,
      ...(leaf !== undefined && { serverChain: [leaf, ...chain].map((c) => c.cert) }),
    }));
  }
  if (crlFile?.bytes !== undefined && crls.length > 0) {
    problems.push(...(await checkCrls({ crls, cas, file: crlFile.path, now })).problems);
  }

  if (problems.some((p) => p.severity === 'error') || leaf === undefined || keyBlock === undefined) {
    if (!problems.some((p) => p.severity === 'error')) {
      // Defensive: every path that leaves no leaf reports an error above.
      problems.push(problem('error', 'CG_KEY_MISSING', `no usable private key and certificate in ${certPath}`, certPath));
    }
    return { problems };
  }

  // ---- assemble, then let OpenSSL confirm it
  const options: SecureContextOptions = {
    key: keyBlock.pem,
    cert: [leaf, ...chain].map((c) => toPem('CERTIFICATE', c.cert.raw)).join(''),
    ca: cas.map((c) => toPem('CERTIFICATE', c.cert.raw)),
    ...(passphrase !== undefined && { passphrase }),
    ...(crlFile !== undefined && { crl: crlBlocks.map((b) => b.pem) }),
  };
  const contextError = validateContext(options, { cert: certPath, key: keyPath, ca: caFile.path, crl: crlFile?.path });
  if (contextError !== undefined) {
    problems.push(contextError);
    return { problems };
  }

  const material: TlsMaterial = {
    key: options.key as string,
    ...(passphrase !== undefined && { passphrase }),
    cert: options.cert as string,
    ca: options.ca as string[],
    ...(options.crl !== undefined && { crl: options.crl as string[] }),
    leaf: leaf.cert,
    chain: chain.map((c) => c.cert),
    clientCas: cas.map((c) => c.cert),
    crls: crls.map((c) => ({ issuer: c.crl.issuer, thisUpdate: c.crl.thisUpdate, nextUpdate: c.crl.nextUpdate ?? NEVER })),
    digest,
    problems: [...problems],
  };
  return { material, problems };
}

/** Build the secure context step by step, so a failure is pinned on the right file. */
function validateContext(
  options: SecureContextOptions,
  files: { cert: string; key: string; ca: string; crl: string | undefined },
): Problem | undefined {
  const { crl, ca, ...base } = options;
  const steps: Array<[string, string, SecureContextOptions]> = [
    ['key and certificate', files.key === files.cert ? files.cert : files.key, base],
    ['client CAs', files.ca, { ...base, ca }],
  ];
  if (crl !== undefined && files.crl !== undefined) steps.push(['CRLs', files.crl, { ...base, ca, crl }]);
  for (const [what, file, opts] of steps) {
    try {
      createSecureContext(opts);
    } catch (err) {
      return translateContextError(err, what, file, files);
    }
  }
  return undefined;
}

function translateContextError(
  err: unknown, what: string, file: string, files: { cert: string; key: string },
): Problem {
  const code = errCode(err);
  const text = `Node/OpenSSL refused the ${what}: ${errText(err)}`;
  if (code === 'ERR_OSSL_X509_KEY_VALUES_MISMATCH') return problem('error', 'CG_KEY_MISMATCH', text, files.key);
  if (code === 'ERR_OSSL_BAD_DECRYPT' || code === 'ERR_OSSL_EVP_BAD_DECRYPT' || code === 'ERR_OSSL_CRYPTO_INTERRUPTED_OR_CANCELLED') {
    return problem('error', 'CG_KEY_PASSPHRASE', text, files.key);
  }
  if (/TOO_SMALL|MD_TOO_WEAK/.test(code)) {
    return problem('error', 'CG_PEM_PARSE', text, file,
      'OpenSSL\'s security level refuses it: reissue with RSA ≥ 2048 bits or an EC key, signed with SHA-256 or better');
  }
  return problem('error', 'CG_PEM_PARSE', text, file);
}

/** Like inspectTls, but throws a CertgateError (first error; `problems` = all errors) when unusable. */
export async function loadTls(tls: TlsConfig, opts: InspectOptions = {}): Promise<TlsMaterial> {
  const { material, problems } = await inspectTls(tls, opts);
  if (material !== undefined) return material;
  const errors = problems.filter((p) => p.severity === 'error');
  const first = errors[0] ?? problem('error', 'CG_KEY_MISSING', 'the TLS material is not usable');
  throw new CertgateError(first.code, first.message, {
    ...(first.hint !== undefined && { hint: first.hint }),
    ...(first.file !== undefined && { file: first.file }),
    problems: errors,
  });
}
