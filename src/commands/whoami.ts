/** `certgate whoami --listen HOST:PORT`: the built-in echo upstream (JSON of what reached it). */
import { parseArgs } from 'node:util';
import { parseHostPort } from '../config/load.js';
import { HOST_PORT } from '../config/schema.js';
import { CertgateError } from '../errors.js';
import { listenEchoUpstream } from '../echo-upstream.js';
import type { CommandIo } from './io.js';

export const WHOAMI_HELP = `Usage: certgate whoami --listen HOST:PORT

Runs the echo upstream: every request is answered with JSON {method, path, headers, body_len},
so you can see exactly which headers certgate forwarded. WebSocket upgrades are echoed too.

Options:
  --listen HOST:PORT   where to listen (default 127.0.0.1:8081)
  -h, --help           show this help

Example: certgate whoami --listen 127.0.0.1:8081`;

export async function runWhoami(argv: string[], io: CommandIo): Promise<number> {
  const { values } = parseArgs({
    args: argv, strict: true, allowPositionals: false,
    options: { listen: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
  });
  if (values.help) {
    io.stdout(WHOAMI_HELP);
    return 0;
  }
  const listen = values.listen ?? '127.0.0.1:8081';
  if (!HOST_PORT.test(listen)) {
    throw new CertgateError('CG_USAGE', `--listen ${listen}: expected HOST:PORT`);
  }
  const at = parseHostPort(listen);
  const w = await listenEchoUpstream(at.host, at.port);
  io.stdout(`whoami listening on ${w.url}`);
  return new Promise<number>((resolve) => {
    const stop = (): void => void w.close().then(() => resolve(0));
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
}
