import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { RouteConfig } from '../../dist/config/types.js';
import { CertgateError } from '../../dist/errors.js';
import { createRouter, hostFromHeader } from '../../dist/proxy/routes.js';
import { defaultRouteName, pathPrefixProblem } from '../../dist/http/route-values.js';

function route(name: string, path_prefix: string, host?: string): RouteConfig {
  return {
    name,
    path_prefix,
    ...(host !== undefined && { host }),
    upstream: new URL('http://127.0.0.1:1'),
    timeout_ms: 1000,
  };
}

/** The name of the route chosen, or undefined. */
function pick(routes: RouteConfig[], host: string | undefined, path: string): string | undefined {
  return createRouter(routes)(host, path)?.name;
}

describe('createRouter: path_prefix', () => {
  const routes = [route('api', '/api'), route('root', '/')];
  const cases: [path: string, want: string][] = [
    ['/api', 'api'],
    ['/api/', 'api'],
    ['/api/x', 'api'],
    ['/api/x/y', 'api'],
    ['/apix', 'root'],
    ['/ap', 'root'],
    ['/', 'root'],
    ['/other/api', 'root'],
    ['/API/x', 'api'], // case-insensitive: Express serves /API as /api
    ['/Api', 'api'],
  ];
  for (const [path, want] of cases) {
    it(`${path} → ${want}`, () => assert.equal(pick(routes, 'h', path), want));
  }

  it('a trailing slash in the prefix is not significant: /api/ matches /api, /api/, /api/x, not /apix', () => {
    const r = [route('slash', '/api/'), route('root', '/')];
    assert.equal(pick(r, 'h', '/api'), 'slash');
    assert.equal(pick(r, 'h', '/api/'), 'slash');
    assert.equal(pick(r, 'h', '/api/x'), 'slash');
    assert.equal(pick(r, 'h', '/apix'), 'root');
  });

  it('/ matches everything', () => {
    for (const p of ['/', '/x', '/x/y/', '/%']) assert.equal(pick([route('root', '/')], undefined, p), 'root');
  });

  it('returns undefined when nothing matches', () => {
    assert.equal(pick([route('api', '/api')], 'h', '/other'), undefined);
  });

  it('first match wins in config order, even over a longer prefix', () => {
    assert.equal(pick([route('api', '/api'), route('admin', '/api/admin')], 'h', '/api/admin/x'), 'api');
    assert.equal(pick([route('admin', '/api/admin'), route('api', '/api')], 'h', '/api/admin/x'), 'admin');
    assert.equal(pick([route('admin', '/api/admin'), route('api', '/api')], 'h', '/api/adminx'), 'api');
  });

  it('multi-segment prefixes stay segment-aware', () => {
    const r = [route('v1', '/api/v1'), route('root', '/')];
    assert.equal(pick(r, 'h', '/api/v1'), 'v1');
    assert.equal(pick(r, 'h', '/api/v1/users'), 'v1');
    assert.equal(pick(r, 'h', '/api/v10'), 'root');
    assert.equal(pick(r, 'h', '/api'), 'root');
  });

  it('returns the RouteConfig object itself', () => {
    const api = route('api', '/api');
    assert.equal(createRouter([api])('h', '/api/x'), api);
  });
});

describe('createRouter: host', () => {
  const routes = [
    route('api-host', '/', 'api.example.com'),
    route('v6', '/', '::1'),
    route('v4', '/', '127.0.0.1'),
    route('any', '/'),
  ];
  const cases: [host: string | undefined, want: string][] = [
    ['api.example.com', 'api-host'],
    ['API.Example.COM', 'api-host'],
    ['api.example.com:8443', 'api-host'],
    ['api.example.com.', 'api-host'], // the FQDN form names the same host
    ['api.example.com.:8443', 'api-host'],
    ['other.example.com', 'any'],
    ['xapi.example.com', 'any'],
    ['api.example.com.evil', 'any'],
    ['[::1]:8443', 'v6'],
    ['[::1]', 'v6'],
    ['[::2]:8443', 'any'],
    ['127.0.0.1:8443', 'v4'],
    ['', 'any'],
    [undefined, 'any'], // no Host header: only host-less routes
  ];
  for (const [host, want] of cases) {
    it(`Host ${JSON.stringify(host)} → ${want}`, () => assert.equal(pick(routes, host, '/x'), want));
  }

  it('a route with host never matches a request without Host', () => {
    assert.equal(pick([route('h', '/', 'a.example.com')], undefined, '/'), undefined);
  });

  it('combines host and path: both must match', () => {
    const r = [route('a-api', '/api', 'a.example.com'), route('b', '/', 'b.example.com')];
    assert.equal(pick(r, 'a.example.com', '/api/x'), 'a-api');
    assert.equal(pick(r, 'a.example.com', '/web'), undefined);
    assert.equal(pick(r, 'b.example.com', '/api/x'), 'b');
  });

  it('accepts a route host written with brackets', () => {
    assert.equal(pick([route('v6', '/', '[::1]')], '[::1]:9', '/'), 'v6');
  });
});

