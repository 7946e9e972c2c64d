/**
 * Live configuration (issue 17): enrollment settings are live. Validation loads the enrollment exactly as
 * serve does (the CA's key must match its certificate, the CA must be in tls.client_ca, the tokens file
 * must parse, the state file's folder must be writable), so a reload applies an enrollment that loads, or
 * nothing; an applied one serves the next POST /enroll, and removing it turns /enroll off.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import { createTestPki, type TestPki } from '../helpers/pki.js';
import { rewriteConfig, startTestCertgate, startRecordingUpstream, type RunningCertgate, type RecordingUpstream } from '../helpers/certgate.js';
import { runCerts } from '../../dist/commands/certs.js';

let pki: TestPki;
let up: RecordingUpstream;
let gate: RunningCertgate;
let work: string;

function settings(enrollment?: Record<string, unknown>): string {
  return stringify({
    listen: '127.0.0.1:0', admin: { listen: '127.0.0.1:0' }, config_watch: false,
    tls: { bundle: pki.serverBundle.pemPath, client_ca: pki.clientCa.path },
    routes: [{ name: 'api', path_prefix: '/', upstream: up.url }],
    ...(enrollment !== undefined && { enrollment }),
  });
}

const enrollment = (over: Record<string, unknown> = {}): Record<string, unknown> => ({
  ca_cert: pki.intermediate.certPath, ca_key: pki.intermediate.keyPath, max_days: 30,
  tokens_file: path.join(work, 'enroll-tokens.yaml'), state_file: path.join(work, 'enroll-used.json'), ...over,
});

const enroll = async (): Promise<{ status: number; body: Record<string, unknown> }> => {
  const res = await fetch(`${gate.adminUrl}/enroll`, { method: 'POST', body: 'not a CSR' });
  return { status: res.status, body: await res.json() as Record<string, unknown> };
};

before(async () => {
  pki = await createTestPki();
  up = await startRecordingUpstream();
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'certgate-live-enroll-'));
  // A tokens file as `certgate certs token` writes it.
  const code = await runCerts(['token', '--dir', work, '--cn', 'svc-new'], { stdout: () => undefined, stderr: () => undefined });
  assert.equal(code, 0);
  gate = await startTestCertgate({
    listen: '127.0.0.1:0', admin: { listen: '127.0.0.1:0' }, config_watch: false,
    tls: { bundle: pki.serverBundle.pemPath, client_ca: pki.clientCa.path },
    routes: [{ name: 'api', path_prefix: '/', upstream: up.url }],
  });
});
after(async () => {
  await gate?.close();
  await up?.close();
  pki?.cleanup();
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

test('an enrollment that would not load (the CA key does not match its certificate) fails the reload; /enroll stays off', async () => {
  // Off: the admin listener has no POST /enroll (405, as for any other POST).
  assert.equal((await enroll()).status, 405);
  const r = await rewriteConfig(gate, settings(enrollment({ ca_key: pki.root.keyPath })));
  assert.equal(r.status, 422, JSON.stringify(r.json));
  assert.equal(r.json.result, 'failure');
  assert.equal(r.json.generation, 1);
  assert.match(JSON.stringify(r.json.problems), /ca_key|key/i);
  assert.equal((await enroll()).status, 405);
});

test('an enrollment added live serves the next POST /enroll; removed live, /enroll is off again (405)', async () => {
  const r = await rewriteConfig(gate, settings(enrollment()));
  assert.equal(r.json.result, 'success', JSON.stringify(r.json));
  assert.equal(r.json.restart_to_apply, undefined, 'enrollment is live');
  const answered = await enroll();
  assert.equal(answered.status, 401, JSON.stringify(answered.body));
  assert.equal(answered.body.error, 'unauthorized');
  const off = await rewriteConfig(gate, settings());
  assert.equal(off.json.result, 'success', JSON.stringify(off.json));
  assert.equal((await enroll()).status, 405);
});
