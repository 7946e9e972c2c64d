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
import type { IncomingHttpHeaders, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import type { LimitsConfig } from '../config/types.js';
import type { Logger } from '../log.js';
import type { ProxyMetrics as Metrics } from './metrics.js';
import { isGrpcContentType, sendError } from '../respond.js';
import { clientAddressOf } from './client-address.js';

export interface Http2Options {
  readonly limits: LimitsConfig;
  readonly metrics: Metrics;
  readonly log: Logger;
  /** One stream, as a compat request/response pair, its request already shaped as a RequestView. */
  readonly request: (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => void;
  /**
   * A stream refused before the pipeline's steps (the header list over max_header_bytes), its request shaped
   * as for `request`: answered and observed as a refused request (pipeline.ts refuse()).
   */
  readonly refuse: (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse, status: number, body: { readonly error: string; readonly limit?: number }) => void;
}

export interface Http2Sessions {
  /** Open client sessions now. */
  readonly size: number;
  /** Shutdown: GOAWAY to every session; streams in flight finish. */
  close(): void;
  /** Past the drain budget: every session destroyed. */
  destroy(): void;
  /**
   * A live reload's limits (issue 17): keepalive_timeout_ms and max_concurrent_streams for sessions opened
   * after, request_timeout_ms for streams opened after. max_header_bytes stays as started (restart to apply).
   */
  setLimits(next: LimitsConfig): void;
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
  const { metrics, log } = opts;
  const started = opts.limits;
  let limits = opts.limits;
  const h2 = http2.createServer({
    settings: {
      maxConcurrentStreams: started.max_concurrent_streams,
      // Node refuses a header block over this (the stream is reset): the 431 for a list under it and over
      // max_header_bytes is the pipeline's. Room above max_header_bytes lets certgate answer 431 itself.
      maxHeaderListSize: started.max_header_bytes * 2 + 4096,
    },
    maxHeaderListPairs: 1024,
    // Streams node:http2 itself refuses (RST_STREAM ENHANCE_YOUR_CALM) because it still holds as many as
    // max_concurrent_streams (streams the client reset and Node has not released yet; Rapid Reset on Node
    // 24/26): more than this many in a row end the session (GOAWAY INTERNAL_ERROR). Streams over the limit
    // itself never get here: nghttp2 refuses them first (test/e2e/http2-hostile.test.ts pins how).
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
      // nghttp2's own defences (SETTINGS/PING answers piling up unread, CONTINUATION floods CVE-2024-27983,
      // streams over the acknowledged max_concurrent_streams) end the session with ERR_HTTP2_ERROR; more than
      // maxSessionInvalidFrames invalid frames (streams refused before the client acknowledged SETTINGS among
      // them) with ERR_HTTP2_TOO_MANY_INVALID_FRAMES: both counted. (ERR_HTTP2_SESSION_ERROR is certgate's
      // own destroy with a code, counted where it is decided.)
      if (err.code === 'ERR_HTTP2_ERROR' || err.code === 'ERR_HTTP2_TOO_MANY_INVALID_FRAMES') metrics.http2StreamsRefused.inc({ reason: 'protocol' });
      log.debug({ msg: 'http2 session error', code: err.code, detail: err.message, remote_address: clientAddressOf(socket).address });
    });
    // An idle session (no stream for keepalive_timeout_ms) ends with GOAWAY, as an idle HTTP/1.1 keep-alive
    // connection is closed.
    session.setTimeout(limits.keepalive_timeout_ms, () => {
      if (openStreams(session) === 0) session.close();
    });
  });
  // Rapid Reset (CVE-2023-44487): streams the client opens and cancels at once cost certgate (and the
  // upstream) a request each while never counting against max_concurrent_streams. Past the cap the
  // session gets GOAWAY ENHANCE_YOUR_CALM and is closed.
  const onRapidReset = (session: http2.ServerHttp2Session): void => {
    metrics.http2StreamsRefused.inc({ reason: 'rapid_reset' });
    log.warn({ msg: 'http2 session closed: too many streams reset by the client (Rapid Reset)', remote_address: clientAddressOf((session as unknown as WithSocket)[TLS_SOCKET] ?? {}).address });
    // The number form: destroy(undefined, code) would send NO_ERROR.
    session.destroy(http2.constants.NGHTTP2_ENHANCE_YOUR_CALM as unknown as Error);
  };
  h2.on('stream', (stream: http2.ServerHttp2Stream) => {
    // stream.session is gone by the stream's 'close': kept on the stream. Module-level listeners, no
    // closures per stream (issue 19); 'on', not 'once': each fires once per stream, and once() wraps.
    const session = stream.session as http2.ServerHttp2Session;
    const s = stream as StreamOf;
    s[STREAM_SESSION] = session;
    s[ON_RAPID_RESET] = onRapidReset;
    streamCount.set(session, openStreams(session) + 1);
    stream.on('close', onStreamClose);
    stream.on('aborted', onStreamAborted);
  });
  h2.on('request', (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => {
    const socket = streamSocket(req.stream);
    if (socket === undefined) {
      resetStream(res.stream, http2.constants.NGHTTP2_INTERNAL_ERROR);
      return;
    }
    const { headers } = h2ViewHeaders(req.headers);
    // The pipeline's RequestView: own properties over the compat layer's getters.
    Object.defineProperty(req, 'socket', { value: socket, configurable: true });
    Object.defineProperty(req, 'headers', { value: headers, configurable: true, writable: true });
    // limits.max_header_bytes, measured by certgate itself (RFC 9113 §6.5.2's count): node:http2 enforces
    // only its own, larger hard limit. The same 431 as HTTP/1.1's (grpc-status 8 for a gRPC call), refused
    // through the pipeline like any other refusal: an access line, the request metrics, /clients.
    if (headerListSize(req.rawHeaders) > started.max_header_bytes) {
      metrics.http2StreamsRefused.inc({ reason: 'header_list_size' });
      opts.refuse(req, res, 431, { error: 'headers_too_large', limit: started.max_header_bytes });
      return;
    }
    // limits.request_timeout_ms: the whole request (its body) must arrive in time, as on HTTP/1.1; a stream
    // still sending after it gets 408 (or is reset once its response started). Not for gRPC calls:
    // streaming calls send for as long as they live, and carry their own deadline.
    if (!isGrpcContentType(req.headers['content-type']) && !req.stream.endAfterHeaders) {
      const timer = setTimeout(requestTooSlow, limits.request_timeout_ms, req, res, metrics);
      timer.unref();
      req.once('end', () => clearTimeout(timer));
      req.stream.once('close', () => clearTimeout(timer));
    }
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
    setLimits(next) {
      // SETTINGS_MAX_CONCURRENT_STREAMS for sessions opened from now on: node:http2 builds each new session's
      // settings from the server's (updateSettings). A session already open keeps the value it announced:
      // lowering it on a live session would refuse streams its client may already be opening under the old one.
      if (next.max_concurrent_streams !== limits.max_concurrent_streams) h2.updateSettings({ maxConcurrentStreams: next.max_concurrent_streams });
      limits = next;
    },
  };
}

/** What the 408 answers: the request was too slow to arrive whole. */
function requestTooSlow(req: http2.Http2ServerRequest, res: http2.Http2ServerResponse, metrics: Metrics): void {
  if (req.readableEnded || res.stream.destroyed) return;
  metrics.http2StreamsRefused.inc({ reason: 'request_timeout' });
  if (res.headersSent) {
    resetStream(res.stream, http2.constants.NGHTTP2_CANCEL);
    return;
  }
  sendError(res as unknown as ServerResponse, 408, { error: 'request_timeout' });
  resetStream(res.stream, http2.constants.NGHTTP2_CANCEL);
}

/**
 * The Rapid Reset cap: a token bucket per session, RESET_BURST streams cancelled by the client at once,
 * refilled at RESET_RATE per second (nghttp2's own, 1000 at once and 33/s, comes later and resets the
 * connection without a word).
 */
export const RESET_BURST = 200;
export const RESET_RATE = 100;

export class ResetBucket {
  #tokens = RESET_BURST;
  #at: number;
  constructor(now = Date.now()) {
    this.#at = now;
  }

  /** One more client reset: true when it is past the cap. */
  take(now = Date.now()): boolean {
    this.#tokens = Math.min(RESET_BURST, this.#tokens + ((now - this.#at) / 1000) * RESET_RATE);
    this.#at = now;
    this.#tokens -= 1;
    return this.#tokens < 0;
  }
}

const buckets = new WeakMap<http2.Http2Session, ResetBucket>();
function resets(session: http2.Http2Session): ResetBucket {
  let b = buckets.get(session);
  if (b === undefined) {
    b = new ResetBucket();
    buckets.set(session, b);
  }
  return b;
}

/** A stream's session and its server's Rapid Reset answer, for the module-level listeners below. */
const STREAM_SESSION = Symbol('certgate.h2-session');
const ON_RAPID_RESET = Symbol('certgate.h2-rapid-reset');
/** Set on a stream certgate itself resets with stream.close(code): not the client's reset. */
const RESET_BY_CERTGATE = Symbol('certgate.h2-reset-by-certgate');
type StreamOf = http2.ServerHttp2Stream & {
  [STREAM_SESSION]?: http2.ServerHttp2Session;
  [ON_RAPID_RESET]?: (session: http2.ServerHttp2Session) => void;
  [RESET_BY_CERTGATE]?: true;
};

/** certgate's own RST_STREAM (every stream.close(code) of certgate's goes through here). */
function resetStream(stream: http2.ServerHttp2Stream, code: number): void {
  (stream as StreamOf)[RESET_BY_CERTGATE] = true;
  stream.close(code);
}

/**
 * Whether a stream's 'aborted' is the client's RST_STREAM. node:http2 emits 'aborted' for every stream that
 * closes with its response unfinished (lib/internal/http2/core.js closeStream, the same on Node 20, 24 and
 * 26): a RST_STREAM received (nghttp2's stream close, the stream not destroyed yet), but also certgate's own
 * resets — stream.close(code) (marked by resetStream) and destroy(), which is how a response is cut when
 * its upstream fails mid-body (hop.ts res.destroy()), or a session is destroyed — and the connection
 * closing under its open streams (Node closes each with CANCEL). Only the first is the client's doing.
 */
function resetByClient(stream: StreamOf, session: http2.ServerHttp2Session): boolean {
  if (stream.destroyed || stream[RESET_BY_CERTGATE] === true) return false;
  return (session as unknown as WithSocket)[TLS_SOCKET]?.destroyed !== true;
}

function onStreamClose(this: StreamOf): void {
  const session = this[STREAM_SESSION];
  if (session !== undefined) streamCount.set(session, openStreams(session) - 1);
}

/** A stream the client cancelled (RST_STREAM received): counted against its session's Rapid Reset bucket. */
function onStreamAborted(this: StreamOf): void {
  const session = this[STREAM_SESSION];
  if (session === undefined || !resetByClient(this, session) || !resets(session).take()) return;
  this[ON_RAPID_RESET]?.(session);
}

const streamCount = new WeakMap<http2.Http2Session, number>();
function openStreams(session: http2.Http2Session): number {
  return streamCount.get(session) ?? 0;
}
