/**
 * The TLS files on disk (the only I/O of material loading): every input read once, a world-readable key
 * refused, and the digest that tells a reload whether anything changed.
 */
import { createHash } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { basename } from 'node:path';
import { problem, type Problem } from '../../errors.js';
import type { TlsConfig } from '../../config/types.js';
import { errCode, errText } from './node-errors.js';

export interface ReadFile {
  readonly path: string;
  readonly bytes?: Buffer;
}

/** Read a file, turning failure into CG_FILE_READ. */
async function readInput(path: string, what: string, problems: Problem[]): Promise<ReadFile> {
  try {
    return { path, bytes: await readFile(path) };
  } catch (err) {
    const code = errCode(err);
    const why = code === 'ENOENT' ? 'it does not exist'
      : code === 'EACCES' ? 'permission denied'
        : code === 'EISDIR' ? 'it is a directory'
          : errText(err);
    problems.push(problem('error', 'CG_FILE_READ', `cannot read ${what} ${path}: ${why}`, { file: path }));
    return { path };
  }
}

export interface Inputs {
  readonly certPath: string;
  readonly keyPath: string;
  readonly cert: ReadFile;
  readonly key: ReadFile;
  readonly pass?: ReadFile;
  readonly ca: ReadFile;
  readonly crl?: ReadFile;
}

/** Read every input once (bundle, or cert + key; passphrase; client_ca; crl). */
export async function readInputs(tls: TlsConfig, certPath: string, problems: Problem[]): Promise<Inputs> {
  const cache = new Map<string, Promise<ReadFile>>();
  const read = (path: string, what: string): Promise<ReadFile> => {
    let p = cache.get(path);
    if (p === undefined) { p = readInput(path, what, problems); cache.set(path, p); }
    return p;
  };
  const keyPath = tls.bundle ?? tls.key ?? certPath;
  const cert = await read(certPath, tls.bundle !== undefined ? 'tls.bundle' : 'tls.cert');
  const key = await read(keyPath, tls.bundle !== undefined ? 'tls.bundle' : tls.key !== undefined ? 'tls.key' : 'tls.cert');
  const pass = tls.passphrase_file !== undefined ? await read(tls.passphrase_file, 'tls.passphrase_file') : undefined;
  const ca = await read(tls.client_ca, 'tls.client_ca');
  const crl = tls.crl !== undefined ? await read(tls.crl, 'tls.crl') : undefined;
  return { certPath, keyPath, cert, key, ca, ...(pass && { pass }), ...(crl && { crl }) };
}

/** A world-readable key is refused (group-readable 0440/0640, as Kubernetes mounts secrets, is fine). */
export async function checkPermissions(inputs: Inputs, tls: TlsConfig, problems: Problem[]): Promise<void> {
  if (process.platform === 'win32') return;
  const worldReadable = async (path: string): Promise<number | undefined> => {
    try {
      const mode = (await stat(path)).mode & 0o777;
      return (mode & 0o004) !== 0 ? mode : undefined;
    } catch {
      return undefined; // the read worked; a racing rename is caught on the next load
    }
  };
  const octal = (mode: number): string => mode.toString(8).padStart(4, '0');
  const keyMode = inputs.key.bytes !== undefined ? await worldReadable(inputs.keyPath) : undefined;
  if (keyMode !== undefined) {
    const allowed = tls.allow_insecure_key_permissions === true;
    problems.push(problem(allowed ? 'warning' : 'error', 'CG_KEY_PERMISSIONS',
      `the private key file is readable by every user (mode ${octal(keyMode)})${allowed ? '; accepted because tls.allow_insecure_key_permissions is true' : ''}`,
      { file: inputs.keyPath, hint: `chmod o-r ${basename(inputs.keyPath)} (600, or 640/440 with a group)${allowed ? '' : ', or set tls.allow_insecure_key_permissions: true'}` }));
  }
  const pass = inputs.pass;
  const passMode = pass?.bytes !== undefined ? await worldReadable(pass.path) : undefined;
  if (pass !== undefined && passMode !== undefined) {
    problems.push(problem('warning', 'CG_KEY_PERMISSIONS', `the passphrase file is readable by every user (mode ${octal(passMode)})`,
      { file: pass.path, hint: `chmod o-r ${basename(pass.path)}` }));
  }
}

/** sha256 over every input's bytes (the passphrase only as present/absent). */
export function digestOf(inputs: Inputs): string {
  const hash = createHash('sha256');
  for (const [role, f] of [['cert', inputs.cert], ['key', inputs.key], ['client_ca', inputs.ca], ['crl', inputs.crl]] as const) {
    if (f?.bytes === undefined) continue;
    hash.update(`${role}\0${f.bytes.length}\0`).update(f.bytes);
  }
  return hash.update(`passphrase\0${inputs.pass !== undefined ? 1 : 0}`).digest('hex');
}

/**
 * sha256 of each file read, by path: lets a reload say which files changed (the whole-set digest above
 * decides whether anything did). A file that could not be read is absent.
 */
export function fileDigestsOf(inputs: Inputs): Record<string, string> {
  const out: Record<string, string> = {};
  for (const f of [inputs.cert, inputs.key, inputs.pass, inputs.ca, inputs.crl]) {
    if (f?.bytes !== undefined) out[f.path] = createHash('sha256').update(f.bytes).digest('hex');
  }
  return out;
}
