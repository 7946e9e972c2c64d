/** The pure parts of workers: N — counter merging, ticket-key derivation and rotation, the worker count. */
import assert from 'node:assert/strict';
import { availableParallelism } from 'node:os';
import { test } from 'node:test';
import { sumCounters } from '../../dist/cluster/merge.js';
import { cgroupCpuQuota, parseCpuMax, workerCount } from '../../dist/cluster/primary.js';
import { createSessionTickets, TICKET_ROTATION_MS, untilNextRotation } from '../../dist/tls/context.js';
import type { CounterSnapshot } from '../../dist/admin/counters.js';
import type { TlsMaterial } from '../../dist/tls/material.js';

const EMPTY: CounterSnapshot = {
  requests: [], handshakes: [], handshakeFailures: [], authzDenied: [], upstreamErrors: [], connectionsRejected: [], connectionsOpen: [], inFlight: [],
};

test('sumCounters adds samples per label set, whatever the label order, and keeps the others', () => {
  const a: CounterSnapshot = {
    ...EMPTY,
    requests: [{ labels: { route: 'api', method: 'GET', code: 200 }, value: 3 }, { labels: { route: 'api', method: 'POST', code: 201 }, value: 1 }],
    connectionsOpen: [{ labels: {}, value: 2 }],
  };
  const b: CounterSnapshot = {
    ...EMPTY,
    requests: [{ labels: { code: 200, method: 'GET', route: 'api' }, value: 4 }],
    connectionsOpen: [{ labels: {}, value: 5 }],
    inFlight: [{ labels: {}, value: 1 }],
  };
  const sum = sumCounters([a, b]);
  assert.deepEqual(sum.requests.map((s) => [s.labels.method, s.value]), [['GET', 7], ['POST', 1]]);
  assert.deepEqual(sum.connectionsOpen.map((s) => s.value), [7]);
  assert.deepEqual(sum.inFlight.map((s) => s.value), [1]);
  assert.deepEqual(sumCounters([]).requests, []);
});

test('ticket keys: same secret, trust and epoch → the same 48 bytes in every process; any change → others', () => {
  const material = (ca: string[], crl?: string[]): TlsMaterial => ({ ca, ...(crl && { crl }) }) as unknown as TlsMaterial;
  let tickets = createSessionTickets(Buffer.alloc(32, 1));
  const ticketKeys = (m: TlsMaterial, now: number): Buffer => tickets.keys(m, now);
  const t = 10 * TICKET_ROTATION_MS + 5;
  const k = ticketKeys(material(['ca']), t);
  assert.equal(k.length, 48);
  assert.deepEqual(ticketKeys(material(['ca']), t + 1000), k, 'same epoch');
  assert.notDeepEqual(ticketKeys(material(['ca']), t + TICKET_ROTATION_MS), k, 'next epoch rotates');
  assert.notDeepEqual(ticketKeys(material(['ca', 'ca2']), t), k, 'a client_ca change renews');
  assert.notDeepEqual(ticketKeys(material(['ca'], ['crl']), t), k, 'a CRL change renews');
  assert.deepEqual(createSessionTickets(Buffer.alloc(32, 1)).keys(material(['ca']), t), k, 'another process, the same secret');
  tickets = createSessionTickets(Buffer.alloc(32, 2));
  assert.notDeepEqual(ticketKeys(material(['ca']), t), k, 'another secret');
  assert.throws(() => createSessionTickets(Buffer.alloc(16)), /at least 32 bytes/);
  assert.equal(untilNextRotation(t), TICKET_ROTATION_MS - 5);
});

test('workers: auto is the cores available, capped by the cgroup CPU quota (rounded up); a number is taken as is', () => {
  const cpus = availableParallelism();
  assert.equal(workerCount('auto', undefined), cpus);
  assert.equal(workerCount('auto', 1), 1, 'a 1-CPU limit: one worker');
  assert.equal(workerCount('auto', 0.1), 1, 'at least one');
  assert.equal(workerCount('auto', 1.5), Math.min(cpus, 2));
  assert.equal(workerCount('auto', 1000), cpus, 'never more than the CPUs it may run on');
  assert.equal(workerCount(3, 1), 3, 'an explicit number is not capped');
});

test('cgroup CPU quota: v2 cpu.max, v1 cfs files, none', () => {
  assert.equal(parseCpuMax('max 100000\n'), undefined);
  assert.equal(parseCpuMax('150000 100000\n'), 1.5);
  assert.equal(parseCpuMax('50000'), 0.5);
  assert.equal(parseCpuMax('garbage'), undefined);
  const files = (m: Record<string, string>) => (f: string): string | undefined => m[f];
  assert.equal(cgroupCpuQuota(files({ '/sys/fs/cgroup/cpu.max': '200000 100000' })), 2);
  assert.equal(cgroupCpuQuota(files({ '/sys/fs/cgroup/cpu/cpu.cfs_quota_us': '100000', '/sys/fs/cgroup/cpu/cpu.cfs_period_us': '100000' })), 1);
  assert.equal(cgroupCpuQuota(files({ '/sys/fs/cgroup/cpu/cpu.cfs_quota_us': '-1', '/sys/fs/cgroup/cpu/cpu.cfs_period_us': '100000' })), undefined);
  assert.equal(cgroupCpuQuota(files({})), undefined);
});
