/**
 * tls.crl (pure; `now` is passed in): which client CA signed each CRL, cRLSign, freshness, delta CRLs (which
 * nothing uses), CRLs certgate must not use (unprocessed critical extensions, partial scope), CRLs for CA
 * certificates only, and client CAs without a CRL for their clients.
 */
import { problem, type Problem } from '../../errors.js';
import { isCa, issuedBy, keyUsageOf } from '../../x509/certificate.js';
import {
  crlIssuerLabel, crlIssuerName, crlScope, crlSignatureSupported, crlSignatureText, crlSignedBy, sameName, subjectName,
} from '../../x509/crl.js';
import { certText, displayName, where, type CertRef, type CrlRef } from './refs.js';

export interface CrlInput {
  readonly crls: readonly CrlRef[];
  readonly cas: readonly CertRef[];
  /** The crl file, for findings about CAs without a CRL. */
  readonly file: string;
  readonly now: Date;
  /**
   * chain (OpenSSL's CRL_CHECK_ALL): a stale CRL or a CA without one locks out all its clients — errors.
   * leaf (certgate's own check, the default): a CA without a CRL means "not revoked"; a stale CRL refuses
   * that CA's clients by name (crl_expired) unless crl_stale is allow. A stale CRL that refuses clients is
   * an error either way, but a loadable one: staleness comes with time, and must never stop the server
   * or block a server-certificate rotation (the rest keeps working).
   */
  readonly mode?: 'leaf' | 'chain';
  readonly stale?: 'refuse' | 'allow';
}

export interface CrlResult {
  readonly problems: Problem[];
  /** The client CA that issued each CRL (absent when none did). */
  readonly issuers: ReadonlyMap<CrlRef, CertRef>;
}

function crlText(ref: CrlRef): string {
  const label = crlIssuerLabel(ref.crl);
  const cn = label.split(', ').find((p) => p.startsWith('CN='));
  return `the CRL${where(ref)} of ${cn ?? label}`;
}

/**
 * Node switches on CRL_CHECK_ALL as soon as any CRL is loaded: every CA in a client's chain
 * needs a current CRL signed by itself, and one stale CRL refuses every client of that CA.
 */
