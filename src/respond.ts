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
    sendJson(res, status, body);
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

/** The same answer on a raw socket (upgrade requests have no ServerResponse). Ends the socket. */
export function sendErrorOnSocket(socket: Socket, status: number, body: ErrorBody): void {
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  const json = JSON.stringify(body);
  socket.write(
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\ncontent-type: application/json\r\n` +
      `content-length: ${Buffer.byteLength(json)}\r\nconnection: close\r\ncache-control: no-store\r\n\r\n${json}`,
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
