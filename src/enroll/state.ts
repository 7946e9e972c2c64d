/**
 * Spent tokens, on disk (enrollment.state_file) so a restart cannot make a token usable again:
 *
 *   {"version":1,"spent":{"3f9a1c2b7d4e0a51":{"at":"…","serial":"…","subject":"CN=svc-b"}}}
 *
 * One writer: every spend runs inside `exclusive()` (a promise chain), which re-reads the file, so two
 * racing requests of this process can never both spend one token. Across processes there is no lock:
 * enrollment must run in exactly one certgate (README "Enrollment").
 *
 * A write is durable before it returns: temporary file, fsync, rename over the old file, fsync of the
 * folder. A state file that exists but does not parse is an error, never "nothing spent".
 */
import { constants } from 'node:fs';
import { access, open, readFile } from 'node:fs/promises';
import path from 'node:path';
import { CertgateError } from '../errors.js';
import { writeFileAtomic } from '../pki/dev-pki.js';

export interface SpentRecord {
  /** ISO time the certificate was issued. */
  readonly at: string;
  /** Serial of the certificate it was spent on (uppercase hex). */
  readonly serial: string;
  readonly subject: string;
}

export interface SpentStore {
  /** The spent tokens as on disk now (plus any this process spent, should the file have been removed). */
  read(): Promise<ReadonlyMap<string, SpentRecord>>;
  /** Records `id` as spent; durable on return. Call inside exclusive(). */
  spend(id: string, record: SpentRecord): Promise<void>;
  /** Runs `fn` after every earlier exclusive() call has finished. */
  exclusive<T>(fn: () => Promise<T>): Promise<T>;
}

export function createSpentStore(file: string): SpentStore {
  const mine = new Map<string, SpentRecord>();
  let tail: Promise<unknown> = Promise.resolve();
  const read = async (): Promise<Map<string, SpentRecord>> => new Map([...(await readSpent(file)), ...mine]);
  return {
    read,
    async spend(id, record) {
      const spent = await read();
      spent.set(id, record);
      const body = JSON.stringify({ version: 1, spent: Object.fromEntries(spent) }, null, 1);
      await writeFileAtomic(file, `${body}\n`, 0o600);
      await syncDir(path.dirname(file));
      mine.set(id, record);
    },
    exclusive(fn) {
      const run = tail.then(fn, fn);
      tail = run.catch(() => undefined);
      return run;
    },
  };
}

/** Reads the state file; a missing file means nothing was spent yet. Throws CG_ENROLL_STATE otherwise. */
export async function readSpent(file: string): Promise<Map<string, SpentRecord>> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return new Map();
    throw new CertgateError('CG_ENROLL_STATE', `cannot read ${file}: ${code ?? String(err)}`, { file, cause: err });
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new CertgateError('CG_ENROLL_STATE', `${file} is not valid JSON: ${(err as Error).message}`, {
      file, cause: err, hint: 'restore it from a backup; deleting it would make every spent token usable again',
    });
  }
  const spent = (parsed as { version?: unknown; spent?: unknown }).spent;
  if ((parsed as { version?: unknown }).version !== 1 || typeof spent !== 'object' || spent === null || Array.isArray(spent)) {
    throw new CertgateError('CG_ENROLL_STATE', `${file} is not a certgate enrollment state file (expected {"version":1,"spent":{…}})`, { file });
  }
  return new Map(Object.entries(spent as Record<string, SpentRecord>));
}

/** Start-up check: the state file is readable (or absent) and its folder writable. */
export async function checkStateFile(file: string, configFile: string, line: number): Promise<number> {
  try {
    await access(path.dirname(file), constants.W_OK);
  } catch (err) {
    throw new CertgateError('CG_ENROLL_STATE', `enrollment.state_file: the folder ${path.dirname(file)} is missing or not writable`, {
      file: configFile, line, cause: err, hint: 'create the folder and make it writable by certgate (spent tokens are recorded there)',
    });
  }
  return (await readSpent(file)).size;
}

/** fsync(2) on the folder, so the rename itself survives a crash. Not possible on Windows: skipped. */
async function syncDir(dir: string): Promise<void> {
  if (process.platform === 'win32') return;
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}
