/**
 * RFC 9110 §7.6.1: connection-specific fields describe one hop and are not forwarded, nor any field the
 * Connection header names. The rules for both directions, used by the request headers step
 * (request-headers.ts), the HTTP hop's response relay (hop.ts) and the tunnel's non-101 answers (tunnel.ts).
 */
import type { IncomingHttpHeaders } from 'node:http';

/** Request fields that stay on the client's hop (Expect and Proxy-Authorization are ours to answer). */
const REQUEST_HOP_BY_HOP = ['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'upgrade', 'proxy-authorization', 'expect'];

/**
 * Removes the request's hop-by-hop fields and those its Connection header names, never Host or the
 * framing. For an upgrade, `Connection: upgrade` and the client's Upgrade value are put back.
 */
export function stripHopByHop(h: IncomingHttpHeaders, upgrade: boolean): void {
  const connection = h.connection;
  const upgradeValue = h.upgrade;
  if (typeof connection === 'string') {
    for (const name of connection.split(',')) {
      const n = name.trim().toLowerCase();
      // Never let Connection remove what the upstream must see for framing or routing.
      if (n !== '' && n !== 'host' && n !== 'content-length' && n !== 'transfer-encoding') delete h[n];
    }
  }
  for (const n of REQUEST_HOP_BY_HOP) delete h[n];
  if (upgrade && upgradeValue !== undefined) {
    h.connection = 'upgrade';
    h.upgrade = upgradeValue;
  }
}

/** Response fields that describe the upstream's hop, not ours. */
export const RESPONSE_HOP_BY_HOP: ReadonlySet<string> = new Set([
  'connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'upgrade', 'proxy-authenticate', 'transfer-encoding',
]);
/** Bit n set: some RESPONSE_HOP_BY_HOP name has n characters (2, 7, 10, 16, 17, 18); others skip toLowerCase. */
export const HOP_BY_HOP_LENGTHS = (1 << 2) | (1 << 7) | (1 << 10) | (1 << 16) | (1 << 17) | (1 << 18);

const CONNECTION = 'connection';

/** `name` (a raw header name) is Connection, any case, without making a string of it. */
export function isConnection(name: Buffer): boolean {
  if (name.length !== 10) return false;
  for (let i = 0; i < 10; i++) if ((name[i]! | 0x20) !== CONNECTION.charCodeAt(i)) return false;
  return true;
}

/**
 * Adds the fields a response's Connection header value names to `named`, but never Content-Length/-Type
 * or the hop-by-hop ones (undefined for the usual `keep-alive` or `close`: no Set per response).
 */
export function connectionNamed(connection: string, named: Set<string> | undefined): Set<string> | undefined {
  const n = connection.length;
  if (n === 10 && connection.toLowerCase() === 'keep-alive') return named;
  if (n === 5 && connection.toLowerCase() === 'close') return named;
  for (const token of connection.split(',')) {
    const name = token.trim().toLowerCase();
    if (name === '' || name === 'close' || name === 'content-length' || name === 'content-type' || RESPONSE_HOP_BY_HOP.has(name)) continue;
    (named ??= new Set()).add(name);
  }
  return named;
}
