/**
 * HTTP/2 on the TLS listener (issue 16): one port, both protocols. The https.Server (listener.ts) offers
 * ALPN `h2` beside `http/1.1`; a connection that chose h2 is handed to a node:http2 server (plain
 * `http2.createServer()`, fed the TLS socket) instead of node:http's connection handler. Everything
 * HTTP/1.1 (its limits, timeouts, 408/431 answers, WebSocket upgrades) stays on node:http unchanged, and
 * Node's `allowHTTP1` (which ignores node:http's options and crashes on an Upgrade in Node 22.21,
 * nodejs/node#60336) is never used.
 *
 * Each stream is an Http2ServerRequest/Response pair handed to the same pipeline as an HTTP/1.1 request
 * (pipeline.ts request()): the verdict of the connection, admitted against the current trust per
 * stream. Before that, the stream's request is made to look like the pipeline's RequestView: `socket` is
 * the TLS socket itself (the compat layer's is a Proxy that the verdict and telemetry cannot key on), and
 * `headers` is a copy without pseudo-headers where `:authority` stands as Host (h2ViewHeaders).
 */
import http2 from 'node:http2';
import type https from 'node:https';
import type { IncomingHttpHeaders } from 'node:http';
import type { TLSSocket } from 'node:tls';
import type { LimitsConfig } from '../config/types.js';
import type { Logger } from '../log.js';
import type { ProxyMetrics as Metrics } from './metrics.js';

export interface Http2Options {
  readonly limits: LimitsConfig;
  readonly metrics: Metrics;
  readonly log: Logger;
  /** One stream, as a compat request/response pair, its request already shaped as a RequestView. */
  readonly request: (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => void;
}

export interface Http2Sessions {
  /** Open client sessions now. */
  readonly size: number;
  /** Shutdown: GOAWAY to every session; streams in flight finish. */
  close(): void;
  /** Past the drain budget: every session destroyed. */
  destroy(): void;
}

/** The TLS socket under each session (session.socket is a Proxy). */
const TLS_SOCKET = Symbol('certgate.tls-socket');
type WithSocket = { [TLS_SOCKET]?: TLSSocket };

/** The TLS connection a stream arrived on. */
export function streamSocket(stream: http2.ServerHttp2Stream): TLSSocket | undefined {
  return (stream.session as unknown as WithSocket | undefined)?.[TLS_SOCKET];
}

/** HTTP/2's answer to the header list size: node:http2 counts name + value + 32 per field (RFC 9113 §6.5.2). */
export function headerListSize(raw: readonly string[]): number {
  let n = 0;
  for (let i = 0; i < raw.length; i += 2) n += raw[i]!.length + (raw[i + 1]?.length ?? 0) + 32;
  return n;
}

/**
 * The request headers the pipeline's steps read, from an HTTP/2 stream's: pseudo-headers out (`:method`,
 * `:path`, `:scheme`, `:authority` are the stream's, read through the request), `:authority` as Host when
 * the client sent no Host (RFC 9113 §8.3.1: an HTTP/1.1 upstream gets it as Host). Cookie crumbs are joined
 * with "; " by Node already (RFC 9113 §8.2.3).
 */
export function h2ViewHeaders(headers: IncomingHttpHeaders): { headers: IncomingHttpHeaders; authority: string | undefined } {
  const out: IncomingHttpHeaders = {};
  let authority: string | undefined;
  for (const name of Object.keys(headers)) {
    if (name.charCodeAt(0) === 58 /* : */) {
      if (name === ':authority') authority = headers[name] as string;
      continue;
    }
    out[name] = headers[name];
  }
  if (out.host === undefined && authority !== undefined) out.host = authority;
  return { headers: out, authority };
}

/**
 * Hands h2 connections of `server` to a node:http2 server. `server`'s first 'secureConnection' listener
 * is node:http's connection handler: it keeps every other connection.
 */
export function attachHttp2(server: https.Server, opts: Http2Options): Http2Sessions {
  const { limits, metrics, log } = opts;
  const h2 = http2.createServer({
    settings: {
      maxConcurrentStreams: limits.max_concurrent_streams,
      // Node refuses a header block over this (the stream is reset): the 431 for a list under it and over
      // max_header_bytes is the pipeline's. Room above max_header_bytes lets certgate answer 431 itself.
      maxHeaderListSize: limits.max_header_bytes * 2 + 4096,
    },
    maxHeaderListPairs: 1024,
    // Streams refused beyond SETTINGS_MAX_CONCURRENT_STREAMS before the session is closed.
    maxSessionRejectedStreams: 100,
    maxSessionInvalidFrames: 100,
    maxSettings: 32,
  });
  const sessions = new Set<http2.ServerHttp2Session>();
  let arriving: TLSSocket | undefined;

  h2.on('session', (session: http2.ServerHttp2Session) => {
    const socket = arriving!;
    (session as unknown as WithSocket)[TLS_SOCKET] = socket;
    sessions.add(session);
    metrics.http2SessionsOpen.inc();
    session.once('close', () => {
      sessions.delete(session);
      metrics.http2SessionsOpen.dec();
    });
    session.on('error', (err: NodeJS.ErrnoException) => {
      log.debug({ msg: 'http2 session error', code: err.code, remote_address: socket.remoteAddress });
    });
    // An idle session (no stream for keepalive_timeout_ms) ends with GOAWAY, as an idle HTTP/1.1 keep-alive
    // connection is closed.
    session.setTimeout(limits.keepalive_timeout_ms, () => {
      if (openStreams(session) === 0) session.close();
    });
  });
  h2.on('stream', (stream: http2.ServerHttp2Stream) => {
    // stream.session is gone by the stream's 'close'.
    const session = stream.session!;
    streamCount.set(session, openStreams(session) + 1);
    stream.once('close', () => streamCount.set(session, openStreams(session) - 1));
  });
  h2.on('request', (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => {
    const socket = streamSocket(req.stream);
    if (socket === undefined) {
      res.stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
      return;
    }
    const { headers } = h2ViewHeaders(req.headers);
    // The pipeline's RequestView: own properties over the compat layer's getters.
    Object.defineProperty(req, 'socket', { value: socket, configurable: true });
    Object.defineProperty(req, 'headers', { value: headers, configurable: true, writable: true });
    opts.request(req, res);
  });
  h2.on('sessionError', (err: NodeJS.ErrnoException) => log.debug({ msg: 'http2 session error', code: err.code }));

  const [http1] = server.listeners('secureConnection') as ((socket: TLSSocket) => void)[];
  if (http1 === undefined) throw new Error('https.Server without its connection handler');
  server.removeListener('secureConnection', http1);
  server.prependListener('secureConnection', function route(this: https.Server, socket: TLSSocket) {
    if (socket.alpnProtocol !== 'h2') {
      http1.call(this, socket);
      return;
    }
    arriving = socket;
    try {
      h2.emit('connection', socket);
    } finally {
      arriving = undefined;
    }
  });

  return {
    get size() {
      return sessions.size;
    },
    close() {
      for (const s of sessions) s.close();
    },
    destroy() {
      for (const s of sessions) s.destroy();
    },
  };
}

const streamCount = new WeakMap<http2.Http2Session, number>();
function openStreams(session: http2.Http2Session): number {
  return streamCount.get(session) ?? 0;
}
