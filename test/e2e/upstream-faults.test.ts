/**
 * Upstream faults: a raw TCP upstream misbehaves on purpose (reset mid-headers, close before answering,
 * never answer, stall or reset after the headers, stream forever, malformed status line or headers,
 * oversized headers, an unsolicited 101) and a closed port.
 *
 * The contract: before the response has started the client gets certgate's JSON (502 upstream_unavailable,
 * 504 upstream_timeout); once it has started the client sees a cut stream (never a clean but truncated
 * response); every fault is counted in certgate_upstream_errors_total{route,kind}; a client that goes away
 * tears down its upstream request; and the proxy keeps serving other clients throughout.
 */
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import https from 'node:https';
import net from 'node:net';
import { createTestPki, type TestPki } from '../helpers/pki.js';
import { startTestCertgate, startRecordingUpstream, metricValue, type RunningCertgate, type RecordingUpstream } from '../helpers/certgate.js';
import { mtlsRequest, type ClientCreds } from '../helpers/client.js';
import { assertStillServing, waitForNoConnections } from '../helpers/hostile.js';
import { waitFor } from '../helpers/wait.js';

/** No test may hang the suite (other files run after this one). */
const TEST_OPTS = { timeout: 20_000 };
const TIMEOUT_MS = 500;
const SLACK_MS = 1000;

/** What the faulty upstream does once it has read a request line for `path`. */
const FAULTS: Readonly<Record<string, (s: net.Socket) => void>> = {
  '/reset-mid-headers': (s) => {
    s.write('HTTP/1.1 200 OK\r\nContent-Ty');
    s.resetAndDestroy();
  },
  '/close-without-answer': (s) => s.end(),
  '/reset-without-answer': (s) => s.resetAndDestroy(),
  '/never-answer': () => undefined,
  '/stall-after-headers': (s) => s.write('HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\npartial...'),
  '/close-mid-body': (s) => s.end('HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\npartial...'),
  '/reset-mid-body': (s) => {
    s.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\na\r\npartial...\r\n', () => s.resetAndDestroy());
  },
  '/endless': (s) => {
    s.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n');
    const timer = setInterval(() => s.write('5\r\ntick.\r\n'), 20);
    s.once('close', () => clearInterval(timer));
  },
  '/bad-status-line': (s) => s.end('HTTP/1.1 2000 Not A Status\r\nContent-Length: 2\r\n\r\nok'),
  '/not-http': (s) => s.end('SSH-2.0-OpenSSH_9.6\r\n'),
  '/control-char-in-header': (s) => s.end('HTTP/1.1 200 OK\r\nX-Bad: a\x01b\r\nContent-Length: 2\r\n\r\nok'),
  '/space-in-header-name': (s) => s.end('HTTP/1.1 200 OK\r\nBad Header: x\r\nContent-Length: 2\r\n\r\nok'),
  '/duplicate-content-length': (s) => s.end('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok!'),
  '/cl-and-te': (s) => s.end('HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n'),
  '/oversized-headers': (s) => s.end(`HTTP/1.1 200 OK\r\nX-Huge: ${'h'.repeat(100_000)}\r\nContent-Length: 2\r\n\r\nok`),
  '/unsolicited-101': (s) => s.end('HTTP/1.1 101 Switching Protocols\r\nUpgrade: evil\r\nConnection: Upgrade\r\n\r\nraw bytes'),
};

interface FaultyUpstream {
  readonly url: string;
  /** Upstream connections currently open (to prove a gone client frees its upstream connection). */
  open(): number;
  close(): Promise<void>;
}

async function startFaultyUpstream(): Promise<FaultyUpstream> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
    s.on('error', () => undefined);
    let head = '';
    const onData = (d: Buffer): void => {
      head += d.toString('latin1');
      if (!head.includes('\r\n\r\n')) return;
      s.off('data', onData);
      const path = /^[A-Z]+ (\S+)/.exec(head)?.[1] ?? '';
      const fault = FAULTS[path];
      if (fault === undefined) s.end('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n');
      else fault(s);
    };
    s.on('data', onData);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    open: () => sockets.size,
    close: () => new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    }),
  };
}

interface Outcome {
  readonly status: number | undefined;
  readonly body: string;
  /** The response ended cleanly (all framed bytes arrived). */
  readonly complete: boolean;
  readonly error: string | undefined;
  /** Nothing more happened for HUNG_MS: the client gave up (a hang is itself a failure). */
  readonly hung: boolean;
}

