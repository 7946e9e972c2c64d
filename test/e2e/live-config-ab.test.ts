/**
 * The load proof (issue 17), on the real CLI under workers: 1 and workers: 2: 20 config changes
 * while `ab` (ApacheBench, keep-alive HTTP/1.1 with a client certificate) and an HTTP/2 client send
 * requests without pause — zero failed requests, and no request served by a half-applied config.
 * Generation k routes under /g<k> and sends X-Forwarded-Client-Cert only when k is even; the upstream checks
 * every request it receives (ab's included, whose bodies ab cannot check): a path of one generation with
 * the header options of the other would be a half-applied config. Each swap waits for traffic on the
 * generation serving, so every swap happens under load. Skipped, saying so, when ab is not installed
 * (.ci/run installs apache2-utils).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { createTestPki, type TestPki } from '../helpers/pki.js';
import { h2Connect, h2Request } from '../helpers/h2.js';
import { waitFor } from '../helpers/wait.js';
import { killServeChildren, spawnServeConfig } from '../helpers/serve.js';

const noAb = spawnSync('ab', ['-V']).status === 0 ? undefined : 'ab (apache2-utils) is not installed';

let pki: TestPki;
let dir: string;
let upstream: http.Server;
let upstreamUrl: string;
/** Requests the upstream received, per generation; and every half-applied one it saw. */
const seen = new Map<number, number>();
const halfApplied: string[] = [];

before(async () => {
  pki = await createTestPki();
  dir = mkdtempSync(path.join(os.tmpdir(), 'certgate-live-ab-'));
  upstream = http.createServer({ keepAliveTimeout: 60_000 }, (req, res) => {
    const k = Number(/^\/g(\d+)\//.exec(req.url ?? '')?.[1]);
    const xfcc = req.headers['x-forwarded-client-cert'] !== undefined;
    if (!(k > 0) || xfcc !== (k % 2 === 0)) halfApplied.push(`path ${req.url}, xfcc ${xfcc}`);
    seen.set(k, (seen.get(k) ?? 0) + 1);
    // The same body for every generation: ab counts a length that differs from the first as a failure.
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '2', 'x-generation': String(k) });
    res.end('ok');
  });
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
  upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
});
after(async () => {
  killServeChildren();
  upstream?.closeAllConnections();
  await new Promise<void>((resolve) => (upstream ? upstream.close(() => resolve()) : resolve()));
  pki?.cleanup();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function config(workers: number, k: number): string {
  return JSON.stringify({
    listen: '127.0.0.1:0', admin: { listen: '127.0.0.1:0' }, workers, config_watch: false, log: { level: 'info', access: false },
    tls: { bundle: pki.serverBundle.pemPath, client_ca: pki.clientCa.path },
    headers: { xfcc: k % 2 === 0 },
    routes: [{ name: `api-${k}`, path_prefix: '/', upstream: `${upstreamUrl}/g${k}` }],
  });
}

/** ab's summary: every counter it prints for failures must be zero. */
function abFailures(out: string): { complete: number; failed: number; non2xx: number } {
  const num = (re: RegExp): number => Number(re.exec(out)?.[1] ?? 'NaN');
  return { complete: num(/Complete requests:\s+(\d+)/), failed: num(/Failed requests:\s+(\d+)/), non2xx: /Non-2xx responses:\s+(\d+)/.test(out) ? num(/Non-2xx responses:\s+(\d+)/) : 0 };
}

for (const workers of [1, 2]) {
  test(`workers: ${workers} — 20 config changes under ab (keep-alive HTTP/1.1) and HTTP/2 load: zero failed requests, none half-applied`, { skip: noAb, timeout: 120_000 }, async (t) => {
    seen.clear();
    halfApplied.length = 0;
    const file = path.join(dir, `ab-${workers}.yaml`);
    writeFileSync(file, config(workers, 1));
    const serve = await spawnServeConfig(file);
    const creds = { ca: pki.root.cert, cert: pki.clients.good.pem, key: pki.clients.good.key };
    const h2Failures: string[] = [];
    let stop = false;
    // ab: 4 keep-alive connections; -t caps it (it is interrupted once the changes are done; SIGINT prints its summary).
    const ab = spawn('ab', ['-k', '-c', '4', '-t', '90', '-n', '10000000', '-E', pki.clients.good.pemPath, `${serve.url.origin}/x`], { stdio: ['ignore', 'pipe', 'pipe'] });
    let abOut = '';
    ab.stdout.setEncoding('utf8').on('data', (d: string) => (abOut += d));
    ab.stderr.setEncoding('utf8').on('data', (d: string) => (abOut += d));
    const abExited = new Promise<number | null>((resolve) => ab.once('close', (code) => resolve(code)));
    const session: http2.ClientHttp2Session = await h2Connect(serve.url.origin, creds);
    const h2Loop = async (): Promise<void> => {
      while (!stop) {
        try {
          const r = await h2Request(session, { ':path': '/x' });
          if (r.status !== 200) h2Failures.push(`${r.status} ${r.body}`);
        } catch (err) {
          h2Failures.push(`h2: ${String(err)}`);
        }
      }
    };
    const loops = [h2Loop(), h2Loop()];
    try {
      for (let k = 2; k <= 21; k++) {
        await waitFor(() => (seen.get(k - 1) ?? 0) >= 10, `requests served by generation ${k - 1}`, 20_000);
        writeFileSync(`${file}.tmp`, config(workers, k));
        renameSync(`${file}.tmp`, file);
        const res = await fetch(`${serve.admin}/-/reload`, { method: 'POST' });
        const json = await res.json() as { result: string; generation: number };
        assert.deepEqual([json.result, json.generation], ['success', k], JSON.stringify(json));
      }
      await waitFor(() => (seen.get(21) ?? 0) >= 10, 'requests served by generation 21', 20_000);
    } finally {
      stop = true;
      await Promise.all(loops);
      session.close();
      ab.kill('SIGINT');
      await abExited;
      serve.child.kill('SIGTERM');
      await serve.exited;
    }
    assert.deepEqual(halfApplied, []);
    assert.deepEqual(h2Failures, []);
    assert.equal(seen.size, 21, JSON.stringify([...seen]));
    const ab1 = abFailures(abOut);
    t.diagnostic(`ab: ${ab1.complete} requests, ${ab1.failed} failed; HTTP/2 and ab together per generation: ${[...seen.values()].join(' ')}`);
    assert.ok(ab1.complete > 0, abOut);
    assert.deepEqual({ failed: ab1.failed, non2xx: ab1.non2xx }, { failed: 0, non2xx: 0 }, abOut);
  });
}
