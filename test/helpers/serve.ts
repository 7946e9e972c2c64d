/**
 * `certgate serve` as a child process (the real CLI, real signals), with its JSON log lines collected.
 * Resolves once the "certgate listening" line names the URLs; never on a sleep.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { collectJsonLines } from './logs.js';
import { waitFor } from './wait.js';

export const REPO = fileURLToPath(new URL('../../', import.meta.url));
export const CLI = path.join(REPO, 'dist', 'cli.js');

export interface Exit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly at: number;
}

export interface ServingProcess {
  readonly child: ChildProcess;
  readonly url: URL;
  readonly admin: string;
  readonly exited: Promise<Exit>;
  /** How it exited, once it has (undefined while it runs). */
  exit(): Exit | undefined;
  readonly logs: Record<string, unknown>[];
  readonly configFile: string;
  stderr(): string;
}

const children = new Set<ChildProcess>();
let serial = 0;

/** Writes `config` (JSON is YAML) into `dir` and starts serve on it; CERTGATE_* variables are not inherited. */
export async function spawnServe(dir: string, config: Record<string, unknown>, timeoutMs = 15_000, extraEnv: NodeJS.ProcessEnv = {}): Promise<ServingProcess> {
  const configFile = path.join(dir, `certgate-${process.pid}-${serial++}.yaml`);
  writeFileSync(configFile, JSON.stringify(config));
  return spawnServeConfig(configFile, timeoutMs, extraEnv);
}

/** Starts serve on an existing config file; `extraEnv` is added to the environment (test hooks). */
export async function spawnServeConfig(configFile: string, timeoutMs = 15_000, extraEnv: NodeJS.ProcessEnv = {}): Promise<ServingProcess> {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('CERTGATE_')) env[k] = v;
  Object.assign(env, extraEnv);
  const child = spawn(process.execPath, [CLI, 'serve', '--config', configFile], { cwd: REPO, env, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  const exited = new Promise<Exit>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) => {
      children.delete(child);
      resolve({ code, signal, at: Date.now() });
    });
  });
  let exit: Exit | undefined;
  void exited.then((e) => (exit = e), () => undefined);
  const logs = collectJsonLines(child.stdout!);
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const listening = await waitFor(() => {
    if (exit !== undefined) throw new Error(`serve exited (${JSON.stringify(exit)}) before listening; stderr:\n${stderr}`);
    return logs.find((l) => l.msg === 'certgate listening');
  }, 'the "certgate listening" log line', timeoutMs);
  return { child, url: new URL(String(listening.url)), admin: String(listening.admin), exited, exit: () => exit, logs, configFile, stderr: () => stderr };
}

/** For after(): kills every serve child still running (and, by the process group's IPC, its workers). */
export function killServeChildren(): void {
  for (const c of children) c.kill('SIGKILL');
}
