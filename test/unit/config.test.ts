/**
 * Config validation: every problem at once, each with file:line:col, the key path and a fix; defaults
 * filled from the one schema; relative paths resolved against the config file's folder.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { parseConfig } from '../../dist/config/load.js';
import { CertgateError, formatProblem } from '../../dist/errors.js';

const FILE = '/etc/certgate/certgate.yaml';
const MINIMAL = `listen: 127.0.0.1:8443
tls:
  bundle: ../certs/server.pem
  client_ca: ca.crt
routes:
  - upstream: http://127.0.0.1:3000
`;

function problemsOf(source: string): string[] {
  try {
    parseConfig(source, FILE);
  } catch (err) {
    assert.ok(err instanceof CertgateError, `expected CertgateError, got ${String(err)}`);
    return err.problems.map(formatProblem);
  }
  assert.fail('expected the config to be refused');
}

test('a minimal config gets every default, absolute paths and a route name', () => {
  const c = parseConfig(MINIMAL, FILE);
  assert.deepEqual(c.listen, { host: '127.0.0.1', port: 8443 });
  assert.equal(c.tls.bundle, path.resolve('/etc/certs/server.pem'));
  assert.equal(c.tls.client_ca, '/etc/certgate/ca.crt');
  assert.equal(c.tls.client_auth, 'require');
  assert.equal(c.tls.min_version, 'TLSv1.2');
  assert.deepEqual(c.headers, {
    xfcc: false, forward_cert: false, rfc9440: false, pass_through: [], preset: 'certgate', names: {}, spiffe_id: false, tls_info: false,
  });
  assert.deepEqual(c.admin.listen, { host: '127.0.0.1', port: 9090 });
  assert.deepEqual(c.admin.allowed_hosts, []);
  assert.equal(c.log.level, 'info');
  assert.equal(c.errors.verbose, false);
  assert.equal(c.routes.length, 1);
  assert.equal(c.routes[0]!.path_prefix, '/');
  assert.equal(c.routes[0]!.timeout_ms, 30000);
  assert.equal(c.routes[0]!.upstream.href, 'http://127.0.0.1:3000/');
  assert.equal(typeof c.routes[0]!.name, 'string');
  assert.ok(Object.isFrozen(c) && Object.isFrozen(c.routes) && Object.isFrozen(c.tls));
});

test('IPv6 listen addresses keep their brackets out of the host', () => {
  const c = parseConfig(MINIMAL.replace('127.0.0.1:8443', '"[::1]:8443"'), FILE);
  assert.deepEqual(c.listen, { host: '::1', port: 8443 });
});

test('an unknown key names file:line:col and the nearest valid key', () => {
  const lines = problemsOf(MINIMAL.replace('  client_ca: ca.crt', '  client_ca: ca.crt\n  cleint_auth: require'));
  assert.equal(lines.length, 1);
  assert.match(lines[0]!, /^error: \/etc\/certgate\/certgate\.yaml:5:3: tls\.cleint_auth: unknown key "cleint_auth" \(fix: rename it to "client_auth" if that is what you meant, or remove it\) \[CG_CONFIG_INVALID\]$/);
});

test('a wrong enum value points at the value and lists the choices', () => {
  const lines = problemsOf(MINIMAL.replace('  client_ca: ca.crt', '  client_ca: ca.crt\n  client_auth: requir'));
  assert.match(lines[0]!, /certgate\.yaml:5:16: tls\.client_auth: .*\(fix: use one of: require, optional\)/);
});

test('every problem is reported at once, in file order of discovery', () => {
  const src = `listen: 8443
tls:
  client_ca: 42
routes:
  - upstream: 127.0.0.1:3000
    timeout_ms: -1
bogus: 1
`;
  const lines = problemsOf(src);
  assert.ok(lines.length >= 5, lines.join('\n'));
  assert.ok(lines.some((l) => /:1:9: listen: .*expected string, received number/.test(l)), lines.join('\n'));
  assert.ok(lines.some((l) => /:3:14: tls\.client_ca: /.test(l)), lines.join('\n'));
  assert.ok(lines.some((l) => /:5:15: routes\[0\]\.upstream: must be an http:\/\/ or https:\/\/ URL/.test(l)), lines.join('\n'));
  assert.ok(lines.some((l) => /:6:17: routes\[0\]\.timeout_ms: /.test(l)), lines.join('\n'));
  assert.ok(lines.some((l) => /:7:1: bogus: unknown key "bogus" \(fix: remove it, or use a key valid here: .*listen, tls/.test(l)), lines.join('\n'));
});

test('a missing required key says "is required"', () => {
  const lines = problemsOf('tls:\n  bundle: a.pem\n');
  assert.ok(lines.some((l) => /tls\.client_ca: is required/.test(l)), lines.join('\n'));
  assert.ok(lines.some((l) => /routes: is required/.test(l)), lines.join('\n'));
});

test('YAML syntax errors and duplicate keys carry the line', () => {
  const dup = problemsOf(MINIMAL + 'listen: 127.0.0.1:9999\n');
  assert.match(dup[0]!, /certgate\.yaml:7:1: .*[Dd]uplicate|certgate\.yaml:7:1: .*unique/);
  assert.match(dup[0]!, /\[CG_CONFIG_YAML\]$/);
  const bad = problemsOf('tls: [unclosed\n');
  assert.match(bad[0]!, /certgate\.yaml:\d+:\d+: .*\[CG_CONFIG_YAML\]$/);
});

test('YAML 1.1 booleans are strings in YAML 1.2: "yes" is refused, not silently true', () => {
  const lines = problemsOf(MINIMAL + 'headers:\n  xfcc: yes\n');
  assert.match(lines[0]!, /:8:9: headers\.xfcc: .*boolean/);
});

test('bundle and cert/key together, or neither, are refused with a fix', () => {
  assert.match(problemsOf(MINIMAL.replace('  client_ca', '  cert: a.pem\n  key: a.key\n  client_ca'))[0]!, /set either bundle or cert \+ key, not both/);
  assert.match(problemsOf(MINIMAL.replace('  bundle: ../certs/server.pem\n', ''))[0]!, /no server certificate/);
});

test('allow lists: fingerprints must be 64 lowercase hex; globs are accepted for san_uri', () => {
  const ok = parseConfig(MINIMAL + `    allow:\n      san_uri: ["spiffe://example.org/ns/*/sa/**"]\n      fingerprint_sha256: ["${'a'.repeat(64)}"]\n`, FILE);
  assert.deepEqual(ok.routes[0]!.allow?.san_uri, ['spiffe://example.org/ns/*/sa/**']);
  const lines = problemsOf(MINIMAL + '    allow:\n      fingerprint_sha256: ["AA:BB"]\n');
  assert.match(lines[0]!, /routes\[0\]\.allow\.fingerprint_sha256\[0\]: must be 64 lowercase hex/);
});

test('duplicate route names are refused (they label metrics)', () => {
  const src = MINIMAL + '  - upstream: http://127.0.0.1:3001\n';
  assert.match(problemsOf(src)[0]!, /route name ".*" is used twice/);
});

test('a route path_prefix must start with "/"', () => {
  const lines = problemsOf(MINIMAL + '    path_prefix: api\n');
  assert.match(lines[0]!, /:7:18: routes\[0\]\.path_prefix: must start with "\/"/);
});

test('headers.pass_through: names are folded like the stripping rule (case, _ and . as -)', () => {
  const c = parseConfig(MINIMAL + 'headers:\n  pass_through: [X_SSL_Client_S_DN, True-Client-IP, x.original.url]\n', FILE);
  assert.deepEqual(c.headers.pass_through, ['x-ssl-client-s-dn', 'true-client-ip', 'x-original-url']);
});

test('headers.pass_through: a name certgate sets itself is refused at file:line with a fix', () => {
  for (const own of ['X-Client-Cert-Subject', 'x_client_cert_verified', 'X-Forwarded-For', 'x-forwarded-client-cert', 'Forwarded',
    'X-Real-IP', 'Client-Cert', 'client.cert.chain', 'X-Request-Id']) {
    const lines = problemsOf(MINIMAL + `headers:\n  pass_through:\n    - x-ssl-client-s-dn\n    - ${own}\n`);
    assert.equal(lines.length, 1, lines.join('\n'));
    assert.match(lines[0]!, /^error: \/etc\/certgate\/certgate\.yaml:10:7: headers\.pass_through\[1\]: .* certgate sets itself: .*\(fix: remove it from headers\.pass_through.*\) \[CG_CONFIG_INVALID\]$/, own);
  }
});

test('headers.pass_through: a name certgate does not strip, or a wildcard, is refused', () => {
  assert.match(problemsOf(MINIMAL + 'headers:\n  pass_through: [x-amzn-trace-id]\n')[0]!, /:8:18: headers\.pass_through\[0\]: "x-amzn-trace-id" is not a header certgate strips/);
  assert.match(problemsOf(MINIMAL + 'headers:\n  pass_through: ["x-ssl-*"]\n')[0]!, /headers\.pass_through\[0\]: must be a header name/);
});

test('admin.allowed_hosts: names are lower-cased; a port, a wildcard or an IP-less blank is refused', () => {
  const c = parseConfig(MINIMAL + 'admin:\n  allowed_hosts: [Certgate-Admin.certgate.svc, status.example.com.]\n', FILE);
  assert.deepEqual(c.admin.allowed_hosts, ['certgate-admin.certgate.svc', 'status.example.com']);
  for (const bad of ['"admin:9090"', '"*.example.com"', '""', '"http://admin"']) {
    assert.match(problemsOf(MINIMAL + `admin:\n  allowed_hosts: [${bad}]\n`)[0]!, /admin\.allowed_hosts\[0\]: must be a host name/, bad);
  }
});

test('admin.listen: its line is kept for the exposure warning', () => {
  const c = parseConfig(MINIMAL + 'admin:\n  listen: 0.0.0.0:9090\n', FILE);
  assert.equal(c.admin.line, 8);
  assert.equal(parseConfig(MINIMAL, FILE).admin.line, undefined);
});

// issue 14: 1000 and 1500 were a start-up error; nginx users write `keepalive_timeout 1s`.
test('limits.keepalive_timeout_ms below 2000 (1000, 1500) is accepted; 0 (no idle limit at all) is refused with what to write', () => {
  for (const ms of [1000, 1500]) {
    const c = parseConfig(`${MINIMAL}limits:\n  keepalive_timeout_ms: ${ms}\n`, FILE);
    assert.equal(c.limits.keepalive_timeout_ms, ms);
  }
  const lines = problemsOf(`${MINIMAL}limits:\n  keepalive_timeout_ms: 0\n`);
  assert.match(lines[0]!, /:8:25: limits\.keepalive_timeout_ms: .*\(fix: use a whole number greater than 0\)/, lines[0]);
});

test('an unreadable config file: loadConfig throws and validateConfigFile (check, reload) reports the same CG_CONFIG_READ, naming the file', async () => {
  const { loadConfig } = await import('../../dist/config/load.js');
  const { validateConfigFile } = await import('../../dist/app/validate.js');
  const missing = path.join(process.cwd(), 'no-such-dir', 'certgate.yaml');
  await assert.rejects(loadConfig(missing), (err: unknown) => err instanceof CertgateError && err.code === 'CG_CONFIG_READ' && err.file === missing);
  const v = await validateConfigFile(missing);
  assert.equal(v.problems.length, 1);
  assert.equal(v.problems[0]?.code, 'CG_CONFIG_READ');
  assert.equal(v.problems[0]?.file, missing);
  assert.match(v.problems[0]?.message ?? '', /cannot read config .*: ENOENT/);
});
