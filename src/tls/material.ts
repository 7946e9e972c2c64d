/**
 * Reads the TLS files named in the config, checks them, and turns them into what
 * `tls.createSecureContext()` / `server.setSecureContext()` needs:
 * the leaf first then its intermediates in issuing order, client CAs one PEM each,
 * CRLs one PEM each (Node loads only the first CRL of a concatenated buffer).
 */
import { createHash, createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { basename } from 'node:path';
import { createSecureContext, type SecureContextOptions } from 'node:tls';
import { CertgateError, CODES, problem, type ErrorCode, type Problem } from '../errors.js';
import type { TlsConfig } from '../config/types.js';
import { describeBlock, looksLikeDer, parsePem, toPem, type PemBlock } from '../x509/pem.js';
import { crlIssuerLabel, parseCrl } from '../x509/crl.js';
import { checkClientCas } from './checks/client-cas.js';
import { checkCrls } from './checks/crls.js';
import { checkLeaf } from './checks/leaf.js';
import type { CertRef, CrlRef, KeyRef } from './checks/refs.js';
import { checkChainValidity, checkServerChain } from './checks/server-chain.js';

export interface TlsCrlInfo {
  /** The CRL's issuer as certgate publishes it (x509/crl.ts crlIssuerLabel), e.g. "O=certgate, CN=certgate dev CA". */
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
    problems.push(problem('error', 'CG_FILE_READ', `cannot read ${what} ${path}: ${why}`, { file: path }));
    return { path };
  }
}

