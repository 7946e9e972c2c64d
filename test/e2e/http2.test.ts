/**
 * HTTP/2 on the TLS listener (issue 16): one port, ALPN h2 and http/1.1; every h2 stream goes through the
 * same pipeline as an HTTP/1.1 request (verdict, admit, identity headers, the undici hop, telemetry).
 * Real sockets, real TLS, node:http2's client and curl --http2.
 */
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import tls from 'node:tls';
import http2 from 'node:http2';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { ServerResponse } from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import { createCrl, crlToPem, importSigningKey, parseCert } from '../../dist/pki/x509.js';
import { createTestPki, type TestPki, type TestCert } from '../helpers/pki.js';
import { startTestCertgate, startRecordingUpstream, metricValue, type RunningCertgate, type RecordingUpstream } from '../helpers/certgate.js';
import { mtlsRequest } from '../helpers/client.js';
import { h2Connect, h2Once, h2Request } from '../helpers/h2.js';
import { waitFor } from '../helpers/wait.js';

let pki: TestPki;
let upstream: RecordingUpstream;
let gate: RunningCertgate;
let h1only: RunningCertgate;

before(async () => {
  pki = await createTestPki();
  upstream = await startRecordingUpstream();
  const tlsConf = { bundle: pki.serverBundle.pemPath, client_ca: pki.clientCa.path };
  const routes = [
    { name: 'small', upstream: upstream.url, path_prefix: '/small', max_body_bytes: 10 },
    { name: 'all', upstream: upstream.url },
  ];
  [gate, h1only] = await Promise.all([
    startTestCertgate({ tls: tlsConf, routes, workers: 1 }),
    startTestCertgate({ tls: tlsConf, routes, workers: 1, http2: false }),
  ]);
});
after(async () => {
  await Promise.all([gate?.close(), h1only?.close(), upstream?.close()]);
  pki?.cleanup();
});

const as = (c: TestCert | undefined) => ({ ca: pki.root.cert, ...(c && { cert: c.pem, key: c.key }) });
const lastRequest = () => upstream.requests[upstream.requests.length - 1]!;

function alpn(url: string, offer: string[]): Promise<string | false | null> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: u.hostname, port: Number(u.port), servername: 'localhost', ca: pki.root.cert, cert: pki.clients.good.pem, key: pki.clients.good.key, ALPNProtocols: offer }, () => {
      resolve(s.alpnProtocol);
      s.end();
    });
    s.on('error', reject);
  });
}

describe('one port, both protocols', () => {
  test('ALPN: h2 is offered beside http/1.1 (and http/1.0); http2: false offers HTTP/1.1 only', async () => {
    assert.equal(await alpn(gate.url, ['h2', 'http/1.1']), 'h2');
    assert.equal(await alpn(gate.url, ['http/1.1']), 'http/1.1');
    assert.equal(await alpn(h1only.url, ['h2', 'http/1.1']), 'http/1.1');
  });

  test('an HTTP/2 stream reaches the HTTP/1.1 upstream with the verified identity; HTTP/1.1 on the same port too', async () => {
    const before = upstream.requests.length;
    const reply = await h2Once(gate.url, as(pki.clients.good), { ':path': '/h2/hello?x=1', 'x-request-id': 'h2-one' });
    assert.equal(reply.status, 200, reply.body);
    assert.equal(reply.headers['x-request-id'], 'h2-one');
    assert.equal(upstream.requests.length, before + 1);
    const seen = lastRequest();
    assert.equal(seen.url, '/h2/hello?x=1');
    assert.equal(seen.headers['x-client-cert-verified'], 'SUCCESS');
    assert.match(String(seen.headers['x-client-cert-subject']), /CN=svc-/);
    assert.equal(seen.headers.host, `localhost:${gate.port}`, ':authority becomes Host');
    assert.equal(seen.headers['x-forwarded-host'], `localhost:${gate.port}`);
    assert.equal(seen.headers['x-forwarded-proto'], 'https');
    assert.ok(!seen.rawHeaders.some(([n]) => n.startsWith(':')), 'no pseudo-header reaches an HTTP/1.1 upstream');
    const h1 = await mtlsRequest(gate.url, as(pki.clients.good), { path: '/h1/hello' });
    assert.equal(h1.status, 200);
    assert.equal(lastRequest().url, '/h1/hello');
  });

  test('access lines carry protocol h2 / http/1.1', async () => {
    await h2Once(gate.url, as(pki.clients.good), { ':path': '/proto/h2' });
    await mtlsRequest(gate.url, as(pki.clients.good), { path: '/proto/h1' });
    const lines = await waitFor(() => {
      const l = gate.logs.find('request').filter((r) => String(r.path).startsWith('/proto/'));
      return l.length === 2 ? l : undefined;
    }, 'two access lines');
    assert.deepEqual(lines.map((l) => [l.path, l.protocol]).sort(), [['/proto/h1', 'http/1.1'], ['/proto/h2', 'h2']]);
  });

  test('curl --http2 and --http1.1 on the same port', async () => {
    const curl = (flag: string) => new Promise<string>((resolve, reject) => {
      execFile('curl', ['-sS', flag, '--cacert', pki.root.certPath, '--cert', pki.clients.good.certPath, '--key', pki.clients.good.keyPath,
        '--resolve', `localhost:${gate.port}:127.0.0.1`, '-o', '/dev/null', '-w', '%{http_version} %{http_code}', `https://localhost:${gate.port}/curl`],
      (err, stdout) => (err ? reject(err) : resolve(stdout)));
    });
    assert.equal(await curl('--http2'), '2 200');
    assert.equal(await curl('--http1.1'), '1.1 200');
  });
});

