/**
 * `certgate check --config FILE [--json]`: validates the config and every PEM it names; one line per
 * finding (error, warning or info), each naming the file and what to do.
 * Exit 0 when usable (warnings allowed), 1 when there are errors, 2 on a usage error.
 */
import { parseArgs } from 'node:util';
import { blocksLoading, formatProblem, type Problem } from '../errors.js';
import { validateConfigFile } from '../app/validate.js';
import type { CommandIo } from './io.js';

export const CHECK_HELP = `Usage: certgate check --config FILE [--json]

Validates the config file and every file it references (the same validation a live reload runs): PEM blocks parse, the key matches the leaf,
the chain links up, certificates are within their validity, client CAs and CRLs are usable; warns
when the admin listener is reachable beyond loopback without admin.token_file.
Prints one line per finding: "error|warning|info: FILE[:LINE:COL]: what is wrong (fix: what to do) [CODE]".

Options:
  --config FILE   the config (default: $CERTGATE_CONFIG, else config/certgate.yaml)
  --json          print the findings as a JSON array instead
  -h, --help      show this help

Exit status: 0 usable (warnings allowed), 1 errors found (including those serve starts with but that
refuse clients, e.g. a stale CRL under crl_stale: refuse), 2 usage error.
Example: certgate check --config config/certgate.yaml`;

export async function runCheck(argv: string[], io: CommandIo): Promise<number> {
  const { values } = parseArgs({
    args: argv, strict: true, allowPositionals: false,
    options: { config: { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
  });
  if (values.help) {
    io.stdout(CHECK_HELP);
    return 0;
  }
  const file = values.config ?? process.env.CERTGATE_CONFIG ?? 'config/certgate.yaml';
  const problems = await findProblems(file);
  if (values.json) {
    io.stdout(JSON.stringify(problems, null, 2));
  } else {
    for (const p of problems) io.stdout(formatProblem(p));
    const errors = problems.filter((p) => p.severity === 'error').length;
    const warnings = problems.filter((p) => p.severity === 'warning').length;
    // Some errors refuse clients rather than stop the server (a stale CRL): serve starts, and says so.
    const verdict = problems.some(blocksLoading) ? 'is not usable' : 'loads, but refuses clients (see the errors above)';
    io.stdout(errors === 0 ? `ok: ${file} is usable (${warnings} warning(s))` : `${errors} error(s), ${warnings} warning(s): ${file} ${verdict}`);
  }
  return problems.some((p) => p.severity === 'error') ? 1 : 0;
}

/** The problems of `file`: the same validation a live reload runs before it applies a config (app/validate.ts). */
export async function findProblems(file: string): Promise<Problem[]> {
  return (await validateConfigFile(file)).problems;
}
