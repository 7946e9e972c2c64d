/**
 * The probe's inputs, read and checked before anything connects: the client certificate (with the
 * intermediates the file holds after it, which is what a client sends), its key (in --key, or in the
 * cert file as in certgate's client.pem), the passphrase, and the CA file that verifies the server.
 *
 * Findings name the file and what to do, in the client's terms (curl / requests options), since
 * the person running the probe holds the client certificate, not the server config.
 */
import { createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { rootCertificates } from 'node:tls';
import { problem, type Problem } from '../errors.js';
import { parsePem, looksLikeDer, type PemBlock } from '../x509/pem.js';
import { namesOf } from './names.js';

export interface ClientFilePaths {
  readonly cert?: string;
  readonly key?: string;
  readonly passFile?: string;
  readonly ca?: string;
}

/** A certificate the client trusts for the server, and where it came from. */
export interface Anchor {
  readonly cert: X509Certificate;
  /** The --ca file's name, or "built-in roots". */
  readonly source: string;
}

export interface ClientFiles {
  readonly problems: Problem[];
  /** The client leaf, then the other certificates of the cert file (sent along, in file order). */
  readonly sent: readonly X509Certificate[];
  /** Set when a certificate and a matching, readable key were found: what Node is given. */
  readonly tls?: { readonly cert: string; readonly key: string; readonly passphrase?: string };
  /** The key was found but is encrypted (whether or not a passphrase unlocked it). */
  readonly encryptedKey: boolean;
  /** The key file (--key, or --cert when the key is inside it), once the key loaded. */
  readonly keyFile?: string;
  /** The leaf is the first certificate of the cert file (what `openssl s_client -cert` takes). */
  readonly leafFirst: boolean;
  readonly anchors: readonly Anchor[];
  /** The CA PEMs for Node's `ca` option; absent = Node's built-in roots (as requests uses certifi). */
  readonly ca?: readonly string[];
  /** "ca.pem", or a phrase for the built-in roots. */
  readonly caLabel: string;
  /** False when the --ca file is unusable: a verifying client cannot even start. */
  readonly caUsable: boolean;
}

export const BUILTIN_ROOTS = 'the built-in Mozilla roots (what requests uses through certifi)';

async function read(path: string, what: string, problems: Problem[]): Promise<Buffer | undefined> {
  try {
    return await readFile(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'it does not exist' : code === 'EACCES' ? 'permission denied' : code === 'EISDIR' ? 'it is a directory' : String(code);
    problems.push(problem('error', 'CG_FILE_READ', `cannot read ${what} ${path}: ${why}`, { file: path, hint: `check the path given to ${what}` }));
    return undefined;
  }
}

function blocksOf(bytes: Buffer, path: string, expect: string, problems: Problem[]): PemBlock[] {
  const blocks = parsePem(bytes).filter((b) => b.error === undefined);
  if (blocks.length === 0) {
    problems.push(looksLikeDer(bytes)
      ? problem('error', 'CG_PEM_PARSE', 'the file is binary DER, not PEM', { file: path,
        hint: `convert it: openssl x509 -inform der -in ${basename(path)} -out ${basename(path)}.pem (openssl pkey -inform der for a key)` })
      : problem('error', 'CG_PEM_EMPTY', `the file holds no PEM block (expected ${expect})`, { file: path, hint: 'point the option at the right file' }));
  }
  return blocks;
}

function certsOf(blocks: PemBlock[]): X509Certificate[] {
  const out: X509Certificate[] = [];
  for (const b of blocks) {
    if (b.kind !== 'certificate') continue;
    try {
      out.push(new X509Certificate(b.der));
    } catch {
      // a block that does not parse is reported by Node at connect time; nothing to pair it with here
    }
  }
  return out;
}

/** Reads --ca (or takes the built-in roots). Problems: unreadable, empty, or a non-CA certificate. */
async function loadAnchors(caFile: string | undefined, problems: Problem[]): Promise<Pick<ClientFiles, 'anchors' | 'ca' | 'caLabel' | 'caUsable'>> {
  if (caFile === undefined) {
    return { anchors: rootCertificates.map((pem) => ({ cert: new X509Certificate(pem), source: 'built-in roots' })), caLabel: BUILTIN_ROOTS, caUsable: true };
  }
  const label = basename(caFile);
  const bytes = await read(caFile, '--ca', problems);
  if (bytes === undefined) return { anchors: [], ca: [], caLabel: label, caUsable: false };
  const certs = certsOf(blocksOf(bytes, caFile, 'CERTIFICATE blocks of the CA that issued the server certificate', problems));
  for (const c of certs) {
    if (!c.ca && !c.checkIssued(c)) {
      problems.push(problem('warning', 'CG_CA_NOT_CA',
        `${namesOf(c).subject} in ${label} is not a CA certificate but an end-entity one (the server's own certificate?); clients cannot anchor trust at it`,
        { file: caFile, hint: 'pass the certificate of the CA that issued the server certificate (its root), not the server certificate itself' }));
    }
  }
  return {
    anchors: certs.map((cert) => ({ cert, source: label })), ca: certs.map((c) => c.toString()), caLabel: label,
    caUsable: certs.length > 0,
  };
}

interface KeyFound {
  readonly block?: PemBlock;
  readonly path?: string;
}

/** The key block: --key, else the first key in the cert file. */
async function findKey(files: ClientFilePaths, certBlocks: PemBlock[], problems: Problem[]): Promise<KeyFound> {
  if (files.key !== undefined) {
    const bytes = await read(files.key, '--key', problems);
    if (bytes === undefined) return {};
    const blocks = blocksOf(bytes, files.key, 'a PRIVATE KEY block', problems);
    const block = blocks.find((b) => b.kind === 'key');
    if (block === undefined && blocks.length > 0) {
      problems.push(problem('error', 'CG_KEY_MISSING', `${files.key} holds no private key (found: ${[...new Set(blocks.map((b) => b.label))].join(', ')})`, { file: files.key,
        hint: 'pass the file holding the private key with --key' }));
    }
    return { ...(block !== undefined && { block }), path: files.key };
  }
  const block = certBlocks.find((b) => b.kind === 'key');
  if (block === undefined) {
    problems.push(problem('error', 'CG_KEY_MISSING', `${files.cert ?? ''} holds no private key and --key is not given`, { file: files.cert,
      hint: 'pass the private key with --key FILE (curl --key, requests cert=(CERT, KEY))' }));
    return {};
  }
  return { block, ...(files.cert !== undefined && { path: files.cert }) };
}

/** Decrypts/loads the key; reports a missing or wrong passphrase in the client's terms (seed 002). */
async function openKey(found: KeyFound, files: ClientFilePaths, problems: Problem[]): Promise<{ key?: KeyObject; passphrase?: string; encrypted: boolean }> {
  const { block, path } = found;
  if (block === undefined || path === undefined) return { encrypted: false };
  let passphrase: string | undefined;
  if (files.passFile !== undefined) {
    const bytes = await read(files.passFile, '--pass-file', problems);
    if (bytes === undefined) return { encrypted: block.encrypted };
    passphrase = bytes.toString('utf8').replace(/[\r\n]+$/, '');
  }
  const plain = `openssl pkey -in ${basename(path)} -out ${basename(path, '.pem')}.plain.pem`;
  if (block.encrypted && passphrase === undefined) {
    problems.push(problem('error', 'CG_KEY_ENCRYPTED', `the private key in ${basename(path)} is encrypted (${block.label}) and no --pass-file was given`, { file: path,
      hint: `pass --pass-file FILE. Python requests cannot use an encrypted key at all (no passphrase argument: "passphrase protected keys don't work"): decrypt a copy with ${plain} (then chmod 600), or use ssl.SSLContext.load_cert_chain(cert, key, password=...) with aiohttp/httpx` }));
    return { encrypted: true };
  }
  try {
    const key = createPrivateKey({ key: block.pem, format: 'pem', ...(passphrase !== undefined && { passphrase }) });
    return { key, encrypted: block.encrypted, ...(passphrase !== undefined && { passphrase }) };
  } catch (err) {
    if (block.encrypted) {
      problems.push(problem('error', 'CG_KEY_PASSPHRASE', `the passphrase in ${basename(files.passFile ?? '')} does not decrypt the private key in ${basename(path)}`, { file: path,
        hint: 'check the passphrase file (one line; a trailing newline is ignored); openssl pkey -in KEY -noout asks for it interactively to try' }));
    } else {
      problems.push(problem('error', 'CG_PEM_PARSE', `the private key in ${basename(path)} (${block.label}) does not load: ${(err as Error).message}`, { file: path }));
    }
    return { encrypted: block.encrypted };
  }
}

/** Everything the probe needs from the user's files; never throws. */
export async function readClientFiles(files: ClientFilePaths): Promise<ClientFiles> {
  const problems: Problem[] = [];
  const anchors = await loadAnchors(files.ca, problems);
  if (files.cert === undefined) return { problems, sent: [], encryptedKey: false, leafFirst: false, ...anchors };
  const bytes = await read(files.cert, '--cert', problems);
  if (bytes === undefined) return { problems, sent: [], encryptedKey: false, leafFirst: false, ...anchors };
  const certBlocks = blocksOf(bytes, files.cert, 'your CERTIFICATE', problems);
  const certs = certsOf(certBlocks);
  if (certBlocks.length > 0 && certs.length === 0) {
    problems.push(problem('error', 'CG_PEM_EMPTY', `${files.cert} holds no certificate (found: ${[...new Set(certBlocks.map((b) => b.label))].join(', ')})`, { file: files.cert,
      hint: 'pass your client certificate with --cert (and its key with --key)' }));
  }
  const found = await findKey(files, certBlocks, problems);
  const { key, passphrase, encrypted } = await openKey(found, files, problems);
  const first = certs[0];
  if (key === undefined || first === undefined) return { problems, sent: certs, encryptedKey: encrypted, leafFirst: false, ...anchors };

  const leaf = certs.find((c) => c.checkPrivateKey(key));
  if (leaf === undefined) {
    problems.push(problem('error', 'CG_KEY_MISMATCH',
      `the private key in ${basename(found.path ?? '')} does not belong to ${certs.length === 1 ? 'the certificate' : `any of the ${certs.length} certificates in ${basename(files.cert)}; the first is`} ${namesOf(first).subject}`,
      { file: found.path, hint: 'pair the certificate with the key it was issued for (compare: openssl x509 -noout -pubkey -in CERT and openssl pkey -pubout -in KEY)' }));
    return { problems, sent: certs, encryptedKey: encrypted, leafFirst: false, ...anchors };
  }
  // What a TLS client sends: the leaf first, then the rest of the file.
  const sent = [leaf, ...certs.filter((c) => c !== leaf)];
  return {
    problems, sent, encryptedKey: encrypted, leafFirst: leaf === first, ...anchors,
    ...(found.path !== undefined && { keyFile: found.path }),
    tls: { cert: sent.map((c) => c.toString()).join(''), key: found.block?.pem ?? '', ...(passphrase !== undefined && { passphrase }) },
  };
}
