/**
 * certgate's error model: every failure the user can act on carries a stable `code`, a message
 * that states the facts, and a `hint` that says what to do. Match on `code`, never on text.
 * The README "Errors" table lists every code in CODES; test/unit/errors.test.ts keeps them in sync.
 */

/** Every stable error/finding code, with the one-line fix shown in the README table. */
export const CODES = {
  CG_CONFIG_READ: 'the config file could not be read: pass an existing, readable file with --config or CERTGATE_CONFIG',
  CG_CONFIG_YAML: 'the config is not valid YAML: correct the line shown (indent with spaces, not tabs; put a space after each ":"; quote values that hold ": " or " #")',
  CG_CONFIG_INVALID: 'a config value is missing, unknown or of the wrong type: set the key at file:line:col as its message says (config/certgate.schema.json lists every key and its values)',
  CG_FILE_READ: 'a file named in the config could not be read: correct the path (a relative one starts at the config file\'s folder), or let certgate\'s user read the file',
  CG_PEM_EMPTY: 'the file holds no PEM block of the expected kind: point the key at the right file',
  CG_PEM_PARSE: 'a PEM block does not parse: re-export the certificate/key/CRL',
  CG_KEY_MISSING: 'no private key found: put the key in the bundle or set tls.key',
  CG_KEY_ENCRYPTED: 'the key is encrypted: set tls.passphrase_file',
  CG_KEY_PASSPHRASE: 'the passphrase does not decrypt the key: put the key\'s passphrase, alone on one line, in tls.passphrase_file',
  CG_KEY_MISMATCH: 'the private key does not belong to the leaf certificate: pair the right key and certificate',
  CG_KEY_PERMISSIONS: 'the private key file is readable by other users: chmod 600 it',
  CG_CHAIN_BROKEN: 'a certificate in the chain is not signed by the next one: put the leaf first and each issuer after the certificate it signed, and add a missing intermediate',
  CG_CHAIN_INCOMPLETE: 'the chain stops at an intermediate whose issuer is missing: add the issuing intermediate to the bundle',
  CG_CHAIN_REORDERED: 'the bundle was not in leaf-first order: certgate reorders it; reorder the file to silence this',
  CG_CERT_EXPIRED: 'the certificate has expired: renew it',
  CG_CERT_NOT_YET_VALID: 'the certificate is not valid yet: set this host\'s clock right (NTP), or use a certificate whose notBefore has passed',
  CG_CERT_EXPIRES_SOON: 'the certificate expires soon: renew it',
  CG_CERT_NO_SAN: 'the server certificate does not name the listen host: reissue it with that SAN',
  CG_CERT_IS_CA: 'the leaf certificate is a CA certificate: use an end-entity certificate',
  CG_CERT_EKU: 'the certificate lacks the needed extended key usage: reissue it with serverAuth (server) or clientAuth (client)',
  CG_CA_EMPTY: 'tls.client_ca holds no certificate: point it at the CA(s) that issue your client certificates',
  CG_CA_NOT_CA: 'a certificate in tls.client_ca is not a CA (no CA flag or keyCertSign): use the issuing CA certificate',
  CG_CA_NO_ROOT: 'tls.client_ca holds an intermediate without its root: Node cannot anchor trust at an intermediate; add the root',
  CG_CA_SELF_ONLY: 'tls.client_ca trusts only the server certificate\'s own CA: clients issued elsewhere will be refused; add the CAs that issue your client certificates, or nothing if only that CA\'s clients should connect',
  CG_CRL_ISSUER: 'a CRL is signed by no CA in tls.client_ca: use the CRL of a configured client CA',
  CG_CRL_EXPIRED: 'a CRL is past its nextUpdate: the clients of its CA are refused (unless tls.crl_stale: allow); write a fresh CRL from that CA to tls.crl',
  CG_CRL_MISSING_CA: 'a client CA has no CRL while tls.crl is set: Node then refuses all its clients; add that CA\'s CRL',
  CG_CRL_SIGNATURE: 'a CRL is signed with an algorithm certgate cannot verify, so it cannot use it: reissue the CRL signed with ECDSA, Ed25519, RSA PKCS#1 v1.5 or RSA-PSS (MGF1 over the signature\'s own hash), over SHA-2',
  CG_CRL_DELTA: 'a delta CRL (deltaCRLIndicator) is in tls.crl: certgate, like Node\'s OpenSSL, reads only complete CRLs, so a revocation only the delta lists is not enforced; put every revocation in a complete CRL of that CA (openssl ca -gencrl without the delta extension) and remove the delta CRL from tls.crl',
  CG_CRL_CRITICAL: 'a CRL has a critical extension (or a revoked entry a critical entry extension) certgate does not process; RFC 5280 forbids using such a CRL, so certgate refuses it and does not start or reload with it (chain mode: OpenSSL refuses every client of its CA): reissue the CRL without that extension, or with it non-critical',
  CG_CRL_SCOPE: 'a CRL\'s issuingDistributionPoint limits what it covers: a partial CRL (onlySomeReasons, a distributionPoint, indirectCRL) is refused (certgate does not start or reload with it), and one for CA or attribute certificates only does not count as the CRL of its CA\'s clients; put a complete CRL of that CA (openssl ca -gencrl without issuingDistributionPoint) in tls.crl',
  CG_LISTEN: 'the listener could not be opened: pick a free port or an address this host owns',
  CG_USAGE: 'the command line is wrong: run certgate <command> --help for its options and their values',
  CG_PKI_EXISTS: 'the PKI folder already holds files: pass --force to overwrite them',
  CG_PKI_CA_MISSING: 'the dev CA (ca.crt + ca.key) is missing in --dir: run certgate certs init first',
  CG_CSR_INVALID: 'the CSR does not parse or its signature is wrong: create a new one with openssl req -new',
  CG_PKI_FOREIGN_CERT: 'the certificate was not issued by the dev CA in --dir: revoke it with the CA that issued it',
  CG_CERT_VALIDITY: 'for information: how long the certificate stays valid; renew it before then',
  CG_CRL_NOT_YET_VALID: 'a CRL\'s thisUpdate is in the future: the clients of its CA are refused (unless tls.crl_stale: allow); set this host\'s clock right (NTP), or write a CRL issued before now to tls.crl',
  CG_TLS_REJECTED: 'Node/OpenSSL refused this key, certificate or CRL (e.g. key too small, weak signature): reissue it with RSA >= 2048 bits or an EC key and SHA-256',
  CG_ADMIN_TOKEN: 'admin.token_file holds no usable token: write one of at least 16 characters without spaces, e.g. openssl rand -hex 32 > admin-token',
  CG_ADMIN_EXPOSED: 'the admin listener is reachable beyond loopback without admin.token_file (anyone who reaches it reads /clients): set admin.token_file, or listen on 127.0.0.1',
  CG_ENROLL_TOKENS: 'the enrollment tokens file is not valid: correct the entry at file:line as its message says, or write the file anew with certgate certs token',
  CG_ENROLL_STATE: 'the enrollment state file cannot be read or its folder is not writable: let certgate\'s user read the file and write its folder (chown, chmod); never delete it (spent tokens would work again)',
  CG_PROBE_CONNECT: 'certgate probe could not reach the server: correct the host or port in the URL, or start the server (or open the firewall) there',
  CG_PROBE_SERVER_UNTRUSTED: 'the server certificate does not chain to a CA you trust: pass the CA that issued the server certificate with --ca (requests verify=FILE), never verify=False',
  CG_PROBE_CHAIN_INCOMPLETE: 'the server did not send the intermediate CA its certificate needs: ask its operator to send it after the leaf; until then, add it to your --ca file',
  CG_PROBE_HOSTNAME: 'the server certificate does not name the host in the URL: connect with a name it lists, or reissue it with that name in its subjectAltName',
  CG_PROBE_CLIENT_CA: 'your client certificate does not chain to a CA the server accepts: use one from a listed CA, or append the missing intermediate to your cert file',
  CG_PROBE_NO_CLIENT_CERT: 'the server requires a client certificate and none was given: pass --cert (and --key)',
  CG_PROBE_REFUSED: 'the server refused your client certificate or request: follow the hint its answer gives for the reason shown',
  CG_PROBE_NO_CERT_REQUEST: 'the server did not ask for a client certificate, so yours is not sent: client authentication is off there; use the server\'s mTLS address (certgate always asks), or ask its operator to turn client authentication on',
  CG_PROBE_NO_OPENSSL: 'openssl could not be run: install it to see the chain as the server sends it and the CA names it accepts',
  CG_ASSERTION_KEY: 'a headers.assertion key file holds no key certgate can sign or publish with: use an unencrypted EC P-256 (ES256) or Ed25519 (EdDSA) key PEM, e.g. openssl genpkey -algorithm Ed25519 -out assertion.key && chmod 600 assertion.key',
  CG_KEEPALIVE_SHORT: 'limits.keepalive_timeout_ms is below 2000: Node.js clients then reuse no connection (Node advertises whole seconds, its clients keep a connection 1 s less); set 2000 or more if Node.js clients call certgate',
} as const;

