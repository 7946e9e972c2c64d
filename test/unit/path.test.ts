import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { PATH_REFUSAL_MESSAGES, normalizeRequestPath } from '../../dist/proxy/path.js';

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
