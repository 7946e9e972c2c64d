/**
 * The status page's data (createStatus over fake counters and real certificates), the reload history,
 * the page's own guarantees (self-contained, CSP hashes match, text-only rendering), and the admin
 * token (bearer parsing, constant-time comparison, start-up errors).
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createStatus, daysLeft } from '../../dist/admin/status.js';
import { ReloadHistory } from '../../dist/admin/reload-history.js';
import type { CounterSnapshot, Samples } from '../../dist/admin/counters.js';
import { STATUS_PAGE, STATUS_PAGE_CSP } from '../../dist/admin/status-page.js';
import { adminToken, loadAdminToken, authorized } from '../../dist/admin/auth.js';
import type { Config } from '../../dist/config/types.js';
import type { TlsMaterial } from '../../dist/tls/material.js';
import { createTestPki, type TestPki } from '../helpers/pki.js';

const DAY = 86_400_000;
let pki: TestPki;
before(async () => {
  pki = await createTestPki();
});
after(() => pki?.cleanup());

function material(): TlsMaterial {
  return {
    key: '', cert: '', ca: [], digest: 'x', problems: [],
    leaf: pki.serverBundle.x509, chain: [pki.intermediate.x509], clientCas: [pki.root.x509, pki.intermediate.x509],
    crls: [{ issuer: 'CN=certgate test root CA', thisUpdate: new Date(), nextUpdate: new Date(Date.now() + 2.5 * DAY) }],
  } as unknown as TlsMaterial;
}

const config = {
  tls: { client_auth: 'require', min_version: 'TLSv1.2' },
  admin: { clients_max: 1000 },
  routes: [
    { name: 'api', path_prefix: '/api', upstream: new URL('http://127.0.0.1:3000/') },
    { name: 'flaky', path_prefix: '/flaky', upstream: new URL('http://127.0.0.1:3001/') },
    { name: 'dead', path_prefix: '/dead', host: 'dead.example', upstream: new URL('http://127.0.0.1:1/') },
    { name: 'quiet', path_prefix: '/quiet', upstream: new URL('http://127.0.0.1:3002/') },
  ],
} as unknown as Config;

function counters(c: { api?: number; flaky?: number; flakyErr?: number; dead?: number; deadErr?: number; expired?: number; aborted?: number; denied?: number }): CounterSnapshot {
  const s = (values: [Record<string, string>, number][]): Samples => values.map(([labels, value]) => ({ labels, value }));
  return {
    requests: s([[{ route: 'api', method: 'GET', code: '200' }, c.api ?? 0], [{ route: 'flaky', method: 'GET', code: '200' }, c.flaky ?? 0],
      [{ route: 'dead', method: 'GET', code: '502' }, c.dead ?? 0]]),
    handshakes: s([[{ version: 'TLSv1.3', resumed: 'false' }, 7]]),
    handshakeFailures: s([[{ reason: 'expired' }, c.expired ?? 0], [{ reason: 'aborted' }, c.aborted ?? 0]]),
    authzDenied: s([[{ route: 'api' }, c.denied ?? 0]]),
    upstreamErrors: s([[{ route: 'flaky', kind: 'reset' }, c.flakyErr ?? 0], [{ route: 'dead', kind: 'refused' }, c.deadErr ?? 0]]),
    connectionsRejected: s([[{ reason: 'max_connections' }, 0]]),
    connectionsOpen: s([[{}, 3]]),
    inFlight: s([[{}, 1]]),
  };
}

describe('status.json data', () => {
  it('certificates with days left, CRLs, rates over the sampled window, route states, refusals by reason', async () => {
    let now = Date.now();
    let current = counters({});
    const history = new ReloadHistory();
    history.record({ time: now, trigger: 'startup', file: 'all', result: 'success', serial: 'AB' });
    const status = createStatus({
      config, history, readCounters: async () => current, material, ready: () => true, url: () => 'https://127.0.0.1:8443', auth: true,
      now: () => now, sampleMs: 3_600_000,
    });
    try {
      await new Promise((resolve) => setImmediate(resolve)); // the first sample is taken
      now += 10_000;
      current = counters({ api: 50, flaky: 10, flakyErr: 2, dead: 4, deadErr: 4, expired: 3, aborted: 5, denied: 2 });
      const s = await status.snapshot();
      assert.equal(s.ready, true);
      assert.equal(s.listener.url, 'https://127.0.0.1:8443');
      assert.equal(s.listener.connections_open, 3);
      assert.equal(s.admin.auth, true);
      const server = s.certificates.find((c) => c.kind === 'server');
      assert.equal(server?.subject, 'CN=localhost');
      assert.equal(server?.issuer, 'CN=certgate test intermediate CA,O=certgate test');
      assert.equal(server?.days_left, daysLeft(Date.parse(pki.serverBundle.x509.validTo), now));
      assert.ok(server!.days_left >= 29 && server!.days_left <= 30, String(server?.days_left));
      assert.deepEqual(s.certificates.map((c) => c.kind), ['server', 'chain', 'client_ca', 'client_ca']);
      assert.equal(s.crls[0]?.days_left, 2);
      assert.equal(s.rates.window_s, 10);
      assert.equal(s.rates.requests_per_s, 6.4, '(50 + 10 + 4) / 10 s');
      assert.equal(s.rates.refusals_per_s, 0.5, '3 expired + 2 denied, not the 5 aborted');
      assert.equal(s.rates.handshake_errors_per_s, 0.5);
      assert.equal(s.rates.upstream_errors_per_s, 0.6);
      assert.deepEqual(Object.fromEntries(s.routes.map((r) => [r.name, r.state])), { api: 'ok', flaky: 'degraded', dead: 'failing', quiet: 'idle' });
      assert.deepEqual(s.routes.find((r) => r.name === 'dead')?.upstream_errors_by_kind, { refused: 4 });
      assert.equal(s.totals.refusals.forbidden, 2);
      assert.equal(s.totals.refusals.expired, 3);
      assert.equal(s.reloads[0]?.trigger, 'startup');
    } finally {
      status.close();
    }
  });

  it('reload history keeps the last 20, newest first', () => {
    const h = new ReloadHistory(20);
    for (let i = 0; i < 25; i++) h.record({ time: i, trigger: 'watch', file: `f${i}`, result: i % 2 === 0 ? 'success' : 'failure' });
    const list = h.list();
    assert.equal(list.length, 20);
    assert.equal(list[0]?.file, 'f24');
    assert.equal(list.at(-1)?.file, 'f5');
  });

  it('days left are whole days, rounded down, negative once expired', () => {
    assert.equal(daysLeft(29.9 * DAY, 0), 29);
    assert.equal(daysLeft(0.5 * DAY, 0), 0);
    assert.equal(daysLeft(0, DAY), -1);
  });
});

describe('status page (self-contained, text-only rendering)', () => {
  const between = (open: string, close: string): string => {
    const start = STATUS_PAGE.indexOf(open) + open.length;
    return STATUS_PAGE.slice(start, STATUS_PAGE.indexOf(close, start));
  };
  const sha = (s: string) => `'sha256-${createHash('sha256').update(s).digest('base64')}'`;

  it('loads nothing from elsewhere: no external script, style, font or image', () => {
    assert.doesNotMatch(STATUS_PAGE, /<script[^>]*\ssrc=|<link\b|<img\b|@import|url\(/i);
    assert.doesNotMatch(STATUS_PAGE, /https?:\/\//);
  });

  it('the CSP allows exactly the inline script and style (by hash), requests to this origin only', () => {
    assert.ok(STATUS_PAGE_CSP.includes(`script-src ${sha(between('<script>', '</script>'))}`), STATUS_PAGE_CSP);
    assert.ok(STATUS_PAGE_CSP.includes(`style-src ${sha(between('<style>', '</style>'))}`));
    assert.match(STATUS_PAGE_CSP, /default-src 'none'/);
    assert.match(STATUS_PAGE_CSP, /connect-src 'self'/);
    assert.equal((STATUS_PAGE.match(/<script>/g) ?? []).length, 1);
  });

  it('renders values as text: no innerHTML, outerHTML, insertAdjacentHTML or document.write', () => {
    assert.doesNotMatch(between('<script>', '</script>'), /innerHTML|outerHTML|insertAdjacentHTML|document\.write/);
    assert.match(between('<script>', '</script>'), /textContent/);
  });

  it('refreshes itself and asks for the token on 401', () => {
    const script = between('<script>', '</script>');
    assert.match(script, /setTimeout\(refresh, REFRESH_MS\)/);
    assert.match(script, /status === 401/);
    assert.match(script, /authorization: 'Bearer ' \+ token/);
  });
});

describe('admin token', () => {
  const token = 'k9Jx2mQ7vR4tLp8wZ3nB';
  const t = adminToken(token);

  it('accepts exactly "Bearer <token>"', () => {
    assert.equal(t.check(`Bearer ${token}`), true);
    assert.equal(t.check(`bearer ${token}`), true, 'the scheme is case-insensitive (RFC 9110)');
    assert.equal(t.check(`Bearer  ${token} `), true);
    for (const bad of [undefined, '', token, `Basic ${token}`, `Bearer ${token}x`, `Bearer ${token.slice(1)}`, `Bearer ${token} extra`, 'Bearer']) {
      assert.equal(t.check(bad), false, String(bad));
    }
  });

  it('probes and the scrape stay open; everything else needs the token', () => {
    const req = (authorization?: string) => ({ headers: authorization === undefined ? {} : { authorization } }) as never;
    for (const p of ['/healthz', '/readyz', '/metrics']) assert.equal(authorized(t, p, req()), true, p);
    for (const p of ['/', '/status.json', '/clients', '/nope']) {
      assert.equal(authorized(t, p, req()), false, p);
      assert.equal(authorized(t, p, req(`Bearer ${token}`)), true, p);
    }
    assert.equal(authorized(undefined, '/clients', req()), true, 'no token_file: open (loopback by default)');
  });

  it('loadAdminToken drops one trailing newline and refuses short or missing tokens with a code', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'certgate-token-'));
    try {
      const good = path.join(dir, 'good');
      writeFileSync(good, `${token}\n`);
      assert.equal((await loadAdminToken(good)).check(`Bearer ${token}`), true);
      const short = path.join(dir, 'short');
      writeFileSync(short, 'tooshort\n');
      await assert.rejects(loadAdminToken(short), (e: { code?: string; message?: string }) => e.code === 'CG_ADMIN_TOKEN' && /at least 16/.test(e.message ?? ''));
      await assert.rejects(loadAdminToken(path.join(dir, 'missing')), (e: { code?: string }) => e.code === 'CG_FILE_READ');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
