/**
 * The HTTP hop to the upstream (issue #4): one undici `Pool` per route (upstreams.ts) driven by
 * `dispatch()` with one handler object per request (Exchange, below), and our own response relay.
 * WebSocket upgrades take tunnel.ts instead. Why undici, measured: bench/README.md ("The HTTP hop engine").
 *
 * What reaches the upstream:
 * - path: the upstream URL's path and query joined with req.url by http-proxy-3's rules (request-target.ts);
 * - headers: req.headers as the headers step left them (request-headers.ts: identity set, spoofs and
 *   hop-by-hop fields removed), so the client's Host is kept. undici writes `host` and `connection` first,
 *   then the rest in order, then the framing; `Connection: keep-alive`, or `close` for a chunked request
 *   body (request-headers.ts asks for it: never reuse an upstream connection after a chunked body);
 * - framing is undici's: a body the client declared with Content-Length goes with that length, a chunked
 *   one goes chunked; a bodiless POST/PUT/PATCH says `Content-Length: 0`, a bodiless GET/HEAD/DELETE/
 *   OPTIONS says nothing (RFC 9110 §8.6; http-proxy's `Content-Length: 0` on DELETE/OPTIONS guarded
 *   against node:http's framing, which undici does not share). After a request with a body whose method
 *   defines none (GET, DELETE, ...) undici does not reuse the connection. A Transfer-Encoding other than
 *   plain `chunked` cannot be forwarded as sent: `gzip, chunked` → 501, a last coding other than chunked
 *   → 400 (refuseTransferEncoding).
 *
 * Failures: every upstream error, the route timeout (504 while no response headers arrived; our own
 * timer, since undici's headers timer restarts on every 1xx), a response body stalled past the timeout
 * (undici's bodyTimeout), an unsolicited 101, and a response cut mid-body reach onError at most once per
 * request. A client that goes away, or a request certgate already answered (its 504, limitedBody's 413),
 * aborts the upstream request and is not counted. A client that reads nothing of a streaming response
 * for timeout_ms is cut (not counted: the upstream did nothing wrong).
 *
 * Per request: one Exchange (the undici handler), its dispatch options, one timer (the route timeout,
 * then the client-stall watchdog), no closures (listeners are module functions that find their Exchange
 * through a symbol), no regex, no Set unless the upstream's Connection header names an end-to-end field.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Dispatcher } from 'undici';
import type { RouteConfig } from '../config/types.js';
import { classifyUpstreamError, type UpstreamErrorHandler, type UpstreamFailure } from './upstream-error.js';
import { sendError } from '../respond.js';
import { outgoingPath, targetBase, upstreamHostname } from './request-target.js';
import { connectionNamed, HOP_BY_HOP_LENGTHS, isConnection, RESPONSE_HOP_BY_HOP } from './hop-by-hop.js';

/** One route's upstream, prepared once. */
export interface HopTarget {
  readonly route: string;
  /** The route's undici Pool (upstreams.ts). */
  readonly dispatcher: Dispatcher;
  readonly timeoutMs: number;
  /**
   * Sent with every request. Left out, undici derives each request's TLS servername from its Host header
   * (the client's) and reconnects whenever it changes; upstreams.ts's connector sets the real SNI (the URL's
   * host name, none for an IP) whatever this says.
   */
  readonly servername: string;
  /** The upstream URL's part of the request-target (request-target.ts). */
  readonly basePath: string;
  readonly baseQuery: string;
  /** The route's max_body_bytes: a chunked body is cut before byte limit + 1 reaches the upstream. */
  readonly maxBodyBytes: number | undefined;
}

export function hopTarget(route: RouteConfig, dispatcher: Dispatcher): HopTarget {
  const url = route.upstream;
  const { basePath, baseQuery } = targetBase(url);
  return {
    route: route.name, dispatcher, timeoutMs: route.timeout_ms, servername: upstreamHostname(url), basePath, baseQuery,
    maxBodyBytes: route.max_body_bytes,
  };
}

export type Hop = (req: IncomingMessage, res: ServerResponse, target: HopTarget, clientWantsClose: boolean) => void;

/** undici's dispatch options; `servername` is read by its Request but missing from its types. */
interface HopDispatchOptions extends Dispatcher.DispatchOptions {
  readonly servername: string;
}

