/**
 * The data behind the status page (`GET /status.json`): listener and upstream state, the loaded server
 * chain and client CAs with days left, CRLs, the reload history, and request/refusal rates.
 *
 * Nothing here is on the request path. Counts are read from the prom-client metrics (the one source of
 * truth; counters.ts), sampled every 5 s into a ring that spans the last minute; rates are (now − oldest
 * sample) / Δt. Multi-core seam: `readCounters` is the only way in; under node:cluster it reads the
 * aggregated metrics instead of this process's. The reload history is kept in reload-history.ts.
 */
import { readFileSync } from 'node:fs';
import type { X509Certificate } from 'node:crypto';
import type { Config } from '../config/types.js';
import type { TlsMaterial } from '../tls/material.js';
import type { ReloadEvent } from '../tls/reloader.js';
import type { ReloadHistory } from './reload-history.js';
import type { CounterSnapshot, Samples } from './counters.js';
import { readCertificate } from '../x509/der.js';
import { printDn } from '../x509/dn.js';
import { REFUSAL_REASONS } from '../tls/handshake.js';

const DAY_MS = 86_400_000;

export interface CertificateRow {
  readonly kind: 'server' | 'chain' | 'client_ca';
  readonly subject: string;
  readonly issuer: string;
  readonly serial: string;
  readonly not_before: string;
  readonly not_after: string;
  readonly days_left: number;
}

export interface RouteRow {
  readonly name: string;
  readonly host: string | null;
  readonly path_prefix: string;
  readonly upstream: string;
  /** idle: no request in the window; ok: no upstream error; degraded: some; failing: most or all. */
  readonly state: 'idle' | 'ok' | 'degraded' | 'failing';
  readonly requests_per_s: number;
  readonly upstream_errors_per_s: number;
  readonly requests_total: number;
  readonly upstream_errors_total: number;
  readonly upstream_errors_by_kind: Readonly<Record<string, number>>;
}

export interface StatusJson {
  readonly version: string;
  readonly pid: number;
  readonly now: string;
  readonly started_at: string;
  readonly uptime_s: number;
  readonly ready: boolean;
  readonly listener: {
    readonly url: string | null;
    readonly client_auth: string;
    readonly min_version: string;
    readonly connections_open: number;
    readonly requests_in_flight: number;
  };
  readonly admin: { readonly auth: boolean; readonly clients_max: number };
  /** The live config (app/live-config.ts ConfigStatus): generation, sha256, last_failure, restart_to_apply. */
  readonly config?: unknown;
  readonly routes: readonly RouteRow[];
  readonly certificates: readonly CertificateRow[];
  readonly crls: readonly { readonly issuer: string; readonly next_update: string | null; readonly days_left: number | null }[];
  readonly reloads: readonly (Omit<ReloadEvent, 'time'> & { readonly time: string })[];
  readonly rates: {
    /** The span the rates are computed over (up to 60 s; less just after start). */
    readonly window_s: number;
    readonly requests_per_s: number;
    /** Client certificates refused (handshake verdicts) plus requests refused by an allow list. */
    readonly refusals_per_s: number;
    /** TLS handshakes that failed for other reasons (protocol, timeout, aborted, other). */
    readonly handshake_errors_per_s: number;
    readonly upstream_errors_per_s: number;
  };
  readonly totals: {
    readonly requests: number;
    readonly handshakes: number;
    readonly upstream_errors: number;
    readonly connections_rejected: number;
    /** By reason: the handshake refusal reasons, plus "forbidden" for allow-list denials. */
    readonly refusals: Readonly<Record<string, number>>;
  };
}

