/**
 * What a route's path_prefix may be, and the name of a route without `name`. Pure. The config loader
 * (config/load.ts) refuses a prefix that could never match and names routes with these; the router
 * (proxy/routes.ts) compares requests with the same prefixes. Both read the rules from here, a floor
 * below either, next to the path and Host grammar they follow (path.ts, host.ts).
 */
import { PATH_REFUSAL_MESSAGES, normalizeRequestPath } from './path.js';
import { routeHostName } from './host.js';

/**
 * Why a path_prefix can never match as written (undefined when it is fine). Prefixes are written
 * decoded (`/café`, not `/caf%C3%A9`) because they are compared with decoded paths, and must
 * already be in the form normalizeRequestPath() gives: no "..", ".", "//", ";params", backslash, NUL.
 */
export function pathPrefixProblem(prefix: string): string | undefined {
  if (prefix.includes('?') || prefix.includes('#')) return `path_prefix "${prefix}" must not hold "?" or "#"`;
  let encoded: string;
  try {
    // Re-encode so that normalizeRequestPath() sees what a client would send; ";" stays raw
    // because a raw ";" starts path parameters.
    encoded = prefix
      .split('/')
      .map((s) => encodeURIComponent(s).replaceAll('%3B', ';'))
      .join('/');
  } catch {
    return `path_prefix "${prefix}" is not valid Unicode text`;
  }
  const n = normalizeRequestPath(encoded);
  if (!n.ok) return `path_prefix "${prefix}" is not usable: ${PATH_REFUSAL_MESSAGES[n.reason]}`;
  const want = n.path === '/' ? '/' : stripTrailingSlashes(n.path);
  const have = prefix === '/' ? '/' : stripTrailingSlashes(prefix);
  if (want !== have) return `path_prefix "${prefix}" is not in normal form: write "${want}"`;
  return undefined;
}

/** The name of a route without `name`: host + path_prefix, e.g. `api.example.com/api`, or `/api`. */
export function defaultRouteName(host: string | undefined, pathPrefix: string): string {
  return host === undefined ? pathPrefix : routeHostName(host) + pathPrefix;
}

/** `/api//` → `/api`, `/` → `` (a trailing slash in path_prefix is not significant). */
export function stripTrailingSlashes(p: string): string {
  let end = p.length;
  while (end > 0 && p.charCodeAt(end - 1) === 0x2f) end--;
  return p.slice(0, end);
}
