/** Pure merges of what the workers answer the primary (workers: N). */
import type { CounterSnapshot, Samples } from '../admin/counters.js';

const COUNTER_KEYS = [
  'requests', 'handshakes', 'handshakeFailures', 'authzDenied', 'upstreamErrors', 'connectionsRejected', 'connectionsOpen', 'inFlight',
] as const satisfies readonly (keyof CounterSnapshot)[];

/** Every worker's counters and gauges summed per label set (all of these add up across processes). */
export function sumCounters(list: readonly CounterSnapshot[]): CounterSnapshot {
  const out = {} as Record<(typeof COUNTER_KEYS)[number], Samples>;
  for (const key of COUNTER_KEYS) out[key] = sumSamples(list.map((c) => c[key] ?? []));
  return out;
}

function sumSamples(lists: readonly Samples[]): Samples {
  const byLabels = new Map<string, { labels: Samples[number]['labels']; value: number }>();
  for (const samples of lists) {
    for (const s of samples) {
      const key = labelKey(s.labels);
      const prev = byLabels.get(key);
      if (prev === undefined) byLabels.set(key, { labels: s.labels, value: s.value });
      else prev.value += s.value;
    }
  }
  return [...byLabels.values()];
}

function labelKey(labels: Samples[number]['labels']): string {
  return JSON.stringify(Object.keys(labels).sort().map((k) => [k, labels[k]]));
}
