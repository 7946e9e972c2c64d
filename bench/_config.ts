/** What the bench runs: ports, phases, and the certgate variants it can start. */

/** Loopback ports, from BENCH_PORT_BASE (default 28000): upstream +80, bare Node +440/+441, nginx +443, certgate +444…, admin +900…. */
export const PORT_BASE = Number(process.env.BENCH_PORT_BASE ?? 28000);
export const UPSTREAM_PORT = PORT_BASE + 80;
export const NGINX_PORT = PORT_BASE + 443;
export const certgatePort = (i: number): number => PORT_BASE + 444 + i;
/** The bare-Node references (_bare.ts): +440 answering itself, +441 the featureless proxy. */
export const barePort = (mode: 'answer' | 'proxy'): number => PORT_BASE + (mode === 'answer' ? 440 : 441);
export const certgateAdminPort = (i: number): number => PORT_BASE + 900 + i;

export type PhaseId = 'keepalive' | 'newconn' | 'resume-new' | 'resume-reuse' | 'post64k' | 'get1m' | 'h2';

/** The HTTP/2 phase's load: sessions (TLS connections) × streams kept in flight on each. */
export const H2_SESSIONS = 8;
export const H2_STREAMS = 16;

export interface Phase {
  readonly id: PhaseId;
  readonly title: string;
  /** What one unit of work is: a request, or a connection (s_time). */
  readonly unit: 'req' | 'conn';
  readonly tool: 'ab' | 's_time' | 'h2';
  readonly keepAlive?: boolean;
  readonly path?: string;
  readonly post?: boolean;
  readonly reuse?: boolean;
  /** Uses the long round duration (the headline phases) or the short one. */
  readonly long: boolean;
}

export const PHASES: readonly Phase[] = [
  { id: 'keepalive', title: 'keep-alive GET / (ab -k)', unit: 'req', tool: 'ab', keepAlive: true, path: '/', long: true },
  { id: 'newconn', title: 'new connection per request, full handshake (ab without -k)', unit: 'req', tool: 'ab', keepAlive: false, path: '/', long: true },
  { id: 'resume-new', title: 'openssl s_time -new: full handshake + GET / per connection', unit: 'conn', tool: 's_time', reuse: false, long: false },
  { id: 'resume-reuse', title: 'openssl s_time -reuse: session resumption + GET / per connection', unit: 'conn', tool: 's_time', reuse: true, long: false },
  { id: 'post64k', title: 'keep-alive POST /post, 64 KiB body (ab -k -p)', unit: 'req', tool: 'ab', keepAlive: true, path: '/post', post: true, long: false },
  { id: 'get1m', title: 'keep-alive GET /1m, 1 MiB response (ab -k)', unit: 'req', tool: 'ab', keepAlive: true, path: '/1m', long: false },
  { id: 'h2', title: `HTTP/2 GET /: ${H2_SESSIONS} sessions × ${H2_STREAMS} concurrent streams (node:http2, bench/_h2load.ts)`, unit: 'req', tool: 'h2', path: '/', long: false },
];

export interface CertgateVariant {
  readonly label: string;
  readonly mode: 'single' | 'cluster-rr' | 'cluster-none';
  readonly workers: number;
  /** The build to run (a dist/ directory). */
  readonly dist: string;
  /** headers.assertion on (an ES256 key): what signing X-Client-Cert-Assertion costs per request. */
  readonly assertion: boolean;
}

/**
 * `[label=]mode[:workers][+assertion][@distdir]`, e.g. `single`, `cluster-none:2`, `tuned=single@/tmp/dist2`,
 * `single+assertion` (headers.assertion with an ES256 key: the assertion's cost against plain `single`).
 * mode: single (workers: 1) | cluster-none (workers: N, certgate's default SCHED_NONE) | cluster-rr (workers: N
 * with CERTGATE_CLUSTER_SCHED=rr: the primary accepts and hands connections over).
 */
export function parseVariant(spec: string, defaultDist: string): CertgateVariant {
  const eq = spec.indexOf('=');
  const label0 = eq === -1 ? undefined : spec.slice(0, eq);
  let rest = eq === -1 ? spec : spec.slice(eq + 1);
  let dist = defaultDist;
  const at = rest.indexOf('@');
  if (at !== -1) {
    dist = rest.slice(at + 1);
    rest = rest.slice(0, at);
  }
  const assertion = rest.endsWith('+assertion');
  if (assertion) rest = rest.slice(0, -'+assertion'.length);
  const [mode, n] = rest.split(':');
  if (mode !== 'single' && mode !== 'cluster-rr' && mode !== 'cluster-none') {
    throw new Error(`--certgate ${spec}: mode must be single, cluster-rr or cluster-none`);
  }
  const workers = mode === 'single' ? 1 : Number(n ?? 2);
  if (!Number.isInteger(workers) || workers < 1) throw new Error(`--certgate ${spec}: workers must be a positive integer`);
  const label = label0 ?? `${mode === 'single' ? 'certgate ×1' : `certgate ×${workers}${mode === 'cluster-rr' ? ' (RR)' : ''}`}${assertion ? ' +assertion' : ''}`;
  return { label, mode, workers, dist, assertion };
}
