/**
 * The TLS connector of an `upstream_protocol: h2` route (upstreams.ts): HTTP/2 over TLS or nothing.
 * undici's own connector offers ALPN `http/1.1, h2` and, when the upstream picks http/1.1 (or ignores ALPN),
 * speaks HTTP/1.1 to it: a route declared h2 — gRPC above all, which needs HTTP/2's trailers — would be
 * downgraded without a word. This one offers `h2` alone and hands undici only a socket that negotiated it;
 * anything else fails the connection with CERTGATE_UPSTREAM_NOT_H2, whose message names the route, what was
 * configured and what the upstream answered (upstream-error.ts turns it into 502 upstream_protocol,
 * grpc-status 14 for a gRPC call). Measured on Node 20, 24 and 26: a server with ALPN but without h2 (Node's
 * https, nginx ≥ 1.21.4) ends the handshake with a no_application_protocol alert; one without ALPN completes
 * it with nothing selected.
 *
 * What undici's connector does besides, kept: certificate verification (upstream_ca, else Node's CAs) against
 * the URL's host name, the connect timeout (undici's code, so it is a 504 like any other), TCP keep-alive and
 * no Nagle. Not kept: its TLS session cache (HTTP/2 upstream connections are few and long-lived).
 */
import tls from 'node:tls';
import type { buildConnector } from 'undici';
import type { RouteConfig } from '../config/types.js';

/** The code of a connection refused because the upstream did not negotiate h2. */
export const UPSTREAM_NOT_H2 = 'CERTGATE_UPSTREAM_NOT_H2';

/** A connection to an h2 route's upstream that is not HTTP/2 (the route travels with it for the answer). */
export interface UpstreamNotH2 extends Error {
  readonly code: typeof UPSTREAM_NOT_H2;
  readonly route: string;
}

/**
 * Why a route's upstream is not HTTP/2, in words: `selected` is the socket's alpnProtocol (false: nothing
 * selected), `alert` true when the upstream refused the offer with no_application_protocol. Pure.
 */
export function notH2Message(route: RouteConfig, selected: string | false | null, alert: boolean): string {
  const answered = alert
    ? 'refused the ALPN offer h2 with a no_application_protocol alert (it offers only other protocols, such as http/1.1)'
    : selected === false || selected === null
      ? 'selected no protocol in ALPN (offered: h2), so it speaks HTTP/1.1 only'
      : `selected ${selected} in ALPN (offered: h2)`;
  return `route ${route.name} is configured with upstream_protocol: h2, but its upstream ${route.upstream.origin} ${answered}; `
    + 'turn HTTP/2 on at the upstream, or set upstream_protocol: http1 (gRPC needs h2 or h2c)';
}

function notH2(route: RouteConfig, message: string): UpstreamNotH2 {
  return Object.assign(new Error(message), { code: UPSTREAM_NOT_H2, route: route.name }) as UpstreamNotH2;
}

/** The alert an ALPN-aware server without h2 answers with (OpenSSL's reason, in Node's code). */
const NO_APPLICATION_PROTOCOL = 'ERR_SSL_TLSV1_ALERT_NO_APPLICATION_PROTOCOL';

/**
 * The connector for `route` (an https:// upstream): `sni` is the URL's host name, undefined for an IP
 * (RFC 6066), whatever servername undici passes.
 */
export function h2OnlyConnector(route: RouteConfig, ca: Buffer | undefined, sni: string | undefined, timeout: number): buildConnector.connector {
  return ({ hostname, port }, callback) => {
    const socket = tls.connect({
      host: hostname, port: Number(port) || 443, servername: sni, ...(ca !== undefined && { ca }), rejectUnauthorized: true,
      ALPNProtocols: ['h2'],
    });
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 60_000);
    let done = false;
    const finish = (err: Error | null): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (err === null) {
        callback(null, socket);
        return;
      }
      socket.destroy();
      callback(err, null);
    };
    const timer = setTimeout(() => {
      finish(Object.assign(new Error(`connecting to ${hostname}:${port} timed out after ${timeout} ms`), { code: 'UND_ERR_CONNECT_TIMEOUT' }));
    }, timeout);
    socket.once('secureConnect', () => {
      finish(socket.alpnProtocol === 'h2' ? null : notH2(route, notH2Message(route, socket.alpnProtocol, false)));
    });
    socket.on('error', (err: NodeJS.ErrnoException) => {
      finish(err.code === NO_APPLICATION_PROTOCOL ? notH2(route, notH2Message(route, false, true)) : err);
    });
    return socket;
  };
}
