/**
 * PROXY protocol (issue 18): behind an L4 load balancer (HAProxy mode tcp, an AWS NLB) certgate's peer is
 * the balancer; the balancer names the real client in a PROXY v1 or v2 header before the TLS ClientHello.
 * proxy_protocol.trusted says which peers may (and then must) send one. Real sockets: a raw TCP connection
 * writes the header, then a verified mTLS request (HTTP/1.1 or h2) runs over the same connection; the
 * client address must show in X-Forwarded-For at the echo upstream, in the access log and in /clients.
 *
 * The attacks (each named after what the attacker wants): a client that reaches certgate directly writes a
 * PROXY header naming any address it likes (address spoofing: refused and counted, never believed); a
 * trusted balancer that omits the header (its own address would be every client's); headers that are
 * malformed, oversized, dribbled and stalled, followed by garbage or by a second header. None may crash
 * certgate, hold a connection past limits.handshake_timeout_ms, or grow memory.
 */
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { createTestPki, type TestPki } from '../helpers/pki.js';
import { startTestCertgate, startEchoUpstream, metricValue, rewriteConfig, type RunningCertgate, type Upstream } from '../helpers/certgate.js';
import { mtlsRequest } from '../helpers/client.js';
import { closedByServer, connectWithHeader, proxiedRequest, v1Header, v2Header } from '../helpers/proxy-protocol.js';
import { waitFor } from '../helpers/wait.js';
import { stringify } from 'yaml';

let pki: TestPki;
let upstream: Upstream;
/** Trusts 127.0.0.1 (the tests' own address): every connection must start with a PROXY header. */
let behindLb: RunningCertgate;
/** Trusts 10.0.0.0/8 only: the tests are an untrusted peer. */
let direct: RunningCertgate;

const HANDSHAKE_MS = 1500;

before(async () => {
  pki = await createTestPki();
  upstream = await startEchoUpstream();
  const base = { tls: { bundle: pki.serverBundle.pemPath, client_ca: pki.clientCa.path }, routes: [{ name: 'echo', upstream: upstream.url }], workers: 1 };
  [behindLb, direct] = await Promise.all([
    startTestCertgate({ ...base, proxy_protocol: { trusted: ['127.0.0.1/32', '2001:db8::/32'] }, limits: { handshake_timeout_ms: HANDSHAKE_MS } }),
    startTestCertgate({ ...base, proxy_protocol: { trusted: ['10.0.0.0/8'] }, limits: { handshake_timeout_ms: HANDSHAKE_MS } }),
  ]);
});
after(async () => {
  await Promise.all([behindLb?.close(), direct?.close(), upstream?.close()]);
  pki?.cleanup();
});

const good = () => ({ ca: pki.root.cert, cert: pki.clients.good.pem, key: pki.clients.good.key });
const forwardedFor = (reply: { json<T>(): T }) => reply.json<{ headers: Record<string, string> }>().headers['x-forwarded-for'];
const rejected = async (gate: RunningCertgate) => metricValue(await gate.metricsText(), 'certgate_connections_rejected_total', { reason: 'proxy_protocol' }) ?? 0;
const clientRow = async (gate: RunningCertgate) => {
  const { clients } = await (await fetch(`${gate.adminUrl}/clients`)).json() as { clients: { fingerprint: string; last_address: string | null }[] };
  return clients.find((r) => r.fingerprint === pki.clients.good.x509.fingerprint256.replace(/:/g, '').toLowerCase());
};
const accessLines = (gate: RunningCertgate, path: string) => gate.logs.find('request').filter((l) => l.path === path);

