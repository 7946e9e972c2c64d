/**
 * nginx from Debian as a real upstream, where its HTTP parser is what a test is about (the desync
 * attacks of issue #13: what nginx reads as a request body, what it serves as the next request).
 * .ci/run installs it (nginx-light); without it the tests that need it say they skipped.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import net from 'node:net';
import { freePort } from './ports.js';
import os from 'node:os';
import path from 'node:path';
import { waitFor } from './wait.js';

export const NGINX = ['/usr/sbin/nginx', '/usr/bin/nginx'].find((p) => existsSync(p));

export interface RunningNginx {
  readonly url: string;
  /** One entry per request nginx served: `$request $status` (the request line as nginx parsed it). */
  requests(): string[];
  close(): Promise<void>;
}


/**
 * Starts nginx on 127.0.0.1 with `locations` (nginx `location` blocks) in its one server. `listen` is
 * appended to the listen directive (e.g. `ssl`), `server` holds further server directives (ssl_*).
 */
export async function startNginx(locations: string, opts: { listen?: string; server?: string } = {}): Promise<RunningNginx> {
  if (NGINX === undefined) throw new Error('nginx is not installed (apt-get install nginx-light)');
  const dir = mkdtempSync(path.join(os.tmpdir(), 'certgate-nginx-'));
  mkdirSync(path.join(dir, 'tmp'));
  const port = await freePort();
  const log = path.join(dir, 'access.log');
  writeFileSync(log, '');
  writeFileSync(path.join(dir, 'nginx.conf'), `
worker_processes 1;
error_log ${dir}/error.log;
pid ${dir}/nginx.pid;
events { worker_connections 256; }
http {
  log_format line '$request $status';
  access_log ${log} line;
  client_body_temp_path ${dir}/tmp;
  keepalive_timeout 60s;
  keepalive_requests 1000;
  server {
    listen 127.0.0.1:${port}${opts.listen === undefined ? '' : ` ${opts.listen}`};
    ${opts.server ?? ''}
    ${locations}
  }
}
`);
  const child: ChildProcess = spawn(NGINX, ['-p', dir, '-c', path.join(dir, 'nginx.conf'), '-g', 'daemon off; master_process off;'], { stdio: 'ignore' });
  await waitFor(() => new Promise<boolean>((resolve) => {
    const s = net.connect(port, '127.0.0.1', () => { s.destroy(); resolve(true); });
    s.on('error', () => resolve(false));
  }), `nginx listening on ${port}`);
  return {
    url: `${opts.listen?.includes('ssl') === true ? 'https' : 'http'}://127.0.0.1:${port}`,
    requests: () => readFileSync(log, 'utf8').split('\n').filter((l) => l !== ''),
    async close() {
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.kill('SIGTERM');
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