describe('HTTP/2 streams through the pipeline', () => {
  test('several streams on one session share its verdict; each is forwarded', async () => {
    const session = await h2Connect(gate.url, as(pki.clients.good));
    try {
      const replies = await Promise.all([1, 2, 3, 4, 5].map((i) => h2Request(session, { ':path': `/multi/${i}` })));
      assert.deepEqual(replies.map((r) => r.status), [200, 200, 200, 200, 200]);
    } finally {
      session.close();
    }
  });

  test('a request body without content-length (DATA frames) reaches the upstream whole', async () => {
    const reply = await h2Once(gate.url, as(pki.clients.good), { ':method': 'POST', ':path': '/post', 'content-type': 'text/plain' }, 'hello over h2');
    assert.equal(reply.status, 200, reply.body);
    assert.equal(lastRequest().body, 'hello over h2');
    assert.equal(lastRequest().method, 'POST');
  });

  test('max_body_bytes: a body over the route limit → 413, the rest never reaches the upstream', async () => {
    const before = upstream.requests.length;
    const session = await h2Connect(gate.url, as(pki.clients.good));
    try {
      const reply = await h2Request(session, { ':method': 'POST', ':path': '/small/x' }, ['0123456789', 'abcdef']).catch((e: Error) => e);
      if (!(reply instanceof Error)) {
        assert.equal(reply.status, 413, reply.body);
        assert.equal(reply.json().error, 'body_too_large');
      }
      assert.equal(upstream.requests.filter((r) => r.url === '/small/x').length, 0);
      assert.ok(upstream.requests.length >= before);
    } finally {
      session.close();
    }
  });

  test('spoofing: client copies of identity headers are stripped on HTTP/2 streams', async () => {
    await h2Once(gate.url, as(pki.clients.good), {
      ':path': '/spoof', 'x-client-cert-subject': 'CN=admin', 'x-client-cert-verified': 'SUCCESS', 'x-forwarded-for': '10.0.0.1',
      'x-ssl-client-s-dn': 'CN=admin', 'x-forwarded-client-cert': 'By=x', 'x_client_cert_subject': 'CN=admin',
    });
    const seen = lastRequest();
    assert.match(String(seen.headers['x-client-cert-subject']), /CN=svc-/);
    assert.equal(seen.headers['x-forwarded-for'], '127.0.0.1');
    assert.equal(seen.headers['x-ssl-client-s-dn'], undefined);
    assert.equal(seen.headers['x-forwarded-client-cert'], undefined);
    assert.ok(!seen.rawHeaders.some(([n]) => n.toLowerCase() === 'x_client_cert_subject'));
  });

  test('cookie crumbs are joined with "; " for the HTTP/1.1 upstream (RFC 9113 §8.2.3)', async () => {
    const session = await h2Connect(gate.url, as(pki.clients.good));
    try {
      // An array value goes as one field per element: two cookie crumbs.
      const stream = session.request({ ':path': '/cookies', cookie: ['a=1', 'b=2'] });
      await new Promise((resolve, reject) => {
        stream.on('error', reject);
        stream.resume();
        stream.on('end', resolve);
      });
    } finally {
      session.close();
    }
    assert.equal(lastRequest().url, '/cookies');
    assert.equal(lastRequest().headers.cookie, 'a=1; b=2');
  });

  test('host ≠ :authority → 400 authority_mismatch, never forwarded', async () => {
    const before = upstream.requests.length;
    const reply = await h2Once(gate.url, as(pki.clients.good), { ':path': '/mismatch', ':authority': `localhost:${gate.port}`, host: 'admin.example.com' });
    assert.equal(reply.status, 400, reply.body);
    assert.equal(reply.json().reason, 'authority_mismatch');
    assert.equal(upstream.requests.length, before);
  });

  test(':authority is validated like Host → 400 invalid_host', async () => {
    const before = upstream.requests.length;
    const reply = await h2Once(gate.url, as(pki.clients.good), { ':path': '/bad-authority', ':authority': 'admin.example.com:1:2' }).catch((e: Error) => e);
    if (!(reply instanceof Error)) {
      assert.equal(reply.status, 400, reply.body);
      assert.equal(reply.json().reason, 'invalid_host');
    }
    assert.equal(upstream.requests.length, before);
  });

  test('no client certificate → 400 client_certificate_required JSON, then GOAWAY', async () => {
    const before = upstream.requests.length;
    const session = await h2Connect(gate.url, as(undefined));
    const goaway = new Promise((resolve) => session.once('goaway', resolve));
    const reply = await h2Request(session, { ':path': '/anon' });
    assert.equal(reply.status, 400);
    assert.equal(reply.headers['content-type'], 'application/json');
    assert.equal(reply.json().error, 'client_certificate_required');
    assert.equal(reply.headers.connection, undefined, 'no connection-specific header on HTTP/2');
    await goaway;
    session.close();
    assert.equal(upstream.requests.length, before);
  });

  test('an expired certificate → 400 client_certificate_invalid/expired on HTTP/2', async () => {
    const reply = await h2Once(gate.url, as(pki.clients.expired), { ':path': '/expired' });
    assert.equal(reply.status, 400);
    assert.equal(reply.json().reason, 'expired');
  });

  test('no route → 404 no_route JSON', async () => {
    const g = await startTestCertgate({
      tls: { bundle: pki.serverBundle.pemPath, client_ca: pki.clientCa.path }, workers: 1,
      routes: [{ name: 'only', upstream: upstream.url, path_prefix: '/only' }],
    });
    try {
      const reply = await h2Once(g.url, as(pki.clients.good), { ':path': '/elsewhere' });
      assert.equal(reply.status, 404);
      assert.equal(reply.json().error, 'no_route');
      await waitFor(async () => metricValue(await g.metricsText(), 'certgate_http_requests_total', { route: '(none)', method: 'GET', code: '404' }) === 1,
        'the 404 counted like an HTTP/1.1 request');
    } finally {
      await g.close();
    }
  });

  test('certgate_http2_sessions_open counts open sessions', async () => {
    const session = await h2Connect(gate.url, as(pki.clients.good));
    await h2Request(session, { ':path': '/count' });
    await waitFor(async () => (metricValue(await gate.metricsText(), 'certgate_http2_sessions_open') ?? 0) >= 1, 'an open session counted');
    session.close();
    await waitFor(async () => metricValue(await gate.metricsText(), 'certgate_http2_sessions_open') === 0, 'the session closed');
  });
});

