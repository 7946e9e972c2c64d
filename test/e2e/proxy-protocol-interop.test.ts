/**
 * PROXY protocol (issue 18) with real senders and the other ways certgate is run: HAProxy from Debian in
 * `mode tcp` (send-proxy-v2 and send-proxy, with its health checks on), a dual-stack listener that sees
 * IPv4 balancers as IPv4-mapped IPv6 peers, and workers: 2 (node:cluster hands each worker accepted
 * sockets; the gate must sit in front of every worker's TLS). Plus the gate itself on a bare tls.Server:
 * headers dribbled and stalled, or cut by a reset, leave nothing pending.
 *
 * The clients bind 127.0.0.2 / 127.0.0.3 (all of 127/8 is loopback on Linux), so the client address the
 * balancer names differs from the balancer's own (127.0.0.1).
 */
import { test, before, after, describe } from 'node:test';
import { execFile, spawnSync } from 'node:child_process';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import https from 'node:https';
import http2 from 'node:http2';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { createTestPki, type TestPki } from '../helpers/pki.js';
import { startTestCertgate, startEchoUpstream, metricValue, type RunningCertgate, type Upstream } from '../helpers/certgate.js';
import { HAPROXY, startHaproxy, type RunningHaproxy } from '../helpers/haproxy.js';
import { killServeChildren, spawnServe } from '../helpers/serve.js';
import { closedByServer, connectWithHeader, proxiedRequest, v1Header, v2Header } from '../helpers/proxy-protocol.js';
import { waitFor } from '../helpers/wait.js';
import { createLogger } from '../../dist/log.js';
import { installProxyProtocolGate } from '../../dist/proxy/proxy-protocol-gate.js';
import { createMetrics } from '../../dist/admin/metrics.js';
import { logSink } from '../helpers/logs.js';

let pki: TestPki;
let upstream: Upstream;

before(async () => {
  pki = await createTestPki();
  upstream = await startEchoUpstream();
});
after(async () => {
  killServeChildren();
  await upstream?.close();
  pki?.cleanup();
});

const good = () => ({ ca: pki.root.cert, cert: pki.clients.good.pem, key: pki.clients.good.key });
const tlsSettings = () => ({ bundle: pki.serverBundle.pemPath, client_ca: pki.clientCa.path });
const xff = (body: string) => (JSON.parse(body) as { headers: Record<string, string> }).headers['x-forwarded-for'];

