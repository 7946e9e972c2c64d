/**
 * Shared by the header dialect tests (issue 18): what the upstream should receive, worked out
 * independently of certgate's code — the real `openssl x509` prints the DNs, serial and SHA-1, and
 * Python's urllib.parse.quote applies AWS's documented Leaf rule ("URL-encoded PEM … with +=/ as safe
 * characters") to the PEM OpenSSL writes — and a TLS client that reports the protocol and cipher it
 * negotiated.
 */
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import tls from 'node:tls';
import { promisify } from 'node:util';
import { openssl } from './openssl.js';
import type { ClientCreds } from './client.js';

const execFileAsync = promisify(execFile);

export interface CertFacts {
  /** RFC 2253, as `openssl x509 -nameopt RFC2253` prints it. */
  readonly subject: string;
  readonly issuer: string;
  /** `openssl x509 -serial`: uppercase hex. */
  readonly serial: string;
  /** SHA-1, lowercase hex, no colons (nginx's $ssl_client_fingerprint). */
  readonly sha1: string;
  /** The PEM as OpenSSL writes it (PEM_write_bio_X509). */
  readonly pem: string;
  readonly notBefore: string;
  readonly notAfter: string;
}

/** Reads a certificate's facts with the openssl CLI. `certFile`: a PEM file holding it. */
export async function certFacts(certFile: string): Promise<CertFacts> {
  const out = await openssl(['x509', '-in', certFile, '-noout', '-subject', '-issuer', '-serial', '-fingerprint', '-sha1', '-nameopt', 'RFC2253']);
  const field = (name: string): string => {
    const line = out.split('\n').find((l) => l.toLowerCase().startsWith(`${name.toLowerCase()}=`));
    if (line === undefined) throw new Error(`openssl printed no ${name}: ${out}`);
    return line.slice(name.length + 1);
  };
  const pem = await openssl(['x509', '-in', certFile]);
  const x = new X509Certificate(pem);
  const iso = (text: string): string => new Date(text).toISOString().replace(/\.000Z$/, 'Z');
  return {
    subject: field('subject'), issuer: field('issuer'), serial: field('serial'),
    sha1: field('sha1 Fingerprint').replace(/:/g, '').toLowerCase(), pem,
    notBefore: iso(x.validFrom), notAfter: iso(x.validTo),
  };
}

/** Python's `urllib.parse.quote(text, safe=safe)`. */
export async function pythonQuote(text: string, safe: string): Promise<string> {
  const { stdout } = await execFileAsync('python3', ['-c', 'import sys, urllib.parse; sys.stdout.write(urllib.parse.quote(sys.argv[1], safe=sys.argv[2]))', text, safe]);
  return stdout;
}

export interface Exchanged {
  /** Everything the server sent until it closed. */
  readonly raw: string;
  /** What this client negotiated (OpenSSL names). */
  readonly version: string;
  readonly cipher: string;
}

/** Raw bytes over a verified TLS connection (HTTP/1.1, no ALPN h2), and what the handshake negotiated. */
export function tlsExchange(port: number, creds: ClientCreds, payload: string, opts: tls.ConnectionOptions = {}): Promise<Exchanged> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let version = '';
    let cipher = '';
    const socket = tls.connect({
      host: '127.0.0.1', port, servername: 'localhost', ca: creds.ca, ALPNProtocols: ['http/1.1'],
      ...(creds.cert !== undefined && { cert: creds.cert }), ...(creds.key !== undefined && { key: creds.key }), ...opts,
    }, () => {
      version = socket.getProtocol() ?? '';
      cipher = socket.getCipher().name;
      socket.write(payload);
    });
    const done = (): void => resolve({ raw: Buffer.concat(chunks).toString('latin1'), version, cipher });
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', (err) => (chunks.length > 0 ? done() : reject(err)));
    socket.on('close', done);
  });
}