export interface StatusOptions {
  readonly config: Pick<Config, 'routes' | 'tls' | 'admin'>;
  readonly history: ReloadHistory;
  readonly readCounters: () => Promise<CounterSnapshot>;
  /** The material serving new handshakes now (the reloader's `current`). */
  readonly material: () => TlsMaterial;
  readonly ready: () => boolean;
  /** The TLS listener's URL once listening. */
  readonly url: () => string | undefined;
  readonly auth: boolean;
  /** admin.clients_max serving now (a live reload changes it); default config.admin.clients_max. */
  readonly clientsMax?: () => number;
  /** The routes serving now (a live reload changes them); default config.routes. */
  readonly routes?: () => Config['routes'];
  /** The live config's state (generation, SHA-256, last failure, restart-to-apply keys); absent = not shown. */
  readonly liveConfig?: () => unknown;
  readonly now?: () => number;
  /** Sampling period of the rate ring (default 5000 ms; 13 samples span a minute). */
  readonly sampleMs?: number;
}

export interface StatusSource {
  snapshot(): Promise<StatusJson>;
  close(): void;
}

/** Client-certificate refusal reasons (the rest of the handshake reasons are transport failures). */
const CERT_REFUSALS = new Set<string>(['no_certificate', 'unknown_ca', 'expired', 'not_yet_valid', 'revoked', 'crl_expired', 'bad_certificate']);

interface Sample {
  readonly t: number;
  readonly requests: number;
  readonly refusals: number;
  readonly handshakeErrors: number;
  readonly upstreamErrors: number;
  readonly perRoute: ReadonlyMap<string, { readonly requests: number; readonly errors: number }>;
}

const sum = (s: Samples, where: (labels: Samples[number]['labels']) => boolean = () => true): number => {
  let total = 0;
  for (const v of s) if (where(v.labels)) total += v.value;
  return total;
};

function toSample(c: CounterSnapshot, t: number): Sample {
  const perRoute = new Map<string, { requests: number; errors: number }>();
  const at = (route: string): { requests: number; errors: number } => {
    let r = perRoute.get(route);
    if (r === undefined) {
      r = { requests: 0, errors: 0 };
      perRoute.set(route, r);
    }
    return r;
  };
  for (const v of c.requests) at(String(v.labels.route)).requests += v.value;
  for (const v of c.upstreamErrors) at(String(v.labels.route)).errors += v.value;
  return {
    t,
    requests: sum(c.requests),
    refusals: sum(c.handshakeFailures, (l) => CERT_REFUSALS.has(String(l.reason))) + sum(c.authzDenied),
    handshakeErrors: sum(c.handshakeFailures, (l) => !CERT_REFUSALS.has(String(l.reason))),
    upstreamErrors: sum(c.upstreamErrors),
    perRoute,
  };
}

const round = (n: number, digits = 2): number => Math.round(n * 10 ** digits) / 10 ** digits;

