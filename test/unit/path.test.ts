import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { PATH_REFUSAL_MESSAGES, normalizeRequestPath } from '../../dist/http/path.js';
import { parseConfig } from '../../dist/config/load.js';
import { CertgateError } from '../../dist/errors.js';

type Case = readonly [target: string, want: string];

const accepted: readonly Case[] = [
  ['/', '/'],
  ['/api', '/api'],
  ['/api/', '/api/'],
  ['/api/x?y=1', '/api/x'],
  ['/api?q=%2F..%00\\', '/api'], // the query is not the path: nothing in it is refused
  ['/?', '/'],
  ['/api/../admin', '/admin'],
  ['/api/%2e%2e/admin', '/admin'],
  ['/api/.%2E/admin', '/admin'],
  ['/api/%2E/x', '/api/x'],
  ['/api/./x', '/api/x'],
  ['/api/x/..', '/api/'],
  ['/api/x/.', '/api/x/'],
  ['/api/..', '/'],
  ['/.', '/'],
  ['//x', '/x'],
  ['///x//y/', '/x/y/'],
  ['/a//', '/a/'],
  ['/a//b/../c', '/a/c'], // "//" and ".." that every reading resolves alike
  ['/caf%C3%A9', '/café'],
  ['/caf\u00c3\u00a9', '/café'], // Node hands raw UTF-8 bytes over as latin1
  ['/a%20b', '/a b'],
  ['/%25', '/%'],
  ['/%252F', '/%2F'], // decoded once only
  ['/admin;jsessionid=1/x', '/admin/x'],
  ['/admin;x', '/admin'],
  ['/a%3Bb', '/a;b'], // an encoded ";" is a name character, not a parameter
  ['/...', '/...'],
  ['/..a/.b', '/..a/.b'],
  ['/%EF%BB%BFadmin', '/\ufeffadmin'], // a BOM is kept, not silently dropped
];

const refused: readonly Case[] = [
  ['http://evil.example/x', 'not_origin_form'],
  ['https://x/', 'not_origin_form'],
  ['example.com:443', 'not_origin_form'],
  ['*', 'not_origin_form'],
  ['', 'not_origin_form'],
  ['?x', 'not_origin_form'],
  ['api/x', 'not_origin_form'],
  ['/admin#/../public', 'not_origin_form'],
  ['/api%2Fadmin', 'encoded_slash'],
  ['/api%2fadmin', 'encoded_slash'],
  ['/a\\b', 'backslash'],
  ['/a%5Cb', 'backslash'],
  ['/a%5cb', 'backslash'],
  ['/%00', 'nul'],
  ['/a%00b/c', 'nul'],
  ['/a\u0000b', 'nul'],
  ['/../x', 'dot_segment_escape'],
  ['/..', 'dot_segment_escape'],
  ['/%2e%2e/x', 'dot_segment_escape'],
  ['/a/../../x', 'dot_segment_escape'],
  ['/a/./../..', 'dot_segment_escape'],
  ['//../x', 'dot_segment_escape'],
  ['/%zz', 'bad_encoding'],
  ['/%', 'bad_encoding'],
  ['/%2', 'bad_encoding'],
  ['/a%g0', 'bad_encoding'],
  ['/%ff', 'bad_encoding'], // not UTF-8
  ['/%C0%AE%C0%AE/x', 'bad_encoding'], // overlong "." must not become a dot-segment
  ['/\u0100', 'bad_encoding'], // cannot come from Node's latin1 request line
  ['/a//../b', 'ambiguous_path'], // nginx: /b, RFC 3986: /a/b
  ['/a/.//../b', 'ambiguous_path'],
  ['/a/b//../c', 'ambiguous_path'],
  ['/public/..;/admin', 'ambiguous_path'], // Tomcat: /admin, Express: a name
  ['/public/.;x/admin', 'ambiguous_path'],
  ['/public/%2e%2e;/admin', 'ambiguous_path'],
];

