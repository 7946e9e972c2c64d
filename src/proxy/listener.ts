/**
 * The TLS listener, node:http's transport for the pipeline (pipeline.ts): a Node https.Server that asks
 * every client for a certificate, accepts every handshake (rejectUnauthorized: false) and leaves the
 * decision to the pipeline's verdict, so a refused client is told why over HTTP instead of getting a bare
 * reset. Refusals are counted and logged once per connection. Its options (limits.*) are fixed for the
 * life of the listener.
 */
import https from 'node:https';
import type { TLSSocket } from 'node:tls';
import type { LimitsConfig, ProxyProtocolConfig, TlsConfig } from '../config/types.js';
import { createLogLimiter, type Logger } from '../log.js';
import type { ProxyMetrics } from './metrics.js';
import type { TlsMaterial } from '../tls/material.js';
import { tlsClientErrorReason } from '../tls/handshake.js';
import { secureContextOptions, type SessionTickets } from '../tls/context.js';
import { sendErrorOnSocket } from '../respond.js';
import type { Pipeline } from './pipeline.js';
import { attachHttp2, type Http2Options, type Http2Sessions } from './http2.js';
import { installProxyProtocolGate, type ProxyProtocolGate } from './proxy-protocol-gate.js';
import { clientAddressOf } from './client-address.js';

export interface ListenerOptions {
  readonly limits: LimitsConfig;
  /** Offer HTTP/2 (ALPN h2) beside HTTP/1.1 (http2.ts). */
  readonly http2: boolean;
  /** proxy_protocol: which peers must (and only they may) send a PROXY header first (proxy-protocol-gate.ts). */
  readonly proxyProtocol: ProxyProtocolConfig | undefined;
  readonly tls: TlsConfig;
  /** The material serving the first handshakes (the reloader's current). */
  readonly material: TlsMaterial;
  readonly tickets: SessionTickets;
  readonly pipeline: Pipeline;
  readonly metrics: ProxyMetrics;
  readonly log: Logger;
}

/** The TLS listener; `http2`: its HTTP/2 sessions (undefined when `http2: false`). */
export interface Listener {
  readonly server: https.Server;
  readonly http2: Http2Sessions | undefined;
  /** The PROXY protocol gate in front of TLS: proxy_protocol is applied live through it. */
  readonly proxyProtocol: ProxyProtocolGate;
}

