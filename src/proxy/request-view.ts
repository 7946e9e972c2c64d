/**
 * What the pipeline's steps read of a request, whatever carried it. node:http's IncomingMessage is one as
 * it is (no copy, nothing allocated per request), and so is an HTTP/2 stream's compat request
 * (Http2ServerRequest): the steps never depend on node:http's event order or on ServerResponse.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { Socket } from 'node:net';

export interface RequestView {
  readonly method?: string | undefined;
  /** The request-target as sent (origin form). */
  readonly url?: string | undefined;
  /** "1.0", "1.1" (and "2.0" for an HTTP/2 stream). */
  readonly httpVersion: string;
  /** Parsed headers, lower-case names. The headers step rewrites them for the upstream (request-headers.ts). */
  readonly headers: IncomingHttpHeaders;
  /** Name/value pairs as received: lets the host step count Host lines. */
  readonly rawHeaders: readonly string[];
  /** The client's TLS connection: its verdict (verdict.ts) and its peer address. */
  readonly socket: Socket;
}
