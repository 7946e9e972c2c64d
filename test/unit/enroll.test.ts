/**
 * The decisions of enrollment, with data: does a request ask for what its token allows (match.ts), is
 * a bearer right (tokens.ts: hashed secrets, constant-time compare, expiry), is the tokens file valid
 * (file:line on every problem), and can a spent token be spent twice (state.ts: the file is the truth,
 * exclusive() serialises, a corrupt file is an error and never "nothing spent").
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { identityMismatches, type Grant } from '../../dist/enroll/match.js';
import { appendToken, authenticate, createToken, parseTokens, type Token } from '../../dist/enroll/tokens.js';
import { checkStateFile, createSpentStore, readSpent } from '../../dist/enroll/state.js';
import { CertgateError } from '../../dist/errors.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'certgate-enroll-unit-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

type Req = Parameters<typeof identityMismatches>[1];
function req(o: { cn?: string[]; ou?: string[]; other?: Record<string, string[]>; uri?: string[]; dns?: string[]; sanOther?: string[] } = {}): Req {
  const attributes = new Map<string, string[]>(Object.entries(o.other ?? {}));
  attributes.set('CN', o.cn ?? ['svc-b']);
  if (o.ou) attributes.set('OU', o.ou);
  return { attributes, nonTextAttribute: false, multiValuedRdn: false, san: { uri: o.uri ?? [], dns: o.dns ?? [], other: o.sanOther ?? [] } };
}
const grant: Grant = { cn: 'svc-b', ou: 'payments', san_uri: ['spiffe://example.org/ns/*/sa/svc-b', 'spiffe://example.org/jobs/**'], san_dns: ['svc-b.internal', '*.svc.internal'] };

test('match: the allowed identity, or any subset of its SANs, has no mismatch', () => {
  assert.deepEqual(identityMismatches(grant, req()), []);
  assert.deepEqual(identityMismatches(grant, req({
    ou: ['payments'], uri: ['spiffe://example.org/ns/prod/sa/svc-b', 'spiffe://example.org/jobs', 'spiffe://example.org/jobs/a/b'],
    dns: ['SVC-B.internal', 'x.svc.internal'],
  })), []);
});

test('match: CN is exact — another, none, two, or another case are each named', () => {
  assert.match(identityMismatches(grant, req({ cn: ['svc-admin'] })).join(), /subject CN "svc-admin" is not allowed; this token allows CN "svc-b"/);
  assert.match(identityMismatches(grant, req({ cn: [] })).join(), /no CN/);
  assert.match(identityMismatches(grant, req({ cn: ['svc-b', 'svc-b'] })).join(), /2 CNs/);
  assert.equal(identityMismatches(grant, req({ cn: ['SVC-B'] })).length, 1);
});

test('match: OU only as granted; no other subject attribute; no multi-valued RDN or non-text value', () => {
  assert.match(identityMismatches(grant, req({ ou: ['ops'] })).join(), /OU "ops" is not allowed; this token allows OU "payments"/);
  assert.match(identityMismatches({ ...grant, ou: undefined } as Grant, req({ ou: ['payments'] })).join(), /this token allows no OU/);
  assert.match(identityMismatches(grant, req({ other: { O: ['certgate'], C: ['DE'] } })).join('\n'), /attribute O is not allowed[\s\S]*attribute C is not allowed/);
  assert.equal(identityMismatches(grant, { ...req(), multiValuedRdn: true }).length, 1);
  assert.equal(identityMismatches(grant, { ...req(), nonTextAttribute: true }).length, 1);
});

test('match: SANs use route allow semantics — * is one segment, DNS wildcard one label, nothing else granted', () => {
  const m = (r: Req): string => identityMismatches(grant, r).join('\n');
  assert.match(m(req({ uri: ['spiffe://example.org/ns/a/b/sa/svc-b'] })), /SAN URI "spiffe:\/\/example.org\/ns\/a\/b\/sa\/svc-b" is not allowed/);
  assert.match(m(req({ uri: ['spiffe://example.org/ns/prod/sa/svc-admin'] })), /svc-admin/);
  assert.match(m(req({ uri: ['spiffe://evil.org/jobs/x'] })), /evil.org/);
  assert.match(m(req({ dns: ['a.b.svc.internal'] })), /SAN DNS "a.b.svc.internal"/);
  assert.match(m(req({ dns: ['svc.internal'] })), /SAN DNS "svc.internal"/);
  assert.match(m(req({ sanOther: ['email:a@b.c', 'IP:10.0.0.1', 'otherName'] })), /email:a@b.c[\s\S]*IP:10.0.0.1[\s\S]*otherName/);
  const bare: Grant = { cn: 'svc-b', san_uri: [], san_dns: [] };
  assert.match(identityMismatches(bare, req({ uri: ['spiffe://example.org/jobs'] })).join(), /this token allows none/);
});

function tokenFrom(entry: ReturnType<typeof createToken>['entry']): Token {
  return parseTokens(`tokens:\n  - ${JSON.stringify(entry)}\n`, 't.yaml')[0]!;
}