/** What the hop tells the rest of the pipeline, and asks it. */
export interface HopHooks {
  /** Every upstream failure, at most once per request (the pipeline counts, logs and answers it). */
  readonly onError: UpstreamErrorHandler;
  /** The upstream's status and headers are copied and about to be relayed (telemetry.ts upstreamResponded). */
  readonly onResponse: (res: ServerResponse) => void;
  /** True once the response's listener drains (shutdown, a live `listen` change): it closes its connection. */
  readonly draining: (res: ServerResponse) => boolean;
}

export function createHop(hooks: HopHooks): Hop {
  const ctx: HopHooks = hooks;
  return (req, res, target, clientWantsClose) => {
    const h = req.headers;
    const te = h['transfer-encoding'];
    if (te !== undefined && !(te.length === 7 && te.toLowerCase() === 'chunked')) {
      refuseTransferEncoding(res, te);
      return;
    }
    const x = new Exchange(ctx, req, res, target, clientWantsClose);
    (res as Carrier)[HOP] = x;
    res.on('close', onClientResponseClose);
    x.timer = setTimeout(onTimer, target.timeoutMs, x);
    x.timer.unref();
    let path: string;
    try {
      path = outgoingPath(target, req.url ?? '/');
    } catch (err) {
      // A target the WHATWG parser refuses (http-proxy-3 failed on it too): nothing left the process.
      x.fail(err as NodeJS.ErrnoException, classifyUpstreamError(err as NodeJS.ErrnoException, false));
      return;
    }
    const cl = h['content-length'];
    // HTTP/2 frames bodies itself (DATA frames, END_STREAM): a stream whose headers did not end it has one,
    // declared length or not (gRPC declares none).
    const withBody = x.h2 ? !(req as unknown as H2Request).stream.endAfterHeaders : te !== undefined || (cl !== undefined && cl !== '0');
    let reset: boolean | undefined;
    if (te !== undefined) {
      // Hop-by-hop, and undici rejects it: it frames the body itself. request-headers.ts's `Connection: close`
      // (undici reads it as reset) closes the upstream connection after this request; so does this.
      h['transfer-encoding'] = undefined;
      reset = true;
    }
    // A HEAD leaves `reset` to undici, which closes the upstream connection after every HEAD: an upstream
    // that (wrongly) sends a body after its HEAD answer would otherwise have that body read as the next
    // client's response on the pooled connection (issue #13, finding 7).
    let body: HopDispatchOptions['body'] = null;
    if (withBody) {
      x.streamsBody = true;
      // telemetry's byte counter put req in flowing mode: hold the body until undici reads it (it resumes
      // req then), or chunks would reach the counter only.
      req.pause();
      if (te === undefined && !x.h2) {
        // The stream itself, undici's fast path. undici destroys a body stream it is done with, and first
        // sets an IncomingMessage's socket to null (so that this does not close the client connection);
        // certgate reads req.socket later (telemetry.ts's access line, limitedBody's 413). Marked destroyed,
        // undici leaves req alone: Node destroys it after 'end', a body left unread is drained on close.
        (req as unknown as Record<symbol, boolean>)[STREAM_DESTROYED] = true;
        body = req;
      } else {
        // Chunked (or an HTTP/2 stream's DATA frames): as an iterator undici cannot measure, so the body goes chunked whatever has arrived (a
        // stream that had ended would go with its Content-Length: framing decided by packet timing).
        // Never destroys req; undici never destroys an iterator. With max_body_bytes the iterator is
        // limitedBody's, which throws before yielding byte limit + 1: undici then aborts the request and
        // destroys the upstream connection, so the upstream never sees a complete (terminated) body.
        const chunks = target.maxBodyBytes === undefined ? req.iterator({ destroyOnReturn: false }) : limitedBody(x, target.maxBodyBytes);
        body = chunks as unknown as HopDispatchOptions['body']; // undici's types omit iterables
      }
    }
    const opts: HopDispatchOptions = { path, method: req.method ?? 'GET', headers: h, body, reset, servername: target.servername };
    target.dispatcher.dispatch(opts, x);
  };
}

/**
 * undici frames request bodies itself and refuses a Transfer-Encoding header. RFC 9112 §6.3: a request
 * whose last coding is not chunked has no knowable length (400, close); §6.1: other codings before it
 * (`gzip, chunked`) are ones certgate cannot forward (501): sent as plain chunked, the upstream would
 * read a body that is not the one the client meant.
 */
