/**
 * `certgate certs init|issue|sign|revoke|token`: flags → pki/dev-pki.ts (token → enroll/tokens.ts). Each subcommand parses strictly
 * (unknown flags and stray arguments are usage errors) and prints a CertgateError as one line.
 * Exit status: 0 ok, 1 failure, 2 usage error.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { CertgateError, formatProblem } from '../errors.js';
import { initDevPki, issueClient, revoke, writeFileAtomic } from '../pki/dev-pki.js';
import { signWithDevCa } from '../enroll/sign.js';
import { allowProblems } from '../proxy/policy.js';
import { appendToken, createToken, TOKENS_FILE } from '../enroll/tokens.js';
import type { CommandIo } from './io.js';

const HELP: Record<string, string> = {
  certs: `Usage: certgate certs <init|issue|sign|revoke|token> [options]

A small development PKI in one folder (a dev CA, never for production):
  init     create ca.crt/ca.key, server.pem (localhost), client.{crt,key,pem,p12} and crl.pem
  issue    issue another client certificate from the dev CA
  sign     sign a CSR (openssl req -new) as a client certificate
  revoke   add a certificate to crl.pem (re-issued)
  token    create a one-time enrollment token (POST /enroll)

Run certgate certs <subcommand> --help for its options.
Example: certgate certs init --dir certs/dev`,
  init: `Usage: certgate certs init --dir DIR [--rsa] [--force]

Creates a dev CA (10 years) and, signed by it, a server bundle for localhost/127.0.0.1/::1 and a client
certificate (825 days), plus an empty CRL valid for 30 days. Keys, client.p12 and its password file are 0600.

Options:
  --dir DIR   the folder to write (created if missing)
  --rsa       RSA-2048 keys instead of ECDSA P-256
  --force     overwrite existing files (this replaces the CA: earlier certificates stop verifying)
  -h, --help  show this help
Example: certgate certs init --dir certs/dev`,
  issue: `Usage: certgate certs issue --dir DIR --cn NAME [--ou OU] [--san-uri URI]... [--san-dns NAME]... [--days N] [--out PREFIX]

Issues a client certificate (EKU clientAuth) from the dev CA in DIR and prints the three files written:
PREFIX.crt, PREFIX.key and PREFIX.pem (key + certificate).

Options:
  --dir DIR        the folder holding ca.crt and ca.key
  --cn NAME        the subject common name
  --ou OU          the subject organizational unit
  --san-uri URI    a URI subject alternative name (repeatable), e.g. a SPIFFE id
  --san-dns NAME   a DNS subject alternative name (repeatable)
  --days N         validity in days, 1 to 825 (default 825)
  --out PREFIX     where to write (default DIR/NAME)
  -h, --help       show this help
Example: certgate certs issue --dir certs/dev --cn svc-a --ou payments --san-uri spiffe://example.org/svc-a`,
  sign: `Usage: certgate certs sign --dir DIR --csr FILE [--days N] [--out FILE]

Reads the CSR once, as POST /enroll does: its signature must verify, its extensions be well-formed and
not duplicated, each name in its type's syntax. certgate then builds a client certificate of the dev CA
from the CSR's key, its subject and its URI/DNS subject alternative names, with its own extensions (EKU
clientAuth, CA:FALSE); anything else the CSR asks for is refused, never copied. Prints the certificate
followed by the CA, and on stderr the subject and every name issued.

Options:
  --dir DIR    the folder holding ca.crt and ca.key
  --csr FILE   the PEM certificate request
  --days N     validity in days, 1 to 825 (default 825)
  --out FILE   write the certificate chain there instead of stdout
  -h, --help   show this help
Example: certgate certs sign --dir certs/dev --csr svc-b.csr --out svc-b.crt`,
  revoke: `Usage: certgate certs revoke --dir DIR --cert FILE

Adds the certificate's serial to DIR/crl.pem and re-issues the CRL (valid 30 days; earlier revocations are
kept). Re-run it, or init --force, before the CRL's next update: an expired CRL refuses every client.

Options:
  --dir DIR    the folder holding ca.crt, ca.key and crl.pem
  --cert FILE  the PEM certificate to revoke (issued by this dev CA)
  -h, --help   show this help
Example: certgate certs revoke --dir certs/dev --cert certs/dev/svc-a.crt`,
  token: `Usage: certgate certs token --dir DIR --cn NAME [--ou OU] [--san-uri URI]... [--san-dns NAME]... [--days N] [--cert-days N] [--tokens-file FILE]

Creates a one-time enrollment token for POST /enroll (see README "Enrollment"): prints the token on
stdout (shown this once; only its SHA-256 is stored) and appends the entry to DIR/enroll-tokens.yaml
(created 0600 when missing). The token enrolls one certificate whose subject is CN=NAME (and OU, if
given) and whose SANs are among the --san-uri/--san-dns patterns (route "allow" globs).

Options:
  --dir DIR            the folder of the tokens file (enrollment.tokens_file: DIR/enroll-tokens.yaml)
  --cn NAME            the subject CN the certificate must have
  --ou OU              the subject OU it may have
  --san-uri URI        a URI SAN it may have (repeatable; * = one path segment, ** = any number)
  --san-dns NAME       a DNS SAN it may have (repeatable; *.example.com = one label)
  --days N             how long the token stays usable, 1 to 365 days (default 7)
  --cert-days N        validity of the certificate, 1 to 825 days (default and cap: enrollment.max_days)
  --tokens-file FILE   write to FILE instead of DIR/enroll-tokens.yaml
  -h, --help           show this help
Example: certgate certs token --dir certs/dev --cn svc-b --san-uri spiffe://example.org/svc-b`,
};

type Options = NonNullable<ParseArgsConfig['options']>;
const COMMON: Options = { dir: { type: 'string' }, help: { type: 'boolean', short: 'h' } };
const OPTIONS: Record<string, Options> = {
  init: { ...COMMON, rsa: { type: 'boolean' }, force: { type: 'boolean' } },
  issue: {
    ...COMMON, cn: { type: 'string' }, ou: { type: 'string' }, 'san-uri': { type: 'string', multiple: true },
    'san-dns': { type: 'string', multiple: true }, days: { type: 'string' }, out: { type: 'string' },
  },
  sign: { ...COMMON, csr: { type: 'string' }, days: { type: 'string' }, out: { type: 'string' } },
  revoke: { ...COMMON, cert: { type: 'string' } },
  token: {
    ...COMMON, cn: { type: 'string' }, ou: { type: 'string' }, 'san-uri': { type: 'string', multiple: true },
    'san-dns': { type: 'string', multiple: true }, days: { type: 'string' }, 'cert-days': { type: 'string' }, 'tokens-file': { type: 'string' },
  },
};

type Values = Record<string, string | boolean | Array<string | boolean> | undefined>;

export async function runCerts(argv: string[], out: CommandIo): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === undefined || sub === '--help' || sub === '-h' || sub === 'help') {
    (sub === undefined ? out.stderr : out.stdout)(HELP.certs!);
    return sub === undefined ? 2 : 0;
  }
  const options = OPTIONS[sub];
  if (options === undefined) return usage(out, 'certs', `unknown subcommand "${sub}"; expected init, issue, sign, revoke or token`);
  let values: Values;
  try {
    values = parseArgs({ args: rest, options, strict: true, allowPositionals: false }).values;
  } catch (err) {
    // Node's message continues with advice about "--"; the first sentence is the reason.
    return usage(out, sub, (err as Error).message.split(/\.\s/)[0] ?? String(err));
  }
  if (values.help === true) {
    out.stdout(HELP[sub]!);
    return 0;
  }
  try {
    return await run(sub, values, out);
  } catch (err) {
    if (!(err instanceof CertgateError)) throw err;
    if (err.code === 'CG_USAGE') return usage(out, sub, err.message);
    out.stderr(`certgate: ${formatProblem(err.toProblem())}`);
    return 1;
  }
}

function usage(out: CommandIo, sub: string, reason: string): number {
  const cmd = sub === 'certs' ? 'certs' : `certs ${sub}`;
  out.stderr(`certgate ${cmd}: ${reason} (fix: run certgate ${cmd} --help) [CG_USAGE]`);
  return 2;
}

function required(values: Values, name: string, sub: string): string {
  const v = values[name];
  if (typeof v !== 'string' || v === '') throw new CertgateError('CG_USAGE', `--${name} is required`);
  return v;
}

function days(values: Values): number | undefined {
  const v = values.days;
  if (typeof v !== 'string') return undefined;
  if (!/^\d+$/.test(v)) throw new CertgateError('CG_USAGE', `--days must be a whole number of days, got "${v}"`);
  return Number(v);
}

function strings(v: Values[string]): string[] {
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];
}

/** The file's bytes (a CSR may be DER); utf8 text for the PEM-only inputs. */
async function readInput(file: string, flag: string): Promise<Buffer>;
async function readInput(file: string, flag: string, encoding: 'utf8'): Promise<string>;
async function readInput(file: string, flag: string, encoding?: 'utf8'): Promise<Buffer | string> {
  try {
    return encoding === undefined ? await readFile(file) : await readFile(file, encoding);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'unknown';
    throw new CertgateError('CG_FILE_READ', `cannot read ${file}: ${code}`, { hint: `check the path given to ${flag}`, cause: err });
  }
}

