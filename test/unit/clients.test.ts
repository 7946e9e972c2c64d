/**
 * The /clients store: bounded LRU by fingerprint (least recently connected dropped first), per-request
 * counting on the entry a connection holds (also after its eviction), soonest-expiring first, and the
 * multi-core merge of several workers' lists.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ClientStore } from '../../dist/proxy/clients.js';
import { mergeClientRecords, type ClientRecord } from '../../dist/admin/clients.js';
import type { ClientIdentity } from '../../dist/identity/types.js';

const DAY = 86_400_000;
const T0 = Date.parse('2030-01-01T00:00:00Z');

function identity(n: number, daysLeft: number, over: Partial<ClientIdentity> = {}): ClientIdentity {
  return {
    subject: `CN=svc-${n}`, issuer: 'CN=ca', subjectCn: [`svc-${n}`], subjectOu: [],
    fingerprint: n.toString(16).padStart(64, '0'), serial: n.toString(16).toUpperCase(),
    notBefore: new Date(T0 - DAY), notAfter: new Date(T0 + daysLeft * DAY),
    san: { uri: [`spiffe://example.org/svc-${n}`], dns: [], email: [], ip: [] }, der: Buffer.alloc(0), chain: [],
    ...over,
  };
}

describe('ClientStore', () => {
  it('one entry per certificate: connections and requests add up, last route and times kept', () => {
    const store = new ClientStore(10);
    const e1 = store.connection(identity(1, 30), T0);
    store.request(e1, 'api', T0 + 1000);
    const e2 = store.connection(identity(1, 30), T0 + 2000, '203.0.113.7');
    assert.equal(e2, e1, 'same certificate, same entry');
    store.request(e2, 'admin', T0 + 3000);
    const [row, ...rest] = store.snapshot();
    assert.equal(rest.length, 0);
    assert.deepEqual(row, {
      subject: 'CN=svc-1', fingerprint: '1'.padStart(64, '0'), san_uri: ['spiffe://example.org/svc-1'], issuer: 'CN=ca', serial: '1',
      not_after: new Date(T0 + 30 * DAY).toISOString(), first_seen: new Date(T0).toISOString(), last_seen: new Date(T0 + 3000).toISOString(),
      connections: 2, requests: 2, last_route: 'admin', last_refusal: null, last_refusal_at: null, last_address: '203.0.113.7',
    });
  });

  it('sorted by not_after: the soonest-expiring caller first', () => {
    const store = new ClientStore(10);
    for (const [n, days] of [[1, 90], [2, 3], [3, -1], [4, 30]] as const) store.connection(identity(n, days), T0);
    assert.deepEqual(store.snapshot().map((r) => r.subject), ['CN=svc-3', 'CN=svc-2', 'CN=svc-4', 'CN=svc-1']);
  });

  it('bounded: beyond clients_max the least recently connected certificate is dropped', () => {
    const store = new ClientStore(3);
    store.connection(identity(1, 10), T0);
    store.connection(identity(2, 10), T0 + 1);
    store.connection(identity(3, 10), T0 + 2);
    store.connection(identity(1, 10), T0 + 3); // 1 is recent again
    store.connection(identity(4, 10), T0 + 4); // evicts 2
    assert.equal(store.size, 3);
    assert.deepEqual(store.snapshot().map((r) => r.subject).sort(), ['CN=svc-1', 'CN=svc-3', 'CN=svc-4']);
    for (let n = 100; n < 1100; n++) store.connection(identity(n, 10), T0 + n);
    assert.equal(store.size, 3, 'a client minting a certificate per connection costs a fixed amount');
  });

  it('setMax (a live admin.clients_max): a smaller bound evicts the least recently connected at once; a larger one keeps more', () => {
    const store = new ClientStore(5);
    for (const n of [1, 2, 3, 4]) store.connection(identity(n, 30), T0 + n);
    store.setMax(2);
    assert.deepEqual(store.snapshot().map((r) => r.subject).sort(), ['CN=svc-3', 'CN=svc-4']);
    store.setMax(3);
    store.connection(identity(5, 30), T0 + 5);
    assert.deepEqual(store.snapshot().map((r) => r.subject).sort(), ['CN=svc-3', 'CN=svc-4', 'CN=svc-5']);
  });

  it('a live connection whose entry was evicted puts it back on its next request, counts intact', () => {
    const store = new ClientStore(1);
    const held = store.connection(identity(1, 10), T0);
    store.request(held, 'api', T0 + 1);
    store.connection(identity(2, 10), T0 + 2); // evicts 1
    assert.deepEqual(store.snapshot().map((r) => r.subject), ['CN=svc-2']);
    const back = store.request(held, 'api', T0 + 3);
    assert.equal(back, held);
    assert.deepEqual(store.snapshot().map((r) => [r.subject, r.requests]), [['CN=svc-1', 2]]);
    // Evicted again, and meanwhile the certificate reconnected: the live entry is used from then on.
    store.connection(identity(2, 10), T0 + 4);
    const fresh = store.connection(identity(1, 10), T0 + 5);
    assert.equal(store.request(held, 'api', T0 + 6), fresh);
    assert.equal(store.size, 1);
  });

  it('records the last refusal reason with its time', () => {
    const store = new ClientStore(10);
    const e = store.connection(identity(1, -2), T0);
    store.refusal(e, 'expired', T0 + 10);
    const [row] = store.snapshot();
    assert.equal(row?.last_refusal, 'expired');
    assert.equal(row?.last_refusal_at, new Date(T0 + 10).toISOString());
    assert.equal(row?.requests, 0);
  });

  it('list() resolves to the same rows (the async seam the admin listener reads)', async () => {
    const store = new ClientStore(10);
    store.connection(identity(7, 5), T0);
    assert.deepEqual(await store.list(), store.snapshot());
  });
});

describe('mergeClientRecords (multi-core: one /clients across workers)', () => {
  const row = (over: Partial<ClientRecord>): ClientRecord => ({
    subject: 'CN=a', fingerprint: 'a', san_uri: [], issuer: 'CN=ca', serial: '01', not_after: '2030-02-01T00:00:00.000Z',
    first_seen: '2030-01-01T00:00:00.000Z', last_seen: '2030-01-01T00:00:00.000Z', connections: 1, requests: 1,
    last_route: null, last_refusal: null, last_refusal_at: null, last_address: null, ...over,
  });

  it('adds up one certificate seen by several workers', () => {
    const merged = mergeClientRecords([
      [row({ first_seen: '2030-01-01T00:00:05.000Z', last_seen: '2030-01-01T00:01:00.000Z', connections: 2, requests: 10, last_route: 'api', last_address: '192.0.2.1' })],
      [row({ first_seen: '2030-01-01T00:00:01.000Z', last_seen: '2030-01-01T00:02:00.000Z', connections: 1, requests: 3, last_route: 'admin',
        last_address: '192.0.2.2', last_refusal: 'forbidden', last_refusal_at: '2030-01-01T00:01:30.000Z' })],
      [row({ last_refusal: 'revoked', last_refusal_at: '2030-01-01T00:00:30.000Z', connections: 1, requests: 0 })],
    ], 10);
    assert.equal(merged.length, 1);
    assert.deepEqual(merged[0], row({
      first_seen: '2030-01-01T00:00:00.000Z', last_seen: '2030-01-01T00:02:00.000Z', connections: 4, requests: 13, last_route: 'admin',
      last_address: '192.0.2.2', last_refusal: 'forbidden', last_refusal_at: '2030-01-01T00:01:30.000Z',
    }));
  });

  it('keeps the max most recently seen, sorted by not_after', () => {
    const merged = mergeClientRecords([
      [row({ fingerprint: '1', subject: 'CN=old', last_seen: '2030-01-01T00:00:00.000Z', not_after: '2030-01-05T00:00:00.000Z' })],
      [row({ fingerprint: '2', subject: 'CN=late', last_seen: '2030-01-02T00:00:00.000Z', not_after: '2031-01-01T00:00:00.000Z' })],
      [row({ fingerprint: '3', subject: 'CN=soon', last_seen: '2030-01-03T00:00:00.000Z', not_after: '2030-01-10T00:00:00.000Z' })],
    ], 2);
    assert.deepEqual(merged.map((r) => r.subject), ['CN=soon', 'CN=late']);
  });
});
