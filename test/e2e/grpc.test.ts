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
import os from 'node:os';
import { mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createTestPki, type TestPki, type TestCert } from '../helpers/pki.js';
import { startTestCertgate, startRecordingUpstream, metricValue, type RunningCertgate, type RecordingUpstream } from '../helpers/certgate.js';
import { h2Once } from '../helpers/h2.js';
import { waitFor } from '../helpers/wait.js';
import { freePort } from '../helpers/ports.js';

const EXAMPLES = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'examples', 'grpc');
const PYTHON = ['/usr/bin/python3', 'python3'].find((py) => spawnSync(py, ['-c', 'import grpc'], { stdio: 'ignore' }).status === 0);
const SKIP = PYTHON === undefined ? 'python3 with grpcio not installed (Debian: python3-grpcio)' : false;

let pki: TestPki;
let server: ChildProcess | undefined;
let grpcPort = 0;
let deadPort = 0;
let h1: RecordingUpstream;
/** An https upstream that speaks HTTP/1.1 only (ALPN http/1.1), behind an upstream_protocol: h2 route. */
let h1tls: https.Server;
const h1tlsReached: string[] = [];
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
  h1tls = https.createServer({ cert: pki.serverBundle.pem, key: pki.serverBundle.pem }, (req, res) => {
    h1tlsReached.push(req.url!);
    res.end();
  });
  const h1tlsPort = await new Promise<number>((resolve) => h1tls.listen(0, '127.0.0.1', () => resolve((h1tls.address() as net.AddressInfo).port)));
  const grpcUrl = `http://127.0.0.1:${grpcPort}`;
  const routes = [
    { name: 'grpc', path_prefix: '/demo.Demo', upstream: grpcUrl, upstream_protocol: 'h2c' },
    { name: 'grpc-slow', path_prefix: '/slow.Demo', upstream: grpcUrl, upstream_protocol: 'h2c', timeout_ms: 300 },
    { name: 'grpc-denied', path_prefix: '/denied.Demo', upstream: grpcUrl, upstream_protocol: 'h2c', allow: { subject_cn: ['nobody'] } },
    { name: 'grpc-dead', path_prefix: '/dead.Demo', upstream: `http://127.0.0.1:${deadPort}`, upstream_protocol: 'h2c' },
    { name: 'grpc-small', path_prefix: '/small.Demo', upstream: grpcUrl, upstream_protocol: 'h2c', max_body_bytes: 16 },
    { name: 'grpc-h1tls', path_prefix: '/h1tls.Demo', upstream: `https://localhost:${h1tlsPort}`, upstream_protocol: 'h2', upstream_ca: pki.root.certPath },
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
  h1tls?.close();
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

  test('downgrade: an upstream_protocol: h2 route whose https upstream speaks only HTTP/1.1 → UNAVAILABLE upstream_protocol naming the route; never forwarded', async () => {
    const r = await call(gate, pki.clients.good, 'whoami', '', 'h1tls.Demo');
    assert.equal(r.code, 'UNAVAILABLE');
    assert.match(String(r.details), /^upstream_protocol: route grpc-h1tls is configured with upstream_protocol: h2, but its upstream https:\/\/localhost:\d+ refused the ALPN offer h2/);
    assert.deepEqual(h1tlsReached, []);
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

  test('a bad request (an encoded "/" in the path) → INVALID_ARGUMENT bad_request/encoded_slash', async () => {
    const r = await call(gate, pki.clients.good, 'whoami', '', 'demo.Demo%2F..');
    assert.equal(r.code, 'INVALID_ARGUMENT', String(r.details));
    assert.match(String(r.details), /^bad_request\/encoded_slash/);
  });

  test('a request message over the route\'s max_body_bytes → RESOURCE_EXHAUSTED body_too_large', async () => {
    const r = await call(gate, pki.clients.good, 'whoami', 'x'.repeat(100), 'small.Demo');
    assert.equal(r.code, 'RESOURCE_EXHAUSTED', String(r.details));
    assert.match(String(r.details), /^body_too_large/);
  });

  test('metadata over limits.max_header_bytes → RESOURCE_EXHAUSTED headers_too_large', async () => {
    // The example client sends no metadata of its own choosing: a few lines of grpcio here.
    const script = [
      'import grpc, json, sys',
      'creds = grpc.ssl_channel_credentials(root_certificates=open(sys.argv[2], "rb").read(),',
      '    private_key=open(sys.argv[4], "rb").read(), certificate_chain=open(sys.argv[3], "rb").read())',
      'with grpc.secure_channel(sys.argv[1], creds, options=[("grpc.ssl_target_name_override", "localhost")]) as ch:',
      '    try:',
      '        ch.unary_unary("/demo.Demo/Whoami")(b"", metadata=[("x-big", "a" * 20000)], timeout=10)',
      '        print(json.dumps({"code": "OK", "details": None}))',
      '    except grpc.RpcError as e:',
      '        print(json.dumps({"code": e.code().name, "details": e.details()}))',
    ].join('\n');
    const out = await new Promise<string>((resolve, reject) => {
      execFile(PYTHON!, ['-c', script, `127.0.0.1:${gate.port}`, pki.root.certPath, pki.clients.good.certPath, pki.clients.good.keyPath], { timeout: 30_000 },
        (err, stdout, stderr) => (err !== null ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout)));
    });
    const r = JSON.parse(out.trim().split('\n').at(-1)!) as CallResult;
    assert.equal(r.code, 'RESOURCE_EXHAUSTED', String(r.details));
    assert.match(String(r.details), /^headers_too_large/);
  });

  test('a non-gRPC HTTP/2 request still gets JSON refusals', async () => {
    const reply = await h2Once(gate.url, { ca: pki.root.cert, cert: pki.clients.good.pem, key: pki.clients.good.key }, { ':path': '/nowhere' });
    assert.equal(reply.status, 404);
    assert.equal(reply.json().error, 'no_route');
  });
});