describe('the client address from a trusted balancer', () => {
  const cases: [string, Buffer, string][] = [
    ['v1 TCP4', v1Header('TCP4', '203.0.113.7', '192.0.2.1', 51000, 443), '203.0.113.7'],
    ['v1 TCP6', v1Header('TCP6', '2001:db8:1::7', '2001:db8::1', 51000, 443), '2001:db8:1::7'],
    ['v2 PROXY IPv4', v2Header({ family: 'ipv4', src: '198.51.100.20', dst: '192.0.2.1', sport: 40000, dport: 443 }), '198.51.100.20'],
    ['v2 PROXY IPv6', v2Header({ family: 'ipv6', src: '2001:db8:0:0:0:0:0:42', dst: '2001:db8::1', sport: 40000, dport: 443 }), '2001:db8::42'],
    ['v2 PROXY IPv4 with TLVs (ALPN, authority, NLB VPC endpoint id, NOOP padding)', v2Header({
      family: 'ipv4', src: '198.51.100.21', dst: '192.0.2.1', sport: 1, dport: 443,
      tlvs: [[0x01, Buffer.from('h2')], [0x02, Buffer.from('api.example.com')], [0xea, Buffer.from('\x01vpce-08d2bf15fac5001c9')], [0x04, Buffer.alloc(7)]],
    }), '198.51.100.21'],
  ];
  for (const [name, header, client] of cases) {
    for (const h2 of [false, true]) {
      test(`${name}, ${h2 ? 'HTTP/2' : 'HTTP/1.1'}: X-Forwarded-For, the access log and /clients name ${client}`, async () => {
        const path = `/pp/${name.replace(/\W+/g, '-')}/${h2 ? 'h2' : 'h1'}`;
        const reply = await proxiedRequest(behindLb.port, header, good(), { path, h2 });
        assert.equal(reply.status, 200, reply.body);
        assert.equal(forwardedFor(reply), client);
        const line = await waitFor(() => accessLines(behindLb, path)[0], 'the access line');
        assert.equal(line.remote_address, client);
        assert.equal(line.proxy_address, '127.0.0.1', 'the balancer itself is on the line too');
        assert.equal((await clientRow(behindLb))?.last_address, client);
      });
    }
  }

  test('v1 UNKNOWN and v2 LOCAL (a health check): accepted, the balancer\'s own address stands', async () => {
    for (const [header, path] of [[v1Header('UNKNOWN'), '/pp/unknown'], [v2Header({ command: 'local' }), '/pp/local']] as const) {
      const reply = await proxiedRequest(behindLb.port, header, good(), { path });
      assert.equal(reply.status, 200, reply.body);
      assert.equal(forwardedFor(reply), '127.0.0.1');
    }
  });

  test('a client\'s own X-Forwarded-For is replaced, not appended to', async () => {
    const raw = await connectWithHeader(behindLb.port, v1Header('TCP4', '203.0.113.9', '192.0.2.1', 1, 443));
    raw.destroy();
    const reply = await proxiedRequest(behindLb.port, v1Header('TCP4', '203.0.113.9', '192.0.2.1', 1, 443), good(), { path: '/pp/xff' });
    assert.equal(forwardedFor(reply), '203.0.113.9');
  });
});

