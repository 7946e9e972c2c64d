import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { notOurs } from '../../dist/tls/watch.js';

// Issue 19: a busy neighbour of the config (an access log in the same folder) made chokidar watch and stat
// it on every write, ~0.4-0.7 ms of CPU per proxied connection in the watching process.
test('the folder watch ignores neighbours but keeps our files, the folder and a Secret volume\'s ..data swap', () => {
  const dir = path.resolve('/etc/certgate');
  const ignored = notOurs([path.join(dir, 'certgate.yaml'), path.join(dir, 'tls.pem')]);
  assert.equal(ignored(dir), false);
  assert.equal(ignored(path.join(dir, 'certgate.yaml')), false);
  assert.equal(ignored(path.join(dir, 'tls.pem')), false);
  assert.equal(ignored(path.join(dir, '..data')), false);
  assert.equal(ignored(path.join(dir, '..data_tmp')), false);
  assert.equal(ignored(path.join(dir, '..2026_12_06_16_00_00.123')), false);
  assert.equal(ignored(path.join(dir, 'access.log')), true);
  assert.equal(ignored(path.join(dir, '.certgate.yaml.swp')), true);
  assert.equal(ignored(path.join(dir, 'certgate.yaml~')), true);
  assert.equal(ignored(path.resolve('/etc')), true);
});
