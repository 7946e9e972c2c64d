import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { parseHost, routeHostName, routeHostProblem } from '../../dist/http/host.js';
import { parseConfig } from '../../dist/config/load.js';
import { CertgateError } from '../../dist/errors.js';

describe('parseHost: accepted Host values (name, port as routes compare them)', () => {
  const accepted: [host: string, name: string, port?: number][] = [
    ['a.example.com', 'a.example.com'],
    ['A.Example.COM.', 'a.example.com'], // one trailing dot: the FQDN form of the same name
    ['admin.example.com:8443', 'admin.example.com', 8443],
    ['A.Example.COM.:443', 'a.example.com', 443],
    ['localhost', 'localhost'],
    ['under_score.local', 'under_score.local'],
    ['-x-.example', '-x-.example'],
    ['xn--dmin-moa.example.com', 'xn--dmin-moa.example.com'], // IDN in its ASCII (punycode) form
    [`${'a'.repeat(63)}.example`, `${'a'.repeat(63)}.example`],
    ['127.0.0.1:8443', '127.0.0.1', 8443],
    ['0.0.0.0', '0.0.0.0'],
    ['255.255.255.255:1', '255.255.255.255', 1],
    ['127.0.0.1.', '127.0.0.1'],
    ['1.example', '1.example'], // numeric labels are fine unless the last one is
    ['[::1]:8443', '::1', 8443],
    ['[::1]', '::1'],
    ['[2001:DB8::1]:443', '2001:db8::1', 443],
    ['[2001:db8:0:0:0:0:0:1]', '2001:db8::1'], // canonical form: one spelling per address
    ['[::ffff:127.0.0.1]', '::ffff:7f00:1'],
    ['example.com:65535', 'example.com', 65535],
  ];
  for (const [host, name, port] of accepted) {
    it(`${JSON.stringify(host)} → ${name}${port === undefined ? '' : ` port ${port}`}`, () => {
      assert.deepEqual(parseHost(host), port === undefined ? { name } : { name, port });
    });
  }
});

describe('parseHost: a malformed Host that an upstream could read as another (allow-listed) host is refused', () => {
  const refused: [host: string, why: string][] = [
    // The finding's spellings: certgate matched none of them to the admin.example.com route.
    ['admin.example.com:1:2', 'a framework that cuts at the first ":" reads admin.example.com'],
    ['admin.example.com,www.example.com', 'Express trust proxy takes the first X-Forwarded-Host element'],
    ['x@admin.example.com', 'userinfo: a URL parser reads host admin.example.com'],
    ['admin.example.com/x', 'a path: a URL parser reads host admin.example.com'],
    ['admin.example.com..', 'two trailing dots'],
    ['admin.example.com;', 'a ";" that a parameter-splitting parser drops'],
    // Neighbours of the same kind.
    ['admin.example.com?x', 'a query'],
    ['admin.example.com#x', 'a fragment'],
    ['admin.example.com x', 'a space'],
    ['admin.example.com\tx', 'a tab'],
    ['admin.example.com:', 'an empty port'],
    ['admin.example.com:0', 'port 0'],
    ['admin.example.com:65536', 'a port above 65535'],
    ['admin.example.com:08443', 'a port with a leading zero'],
    ['admin.example.com:+443', 'a signed port'],
    ['admin.example.com:443x', 'a port with a suffix'],
    ['admin%2Eexample.com', 'percent-encoding'],
    ['ａdmin.example.com', 'fullwidth letters (WHATWG URL maps them to admin.example.com)'],
    ['\u00e4dmin.example.com', 'non-ASCII'],
    ['.admin.example.com', 'an empty first label'],
    ['admin..example.com', 'an empty label'],
    ['.', 'a lone dot'],
    ['', 'empty'],
    [`${'a'.repeat(64)}.example`, 'a label over 63 characters'],
    ['admin.example.com\\x', 'a backslash'],
    ['admin.example.com*', 'a "*"'],
    ['[::1]x', 'junk after the brackets'],
    ['[::1]:', 'an empty port after brackets'],
    ['[::1%25eth0]', 'an IPv6 zone id'],
    ['[fe80::1%eth0]:8443', 'an IPv6 zone id, raw %'],
    ['[v1.admin]', 'an IPvFuture literal'],
    ['[admin.example.com]', 'a name in brackets'],
    ['[::1', 'an unclosed bracket'],
    ['::1', 'IPv6 without brackets'],
    ['2001:db8::1', 'IPv6 without brackets'],
    ['127.1', 'IPv4 shorthand (127.0.0.1 to a WHATWG parser)'],
    ['0177.0.0.1', 'octal IPv4 (127.0.0.1 to a WHATWG parser)'],
    ['0x7f.0.0.1', 'hex IPv4'],
    ['127.0.0.01', 'a leading zero in an octet'],
    ['256.0.0.1', 'an octet above 255'],
    ['1.2.3.4.5', 'five numeric labels'],
    ['a.123', 'an all-numeric last label'],
    ['example.0x1', 'a hex last label'],
  ];
  for (const [host, why] of refused) {
    it(`${JSON.stringify(host)} refused (${why})`, () => assert.equal(parseHost(host), undefined));
  }
});

