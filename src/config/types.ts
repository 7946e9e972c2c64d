/**
 * The validated, normalised config every module receives: absolute paths, parsed addresses,
 * no optional defaults left to fill. Produced only by loadConfig(); deep-frozen.
 */
import type { AllowConfig } from './schema.js';

export type { AllowConfig } from './schema.js';

export interface HostPort {
  /** Host without brackets: "127.0.0.1", "::1", "localhost". */
  readonly host: string;
  readonly port: number;
}

export interface TlsConfig {
  /** Absolute paths. Either bundle, or cert (+ key). */
  readonly bundle?: string;
  readonly cert?: string;
  readonly key?: string;
  readonly passphrase_file?: string;
  readonly client_ca: string;
  readonly crl?: string;
  readonly client_auth: 'require' | 'optional';
  readonly min_version: 'TLSv1.2' | 'TLSv1.3';
  readonly crl_mode: 'leaf' | 'chain';
  readonly crl_stale: 'refuse' | 'allow';
  readonly watch: boolean;
  readonly recheck_interval_ms: number;
  readonly allow_insecure_key_permissions: boolean;
}

export interface LimitsConfig {
  readonly max_connections: number;
  readonly handshake_timeout_ms: number;
  readonly header_timeout_ms: number;
  readonly request_timeout_ms: number;
  readonly keepalive_timeout_ms: number;
  readonly max_header_bytes: number;
  readonly max_requests_per_connection: number;
  /** HTTP/2: SETTINGS_MAX_CONCURRENT_STREAMS offered to every client session. */
  readonly max_concurrent_streams: number;
}

export interface HeadersConfig {
  readonly xfcc: boolean;
  readonly forward_cert: boolean;
  readonly rfc9440: boolean;
  /** Names and value formats of the identity headers (identity/presets.ts). */
  readonly preset: 'certgate' | 'aws-alb' | 'nginx-ssl';
  /** A sent header's README name → the name sent instead; checked by identity/dialect.ts namesProblems. */
  readonly names: Readonly<Record<string, string>>;
  /** X-Client-Cert-Spiffe-Id. */
  readonly spiffe_id: boolean;
  /** X-Client-TLS-Version / X-Client-TLS-Cipher. */
  readonly tls_info: boolean;
  /** Foreign identity headers (identity/headers.ts FOREIGN_IDENTITY_HEADERS) forwarded anyway; folded names. */
  readonly pass_through: readonly string[];
  /** headers.assertion (issue 18); absent = no X-Client-Cert-Assertion. */
  readonly assertion?: AssertionConfig;
}

/** headers.assertion: the keys that sign X-Client-Cert-Assertion and the token's issuer and lifetime. */
export interface AssertionConfig {
  /** Absolute paths; the first signs, all are published (JWKS). */
  readonly key_files: readonly string[];
  readonly issuer: string;
  /** Whole seconds, in ms (schema: 5000 to 3600000). */
  readonly ttl_ms: number;
  /** Config-file line of each key_files entry, for messages that point at it. */
  readonly lines: readonly number[];
}

export interface ProxyProtocolConfig {
  /** CIDRs (or single addresses) as written, each checked by net/cidr.ts parseCidr when loaded. */
  readonly trusted: readonly string[];
}

export interface RouteConfig {
  /** Always set: the configured name, or host + path_prefix. */
  readonly name: string;
  readonly path_prefix: string;
  /** Lower-cased, without port. */
  readonly host?: string;
  readonly upstream: URL;
  /** Absolute path. */
  readonly upstream_ca?: string;
  /** How the hop speaks to the upstream (upstreams.ts); absent = http1. */
  readonly upstream_protocol?: 'http1' | 'h2c' | 'h2';
  readonly timeout_ms: number;
  readonly max_body_bytes?: number;
  readonly allow?: AllowConfig;
  /** The aud claim of this route's assertion (headers.assertion); absent = the route name. */
  readonly assertion_audience?: string;
  /** Where the route is defined, for messages. */
  readonly line?: number;
}

export interface EnrollmentConfig {
  /** Absolute paths. */
  readonly ca_cert: string;
  readonly ca_key: string;
  readonly tokens_file: string;
  readonly state_file: string;
  readonly max_days: number;
  /** Config-file line of each key, for messages that point at it. */
  readonly lines: { readonly ca_cert: number; readonly ca_key: number; readonly tokens_file: number; readonly state_file: number };
}

export interface Config {
  /** Absolute path of the config file. */
  readonly file: string;
  readonly listen: HostPort;
  readonly tls: TlsConfig;
  readonly headers: HeadersConfig;
  readonly routes: readonly RouteConfig[];
  readonly admin: {
    readonly listen: HostPort;
    readonly clients_max: number;
    /** Absolute path; absent = the admin listener needs no token. */
    readonly token_file?: string;
    /** Host names answered besides IP literals and localhost (admin/host.ts); lower case, no trailing dot. */
    readonly allowed_hosts: readonly string[];
    /** Config-file line of admin.listen when written, for messages that point at it. */
    readonly line?: number;
  };
  readonly log: {
    readonly level: 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent';
    readonly format: 'auto' | 'json' | 'pretty';
    readonly access: boolean;
  };
  readonly errors: { readonly verbose: boolean };
  /** Refuse path segments that upstreams fold into other names (http/path.ts, strict). Default true. */
  readonly strict_paths: boolean;
  readonly limits: LimitsConfig;
  readonly shutdown: { readonly drain_timeout_ms: number };
  /** Proxy processes: 'auto' = os.availableParallelism(); 1 = no cluster (cluster/primary.ts). */
  readonly workers: 'auto' | number;
  /** Watch the config file and apply a valid change live (app/live-config.ts). Default true. */
  readonly config_watch: boolean;
  /** Offer HTTP/2 (ALPN h2) on the TLS listener beside HTTP/1.1 (proxy/http2.ts). Default true. */
  readonly http2: boolean;
  /** Absent = enrollment off. */
  readonly enrollment?: EnrollmentConfig;
  /** Exact request path certgate answers itself with the connection's identity (certgate probe); absent = off. */
  readonly whoami_path?: string;
  /** PROXY protocol from these senders (proxy/proxy-protocol-gate.ts); absent = off. */
  readonly proxy_protocol?: ProxyProtocolConfig;
}
