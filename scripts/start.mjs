#!/usr/bin/env node
// `npm start`: the dev default. Creates the dev PKI in certs/dev/ when missing, then runs the built-in
// whoami echo upstream (127.0.0.1:8081) and certgate with config/certgate.yaml in front of it.
// Ctrl-C reaches both children (same process group); this script waits for both to exit.
import { existsSync } from 'node:fs';
import { spawn, spawnSync } from 'node:child_process';

const cli = 'dist/cli.js';
const config = process.env.CERTGATE_CONFIG ?? 'config/certgate.yaml';
if (!existsSync('certs/dev/server.pem')) {
  console.error('certgate: no dev PKI yet; creating certs/dev/ (certgate certs init --dir certs/dev)');
  const r = spawnSync(process.execPath, [cli, 'certs', 'init', '--dir', 'certs/dev'], { stdio: 'inherit' });
  if (r.status !== 0) process.exit(r.status ?? 1);
}
const children = [
  spawn(process.execPath, [cli, 'whoami', '--listen', '127.0.0.1:8081'], { stdio: 'inherit' }),
  spawn(process.execPath, [cli, 'serve', '--config', config], { stdio: 'inherit' }),
];
console.error('certgate: try  curl --cert certs/dev/client.pem --cacert certs/dev/ca.crt https://localhost:8443/');
let exitCode = 0;
let alive = children.length;
for (const child of children) {
  child.on('exit', (code) => {
    exitCode ||= code ?? 0;
    alive -= 1;
    // One died on its own (e.g. bad config: exit 2): stop the other too.
    for (const other of children) if (other.exitCode === null && other.signalCode === null) other.kill('SIGTERM');
    if (alive === 0) process.exit(exitCode);
  });
}
// Ctrl-C is delivered to the whole process group; the children stop themselves, we just wait.
process.on('SIGINT', () => {});
process.on('SIGTERM', () => { for (const c of children) c.kill('SIGTERM'); });