describe('address spoofing and hostile headers', () => {
  test('address spoofing: an untrusted peer sends a PROXY header naming another client: closed, counted, logged', async () => {
    for (const header of [v1Header('TCP4', '10.1.2.3', '192.0.2.1', 1, 443), v2Header({ family: 'ipv4', src: '10.1.2.3', dst: '192.0.2.1', sport: 1, dport: 443 })]) {
      const before = await rejected(direct);
      const raw = await connectWithHeader(direct.port, header);
      const { data } = await closedByServer(raw);
      assert.equal(data.length, 0, 'nothing is answered');
      assert.equal(await rejected(direct), before + 1);
    }
    const line = direct.logs.find('PROXY protocol: connection refused').find((l) => l.problem === 'untrusted_sender');
    assert.ok(line, 'logged');
    assert.equal(line.remote_address, '127.0.0.1');
  });

  test('an untrusted peer without a header is served as before, with its own address', async () => {
    const reply = await mtlsRequest(direct.url, good(), { path: '/pp/direct' });
    assert.equal(reply.status, 200);
    assert.equal(forwardedFor(reply), '127.0.0.1');
  });

  test('an untrusted peer\'s first bytes are only peeked: plain HTTP (PUT, POST: they start like "PROXY") still hears https_required', async () => {
    for (const method of ['PUT', 'POST']) {
      const raw = await connectWithHeader(direct.port, Buffer.from(`${method} / HTTP/1.1\r\nHost: x\r\n\r\n`));
      const { data } = await closedByServer(raw);
      assert.match(data.toString('latin1'), /^HTTP\/1\.1 400 [\s\S]*https_required/, method);
    }
  });

  test('a trusted balancer that omits the header (every client would get its address): closed, counted', async () => {
    const before = await rejected(behindLb);
    await assert.rejects(mtlsRequest(behindLb.url, good(), { path: '/pp/omitted' }));
    assert.equal(await rejected(behindLb), before + 1);
    assert.ok(behindLb.logs.find('PROXY protocol: connection refused').some((l) => l.problem === 'missing'));
  });

  const hostile: [string, Buffer][] = [
    ['a v1 line without CRLF (LF only)', Buffer.from('PROXY TCP4 203.0.113.7 192.0.2.1 1 443\n')],
    ['a v1 line longer than 107 bytes (and still no CRLF)', Buffer.from(`PROXY TCP6 ${'a'.repeat(200)}`)],
    ['a v1 line with a forged address that is not one', Buffer.from('PROXY TCP4 203.0.113.7,10.0.0.1 192.0.2.1 1 443\r\n')],
    ['a v2 header with a huge length', v2Header({ family: 'ipv4', src: '203.0.113.7', dst: '192.0.2.1', length: 65535 })],
    ['a v2 header whose TLV runs past its end', v2Header({ family: 'ipv4', src: '203.0.113.7', dst: '192.0.2.1', tlvs: [[0x02, Buffer.from('x')]], length: 12 + 3 + 1 }).subarray(0, 16 + 12 + 3 + 1).fill(0xff, 16 + 12 + 1, 16 + 12 + 3)],
  ];
  for (const [name, bytes] of hostile) {
    test(`${name}: closed at once (not at the timeout), counted`, async () => {
      const before = await rejected(behindLb);
      const refusals = behindLb.logs.find('PROXY protocol: connection refused').length;
      const raw = await connectWithHeader(behindLb.port, bytes);
      await closedByServer(raw);
      assert.equal(await rejected(behindLb), before + 1);
      const line = behindLb.logs.find('PROXY protocol: connection refused')[refusals];
      assert.equal(line?.problem, 'malformed', JSON.stringify(line));
    });
  }

  test('a header dribbled one byte at a time, then stalled: closed at the handshake timeout, nothing held', async () => {
    const before = await rejected(behindLb);
    const header = v1Header('TCP4', '203.0.113.7', '192.0.2.1', 1, 443);
    const raw = await connectWithHeader(behindLb.port, header.subarray(0, 1));
    const closed = closedByServer(raw);
    for (let i = 1; i < 20; i++) raw.write(header.subarray(i, i + 1));
    await closed;
    assert.equal(await rejected(behindLb), before + 1);
    assert.ok(behindLb.logs.find('PROXY protocol: connection refused').some((l) => l.problem === 'timeout'));
  });

  test('garbage after a valid header: TLS refuses it, certgate keeps serving', async () => {
    const raw = await connectWithHeader(behindLb.port, Buffer.concat([v1Header('TCP4', '203.0.113.7', '192.0.2.1', 1, 443), Buffer.from('GARBAGE\r\n\r\n')]));
    await closedByServer(raw);
    // The handshake failure is logged with the client address the header named.
    await waitFor(() => behindLb.logs.find('TLS handshake failed').some((l) => l.remote_address === '203.0.113.7'), 'the handshake failure line');
    const reply = await proxiedRequest(behindLb.port, v1Header('TCP4', '203.0.113.8', '192.0.2.1', 1, 443), good(), { path: '/pp/after-garbage' });
    assert.equal(reply.status, 200);
  });

  test('a PROXY header then a second PROXY header (a client behind the balancer smuggling its own): never a client address', async () => {
    const first = v1Header('TCP4', '203.0.113.7', '192.0.2.1', 1, 443);
    const second = v1Header('TCP4', '10.9.9.9', '192.0.2.1', 1, 443);
    const raw = await connectWithHeader(behindLb.port, Buffer.concat([first, second]));
    const { data } = await closedByServer(raw);
    assert.ok(!data.toString('latin1').includes('200'), 'not served');
    assert.ok(!behindLb.logs.lines.some((l) => l.remote_address === '10.9.9.9'), 'the second header named nobody');
  });
});

describe('live', () => {
  test('proxy_protocol.trusted applies live: a connection accepted after the reload follows the new list', async () => {
    const settings = { tls: { bundle: pki.serverBundle.pemPath, client_ca: pki.clientCa.path }, routes: [{ name: 'echo', upstream: upstream.url }], workers: 1 };
    const gate = await startTestCertgate(settings);
    try {
      assert.equal(forwardedFor(await mtlsRequest(gate.url, good(), { path: '/pp/live/1' })), '127.0.0.1');
      const written = { listen: `127.0.0.1:${gate.port}`, admin: { listen: `127.0.0.1:${new URL(gate.adminUrl).port}` }, ...settings, proxy_protocol: { trusted: ['127.0.0.0/8'] } };
      const answer = await rewriteConfig(gate, stringify(written));
      assert.equal(answer.status, 200, JSON.stringify(answer.json));
      // listen and admin.listen name the ports taken at start-up (the file said 0): where they listen already, no move
      // and nothing to restart for (both are live, issue 17).
      assert.equal(answer.json.restart_to_apply, undefined);
      const reply = await proxiedRequest(gate.port, v2Header({ family: 'ipv4', src: '192.0.2.99', dst: '192.0.2.1', sport: 1, dport: 443 }), good(), { path: '/pp/live/2' });
      assert.equal(forwardedFor(reply), '192.0.2.99');
    } finally {
      await gate.close();
    }
  });
});

