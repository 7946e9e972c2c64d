/**
 * The admin listener's Host rule (issue 13 finding 10) and the "admin beyond loopback without a token"
 * warning, as pure decisions.
 *
 * DNS rebinding: a page on evil.example re-points evil.example at 127.0.0.1 (or the pod IP) after it
 * loaded; the browser then sends the page's same-origin requests, with `Host: evil.example`, to the admin
 * listener and lets the page read /clients. A browser sends an IP-literal Host only to the origin that
 * IP is, and resolves `localhost` / `*.localhost` itself (RFC 6761; nobody can delegate them), so those
 * and the operator's own names (admin.allowed_hosts) are the only ones answered.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { adminExposure, adminHostAllowed, isLoopbackHost } from '../../dist/admin/host.js';
import { parseConfig } from '../../dist/config/load.js';

const ALLOWED: ReadonlySet<string> = new Set(['certgate-admin.internal', 'status.example.com']);

describe('adminHostAllowed', () => {
  const PASS = [
    '127.0.0.1', '127.0.0.1:9090', '10.1.2.3:9090', '192.168.7.9', '0.0.0.0:9090', // kubelet probes, Prometheus: the pod IP
    '[::1]', '[::1]:9090', '[fd00::12:34]:9090', '[::ffff:10.0.0.1]:80',
    'localhost', 'localhost:9090', 'LOCALHOST:9090', 'localhost.', 'status.localhost:8080', 'a.b.localhost',
    'certgate-admin.internal', 'Certgate-Admin.Internal:9090', 'certgate-admin.internal.', 'status.example.com:443',
  ];
  const REFUSE = [
    'evil.example', 'evil.example:9090', 'EVIL.EXAMPLE', 'localhost.evil.example', 'evil.example.localhost.evil.example',
    'certgate-admin.internal.evil.example', 'evil-certgate-admin.internal', 'internal', 'example.com',
    '127.0.0.1.nip.io', '127.0.0.1.', '2130706433', '0x7f.0.0.1', '::1', '[::1', '[::1]x', '[evil.example]:9090',
    'localhost:', 'localhost:90x', 'localhost:123456', '127.0.0.1:9090:1', 'local host', '', ' ', 'localhost/x', 'user@localhost',
  ];
  for (const host of PASS) test(`answers Host ${JSON.stringify(host)}`, () => assert.equal(adminHostAllowed(host, ALLOWED), true));
  for (const host of REFUSE) test(`refuses Host ${JSON.stringify(host)}`, () => assert.equal(adminHostAllowed(host, ALLOWED), false));
  test('a request without Host (HTTP/1.0; no browser sends one) is answered', () => assert.equal(adminHostAllowed(undefined, ALLOWED), true));
  test('without allowed_hosts only IP literals and localhost pass', () => {
    assert.equal(adminHostAllowed('certgate-admin.internal', new Set()), false);
    assert.equal(adminHostAllowed('localhost:1', new Set()), true);
  });
});

describe('isLoopbackHost', () => {
  for (const h of ['127.0.0.1', '127.1.2.3', '::1', '0:0:0:0:0:0:0:1', '::ffff:127.0.0.1', 'localhost', 'LOCALHOST']) {
    test(`${h} is loopback`, () => assert.equal(isLoopbackHost(h), true));
  }
  for (const h of ['0.0.0.0', '::', '10.0.0.5', '192.168.1.1', 'fd00::1', '::ffff:10.0.0.1', 'myhost', 'certgate.internal', '128.0.0.1']) {
    test(`${h} is not loopback`, () => assert.equal(isLoopbackHost(h), false));
  }
});

describe('adminExposure', () => {
  const BASE = `listen: 127.0.0.1:8443
tls:
  bundle: server.pem
  client_ca: ca.crt
routes:
  - upstream: http://127.0.0.1:3000
`;
  const FILE = '/etc/certgate/certgate.yaml';

  test('admin beyond loopback without token_file: a warning at admin.listen with the fix', () => {
    const p = adminExposure(parseConfig(`${BASE}admin:\n  listen: 0.0.0.0:9090\n`, FILE));
    assert.ok(p !== undefined);
    assert.equal(p.severity, 'warning');
    assert.equal(p.code, 'CG_ADMIN_EXPOSED');
    assert.equal(p.file, FILE);
    assert.equal(p.line, 8);
    assert.match(p.message, /^admin\.listen 0\.0\.0\.0:9090 is reachable beyond loopback and admin\.token_file is not set: /);
    assert.match(p.hint ?? '', /token_file/);
    assert.match(p.hint ?? '', /127\.0\.0\.1/);
  });

  test('IPv6 any-address and a host name are beyond loopback too', () => {
    assert.ok(adminExposure(parseConfig(`${BASE}admin:\n  listen: "[::]:9090"\n`, FILE)));
    assert.ok(adminExposure(parseConfig(`${BASE}admin:\n  listen: certgate.internal:9090\n`, FILE)));
  });

  test('no warning on loopback (the default) or with a token', () => {
    assert.equal(adminExposure(parseConfig(BASE, FILE)), undefined);
    assert.equal(adminExposure(parseConfig(`${BASE}admin:\n  listen: "[::1]:9090"\n`, FILE)), undefined);
    assert.equal(adminExposure(parseConfig(`${BASE}admin:\n  listen: localhost:9090\n`, FILE)), undefined);
    assert.equal(adminExposure(parseConfig(`${BASE}admin:\n  listen: 0.0.0.0:9090\n  token_file: admin-token\n`, FILE)), undefined);
  });
});
