/**
 * Where an upstream request goes: its request-target (the upstream URL's path and query joined with the
 * client's, by http-proxy-3's rules, which certgate has always sent and test/unit/hop.test.ts checks
 * against http-proxy-3 itself), and the upstream's host name as sockets and TLS want it. Pure.
 */

/** The upstream URL's path as http-proxy-3 reads it (at least "/"), and its query without "?" ("" when none). */
export interface TargetBase {
  readonly basePath: string;
  readonly baseQuery: string;
}

/** The upstream URL's part of every request-target, read once per route. */
export function targetBase(url: URL): TargetBase {
  const base = requestPath(`${url.pathname}${url.search}`);
  const q = base.indexOf('?');
  return { basePath: q === -1 ? base : base.slice(0, q), baseQuery: q === -1 ? '' : base.slice(q + 1) };
}

/** The URL's host name as sockets and TLS want it: WHATWG keeps IPv6 brackets in `hostname`. */
export function upstreamHostname(url: URL): string {
  const h = url.hostname;
  return h.startsWith('[') && h.endsWith(']') ? h.slice(1, -1) : h;
}

/**
 * Characters, sequences and shapes that make http-proxy-3's `new URL()` pass change req.url: percent-
 * encoding (controls, space, non-ASCII, " # ' < > ` { }, and `^` in a path since Node 24's URL parser),
 * `\` read as `/`, dot-segments (`/.`, `%2e`), an empty query (`/x?` → `/x`). Conservative: a match only
 * means "take the exact slow path" (the running Node's own parser, as http-proxy-3 would use).
 */
const URL_PARSER_CHANGES = /[^\x21-\x7e]|["#'<>\\`{}^]|\/\.|%2e|\?$/i;

/**
 * The upstream request-target: http-proxy-3's `urlJoin(getPath(upstream path+query), getPath(req.url))`
 * (prependPath). The upstream's path comes first, one "/" at the seam (`/base` or `/base/` + `/x` →
 * `/base/x`; `/base` + `/` → `/base/`), the queries are joined with "&" (upstream's first). req.url goes
 * through WHATWG URL parsing as http-proxy-3 does, but only when that would change it (see
 * URL_PARSER_CHANGES); otherwise it is used byte for byte, and for an upstream without path or query it
 * is the target as is.
 */
export function outgoingPath(target: TargetBase, url: string): string {
  const plain = url.charCodeAt(0) === 0x2f && !URL_PARSER_CHANGES.test(url);
  if (plain && target.basePath === '/' && target.baseQuery === '') return url;
  const own = plain ? url : requestPath(url);
  const q = own.indexOf('?');
  const path = q === -1 ? own : own.slice(0, q);
  const query = q === -1 ? '' : own.slice(q + 1);
  let out = target.basePath;
  if (path !== '') {
    if (out.endsWith('/')) out += path.charCodeAt(0) === 0x2f ? path.slice(1) : path;
    else out += path.charCodeAt(0) === 0x2f ? path : '/' + path;
  }
  const qs = target.baseQuery !== '' && query !== '' ? `${target.baseQuery}&${query}` : target.baseQuery + query;
  return qs === '' ? out : `${out}?${qs}`;
}

/** http-proxy-3's getPath(): pathname + search of the WHATWG parse against a dummy origin. */
function requestPath(url: string): string {
  if (url === '' || url.startsWith('?')) return url;
  const u = new URL(url.startsWith('//') ? `http://base.invalid${url}` : url, 'http://base.invalid');
  return `${u.pathname}${u.search}`;
}
