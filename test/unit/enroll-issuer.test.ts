/**
 * enroll/issuer.ts loadIssuingCa and enroll/handler.ts loadEnrollment, given the slice of config they read
 * (EnrollmentSlice: the enrollment section, the config file for file:line, tls.client_ca) — no whole Config.
 * The refusals that keep certgate from issuing certificates it would then refuse, or with a key not the CA's.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { loadIssuingCa, type EnrollmentSlice } from '../../dist/enroll/issuer.js';
import { loadEnrollment } from '../../dist/enroll/handler.js';
import { createTestPki, type TestPki } from '../helpers/pki.js';

let pki: TestPki;
before(async () => {
  pki = await createTestPki();
});
after(() => pki?.cleanup());

const LINES = { ca_cert: 11, ca_key: 12, tokens_file: 13, state_file: 14 };

function slice(more: { caCert?: string; caKey?: string; clientCa?: string } = {}): EnrollmentSlice {
  const tokens = path.join(pki.dir, 'tokens');
  fs.writeFileSync(tokens, '', { mode: 0o600 });
  return {
    file: path.join(pki.dir, 'certgate.yaml'),
    enrollment: {
      ca_cert: more.caCert ?? pki.intermediate.certPath, ca_key: more.caKey ?? pki.intermediate.keyPath,
      tokens_file: tokens, state_file: path.join(pki.dir, 'enroll-state', 'spent'), max_days: 30, lines: LINES,
    },
    tls: { client_ca: more.clientCa ?? pki.clientCa.path },
  };
}

test('a CA that tls.client_ca holds, with its own key, loads; loadEnrollment counts the tokens and spent ones', async () => {
  const ca = await loadIssuingCa(slice());
  assert.equal(ca.subject, 'CN=certgate test intermediate CA,O=certgate test');
  fs.mkdirSync(path.join(pki.dir, 'enroll-state'), { recursive: true });
  const loaded = await loadEnrollment(slice());
  assert.deepEqual([loaded.tokens, loaded.spent], [0, 0]);
});

test('a CA tls.client_ca does not hold is refused at enrollment.ca_cert\'s line (it would issue certificates certgate refuses)', async () => {
  await assert.rejects(loadIssuingCa(slice({ clientCa: pki.rootOnlyCa.path })), (err: { code: string; file: string; line: number; message: string }) => {
    assert.equal(err.code, 'CG_CONFIG_INVALID');
    assert.deepEqual([err.file, err.line], [path.join(pki.dir, 'certgate.yaml'), LINES.ca_cert]);
    assert.match(err.message, /is not in tls\.client_ca/);
    return true;
  });
});

test('a key that is not the CA\'s is refused naming the key file', async () => {
  await assert.rejects(loadIssuingCa(slice({ caKey: pki.root.keyPath })), { code: 'CG_KEY_MISMATCH', file: pki.root.keyPath });
});
