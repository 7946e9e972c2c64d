/**
 * The IPC protocol between the cluster primary and its workers (workers: N). Every message carries
 * `cg` so certgate's messages never mix with prom-client's or Node's own cluster traffic.
 *
 *   worker → primary  hello                 "send me my init" (sent once the listener for it exists)
 *   primary → worker  init {ticketSecret, config}  the shared session-ticket secret (hex) and the config to start on:
 *                                         the one the primary holds as serving (never a hand-over still in flight:
 *                                         a worker that says hello during one is answered once it has settled)
 *   worker → primary  ready {url}           listening
 *   primary → worker  reload {reason,file}  the primary validated a change: re-read the files
 *   primary → worker  config {id,source,file}  the primary validated this config text: build generation id, swap
 *   worker → primary  applied {id, url?, problems?}  done, listening at url (or could not: nothing changed there)
 *   primary → worker  drain {ms}            graceful shutdown with this budget
 *   primary → worker  ask {id, what}        metrics | counters | clients; answered by `answer {id, value}`
 */
import type { Worker } from 'node:cluster';
import type { Problem } from '../errors.js';

export type Question = 'metrics' | 'counters' | 'clients';

export type ToWorker =
  | { readonly cg: 'init'; readonly ticketSecret: string; readonly config: ConfigHandOver }
  | ({ readonly cg: 'config' } & ConfigHandOver)
  | { readonly cg: 'reload'; readonly reason: string; readonly file: string }
  | { readonly cg: 'drain'; readonly ms: number }
  | { readonly cg: 'ask'; readonly id: number; readonly what: Question };

export type ToPrimary =
  | { readonly cg: 'hello' }
  | { readonly cg: 'ready'; readonly url: string }
  | { readonly cg: 'answer'; readonly id: number; readonly value: unknown }
  | { readonly cg: 'applied'; readonly id: number; readonly url?: string; readonly problems?: readonly Problem[] };

/** A config the primary validated (app/validate.ts): its text, parsed again by each worker, and its generation. */
export interface ConfigHandOver {
  readonly id: number;
  readonly source: string;
  readonly file: string;
}

function isCertgateMessage(m: unknown): boolean {
  return typeof m === 'object' && m !== null && typeof (m as { cg?: unknown }).cg === 'string';
}

export const isToWorker = isCertgateMessage as (m: unknown) => m is ToWorker;
export const isToPrimary = isCertgateMessage as (m: unknown) => m is ToPrimary;

/**
 * Asks every live worker the same question; resolves with the answers that arrived within `timeoutMs`
 * (a worker that is starting, stuck or dying is left out rather than holding up /metrics).
 */
export function askWorkers(workers: readonly Worker[], what: Question, timeoutMs: number): Promise<unknown[]> {
  return Promise.all(workers.map((w) => askOne(w, what, timeoutMs))).then((answers) => answers.filter((a) => a !== NO_ANSWER));
}

const NO_ANSWER = Symbol('no answer');
let nextId = 1;

function askOne(worker: Worker, what: Question, timeoutMs: number): Promise<unknown> {
  if (!worker.isConnected()) return Promise.resolve(NO_ANSWER);
  const id = nextId++;
  return new Promise((resolve) => {
    const done = (value: unknown): void => {
      clearTimeout(timer);
      worker.off('message', onMessage);
      worker.off('exit', onExit);
      resolve(value);
    };
    const onMessage = (m: unknown): void => {
      if (isToPrimary(m) && m.cg === 'answer' && m.id === id) done(m.value);
    };
    const onExit = (): void => done(NO_ANSWER);
    const timer = setTimeout(() => done(NO_ANSWER), timeoutMs);
    worker.on('message', onMessage);
    worker.once('exit', onExit);
    try {
      worker.send({ cg: 'ask', id, what } satisfies ToWorker);
    } catch {
      done(NO_ANSWER);
    }
  });
}
