/**
 * `certgate certs token` (commands/certs.ts, in-process with collected output): prints the token once on
 * stdout and nothing else there, appends only its hash to DIR/enroll-tokens.yaml, and refuses bad flags
 * as usage errors (exit 2) without touching the file.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { runCerts } from '../../dist/commands/certs.js';
import { parseTokens } from '../../dist/enroll/tokens.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'certgate-token-cli-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

async function cli(args: string[]): Promise<{ code: number; stdout: string[]; stderr: string[] }> {
  const stdout: string[] = [];
  const stderr: string[] = [];
  const code = await runCerts(['token', ...args], { stdout: (t) => stdout.push(t), stderr: (t) => stderr.push(t) });
  return { code, stdout, stderr };
}

test('certs token: stdout is the bearer alone; the file holds its hash, identity, expiry and cert_days', async () => {
  const r = await cli(['--dir', dir, '--cn', 'svc-b', '--ou', 'payments', '--san-uri', 'spiffe://example.org/ns/*/sa/svc-b',
    '--san-uri', 'spiffe://example.org/b', '--san-dns', 'b.internal', '--days', '2', '--cert-days', '30']);
  assert.equal(r.code, 0, r.stderr.join('\n'));
  assert.equal(r.stdout.length, 1);
  const bearer = r.stdout[0]!;
  assert.match(bearer, /^[0-9a-f]{16}\.[A-Za-z0-9_-]{43}$/);
  const [id, secret] = bearer.split('.') as [string, string];
  const file = path.join(dir, 'enroll-tokens.yaml');
  const text = fs.readFileSync(file, 'utf8');
  assert.ok(!text.includes(secret), 'the secret is never written');
  assert.ok(text.includes(`sha256:${createHash('sha256').update(secret).digest('hex')}`));
  const [token] = parseTokens(text, file);
  assert.equal(token!.id, id);
  assert.deepEqual({ cn: token!.cn, ou: token!.ou, uri: token!.san_uri, dns: token!.san_dns, days: token!.cert_days },
    { cn: 'svc-b', ou: 'payments', uri: ['spiffe://example.org/ns/*/sa/svc-b', 'spiffe://example.org/b'], dns: ['b.internal'], days: 30 });
  const lifetime = token!.expires.getTime() - Date.now();
  assert.ok(lifetime > 1.9 * 86_400_000 && lifetime <= 2 * 86_400_000, `expires in 2 days (${lifetime} ms)`);
  assert.match(r.stderr.join('\n'), new RegExp(`token ${id} for CN=svc-b appended to`));
});

test('certs token: a second token is appended; --tokens-file writes elsewhere; a literal * is warned about', async () => {
  const other = path.join(dir, 'elsewhere', 'tokens.yaml');
  assert.equal((await cli(['--dir', dir, '--cn', 'svc-c'])).code, 0);
  assert.deepEqual(parseTokens(fs.readFileSync(path.join(dir, 'enroll-tokens.yaml'), 'utf8'), 'f').map((t) => t.cn), ['svc-b', 'svc-c']);
  const r = await cli(['--dir', dir, '--cn', 'svc-d', '--san-uri', 'spiffe://example.org/svc-*', '--tokens-file', other]);
  assert.equal(r.code, 0);
  assert.match(r.stderr.join('\n'), /warning: san_uri "spiffe:\/\/example.org\/svc-\*"/);
  assert.deepEqual(parseTokens(fs.readFileSync(other, 'utf8'), other).map((t) => t.cn), ['svc-d']);
});

test('certs token: usage errors exit 2 and write nothing', async () => {
  const file = path.join(dir, 'enroll-tokens.yaml');
  const before = fs.readFileSync(file, 'utf8');
  for (const args of [['--dir', dir], ['--dir', dir, '--cn', 'x', '--days', '0'], ['--dir', dir, '--cn', 'x', '--cert-days', '900'], ['--dir', dir, '--cn', 'x', '--bogus']]) {
    const r = await cli(args);
    assert.equal(r.code, 2, args.join(' '));
    assert.match(r.stderr.join('\n'), /\[CG_USAGE\]/);
    assert.deepEqual(r.stdout, []);
  }
  assert.equal(fs.readFileSync(file, 'utf8'), before);
});
