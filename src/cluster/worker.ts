/**
 * One proxy process of the cluster (workers: N): gets the shared ticket secret and the config to start on
 * (the one the primary holds as serving; the file is not read here) from the primary, serves the TLS listener (shared with the other workers; the kernel hands each new connection to one
 * of them), and does what the primary asks: reload from the files it validated, apply the config it
 * validated (live reload: the text, parsed here again, built into a generation and swapped), answer for /metrics,
 * the status page and /clients, drain.
 *
 * Signals: the primary coordinates shutdown. A terminal's Ctrl-C also reaches every worker directly
 * (the process group): the first SIGINT/SIGTERM starts the same drain as the primary's message, later
 * ones are the primary's to act on. SIGHUP is ignored here (the primary reloads and tells us).
 */
import cluster from 'node:cluster';
import { startCertgate, type Certgate } from '../app/start.js';
import { localCounters } from '../admin/counters.js';
import { createSessionTickets } from '../tls/context.js';
import { isToWorker, type ConfigHandOver, type Question, type ToPrimary, type ToWorker } from './messages.js';
import { parseConfig } from '../config/load.js';
import { CertgateError } from '../errors.js';

/**
 * Runs one worker. It reads no config file: init carries the config the primary holds as serving (its text,
 * parsed here, and its generation), so a worker never starts on an edit the primary refused or has not
 * validated, nor on a hand-over still in flight (the primary answers a hello during one once it settled).
 */
export async function runWorker(): Promise<number> {
  const send = (m: ToPrimary): void => {
    if (process.connected) process.send!(m);
  };
  // A drain can come before we serve: instead of init (shutdown began while we were forked), or while
  // certgate starts. Either way we never announce ourselves ready, and stop as soon as we can.
  let drainBeforeReady: number | undefined;
  // A config handed over while we start (a reload after init): the newest is applied before ready.
  let handOver: ConfigHandOver | undefined;
  const early = (m: unknown): void => {
    if (isToWorker(m) && m.cg === 'drain') drainBeforeReady ??= m.ms;
    if (isToWorker(m) && m.cg === 'config' && (handOver === undefined || m.id > handOver.id)) handOver = m;
  };
  process.on('message', early);
  const init = await new Promise<Extract<ToWorker, { cg: 'init' }> | undefined>((resolve) => {
    const onInit = (m: unknown): void => {
      if (!isToWorker(m) || (m.cg !== 'init' && m.cg !== 'drain')) return;
      process.off('message', onInit);
      resolve(m.cg === 'init' ? m : undefined);
    };
    process.on('message', onInit);
    send({ cg: 'hello' });
  });
  if (init === undefined) {
    process.off('message', early);
    return 0;
  }
  // The primary validated this text (at start-up, or in the live reload that made it the serving config).
  const config = parseConfig(init.config.source, init.config.file);
  const app = await startCertgate(config, { role: 'worker', tickets: createSessionTickets(Buffer.from(init.ticketSecret, 'hex')), generation: init.config.id });
  // A hand-over begun after init reached us while we started: applied before ready (loop until the newest is).
  for (let applied = init.config.id; handOver !== undefined && handOver.id > applied;) {
    const h: ConfigHandOver = handOver;
    if (!await applyHandOver(app, h, send)) {
      // Never serve a config other than the primary's: exit (the primary starts another, with its back-off).
      process.off('message', early);
      await app.close(0);
      return 1;
    }
    applied = h.id;
  }
  process.off('message', early);

  return new Promise<number>((resolve) => {
    let draining = false;
    const drain = (ms: number): void => {
      if (draining) return;
      draining = true;
      const flushed = (code: number) => (): void => app.log.flush(() => resolve(code));
      app.close(ms).then(flushed(0), flushed(1));
    };
    process.on('message', (m: unknown) => {
      if (!isToWorker(m)) return;
      switch (m.cg) {
        case 'reload':
          void app.reload(m.reason, m.file);
          return;
        case 'config':
          void applyHandOver(app, m, send, true);
          return;
        case 'drain':
          drain(m.ms);
          return;
        case 'ask':
          answer(app, m.what).then(
            (value) => send({ cg: 'answer', id: m.id, value }),
            (err: unknown) => app.log.warn({ msg: 'worker could not answer the primary', what: m.what, err: String(err) }),
          );
          return;
        case 'init':
          return;
      }
    });
    const own = (): void => drain(config.shutdown.drain_timeout_ms);
    process.on('SIGTERM', own);
    process.on('SIGINT', own);
    process.on('SIGHUP', () => undefined);
    // The primary is gone (killed, crashed): nobody would stop us any more.
    process.on('disconnect', own);
    if (drainBeforeReady !== undefined) drain(drainBeforeReady);
    else send({ cg: 'ready', url: app.url });
  });
}

/**
 * A test hook, not reachable from any config key or client: the cluster worker ids (node:cluster's
 * worker.id, 1 for the first forked) listed in CERTGATE_TEST_FAIL_APPLY_WORKERS ("1,2", or "all") refuse
 * every config handed over after their start, as a worker that cannot apply it would (nothing changes there).
 */
function failsApplyForTest(): boolean {
  const list = process.env.CERTGATE_TEST_FAIL_APPLY_WORKERS;
  if (list === undefined || cluster.worker === undefined) return false;
  return list === 'all' || list.split(',').includes(String(cluster.worker.id));
}

/**
 * Builds and swaps in the primary's config; tells the primary the outcome (applied, or could not: then
 * nothing changed here). True when applied.
 */
async function applyHandOver(app: Certgate, m: ConfigHandOver, send: (m: ToPrimary) => void, started = false): Promise<boolean> {
  try {
    if (started && failsApplyForTest()) throw new CertgateError('CG_CONFIG_INVALID', 'refused by CERTGATE_TEST_FAIL_APPLY_WORKERS (a test)');
    await app.applyConfig(parseConfig(m.source, m.file), m.id);
    app.log.info({ msg: 'worker applied the config', generation: m.id });
    send({ cg: 'applied', id: m.id, url: app.url });
    return true;
  } catch (err) {
    const problems = err instanceof CertgateError ? (err.problems.length > 0 ? [...err.problems] : [err.toProblem()])
      : [{ severity: 'error' as const, code: 'CG_CONFIG_INVALID' as const, message: String(err), file: m.file }];
    app.log.error({ msg: 'worker could not apply the config the primary validated', generation: m.id, code: problems[0]?.code, message: problems[0]?.message });
    send({ cg: 'applied', id: m.id, problems });
    return false;
  }
}

function answer(app: Certgate, what: Question): Promise<unknown> {
  switch (what) {
    case 'metrics':
      return app.metrics.registry.getMetricsAsJSON();
    case 'counters':
      return localCounters(app.metrics)();
    case 'clients':
      return app.clients.list();
  }
}
