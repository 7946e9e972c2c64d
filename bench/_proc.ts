/**
 * What the kernel says about a process tree (Linux /proc only): CPU ticks, resident memory, and the
 * TCP connections to a port. The bench compares proxies by CPU per request, which — unlike req/s on a
 * 2-core box shared with the load generator — does not depend much on who wins the scheduler.
 */
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { execFileSync } from 'node:child_process';

/** Clock ticks per second for utime/stime (sysconf(_SC_CLK_TCK); 100 on every Linux we know). */
export const CLK_TCK: number = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

interface Stat {
  readonly ppid: number;
  /** utime + stime of every thread of the process, in ticks. */
  readonly ticks: number;
  /** cutime + cstime: children already reaped by this process. */
  readonly childTicks: number;
}

/** Fields after the `(comm)` field, which may itself hold spaces and parentheses. */
function readStat(pid: number): Stat | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
  // f[0] is field 3 (state): ppid = field 4, utime 14, stime 15, cutime 16, cstime 17.
  return { ppid: Number(f[1]), ticks: Number(f[11]) + Number(f[12]), childTicks: Number(f[13]) + Number(f[14]) };
}

/** `root` and all its descendants (nginx master → workers, cluster primary → workers). */
export function processTree(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const name of readdirSync('/proc')) {
    const pid = Number(name);
    if (!Number.isInteger(pid)) continue;
    const s = readStat(pid);
    if (s === undefined) continue;
    const list = children.get(s.ppid);
    if (list === undefined) children.set(s.ppid, [pid]);
    else list.push(pid);
  }
  const out: number[] = [];
  const stack = [root];
  while (stack.length > 0) {
    const pid = stack.pop() as number;
    out.push(pid);
    for (const c of children.get(pid) ?? []) stack.push(c);
  }
  return out;
}

/** CPU ticks used so far by the tree (processes that exited since the last call are not counted). */
export function treeTicks(pids: readonly number[]): number {
  let sum = 0;
  for (const pid of pids) sum += readStat(pid)?.ticks ?? 0;
  return sum;
}

/** CPU ticks of this process's reaped children (ab, openssl): read before and after a run. */
export function reapedChildTicks(): number {
  return readStat(process.pid)?.childTicks ?? 0;
}

/** VmRSS of one process, bytes (0 once it exited). */
export function processRss(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** Sum of VmRSS over the tree, bytes. Shared pages count once per process (nginx workers share some). */
export function treeRss(pids: readonly number[]): number {
  let sum = 0;
  for (const pid of pids) sum += processRss(pid);
  return sum;
}

/** Busy and total jiffies of the whole machine (/proc/stat "cpu" line), to see what else ran. */
export function machineTicks(): { busy: number; total: number } {
  const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0] as string;
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  const total = v.reduce((a, b) => a + b, 0);
  const idle = (v[3] ?? 0) + (v[4] ?? 0);
  return { busy: total - idle, total };
}

/** Socket inodes held open by the processes (from their /proc/<pid>/fd links). */
function socketInodes(pids: readonly number[]): Set<string> {
  const out = new Set<string>();
  for (const pid of pids) {
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      try {
        const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
        if (m) out.add(m[1] as string);
      } catch {
        // closed meanwhile
      }
    }
  }
  return out;
}

/**
 * Established TCP connections (IPv4) from the processes to 127.0.0.1:`port`: a proxy's upstream
 * connections (the other proxies' idle pools are not counted).
 */
export function establishedTo(port: number, pids: readonly number[]): number {
  const mine = socketInodes(pids);
  let n = 0;
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  for (const line of readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
    const cols = line.trim().split(/\s+/);
    // cols[2] = rem_address "0100007F:1F90", cols[3] = state (01 = ESTABLISHED), cols[9] = inode
    if (cols[2] === `0100007F:${hexPort}` && cols[3] === '01' && mine.has(cols[9] as string)) n++;
  }
  return n;
}