export function checkCrls(input: CrlInput): CrlResult {
  const { crls, cas, file, now } = input;
  const mode = input.mode ?? 'chain';
  const problems: Problem[] = [];
  const issuers = new Map<CrlRef, CertRef>();
  const deltas: [CrlRef, CertRef][] = [];

  for (const ref of crls) {
    // Checked first: with a signature certgate cannot verify, no CA can be said to have signed it. Before,
    // this read "does not verify with the key of <its CA> (a different key?)", sending operators to the CA.
    if (!crlSignatureSupported(ref.crl)) {
      problems.push(problem('error', 'CG_CRL_SIGNATURE',
        `${crlText(ref)} is signed with ${crlSignatureText(ref.crl)}, which certgate cannot verify: it could not tell this CRL from a forged one, so none of its revocations would be used`,
        { file: ref.file }));
      continue;
    }
    const issuerName = crlIssuerName(ref.crl);
    const named = cas.filter((c) => sameName(subjectName(c.cert), issuerName));
    const issuer = named.find((c) => crlSignedBy(ref.crl, c.cert));
    if (issuer === undefined) {
      problems.push(problem('error', 'CG_CRL_ISSUER', named.length > 0
        ? `${crlText(ref)} does not verify with the key of ${certText(named[0] as CertRef, ref.file)}, the client CA of that name (a different key: an old or re-created CA?)`
        : `${crlText(ref)} is issued by ${crlIssuerLabel(ref.crl)}, which is not in tls.client_ca (${cas.map((c) => displayName(c.cert.subject)).join(', ') || 'empty'})`,
      { file: ref.file }));
      continue;
    }
    if (ref.crl.delta) {
      deltas.push([ref, issuer]);
      continue;
    }
    // Refused, not skipped: skipping would drop every revocation the operator shipped in it (on a reload,
    // the CA's previous CRL with them), serving those clients. It comes with the file, not with time, so
    // like a CRL certgate cannot verify it stops start-up and reloads (the previous material keeps serving).
    if (ref.crl.unprocessedCritical.length > 0) {
      problems.push(problem('error', 'CG_CRL_CRITICAL',
        `${crlText(ref)} has critical extensions certgate does not process (${ref.crl.unprocessedCritical.slice(0, 5).join(', ')}${ref.crl.unprocessedCritical.length > 5 ? ', …' : ''}); RFC 5280 forbids using such a CRL to decide revocation, so certgate refuses it${mode === 'chain' ? ' (OpenSSL refuses every client of that CA: unhandled critical CRL extension)' : ''}`,
        { file: ref.file }));
      continue;
    }
    const scope = crlScope(ref.crl);
    if (scope.partial !== undefined) {
      problems.push(problem('error', 'CG_CRL_SCOPE',
        `${crlText(ref)} is a partial CRL: its issuingDistributionPoint has ${scope.partial}. certgate matches no distribution points and reads no indirect entries, so "not listed" on it does not mean "not revoked"; it refuses the CRL rather than use it as complete`,
        { file: ref.file }));
      continue;
    }
    if (!scope.ee && !scope.ca) {
      problems.push(problem('warning', 'CG_CRL_SCOPE',
        `${crlText(ref)} covers attribute certificates only (onlyContainsAttributeCerts): certgate does not use it`, { file: ref.file }));
      continue;
    }
    issuers.set(ref, issuer);
    const usage = keyUsageOf(issuer.cert);
    if (usage !== undefined && !usage.cRLSign) {
      problems.push(problem('error', 'CG_CRL_ISSUER',
        `${crlText(ref)} is signed by ${certText(issuer, ref.file)}, whose keyUsage lacks cRLSign; OpenSSL rejects the CRL and every client of that CA`,
        { file: ref.file, hint: 'reissue the CA certificate with keyUsage cRLSign, or sign CRLs with a CA that has it' }));
    }
  }

  // Freshness. With several CRLs of one CA, OpenSSL picks a current one; only a CA whose every
  // CRL is stale locks its clients out.
  // byCa: the CRLs for each CA's clients (end-entity certificates); caOnly: those for CA certificates only.
  const byCa = new Map<CertRef, CrlRef[]>();
  const caOnly = new Map<CertRef, CrlRef[]>();
  for (const [crl, ca] of issuers) {
    const into = crlScope(crl.crl).ee ? byCa : caOnly;
    into.set(ca, [...(into.get(ca) ?? []), crl]);
  }
  const current = (r: CrlRef): boolean =>
    r.crl.thisUpdate <= now && (r.crl.nextUpdate === undefined || r.crl.nextUpdate >= now);
  for (const [ref, ca] of deltas) problems.push(deltaFinding(ref, ca, byCa.get(ca) ?? [], now));
  for (const ref of crls) {
    const ca = issuers.get(ref);
    if (ca === undefined) continue; // not used, whatever its dates (delta, refused, unknown issuer)
    const ee = crlScope(ref.crl).ee;
    if (!ee && mode === 'leaf') continue; // for CA certificates only: leaf mode checks no CA certificate
    const fallback = ((ee ? byCa : caOnly).get(ca) ?? []).some((o) => o !== ref && current(o));
    // Who is refused decides the severity: nobody (another CRL is current, or crl_stale: allow in leaf
    // mode) is a warning; every client of that CA is an error for `certgate check`, loadable all the same.
    const refuses = !fallback && (mode === 'chain' || input.stale !== 'allow');
    const severity = refuses ? 'error' : 'warning';
    const consequence = fallback
      ? 'another CRL of that CA is current, so it is ignored'
      : mode === 'chain'
        ? 'Node refuses every client of that CA'
        : input.stale === 'allow'
          ? 'tls.crl_stale: allow keeps using it'
          : 'certgate refuses that CA\'s clients (crl_expired) until a fresh CRL arrives';
    const next = ref.crl.nextUpdate;
    if (next !== undefined && next < now) {
      problems.push(problem(severity, 'CG_CRL_EXPIRED',
        `${crlText(ref)} expired: its nextUpdate was ${next.toISOString()}; ${consequence} (CRL_HAS_EXPIRED)`, { file: ref.file, loadable: true }));
    } else if (ref.crl.thisUpdate > now) {
      problems.push(problem(severity, 'CG_CRL_NOT_YET_VALID',
        `${crlText(ref)} is not valid yet: its thisUpdate is ${ref.crl.thisUpdate.toISOString()} (now ${now.toISOString()}); ${consequence} (CRL_NOT_YET_VALID)`,
        { file: ref.file, loadable: true }));
    }
  }

  for (const ca of cas) {
    const arls = caOnly.get(ca);
    if (byCa.has(ca)) continue;
    if (arls !== undefined) {
      // A CA that issued another CA of tls.client_ca: its onlyContainsCACerts CRL is what that CA's clients need.
      const issuesCas = cas.some((o) => o !== ca && issuedBy(o.cert, ca.cert));
      // It has CRLs, but none for end-entity certificates: its own clients are checked against none.
      const arl = crlText(arls[0] as CrlRef);
      if (mode === 'chain' && !issuesCas) {
        problems.push(problem('error', 'CG_CRL_MISSING_CA',
          `the client CA ${certText(ca, file)} has no CRL for its clients in this file: ${arl} covers CA certificates only (onlyContainsCACerts), so Node refuses every client it issues (Different CRL scope)`,
          { file, hint: `add the complete CRL of ${displayName(ca.cert.subject)} (one without onlyContainsCACerts) to tls.crl` }));
      } else {
        const effect = mode === 'chain'
          ? 'Node refuses any client it issues directly (Different CRL scope); the clients of the CAs it issued are unaffected'
          : issuesCas
            ? 'crl_mode leaf checks no CA certificate, so certgate does not use it; any client it issues directly is checked against no CRL'
            : 'certgate does not count it as the CRL of its clients, which are checked against no CRL (a client revoked on its complete CRL is served)';
        problems.push(problem(issuesCas ? 'warning' : 'error', 'CG_CRL_SCOPE',
          `${arl} covers CA certificates only (onlyContainsCACerts) and is the only CRL of ${certText(ca, file)}: ${effect}`,
          { file, hint: `add the complete CRL of ${displayName(ca.cert.subject)} (one without onlyContainsCACerts) to tls.crl`, loadable: true }));
      }
    } else if (mode === 'chain' && isCa(ca.cert)) {
      problems.push(problem('error', 'CG_CRL_MISSING_CA',
        `the client CA ${certText(ca, file)} has no CRL in this file; with tls.crl set Node checks every CA of a client's chain, so all its clients would be refused (UNABLE_TO_GET_CRL)`,
        { file, hint: `add the current CRL of ${displayName(ca.cert.subject)} to tls.crl` }));
    }
  }
  return { problems, issuers };
}

