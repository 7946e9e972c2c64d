/**
 * Reads a V8 .cpuprofile (node --cpu-prof) and says where the time went: self time per function,
 * self time per area (TLS, HTTP, http-proxy-3, prom-client, pino, certgate's own code, GC …), and the
 * inclusive time of certgate's request-path functions — all as µs per request when the request count
 * is known.
 */
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { markdown } from './_report.js';

interface CallFrame {
  readonly functionName: string;
  readonly url: string;
  readonly lineNumber: number;
}
interface ProfileNode {
  readonly id: number;
  readonly callFrame: CallFrame;
  readonly children?: readonly number[];
}
interface CpuProfile {
  readonly nodes: readonly ProfileNode[];
  readonly startTime: number;
  readonly endTime: number;
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}

/** The area a frame belongs to, by its script URL (certgate's code lives in dist/). */
export function areaOf(frame: CallFrame): string {
  const { url, functionName } = frame;
  if (url === '') {
    if (functionName === '(garbage collector)') return 'GC';
    if (functionName === '(idle)') return '(idle)';
    if (functionName === '(program)') return 'V8/native (program)';
    return 'native (C++ bindings: TLS, writev, parser)';
  }
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url);
  if (nm) {
    const pkg = nm[1] as string;
    if (pkg === 'sonic-boom' || pkg.startsWith('pino') || pkg === 'fast-safe-stringify' || pkg === 'quick-format-unescaped') return 'pino (access log)';
    return pkg;
  }
  if (url.startsWith('node:')) {
    const m = url.slice(5);
    if (m.includes('tls') || m.includes('crypto')) return 'node: tls';
    if (m.includes('http') ) return 'node: http';
    if (m.includes('stream')) return 'node: streams';
    if (m === 'net' || m.includes('stream_base') || m.includes('net')) return 'node: net';
    if (m.includes('timers')) return 'node: timers';
    if (m.includes('events')) return 'node: events';
    return 'node: other';
  }
  if (url.includes('/dist/')) return 'certgate';
  return 'other';
}

export interface ProfileReport {
  readonly totalMs: number;
  readonly busyMs: number;
  readonly text: string;
}

/**
 * @param requests requests completed while the profile ran (for µs/request); 0 = unknown.
 * @param top how many functions to list.
 */
export function analyzeProfile(file: string, requests: number, top = 30): ProfileReport {
  const p = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map<number, ProfileNode>();
  const parent = new Map<number, number>();
  for (const n of p.nodes) {
    byId.set(n.id, n);
    for (const c of n.children ?? []) parent.set(c, n.id);
  }
  // timeDeltas[i] is the time since the previous sample: charge it to sample i.
  const selfUs = new Map<number, number>();
  for (let i = 0; i < p.samples.length; i++) {
    const id = p.samples[i] as number;
    selfUs.set(id, (selfUs.get(id) ?? 0) + Math.max(0, p.timeDeltas[i] ?? 0));
  }
  const key = (f: CallFrame): string => `${f.functionName || '(anonymous)'} ${f.url === '' ? '' : `${shortUrl(f.url)}:${f.lineNumber + 1}`}`.trim();
  const fnSelf = new Map<string, { us: number; area: string }>();
  const areaSelf = new Map<string, number>();
  const fnIncl = new Map<string, number>();
  let total = 0;
  let idle = 0;
  for (const [id, us] of selfUs) {
    const node = byId.get(id) as ProfileNode;
    const f = node.callFrame;
    total += us;
    if (f.functionName === '(idle)') {
      idle += us;
      continue;
    }
    const area = areaOf(f);
    const k = key(f);
    const e = fnSelf.get(k);
    fnSelf.set(k, { us: (e?.us ?? 0) + us, area });
    areaSelf.set(area, (areaSelf.get(area) ?? 0) + us);
    // Inclusive: every distinct function on the stack gets this node's self time once.
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const kk = key((byId.get(cur) as ProfileNode).callFrame);
      if (seen.has(kk)) continue;
      seen.add(kk);
      fnIncl.set(kk, (fnIncl.get(kk) ?? 0) + us);
    }
  }
  const busy = total - idle;
  const perReq = (us: number): string => (requests > 0 ? (us / requests).toFixed(2) : '–');
  const pct = (us: number): string => `${((100 * us) / busy).toFixed(1)}%`;

  const areas = [...areaSelf].sort((a, b) => b[1] - a[1]);
  const areaTable = markdown(['area (self time)', 'share of busy', 'µs/request'], areas.map(([a, us]) => [a, pct(us), perReq(us)]));
  const fns = [...fnSelf].sort((a, b) => b[1].us - a[1].us).slice(0, top);
  const fnTable = markdown(['function (self time)', 'area', 'share', 'µs/request'], fns.map(([k, v]) => [k, v.area, pct(v.us), perReq(v.us)]));
  const mine = [...fnIncl].filter(([k]) => k.includes('dist/') || /proxy\/|http-proxy-3/.test(k)).sort((a, b) => b[1] - a[1]).slice(0, top);
  const inclTable = markdown(['certgate / http-proxy-3 function (inclusive)', 'share', 'µs/request'], mine.map(([k, us]) => [k, pct(us), perReq(us)]));
  const text = [
    `profile: ${(total / 1000).toFixed(0)} ms sampled, ${(busy / 1000).toFixed(0)} ms busy on the main thread` +
      (requests > 0 ? `, ${requests} requests → ${(busy / requests).toFixed(1)} µs busy main-thread time per request` : ''),
    '',
    areaTable, '', fnTable, '', inclTable,
  ].join('\n');
  return { totalMs: total / 1000, busyMs: busy / 1000, text };
}

function shortUrl(url: string): string {
  const nm = url.lastIndexOf('node_modules/');
  if (nm !== -1) return url.slice(nm + 'node_modules/'.length);
  const d = url.lastIndexOf('/dist/');
  if (d !== -1) return url.slice(d + 1);
  return url.startsWith('node:') ? url : basename(url);
}
