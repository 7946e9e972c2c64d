/**
 * The one stateful owner of TLS material. reload() builds the new material to the side (read every file,
 * validate the whole set), and only then publishes it with server.setSecureContext() — the single swap.
 * On any failure the serving material is unchanged; the failure is logged with file, code and fix,
 * counted, and retried once shortly after (a half-written file usually completes within milliseconds).
 *
 * Triggers: file events (watch.ts), SIGHUP, and a slow periodic re-check (the backstop for watches lost
 * with a recreated folder). Reloads run one at a time; triggers arriving meanwhile merge into one more run.
 * A swap or a failure is always logged and counted. A re-read that finds nothing new is silent, except for
 * an explicit trigger (EXPLICIT_TRIGGERS): an operator who sent SIGHUP gets one line saying what was re-read
 * and that nothing changed, and certgate_reloads_total{result="unchanged"} moves once per file re-read.
 * A `generation` counter moves whenever the trust inputs (client_ca, crl) change, so established
 * connections re-check their client certificate on their next request (proxy/verdict.ts).
 */
import { basename } from 'node:path';
import type tls from 'node:tls';
import type { TlsConfig } from '../config/types.js';
import type { Logger } from '../log.js';
import { blocksLoading, CertgateError, logLevelOf, type Problem } from '../errors.js';
import nodeTls from 'node:tls';
import { inspectTls, type TlsMaterial } from './material.js';
import { secureContextOptions, type SessionTickets } from './context.js';
import { watchFiles, type FileWatch } from './watch.js';
import { printDn } from '../x509/dn.js';
import { readCertificate } from '../x509/der.js';

/** One reload that swapped material or failed, as the status page's history keeps it (admin/status.ts). */
export interface ReloadEvent {
  /** ms since the epoch. */
  readonly time: number;
  /** What triggered it: startup, watch, signal, poll, retry. */
  readonly trigger: string;
  /** The file that changed (basename), or "all". */
  readonly file: string;
  readonly result: 'success' | 'failure';
  /** On failure: the error code and message; on success: the new leaf's serial. */
  readonly code?: string;
  readonly message?: string;
  readonly serial?: string;
}

/**
 * The counter and gauges the reloader keeps, by shape: admin/metrics.ts creates and names them (its Metrics
 * fits), so tls/ needs nothing from admin/.
 */
export interface ReloadMetrics {
  readonly reloads: { inc(labels: { file: string; result: 'success' | 'failure' | 'unchanged' }): void };
  readonly lastReloadSuccess: { set(value: number): void };
  readonly certificateExpiry: {
    reset(): void;
    set(labels: { kind: 'server' | 'chain' | 'client_ca'; subject: string }, value: number): void;
  };
  readonly crlNextUpdate: { reset(): void; set(labels: { issuer: string }, value: number): void };
}

/**
 * The reasons an operator asked for: SIGHUP ('signal') and POST /-/reload on the admin listener ('admin',
 * also what `certgate reload` sends). Only these are answered when nothing changed; file events and the
 * periodic backstop find "unchanged" all the time.
 */
export const EXPLICIT_TRIGGERS: ReadonlySet<string> = new Set(['signal', 'admin']);

export interface ReloadResult {
  readonly result: 'success' | 'unchanged' | 'failure';
  readonly problems?: readonly Problem[];
}

export interface Reloader {
  /** The material serving new handshakes. */
  readonly current: TlsMaterial;
  /** Moves when client_ca or crl content changed. */
  readonly generation: number;
  /**
   * From now on, validated material is published to `server` (the TLS listener; the cluster primary passes
   * a validate-only stand-in), and the triggers run. Resolves once file watching is armed (at once when
   * tls.watch is false). Once; before it, the reloader only holds the initial material.
   */
  start(server: Pick<tls.Server, 'setSecureContext'>): Promise<void>;
  reload(reason: string, file?: string): Promise<ReloadResult>;
  /**
   * A live config names other TLS files (issue 17): reads and validates the material at the new paths now
   * (throws a CertgateError with every problem when it is unusable: then nothing changed), and returns the
   * change to put in force in the config swap's synchronous step — the secure context for the next
   * handshake, the watched files, the files later reloads re-read. Undefined when no path changed. Only the
   * file paths move (PATH_KEYS); the other tls keys stay as started (restart to apply).
   */
  retarget(next: TlsConfig): Promise<TlsRetarget | undefined>;
  close(): Promise<void>;
}