/** Split a file into blocks; report malformed blocks and files that hold no PEM at all. */
function blocksOf(file: ReadFile, expect: string, problems: Problem[], emptyCode: ErrorCode = 'CG_PEM_EMPTY'): PemBlock[] {
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

function parseCerts(file: ReadFile, blocks: PemBlock[], problems: Problem[]): CertRef[] {
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

function foundLabels(blocks: PemBlock[]): string {
  const labels = [...new Set(blocks.map((b) => b.label))];
  return labels.length > 0 ? ` (found: ${labels.join(', ')})` : '';
}

interface Inputs {
  readonly certPath: string;
  readonly keyPath: string;
  readonly cert: ReadFile;
  readonly key: ReadFile;
  readonly pass?: ReadFile;
  readonly ca: ReadFile;
  readonly crl?: ReadFile;
}

/** Read every input once (bundle, or cert + key; passphrase; client_ca; crl). */
async function readInputs(tls: TlsConfig, certPath: string, problems: Problem[]): Promise<Inputs> {
  const cache = new Map<string, Promise<ReadFile>>();
  const read = (path: string, what: string): Promise<ReadFile> => {
    let p = cache.get(path);
    if (p === undefined) { p = readInput(path, what, problems); cache.set(path, p); }
    return p;
  };
  const keyPath = tls.bundle ?? tls.key ?? certPath;
  const cert = await read(certPath, tls.bundle !== undefined ? 'tls.bundle' : 'tls.cert');
  const key = await read(keyPath, tls.bundle !== undefined ? 'tls.bundle' : tls.key !== undefined ? 'tls.key' : 'tls.cert');
  const pass = tls.passphrase_file !== undefined ? await read(tls.passphrase_file, 'tls.passphrase_file') : undefined;
  const ca = await read(tls.client_ca, 'tls.client_ca');
  const crl = tls.crl !== undefined ? await read(tls.crl, 'tls.crl') : undefined;
  return { certPath, keyPath, cert, key, ca, ...(pass && { pass }), ...(crl && { crl }) };
}

/** A world-readable key is refused (group-readable 0440/0640, as Kubernetes mounts secrets, is fine). */
async function checkPermissions(inputs: Inputs, tls: TlsConfig, problems: Problem[]): Promise<void> {
  if (process.platform === 'win32') return;
  const worldReadable = async (path: string): Promise<number | undefined> => {
    try {
      const mode = (await stat(path)).mode & 0o777;
      return (mode & 0o004) !== 0 ? mode : undefined;
    } catch {
      return undefined; // the read worked; a racing rename is caught on the next load
    }
  };
  const octal = (mode: number): string => mode.toString(8).padStart(4, '0');
  const keyMode = inputs.key.bytes !== undefined ? await worldReadable(inputs.keyPath) : undefined;
  if (keyMode !== undefined) {
    const allowed = tls.allow_insecure_key_permissions === true;
    problems.push(problem(allowed ? 'warning' : 'error', 'CG_KEY_PERMISSIONS',
      `the private key file is readable by every user (mode ${octal(keyMode)})${allowed ? '; accepted because tls.allow_insecure_key_permissions is true' : ''}`,
      { file: inputs.keyPath, hint: `chmod o-r ${basename(inputs.keyPath)} (600, or 640/440 with a group)${allowed ? '' : ', or set tls.allow_insecure_key_permissions: true'}` }));
  }
  const pass = inputs.pass;
  const passMode = pass?.bytes !== undefined ? await worldReadable(pass.path) : undefined;
  if (pass !== undefined && passMode !== undefined) {
    problems.push(problem('warning', 'CG_KEY_PERMISSIONS', `the passphrase file is readable by every user (mode ${octal(passMode)})`,
      { file: pass.path, hint: `chmod o-r ${basename(pass.path)}` }));
  }
}

/** sha256 over every input's bytes (the passphrase only as present/absent). */
function digestOf(inputs: Inputs): string {
  const hash = createHash('sha256');
  for (const [role, f] of [['cert', inputs.cert], ['key', inputs.key], ['client_ca', inputs.ca], ['crl', inputs.crl]] as const) {
    if (f?.bytes === undefined) continue;
    hash.update(`${role}\0${f.bytes.length}\0`).update(f.bytes);
  }
  return hash.update(`passphrase\0${inputs.pass !== undefined ? 1 : 0}`).digest('hex');
}

interface LoadedKey {
  readonly key?: KeyRef;
  readonly block?: PemBlock;
}

/** Pick the private key block, decrypt it with the passphrase when it is encrypted. */
function loadKey(inputs: Inputs, blocks: PemBlock[], passphrase: string | undefined, problems: Problem[]): LoadedKey {
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
function loadCrls(file: ReadFile, problems: Problem[]): { crls: CrlRef[]; blocks: PemBlock[] } {
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

/** Inspect everything tls: names; `material` is set only when no error was found. */
export async function inspectTls(tls: TlsConfig, opts: InspectOptions = {}): Promise<InspectResult> {
  const now = opts.now ?? new Date();
  const problems: Problem[] = [];
  const certPath = tls.bundle ?? tls.cert;
  if (certPath === undefined) {
    problems.push(problem('error', 'CG_KEY_MISSING', 'tls sets neither bundle nor cert', { hint: 'set tls.bundle (key + certificates in one file) or tls.cert (+ tls.key)' }));
    return { problems };
  }
  const inputs = await readInputs(tls, certPath, problems);
  await checkPermissions(inputs, tls, problems);

  const certBlocks = blocksOf(inputs.cert, 'CERTIFICATE blocks', problems);
  const certs = parseCerts(inputs.cert, certBlocks, problems);
  if (inputs.cert.bytes !== undefined && certBlocks.length > 0 && !certBlocks.some((b) => b.kind === 'certificate')) {
    problems.push(problem('error', 'CG_PEM_EMPTY', `the file holds no CERTIFICATE block${foundLabels(certBlocks)}`, { file: certPath }));
  }
  const keyBlocks = inputs.keyPath === certPath ? certBlocks : blocksOf(inputs.key, 'a PRIVATE KEY block', problems, 'CG_KEY_MISSING');
  const passphrase = inputs.pass?.bytes?.toString('utf8').replace(/[\r\n]+$/, '');
  const { key, block: keyBlock } = loadKey(inputs, keyBlocks, passphrase, problems);
  const cas = parseCerts(inputs.ca, blocksOf(inputs.ca, 'CA CERTIFICATE blocks', problems, 'CG_CA_EMPTY'), problems);
  const { crls, blocks: crlBlocks } = inputs.crl !== undefined ? loadCrls(inputs.crl, problems) : { crls: [], blocks: [] };

  // ---- checks
  let leaf: CertRef | undefined;
  let chain: CertRef[] = [];
  if (key !== undefined && certs.length > 0) {
    const server = checkServerChain({ key, certs, knownIssuers: cas });
    problems.push(...server.problems);
    ({ leaf, chain } = server);
    if (leaf !== undefined) problems.push(...checkLeaf(leaf, now, opts.listenHost), ...checkChainValidity(chain, now));
  }
  if (inputs.ca.bytes !== undefined && !problems.some((p) => p.code === 'CG_CA_EMPTY')) {
    const serverChain = leaf !== undefined ? [leaf, ...chain].map((c) => c.cert) : undefined;
    problems.push(...checkClientCas({ cas, file: inputs.ca.path, now, ...(serverChain && { serverChain }) }));
  }
  if (inputs.crl?.bytes !== undefined && crls.length > 0) {
    problems.push(...(checkCrls({ crls, cas, file: inputs.crl.path, now, mode: tls.crl_mode, stale: tls.crl_stale })).problems);
  }
  if (problems.some((p) => p.severity === 'error')) return { problems };
  if (leaf === undefined || keyBlock === undefined) {
    // Defensive: every path that leaves no leaf has reported an error above.
    problems.push(problem('error', 'CG_KEY_MISSING', 'no usable private key and certificate', { file: certPath }));
    return { problems };
  }

  // ---- assemble, then let OpenSSL confirm it
  const options = {
    key: keyBlock.pem,
    cert: [leaf, ...chain].map((c) => toPem('CERTIFICATE', c.cert.raw)).join(''),
    ca: cas.map((c) => toPem('CERTIFICATE', c.cert.raw)),
    ...(passphrase !== undefined && { passphrase }),
    ...(inputs.crl !== undefined && { crl: crlBlocks.map((b) => b.pem) }),
  };
  const contextError = validateContext(options, { cert: certPath, key: inputs.keyPath, ca: inputs.ca.path, crl: inputs.crl?.path });
  if (contextError !== undefined) return { problems: [...problems, contextError] };
  const material: TlsMaterial = {
    ...options,
    leaf: leaf.cert,
    chain: chain.map((c) => c.cert),
    clientCas: cas.map((c) => c.cert),
    crls: crls.map((c) => ({ issuer: crlIssuerLabel(c.crl), thisUpdate: c.crl.thisUpdate, nextUpdate: c.crl.nextUpdate ?? NEVER })),
    digest: digestOf(inputs),
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
  if (code === 'ERR_OSSL_X509_KEY_VALUES_MISMATCH') return problem('error', 'CG_KEY_MISMATCH', text, { file: files.key });
  if (code === 'ERR_OSSL_BAD_DECRYPT' || code === 'ERR_OSSL_EVP_BAD_DECRYPT' || code === 'ERR_OSSL_CRYPTO_INTERRUPTED_OR_CANCELLED') {
    return problem('error', 'CG_KEY_PASSPHRASE', text, { file: files.key });
  }
  return problem('error', 'CG_TLS_REJECTED', text, { file });
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
