import { test } from 'node:test';
import assert from 'node:assert/strict';
import { concernsUs } from '../../dist/tls/watch.js';

// Issue 19: every write of a busy neighbour of the config (an access log in the same folder) made chokidar
// re-read the whole folder: 18 % of a core for a log written 500 times a second. Such events are dropped.
test('a folder watch acts on our files and a Secret volume\'s ..data swap, not on a neighbour', () => {
  const names = new Set(['certgate.yaml', 'tls.pem']);
  assert.equal(concernsUs(names, 'certgate.yaml'), true);
  assert.equal(concernsUs(names, 'tls.pem'), true);
  assert.equal(concernsUs(names, '..data'), true);
  assert.equal(concernsUs(names, '..data_tmp'), true);
  assert.equal(concernsUs(names, '..2026_12_06_16_00_00.123'), true);
  assert.equal(concernsUs(names, null), true);
  assert.equal(concernsUs(names, 'access.log'), false);
  assert.equal(concernsUs(names, '.certgate.yaml.swp'), false);
  assert.equal(concernsUs(names, 'certgate.yaml~'), false);
});
