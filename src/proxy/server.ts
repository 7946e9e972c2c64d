/**
 * The TLS listener: a Node https.Server that asks every client for a certificate, accepts every
 * handshake (rejectUnauthorized: false) and leaves the decision to verdict.ts, so a refused client is
 * told why over HTTP instead of getting a bare reset. Refusals are counted and logged once per connection.
 */
import https from 'node:https';
import type { TLSSocket } from 'node:tls';
import type { Config } from '../config/types.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../admin/metrics.js';
import type { TlsMaterial } from '../tls/material.js';
import { tlsClientErrorReason } from '../tls/handshake.js';
import { secureContextOptions } from '../tls/context.js';
import { connectionVerdict, type VerdictContext } from './verdict.js';
import type { RequestHandlers } from './handler.js';

export function createTlsServer(
  config: Config, material: TlsMaterial, verdictContext: VerdictContext, handlers: RequestHandlers, metrics: Metrics, log: Logger,
): https.Server {
  const server = https.createServer({
    ...secureContextOptions(material, config.tls),
    requestCert: true,
    rejectUnauthorized: false,
    // http/1.0 too: a client offering only it would otherwise get a bare no_application_protocol alert.
    ALPNProtocols: ['http/1.1', 'http/1.0'],
    handshakeTimeout: 10_000,
  });
  server.on('request', handlers.onRequest);
  server.on('upgrade', handlers.onUpgrade);

  server.on('secureConnection', (socket: TLSSocket) => {
    // The identity is computed once per connection: a renegotiation must not swap the certificate under it.
    socket.disableRenegotiation();
    metrics.connectionsOpen.inc();
    socket.once('close', () => metrics.connectionsOpen.dec());
    metrics.handshakes.inc({ version: socket.getProtocol() ?? 'unknown', resumed: String(socket.isSessionReused()) });
    const verdict = connectionVerdict(socket, verdictContext);
    if (verdict.kind === 'refused') {
      metrics.handshakeFailures.inc({ reason: verdict.reason });
      log.warn({
        msg: 'client certificate refused', reason: verdict.reason, detail: verdict.detail,
        remote_address: socket.remoteAddress, client_subject: verdict.identity?.subject,
        client_issuer: verdict.identity?.issuer, client_fingerprint: verdict.identity?.fingerprint,
      });
    }
  });

  server.on('tlsClientError', (err: NodeJS.ErrnoException, socket: TLSSocket) => {
    const reason = tlsClientErrorReason(err, socket);
    metrics.handshakeFailures.inc({ reason });
    // Port scanners and health checkers abort handshakes all day: debug, not warn.
    const level = reason === 'aborted' || reason === 'protocol' ? 'debug' : 'warn';
    log[level]({ msg: 'TLS handshake failed', reason, code: err.code, remote_address: socket.remoteAddress });
  });

  server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
    // Malformed HTTP after the handshake (Node's strict parser): answer 400 and close; never crash.
    if (socket.writable && (err.code === 'HPE_HEADER_OVERFLOW' || err.code?.startsWith('HPE_'))) {
      const status = err.code === 'HPE_HEADER_OVERFLOW' ? 431 : 400;
      const body = JSON.stringify({ error: status === 431 ? 'headers_too_large' : 'bad_request', reason: err.code });
      socket.end(`HTTP/1.1 ${status} ${status === 431 ? 'Request Header Fields Too Large' : 'Bad Request'}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
    } else {
      socket.destroy();
    }
    log.debug({ msg: 'malformed request', code: err.code });
  });
  return server;
}