test('tokens: the bearer is id.secret; only sha256(secret) is stored; authenticate accepts it once checked', () => {
  const { bearer, entry } = createToken({ cn: 'svc-b', days: 7, sanUri: ['spiffe://x/a'] });
  const [id, secret] = bearer.split('.') as [string, string];
  assert.equal(id, entry.id);
  assert.ok(secret.length >= 43, '256-bit secret');
  assert.equal(entry.secret, `sha256:${createHash('sha256').update(secret).digest('hex')}`);
  assert.ok(!JSON.stringify(entry).includes(secret), 'the entry never holds the secret');
  const token = tokenFrom(entry);
  const now = new Date();
  assert.equal(authenticate(`Bearer ${bearer}`, [token], now).ok, true);
  assert.equal(authenticate(`bearer  ${bearer}`, [token], now).ok, true, 'scheme is case-insensitive');
  assert.deepEqual(authenticate(undefined, [token], now), { ok: false, reason: 'token_missing' });
  assert.deepEqual(authenticate(`Basic ${bearer}`, [token], now), { ok: false, reason: 'token_invalid' });
  assert.deepEqual(authenticate(`Bearer ${id}.${'A'.repeat(43)}`, [token], now), { ok: false, reason: 'token_invalid', tokenId: id });
  assert.deepEqual(authenticate(`Bearer ffffffffffffffff.${secret}`, [token], now), { ok: false, reason: 'token_invalid', tokenId: 'ffffffffffffffff' });
  assert.deepEqual(authenticate(`Bearer ${bearer}`, [token], new Date(token.expires.getTime())), { ok: false, reason: 'token_expired', tokenId: id });
});

test('tokens file: every problem names file:line; duplicate ids are refused', () => {
  const { entry } = createToken({ cn: 'svc-b', days: 1 });
  const bad = (src: string, line: number, re: RegExp): void => {
    assert.throws(() => parseTokens(src, '/etc/t.yaml'), (err: unknown) => {
      assert.ok(err instanceof CertgateError);
      assert.equal(err.code, 'CG_ENROLL_TOKENS');
      assert.equal(err.file, '/etc/t.yaml');
      assert.equal(err.line, line, err.message);
      assert.match(err.message, re);
      return true;
    });
  };
  bad(`tokens:\n  - id: a\n    secret: hunter2\n    expires: ${entry.expires}\n    cn: x\n`, 3, /secret: must be sha256/);
  bad(`tokens:\n  - id: a\n    secret: ${entry.secret}\n    expires: soon\n    cn: x\n`, 4, /expires/);
  bad(`tokens:\n  - id: a\n    secret: ${entry.secret}\n    expires: ${entry.expires}\n    cn: x\n    role: admin\n`, 2, /role|unrecognized|Unrecognized/);
  bad(`tokens:\n  - {id: a, secret: "${entry.secret}", expires: "${entry.expires}", cn: x}\n  - {id: a, secret: "${entry.secret}", expires: "${entry.expires}", cn: y}\n`, 3, /used twice/);
  bad('tokens: [\n', 2, /YAML/);
  assert.deepEqual(parseTokens('', 'empty.yaml'), []);
  assert.deepEqual(parseTokens('tokens:\n', 'empty.yaml'), []);
});

test('appendToken keeps comments and earlier entries; the file is 0600', async () => {
  const file = path.join(dir, 'sub', 'tokens.yaml');
  const a = createToken({ cn: 'svc-a', days: 1 });
  const b = createToken({ cn: 'svc-b', days: 1, sanDns: ['b.internal'] });
  await appendToken(file, a.entry);
  fs.writeFileSync(file, `# hand-written note\n${fs.readFileSync(file, 'utf8')}`);
  await appendToken(file, b.entry);
  const text = fs.readFileSync(file, 'utf8');
  assert.match(text, /# hand-written note/);
  assert.deepEqual(parseTokens(text, file).map((t) => t.cn), ['svc-a', 'svc-b']);
  if (process.platform !== 'win32') assert.equal(fs.statSync(file).mode & 0o777, 0o600);
});

test('state: spent tokens survive a new store (a restart); exclusive() lets only one racer spend a token', async () => {
  const file = path.join(dir, 'state.json');
  const store = createSpentStore(file);
  const outcomes = await Promise.all(Array.from({ length: 8 }, (_, i) => store.exclusive(async () => {
    if ((await store.read()).has('t1')) return 'used';
    await new Promise((r) => setTimeout(r, 2)); // signing takes time; a racer must still wait
    await store.spend('t1', { at: new Date().toISOString(), serial: `S${i}`, subject: 'CN=svc-b' });
    return 'issued';
  })));
  assert.deepEqual(outcomes.filter((o) => o === 'issued').length, 1);
  const again = createSpentStore(file);
  assert.equal((await again.read()).has('t1'), true);
  assert.equal((await readSpent(file)).size, 1);
  if (process.platform !== 'win32') assert.equal(fs.statSync(file).mode & 0o777, 0o600);
  assert.deepEqual(fs.readdirSync(dir).filter((f) => f.includes('.tmp')), [], 'no temporary files left');
});

test('state: a corrupt or foreign file is CG_ENROLL_STATE, never "nothing spent"; a missing folder names config file:line', async () => {
  const file = path.join(dir, 'corrupt.json');
  fs.writeFileSync(file, '{"version":1,"spent":');
  await assert.rejects(readSpent(file), { code: 'CG_ENROLL_STATE' });
  fs.writeFileSync(file, '{"spent":[]}');
  await assert.rejects(readSpent(file), { code: 'CG_ENROLL_STATE' });
  assert.equal((await readSpent(path.join(dir, 'absent.json'))).size, 0);
  await assert.rejects(checkStateFile(path.join(dir, 'no-such-dir', 's.json'), '/etc/certgate.yaml', 17),
    { code: 'CG_ENROLL_STATE', file: '/etc/certgate.yaml', line: 17 });
});
