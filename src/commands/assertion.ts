/**
 * `certgate assertion jwks --config FILE`: prints the JWKS of headers.assertion (the public key of every
 * key file, kid = RFC 7638 thumbprint), exactly as GET /.well-known/jwks.json on the admin listener serves
 * it, for upstreams that read the keys from a file instead of over HTTP.
 * Exit 0 printed, 1 headers.assertion not set or the config/keys unusable (file:line and fix), 2 a usage error.
 */
import { parseArgs } from 'node:util';
import { loadConfig } from '../config/load.js';
import { CertgateError } from '../errors.js';
import { loadAssertionKeys } from '../tls/assertion-keys.js';
import type { CommandIo } from './io.js';

export const ASSERTION_HELP = `Usage: certgate assertion jwks --config FILE

Prints the JSON Web Key Set of headers.assertion: the public key of every key_files entry (the first
signs X-Client-Cert-Assertion), as GET /.well-known/jwks.json on the admin listener serves it.
Upstreams that read the keys from a file verify the assertion with it (README "Signed identity assertion").

Options:
  --config FILE   the config (default: $CERTGATE_CONFIG, else config/certgate.yaml)
  -h, --help      show this help

Exit status: 0 printed, 1 headers.assertion is not set or the config or a key is unusable, 2 usage error.
Example: certgate assertion jwks --config config/certgate.yaml > jwks.json`;

export async function runAssertion(argv: string[], io: CommandIo): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv, strict: true, allowPositionals: true,
    options: { config: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
  });
  if (values.help) {
    io.stdout(ASSERTION_HELP);
    return 0;
  }
  if (positionals.length !== 1 || positionals[0] !== 'jwks') {
    throw new CertgateError('CG_USAGE', `certgate assertion ${positionals.join(' ')}: the subcommand is jwks`, { hint: 'run certgate assertion jwks --config FILE' });
  }
  const file = values.config ?? process.env.CERTGATE_CONFIG ?? 'config/certgate.yaml';
  const config = await loadConfig(file);
  const assertion = config.headers.assertion;
  if (assertion === undefined) {
    io.stderr(`certgate: error: ${config.file}: headers.assertion is not set, so there are no keys to publish (fix: add headers.assertion: {key_files: [assertion.key]}; README "Signed identity assertion") [CG_CONFIG_INVALID]`);
    return 1;
  }
  const keys = await loadAssertionKeys(assertion, config.file, config.tls.allow_insecure_key_permissions);
  io.stdout(JSON.stringify(keys.jwks, null, 2));
  return 0;
}
