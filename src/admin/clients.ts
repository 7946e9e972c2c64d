/**
 * The admin API's view of who is calling (`GET /clients`, the status page), and how the rows of several
 * workers combine. The store behind it and its rows are the pipeline's (proxy/clients.ts).
 *
 * Multi-core seam: the admin listener reads clients only through `ClientsView.list()`. Under node:cluster
 * the primary's view asks each worker for its store's `snapshot()` and combines them with mergeClientRecords().
 */
import { sortByExpiry, type ClientRecord } from '../proxy/clients.js';

// The admin API's row, defined where the store writes it.
export type { ClientRecord } from '../proxy/clients.js';

/** What the admin listener reads (async: in multi-core mode the answer comes from every worker). */
export interface ClientsView {
  list(): Promise<readonly ClientRecord[]>;
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
