/**
 * Reads the TLS files named in the config, checks them, and turns them into what
 * `tls.createSecureContext()` / `server.setSecureContext()` needs:
 * the leaf first then its intermediates in issuing order, client CAs one PEM each,
 * CRLs one PEM each (Node loads only the first CRL of a concatenated buffer).
 *
 * read (material/files.ts, the only I/O) → parse (material/parse.ts) → check (checks/) → assemble (here)
 * → let OpenSSL confirm (material/confirm.ts).
 */
import type { X509Certificate } from 'node:crypto';
import { blocksLoading, CertgateError, problem, type Problem } from '../errors.js';
import type { TlsConfig } from '../config/types.js';
import { toPem } from '../x509/pem.js';
import { crlIssuerLabel } from '../x509/crl.js';
import { checkClientCas } from './checks/client-cas.js';
import { checkCrls } from './checks/crls.js';
import { checkLeaf } from './checks/leaf.js';
import type { CertRef } from './checks/refs.js';
import { checkChainValidity, checkServerChain } from './checks/server-chain.js';
import { validateContext } from './material/confirm.js';
import { checkPermissions, digestOf, fileDigestsOf, readInputs } from './material/files.js';
import { blocksOf, foundLabels, loadCrls, loadKey, parseCerts } from './material/parse.js';

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
  /** sha256 (hex) of each input file's bytes, by its configured path: which files a reload changed. */
  readonly fileDigests: Readonly<Record<string, string>>;
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
  /** Per-file SHA-256 of what was read, also when the material was refused (the reloader credits a later success
   * to the file whose change made it load). Absent when nothing could be read. */
  readonly fileDigests?: Readonly<Record<string, string>>;
}

const NEVER = new Date(8.64e15);

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
  // A loadable error (a stale CRL, an expired client CA) refuses clients, not the material: it loads.
  const fileDigests = fileDigestsOf(inputs);
  if (problems.some(blocksLoading)) return { problems, fileDigests };
  if (leaf === undefined || keyBlock === undefined) {
    // Defensive: every path that leaves no leaf has reported an error above.
    problems.push(problem('error', 'CG_KEY_MISSING', 'no usable private key and certificate', { file: certPath }));
    return { problems, fileDigests };
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
  if (contextError !== undefined) return { problems: [...problems, contextError], fileDigests };
  const material: TlsMaterial = {
    ...options,
    leaf: leaf.cert,
    chain: chain.map((c) => c.cert),
    clientCas: cas.map((c) => c.cert),
    crls: crls.map((c) => ({ issuer: crlIssuerLabel(c.crl), thisUpdate: c.crl.thisUpdate, nextUpdate: c.crl.nextUpdate ?? NEVER })),
    digest: digestOf(inputs),
    fileDigests,
    problems: [...problems],
  };
  return { material, problems };
}

/** Like inspectTls, but throws a CertgateError (first error that stops loading; `problems` = all errors) when unusable. */
export async function loadTls(tls: TlsConfig, opts: InspectOptions = {}): Promise<TlsMaterial> {
  const { material, problems } = await inspectTls(tls, opts);
  if (material !== undefined) return material;
  const errors = problems.filter((p) => p.severity === 'error');
  const first = errors.find(blocksLoading) ?? problem('error', 'CG_KEY_MISSING', 'the TLS material is not usable');
  throw new CertgateError(first.code, first.message, {
    ...(first.hint !== undefined && { hint: first.hint }),
    ...(first.file !== undefined && { file: first.file }),
    problems: errors,
  });
}
