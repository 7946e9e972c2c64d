/**
 * Live configuration (issue 17): re-read the config file, validate it on the one path `certgate check`
 * uses (app/validate.ts), build the whole new Generation to the side (router, policies, header options,
 * upstream pools) and only then make it current — one assignment, so a request sees either the old or the
 * new configuration, never a mix. The old generation is retired: requests holding it finish on it, its
 * pools close once they have (proxy/generation.ts). Anything wrong: nothing changes, the old config keeps
 * serving; the failure is logged with file:line and fix, counted, kept for the status page.
 *
 * Keys that this process cannot change while running are listed in RESTART_TO_APPLY order: a reload that
 * changes one applies everything else and warns once per key ("restart to apply"); the status page shows
 * the keys until a restart. Reloads run one at a time (each waits for the one before).
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { Config } from '../config/types.js';
import { blocksLoading, CertgateError, type Problem } from '../errors.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../admin/metrics.js';
import type { ReloadHistory } from '../admin/reload-history.js';
import { buildGeneration, type Generation } from '../proxy/generation.js';
import { watchFiles, type FileWatch } from '../tls/watch.js';
import { validateConfigFile, type Validated } from './validate.js';

/**
 * Config keys applied live: the generation's parts (routes with their allow lists and upstreams, header
 * options, error verbosity, strict_paths, whoami_path, limits.max_requests_per_connection), the listener's limits Node lets a running server change
 * (header/request/keep-alive timeouts, max_connections: app/start.ts applyListenerLimits), the log
 * level, log.access and the admin token (admin.token_file; its content is re-read by every reload too), admin.allowed_hosts and
 * admin.clients_max, proxy_protocol (the listener's PROXY protocol gate, for connections accepted after), the tls file paths
 * (tls/reloader.ts retarget: the material at the new paths, validated before the swap), `listen` and `admin.listen` (the new
 * address bound before the swap, the old listener drained after), enrollment (loaded and
 * checked by validation as serve loads it; the admin listener's /enroll handler replaced after the swap).
 * Every other key that changes is "restart to apply" (reported, not applied).
 */
export const LIVE_KEYS: readonly string[] = [
  'routes', 'headers', 'errors', 'strict_paths', 'whoami_path', 'limits.max_requests_per_connection',
  'limits.header_timeout_ms', 'limits.request_timeout_ms', 'limits.keepalive_timeout_ms', 'limits.max_connections', 'limits.max_concurrent_streams', 'log.level', 'log.access', 'admin.token_file',
  'admin.allowed_hosts', 'admin.clients_max', 'proxy_protocol',
  'tls.bundle', 'tls.cert', 'tls.key', 'tls.passphrase_file', 'tls.client_ca', 'tls.crl', 'listen', 'admin.listen', 'enrollment',
];

export interface ConfigReloadAnswer {
  readonly result: 'success' | 'unchanged' | 'failure';
  /** The generation serving new requests after this reload. */
  readonly generation: number;
  /** SHA-256 of the config serving now. */
  readonly sha256: string | undefined;
  /** One line: routes added / removed / changed, other keys changed. */
  readonly changes?: string;
  /** Keys that changed but need a restart (not applied). */
  readonly restart_to_apply?: readonly string[];
  /** On failure: every error, each with file[:line:col] and fix. */
  readonly problems?: readonly Problem[];
  /**
   * workers: N — workers that did not apply this config (could not, or did not answer in time) and are
   * being replaced by workers started on it; the others serve it already.
   */
  readonly replaced_workers?: readonly ReplacedWorker[];
}

/** A worker that did not apply a config the others applied: replaced (cluster/primary.ts). */
export interface ReplacedWorker {
  readonly pid: number;
  /** failed: it answered that it could not (it changed nothing); silent: no answer within the hand-over timeout. */
  readonly outcome: 'failed' | 'silent';
  readonly code: string;
  readonly message: string;
}

/** What a target tells of an applied config beyond "applied". */
export interface ApplyReport {
  readonly replaced_workers?: readonly ReplacedWorker[];
}

export interface ConfigStatus {
  readonly file: string;
  readonly generation: number;
  readonly sha256: string | undefined;
  readonly watch: boolean;
  /** Keys changed in the file since start-up that a restart would apply. */
  readonly restart_to_apply: readonly string[];
  readonly last_failure: { readonly time: string; readonly problems: readonly Problem[] } | null;
}

export interface LiveConfig {
  /** The config serving now (its generation is generations.current). */
  readonly config: Config;
  reload(reason: string): Promise<ConfigReloadAnswer>;
  status(): ConfigStatus;
  /** Arms the file watch (config_watch); resolves once armed. */
  start(): Promise<void>;
  close(): Promise<void>;
}

