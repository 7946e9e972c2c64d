/**
 * Config file → validated, normalised, deep-frozen Config. Reports every problem at once, each with
 * file:line:col, the key path and a fix; never a stack trace.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { LineCounter, parseDocument, isMap, isSeq, isScalar, type Node, type Document } from 'yaml';
import type { z } from 'zod';
import { CertgateError, type Problem } from '../errors.js';
import { CONFIG_SCHEMA, knownKeys, type RawConfig } from './schema.js';
import type { Config, EnrollmentConfig, HostPort, RouteConfig } from './types.js';
import { defaultRouteName, pathPrefixProblem } from '../http/route-values.js';
import { routeHostProblem } from '../http/host.js';
import { PATH_REFUSAL_MESSAGES, normalizeRequestPath } from '../http/path.js';
import { parseCidr } from '../net/cidr.js';
import { foldHeaderName, passThroughProblem } from '../identity/headers.js';
import { compileDialect, namesProblems } from '../identity/dialect.js';

/** Reads and validates a config file. Throws CertgateError (with every problem in `.problems`). */
export async function loadConfig(file: string): Promise<Config> {
  const { abs, source } = await readConfigSource(file);
  return parseConfig(source, abs);
}

/** The config file's text and absolute path (relative paths in it resolve against its folder). Throws CG_CONFIG_READ. */
export async function readConfigSource(file: string): Promise<{ abs: string; source: string }> {
  const abs = path.resolve(file);
  try {
    return { abs, source: await readFile(abs, 'utf8') };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'unknown';
    throw new CertgateError('CG_CONFIG_READ', `cannot read config ${abs}: ${code}`, { file: abs, cause: err });
  }
}

/** Validates config text as if read from `file` (relative paths resolve against its folder). */
export function parseConfig(source: string, file: string): Config {
  const lineCounter = new LineCounter();
  const doc = parseDocument(source, { lineCounter, uniqueKeys: true, prettyErrors: false });
  if (doc.errors.length > 0) {
    const problems = doc.errors.map((e): Problem => {
      const pos = lineCounter.linePos(e.pos[0]);
      return {
        severity: 'error', code: 'CG_CONFIG_YAML', message: e.message.split('\n')[0] ?? e.message,
        file, line: pos.line, col: pos.col,
      };
    });
    throw fromProblems(problems);
  }
  let raw: unknown;
  try {
    // maxAliasCount: a config has no reason for alias bombs ("billion laughs").
    raw = doc.toJS({ maxAliasCount: 100 }) ?? {};
  } catch (err) {
    throw fromProblems([{
      severity: 'error', code: 'CG_CONFIG_YAML', message: `YAML aliases: ${(err as Error).message}`, file,
      hint: 'define each &anchor before its *alias and do not nest aliases deeply',
    }]);
  }
  const result = CONFIG_SCHEMA.safeParse(raw);
  if (!result.success) {
    throw fromProblems(result.error.issues.flatMap((issue) => issueToProblems(issue, doc, lineCounter, file)));
  }
  const problems: Problem[] = [];
  const config = normalise(result.data, file, doc, lineCounter, problems);
  if (problems.length > 0) throw fromProblems(problems);
  return deepFreeze(config);
}

function fromProblems(problems: Problem[]): CertgateError {
  const first = problems[0]!;
  return new CertgateError(first.code, first.message, {
    ...(first.hint !== undefined && { hint: first.hint }),
    ...(first.file !== undefined && { file: first.file }),
    ...(first.line !== undefined && { line: first.line }),
    ...(first.col !== undefined && { col: first.col }),
    problems,
  });
}

type Issue = z.core.$ZodIssue;

function issueToProblems(issue: Issue, doc: Document, lc: LineCounter, file: string): Problem[] {
  const base = issue.path.filter((p): p is string | number => typeof p !== 'symbol');
  if (issue.code === 'unrecognized_keys') {
    return issue.keys.map((key) => {
      const keyPath = [...base, key];
      const siblings = knownKeys().get(schemaPath(base)) ?? [];
      const near = nearest(key, siblings);
      return problemAt(doc, lc, file, keyPath, `unknown key "${key}"`,
        near ? `rename it to "${near}" if that is what you meant, or remove it` : `remove it, or use a key valid here: ${siblings.join(', ')}`, true);
    });
  }
  let message = issue.message;
  const missing = issue.code === 'invalid_type' && valueAt(doc, base) === undefined;
  if (missing) message = 'is required';
  return [problemAt(doc, lc, file, base, message, hintFor(issue, missing), false)];
}

