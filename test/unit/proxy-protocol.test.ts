/**
 * The PROXY protocol header parser (net/proxy-protocol.ts) and the trusted ranges (net/cidr.ts), pure:
 * every way a header can be incomplete (read more), malformed (refuse) or fine (the client address and
 * where the client's own bytes begin), and the bounds that keep a hostile peer from making certgate wait
 * for or hold more than a few KiB. Headers are built independently (test/helpers/proxy-protocol.ts).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { parseProxyHeader, proxySignature, V1_MAX_BYTES, MAX_V2_PAYLOAD } from '../../dist/net/proxy-protocol.js';
import { addressMatcher, parseCidr, type Cidr } from '../../dist/net/cidr.js';
import { parseConfig } from '../../dist/config/load.js';
import { CertgateError, formatProblem } from '../../dist/errors.js';
import { v1Header, v2Header, V2_SIGNATURE } from '../helpers/proxy-protocol.js';

const CLIENT_HELLO = Buffer.from([0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5]);

describe('parseProxyHeader: v1', () => {
  it('TCP4 and TCP6: the source address and port; the header length (what follows is the ClientHello)', () => {
    const h = v1Header('TCP4', '203.0.113.7', '192.0.2.1', 51000, 443);
    assert.deepEqual(parseProxyHeader(Buffer.concat([h, CLIENT_HELLO])), {
      kind: 'header', version: 1, command: 'proxy', length: h.length, source: { address: '203.0.113.7', port: 51000, family: 'IPv4' },
    });
    const h6 = v1Header('TCP6', '2001:db8::7', '2001:db8::1', 0, 65535);
    assert.deepEqual(parseProxyHeader(h6), { kind: 'header', version: 1, command: 'proxy', length: h6.length, source: { address: '2001:db8::7', port: 0, family: 'IPv6' } });
  });

  it('UNKNOWN (with or without the rest of the line): no source, the peer\'s address stands', () => {
    for (const line of ['PROXY UNKNOWN\r\n', 'PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n']) {
      assert.deepEqual(parseProxyHeader(Buffer.from(line)), { kind: 'header', version: 1, command: 'proxy', length: line.length });
    }
  });

  it('the longest legal line (107 bytes) is read; one byte more is refused without waiting', () => {
    const addr = 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff';
    // The spec's worst case: UNKNOWN followed by the longest TCP6 fields.
    const longest = Buffer.from(`PROXY UNKNOWN ${addr} ${addr} 65535 65535\r\n`);
    assert.equal(longest.length, V1_MAX_BYTES);
    assert.equal(parseProxyHeader(longest).kind, 'header');
    assert.equal(parseProxyHeader(v1Header('TCP6', addr, addr, 65535, 65535)).kind, 'header');
    assert.deepEqual(parseProxyHeader(Buffer.from(`PROXY TCP6 ${'a'.repeat(200)}`)), { kind: 'invalid', reason: 'v1 header longer than 107 bytes (no CRLF)' });
    assert.equal(parseProxyHeader(Buffer.from(`PROXY UNKNOWN ${'x'.repeat(92)}\r\n`)).kind, 'invalid', '108 bytes');
  });

  it('every strict prefix of a good header is incomplete (the rest is awaited, bounded by the timeout)', () => {
    const h = v1Header('TCP4', '203.0.113.7', '192.0.2.1', 1, 443);
    for (let n = 0; n < h.length; n++) assert.equal(parseProxyHeader(h.subarray(0, n)).kind, 'incomplete', `${n} bytes`);
  });

  const malformed: [string, string][] = [
    ['LF without CR', 'PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n'],
    ['CR not followed by LF', 'PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX'],
    ['an unknown protocol', 'PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n'],
    ['lower-case protocol', 'PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n'],
    ['a field missing', 'PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n'],
    ['a field too many', 'PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n'],
    ['two spaces', 'PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n'],
    ['an IPv6 address in TCP4', 'PROXY TCP4 ::1 ::1 1 2\r\n'],
    ['an IPv4 address in TCP6', 'PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n'],
    ['a host name', 'PROXY TCP4 evil.example 5.6.7.8 1 2\r\n'],
    ['two addresses in one (an X-Forwarded-For list)', 'PROXY TCP4 1.2.3.4,10.0.0.1 5.6.7.8 1 2\r\n'],
    ['an octal-looking octet', 'PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n'],
    ['a zone id', 'PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n'],
    ['a port above 65535', 'PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n'],
    ['a port with a leading zero', 'PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n'],
    ['a negative port', 'PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n'],
    ['a NUL byte', 'PROXY TCP4 1.2.3.4\0 5.6.7.8 1 2\r\n'],
    ['a non-ASCII byte', 'PROXY TCP4 1.2.3.4 5.6.7.8 1 2\u00e9\r\n'],
  ];
  for (const [name, line] of malformed) {
    it(`refused: ${name}`, () => assert.equal(parseProxyHeader(Buffer.from(line, 'latin1')).kind, 'invalid'));
  }
});

describe('parseProxyHeader: v2', () => {
  it('PROXY over IPv4 and IPv6: source address and port', () => {
    const h4 = v2Header({ family: 'ipv4', src: '198.51.100.20', dst: '192.0.2.1', sport: 40000, dport: 443 });
    assert.deepEqual(parseProxyHeader(Buffer.concat([h4, CLIENT_HELLO])), {
      kind: 'header', version: 2, command: 'proxy', length: 16 + 12, source: { address: '198.51.100.20', port: 40000, family: 'IPv4' },
    });
    const h6 = v2Header({ family: 'ipv6', src: '2001:db8:0:0:1:0:0:1', dst: '::1', sport: 1, dport: 443 });
    assert.deepEqual(parseProxyHeader(h6), { kind: 'header', version: 2, command: 'proxy', length: 16 + 36, source: { address: '2001:db8::1:0:0:1', port: 1, family: 'IPv6' } });
    const mapped = v2Header({ family: 'ipv6', src: '::ffff:c000:22a', dst: '::1', sport: 1, dport: 443 });
    assert.equal((parseProxyHeader(mapped) as { source: { address: string } }).source.address, '::ffff:192.0.2.42');
  });

  it('TLVs are skipped (their length counted in the header); LOCAL ignores any address block', () => {
    const h = v2Header({ family: 'ipv4', src: '198.51.100.20', dst: '192.0.2.1', tlvs: [[0x01, Buffer.from('h2')], [0x20, Buffer.alloc(40)], [0x04, Buffer.alloc(0)]] });
    const p = parseProxyHeader(Buffer.concat([h, CLIENT_HELLO]));
    assert.equal(p.kind, 'header');
    assert.equal((p as { length: number }).length, h.length);
    assert.deepEqual(parseProxyHeader(v2Header({ command: 'local' })), { kind: 'header', version: 2, command: 'local', length: 16 });
    const localWithAddresses = v2Header({ command: 'local', family: 'ipv4', src: '1.2.3.4', dst: '5.6.7.8' });
    assert.deepEqual(parseProxyHeader(localWithAddresses), { kind: 'header', version: 2, command: 'local', length: 28 });
  });

  it('UNSPEC and UNIX families: accepted, no source (the peer\'s address stands)', () => {
    const unspec = v2Header({});
    assert.deepEqual(parseProxyHeader(unspec), { kind: 'header', version: 2, command: 'proxy', length: 16 });
    const unix = Buffer.concat([V2_SIGNATURE, Buffer.from([0x21, 0x31, 0x00, 216]), Buffer.alloc(216)]);
    assert.deepEqual(parseProxyHeader(unix), { kind: 'header', version: 2, command: 'proxy', length: 16 + 216 });
  });

  it('every strict prefix is incomplete; a length above the bound is refused before its bytes arrive', () => {
    const h = v2Header({ family: 'ipv6', src: '2001:db8::1', dst: '2001:db8::2', tlvs: [[0x02, Buffer.from('example.com')]] });
    for (let n = 0; n < h.length; n++) assert.equal(parseProxyHeader(h.subarray(0, n)).kind, 'incomplete', `${n} bytes`);
    const huge = v2Header({ family: 'ipv4', src: '1.2.3.4', dst: '5.6.7.8', length: MAX_V2_PAYLOAD + 1 }).subarray(0, 16);
    assert.deepEqual(parseProxyHeader(huge), { kind: 'invalid', reason: `v2 header: length ${MAX_V2_PAYLOAD + 1} is above the 4096-byte limit` });
    assert.equal(parseProxyHeader(v2Header({ family: 'ipv4', src: '1.2.3.4', dst: '5.6.7.8', tlvs: [[0xe0, Buffer.alloc(MAX_V2_PAYLOAD - 15)]] })).kind, 'header', 'exactly the bound');
  });

  const bad: [string, Buffer][] = [
    ['version 1 in the version nibble', Buffer.concat([V2_SIGNATURE, Buffer.from([0x11, 0x11, 0, 12]), Buffer.alloc(12)])],
    ['an unknown command', Buffer.concat([V2_SIGNATURE, Buffer.from([0x22, 0x11, 0, 12]), Buffer.alloc(12)])],
    ['an unknown family', Buffer.concat([V2_SIGNATURE, Buffer.from([0x21, 0x41, 0, 12]), Buffer.alloc(12)])],
    ['UDP (DGRAM) on a TCP listener', Buffer.concat([V2_SIGNATURE, Buffer.from([0x21, 0x12, 0, 12]), Buffer.alloc(12)])],
    ['a length too short for IPv4 addresses', Buffer.concat([V2_SIGNATURE, Buffer.from([0x21, 0x11, 0, 8]), Buffer.alloc(8)])],
    ['a length too short for IPv6 addresses', Buffer.concat([V2_SIGNATURE, Buffer.from([0x21, 0x21, 0, 12]), Buffer.alloc(12)])],
    ['a truncated TLV header', Buffer.concat([v2Header({ family: 'ipv4', src: '1.2.3.4', dst: '5.6.7.8', length: 12 + 2 }), Buffer.from([0x02, 0x00])])],
    ['a TLV longer than the header', Buffer.concat([v2Header({ family: 'ipv4', src: '1.2.3.4', dst: '5.6.7.8', length: 12 + 4 }), Buffer.from([0x02, 0xff, 0xff, 0x41])])],
  ];
  for (const [name, bytes] of bad) {
    it(`refused: ${name}`, () => assert.equal(parseProxyHeader(bytes).kind, 'invalid', JSON.stringify(parseProxyHeader(bytes))));
  }
});

describe('no header, and the untrusted peer\'s peek', () => {
  it('a TLS ClientHello, plain HTTP, PROPFIND: not a PROXY header (refused from a trusted peer, handed to TLS from others)', () => {
    for (const start of [CLIENT_HELLO, Buffer.from('GET / HTTP/1.1\r\n'), Buffer.from('POST /'), Buffer.from('PROPFIND /'), Buffer.from('PRI * HTTP/2.0')]) {
      assert.equal(proxySignature(start), 'no', start.toString('latin1'));
      assert.equal(parseProxyHeader(start).kind, 'invalid');
    }
  });

  it('the peek decides within 12 bytes, whatever follows', () => {
    assert.equal(proxySignature(Buffer.from('PROX')), 'maybe');
    assert.equal(proxySignature(Buffer.from('PROXY ')), 'v1');
    assert.equal(proxySignature(V2_SIGNATURE.subarray(0, 11)), 'maybe');
    assert.equal(proxySignature(V2_SIGNATURE), 'v2');
  });

  it('property: any bytes give an answer, never a throw; a header\'s length never exceeds what was read or the bounds', () => {
    fc.assert(fc.property(fc.oneof(fc.uint8Array({ maxLength: 300 }), fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.concat([V2_SIGNATURE, b])),
      fc.string({ maxLength: 120 }).map((s) => Buffer.from(`PROXY ${s}`, 'latin1'))), (bytes) => {
      const buf = Buffer.from(bytes);
      const p = parseProxyHeader(buf);
      if (p.kind === 'header') {
        assert.ok(p.length <= buf.length);
        assert.ok(p.length <= (p.version === 1 ? V1_MAX_BYTES : 16 + MAX_V2_PAYLOAD));
      }
      if (p.kind === 'incomplete') assert.ok(buf.length < 16 + MAX_V2_PAYLOAD);
    }), { numRuns: 2000 });
  });
});

describe('trusted ranges (net/cidr.ts)', () => {
  const ok = (s: string) => {
    const c = parseCidr(s);
    assert.ok(!('problem' in c), `${s}: ${JSON.stringify(c)}`);
    return c as Cidr;
  };

  it('CIDRs and single addresses, IPv4 and IPv6', () => {
    assert.deepEqual(ok('10.0.0.0/8'), { address: '10.0.0.0', prefix: 8, family: 'ipv4' });
    assert.deepEqual(ok('192.0.2.7'), { address: '192.0.2.7', prefix: 32, family: 'ipv4' });
    assert.deepEqual(ok('2001:db8::/32'), { address: '2001:db8::', prefix: 32, family: 'ipv6' });
    assert.deepEqual(ok('::1'), { address: '::1', prefix: 128, family: 'ipv6' });
    assert.deepEqual(ok('0.0.0.0/0'), { address: '0.0.0.0', prefix: 0, family: 'ipv4' });
  });

  it('refused with the fix: host names, zone ids, bad prefixes, bits past the prefix', () => {
    const problem = (s: string) => (parseCidr(s) as { problem?: string }).problem;
    assert.match(problem('lb.example.com')!, /not an IPv4 or IPv6 address or CIDR/);
    assert.match(problem('fe80::1%eth0')!, /zone ids/);
    assert.match(problem('10.0.0.0/33')!, /from 0 to 32/);
    assert.match(problem('10.0.0.0/08')!, /from 0 to 32/);
    assert.match(problem('10.0.0.0/')!, /from 0 to 32/);
    assert.match(problem('2001:db8::/129')!, /from 0 to 128/);
    assert.equal(problem('10.0.0.1/8'), '"10.0.0.1/8" has bits set past its /8 prefix: the range is 10.0.0.0/8, one address is 10.0.0.1 alone');
    assert.match(problem('2001:db8::1/32')!, /the range is 2001:db8::\/32/);
  });

  it('matching: IPv4, IPv6, and IPv4-mapped IPv6 peers (a dual-stack listener) against IPv4 ranges', () => {
    const match = addressMatcher(['10.0.0.0/8', '192.0.2.7', '2001:db8::/32'].map(ok));
    for (const yes of ['10.1.2.3', '192.0.2.7', '::ffff:10.9.9.9', '::ffff:192.0.2.7', '2001:db8:1::5']) assert.equal(match(yes), true, yes);
    for (const no of ['11.0.0.1', '192.0.2.8', '::ffff:11.0.0.1', '2001:db9::1', '::1', '127.0.0.1', undefined, 'garbage']) assert.equal(match(no), false, String(no));
  });
});

describe('config: proxy_protocol.trusted', () => {
  const FILE = '/etc/certgate/certgate.yaml';
  const MINIMAL = 'tls:\n  bundle: s.pem\n  client_ca: ca.crt\nroutes:\n  - upstream: http://127.0.0.1:3000\n';

  it('absent = off; a list is kept as written', () => {
    assert.equal(parseConfig(MINIMAL, FILE).proxy_protocol, undefined);
    assert.deepEqual(parseConfig(`${MINIMAL}proxy_protocol:\n  trusted: [10.0.0.0/8, "2001:db8::/32"]\n`, FILE).proxy_protocol, { trusted: ['10.0.0.0/8', '2001:db8::/32'] });
  });

  it('a bad entry is refused at file:line with its fix; an empty list too', () => {
    const problems = (src: string) => {
      try {
        parseConfig(src, FILE);
      } catch (err) {
        assert.ok(err instanceof CertgateError);
        return err.problems.map(formatProblem);
      }
      return assert.fail('expected a refusal');
    };
    const lines = problems(`${MINIMAL}proxy_protocol:\n  trusted:\n    - 10.0.0.0/8\n    - lb.internal\n    - 10.0.0.1/8\n`);
    assert.equal(lines.length, 2, lines.join('\n'));
    assert.match(lines[0]!, /^error: \/etc\/certgate\/certgate\.yaml:9:7: proxy_protocol\.trusted\[1\]: "lb\.internal" is not an IPv4 or IPv6 address or CIDR .*\(fix: write each entry as an address or CIDR .*\) \[CG_CONFIG_INVALID\]$/);
    assert.match(lines[1]!, /:10:7: proxy_protocol\.trusted\[2\]: "10\.0\.0\.1\/8" has bits set past its \/8 prefix/);
    assert.match(problems(`${MINIMAL}proxy_protocol:\n  trusted: []\n`)[0]!, /proxy_protocol\.trusted: .*list at least 1 entry/);
  });
});
