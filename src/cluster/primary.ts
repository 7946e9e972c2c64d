/**
 * The cluster primary (workers: N, N > 1): forks the proxy processes and coordinates them. It serves no
 * TLS traffic itself. What it owns, and why:
 *
 * - Session tickets: one random secret, handed to every worker; each derives the same ticket keys from
 *   it, the trust material and the rotation epoch (tls/context.ts), so a ticket issued by one worker
 *   resumes on another, every worker rotates at the same moment, and a CA/CRL change renews them.
 * - Reloads: one watcher, here. The primary's reloader re-reads and validates every change exactly as
 *   a single process would (it publishes to a stand-in that only builds the secure context), then tells
 *   each worker to reload; each worker re-reads the same files and validates again before its swap.
 *   Handing the parsed material over is not possible (key objects and X509Certificates do not cross
 *   IPC), and re-validating in each worker means no process ever serves material it did not check.
 *   Should a file change again in between, the worker's own validation decides, and the primary's
 *   watcher sees that change too and tells every worker once more.
 * - The admin listener: /metrics aggregates every worker's registry with its own (prom-client's
 *   AggregatorRegistry: counters summed, expiry gauges by their `aggregator`), /clients merges the
 *   workers' lists, the status page sums their counters, /enroll runs here.
 * - Lifecycle: a worker that dies is logged and replaced (with a growing delay while it keeps dying);
 *   SIGTERM/SIGINT drain every worker (each finishes its in-flight requests within the budget), then the
 *   primary exits 0; a second signal kills them and exits 1. SIGHUP reloads (the config, then TLS).
 * - Live config: validated here once, the text handed to every worker (see `target` below).
 *
 * Limits (limits.*) apply per worker. Every worker starts on the config held here as serving (init carries
 * its text and generation), never on the file as it reads it nor on a hand-over still in flight (see `told`).
 */
import cluster, { type Worker } from 'node:cluster';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import net, { type AddressInfo } from 'node:net';
import { availableParallelism } from 'node:os';
import tls from 'node:tls';
import { AggregatorRegistry, type MetricObjectWithValues, type MetricValue } from 'prom-client';
import type { Config, HostPort } from '../config/types.js';
import { createLogger } from '../log.js';
import { createClusterMetrics, createMetrics } from '../admin/metrics.js';
import { mergeClientRecords, type ClientRecord } from '../admin/clients.js';
import type { CounterSnapshot } from '../admin/counters.js';
import { createSessionTickets } from '../tls/context.js';
import { createReloader } from '../tls/reloader.js';
import { loadAssertionKeys } from '../tls/assertion-keys.js';
import { createAdminSide, enrollmentFor, listen, loadAdminInputs, listensAt, loadStartMaterial, servingFields, startupHistory, urlOf } from '../app/parts.js';
import { askWorkers, isToPrimary, type ConfigHandOver, type ToWorker } from './messages.js';
import { createLiveConfig, prepareAll, type ApplyReport, type ConfigTarget, type PreparedChange, type ReplacedWorker } from '../app/live-config.js';
import { CertgateError, type Problem } from '../errors.js';
import { sumCounters } from './merge.js';

/**
 * `workers: auto` = the cores this process may use: the CPUs it may run on, capped by its cgroup's CPU
 * quota (a Kubernetes `limits.cpu`), rounded up. availableParallelism() alone sees every core of the node:
 * a pod limited to 1 CPU on a 64-core node would start 64 workers.
 */
export function workerCount(setting: Config['workers'], quota: number | undefined = cgroupCpuQuota()): number {
  if (setting !== 'auto') return setting;
  const cpus = availableParallelism();
  return quota === undefined ? cpus : Math.max(1, Math.min(cpus, Math.ceil(quota)));
}

/** CPUs the cgroup (v2 `cpu.max`, else v1 `cpu.cfs_quota_us`/`cpu.cfs_period_us`) allows; undefined = no limit. */
export function cgroupCpuQuota(read: (file: string) => string | undefined = readQuiet): number | undefined {
  const v2 = read('/sys/fs/cgroup/cpu.max');
  if (v2 !== undefined) return parseCpuMax(v2);
  const quota = Number(read('/sys/fs/cgroup/cpu/cpu.cfs_quota_us'));
  const period = Number(read('/sys/fs/cgroup/cpu/cpu.cfs_period_us'));
  return quota > 0 && period > 0 ? quota / period : undefined;
}

