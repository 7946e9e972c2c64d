/**
 * certgate's own answers. One JSON shape for all of them: {"error": "<machine word>", ...facts}.
 * Never a stack trace. Refusals of the client certificate close the connection (like nginx's 400
 * "The SSL certificate error"), because every later request on it would be refused too.
 */
import type { ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { STATUS_CODES } from 'node:http';

export interface ErrorBody {
  readonly error: string;
  readonly [key: string]: string | number | boolean | undefined;
}

/** Writes a JSON error unless the response has started; then the stream is cut instead. */
export function sendError(res: ServerResponse, status: number, body: ErrorBody, opts: { close?: boolean } = {}): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const json = JSON.stringify(body);
  const headers: Record<string, string | number> = {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(json),
    'cache-control': 'no-store',
  };
  if (opts.close) {
    headers.connection = 'close';
    // Stop reading more requests from this connection: nothing on it will be served.
    res.shouldKeepAlive = false;
  }
  res.writeHead(status, headers);
  res.end(json);
}

/** The same answer on a raw socket (upgrade requests have no ServerResponse). Ends the socket. */
export function sendErrorOnSocket(socket: Socket, status: number, body: ErrorBody): void {
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  const json = JSON.stringify(body);
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\ncontent-type: application/json\r\n` +
      `content-length: ${Buffer.byteLength(json)}\r\nconnection: close\r\ncache-control: no-store\r\n\r\n${json}`,
  );
}
