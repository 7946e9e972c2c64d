/**
 * gRPC through certgate (issue 16), with Debian's python3-grpcio: the example server (examples/grpc/
 * server.py) on h2c behind a route with upstream_protocol: h2c, the example client (examples/grpc/
 * client.py) with its client certificate. Unary, server-streaming, client-streaming and bidi calls,
 * deadlines, the identity in the metadata, the upstream's own status relayed (trailers), and every
 * certgate refusal arriving as its grpc-status with our reason.
 */
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createTestPki, type TestPki, type TestCert } from '../helpers/pki.js';
import { startTestCertgate, startRecordingUpstream, metricValue, type RunningCertgate, type RecordingUpstream } from '../helpers/certgate.js';
import { h2Once } from '../helpers/h2.js';
import { waitFor } from '../helpers/wait.js';

const EXAMPLES = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'examples', 'grpc');
const PYTHON = ['/usr/bin/python3', 'python3'].find((py) => spawnSync(py, ['-c', 'import grpc'], { stdio: 'ignore' }).status === 0);
const SKIP = PYTHON === undefined ? 'python3 with grpcio not installed (Debian: python3-grpcio)' : false;

let pki: TestPki;
let server: ChildProcess | undefined;
let grpcPort = 0;
let deadPort = 0;
let h1: RecordingUpstream;
let gate: RunningCertgate;
let gateCrl: RunningCertgate;

interface CallResult { code: string; details: string | null; result: unknown }

function call(g: RunningCertgate, client: TestCert | undefined, method: string, arg = '', service?: string): Promise<CallResult> {
  const args = [path.join(EXAMPLES, 'client.py'), `127.0.0.1:${g.port}`, pki.root.certPath,
    client?.certPath ?? '-', client?.keyPath ?? '-', method, arg];
  return new Promise((resolve, reject) => {
    execFile(PYTHON!, args, { env: { ...process.env, ...(service !== undefined && { GRPC_SERVICE: service }) }, timeout: 30_000 }, (err, stdout, stderr) => {
      if (err !== null) reject(new Error(`${err.message}\n${stderr}`));
      else resolve(JSON.parse(stdout.trim().split('\n').at(-1)!) as CallResult);
    });
  });
}

