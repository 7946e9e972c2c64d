/**
 * Request-target normalisation for route matching. Pure; called once per request.
 *
 * The result is used ONLY to pick a route (and so an allow policy); the request is forwarded as
 * received. Because certgate and the upstream may read one path differently, every rule below
 * either makes certgate see the path the way a normalising upstream would, or refuses a path that
 * upstreams are known to read in different ways (a refusal is a 400, never a guess):
 *
 * - only origin-form (`/path?query`): absolute-form, authority-form and `*` would make certgate a
 *   forward proxy to arbitrary URLs; a raw `#` is not valid in a request target either.
 * - the query is ignored; the path is percent-decoded once, per segment, and must be UTF-8.
 * - `%2F`, `\` / `%5C` and NUL are refused: upstreams disagree on whether they split segments.
 * - Tomcat/Jetty/Spring drop `;params` from a segment before routing (`/admin;x` is `/admin`
 *   there), so for matching they are dropped here too (the decoded `%3B` is not a separator,
 *   as in Tomcat). A dot-segment carrying params (`..;`, `.;`) is refused: Tomcat resolves it,
 *   Express/Node treat it as a name.
 * - dot-segments are removed per RFC 3986 5.2.4 (after decoding, so `%2e%2e` counts too);
 *   a `..` above the root is refused rather than clamped.
 * - runs of `/` are merged (nginx `merge_slashes`, Envoy `merge_slashes`), so `//admin` matches
 *   the `/admin` route. When merging first and resolving dots first give different paths
 *   (`/a//../b` is `/b` to nginx, `/a/b` to RFC 3986), the path is refused as ambiguous.
 *
 * With `strict` (config `strict_paths`, on by default) a decoded segment name (params dropped, not a
 * dot-segment itself) is also refused when upstreams are known to fold it into another name: the
 * upstream would serve that other name (`/admin`) under the policy of the route this path matched (`/`):
 * - `trailing_dot_or_space`: it ends in "." (`admin.`, `admin..`: Windows/IIS and .NET drop trailing
 *   dots), or starts or ends with whitespace or a control character (`admin%20`, `admin%09`, `%20admin`:
 *   Windows drops trailing spaces; Java's trim() and Spring's old trimTokens drop them at both ends).
 *   Whitespace is JavaScript's `\s` (Unicode White_Space and U+FEFF) plus C0/C1 controls, DEL, U+180E,
 *   U+200B-U+200D and U+2060.
 * - `ntfs_stream`: it holds ":$" (`admin::$DATA`, `admin:$i30:$INDEX_ALLOCATION` are `admin` on NTFS).
 * - `double_encoding`: it still holds a percent-escape after decoding once (`%252e`, `%2561`,
 *   `%25u002e`), which a server that decodes twice reads as another character (`/x/%252e%252e/admin`
 *   is `/admin` there). Any escape, not only encoded "." "/" "\": `/%2561dmin` is `/admin` too.
 * - `encoded_semicolon`: it holds ";" decoded from `%3B`. Tomcat does not split at it (see above), but
 *   servers that decode before stripping `;params` serve `/admin%3B` and `/admin%3Bx` as `/admin`.
 * Each rule also applies to the segment's NFKC form, so look-alikes that a normalising upstream turns
 * into "." or ";" (`admin\uFF0E`, a fullwidth ".") are refused too. Suffixes such as `/admin.json`
 * are NOT refused: they are other names here, and an allow list on `/admin` does not cover them
 * (README: protect the catch-all route too).
 */

export type PathRefusal =
  | 'not_origin_form'
  | 'bad_encoding'
  | 'encoded_slash'
  | 'backslash'
  | 'nul'
  | 'dot_segment_escape'
  | 'ambiguous_path'
  | 'trailing_dot_or_space'
  | 'ntfs_stream'
  | 'double_encoding'
  | 'encoded_semicolon';

export type PathResult = { ok: true; path: string } | { ok: false; reason: PathRefusal };