describe('HTTP/2 access lines', () => {
  test('overlapping streams on one session: each access line carries its own stream\'s bytes_in and bytes_out, not the connection\'s', async () => {
    // The upstream holds both answers until both requests are in, so the two streams are open together at
    // certgate; then answers the small one first, the large one after. Each line must count its own body bytes.
    const held = new Map<string, ServerResponse>();
    const sizes: Record<string, number> = { '/bytes/large': 20_000, '/bytes/small': 10 };
    const answer = (url: string) => {
      const res = held.get(url)!;
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': sizes[url]! });
      res.end('x'.repeat(sizes[url]!));
    };
    const holding = await startRecordingUpstream((req, res) => {
      held.set(req.url!, res);
      if (held.size === 2) {
        answer('/bytes/small');
        answer('/bytes/large');
      }
      return true;
    });
    const g = await startTestCertgate({
      tls: { bundle: pki.serverBundle.pemPath, client_ca: pki.clientCa.path }, workers: 1,
      routes: [{ name: 'holding', upstream: holding.url }],
    });
    try {
      const session = await h2Connect(g.url, as(pki.clients.good));
      try {
        const [large, small] = await Promise.all([
          h2Request(session, { ':method': 'POST', ':path': '/bytes/large', 'content-type': 'text/plain' }, 'l'.repeat(300)),
          h2Request(session, { ':method': 'POST', ':path': '/bytes/small', 'content-type': 'text/plain' }, 's'.repeat(7)),
        ]);
        assert.equal(large.body.length, 20_000);
        assert.equal(small.body.length, 10);
      } finally {
        session.close();
      }
      const lines = await waitFor(() => {
        const l = g.logs.find('request').filter((r) => String(r.path).startsWith('/bytes/'));
        return l.length === 2 ? l : undefined;
      }, 'two access lines');
      const of = (p: string) => lines.find((l) => l.path === p)!;
      assert.deepEqual([of('/bytes/large').bytes_in, of('/bytes/large').bytes_out], [300, 20_000], JSON.stringify(of('/bytes/large')));
      assert.deepEqual([of('/bytes/small').bytes_in, of('/bytes/small').bytes_out], [7, 10], JSON.stringify(of('/bytes/small')));
    } finally {
      await g.close();
      await holding.close();
    }
  });

  test('a refusal on HTTP/2 counts its JSON body as bytes_out', async () => {
    const reply = await h2Once(gate.url, as(pki.clients.good), { ':path': '/refused-bytes', ':authority': `localhost:${gate.port}`, host: 'other.example.com' });
    assert.equal(reply.status, 400);
    const line = await waitFor(() => gate.logs.find('request').find((r) => r.path === '/refused-bytes'), 'the refusal\'s access line');
    assert.equal(line.bytes_out, Buffer.byteLength(reply.body));
    assert.equal(line.bytes_in, 0);
  });
});

