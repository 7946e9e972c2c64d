/**
 * Route selection: first route in config order whose host and path_prefix match. Pure; the
 * prefixes and hosts are prepared once in createRouter(), so a lookup is string compares only.
 *
 * Matching rules (all chosen so that a request never slips past a stricter route to a laxer one):
 * - `path` is the output of normalizeRequestPath() (decoded, dot-segments removed).
 * - path_prefix is segment-aware: `/api` matches `/api`, `/api/`, `/api/x`, never `/apix`.
 * - A trailing slash in path_prefix is not significant: `/api/` behaves exactly like `/api` and so
 *   also matches `/api`. Otherwise `/api` would fall through to a later (maybe laxer) route,
 *   while most upstreams serve `/api` and `/api/` alike (or redirect one to the other).
 * - The path compare is case-insensitive: Express (default), ASP.NET and case-insensitive file
 *   systems serve `/ADMIN` as `/admin`, so `/ADMIN` must meet the `/admin` route's policy.
 * - host compares case-insensitively, without the Host header's port and without one trailing
 *   dot (`example.com.` is the same name); IPv6 `[::1]:8443` compares as `::1` (canonical form, so
 *   `[0::1]` too). A malformed Host never gets here: the admit step refuses it (admit.ts, http/host.ts). A
 *   route without host matches every host, and a request without Host matches only such routes.
 */
import type { RouteConfig } from '../config/types.js';
import { CertgateError } from '../errors.js';
import { parseHost, routeHostName, routeHostProblem } from '../http/host.js';
import { pathPrefixProblem, stripTrailingSlashes } from '../http/route-values.js';

export type Router = (host: string | undefined, path: string) => RouteConfig | undefined;

interface CompiledRoute {
  readonly route: RouteConfig;
  readonly host: string | undefined;
  /** Lower-cased prefix without trailing slash ("" for "/"), and the same plus "/". */
  readonly exact: string;
  readonly withSlash: string;
}

export function createRouter(routes: readonly RouteConfig[]): Router {
  const compiled: CompiledRoute[] = routes.map((route) => {
    const problem = pathPrefixProblem(route.path_prefix);
    if (problem !== undefined) {
      throw new CertgateError('CG_CONFIG_INVALID', `route "${route.name}": ${problem}`, {
        ...(route.line !== undefined && { line: route.line }),
      });
    }
    const hostProblem = route.host === undefined ? undefined : routeHostProblem(route.host);
    if (hostProblem !== undefined) {
      throw new CertgateError('CG_CONFIG_INVALID', `route "${route.name}": ${hostProblem}`, {
        ...(route.line !== undefined && { line: route.line }),
      });
    }
    const exact = stripTrailingSlashes(route.path_prefix).toLowerCase();
    return {
      route,
      host: route.host === undefined ? undefined : normalizeHost(route.host),
      exact,
      withSlash: exact + '/',
    };
  });

  return (hostHeader, path) => {
    const host = hostFromHeader(hostHeader);
    const p = path.toLowerCase();
    for (const c of compiled) {
      if (c.host !== undefined && c.host !== host) continue;
      if (p === c.exact || p.startsWith(c.withSlash)) return c.route;
    }
    return undefined;
  };
}

/**
 * The host name in a Host header, as routes compare it (http/host.ts parseHost): lower-cased, port and
 * brackets removed, one trailing dot removed, IPv6 in canonical form. `[::1]:8443` → `::1`,
 * `Example.COM:8443` → `example.com`. A Host that parseHost refuses is returned lower-cased as it
 * is; no request with it is routed (the admit step answers 400 invalid_host first).
 */
export function hostFromHeader(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  return parseHost(header)?.name ?? header.toLowerCase();
}

/** Route hosts come lower-cased without port; brackets and a trailing dot are tolerated. */
function normalizeHost(host: string): string {
  return routeHostName(host);
}