async function run(sub: string, values: Values, out: CommandIo): Promise<number> {
  const dir = required(values, 'dir', sub);
  switch (sub) {
    case 'init': {
      const files = await initDevPki(dir, { rsa: values.rsa === true, force: values.force === true });
      out.stdout(files.join('\n'));
      return 0;
    }
    case 'issue': {
      const ou = values.ou as string | undefined;
      const outPrefix = values.out as string | undefined;
      const d = days(values);
      const paths = await issueClient(dir, {
        cn: required(values, 'cn', sub),
        sanUri: strings(values['san-uri']),
        sanDns: strings(values['san-dns']),
        ...(ou !== undefined && { ou }), ...(outPrefix !== undefined && { out: outPrefix }), ...(d !== undefined && { days: d }),
      });
      out.stdout([paths.certPath, paths.keyPath, paths.pemPath].join('\n'));
      return 0;
    }
    case 'sign': {
      const csrFile = required(values, 'csr', sub);
      const d = days(values);
      const signed = await signWithDevCa(dir, await readInput(csrFile, '--csr'), d === undefined ? {} : { days: d });
      if (typeof values.out === 'string') {
        await writeFileAtomic(values.out, signed.chain, 0o644);
        out.stdout(values.out);
      } else {
        out.stdout(signed.chain);
      }
      // stderr, so `certs sign … > svc.crt` keeps stdout to the chain: every name the certificate carries.
      const names = signed.san.length === 0 ? 'no subject alternative names' : `names ${signed.san.join(', ')}`;
      out.stderr(`certgate: signed serial ${signed.serial} for ${signed.subject || '(empty subject)'}, ${names}, valid until ${signed.notAfter.toISOString()}`);
      return 0;
    }
    case 'token':
      return runToken(dir, values, out);
    default: {
      const certFile = required(values, 'cert', sub);
      const r = await revoke(dir, await readInput(certFile, '--cert', 'utf8'));
      const what = r.alreadyRevoked ? 'was already revoked' : 'revoked';
      out.stdout(`serial ${r.serial} ${what}; ${r.crlPath} re-issued, next update ${r.nextUpdate.toISOString()}`);
      return 0;
    }
  }
}

