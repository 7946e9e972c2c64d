/**
 * certgate's own HTTP answers, written in one place: the proxy's refusals, the whoami_path answer, the
 * admin listener's JSON and enrollment's answers all go through sendText/sendJson. One JSON shape for
 * errors: {"error": "<machine word>", ...facts}. Never a stack trace. Refusals of the client certificate
 * close the connection (like nginx's 400 "The SSL certificate error"), because every later request on it
 * would be refused too.
 */
import type { OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { STATUS_CODES } from 'node:http';

export interface ErrorBody {
  readonly error: string;
  readonly [key: string]: string | number | boolean | undefined;
}

/** Writes a whole answer: `text` as `contentType`, never cached; `extra` headers follow those three. */
export function sendText(res: ServerResponse, status: number, contentType: string, text: string, extra?: OutgoingHttpHeaders): void {
  res.writeHead(status, { 'content-type': contentType, 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store', ...extra });
  res.end(text);
}

/** The one writer of certgate's JSON answers. */
export function sendJson(res: ServerResponse, status: number, body: unknown, extra?: OutgoingHttpHeaders): void {
  sendText(res, status, 'application/json', JSON.stringify(body), extra);
}

const CLOSE: OutgoingHttpHeaders = { connection: 'close' };

/** The HTTP/2 stream under a compat response (Http2ServerResponse), if `res` is one. */
export function http2StreamOf(res: object): { readonly session?: { close(): void } | undefined } | undefined {
  return (res as { stream?: { session?: { close(): void } } }).stream;
}

/** Writes a JSON error unless the response has started; then the stream is cut instead. */
export function sendError(res: ServerResponse, status: number, body: ErrorBody, opts: { close?: boolean } = {}): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const stream = http2StreamOf(res);
  if (stream !== undefined) {
    // HTTP/2 has no Connection header (a connection-specific field, RFC 9113 §8.2.2): "close" is a GOAWAY
    // once this answer is out; streams already open finish.
    const req = (res as unknown as { req?: { headers?: Record<string, string | string[] | undefined> } }).req;
    if (isGrpcContentType(req?.headers?.['content-type'])) {
      sendGrpcError(res, status, body);
    } else {
      sendJson(res, status, body);
    }
    if (opts.close) stream.session?.close();
    return;
  }
  if (opts.close) {
    // Stop reading more requests from this connection: nothing on it will be served.
    res.shouldKeepAlive = false;
    sendJson(res, status, body, CLOSE);
  } else {
    sendJson(res, status, body);
  }
}

/**
 * A refusal of a gRPC call (grpc.ts): HTTP 200, trailers-only (one HEADERS frame ending the stream) with
 * grpc-status and grpc-message, so that the client prints our reason.
 */
function sendGrpcError(res: ServerResponse, status: number, body: ErrorBody): void {
  const id = res.getHeader('x-request-id');
  const code = String(grpcStatusFor(status, body.error));
  // Not sent from here (the stream answers below): read back by the access line (proxy/telemetry.ts).
  res.setHeader('grpc-status', code);
  const stream = (res as unknown as { stream: { respond(h: OutgoingHttpHeaders, o: { endStream: boolean }): void } }).stream;
  stream.respond({
    ':status': 200, 'content-type': 'application/grpc',
    'grpc-status': code, 'grpc-message': grpcPercentEncode(grpcMessageFor(body)),
    ...(id !== undefined && { 'x-request-id': id }),
  }, { endStream: true });
}

/**
 * The same answer on a raw socket (upgrade requests, and the parser's answers, have no ServerResponse). Ends
 * the socket. `requestId`: certgate's own (a UUID, never a client's bytes), as X-Request-Id.
 */
export function sendErrorOnSocket(socket: Socket, status: number, body: ErrorBody, requestId?: string): void {
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  const json = JSON.stringify(body);
  socket.write(
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\ncontent-type: application/json\r\n` +
      `content-length: ${Buffer.byteLength(json)}\r\nconnection: close\r\ncache-control: no-store\r\n` +
      `${requestId === undefined ? '' : `x-request-id: ${requestId}\r\n`}\r\n${json}`,
  );
  endSocketAnswer(socket);
}

/** How long a peer may keep its side of a connection open after certgate's last answer on it. */
export const CLOSE_GRACE_MS = 1000;

/**
 * Ends a raw socket after certgate's last answer on it (a `Connection: close` answer). The listener is
 * half-open capable (node:http's allowHalfOpen), and a socket handed over with 'upgrade' has no timeout:
 * a peer that never closes its side would hold the connection slot forever (issue #13, finding 3). It
 * gets CLOSE_GRACE_MS to read the answer and close; then the socket is destroyed.
 */
export function endSocketAnswer(socket: Socket): void {
  socket.end();
  if (socket.destroyed) return;
  const timer = setTimeout(destroySocket, CLOSE_GRACE_MS, socket);
  timer.unref();
  socket.once('close', () => clearTimeout(timer));
}

function destroySocket(socket: Socket): void {
  socket.destroy();
}

// ---------------------------------------------------------------------------------------------------
// gRPC's view of certgate's refusals (issue 16). A gRPC client reads the call's outcome from
// `grpc-status` and `grpc-message`, not from the HTTP status: a JSON 403 would surface as "protocol error"
// or "unexpected content-type". A refusal of a gRPC request (content-type application/grpc*) is answered
// HTTP 200, trailers-only, with certgate's own mapping of its refusals onto gRPC codes and our reason in
// grpc-message (sendError → sendGrpcError). Pure.

/** gRPC status codes certgate answers with (grpc/doc/statuscodes.md). */
export const GRPC = {
  UNKNOWN: 2, INVALID_ARGUMENT: 3, DEADLINE_EXCEEDED: 4, PERMISSION_DENIED: 7, RESOURCE_EXHAUSTED: 8,
  UNIMPLEMENTED: 12, UNAVAILABLE: 14, UNAUTHENTICATED: 16,
} as const;

/** `content-type: application/grpc`, `application/grpc+proto`, `application/grpc;...` (not grpc-web). */
export function isGrpcContentType(value: string | string[] | undefined): boolean {
  if (typeof value !== 'string' || value.length < 16) return false;
  const v = value.toLowerCase();
  if (!v.startsWith('application/grpc')) return false;
  const next = v.charAt(16);
  return next === '' || next === '+' || next === ';';
}

/**
 * certgate's mapping: certificate refusals 16 UNAUTHENTICATED, the allow list 7 PERMISSION_DENIED,
 * bad_request 3 INVALID_ARGUMENT, no route 12 UNIMPLEMENTED, size limits 8 RESOURCE_EXHAUSTED, 504/408
 * 4 DEADLINE_EXCEEDED, an unreachable upstream (502) and 421 14 UNAVAILABLE (retryable).
 */
export function grpcStatusFor(status: number, error: string): number {
  if (error.startsWith('client_certificate')) return GRPC.UNAUTHENTICATED;
  switch (status) {
    case 403: return GRPC.PERMISSION_DENIED;
    case 404: return GRPC.UNIMPLEMENTED;
    case 413: case 431: return GRPC.RESOURCE_EXHAUSTED;
    case 408: case 504: return GRPC.DEADLINE_EXCEEDED;
    case 421: case 502: case 503: return GRPC.UNAVAILABLE;
    case 501: return GRPC.UNIMPLEMENTED;
    default: return status >= 400 && status < 500 ? GRPC.INVALID_ARGUMENT : GRPC.UNKNOWN;
  }
}

/** grpc-message: percent-encoded UTF-8, every byte outside 0x20..0x7E and "%" itself (the gRPC HTTP/2 spec). */
export function grpcPercentEncode(text: string): string {
  let out = '';
  for (const byte of Buffer.from(text, 'utf8')) {
    out += byte >= 0x20 && byte <= 0x7e && byte !== 0x25 ? String.fromCharCode(byte) : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/** The message a gRPC client prints: `error[/reason]: message`. */
export function grpcMessageFor(body: { readonly error: string; readonly reason?: unknown; readonly message?: unknown }): string {
  const head = typeof body.reason === 'string' ? `${body.error}/${body.reason}` : body.error;
  return typeof body.message === 'string' ? `${head}: ${body.message}` : head;
}
