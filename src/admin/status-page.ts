/**
 * The admin status page (`GET /`): one self-contained HTML document — inline CSS and JS, no CDN, no
 * build step. It fetches /status.json and /clients, renders them, and refreshes itself every 5 s
 * (`?refresh=N` seconds to change it). When admin.token_file is set it asks for the token, keeps it in
 * sessionStorage (this tab only) and sends it as `Authorization: Bearer`.
 *
 * Every value is rendered with textContent, never as markup: client subjects are attacker-chosen
 * (`CN=<script>…`). On top of that the Content-Security-Policy allows only this page's own script and
 * style (by hash) and requests to this origin, so even a rendering bug could not run injected script.
 */
import { createHash } from 'node:crypto';

const STYLE = `
:root { --fg: #1d2433; --muted: #5b6478; --bg: #f6f7f9; --card: #fff; --line: #e1e4ea;
  --ok: #1e7b34; --ok-bg: #e3f4e7; --warn: #8a5a00; --warn-bg: #fff1cc; --crit: #a3161b; --crit-bg: #fde2e1; --idle: #5b6478; --idle-bg: #eceef2; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); background: var(--bg); }
header { display: flex; align-items: baseline; gap: 12px; flex-wrap: wrap; padding: 14px 24px; background: #1d2433; color: #fff; }
header h1 { margin: 0; font-size: 20px; letter-spacing: .02em; }
header .meta { color: #c5cbd8; font-size: 13px; }
main, #login { padding: 16px 24px 32px; max-width: 1400px; }
[hidden] { display: none !important; }
h2 { font-size: 15px; margin: 22px 0 8px; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(300px, 1fr)); gap: 16px; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 4px 16px 12px; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 4px 16px; margin: 8px 0 0; }
dt { color: var(--muted); }
dd { margin: 0; font-variant-numeric: tabular-nums; overflow-wrap: anywhere; }
table { width: 100%; border-collapse: collapse; background: var(--card); border: 1px solid var(--line); border-radius: 8px; overflow: hidden; }
th, td { text-align: left; padding: 6px 10px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { font-weight: 600; color: var(--muted); background: #fafbfc; font-size: 12px; text-transform: uppercase; letter-spacing: .04em; }
td { font-variant-numeric: tabular-nums; }
td.dn, td.mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12.5px; overflow-wrap: anywhere; }
td.empty { color: var(--muted); font-style: italic; }
tbody tr:last-child td { border-bottom: 0; }
.badge, td.days, td.result, td.state { font-weight: 600; }
.badge { display: inline-block; padding: 1px 10px; border-radius: 999px; font-size: 13px; }
.ok { color: var(--ok); } .warn { color: var(--warn); } .crit { color: var(--crit); } .idle { color: var(--idle); }
.badge.ok, td.days.ok, td.state.ok, td.result.ok { background: var(--ok-bg); }
.badge.warn, td.days.warn, td.state.warn { background: var(--warn-bg); }
.badge.crit, td.days.crit, td.state.crit, td.result.crit { background: var(--crit-bg); }
td.state.idle { background: var(--idle-bg); }
.banner { margin: 12px 24px 0; padding: 8px 12px; border-radius: 6px; background: var(--crit-bg); color: var(--crit); }
#login form { display: flex; gap: 8px; align-items: center; flex-wrap: wrap; background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 16px; max-width: 640px; }
#login input { font: inherit; padding: 6px 8px; min-width: 320px; border: 1px solid var(--line); border-radius: 6px; }
#login button { font: inherit; padding: 6px 14px; border: 0; border-radius: 6px; background: #1d2433; color: #fff; cursor: pointer; }
.note { color: var(--muted); font-size: 12.5px; }
`;

