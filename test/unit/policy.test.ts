import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { AllowConfig } from '../../dist/config/types.js';
import type { ClientIdentity } from '../../dist/identity/types.js';
import { allowProblems, compileAllow, globMatch } from '../../dist/proxy/policy.js';

const FP_A = 'a'.repeat(64);
const FP_B = 'b'.repeat(64);

function identity(over: {
  cn?: string[];
  ou?: string[];
  fingerprint?: string;
  uri?: string[];
  dns?: string[];
} = {}): ClientIdentity {
  return {
    subject: 'CN=client',
    issuer: 'CN=ca',
    subjectCn: over.cn ?? ['client'],
    subjectOu: over.ou ?? [],
    fingerprint: over.fingerprint ?? FP_A,
    serial: '01',
    notBefore: new Date(0),
    notAfter: new Date(8.64e15),
    san: { uri: over.uri ?? [], dns: over.dns ?? [], email: [], ip: [] },
    der: Buffer.alloc(0),
    chain: [],
  };
}

function allowed(allow: AllowConfig | undefined, id: ClientIdentity | undefined): boolean {
  return compileAllow(allow)(id).allowed;
}

describe('compileAllow: no allow', () => {
  it('allows any verified client', () => {
    assert.deepEqual(compileAllow(undefined)(identity()), { allowed: true });
  });
  it('allows a client without a certificate (optional mode)', () => {
    assert.deepEqual(compileAllow(undefined)(undefined), { allowed: true });
  });
});

describe('compileAllow: allow present', () => {
  it('requires a certificate', () => {
    assert.deepEqual(compileAllow({ subject_cn: ['client'] })(undefined), {
      allowed: false,
      error: 'client_certificate_required',
      rule: 'subject_cn',
    });
  });

  it('fails closed: an allow with no lists allows nobody', () => {
    const d = compileAllow({})(identity());
    assert.deepEqual(d, { allowed: false, error: 'forbidden', rule: 'none' });
    assert.equal(compileAllow({})(undefined).allowed, false);
  });

  it('refuses with forbidden and names the rule kinds that refused', () => {
    const d = compileAllow({ subject_cn: ['other'], san_uri: ['spiffe://td/x'] })(identity());
    assert.deepEqual(d, { allowed: false, error: 'forbidden', rule: 'subject_cn,san_uri' });
  });

  it('subject_cn: exact and case-sensitive, any of several CNs', () => {
    assert.deepEqual(compileAllow({ subject_cn: ['x', 'client'] })(identity()), {
      allowed: true,
      matched: 'subject_cn:client',
    });
    assert.equal(allowed({ subject_cn: ['Client'] }, identity()), false);
    assert.equal(allowed({ subject_cn: ['clien'] }, identity()), false);
    assert.equal(allowed({ subject_cn: ['b'] }, identity({ cn: ['a', 'b'] })), true);
    assert.equal(allowed({ subject_cn: ['client'] }, identity({ cn: [] })), false);
  });

  it('subject_ou: exact and case-sensitive', () => {
    assert.deepEqual(compileAllow({ subject_ou: ['Payments'] })(identity({ ou: ['Payments'] })), {
      allowed: true,
      matched: 'subject_ou:Payments',
    });
    assert.equal(allowed({ subject_ou: ['payments'] }, identity({ ou: ['Payments'] })), false);
    assert.equal(allowed({ subject_ou: ['Payments'] }, identity()), false);
  });

  it('fingerprint_sha256: exact', () => {
    assert.deepEqual(compileAllow({ fingerprint_sha256: [FP_B, FP_A] })(identity()), {
      allowed: true,
      matched: `fingerprint_sha256:${FP_A}`,
    });
    assert.equal(allowed({ fingerprint_sha256: [FP_B] }, identity()), false);
  });

  it('san_dns: exact, case-insensitive', () => {
    assert.deepEqual(compileAllow({ san_dns: ['Svc.Example.com'] })(identity({ dns: ['svc.example.COM'] })), {
      allowed: true,
      matched: 'san_dns:Svc.Example.com',
    });
    assert.equal(allowed({ san_dns: ['svc.example.com'] }, identity({ dns: ['svc.example.org'] })), false);
  });

  it('san_dns: *.example.com matches exactly one leftmost label', () => {
    const allow = { san_dns: ['*.example.com'] };
    assert.deepEqual(compileAllow(allow)(identity({ dns: ['a.example.com'] })), {
      allowed: true,
      matched: 'san_dns:*.example.com',
    });
    assert.equal(allowed(allow, identity({ dns: ['A.EXAMPLE.com'] })), true);
    assert.equal(allowed(allow, identity({ dns: ['example.com'] })), false);
    assert.equal(allowed(allow, identity({ dns: ['.example.com'] })), false);
    assert.equal(allowed(allow, identity({ dns: ['a.b.example.com'] })), false);
    assert.equal(allowed(allow, identity({ dns: ['aexample.com'] })), false);
    assert.equal(allowed(allow, identity({ dns: ['a.example.com.evil'] })), false);
    assert.equal(allowed(allow, identity({ dns: ['*.example.com'] })), false); // a wildcard SAN is no host
    assert.equal(allowed(allow, identity({ dns: ['x.org', 'b.example.com'] })), true);
  });

  it('san_dns: a "*" elsewhere is literal', () => {
    assert.equal(allowed({ san_dns: ['a.*.com'] }, identity({ dns: ['a.b.com'] })), false);
    assert.equal(allowed({ san_dns: ['*a.example.com'] }, identity({ dns: ['xa.example.com'] })), false);
  });

  it('san_uri: exact, case-sensitive including scheme and authority', () => {
    const uri = 'spiffe://example.org/ns/prod/sa/svc';
    assert.deepEqual(compileAllow({ san_uri: [uri] })(identity({ uri: [uri] })), {
      allowed: true,
      matched: `san_uri:${uri}`,
    });
    assert.equal(allowed({ san_uri: [uri] }, identity({ uri: ['SPIFFE://example.org/ns/prod/sa/svc'] })), false);
    assert.equal(allowed({ san_uri: [uri] }, identity({ uri: ['spiffe://Example.org/ns/prod/sa/svc'] })), false);
    assert.equal(allowed({ san_uri: [uri] }, identity({ uri: [`${uri}/x`] })), false);
  });

  it('any kind may allow: kinds are ORed', () => {
    const allow = { subject_cn: ['nobody'], san_uri: ['spiffe://td/a'], san_dns: ['a.example.com'] };
    assert.equal(allowed(allow, identity({ uri: ['spiffe://td/a'] })), true);
    assert.equal(allowed(allow, identity({ dns: ['a.example.com'] })), true);
    assert.equal(allowed(allow, identity({ uri: ['spiffe://td/b'], dns: ['b.example.com'] })), false);
  });
});

