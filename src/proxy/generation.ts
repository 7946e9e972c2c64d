/**
 * A configuration generation: every part of the pipeline that depends on the config — router, policies,
 * header options, upstream pools, per-request limits, the whoami_path answer — built from one Config,
 * together. Each request reads the current generation once, when it arrives, and is served by that
 * snapshot to its end; a live reload (issue 17) builds a new one and swaps it in for the requests after.
 */
import type { Config, HeadersConfig, RouteConfig } from '../config/types.js';
import { createRouter, type Router } from './routes.js';
import { compileAllow, type Policy } from './policy.js';
import { createUpstreams, type PoolShelf, type Upstreams } from './upstreams.js';
import { createWhoamiEndpoint, type WhoamiEndpoint } from './whoami-endpoint.js';
import { prepareHeaders } from './request-headers.js';
import { loadAssertionKeys } from '../tls/assertion-keys.js';
import { createAssertionSigner, type AssertionSigner } from './assertion.js';
import { compileDialect, type HeaderDialect } from '../identity/dialect.js';

/** The part of the config a generation is built from. */
export type GenerationConfig = Pick<Config, 'routes' | 'headers' | 'errors' | 'strict_paths' | 'whoami_path'>
  & { readonly limits: Pick<Config['limits'], 'max_requests_per_connection'> }
  & Partial<Pick<Config, 'file'>> & { readonly tls?: Pick<Config['tls'], 'allow_insecure_key_permissions'> };

export interface Generation {
  /** 1 for the config certgate started with; each applied config counts up. */
  readonly id: number;
  readonly routes: readonly RouteConfig[];
  readonly match: Router;
  /** Every route's compiled allow list, by route name. */
  readonly policies: ReadonlyMap<string, Policy>;
  readonly headers: HeadersConfig;
  /** `headers` compiled: the identity headers' names and formats, and what is stripped (identity/dialect.ts). */
  readonly dialect: HeaderDialect;
  /** strict_paths (http/path.ts). */
  readonly strictPaths: boolean;
  /** errors.verbose: 403 bodies name the rule kinds that refused. */
  readonly verboseErrors: boolean;
  /**
   * limits.max_requests_per_connection: the last allowed response says Connection: close (Node's own
   * maxRequestsPerSocket, set on the listener, is the backstop). 0 = unlimited.
   */
  readonly maxRequestsPerConnection: number;
  /** certgate's own answer at whoami_path; undefined when not configured. */
  readonly whoami: WhoamiEndpoint | undefined;
  readonly upstreams: Upstreams;
  /**
   * headers.assertion's signer (proxy/assertion.ts), with this generation's keys and its own cache: a reload
   * never reuses an assertion. undefined when headers.assertion is not set.
   */
  readonly assertion: AssertionSigner | undefined;
  /**
   * Lets go of the upstream pools now: a pool no other generation holds closes (requests still on it fail):
   * shutdown, after its drain.
   */
  close(): void;
  /** A request or tunnel served by this generation began; the returned function says it ended (idempotent). */
  hold(): () => void;
  /**
   * hold() without its closure, for the per-request path (issue 19): enter() when a request begins, and
   * leave() exactly once when it has ended (the caller keeps it to once).
   */
  enter(): void;
  leave(): void;
  /**
   * No new request takes this generation (a reload swapped in the next): it lets go of its pools once every
   * request holding it has ended, so a request in flight finishes on its own route and upstream; a pool the
   * next generation took over (an unchanged upstream) stays open, the others close then.
   */
  retire(): void;
}

/** Where the pipeline finds the generation a new request takes. */
export interface Generations {
  readonly current: Generation;
}

/**
 * `pools`: the shelf the process's generations share (upstreams.ts): a route whose upstream is built from
 * the same settings as in the generation before keeps that generation's pool and its kept-alive connections.
 */
export async function buildGeneration(config: GenerationConfig, id: number, pools?: PoolShelf): Promise<Generation> {
  const match = createRouter(config.routes);
  const policies = new Map(config.routes.map((r) => [r.name, compileAllow(r.allow)] as const));
  const headers = config.headers;
  // The keys first: a bad key throws (CG_ASSERTION_KEY, file:line) before any pool is opened.
  const a = config.headers.assertion;
  const assertion = a === undefined ? undefined
    : createAssertionSigner(a, await loadAssertionKeys(a, config.file ?? '', config.tls?.allow_insecure_key_permissions === true));
  const dialect = compileDialect(headers);
  const upstreams = await createUpstreams(config.routes, pools);
  // whoami_path (certgate probe): the headers step's result for this connection, computed on a copy.
  const whoami = config.whoami_path === undefined ? undefined : createWhoamiEndpoint({
    path: config.whoami_path, match, policies, verbose: config.errors.verbose,
    sent: dialect.sent,
    upstreamHeaders: (req, identity) => {
      const view = { headers: { ...req.headers }, socket: req.socket };
      prepareHeaders(view, identity, false, dialect);
      return view.headers;
    },
  });
  let held = 0;
  let retired = false;
  let closed = false;
  const close = (): void => {
    if (closed) return;
    closed = true;
    upstreams.close();
  };
  const enter = (): void => {
    held += 1;
  };
  const leave = (): void => {
    held -= 1;
    if (retired && held === 0) close();
  };
  return {
    id, routes: config.routes, match, policies, headers, dialect, strictPaths: config.strict_paths, verboseErrors: config.errors.verbose,
    maxRequestsPerConnection: config.limits.max_requests_per_connection, whoami, upstreams, assertion,
    close,
    hold() {
      enter();
      let done = false;
      return () => {
        if (done) return;
        done = true;
        leave();
      };
    },
    enter,
    leave,
    retire() {
      retired = true;
      if (held === 0) close();
    },
  };
}
