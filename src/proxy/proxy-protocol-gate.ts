/**
 * The PROXY protocol (proxy_protocol.trusted) on the TLS listener's accepted TCP sockets, before TLS: the
 * first thing every connection meets. It takes the tls.Server's own 'connection' listener (Node's TLS
 * handshake starter) and calls it only once the connection's client address is settled
 * (client-address.ts); bytes read past the header are put back (`socket.unshift`) and the TLS socket
 * Node builds then reads them first, so a ClientHello sent in the same packet as the header is not lost.
 * Everything else about the listener (max_connections, 'drop', close and drain, HTTP/2 ALPN, cluster
 * workers, which get accepted sockets the same way) is unchanged.
 *
 *   proxy_protocol unset   the peer's address, handed to TLS at once (no byte read here)
 *   peer in trusted        must start with a v1 or v2 header (net/proxy-protocol.ts); its source address
 *                          becomes the client address; v2 LOCAL (a health check) keeps the peer's own;
 *                          no header, a malformed one, or none complete within limits.handshake_timeout_ms:
 *                          closed
 *   any other peer         the first bytes are peeked: a PROXY signature is a spoofing attempt (a client
 *                          naming its own "client address"): closed; anything else goes to TLS untouched
 *
 * The header's time (limits.handshake_timeout_ms from accept) comes before the TLS handshake's own
 * handshake_timeout_ms, which Node starts when it gets the socket: a connection spends at most twice it
 * before its first request.
 *
 * Every close here counts certgate_connections_rejected_total{reason="proxy_protocol"} and is logged
 * (at most 10 lines a minute per problem, then a summary: a flood must not fill the disk). What is held
 * per connection is bounded by net/proxy-protocol.ts (107 bytes for v1, 16 + 4096 for v2, plus one read).
 */
import type { Socket } from 'node:net';
import type tls from 'node:tls';
import type { ProxyProtocolConfig } from '../config/types.js';
import { createLogLimiter, type Logger } from '../log.js';
import { addressMatcher, parseCidr, type Cidr } from '../net/cidr.js';
import { parseProxyHeader, proxySignature } from '../net/proxy-protocol.js';
import { setClientAddress } from './client-address.js';
import type { ProxyMetrics } from './metrics.js';

export interface ProxyProtocolGate {
  /** proxy_protocol after a live reload: connections accepted from now on (open ones are settled). */
  set(config: ProxyProtocolConfig | undefined): void;
  /** Connections still waiting for their header. */
  readonly pending: number;
}

export interface GateOptions {
  readonly config: ProxyProtocolConfig | undefined;
  /** limits.handshake_timeout_ms: the header must be complete within it. */
  readonly timeoutMs: number;
  readonly metrics: Pick<ProxyMetrics, 'connectionsRejected' | 'handshakeFailures'>;
  readonly log: Logger;
}

/** Why a connection was closed here: the log line's `problem`, a fixed set. */
type Problem = 'untrusted_sender' | 'missing' | 'malformed' | 'timeout';

export function installProxyProtocolGate(server: tls.Server, opts: GateOptions): ProxyProtocolGate {
  // Node's TLS 'connection' listener (tlsConnectionListener, registered by the tls.Server constructor).
  const startTls = server.listeners('connection') as ((this: tls.Server, socket: Socket) => void)[];
  server.removeAllListeners('connection');
  let trusted = matcherOf(opts.config);
  let pending = 0;
  const refusals = createLogLimiter(opts.log, { msg: 'PROXY protocol refusals suppressed', field: 'problem' });
  server.once('close', () => refusals.close());
  opts.metrics.connectionsRejected.inc({ reason: 'proxy_protocol' }, 0);

  const handOver = (raw: Socket, rest?: Buffer): void => {
    if (rest !== undefined && rest.length > 0) raw.unshift(rest);
    for (const listener of startTls) listener.call(server, raw);
  };

  const refuse = (raw: Socket, problem: Problem, detail: string): void => {
    opts.metrics.connectionsRejected.inc({ reason: 'proxy_protocol' });
    refusals.write('warn', problem, {
      msg: 'PROXY protocol: connection refused', problem, detail, remote_address: raw.remoteAddress,
    });
    raw.destroy();
  };

  server.on('connection', (raw: Socket) => {
    const peer = raw.remoteAddress;
    if (trusted === undefined) {
      setClientAddress(raw, { address: peer, port: raw.remotePort });
      handOver(raw);
      return;
    }
    if (peer === undefined) {
      // Reset before we got here (Node cannot name the peer of a dead socket; HAProxy's health checks do
      // this all day): nobody to trust or refuse. Counted as the aborted handshake it would have been.
      opts.metrics.handshakeFailures.inc({ reason: 'aborted' });
      raw.destroy();
      return;
    }
    const fromTrusted = trusted(peer);
    let buf: Buffer = Buffer.alloc(0);
    pending += 1;
    const finish = (): void => {
      pending -= 1;
      clearTimeout(timer);
      raw.off('data', onData);
      raw.off('error', onError);
      raw.off('close', onClose);
      raw.pause();
    };
    const onClose = (): void => finish();
    // A reset while the header is awaited: nothing to report beyond the socket's close.
    const onError = (): void => undefined;
    const timer = setTimeout(() => {
      finish();
      if (fromTrusted || buf.length > 0) {
        refuse(raw, 'timeout', `no complete PROXY protocol header within ${opts.timeoutMs} ms (limits.handshake_timeout_ms)`);
      } else {
        // An untrusted peer that sent nothing: the handshake timeout it would have met in TLS.
        opts.metrics.handshakeFailures.inc({ reason: 'timeout' });
        raw.destroy();
      }
    }, opts.timeoutMs);
    const onData = (chunk: Buffer): void => {
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
      if (!fromTrusted) {
        const sig = proxySignature(buf);
        if (sig === 'maybe') return;
        finish();
        if (sig !== 'no') {
          refuse(raw, 'untrusted_sender', `a PROXY protocol ${sig} header from ${peer}, which is not in proxy_protocol.trusted`);
          return;
        }
        setClientAddress(raw, { address: peer, port: raw.remotePort });
        handOver(raw, buf);
        return;
      }
      const header = parseProxyHeader(buf);
      if (header.kind === 'incomplete') return;
      finish();
      if (header.kind === 'invalid') {
        refuse(raw, header.reason.startsWith('no PROXY') ? 'missing' : 'malformed', header.reason);
        return;
      }
      const source = header.source;
      setClientAddress(raw, source === undefined ? { address: peer, port: raw.remotePort } : { address: source.address, port: source.port, via: peer });
      handOver(raw, buf.subarray(header.length));
    };
    raw.on('data', onData);
    raw.on('error', onError);
    raw.on('close', onClose);
  });

  return {
    set(config) {
      trusted = matcherOf(config);
    },
    get pending() {
      return pending;
    },
  };
}

/** proxy_protocol.trusted as a matcher (the config loader has checked every entry). */
function matcherOf(config: ProxyProtocolConfig | undefined): ((address: string | undefined) => boolean) | undefined {
  if (config === undefined) return undefined;
  return addressMatcher(config.trusted.map((t) => parseCidr(t) as Cidr));
}