function version(): string {
  try {
    return (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

export function createStatus(opts: StatusOptions): StatusSource {
  const now = opts.now ?? Date.now;
  const startedAt = now();
  const sampleMs = opts.sampleMs ?? 5000;
  const ring: Sample[] = [];
  const certRows = new WeakMap<TlsMaterial, CertificateRow[]>();
  const pkgVersion = version();

  const sampleNow = async (): Promise<void> => {
    const s = toSample(await opts.readCounters(), now());
    ring.push(s);
    if (ring.length > 13) ring.shift();
  };
  // A failed read only leaves a gap in the ring; the next sample fills it.
  void sampleNow().catch(() => undefined);
  const timer = setInterval(() => void sampleNow().catch(() => undefined), sampleMs);
  timer.unref();

  const rowsOf = (m: TlsMaterial): CertificateRow[] => {
    let rows = certRows.get(m);
    if (rows === undefined) {
      rows = [
        certRow('server', m.leaf),
        ...m.chain.map((c) => certRow('chain', c)),
        ...m.clientCas.map((c) => certRow('client_ca', c)),
      ];
      certRows.set(m, rows);
    }
    return rows;
  };

  return {
    async snapshot(): Promise<StatusJson> {
      const t = now();
      const counters = await opts.readCounters();
      const current = toSample(counters, t);
      const oldest = ring[0] ?? current;
      const dt = Math.max(1, (t - oldest.t) / 1000);
      const rate = (a: number, b: number): number => round(Math.max(0, a - b) / dt);
      const material = opts.material();
      const refusals: Record<string, number> = {};
      for (const reason of REFUSAL_REASONS) refusals[reason] = sum(counters.handshakeFailures, (l) => l.reason === reason);
      refusals.forbidden = sum(counters.authzDenied);
      const routes = (opts.routes?.() ?? opts.config.routes).map((r): RouteRow => {
        const cur = current.perRoute.get(r.name) ?? { requests: 0, errors: 0 };
        const old = oldest.perRoute.get(r.name) ?? { requests: 0, errors: 0 };
        const requests = cur.requests - old.requests;
        const errors = cur.errors - old.errors;
        const byKind: Record<string, number> = {};
        for (const v of counters.upstreamErrors) if (v.labels.route === r.name && v.value > 0) byKind[String(v.labels.kind)] = v.value;
        return {
          name: r.name, host: r.host ?? null, path_prefix: r.path_prefix, upstream: r.upstream.href,
          state: requests === 0 && errors === 0 ? 'idle' : errors === 0 ? 'ok' : errors * 2 >= requests ? 'failing' : 'degraded',
          requests_per_s: rate(cur.requests, old.requests), upstream_errors_per_s: rate(cur.errors, old.errors),
          requests_total: cur.requests, upstream_errors_total: cur.errors, upstream_errors_by_kind: byKind,
        };
      });
      return {
        version: pkgVersion, pid: process.pid, now: new Date(t).toISOString(), started_at: new Date(startedAt).toISOString(),
        uptime_s: Math.round((t - startedAt) / 1000), ready: opts.ready(),
        listener: {
          url: opts.url() ?? null, client_auth: opts.config.tls.client_auth, min_version: opts.config.tls.min_version,
          connections_open: sum(counters.connectionsOpen), requests_in_flight: sum(counters.inFlight),
        },
        admin: { auth: opts.auth, clients_max: opts.clientsMax?.() ?? opts.config.admin.clients_max },
        ...(opts.liveConfig !== undefined && { config: opts.liveConfig() }),
        routes,
        certificates: rowsOf(material).map((c) => ({ ...c, days_left: daysLeft(Date.parse(c.not_after), t) })),
        crls: material.crls.map((c) => {
          const next = c.nextUpdate.getTime();
          const never = next >= 8.64e15;
          return { issuer: c.issuer, next_update: never ? null : c.nextUpdate.toISOString(), days_left: never ? null : daysLeft(next, t) };
        }),
        reloads: opts.history.list().map((e) => ({ ...e, time: new Date(e.time).toISOString() })),
        rates: {
          window_s: round(dt, 1),
          requests_per_s: rate(current.requests, oldest.requests),
          refusals_per_s: rate(current.refusals, oldest.refusals),
          handshake_errors_per_s: rate(current.handshakeErrors, oldest.handshakeErrors),
          upstream_errors_per_s: rate(current.upstreamErrors, oldest.upstreamErrors),
        },
        totals: {
          requests: current.requests, handshakes: sum(counters.handshakes), upstream_errors: current.upstreamErrors,
          connections_rejected: sum(counters.connectionsRejected), refusals,
        },
      };
    },
    close() {
      clearInterval(timer);
    },
  };
}

/** Whole days left, rounded down (a certificate expiring in 29.9 days has 29 full days left); negative once expired. */
export function daysLeft(notAfterMs: number, nowMs: number): number {
  return Math.floor((notAfterMs - nowMs) / DAY_MS);
}

function certRow(kind: CertificateRow['kind'], cert: X509Certificate): CertificateRow {
  let subject: string;
  let issuer: string;
  try {
    const parts = readCertificate(cert.raw);
    subject = printDn(parts.subject);
    issuer = printDn(parts.issuer);
  } catch {
    subject = cert.subject.replaceAll('\n', ', ');
    issuer = cert.issuer.replaceAll('\n', ', ');
  }
  return {
    kind, subject, issuer, serial: cert.serialNumber.toUpperCase(),
    not_before: new Date(cert.validFrom).toISOString(), not_after: new Date(cert.validTo).toISOString(), days_left: 0,
  };
}
