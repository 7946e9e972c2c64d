/**
 * Open WebSocket tunnels under the same trust as every request (issue #13, finding 6).
 *
 * A keep-alive HTTP connection is re-checked on its next request (verdict.ts); a tunnel has no next
 * request, so without this a tunnel opened before its client certificate was revoked, or before the
 * client CA was removed, would carry traffic for as long as the client liked, and past the certificate's
 * notAfter. Every tunnel is re-checked on a sweep every SWEEP_MS while any is open (a trust reload, or a
 * CRL going stale, is seen within that), and exactly at its certificate's notAfter by its own timer.
 * A tunnel whose verdict turned to refused is closed (both sockets destroyed), logged once like the other
 * late refusals, and counted in certgate_tunnels_closed_total{reason}.
 */
import type { TLSSocket } from 'node:tls';
import { connectionVerdict, type ConnectionVerdict, type VerdictContext } from './verdict.js';

/** The longest a changed trust leaves an open tunnel running. */
export const SWEEP_MS = 1000;
/** setTimeout's largest delay; a notAfter further away is re-armed when this fires. */
const MAX_TIMER_MS = 2 ** 31 - 1;

type Refused = Extract<ConnectionVerdict, { kind: 'refused' }>;

export interface TunnelWatch {
  /** A tunnel was opened on `socket` (a 101 relayed); `close` destroys both of its sockets. */
  add(socket: TLSSocket, close: () => void): void;
  /** Tunnels open now. */
  readonly size: number;
  /** Stops the sweep and the timers (tunnels themselves are ended by the server's shutdown). */
  close(): void;
}

export function createTunnelWatch(
  ctx: VerdictContext,
  /** A tunnel's verdict turned to refused: log it (once per connection) and count it. */
  onClosed: (socket: TLSSocket, verdict: Refused) => void,
  now: () => number = Date.now,
): TunnelWatch {
  const open = new Map<TLSSocket, { close: () => void; expiry: NodeJS.Timeout | undefined }>();
  let sweep: NodeJS.Timeout | undefined;

  function check(socket: TLSSocket): void {
    const tunnel = open.get(socket);
    if (tunnel === undefined) return;
    const verdict = connectionVerdict(socket, ctx, now());
    if (verdict.kind !== 'refused') return;
    forget(socket);
    tunnel.close();
    onClosed(socket, verdict);
  }

  function forget(socket: TLSSocket): void {
    const tunnel = open.get(socket);
    if (tunnel === undefined) return;
    clearTimeout(tunnel.expiry);
    open.delete(socket);
    if (open.size === 0 && sweep !== undefined) {
      clearInterval(sweep);
      sweep = undefined;
    }
  }

  function armExpiry(socket: TLSSocket, notAfter: number): NodeJS.Timeout {
    // +1: verdict.ts calls a certificate expired once now is past its notAfter.
    const delay = Math.min(Math.max(notAfter - now() + 1, 0), MAX_TIMER_MS);
    const timer = setTimeout(() => {
      const tunnel = open.get(socket);
      if (tunnel === undefined) return;
      if (notAfter - now() >= 0) tunnel.expiry = armExpiry(socket, notAfter);
      else check(socket);
    }, delay);
    timer.unref();
    return timer;
  }

  return {
    add(socket, close) {
      const verdict = connectionVerdict(socket, ctx, now());
      const expiry = verdict.kind === 'verified' ? armExpiry(socket, verdict.identity.notAfter.getTime()) : undefined;
      open.set(socket, { close, expiry });
      socket.once('close', () => forget(socket));
      if (sweep === undefined) {
        sweep = setInterval(() => {
          for (const s of [...open.keys()]) check(s);
        }, SWEEP_MS);
        sweep.unref();
      }
    },
    get size() {
      return open.size;
    },
    close() {
      for (const socket of [...open.keys()]) forget(socket);
    },
  };
}