/** cgroup v2 `cpu.max`: "max 100000" (no limit) or "150000 100000" (1.5 CPUs). */
export function parseCpuMax(text: string): number | undefined {
  const [quota, period] = text.trim().split(/\s+/);
  const q = Number(quota);
  const p = Number(period ?? 100000);
  return quota === 'max' || !(q > 0) || !(p > 0) ? undefined : q / p;
}

/** Binds `at` and releases it: CG_LISTEN (the address and the OS error) when it cannot be bound. */
async function probeListen(at: HostPort): Promise<void> {
  const probe = net.createServer();
  await listen(probe, at, 'listen');
  await new Promise<void>((resolve) => probe.close(() => resolve()));
}

function readQuiet(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}

/**
 * How long a config hand-over waits for a worker's answer before replacing the worker. The tests shorten it
 * (CERTGATE_TEST_HAND_OVER_TIMEOUT_MS, an environment variable no config key or client reaches).
 */
const HAND_OVER_TIMEOUT_MS = Number(process.env.CERTGATE_TEST_HAND_OVER_TIMEOUT_MS ?? '') || 10_000;

/** A worker's answer to a hand-over: applied (or exited meanwhile: its replacement starts on it), could not, or no answer. */
type HandOverOutcome =
  | { readonly kind: 'applied'; readonly url?: string }
  | { readonly kind: 'failed' | 'silent'; readonly problems: readonly Problem[] };

/** Hands `m` to one worker and waits for its answer (at most timeoutMs). */
function applyOn(worker: Worker, m: ConfigHandOver, timeoutMs: number): Promise<HandOverOutcome> {
  const silent: HandOverOutcome = {
    kind: 'silent',
    problems: [{ severity: 'error', code: 'CG_CONFIG_INVALID', message: `worker ${worker.process.pid} did not confirm generation ${m.id} in ${timeoutMs} ms` }],
  };
  if (!worker.isConnected()) return Promise.resolve(silent);
  return new Promise((resolve) => {
    const done = (outcome: HandOverOutcome): void => {
      clearTimeout(timer);
      worker.off('message', onMessage);
      worker.off('exit', onExit);
      resolve(outcome);
    };
    const onMessage = (r: unknown): void => {
      if (!isToPrimary(r) || r.cg !== 'applied' || r.id < m.id) return;
      done(r.problems === undefined ? { kind: 'applied', ...(r.url !== undefined && { url: r.url }) }
        : { kind: 'failed', problems: r.problems.map((p) => ({ ...p, message: `worker ${worker.process.pid}: ${p.message}` })) });
    };
    const onExit = (): void => done({ kind: 'applied' });
    const timer = setTimeout(() => done(silent), timeoutMs);
    worker.on('message', onMessage);
    worker.once('exit', onExit);
    try {
      worker.send({ cg: 'config', ...m } satisfies ToWorker);
    } catch {
      done(silent);
    }
  });
}

/** How long /metrics, /clients and the status page wait for a worker's answer. */
const ASK_TIMEOUT_MS = 2000;
/** A worker that dies sooner than this after its start counts as crash-looping: its restart waits longer. */
const HEALTHY_AFTER_MS = 10_000;
const RESTART_DELAY_MAX_MS = 10_000;

