/**
 * The one source of the config file's shape: the validator (config/load.ts) and the editor JSON Schema
 * (config/certgate.schema.json, written by `npm run schema`) are both derived from CONFIG_SCHEMA.
 * Every default lives here. Keys are snake_case, durations are integers in ms with an `_ms` suffix.
 */
import { z } from 'zod';
import { PRESETS } from '../identity/presets.js';

/** HOST:PORT with IPv6 in brackets; shared with the CLI's --listen flags. */
export const HOST_PORT = /^(\[[0-9a-fA-F:.]+\]|[^\s:[\]]+):\d{1,5}$/;

const hostPort = z
  .string()
  .regex(HOST_PORT, { message: 'must be HOST:PORT, e.g. 127.0.0.1:8443 or [::1]:8443' })
  .describe('HOST:PORT; IPv6 in brackets, e.g. [::1]:8443');

const filePath = z.string().min(1).describe('a file path; relative paths resolve against the config file\'s folder');

const upstreamUrl = z
  .url({ protocol: /^https?$/, message: 'must be an http:// or https:// URL, e.g. http://127.0.0.1:3000' })
  .describe('http:// or https:// URL; a path in it is prepended to the request path');

const durationMs = (def: number) => z.number().int().positive().max(86_400_000).default(def);

/** Glob-free exact values (subject_cn, subject_ou, san_dns) and `*`/`**` segment globs (san_uri). */
const stringList = z.array(z.string().min(1)).min(1);

export const ALLOW_SCHEMA = z
  .strictObject({
    subject_cn: stringList.optional().describe('allowed subject CNs (exact, case-sensitive)'),
    subject_ou: stringList.optional().describe('allowed subject OUs (exact, case-sensitive)'),
    san_uri: stringList
      .optional()
      .describe('allowed URI SANs; * = exactly one non-empty path segment, ** = zero or more segments'),
    san_dns: stringList.optional().describe('allowed DNS SANs (case-insensitive; *.example.com matches one label)'),
    fingerprint_sha256: z
      .array(z.string().regex(/^[0-9a-f]{64}$/, { message: 'must be 64 lowercase hex digits (SHA-256 of the DER)' }))
      .min(1)
      .optional()
      .describe('allowed certificate SHA-256 fingerprints, lowercase hex without separators'),
  })
  .describe('a client is allowed when ANY listed value matches; absent = any verified client');

export const ROUTE_SCHEMA = z.strictObject({
  name: z
    .string()
    .regex(/^[A-Za-z0-9_.:/-]+$/, { message: 'may hold letters, digits and _ . : / - only' })
    .optional()
    .describe('label in metrics, logs and errors; default: host + path_prefix'),
  path_prefix: z
    .string()
    .startsWith('/', { message: 'must start with "/", e.g. "/api"' })
    .default('/')
    .describe('segment-aware prefix: /api matches /api and /api/x, not /apix'),
  host: z.string().min(1).optional().describe('match the Host header (case-insensitive, port ignored)'),
  upstream: upstreamUrl,
  upstream_ca: filePath.optional().describe('CA bundle to verify an https:// upstream'),
  upstream_protocol: z
    .enum(['http1', 'h2c', 'h2'])
    .default('http1')
    .describe('how certgate talks to the upstream: http1 (HTTP/1.1), h2c (cleartext HTTP/2 with prior knowledge, an http:// upstream: how gRPC servers listen behind a proxy) or h2 (HTTP/2 over TLS, an https:// upstream). gRPC needs h2c or h2'),
  timeout_ms: durationMs(30_000).describe('upstream response timeout; past it the client gets 504'),
  max_body_bytes: z.number().int().nonnegative().optional().describe('largest request body accepted on this route; beyond it 413'),
  allow: ALLOW_SCHEMA.optional(),
  assertion_audience: z
    .string()
    .regex(/^\S+$/, { message: 'must be one word without spaces, e.g. https://orders.internal or orders' })
    .optional()
    .describe('the aud claim of this route\'s X-Client-Cert-Assertion (headers.assertion); default: the route name'),
});

