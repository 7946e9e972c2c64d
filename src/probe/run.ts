/**
 * `certgate probe`, top to bottom (never throws; every failure becomes a finding):
 *   1 read --cert/--key/--pass-file/--ca                    → key encrypted, wrong passphrase, mismatch, no CA
 *   2 in parallel: openssl s_client (chain as sent, CertificateRequest, CA names)
 *                  and the verified GET (Node, verification on, as requests does it)
 *   3 explain: server chain vs the CA (missing intermediate, wrong CA, hostname, expiry),
 *              client certificate vs the CA names, the GET's error or certgate's refusal body
 *   4 certgate only: GET whoami_path → the identity headers the upstream sees, the route
 */
import { CODES, type Problem } from '../errors.js';
import { readClientFiles, type ClientFilePaths, type ClientFiles } from './client-files.js';
import { observe, type Observation } from './observe.js';
import { attempt, type Attempt, type ClientTls } from './connect.js';
import { clientCertificate, clientVersusCaNames, diagnoseServerChain, outcome } from './diagnose.js';
import { namesOf, summarize } from './names.js';
import { equivalentCalls, type ProbeReport } from './report.js';
import { WHOAMI_MARK, type WhoamiAnswer } from '../answers/whoami.js';

export interface ProbeOptions {
  readonly url: URL;
  readonly files: ClientFilePaths;
  /** Where certgate answers whoami (its config's whoami_path). */
  readonly whoamiPath: string;
  readonly timeoutMs: number;
  readonly now?: Date;
}

export async function runProbe(opts: ProbeOptions): Promise<ProbeReport> {
  const now = opts.now ?? new Date();
  const { url, files } = opts;
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  const port = url.port === '' ? 443 : Number(url.port);
  const path = `${url.pathname}${url.search}`;

  const client = await readClientFiles(files);
  const findings: Problem[] = [...client.problems];
  const certGiven = files.cert !== undefined;
  const presented = client.tls !== undefined;
  const tls: ClientTls = { ...client.tls, ...(client.ca !== undefined && { ca: client.ca }) };
  // requests refuses to start without a readable CA bundle; so does the probe's verified GET.
  const observeAs = client.tls !== undefined && client.leafFirst && files.cert !== undefined && client.keyFile !== undefined
    ? { cert: files.cert, key: client.keyFile, ...(files.passFile !== undefined && { passFile: files.passFile }) }
    : undefined;
  const [seen, main] = await Promise.all([
    observe(host, port, opts.timeoutMs, observeAs),
    client.caUsable ? attempt(url, path, tls, opts.timeoutMs) : Promise.resolve(undefined),
  ]);
  if (!seen.available) {
    findings.push({ severity: 'warning', code: 'CG_PROBE_NO_OPENSSL', message: `${seen.reason ?? 'openssl failed'}: the chain as sent and the CA names the server accepts cannot be shown`, hint: CODES.CG_PROBE_NO_OPENSSL });
  }

  // 3 the server's chain: what openssl saw it send, else what Node linked after verifying it
  const chain = seen.chain.length > 0 ? seen.chain : (main?.peerChain ?? []);
  const server = diagnoseServerChain({
    chain, anchors: client.anchors, caLabel: client.caLabel, host, now, clientSent: client.sent,
    ...(files.ca !== undefined && { caFile: files.ca }),
  });
  findings.push(...server.problems);
  const leaf = presented ? client.sent[0] : undefined;
  if (leaf !== undefined) findings.push(...clientCertificate(leaf, now, files.cert));

  const request = certificateRequest(seen, client, files.cert, certGiven, findings);
  if (main !== undefined) {
    const said = outcome(main, { presented, serverExplained: server.problems.some((p) => p.severity === 'error'), host, port })
      // a --cert that could not be used is explained already; "none was given" would mislead
      .filter((p) => !(certGiven && p.code === 'CG_PROBE_NO_CLIENT_CERT'));
    findings.push(...said);
    // The server refused us: a CA-name mismatch found above is then the reason, not a guess.
    if (said.some((p) => p.code === 'CG_PROBE_REFUSED')) {
      for (const [i, p] of findings.entries()) if (p.code === 'CG_PROBE_CLIENT_CA') findings[i] = { ...p, severity: 'error' };
    }
  }

  // 4 certgate's whoami, on a connection of its own (only when this client got an HTTP answer)
  // Not after a refusal (certgate would refuse whoami the same way) nor with an unusable --cert;
  // after a 403 it shows who the client is and that the route does not allow it.
  const refused = findings.some((p) => p.code === 'CG_PROBE_NO_CLIENT_CERT' || (p.code === 'CG_PROBE_REFUSED' && main?.http?.status !== 403));
  const whoami = main?.http !== undefined && !refused && certGiven === presented && url.pathname !== opts.whoamiPath
    ? await fetchWhoami(url, opts.whoamiPath, tls, opts.timeoutMs)
    : undefined;

  const report: ProbeReport = {
    url: url.href, host, port, ca: client.caLabel,
    ...(files.cert !== undefined && { certFile: files.cert }),
    ...(files.key !== undefined && { keyFile: files.key }),
    server: {
      chain: chain.map((c) => summarize(c, now)),
      chainSource: seen.chain.length > 0 ? 'sent' : chain.length > 0 ? 'linked' : 'none',
      ...(chain.length > 0 && { trusted: server.trusted }),
      path: server.path,
    },
    ...(leaf !== undefined && {
      client: { certificate: summarize(leaf, now), sendsAlong: client.sent.slice(1).map((c) => namesOf(c).subject) },
    }),
    ...(request !== undefined && { certificateRequest: request }),
    handshake: { ...handshakeOf(main), clientCertificateSent: presented },
    ...(main?.http !== undefined && { http: httpOf(main.http) }),
    ...(whoami !== undefined && { whoami }),
    findings: order(findings),
    ok: !findings.some((p) => p.severity === 'error'),
    equivalent: equivalentCalls({
      url: url.href, encryptedKey: client.encryptedKey,
      ...(files.cert !== undefined && { cert: files.cert }),
      ...(files.key !== undefined && { key: files.key }),
      ...(files.passFile !== undefined && { passFile: files.passFile }),
      ...(files.ca !== undefined && { ca: files.ca }),
    }),
  };
  return report;
}