function refuseTransferEncoding(res: ServerResponse, te: string): void {
  const last = te.slice(te.lastIndexOf(',') + 1).trim().toLowerCase();
  if (last !== 'chunked') {
    sendError(res, 400, { error: 'bad_request', reason: 'transfer_encoding', message: 'the last transfer coding of a request must be chunked' }, { close: true });
  } else {
    sendError(res, 501, { error: 'not_implemented', reason: 'transfer_coding', message: 'certgate forwards Transfer-Encoding: chunked request bodies only' }, { close: true });
  }
}

// ---------------------------------------------------------------------------------------------------
// one exchange

const HOP = Symbol('certgate.hop');
type Carrier = { [HOP]?: Exchange };
/** What the hop reads of an HTTP/2 compat request/response (node:http2 Http2ServerRequest/Response). */
interface H2Request { readonly stream: { readonly endAfterHeaders: boolean } }
interface H2Response { readonly stream: { readonly destroyed: boolean } }

/** Node's and undici's shared "this stream is destroyed" mark (undici's util.isDestroyed reads it). */
const STREAM_DESTROYED = Symbol.for('nodejs.stream.destroyed');

/** certgate gave the upstream request up (client gone, answered already, client stalled): never counted. */
const GIVEN_UP: Error = Object.assign(new Error('certgate gave up the upstream request'), { code: 'CERTGATE_GIVEN_UP' });

/**
 * One request's exchange, and its undici handler (the "legacy" callbacks undici 7's core calls directly;
 * the controller API would wrap every request in two more objects and parse the headers into an object).
 */
class Exchange implements Dispatcher.DispatchHandler {
  /** undici's abort for this request, once it is on a connection. */
  abortUpstream: ((err?: Error) => void) | null = null;
  /** undici's parser resume, after onData returned false. */
  resumeUpstream: (() => void) | null = null;
  timer: NodeJS.Timeout | undefined = undefined;
  /** Response headers relayed: a failure from now on cuts the client's stream. */
  relaying = false;
  /** The upstream request ended: completed, failed, or given up. */
  done = false;
  /** certgate gave the upstream request up; its errors are ours, not counted. */
  givenUp = false;
  reported = false;
  /** res.write() returned false: undici's parser is paused until 'drain'. */
  waiting = false;
  listeningDrain = false;
  /** req is the request body undici streams (paused until it does). */
  streamsBody = false;
  /** The client connection (IncomingMessage.socket, kept: Node may detach it from res). */
  readonly socket: Socket;
  /** An HTTP/2 stream (proxy/http2.ts): the client going away is its stream closing, not the connection. */
  readonly h2: boolean;

  constructor(
    readonly ctx: HopHooks,
    readonly req: IncomingMessage,
    readonly res: ServerResponse,
    readonly target: HopTarget,
    /** The client asked to close the connection after the response (its Connection header is stripped). */
    readonly closeAfter: boolean,
  ) {
    this.socket = req.socket;
    this.h2 = req.httpVersionMajor === 2;
  }

  /** The client can no longer take this response: its connection (or, on HTTP/2, its stream) is gone. */
  clientGone(): boolean {
    return this.h2 ? (this.res as unknown as H2Response).stream.destroyed : this.socket.destroyed;
  }

  /** onError, once per request. */
  fail(err: NodeJS.ErrnoException, failure: UpstreamFailure): void {
    if (this.reported) return;
    this.reported = true;
    this.ctx.onError(err, failure, this.target.route, this.req, this.res);
  }

  /** Stop the upstream request (nothing is counted for it from now on). */
  giveUp(): void {
    if (this.done || this.givenUp) return;
    this.givenUp = true;
    // Not on a connection yet (queued in the pool): onConnect refuses it when its turn comes.
    this.abortUpstream?.(GIVEN_UP);
  }

  onConnect(abort: (err?: Error) => void): void {
    // Thrown here (before anything is written) undici fails the request and keeps the connection; its
    // abort() would destroy the connection too.
    if (this.givenUp) throw GIVEN_UP;
    this.abortUpstream = abort;
  }