// README's "A gRPC service behind certgate (runnable)", run as written in a scratch folder: its certgate.yaml and
// its shell lines, with three changes only — free ports for 8443, 50051 and the admin listener's 9090 (the
// test cannot own fixed ports), and this machine's python3 with grpcio and this Node for `python3` and `node`.
// Each `# {...}` line under a client call is what that call must print (its "key": "value" pairs).
describe('README: the gRPC example runs as written', { skip: SKIP !== false ? SKIP : spawnSync('curl', ['--version'], { stdio: 'ignore' }).status !== 0 ? 'curl not installed' : false }, () => {
  test('certs init, the grpcio server, certgate serve, the two client calls and what they print', { timeout: 60_000 }, async () => {
    const readme = readFileSync(path.join(EXAMPLES, '..', '..', 'README.md'), 'utf8');
    const section = readme.slice(readme.indexOf('### A gRPC service behind certgate (runnable)'));
    const yaml = /```yaml\n([\s\S]*?)```/.exec(section)![1]!;
    const sh = /```sh\n([\s\S]*?)```/.exec(section)![1]!;
    const [listen, grpcPort, admin] = await Promise.all([freePort(), freePort(), freePort()]);
    const ports = (text: string) => text.replaceAll('127.0.0.1:8443', `127.0.0.1:${listen}`).replaceAll('50051', String(grpcPort))
      .replaceAll('127.0.0.1:9090', `127.0.0.1:${admin}`);
    const dir = mkdtempSync(path.join(os.tmpdir(), 'certgate-readme-grpc-'));
    const repo = path.join(EXAMPLES, '..', '..');
    symlinkSync(path.join(repo, 'dist'), path.join(dir, 'dist'));
    symlinkSync(path.join(repo, 'examples'), path.join(dir, 'examples'));
    writeFileSync(path.join(dir, 'certgate.yaml'), `${ports(yaml)}admin:\n  listen: 127.0.0.1:${admin}\n`);
    const script = ports(sh).split('\n')
      .map((line) => line.replace(/^python3 /, `${PYTHON!} `).replace(/^node /, `${JSON.stringify(process.execPath)} `)).join('\n');
    // Its own process group: the lines ending in & (the gRPC server, certgate) are ended with it.
    const shell = spawn('bash', ['-e', '-c', script], { cwd: dir, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    shell.stdout!.on('data', (c: Buffer) => (out += c.toString()));
    shell.stderr!.on('data', (c: Buffer) => (err += c.toString()));
    try {
      const code = await new Promise<number | null>((resolve) => shell.once('exit', resolve));
      assert.equal(code, 0, `${out}\n${err}`);
      const printed = out.split('\n').filter((l) => l.startsWith('{"code"'));
      const expected = sh.split('\n').filter((l) => l.startsWith('# {"code"'));
      assert.equal(printed.length, expected.length, `${out}\n${err}`);
      expected.forEach((want, i) => {
        for (const pair of want.matchAll(/"[\w-]+": "[^"]*"/g)) assert.ok(printed[i]!.includes(pair[0]), `call ${i + 1} printed ${printed[i]}; README says ${pair[0]}`);
      });
    } finally {
      try {
        process.kill(-shell.pid!, 'SIGTERM');
      } catch {
        // the group has ended already
      }
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
