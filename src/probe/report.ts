/**
 * The probe's report: the data (`--json` prints it as is) and its plain-text rendering, plus the
 * same call written for curl, Python requests and an ssl.SSLContext (aiohttp/httpx). Pure.
 */
import { formatProblem, type Problem } from '../errors.js';
import type { CertSummary } from './names.js';
import { validityText } from './names.js';
import type { WhoamiAnswer } from '../answers/whoami.js';

export interface ProbeReport {
  readonly url: string;
  readonly host: string;
  readonly port: number;
  /** What verifies the server: the --ca file name, or the built-in roots phrase. */
  readonly ca: string;
  readonly certFile?: string;
  readonly keyFile?: string;
  readonly server: {
    /** Leaf first. */
    readonly chain: readonly CertSummary[];
    /** Where `chain` comes from: "sent" (openssl s_client: exactly what the server sent), "linked" (Node, after verification), "none". */
    readonly chainSource: 'sent' | 'linked' | 'none';
    readonly trusted?: boolean;
    /** Leaf first, to the anchor. */
    readonly path: readonly string[];
  };
  readonly client?: { readonly certificate: CertSummary; readonly sendsAlong: readonly string[] };
  /** Absent when openssl could not tell (not installed, or no handshake). */
  readonly certificateRequest?: {
    readonly requested: boolean;
    readonly caNames: readonly string[];
    readonly acceptedBy?: string;
    /** Sent from the --ca file: OpenSSL clients complete a lone leaf's chain from their CA store. */
    readonly completedFromCa?: readonly string[];
  };
  readonly handshake: {
    readonly completed: boolean;
    /** A client certificate was configured for the connection (it is sent only when the server asks). */
    readonly clientCertificateSent: boolean;
    readonly protocol?: string;
    readonly cipher?: string;
    readonly error?: { readonly code: string; readonly message: string };
  };
  readonly http?: { readonly status: number; readonly contentType?: string; readonly bytes: number; readonly body?: unknown };
  readonly whoami?: { readonly path: string; readonly status: number; readonly answer?: WhoamiAnswer };
  readonly findings: readonly Problem[];
  /** No error finding. */
  readonly ok: boolean;
  readonly equivalent: { readonly curl: string; readonly requests: readonly string[]; readonly sslContext: readonly string[] };
}

export interface EquivalentInput {
  readonly url: string;
  readonly cert?: string;
  readonly key?: string;
  readonly passFile?: string;
  readonly ca?: string;
  readonly encryptedKey: boolean;
}

/** A shell word: bare when safe, else single-quoted. */
function sh(s: string): string {
  return /^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replaceAll("'", `'\\''`)}'`;
}

function py(s: string): string {
  return JSON.stringify(s);
}

export function equivalentCalls(e: EquivalentInput): ProbeReport['equivalent'] {
  const curl = ['curl',
    ...(e.cert !== undefined ? ['--cert', sh(e.cert)] : []),
    ...(e.key !== undefined ? ['--key', sh(e.key)] : []),
    ...(e.passFile !== undefined ? ['--pass', `"$(cat ${sh(e.passFile)})"`] : []),
    ...(e.ca !== undefined ? ['--cacert', sh(e.ca)] : []),
    sh(e.url)].join(' ');
  const certArg = e.cert === undefined ? '' : e.key === undefined ? `, cert=${py(e.cert)}` : `, cert=(${py(e.cert)}, ${py(e.key)})`;
  const verify = e.ca !== undefined ? py(e.ca) : 'True';
  const requests = e.encryptedKey
    ? [
      '# requests cannot use an encrypted key (it has no passphrase argument); decrypt a copy first:',
      `#   openssl pkey -in ${sh(e.key ?? e.cert ?? 'KEY')}${e.passFile !== undefined ? ` -passin file:${sh(e.passFile)}` : ''} -out client.plain.key && chmod 600 client.plain.key`,
      `requests.get(${py(e.url)}, cert=(${py(e.cert ?? 'CERT')}, "client.plain.key"), verify=${verify})`,
    ]
    : [`requests.get(${py(e.url)}${certArg}, verify=${verify})`];
  const sslContext = [
    `ctx = ssl.create_default_context(${e.ca !== undefined ? `cafile=${py(e.ca)}` : ''})  # Purpose.SERVER_AUTH, the default; ssl.Purpose.CLIENT_AUTH is for servers`,
    ...(e.cert !== undefined
      ? [`ctx.load_cert_chain(${py(e.cert)}${e.key !== undefined ? `, ${py(e.key)}` : ''}${e.passFile !== undefined ? `, password=open(${py(e.passFile)}).read().rstrip("\\n")` : ''})`]
      : []),
  ];
  return { curl, requests, sslContext };
}

function certLines(c: CertSummary, indent: string): string[] {
  return [`${indent}${c.subject}`, `${indent}    issued by ${c.issuer}; ${validityText(c)}`];
}