/** What to write instead, from the issue (never "fix it": test/unit/hints.test.ts). */
function hintFor(issue: Issue, missing: boolean): string {
  switch (issue.code) {
    case 'invalid_value':
      return `use one of: ${issue.values.map(String).join(', ')}`;
    case 'invalid_type': {
      const what = typeWord(issue.expected);
      return missing ? `add this key with ${what}` : `write ${what} here`;
    }
    case 'too_small':
      return bound(issue.origin, issue.inclusive === false ? 'greater than' : 'at least', issue.minimum);
    case 'too_big':
      return bound(issue.origin, issue.inclusive === false ? 'less than' : 'at most', issue.maximum);
    case 'not_multiple_of':
      return `use a multiple of ${String(issue.divisor)}`;
    default:
      // The schema's own messages say what the value must be ("must be HOST:PORT, e.g. …"): said as what to write.
      return instructionFrom(issue.message) ?? 'write the value as config/certgate.schema.json describes this key';
  }
}

function typeWord(expected: string): string {
  // Every number in the schema is an integer (durations in ms, counts, sizes).
  if (expected === 'number' || expected === 'int') return 'a whole number';
  if (expected === 'string') return 'a string (quote it if it holds ": " or " #")';
  if (expected === 'boolean') return 'true or false';
  if (expected === 'array') return 'a list';
  if (expected === 'object') return 'a mapping of keys';
  return `a value of type ${expected}`;
}

/** "use a whole number of at least 1", "list at least 1 entry here", "write at least 1 character". */
function bound(origin: string, relation: string, n: number | bigint): string {
  const count = Number(n);
  if (origin === 'array' || origin === 'set') return `list ${relation} ${count} ${count === 1 ? 'entry' : 'entries'} here`;
  if (origin === 'string') return `write ${relation} ${count} ${count === 1 ? 'character' : 'characters'}`;
  return `use a whole number ${relation.startsWith('at ') ? 'of ' : ''}${relation} ${count}`;
}

/** "must be X" → "write X"; "must start with X" → "start it with X"; "may hold X only" → "use X only". */
function instructionFrom(message: string): string | undefined {
  const be = /^must be (.+)$/s.exec(message);
  if (be !== null) return `write ${be[1]}`;
  const start = /^must start with (.+)$/s.exec(message);
  if (start !== null) return `start it with ${start[1]}`;
  const only = /^may hold (.+) only$/s.exec(message);
  if (only !== null) return `use ${only[1]} only`;
  return undefined;
}

function problemAt(
  doc: Document, lc: LineCounter, file: string, keyPath: (string | number)[],
  message: string, hint: string, pointAtKey: boolean,
): Problem {
  const pos = positionOf(doc, keyPath, pointAtKey);
  const where = pos === undefined ? undefined : lc.linePos(pos);
  return {
    severity: 'error', code: 'CG_CONFIG_INVALID', message: `${formatPath(keyPath) || '(top level)'}: ${message}`, hint, file,
    ...(where !== undefined && { line: where.line, col: where.col }),
  };
}

/** Offset of the node at keyPath (or of its key), falling back to the nearest existing ancestor. */
function positionOf(doc: Document, keyPath: (string | number)[], pointAtKey: boolean): number | undefined {
  let node: unknown = doc.contents;
  let best: number | undefined = (doc.contents as Node | null)?.range?.[0];
  for (const [i, seg] of keyPath.entries()) {
    const last = i === keyPath.length - 1;
    if (isMap(node)) {
      const pair = node.items.find((p) => isScalar(p.key) && p.key.value === seg);
      if (!pair) return best;
      const keyNode = pair.key as Node;
      if (last && pointAtKey) return keyNode.range?.[0] ?? best;
      best = (pair.value as Node | null)?.range?.[0] ?? keyNode.range?.[0] ?? best;
      node = pair.value;
    } else if (isSeq(node) && typeof seg === 'number') {
      const item = node.items[seg] as Node | undefined;
      if (!item) return best;
      best = item.range?.[0] ?? best;
      node = item;
    } else return best;
  }
  return best;
}

