/**
 * The identity headers certgate sends upstream, and the client-sent headers it removes first.
 *
 * Upstreams trust these headers because certgate strips every spelling a client could use to
 * forge them: CGI/WSGI and PHP turn `-` and `.` into `_` for their HTTP_* variables, so a
 * client's `X_Client_Cert_Subject` lands on the same HTTP_X_CLIENT_CERT_SUBJECT as ours
 * (Traefik's 2026 advisory; ANCHORS.md §1c row 34). Other platforms' identity headers (FOREIGN_IDENTITY_HEADERS)
 * are removed the same way, unless `headers.pass_through` names them (issue 13 finding 11).
 */
import type { IncomingHttpHeaders } from 'node:http';
import { compileDialect, type HeaderDialect, type Preset } from './dialect.js';
import type { ClientIdentity } from './types.js';

const CONTROLLED_NAMES = new Set([
  'x-client-cert', 'x-forwarded-client-cert', 'forwarded', 'x-real-ip', 'client-cert', 'client-cert-chain',
]);

/** A header name as the stripping rules compare it: lower case, `_` and `.` spelled `-` (what CGI/WSGI/PHP merge). */
export function foldHeaderName(name: string): string {
  const lower = name.toLowerCase();
  return lower.includes('_') || lower.includes('.') ? lower.replace(/[_.]/g, '-') : lower;
}

/** Whether a request header is one only certgate may set (any case, `_`/`.` spelled as `-`). */
export function isClientControlledHeader(name: string): boolean {
  const folded = foldHeaderName(name);
  // Prefixes, not exact names: X-Client-Certificate or Client-Cert-Url look like ours to an upstream too.
  return CONTROLLED_NAMES.has(folded) || folded.startsWith('x-client-cert') || folded.startsWith('client-cert')
    || folded.startsWith('x-client-tls-') || folded.startsWith('x-forwarded-');
}

export interface HeaderFamily {
  /** Folded spelling; a trailing `*` = every name starting with the rest. */
  readonly pattern: string;
  /** Who sets it, so an operator can tell which migration it protects. */
  readonly from: string;
}

/**
 * Identity headers other platforms set, stripped by default (README "What the upstream receives" lists
 * them; `headers.pass_through` lets named ones through). An app moved to certgate from one of these still
 * reads them, and since certgate terminates TLS nothing in front of it can have set them: every copy is
 * the client's. Same spelling rules as certgate's own names (`_`/`.` as `-`, any case).
 */