export function createListener(opts: ListenerOptions): Listener {
  const { limits, pipeline, metrics, log } = opts;
  const server = https.createServer({
    ...secureContextOptions(opts.material, opts.tls, opts.tickets),
    requestCert: true,
    rejectUnauthorized: false,
    // http/1.0 too: a client offering only it would otherwise get a bare no_application_protocol alert.
    // h2 first: a client offering both gets HTTP/2 (http2.ts); node:http keeps the rest.
    ALPNProtocols: opts.http2 ? ['h2', 'http/1.1', 'http/1.0'] : ['http/1.1', 'http/1.0'],
    // A missing Host gets certgate's JSON 400 (admit.ts), not Node's bare one.
    requireHostHeader: false,
    handshakeTimeout: limits.handshake_timeout_ms,
    maxHeaderSize: limits.max_header_bytes,
    headersTimeout: limits.header_timeout_ms,
    requestTimeout: limits.request_timeout_ms,
    keepAliveTimeout: limits.keepalive_timeout_ms,
    // Node checks header/request timeouts on this interval (default 30 s): without it a slowloris client
    // outlives header_timeout_ms by up to 30 s.
    connectionsCheckingInterval: Math.max(50, Math.min(limits.header_timeout_ms, limits.request_timeout_ms, 1000) / 4),
  });
  // Beyond max_connections Node closes new connections right after accept and emits 'drop'.
  server.maxConnections = limits.max_connections;
  server.on('drop', () => metrics.connectionsRejected.inc({ reason: 'max_connections' }));
  if (limits.max_requests_per_connection > 0) server.maxRequestsPerSocket = limits.max_requests_per_connection;
  // Before TLS: the client address of every connection (the PROXY header's, from a trusted balancer).
  const proxyProtocol = installProxyProtocolGate(server, { config: opts.proxyProtocol, timeoutMs: limits.handshake_timeout_ms, metrics, log });
  server.on('request', pipeline.request);
  const h2 = opts.http2
    ? attachHttp2(server, {
      limits, metrics, log, request: pipeline.request as unknown as Http2Options['request'], refuse: pipeline.refuse as unknown as Http2Options['refuse'],
    })
    : undefined;
  server.on('upgrade', pipeline.upgrade);
  // A flood of failing handshakes must not fill the disk: per reason, 10 lines a minute, then a summary
  // line counting the rest (metrics still count every one). Pending summaries are written on close.
  const refusalLog = createLogLimiter(log, { msg: 'TLS handshake failures suppressed', field: 'reason' });
  server.once('close', () => refusalLog.close());

  server.on('secureConnection', (socket: TLSSocket) => {
    // The identity is computed once per connection: a renegotiation must not swap the certificate under it.
    socket.disableRenegotiation();
    metrics.connectionsOpen.inc();
    socket.once('close', () => metrics.connectionsOpen.dec());
    metrics.handshakes.inc({ version: socket.getProtocol() ?? 'unknown', resumed: String(socket.isSessionReused()) });
    const verdict = pipeline.connection(socket);
    if (verdict.kind === 'refused') {
      metrics.handshakeFailures.inc({ reason: verdict.reason });
      refusalLog.write('warn', verdict.reason, {
        msg: 'client certificate refused', reason: verdict.reason, detail: verdict.detail,
        remote_address: clientAddressOf(socket).address, client_subject: verdict.identity?.subject,
        client_issuer: verdict.identity?.issuer, client_fingerprint: verdict.identity?.fingerprint,
      });
    }
  });

  server.on('tlsClientError', (err: NodeJS.ErrnoException, socket: TLSSocket) => {
    // Plain HTTP, or a plain proxy CONNECT, sent to the TLS port.
    if (err.code === 'ERR_SSL_HTTP_REQUEST' || err.code === 'ERR_SSL_HTTPS_PROXY_REQUEST') answerPlainHttp(socket);
    const reason = tlsClientErrorReason(err, socket);
    metrics.handshakeFailures.inc({ reason });
    // Port scanners and health checkers abort handshakes all day: debug, not warn.
    const level = reason === 'aborted' || reason === 'protocol' ? 'debug' : 'warn';
    refusalLog.write(level, reason, { msg: 'TLS handshake failed', reason, code: err.code, remote_address: clientAddressOf(socket).address });
  });

  server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
    // Malformed HTTP after the handshake (Node's strict parser), oversized headers, or a request too slow
    // to arrive: answer in our JSON shape and close; never crash, never forward. The pipeline observes the
    // answer (an access line, the request metrics). A request already answering (_httpMessage) has its own.
    const answer = clientErrorAnswer(err.code);
    if (answer !== undefined && socket.writable && (socket as { _httpMessage?: unknown })._httpMessage == null) {
      pipeline.unparsed(socket as TLSSocket, answer.status, answer.body);
    } else {
      socket.destroy();
    }
    log.debug({ msg: 'malformed or slow request', code: err.code, remote_address: clientAddressOf(socket).address });
  });
  return { server, http2: h2, proxyProtocol };
}

function clientErrorAnswer(code: string | undefined): { status: number; body: { error: string; reason?: string } } | undefined {
  if (code === 'HPE_HEADER_OVERFLOW') return { status: 431, body: { error: 'headers_too_large' } };
  if (code === 'ERR_HTTP_REQUEST_TIMEOUT') return { status: 408, body: { error: 'request_timeout' } };
  if (code?.startsWith('HPE_')) return { status: 400, body: { error: 'bad_request', reason: code } };
  return undefined;
}

/**
 * Plain HTTP sent to the TLS port: OpenSSL stops at the first bytes; the raw TCP socket under the TLS
 * socket is still writable, so the client reads a plain-HTTP answer telling it what to do (as nginx's 497).
 */
function answerPlainHttp(socket: TLSSocket): void {
  const raw = (socket as unknown as { _parent?: import('node:net').Socket })._parent;
  if (raw === undefined || !raw.writable) return;
  sendErrorOnSocket(raw, 400, { error: 'https_required', message: 'this port speaks TLS (mTLS): use https:// with a client certificate' });
}
