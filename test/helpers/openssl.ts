/**
 * Test-time certificates for the identity unit tests, two ways:
 * - `CertLab.request()` has the real `openssl req` build them (what users' CAs produce);
 * - `craftCertificate()` builds DER by hand (validly signed), for names and SANs no CLI can make.
 * `CertLab.print()` asks the real `openssl x509` how it prints them: the oracle for printDn.
 */
import { execFile } from 'node:child_process';
import { generateKeyPairSync, sign } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

export async function openssl(args: readonly string[]): Promise<string> {
  const { stdout } = await execFileAsync('openssl', args, { encoding: 'utf8' });
  return stdout;
}

/** What `openssl x509 -noout -subject -issuer ... -nameopt RFC2253` printed, by field. */
export type OpensslFields = Readonly<Record<string, string>>;

export interface RequestOptions {
  /** `-subj` text; build it with `subj()`. */
  readonly subj: string;
  /** `string_mask` for the request: `utf8only` (default), `default`, `MASK:0x800` (BMP) ... */
  readonly mask?: string;
  /** Extra config lines appended to the `[ext]` section (extensions of the certificate). */
  readonly ext?: readonly string[];
  /** Extra config sections (e.g. an `[alt]` section for subjectAltName = @alt). */
  readonly sections?: string;
  /** Sign with this CA (cert file); the lab key otherwise (self-signed). */
  readonly caCert?: string;
  /** The CA's key file (default: the lab key). */
  readonly caKey?: string;
  /** The certificate's key file (default: the lab key). */
  readonly key?: string;
  readonly days?: number;
}

/** A temp dir with one P-256 key every certificate reuses (keygen is the slow part). */
export class CertLab {
  readonly dir: string;
  readonly keyFile: string;
  readonly key: KeyObject;
  private count = 0;

  private constructor() {
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'certgate-identity-'));
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    this.key = privateKey;
    this.keyFile = this.write('key.pem', privateKey.export({ type: 'pkcs8', format: 'pem' }).toString());
  }

  static create(): CertLab {
    return new CertLab();
  }

  write(name: string, content: string | Buffer): string {
    const file = path.join(this.dir, name);
    fs.writeFileSync(file, content, { mode: 0o600 });
    return file;
  }

  /** A fresh P-256 key file, for chains whose certificates must not share a key. */
  newKey(name: string): string {
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    return this.write(name, privateKey.export({ type: 'pkcs8', format: 'pem' }).toString());
  }

  remove(): void {
    fs.rmSync(this.dir, { recursive: true, force: true });
  }

  /** One `openssl req -x509` call; returns the certificate file. */
  async request(opts: RequestOptions): Promise<string> {
    const n = ++this.count;
    const config = this.write(`req-${n}.cnf`, requestConfig(opts));
    const out = path.join(this.dir, `cert-${n}.pem`);
    const args = ['req', '-x509', '-new', '-config', config, '-key', opts.key ?? this.keyFile, '-utf8', '-subj', opts.subj,
      '-extensions', 'ext', '-days', String(opts.days ?? 1), '-out', out];
    if (opts.caCert !== undefined) args.push('-CA', opts.caCert, '-CAkey', opts.caKey ?? this.keyFile);
    await openssl(args);
    return out;
  }

  /** `openssl x509 -noout <fields> -nameopt RFC2253`, parsed into `{ subject, issuer, ... }`. */
  async print(certFile: string, fields: readonly string[] = ['-subject', '-issuer'], inform = 'PEM'): Promise<OpensslFields> {
    const stdout = await openssl(['x509', '-inform', inform, '-in', certFile, '-noout', ...fields, '-nameopt', 'RFC2253']);
    const out: Record<string, string> = {};
    for (const line of stdout.split('\n')) {
      const eq = line.indexOf('=');
      if (eq > 0) out[line.slice(0, eq)] = line.slice(eq + 1);
    }
    return out;
  }

  /** Writes crafted DER and prints it; `undefined` when openssl refuses to parse it. */
  async printDer(der: Buffer): Promise<OpensslFields | undefined> {
    const file = this.write(`crafted-${++this.count}.der`, der);
    try {
      return await this.print(file, ['-subject', '-issuer'], 'DER');
    } catch {
      return undefined;
    }
  }
}