export const FOREIGN_IDENTITY_HEADERS: readonly HeaderFamily[] = [
  // Client certificate headers
  { pattern: 'x-ssl', from: 'HAProxy recipes (X-SSL: the request came over TLS)' },
  { pattern: 'x-ssl-*', from: 'HAProxy, nginx and Apache recipes: X-SSL-Client-Cert, X-SSL-Client-S-DN, X-SSL-Client-Verify, X-SSL-Cert, X-SSL-Issuer' },
  { pattern: 'ssl-client-*', from: 'ingress-nginx (ssl-client-verify, ssl-client-subject-dn, ssl-client-cert) and Apache mod_ssl\'s CGI names (SSL_CLIENT_S_DN, SSL_CLIENT_VERIFY)' },
  { pattern: 'x-client-verify', from: 'nginx recipes: X-Client-Verify ($ssl_client_verify)' },
  { pattern: 'x-client-verified', from: 'nginx recipes: X-Client-Verified' },
  { pattern: 'x-client-dn', from: 'nginx recipes: X-Client-DN ($ssl_client_s_dn)' },
  { pattern: 'x-client-s-dn', from: 'nginx recipes: X-Client-S-DN' },
  { pattern: 'x-client-i-dn', from: 'nginx recipes: X-Client-I-DN' },
  { pattern: 'x-amzn-mtls-clientcert*', from: 'AWS ALB mTLS: X-Amzn-Mtls-Clientcert (passthrough), -Subject, -Issuer, -Serial-Number, -Validity, -Leaf (verify)' },
  { pattern: 'x-amzn-tls-*', from: 'AWS ALB: X-Amzn-TLS-Version, X-Amzn-TLS-Cipher-Suite' },
  { pattern: 'cf-client-cert*', from: 'Cloudflare mTLS "forward a client certificate": Cf-Client-Cert-Der-Base64, Cf-Client-Cert-Sha256' },
  { pattern: 'cf-cert-*', from: 'Cloudflare managed transform "Add TLS client auth headers": Cf-Cert-Verified, -Subject-Dn, -Issuer-Dn, -Serial, -Fingerprint-Sha256' },
  { pattern: 'x-arr-clientcert', from: 'Azure App Service: the client certificate' },
  { pattern: 'x-arr-ssl', from: 'Azure App Service: the request came over TLS' },
  // Caller identity from a platform's authentication
  { pattern: 'x-amzn-oidc-*', from: 'AWS ALB authentication: X-Amzn-Oidc-Identity, -Data, -Accesstoken' },
  { pattern: 'cf-access-*', from: 'Cloudflare Access: Cf-Access-Authenticated-User-Email, Cf-Access-Jwt-Assertion' },
  { pattern: 'x-goog-authenticated-user-*', from: 'Google IAP: X-Goog-Authenticated-User-Email, -Id' },
  { pattern: 'x-goog-iap-*', from: 'Google IAP: X-Goog-IAP-JWT-Assertion' },
  { pattern: 'x-ms-client-principal*', from: 'Azure App Service authentication: X-MS-Client-Principal, -Name, -Id, -Idp' },
  { pattern: 'x-pomerium-*', from: 'Pomerium: X-Pomerium-Jwt-Assertion, X-Pomerium-Claim-*' },
  { pattern: 'x-authentik-*', from: 'authentik proxy outpost: X-Authentik-Username, -Email, -Groups' },
  { pattern: 'x-auth-request-*', from: 'oauth2-proxy: X-Auth-Request-User, -Email, -Groups, -Access-Token' },
  { pattern: 'remote-user', from: 'Authelia and other SSO proxies' },
  { pattern: 'remote-email', from: 'Authelia' },
  { pattern: 'remote-groups', from: 'Authelia' },
  { pattern: 'remote-name', from: 'Authelia' },
  { pattern: 'x-envoy-*', from: 'Envoy/Istio internal headers (X-Envoy-Internal, -External-Address, -Original-Path, -Peer-Metadata), which Envoy itself strips from external requests' },
  // The client's address
  { pattern: 'true-client-ip', from: 'Akamai, Cloudflare Enterprise' },
  { pattern: 'cf-connecting-ip*', from: 'Cloudflare: Cf-Connecting-IP, Cf-Connecting-IPv6' },
  { pattern: 'x-client-ip', from: 'various load balancers; read by client-address libraries (request-ip, ipware)' },
  { pattern: 'x-cluster-client-ip', from: 'Rackspace and other load balancers; read by client-address libraries' },
  { pattern: 'fastly-client-ip', from: 'Fastly' },
  // Outside certgate's own X-Forwarded-* family, yet read as the client's address: request-ip and ipware
  // read X-Forwarded and Forwarded-For (HTTP_X_FORWARDED, HTTP_FORWARDED_FOR), classic PHP snippets
  // HTTP_CLIENT_IP (the header Client-IP), classic Java ones getHeader("Proxy-Client-IP"),
  // ("WL-Proxy-Client-IP") and ("HTTP_CLIENT_IP") / ("HTTP_X_FORWARDED_FOR") taken as header names.
  { pattern: 'x-forwarded', from: 'Squid and others; read by request-ip and ipware (HTTP_X_FORWARDED)' },
  { pattern: 'forwarded-for', from: 'a de facto variant of X-Forwarded-For; read by request-ip and ipware (HTTP_FORWARDED_FOR)' },
  { pattern: 'client-ip', from: 'read by classic PHP and ipware client-address code (HTTP_CLIENT_IP)' },
  { pattern: 'http-client-ip', from: 'classic Java getIpAddr code: request.getHeader("HTTP_CLIENT_IP")' },
  { pattern: 'http-x-forwarded-for', from: 'classic Java getIpAddr code: request.getHeader("HTTP_X_FORWARDED_FOR")' },
  { pattern: 'proxy-client-ip', from: 'Apache/WebLogic plug-ins; classic Java getIpAddr code' },
  { pattern: 'wl-proxy-client-ip', from: 'WebLogic proxy plug-in; classic Java getIpAddr code' },
  { pattern: 'x-originating-ip', from: 'Microsoft Exchange/Outlook and other gateways' },
  { pattern: 'x-remote-ip', from: 'various proxies; classic client-address snippets' },
  { pattern: 'x-remote-addr', from: 'various proxies; classic client-address snippets' },
  { pattern: 'x-proxyuser-ip', from: 'Google services\' proxies; classic client-address snippets' },
  { pattern: 'x-appengine-user-ip', from: 'Google App Engine; read by request-ip and ipware' },
  { pattern: 'cf-pseudo-ipv4', from: 'Cloudflare Pseudo IPv4; read by request-ip' },
  { pattern: 'fly-client-ip', from: 'Fly.io; read by ipware' },
  { pattern: 'x-azure-clientip', from: 'Azure Front Door; read by ipware' },
  { pattern: 'x-azure-socketip', from: 'Azure Front Door' },
  { pattern: 'do-connecting-ip', from: 'DigitalOcean App Platform; read by ipware' },
  { pattern: 'x-original-forwarded-for', from: 'ingress-nginx (the X-Forwarded-For it received)' },
  // Request-target overrides: the app routes (and authorises) by these instead of the path certgate matched
  { pattern: 'x-original-url', from: 'IIS URL Rewrite/ARR; honoured by Symfony and Laminas' },
  { pattern: 'x-rewrite-url', from: 'IIS; honoured by Symfony and Laminas' },
  { pattern: 'x-original-uri', from: 'nginx auth_request recipes' },
];

