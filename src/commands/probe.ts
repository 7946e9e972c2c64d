/**
 * `certgate probe URL [--cert FILE] [--key FILE] [--pass-file FILE] [--ca FILE] [--json]`: the client-side
 * doctor. Connects as requests/aiohttp would (verification on) and explains what happened.
 * Exit 0 when the server verified the client and answered, 1 when the probe found an error, 2 on a usage error.
 */
import { parseArgs } from 'node:util';
import { CertgateError } from '../errors.js';
import { runProbe } from '../probe/run.js';
import { renderText } from '../probe/report.js';
import type { CommandIo } from './io.js';

export const DEFAULT_WHOAMI_PATH = '/.certgate/whoami';
const TIMEOUT_MS = 10_000;

export const PROBE_HELP = `Usage: certgate probe URL [--cert FILE] [--key FILE] [--pass-file FILE] [--ca FILE] [--json]

Connects to URL the way curl or Python requests/aiohttp do — the server certificate verified
against --ca (or the built-in Mozilla roots, as requests uses certifi), your client certificate
presented when the server asks — makes one GET, and explains in plain words what happened:
  - the server's chain as sent (depth, subject, issuer, expiry), whether --ca verifies it, and if not
    which certificate is missing (a server bundle without its intermediate) or which CA you lack;
  - whether the URL's host is in the server certificate;
  - whether the server asks for a client certificate, which CA names it accepts (read with
    openssl s_client), and whether yours chains to one of them;
  - your key: encrypted without --pass-file, wrong passphrase, not matching the certificate;
  - the handshake, the HTTP status, and certgate's refusal reason and hint;
  - with certgate, the identity headers the upstream sees and the route (its whoami_path);
  - the same call for curl, Python requests and an ssl.SSLContext (aiohttp/httpx).
Works against any HTTPS server; openssl on PATH adds the chain as sent and the CA names.

Options:
  --cert FILE         your client certificate (PEM; may hold the key and the intermediates too)
  --key FILE          its private key (default: the key inside --cert)
  --pass-file FILE    the key's passphrase (first line)
  --ca FILE           the CA(s) that verify the server (default: the built-in roots)
  --whoami-path PATH  certgate's whoami_path (default ${DEFAULT_WHOAMI_PATH})
  --json              print the report as JSON
  -h, --help          show this help

Exit status: 0 the server verified you and answered, 1 something failed (see the lines
starting with "error:"), 2 usage error.
Example: certgate probe https://localhost:8443/ --cert certs/dev/client.pem --ca certs/dev/ca.crt`;

export async function runProbeCommand(argv: string[], io: CommandIo): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv, strict: true, allowPositionals: true,
    options: {
      cert: { type: 'string' }, key: { type: 'string' }, 'pass-file': { type: 'string' }, ca: { type: 'string' },
      'whoami-path': { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    io.stdout(PROBE_HELP);
    return 0;
  }
  const [target, ...extra] = positionals;
  if (target === undefined || extra.length > 0) {
    throw new CertgateError('CG_USAGE', target === undefined ? 'probe needs a URL, e.g. https://localhost:8443/' : `one URL only (got ${positionals.length})`);
  }
  let url: URL;
  try {
    url = new URL(target);
  } catch {
    throw new CertgateError('CG_USAGE', `"${target}" is not a URL; write it as https://HOST:PORT/PATH`);
  }
  if (url.protocol !== 'https:') throw new CertgateError('CG_USAGE', `${target}: probe speaks TLS only; use an https:// URL`);
  if (values.key !== undefined && values.cert === undefined) throw new CertgateError('CG_USAGE', '--key needs --cert (the certificate it belongs to)');
  const whoamiPath = values['whoami-path'] ?? DEFAULT_WHOAMI_PATH;
  if (!whoamiPath.startsWith('/')) throw new CertgateError('CG_USAGE', `--whoami-path ${whoamiPath}: must start with "/"`);

  const report = await runProbe({
    url, whoamiPath, timeoutMs: TIMEOUT_MS,
    files: {
      ...(values.cert !== undefined && { cert: values.cert }),
      ...(values.key !== undefined && { key: values.key }),
      ...(values['pass-file'] !== undefined && { passFile: values['pass-file'] }),
      ...(values.ca !== undefined && { ca: values.ca }),
    },
  });
  io.stdout(values.json ? JSON.stringify(report, null, 2) : renderText(report).join('\n'));
  return report.ok ? 0 : 1;
}