export type ErrorCode = keyof typeof CODES;

export interface Problem {
  readonly severity: 'error' | 'warning' | 'info';
  readonly code: ErrorCode;
  /** What is wrong, with the facts (values, names). */
  readonly message: string;
  /** What to do about it. Defaults to the CODES entry. */
  readonly hint?: string;
  readonly file?: string;
  readonly line?: number;
  readonly col?: number;
  /**
   * An error whose effect is on clients, not on loading: the material still loads with it (e.g. a stale CRL
   * refuses every client of its CA, but must never stop the server or block a server-certificate
   * rotation). `certgate check` counts it as an error (exit 1); serve and reloads load the material and
   * log it at error level. Only errors carry it.
   */
  readonly loadable?: true;
}

/** The finding stops TLS material from loading (start-up refuses, a reload keeps the old material). */
export function blocksLoading(p: Problem): boolean {
  return p.severity === 'error' && p.loadable !== true;
}

/** The log level a finding is logged at (pino has no "warning"). */
export function logLevelOf(p: Problem): 'error' | 'warn' | 'info' {
  return p.severity === 'warning' ? 'warn' : p.severity;
}

/**
 * A finding. `hint` defaults to the code's CODES entry; `file` is left out when absent. The optional
 * parts are named, not positional: two optional strings in a row were once read in two orders.
 */
