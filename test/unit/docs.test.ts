/**
 * The README "Errors" table lists every code in CODES with its fix, and nothing else (fastify's
 * errors-doc test idea); the committed JSON Schema is what the validator's schema generates.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { CODES } from '../../dist/errors.js';
import { configJsonSchema } from '../../dist/config/write-schema.js';

test('README errors table and CODES agree, code by code', () => {
  const readme = readFileSync('README.md', 'utf8');
  const start = readme.indexOf('<!-- errors-table:start -->');
  const end = readme.indexOf('<!-- errors-table:end -->');
  assert.ok(start > 0 && end > start, 'README.md must hold the errors-table markers');
  const rows = readme.slice(start, end).split('\n').filter((l) => l.startsWith('| `CG_'));
  const documented = new Map(rows.map((r) => {
    const m = /^\| `(CG_[A-Z_]+)` \| (.*) \|$/.exec(r);
    assert.ok(m, `malformed row: ${r}`);
    return [m[1]!, m[2]!] as const;
  }));
  for (const [code, hint] of Object.entries(CODES)) {
    assert.equal(documented.get(code), hint.replaceAll('|', '\\|'), `README row for ${code} (run: npm run docs)`);
  }
  for (const code of documented.keys()) assert.ok(code in CODES, `README lists ${code}, which no longer exists`);
});

test('config/certgate.schema.json is generated from the validator schema (npm run schema)', () => {
  assert.equal(readFileSync('config/certgate.schema.json', 'utf8'), configJsonSchema());
});

test('the default config names its schema for editors', () => {
  assert.match(readFileSync('config/certgate.yaml', 'utf8'), /^# yaml-language-server: \$schema=\.\/certgate\.schema\.json$/m);
});

test('the README configuration example is a valid config (every key in it exists)', async () => {
  const { parseConfig } = await import('../../dist/config/load.js');
  const readme = readFileSync('README.md', 'utf8');
  const section = readme.slice(readme.indexOf('## Configuration'));
  const yaml = /```yaml\n([\s\S]*?)```/.exec(section)?.[1];
  assert.ok(yaml, 'README has a yaml block under Configuration');
  const config = parseConfig(yaml, '/etc/certgate/certgate.yaml');
  assert.equal(config.routes[0]?.name, 'api');
  assert.equal(config.limits.max_connections, 10000);
});
