/**
 * Live config under load (issue 17): 20 config changes while HTTP/1.1 keep-alive clients and an HTTP/2
 * session send requests without pause — zero failed requests, and no request served by a half-applied
 * config. Generation k routes to the echo upstream under /g<k> and sends X-Forwarded-Client-Cert only when
 * k is even: a response whose path says one generation and whose headers say the other's parity would be
 * a request routed by one config and given the header options of another.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import https from 'node:https';
import { writeFileSync, renameSync } from 'node:fs';
import type http2 from 'node:http2';
import { stringify } from 'yaml';
import { createTestPki, type TestPki } from '../helpers/pki.js';
import { startTestCertgate, startEchoUpstream, type RunningCertgate, type Upstream } from '../helpers/certgate.js';
import { mtlsRequest } from '../helpers/client.js';
import { h2Connect, h2Request } from '../helpers/h2.js';
import { waitFor } from '../helpers/wait.js';

let pki: TestPki;
let echo: Upstream;
let gate: RunningCertgate;

function settings(k: number): Record<string, unknown> {
  return {
    listen: '127.0.0.1:0', admin: { listen: '127.0.0.1:0' }, config_watch: false,
    tls: { bundle: pki.serverBundle.pemPath, client_ca: pki.clientCa.path },
    headers: { xfcc: k % 2 === 0 },
    routes: [{ name: `api-${k}`, path_prefix: '/', upstream: `${echo.url}/g${k}` }],
  };
}

before(async () => {
  pki = await createTestPki();
  echo = await startEchoUpstream();
  gate = await startTestCertgate(settings(1));
});
after(async () => {
  await gate?.close();
  await echo?.close();
  pki?.cleanup();
});

test('20 config changes under HTTP/1.1 keep-alive and HTTP/2 load: zero failed requests, none served by a half-applied config', async () => {
  const creds = { ca: pki.root.cert, cert: pki.clients.good.pem, key: pki.clients.good.key };
  const seen = new Map<number, number>();
  const failures: string[] = [];
  let stop = false;
  const check = (status: number, body: string): void => {
    if (status !== 200) {
      failures.push(`${status} ${body}`);
      return;
    }
    const echoed = JSON.parse(body) as { path: string; headers: Record<string, string> };
    const k = Number(/^\/g(\d+)\//.exec(echoed.path)?.[1]);
    const xfcc = echoed.headers['x-forwarded-client-cert'] !== undefined;
    if (!(k > 0) || xfcc !== (k % 2 === 0)) failures.push(`half-applied: path ${echoed.path}, xfcc ${xfcc}`);
    seen.set(k, (seen.get(k) ?? 0) + 1);
  };
  const agent = new https.Agent({ keepAlive: true, maxSockets: 4 });
  const session: http2.ClientHttp2Session = await h2Connect(gate.url, creds);
  const h1Loop = async (): Promise<void> => {
    while (!stop) {
      try {
        const r = await mtlsRequest(gate.url, creds, { path: '/x', agent });
        check(r.status, r.body);
      } catch (err) {
        failures.push(`h1: ${String(err)}`);
      }
    }
  };
  const h2Loop = async (): Promise<void> => {
    while (!stop) {
      try {
        const r = await h2Request(session, { ':path': '/x' });
        check(r.status, r.body);
      } catch (err) {
        failures.push(`h2: ${String(err)}`);
      }
    }
  };
  const loops = [h1Loop(), h1Loop(), h1Loop(), h1Loop(), h2Loop(), h2Loop()];
  try {
    for (let k = 2; k <= 21; k++) {
      // Wait for traffic on the generation serving now, so every swap happens under load.
      await waitFor(() => (seen.get(k - 1) ?? 0) >= 5, `requests served by generation ${k - 1}`, 10_000);
      const tmp = `${gate.config.file}.tmp`;
      writeFileSync(tmp, stringify(settings(k)));
      renameSync(tmp, gate.config.file);
      const res = await fetch(`${gate.adminUrl}/-/reload`, { method: 'POST' });
      const json = await res.json() as { result: string; generation: number };
      assert.deepEqual([json.result, json.generation], ['success', k], JSON.stringify(json));
    }
    await waitFor(() => (seen.get(21) ?? 0) >= 5, 'requests served by generation 21', 10_000);
  } finally {
    stop = true;
    await Promise.all(loops);
    session.close();
    agent.destroy();
  }
  assert.deepEqual(failures, []);
  assert.equal(seen.size, 21, JSON.stringify([...seen]));
});