/** The tls keys naming files: the ones a live config changes (Reloader.retarget). */
export const PATH_KEYS = ['bundle', 'cert', 'key', 'passphrase_file', 'client_ca', 'crl'] as const;

/** New TLS material read from new paths, ready to be put in force (shaped like app/live-config.ts's PreparedChange). */
export interface TlsRetarget {
  commit(): void;
  abort(): Promise<void>;
  /** After commit: resolves once the watch on the new files is armed (a change after it is seen). */
  settled(): Promise<void>;
}

export interface ReloaderOptions {
  readonly tls: TlsConfig;
  readonly listenHost: string;
  /** The process's session-ticket keys, part of every secure context published. */
  readonly tickets: SessionTickets;
  /**
   * Watch the files and re-read them periodically (default true). A cluster worker passes false: the
   * primary's reloader watches, validates, and tells the workers to reload (cluster/primary.ts). The
   * primary also answers an explicit trigger that changed nothing (it tells no worker then), so a
   * reloader without own triggers never logs or counts an unchanged re-read: the line appears once.
   */
  readonly ownTriggers?: boolean;
  readonly initial: TlsMaterial;
  readonly metrics: ReloadMetrics;
  readonly log: Logger;
  /** Delay of the single retry after a failed reload (default 500 ms). */
  readonly retryMs?: number;
  /** Told of every reload that swapped material or failed (the status page's history); not of unchanged re-reads. */
  readonly onReload?: (event: ReloadEvent) => void;
}