/** The config for one request: an OID openssl does not know, the string mask, extensions. */
function requestConfig(opts: RequestOptions): string {
  return [
    'oid_section = new_oids',
    '[new_oids]',
    // Known to this one `req` process only, so `openssl x509` prints it as an unknown OID.
    'certgateTestAttr = 1.3.6.1.4.1.99999.1',
    '[req]',
    'distinguished_name = dn',
    `string_mask = ${opts.mask ?? 'utf8only'}`,
    '[dn]',
    '[ext]',
    'subjectKeyIdentifier = hash',
    ...(opts.ext ?? []),
    opts.sections ?? '',
  ].join('\n');
}

/** `-subj` text from RDNs of [type, value] (multi-valued when an RDN has several). */
export function subj(rdns: ReadonlyArray<ReadonlyArray<readonly [string, string]>>): string {
  const escape = (v: string): string => v.replace(/[\\/+]/g, '\\$&');
  return rdns.map((rdn) => '/' + rdn.map(([t, v]) => `${t}=${escape(v)}`).join('+')).join('');
}

// ---- A tiny DER writer -------------------------------------------------------------------

function lengthOctets(n: number): Buffer {
  if (n < 0x80) return Buffer.of(n);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

export function tlv(tag: number, ...contents: Array<Buffer | Uint8Array | readonly number[]>): Buffer {
  const body = Buffer.concat(contents.map((c) => Buffer.from(c as Uint8Array)));
  return Buffer.concat([Buffer.of(tag), lengthOctets(body.length), body]);
}

export function oid(dotted: string): Buffer {
  const arcs = dotted.split('.').map(BigInt);
  const [a = 0n, b = 0n, ...rest] = arcs;
  const bytes: number[] = [];
  for (const arc of [a * 40n + b, ...rest]) {
    const chunk: number[] = [];
    let v = arc;
    do {
      chunk.unshift(Number(v & 0x7fn) | (chunk.length > 0 ? 0x80 : 0));
      v >>= 7n;
    } while (v > 0n);
    bytes.push(...chunk);
  }
  return tlv(0x06, bytes);
}

/** AttributeTypeAndValue with a value of any tag. */
export function ava(type: string, tag: number, value: Buffer | string): Buffer {
  return tlv(0x30, oid(type), tlv(tag, typeof value === 'string' ? Buffer.from(value, 'utf8') : value));
}

export const rdn = (...avas: Buffer[]): Buffer => tlv(0x31, ...avas);
export const name = (...rdns: Buffer[]): Buffer => tlv(0x30, ...rdns);

export function utf16be(text: string): Buffer {
  return Buffer.from(text, 'utf16le').swap16();
}

/** GeneralNames with the given [tag, contents] entries, wrapped as a SAN extension. */
export function sanExtension(entries: ReadonlyArray<readonly [number, Buffer | string]>): Buffer {
  const names = tlv(0x30, ...entries.map(([tag, v]) => tlv(tag, typeof v === 'string' ? Buffer.from(v, 'utf8') : v)));
  return tlv(0x30, oid('2.5.29.17'), tlv(0x04, names));
}

const ECDSA_SHA256 = '1.2.840.10045.4.3.2';

/** A v3 certificate with the given names and extensions, signed by `key` (P-256). */
export function craftCertificate(key: KeyObject, opts: { subject: Buffer; issuer?: Buffer; extensions?: Buffer[] }): Buffer {
  const spki = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'der' });
  const algorithm = tlv(0x30, oid(ECDSA_SHA256));
  const validity = tlv(0x30, tlv(0x17, Buffer.from('260101000000Z')), tlv(0x18, Buffer.from('20510101000000Z')));
  const tbs = tlv(0x30,
    tlv(0xa0, tlv(0x02, [2])),
    tlv(0x02, [0x0a, 0x0b, 0x0c]),
    algorithm,
    opts.issuer ?? opts.subject,
    validity,
    opts.subject,
    spki,
    ...(opts.extensions === undefined ? [] : [tlv(0xa3, tlv(0x30, ...opts.extensions))]));
  const signature = sign('sha256', tbs, key);
  return tlv(0x30, tbs, algorithm, tlv(0x03, [0], signature));
}
