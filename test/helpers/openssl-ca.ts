/**
 * A CA run by the real `openssl ca` (RSA keys), for CRLs and certificates as operators' own tooling makes
 * them: signed with RSA-PSS (`-sigopt rsa_padding_mode:pss`), delta CRLs (deltaCRLIndicator), revocation
 * through openssl's index.txt. createTestPki (pki.ts) cannot make these: @peculiar/x509 signs with ECDSA.
 *
 *   const ca = await createOpensslCa({ name: 'pss root CA', sigopts: PSS });
 *   const server = await ca.issue('server', 'server');  const client = await ca.issue('svc', 'client');
 *   await ca.revoke(client);  const crl = await ca.crl({ sigopts: PSS });   // PEM text
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** RSA-PSS with SHA-256, MGF1-SHA-256 and a 32-byte salt (the `-sigopt` list openssl takes). */
export const PSS = ['rsa_padding_mode:pss', 'rsa_pss_saltlen:32'] as const;

export interface OpensslCert {
  readonly cert: string;
  readonly key: string;
  /** key + cert. */
  readonly pem: string;
  readonly certPath: string;
}

export interface OpensslCa {
  readonly dir: string;
  readonly cert: string;
  readonly certPath: string;
  issue(name: string, usage: 'client' | 'server', sigopts?: readonly string[]): Promise<OpensslCert>;
  revoke(c: OpensslCert): Promise<void>;
  /**
   * `openssl ca -gencrl`: every certificate revoked so far; `delta` adds a critical deltaCRLIndicator (base CRL 1).
   * `ext`: more crl_extensions lines (x509v3_config(5)), after authorityKeyIdentifier, and any sections they
   * refer to, e.g. ['issuingDistributionPoint = critical,@idp', '[ idp ]', 'onlyCA = TRUE'] or
   * ['1.2.3.4 = critical,ASN1:UTF8String:x'].
   */
  crl(opts?: { readonly sigopts?: readonly string[]; readonly delta?: boolean; readonly md?: string; readonly ext?: readonly string[];
    /** thisUpdate (`-crl_lastupdate`), e.g. an hour ago, to make another CRL of the CA the newer one. */
    readonly lastUpdate?: Date }): Promise<string>;
  cleanup(): void;
}

const CONFIG = `[ ca ]
default_ca = CA_default
[ CA_default ]
dir = .
database = index.txt
new_certs_dir = newcerts
serial = serial
crlnumber = crlnumber
default_md = sha256
default_days = 30
default_crl_days = 7
policy = policy_any
unique_subject = no
copy_extensions = none
[ policy_any ]
commonName = supplied
[ req ]
distinguished_name = dn
prompt = no
[ dn ]
CN = x
[ v3_ca ]
basicConstraints = critical,CA:true
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[ client ]
basicConstraints = CA:false
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = clientAuth
authorityKeyIdentifier = keyid
[ server ]
basicConstraints = CA:false
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost,IP:127.0.0.1,IP:::1
authorityKeyIdentifier = keyid
[ crl_ext ]
authorityKeyIdentifier = keyid
[ delta_ext ]
authorityKeyIdentifier = keyid
# openssl has no text form for this extension's value: the DER of INTEGER 1 (the base CRL's number).
deltaCRL = critical,DER:02:01:01
`;

/** Whether the openssl CLI is on PATH (tests that need it skip with a message otherwise). */
export async function hasOpenssl(): Promise<boolean> {
  try {
    await run('openssl', ['version']);
    return true;
  } catch {
    return false;
  }
}

const sigArgs = (sigopts: readonly string[] = []): string[] => sigopts.flatMap((o) => ['-sigopt', o]);

export async function createOpensslCa(opts: { readonly name: string; readonly sigopts?: readonly string[] }): Promise<OpensslCa> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'certgate-opensslca-'));
  const at = (f: string): string => path.join(dir, f);
  fs.writeFileSync(at('ca.cnf'), CONFIG);
  fs.mkdirSync(at('newcerts'));
  fs.writeFileSync(at('index.txt'), '');
  fs.writeFileSync(at('serial'), '1000\n');
  fs.writeFileSync(at('crlnumber'), '01\n');
  const openssl = (args: readonly string[]) => run('openssl', args, { cwd: dir });
  await openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-subj', `/CN=${opts.name}`,
    '-config', 'ca.cnf', '-extensions', 'v3_ca', '-days', '30', ...sigArgs(opts.sigopts)]);
  const read = (f: string): string => fs.readFileSync(at(f), 'utf8');
  const caCert = read('ca.crt');
  let crls = 0;
  return {
    dir, cert: caCert, certPath: at('ca.crt'),
    async issue(name, usage, sigopts = opts.sigopts) {
      await openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`]);
      await openssl(['ca', '-batch', '-config', 'ca.cnf', '-in', `${name}.csr`, '-out', `${name}.crt`, '-extensions', usage,
        '-keyfile', 'ca.key', '-cert', 'ca.crt', '-notext', ...sigArgs(sigopts)]);
      fs.chmodSync(at(`${name}.key`), 0o600);
      const cert = read(`${name}.crt`);
      const key = read(`${name}.key`);
      return { cert, key, pem: key + cert, certPath: at(`${name}.crt`) };
    },
    async revoke(c) {
      await openssl(['ca', '-config', 'ca.cnf', '-revoke', c.certPath, '-keyfile', 'ca.key', '-cert', 'ca.crt']);
    },
    async crl(o = {}) {
      const n = ++crls;
      const out = `crl-${n}.pem`;
      let section = o.delta === true ? 'delta_ext' : 'crl_ext';
      if (o.ext !== undefined) {
        // A section of its own, appended: its sub-sections' names carry the CRL's number so they never clash.
        section = `crl_ext_${n}`;
        const lines = o.ext.map((l) => l.replace(/@(\w+)/g, `@$1_${n}`).replace(/^\[ (\w+) \]$/, `[ $1_${n} ]`));
        fs.appendFileSync(at('ca.cnf'), `[ ${section} ]\nauthorityKeyIdentifier = keyid\n${lines.join('\n')}\n`);
      }
      await openssl(['ca', '-gencrl', '-config', 'ca.cnf', '-keyfile', 'ca.key', '-cert', 'ca.crt', '-out', out,
        '-crlexts', section, '-md', o.md ?? 'sha256', ...sigArgs(o.sigopts),
        ...(o.lastUpdate !== undefined ? ['-crl_lastupdate', `${o.lastUpdate.toISOString().replace(/[-:T]|\.\d+/g, '')}`] : [])]);
      return read(out);
    },
    cleanup: () => fs.rmSync(dir, { recursive: true, force: true }),
  };
}