/** A client that has heard nothing for this long gives up and reports a hang (far beyond the route timeout). */
const HUNG_MS = TIMEOUT_MS + SLACK_MS + 2000;

/** One request on a fresh connection, reporting a cut stream (or a hang) instead of rejecting. */
function request(baseUrl: string, creds: ClientCreds, path: string, opts: { abortAfterBytes?: number } = {}): Promise<Outcome> {
  const url = new URL(path, baseUrl);
  return new Promise((resolve) => {
    let status: number | undefined;
    const chunks: Buffer[] = [];
    let complete = false;
    let error: string | undefined;
    let hung = false;
    let settled = false;
    const done = (): void => {
      if (settled) return;
      settled = true;
      clearTimeout(watchdog);
      resolve({ status, body: Buffer.concat(chunks).toString('latin1'), complete, error, hung });
    };
    const watchdog = setTimeout(() => {
      hung = true;
      req.destroy();
      done();
    }, HUNG_MS);
    const req = https.request({
      host: url.hostname, port: url.port, path, servername: 'localhost', agent: false, ca: creds.ca, cert: creds.cert, key: creds.key,
    }, (res) => {
      status = res.statusCode;
      res.on('data', (c: Buffer) => {
        chunks.push(c);
        watchdog.refresh();
        if (opts.abortAfterBytes !== undefined && Buffer.concat(chunks).length >= opts.abortAfterBytes) req.destroy();
      });
      res.on('end', () => (complete = res.complete));
      res.on('error', (e: NodeJS.ErrnoException) => (error = e.code ?? e.message));
      res.on('close', done);
    });
    req.on('error', (e: NodeJS.ErrnoException) => {
      error ??= e.code ?? e.message;
      if (status === undefined) done();
    });
    req.end();
  });
}

let pki: TestPki;
let api: RecordingUpstream;
let faulty: FaultyUpstream;
let gate: RunningCertgate;
let good: ClientCreds;

before(async () => {
  pki = await createTestPki();
  api = await startRecordingUpstream();
  faulty = await startFaultyUpstream();
  const dead = net.createServer();
  await new Promise<void>((resolve) => dead.listen(0, '127.0.0.1', resolve));
  const deadPort = (dead.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => dead.close(() => resolve()));
  gate = await startTestCertgate({
    tls: { bundle: pki.serverBundle.pemPath, client_ca: pki.clientCa.path },
    routes: [
      { name: 'healthy', path_prefix: '/still-serving', upstream: api.url },
      { name: 'dead', path_prefix: '/dead', upstream: `http://127.0.0.1:${deadPort}` },
      { name: 'faulty', path_prefix: '/', upstream: faulty.url, timeout_ms: TIMEOUT_MS },
    ],
  });
  good = { ca: pki.root.cert, cert: pki.clients.good.pem, key: pki.clients.good.key };
});

after(async () => {
  await gate?.close();
  await Promise.all([api?.close(), faulty?.close()]);
  pki?.cleanup();
});

async function upstreamErrors(route: string): Promise<Record<string, number>> {
  const text = await gate.metricsText();
  const out: Record<string, number> = {};
  for (const kind of ['refused', 'reset', 'timeout', 'dns', 'tls', 'other']) out[kind] = metricValue(text, 'certgate_upstream_errors_total', { route, kind }) ?? 0;
  return out;
}

function sum(counts: Record<string, number>): number {
  return Object.values(counts).reduce((a, b) => a + b, 0);
}

/** Runs `path` while a good client is served by the healthy route; returns the outcome and the counted kinds. */
async function underFault(path: string, opts: { abortAfterBytes?: number } = {}): Promise<{ outcome: Outcome; counted: string[] }> {
  const route = path.startsWith('/dead') ? 'dead' : 'faulty';
  const before = await upstreamErrors(route);
  const [outcome, bystander] = await Promise.all([
    request(gate.url, good, path, opts),
    mtlsRequest(gate.url, good, { path: '/still-serving/bystander' }),
  ]);
  assert.equal(bystander.status, 200, 'another client is served while the upstream misbehaves');
  assert.equal(outcome.hung, false, `PRODUCT BUG: ${path}: the client heard nothing for ${HUNG_MS} ms (got ${outcome.status ?? 'no status'}, ${JSON.stringify(outcome.body.slice(0, 40))}); certgate neither answered nor cut the stream`);
  let after = await upstreamErrors(route);
  if (opts.abortAfterBytes === undefined) {
    after = await waitFor(async () => {
      const now = await upstreamErrors(route);
      return sum(now) > sum(before) ? now : undefined;
    }, `certgate_upstream_errors_total{route="${route}"} to grow after ${path} (PRODUCT BUG if it never does: the fault went uncounted)`);
  }
  const counted = Object.keys(after).filter((k) => after[k]! > before[k]!);
  return { outcome, counted };
}