/**
 * A new client of the intermediate, and a certgate (workers: 1) whose tls.crl does not list it yet;
 * revoke() rewrites the CRL so it does (a reload then picks it up). Each call: a fresh client and CRL numbers.
 */
let crlNumber = 20n;
async function revocableClient(name: string, cn: string): Promise<{ victim: TestCert; g: RunningCertgate; revoke: () => void }> {
  const victim = await pki.issueClient({ name, subject: [['CN', cn]] });
  const issuer = { cert: parseCert(pki.intermediate.cert), privateKey: await importSigningKey(pki.intermediate.key) };
  const nextUpdate = new Date(Math.floor((Date.now() + 10 * 86_400_000) / 1000) * 1000);
  const [clean, revoking] = await Promise.all([
    createCrl({ issuer, crlNumber: crlNumber++ }),
    createCrl({ issuer, crlNumber: crlNumber++, nextUpdate, entries: [{ serial: victim.x509.serialNumber }] }),
  ]);
  const crlFile = path.join(fs.mkdtempSync(path.join(pki.dir, `${name}-`)), 'crl.pem');
  fs.writeFileSync(crlFile, crlToPem(clean) + pki.crlRootPem);
  const g = await startTestCertgate({
    tls: { bundle: pki.serverBundle.pemPath, client_ca: pki.clientCa.path, crl: crlFile }, workers: 1,
    routes: [{ name: 'all', upstream: upstream.url }],
  });
  return { victim, g, revoke: () => fs.writeFileSync(crlFile, crlToPem(revoking) + pki.crlRootPem) };
}