/**
 * Where a validated config goes: one process's generations (generationTarget), or under workers: N the
 * primary's hand-over to every worker (cluster/primary.ts).
 */
export interface ConfigTarget {
  /** The generation serving new requests. */
  readonly id: number;
  /**
   * Builds generation `id` (default this.id + 1) from `next` completely and only then makes it current. Throws (a
   * CertgateError, or an Error) when it cannot: then nothing changed in this process.
   */
  apply(next: Config, source: string, id?: number): Promise<ApplyReport | undefined>;
}

/**
 * A part of a process that a config changes besides its Generation (the TLS material when tls file paths
 * change, the listeners when an address changes): prepared to the side before the swap — anything that can
 * fail fails here, and then nothing changed — and put in force in the same synchronous step as the swap.
 */
export interface PreparedChange {
  /** Puts the change in force; synchronous and not expected to fail (what could fail happened in prepare). */
  commit(): void;
  /** The reload did not happen after all: undo what prepare did (close a socket it bound). */
  abort(): Promise<void>;
  /** After commit: resolves once the change has fully settled (a new file watch armed); the reload answers after it. */
  settled?(): Promise<void>;
}

/**
 * Runs the steps in order; when one throws, the ones before it are aborted (newest first) and the error
 * rethrown: nothing changed. The result commits (and settles) them all together.
 */
export async function prepareAll(steps: readonly (() => Promise<PreparedChange | undefined>)[]): Promise<PreparedChange | undefined> {
  const done: PreparedChange[] = [];
  try {
    for (const step of steps) {
      const p = await step();
      if (p !== undefined) done.push(p);
    }
  } catch (err) {
    for (const p of done.reverse()) await p.abort();
    throw err;
  }
  if (done.length === 0) return undefined;
  return {
    commit: () => done.forEach((p) => p.commit()),
    abort: async () => {
      for (const p of [...done].reverse()) await p.abort();
    },
    settled: async () => {
      await Promise.all(done.map((p) => p.settled?.()));
    },
  };
}

export interface GenerationTargetOptions {
  /** Builds generation `id` from `next` (buildGeneration with the process's pool shelf). */
  readonly build: (next: Config, id: number) => Promise<Generation>;
  /** Prepares everything else `next` changes (see PreparedChange); throws when it cannot: nothing changed. */
  readonly prepare?: (next: Config) => Promise<PreparedChange | undefined>;
  /** After the swap: what follows the config without being able to fail (limits, log level, ...). */
  readonly onApplied?: (config: Config) => void;
}

/**
 * One process's target: prepare what else changes, build the whole Generation to the side, then commit and
 * swap it in in one synchronous step (no request can arrive in between), and retire the old one.
 */
export function generationTarget(generations: { current: Generation }, opts: GenerationTargetOptions): ConfigTarget {
  return {
    get id() {
      return generations.current.id;
    },
    async apply(next, _source, id = generations.current.id + 1) {
      const prepared = await opts.prepare?.(next);
      let generation: Generation;
      try {
        generation = await opts.build(next, id);
      } catch (err) {
        await prepared?.abort();
        throw err;
      }
      try {
        prepared?.commit();
      } catch (err) {
        // Not expected (prepare did what could fail): the new generation lets go of its pools, nothing swapped.
        generation.close();
        await prepared?.abort();
        throw err;
      }
      // The swap: one assignment. Requests that read the old generation keep it; the next ones take this.
      const old = generations.current;
      generations.current = generation;
      old.retire();
      opts.onApplied?.(next);
      await prepared?.settled?.();
      return undefined;
    },
  };
}

export interface LiveConfigOptions {
  readonly initial: Config;
  readonly sha256?: string;
  readonly target: ConfigTarget;
  readonly metrics: Pick<Metrics, 'configReloads' | 'configLastReloadSuccess' | 'configGeneration'>;
  readonly log: Logger;
  readonly history: ReloadHistory;
  /** Told of each applied config with what validation loaded for it (the admin token, enrollment: put in force; the assertion keys: published). */
  readonly onApplied?: (config: Config, loaded: Pick<Validated, 'adminToken' | 'assertionKeys' | 'enrollment'>) => void | Promise<void>;
  /** The digest of headers.assertion's key files serving now (tls/assertion-keys.ts); absent = none. */
  readonly assertionDigest?: string;
}

/** The files a config reload re-reads that its watch follows: the config, and headers.assertion's key files. */
function watchedFiles(config: Config): string[] {
  return [config.file, ...(config.headers.assertion?.key_files ?? [])];
}

