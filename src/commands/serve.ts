/**
 * `certgate serve --config FILE`: run the proxy. Invalid config or TLS material at start-up exits 2 at
 * once with a one-line reason (an orchestrator restarts it; a stack trace helps nobody). SIGTERM/SIGINT
 * drain and stop (exit 0); a second signal exits at once.
 */
import { parseArgs } from 'node:util';
import { parseConfig, readConfigSource } from '../config/load.js';
import cluster from 'node:cluster';
import { startCertgate } from '../app/start.js';
import { runPrimary, workerCount } from '../cluster/primary.js';
import { runWorker } from '../cluster/worker.js';
import type { CommandIo } from './io.js';

export const SERVE_HELP = `Usage: certgate serve --config FILE

Runs the mTLS proxy described by FILE (YAML). serve is the default command.

Options:
  --config FILE   the config (default: $CERTGATE_CONFIG, else config/certgate.yaml)
  -h, --help      show this help

Signals: SIGHUP re-reads the config (applied live when valid) and then the TLS material (validated;
         a bad file keeps the old one serving). POST /-/reload on the admin listener and
         \`certgate reload\` re-read the config too; config_watch (default true) on every change of the file.
         SIGTERM/SIGINT stop gracefully (in-flight requests finish); a second one exits at once.
         With workers: N > 1, send them to the primary (the process started); it tells every worker.
Exit status: 0 stopped by a signal, 1 runtime failure, 2 invalid config or TLS material at start-up.
Example: certgate serve --config config/certgate.yaml`;

export async function runServe(argv: string[], io: CommandIo): Promise<number> {
  const { values } = parseArgs({
    args: argv, strict: true, allowPositionals: false,
    options: { config: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
  });
  if (values.help) {
    io.stdout(SERVE_HELP);
    return 0;
  }
  // A cluster worker does not read the file: it starts on the config its primary holds as serving (the
  // file may hold an edit the primary refused, or one it has not validated yet).
  if (cluster.isWorker) return runWorker();
  const file = values.config ?? process.env.CERTGATE_CONFIG ?? 'config/certgate.yaml';
  const { abs, source } = await readConfigSource(file);
  const config = parseConfig(source, abs);
  // workers: N > 1 runs a node:cluster primary that forks N proxy processes (cluster/primary.ts).
  const workers = workerCount(config.workers);
  if (workers > 1) return runPrimary(config, workers, source);
  const app = await startCertgate(config);
  return new Promise<number>((resolve) => {
    let signalled = false;
    const stop = (signal: NodeJS.Signals): void => {
      if (signalled) {
        app.log.warn({ msg: 'second signal: exiting now', signal });
        resolve(1);
        return;
      }
      signalled = true;
      app.log.info({ msg: 'stopping', signal });
      // The CLI exits right after: flush the async log destination first.
      const flushed = (code: number) => (): void => app.log.flush(() => resolve(code));
      app.close().then(flushed(0), flushed(1));
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
    // SIGHUP: the config first (validated; applied live when valid), then the TLS material. The reloader
    // re-reads the files of the config it started with (tls.* is restart-to-apply), so a broken config
    // still gets its TLS files re-read.
    process.on('SIGHUP', () => {
      void (async () => {
        await app.reloadConfig?.('signal');
        await app.reload('signal');
      })();
    });
  });
}
