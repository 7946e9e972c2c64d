/**
 * PEM splitting and classification (pure: text in, blocks out).
 *
 * Tolerates what real files contain: CRLF line endings, indentation and trailing blanks,
 * text between blocks (openssl's "subject=..." / "issuer=..." lines, "Bag Attributes"),
 * RFC 1421 headers (traditional `Proc-Type: 4,ENCRYPTED` keys).
 */

export type PemKind = 'key' | 'certificate' | 'crl' | 'unknown';

export interface PemBlock {
  /** 1-based position among all BEGIN/END blocks of the file (what messages call "block N"). */
  readonly index: number;
  /** 1-based line of the BEGIN line. */
  readonly line: number;
  /** The label between BEGIN and the dashes, e.g. "EC PRIVATE KEY". */
  readonly label: string;
  readonly kind: PemKind;
  /** A key that needs a passphrase: ENCRYPTED PRIVATE KEY, or a traditional key with Proc-Type 4,ENCRYPTED. */
  readonly encrypted: boolean;
  /** RFC 1421 headers (Proc-Type, DEK-Info), in order. */
  readonly headers: ReadonlyArray<readonly [string, string]>;
  /** The decoded body; empty when `error` is set. */
  readonly der: Buffer;
  /** The block re-emitted canonically: LF endings, 64-column base64, headers kept. */
  readonly pem: string;
  /** Why the block is unusable (unterminated, bad base64, empty body); absent when it decoded. */
  readonly error?: string;
}

const KEY_LABELS = new Set([
  'PRIVATE KEY', 'ENCRYPTED PRIVATE KEY', 'EC PRIVATE KEY', 'RSA PRIVATE KEY', 'DSA PRIVATE KEY',
]);
const CERT_LABELS = new Set(['CERTIFICATE', 'X509 CERTIFICATE', 'TRUSTED CERTIFICATE']);
/** "CRL" is what @peculiar/x509's toString('pem') writes; OpenSSL only reads "X509 CRL". */
const CRL_LABELS = new Set(['X509 CRL', 'CRL']);

const BEGIN = /^-----BEGIN ([A-Z0-9 ]+)-----$/;
const END = /^-----END ([A-Z0-9 ]+)-----$/;
const HEADER = /^([A-Za-z0-9-]+):\s*(.*)$/;
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

export function classifyLabel(label: string): PemKind {
  if (KEY_LABELS.has(label) || label.endsWith(' PRIVATE KEY')) return 'key';
  if (CERT_LABELS.has(label)) return 'certificate';
  if (CRL_LABELS.has(label)) return 'crl';
  return 'unknown';
}

/** Label to use when re-emitting a block (certificates and CRLs get the label OpenSSL expects). */
function canonicalLabel(label: string, kind: PemKind): string {
  if (kind === 'crl') return 'X509 CRL';
  if (kind === 'certificate' && label === 'X509 CERTIFICATE') return 'CERTIFICATE';
  return label;
}

export function toPem(label: string, der: Uint8Array, headers: ReadonlyArray<readonly [string, string]> = []): string {
  const b64 = Buffer.from(der).toString('base64');
  const lines = [`-----BEGIN ${label}-----`];
  for (const [k, v] of headers) lines.push(`${k}: ${v}`);
  if (headers.length > 0) lines.push('');
  for (let i = 0; i < b64.length; i += 64) lines.push(b64.slice(i, i + 64));
  lines.push(`-----END ${label}-----`, '');
  return lines.join('\n');
}

/** Split PEM text into its blocks, in file order. Text outside blocks is ignored. */
export function parsePem(input: string | Buffer): PemBlock[] {
  const text = typeof input === 'string' ? input : input.toString('latin1');
  const lines = text.replace(/^\uFEFF/, '').split(/\r\n|\r|\n/);
  const blocks: PemBlock[] = [];
  let open: { label: string; line: number; body: string[] } | undefined;

  const close = ({ label, line, body }: { label: string; line: number; body: string[] }, error?: string): void => {
    const kind = classifyLabel(label);
    const headers: Array<[string, string]> = [];
    let i = 0;
    // RFC 1421 headers: "Name: value" lines before the first blank line.
    if (body.length > 0 && body.some((l) => l === '') && HEADER.test(body[0] ?? '')) {
      for (; i < body.length && body[i] !== ''; i++) {
        const m = HEADER.exec(body[i] ?? '');
        if (m !== null) headers.push([m[1] ?? '', m[2] ?? '']);
      }
      i++; // the blank line
    }
    const b64 = body.slice(i).map((s) => s.replace(/\s+/g, '')).join('');
    const encrypted = label === 'ENCRYPTED PRIVATE KEY'
      || headers.some(([k, v]) => k.toLowerCase() === 'proc-type' && /ENCRYPTED/i.test(v));
    let err = error;
    if (err === undefined && !BASE64.test(b64)) err = 'its body is not valid base64';
    if (err === undefined && b64.length === 0) err = 'its body is empty';
    const der = err === undefined ? Buffer.from(b64, 'base64') : Buffer.alloc(0);
    blocks.push({
      index: blocks.length + 1, line, label, kind, encrypted, headers, der,
      pem: err === undefined ? toPem(canonicalLabel(label, kind), der, headers) : '',
      ...(err !== undefined && { error: err }),
    });
  };

  for (const [n, raw] of lines.entries()) {
    const l = raw.trim();
    const begin = BEGIN.exec(l);
    if (begin !== null) {
      if (open !== undefined) close(open, `it has no "-----END ${open.label}-----" line before the next BEGIN`);
      open = { label: begin[1] ?? '', line: n + 1, body: [] };
      continue;
    }
    if (open === undefined) continue;
    const end = END.exec(l);
    if (end !== null) {
      close(open, end[1] === open.label ? undefined : `it ends with "-----END ${end[1] ?? ''}-----"`);
      open = undefined;
      continue;
    }
    open.body.push(l);
  }
  if (open !== undefined) close(open, `it has no "-----END ${open.label}-----" line`);
  return blocks;
}

/** True when the bytes look like DER (an ASN.1 SEQUENCE) rather than PEM text. */
export function looksLikeDer(bytes: Buffer): boolean {
  return bytes.length > 2 && bytes[0] === 0x30 && !bytes.includes('-----BEGIN ');
}

/** "CERTIFICATE (block 2)"-style description used in messages. */
export function describeBlock(b: Pick<PemBlock, 'index' | 'label'>): string {
  return `${b.label} (block ${b.index})`;
}