describe('compileAllow: san_uri globs', () => {
  const pattern = 'spiffe://example.org/ns/*/sa/**';
  const allow = { san_uri: [pattern] };
  const cases: [uri: string, want: boolean][] = [
    ['spiffe://example.org/ns/prod/sa/svc-a', true],
    ['spiffe://example.org/ns/prod/sa', true], // ** matches zero segments
    ['spiffe://example.org/ns/prod/sa/a/b/c', true],
    ['spiffe://example.org/ns//sa/svc', false], // * never matches an empty segment
    ['spiffe://example.org/ns/a/b/sa/svc', false], // * never matches two segments
    ['spiffe://example.org/ns/sa/svc', false], // nor zero
    ['spiffe://example.org/ns/prod/sa/', false], // ** covers no empty segment
    ['spiffe://example.org/ns/prod/sa/a//b', false],
    ['spiffe://example.org/ns/../sa/x', false], // nor dot-segments
    ['spiffe://example.org/ns/prod/sa/..', false],
    ['spiffe://other.org/ns/prod/sa/svc', false], // authority literal
    ['spiffe://example.org.evil/ns/prod/sa/svc', false],
    ['SPIFFE://example.org/ns/prod/sa/svc', false],
    ['spiffe://example.org/NS/prod/sa/svc', false],
    ['spiffe://example.org/ns/prod/sax', false],
  ];
  for (const [uri, want] of cases) {
    it(`${uri} ${want ? 'matches' : 'does not match'}`, () => {
      const d = compileAllow(allow)(identity({ uri: [uri] }));
      assert.deepEqual(d, want ? { allowed: true, matched: `san_uri:${pattern}` } : { allowed: false, error: 'forbidden', rule: 'san_uri' });
    });
  }

  it('** in the middle and several ** in one pattern', () => {
    assert.equal(allowed({ san_uri: ['spiffe://td/**/sa/x'] }, identity({ uri: ['spiffe://td/sa/x'] })), true);
    assert.equal(allowed({ san_uri: ['spiffe://td/**/sa/x'] }, identity({ uri: ['spiffe://td/a/b/sa/x'] })), true);
    assert.equal(allowed({ san_uri: ['spiffe://td/**/sa/x'] }, identity({ uri: ['spiffe://td/a/b/sa/y'] })), false);
    assert.equal(allowed({ san_uri: ['spiffe://td/**/a/**/b/**'] }, identity({ uri: ['spiffe://td/x/a/y/z/b'] })), true);
    assert.equal(allowed({ san_uri: ['spiffe://td/**/a/**/b/**'] }, identity({ uri: ['spiffe://td/x/b/y/a'] })), false);
  });

  it('spiffe://td/** matches every ID in the trust domain, and only there', () => {
    const a = { san_uri: ['spiffe://td/**'] };
    assert.equal(allowed(a, identity({ uri: ['spiffe://td/a/b'] })), true);
    assert.equal(allowed(a, identity({ uri: ['spiffe://td'] })), true);
    assert.equal(allowed(a, identity({ uri: ['spiffe://tdx/a'] })), false);
  });

  it('"*" inside a segment or the authority is literal', () => {
    assert.equal(allowed({ san_uri: ['spiffe://td/svc-*'] }, identity({ uri: ['spiffe://td/svc-a'] })), false);
    assert.equal(allowed({ san_uri: ['spiffe://*/a'] }, identity({ uri: ['spiffe://td/a'] })), false);
    assert.equal(allowed({ san_uri: ['spiffe://*/a'] }, identity({ uri: ['spiffe://*/a'] })), true);
  });

  it('any of several URI SANs may match', () => {
    assert.equal(allowed(allow, identity({ uri: ['https://x/y', 'spiffe://example.org/ns/p/sa/s'] })), true);
  });

  it('globMatch stays fast with many ** (no backtracking blow-up)', () => {
    const pat = Array.from({ length: 30 }, () => '**').concat(['z']);
    const val = Array.from({ length: 200 }, () => 'a');
    const t = process.hrtime.bigint();
    assert.equal(globMatch(pat, val), false);
    assert.ok(process.hrtime.bigint() - t < 1_000_000_000n);
  });
});

describe('allowProblems', () => {
  it('names wildcards that are compared literally', () => {
    const p = allowProblems({ san_dns: ['*.example.com', 'a.*.com'], san_uri: ['spiffe://td/*', 'spiffe://td/svc-*'] });
    assert.equal(p.length, 2);
    assert.match(p[0] ?? '', /a\.\*\.com/);
    assert.match(p[1] ?? '', /svc-\*/);
    assert.deepEqual(allowProblems(undefined), []);
  });
});
