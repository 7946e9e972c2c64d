#!/usr/bin/env node
/**
 * certgate's entry point: parse the command, dispatch, print a CertgateError as one line, set the exit
 * code. The only module that touches process.exit.
 */
import { readFileSync } from 'node:fs';
import { CertgateError, formatProblem, type ErrorCode } from './errors.js';
import { processIo, type CommandIo } from './commands/io.js';

const HELP = `Usage: certgate [command] [options]

Commands:
  serve --config FILE     run the mTLS proxy (default command)
  check --config FILE     validate the config and every PEM it names
  assertion jwks --config FILE
                          print the public keys upstreams verify X-Client-Cert-Assertion with
  reload --admin URL      apply the config file's changes to a running certgate (POST /-/reload)
  probe URL --cert FILE   connect as curl/requests would and explain a TLS failure in plain words
  certs init|issue|sign|revoke
                          a small dev PKI: CA, server bundle, client certificates, CRL
  whoami --listen H:P     the echo upstream that shows which headers arrive

Options:
  --version               print the version
  -h, --help              show this help; certgate <command> --help documents each command

The config file may also be named by CERTGATE_CONFIG. See README.md.`;

/** Start-up failures an orchestrator cannot fix by restarting: exit 2 (the config or material is wrong). */
const STARTUP_INVALID = /^CG_(CONFIG|FILE|PEM|KEY|CHAIN|CERT|CA|CRL|ENROLL|ASSERTION)_/;

export async function main(argv: string[], io: CommandIo): Promise<number> {
  const [first, ...rest] = argv;
  if (first === '--version' || first === '-v') {
    io.stdout(version());
    return 0;
  }
  if (first === '--help' || first === '-h' || first === 'help') {
    io.stdout(HELP);
    return 0;
  }
  const command = first === undefined || first.startsWith('-') ? 'serve' : first;
  const args = command === first ? rest : argv;
  try {
    // Commands are imported on demand: `--version` or `certs` should not pay for loading the proxy.
    switch (command) {
      case 'serve':
        return await (await import('./commands/serve.js')).runServe(args, io);
      case 'check':
        return await (await import('./commands/check.js')).runCheck(args, io);
      case 'assertion':
        return await (await import('./commands/assertion.js')).runAssertion(args, io);
      case 'reload':
        return await (await import('./commands/reload.js')).runReload(args, io);
      case 'probe':
        return await (await import('./commands/probe.js')).runProbeCommand(args, io);
      case 'certs':
        return await (await import('./commands/certs.js')).runCerts(args, io);
      case 'whoami':
        return await (await import('./commands/whoami.js')).runWhoami(args, io);
      default:
        io.stderr(`certgate: unknown command "${command}" (fix: run certgate --help) [CG_USAGE]`);
        return 2;
    }
  } catch (err) {
    return report(err, command, io);
  }
}

function report(err: unknown, command: string, io: CommandIo): number {
  if (err instanceof CertgateError) {
    const extra = err.problems.length > 1 ? ` (+${err.problems.length - 1} more: run certgate check)` : '';
    io.stderr(`certgate: ${formatProblem(err.toProblem())}${extra}`);
    return exitCodeFor(err.code, command);
  }
  const code = (err as { code?: string }).code;
  if (typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS')) {
    io.stderr(`certgate: ${(err as Error).message} (fix: run certgate ${command} --help) [CG_USAGE]`);
    return 2;
  }
  io.stderr(`certgate: internal error: ${err instanceof Error ? err.message : String(err)}`);
  if (process.env.CERTGATE_DEBUG) io.stderr(String((err as Error).stack));
  return 1;
}

function exitCodeFor(code: ErrorCode, command: string): number {
  if (code === 'CG_USAGE') return 2;
  if (command === 'serve' && STARTUP_INVALID.test(code)) return 2;
  return 1;
}

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
  return `certgate ${pkg.version}`;
}

// Run only when executed (not when imported by tests).
const invokedAs = process.argv[1] ?? '';
if (invokedAs.endsWith('cli.js') || invokedAs.endsWith('certgate')) {
  main(process.argv.slice(2), processIo).then(
    (code) => {
      process.exitCode = code;
      // serve returns once its servers closed (or at a second signal): nothing left may keep us alive.
      // Other commands end when their output is flushed.
      const first = process.argv[2];
      if (first === undefined || first === 'serve' || first.startsWith('-')) process.exit(code);
    },
    (err: unknown) => {
      process.stderr.write(`certgate: internal error: ${String(err)}\n`);
      process.exit(1);
    },
  );
}
