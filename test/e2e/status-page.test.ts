/**
 * The status page in a real browser: Debian's chromium, driven by playwright-core (executablePath).
 *
 * Setup: certgate with admin.token_file and a CRL; traffic from clients with 30, 9 and 1 days left, the
 * hostile-DN client (subject full of `<>"&,+;` and UTF-8), an expired one (refused), a 403 and a 502;
 * one reload.
 * Action: open / , give the token the page asks for, let it refresh.
 * Must hold: the server certificate's subject and days left appear, coloured (< 14 d warn, < 3 d crit);
 * the recent clients, reloads, refusals and routes show real data; the hostile subject is shown as text
 * (no element injected); the page refreshes itself; no console error or CSP violation. A screenshot goes
 * to the test's temp dir (and to docs/status-page.png with CERTGATE_UPDATE_SCREENSHOT=1).
 * Skipped, with the reason, only when no chromium can be found (.ci/run installs it).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createTestPki, type TestPki, type TestCert } from '../helpers/pki.js';
import { startTestCertgate, startRecordingUpstream, type RunningCertgate, type RecordingUpstream } from '../helpers/certgate.js';
import { mtlsRequest } from '../helpers/client.js';
import { waitFor } from '../helpers/wait.js';

const DAY = 86_400_000;
const TOKEN = '7d1e3c5a9b2f4e6d8c0a1b3e5f7d9c2a';
const CHROMIUM = [process.env.CHROMIUM_PATH, '/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p): p is string => p !== undefined && existsSync(p));
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-background-networking', '--disable-component-update', '--no-first-run'];

let pki: TestPki;
let upstream: RecordingUpstream;
let gate: RunningCertgate;
let tmp: string;
const clients: Record<string, TestCert> = {};
let renewed: TestCert;

before(async () => {
  pki = await createTestPki();
  tmp = mkdtempSync(path.join(os.tmpdir(), 'certgate-status-page-'));
  upstream = await startRecordingUpstream();
  const tokenFile = path.join(pki.dir, 'admin-token');
  writeFileSync(tokenFile, `${TOKEN}\n`, { mode: 0o600 });
  const served = path.join(pki.dir, 'served.pem');
  copyFileSync(pki.serverBundle.pemPath, served);
  gate = await startTestCertgate({
    tls: { bundle: served, client_ca: pki.clientCa.path, crl: pki.crlPath, watch: false },
    routes: [
      { name: 'payments-api', path_prefix: '/api', upstream: upstream.url },
      { name: 'admin-api', path_prefix: '/admin', upstream: upstream.url, allow: { subject_ou: ['platform'] } },
      { name: 'reports', path_prefix: '/reports', upstream: 'http://127.0.0.1:1' },
    ],
    admin: { listen: '127.0.0.1:0', token_file: tokenFile },
  });
  const now = Date.now();
  clients.nineDays = await pki.issueClient({ name: 'billing', subject: [['OU', 'billing'], ['CN', 'svc-billing']], notAfter: new Date(now + 9.5 * DAY), san: { uri: ['spiffe://example.org/ns/prod/sa/billing'] } });
  clients.oneDay = await pki.issueClient({ name: 'ledger', subject: [['OU', 'payments'], ['CN', 'svc-ledger']], notAfter: new Date(now + 1.5 * DAY), san: { uri: ['spiffe://example.org/ns/prod/sa/ledger'] } });
  const as = (c: TestCert) => ({ ca: pki.root.cert, cert: c.pem, key: c.key });
  const traffic: [TestCert, string, number][] = [
    [pki.clients.good, '/api/orders', 200], [pki.clients.good, '/api/orders/7', 200], [pki.clients.good, '/admin/users', 403],
    [clients.nineDays, '/api/invoices', 200], [clients.oneDay, '/api/ledger', 200], [pki.clients.hostileDn, '/api/x', 200],
    [pki.clients.expired, '/api/x', 400], [pki.clients.revoked, '/api/x', 400], [pki.clients.good, '/reports/daily', 502],
  ];
  for (const [c, p, status] of traffic) assert.equal((await mtlsRequest(gate.url, as(c), { path: p })).status, status, p);
  // Reload history: a renewed leaf (success), then a half-written file (failure; the renewed one keeps serving).
  renewed = await pki.issueClient({ name: 'server-renewed', usage: 'server', subject: [['CN', 'localhost']], san: { dns: ['localhost'], ip: ['127.0.0.1', '::1'] }, notAfter: new Date(now + 60 * DAY) });
  writeFileSync(served, renewed.pem);
  assert.equal((await gate.app.reload('signal')).result, 'success');
  writeFileSync(served, renewed.pem.slice(0, 200));
  assert.equal((await gate.app.reload('signal')).result, 'failure');
  // The reloader retries once 0.5 s later (a writer is usually mid-way); this file stays broken.
  await waitFor(async () => {
    const s = await (await fetch(`${gate.adminUrl}/status.json`, { headers: { authorization: `Bearer ${TOKEN}` } })).json() as { reloads: { trigger: string }[] };
    return s.reloads[0]?.trigger === 'retry';
  }, 'the retry of the failed reload');
});
after(async () => {
  await Promise.all([gate?.close(), upstream?.close()]);
  pki?.cleanup();
  if (tmp !== undefined) rmSync(tmp, { recursive: true, force: true });
});

test('the status page shows the server certificate, clients, reloads and rates; asks for the token; refreshes itself', { timeout: 120_000 }, async (t) => {
  if (CHROMIUM === undefined) {
    t.skip('no chromium found (/usr/bin/chromium or $CHROMIUM_PATH); .ci/run installs Debian\'s chromium');
    return;
  }
  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS });
  try {
    const page = await browser.newPage({ viewport: { width: 1440, height: 900 } });
    const problems: string[] = [];
    page.on('console', (m) => {
      // The page's first fetches answer 401 by design (the token is not known yet); chromium logs those.
      if (m.type() === 'error' && !/status of 401/.test(m.text())) problems.push(m.text());
    });
    page.on('pageerror', (e) => problems.push(String(e)));

    await page.goto(`${gate.adminUrl}/?refresh=1`);
    await page.waitForSelector('#login:not([hidden])');
    assert.equal(await page.isHidden('#main'), true, 'no data before the token');
    await page.fill('#token', TOKEN);
    await page.click('#login button');
    await page.waitForSelector('body[data-loaded="true"]');

    // The server certificate: subject and days left, coloured.
    const expectedDays = Math.floor((Date.parse(renewed.x509.validTo) - Date.now()) / DAY);
    const server = await page.$$eval('#certs tbody tr', (rows) => rows.map((r) => [...r.querySelectorAll('td')].map((td) => [td.textContent, td.className])));
    const serverRow = server.find((r) => r[0]?.[0] === 'server');
    assert.ok(serverRow, JSON.stringify(server));
    assert.equal(serverRow[1]?.[0], 'CN=localhost');
    assert.equal(serverRow[5]?.[0], `${expectedDays} d`);
    assert.equal(serverRow[5]?.[1], 'days ok');
    assert.ok(server.some((r) => r[0]?.[0] === 'client ca' && r[1]?.[0] === 'CN=certgate test root CA,O=certgate test'));
    assert.equal(await page.textContent('#state'), 'ready');

    // Recent clients: soonest-expiring first, colour at < 14 d and < 3 d.
    const rows = await page.$$eval('#clients tbody tr', (trs) => trs.map((r) => [...r.querySelectorAll('td')].map((td) => [td.textContent ?? '', td.className])));
    const subjects = rows.map((r) => r[0]?.[0]);
    assert.equal(subjects[0], 'CN=svc-expired');
    assert.equal(subjects[1], 'CN=svc-ledger,OU=payments');
    assert.equal(subjects[2], 'CN=svc-billing,OU=billing');
    const daysOf = (s: string) => rows.find((r) => r[0]?.[0] === s)?.[4];
    assert.deepEqual(daysOf('CN=svc-ledger,OU=payments'), ['1 d', 'days crit']);
    assert.deepEqual(daysOf('CN=svc-billing,OU=billing'), ['9 d', 'days warn']);
    assert.deepEqual(daysOf('CN=svc-expired')?.[0], 'expired');
    assert.equal(rows.find((r) => r[0]?.[0] === 'CN=svc-expired')?.[9]?.[0], 'expired', 'last refusal');
    assert.equal(rows.find((r) => r[0]?.[0] === 'CN=svc-a,OU=payments')?.[9]?.[0], 'forbidden');

    // The hostile subject is text, exactly as /clients has it; nothing was injected.
    const list = await (await fetch(`${gate.adminUrl}/clients`, { headers: { authorization: `Bearer ${TOKEN}` } })).json() as { clients: { subject: string; fingerprint: string }[] };
    const hostile = list.clients.find((c) => c.fingerprint === pki.clients.hostileDn.x509.fingerprint256.replaceAll(':', '').toLowerCase())!.subject;
    assert.match(hostile, /<b\\>/);
    assert.ok(subjects.includes(hostile), `${hostile} in ${JSON.stringify(subjects)}`);
    const markup = await page.$$eval('#clients td.dn', (tds) => tds.map((td) => td.innerHTML));
    assert.ok(markup.some((h) => h.includes('\\&lt;b\\&gt;') && h.includes('\\"q\\"')), 'escaped in the DOM');
    assert.equal(await page.$$eval('#main b, #main script, #main img', (els) => els.length), 0, 'no element from a subject');

    // Routes, reloads and refusals show what happened.
    const routes = await page.$$eval('#routes tbody tr', (trs) => trs.map((r) => [...r.querySelectorAll('td')].map((td) => td.textContent)));
    assert.deepEqual(routes.map((r) => [r[0], r[3]]), [['payments-api', 'ok'], ['admin-api', 'ok'], ['reports', 'failing']]);
    const reloads = await page.$$eval('#reloads tbody tr', (trs) => trs.map((r) => [...r.querySelectorAll('td')].map((td) => td.textContent)));
    assert.deepEqual(reloads.map((r) => [r[1], r[3]]), [['retry', 'failure'], ['signal', 'failure'], ['signal', 'success'], ['startup', 'success']]);
    assert.match(String(reloads[0]?.[4]), /^CG_[A-Z_]+: .*served\.pem/, 'the failure names its code and file');
    const refusals = Object.fromEntries(await page.$$eval('#refusals tbody tr', (trs) => trs.map((r) => [...r.querySelectorAll('td')].map((td) => td.textContent))));
    assert.deepEqual(refusals, { expired: '1', revoked: '1', forbidden: '1' });

    // It refreshes itself: new traffic shows up without a reload of the page.
    const requestsOf = () => page.$$eval('#clients tbody tr', (trs) => trs.map((r) => [...r.querySelectorAll('td')].map((td) => td.textContent))
      .find((r) => r[0] === 'CN=svc-billing,OU=billing')?.[7]);
    assert.equal(await requestsOf(), '1');
    assert.equal((await mtlsRequest(gate.url, { ca: pki.root.cert, cert: clients.nineDays!.pem, key: clients.nineDays!.key }, { path: '/api/again' })).status, 200);
    await page.waitForFunction(() => [...document.querySelectorAll('#clients tbody tr')].some((r) => r.children[0]?.textContent === 'CN=svc-billing,OU=billing' && r.children[7]?.textContent === '2'));

    const shot = path.join(tmp, 'status-page.png');
    await page.screenshot({ path: shot, fullPage: true });
    assert.ok(statSync(shot).size > 20_000, 'a real screenshot');
    if (process.env.CERTGATE_UPDATE_SCREENSHOT === '1') {
      const docs = new URL('../../docs/', import.meta.url);
      mkdirSync(docs, { recursive: true });
      copyFileSync(shot, new URL('status-page.png', docs));
    }
    assert.deepEqual(problems, [], 'no console error, no CSP violation');
  } finally {
    await browser.close();
  }
});