/** A verified mTLS GET to 127.0.0.1:port from `localAddress`, over HTTP/1.1 or h2. */
function getFrom(port: number, localAddress: string, p: string, h2: boolean): Promise<{ status: number; body: string }> {
  const creds = { ...good(), servername: 'localhost', localAddress };
  if (h2) {
    return new Promise((resolve, reject) => {
      const session = http2.connect(`https://127.0.0.1:${port}`, { ...creds, ALPNProtocols: ['h2'], createConnection: () => tls.connect({ host: '127.0.0.1', port, ...creds, ALPNProtocols: ['h2'] }) });
      session.on('error', reject);
      const stream = session.request({ ':path': p });
      let body = '';
      let status = 0;
      stream.on('response', (h) => (status = Number(h[':status'])));
      stream.setEncoding('utf8').on('data', (d: string) => (body += d));
      stream.on('end', () => {
        session.close();
        resolve({ status, body });
      });
      stream.on('error', reject);
      stream.end();
    });
  }
  return new Promise((resolve, reject) => {
    const req = https.get({ host: '127.0.0.1', port, path: p, agent: false, ...creds }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
  });
}

describe('HAProxy (Debian) as the sender, mode tcp', { skip: HAPROXY === undefined ? 'haproxy is not installed (apt-get install haproxy; .ci/run does)' : false }, () => {
  let gate: RunningCertgate;
  let haproxy: RunningHaproxy;
  before(async () => {
    gate = await startTestCertgate({ tls: tlsSettings(), routes: [{ name: 'echo', upstream: upstream.url }], workers: 1, proxy_protocol: { trusted: ['127.0.0.1'] } });
    haproxy = await startHaproxy(gate.port);
  });
  after(async () => {
    await haproxy?.close();
    await gate?.close();
  });

  for (const [sender, from] of [['send-proxy-v2', '127.0.0.2'], ['send-proxy', '127.0.0.3']] as const) {
    for (const h2 of [false, true]) {
      test(`${sender}, ${h2 ? 'HTTP/2' : 'HTTP/1.1'}: the client behind HAProxy (${from}) is the client address`, async () => {
        const port = sender === 'send-proxy-v2' ? haproxy.v2Port : haproxy.v1Port;
        const p = `/haproxy/${sender}/${h2 ? 'h2' : 'h1'}`;
        const reply = await getFrom(port, from, p, h2);
        assert.equal(reply.status, 200, reply.body);
        assert.equal(xff(reply.body), from);
        const line = await waitFor(() => gate.logs.find('request').find((l) => l.path === p), 'the access line');
        assert.equal(line.remote_address, from);
        assert.equal(line.proxy_address, '127.0.0.1');
      });
    }
  }

  test('HAProxy\'s health checks (v2 LOCAL, v1) are accepted: nothing refused while they ran', async () => {
    // The checks run every 200 ms on both backends for the whole describe block.
    const text = await gate.metricsText();
    assert.equal(metricValue(text, 'certgate_connections_rejected_total', { reason: 'proxy_protocol' }), 0,
      JSON.stringify(gate.logs.find('PROXY protocol: connection refused')));
  });
});

const CURL = spawnSync('curl', ['--version']).status === 0;

test('curl --haproxy-protocol (v1, the README\'s example): the address curl connected from is the client address', { skip: CURL ? false : 'curl is not installed' }, async () => {
  const gate = await startTestCertgate({ tls: tlsSettings(), routes: [{ name: 'echo', upstream: upstream.url }], workers: 1, proxy_protocol: { trusted: ['127.0.0.0/8'] } });
  try {
    const out = await new Promise<string>((resolve, reject) => {
      execFile('curl', ['-s', '--haproxy-protocol', '--interface', '127.0.0.4', '--cert', pki.clients.good.pemPath, '--cacert', pki.root.certPath,
        '--resolve', `localhost:${gate.port}:127.0.0.1`, `https://localhost:${gate.port}/curl`], (err, stdout) => (err ? reject(err) : resolve(stdout)));
    });
    assert.equal(xff(out), '127.0.0.4');
  } finally {
    await gate.close();
  }
});

describe('IPv4-mapped IPv6 peers (a dual-stack listener on ::)', () => {
  test('a balancer at 127.0.0.1 seen as ::ffff:127.0.0.1 matches trusted 127.0.0.0/8; an untrusted one is still refused', async (t) => {
    let gate: RunningCertgate;
    try {
      gate = await startTestCertgate({
        listen: '[::]:0', tls: tlsSettings(), routes: [{ name: 'echo', upstream: upstream.url }], workers: 1, proxy_protocol: { trusted: ['127.0.0.0/8'] },
      });
    } catch (err) {
      // No IPv6 on this host: the dual-stack case cannot be shown here.
      t.skip(`cannot listen on [::]: ${String(err)}`);
      return;
    }
    try {
      const reply = await proxiedRequest(gate.port, v2Header({ family: 'ipv4', src: '192.0.2.44', dst: '192.0.2.1', sport: 1, dport: 443 }), good(), { path: '/mapped' });
      assert.equal(reply.status, 200);
      assert.equal(xff(reply.body), '192.0.2.44');
      const line = await waitFor(() => gate.logs.find('request').find((l) => l.path === '/mapped'), 'the access line');
      assert.equal(line.proxy_address, '::ffff:127.0.0.1', 'the peer was IPv4-mapped');
    } finally {
      await gate.close();
    }
    const other = await startTestCertgate({ listen: '[::]:0', tls: tlsSettings(), routes: [{ name: 'echo', upstream: upstream.url }], workers: 1, proxy_protocol: { trusted: ['10.0.0.0/8'] } });
    try {
      const raw = await connectWithHeader(other.port, v1Header('TCP4', '10.0.0.1', '192.0.2.1', 1, 443));
      await closedByServer(raw);
      assert.equal(metricValue(await other.metricsText(), 'certgate_connections_rejected_total', { reason: 'proxy_protocol' }), 1);
    } finally {
      await other.close();
    }
  });
});

describe('workers: 2', () => {
  test('every worker reads the header before TLS: HTTP/1.1 and h2 through both, X-Forwarded-For and /clients name the client', { timeout: 60_000 }, async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'certgate-pp-cluster-'));
    try {
      const s = await spawnServe(dir, {
        listen: '127.0.0.1:0', admin: { listen: '127.0.0.1:0' }, log: { level: 'info' }, workers: 2,
        tls: tlsSettings(), routes: [{ name: 'echo', upstream: upstream.url }], proxy_protocol: { trusted: ['127.0.0.1/32'] },
      });
      const port = Number(s.url.port);
      const pids = new Set<number>();
      for (let i = 0; i < 16 && pids.size < 2; i++) {
        const p = `/cluster/${i}`;
        const reply = await proxiedRequest(port, v2Header({ family: 'ipv4', src: `192.0.2.${100 + i}`, dst: '192.0.2.1', sport: 1, dport: 443 }), good(), { path: p, h2: i % 2 === 1 });
        assert.equal(reply.status, 200, reply.body);
        assert.equal(xff(reply.body), `192.0.2.${100 + i}`);
        const line = await waitFor(() => s.logs.find((l) => l.msg === 'request' && l.path === p), `the access line of ${p}`);
        assert.equal(line.remote_address, `192.0.2.${100 + i}`);
        pids.add(line.pid as number);
      }
      assert.equal(pids.size, 2, 'both workers served');
      const { clients } = await (await fetch(`${s.admin}/clients`)).json() as { clients: { last_address: string | null }[] };
      assert.match(String(clients[0]?.last_address), /^192\.0\.2\.1\d\d$/);
      const raw = await connectWithHeader(port, Buffer.from('PROXY TCP4 not-an-address\r\n'));
      await closedByServer(raw);
      s.child.kill('SIGTERM');
      await s.exited;
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('the gate alone: nothing held after a stalled or cut header', () => {
  test('dribbled then stalled, reset mid-header, or fine: pending returns to 0 and the timer is gone', async () => {
    const server = tls.createServer({ key: pki.serverBundle.key, cert: pki.serverBundle.cert });
    const metrics = createMetrics();
    const sink = logSink();
    const gate = installProxyProtocolGate(server, { config: { trusted: ['127.0.0.1'] }, timeoutMs: 2000, metrics, log: createLogger({ level: 'debug', destination: sink }) });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as net.AddressInfo).port;
    try {
      const stalled = await connectWithHeader(port, Buffer.from('PROXY TCP4 1.2.'));
      const reset = await connectWithHeader(port, Buffer.from('\r\n\r\n\0\r\n'));
      await waitFor(() => gate.pending === 2, 'both connections waiting for their header');
      reset.resetAndDestroy();
      await waitFor(() => gate.pending === 1, 'the reset connection forgotten');
      await closedByServer(stalled);
      assert.equal(gate.pending, 0);
      assert.ok(sink.find('PROXY protocol: connection refused').some((l) => l.problem === 'timeout'));
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});