const SCRIPT = `
(() => {
  'use strict';
  const KEY = 'certgate.admin.token';
  const refreshParam = Number(new URLSearchParams(location.search).get('refresh'));
  const REFRESH_MS = refreshParam > 0 ? refreshParam * 1000 : 5000;
  const $ = (id) => document.getElementById(id);
  let token = sessionStorage.getItem(KEY) || '';
  let timer;

  // Text only: every value goes through textContent, never parsed as markup.
  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function cell(c) { return c !== null && typeof c === 'object' ? c : { text: c }; }
  function table(id, headers, rows) {
    const t = $(id);
    const thead = el('thead');
    const head = el('tr');
    for (const h of headers) head.append(el('th', null, h));
    thead.append(head);
    const tbody = el('tbody');
    if (rows.length === 0) {
      const tr = el('tr');
      const td = el('td', 'empty', 'none yet');
      td.colSpan = headers.length;
      tr.append(td);
      tbody.append(tr);
    }
    for (const row of rows) {
      const tr = el('tr');
      for (const raw of row) {
        const c = cell(raw);
        const td = el('td', c.cls, c.text === undefined || c.text === null ? '' : c.text);
        if (c.title) td.title = c.title;
        tr.append(td);
      }
      tbody.append(tr);
    }
    t.replaceChildren(thead, tbody);
  }
  function list(id, pairs) {
    const dl = $(id);
    const items = [];
    for (const [k, v] of pairs) items.push(el('dt', null, k), el('dd', null, v));
    dl.replaceChildren(...items);
  }
  function when(iso) { return iso ? iso.replace('T', ' ').slice(0, 19) + 'Z' : ''; }
  function ago(iso, nowIso) {
    const s = Math.max(0, Math.round((Date.parse(nowIso) - Date.parse(iso)) / 1000));
    return s < 90 ? s + ' s ago' : s < 5400 ? Math.round(s / 60) + ' min ago' : Math.round(s / 3600) + ' h ago';
  }
  function level(d) { return d < 3 ? 'crit' : d < 14 ? 'warn' : 'ok'; }
  function days(d) {
    if (d === null || d === undefined) return { text: 'never', cls: 'days ok' };
    return { text: d < 0 ? 'expired' : d + ' d', cls: 'days ' + level(d) };
  }
  function daysUntil(iso, nowIso) { return Math.floor((Date.parse(iso) - Date.parse(nowIso)) / 86400000); }
  function perS(n) { return n.toFixed(2) + ' /s'; }
  const STATE = { ok: 'ok', idle: 'idle', degraded: 'warn', failing: 'crit' };

  function render(s, clients) {
    $('version').textContent = 'v' + s.version + ' · pid ' + s.pid;
    const state = $('state');
    state.textContent = s.ready ? 'ready' : 'not ready';
    state.className = 'badge ' + (s.ready ? 'ok' : 'crit');
    $('updated').textContent = 'updated ' + when(s.now) + ' · refresh every ' + REFRESH_MS / 1000 + ' s';
    list('listener', [
      ['URL', s.listener.url || '(not listening)'],
      ['client certificates', s.listener.client_auth],
      ['minimum TLS', s.listener.min_version],
      ['open connections', s.listener.connections_open],
      ['requests in flight', s.listener.requests_in_flight],
      ['uptime', Math.floor(s.uptime_s / 3600) + ' h ' + Math.floor((s.uptime_s % 3600) / 60) + ' min'],
      ['admin token', s.admin.auth ? 'required' : 'not set (loopback only?)'],
    ].concat(s.config ? [
      ['config generation', s.config.generation + ' · sha256 ' + String(s.config.sha256 || '').slice(0, 12)],
      ['restart to apply', s.config.restart_to_apply.length > 0 ? s.config.restart_to_apply.join(', ') : '—'],
      ['last config failure', s.config.last_failure ? when(s.config.last_failure.time) + ' ' + s.config.last_failure.problems.map((p) => (p.file || '') + (p.line ? ':' + p.line : '') + ': ' + p.message).join('; ') : '—'],
    ] : []));
    list('rates', [
      ['requests', perS(s.rates.requests_per_s) + '  (' + s.totals.requests + ' total)'],
      ['refusals', perS(s.rates.refusals_per_s)],
      ['handshake errors', perS(s.rates.handshake_errors_per_s)],
      ['upstream errors', perS(s.rates.upstream_errors_per_s) + '  (' + s.totals.upstream_errors + ' total)'],
      ['connections rejected (limits, PROXY protocol)', s.totals.connections_rejected],
      ['rate window', s.rates.window_s + ' s'],
    ]);
    table('routes', ['route', 'match', 'upstream', 'state', 'requests', 'upstream errors', 'errors by kind'], s.routes.map((r) => [
      r.name, (r.host || '*') + ' ' + r.path_prefix, { text: r.upstream, cls: 'mono' }, { text: r.state, cls: 'state ' + STATE[r.state] },
      perS(r.requests_per_s), perS(r.upstream_errors_per_s),
      Object.entries(r.upstream_errors_by_kind).map(([k, v]) => k + ': ' + v).join(', ') || '—',
    ]));
    table('certs', ['kind', 'subject', 'issuer', 'serial', 'not after', 'days left'], s.certificates.map((c) => [
      c.kind.replace('_', ' '), { text: c.subject, cls: 'dn' }, { text: c.issuer, cls: 'dn' }, { text: c.serial, cls: 'mono' },
      when(c.not_after), days(c.days_left),
    ]));
    table('crls', ['issuer', 'next update', 'days left'], s.crls.map((c) => [
      { text: c.issuer, cls: 'dn' }, c.next_update ? when(c.next_update) : 'never', days(c.days_left),
    ]));
    table('reloads', ['time', 'trigger', 'file', 'result', 'detail'], s.reloads.map((r) => [
      when(r.time), r.trigger, { text: r.file, cls: 'mono' }, { text: r.result, cls: 'result ' + (r.result === 'success' ? 'ok' : 'crit') },
      r.result === 'success' ? (r.serial ? 'serving serial ' + r.serial : (r.message || '')) : [r.code, r.message].filter(Boolean).join(': '),
    ]));
    table('refusals', ['reason', 'count'], Object.entries(s.totals.refusals).filter(([, n]) => n > 0).sort((a, b) => b[1] - a[1]).map(([k, n]) => [k, n]));
    table('clients', ['subject', 'SAN URI', 'issuer', 'not after', 'days left', 'first seen', 'last seen', 'requests', 'last route', 'last refusal'], clients.map((c) => [
      { text: c.subject, cls: 'dn', title: 'SHA-256 ' + c.fingerprint }, { text: c.san_uri.join(', '), cls: 'mono' }, { text: c.issuer, cls: 'dn' },
      when(c.not_after), days(daysUntil(c.not_after, s.now)), when(c.first_seen), ago(c.last_seen, s.now), c.requests,
      c.last_route || '', c.last_refusal ? { text: c.last_refusal, cls: 'crit' } : '',
    ]));
  }

  async function get(path) {
    const res = await fetch(path, { headers: token ? { authorization: 'Bearer ' + token } : {}, cache: 'no-store' });
    if (res.status === 401) {
      const e = new Error('the admin token is required');
      e.unauthorized = true;
      throw e;
    }
    if (!res.ok) throw new Error(path + ': HTTP ' + res.status);
    return res.json();
  }

  function showLogin(message) {
    $('main').hidden = true;
    $('login').hidden = false;
    $('login-error').textContent = message;
    $('token').focus();
  }

  async function refresh() {
    clearTimeout(timer);
    try {
      const [status, clients] = await Promise.all([get('status.json'), get('clients')]);
      render(status, clients.clients);
      $('login').hidden = true;
      $('main').hidden = false;
      $('error').hidden = true;
      document.body.dataset.loaded = 'true';
    } catch (e) {
      if (e.unauthorized) {
        showLogin(token ? 'That token was not accepted.' : '');
        return;
      }
      $('error').textContent = 'Could not refresh: ' + e.message + ' (retrying)';
      $('error').hidden = false;
    }
    timer = setTimeout(refresh, REFRESH_MS);
  }

  $('login-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    token = $('token').value.trim();
    sessionStorage.setItem(KEY, token);
    void refresh();
  });
  void refresh();
})();
`;