/** headers.assertion (issue 18): a JWS the upstream verifies against certgate's JWKS. */
export const ASSERTION_SCHEMA = z
  .strictObject({
    key_files: z
      .array(filePath)
      .min(1, { message: 'needs at least one key file (the first signs)' })
      .describe('PEM key files: the first (a private key) signs, all are published at /.well-known/jwks.json; EC P-256 (ES256) or Ed25519 (EdDSA); reloaded live'),
    issuer: z
      .string()
      .regex(/^\S(.*\S)?$/, { message: 'must be a non-empty name without leading or trailing spaces, e.g. certgate' })
      .default('certgate')
      .describe('the iss claim'),
    ttl_ms: z
      .number()
      .int()
      .min(5_000, { message: 'must be at least 5000 (5 s): a shorter lifetime fails on ordinary clock skew' })
      .max(3_600_000, { message: 'must be at most 3600000 (1 h): a captured assertion can be replayed until it expires' })
      .multipleOf(1000, { message: 'must be whole seconds (JWT times are seconds), e.g. 60000' })
      .default(60_000)
      .describe('assertion lifetime (exp = iat + ttl_ms), whole seconds, 5000 to 3600000'),
  })
  .describe('sign an X-Client-Cert-Assertion JWS for every verified request; absent = off');

export const TLS_SCHEMA = z.strictObject({
  bundle: filePath.optional().describe('key + leaf + chain in one PEM file, any block order'),
  cert: filePath.optional().describe('leaf (+ chain) PEM; use with key instead of bundle'),
  key: filePath.optional().describe('private key PEM; may be encrypted (then set passphrase_file)'),
  passphrase_file: filePath.optional().describe('file holding the key passphrase (trailing newline ignored)'),
  client_ca: filePath.describe('trusted client CAs: roots, plus intermediates if clients omit them'),
  crl: filePath.optional().describe('CRL PEM file; one file may hold several CRLs'),
  client_auth: z.enum(['require', 'optional']).default('require'),
  min_version: z.enum(['TLSv1.2', 'TLSv1.3']).default('TLSv1.2'),
  crl_mode: z
    .enum(['leaf', 'chain'])
    .default('leaf')
    .describe('leaf: only the client leaf is checked against its issuer\'s CRL (an issuer without a CRL = not revoked); chain: every CA in the chain needs a CRL (OpenSSL-style)'),
  crl_stale: z
    .enum(['refuse', 'allow'])
    .default('refuse')
    .describe('past a CRL\'s nextUpdate: refuse that issuer\'s clients (crl_expired) or allow (keep using the last CRL)'),
  watch: z.boolean().default(true).describe('reload TLS material when its files change (SIGHUP always reloads)'),
  recheck_interval_ms: durationMs(30_000).describe('backstop: re-read the TLS files this often (watchers can miss a recreated folder)'),
  allow_insecure_key_permissions: z
    .boolean()
    .default(false)
    .describe('accept a world-readable private key file (refused by default)'),
});

export const LIMITS_SCHEMA = z
  .strictObject({
    max_connections: z.number().int().positive().default(10_000).describe('open connections per process; beyond it new ones are closed after accept'),
    handshake_timeout_ms: durationMs(10_000).describe('a TLS connection must finish its handshake within this'),
    header_timeout_ms: durationMs(10_000).describe('a request\'s headers must arrive within this (slowloris)'),
    request_timeout_ms: durationMs(60_000).describe('a whole request (headers + body) must arrive within this'),
    // Below 2000 Node.js clients reuse no connection (config/keepalive.ts): a warning, never a refusal.
    keepalive_timeout_ms: durationMs(5_000).describe('idle keep-alive connections are closed after this; below 2000 Node.js clients reuse no connection (a warning)'),
    max_header_bytes: z.number().int().min(1024).max(1_048_576).default(16_384).describe('request header size limit; beyond it 431'),
    max_requests_per_connection: z.number().int().nonnegative().default(0).describe('requests served per connection before it is closed; 0 = unlimited'),
    max_concurrent_streams: z.number().int().min(1).max(10_000).default(100).describe('HTTP/2: streams a client may have open at once on one connection (SETTINGS_MAX_CONCURRENT_STREAMS); a client opening more than it acknowledged loses the session (nghttp2); before acknowledging, the extra streams are refused (README: Streams over max_concurrent_streams)'),
  })
  .prefault({});

