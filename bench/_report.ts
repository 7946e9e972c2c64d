/** Medians and the markdown tables the bench prints. Pure. */

export interface Sample {
  readonly target: string;
  readonly phase: string;
  readonly round: number;
  readonly completed: number;
  readonly perSecond: number;
  readonly p50Ms?: number;
  readonly p99Ms?: number;
  readonly failures: number;
  /** Proxy CPU (whole process tree, nginx workers included) per completed request, µs. */
  readonly cpuUsPerReq: number;
  /** Proxy CPU over the round, in cores (1.0 = one core busy). */
  readonly proxyCores: number;
  /** The load generator's CPU over the round, in cores. */
  readonly clientCores: number;
  /** Everything else on the machine (upstream, other users) over the round, in cores. */
  readonly otherCores: number;
  /** Highest RSS of the proxy's process tree seen during the round, bytes. */
  readonly peakRss: number;
  /** Most established connections from the proxy to the upstream seen during the round. */
  readonly upstreamConns: number;
  /** Highest VmRSS of the tree's root process (nginx master, cluster primary, or the only process), bytes. */
  readonly peakRootRss?: number;
  /** Highest VmRSS of any other process of the tree (nginx or cluster workers), bytes; absent for one process. */
  readonly peakWorkerRss?: number;
  readonly tls?: string;
  readonly failureKinds?: string;
  /** ab -k: share of requests sent on a reused connection (0..1). */
  readonly keepAliveShare?: number;
}

export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

export interface Summary {
  readonly target: string;
  readonly rounds: number;
  readonly perSecond: number;
  readonly p50Ms: number | undefined;
  readonly p99Ms: number | undefined;
  readonly failures: number;
  readonly cpuUsPerReq: number;
  readonly proxyCores: number;
  readonly clientCores: number;
  readonly otherCores: number;
  readonly peakRss: number;
  readonly upstreamConns: number;
  readonly peakRootRss: number | undefined;
  readonly peakWorkerRss: number | undefined;
}

export function summarize(target: string, samples: readonly Sample[]): Summary {
  const pick = (f: (s: Sample) => number | undefined): number[] =>
    samples.map(f).filter((v): v is number => v !== undefined && !Number.isNaN(v));
  const opt = (f: (s: Sample) => number | undefined): number | undefined => {
    const v = pick(f);
    return v.length === 0 ? undefined : median(v);
  };
  return {
    target,
    rounds: samples.length,
    perSecond: median(pick((s) => s.perSecond)),
    p50Ms: opt((s) => s.p50Ms),
    p99Ms: opt((s) => s.p99Ms),
    failures: samples.reduce((a, s) => a + s.failures, 0),
    cpuUsPerReq: median(pick((s) => s.cpuUsPerReq)),
    proxyCores: median(pick((s) => s.proxyCores)),
    clientCores: median(pick((s) => s.clientCores)),
    otherCores: median(pick((s) => s.otherCores)),
    peakRss: median(pick((s) => s.peakRss)),
    upstreamConns: median(pick((s) => s.upstreamConns)),
    peakRootRss: opt((s) => s.peakRootRss),
    peakWorkerRss: opt((s) => s.peakWorkerRss),
  };
}

const fmtInt = (n: number): string => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '–');
const fmtRatio = (a: number | undefined, b: number | undefined): string =>
  a === undefined || b === undefined || !Number.isFinite(a) || !Number.isFinite(b) || b === 0 ? '–' : `${(a / b).toFixed(2)}`;
const mib = (bytes: number): string => (Number.isFinite(bytes) ? `${(bytes / 1048576).toFixed(0)}` : '–');

/**
 * One phase: a row per target, ratios against `reference` (nginx). `unit` names what one "request" is
 * (req or conn). ab's percentiles are whole milliseconds, so p99 ratios near 1 are coarse.
 */
export function phaseTable(title: string, unit: string, rows: readonly Summary[], reference: string, withLatency: boolean): string {
  const ref = rows.find((r) => r.target === reference);
  const head = ['proxy', `${unit}/s`, '× nginx', ...(withLatency ? ['p50 ms', 'p99 ms', 'p99 × nginx'] : []),
    'failures', `CPU µs/${unit}`, 'CPU × nginx', 'proxy cores', 'client cores', 'other cores', 'upstream conns', 'peak RSS MiB'];
  const body = rows.map((r) => [
    r.target, fmtInt(r.perSecond), fmtRatio(r.perSecond, ref?.perSecond),
    ...(withLatency ? [r.p50Ms === undefined ? '–' : String(r.p50Ms), r.p99Ms === undefined ? '–' : String(r.p99Ms), fmtRatio(r.p99Ms, ref?.p99Ms)] : []),
    String(r.failures), fmtInt(r.cpuUsPerReq), fmtRatio(r.cpuUsPerReq, ref?.cpuUsPerReq),
    r.proxyCores.toFixed(2), r.clientCores.toFixed(2), r.otherCores.toFixed(2),
    fmtInt(r.upstreamConns), mib(r.peakRss),
  ]);
  return `### ${title}\n\n${markdown(head, body)}`;
}

export function markdown(head: readonly string[], body: readonly (readonly string[])[]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    `| ${cells.map((c, i) => (i === 0 ? c.padEnd(widths[i] as number) : c.padStart(widths[i] as number))).join(' | ')} |`;
  const rule = `| ${widths.map((w, i) => (i === 0 ? '-'.repeat(w) : `${'-'.repeat(w - 1)}:`)).join(' | ')} |`;
  return [line(head), rule, ...body.map(line)].join('\n');
}

export { fmtInt, fmtRatio, mib };
