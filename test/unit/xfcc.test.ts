/**
 * The XFCC element keeps Envoy's shape (ANCHORS.md §4.2) but must not let a certificate's own
 * text forge structure: a URI SAN or a subject full of `,` `;` `=` `"` `\` has to parse back as
 * exactly the pairs we wrote, under both common ways of reading quoted values.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync, X509Certificate } from 'node:crypto';
import { validateHeaderValue } from 'node:http';
import { describe, test } from 'node:test';
import { identityFromCertificate } from '../../dist/identity/identity.js';
import type { ClientIdentity } from '../../dist/identity/types.js';
import { quoted, xfccElement } from '../../dist/identity/xfcc.js';
import { ava, craftCertificate, name, rdn, sanExtension } from '../helpers/openssl.js';

const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const INTERMEDIATE = craftCertificate(privateKey, { subject: name(rdn(ava('2.5.4.3', 0x0c, 'Intermediate'))) });
const LEAF = craftCertificate(privateKey, {
  subject: name(rdn(ava('2.5.4.10', 0x0c, 'Example, Inc.')), rdn(ava('2.5.4.3', 0x0c, 'svc-a'))),
  extensions: [sanExtension([[0x86, 'spiffe://example.org/ns/prod/sa/svc-a'], [0x86, 'spiffe://example.org/b'], [0x82, 'svc-a.internal'], [0x82, 'b.internal']])],
});
const BASE = identityFromCertificate(new X509Certificate(LEAF));

function withFields(fields: Partial<ClientIdentity>): ClientIdentity {
  return { ...BASE, ...fields };
}

type Style = 'rfc9110' | 'envoy-doc';

/**
 * Splits an element into [key, value] pairs. `rfc9110`: inside quotes a backslash escapes any
 * character. `envoy-doc`: only `\"` is an escape, a lone backslash is literal.
 */
function parse(element: string, style: Style): Array<[string, string]> {
  const pairs: Array<[string, string]> = [];
  let i = 0;
  while (i < element.length) {
    const eq = element.indexOf('=', i);
    assert.ok(eq > i, `pair without "=" at ${i} in ${element}`);
    const key = element.slice(i, eq);
    i = eq + 1;
    let value = '';
    if (element[i] === '"') {
      for (i++; ; i++) {
        assert.ok(i < element.length, 'unterminated quoted value');
        const ch = element[i];
        if (ch === '\\' && (style === 'rfc9110' || element[i + 1] === '"')) value += element[++i];
        else if (ch === '"') break;
        else value += ch;
      }
      i++;
      assert.ok(i === element.length || element[i] === ';', `junk after a quoted value at ${i} in ${element}`);
    } else {
      const end = element.indexOf(';', i);
      value = element.slice(i, end === -1 ? element.length : end);
      i = end === -1 ? element.length : end;
    }
    pairs.push([key, value]);
    i++; // the ';'
  }
  return pairs;
}

