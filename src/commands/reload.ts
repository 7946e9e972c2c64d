/**
 * `certgate reload --admin URL [--token-file F]`: asks a running certgate to re-read its config and then
 * its TLS material, as SIGHUP does (POST /-/reload on the admin listener; app/parts.ts reloadBoth), and
 * prints both outcomes. Exit 0 applied or unchanged, 1 refused (either part; the reasons printed one per
 * line, as `check` prints them),
 * 2 usage or connection error.
 */
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { formatProblem, type Problem } from '../errors.js';
import type { CommandIo } from './io.js';

export const RELOAD_HELP = `Usage: certgate reload --admin URL [--token-file FILE]

Asks the certgate whose admin listener is at URL to re-read its config file and apply it live, then to
re-read its TLS material (POST URL/-/reload; what SIGHUP does). The config is validated as
\`certgate check\` validates it, the TLS files as a hot reload validates them; what is invalid changes
nothing (what was serving keeps serving) and its problems are printed one per line.

Options:
  --admin URL         the admin listener, e.g. http://127.0.0.1:9000
  --token-file FILE   the admin token (admin.token_file), when the admin listener needs one
  -h, --help          show this help

Exit status: 0 applied or unchanged, 1 refused, 2 usage or connection error.
Example: certgate reload --admin http://127.0.0.1:9000 --token-file /etc/certgate/admin.token`;

interface Answer {
  readonly result?: string;
  readonly generation?: number;
  readonly changes?: string;
  readonly restart_to_apply?: readonly string[];
  readonly problems?: readonly Problem[];
  readonly message?: string;
  /** The TLS material's re-read (absent from a certgate older than this command). */
  readonly tls?: { readonly result?: string; readonly problems?: readonly Problem[] };
}

export async function runReload(argv: string[], io: CommandIo): Promise<number> {
  const { values } = parseArgs({
    args: argv, strict: true, allowPositionals: false,
    options: { admin: { type: 'string' }, 'token-file': { type: 'string' }, help: { type: 'boolean', short: 'h' } },
  });
  if (values.help) {
    io.stdout(RELOAD_HELP);
    return 0;
  }
  if (values.admin === undefined) {
    io.stderr('certgate reload: --admin URL is required (fix: e.g. --admin http://127.0.0.1:9000) [CG_USAGE]');
    return 2;
  }
  let url: URL;
  try {
    url = new URL('/-/reload', values.admin);
  } catch {
    io.stderr(`certgate reload: --admin ${values.admin} is not a URL (fix: e.g. http://127.0.0.1:9000) [CG_USAGE]`);
    return 2;
  }
  const headers: Record<string, string> = {};
  if (values['token-file'] !== undefined) {
    try {
      headers.authorization = `Bearer ${(await readFile(values['token-file'], 'utf8')).trim()}`;
    } catch (err) {
      io.stderr(`certgate reload: cannot read --token-file ${values['token-file']}: ${(err as NodeJS.ErrnoException).code ?? String(err)} [CG_USAGE]`);
      return 2;
    }
  }
  let status: number;
  let answer: Answer;
  try {
    const res = await fetch(url, { method: 'POST', headers });
    status = res.status;
    answer = await res.json() as Answer;
  } catch (err) {
    io.stderr(`certgate reload: cannot reach ${url.href}: ${(err as { cause?: { code?: string } }).cause?.code ?? (err as Error).message} (fix: check --admin and that certgate runs)`);
    return 2;
  }
  if (answer.result === 'success' || answer.result === 'unchanged') {
    io.stdout(answer.result === 'success'
      ? `applied: generation ${answer.generation ?? '?'} (${answer.changes ?? 'changes unknown'})`
      : `unchanged: generation ${answer.generation ?? '?'} keeps serving`);
    for (const key of answer.restart_to_apply ?? []) io.stdout(`warning: ${key} changed: restart to apply`);
    return printTls(answer.tls, io);
  }
  if (answer.result === 'failure') {
    for (const p of answer.problems ?? []) io.stdout(formatProblem(p));
    io.stdout(`refused: generation ${answer.generation ?? '?'} keeps serving`);
    printTls(answer.tls, io);
    return 1;
  }
  // 401 (token), 404 (no such endpoint: an older certgate, or a cluster worker), anything else.
  io.stderr(`certgate reload: ${url.href} answered ${status}: ${answer.message ?? JSON.stringify(answer)}`);
  return 2;
}

/** The TLS part of the answer, one line (and its problems): 0 unless it was refused. */
function printTls(tls: Answer['tls'], io: CommandIo): number {
  if (tls === undefined) return 0;
  if (tls.result === 'failure') {
    for (const p of tls.problems ?? []) io.stdout(formatProblem(p));
    io.stdout('TLS material refused: the material serving keeps serving');
    return 1;
  }
  io.stdout(tls.result === 'success' ? 'TLS material: reloaded' : 'TLS material: re-read, nothing changed');
  return 0;
}
