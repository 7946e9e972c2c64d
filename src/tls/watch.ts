/**
 * File events are only hints: something in a folder holding TLS material (or the config) changed. The
 * reloader re-reads everything and compares digests, so a spurious or duplicate event costs one no-op read.
 *
 * We watch the PARENT folders, not the files: that sees write-to-temp + rename, delete + recreate, and the
 * Kubernetes Secret volume swap (`tls.pem -> ..data/tls.pem` where `..data` is a symlink renamed over
 * atomically), none of which a watch on the file itself survives reliably. Only events that name one of
 * our files or a `..`-entry (the volume's `..data`, `..data_tmp`) count; a neighbour's are dropped on
 * arrival.
 *
 * Node's own fs.watch (inotify, FSEvents, ReadDirectoryChangesW), not chokidar (issue 19): chokidar answers
 * every event in a watched folder by re-reading it (getdents and a stat of each entry) and, while events
 * keep coming, re-reads it again as soon as it finished; an access log written beside the config 500 times
 * a second cost the otherwise idle process 18 % of a core, and a cluster primary 0.4–0.7 ms of CPU per
 * proxied connection. Our decision needs only the name in the event, which fs.watch gives.
 * No wait-for-write-finish: a half-written file fails validation, the old material keeps serving, and the
 * write's next event reloads again.
 * A watch on a folder that is itself deleted and recreated is lost silently: the reloader's periodic
 * re-check and SIGHUP are the backstops.
 */
import { realpathSync, watch, type FSWatcher } from 'node:fs';
import path from 'node:path';

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
 * Whether an event naming `name` in a watched folder concerns us: one of `names`, a `..`-entry (a Secret
 * or ConfigMap volume's `..data` swap), or no name at all (fs.watch may not know it: then it could be ours).
 */
export function concernsUs(names: ReadonlySet<string>, name: string | null): boolean {
  return name === null || names.has(name) || name.startsWith('..');
}

/**
 * The folders to watch and our names in each: every file's own folder, and for a file reached through
 * symlinks (a Secret volume's `tls.pem -> ..data/tls.pem`) its real folder too, where a write through
 * the link lands. Resolved again after every change: a `..data` swap moves the real folder.
 */
function foldersOf(files: readonly string[]): Map<string, Set<string>> {
  const byDir = new Map<string, Set<string>>();
  const add = (file: string): void => {
    const dir = path.dirname(file);
    const names = byDir.get(dir) ?? new Set<string>();
    names.add(path.basename(file));
    byDir.set(dir, names);
  };
  for (const f of files) {
    const abs = path.resolve(f);
    add(abs);
    try {
      const real = realpathSync(abs);
      if (real !== abs) add(real);
    } catch {
      // Missing right now (deleted, to be recreated): its folder's watch sees it come back.
    }
  }
  return byDir;
}

/** Calls onChange(label) once per burst of events; label = the changed file's basename, else "all". */
export function watchFiles(files: readonly string[], onChange: (label: string) => void, opts: WatchOptions = {}): FileWatch {
  const debounceMs = opts.debounceMs ?? 150;
  let timer: NodeJS.Timeout | undefined;
  // Only our files' names label a reload; `..data` and `..<timestamp>` folders do not.
  let labels = new Set<string>();
  /** Armed watches by folder, with the names that folder's events are about ("a|b" keys a re-arm). */
  const watches = new Map<string, { readonly key: string; readonly watcher: FSWatcher }>();
  let closed = false;
  const changed = (names: ReadonlySet<string>, name: string | null): void => {
    if (name !== null && names.has(name)) labels.add(name);
    clearTimeout(timer);
    timer = setTimeout(() => {
      arm();
      const fired = labels;
      labels = new Set();
      onChange(fired.size === 1 ? [...fired][0]! : 'all');
    }, debounceMs);
  };
  const arm = (): void => {
    if (closed) return;
    const wanted = foldersOf(files);
    for (const [dir, w] of watches) {
      const names = wanted.get(dir);
      if (names === undefined || [...names].sort().join('|') !== w.key) {
        w.watcher.close();
        watches.delete(dir);
      }
    }
    for (const [dir, names] of wanted) {
      if (watches.has(dir)) continue;
      try {
        const watcher = watch(dir, (_event, filename) => {
          const name = filename === null ? null : String(filename);
          if (concernsUs(names, name)) changed(names, name);
        });
        // A `..<version>` folder removed by the next swap ends its watch: expected, not an error.
        watcher.on('error', (err: NodeJS.ErrnoException) => {
          if (err.code !== 'ENOENT' && err.code !== 'EPERM') opts.onError?.(err);
        });
        watches.set(dir, { key: [...names].sort().join('|'), watcher });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') opts.onError?.(err);
      }
    }
  };
  arm();
  return {
    // fs.watch is armed when it returns.
    ready: Promise.resolve(),
    async close() {
      closed = true;
      clearTimeout(timer);
      for (const w of watches.values()) w.watcher.close();
      watches.clear();
    },
  };
}