  onHeaders(statusCode: number, raw: Buffer[], resume: () => void, statusText: string): boolean {
    // 1xx (102, 103): ours to skip, as node:http did. undici itself fails a 100 (never asked for) and a 101.
    if (statusCode < 200) return true;
    const res = this.res;
    if (this.givenUp || res.headersSent || res.destroyed) {
      // Answered already (our 504, limitedBody's 413) or the client left: this response has nowhere to go.
      this.giveUp();
      return false;
    }
    this.relaying = true;
    this.resumeUpstream = resume;
    // Node alone decides whether the client connection stays open (HTTP/1.0 keep-alive, max requests per
    // connection): never set keep-alive by hand, only close.
    if (this.closeAfter || this.ctx.draining(res)) res.shouldKeepAlive = false;
    res.statusCode = statusCode;
    // HTTP/2 has no reason phrase (Node warns on setting one).
    if (statusText !== '' && !this.h2) res.statusMessage = statusText;
    let named: Set<string> | undefined;
    for (let i = 0; i < raw.length; i += 2) {
      if (isConnection(raw[i]!)) named = connectionNamed(raw[i + 1]!.toString('latin1'), named);
    }
    try {
      // Appended in the upstream's order, case and duplicates (Set-Cookie); its hop-by-hop fields and the
      // ones its Connection header names stay on its hop. Bytes as node:http read them (latin1).
      for (let i = 0; i < raw.length; i += 2) {
        const name = raw[i]!.toString('latin1');
        const n = name.length;
        if ((n < 32 && ((HOP_BY_HOP_LENGTHS >>> n) & 1) === 1) || named !== undefined) {
          const lower = name.toLowerCase();
          if (RESPONSE_HOP_BY_HOP.has(lower) || named?.has(lower) === true) continue;
        }
        res.appendHeader(name, raw[i + 1]!.toString('latin1'));
      }
    } catch (err) {
      // A field Node will not send (its parser and undici's accept the same bytes, so not expected):
      // answer 502 without any of the upstream's fields (X-Request-Id back to telemetry.ts's own).
      for (const name of res.getHeaderNames()) if (name !== 'x-request-id') res.removeHeader(name);
      const id = res.getHeader('x-request-id');
      if (Array.isArray(id)) res.setHeader('x-request-id', id[0]!);
      res.statusMessage = '';
      this.relaying = false;
      this.fail(err as NodeJS.ErrnoException, { status: 502, kind: 'other' });
      this.giveUp();
      return false;
    }
    // Telemetry times the upstream and sets the client's X-Request-Id again (the upstream may have sent its own).
    this.ctx.onResponse(res);
    if ((statusCode === 204 || statusCode === 304) && declaresBody(raw)) {
      // A 204/304 has no body whatever its headers say (RFC 9110 §6.4.1); one that declares a body comes
      // from an upstream whose framing certgate cannot be sure of: whatever it sends next must never be
      // read as the next client's response. The answer is complete; its connection is closed, not pooled.
      this.done = true;
      clearTimeout(this.timer);
      res.end();
      this.givenUp = true;
      this.abortUpstream?.(GIVEN_UP);
      return false;
    }
    return true;
  }

  onData(chunk: Buffer): boolean {
    if (this.res.write(chunk)) return true;
    this.waiting = true;
    if (!this.listeningDrain) {
      this.listeningDrain = true;
      this.res.on('drain', onClientDrain);
    }
    // The client must take the response within timeout_ms (undici's bodyTimeout sleeps while paused).
    this.timer?.refresh();
    return false;
  }

  onComplete(trailers: string[] | null): void {
    this.done = true;
    clearTimeout(this.timer);
    // Trailers (gRPC's grpc-status) go on to an HTTP/2 client; HTTP/1.1 responses are relayed without them,
    // as before.
    // (undici's types say string[]; its HTTP/1.1 parser gives Buffers, its HTTP/2 client an object.)
    if (this.h2 && trailers != null) relayTrailers(this.res, trailers as unknown as Buffer[] | Record<string, string | string[] | undefined>);
    this.res.end();
  }

  onError(error: Error): void {
    this.done = true;
    if (this.givenUp) return;
    const err = error as NodeJS.ErrnoException;
    const res = this.res;
    if (this.clientGone()) {
      // The client went away (its request body errored, or the connection closed): not an upstream fault.
      res.destroy();
      return;
    }
    if (this.relaying) {
      // The upstream's response ended before its last byte: cut the client's stream (a truncated body must
      // never look complete) and count it once.
      this.fail(err, err.code === 'UND_ERR_BODY_TIMEOUT' ? { status: 504, kind: 'timeout' } : { status: 502, kind: 'reset' });
      res.destroy();
      return;
    }
    if (err.code === 'UND_ERR_SOCKET' && err.message === 'bad upgrade') {
      // A 101 to a request that asked for no upgrade.
      this.fail(Object.assign(new Error('the upstream answered 101 to a request without Upgrade'), { code: 'ERR_UNSOLICITED_UPGRADE' }),
        { status: 502, kind: 'other' });
      return;
    }
    this.fail(err, classifyUpstreamError(err, false));
  }
}

