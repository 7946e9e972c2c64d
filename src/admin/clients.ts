/**
 * The admin API's view of who is calling (`GET /clients`, the status page): the rows, and how the rows of
 * several workers combine. The store behind it is the pipeline's (proxy/clients.ts).
 *
 * Multi-core seam: the admin listener reads clients only through `ClientsView.list()`. Under node:cluster
 * the primary's view asks each worker for its store's `snapshot()` and combines them with mergeClientRecords().
 */

/** One row of `GET /clients` (JSON field names are part of the admin API). */
export interface ClientRecord {
  readonly subject: string;
  readonly fingerprint: string;
  readonly san_uri: readonly string[];
  readonly issuer: string;
  readonly serial: string;
  /** ISO 8601. */
  readonly not_after: string;
  readonly first_seen: string;
  readonly last_seen: string;
  /** Connections (handshakes) and requests made with this certificate since first_seen. */
  readonly connections: number;
  readonly requests: number;
  /** The route of the last request, or null before the first one. */
  readonly last_route: string | null;
  /** Why certgate last refused this certificate (expired, revoked, unknown_ca, forbidden, ...), or null. */
  readonly last_refusal: string | null;
  readonly last_refusal_at: string | null;
}

/** What the admin listener reads (async: in multi-core mode the answer comes from every worker). */
export interface ClientsView {
  list(): Promise<readonly ClientRecord[]>;
}

/** Soonest not_after first; ties by subject, then fingerprint, so the order is stable. */
export function sortByExpiry(rows: ClientRecord[]): ClientRecord[] {
  return rows.sort((a, b) => (a.not_after < b.not_after ? -1 : a.not_after > b.not_after ? 1
    : a.subject < b.subject ? -1 : a.subject > b.subject ? 1 : a.fingerprint < b.fingerprint ? -1 : a.fingerprint > b.fingerprint ? 1 : 0));
}

/**
 * Combines the lists of several workers (multi-core mode) into one: rows of the same fingerprint add up
 * their connections and requests, keep the earliest first_seen and the latest last_seen (with that
 * worker's last route) and the latest refusal. Keeps the `max` most recently seen, sorted by not_after.
 */
export function mergeClientRecords(lists: readonly (readonly ClientRecord[])[], max: number): ClientRecord[] {
  const byFingerprint = new Map<string, ClientRecord>();
  for (const list of lists) {
    for (const r of list) {
      const prev = byFingerprint.get(r.fingerprint);
      if (prev === undefined) {
        byFingerprint.set(r.fingerprint, r);
        continue;
      }
      const latest = r.last_seen > prev.last_seen ? r : prev;
      const refusal = (r.last_refusal_at ?? '') > (prev.last_refusal_at ?? '') ? r : prev;
      byFingerprint.set(r.fingerprint, {
        ...latest,
        first_seen: r.first_seen < prev.first_seen ? r.first_seen : prev.first_seen,
        connections: prev.connections + r.connections,
        requests: prev.requests + r.requests,
        last_route: latest.last_route ?? (latest === r ? prev.last_route : r.last_route),
        last_refusal: refusal.last_refusal,
        last_refusal_at: refusal.last_refusal_at,
      });
    }
  }
  const recent = [...byFingerprint.values()].sort((a, b) => (a.last_seen > b.last_seen ? -1 : a.last_seen < b.last_seen ? 1 : 0));
  return sortByExpiry(recent.slice(0, Math.max(0, max)));
}