export const ENROLLMENT_SCHEMA = z
  .strictObject({
    ca_cert: filePath.describe('the issuing CA certificate (PEM; its chain may follow); must be in tls.client_ca'),
    ca_key: filePath.describe('the issuing CA\'s private key (unencrypted PEM); refused when world-readable'),
    tokens_file: filePath.describe('enrollment tokens (YAML, secrets stored as sha256:hex); written by certgate certs token'),
    state_file: filePath.describe('where spent tokens are recorded (JSON, written atomically); its folder must be writable'),
    max_days: z.number().int().positive().max(825).default(90).describe('validity cap of issued client certificates, in days'),
  })
  .describe('client certificate enrollment: POST /enroll on the admin listener; absent = off');

export const CONFIG_SCHEMA = z.strictObject({
  $schema: z.string().optional().describe('editor hint; ignored'),
  listen: hostPort.default('127.0.0.1:8443'),
  tls: TLS_SCHEMA,
  headers: z
    .strictObject({
      xfcc: z.boolean().default(false).describe('also send Envoy-style X-Forwarded-Client-Cert'),
      forward_cert: z.boolean().default(false).describe('also send X-Client-Cert (URL-escaped PEM)'),
      rfc9440: z.boolean().default(false).describe('also send RFC 9440 Client-Cert / Client-Cert-Chain'),
      preset: z.enum(PRESETS).default('certgate')
        .describe('the identity headers\' names and value formats: certgate (README), aws-alb (AWS ALB mTLS verify mode: X-Amzn-Mtls-Clientcert-*), nginx-ssl (X-SSL-Client-Verify, -S-DN, -I-DN, -Serial, -Fingerprint, -Cert as nginx\'s $ssl_client_* set them)'),
      names: z.record(z.string(), z.string()).default({})
        .describe('rename sent headers: README header name -> the name to send instead (after the preset); Host, hop-by-hop, Content-*, X-Forwarded-* and other identity headers\' names are refused'),
      spiffe_id: z.boolean().default(false).describe('also send X-Client-Cert-Spiffe-Id: the one spiffe:// URI SAN (absent when none or several)'),
      tls_info: z.boolean().default(false).describe('also send X-Client-TLS-Version and X-Client-TLS-Cipher (the connection\'s, OpenSSL names as nginx\'s $ssl_protocol / $ssl_cipher)'),
      pass_through: z
        .array(z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]*$/, { message: 'must be a header name (letters, digits, - _ .), without wildcards, e.g. X-SSL-Client-S-DN' }))
        .default([])
        .describe('other platforms\' identity headers (README list: X-SSL-Client-*, X-Amzn-Mtls-Clientcert-*, Cf-Client-Cert-*, True-Client-IP, X-Original-URL, ...) are stripped from requests; these named ones are forwarded as the client sent them. Names certgate sets itself cannot be listed'),
      assertion: ASSERTION_SCHEMA.optional(),
    })
    .prefault({}),
  routes: z.array(ROUTE_SCHEMA).min(1, { message: 'needs at least one route' }).describe('first match wins'),
  admin: z
    .strictObject({
      listen: hostPort.default('127.0.0.1:9090').describe('/healthz /readyz /metrics, / (status page), /status.json, /clients'),
      clients_max: z.number().int().positive().max(1_000_000).default(1000)
        .describe('how many distinct client certificates /clients remembers (least recently connected dropped first)'),
      token_file: filePath.optional()
        .describe('file holding a bearer token (>= 16 chars); then every admin path but /healthz /readyz /metrics needs Authorization: Bearer <token>'),
      allowed_hosts: z
        .array(z.string().regex(/^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*\.?$/, { message: 'must be a host name without port or wildcard, e.g. certgate-admin.certgate.svc' }))
        .default([])
        .describe('Host names the admin listener answers besides IP literals and localhost (DNS-rebinding guard); any other Host gets 421'),
    })
    .prefault({}),
  log: z
    .strictObject({
      level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
      format: z.enum(['auto', 'json', 'pretty']).default('auto')
        .describe('json: one JSON object a line; pretty: pino-pretty (dev dependency); auto: pretty on a TTY, else json'),
      access: z.boolean().default(true).describe('one access-log line per request'),
    })
    .prefault({}),
  errors: z
    .strictObject({
      verbose: z.boolean().default(false).describe('403 bodies name the allow rule set that refused'),
    })
    .prefault({}),
  limits: LIMITS_SCHEMA,
  enrollment: ENROLLMENT_SCHEMA.optional(),
  proxy_protocol: z
    .strictObject({
      trusted: z
        .array(z.string().min(1))
        .min(1)
        .describe('load balancers allowed to send a PROXY protocol header, as CIDRs or single addresses, IPv4 or IPv6 (e.g. 10.0.0.0/8, 2001:db8::/32, 192.0.2.7)'),
    })
    .optional()
    .describe('PROXY protocol v1/v2 (HAProxy send-proxy, AWS NLB, ...): connections from a trusted address must start with a PROXY header, whose source address becomes the client address (X-Forwarded-For, access log, /clients); a PROXY header from any other address is refused; absent = off'),
  strict_paths: z
    .boolean()
    .default(true)
    .describe('refuse (400) path segments that upstreams fold into other names: a trailing "." or whitespace (/admin., /admin%20), ":$" (/admin::$DATA), double percent-encoding (%252e), an encoded ";" (%3B); false = forward them'),
  whoami_path: z
    .string()
    .regex(/^\/[^?#\s]+$/, { message: 'must be a path other than "/", without query or spaces, e.g. /.certgate/whoami' })
    .optional()
    .describe('certgate answers GET on this exact path itself (never forwarded), for verified clients: the identity headers the upstream would see and the route that would match (certgate probe reads it); absent = off'),
  http2: z
    .boolean()
    .default(true)
    .describe('offer HTTP/2 (ALPN h2) beside HTTP/1.1 on the TLS listener; false = HTTP/1.1 only'),
  config_watch: z
    .boolean()
    .default(true)
    .describe('watch the config file (and the folder holding it: a Kubernetes ConfigMap `..data` swap) and apply a valid change live, as SIGHUP and POST /-/reload on the admin listener do; false = only those'),
  workers: z
    .union([z.literal('auto'), z.number().int().min(1).max(256)], { message: 'must be auto or a whole number of processes from 1 to 256' })
    .default('auto')
    .describe('proxy processes (node:cluster); auto = the cores available to this process; 1 = a single process, no cluster. Limits (max_connections, ...) apply per worker'),
  shutdown: z
    .strictObject({
      drain_timeout_ms: durationMs(25_000).describe('on SIGTERM/SIGINT, how long in-flight requests may take to finish'),
    })
    .prefault({}),
});

/** The config as written, after defaults (paths still as written). */
export type RawConfig = z.output<typeof CONFIG_SCHEMA>;
export type AllowConfig = z.output<typeof ALLOW_SCHEMA>;

/** Every key path the schema knows, for "did you mean" hints on unknown keys. */
export function knownKeys(): Map<string, string[]> {
  const out = new Map<string, string[]>();
  const walk = (schema: z.ZodType, path: string): void => {
    let s: z.ZodType = schema;
    // unwrap optional/default/prefault wrappers
    for (;;) {
      const def = (s as unknown as { def: { type: string; innerType?: z.ZodType; element?: z.ZodType } }).def;
      if (def.innerType && (def.type === 'optional' || def.type === 'default' || def.type === 'prefault')) {
        s = def.innerType;
      } else if (def.type === 'array' && def.element) {
        s = def.element;
        path = `${path}[]`;
      } else break;
    }
    if (s instanceof z.ZodObject) {
      const keys = Object.keys(s.shape);
      out.set(path, keys);
      for (const k of keys) walk(s.shape[k] as z.ZodType, path === '' ? k : `${path}.${k}`);
    }
  };
  walk(CONFIG_SCHEMA, '');
  return out;
}
