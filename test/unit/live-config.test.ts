/** The live reload's pure decisions: which keys changed (restart-to-apply detection) and the one-line diff. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfig } from '../../dist/config/load.js';
import { changedKeys, summary, LIVE_KEYS, prepareAll } from '../../dist/app/live-config.js';
import { createPoolShelf, poolKey, type PoolShelf } from '../../dist/proxy/upstreams.js';
import { listensAt } from '../../dist/app/parts.js';

const base = `
tls: { cert: /x/c.pem, key: /x/k.pem, client_ca: /x/ca.pem }
routes:
  - { name: a, path_prefix: /a, upstream: "http://127.0.0.1:1" }
  - { name: b, path_prefix: /b, upstream: "http://127.0.0.1:2" }
`;

test('changedKeys: leaf paths that differ; line numbers and the file path are not changes', () => {
  const one = parseConfig(base, '/etc/certgate/one.yaml');
  const moved = parseConfig(`\n\n${base}`, '/etc/certgate/two.yaml');
  assert.deepEqual(changedKeys(one, moved), []);
  const two = parseConfig(`${base}http2: false\nlimits: { handshake_timeout_ms: 5000, max_requests_per_connection: 7 }\n`, '/etc/certgate/one.yaml');
  assert.deepEqual(changedKeys(one, two).sort(), ['http2', 'limits.handshake_timeout_ms', 'limits.max_requests_per_connection']);
  const restart = changedKeys(one, two).filter((k) => !LIVE_KEYS.some((l) => k === l || k.startsWith(`${l}.`)));
  assert.deepEqual(restart.sort(), ['http2', 'limits.handshake_timeout_ms']);
});

test('summary: routes added, removed, changed; limits changed', () => {
  const one = parseConfig(base, '/c.yaml');
  const two = parseConfig(`
tls: { cert: /x/c.pem, key: /x/k.pem, client_ca: /x/ca.pem }
routes:
  - { name: a, path_prefix: /a, upstream: "http://127.0.0.1:9" }
  - { name: c, path_prefix: /c, upstream: "http://127.0.0.1:3" }
limits: { max_requests_per_connection: 7 }
`, '/c.yaml');
  assert.equal(summary(one, two), 'routes added: c; routes removed: b; routes changed: a; limits changed: max_requests_per_connection');
  assert.equal(summary(one, one), 'no setting changed');
});

test('LIVE_KEYS: the tls file paths, listen, admin.listen, enrollment and max_concurrent_streams are live; the other tls settings are not', () => {
  const one = parseConfig(base, '/c.yaml');
  const two = parseConfig(`${base.replace('/x/c.pem', '/y/c.pem').replace('/x/ca.pem', '/y/ca.pem')}listen: "127.0.0.1:9443"\nadmin: { listen: "127.0.0.1:9001" }\nlimits: { max_concurrent_streams: 7 }\n`, '/c.yaml');
  const three = parseConfig(base.replace('client_ca: /x/ca.pem', 'client_ca: /x/ca.pem, client_auth: optional, min_version: TLSv1.3'), '/c.yaml');
  const restart = (a: typeof one, b: typeof one): string[] => changedKeys(a, b).filter((k) => !LIVE_KEYS.some((l) => k === l || k.startsWith(`${l}.`)));
  assert.deepEqual(restart(one, two), []);
  assert.deepEqual(restart(one, three).sort(), ['tls.client_auth', 'tls.min_version']);
});

test('prepareAll: a step that throws aborts the ones before it (newest first) and nothing is committed', async () => {
  const events: string[] = [];
  const step = (name: string) => async () => ({
    commit: () => void events.push(`commit ${name}`),
    abort: async () => void events.push(`abort ${name}`),
  });
  await assert.rejects(prepareAll([step('a'), async () => undefined, step('b'), async () => {
    throw new Error('bind failed');
  }]), /bind failed/);
  assert.deepEqual(events, ['abort b', 'abort a']);
  events.length = 0;
  const all = await prepareAll([step('a'), step('b')]);
  all?.commit();
  await all?.settled?.();
  assert.deepEqual(events, ['commit a', 'commit b']);
  assert.equal(await prepareAll([async () => undefined]), undefined);
});

test('PoolShelf: the same key shares one pool until its last holder lets go; poolKey covers what builds a pool', () => {
  const destroyed: string[] = [];
  const make = (name: string) => () => ({ destroy: () => void destroyed.push(name) }) as unknown as Parameters<PoolShelf['take']>[1] extends () => infer D ? D : never;
  const shelf = createPoolShelf();
  const p1 = shelf.take('k', make('one'));
  const p2 = shelf.take('k', make('two'));
  assert.equal(p1, p2);
  shelf.release('k');
  assert.deepEqual(destroyed, []);
  shelf.release('k');
  assert.deepEqual(destroyed, ['one']);
  assert.equal(shelf.size, 0);
  const route = parseConfig(base, '/c.yaml').routes[0]!;
  const key = poolKey(route, undefined);
  assert.equal(poolKey({ ...route, allow: undefined }, undefined), key, 'an allow list is not part of a pool');
  assert.notEqual(poolKey({ ...route, timeout_ms: 1 }, undefined), key);
  assert.notEqual(poolKey({ ...route, upstream_protocol: 'h2c' }, undefined), key);
  assert.notEqual(poolKey(route, Buffer.from('a CA')), key);
  assert.notEqual(poolKey({ ...route, upstream: new URL('http://127.0.0.1:3') }, undefined), key);
  assert.equal(poolKey({ ...route, upstream: new URL('http://127.0.0.1:1/other/path') }, undefined), key, 'the URL path is the hop target\'s, not the pool\'s');
});

test('listensAt: a live listen naming the configured address, or the port a 0 was given, is no move', () => {
  const at = (host: string, port: number) => ({ host, port });
  assert.equal(listensAt(at('127.0.0.1', 0), 46011, at('127.0.0.1', 0)), true);
  assert.equal(listensAt(at('127.0.0.1', 0), 46011, at('127.0.0.1', 46011)), true);
  assert.equal(listensAt(at('127.0.0.1', 8443), 8443, at('127.0.0.1', 8443)), true);
  assert.equal(listensAt(at('127.0.0.1', 0), 46011, at('127.0.0.1', 46012)), false);
  assert.equal(listensAt(at('127.0.0.1', 0), 46011, at('0.0.0.0', 46011)), false);
  assert.equal(listensAt(at('127.0.0.1', 8443), undefined, at('127.0.0.1', 9443)), false);
});
