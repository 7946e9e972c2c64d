/**
 * headers.assertion's keys (issue 18): the PEM files → the key that signs X-Client-Cert-Assertion and the
 * JWKS every key is published in. The first file signs; every file is published, so a new key can be
 * published before it signs and an old one kept while tokens signed with it are alive.
 *
 * The algorithm follows from the key (RFC 7518 §3.4, RFC 8037): an EC P-256 key signs ES256, an Ed25519
 * key EdDSA; RSA and other curves are refused (ES256/EdDSA tokens are small and every JOSE library the
 * examples use verifies them). `kid` is the key's RFC 7638 JWK thumbprint (SHA-256), so the same key has
 * the same kid in every process and after every restart, and a verifier can pick the key by it.
 * JWK export, thumbprints and signing are jose's (a well-kept library, DEPENDENCIES.md), never hand-made.
 *
 * Loaded with the configuration generation (proxy/generation.ts) and validated on the path `certgate check`
 * and a live reload share (app/validate.ts): a bad key on reload refuses the reload, the old keys serve on.
 */
import { createHash, createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { calculateJwkThumbprint, exportJWK, importPKCS8, type JWK } from 'jose';
import type { AssertionConfig } from '../config/types.js';
import { CertgateError, problem, type Problem } from '../errors.js';

export type AssertionAlg = 'ES256' | 'EdDSA';

/** One published key, as it appears in the JWKS. */
export interface PublishedJwk extends JWK {
  readonly kid: string;
  readonly alg: AssertionAlg;
  readonly use: 'sig';
}

/** `GET /.well-known/jwks.json` and `certgate assertion jwks`. */
export interface JwksDocument {
  readonly keys: readonly PublishedJwk[];
}

export interface AssertionKeys {
  /** The first key file's private key, ready for jose's sign (a WebCrypto key, imported once). */
  readonly signing: { readonly kid: string; readonly alg: AssertionAlg; readonly key: CryptoKey };
  readonly jwks: JwksDocument;
  /** SHA-256 over every key file's bytes, in order: a live reload compares it to see a rotated key. */
  readonly digest: string;
}

interface ParsedKey {
  readonly alg: AssertionAlg;
  readonly publicKey: KeyObject;
  readonly privateKey?: KeyObject;
}

/** Why a key cannot sign assertions (undefined = it can): the algorithm, from the key's type. */
export function algorithmOf(key: KeyObject): AssertionAlg | string {
  if (key.asymmetricKeyType === 'ed25519') return 'EdDSA';
  if (key.asymmetricKeyType === 'ec') {
    const curve = key.asymmetricKeyDetails?.namedCurve;
    return curve === 'prime256v1' ? 'ES256' : `an EC key on ${curve ?? 'an unknown curve'} (only P-256 signs ES256)`;
  }
  const bits = key.asymmetricKeyDetails?.modulusLength;
  return `a${key.asymmetricKeyType === 'rsa' || key.asymmetricKeyType === 'rsa-pss' ? 'n' : ''} ${(key.asymmetricKeyType ?? 'unknown').toUpperCase()}${bits !== undefined ? ` ${bits}-bit` : ''} key`;
}

/**
 * The keys of `cfg`, or every problem with them (each naming the config file:line of the key_files entry,
 * the key file and the fix). Private key files readable by every user are refused as the TLS key is
 * (tls.allow_insecure_key_permissions lets them through): whoever holds the signing key can forge any identity.
 */
export async function inspectAssertionKeys(
  cfg: AssertionConfig, configFile: string, allowInsecurePermissions = false,
): Promise<{ keys?: AssertionKeys; problems: Problem[] }> {
  const problems: Problem[] = [];
  const parsed: (ParsedKey | undefined)[] = [];
  const hash = createHash('sha256');
  for (const [i, file] of cfg.key_files.entries()) {
    const at = { file: configFile, line: cfg.lines[i] };
    const where = `headers.assertion.key_files[${i}] ${file}`;
    let pem: Buffer;
    try {
      pem = await readFile(file);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? 'unknown';
      problems.push({ ...problem('error', 'CG_FILE_READ', `${where}: cannot read it (${code})`), ...at });
      parsed.push(undefined);
      continue;
    }
    hash.update(`${file}\n`).update(pem).update('\n');
    const key = parseKey(pem, i === 0);
    if (typeof key === 'string') {
      problems.push({ ...problem('error', 'CG_ASSERTION_KEY', `${where}: ${key}`), ...at });
      parsed.push(undefined);
      continue;
    }
    if (key.privateKey !== undefined && !allowInsecurePermissions && await worldReadable(file)) {
      problems.push({
        ...problem('error', 'CG_KEY_PERMISSIONS', `${where}: the signing key file is readable by every user; whoever reads it can forge any client identity`,
          { hint: `chmod 600 ${file} (or 640/440 with a group), or set tls.allow_insecure_key_permissions: true` }), ...at,
      });
    }
    parsed.push(key);
  }
  if (problems.length > 0) return { problems };
  const published: PublishedJwk[] = [];
  for (const [i, key] of (parsed as ParsedKey[]).entries()) {
    const jwk = await exportJWK(key.publicKey);
    const kid = await calculateJwkThumbprint(jwk, 'sha256');
    const twin = published.findIndex((k) => k.kid === kid);
    if (twin >= 0) {
      problems.push({
        ...problem('error', 'CG_ASSERTION_KEY', `headers.assertion.key_files[${i}] ${cfg.key_files[i]}: the same key as key_files[${twin}]`,
          { hint: 'list each key once (the first signs, the others are only published)' }),
        file: configFile, line: cfg.lines[i],
      });
    }
    published.push({ ...jwk, kid, alg: key.alg, use: 'sig' });
  }
  if (problems.length > 0) return { problems };
  const first = parsed[0]!;
  // WebCrypto keys, imported once: jose signs with them without converting a KeyObject per signature.
  const key = await importPKCS8(first.privateKey!.export({ format: 'pem', type: 'pkcs8' }) as string, first.alg);
  return {
    keys: { signing: { kid: published[0]!.kid, alg: first.alg, key }, jwks: Object.freeze({ keys: Object.freeze(published) }), digest: hash.digest('hex') },
    problems,
  };
}

/** The keys of `cfg`; throws CertgateError carrying every problem (the first one as its own). */
export async function loadAssertionKeys(cfg: AssertionConfig, configFile: string, allowInsecurePermissions = false): Promise<AssertionKeys> {
  const { keys, problems } = await inspectAssertionKeys(cfg, configFile, allowInsecurePermissions);
  if (keys !== undefined) return keys;
  const first = problems[0]!;
  throw new CertgateError(first.code, first.message, {
    ...(first.hint !== undefined && { hint: first.hint }), ...(first.file !== undefined && { file: first.file }),
    ...(first.line !== undefined && { line: first.line }), problems,
  });
}

/** A PEM private key (or, not for the signing key, a public key) → the key, or why it cannot be used. */
function parseKey(pem: Buffer, signs: boolean): ParsedKey | string {
  // OpenSSL answers an encrypted key without a passphrase with "interrupted or cancelled": tell it by its PEM.
  const text = pem.toString('latin1');
  if (text.includes('-----BEGIN ENCRYPTED PRIVATE KEY-----') || /Proc-Type:\s*4,ENCRYPTED/.test(text)) {
    return 'the key is encrypted; certgate signs with an unencrypted key (openssl pkey -in KEY -out KEY.plain, then chmod 600)';
  }
  let privateKey: KeyObject | undefined;
  let publicKey: KeyObject;
  try {
    privateKey = createPrivateKey(pem);
    publicKey = createPublicKey(privateKey);
  } catch {
    try {
      publicKey = createPublicKey(pem);
    } catch {
      return 'no private key PEM in it (-----BEGIN PRIVATE KEY----- or -----BEGIN EC PRIVATE KEY-----)';
    }
    // A public key alone can be published (a key about to sign, or one retired) but cannot sign.
    if (signs) return 'a public key: the first key file signs and must hold the private key';
  }
  const alg = algorithmOf(publicKey);
  if (alg !== 'ES256' && alg !== 'EdDSA') {
    return `${alg} cannot sign assertions: use an EC P-256 key (ES256: openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256) or an Ed25519 key (EdDSA: openssl genpkey -algorithm Ed25519)`;
  }
  return { alg, publicKey, ...(privateKey !== undefined && { privateKey }) };
}

async function worldReadable(file: string): Promise<boolean> {
  try {
    return ((await stat(file)).mode & 0o004) !== 0;
  } catch {
    return false;
  }
}