export function createLiveConfig(opts: LiveConfigOptions): LiveConfig {
  const { target, metrics, log, history } = opts;
  const file = opts.initial.file;
  /** The config the process started with: restart-to-apply keys are compared against it. */
  const started = opts.initial;
  let config = opts.initial;
  let sha256 = opts.sha256 ?? fileSha256(file);
  // headers.assertion's key files are part of what a reload applies: a rotated key with the config
  // unchanged is a change too (the files are watched with the config file: see start()).
  let keysDigest = opts.assertionDigest;
  let lastFailure: ConfigStatus['last_failure'] = null;
  let pendingRestart: readonly string[] = [];
  let chain: Promise<unknown> = Promise.resolve();
  let watch: FileWatch | undefined;
  let closed = false;
  metrics.configGeneration.set(target.id);
  metrics.configLastReloadSuccess.set(Date.now() / 1000);

  async function run(reason: string): Promise<ConfigReloadAnswer> {
    const serving = (): Pick<ConfigReloadAnswer, 'generation' | 'sha256'> => ({ generation: target.id, sha256 });
    const v = await validateConfigFile(file);
    // What would stop `serve` from starting refuses the reload; a loadable error (a stale CRL under
    // crl_stale: refuse) does not: serve starts with it, and it is the TLS material's state, not this edit's.
    const errors = v.problems.filter(blocksLoading);
    if (v.config !== undefined && errors.length === 0 && v.sha256 === sha256 && v.assertionKeys?.digest === keysDigest) {
      // A file event in the config's folder (a TLS file beside it, an editor's temp file) that left the
      // config as it was is no reload anyone asked for: only an explicit trigger is answered and counted.
      if (reason === 'watch') return { result: 'unchanged', ...serving() };
      metrics.configReloads.inc({ result: 'unchanged' });
      log.info({ msg: 'config re-read: nothing changed', reason, file, generation: target.id });
      return { result: 'unchanged', ...serving() };
    }
    if (v.config === undefined || errors.length > 0) return fail(reason, errors, serving());
    const next = v.config;
    const restart = changedKeys(started, next).filter((k) => !LIVE_KEYS.some((live) => k === live || k.startsWith(`${live}.`)));
    const changes = withKeyChange(summary(config, next), v.assertionKeys?.digest !== keysDigest);
    let report: ApplyReport | undefined;
    try {
      report = await target.apply(next, v.source ?? '');
    } catch (err) {
      const problems: Problem[] = err instanceof CertgateError ? (err.problems.length > 0 ? [...err.problems] : [err.toProblem()])
        : [{ severity: 'error', code: 'CG_CONFIG_INVALID', message: String(err), file }];
      return fail(reason, problems, serving());
    }
    // Only a changed log.level moves the level (a logger given another level at start-up keeps it otherwise).
    // A single process's target moves it too (the same Logger): setting it twice is harmless.
    if (next.log.level !== config.log.level) log.level = next.log.level;
    const rewatch = JSON.stringify(watchedFiles(next)) !== JSON.stringify(watchedFiles(config));
    config = next;
    sha256 = v.sha256;
    keysDigest = v.assertionKeys?.digest;
    if (rewatch) await armWatch();
    pendingRestart = restart;
    await opts.onApplied?.(next, v);
    metrics.configReloads.inc({ result: 'success' });
    metrics.configLastReloadSuccess.set(Date.now() / 1000);
    metrics.configGeneration.set(target.id);
    log.info({ msg: 'config reloaded', reason, file, generation: target.id, sha256, changes });
    for (const key of restart) {
      log.warn({ msg: 'restart to apply', setting: key, file, hint: `${key} changed in ${path.basename(file)}; it takes effect at the next restart, everything else applied now` });
    }
    const replaced = report?.replaced_workers ?? [];
    if (replaced.length > 0) {
      log.warn({ msg: 'config applied; workers that did not apply it are replaced', generation: target.id, replaced_workers: replaced });
    }
    history.record({ time: Date.now(), trigger: reason, file: 'config', result: 'success', message: changes });
    return {
      result: 'success', ...serving(), changes, ...(restart.length > 0 && { restart_to_apply: restart }),
      ...(replaced.length > 0 && { replaced_workers: replaced }),
    };
  }

  function fail(reason: string, problems: Problem[], serving: Pick<ConfigReloadAnswer, 'generation' | 'sha256'>): ConfigReloadAnswer {
    const first = problems[0];
    metrics.configReloads.inc({ result: 'failure' });
    lastFailure = { time: new Date().toISOString(), problems };
    log.warn({
      msg: 'config reload failed: the old config keeps serving', reason, file, code: first?.code, problem_file: first?.file,
      line: first?.line, col: first?.col, message: first?.message, hint: first?.hint, errors: problems.length, generation: serving.generation,
    });
    const where = first === undefined ? '' : `${first.file ?? file}${first.line !== undefined ? `:${first.line}` : ''}: `;
    history.record({
      time: Date.now(), trigger: reason, file: 'config', result: 'failure',
      ...(first !== undefined && { code: first.code, message: `${where}${first.message}` }),
    });
    return { result: 'failure', ...serving, problems };
  }

  /** (Re)arms the watch on the files the serving config names (config_watch). */
  async function armWatch(): Promise<void> {
    if (!started.config_watch || closed) return;
    const previous = watch;
    // The folder is watched (tls/watch.ts): an editor's rename, and a ConfigMap's `..data` symlink swap.
    watch = watchFiles(watchedFiles(config), () => void reload('watch'), { onError: (err) => log.warn({ msg: 'config watch error', err: String(err) }) });
    await previous?.close();
    await watch.ready;
  }

  function reload(reason: string): Promise<ConfigReloadAnswer> {
    const p = chain.then(() => run(reason));
    chain = p.catch(() => undefined);
    return p;
  }

  return {
    get config() {
      return config;
    },
    reload,
    status: () => ({
      file, generation: target.id, sha256, watch: started.config_watch, restart_to_apply: pendingRestart, last_failure: lastFailure,
    }),
    start: armWatch,
    async close() {
      closed = true;
      await watch?.close();
      await chain;
    },
  };
}

