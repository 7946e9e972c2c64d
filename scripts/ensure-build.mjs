#!/usr/bin/env node
// `npm start` builds only when dist/ is missing or older than a source file.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';

const newest = (dir) => {
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    t = Math.max(t, e.isDirectory() ? newest(p) : statSync(p).mtimeMs);
  }
  return t;
};
const built = existsSync('dist/cli.js') ? statSync('dist/cli.js').mtimeMs : 0;
if (built === 0 || newest('src') > built || statSync('tsconfig.json').mtimeMs > built) {
  console.error('certgate: building (npm run build) ...');
  execFileSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.json'], { stdio: 'inherit' });
}
