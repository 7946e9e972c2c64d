/**
 * An upstream_protocol: h2 route whose upstream does not negotiate HTTP/2 (upstream-h2.ts): the words of the
 * answer, and how upstream-error.ts classifies it. The connector itself runs against real upstreams in
 * test/e2e/http2.test.ts ("downgrade: ...").
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { notH2Message, UPSTREAM_NOT_H2 } from '../../dist/proxy/upstream-h2.js';
import { classifyUpstreamError, upstreamFailureBody } from '../../dist/proxy/upstream-error.js';
import type { RouteConfig } from '../../dist/config/types.js';

const route: RouteConfig = { name: 'grpc-api', path_prefix: '/', upstream: new URL('https://svc.internal:8443/base'), upstream_protocol: 'h2', timeout_ms: 1000 };

describe('notH2Message', () => {
  it('names the route, the configured protocol, the upstream origin and what it answered', () => {
    const alert = notH2Message(route, false, true);
    assert.match(alert, /^route grpc-api is configured with upstream_protocol: h2, but its upstream https:\/\/svc\.internal:8443 refused the ALPN offer h2 with a no_application_protocol alert/);
    assert.match(notH2Message(route, false, false), /selected no protocol in ALPN \(offered: h2\), so it speaks HTTP\/1\.1 only/);
    assert.match(notH2Message(route, 'http/1.1', false), /selected http\/1\.1 in ALPN \(offered: h2\)/);
    for (const m of [alert, notH2Message(route, false, false)]) assert.match(m, /set upstream_protocol: http1 \(gRPC needs h2 or h2c\)$/);
  });
});

describe('classifyUpstreamError: an upstream that is not HTTP/2', () => {
  it('is a 502 of kind tls answered `upstream_protocol` with the route and the message', () => {
    const err = Object.assign(new Error(notH2Message(route, false, false)), { code: UPSTREAM_NOT_H2, route: 'grpc-api' });
    const failure = classifyUpstreamError(err, false);
    assert.equal(failure.status, 502);
    assert.equal(failure.kind, 'tls');
    assert.deepEqual(upstreamFailureBody(failure), { error: 'upstream_protocol', route: 'grpc-api', kind: 'tls', message: err.message });
  });

  it('leaves other failures their generic answer', () => {
    const failure = classifyUpstreamError(Object.assign(new Error('x'), { code: 'ERR_SSL_TLSV1_ALERT_NO_APPLICATION_PROTOCOL' }), false);
    assert.deepEqual(upstreamFailureBody(failure), { error: 'upstream_unavailable', kind: 'tls', message: 'the upstream could not be reached' });
  });
});