/** Leaf key paths whose values differ (arrays compared whole; `file` and config-file line numbers ignored). */
export function changedKeys(a: unknown, b: unknown, prefix = ''): string[] {
  const plain = (v: unknown): unknown => JSON.parse(JSON.stringify(v ?? null, (k, x: unknown) => (k === 'line' || k === 'lines' ? undefined : x)));
  const pa = plain(a);
  const pb = plain(b);
  const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
  if (isObj(pa) && isObj(pb)) {
    const keys = [...new Set([...Object.keys(pa), ...Object.keys(pb)])].filter((k) => !(prefix === '' && k === 'file'));
    return keys.flatMap((k) => changedKeys(pa[k], pb[k], prefix === '' ? k : `${prefix}.${k}`));
  }
  return JSON.stringify(pa) === JSON.stringify(pb) ? [] : [prefix];
}

/** "routes added: a; removed: b; changed: c; limits changed: x" — the status page's one-line diff. */
export function summary(before: Config, after: Config): string {
  const byName = (c: Config): Map<string, string> => new Map(c.routes.map((r) => [r.name, JSON.stringify(r, (k, x: unknown) => (k === 'line' || k === 'lines' ? undefined : x))]));
  const a = byName(before);
  const b = byName(after);
  const added = [...b.keys()].filter((n) => !a.has(n));
  const removed = [...a.keys()].filter((n) => !b.has(n));
  const changed = [...b.keys()].filter((n) => a.has(n) && a.get(n) !== b.get(n));
  const parts: string[] = [];
  if (added.length > 0) parts.push(`routes added: ${added.join(', ')}`);
  if (removed.length > 0) parts.push(`routes removed: ${removed.join(', ')}`);
  if (changed.length > 0) parts.push(`routes changed: ${changed.join(', ')}`);
  const others = changedKeys({ ...before, routes: [] }, { ...after, routes: [] });
  const limits = others.filter((k) => k.startsWith('limits.'));
  if (limits.length > 0) parts.push(`limits changed: ${limits.map((k) => k.slice('limits.'.length)).join(', ')}`);
  const rest = others.filter((k) => !k.startsWith('limits.'));
  if (rest.length > 0) parts.push(`changed: ${rest.join(', ')}`);
  return parts.length > 0 ? parts.join('; ') : 'no setting changed';
}

/** The summary, plus a note when headers.assertion's key files (their content or the list) changed. */
function withKeyChange(changes: string, keysChanged: boolean): string {
  if (!keysChanged) return changes;
  const note = 'headers.assertion keys changed';
  return changes === 'no setting changed' ? note : `${changes}; ${note}`;
}

/** SHA-256 of the file the process started with (read again at start-up when the caller did not hash it). */
function fileSha256(file: string): string | undefined {
  try {
    return createHash('sha256').update(readFileSync(file, 'utf8')).digest('hex');
  } catch {
    return undefined;
  }
}
