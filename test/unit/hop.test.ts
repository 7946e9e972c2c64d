/**
 * The upstream request-target (request-target.ts, for hop.ts and tunnel.ts; issue #4). It must be the one
 * http-proxy-3 built before (prependPath: upstream path + req.url, queries joined), byte for byte: http-proxy-3 itself is
 * the oracle here, on fixed cases and on fast-check strings rich in the characters its WHATWG URL pass
 * changes (dot-segments, %2e, quotes, < > ` { }, backslash, #, a trailing "?", controls, non-ASCII).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import fc from 'fast-check';
import type { Dispatcher } from 'undici';
import { hopTarget } from '../../dist/proxy/hop.js';
import { outgoingPath } from '../../dist/proxy/request-target.js';
import type { RouteConfig } from '../../dist/config/types.js';

type SetupOutgoing = (outgoing: Record<string, unknown>, options: Record<string, unknown>, req: Record<string, unknown>) => { path: string };
const require = createRequire(import.meta.url);
const { setupOutgoing } = require('http-proxy-3/dist/lib/http-proxy/common.js') as { setupOutgoing: SetupOutgoing };

/** What http-proxy-3 1.23 sent as the path with certgate's options (prependPath, an agent). */
function httpProxyPath(upstream: string, url: string): string {
  return setupOutgoing({}, { target: new URL(upstream), prependPath: true, agent: {} }, { url, method: 'GET', headers: {}, httpVersionMajor: 1 }).path;
}

/** hopTarget only keeps the dispatcher (upstreams.ts's undici Pool); these tests never dispatch. */
const NO_DISPATCHER = {} as Dispatcher;

function ours(upstream: string, url: string): string {
  const route = { name: 'r', upstream: new URL(upstream), timeout_ms: 1000 } as unknown as RouteConfig;
  return outgoingPath(hopTarget(route, NO_DISPATCHER), url);
}

/** Both outcomes, a thrown error included, as comparable text. */
function outcome(f: () => string): string {
  try {
    return `path ${JSON.stringify(f())}`;
  } catch (err) {
    return `throws ${(err as Error).name}`;
  }
}

const UPSTREAMS = [
  'http://127.0.0.1:3000', 'http://127.0.0.1:3000/', 'http://h:1/base', 'http://h:1/base/', 'http://h:1/a/b//',
  'http://h:1/base?k=v', 'http://h:1/?k=v&j', 'https://[::1]:8443/v1', 'http://h:1/sp%20ace/caf%C3%A9', 'http://h:1//double',
];

describe('hop: the upstream request-target is the one http-proxy-3 built', () => {
  const examples: readonly (readonly [upstream: string, url: string, want: string])[] = [
    ['http://h:1', '/x?y', '/x?y'],
    ['http://h:1/base', '/x?y', '/base/x?y'],
    ['http://h:1/base/', '/x?y', '/base/x?y'],
    ['http://h:1/base', '/', '/base/'],
    ['http://h:1/base', '//admin', '/base//admin'],
    ['http://h:1/base?k=v', '/x?b=2&a=1', '/base/x?k=v&b=2&a=1'],
    ['http://h:1/base?k=v', '/x', '/base/x?k=v'],
    ['http://h:1', '/x?b=%2F&a=1+2&&c=%zz;d', '/x?b=%2F&a=1+2&&c=%zz;d'], // query bytes kept
    // `^` in a path: kept by Node 20/22's URL parser, encoded by Node 24's; http-proxy-3 followed the runtime
    ['http://h:1', '/a;p=1/%7e/x|y^z', `/a;p=1/%7e/x|y${new URL('http://h/^').pathname.slice(1)}z`],
    // http-proxy-3 re-parses req.url with WHATWG URL: the same changes, on the slow path
    ['http://h:1/base', '/a/../b', '/base/b'],
    ['http://h:1', '/a/%2e%2E/b', '/b'],
    ['http://h:1', '/x?', '/x'],
    ['http://h:1', "/x?q='1'", '/x?q=%271%27'],
    ['http://h:1', '/p"<>`{}?q="<>`{}', '/p%22%3C%3E%60%7B%7D?q=%22%3C%3E`{}'],
    ['http://h:1', '/x?a#frag', '/x?a'],
  ];
  for (const [upstream, url, want] of examples) {
    it(`${upstream} + ${url} → ${want}`, () => {
      assert.equal(httpProxyPath(upstream, url), want, 'the oracle itself (http-proxy-3 changed?)');
      assert.equal(ours(upstream, url), want);
    });
  }

  it('fast-check: any target, any upstream path/query → the same bytes (or the same refusal)', () => {
    const specials = ['/', '/', '.', '..', '%2e', '%2E', '?', '?', '#', '&', '=', "'", '"', '<', '>', '`', '{', '}', '\\', '|', '^',
      ' ', '%', '%zz', ';', ':', '@', '+', '~', 'a', 'Z', '0', '\t', '\x7f', '\u00e9', '\u00c3', '[', ']', '//'];
    const target = fc.tuple(fc.constantFrom('/', '/', '/', '//', '?', ''), fc.array(fc.constantFrom(...specials), { maxLength: 14 }))
      .map(([first, rest]) => first + rest.join(''));
    fc.assert(fc.property(fc.constantFrom(...UPSTREAMS), target, (upstream, url) => {
      assert.equal(outcome(() => ours(upstream, url)), outcome(() => httpProxyPath(upstream, url)), `${upstream} + ${JSON.stringify(url)}`);
    }), { seed: Number(process.env.FUZZ_SEED ?? 20261124), numRuns: Number(process.env.FUZZ_RUNS ?? 300) * 10 });
  });

  it('the servername sent with every request: the URL host name, IPv6 brackets off (upstreams.ts drops it for an IP)', () => {
    const t = (u: string) => hopTarget({ name: 'r', upstream: new URL(u), timeout_ms: 1 } as unknown as RouteConfig, NO_DISPATCHER);
    assert.equal(t('https://[::1]:8443/').servername, '::1');
    assert.equal(t('https://Example.TEST/v1').servername, 'example.test');
    assert.equal(t('http://127.0.0.1:3000').servername, '127.0.0.1');
  });
});

describe('upstreams.ts loads undici by file, not through its index', () => {
  it('the two modules it requires are the Pool and buildConnector that undici exports (fails when an upgrade moves them)', () => {
    const undici = require('undici') as typeof import('undici');
    assert.equal(require('undici/lib/dispatcher/pool.js'), undici.Pool);
    assert.equal(require('undici/lib/core/connect.js'), undici.buildConnector);
    // upstreams.ts's workaround for nodejs/undici#5845 reads a Client's queue through these (test/e2e/upstream-faults.test.ts,
    // "an endless response ... its upstream connection is closed too", fails without it).
    const symbols = require('undici/lib/core/symbols.js') as Record<string, unknown>;
    assert.equal(typeof symbols.kQueue, 'symbol');
    assert.equal(typeof symbols.kPendingIdx, 'symbol');
    const spec = (require('../../package.json') as { dependencies: Record<string, string> }).dependencies.undici;
    assert.match(spec ?? '', /^\d+\.\d+\.\d+$/, `package.json pins undici exactly (an upgrade is a deliberate step that re-runs this test), not ${spec}`);
  });
});