interface Bucket {
  readonly exact: Set<string>;
  readonly prefixes: string[];
}

/**
 * Every stripped family (certgate's own + FOREIGN_IDENTITY_HEADERS), bucketed so a header costs one
 * array index and a few startsWith: the key is the first character, or for `x-` names the third.
 * Every pattern is at least 4 characters long.
 */
const BUCKETS: (Bucket | undefined)[] = [];
const bucketKey = (folded: string): number => {
  const c0 = folded.charCodeAt(0);
  return c0 === 0x78 && folded.charCodeAt(1) === 0x2d ? 128 + (folded.charCodeAt(2) & 0x7f) : c0 & 0x7f;
};
for (const pattern of [
  ...CONTROLLED_NAMES, 'x-client-cert*', 'client-cert*', 'x-client-tls-*', 'x-forwarded-*',
  ...FOREIGN_IDENTITY_HEADERS.map((f) => f.pattern),
]) {
  const prefix = pattern.endsWith('*');
  const text = prefix ? pattern.slice(0, -1) : pattern;
  if (text.length < 4) throw new Error(`header pattern ${pattern}: strippedFolded skips names shorter than 4 characters`);
  const key = bucketKey(text);
  const bucket = BUCKETS[key] ?? (BUCKETS[key] = { exact: new Set(), prefixes: [] });
  if (prefix) bucket.prefixes.push(text);
  else bucket.exact.add(text);
}

function strippedFolded(folded: string): boolean {
  if (folded.length < 4) return false;
  const bucket = BUCKETS[bucketKey(folded)];
  if (bucket === undefined) return false;
  if (bucket.exact.has(folded)) return true;
  for (const p of bucket.prefixes) if (folded.startsWith(p)) return true;
  return false;
}

/** Whether certgate removes this request header by default: its own names or another platform's identity headers. */
export function isStrippedHeader(name: string): boolean {
  return strippedFolded(foldHeaderName(name));
}

/** Why a `headers.pass_through` entry (already folded) cannot be honoured; undefined = fine. */
export function passThroughProblem(folded: string): 'own' | 'not_stripped' | undefined {
  // x-request-id is certgate's too: it keeps a safe client id and replaces any other (proxy/telemetry.ts).
  if (isClientControlledHeader(folded) || folded === 'x-request-id') return 'own';
  return strippedFolded(folded) ? undefined : 'not_stripped';
}

interface StripPlan {
  /** Foreign names let through (folded): pass_through minus certgate's own and minus the sent names. */
  readonly pass: ReadonlySet<string>;
  /** Sent names no stripped family covers (a `headers.names` rename such as X-User-DN): usually none. */
  readonly extra: ReadonlySet<string>;
}