const BODY = `<header>
  <h1>certgate</h1><span class="meta" id="version"></span><span id="state" class="badge idle">loading</span><span class="meta" id="updated"></span>
</header>
<div id="error" class="banner" role="alert" hidden></div>
<section id="login" hidden>
  <h2>Admin token</h2>
  <form id="login-form">
    <label for="token">Bearer token (admin.token_file)</label>
    <input id="token" name="token" type="password" autocomplete="current-password" required>
    <button type="submit">Show status</button>
  </form>
  <p class="note crit" id="login-error"></p>
  <p class="note">The token is kept in this tab only (sessionStorage) and sent as an Authorization header.</p>
</section>
<main id="main" hidden>
  <section class="cards">
    <div class="card"><h2>Listener</h2><dl id="listener"></dl></div>
    <div class="card"><h2>Traffic (last minute)</h2><dl id="rates"></dl></div>
  </section>
  <h2>Routes and upstreams</h2><table id="routes"></table>
  <h2>Certificates (server chain and client CAs)</h2><table id="certs"></table>
  <h2>Revocation lists</h2><table id="crls"></table>
  <h2>Reloads (last 20)</h2><table id="reloads"></table>
  <h2>Refusals since start</h2><table id="refusals"></table>
  <h2>Recent clients (soonest-expiring first)</h2><table id="clients"></table>
</main>`;

const hash = (text: string): string => `'sha256-${createHash('sha256').update(text, 'utf8').digest('base64')}'`;

/** The page, byte for byte (served with STATUS_PAGE_HEADERS). */
export const STATUS_PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>certgate status</title>
<style>${STYLE}</style>
</head>
<body>
${BODY}
<script>${SCRIPT}</script>
</body>
</html>
`;

/** Only this page's own script and style may run; requests only to this origin; no framing. */
export const STATUS_PAGE_CSP = [
  "default-src 'none'", `script-src ${hash(SCRIPT)}`, `style-src ${hash(STYLE)}`, "connect-src 'self'", "img-src 'self'",
  "base-uri 'none'", "form-action 'none'", "frame-ancestors 'none'",
].join('; ');

export const STATUS_PAGE_HEADERS: Readonly<Record<string, string>> = {
  'content-type': 'text/html; charset=utf-8',
  'content-security-policy': STATUS_PAGE_CSP,
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-store',
};
