/**
 * HTTP/2 and gRPC's pure pieces (issue 16): the stream's request view (proxy/http2.ts h2ViewHeaders), the
 * admit step's HTTP/2 rules (Host ≠ :authority, gRPC to an http1 route), the gRPC mapping of certgate's
 * refusals (grpc.ts) and the protocol label.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import type { RouteConfig } from '../../dist/config/types.js';
import { admitRequest, authorityMismatch, type Refusal } from '../../dist/proxy/admit.js';
import type { Generation } from '../../dist/proxy/generation.js';
import { createRouter } from '../../dist/proxy/routes.js';
import { compileAllow } from '../../dist/proxy/policy.js';
import { h2ViewHeaders, ResetBucket, RESET_BURST } from '../../dist/proxy/http2.js';
import { grpcMessageFor, grpcPercentEncode, grpcStatusFor, isGrpcContentType } from '../../dist/respond.js';
import { protocolLabel } from '../../dist/proxy/telemetry.js';
import { prepareHeaders } from '../../dist/proxy/request-headers.js';
import { compileDialect } from '../../dist/identity/dialect.js';

const ROUTES: RouteConfig[] = [
  { name: 'grpc', path_prefix: '/demo.Demo', upstream: new URL('http://127.0.0.1:1'), timeout_ms: 1000, upstream_protocol: 'h2c' },
  { name: 'legacy', path_prefix: '/', upstream: new URL('http://127.0.0.1:1'), timeout_ms: 1000 },
];
const GEN = {
  match: createRouter(ROUTES), policies: new Map(ROUTES.map((r) => [r.name, compileAllow(r.allow)] as const)), strictPaths: true, verboseErrors: false,
} as unknown as Generation;

function h2view(path: string, raw: string[]) {
  const pairs: Record<string, string> = {};
  for (let i = 0; i < raw.length; i += 2) pairs[raw[i]!] = raw[i + 1]!;
  const { headers } = h2ViewHeaders(pairs);
  return { method: pairs[':method'] ?? 'POST', url: path, httpVersion: '2.0', headers, rawHeaders: raw, socket: {} as Socket };
}

describe('the HTTP/2 request view', () => {
  it('drops pseudo-headers; :authority stands as Host when the client sent none', () => {
    const { headers, authority } = h2ViewHeaders({ ':method': 'GET', ':path': '/x', ':scheme': 'https', ':authority': 'api.example.com:8443', accept: '*/*' });
    assert.deepEqual(headers, { accept: '*/*', host: 'api.example.com:8443' });
    assert.equal(authority, 'api.example.com:8443');
  });

  it('keeps a Host the client sent (admit compares it with :authority)', () => {
    assert.equal(h2ViewHeaders({ ':authority': 'a.example', host: 'a.example' }).headers.host, 'a.example');
  });
});

describe('admit on HTTP/2', () => {
  it('Host ≠ :authority → 400 authority_mismatch (RFC 9113 §8.3.1); equal, any case, is fine', () => {
    assert.equal(authorityMismatch([':authority', 'a.example', 'host', 'b.example']), true);
    assert.equal(authorityMismatch([':authority', 'a.example', 'Host', 'A.EXAMPLE']), false);
    assert.equal(authorityMismatch([':authority', 'a.example']), false);
    assert.equal(authorityMismatch(['host', 'a.example']), false);
    const r = admitRequest(h2view('/x', [':method', 'GET', ':authority', 'a.example', 'host', 'admin.example']), undefined, GEN) as Refusal;
    assert.equal(r.status, 400);
    assert.equal(r.body.reason, 'authority_mismatch');
  });

  it(':authority is validated like Host → 400 invalid_host', () => {
    const r = admitRequest(h2view('/x', [':method', 'GET', ':authority', 'admin.example.com:1:2']), undefined, GEN) as Refusal;
    assert.equal(r.body.reason, 'invalid_host');
  });

  it('gRPC to an upstream_protocol http1 route → 502 upstream_protocol naming the route; to an h2c route admitted', () => {
    const grpc = ['content-type', 'application/grpc'];
    const r = admitRequest(h2view('/other.Svc/M', [':authority', 'a.example', ...grpc]), undefined, GEN) as Refusal;
    assert.equal(r.status, 502);
    assert.equal(r.body.error, 'upstream_protocol');
    assert.match(String(r.body.message), /route legacy .*upstream_protocol: http1/);
    const ok = admitRequest(h2view('/demo.Demo/M', [':authority', 'a.example', ...grpc]), undefined, GEN);
    assert.ok(!('status' in ok));
  });
});

