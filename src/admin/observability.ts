/**
 * Wires the observability parts together for app.ts (the composition root), so it needs only a handful
 * of lines: the request telemetry (metrics, access log, X-Request-Id, /clients), the reload history and
 * the status page's data source, plus what the admin listener serves.
 */
import type { Config } from '../config/types.js';
import type { Logger } from '../log.js';
import type { TlsMaterial } from '../tls/material.js';
import type { AdminToken } from './auth.js';
import { ClientStore } from '../proxy/clients.js';
import type { Metrics } from './metrics.js';
import { createTelemetry, type Telemetry } from '../proxy/telemetry.js';
import { createStatus, localCounters, ReloadHistory, type ReloadEvent, type StatusSource } from './status.js';

export interface ObservabilityOptions {
  readonly config: Config;
  readonly metrics: Metrics;
  readonly log: Logger;
  /** The material serving now (the reloader's current, or the initial one before it exists). */
  readonly material: () => TlsMaterial;
  readonly ready: () => boolean;
  readonly url: () => string | undefined;
  readonly token?: AdminToken;
}

export interface Observability {
  readonly telemetry: Telemetry;
  readonly clients: ClientStore;
  readonly status: StatusSource;
  /** For the reloader: every reload that changed something or failed. */
  onReload(event: ReloadEvent): void;
  /** The admin listener's options this provides. */
  readonly admin: { readonly token?: AdminToken; readonly status: StatusSource; readonly clients: ClientStore };
  close(): void;
}

export function createObservability(opts: ObservabilityOptions): Observability {
  const { config, metrics, log } = opts;
  const clients = new ClientStore(config.admin.clients_max);
  const history = new ReloadHistory(20);
  history.record({ time: Date.now(), trigger: 'startup', file: 'all', result: 'success', serial: opts.material().leaf.serialNumber.toUpperCase() });
  const telemetry = createTelemetry({
    metrics, log, clients, access: config.log.access,
  });
  const status = createStatus({
    config, history, readCounters: localCounters(metrics), material: opts.material, ready: opts.ready, url: opts.url,
    auth: opts.token !== undefined,
  });
  return {
    telemetry, clients, status,
    onReload: (event) => history.record(event),
    admin: { ...(opts.token !== undefined && { token: opts.token }), status, clients },
    close: () => status.close(),
  };
}
