/**
 * File events are only hints: something in a folder holding TLS material changed. The reloader re-reads
 * everything and compares digests, so a spurious or duplicate event costs one no-op read.
 *
 * We watch the PARENT folders (depth 0), not the files: that sees write-to-temp + rename, delete +
 * recreate, and the Kubernetes Secret volume swap (`tls.pem -> ..data/tls.pem` where `..data` is a
 * symlink renamed over atomically), none of which a watch on the file itself survives reliably.
 * chokidar's awaitWriteFinish is off on purpose: its 2 s default breaks the 2 s reload promise, and it
 * gives no guarantee anyway (a writer pausing longer still gets through); a half-written file fails
 * validation, the old material keeps serving, and the write's next event reloads again.
 * A watch on a folder that is itself deleted and recreated is lost silently: the reloader's periodic
 * re-check and SIGHUP are the backstops.
 */
import path from 'node:path';
import { watch, type FSWatcher } from 'chokidar';

export interface FileWatch {
  /** Resolves once the watches are armed: a change after this is seen. */
  readonly ready: Promise<void>;
  close(): Promise<void>;
}

export interface WatchOptions {
  /** Quiet period that merges a burst of events into one call (default 150 ms). */
  readonly debounceMs?: number;
  readonly onError?: (err: unknown) => void;
}

/**
 * chokidar's `ignored` for a watch of these files' folders: every entry but our files, the folders
 * themselves and `..`-names (a Secret/ConfigMap volume's `..data` and `..data_tmp` swap). Unignored,
 * chokidar puts a watch on each neighbour and stats it on every write: an access log written beside the
 * config cost the watching process 0.4-0.7 ms of CPU per proxied connection under load (issue 19,
 * `workers: 2`, measured with /proc and strace); with this, 0.3 ms: chokidar still re-reads the folder
 * (getdents + a stat of each remaining entry) on each write in it. A config in its own folder costs nothing.
 */
export function notOurs(files: readonly string[]): (p: string) => boolean {
  const names = new Set(files.map((f) => path.basename(f)));
  const dirs = new Set(files.map((f) => path.dirname(path.resolve(f))));
  return (p) => {
    if (dirs.has(p)) return false;
    const name = path.basename(p);
    return !names.has(name) && !name.startsWith('..');
  };
}

/** Calls onChange(label) once per burst of events; label = the changed file's basename, else "all". */
export function watchFiles(files: readonly string[], onChange: (label: string) => void, opts: WatchOptions = {}): FileWatch {
  const debounceMs = opts.debounceMs ?? 150;
  const names = new Set(files.map((f) => path.basename(f)));
  const dirs = [...new Set(files.map((f) => path.dirname(path.resolve(f))))];
  let timer: NodeJS.Timeout | undefined;
  // Only our files' names label a reload; temp files, `..data` and `..<timestamp>` folders do not.
  let labels = new Set<string>();
  const watcher: FSWatcher = watch(dirs, { ignoreInitial: true, depth: 0, followSymlinks: true, atomic: true, ignored: notOurs(files) });
  watcher.on('all', (_event, changed) => {
    const name = path.basename(changed);
    if (names.has(name)) labels.add(name);
    clearTimeout(timer);
    timer = setTimeout(() => {
      const fired = labels;
      labels = new Set();
      onChange(fired.size === 1 ? [...fired][0]! : 'all');
    }, debounceMs);
  });
  watcher.on('error', (err) => opts.onError?.(err));
  const ready = new Promise<void>((resolve) => watcher.once('ready', () => resolve()));
  return {
    ready,
    async close() {
      clearTimeout(timer);
      await watcher.close();
    },
  };
}