describe('trust on every stream', () => {
  test('revocation of a live HTTP/2 session: the next stream is refused (400 revoked), then GOAWAY', async () => {
    const { victim, g, revoke } = await revocableClient('h2-crl-victim', 'svc-h2-victim');
    try {
      const session = await h2Connect(g.url, as(victim));
      const goaway = new Promise((resolve) => session.once('goaway', resolve));
      const first = await h2Request(session, { ':path': '/h2-crl/before' });
      assert.equal(first.status, 200, first.body);
      revoke();
      const reload = await g.app.reload('test');
      assert.equal(reload.result, 'success');
      const before = upstream.requests.length;
      const second = await h2Request(session, { ':path': '/h2-crl/after' });
      assert.equal(second.status, 400, second.body);
      assert.equal(second.json().error, 'client_certificate_invalid');
      assert.equal(second.json().reason, 'revoked');
      assert.equal(upstream.requests.length, before, 'the revoked client reaches nothing');
      await goaway;
      session.close();
    } finally {
      await g.close();
    }
  });
});

/**
 * issue 16: "Resumed sessions keep the guarantees the README states for HTTP/1.1" — on HTTP/2 too: a resumed
 * session (no certificate exchanged in its handshake) still carries the verified identity to the upstream,
 * and a ticket saved before a revocation is never served (ticket keys follow the CA and CRL; reload.test.ts
 * proves it on HTTP/1.1).
 */
test('HTTP/2 session resumption: a resumed session carries the verified identity; a ticket saved before a revocation is not served (400 revoked)', async (t) => {
  const { victim, g, revoke } = await revocableClient('h2-resume-victim', 'svc-h2-resume');
  try {
    /** One stream on a new session (resuming `ticket` when given): the reply, whether it resumed, its newest ticket. */
    const once = async (p: string, ticket?: Buffer): Promise<{ reply: Awaited<ReturnType<typeof h2Request>>; reused: boolean; ticket: Buffer | undefined }> => {
      let latest: Buffer | undefined;
      let socket: tls.TLSSocket | undefined;
      const session = await h2Connect(g.url, as(victim), {
        createConnection: () => {
          socket = tls.connect({
            host: '127.0.0.1', port: g.port, servername: 'localhost', ALPNProtocols: ['h2'],
            ca: pki.root.cert, cert: victim.pem, key: victim.key, ...(ticket !== undefined && { session: ticket }),
          });
          socket.on('session', (s: Buffer) => (latest = s));
          return socket;
        },
      });
      try {
        const reply = await h2Request(session, { ':path': p });
        return { reply, reused: socket!.isSessionReused(), ticket: latest };
      } finally {
        session.close();
      }
    };
    const first = await once('/h2-resume/first');
    assert.equal(first.reply.status, 200, first.reply.body);
    assert.ok(first.ticket !== undefined, 'precondition: the server issued a session ticket on the h2 connection');
    const resumed = await once('/h2-resume/resumed', first.ticket);
    assert.equal(resumed.reused, true, 'precondition: the saved session resumes while the CRL is unchanged');
    assert.equal(resumed.reply.status, 200, resumed.reply.body);
    const seen = lastRequest();
    assert.equal(seen.url, '/h2-resume/resumed');
    assert.equal(seen.headers['x-client-cert-verified'], 'SUCCESS', 'the resumed session carries its verified identity');
    assert.match(String(seen.headers['x-client-cert-subject']), /CN=svc-h2-resume/);
    assert.equal(seen.headers['x-client-cert-fingerprint'], victim.x509.fingerprint256.replaceAll(':', '').toLowerCase());

    revoke();
    assert.equal((await g.app.reload('test')).result, 'success');
    const before = upstream.requests.length;
    const after = await once('/h2-resume/after', first.ticket);
    t.diagnostic(`ticket from before the CRL change: reused=${after.reused}, status=${after.reply.status}`);
    assert.equal(after.reply.status, 400, `a session from before the revocation must not be served (reused=${after.reused}): ${after.reply.body}`);
    assert.equal(after.reply.json().reason, 'revoked');
    assert.equal(upstream.requests.length, before, 'the revoked client reaches nothing');
  } finally {
    await g.close();
  }
});

