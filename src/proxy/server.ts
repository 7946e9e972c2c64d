/**
 * The TLS listener: a Node https.Server that asks every client for a certificate, accepts every
 * handshake (rejectUnauthorized: false) and leaves the decision to verdict.ts, so a refused client is
 * told why over HTTP instead of getting a bare reset. Refusals are counted and logged once per connection.
 */
import https from 'node:https';
import { createHash, hkdfSync, randomBytes } from 'node:crypto';
import type { TLSSocket, SecureContextOptions } from 'node:tls';
import type { Config } from '../config/types.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../admin/metrics.js';
import type { TlsMaterial } from '../tls/material.js';
import { tlsClientErrorReason } from '../tls/handshake.js';
import { connectionVerdict } from './verdict.js';
import type { RequestHandlers } from './handler.js';

/**
 * Forward-secret AEAD suites only (TLS 1.3 suites first); no CBC, no RSA key exchange. TLS 1.0/1.1 are
 * never offered: min_version is TLSv1.2 or TLSv1.3.
 */
export const CIPHERS = [
  'TLS_AES_128_GCM_SHA256', 'TLS_AES_256_GCM_SHA384', 'TLS_CHACHA20_POLY1305_SHA256',
  'ECDHE-ECDSA-AES128-GCM-SHA256', 'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384', 'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305', 'ECDHE-RSA-CHACHA20-POLY1305',
].join(':');

/** Per-process secret the session-ticket keys derive from. */
const ticketSecret = randomBytes(32);

/**
 * The complete secure-context option set for the material. setSecureContext() resets every option
 * that is not passed (except ticketKeys, which are sticky), so the server and every reload use this.
 * Ticket keys derive from the trust material: when client_ca or crl change, old tickets stop resuming,
 * because a resumed session skips certificate verification (a revoked client would get back in).
 */
export function secureContextOptions(material: TlsMaterial, tls: Config['tls']): SecureContextOptions {
  const trust = createHash('sha256').update(material.ca.join('\n')).update('\0').update((material.crl ?? []).join('\n')).digest();
  return {
    key: material.key,
    cert: material.cert,
    ca: [...material.ca],
    ...(material.crl !== undefined && material.crl.length > 0 && { crl: [...material.crl] }),
    ...(material.passphrase !== undefined && { passphrase: material.passphrase }),
    minVersion: tls.min_version,
    maxVersion: 'TLSv1.3',
    ciphers: CIPHERS,
    honorCipherOrder: true,
    ticketKeys: Buffer.from(hkdfSync('sha256', ticketSecret, trust, 'certgate session tickets', 48)),
  };
}

export function createTlsServer(config: Config, material: TlsMaterial, handlers: RequestHandlers, metrics: Metrics, log: Logger): https.Server {
  const needChain = config.headers.rfc9440 || (config.headers.xfcc && config.headers.forward_cert);
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
    const verdict = connectionVerdict(socket, config.tls.client_auth, needChain);
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