function valueAt(doc: Document, keyPath: (string | number)[]): unknown {
  return doc.getIn(keyPath);
}

function formatPath(p: (string | number)[]): string {
  return p.reduce<string>((acc, seg) => (typeof seg === 'number' ? `${acc}[${seg}]` : acc ? `${acc}.${seg}` : seg), '');
}

function schemaPath(p: (string | number)[]): string {
  return p.reduce<string>((acc, seg) => (typeof seg === 'number' ? `${acc}[]` : acc ? `${acc}.${seg}` : seg), '');
}

/** The closest known key by edit distance, when it is close enough to be a typo. */
function nearest(key: string, candidates: string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const c of candidates) {
    const d = editDistance(key.toLowerCase(), c.toLowerCase());
    if (d < bestDistance) [best, bestDistance] = [c, d];
  }
  return bestDistance <= Math.max(2, Math.floor(key.length / 3)) ? best : undefined;
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length]!;
}

export function parseHostPort(value: string): HostPort {
  const i = value.lastIndexOf(':');
  const host = value.slice(0, i).replace(/^\[(.*)\]$/, '$1');
  return { host, port: Number(value.slice(i + 1)) };
}

function normalise(raw: RawConfig, file: string, doc: Document, lc: LineCounter, problems: Problem[]): Config {
  const dir = path.dirname(file);
  const resolve = (p: string | undefined): string | undefined => (p === undefined ? undefined : path.resolve(dir, p));
  const t = raw.tls;
  if (t.bundle !== undefined && (t.cert !== undefined || t.key !== undefined)) {
    problems.push(problemAt(doc, lc, file, ['tls', 'bundle'], 'set either bundle or cert + key, not both',
      'remove tls.cert/tls.key (the bundle holds key + chain) or remove tls.bundle', true));
  } else if (t.bundle === undefined && t.cert === undefined) {
    problems.push(problemAt(doc, lc, file, ['tls'], 'no server certificate: set tls.bundle (or tls.cert + tls.key)',
      'e.g. bundle: ../certs/dev/server.pem (run: certgate certs init --dir certs/dev)', true));
  }
  const listen = parseHostPort(raw.listen);
  const admin = parseHostPort(raw.admin.listen);
  for (const [key, hp] of [['listen', listen], ['admin.listen', admin]] as const) {
    if (hp.port > 65535) {
      problems.push(problemAt(doc, lc, file, key.split('.'), `port ${hp.port} is out of range`, 'use a port from 0 to 65535', false));
    }
  }
  if (raw.limits.header_timeout_ms > raw.limits.request_timeout_ms) {
    problems.push(problemAt(doc, lc, file, ['limits', 'header_timeout_ms'], `header_timeout_ms (${raw.limits.header_timeout_ms}) exceeds request_timeout_ms (${raw.limits.request_timeout_ms})`,
      'the headers are part of the request: make header_timeout_ms at most request_timeout_ms', false));
  }
  const names = new Set<string>();
  const routes = raw.routes.map((r, i): RouteConfig => {
    const host = r.host?.toLowerCase();
    const name = r.name ?? defaultRouteName(host, r.path_prefix);
    if (names.has(name)) {
      problems.push(problemAt(doc, lc, file, ['routes', i, r.name === undefined ? 'path_prefix' : 'name'],
        `route name "${name}" is used twice`, 'give each route a distinct name (it labels metrics and logs)', false));
    }
    names.add(name);
    const prefixProblem = pathPrefixProblem(r.path_prefix);
    if (prefixProblem !== undefined) {
      problems.push(problemAt(doc, lc, file, ['routes', i, 'path_prefix'], prefixProblem, 'write the prefix as a plain decoded path, e.g. /api', false));
    }
    const hostProblem = r.host === undefined ? undefined : routeHostProblem(r.host);
    if (hostProblem !== undefined) {
      problems.push(problemAt(doc, lc, file, ['routes', i, 'host'], hostProblem, 'write the host name alone, e.g. api.example.com (routes match any port)', false));
    }
    const scheme = new URL(r.upstream).protocol;
    if ((r.upstream_protocol === 'h2c' && scheme !== 'http:') || (r.upstream_protocol === 'h2' && scheme !== 'https:')) {
      problems.push(problemAt(doc, lc, file, ['routes', i, 'upstream_protocol'],
        `upstream_protocol ${r.upstream_protocol} needs an ${r.upstream_protocol === 'h2c' ? 'http' : 'https'}:// upstream, not ${scheme}//`,
        'h2c is cleartext HTTP/2 (http://host:port); h2 is HTTP/2 over TLS (https://host:port)', false));
    }
    const line = lc.linePos(positionOf(doc, ['routes', i], false) ?? 0).line;
    return {
      name, path_prefix: r.path_prefix, upstream: new URL(r.upstream), timeout_ms: r.timeout_ms, line,
      upstream_protocol: r.upstream_protocol,
      ...(host !== undefined && { host }),
      ...(r.upstream_ca !== undefined && { upstream_ca: resolve(r.upstream_ca)! }),
      ...(r.max_body_bytes !== undefined && { max_body_bytes: r.max_body_bytes }),
      ...(r.allow !== undefined && { allow: r.allow }),
      ...(r.assertion_audience !== undefined && { assertion_audience: r.assertion_audience }),
    };
  });
  const tls = {
    client_ca: resolve(t.client_ca)!, client_auth: t.client_auth, min_version: t.min_version,
    crl_mode: t.crl_mode, crl_stale: t.crl_stale, watch: t.watch, recheck_interval_ms: t.recheck_interval_ms,
    allow_insecure_key_permissions: t.allow_insecure_key_permissions,
    ...(t.bundle !== undefined && { bundle: resolve(t.bundle)! }),
    ...(t.cert !== undefined && { cert: resolve(t.cert)! }),
    ...(t.key !== undefined && { key: resolve(t.key)! }),
    ...(t.passphrase_file !== undefined && { passphrase_file: resolve(t.passphrase_file)! }),
    ...(t.crl !== undefined && { crl: resolve(t.crl)! }),
  };
  // whoami_path is matched after admit's path step (proxy/admit.ts): a path that step refuses could never be answered.
  const whoami = raw.whoami_path === undefined ? undefined : normalizeRequestPath(raw.whoami_path, { strict: raw.strict_paths });
  if (whoami !== undefined && !whoami.ok) {
    problems.push(problemAt(doc, lc, file, ['whoami_path'], `${raw.whoami_path} is a path certgate refuses (${whoami.reason}): ${PATH_REFUSAL_MESSAGES[whoami.reason]}`,
      'write a plain path, e.g. /.certgate/whoami', false));
  }
  const pass_through = passThrough(raw.headers.pass_through,
    (i, message, hint) => problems.push(problemAt(doc, lc, file, ['headers', 'pass_through', i], message, hint, false)));
  headerNames(raw.headers, pass_through, (keyPath, message, hint, atKey) => problems.push(problemAt(doc, lc, file, ['headers', ...keyPath], message, hint, atKey)));
  raw.proxy_protocol?.trusted.forEach((entry, i) => {
    const cidr = parseCidr(entry);
    if ('problem' in cidr) {
      problems.push(problemAt(doc, lc, file, ['proxy_protocol', 'trusted', i], cidr.problem,
        'write each entry as an address or CIDR of your load balancers, e.g. 10.0.0.0/8, 192.0.2.7 or 2001:db8::/32', false));
    }
  });
  const enrollment = raw.enrollment === undefined ? undefined
    : normaliseEnrollment(raw.enrollment, dir, (key) => lc.linePos(positionOf(doc, ['enrollment', key], false) ?? 0).line);
  const { assertion: a, ...headers } = raw.headers;
  const assertion = a === undefined ? undefined : {
    key_files: a.key_files.map((f) => path.resolve(dir, f)), issuer: a.issuer, ttl_ms: a.ttl_ms,
    lines: a.key_files.map((_, i) => lc.linePos(positionOf(doc, ['headers', 'assertion', 'key_files', i], false) ?? 0).line),
  };
  return {
    file, listen, tls, headers: { ...headers, pass_through, ...(assertion !== undefined && { assertion }) }, routes,
    admin: {
      listen: admin, clients_max: raw.admin.clients_max, ...(raw.admin.token_file !== undefined && { token_file: resolve(raw.admin.token_file)! }),
      allowed_hosts: raw.admin.allowed_hosts.map((h) => h.toLowerCase().replace(/\.$/, '')),
      ...(doc.hasIn(['admin', 'listen']) && { line: lc.linePos(positionOf(doc, ['admin', 'listen'], false) ?? 0).line }),
    },
    log: raw.log, errors: raw.errors, limits: raw.limits, shutdown: raw.shutdown, workers: raw.workers, http2: raw.http2, config_watch: raw.config_watch,
    strict_paths: raw.strict_paths,
    ...(enrollment !== undefined && { enrollment }),
    ...(raw.whoami_path !== undefined && { whoami_path: raw.whoami_path }),
    ...(raw.proxy_protocol !== undefined && { proxy_protocol: { trusted: raw.proxy_protocol.trusted } }),
  };
}