/** One sentence per refusal, for 400 bodies and logs. */
export const PATH_REFUSAL_MESSAGES: Readonly<Record<PathRefusal, string>> = {
  not_origin_form:
    'the request target must be a path starting with "/" (absolute-form, authority-form, "*" and "#" are not accepted)',
  bad_encoding: 'the path holds an invalid percent-escape or is not valid UTF-8',
  encoded_slash: 'the path holds an encoded slash (%2F)',
  backslash: 'the path holds a backslash (raw or %5C)',
  nul: 'the path holds a NUL byte (%00)',
  dot_segment_escape: 'a ".." segment climbs above the root',
  ambiguous_path: 'the path holds a dot-segment that servers resolve differently (".." after "//", or "..;")',
  trailing_dot_or_space:
    'a path segment ends in "." or starts or ends with whitespace, which some servers drop ("/admin." or "/admin%20" served as "/admin")',
  ntfs_stream: 'a path segment holds ":$", an NTFS stream name ("/admin::$DATA" is "/admin" on Windows)',
  double_encoding: 'the path is percent-encoded twice ("%252e" is "." to a server that decodes twice)',
  encoded_semicolon: 'a path segment holds an encoded ";" (%3B), which some servers read as the start of parameters ("/admin%3B" served as "/admin")',
};

export interface PathOptions {
  /** strict_paths: also refuse segment names that upstreams are known to fold into other names (see above). */
  readonly strict?: boolean;
}

const SLASH = 0x2f;
const PERCENT = 0x25;

// One decoder for all calls: decode() without {stream} keeps no state between calls.
// fatal: invalid UTF-8 (including overlong forms such as %C0%AE for ".") is refused, not replaced.
// ignoreBOM: a leading U+FEFF is part of the segment, not silently dropped.
const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

type SegmentResult = string | { reason: PathRefusal };

export function normalizeRequestPath(target: string, opts: PathOptions = {}): PathResult {
  if (target.charCodeAt(0) !== SLASH) return refuse('not_origin_form');
  const q = target.indexOf('?');
  const raw = q === -1 ? target : target.slice(0, q);
  if (raw.includes('#')) return refuse('not_origin_form');
  if (raw.includes('\\')) return refuse('backslash');

  // raw.split('/') is the decoded segment list too, because an encoded '/' is refused below.
  const rawSegments = raw.slice(1).split('/');
  const segments: string[] = new Array<string>(rawSegments.length);
  let hasEmpty = false;
  for (let i = 0; i < rawSegments.length; i++) {
    const rawSeg = rawSegments[i] as string;
    const semi = rawSeg.indexOf(';');
    const name = decodeSegment(semi === -1 ? rawSeg : rawSeg.slice(0, semi));
    if (typeof name !== 'string') return refuse(name.reason);
    if (semi !== -1 && (name === '.' || name === '..')) return refuse('ambiguous_path');
    if (opts.strict === true && name !== '.' && name !== '..') {
      const folded = foldedSegmentProblem(name);
      if (folded !== undefined) return refuse(folded);
    }
    if (name === '' && i < rawSegments.length - 1) hasEmpty = true;
    segments[i] = name;
  }

  const merged = removeDotSegments(segments, false);
  if (merged === undefined) return refuse('dot_segment_escape');
  if (hasEmpty) {
    // Only a path with "//" can be read two ways; compare the RFC reading, merged afterwards.
    const rfc = removeDotSegments(segments, true);
    if (rfc === undefined) return refuse('dot_segment_escape');
    if (mergeSlashes(rfc) !== merged) return refuse('ambiguous_path');
  }
  return { ok: true, path: merged };
}

function refuse(reason: PathRefusal): PathResult {
  return { ok: false, reason };
}

/** Whitespace and controls that trims and folds drop: JS `\s`, C0/C1 controls, DEL, zero-width marks. */
const SPACE_OR_CONTROL = /[\s\x00-\x1f\x7f-\x9f\u180e\u200b-\u200d\u2060]/;
/** A percent-escape left after one decode: `%2e` (from `%252e`), `%u002e` (IIS). */
const STILL_ENCODED = /%(?:[0-9A-Fa-f]{2}|[uU][0-9A-Fa-f]{4})/;
const NON_ASCII = /[^\x00-\x7f]/;