describe('normalizeRequestPath', () => {
  for (const [target, want] of accepted) {
    it(`${JSON.stringify(target)} → ${JSON.stringify(want)}`, () => {
      assert.deepEqual(normalizeRequestPath(target), { ok: true, path: want });
    });
  }
  for (const [target, reason] of refused) {
    it(`${JSON.stringify(target)} refused: ${reason}`, () => {
      assert.deepEqual(normalizeRequestPath(target), { ok: false, reason });
    });
  }

  it('has a message for every refusal reason it returns', () => {
    for (const [target] of refused) {
      const r = normalizeRequestPath(target);
      assert.equal(r.ok, false);
      if (!r.ok) assert.match(PATH_REFUSAL_MESSAGES[r.reason], /\w/);
    }
  });

  it('refuses an encoded slash anywhere in the path, not only at the first segment', () => {
    assert.deepEqual(normalizeRequestPath('/a/b/c%2F'), { ok: false, reason: 'encoded_slash' });
  });
});

/**
 * strict_paths (on by default): names that upstreams fold into another name are refused, so that
 * `/admin.` or `/x/%252e%252e/admin` cannot reach a catch-all route and be served as `/admin`.
 */
describe('normalizeRequestPath with strict (strict_paths): suffix and double-encoding tricks', () => {
  const folded: readonly Case[] = [
    // Trailing dots: Windows/IIS/.NET serve /admin for these.
    ['/admin.', 'trailing_dot_or_space'],
    ['/admin..', 'trailing_dot_or_space'],
    ['/admin%2e', 'trailing_dot_or_space'],
    ['/admin./x', 'trailing_dot_or_space'],
    ['/admin.;x', 'trailing_dot_or_space'], // the name before ";params" is what Tomcat routes
    ['/...', 'trailing_dot_or_space'],
    ['/admin%EF%BC%8E', 'trailing_dot_or_space'], // fullwidth "." (NFKC ".")
    ['/%EF%BC%8E%EF%BC%8E/admin', 'trailing_dot_or_space'], // fullwidth ".." is a dot-segment after NFKC
    ['/admin%E2%80%A6', 'trailing_dot_or_space'], // "…" is "..." after NFKC
    // Whitespace at either end: Windows trims trailing spaces; Java trim() / Spring trimTokens both ends.
    ['/admin%20', 'trailing_dot_or_space'],
    ['/admin%09', 'trailing_dot_or_space'],
    ['/admin%0A', 'trailing_dot_or_space'],
    ['/admin%0d', 'trailing_dot_or_space'],
    ['/admin%0B', 'trailing_dot_or_space'],
    ['/admin%0C', 'trailing_dot_or_space'],
    ['/admin%1F', 'trailing_dot_or_space'],
    ['/admin%7F', 'trailing_dot_or_space'],
    ['/admin%C2%A0', 'trailing_dot_or_space'], // NBSP
    ['/admin%C2%85', 'trailing_dot_or_space'], // NEL
    ['/admin%E3%80%80', 'trailing_dot_or_space'], // ideographic space
    ['/admin%E2%80%8B', 'trailing_dot_or_space'], // zero-width space
    ['/admin%EF%BB%BF', 'trailing_dot_or_space'], // BOM
    ['/%20admin', 'trailing_dot_or_space'],
    ['/%EF%BB%BFadmin', 'trailing_dot_or_space'], // kept in non-strict mode, but some readers drop it
    ['/%20/admin', 'trailing_dot_or_space'],
    ['/admin%20;jsessionid=1', 'trailing_dot_or_space'],
    // NTFS alternate data streams: admin::$DATA is the file admin.
    ['/admin::$DATA', 'ntfs_stream'],
    ['/admin::$data/x', 'ntfs_stream'],
    ['/admin%3A%3A%24DATA', 'ntfs_stream'],
    ['/admin:$i30:$INDEX_ALLOCATION/x', 'ntfs_stream'],
    ['/admin%EF%BC%9A%EF%BC%9A$DATA', 'ntfs_stream'], // fullwidth ":" (NFKC ":")
    // Double encoding: a server that decodes twice reads another path.
    ['/x/%252e%252e/admin', 'double_encoding'],
    ['/x/%252E%252E/admin', 'double_encoding'],
    ['/x%252fadmin', 'double_encoding'],
    ['/x%255cadmin', 'double_encoding'],
    ['/%2561dmin', 'double_encoding'], // any escape: /admin after two decodes
    ['/x/%25%32%65%25%32%65/admin', 'double_encoding'], // "%", "2", "e" each encoded
    ['/x/%25252e', 'double_encoding'], // triple
    ['/x/%25u002e%25u002e/admin', 'double_encoding'], // IIS %u
    ['/x/%EF%BC%852e', 'double_encoding'], // fullwidth "%" (NFKC "%")
    // An encoded ";": servers that decode before stripping ;params serve /admin.
    ['/admin%3b', 'encoded_semicolon'],
    ['/admin%3Bx', 'encoded_semicolon'],
    ['/admin%EF%BC%9B', 'encoded_semicolon'], // fullwidth ";"
    ['/admin%CD%BE', 'encoded_semicolon'], // GREEK QUESTION MARK, NFKC ";"
  ];
  for (const [target, reason] of folded) {
    it(`${JSON.stringify(target)} refused: ${reason} (served as another name by a folding upstream)`, () => {
      assert.deepEqual(normalizeRequestPath(target, { strict: true }), { ok: false, reason });
    });
    it(`${JSON.stringify(target)} is not refused for ${reason} with strict_paths: false`, () => {
      const r = normalizeRequestPath(target);
      assert.ok(r.ok || r.reason !== reason, JSON.stringify(r));
    });
  }

  const stillAccepted: readonly Case[] = [
    ['/admin.json', '/admin.json'], // a suffix is another name: README says to protect the catch-all too
    ['/admin', '/admin'],
    ['/a/./b', '/a/b'], // dot-segments are resolved, not "ending in a dot"
    ['/a/../b', '/b'],
    ['/a/%2e%2e/b', '/b'],
    ['/a/.', '/a/'],
    ['/api/x/..', '/api/'],
    ['/.well-known/x', '/.well-known/x'],
    ['/..a/.b', '/..a/.b'],
    ['/v1.2/x', '/v1.2/x'],
    ['/a%20b', '/a b'], // inner spaces are not trimmed by anyone
    ['/admin;jsessionid=1', '/admin'], // a raw ";" starts params, as before
    ['/admin;x.', '/admin'], // the params part is not the name
    ['/%25', '/%'], // a lone "%" is not an escape after decoding
    ['/100%25off', '/100%off'],
    ['/a:b', '/a:b'],
    ['/$DATA', '/$DATA'],
    ['/caf%C3%A9', '/café'],
    ['/api?x=%252e%252e&y=admin.', '/api'], // the query is not the path
  ];
  for (const [target, want] of stillAccepted) {
    it(`${JSON.stringify(target)} → ${JSON.stringify(want)} in strict mode`, () => {
      assert.deepEqual(normalizeRequestPath(target, { strict: true }), { ok: true, path: want });
    });
  }

  it('has a message for each strict refusal', () => {
    for (const reason of ['trailing_dot_or_space', 'ntfs_stream', 'double_encoding', 'encoded_semicolon'] as const) {
      assert.match(PATH_REFUSAL_MESSAGES[reason], /\w/);
    }
  });
});

