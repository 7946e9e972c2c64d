#!/usr/bin/env node
// `npm run docs`: rewrites README's errors table from dist/errors.js CODES (run after npm run build).
import { readFileSync, writeFileSync } from 'node:fs';
import { CODES } from '../dist/errors.js';

const rows = ['| code | how to solve |', '|---|---|', ...Object.entries(CODES).map(([c, h]) => `| \`${c}\` | ${h.replaceAll('|', '\\|')} |`)];
const readme = readFileSync('README.md', 'utf8');
const start = '<!-- errors-table:start -->';
const end = '<!-- errors-table:end -->';
const next = readme.replace(new RegExp(`${start}[\\s\\S]*${end}`), `${start}\n${rows.join('\n')}\n${end}`);
writeFileSync('README.md', next);
console.log(`README.md: ${Object.keys(CODES).length} error codes`);