describe('HTTP/2 upstreams and clients', () => {
  test('upstream_protocol: h2 — HTTP/2 over TLS to an https:// upstream verified with upstream_ca; sessions reused', async () => {
    const seen: { version: string; authority: string | undefined; subject: unknown; remotePort: number | undefined }[] = [];
    const up = http2.createSecureServer({ cert: pki.serverBundle.pem, key: pki.serverBundle.pem }, (req, res) => {
      seen.push({ version: req.httpVersion, authority: req.authority, subject: req.headers['x-client-cert-subject'], remotePort: req.socket.remotePort });
      res.setHeader('content-type', 'text/plain');
      res.end('from h2 upstream');
    });
    await new Promise<void>((resolve) => up.listen(0, '127.0.0.1', resolve));
    const port = (up.address() as AddressInfo).port;
    const g = await startTestCertgate({
      tls: { bundle: pki.serverBundle.pemPath, client_ca: pki.clientCa.path }, workers: 1,
      routes: [{ name: 'h2up', upstream: `https://localhost:${port}`, upstream_protocol: 'h2', upstream_ca: pki.root.certPath }],
    });
    try {
      const a = await h2Once(g.url, as(pki.clients.good), { ':path': '/one' });
      const b = await mtlsRequest(g.url, as(pki.clients.good), { path: '/two' });
      assert.equal(a.status, 200, a.body);
      assert.equal(a.body, 'from h2 upstream');
      assert.equal(b.status, 200, b.body);
      assert.deepEqual(seen.map((s) => s.version), ['2.0', '2.0'], 'both reached the upstream over HTTP/2');
      assert.match(String(seen[0]!.subject), /CN=svc-/);
      assert.equal(seen[0]!.remotePort, seen[1]!.remotePort, 'one pooled upstream session served both');
    } finally {
      await g.close();
      await new Promise<void>((resolve) => up.close(() => resolve()));
    }
  });

  test('downgrade: upstream_protocol h2 never falls back to HTTP/1.1 — an upstream that speaks only http/1.1 → 502 upstream_protocol naming the route (grpc-status 14), counted; certgate offers only h2', async () => {
    // Three real https upstreams, each recording the ALPN protocols certgate offered it:
    // - h1alpn refuses an offer without http/1.1 (no_application_protocol alert), as Node's https and nginx do;
    // - h1plain does no ALPN at all (the handshake completes, nothing selected);
    // - h2ok speaks HTTP/2.
    const offered: Record<string, string[][]> = { h1alpn: [], h1plain: [], h2ok: [] };
    const reached: Record<string, string[]> = { h1alpn: [], h1plain: [], h2ok: [] };
    const h2Ports: number[] = [];
    const creds = { cert: pki.serverBundle.pem, key: pki.serverBundle.pem };
    const h1alpn = https.createServer({ ...creds, ALPNCallback: ({ protocols }) => {
      offered.h1alpn!.push(protocols);
      return protocols.includes('http/1.1') ? 'http/1.1' : undefined;
    } }, (req, res) => {
      reached.h1alpn!.push(req.url!);
      res.end('h1alpn answered');
    });
    const h1plain = https.createServer({ ...creds, ALPNProtocols: undefined }, (req, res) => {
      reached.h1plain!.push(req.url!);
      res.end('h1plain answered');
    });
    h1plain.on('secureConnection', (s: tls.TLSSocket) => offered.h1plain!.push([String(s.alpnProtocol)]));
    const h2ok = http2.createSecureServer({ ...creds, ALPNCallback: ({ protocols }) => {
      offered.h2ok!.push(protocols);
      return protocols.includes('h2') ? 'h2' : undefined;
    } }, (req, res) => {
      reached.h2ok!.push(req.url);
      h2Ports.push(req.socket.remotePort!);
      res.end('h2ok answered');
    });
    const ports = await Promise.all([h1alpn, h1plain, h2ok].map((server) => new Promise<number>((resolve) => {
      server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port));
    })));
    const route = (name: string, port: number) => ({
      name, path_prefix: `/${name}`, upstream: `https://localhost:${port}`, upstream_protocol: 'h2', upstream_ca: pki.root.certPath,
    });
    const g = await startTestCertgate({
      tls: { bundle: pki.serverBundle.pemPath, client_ca: pki.clientCa.path }, workers: 1,
      routes: [route('h1alpn', ports[0]!), route('h1plain', ports[1]!), route('h2ok', ports[2]!)],
    });
    try {
      for (const name of ['h1alpn', 'h1plain']) {
        const viaH2 = await h2Once(g.url, as(pki.clients.good), { ':path': `/${name}/x` });
        assert.equal(viaH2.status, 502, `${name}: ${viaH2.body}`);
        const body = viaH2.json();
        assert.equal(body.error, 'upstream_protocol', viaH2.body);
        assert.equal(body.route, name);
        assert.match(String(body.message), new RegExp(`route ${name}.*upstream_protocol: h2.*https://localhost:${ports[name === 'h1alpn' ? 0 : 1]}`), viaH2.body);
        assert.match(String(body.message), name === 'h1alpn' ? /no_application_protocol/ : /selected no protocol/, viaH2.body);
        const viaH1 = await mtlsRequest(g.url, as(pki.clients.good), { path: `/${name}/y` });
        assert.equal(viaH1.status, 502, viaH1.body);
        assert.equal((JSON.parse(viaH1.body) as Record<string, unknown>).error, 'upstream_protocol');
        const grpc = await h2Once(g.url, as(pki.clients.good),
          { ':method': 'POST', ':path': `/${name}/svc/M`, 'content-type': 'application/grpc', te: 'trailers' }, Buffer.alloc(5));
        assert.equal(grpc.status, 200);
        assert.equal(grpc.headers['grpc-status'], '14');
        assert.match(decodeURIComponent(String(grpc.headers['grpc-message'])), new RegExp(`^upstream_protocol: route ${name} .*upstream_protocol: h2`));
        assert.deepEqual(reached[name], [], `${name}: no request reached it over HTTP/1.1`);
      }
      assert.ok(offered.h1alpn!.length > 0 && offered.h1alpn!.every((p) => p.length === 1 && p[0] === 'h2'), `offered: ${JSON.stringify(offered.h1alpn)}`);
      await waitFor(async () => {
        const text = await g.metricsText();
        return ['h1alpn', 'h1plain'].every((r) => metricValue(text, 'certgate_upstream_errors_total', { route: r, kind: 'tls' }) === 3);
      }, 'each refusal counted as an upstream error (kind tls)');
      // An upstream that speaks HTTP/2 still serves, over one pooled session.
      const a = await h2Once(g.url, as(pki.clients.good), { ':path': '/h2ok/a' });
      const b = await mtlsRequest(g.url, as(pki.clients.good), { path: '/h2ok/b' });
      assert.equal(a.status, 200, a.body);
      assert.equal(a.body, 'h2ok answered');
      assert.equal(b.status, 200, b.body);
      assert.deepEqual(reached.h2ok, ['/h2ok/a', '/h2ok/b']);
      assert.equal(h2Ports[0], h2Ports[1], 'one pooled upstream session served both');
      assert.deepEqual(offered.h2ok, [['h2']]);
    } finally {
      await g.close();
      await Promise.all([h1alpn, h1plain, h2ok].map((server) => new Promise<void>((resolve) => server.close(() => resolve()))));
    }
  });

  test('Python httpx with http2=True (python3-httpx + python3-h2)', async (t) => {
    const py = ['/usr/bin/python3', 'python3'].find((p) => spawnSync(p, ['-c', 'import httpx, h2'], { stdio: 'ignore' }).status === 0);
    if (py === undefined) {
      t.skip('python3 with httpx and h2 not installed (Debian: python3-httpx python3-h2)');
      return;
    }
    const script = [
      'import httpx, json, sys',
      'c = httpx.Client(http2=True, verify=sys.argv[2], cert=(sys.argv[3], sys.argv[4]))',
      'r = c.get(sys.argv[1])',
      'print(json.dumps({"version": r.http_version, "status": r.status_code}))',
    ].join('\n');
    const out = await new Promise<string>((resolve, reject) => {
      execFile(py, ['-c', script, `https://localhost:${gate.port}/httpx`, pki.root.certPath, pki.clients.good.certPath, pki.clients.good.keyPath],
        (err, stdout, stderr) => (err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout)));
    });
    assert.deepEqual(JSON.parse(out), { version: 'HTTP/2', status: 200 });
    assert.equal(lastRequest().url, '/httpx');
  });

  test('shutdown: an open HTTP/2 session gets GOAWAY, its stream in flight finishes', async () => {
    let release: (() => void) | undefined;
    const slow = await startRecordingUpstream((req, res) => {
      release = () => res.end('finished');
      res.writeHead(200, { 'content-type': 'text/plain' });
      return true;
    });
    const g = await startTestCertgate({
      tls: { bundle: pki.serverBundle.pemPath, client_ca: pki.clientCa.path }, workers: 1,
      routes: [{ name: 'slow', upstream: slow.url }],
    });
    try {
      const session = await h2Connect(g.url, as(pki.clients.good));
      const goaway = new Promise((resolve) => session.once('goaway', resolve));
      const reply = h2Request(session, { ':path': '/in-flight' });
      await waitFor(() => release !== undefined, 'the request at the upstream');
      const closing = g.app.close(10_000);
      await goaway;
      release!();
      const r = await reply;
      assert.equal(r.status, 200);
      assert.equal(r.body, 'finished');
      await closing;
      session.destroy();
    } finally {
      await g.close();
      await slow.close();
    }
  });
});