/** The first timeout_ms: no response headers → 504. Later (re-armed by onData): the client stopped reading. */
function onTimer(x: Exchange): void {
  if (x.done) return;
  if (!x.relaying) {
    if (!x.res.headersSent) {
      x.fail(Object.assign(new Error('upstream response timeout'), { code: 'ETIMEDOUT' }), { status: 504, kind: 'timeout' });
    }
    x.giveUp();
  } else if (x.waiting) {
    // Nothing of the response taken for timeout_ms: free the upstream connection, cut the client.
    x.giveUp();
    x.res.destroy();
  }
}

function onClientDrain(this: Carrier & ServerResponse): void {
  const x = this[HOP]!;
  if (!x.waiting || x.done) return;
  x.waiting = false;
  x.resumeUpstream?.();
}

function onClientResponseClose(this: Carrier & ServerResponse): void {
  const x = this[HOP]!;
  clearTimeout(x.timer);
  // Closed before the upstream's response was relayed whole: the client left, or certgate answered (its
  // 504, limitedBody's 413), or cut the stream. Stop the upstream request.
  if (!x.done) x.giveUp();
  // A request body undici did not take whole (the upstream answered early, failed, or was given up): read
  // and drop the rest so the client connection can serve its next request, as Node does for a request
  // nobody read. After undici let go of it (its socket's 'error'/'close' come first).
  if (x.streamsBody && !x.req.readableEnded && !x.req.destroyed) setImmediate(drainRequestBody, x.req);
}

/** Thrown into undici by limitedBody: the request is aborted, its connection destroyed, nothing counted. */
const BODY_TOO_LARGE: Error = Object.assign(new Error('request body over max_body_bytes'), { code: 'CERTGATE_BODY_TOO_LARGE' });

/**
 * A chunked request body, cut at `limit` bytes: the chunk that would cross it is never handed to undici.
 * The client gets 413 and its connection closes (the rest of its body is not read).
 */
async function* limitedBody(x: Exchange, limit: number): AsyncGenerator<Buffer> {
  let total = 0;
  for await (const chunk of x.req.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>) {
    total += chunk.length;
    if (total > limit) {
      x.givenUp = true;
      sendError(x.res, 413, { error: 'body_too_large', limit }, { close: true });
      // HTTP/2: the answer ends this stream only (Node resets the unread rest of its body).
      if (!x.h2) x.socket.destroySoon();
      throw BODY_TOO_LARGE;
    }
    yield chunk;
  }
}

function drainRequestBody(req: IncomingMessage): void {
  if (!req.readableEnded && !req.destroyed) req.resume();
}

/** A gRPC call's status from the upstream's trailers, for the access line (telemetry.ts). */
export const GRPC_STATUS = Symbol.for('certgate.grpc-status');

/** The upstream's trailers (undici: raw name/value Buffers from HTTP/1.1, an object from HTTP/2) onto `res`. */
function relayTrailers(res: ServerResponse, trailers: Buffer[] | Record<string, string | string[] | undefined>): void {
  const out: Record<string, string | string[]> = {};
  if (Array.isArray(trailers)) {
    for (let i = 0; i < trailers.length; i += 2) out[String(trailers[i]).toLowerCase()] = String(trailers[i + 1]);
  } else {
    for (const [name, value] of Object.entries(trailers)) if (value !== undefined && !name.startsWith(':')) out[name] = value;
  }
  for (const name of Object.keys(out)) if (RESPONSE_HOP_BY_HOP.has(name)) delete out[name];
  if (Object.keys(out).length === 0) return;
  if (out['grpc-status'] !== undefined) (res as unknown as Record<symbol, unknown>)[GRPC_STATUS] = out['grpc-status'];
  res.addTrailers(out);
}

// ---------------------------------------------------------------------------------------------------
// the response's framing

/** The raw response headers declare a body: a Transfer-Encoding, or a Content-Length other than 0. */
function declaresBody(raw: readonly Buffer[]): boolean {
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toString('latin1').toLowerCase();
    if (name === 'transfer-encoding') return true;
    if (name === 'content-length' && raw[i + 1]!.toString('latin1').trim() !== '0') return true;
  }
  return false;
}