describe('hostFromHeader', () => {
  it('strips port, brackets and a trailing dot, lower-cases', () => {
    assert.equal(hostFromHeader('Example.COM:8443'), 'example.com');
    assert.equal(hostFromHeader('[2001:DB8::1]:443'), '2001:db8::1');
    assert.equal(hostFromHeader('2001:db8::1'), '2001:db8::1');
    assert.equal(hostFromHeader('example.com.'), 'example.com');
    assert.equal(hostFromHeader(undefined), undefined);
  });
});

describe('path_prefix validation', () => {
  it('accepts prefixes in normal form', () => {
    for (const p of ['/', '/api', '/api/', '/api/v1', '/café', '/100%', '/a b']) {
      assert.equal(pathPrefixProblem(p), undefined, p);
    }
  });

  it('names prefixes that could never match as written', () => {
    const cases: [string, RegExp][] = [
      ['/a/../b', /write "\/b"/],
      ['/a//b', /write "\/a\/b"/],
      ['/a/./b', /write "\/a\/b"/],
      ['/admin;x', /write "\/admin"/],
      ['/a\\b', /backslash/],
      ['/a?x', /"\?"/],
      ['/../x', /above the root/],
    ];
    for (const [p, re] of cases) assert.match(pathPrefixProblem(p) ?? '', re, p);
  });

  it('createRouter refuses such a route with CG_CONFIG_INVALID', () => {
    assert.throws(
      () => createRouter([{ ...route('bad', '/a/../b'), line: 7 }]),
      (e: unknown) => e instanceof CertgateError && e.code === 'CG_CONFIG_INVALID' && e.line === 7 && /"bad"/.test(e.message),
    );
  });

  it('a prefix written decoded matches the decoded path', () => {
    assert.equal(pick([route('cafe', '/café')], 'h', '/café/menu'), 'cafe');
  });
});

describe('defaultRouteName', () => {
  it('is host + path_prefix, or path_prefix alone', () => {
    assert.equal(defaultRouteName('api.example.com', '/api'), 'api.example.com/api');
    assert.equal(defaultRouteName('API.example.com', '/'), 'api.example.com/');
    assert.equal(defaultRouteName(undefined, '/api'), '/api');
    assert.equal(defaultRouteName(undefined, '/'), '/');
  });
});

describe('createRouter: route hosts in the shape a valid Host header has', () => {
  it('compares IPv6 hosts in canonical form: [0:0::1] is the ::1 route', () => {
    const r = [route('v6', '/', '0:0:0:0:0:0:0:1'), route('any', '/')];
    assert.equal(pick(r, '[::1]:8443', '/'), 'v6');
    assert.equal(pick(r, '[0::1]', '/'), 'v6');
    assert.equal(pick(r, '[::2]', '/'), 'any');
  });

  it('refuses a route host that no valid Host can equal (CG_CONFIG_INVALID with its line)', () => {
    for (const [host, re] of [['api.example.com:8443', /must not hold a port/], ['*.example.com', /can never match/]] as const) {
      assert.throws(
        () => createRouter([{ ...route('bad', '/', host), line: 9 }]),
        (e: unknown) => e instanceof CertgateError && e.code === 'CG_CONFIG_INVALID' && e.line === 9 && /"bad"/.test(e.message) && re.test(e.message),
        host,
      );
    }
  });

  it('a malformed Host is compared as it is, and so never selects a host route (the handler refuses it first)', () => {
    const r = [route('admin', '/', 'admin.example.com'), route('any', '/')];
    for (const h of ['admin.example.com:1:2', 'admin.example.com,www.example.com', 'x@admin.example.com', 'admin.example.com..']) {
      assert.equal(pick(r, h, '/'), 'any', h);
    }
  });
});