export function problem(
  severity: Problem['severity'], code: ErrorCode, message: string,
  more: { readonly file?: string | undefined; readonly hint?: string | undefined; readonly loadable?: boolean } = {},
): Problem {
  return {
    severity, code, message, hint: more.hint ?? CODES[code], ...(more.file !== undefined && { file: more.file }),
    ...(severity === 'error' && more.loadable === true && { loadable: true as const }),
  };
}

/** An error the user can act on. Printed as one line by the CLI, never with a stack. */
export class CertgateError extends Error {
  readonly code: ErrorCode;
  readonly hint: string;
  readonly file?: string;
  readonly line?: number;
  readonly col?: number;
  /** Further findings, when one error stands for several (all config problems at once). */
  readonly problems: readonly Problem[];

  constructor(
    code: ErrorCode,
    message: string,
    opts: { hint?: string; file?: string; line?: number; col?: number; cause?: unknown; problems?: Problem[] } = {},
  ) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'CertgateError';
    this.code = code;
    this.hint = opts.hint ?? CODES[code];
    if (opts.file !== undefined) this.file = opts.file;
    if (opts.line !== undefined) this.line = opts.line;
    if (opts.col !== undefined) this.col = opts.col;
    this.problems = opts.problems ?? [];
  }

  toProblem(): Problem {
    return {
      severity: 'error', code: this.code, message: this.message, hint: this.hint,
      ...(this.file !== undefined && { file: this.file }),
      ...(this.line !== undefined && { line: this.line }),
      ...(this.col !== undefined && { col: this.col }),
    };
  }
}

/** `severity: file:line:col: message (fix: hint) [CODE]` — the one-line form used by the CLI and logs. */
export function formatProblem(p: Problem): string {
  let where = '';
  if (p.file !== undefined) {
    where = p.file;
    if (p.line !== undefined) where += `:${p.line}`;
    if (p.line !== undefined && p.col !== undefined) where += `:${p.col}`;
    where += ': ';
  }
  return `${p.severity}: ${where}${p.message} (fix: ${p.hint ?? CODES[p.code]}) [${p.code}]`;
}