/** strict_paths: why a decoded segment name (not "." or "..") may be folded into another name upstream. */
function foldedSegmentProblem(name: string): PathRefusal | undefined {
  const problem = segmentFormProblem(name);
  // NFKC maps look-alikes ("\uFF0E" fullwidth ".", "\uFF1B" fullwidth ";") to ASCII; a result of "."
  // or ".." is a dot-segment to a normalising upstream, and ends in "." here.
  return problem ?? (NON_ASCII.test(name) ? segmentFormProblem(name.normalize('NFKC')) : undefined);
}

function segmentFormProblem(s: string): PathRefusal | undefined {
  if (s.includes(';')) return 'encoded_semicolon';
  if (s.includes(':$')) return 'ntfs_stream';
  if (STILL_ENCODED.test(s)) return 'double_encoding';
  if (s.length > 0 && (s.endsWith('.') || SPACE_OR_CONTROL.test(s.charAt(0)) || SPACE_OR_CONTROL.test(s.charAt(s.length - 1)))) {
    return 'trailing_dot_or_space';
  }
  return undefined;
}

/**
 * RFC 3986 5.2.4 over a segment list (the path after its leading "/"). keepEmpty=false drops
 * empty segments except a final one (the trailing slash), i.e. merges "//". Returns undefined
 * when a ".." would climb above the root.
 */
function removeDotSegments(segments: readonly string[], keepEmpty: boolean): string | undefined {
  const out: string[] = [];
  const last = segments.length - 1;
  let trailingSlash = false;
  for (let i = 0; i <= last; i++) {
    const seg = segments[i] as string;
    if (seg === '.') {
      trailingSlash = i === last;
    } else if (seg === '..') {
      if (out.length === 0) return undefined;
      out.pop();
      trailingSlash = i === last;
    } else if (seg === '' && !keepEmpty) {
      trailingSlash = i === last;
    } else {
      out.push(seg);
      trailingSlash = false;
    }
  }
  if (out.length === 0) return '/';
  const path = '/' + out.join('/');
  return trailingSlash ? path + '/' : path;
}

function mergeSlashes(path: string): string {
  let out = path;
  while (out.includes('//')) out = out.replaceAll('//', '/');
  return out;
}

/** Percent-decodes one segment to UTF-8 text; refuses %2F, %5C, %00, bad escapes, bad UTF-8. */
function decodeSegment(seg: string): SegmentResult {
  let plain = true;
  for (let i = 0; i < seg.length; i++) {
    const c = seg.charCodeAt(i);
    if (c === PERCENT || c > 0x7f) {
      plain = false;
      break;
    }
    if (c === 0) return { reason: 'nul' };
  }
  if (plain) return seg;

  // Node hands the request line over as latin1, so chars 0x80-0xff are raw UTF-8 bytes.
  const bytes = new Uint8Array(seg.length);
  let n = 0;
  for (let i = 0; i < seg.length; i++) {
    const c = seg.charCodeAt(i);
    if (c === PERCENT) {
      const hi = hexValue(seg.charCodeAt(i + 1));
      const lo = hexValue(seg.charCodeAt(i + 2));
      if (hi < 0 || lo < 0) return { reason: 'bad_encoding' };
      const b = (hi << 4) | lo;
      if (b === SLASH) return { reason: 'encoded_slash' };
      if (b === 0x5c) return { reason: 'backslash' };
      if (b === 0) return { reason: 'nul' };
      bytes[n++] = b;
      i += 2;
    } else if (c > 0xff) {
      return { reason: 'bad_encoding' };
    } else {
      if (c === 0) return { reason: 'nul' };
      bytes[n++] = c;
    }
  }
  try {
    return UTF8.decode(bytes.subarray(0, n));
  } catch {
    return { reason: 'bad_encoding' };
  }
}

/** 0-15 for an ASCII hex digit, -1 otherwise (also for NaN past the end of the string). */
function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x41 && c <= 0x46) return c - 0x37;
  if (c >= 0x61 && c <= 0x66) return c - 0x57;
  return -1;
}