function assertJsonError(outcome: Outcome, status: 502 | 504, what: string): void {
  assert.equal(outcome.status, status, `${what}: got ${outcome.status} ${outcome.body} (${outcome.error ?? ''})`);
  const body = JSON.parse(outcome.body) as { error: string; kind: string; message: string };
  assert.equal(body.error, status === 504 ? 'upstream_timeout' : 'upstream_unavailable');
  assert.equal(typeof body.kind, 'string');
  assert.ok(outcome.complete, 'our JSON answer is complete');
}

describe('faults before the response starts → 502/504 JSON, counted', () => {
  const cases: ReadonlyArray<readonly [string, 502 | 504, readonly string[]]> = [
    ['/reset-mid-headers', 502, ['reset']],
    ['/close-without-answer', 502, ['reset']],
    ['/reset-without-answer', 502, ['reset']],
    ['/never-answer', 504, ['timeout']],
    ['/bad-status-line', 502, ['other', 'reset']],
    ['/not-http', 502, ['other', 'reset']],
    ['/control-char-in-header', 502, ['other', 'reset']],
    ['/space-in-header-name', 502, ['other', 'reset']],
    ['/duplicate-content-length', 502, ['other', 'reset']],
    ['/cl-and-te', 502, ['other', 'reset']],
    ['/oversized-headers', 502, ['other', 'reset']],
    ['/unsolicited-101', 502, ['other', 'reset']],
    ['/dead/x', 502, ['refused']],
  ];
  for (const [path, status, kinds] of cases) {
    test(`${path} → ${status} JSON, counted as ${kinds.join(' or ')}`, TEST_OPTS, async () => {
      const started = Date.now();
      const { outcome, counted } = await underFault(path);
      assertJsonError(outcome, status, path);
      assert.equal(counted.length, 1, `counted once: ${counted.join(',')}`);
      assert.ok(kinds.includes(counted[0]!), `kind ${counted[0]} is one of ${kinds.join(', ')}`);
      if (status === 504) assert.ok(Date.now() - started < TIMEOUT_MS + SLACK_MS, 'answered at the route timeout');
      await assertStillServing(gate, good);
    });
  }
});

describe('faults after the response started → a cut stream, never a clean truncated response', () => {
  for (const path of ['/stall-after-headers', '/close-mid-body', '/reset-mid-body']) {
    test(`${path}: 200 headers, partial body, then the client sees the stream cut`, TEST_OPTS, async () => {
      const started = Date.now();
      const { outcome, counted } = await underFault(path);
      assert.equal(outcome.status, 200);
      assert.match(outcome.body, /^partial/);
      assert.equal(outcome.complete, false, `the client must see the truncation (got ${JSON.stringify(outcome)})`);
      assert.equal(counted.length, 1, `counted once: ${counted.join(',')}`);
      assert.ok(Date.now() - started < TIMEOUT_MS + SLACK_MS, 'cut no later than the route timeout');
      await assertStillServing(gate, good);
    });
  }

  test('an endless response streams until the client leaves; then its upstream connection is closed too', TEST_OPTS, async () => {
    const baseline = faulty.open();
    const { outcome } = await underFault('/endless', { abortAfterBytes: 50 });
    assert.equal(outcome.status, 200);
    assert.match(outcome.body, /tick\./);
    await waitFor(() => faulty.open() <= baseline, 'the upstream connection of the departed client to close');
    await assertStillServing(gate, good);
  });
});

test('the proxy survives a mixed burst of every fault (bounded: 3 rounds) and ends with no connection held', TEST_OPTS, async () => {
  const paths = [...Object.keys(FAULTS).filter((p) => p !== '/endless'), '/dead/burst'];
  for (let round = 0; round < 3; round++) {
    const outcomes = await Promise.all(paths.map((p) => request(gate.url, good, p)));
    for (const [i, o] of outcomes.entries()) {
      const ok = !o.hung && (o.status === 502 || o.status === 504 || (o.status === 200 && !o.complete));
      assert.ok(ok, `${paths[i]}: ${JSON.stringify(o)}`);
    }
  }
  await waitForNoConnections(gate);
  await assertStillServing(gate, good);
});