describe('parseHost against an independent reading of the rule', () => {
  /** The rule read another way: one regex for the shape, then WHATWG's "ends in a number" test. */
  const QUAD = /^(?:(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\.){3}(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\.?$/;
  function reference(host: string): boolean {
    const m = /^([a-z0-9_-]{1,63}(?:\.[a-z0-9_-]{1,63})*\.?)(?::([0-9]{1,5}))?$/i.exec(host);
    if (m === null) return false;
    if (m[2] !== undefined && (m[2].startsWith('0') || Number(m[2]) > 65535)) return false;
    const endsInNumber = /(?:^|\.)(?:[0-9]+|0x[0-9a-f]*)\.?$/i.test(m[1]!);
    return !endsInNumber || QUAD.test(m[1]!);
  }
  const hostArb = fc.string({ unit: fc.constantFrom('a', 'Z', '0', '1', '9', '5', '6', 'x', '.', ':', '-', '_', '@', ',', ';', '/', '%', ' ', '[', ']'), maxLength: 24 });

  it('accepts a name or dotted quad exactly when the reference does', () => {
    fc.assert(fc.property(hostArb, (host) => {
      if (host.startsWith('[')) return;
      assert.equal(parseHost(host) !== undefined, reference(host), JSON.stringify(host));
    }), { seed: 4242, numRuns: 3000 });
  });

  it('never throws, and every accepted value is accepted again with the same name when lower-cased', () => {
    fc.assert(fc.property(fc.string({ unit: 'binary', maxLength: 40 }), (host) => {
      const p = parseHost(host);
      if (p !== undefined) assert.deepEqual(parseHost(host.toLowerCase()), p);
    }), { seed: 4243, numRuns: 2000 });
  });
});

describe('route hosts', () => {
  it('routeHostName: lower-cased, brackets and one trailing dot removed, IPv6 canonical', () => {
    assert.equal(routeHostName('Admin.Example.COM.'), 'admin.example.com');
    assert.equal(routeHostName('[::1]'), '::1');
    assert.equal(routeHostName('0:0::1'), '::1');
    assert.equal(routeHostName('2001:DB8:0::1'), '2001:db8::1');
  });

  it('routeHostProblem: a host no valid Host header can equal is named, with a fix for a port', () => {
    for (const ok of ['api.example.com', 'API.example.com.', '127.0.0.1', '::1', '[::1]', 'under_score.local']) {
      assert.equal(routeHostProblem(ok), undefined, ok);
    }
    assert.match(routeHostProblem('api.example.com:8443') ?? '', /must not hold a port .*write "api\.example\.com"/);
    assert.match(routeHostProblem('[::1]:8443') ?? '', /must not hold a port .*write "\[::1\]"/);
    for (const bad of ['*.example.com', 'http://api.example.com', 'api example', '127.1']) {
      assert.match(routeHostProblem(bad) ?? '', /can never match/, bad);
    }
  });
});

describe('config: a route host that no valid Host can equal', () => {
  const config = (host: string) => `listen: 127.0.0.1:8443
tls:
  bundle: server.pem
  client_ca: ca.crt
routes:
  - name: admin
    host: "${host}"
    upstream: http://127.0.0.1:3000
`;
  it('is CG_CONFIG_INVALID at the host key, with a fix', () => {
    for (const [host, re] of [['admin.example.com:8443', /must not hold a port/], ['*.example.com', /can never match/]] as const) {
      assert.throws(() => parseConfig(config(host), '/etc/certgate/certgate.yaml'), (e: unknown) => {
        assert.ok(e instanceof CertgateError);
        const p = e.problems.find((x) => /routes\[0\]\.host/.test(x.message));
        assert.ok(p, JSON.stringify(e.problems));
        assert.equal(p.code, 'CG_CONFIG_INVALID');
        assert.equal(p.line, 7);
        assert.match(p.message, re);
        assert.match(p.hint ?? '', /api\.example\.com/);
        return true;
      }, host);
    }
  });

  it('accepts names, dotted quads and IPv6 with or without brackets', () => {
    for (const host of ['Admin.Example.com.', '127.0.0.1', '::1', '[::1]']) {
      assert.equal(parseConfig(config(host), '/etc/certgate/certgate.yaml').routes[0]!.name, 'admin', host);
    }
  });
});

describe('parseHost: the memo (issue 19) answers as parsing does', () => {
  it('gives the same answer the second time, for accepted and refused values alike', () => {
    for (const host of ['memo.example.com:8443', 'memo.example.com:1:2', '[0:0::1]:443', '0177.0.0.1', `${'a'.repeat(300)}.example`]) {
      const first = parseHost(host);
      assert.deepEqual(parseHost(host), first, host);
    }
    assert.equal(parseHost('memo.example.com:1:2'), undefined);
    assert.deepEqual(parseHost('[0:0::1]:443'), { name: '::1', port: 443 });
  });

  it('stays right past its bound (a client cycling through Host values)', () => {
    for (let i = 0; i < 1000; i++) {
      assert.deepEqual(parseHost(`h${i}.example:${1 + i}`), { name: `h${i}.example`, port: 1 + i });
      assert.equal(parseHost(`h${i}.example:0${i}`), undefined);
    }
    assert.deepEqual(parseHost('memo.example.com:8443'), { name: 'memo.example.com', port: 8443 });
  });

  it('hands out frozen answers (one object is shared by every request with that Host)', () => {
    assert.ok(Object.isFrozen(parseHost('frozen.example')));
  });
});
