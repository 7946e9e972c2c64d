#!/usr/bin/env node
// Runs every compiled *.test.js under dist-test/ with node's built-in runner. Files are listed
// explicitly because Node 20 has no test-file globs and Node 22+ reads a bare directory differently;
// helpers (dist-test/helpers/*.js) must never run as tests.
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';

const root = 'dist-test';
const files = [];
const walk = (dir) => {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name);
    if (entry.isDirectory()) walk(p);
    else if (entry.name.endsWith('.test.js')) files.push(p);
  }
};
walk(root);
files.sort();
const filter = process.argv.slice(2);
const selected = filter.length === 0 ? files : files.filter((f) => filter.some((s) => f.includes(s)));
if (selected.length === 0) {
  console.error(`no test files under ${root}/ match ${filter.join(' ')}`);
  process.exit(1);
}
// The spec reporter also when the output is a pipe (CI tees it; Node 20 would switch to TAP): its closing
// "failing tests:" section is what .ci/run's summary repeats.
const result = spawnSync(process.execPath, ['--test', '--test-reporter=spec', '--test-concurrency=2', ...selected], { stdio: 'inherit' });
process.exit(result.status ?? 1);