export function createReloader(opts: ReloaderOptions): Reloader {
  const { metrics, log } = opts;
  let tlsConfig = opts.tls;
  let server: Pick<tls.Server, 'setSecureContext'> | undefined;
  let current = opts.initial;
  let generation = 0;
  let running: Promise<ReloadResult> | undefined;
  let queued: { reason: string; file: string; promise: Promise<ReloadResult> } | undefined;
  let retryTimer: NodeJS.Timeout | undefined;
  let closed = false;
  publishMetrics(metrics, current);
  const ownTriggers = opts.ownTriggers !== false;
  /** Every file a reload re-reads, once each (config order). */
  let files = filesOf(tlsConfig);
  /** The same files as the logs and metrics name them: the basename, as watch.ts labels a file event. */
  let labels = files.map((f) => basename(f));

  /** What the last refused read saw, until a read loads: a success after a refusal is credited to the file whose
   * change since the refusal made it load (a key written first is refused; the certificate written next loads
   * the pair — whether the certificate's own event or the refusal's retry reads it first). */
  let refusedDigests: Readonly<Record<string, string>> | undefined;

  async function runOnce(reason: string, triggerFile: string): Promise<ReloadResult> {
    const reading = tlsConfig;
    const { material, problems, fileDigests } = await inspectTls(reading, { listenHost: opts.listenHost });
    // A live config pointed the reloader at other files meanwhile (retarget): what was read here is stale.
    if (reading !== tlsConfig) return { result: 'unchanged' };
    if (material === undefined) {
      if (fileDigests !== undefined) refusedDigests = fileDigests;
      return fail(reason, triggerFile, problems);
    }
    const sinceRefusal = refusedDigests === undefined ? [] : files.filter((f) => material.fileDigests[f] !== refusedDigests?.[f]);
    const file = sinceRefusal.length === 1 ? basename(sinceRefusal[0]!) : triggerFile;
    if (material.digest === current.digest) {
      if (EXPLICIT_TRIGGERS.has(reason) && ownTriggers) {
        for (const label of labels) metrics.reloads.inc({ file: label, result: 'unchanged' });
        log.info({ msg: 'TLS material re-read: nothing changed', reason, files: labels, changed: [], serial: current.leaf.serialNumber });
      }
      return { result: 'unchanged' };
    }
    const downgrade = chainDowngrade(material, current);
    if (downgrade !== undefined) {
      refusedDigests = material.fileDigests;
      return fail(reason, file, [downgrade]);
    }
    try {
      publish(material, secureContextOptions(material, tlsConfig, opts.tickets), reason, file);
    } catch (err) {
      refusedDigests = material.fileDigests;
      return fail(reason, file, [{ severity: 'error', code: 'CG_TLS_REJECTED', message: `the TLS stack refused the new material: ${(err as Error).message}` }]);
    }
    return { result: 'success' };
  }

  /** Puts validated material in force: the next handshake's secure context, the trust generation, metrics, history. */
  function publish(material: TlsMaterial, options: nodeTls.SecureContextOptions, reason: string, file: string): void {
    if (server === undefined) throw new Error('the reloader was not started');
    server.setSecureContext(options);
    const trustChanged = !sameList(material.ca, current.ca) || !sameList(material.crl ?? [], current.crl ?? []);
    if (trustChanged) generation += 1;
    const previous = current;
    current = material;
    refusedDigests = undefined;
    metrics.reloads.inc({ file, result: 'success' });
    publishMetrics(metrics, material);
    const changed = files.filter((f) => material.fileDigests[f] !== previous.fileDigests[f]).map((f) => basename(f));
    log.info({
      msg: 'TLS material reloaded', reason, file, files: labels, changed, serial: material.leaf.serialNumber, not_after: material.leaf.validTo,
      previous_serial: previous.leaf.serialNumber, trust_changed: trustChanged,
    });
    opts.onReload?.({ time: Date.now(), trigger: reason, file, result: 'success', serial: material.leaf.serialNumber.toUpperCase() });
    // A loadable error (a stale CRL: every client of a CA refused) loaded, but is logged as the error it is.
    for (const p of material.problems) log[logLevelOf(p)]({ msg: p.message, code: p.code, file: p.file, hint: p.hint });
  }

  function fail(reason: string, file: string, problems: readonly Problem[]): ReloadResult {
    const errors = problems.filter((p) => p.severity === 'error');
    const first = errors.find(blocksLoading) ?? errors[0];
    metrics.reloads.inc({ file, result: 'failure' });
    log.warn({
      msg: 'TLS reload failed', reason, file, files: labels, code: first?.code, problem_file: first?.file, message: first?.message, hint: first?.hint,
      errors: errors.length, kept_serial: current.leaf.serialNumber,
    });
    opts.onReload?.({
      time: Date.now(), trigger: reason, file, result: 'failure',
      ...(first !== undefined && { code: first.code, message: first.file !== undefined ? `${first.file}: ${first.message}` : first.message }),
    });
    // One retry: the writer is usually mid-way; its next event would also trigger a reload.
    if (reason !== 'retry' && !closed) {
      clearTimeout(retryTimer);
      retryTimer = setTimeout(() => void reload('retry', file), opts.retryMs ?? 500);
      retryTimer.unref();
    }
    return { result: 'failure', problems };
  }

  function start(reason: string, file: string): Promise<ReloadResult> {
    const p: Promise<ReloadResult> = runOnce(reason, file)
      .catch((err: unknown) => fail(reason, file, [{ severity: 'error', code: 'CG_TLS_REJECTED', message: String(err) }]))
      .finally(() => {
        if (running === p) running = undefined;
      });
    running = p;
    return p;
  }

  function reload(reason: string, file = 'all'): Promise<ReloadResult> {
    // A run is waiting already: this trigger merges into it (an explicit one gives it its reason, so the
    // operator's SIGHUP is still answered by its line).
    if (queued !== undefined) {
      if (queued.file !== file) queued.file = 'all';
      if (EXPLICIT_TRIGGERS.has(reason)) queued.reason = reason;
      return queued.promise;
    }
    if (running === undefined) return start(reason, file);
    // A run is under way and may have read the files before this change: exactly one more run follows it.
    const entry: { reason: string; file: string; promise: Promise<ReloadResult> } = { reason, file, promise: Promise.resolve({ result: 'unchanged' }) };
    entry.promise = running.then(() => {
      queued = undefined;
      return start(entry.reason, entry.file);
    });
    queued = entry;
    return entry.promise;
  }

  let watch: FileWatch | undefined;
  let poll: NodeJS.Timeout | undefined;
  const watchOwn = (): FileWatch | undefined => (tlsConfig.watch && ownTriggers && !closed
    ? watchFiles(files, (label) => void reload('watch', label), { onError: (err) => log.warn({ msg: 'file watch error', err: String(err) }) })
    : undefined);

  return {
    get current() {
      return current;
    },
    get generation() {
      return generation;
    },
    start(target) {
      if (server !== undefined) throw new Error('the reloader was started already');
      server = target;
      watch = watchOwn();
      poll = ownTriggers ? setInterval(() => void reload('poll'), tlsConfig.recheck_interval_ms) : undefined;
      poll?.unref();
      return watch?.ready ?? Promise.resolve();
    },
    reload,
    async retarget(nextTls) {
      const fields: Record<string, unknown> = { ...tlsConfig };
      for (const k of PATH_KEYS) {
        if (nextTls[k] === undefined) delete fields[k];
        else fields[k] = nextTls[k];
      }
      const merged = fields as unknown as TlsConfig;
      if (PATH_KEYS.every((k) => merged[k] === tlsConfig[k])) return undefined;
      const { material, problems } = await inspectTls(merged, { listenHost: opts.listenHost });
      const downgrade = material === undefined ? undefined : chainDowngrade(material, current);
      if (material === undefined || downgrade !== undefined) {
        const errors = downgrade !== undefined ? [downgrade] : problems.filter((p) => p.severity === 'error');
        const first: Problem = errors.find(blocksLoading) ?? errors[0] ?? { severity: 'error', code: 'CG_KEY_MISSING', message: 'the TLS material is not usable' };
        throw new CertgateError(first.code, first.message, { ...(first.file !== undefined && { file: first.file }), problems: errors });
      }
      const options = secureContextOptions(material, merged, opts.tickets);
      let armed: Promise<void> | undefined;
      try {
        // What setSecureContext will do at commit, done here, where a refusal can still stop the reload.
        nodeTls.createSecureContext(options);
      } catch (err) {
        throw new CertgateError('CG_TLS_REJECTED', `the TLS stack refused the material of the new tls paths: ${(err as Error).message}`);
      }
      return {
        commit() {
          tlsConfig = merged;
          files = filesOf(merged);
          labels = files.map((f) => basename(f));
          publish(material, options, 'config', 'all');
          // The watch follows the files: the new one is armed before the old one is closed.
          const old = watch;
          watch = watchOwn();
          armed = watch?.ready;
          void old?.close();
        },
        abort: () => Promise.resolve(),
        settled: () => armed ?? Promise.resolve(),
      };
    },
    async close() {
      closed = true;
      clearInterval(poll);
      clearTimeout(retryTimer);
      await watch?.close();
      await running;
    },
  };
}

