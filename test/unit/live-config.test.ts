/** The live reload's pure decisions: which keys changed (restart-to-apply detection) and the one-line diff. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfig } from '../../dist/config/load.js';
import { changedKeys, summary, LIVE_KEYS } from '../../dist/app/live-config.js';

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
