#!/usr/bin/env node
// `npm start`: the dev default. Creates the dev PKI in certs/dev/ when missing, then runs the built-in
// whoami echo upstream (127.0.0.1:8081, or CERTGATE_WHOAMI_LISTEN) and certgate with config/certgate.yaml
// (or CERTGATE_CONFIG) in front of it. Waits for both children to exit.
//
// Stopping: this script is the only one that signals the children, exactly once per signal it gets.
// They run in process groups of their own, because `npm start` is stopped in two ways that both missed:
// - SIGTERM to npm alone (a supervisor, `kill <npm>`): npm passes it to its `sh -c`, which dies of it without
//   passing it on, so this script never heard it and certgate + whoami kept running. This script watches
//   its parent: when it goes away, that is a stop.
// - a signal to npm's whole process group (`timeout 60 npm start`, Ctrl-C on a terminal): the children
//   used to get it directly *and* forwarded from here, and certgate reads a second signal as "exit now,
//   skip the drain". Now they get it from here only.
import { existsSync } from 'node:fs';
import { spawn, spawnSync } from 'node:child_process';

const cli = 'dist/cli.js';
const config = process.env.CERTGATE_CONFIG ?? 'config/certgate.yaml';
const whoamiListen = process.env.CERTGATE_WHOAMI_LISTEN ?? '127.0.0.1:8081';
// The dev PKI is what the default config names; a config of your own brings its own files.
if (process.env.CERTGATE_CONFIG === undefined && !existsSync('certs/dev/server.pem')) {
  console.error('certgate: no dev PKI yet; creating certs/dev/ (certgate certs init --dir certs/dev)');
  const r = spawnSync(process.execPath, [cli, 'certs', 'init', '--dir', 'certs/dev'], { stdio: 'inherit' });
  if (r.status !== 0) process.exit(r.status ?? 1);
}
const children = [
  spawn(process.execPath, [cli, 'whoami', '--listen', whoamiListen], { stdio: 'inherit', detached: true }),
  spawn(process.execPath, [cli, 'serve', '--config', config], { stdio: 'inherit', detached: true }),
];
console.error('certgate: try  curl --cert certs/dev/client.pem --cacert certs/dev/ca.crt https://localhost:8443/');

const running = (c) => c.exitCode === null && c.signalCode === null;
let stopping = false;
/** Passes `signal` to every child still running (a second Ctrl-C passes a second SIGINT: exit now). */
function stop(signal) {
  stopping = true;
  for (const c of children) if (running(c)) c.kill(signal);
}

let exitCode = 0;
let alive = children.length;
for (const child of children) {
  child.on('exit', (code) => {
    exitCode ||= code ?? 0;
    alive -= 1;
    // One died on its own (e.g. bad config: exit 2): stop the other too.
    if (!stopping) stop('SIGTERM');
    if (alive === 0) process.exit(exitCode);
  });
}
process.on('SIGINT', () => stop('SIGINT'));
process.on('SIGTERM', () => stop('SIGTERM'));
// npm (or the shell between) is gone: nobody else will tell the children. process.ppid is read live.
const parent = process.ppid;
setInterval(() => {
  if (process.ppid !== parent && !stopping) stop('SIGTERM');
}, 200).unref();