/** Compiled plans: per pass_through array without `sent`, per `sent` set (one per dialect) with it. */
const byPassThrough = new WeakMap<readonly string[], StripPlan>();
const bySent = new WeakMap<ReadonlySet<string>, StripPlan>();
const NO_PASS: readonly string[] = Object.freeze([]);
const NOTHING: ReadonlySet<string> = new Set();

function stripPlan(passThrough: readonly string[], sent: ReadonlySet<string>): StripPlan {
  const cache = sent === NOTHING ? byPassThrough : bySent;
  const key = sent === NOTHING ? passThrough : sent;
  let plan = (cache as WeakMap<object, StripPlan>).get(key);
  if (plan === undefined) {
    plan = {
      pass: new Set(passThrough.map(foldHeaderName).filter((n) => !isClientControlledHeader(n) && !sent.has(n))),
      extra: new Set([...sent].filter((n) => !strippedFolded(n))),
    };
    (cache as WeakMap<object, StripPlan>).set(key, plan);
  }
  return plan;
}

/**
 * Deletes, in place, every client-sent header certgate strips (Node has already lower-cased the names),
 * except the foreign ones named in `passThrough` (folded names, as config/load.ts stores them). certgate's
 * own names are deleted whatever `passThrough` says, and so is every name in `sent` (folded; one set per
 * dialect, identity/dialect.ts): the names the configuration sends — a preset's, and `headers.names`
 * renames that no family covers. Runs on every request: no allocation for the common all-lower-case,
 * dash-only name, one bucket lookup per header (plus one Set lookup only when a rename left the families).
 */
export function stripClientControlled(
  headers: IncomingHttpHeaders, passThrough: readonly string[] = NO_PASS, sent: ReadonlySet<string> = NOTHING,
): void {
  const { pass, extra } = stripPlan(passThrough, sent);
  for (const name of Object.keys(headers)) {
    const folded = foldHeaderName(name);
    if (strippedFolded(folded) ? !(pass.size > 0 && pass.has(folded)) : extra.size > 0 && extra.has(folded)) delete headers[name];
  }
}

/**
 * The options that shape the identity headers (pass_through only shapes stripping): config's `headers`
 * (config/types.ts HeadersConfig) by shape, since config/ checks `headers.pass_through` with the rules
 * above and so stands a floor higher. Absent dialect options mean the defaults (preset certgate, off).
 */
export interface IdentityHeaderOptions {
  readonly xfcc: boolean;
  readonly forward_cert: boolean;
  readonly rfc9440: boolean;
  readonly preset?: Preset;
  readonly spiffe_id?: boolean;
}

/**
 * headers.assertion's header (issue 18): a JWS certgate signs per connection and route. Like every name
 * certgate sets, a client's copy is stripped in every spelling (the x-client-cert prefix above).
 */
export const ASSERTION_HEADER = 'x-client-cert-assertion';

/** Compiled dialects by option set (at most a few dozen: the options are booleans and a preset). */
const dialects = new Map<string, HeaderDialect>();

/**
 * The header set for a request without renames or TLS facts (tests, and callers without a generation):
 * `x-client-cert-verified: NONE` alone without a certificate, otherwise SUCCESS plus the certificate's
 * fields, each omitted when empty. Every value is printable ASCII. The returned object is frozen and
 * shared: copy it, don't change it. The pipeline uses its generation's compiled dialect instead (dialect.ts).
 */
export function identityHeaders(
  identity: ClientIdentity | undefined,
  opts: IdentityHeaderOptions,
): Readonly<Record<string, string>> {
  const choice = {
    preset: opts.preset ?? 'certgate', xfcc: opts.xfcc, forward_cert: opts.forward_cert, rfc9440: opts.rfc9440,
    spiffe_id: opts.spiffe_id ?? false, tls_info: false,
  } as const;
  const key = JSON.stringify(choice);
  let dialect = dialects.get(key);
  if (dialect === undefined) {
    dialect = compileDialect({ ...choice, names: {}, pass_through: [] });
    dialects.set(key, dialect);
  }
  return dialect.headers(identity, undefined);
}
