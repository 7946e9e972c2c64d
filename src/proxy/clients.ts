/**
 * Who is calling: the distinct client certificates seen recently, recorded by the pipeline's telemetry
 * for the admin `GET /clients` and the status page. A bounded LRU keyed by certificate fingerprint
 * (`admin.clients_max`, default 1000), so a client minting a certificate per connection costs a fixed
 * amount of memory.
 *
 * Cost model: the store is touched once per TLS connection (connection()); a request only bumps fields of
 * the entry its connection already holds (request()), no lookup, no allocation. A long keep-alive
 * connection whose entry was evicted meanwhile puts it back on its next request.
 *
 * The admin listener reads it as a ClientsView (admin/clients.ts: that view and the merge of the rows across
 * workers; the rows are written here, so the pipeline imports nothing of admin/).
 */
import type { ClientIdentity } from '../identity/types.js';

/** The mutable entry a connection holds on to. */
export interface ClientEntry {
  readonly subject: string;
  readonly fingerprint: string;
  readonly sanUri: readonly string[];
  readonly issuer: string;
  readonly serial: string;
  readonly notAfter: number;
  firstSeen: number;
  /** The client address of the last connection (behind a trusted load balancer, its PROXY header's). */
  lastAddress: string | null;
  lastSeen: number;
  connections: number;
  requests: number;
  lastRoute: string | null;
  lastRefusal: string | null;
  lastRefusalAt: number;
  /** Dropped from the store by the LRU (the connection may still be using it). */
  evicted: boolean;
}

/** One row of `GET /clients` (JSON field names are part of the admin API, which serves them: admin/clients.ts). */
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
  /** The client address of the last connection with this certificate (X-Forwarded-For's), or null if unknown. */
  readonly last_address: string | null;
}

/** Soonest not_after first; ties by subject, then fingerprint, so the order is stable. */
export function sortByExpiry(rows: ClientRecord[]): ClientRecord[] {
  return rows.sort((a, b) => (a.not_after < b.not_after ? -1 : a.not_after > b.not_after ? 1
    : a.subject < b.subject ? -1 : a.subject > b.subject ? 1 : a.fingerprint < b.fingerprint ? -1 : a.fingerprint > b.fingerprint ? 1 : 0));
}

export class ClientStore {
  #max: number;
  /** Map iteration order is insertion order: the first key is the least recently connected. */
  readonly #entries = new Map<string, ClientEntry>();

  constructor(max: number) {
    this.#max = Math.max(1, Math.floor(max));
  }

  /** admin.clients_max after a live reload: a smaller bound evicts the least recently connected at once. */
  setMax(max: number): void {
    this.#max = Math.max(1, Math.floor(max));
    this.#trim();
  }

  get size(): number {
    return this.#entries.size;
  }

  /** A new TLS connection presented this certificate (verified or not). Once per connection. */
  connection(identity: ClientIdentity, now: number, address?: string): ClientEntry {
    let entry = this.#entries.get(identity.fingerprint);
    if (entry === undefined) {
      entry = {
        subject: identity.subject, fingerprint: identity.fingerprint, sanUri: identity.san.uri, issuer: identity.issuer,
        serial: identity.serial, notAfter: identity.notAfter.getTime(),
        firstSeen: now, lastSeen: now, lastAddress: null, connections: 0, requests: 0, lastRoute: null, lastRefusal: null, lastRefusalAt: 0, evicted: false,
      };
    } else {
      this.#entries.delete(identity.fingerprint);
    }
    this.#insert(entry);
    entry.connections += 1;
    entry.lastSeen = now;
    entry.lastAddress = address ?? null;
    return entry;
  }

  /**
   * One request on a connection holding `entry`. Returns the entry to keep using: the same one, or, when
   * it was evicted and the certificate has reconnected since, the live one.
   */
  request(entry: ClientEntry, route: string, now: number): ClientEntry {
    const e = entry.evicted ? this.#revive(entry) : entry;
    e.requests += 1;
    e.lastSeen = now;
    e.lastRoute = route;
    return e;
  }

  /** certgate refused this certificate (at the handshake, or a request by policy). */
  refusal(entry: ClientEntry, reason: string, now: number): ClientEntry {
    const e = entry.evicted ? this.#revive(entry) : entry;
    e.lastRefusal = reason;
    e.lastRefusalAt = now;
    e.lastSeen = now;
    return e;
  }

  /** Every entry as JSON rows, soonest-expiring first. */
  snapshot(): ClientRecord[] {
    return sortByExpiry([...this.#entries.values()].map(toRecord));
  }

  list(): Promise<readonly ClientRecord[]> {
    return Promise.resolve(this.snapshot());
  }

  #insert(entry: ClientEntry): void {
    entry.evicted = false;
    this.#entries.set(entry.fingerprint, entry);
    this.#trim();
  }

  #trim(): void {
    while (this.#entries.size > this.#max) {
      const oldest = this.#entries.keys().next();
      if (oldest.done === true) break;
      const dropped = this.#entries.get(oldest.value);
      if (dropped !== undefined) dropped.evicted = true;
      this.#entries.delete(oldest.value);
    }
  }

  #revive(entry: ClientEntry): ClientEntry {
    const live = this.#entries.get(entry.fingerprint);
    if (live !== undefined) return live;
    this.#insert(entry);
    return entry;
  }
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

function toRecord(e: ClientEntry): ClientRecord {
  return {
    subject: e.subject, fingerprint: e.fingerprint, san_uri: e.sanUri, issuer: e.issuer, serial: e.serial,
    not_after: iso(e.notAfter), first_seen: iso(e.firstSeen), last_seen: iso(e.lastSeen),
    connections: e.connections, requests: e.requests, last_route: e.lastRoute,
    last_refusal: e.lastRefusal, last_refusal_at: e.lastRefusal === null ? null : iso(e.lastRefusalAt),
    last_address: e.lastAddress,
  };
}
