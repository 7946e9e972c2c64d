/**
 * Which Host the admin listener answers, and when to warn that it is exposed (issue 13 finding 10).
 *
 * DNS rebinding: a page on evil.example re-points evil.example at 127.0.0.1 (or a pod IP) after it loaded;
 * the browser then sends the page's same-origin requests, `Host: evil.example`, to the admin listener and
 * lets the page read the answers (/clients: who calls, from where). So the listener answers only Hosts no
 * attacker can point at it:
 *   - an IP literal (IPv4, or IPv6 in brackets), any address: a browser sends one only to the origin that
 *     IP is, and kubelet probes and Prometheus scrape by pod IP;
 *   - `localhost` and `*.localhost`: browsers resolve them to loopback themselves and nobody can delegate
 *     them in DNS (RFC 6761 §6.3);
 *   - the names in admin.allowed_hosts (the operator's own DNS names for the listener).
 * Names compare case-insensitively, with or without a port and a trailing dot. A request without Host is
 * answered: HTTP/1.1 requires one (Node answers 400 itself), a browser always sends one (it is a forbidden
 * header for scripts), and HTTP/1.0 health checkers (HAProxy's httpchk) send none.
 */
import { BlockList, isIPv4, isIPv6 } from 'node:net';
import type { Problem } from '../errors.js';
import type { Config } from '../config/types.js';

/** `name[:port]` or `[v6][:port]`; group 1 = the bracketed literal, group 2 = the name; port 1–5 digits. */
const HOST = /^(?:\[([^\]]*)\]|([^:[\]]+))(?::\d{1,5})?$/;
/** What a DNS name may hold; anything else (spaces, `@`, `/`) is not a name any browser sends. */
const NAME = /^[a-z0-9-]+(\.[a-z0-9-]+)*$/;

export function adminHostAllowed(host: string | undefined, allowed: ReadonlySet<string>): boolean {
  if (host === undefined) return true;
  const m = HOST.exec(host);
  if (m === null) return false;
  if (m[1] !== undefined) return isIPv6(m[1]);
  const raw = m[2]!;
  if (isIPv4(raw)) return true;
  const name = (raw.endsWith('.') ? raw.slice(0, -1) : raw).toLowerCase();
  if (!NAME.test(name)) return false;
  return name === 'localhost' || name.endsWith('.localhost') || allowed.has(name);
}

const LOOPBACK = new BlockList();
LOOPBACK.addSubnet('127.0.0.0', 8, 'ipv4');
LOOPBACK.addAddress('::1', 'ipv6');

/** Whether a listen host (no brackets) binds loopback only. `localhost` resolves to loopback; any other name may not. */
export function isLoopbackHost(host: string): boolean {
  if (host.toLowerCase() === 'localhost') return true;
  // BlockList checks IPv4-mapped IPv6 (::ffff:127.0.0.1) against the IPv4 rule.
  if (isIPv4(host)) return LOOPBACK.check(host, 'ipv4');
  if (isIPv6(host)) return LOOPBACK.check(host, 'ipv6');
  return false;
}

/**
 * A warning when admin.listen leaves loopback without admin.token_file: then anyone who can reach the
 * port reads /clients and the status page. `certgate check` prints it; start-up logs it at warn level.
 */
export function adminExposure(config: Pick<Config, 'admin' | 'file'>): Problem | undefined {
  const { listen, token_file: token, line } = config.admin;
  if (token !== undefined || isLoopbackHost(listen.host)) return undefined;
  const at = `${listen.host.includes(':') ? `[${listen.host}]` : listen.host}:${listen.port}`;
  return {
    severity: 'warning', code: 'CG_ADMIN_EXPOSED',
    message: `admin.listen ${at} is reachable beyond loopback and admin.token_file is not set: anyone who reaches it reads /clients (who calls, from where), /status.json and the status page`,
    hint: `set admin.token_file (e.g. openssl rand -hex 32 > admin-token): then every admin path but /healthz /readyz /metrics needs the token; or listen on 127.0.0.1:${listen.port}`,
    file: config.file,
    ...(line !== undefined && { line }),
  };
}
