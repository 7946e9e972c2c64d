/**
 * Every fix a user is shown says what to do, not "fix it" (issue 14: "fix the value shown" said nothing):
 * the error catalogue (CODES, the README errors table) and the hints config/load.ts derives from the
 * validator's issues. And limits.keepalive_timeout_ms below 2000: accepted, with a warning saying why.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CODES, type Problem } from '../../dist/errors.js';
import { parseConfig } from '../../dist/config/load.js';
import { CertgateError } from '../../dist/errors.js';
import { keepAliveAdvice } from '../../dist/config/keepalive.js';

/** First words of an instruction: a hint holds at least one clause (split at ": " and "; ") that starts with one. */
const ACTIONS = new Set([
  'add', 'ask', 'chmod', 'connect', 'correct', 'create', 'define', 'follow', 'give', 'install', 'let', 'list', 'make', 'nothing', 'pair',
  'pass', 'pick', 'point', 'put', 'quote', 're-export', 'reissue', 'remove', 'rename', 'renew', 'reorder', 'replace', 'revoke', 'run',
  'set', 'start', 'use', 'write',
]);
/** Words that name no action: "fix it", "fix the value shown", "check the path". */
const VAGUE = /\b(fix|check)\b/i;

function saysWhatToDo(hint: string): string | undefined {
  if (VAGUE.test(hint)) return `says "${VAGUE.exec(hint)![0]}" instead of what to do`;
  const clauses = hint.split(/: |; /).map((c) => c.trim().toLowerCase());
  if (!clauses.some((c) => ACTIONS.has(c.split(/[\s,]/)[0]!))) return `no clause starts with an instruction (${[...ACTIONS].join(', ')})`;
  return undefined;
}

test('every hint in the error catalogue (CODES, the README errors table) says what to do', () => {
  const vague = Object.entries(CODES).flatMap(([code, hint]) => {
    const why = saysWhatToDo(hint);
    return why === undefined ? [] : [`${code}: "${hint}" ${why}`];
  });
  assert.deepEqual(vague, []);
});

/** One bad config per kind of validator issue; each problem's hint must say what to write. */
const BAD_CONFIGS: Record<string, unknown> = {
  'a number below its minimum': { limits: { max_connections: 0 } },
  'a number above its maximum': { limits: { max_header_bytes: 99_999_999 } },
  'a fraction where a whole number goes': { limits: { max_connections: 1.5 } },
  'a string where a number goes': { limits: { max_connections: 'many' } },
  'an unknown enum value': { tls: { bundle: 'a.pem', client_ca: 'ca.pem', crl_mode: 'x' } },
  'a malformed HOST:PORT': { listen: 'nope' },
  'a non-http URL': { routes: [{ upstream: 'ftp://x' }] },
  'a prefix without "/"': { routes: [{ upstream: 'http://127.0.0.1:1', path_prefix: 'api' }] },
  'a route name with a space': { routes: [{ upstream: 'http://127.0.0.1:1', name: 'a b' }] },
  'a short fingerprint': { routes: [{ upstream: 'http://127.0.0.1:1', allow: { fingerprint_sha256: ['zz'] } }] },
  'an empty allow list': { routes: [{ upstream: 'http://127.0.0.1:1', allow: { subject_cn: [] } }] },
  'an empty file path': { tls: { bundle: '', client_ca: 'ca.pem' } },
  'workers: many': { workers: 'many' },
  'a wildcard header name': { headers: { pass_through: ['X-*'] } },
  'an admin host with a space': { admin: { allowed_hosts: ['a b'] } },
  'whoami_path: /': { whoami_path: '/' },
  'a whoami_path the path step refuses': { whoami_path: '/who.' },
  'a missing key': { tls: { bundle: 'a.pem' } },
  'a misspelt key': { tls: { bundle: 'a.pem', client_ca: 'ca.pem', client_auht: 'require' } },
  'an unknown key': { tls: { bundle: 'a.pem', client_ca: 'ca.pem', zzz_unrelated: 1 } },
  'no routes': { routes: [] },
  'an enrollment max_days above 825': { enrollment: { ca_cert: 'a', ca_key: 'b', tokens_file: 'c', state_file: 'd', max_days: 9999 } },
};

test('every hint config/load.ts derives from a validator issue says what to do', () => {
  const base = { tls: { bundle: 'a.pem', client_ca: 'ca.pem' }, routes: [{ upstream: 'http://127.0.0.1:1' }] };
  const vague: string[] = [];
  for (const [what, bad] of Object.entries(BAD_CONFIGS)) {
    let problems: readonly Problem[] = [];
    try {
      parseConfig(JSON.stringify({ ...base, ...(bad as object) }), '/etc/certgate/certgate.yaml');
    } catch (err) {
      assert.ok(err instanceof CertgateError, String(err));
      problems = err.problems;
    }
    assert.ok(problems.length > 0, `${what}: refused`);
    for (const p of problems) {
      const why = saysWhatToDo(p.hint ?? CODES[p.code]);
      if (why !== undefined) vague.push(`${what}: ${p.message} (fix: ${p.hint}) ${why}`);
    }
  }
  assert.deepEqual(vague, []);
});

test('limits.keepalive_timeout_ms below 2000: a warning saying why (Node clients would reuse no connection) and what to do; none from 2000 on', () => {
  const config = (ms: number) => ({ limits: { keepalive_timeout_ms: ms }, file: '/etc/certgate/certgate.yaml' });
  for (const [ms, advertised] of [[1500, 1], [1000, 1], [999, 0]] as const) {
    const p = keepAliveAdvice(config(ms));
    assert.ok(p !== undefined, `${ms}: a warning`);
    assert.equal(p.severity, 'warning');
    assert.equal(p.code, 'CG_KEEPALIVE_SHORT');
    assert.equal(p.file, '/etc/certgate/certgate.yaml');
    assert.ok(p.message.includes(`Keep-Alive: timeout=${advertised}`), p.message);
    assert.match(p.message, /Node\.js clients/);
    assert.equal(saysWhatToDo(p.hint!), undefined, p.hint);
    assert.match(p.hint!, /2000/);
  }
  assert.equal(keepAliveAdvice(config(2000)), undefined);
  assert.equal(keepAliveAdvice(config(5000)), undefined);
});
