/**
 * What the server sends, seen with `openssl s_client`: the certificate chain exactly as sent, whether
 * it asked for a client certificate (the CertificateRequest message) and which CA names it accepts.
 * Node exposes none of the CertificateRequest data, and shows the chain only after verifying it;
 * s_client prints all of it whatever the verification says. Its verdict is not used: the verified
 * connection (connect.ts) decides, this only explains. It presents the user's certificate when that
 * is usable, so certgate does not log and count a "no certificate" refusal for every probe.
 */
import { spawn } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { isIP } from 'node:net';

export interface Observation {
  /** False when openssl could not be run; `reason` says why. */
  readonly available: boolean;
  readonly reason?: string;
  /** openssl reached the server (its "CONNECTED" line). */
  readonly connected: boolean;
  /** The server's certificates as sent, leaf first. */
  readonly chain: readonly X509Certificate[];
  /** A CertificateRequest arrived (undefined when the handshake did not get that far). */
  readonly certificateRequested?: boolean;
  /** "Acceptable client certificate CA names", RFC 4514 (empty: the server named none). */
  readonly caNames: readonly string[];
  readonly protocol?: string;
  /** Alerts the server sent, e.g. "fatal certificate_required". */
  readonly alerts: readonly string[];
}

const CA_NAMES_END = /^(Client Certificate Types|Requested Signature Algorithms|Shared Requested|Peer signing|Peer signature|Server Temp Key|---)/;

/** Parses `openssl s_client -showcerts -msg -nameopt RFC2253` standard output (pure). */
export function parseSClient(stdout: string): Omit<Observation, 'available' | 'reason'> {
  const lines = stdout.split(/\r?\n/);
  const chain: X509Certificate[] = [];
  for (const m of stdout.matchAll(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g)) {
    try {
      chain.push(new X509Certificate(m[0]));
    } catch {
      // s_client printed what the server sent; a block Node cannot parse is left out of the analysis
    }
  }
  const caNames: string[] = [];
  const start = lines.indexOf('Acceptable client certificate CA names');
  if (start >= 0) {
    for (const line of lines.slice(start + 1)) {
      if (CA_NAMES_END.test(line) || line.trim() === '') break;
      caNames.push(line.trim());
    }
  }
  const handshake = (name: string): boolean => lines.some((l) => l.startsWith('<<< ') && l.includes(`Handshake [length`) && l.endsWith(`], ${name}`));
  const requested = handshake('CertificateRequest');
  // Without a CertificateRequest we only know "not asked" once the server's flight is complete.
  const serverDone = handshake('ServerHelloDone') || handshake('Finished');
  const protocol = /^New, (TLSv[\d.]+|SSLv3), Cipher is/m.exec(stdout)?.[1];
  const alerts = [...stdout.matchAll(/^<<< [^\n]*Alert \[length [0-9a-f]+\], ((?:fatal|warning) \S+)/gm)].map((m) => m[1] ?? '');
  return {
    connected: lines.some((l) => l.startsWith('CONNECTED(')),
    chain, caNames, alerts,
    ...(requested || serverDone ? { certificateRequested: requested } : {}),
    ...(protocol !== undefined && { protocol }),
  };
}

/** The user's files, so the observation is a normal client to the server (no spurious refusal logged). */
export interface ObserveClient {
  readonly cert: string;
  readonly key: string;
  readonly passFile?: string;
}

/** Runs s_client against host:port (SNI = host unless it is an IP); resolves within `timeoutMs`. */
export function observe(host: string, port: number, timeoutMs: number, client?: ObserveClient): Promise<Observation> {
  const connect = isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;
  const args = ['s_client', '-connect', connect, ...(isIP(host) === 0 ? ['-servername', host] : ['-noservername']),
    '-showcerts', '-msg', '-nameopt', 'RFC2253',
    ...(client !== undefined
      ? ['-cert', client.cert, '-key', client.key, '-cert_chain', client.cert, ...(client.passFile !== undefined ? ['-pass', `file:${client.passFile}`] : [])]
      : [])];
  return new Promise((resolve) => {
    let stdout = '';
    let settled = false;
    const done = (o: Observation): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(o);
    };
    // stdin is /dev/null: s_client sends close_notify as soon as the handshake is done and exits.
    const child = spawn('openssl', args, { stdio: ['ignore', 'pipe', 'ignore'] });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      done({ available: true, reason: `openssl s_client did not finish within ${timeoutMs} ms`, ...parseSClient(stdout) });
    }, timeoutMs);
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      if (stdout.length < 1 << 20) stdout += d;
    });
    child.once('error', (err: NodeJS.ErrnoException) => {
      done({
        available: false, connected: false, chain: [], caNames: [], alerts: [],
        reason: err.code === 'ENOENT' ? 'openssl is not installed (not found on PATH)' : `openssl could not be run: ${err.message}`,
      });
    });
    child.once('close', () => done({ available: true, ...parseSClient(stdout) }));
  });
}