/** The CertificateRequest as openssl saw it, and whether this client chains to a listed CA. */
function certificateRequest(
  seen: Observation, client: ClientFiles, certFile: string | undefined, certGiven: boolean, findings: Problem[],
): ProbeReport['certificateRequest'] {
  if (seen.certificateRequested === undefined) return undefined;
  if (!seen.certificateRequested) {
    if (certGiven) {
      findings.push({ severity: 'warning', code: 'CG_PROBE_NO_CERT_REQUEST',
        message: 'the server did not ask for a client certificate, so yours was not sent (TLS sends one only when asked)', hint: CODES.CG_PROBE_NO_CERT_REQUEST });
    }
    return { requested: false, caNames: [] };
  }
  const pool = client.anchors.filter((a) => a.source !== 'built-in roots').map((a) => a.cert);
  const verdict = client.tls !== undefined ? clientVersusCaNames(client.sent, seen.caNames, pool, certFile) : undefined;
  findings.push(...(verdict?.problems ?? []));
  return {
    requested: true, caNames: seen.caNames,
    ...(verdict?.acceptedBy !== undefined && { acceptedBy: verdict.acceptedBy }),
    ...(verdict !== undefined && verdict.completedFrom.length > 0 && { completedFromCa: verdict.completedFrom.map((c) => namesOf(c).subject) }),
  };
}

function handshakeOf(a: Attempt | undefined): Omit<ProbeReport['handshake'], 'clientCertificateSent'> {
  if (a === undefined) return { completed: false };
  return {
    completed: a.handshake,
    ...(a.protocol !== undefined && { protocol: a.protocol }),
    ...(a.cipher !== undefined && { cipher: a.cipher }),
    ...(a.error !== undefined && { error: a.error }),
  };
}

function httpOf(h: NonNullable<Attempt['http']>): NonNullable<ProbeReport['http']> {
  const type = h.headers['content-type'];
  let body: unknown;
  // certgate's own JSON answers (refusals) are shown; an upstream's page is not the probe's business.
  if (h.status >= 400 && typeof type === 'string' && type.startsWith('application/json')) {
    try {
      body = JSON.parse(h.body);
    } catch {
      body = undefined;
    }
  }
  return { status: h.status, bytes: Buffer.byteLength(h.body), ...(typeof type === 'string' && { contentType: type }), ...(body !== undefined && { body }) };
}

async function fetchWhoami(url: URL, whoamiPath: string, tls: ClientTls, timeoutMs: number): Promise<ProbeReport['whoami']> {
  const a = await attempt(url, `${whoamiPath}?path=${encodeURIComponent(url.pathname)}`, tls, timeoutMs);
  if (a.http === undefined) return undefined;
  let answer: WhoamiAnswer | undefined;
  try {
    const v = JSON.parse(a.http.body) as Partial<WhoamiAnswer>;
    if (a.http.status === 200 && v.certgate === WHOAMI_MARK) answer = v as WhoamiAnswer;
  } catch {
    answer = undefined;
  }
  return { path: whoamiPath, status: a.http.status, ...(answer !== undefined && { answer }) };
}

/** Errors first, then warnings, then info; stable within a severity. */
function order(findings: Problem[]): Problem[] {
  const rank = { error: 0, warning: 1, info: 2 } as const;
  return findings.map((p, i) => ({ p, i })).sort((a, b) => rank[a.p.severity] - rank[b.p.severity] || a.i - b.i).map((x) => x.p);
}
