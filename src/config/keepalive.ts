/**
 * limits.keepalive_timeout_ms below 2000 ms is accepted (nginx users write `keepalive_timeout 1s`), with a
 * warning, because of what Node.js clients make of it. Node's HTTP server advertises the timeout in whole
 * seconds, rounded down: `Keep-Alive: timeout=1` for 1000–1999 ms, `timeout=0` below (measured on Node 20,
 * 24 and 26). Node's http.Agent keeps an idle connection 1 s less than advertised (its
 * HTTP_AGENT_KEEP_ALIVE_TIMEOUT_BUFFER), so at timeout=1 or 0 it reuses none: every request of a Node
 * client opens a new TCP connection and TLS handshake. Clients that ignore the hint (curl, Go, Python,
 * browsers) reuse connections within the timeout as usual. certgate cannot advertise a rounded-up value
 * instead: Node writes the header from the same keepAliveTimeout that closes the connection.
 * `certgate check` prints the warning; start-up logs it once (the cluster primary, not each worker).
 */
import type { Config } from './types.js';
import type { Problem } from '../errors.js';

/** The smallest timeout at which Node's http.Agent reuses a connection (advertised 2 s, kept 1 s). */
export const NODE_CLIENT_REUSE_MIN_MS = 2000;

export function keepAliveAdvice(config: { readonly limits: Pick<Config['limits'], 'keepalive_timeout_ms'>; readonly file?: string | undefined }): Problem | undefined {
  const ms = config.limits.keepalive_timeout_ms;
  if (ms >= NODE_CLIENT_REUSE_MIN_MS) return undefined;
  const advertised = Math.floor(ms / 1000);
  return {
    severity: 'warning', code: 'CG_KEEPALIVE_SHORT',
    message: `limits.keepalive_timeout_ms is ${ms}: Node advertises it as "Keep-Alive: timeout=${advertised}" (whole seconds, rounded down) and Node.js clients (http.Agent) keep a connection 1 s less than advertised, so they reuse none: each of their requests opens a new TLS connection. Other clients (curl, Go, Python, browsers) reuse connections for ${ms} ms`,
    hint: `set limits.keepalive_timeout_ms: ${NODE_CLIENT_REUSE_MIN_MS} (or more) if Node.js clients call certgate; nothing to do if none do`,
    ...(config.file !== undefined && { file: config.file }),
  };
}
