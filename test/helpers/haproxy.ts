/**
 * HAProxy from Debian as a real PROXY protocol sender (issue 18): `mode tcp` frontends that pass the TLS
 * bytes through untouched and open each backend connection with a PROXY header (`send-proxy-v2`,
 * `send-proxy`), with HAProxy's own health checks (`check-send-proxy`: v2 LOCAL, or v1) on the same
 * server line. .ci/run installs it; without it the tests that need it say they skipped.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { freePort } from './ports.js';
import os from 'node:os';
import path from 'node:path';
import { waitFor } from './wait.js';

export const HAPROXY = ['/usr/sbin/haproxy', '/usr/bin/haproxy'].find((p) => existsSync(p));

export interface RunningHaproxy {
  /** Frontend port whose backend connections start with a v2 header. */
  readonly v2Port: number;
  /** Frontend port whose backend connections start with a v1 header. */
  readonly v1Port: number;
  close(): Promise<void>;
}


/** HAProxy on 127.0.0.1 in front of certgate's TLS port (`backendPort` on 127.0.0.1). */
export async function startHaproxy(backendPort: number): Promise<RunningHaproxy> {
  if (HAPROXY === undefined) throw new Error('haproxy is not installed (apt-get install haproxy)');
  const dir = mkdtempSync(path.join(os.tmpdir(), 'certgate-haproxy-'));
  const [v2Port, v1Port] = [await freePort(), await freePort()];
  const config = path.join(dir, 'haproxy.cfg');
  writeFileSync(config, `
global
  maxconn 200
defaults
  mode tcp
  timeout connect 5s
  timeout client 30s
  timeout server 30s
frontend pp_v2
  bind 127.0.0.1:${v2Port}
  default_backend certgate_v2
frontend pp_v1
  bind 127.0.0.1:${v1Port}
  default_backend certgate_v1
backend certgate_v2
  server certgate 127.0.0.1:${backendPort} send-proxy-v2 check check-send-proxy inter 200ms
backend certgate_v1
  server certgate 127.0.0.1:${backendPort} send-proxy check check-send-proxy inter 200ms
`);
  const child: ChildProcess = spawn(HAPROXY, ['-db', '-f', config], { stdio: 'ignore' });
  for (const port of [v2Port, v1Port]) {
    await waitFor(() => new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    }), `haproxy listening on ${port}`);
  }
  return {
    v2Port, v1Port,
    async close() {
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.kill('SIGTERM');
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
