/**
 * The admit step (proxy/admit.ts) on a plain object as the request view: the steps need no node:http
 * message, which is what lets an HTTP/2 stream go through them. The order is the pipeline's: path → host
 * → whoami_path → route → policy → guards, the first refusal wins.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import type { IncomingHttpHeaders } from 'node:http';
import type { RouteConfig } from '../../dist/config/types.js';
import type { ClientIdentity } from '../../dist/identity/types.js';
import { admitRequest, type AdmitResult, type Admitted, type Refusal } from '../../dist/proxy/admit.js';
import { createWhoamiEndpoint } from '../../dist/proxy/whoami-endpoint.js';
import type { Generation } from '../../dist/proxy/generation.js';
import { createRouter } from '../../dist/proxy/routes.js';
import { compileAllow } from '../../dist/proxy/policy.js';

const CLIENT: ClientIdentity = {
  subject: 'CN=client', issuer: 'CN=ca', subjectCn: ['client'], subjectOu: [], fingerprint: 'a'.repeat(64), serial: '01',
  notBefore: new Date(0), notAfter: new Date(8.64e15), san: { uri: [], dns: [], email: [], ip: [] }, der: Buffer.alloc(0), chain: [],
};

const ROUTES: RouteConfig[] = [
  { name: 'admin', path_prefix: '/admin', upstream: new URL('http://127.0.0.1:1'), timeout_ms: 1000, allow: { subject_cn: ['operator'] } },
  { name: 'upload', path_prefix: '/upload', upstream: new URL('http://127.0.0.1:1'), timeout_ms: 1000, max_body_bytes: 10 },
  { name: 'api', path_prefix: '/api', upstream: new URL('http://127.0.0.1:1'), timeout_ms: 1000 },
];

/** The parts of a generation admit reads; the rest is never touched. */
const GEN = {
  match: createRouter(ROUTES), policies: new Map(ROUTES.map((r) => [r.name, compileAllow(r.allow)] as const)), strictPaths: true, verboseErrors: false,
} as unknown as Generation;

function view(url: string, headers: IncomingHttpHeaders = { host: 'example.com' }, more: { method?: string; httpVersion?: string; rawHeaders?: string[] } = {}) {
  return {
    method: more.method ?? 'GET', url, httpVersion: more.httpVersion ?? '1.1', headers,
    rawHeaders: more.rawHeaders ?? Object.entries(headers).flatMap(([k, v]) => [k, String(v)]), socket: {} as Socket,
  };
}

function refusal(a: AdmitResult): Refusal {
  assert.ok('status' in a, 'expected a refusal');
  return a;
}

function admitted(a: AdmitResult): Admitted {
  assert.ok(!('status' in a) && !('whoami' in a), 'expected a route');
  return a;
}

/** GEN with whoami_path at `path` (the endpoint's answer is not called here: admit only decides). */
function withWhoami(path: string, strictPaths = true): Generation {
  const whoami = createWhoamiEndpoint({
    path, match: GEN.match, policies: GEN.policies, verbose: false, sent: new Set(), upstreamHeaders: (req) => req.headers,
  });
  return { ...GEN, whoami, strictPaths } as Generation;
}

describe('admitRequest', () => {
  it('admits a matching route with the identity', () => {
    const a = admitted(admitRequest(view('/api/x'), CLIENT, GEN));
    assert.equal(a.route.name, 'api');
    assert.equal(a.identity, CLIENT);
  });

  it('refuses in order: path, then host, then route, then policy, then guards', () => {
    // A bad path wins over a bad Host.
    const path = refusal(admitRequest(view('/a/../../x', { host: 'a:1:2' }), CLIENT, GEN));
    assert.deepEqual([path.step, path.status, path.body.reason], ['path', 400, 'dot_segment_escape']);
    const host = refusal(admitRequest(view('/nowhere', { host: 'a:1:2' }), CLIENT, GEN));
    assert.deepEqual([host.step, host.status, host.body.reason], ['host', 400, 'invalid_host']);
    const route = refusal(admitRequest(view('/nowhere'), CLIENT, GEN));
    assert.deepEqual([route.step, route.status, route.body.error], ['route', 404, 'no_route']);
    const policy = refusal(admitRequest(view('/admin', { host: 'example.com', 'content-length': '99' }), CLIENT, GEN));
    assert.deepEqual([policy.step, policy.status, policy.body.error, policy.route], ['policy', 403, 'forbidden', 'admin']);
    const guard = refusal(admitRequest(view('/upload', { host: 'example.com', 'content-length': '11' }, { method: 'POST' }), CLIENT, GEN));
    assert.deepEqual([guard.step, guard.status, guard.body.error, guard.route], ['guard', 413, 'body_too_large', 'upload']);
  });

  it('host: one Host line, and HTTP/1.0 may leave it out', () => {
    const two = refusal(admitRequest(view('/api', { host: 'example.com' }, { rawHeaders: ['Host', 'example.com', 'host', 'other.com'] }), CLIENT, GEN));
    assert.equal(two.body.reason, 'duplicate_host');
    assert.equal(refusal(admitRequest(view('/api', {}), CLIENT, GEN)).body.reason, 'missing_host');
    assert.ok(!('status' in admitRequest(view('/api', {}, { httpVersion: '1.0' }), CLIENT, GEN)));
  });

  it('whoami_path is a step after path and host: the same refusals as any other path, then certgate\'s own answer before any route', () => {
    const gen = withWhoami('/admin/whoami');
    // Under /admin, whose allow list refuses CLIENT: no route, policy or guard applies to whoami.
    const asked = admitRequest(view('/admin/whoami?path=/api', { host: 'example.com', 'content-length': '99' }), CLIENT, gen);
    assert.ok('whoami' in asked, 'whoami_path answered by certgate');
    assert.equal(asked.identity, CLIENT);
    const anonymous = admitRequest(view('/admin/whoami'), undefined, gen);
    assert.ok('whoami' in anonymous && anonymous.identity === undefined, 'an anonymous client reaches whoami, which tells it it needs a certificate');
    const host = refusal(admitRequest(view('/admin/whoami', { host: 'admin.example.com:1:2' }), CLIENT, gen));
    assert.deepEqual([host.step, host.body.reason], ['host', 'invalid_host']);
    assert.equal(refusal(admitRequest(view('/admin/whoami', {}), CLIENT, gen)).body.reason, 'missing_host');
    // A whoami_path that strict_paths refuses is never answered (config/load.ts refuses such a whoami_path).
    const strict = refusal(admitRequest(view('/who.'), CLIENT, withWhoami('/who.')));
    assert.deepEqual([strict.step, strict.body.reason], ['path', 'trailing_dot_or_space']);
    assert.ok('whoami' in admitRequest(view('/who.'), CLIENT, withWhoami('/who.', false)), 'strict_paths: false lets it through');
    // Only the exact path: a longer one is routed.
    assert.equal(admitted(admitRequest(view('/api/whoami'), CLIENT, withWhoami('/api'))).route.name, 'api');
  });

  it('policy: no certificate on a route with an allow list is 400 client_certificate_required', () => {
    const r = refusal(admitRequest(view('/admin'), undefined, GEN));
    assert.deepEqual([r.step, r.status, r.body.error], ['policy', 400, 'client_certificate_required']);
  });

  it('guards: a chunked DELETE without Content-Length is 411', () => {
    const r = refusal(admitRequest(view('/api', { host: 'example.com', 'transfer-encoding': 'chunked' }, { method: 'DELETE' }), CLIENT, GEN));
    assert.deepEqual([r.step, r.status, r.body.error], ['guard', 411, 'length_required']);
  });
});
