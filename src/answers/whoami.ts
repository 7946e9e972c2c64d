/**
 * certgate's whoami_path answer as a client reads it: the JSON the server writes (proxy/whoami-endpoint.ts)
 * and `certgate probe` reads (probe/run.ts). Here, a floor below both, because the client-side doctor
 * imports nothing of the server's pipeline: only what a client can see on the wire.
 */

/** Marks the JSON as certgate's, so a probe can tell it from an upstream's page at that path. */
export const WHOAMI_MARK = 'certgate-whoami/1';

export interface WhoamiAnswer {
  readonly certgate: typeof WHOAMI_MARK;
  readonly client: 'verified';
  /** The headers certgate sets on a forwarded request for this connection (lower-case names). */
  readonly headers: Readonly<Record<string, string>>;
  readonly route: {
    readonly path: string;
    /** null when no route matches `path` (the request would get 404 no_route). */
    readonly name: string | null;
    readonly allowed?: boolean;
    /** Only with errors.verbose, as in 403 bodies: the allow rule kinds that refused. */
    readonly rule?: string;
  };
}