describe('HTTP/2 edge cases', () => {
  test('max_requests_per_connection: the session\'s last stream is answered, then GOAWAY', async () => {
    const g = await startTestCertgate({
      tls: { bundle: pki.serverBundle.pemPath, client_ca: pki.clientCa.path }, workers: 1,
      limits: { max_requests_per_connection: 2 }, routes: [{ name: 'all', upstream: upstream.url }],
    });
    try {
      const session = await h2Connect(g.url, as(pki.clients.good));
      const goaway = new Promise((resolve) => session.once('goaway', resolve));
      assert.equal((await h2Request(session, { ':path': '/mr/1' })).status, 200);
      assert.equal((await h2Request(session, { ':path': '/mr/2' })).status, 200);
      await goaway;
      session.destroy();
    } finally {
      await g.close();
    }
  });

  test('an upstream that resets the stream (h2c) → 502 JSON, grpc-status 14 for gRPC, counted as an upstream error', async () => {
    const up = http2.createServer((req) => {
      req.stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
    });
    await new Promise<void>((resolve) => up.listen(0, '127.0.0.1', resolve));
    const port = (up.address() as AddressInfo).port;
    const g = await startTestCertgate({
      tls: { bundle: pki.serverBundle.pemPath, client_ca: pki.clientCa.path }, workers: 1,
      routes: [{ name: 'resetting', upstream: `http://127.0.0.1:${port}`, upstream_protocol: 'h2c' }],
    });
    try {
      const plain = await h2Once(g.url, as(pki.clients.good), { ':path': '/reset' });
      assert.equal(plain.status, 502, plain.body);
      assert.match(String(plain.json().error), /^upstream_/);
      const grpc = await h2Once(g.url, as(pki.clients.good), { ':method': 'POST', ':path': '/svc/M', 'content-type': 'application/grpc', te: 'trailers' }, Buffer.alloc(5));
      assert.equal(grpc.status, 200);
      assert.equal(grpc.headers['grpc-status'], '14');
      await waitFor(async () => {
        const text = await g.metricsText();
        const total = ['refused', 'reset', 'timeout', 'dns', 'tls', 'other'].reduce((n, kind) => n + (metricValue(text, 'certgate_upstream_errors_total', { route: 'resetting', kind }) ?? 0), 0);
        return total === 2;
      }, 'both counted as upstream errors');
    } finally {
      await g.close();
      await new Promise<void>((resolve) => up.close(() => resolve()));
    }
  });
});