describe('config: strict_paths', () => {
  const base = 'listen: 127.0.0.1:8443\ntls:\n  bundle: server.pem\n  client_ca: ca.crt\nroutes:\n  - upstream: http://127.0.0.1:3000\n';
  it('is on by default; false turns the strict refusals off; anything else is a config error', () => {
    assert.equal(parseConfig(base, '/etc/certgate/certgate.yaml').strict_paths, true);
    assert.equal(parseConfig(`${base}strict_paths: false\n`, '/etc/certgate/certgate.yaml').strict_paths, false);
    assert.throws(() => parseConfig(`${base}strict_paths: "no"\n`, '/etc/certgate/certgate.yaml'), /strict_paths/);
  });

  it('a whoami_path the path step refuses is a config error at its line (it could never be answered); strict_paths: false lets a strict-only one through', () => {
    const file = '/etc/certgate/certgate.yaml';
    const refused = (text: string): CertgateError => {
      try {
        parseConfig(text, file);
      } catch (err) {
        assert.ok(err instanceof CertgateError);
        return err;
      }
      assert.fail('a config error');
    };
    const strict = refused(`${base}whoami_path: /.certgate/whoami.\n`);
    assert.equal(strict.problems[0]?.line, 7);
    assert.match(strict.problems[0]!.message, /whoami_path.*trailing_dot_or_space/);
    assert.equal(parseConfig(`${base}strict_paths: false\nwhoami_path: /.certgate/whoami.\n`, file).whoami_path, '/.certgate/whoami.');
    assert.match(refused(`${base}strict_paths: false\nwhoami_path: /a%2Fb\n`).message, /encoded_slash/);
    assert.equal(parseConfig(`${base}whoami_path: /.certgate/whoami\n`, file).whoami_path, '/.certgate/whoami');
  });
});
