/**
 * `npm start` (scripts/start.mjs: the whoami upstream + certgate) stops cleanly however npm is stopped
 * (issue 14): no certgate or whoami process is left once the drain is over, and certgate drains (one
 * signal, "certgate stopped" with code 0) instead of exiting on a second one.
 *
 * - SIGTERM to npm alone (a supervisor, `kill <npm>`): npm hands it to its `sh -c`, which dies of it
 *   without passing it on; start.mjs used to keep running, with certgate and whoami.
 * - SIGTERM to npm's process group (`timeout 60 npm start`): certgate got it directly and again from
 *   start.mjs, read the second as "exit now" and skipped the drain (exit 1).
 *
 * Real npm, real processes: the process tree under npm is read from /proc, and every process of it must
 * be gone (a zombie counts as gone: only its parent could reap it). Runs `npm start --ignore-scripts`
 * (no prestart build: the test suite already built dist/), with a test config on port 0.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { collectJsonLines } from '../helpers/logs.js';
import { createTestPki, type TestPki } from '../helpers/pki.js';
import { REPO } from '../helpers/serve.js';
import { waitFor } from '../helpers/wait.js';

const TEST_OPTS = { timeout: 60_000 };
const HAS_PROC = fs.existsSync('/proc/self/stat');
let pki: TestPki;
let dir: string;
let configFile: string;
const started: number[] = [];

before(async () => {
  pki = await createTestPki();
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'certgate-npm-start-'));
  configFile = path.join(dir, 'certgate.yaml');
  // Nothing is requested: the upstream only has to be a valid URL.
  fs.writeFileSync(configFile, JSON.stringify({
    listen: '127.0.0.1:0', admin: { listen: '127.0.0.1:0' }, log: { level: 'info' }, workers: 2,
    tls: { bundle: pki.serverBundle.pemPath, client_ca: pki.clientCa.path },
    routes: [{ name: 'whoami', path_prefix: '/', upstream: 'http://127.0.0.1:1' }],
    shutdown: { drain_timeout_ms: 5000 },
  }));
});

after(() => {
  for (const pid of started) if (alive(pid)) process.kill(pid, 'SIGKILL');
  fs.rmSync(dir, { recursive: true, force: true });
  pki.cleanup();
});

/** /proc/<pid>/stat: [pid, state, ppid], or undefined when there is no such process. */
function stat(pid: number): { state: string; ppid: number } | undefined {
  try {
    const text = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const [state, ppid] = text.slice(text.lastIndexOf(')') + 2).split(' ');
    return { state: state!, ppid: Number(ppid) };
  } catch {
    return undefined;
  }
}

function alive(pid: number): boolean {
  const s = stat(pid);
  return s !== undefined && s.state !== 'Z' && s.state !== 'X';
}

/** Every process below `root` now, with its command line. */
function descendants(root: number): Map<number, string> {
  const children = new Map<number, number[]>();
  for (const name of fs.readdirSync('/proc')) {
    const pid = Number(name);
    if (!Number.isInteger(pid)) continue;
    const s = stat(pid);
    if (s !== undefined) children.set(s.ppid, [...(children.get(s.ppid) ?? []), pid]);
  }
  const out = new Map<number, string>();
  const walk = (pid: number): void => {
    for (const c of children.get(pid) ?? []) {
      try {
        out.set(c, fs.readFileSync(`/proc/${c}/cmdline`, 'utf8').split('\0').join(' ').trim());
      } catch {
        continue;
      }
      walk(c);
    }
  };
  walk(root);
  return out;
}

interface NpmStart {
  readonly npm: ChildProcess;
  readonly logs: Record<string, unknown>[];
  readonly npmExited: Promise<void>;
  /** Everything below npm once certgate (primary + 2 workers) and whoami listen. */
  readonly tree: Map<number, string>;
}

async function npmStart(): Promise<NpmStart> {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('CERTGATE_')) env[k] = v;
  env.CERTGATE_CONFIG = configFile;
  env.CERTGATE_WHOAMI_LISTEN = '127.0.0.1:0';
  // Its own process group, as a shell gives a job: the group test signals -pid.
  const npm = spawn('npm', ['start', '--ignore-scripts'], { cwd: REPO, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  started.push(npm.pid!);
  const npmExited = new Promise<void>((resolve) => npm.once('exit', () => resolve()));
  const logs = collectJsonLines(npm.stdout!);
  let stderr = '';
  npm.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  await waitFor(() => logs.some((l) => l.msg === 'certgate listening') && logs.some((l) => String(l.unparsed).startsWith('whoami listening on')),
    `certgate and whoami listening under npm start (stderr: ${stderr})`, 20_000);
  const tree = await waitFor(() => {
    const t = descendants(npm.pid!);
    return [...t.values()].filter((c) => c.includes('dist/cli.js')).length >= 4 && t;
  }, 'whoami, the certgate primary and its 2 workers under npm');
  started.push(...tree.keys());
  return { npm, logs, npmExited, tree };
}

async function assertAllGone(s: NpmStart, how: string): Promise<void> {
  await s.npmExited;
  await waitFor(() => [...s.tree.keys()].every((pid) => !alive(pid)), `every process npm start began to be gone after ${how}: ` +
    [...s.tree].filter(([pid]) => alive(pid)).map(([pid, cmd]) => `${pid} ${cmd}`).join('; '), 20_000).catch((err: Error) => {
    const left = [...s.tree].filter(([pid]) => alive(pid)).map(([pid, cmd]) => `${pid} ${cmd}`);
    throw new Error(`${err.message}\nstill running after ${how}: ${left.join('; ')}`);
  });
  const stopped = await waitFor(() => s.logs.find((l) => l.msg === 'certgate stopped'), 'the "certgate stopped" line');
  assert.equal(stopped.code, 0, `certgate drained and exited 0 after ${how}: ${JSON.stringify(s.logs.filter((l) => l.level !== 30 || /stop|signal/.test(String(l.msg))))}`);
  assert.equal(s.logs.filter((l) => l.msg === 'second signal: exiting now').length, 0, `certgate got one signal after ${how}, not two`);
}

describe('npm start', { skip: HAS_PROC ? false : 'needs /proc to see the process tree' }, () => {
  test('SIGTERM to npm alone leaves no certgate or whoami process after the drain', TEST_OPTS, async () => {
    const s = await npmStart();
    process.kill(s.npm.pid!, 'SIGTERM');
    await assertAllGone(s, 'SIGTERM to npm');
  });

  test('SIGTERM to npm\'s process group (timeout 60 npm start) drains once: no second signal, exit 0, nothing left', TEST_OPTS, async () => {
    const s = await npmStart();
    process.kill(-s.npm.pid!, 'SIGTERM');
    await assertAllGone(s, 'SIGTERM to the process group');
  });
});