/**
 * A delta CRL takes no part in any check: certgate's index skips it (tls/revocation/crl-index.ts), and
 * Node never sets X509_V_FLAG_USE_DELTAS, so OpenSSL's crl_score passes it over too. What that costs
 * decides the severity: a serial only the delta revokes is a client the operator believes locked out
 * and certgate serves — an error (loadable: the rest of the material is sound). If the complete CRL
 * certgate uses lists every serial of the delta, nothing is lost today: a warning. (In chain mode a CA
 * whose only CRL is a delta has no CRL at all for OpenSSL; CG_CRL_MISSING_CA says so.)
 */
function deltaFinding(ref: CrlRef, ca: CertRef, complete: readonly CrlRef[], now: Date): Problem {
  const current = complete.filter((r) => r.crl.thisUpdate <= now && (r.crl.nextUpdate === undefined || r.crl.nextUpdate >= now));
  // The complete CRL revocation checks use: the newest current one, else the newest (tls/revocation/check.ts).
  const used = [...(current.length > 0 ? current : complete)].sort((a, b) => b.crl.thisUpdate.getTime() - a.crl.thisUpdate.getTime())[0];
  const missed = [...ref.crl.revoked].filter((s) => used === undefined || !used.crl.revoked.has(s));
  const what = `${crlText(ref)} is a delta CRL (deltaCRLIndicator), which certgate, like Node's OpenSSL, does not read`;
  if (missed.length === 0) {
    return problem('warning', 'CG_CRL_DELTA',
      `${what}; every serial it lists is in a complete CRL of that CA${where(used ?? ref)}, so nothing is lost today`, { file: ref.file });
  }
  const shown = missed.slice(0, 5).join(', ') + (missed.length > 5 ? ', …' : '');
  return problem('error', 'CG_CRL_DELTA',
    `${what}: the ${missed.length} serial(s) it revokes that no complete CRL of that CA lists (${shown}) are not revoked; clients of ${certText(ca, ref.file)} with them are served`,
    { file: ref.file, loadable: true });
}