/**
 * headers.pass_through, folded like the stripping rule (identity/headers.ts), so `X_SSL_Client_S_DN` and
 * `x-ssl-client-s-dn` are one entry. A name certgate sets itself would let a client forge it: refused.
 */
function passThrough(names: readonly string[], problem: (i: number, message: string, hint: string) => void): string[] {
  return names.map((name, i) => {
    const folded = foldHeaderName(name);
    const why = passThroughProblem(folded);
    if (why === 'own') {
      problem(i, `"${name}" is a header certgate sets itself: a client's copy must never reach the upstream`,
        'remove it from headers.pass_through (only other platforms\' identity headers can be passed through: README "What the upstream receives")');
    } else if (why === 'not_stripped') {
      problem(i, `"${name}" is not a header certgate strips: it reaches the upstream already`,
        'remove it from headers.pass_through, or check its spelling against the stripped list (README "What the upstream receives")');
    }
    return folded;
  });
}

/**
 * headers.names (identity/dialect.ts namesProblems: no rename may forge, split or shadow a header), and
 * headers.pass_through against what this config sends: a name the dialect sends (a preset's, or a
 * rename's target) is certgate's own under it, so a client's copy must never pass.
 */
function headerNames(
  headers: RawConfig['headers'], passThroughFolded: readonly string[],
  problem: (keyPath: (string | number)[], message: string, hint: string, atKey: boolean) => void,
): void {
  const named = namesProblems(headers, headers.names);
  for (const p of named) problem(['names', p.key], p.message, p.hint, p.atKey);
  if (named.length > 0) return;
  const sent = compileDialect({ ...headers, pass_through: [] }).sent;
  passThroughFolded.forEach((name, i) => {
    // Names certgate always sets are refused by passThrough() already; here the ones this config adds.
    if (sent.has(name) && passThroughProblem(name) !== 'own') {
      problem(['pass_through', i], `"${headers.pass_through[i]}" is a header certgate sends with this headers.preset / headers.names: a client's copy must never reach the upstream`,
        'remove it from headers.pass_through', false);
    }
  });
}

/** Paths resolved like the tls ones; each key's line kept so start-up checks can point at it. */
function normaliseEnrollment(e: NonNullable<RawConfig['enrollment']>, dir: string, lineOf: (key: string) => number): EnrollmentConfig {
  const keys = ['ca_cert', 'ca_key', 'tokens_file', 'state_file'] as const;
  const [ca_cert, ca_key, tokens_file, state_file] = keys.map((k) => path.resolve(dir, e[k])) as [string, string, string, string];
  const [l1, l2, l3, l4] = keys.map(lineOf) as [number, number, number, number];
  return { ca_cert, ca_key, tokens_file, state_file, max_days: e.max_days, lines: { ca_cert: l1, ca_key: l2, tokens_file: l3, state_file: l4 } };
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !(value instanceof URL) && !Object.isFrozen(value)) {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}