/** `source`: the text `config` was parsed from (generation 1, the config every worker starts on until a reload applies). */
export async function runPrimary(config: Config, count: number, source: string): Promise<number> {
  const log = createLogger({ level: config.log.level, format: config.log.format });
  // Everything a worker would refuse, refused here once, before any fork (exit 2 with file:line).
  const material = await loadStartMaterial(config, log, true);
  const metrics = createMetrics();
  const clusterMetrics = createClusterMetrics(metrics.registry);
  const inputs = await loadAdminInputs(config, metrics, log);
  // headers.assertion's keys: refused here before any fork (a worker loads its own with each generation);
  // the primary publishes them at /.well-known/jwks.json, and the ones each applied config loaded after.
  const assertion = config.headers.assertion;
  let assertionKeys = assertion === undefined ? undefined : await loadAssertionKeys(assertion, config.file, config.tls.allow_insecure_key_permissions);

  // The session-ticket secret every worker derives its keys from (cluster/worker.ts).
  const secret = randomBytes(32);
  const ticketSecret = secret.toString('hex');
  /** told: sent init (its config). Only told workers are asked in a hand-over; the others are told its outcome. */
  const workers = new Map<Worker, { ready: boolean; startedAt: number; told: boolean }>();
  let url: string | undefined;
  let stopping = false;
  let crashes = 0;
  const live = (): Worker[] => [...workers.keys()].filter((w) => w.isConnected());
  const broadcast = (m: ToWorker): void => {
    for (const w of live()) {
      try {
        w.send(m);
      } catch {
        // It is exiting; its replacement starts from the files.
      }
    }
  };

  const history = startupHistory(material);
  const reloader = createReloader({
    tls: config.tls, listenHost: config.listen.host, initial: material, tickets: createSessionTickets(secret), metrics, log,
    onReload: (event) => {
      history.record(event);
      // A live config's new tls paths (trigger config) reach the workers with the config itself.
      if (event.result === 'success' && event.trigger !== 'config') broadcast({ cg: 'reload', reason: event.trigger, file: event.file });
    },
  });

  // Live config (issue 17): the primary validates once (app/validate.ts) and hands the text to every worker;
  // each builds and swaps generation `id` and answers. The reload succeeds when the workers have applied it;
  // one that could not (it changed nothing) or did not answer is replaced, and its replacement (like any
  // worker started later) starts on the config held here (init) or exits — the answer names them. When no
  // worker could apply it, the reload fails and the old config stays the one held here: nothing changed.
  /** The config serving: what every worker starts on. Changes only once a hand-over has succeeded. */
  let committed: ConfigHandOver = { id: 1, source, file: config.file };
  /**
   * A hand-over in flight. A worker that asks for its config meanwhile (forked to replace one that died) is
   * not told until it settles: told the candidate, it would serve a config the hand-over may yet refuse
   * ("the old config keeps serving" while it does not); told the old one, it would miss the hand-over.
   * It waits in `waiting` and is told `committed` (or to drain) once the outcome is known.
   */
  let inFlight: ConfigHandOver | undefined;
  const waiting = new Set<Worker>();
  let listenAt = config.listen;
  /** Replaces a worker that is not on the config held here: drain (its requests finish), killed past the budget. */
  const replace = (w: Worker): void => {
    try {
      w.send({ cg: 'drain', ms: config.shutdown.drain_timeout_ms } satisfies ToWorker);
    } catch {
      // Exiting already; the exit handler replaces it.
    }
    const kill = setTimeout(() => w.process.kill('SIGKILL'), config.shutdown.drain_timeout_ms + 1000);
    kill.unref();
    w.once('exit', () => clearTimeout(kill));
  };
  /** Sends a worker its start: the config held here now; or, shutdown having begun, drain (it exits without listening). */
  const tell = (worker: Worker): void => {
    const state = workers.get(worker);
    if (state === undefined || !worker.isConnected()) return;
    const reply: ToWorker = stopping ? { cg: 'drain', ms: config.shutdown.drain_timeout_ms } : { cg: 'init', ticketSecret, config: committed };
    state.told = !stopping;
    try {
      worker.send(reply);
    } catch {
      // Exiting already; the exit handler replaces it.
    }
  };
  /**
   * Hands `m` to every worker told its config and waits for their answers. Applied by at least one: m is
   * committed (the config held here; workers that did not apply it are replaced). Applied by none: throws,
   * and nothing changed here.
   */
  const handOver = async (m: ConfigHandOver, next: Config, prepared: PreparedChange | undefined): Promise<ApplyReport | undefined> => {
    // A worker not told yet has no config to change: it waits for the outcome (see `inFlight`).
    const asked = live().filter((w) => workers.get(w)?.told === true);
    const outcomes = await Promise.all(asked.map(async (w) => [w, await applyOn(w, m, HAND_OVER_TIMEOUT_MS)] as const));
    const missed = outcomes.filter(([, o]) => o.kind !== 'applied');
    for (const [w, o] of missed) {
      if (o.kind === 'applied') continue;
      log.error({ msg: 'worker did not apply the config', pid: w.process.pid, generation: m.id, outcome: o.kind, code: o.problems[0]?.code, message: o.problems[0]?.message });
    }
    if (asked.length > 0 && missed.length === asked.length) {
      // Applied nowhere: the config held here stays the old one; workers that answered changed nothing. A silent
      // one may still apply it late, and must not serve a refused config: killed now, not drained (it has not
      // answered for the whole hand-over timeout); its replacement starts on the old config.
      for (const [w, o] of missed) if (o.kind === 'silent') w.process.kill('SIGKILL');
      await prepared?.abort();
      const problems = missed.flatMap(([, o]) => (o.kind === 'applied' ? [] : o.problems));
      throw new CertgateError('CG_CONFIG_INVALID', `no worker applied the config: ${problems[0]?.message ?? ''}`, { problems });
    }
    prepared?.commit();
    committed = m;
    await prepared?.settled?.();
    listenAt = next.listen;
    for (const [, o] of outcomes) if (o.kind === 'applied' && o.url !== undefined) url = o.url;
    const replaced: ReplacedWorker[] = [];
    for (const [w, o] of missed) {
      if (o.kind === 'applied') continue;
      // A silent worker may apply it late (the committed config): drained either way.
      replace(w);
      replaced.push({ pid: w.process.pid ?? 0, outcome: o.kind, code: o.problems[0]?.code ?? 'CG_CONFIG_INVALID', message: o.problems[0]?.message ?? '' });
    }
    return replaced.length > 0 ? { replaced_workers: replaced } : undefined;
  };
  const target: ConfigTarget = {
    get id() {
      return committed.id;
    },
    async apply(next, source) {
      const prepared = await prepareAll([
        // A changed `listen`: each worker binds it through node:cluster, which binds in this process. Bound
        // here first, so an address in use fails the reload before any worker is told (and released again:
        // a socket held here would make the workers' bind fail).
        async () => {
          const bound = url === undefined ? undefined : Number(new URL(url).port);
          if (!listensAt(listenAt, bound, next.listen)) await probeListen(next.listen);
          return undefined;
        },
        () => admin.prepareListen(next.admin.listen, config.shutdown.drain_timeout_ms),
        // New tls paths: read and validated here first (the workers read them again for their own swap); the
        // primary's watcher follows them once the workers have the config.
        () => reloader.retarget(next.tls),
      ]);
      const m: ConfigHandOver = { id: committed.id + 1, source, file: config.file };
      inFlight = m;
      try {
        return await handOver(m, next, prepared);
      } finally {
        // Settled: the workers that asked meanwhile start on the config held now (m when applied, else the old one).
        inFlight = undefined;
        for (const w of waiting) tell(w);
        waiting.clear();
      }
    },
  };
  const liveConfig = createLiveConfig({
    initial: config, target, metrics, log, history, onApplied: async (next, loaded) => {
      admin.setToken(loaded.adminToken);
      admin.setAllowedHosts(next.admin.allowed_hosts);
      assertionKeys = loaded.assertionKeys;
      admin.setEnrollment(await enrollmentFor(loaded.enrollment, metrics, log));
    },
    ...(assertionKeys !== undefined && { assertionDigest: assertionKeys.digest }),
  });

  const readCounters = async (): Promise<CounterSnapshot> => sumCounters(await askWorkers(live(), 'counters', ASK_TIMEOUT_MS) as CounterSnapshot[]);
  const ready = (): boolean => !stopping && [...workers.values()].some((w) => w.ready);
  const aggregated = {
    contentType: metrics.registry.contentType,
    async metrics(): Promise<string> {
      const own = await metrics.registry.getMetricsAsJSON();
      const theirs = await askWorkers(live(), 'metrics', ASK_TIMEOUT_MS) as MetricObjectWithValues<MetricValue<string>>[][];
      return AggregatorRegistry.aggregate([own, ...theirs]).metrics();
    },
  };
  const clients = { list: async () => mergeClientRecords(await askWorkers(live(), 'clients', ASK_TIMEOUT_MS) as ClientRecord[][], liveConfig.config.admin.clients_max) };
  const admin = createAdminSide({
    config, inputs, registry: aggregated, readCounters, clients, history, material: () => reloader.current, ready, url: () => url,
    live: liveConfig, jwks: () => assertionKeys?.jwks, reloadTls: (reason) => reloader.reload(reason),
  });
  // Validate-only: building the secure context is the check the workers' setSecureContext will make.
  const watching = reloader.start({ setSecureContext: (options) => void tls.createSecureContext(options) });

  // SCHED_NONE: every worker accepts on the shared socket itself. SCHED_RR (the primary accepts and passes
  // each connection over IPC) measured slower for new connections on this kind of machine (bench/README.md).
  cluster.schedulingPolicy = process.env.CERTGATE_CLUSTER_SCHED === 'rr' ? cluster.SCHED_RR : cluster.SCHED_NONE;

  let onStartupExit: ((code: number) => void) | undefined;
  let onAllReady: (() => void) | undefined;
  let onAllExited: (() => void) | undefined;

  const fork = (): void => {
    const worker = cluster.fork({ CERTGATE_WORKER: '1' });
    workers.set(worker, { ready: false, startedAt: Date.now(), told: false });
    clusterMetrics.workers.set(live().length);
    // A send to a worker that is exiting fails asynchronously, as an 'error' event: without a listener that
    // would take the primary down (a /metrics scrape during a drain, say). Its 'exit' follows and is handled.
    worker.on('error', (err: Error) => log.debug({ msg: 'worker IPC error', pid: worker.process.pid, err: err.message }));
    worker.on('message', (m: unknown) => {
      if (!isToPrimary(m)) return;
      if (m.cg === 'hello') {
        // A worker forked just before shutdown began (a replacement) asks only now: it must not start
        // serving. Its 'hello' is the first moment it can hear anything (a drain broadcast while it was
        // still loading had no listener), so it is told to stop here (tell), and exits without listening.
        // During a hand-over it waits for the outcome (see `inFlight`).
        const waits = inFlight !== undefined && !stopping;
        log.info({ msg: 'worker asked for its config', pid: worker.process.pid, ...(waits ? { waits_for_generation: inFlight!.id } : { generation: committed.id }) });
        if (waits) waiting.add(worker);
        else tell(worker);
      } else if (m.cg === 'ready') {
        const state = workers.get(worker);
        if (state !== undefined) state.ready = true;
        url ??= m.url;
        if ([...workers.values()].every((w) => w.ready)) onAllReady?.();
      }
    });
    worker.on('exit', (code, signal) => {
      const state = workers.get(worker);
      workers.delete(worker);
      waiting.delete(worker);
      clusterMetrics.workers.set(live().length);
      if (workers.size === 0) onAllExited?.();
      if (stopping) return;
      if (onStartupExit !== undefined) {
        onStartupExit(code ?? 1);
        return;
      }
      const lived = Date.now() - (state?.startedAt ?? 0);
      crashes = lived < HEALTHY_AFTER_MS ? crashes + 1 : 0;
      const delay = Math.min(RESTART_DELAY_MAX_MS, crashes === 0 ? 0 : 100 * 2 ** (crashes - 1));
      clusterMetrics.workerRestarts.inc({ reason: signal !== null ? 'signal' : 'exit' });
      log.error({ msg: 'worker died; starting a replacement', pid: worker.process.pid, code, signal, lived_ms: lived, restart_in_ms: delay });
      setTimeout(() => {
        if (!stopping) fork();
      }, delay).unref();
    });
  };

  // Start-up: every worker listening, or the first failure's exit status (its error line is on stderr).
  const started = await new Promise<number>((resolve) => {
    onStartupExit = (code) => resolve(code === 0 ? 1 : code);
    onAllReady = () => resolve(0);
    for (let i = 0; i < count; i++) fork();
  });
  onStartupExit = undefined;
  onAllReady = undefined;
  const killAll = (signal: NodeJS.Signals): void => {
    for (const w of workers.keys()) w.process.kill(signal);
  };
  if (started !== 0) {
    stopping = true;
    killAll('SIGKILL');
    await reloader.close();
    return started;
  }

  let adminAddress: AddressInfo;
  try {
    adminAddress = await admin.listen(config.admin.listen);
  } catch (err) {
    stopping = true;
    killAll('SIGKILL');
    await reloader.close();
    throw err;
  }
  await watching;
  await liveConfig.start();
  const adminUrl = urlOf('http', adminAddress);
  log.info({
    msg: 'certgate listening', url, admin: adminUrl, workers: count, worker_pids: [...workers.keys()].map((w) => w.process.pid),
    ...servingFields(config),
  });

  return new Promise<number>((resolve) => {
    let signalled = false;
    const finish = (code: number): void => {
      admin.status.close();
      void admin.close();
      log.info({ msg: 'certgate stopped', code });
      log.flush(() => resolve(code));
    };
    const stop = (signal: NodeJS.Signals): void => {
      if (signalled) {
        log.warn({ msg: 'second signal: exiting now', signal });
        killAll('SIGKILL');
        finish(1);
        return;
      }
      signalled = true;
      stopping = true;
      log.info({ msg: 'stopping', signal, workers: workers.size });
      const allExited = new Promise<void>((done) => {
        if (workers.size === 0) done();
        else onAllExited = done;
      });
      broadcast({ cg: 'drain', ms: config.shutdown.drain_timeout_ms });
      // A worker past its own drain budget (stuck, or deaf to IPC) is killed a little later.
      const backstop = setTimeout(() => killAll('SIGKILL'), config.shutdown.drain_timeout_ms + 5000);
      backstop.unref();
      void reloader.close().then(() => liveConfig.close()).then(() => allExited).then(() => {
        clearTimeout(backstop);
        finish(0);
      });
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
    // SIGHUP: the config (handed to every worker when valid), then the TLS material of the config started with.
    process.on('SIGHUP', () => {
      void liveConfig.reload('signal').then(() => reloader.reload('signal'));
    });
  });
}