describe('headers toward the upstream', () => {
  it('te: trailers goes on to an HTTP/2 upstream only; other te values never', () => {
    const opts = compileDialect({ preset: 'certgate', names: {}, xfcc: false, forward_cert: false, rfc9440: false, spiffe_id: false, tls_info: false, pass_through: [] });
    const to = (te: string, h2: boolean) => {
      const req = { headers: { host: 'a', te } as Record<string, string>, socket: { remoteAddress: '127.0.0.1' } as Socket };
      prepareHeaders(req, undefined, false, opts, h2);
      return req.headers.te;
    };
    assert.equal(to('trailers', true), 'trailers');
    assert.equal(to('trailers', false), undefined);
    assert.equal(to('gzip', true), undefined);
  });
});

describe('gRPC answers for certgate\'s refusals', () => {
  it('recognises application/grpc, +proto, ;params; not grpc-web or others', () => {
    for (const v of ['application/grpc', 'application/grpc+proto', 'Application/GRPC;charset=x']) assert.equal(isGrpcContentType(v), true, v);
    for (const v of ['application/grpc-web', 'application/grpcx', 'application/json', undefined]) assert.equal(isGrpcContentType(v), false, String(v));
  });

  it('maps refusals as the issue says', () => {
    const cases: [number, string, number][] = [
      [400, 'client_certificate_required', 16], [400, 'client_certificate_invalid', 16], [403, 'forbidden', 7],
      [400, 'bad_request', 3], [404, 'no_route', 12], [413, 'body_too_large', 8], [431, 'headers_too_large', 8],
      [504, 'upstream_timeout', 4], [408, 'request_timeout', 4], [502, 'upstream_unavailable', 14], [421, 'reauthentication_required', 14],
      [502, 'upstream_protocol', 14],
    ];
    for (const [status, error, code] of cases) assert.equal(grpcStatusFor(status, error), code, `${status} ${error}`);
  });

  it('grpc-message is percent-encoded UTF-8 (space and printable ASCII kept, % and the rest encoded)', () => {
    assert.equal(grpcPercentEncode('no route: 100% ü\n'), 'no route: 100%25 %C3%BC%0A');
    assert.equal(grpcMessageFor({ error: 'client_certificate_invalid', reason: 'revoked', message: 'refused' }), 'client_certificate_invalid/revoked: refused');
    assert.equal(grpcMessageFor({ error: 'no_route' }), 'no_route');
  });
});

describe('the protocol label', () => {
  it('http/1.0 | http/1.1 | h2', () => {
    assert.equal(protocolLabel('1.0'), 'http/1.0');
    assert.equal(protocolLabel('1.1'), 'http/1.1');
    assert.equal(protocolLabel('2.0'), 'h2');
  });
});

describe('the Rapid Reset cap (ResetBucket)', () => {
  it('allows RESET_BURST resets at once, refills RESET_RATE per second', () => {
    const b = new ResetBucket(0);
    for (let i = 0; i < RESET_BURST; i++) assert.equal(b.take(0), false, `reset ${i + 1}`);
    assert.equal(b.take(0), true, 'one more at the same instant is past the cap');
    const later = new ResetBucket(0);
    for (let i = 0; i < RESET_BURST; i++) later.take(0);
    assert.equal(later.take(1000), false, 'a second later the bucket has refilled');
  });
});
