/**
 * The client address of a connection, established once when it is accepted (proxy-protocol-gate.ts):
 * the peer's own address, or, behind a trusted load balancer, the address its PROXY protocol header
 * named. Everything that reports a client address (X-Forwarded-For, the access log, refusal logs,
 * /clients) reads it here, never `socket.remoteAddress`: that is the balancer's address behind one, and
 * Node forgets it once the socket is destroyed (a late access line would have none).
 *
 * It lives on the accepted TCP socket under a symbol. The TLS socket Node builds over it reaches it
 * through `_parent` (the same link listener.ts answers plain HTTP on); it is copied onto the TLS socket at
 * the first read, so a request reads one property. An HTTP/2 request's `socket` is the TLS socket too
 * (http2.ts), and a property read through the compat layer's socket Proxy is forwarded to it.
 */
import type { Socket } from 'node:net';

export interface ClientAddress {
  /** The client's address: the PROXY header's source, or the peer's (undefined only if Node had none). */
  readonly address: string | undefined;
  readonly port: number | undefined;
  /** The peer that sent the PROXY header (the load balancer); absent when the address is the peer's own. */
  readonly via?: string | undefined;
}

const CLIENT_ADDRESS = Symbol('certgate.client-address');
type Stamped = { [CLIENT_ADDRESS]?: ClientAddress; _parent?: Stamped; remoteAddress?: string; remotePort?: number };

/** Once per accepted connection, before TLS: what every later reader of the client address gets. */
export function setClientAddress(raw: Socket, address: ClientAddress): void {
  (raw as Stamped)[CLIENT_ADDRESS] = address;
}

/** The client address of a connection (the TCP socket, the TLS socket over it, or an HTTP/2 stream's socket). */
export function clientAddressOf(socket: object): ClientAddress {
  const s = socket as Stamped;
  const own = s[CLIENT_ADDRESS];
  if (own !== undefined) return own;
  const found = s._parent?.[CLIENT_ADDRESS] ?? { address: s.remoteAddress, port: s.remotePort };
  s[CLIENT_ADDRESS] = found;
  return found;
}