describe('xfccElement', () => {
  test("Envoy's order and form", () => {
    assert.equal(xfccElement(BASE, false),
      `Hash=${BASE.fingerprint};Subject="CN=svc-a,O=Example\\, Inc.";URI=spiffe://example.org/ns/prod/sa/svc-a;` +
      'URI=spiffe://example.org/b;DNS=svc-a.internal;DNS=b.internal');
  });

  test('Cert and Chain only with includeCert; Chain is leaf + intermediates, and only when known', () => {
    const withChain = withFields({ chain: [INTERMEDIATE] });
    const keys = (e: string): string[] => parse(e, 'rfc9110').map(([k]) => k);
    assert.deepEqual(keys(xfccElement(withChain, true)), ['Hash', 'Cert', 'Chain', 'Subject', 'URI', 'URI', 'DNS', 'DNS']);
    assert.deepEqual(keys(xfccElement(BASE, true)), ['Hash', 'Cert', 'Subject', 'URI', 'URI', 'DNS', 'DNS']);
    assert.deepEqual(keys(xfccElement(withChain, false)), ['Hash', 'Subject', 'URI', 'URI', 'DNS', 'DNS']);
    const pairs = new Map(parse(xfccElement(withChain, true), 'rfc9110'));
    assert.equal(decodeURIComponent(pairs.get('Cert') ?? ''), new X509Certificate(LEAF).toString());
    assert.equal(decodeURIComponent(pairs.get('Chain') ?? ''), new X509Certificate(LEAF).toString() + new X509Certificate(INTERMEDIATE).toString());
  });

  test('Subject is quoted even when empty; no URI or DNS pair without SANs', () => {
    assert.equal(xfccElement(withFields({ subject: '', san: { uri: [], dns: [], email: ['a@b'], ip: ['::1'] } }), false), `Hash=${BASE.fingerprint};Subject=""`);
  });

  test('URI and DNS: quoted when holding ";" or "="; ",", quote, backslash, non-ASCII percent-encoded', () => {
    const e = xfccElement(withFields({ subject: 'CN=x', san: { uri: ['https://x/a,b;c=d', 'urn:"q"\\', 'https://ü/'], dns: ['plain.example'], email: [], ip: [] } }), false);
    assert.equal(e, `Hash=${BASE.fingerprint};Subject="CN=x";URI="https://x/a%2Cb;c=d";URI=urn:%22q%22%5C;URI=https://%C3%BC/;DNS=plain.example`);
  });

  test('a subject with \\" or \\\\ escapes uses the equivalent RFC 4514 hex pairs', () => {
    const e = xfccElement(withFields({ subject: 'CN=a\\"b\\\\,O=c\\,d', san: { uri: [], dns: [], email: [], ip: [] } }), false);
    assert.equal(e, `Hash=${BASE.fingerprint};Subject="CN=a\\22b\\5C,O=c\\,d"`);
  });

  test('quoted() escapes quote and backslash (RFC 9110 quoted-string)', () => {
    assert.equal(quoted('a"b\\c'), '"a\\"b\\\\c"');
  });

  for (const style of ['rfc9110', 'envoy-doc'] as const) {
    test(`hostile SANs and subject cannot add pairs (${style} parsing)`, () => {
      const forged = 'x";URI=spiffe://evil/admin;Hash=00';
      const leaf = craftCertificate(privateKey, {
        subject: name(rdn(ava('2.5.4.3', 0x0c, `${forged}\\`))),
        extensions: [sanExtension([[0x86, `https://ok/${forged}`], [0x86, `urn:a\\";URI=evil`], [0x82, 'd";DNS=evil']])],
      });
      const identity = identityFromCertificate(new X509Certificate(leaf));
      const pairs = parse(xfccElement(identity, false), style);
      assert.deepEqual(pairs.map(([k]) => k), ['Hash', 'Subject', 'URI', 'URI', 'DNS']);
      assert.equal(pairs[0]?.[1], identity.fingerprint);
      // RFC 4514 hex pairs stand for \" and \\; read as `\` + any char, the other escapes fold.
      const subject = 'CN=x\\22\\;URI=spiffe://evil/admin\\;Hash=00\\5C';
      assert.equal(pairs[1]?.[1], style === 'envoy-doc' ? subject : subject.replaceAll('\\', ''));
      assert.deepEqual(pairs.slice(2).map(([, v]) => decodeURIComponent(v)), [`https://ok/${forged}`, 'urn:a\\";URI=evil', 'd";DNS=evil']);
    });
  }

  test('header-safe whatever the certificate holds', () => {
    const e = xfccElement(withFields({
      subject: 'CN=J\\C3\\BCrgen', chain: [INTERMEDIATE],
      san: { uri: ['https://x/\r\nX-Injected: 1', '\u0000\u007f'], dns: ['ü.example\n'], email: [], ip: [] },
    }), true);
    assert.doesNotThrow(() => validateHeaderValue('x-forwarded-client-cert', e));
    assert.match(e, /^[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?$/);
  });
});
