/**
 * Host header validation. Pure (answers are memoised by value, below); called once per request, before routing.
 *
 * Routes with `host` pick their allow list by the Host header, and so does the upstream's own
 * virtual-host dispatch. Any Host that the two could read differently lets a client reach a
 * host-routed allow list's upstream through a laxer route (`admin.example.com:1:2` matches no host
 * route here, but a framework that cuts at the first `:` serves it as `admin.example.com`; Express
 * with `trust proxy` cuts `admin.example.com,www.example.com` at the `,` of X-Forwarded-Host).
 * So only one plain shape is accepted, everything else is a 400 `invalid_host`:
 *
 *   Host = name [ ":" port ]
 *   name = labels of A-Z a-z 0-9 "-" "_", 1-63 characters each, separated by ".", at most one
 *          trailing "." | an IPv4 dotted quad | "[" IPv6 address "]"
 *   port = 1-65535, decimal, no leading zero
 *
 * No `%` (no zone ids, no percent-encoding), no userinfo, path, query, `,`, `;`, spaces or non-ASCII:
 * a WHATWG URL parser maps non-ASCII (fullwidth letters, IDNA) to other ASCII names.
 *
 * A name whose last label is a number (`127.1`, `0x7f.0.0.1`, `0177.0.0.1`, `a.123`) must be a
 * canonical dotted quad (four decimal octets 0-255 without leading zeros): WHATWG URL parsers read
 * such names as IPv4 in shorthand, hex or octal (`0177.0.0.1` is `127.0.0.1`), while this module
 * would compare them as names. No DNS name ends in an all-numeric label.
 *
 * The accepted value is forwarded byte for byte; `name` below is only what routes compare.
 */
import { isIPv6 } from 'node:net';

export interface ParsedHost {
  /**
   * As routes compare it: lower-case, without the trailing dot; an IPv6 address without brackets in
   * its canonical (RFC 5952) form, so `[0:0::1]` and `[::1]` are the same host.
   */
  readonly name: string;
  readonly port?: number;
}

const LABEL = /^[A-Za-z0-9_-]{1,63}$/;
/** WHATWG URL's "ends in a number": the last label parses as an IPv4 number (decimal, or 0x hex). */
const NUMERIC_LABEL = /^(?:[0-9]+|0[xX][0-9A-Fa-f]*)$/;
const OCTET = /^(?:0|[1-9][0-9]{0,2})$/;
const PORT = /^[1-9][0-9]{0,4}$/;
const IPV6_CHARS = /^[0-9A-Fa-f:.]+$/;

/**
 * Recent answers by Host value (null: refused). A client sends the same Host on every request of its
 * connection and the admit step reads it twice (the check, then routing), so most requests parse none
 * (issue 19: ~1.5 µs a request). Bounded: cleared when full, so a client cycling through Host values
 * costs what parsing costs; values longer than MEMO_KEY_MAX are parsed every time.
 */
const memo = new Map<string, ParsedHost | null>();
const MEMO_MAX = 256;
const MEMO_KEY_MAX = 256;

/** The Host header's name and port, or undefined when it is not a plain `name[:port]` (see above). */
export function parseHost(value: string): ParsedHost | undefined {
  const known = memo.get(value);
  if (known !== undefined) return known ?? undefined;
  const parsed = parse(value);
  if (value.length <= MEMO_KEY_MAX) {
    if (memo.size >= MEMO_MAX) memo.clear();
    memo.set(value, parsed ?? null);
  }
  return parsed;
}

function parse(value: string): ParsedHost | undefined {
  let name: string;
  let rest: string;
  if (value.startsWith('[')) {
    const end = value.indexOf(']');
    if (end === -1) return undefined;
    const addr = value.slice(1, end);
    if (!IPV6_CHARS.test(addr) || !isIPv6(addr)) return undefined;
    name = canonicalIPv6(addr);
    rest = value.slice(end + 1);
  } else {
    const colon = value.indexOf(':');
    const host = colon === -1 ? value : value.slice(0, colon);
    rest = colon === -1 ? '' : value.slice(colon);
    const labels = (host.endsWith('.') ? host.slice(0, -1) : host).split('.');
    if (!labels.every((l) => LABEL.test(l))) return undefined;
    if (NUMERIC_LABEL.test(labels[labels.length - 1]!) && !isDottedQuad(labels)) return undefined;
    name = labels.join('.').toLowerCase();
  }
  // Frozen: the memo hands the same object to every caller.
  if (rest === '') return Object.freeze({ name });
  if (rest.charCodeAt(0) !== 0x3a || !PORT.test(rest.slice(1))) return undefined;
  const port = Number(rest.slice(1));
  return port <= 65535 ? Object.freeze({ name, port }) : undefined;
}

/** A route's `host` as written in the config, in the form parseHost gives (no port expected). */
export function routeHostName(host: string): string {
  let h = host.toLowerCase();
  if (h.startsWith('[') && h.endsWith(']')) h = h.slice(1, -1);
  if (h.endsWith('.')) h = h.slice(0, -1);
  return IPV6_CHARS.test(h) && isIPv6(h) ? canonicalIPv6(h) : h;
}

/**
 * Why a route's `host` could never equal a Host that parseHost accepts (undefined when it is fine).
 * Written like a Host header without the port: a name, a dotted quad, an IPv6 address with or
 * without brackets.
 */
export function routeHostProblem(host: string): string | undefined {
  const bareIPv6 = !host.startsWith('[') && IPV6_CHARS.test(host) && isIPv6(host);
  const parsed = parseHost(bareIPv6 ? `[${host}]` : host);
  if (parsed === undefined) {
    return `host "${host}" can never match: a Host header is a DNS name (letters, digits, "-", "_"), an IPv4 dotted quad or an IPv6 address`;
  }
  if (parsed.port !== undefined) return `host "${host}" must not hold a port (routes match any port): write "${host.slice(0, host.lastIndexOf(':'))}"`;
  return undefined;
}

function isDottedQuad(labels: readonly string[]): boolean {
  return labels.length === 4 && labels.every((l) => OCTET.test(l) && Number(l) <= 255);
}

/** RFC 5952 form (lower-case, longest zero run as "::"), as WHATWG URL serialises it. */
function canonicalIPv6(addr: string): string {
  try {
    return new URL(`http://[${addr}]/`).hostname.slice(1, -1);
  } catch {
    return addr.toLowerCase();
  }
}
