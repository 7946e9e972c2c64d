/**
 * The last reloads of the TLS material, newest first, for the status page (`reloads` in status.json):
 * start-up first (app/parts.ts startupHistory), then each one the reloader reports (its onReload, wired in
 * app/start.ts and cluster/primary.ts).
 */
import type { ReloadEvent } from '../tls/reloader.js';

/** The last `max` reloads that did something (an unchanged re-read is not history), newest first. */
export class ReloadHistory {
  readonly #max: number;
  readonly #events: ReloadEvent[] = [];

  constructor(max = 20) {
    this.#max = max;
  }

  record(event: ReloadEvent): void {
    this.#events.unshift(event);
    if (this.#events.length > this.#max) this.#events.length = this.#max;
  }

  list(): readonly ReloadEvent[] {
    return [...this.#events];
  }
}