/** The human report: what happened, step by step, then the diagnosis and the equivalent calls. */
export function renderText(r: ProbeReport): string[] {
  const out: string[] = [`certgate probe ${r.url}`];
  out.push(`  server certificate verified with: ${r.ca}`);
  out.push(`  client certificate: ${r.certFile === undefined ? 'none given' : `${r.certFile}${r.keyFile !== undefined ? ` (key ${r.keyFile})` : ''}`}`);

  out.push('', r.server.chainSource === 'none'
    ? 'Server certificate chain: not seen (no handshake, and openssl could not show it)'
    : `Server certificate chain, ${r.server.chainSource === 'sent' ? 'as the server sent it' : 'as verified'}:`);
  r.server.chain.forEach((c, i) => out.push(`  ${i}  ${c.subject}`, `       issued by ${c.issuer}; ${validityText(c)}`));
  if (r.server.trusted === true) out.push(`  trusted: ${r.server.path.join(' <- ')}`);
  else if (r.server.trusted === false) out.push(`  NOT trusted with ${r.ca}: ${r.server.path.join(' <- ')} <- ? (see below)`);

  out.push('', 'Client certificate:');
  if (r.client === undefined) out.push(r.certFile === undefined ? '  none given (--cert)' : '  not usable (see below)');
  else {
    out.push(...certLines(r.client.certificate, '  '));
    if (r.client.sendsAlong.length > 0) out.push(`  sent along with it: ${r.client.sendsAlong.join('; ')}`);
  }
  const cr = r.certificateRequest;
  if (cr === undefined) out.push('  whether the server asks for one: unknown (see below)');
  else if (!cr.requested) out.push('  the server does not ask for a client certificate');
  else if (cr.caNames.length === 0) out.push('  the server asks for a client certificate and names no CAs');
  else {
    out.push('  the server asks for a client certificate issued by one of:', ...cr.caNames.map((n) => `    ${n}`));
    if (r.client !== undefined) {
      if (cr.completedFromCa !== undefined) {
        out.push(`  sent along from ${r.ca} (OpenSSL clients complete a lone certificate's chain from their CA file): ${cr.completedFromCa.join('; ')}`);
      }
      out.push(cr.acceptedBy !== undefined ? `  yours chains to ${cr.acceptedBy}: listed` : '  yours chains to none of them (see below)');
    }
  }

  const h = r.handshake;
  const without = r.certFile !== undefined && !h.clientCertificateSent ? ' (without a client certificate: yours could not be used, see below)' : '';
  out.push('', h.completed
    ? `Handshake: completed (${[h.protocol, h.cipher].filter((x) => x !== undefined).join(', ')})${without}${h.error !== undefined ? `, then: ${h.error.message} (${h.error.code})` : ''}`
    : `Handshake: ${h.error !== undefined ? `failed: ${h.error.message} (${h.error.code})${without}` : 'not attempted (see below)'}`);
  if (r.http !== undefined) {
    out.push(`HTTP: GET ${new URL(r.url).pathname} -> ${r.http.status}${r.http.contentType !== undefined ? ` (${r.http.contentType}, ${r.http.bytes} bytes)` : ''}`);
    if (r.http.body !== undefined) out.push(`  ${JSON.stringify(r.http.body)}`);
  }
  if (r.whoami !== undefined) {
    const a = r.whoami.answer;
    if (a === undefined) {
      out.push(`certgate whoami: GET ${r.whoami.path} -> ${r.whoami.status}: not available (not certgate, or its whoami_path is not ${r.whoami.path})`);
    } else {
      out.push(`certgate whoami (GET ${r.whoami.path} -> ${r.whoami.status}): the upstream sees`);
      for (const [k, v] of Object.entries(a.headers)) out.push(`  ${k}: ${v}`);
      const rt = a.route;
      out.push(`  route for ${rt.path}: ${rt.name === null ? 'none matches (404 no_route)' : `${rt.name} (${rt.allowed === false ? `you are NOT allowed${rt.rule !== undefined ? `; rule ${rt.rule}` : ''}` : 'allowed'})`}`);
    }
  }

  out.push('', r.ok
    ? `Result: OK: the server verified ${r.client !== undefined ? 'your certificate' : 'the connection'} and answered ${r.http?.status ?? '(no HTTP answer)'}`
    : 'Result: FAILED');
  for (const p of r.findings) out.push(formatProblem(p));

  out.push('', r.ok ? 'The same call, which works:' : 'The same call (it fails the same way until the fix above is applied):');
  out.push(`  ${r.equivalent.curl}`);
  out.push('  # Python requests', ...r.equivalent.requests.map((l) => `  ${l}`));
  out.push('  # aiohttp / httpx: an ssl.SSLContext', ...r.equivalent.sslContext.map((l) => `  ${l}`));
  return out;
}