/** `certs token`: the bearer goes to stdout alone (for `TOKEN=$(certgate certs token …)`), the rest to stderr. */
async function runToken(dir: string, values: Values, out: CommandIo): Promise<number> {
  const wholeDays = (flag: string, max: number): number | undefined => {
    const v = values[flag];
    if (typeof v !== 'string') return undefined;
    if (!/^\d+$/.test(v) || Number(v) < 1 || Number(v) > max) throw new CertgateError('CG_USAGE', `--${flag} must be a whole number from 1 to ${max}, got "${v}"`);
    return Number(v);
  };
  const ou = values.ou as string | undefined;
  const sanUri = strings(values['san-uri']);
  const sanDns = strings(values['san-dns']);
  const certDays = wholeDays('cert-days', 825);
  const file = typeof values['tokens-file'] === 'string' ? values['tokens-file'] : path.join(dir, TOKENS_FILE);
  const { bearer, entry } = createToken({
    cn: required(values, 'cn', 'token'), sanUri, sanDns, days: wholeDays('days', 365) ?? 7,
    ...(ou !== undefined && { ou }), ...(certDays !== undefined && { certDays }),
  });
  for (const warning of allowProblems({ san_uri: sanUri, san_dns: sanDns })) out.stderr(`certgate: warning: ${warning}`);
  await appendToken(file, entry);
  out.stderr(`token ${entry.id} for CN=${entry.cn} appended to ${file}; usable once until ${entry.expires}. It is shown only now:`);
  out.stdout(bearer);
  return 0;
}