/** Every file a reload re-reads, once each (config order). */
function filesOf(tls: TlsConfig): string[] {
  return [...new Set(PATH_KEYS.map((k) => tls[k]).filter((f): f is string => f !== undefined))];
}

/**
 * The classic rotation mistake (cert.pem instead of fullchain.pem, or another CA's leaf alone): the serving
 * chain is complete and the new one is not. Clients that trust only the root would fail: refused.
 */
function chainDowngrade(material: TlsMaterial, current: TlsMaterial): Problem | undefined {
  const downgrade = material.problems.find((p) => p.code === 'CG_CHAIN_INCOMPLETE' && p.severity !== 'info');
  if (downgrade === undefined || current.problems.some((p) => p.code === 'CG_CHAIN_INCOMPLETE' && p.severity !== 'info')) return undefined;
  return { ...downgrade, severity: 'error', message: `${downgrade.message}; the serving chain is complete, so this rotation is refused` };
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

function subjectOf(cert: { raw: Buffer }): string {
  return printDn(readCertificate(cert.raw).subject);
}

/** Expiry gauges describe the material serving now: reset, then set, on every successful load. */
export function publishMetrics(metrics: ReloadMetrics, material: TlsMaterial): void {
  metrics.lastReloadSuccess.set(Date.now() / 1000);
  metrics.certificateExpiry.reset();
  const seconds = (validTo: string): number => new Date(validTo).getTime() / 1000;
  metrics.certificateExpiry.set({ kind: 'server', subject: subjectOf(material.leaf) }, seconds(material.leaf.validTo));
  for (const c of material.chain) metrics.certificateExpiry.set({ kind: 'chain', subject: subjectOf(c) }, seconds(c.validTo));
  for (const c of material.clientCas) metrics.certificateExpiry.set({ kind: 'client_ca', subject: subjectOf(c) }, seconds(c.validTo));
  metrics.crlNextUpdate.reset();
  for (const crl of material.crls) metrics.crlNextUpdate.set({ issuer: crl.issuer }, crl.nextUpdate.getTime() / 1000);
}
