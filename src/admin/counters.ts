/**
 * The counters the status page computes its rates and totals from, read from the prom-client metrics (the
 * one source of truth) as plain label/value samples. Multi-core seam: a worker sends its snapshot over IPC
 * and the primary sums them (cluster/merge.ts); a single process reads its own (localCounters).
 */
import type { Metrics } from './metrics.js';

/** Label sets and values of one metric, as prom-client's `get()` gives them. */
export type Samples = readonly { readonly labels: Readonly<Partial<Record<string, string | number>>>; readonly value: number }[];

export interface CounterSnapshot {
  readonly requests: Samples;
  readonly handshakes: Samples;
  readonly handshakeFailures: Samples;
  readonly authzDenied: Samples;
  readonly upstreamErrors: Samples;
  readonly connectionsRejected: Samples;
  readonly connectionsOpen: Samples;
  readonly inFlight: Samples;
}

/** This process's counters (the default `readCounters`). */
export function localCounters(metrics: Metrics): () => Promise<CounterSnapshot> {
  return async () => {
    const [requests, handshakes, handshakeFailures, authzDenied, upstreamErrors, connectionsRejected, connectionsOpen, inFlight] = await Promise.all([
      metrics.httpRequests.get(), metrics.handshakes.get(), metrics.handshakeFailures.get(), metrics.authzDenied.get(),
      metrics.upstreamErrors.get(), metrics.connectionsRejected.get(), metrics.connectionsOpen.get(), metrics.httpInFlight.get(),
    ]);
    return {
      requests: requests.values, handshakes: handshakes.values, handshakeFailures: handshakeFailures.values, authzDenied: authzDenied.values,
      upstreamErrors: upstreamErrors.values, connectionsRejected: connectionsRejected.values,
      connectionsOpen: connectionsOpen.values, inFlight: inFlight.values,
    };
  };
}