before(async () => {
  if (SKIP !== false) return;
  pki = await createTestPki();
  h1 = await startRecordingUpstream();
  server = spawn(PYTHON!, [path.join(EXAMPLES, 'server.py'), '0'], { stdio: ['ignore', 'pipe', 'inherit'] });
  grpcPort = await new Promise<number>((resolve, reject) => {
    let out = '';
    server!.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      const m = /listening (\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    server!.once('exit', (code) => reject(new Error(`grpc server exited ${code}`)));
  });
  // A port nothing listens on: bound, then closed.
  deadPort = await new Promise<number>((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
  const grpcUrl = `http://127.0.0.1:${grpcPort}`;
  const routes = [
    { name: 'grpc', path_prefix: '/demo.Demo', upstream: grpcUrl, upstream_protocol: 'h2c' },
    { name: 'grpc-slow', path_prefix: '/slow.Demo', upstream: grpcUrl, upstream_protocol: 'h2c', timeout_ms: 300 },
    { name: 'grpc-denied', path_prefix: '/denied.Demo', upstream: grpcUrl, upstream_protocol: 'h2c', allow: { subject_cn: ['nobody'] } },
    { name: 'grpc-dead', path_prefix: '/dead.Demo', upstream: `http://127.0.0.1:${deadPort}`, upstream_protocol: 'h2c' },
    { name: 'legacy', path_prefix: '/h1.Demo', upstream: h1.url },
  ];
  const tlsConf = { bundle: pki.serverBundle.pemPath, client_ca: pki.clientCa.path };
  [gate, gateCrl] = await Promise.all([
    startTestCertgate({ tls: tlsConf, routes, workers: 1 }),
    startTestCertgate({ tls: { ...tlsConf, crl: pki.crlPath }, routes, workers: 1 }),
  ]);
});
after(async () => {
  server?.kill();
  await Promise.all([gate?.close(), gateCrl?.close(), h1?.close()]);
  pki?.cleanup();
});

describe('gRPC calls through certgate (h2c upstream)', { skip: SKIP }, () => {
  test('unary: the server reads the verified identity; a client-sent copy is stripped', async () => {
    const r = await call(gate, pki.clients.good, 'whoami', 'hi');
    assert.equal(r.code, 'OK', String(r.details));
    const { identity, request } = r.result as { identity: Record<string, string>; request: string };
    assert.equal(request, 'hi');
    assert.equal(identity['x-client-cert-verified'], 'SUCCESS');
    assert.match(identity['x-client-cert-subject']!, /^CN=svc-a/, 'certgate\'s value, not the client\'s "CN=spoofed"');
    assert.equal(identity['x-forwarded-proto'], 'https');
  });

  test('server streaming, client streaming and bidi', async () => {
    assert.deepEqual((await call(gate, pki.clients.good, 'count', '4')).result, ['1', '2', '3', '4']);
    assert.equal((await call(gate, pki.clients.good, 'total')).result, '1+2+3');
    assert.deepEqual((await call(gate, pki.clients.good, 'chat')).result, ['echo:a', 'echo:b', 'echo:c']);
  });

  test('the upstream\'s own status and message reach the client (trailers relayed)', async () => {
    const r = await call(gate, pki.clients.good, 'fail', 'x');
    assert.equal(r.code, 'NOT_FOUND');
    assert.equal(r.details, 'no such thing: x');
  });

  test('a client deadline ends the call: DEADLINE_EXCEEDED', async () => {
    const r = await call(gate, pki.clients.good, 'hang', '0.5');
    assert.equal(r.code, 'DEADLINE_EXCEEDED');
  });

  test('access lines and metrics: protocol h2, the route', async () => {
    await call(gate, pki.clients.good, 'whoami');
    await waitFor(async () => (metricValue(await gate.metricsText(), 'certgate_http_requests_total', { route: 'grpc', method: 'POST', code: '200', protocol: 'h2' }) ?? 0) >= 1,
      'a gRPC call counted with protocol h2');
    const line = gate.logs.find('request').find((l) => l.route === 'grpc');
    assert.equal(line?.protocol, 'h2');
  });

  test('access lines carry the call\'s grpc-status: the upstream\'s (trailers) and certgate\'s refusals', async () => {
    await call(gate, pki.clients.good, 'fail', 'logged');
    await call(gate, pki.clients.good, 'whoami', '', 'denied.Demo');
    const lines = await waitFor(() => {
      const all = gate.logs.find('request');
      const failed = all.find((l) => l.path === '/demo.Demo/Fail');
      const denied = all.find((l) => l.path === '/denied.Demo/Whoami');
      return failed !== undefined && denied !== undefined ? { failed, denied } : undefined;
    }, 'both calls logged');
    assert.equal(lines.failed.grpc_status, '5', 'NOT_FOUND, from the upstream\'s trailers');
    assert.equal(lines.denied.grpc_status, '7', 'PERMISSION_DENIED, certgate\'s refusal');
  });
});

describe('certgate\'s refusals as gRPC statuses, with our reason', { skip: SKIP }, () => {
  test('no client certificate → UNAUTHENTICATED client_certificate_required', async () => {
    const r = await call(gate, undefined, 'whoami');
    assert.equal(r.code, 'UNAUTHENTICATED');
    assert.match(String(r.details), /^client_certificate_required: /);
  });

  test('a revoked certificate → UNAUTHENTICATED client_certificate_invalid/revoked', async () => {
    const r = await call(gateCrl, pki.clients.revoked, 'whoami');
    assert.equal(r.code, 'UNAUTHENTICATED');
    assert.match(String(r.details), /^client_certificate_invalid\/revoked: /);
  });

  test('the route\'s allow list → PERMISSION_DENIED naming the route', async () => {
    const r = await call(gate, pki.clients.good, 'whoami', '', 'denied.Demo');
    assert.equal(r.code, 'PERMISSION_DENIED');
    assert.match(String(r.details), /^forbidden: client CN=svc-a.* is not allowed on route grpc-denied/);
  });

  test('no route → UNIMPLEMENTED', async () => {
    const r = await call(gate, pki.clients.good, 'whoami', '', 'nowhere.Demo');
    assert.equal(r.code, 'UNIMPLEMENTED');
    assert.match(String(r.details), /^no_route: /);
  });

  test('gRPC to an upstream_protocol: http1 route → UNAVAILABLE naming the route; never forwarded', async () => {
    const before = h1.requests.length;
    const r = await call(gate, pki.clients.good, 'whoami', '', 'h1.Demo');
    assert.equal(r.code, 'UNAVAILABLE');
    assert.match(String(r.details), /route legacy .*upstream_protocol: http1/);
    assert.equal(h1.requests.length, before);
  });

  test('an unreachable upstream → UNAVAILABLE', async () => {
    const r = await call(gate, pki.clients.good, 'whoami', '', 'dead.Demo');
    assert.equal(r.code, 'UNAVAILABLE');
    assert.match(String(r.details), /^upstream_/);
  });

  test('the route timeout (504) → DEADLINE_EXCEEDED', async () => {
    const r = await call(gate, pki.clients.good, 'hang', '10', 'slow.Demo');
    assert.equal(r.code, 'DEADLINE_EXCEEDED');
  });

  test('a non-gRPC HTTP/2 request still gets JSON refusals', async () => {
    const reply = await h2Once(gate.url, { ca: pki.root.cert, cert: pki.clients.good.pem, key: pki.clients.good.key }, { ':path': '/nowhere' });
    assert.equal(reply.status, 404);
    assert.equal(reply.json().error, 'no_route');
  });
});
