/**
 * Property/fuzz tests (fast-check) of the pure parsers that stand between a hostile input and a
 * security decision: config validation, PEM splitting, DN printing, XFCC quoting, identity header
 * values, request-path normalisation and route matching.
 *
 * Properties: nothing throws but our typed errors (CertgateError; DerError for DER); a printed DN is
 * printable ASCII and an independent RFC 4514 parser (below) reads back exactly the RDNs and values
 * that were encoded; XFCC values round-trip under both common quoted-string readings and can never add
 * a pair; header values are header-safe (printable ASCII, no leading/trailing whitespace an HTTP parser
 * would strip); a normalised path never holds a dot-segment, never leaves the root, and always selects
 * the route an independent resolver (merge slashes, resolve dots, drop `;params`) says it should.
 *
 * Every run is bounded (NUM_RUNS) and seeded (SEED), so a failure replays exactly. Failures found
 * while writing this file are pinned below as regression cases (named "regression:"), with the seed
 * and counterexample fast-check printed.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync, X509Certificate } from 'node:crypto';
import { validateHeaderValue } from 'node:http';
import fc from 'fast-check';
import { stringify } from 'yaml';
import { parseConfig } from '../../dist/config/load.js';
import { CertgateError } from '../../dist/errors.js';
import { parsePem, toPem } from '../../dist/x509/pem.js';
import { DerError } from '../../dist/x509/der.js';
import { ATTRIBUTE_NAMES, printDn } from '../../dist/x509/dn.js';
import { identityFromCertificate } from '../../dist/identity/identity.js';
import { identityHeaders } from '../../dist/identity/headers.js';
import type { ClientIdentity } from '../../dist/identity/types.js';
import { xfccElement } from '../../dist/identity/xfcc.js';
import { normalizeRequestPath } from '../../dist/http/path.js';
import { pathPrefixProblem } from '../../dist/http/route-values.js';
import { createRouter, hostFromHeader } from '../../dist/proxy/routes.js';
import type { RouteConfig } from '../../dist/config/types.js';
import { ava, craftCertificate, name, rdn, tlv } from '../helpers/openssl.js';

/** Fixed for CI; FUZZ_SEED / FUZZ_RUNS explore further by hand (pin whatever they find below). */
const SEED = Number(process.env.FUZZ_SEED ?? 20261124);
const NUM_RUNS = Number(process.env.FUZZ_RUNS ?? 300);
const PARAMS = { seed: SEED, numRuns: NUM_RUNS } as const;
/** Path checks are microseconds each and most random targets are refused: more runs, still bounded. */
const PATH_PARAMS = { seed: SEED, numRuns: NUM_RUNS * 10 } as const;

/**
 * fc.assert with a failure message that starts with "PRODUCT BUG" when the property itself said so
 * (a violated product contract), so the report names the bug, the seed and the counterexample.
 */
function check<T>(property: fc.IAsyncProperty<T> | fc.IProperty<T>, params: fc.Parameters<T> = PARAMS): void | Promise<void> {
  const fail = (err: unknown): never => {
    const message = err instanceof Error ? err.message : String(err);
    const cause = err instanceof Error && err.cause instanceof Error ? err.cause.message : '';
    const bug = /PRODUCT BUG: ([^\n]*)/.exec(cause);
    throw new Error(`${bug !== null ? `PRODUCT BUG: ${bug[1]}\n` : ''}${message}\nGot: ${cause}`);
  };
  try {
    const out = fc.assert(property as fc.IProperty<T>, params) as unknown;
    if (out instanceof Promise) return out.catch(fail);
  } catch (err) {
    fail(err);
  }
}

function bug(what: string): never {
  throw new Error(`PRODUCT BUG: ${what}`);
}

/** Strings that favour the characters parsers care about, plus any Unicode code point. */
function hostileString(specials: readonly string[], maxLength = 24): fc.Arbitrary<string> {
  return fc.string({ unit: fc.oneof(fc.constantFrom(...specials), fc.string({ unit: 'binary', minLength: 1, maxLength: 1 })), maxLength });
}

// ---------------------------------------------------------------------------------------------
// Config validation
// ---------------------------------------------------------------------------------------------

const CONFIG_FILE = '/tmp/certgate-fuzz/certgate.yaml';
const VALID = {
  listen: '127.0.0.1:8443',
  tls: { bundle: 'server.pem', client_ca: 'ca.pem', client_auth: 'require' },
  routes: [{ name: 'api', path_prefix: '/api', upstream: 'http://127.0.0.1:3000', allow: { subject_cn: ['svc-a'] } }],
  limits: { max_connections: 100 },
} as const;

function onlyCertgateErrors(source: string): void {
  try {
    parseConfig(source, CONFIG_FILE);
  } catch (err) {
    if (err instanceof CertgateError) return;
    bug(`parseConfig threw ${(err as Error)?.constructor?.name}: ${(err as Error)?.message} (only CertgateError may escape; input ${JSON.stringify(source.slice(0, 200))})`);
  }
}

/** Replaces (or deletes) the value at one path of `base` with `value`. */
function mutate(base: unknown, path: readonly (string | number)[], value: unknown): unknown {
  if (path.length === 0) return value;
  const [head, ...rest] = path as [string | number, ...(string | number)[]];
  const copy = (Array.isArray(base) ? [...base] : typeof base === 'object' && base !== null ? { ...base } : {}) as Record<string | number, unknown>;
  if (value === undefined && rest.length === 0) delete copy[head];
  else copy[head] = mutate(copy[head], rest, value);
  return copy;
}

const CONFIG_PATHS: ReadonlyArray<readonly (string | number)[]> = [
  [], ['listen'], ['tls'], ['tls', 'bundle'], ['tls', 'client_ca'], ['tls', 'client_auth'], ['tls', 'min_version'],
  ['routes'], ['routes', 0], ['routes', 0, 'upstream'], ['routes', 0, 'path_prefix'], ['routes', 0, 'name'], ['routes', 0, 'host'],
  ['routes', 0, 'allow'], ['routes', 0, 'allow', 'san_uri'], ['routes', 0, 'max_body_bytes'], ['routes', 1],
  ['limits'], ['limits', 'max_connections'], ['limits', 'header_timeout_ms'], ['limits', 'max_header_bytes'],
  ['shutdown', 'drain_timeout_ms'], ['admin', 'listen'], ['headers', 'xfcc'], ['log', 'level'], ['bogus_key'],
];

const YAML_SPECIALS = [':', ': ', '-', '- ', ' ', '\n', '  ', '{', '}', '[', ']', ',', '&a', '*a', '&b ', '*b', '!', '!!str ', '!!binary ',
  '|', '>', '#', "'", '"', '<<: ', '? ', '---', '...', '%YAML 1.2', 'tls', 'routes', 'upstream', 'listen', '0', '1e400', '~', '\t', '\\', '@', '`'];

describe('config validation (parseConfig): only CertgateError escapes', () => {
  test('arbitrary YAML-ish text', () => {
    check(fc.property(fc.string({ unit: fc.constantFrom(...YAML_SPECIALS), maxLength: 40 }), (source) => onlyCertgateErrors(source)));
  });

  test('arbitrary text (any code point)', () => {
    check(fc.property(fc.string({ unit: 'binary', maxLength: 200 }), (source) => onlyCertgateErrors(source)));
  });

  test('a valid config with one value replaced by anything (or removed)', () => {
    const value = fc.oneof(fc.constant(undefined), fc.anything({ maxDepth: 2 }), fc.string(), fc.integer(), fc.double(), fc.boolean(),
      fc.constantFrom('', '/', 'http://x', 'ftp://x', '127.0.0.1:99999', '[::1]:1', '-1', 'require', 'TLSv1.1'));
    check(fc.property(fc.constantFrom(...CONFIG_PATHS), value, (path, v) => {
      onlyCertgateErrors(stringify(mutate(VALID, path, v)) ?? '');
    }));
  });

  test('regression: an unresolved YAML alias is a CG_CONFIG_YAML error, not a ReferenceError', () => {
    onlyCertgateErrors('*a');
    onlyCertgateErrors('tls: *nowhere\n');
  });

  test('regression: a YAML alias bomb ("billion laughs") is a CG_CONFIG_YAML error, not a ReferenceError', () => {
    const levels = ['a: &a ["x","x","x","x","x","x","x","x","x"]'];
    for (const [i, l] of ['b', 'c', 'd', 'e', 'f', 'g'].entries()) {
      const prev = 'abcdefg'[i]!;
      levels.push(`${l}: &${l} [${Array(9).fill(`*${prev}`).join(',')}]`);
    }
    onlyCertgateErrors(`${levels.join('\n')}\ntls: {bundle: s.pem, client_ca: ca.pem}\nroutes: [{upstream: "http://127.0.0.1:1"}]\n`);
  });
});

// ---------------------------------------------------------------------------------------------
// PEM splitting
// ---------------------------------------------------------------------------------------------

const LABELS = ['CERTIFICATE', 'X509 CRL', 'PRIVATE KEY', 'EC PRIVATE KEY', 'ENCRYPTED PRIVATE KEY', 'RSA PRIVATE KEY', 'TRUSTED CERTIFICATE', 'FOO BAR'];

describe('PEM splitting (parsePem)', () => {
  test('never throws on arbitrary text or bytes', () => {
    const text = hostileString(['-----BEGIN ', '-----END ', '-----', 'CERTIFICATE', '\n', '\r\n', '\r', '=', '+', '/', 'A', 'Proc-Type: 4,ENCRYPTED', ': ', ' ', '\uFEFF'], 80);
    check(fc.property(fc.oneof(text, fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b))), (input) => {
      const blocks = parsePem(input);
      for (const b of blocks) {
        if (b.error === undefined) assert.ok(b.der.length > 0);
        else assert.equal(b.der.length, 0);
      }
    }));
  });

  test('well-formed blocks among junk, CRLF and indentation come back in order with their exact bytes', () => {
    const block = fc.record({ label: fc.constantFrom(...LABELS), der: fc.uint8Array({ minLength: 1, maxLength: 200 }) });
    const junk = fc.string({ unit: fc.constantFrom('subject=CN = x', 'Bag Attributes', ' ', 'a', '-', '\t', 'issuer=', ':'), maxLength: 6 });
    check(fc.property(fc.array(fc.tuple(junk, block), { minLength: 1, maxLength: 5 }), fc.constantFrom('\n', '\r\n'), fc.boolean(), (parts, eol, indent) => {
      const text = parts.map(([j, b]) => {
        const pem = toPem(b.label, b.der).split('\n').filter((l) => l !== '').map((l) => (indent ? `  ${l}  ` : l)).join(eol);
        return `${j}${eol}${pem}${eol}`;
      }).join('');
      const blocks = parsePem(text);
      assert.deepEqual(blocks.map((b) => [b.error, Buffer.from(b.der).toString('hex')]), parts.map(([, b]) => [undefined, Buffer.from(b.der).toString('hex')]));
      assert.deepEqual(blocks.map((b) => b.index), parts.map((_, i) => i + 1));
    }));
  });
});

// ---------------------------------------------------------------------------------------------
// RFC 4514: an independent parser, and DN printing
// ---------------------------------------------------------------------------------------------

type DnValue = { readonly kind: 'string' | 'hex'; readonly hex: string };
type ParsedDn = Array<Array<{ readonly type: string; readonly value: DnValue }>>;

const HEX2 = /^[0-9A-Fa-f]{2}$/;
/** RFC 4514 §2.4: characters that must be escaped (leading space/# and trailing space aside). */
const MUST_ESCAPE = new Set(['"', '+', ',', ';', '<', '>', '\\']);

/**
 * A strict RFC 4514 reader: every value comes back as its bytes (hex), hexstrings as the BER they
 * encode. One documented deviation: OpenSSL (and so certgate, byte-identical on purpose) prints the
 * one-character value "#" unescaped; a lone "#" followed by a separator or the end is read as that
 * character. Throws on anything else that is not RFC 4514.
 */
function parseDn(text: string): ParsedDn {
  if (text === '') return [];
  const out: ParsedDn = [[]];
  let i = 0;
  for (;;) {
    const eq = text.indexOf('=', i);
    if (eq === -1) throw new Error(`no "=" after offset ${i} in ${text}`);
    const type = text.slice(i, eq);
    if (!/^([A-Za-z][A-Za-z0-9-]*|[0-9]+(\.[0-9]+)*\.?)$/.test(type)) throw new Error(`bad attribute type ${JSON.stringify(type)} in ${text}`);
    i = eq + 1;
    let value: DnValue;
    if (text[i] === '#' && HEX2.test(text.slice(i + 1, i + 3))) {
      let j = i + 1;
      while (HEX2.test(text.slice(j, j + 2))) j += 2;
      value = { kind: 'hex', hex: text.slice(i + 1, j).toLowerCase() };
      i = j;
    } else {
      const bytes: number[] = [];
      const start = i;
      let lastRawSpace = false;
      while (i < text.length && text[i] !== ',' && text[i] !== '+') {
        const ch = text[i]!;
        if (ch === '\\') {
          const pair = text.slice(i + 1, i + 3);
          if (HEX2.test(pair)) {
            bytes.push(parseInt(pair, 16));
            i += 3;
          } else if (i + 1 < text.length && (MUST_ESCAPE.has(text[i + 1]!) || text[i + 1] === ' ' || text[i + 1] === '#' || text[i + 1] === '=')) {
            bytes.push(text.charCodeAt(i + 1));
            i += 2;
          } else {
            throw new Error(`bad escape at ${i} in ${text}`);
          }
          lastRawSpace = false;
          continue;
        }
        const code = ch.charCodeAt(0);
        if (code < 0x20 || code > 0x7e) throw new Error(`non-printable ${JSON.stringify(ch)} at ${i} in ${text}`);
        if (MUST_ESCAPE.has(ch)) throw new Error(`unescaped ${JSON.stringify(ch)} at ${i} in ${text}`);
        if (i === start && ch === ' ') throw new Error(`unescaped leading space at ${i} in ${text}`);
        const loneHash = ch === '#' && i === start && (i + 1 === text.length || text[i + 1] === ',' || text[i + 1] === '+');
        if (i === start && ch === '#' && !loneHash) throw new Error(`unescaped leading # at ${i} in ${text}`);
        bytes.push(code);
        lastRawSpace = ch === ' ';
        i++;
      }
      if (lastRawSpace) throw new Error(`unescaped trailing space before ${i} in ${text}`);
      value = { kind: 'string', hex: Buffer.from(bytes).toString('hex') };
    }
    out[out.length - 1]!.push({ type, value });
    if (i === text.length) return out;
    if (text[i] === ',') out.push([]);
    else if (text[i] !== '+') throw new Error(`expected "," or "+" at ${i} in ${text}`);
    i++;
  }
}

/** How printDn reads each universal string type (as OpenSSL does); other tags are dumped as #hex. */
const STRING_TAGS: Readonly<Record<number, 'utf8' | 'latin1' | 'ucs2' | 'ucs4'>> = {
  0x0c: 'utf8', 0x12: 'latin1', 0x13: 'latin1', 0x14: 'latin1', 0x16: 'latin1', 0x17: 'latin1', 0x18: 'latin1', 0x1a: 'latin1', 0x1c: 'ucs4', 0x1e: 'ucs2',
};

interface GenAva {
  readonly oid: string;
  readonly tag: number;
  readonly content: Buffer;
}

function codePointUtf8(c: number): Buffer {
  return (c >= 0xd800 && c <= 0xdfff) || c > 0x10ffff ? Buffer.alloc(0) : Buffer.from(String.fromCodePoint(c), 'utf8');
}

/** The value an RFC 4514 reader must get back from printDn for one AVA. */
function expectedValue(a: GenAva): DnValue {
  const decoding = STRING_TAGS[a.tag];
  if (!ATTRIBUTE_NAMES.has(a.oid) || decoding === undefined) return { kind: 'hex', hex: tlv(a.tag, a.content).toString('hex') };
  let bytes: Buffer;
  if (decoding === 'utf8') bytes = a.content;
  else if (decoding === 'latin1') bytes = Buffer.from(a.content.toString('latin1'), 'utf8');
  else {
    const width = decoding === 'ucs2' ? 2 : 4;
    const parts: Buffer[] = [];
    for (let i = 0; i < a.content.length; i += width) parts.push(codePointUtf8(a.content.readUIntBE(i, width)));
    bytes = Buffer.concat(parts);
  }
  return { kind: 'string', hex: bytes.toString('hex') };
}

/** OpenSSL's order: the flat AVA list reversed (so RDNs last-first, and the AVAs inside each reversed too). */
function expectedDn(rdns: readonly (readonly GenAva[])[]): ParsedDn {
  return [...rdns].reverse().map((r) => [...r].reverse().map((a) => ({
    type: ATTRIBUTE_NAMES.get(a.oid) ?? a.oid.slice(0, 79),
    value: expectedValue(a),
  })));
}

function dnDer(rdns: readonly (readonly GenAva[])[]): Buffer {
  return name(...rdns.map((r) => rdn(...r.map((a) => ava(a.oid, a.tag, a.content)))));
}

const DN_SPECIALS = [',', '+', '"', '\\', '<', '>', ';', '#', ' ', '=', '\n', '\r', '\0', '\x7f', 'é', '日', '🙂', '\\20', '#00'];
const KNOWN_OIDS = ['2.5.4.3', '2.5.4.10', '2.5.4.11', '2.5.4.6', '2.5.4.7', '0.9.2342.19200300.100.1.25', '0.9.2342.19200300.100.1.1', '1.2.840.113549.1.9.1', '2.5.4.5'];
const oidArb = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom(...KNOWN_OIDS) },
  { weight: 1, arbitrary: fc.array(fc.integer({ min: 0, max: 2 ** 31 - 1 }), { minLength: 1, maxLength: 14 }).map((arcs) => `1.3.6.1.4.1.${arcs.join('.')}`) },
);
const utf8Text = hostileString(DN_SPECIALS, 12).map((s) => Buffer.from(s, 'utf8'));
const asciiText = fc.string({ unit: fc.constantFrom(...DN_SPECIALS.filter((s) => /^[\x00-\x7f]+$/.test(s)), 'a', 'Z', '0', '-', '.'), maxLength: 12 }).map((s) => Buffer.from(s, 'latin1'));
const valueArb: fc.Arbitrary<{ tag: number; content: Buffer }> = fc.oneof(
  { weight: 5, arbitrary: utf8Text.map((content) => ({ tag: 0x0c, content })) },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 8 }).map((b) => ({ tag: 0x0c, content: Buffer.from(b) })) }, // not UTF-8 at all
  { weight: 2, arbitrary: fc.tuple(fc.constantFrom(0x13, 0x16, 0x1a), asciiText).map(([tag, content]) => ({ tag, content })) },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 8 }).map((b) => ({ tag: 0x14, content: Buffer.from(b) })) },
  { weight: 1, arbitrary: fc.array(fc.integer({ min: 0, max: 0xffff }), { maxLength: 6 }).map((units) => ({ tag: 0x1e, content: Buffer.concat(units.map((u) => Buffer.from([u >> 8, u & 0xff]))) })) },
  { weight: 1, arbitrary: fc.array(fc.integer({ min: 0, max: 0x11ffff }), { maxLength: 4 }).map((cps) => ({ tag: 0x1c, content: Buffer.concat(cps.map((c) => { const b = Buffer.alloc(4); b.writeUInt32BE(c); return b; })) })) },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 6 }).map((b) => ({ tag: 0x04, content: Buffer.from(b) })) }, // not a string type: dumped
);
const avaArb: fc.Arbitrary<GenAva> = fc.tuple(oidArb, valueArb).map(([oid, v]) => ({ oid, ...v }));
const rdnsArb = fc.array(fc.array(avaArb, { minLength: 1, maxLength: 3 }), { minLength: 0, maxLength: 5 });

describe('DN printing (printDn) against an independent RFC 4514 reader', () => {
  test('output is printable ASCII and reads back as exactly the encoded RDNs, types and values', () => {
    check(fc.property(rdnsArb, (rdns) => {
      const dn = printDn(dnDer(rdns));
      if (!/^[\x20-\x7e]*$/.test(dn)) bug(`printDn output is not printable ASCII: ${JSON.stringify(dn)}`);
      let parsed: ParsedDn;
      try {
        parsed = parseDn(dn);
      } catch (err) {
        bug(`printDn output is not RFC 4514: ${(err as Error).message}`);
      }
      assert.deepEqual(parsed, expectedDn(rdns));
    }));
  });

  test('arbitrary bytes: printDn returns or throws DerError, nothing else', () => {
    const nameLike = fc.oneof(
      fc.uint8Array({ maxLength: 64 }).map((b) => Buffer.from(b)),
      rdnsArb.chain((rdns) => fc.nat({ max: 40 }).map((cut) => { const der = dnDer(rdns); return der.subarray(0, Math.min(cut, der.length)); })),
    );
    check(fc.property(nameLike, (der) => {
      try {
        const dn = printDn(der);
        assert.match(dn, /^[\x20-\x7e]*$/);
      } catch (err) {
        if (!(err instanceof DerError)) bug(`printDn threw ${(err as Error).name}: ${(err as Error).message}`);
      }
    }));
  });

  test('the reader itself: known OpenSSL outputs (sanity check of the oracle)', () => {
    assert.deepEqual(parseDn('CN=a\\,O=admin\\+x \\"q\\" \\<b\\>\\;,OU=J\\C3\\BCrgen'), [
      [{ type: 'CN', value: { kind: 'string', hex: Buffer.from('a,O=admin+x "q" <b>;').toString('hex') } }],
      [{ type: 'OU', value: { kind: 'string', hex: Buffer.from('Jürgen').toString('hex') } }],
    ]);
    assert.deepEqual(parseDn('UID=42+CN=svc-a,1.2.3=#0C0161'), [
      [{ type: 'UID', value: { kind: 'string', hex: '3432' } }, { type: 'CN', value: { kind: 'string', hex: Buffer.from('svc-a').toString('hex') } }],
      [{ type: '1.2.3', value: { kind: 'hex', hex: '0c0161' } }],
    ]);
    assert.throws(() => parseDn('CN=a,b'), /no "="/);
    assert.throws(() => parseDn('CN= x'), /leading space/);
    assert.throws(() => parseDn('CN=x '), /trailing space/);
  });
});

// ---------------------------------------------------------------------------------------------
// XFCC quoting and identity header values
// ---------------------------------------------------------------------------------------------

const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const BASE: ClientIdentity = identityFromCertificate(new X509Certificate(
  craftCertificate(privateKey, { subject: name(rdn(ava('2.5.4.3', 0x0c, 'base'))) }),
));

type Style = 'rfc9110' | 'envoy-doc';

/** XFCC element → [key, value] pairs; `rfc9110`: `\` escapes any char in quotes; `envoy-doc`: only `\"`. */
function parseXfcc(element: string, style: Style): Array<[string, string]> {
  const pairs: Array<[string, string]> = [];
  let i = 0;
  while (i < element.length) {
    const eq = element.indexOf('=', i);
    if (eq <= i) throw new Error(`pair without key at ${i}`);
    const key = element.slice(i, eq);
    if (!/^[A-Za-z]+$/.test(key)) throw new Error(`bad key ${JSON.stringify(key)}`);
    i = eq + 1;
    let value = '';
    if (element[i] === '"') {
      for (i++; ; i++) {
        if (i >= element.length) throw new Error('unterminated quoted value');
        const ch = element[i];
        if (ch === '\\' && (style === 'rfc9110' || element[i + 1] === '"')) value += element[++i];
        else if (ch === '"') break;
        else value += ch;
      }
      i++;
      if (i < element.length && element[i] !== ';') throw new Error(`junk after a quoted value at ${i}`);
    } else {
      const end = element.indexOf(';', i);
      value = element.slice(i, end === -1 ? element.length : end);
      if (value.includes('"') || value.includes(',')) throw new Error(`unquoted value with a quote or comma: ${value}`);
      i = end === -1 ? element.length : end;
    }
    pairs.push([key, value]);
    i++;
  }
  return pairs;
}

/** A value an HTTP parser hands over unchanged: visible ASCII and inner spaces only (RFC 9110 §5.5 strips OWS at the ends). */
function assertHeaderSafe(header: string, value: string): void {
  try {
    validateHeaderValue(header, value);
  } catch (err) {
    bug(`${header} value is not a valid header value: ${(err as Error).message} ${JSON.stringify(value)}`);
  }
  if (!/^[\x20-\x7e]*$/.test(value)) bug(`${header} value is not printable ASCII: ${JSON.stringify(value)}`);
  assertNoEdgeWhitespace(header, value);
}

const SAN_SPECIALS = [',', ';', '=', '"', '\\', '%', ' ', '%2C', '\r\n', '\0', 'é', '🙂', 'spiffe://example.org/', 'admin', '"; URI=spiffe://evil', ',Hash=00'];
const sanText = hostileString(SAN_SPECIALS, 16).filter((s) => s.length > 0);
/** SAN values without spaces at their ends: those are a separate property (and a separate bug) below. */
const trimmedSanArb = fc.array(sanText.filter((s) => s === s.trim()), { maxLength: 3 });
const anySanArb = fc.array(fc.oneof(sanText, sanText.map((s) => ` ${s}`), sanText.map((s) => `${s} `)), { maxLength: 3 });
function identityArbWith(sanArb: fc.Arbitrary<string[]>): fc.Arbitrary<ClientIdentity> {
  return fc.record({ subject: rdnsArb, issuer: rdnsArb, uri: sanArb, dns: sanArb, email: sanArb }).map((g) => ({
    ...BASE,
    subject: printDn(dnDer(g.subject)),
    issuer: printDn(dnDer(g.issuer)),
    san: { uri: g.uri, dns: g.dns, email: g.email, ip: [] },
  }));
}
const identityArb = identityArbWith(trimmedSanArb);

/** What HTTP does to a field value: OWS at both ends is not part of it (RFC 9110 §5.5). */
function assertNoEdgeWhitespace(header: string, value: string): void {
  if (value !== value.replace(/^[ \t]+|[ \t]+$/g, '')) {
    bug(`${header} value starts or ends with whitespace, which HTTP parsers strip (the upstream would read a different value): ${JSON.stringify(value)}`);
  }
}

describe('XFCC element (xfccElement)', () => {
  test('values round-trip under both quoting readings; nothing can add, drop or reorder a pair', () => {
    check(fc.property(identityArb, fc.boolean(), (identity, includeCert) => {
      const element = xfccElement(identity, includeCert);
      assertHeaderSafe('x-forwarded-client-cert', element);
      const keys = ['Hash', ...(includeCert ? ['Cert'] : []), 'Subject', ...identity.san.uri.map(() => 'URI'), ...identity.san.dns.map(() => 'DNS')];
      for (const style of ['rfc9110', 'envoy-doc'] as const) {
        let pairs: Array<[string, string]>;
        try {
          pairs = parseXfcc(element, style);
        } catch (err) {
          bug(`XFCC element does not parse (${style}): ${(err as Error).message}: ${element}`);
        }
        assert.deepEqual(pairs.map(([k]) => k), keys, `pairs (${style}) of ${element}`);
        const values = (k: string): string[] => pairs.filter(([key]) => key === k).map(([, v]) => v);
        assert.equal(values('Hash')[0], identity.fingerprint);
        assert.deepEqual(values('URI').map(decodeURIComponent), identity.san.uri);
        assert.deepEqual(values('DNS').map(decodeURIComponent), identity.san.dns);
        // Envoy's Subject is the RFC 4514 text inside quotes, unescaped: only the Envoy reading (`\"` is the
        // one escape) keeps its backslashes. An RFC 9110 unquoting turns `CN=a\,O=x` into `CN=a,O=x` (see SECURITY.md).
        if (style === 'envoy-doc') assert.deepEqual(parseDn(values('Subject')[0]!), parseDn(identity.subject), 'Subject means the same DN');
        if (includeCert) assert.match(decodeURIComponent(values('Cert')[0]!), /^-----BEGIN CERTIFICATE-----\n/);
      }
    }));
  });
});

describe('identity header values (identityHeaders)', () => {
  test('every value is header-safe; SAN lists split back into the exact values; DNs read back the same', () => {
    check(fc.property(identityArb, fc.boolean(), fc.boolean(), (identity, xfcc, forwardCert) => {
      const headers = identityHeaders(identity, { xfcc, forward_cert: forwardCert, rfc9440: false });
      for (const [header, value] of Object.entries(headers)) assertHeaderSafe(header, value);
      for (const [header, list] of [['x-client-cert-san-uri', identity.san.uri], ['x-client-cert-san-dns', identity.san.dns], ['x-client-cert-san-email', identity.san.email]] as const) {
        const value = headers[header];
        assert.deepEqual(value === undefined ? [] : value.split(',').map(decodeURIComponent), list, header);
      }
      for (const [header, dn] of [['x-client-cert-subject', identity.subject], ['x-client-cert-issuer', identity.issuer]] as const) {
        const value = headers[header];
        assert.deepEqual(value === undefined ? [] : parseDn(value), parseDn(dn), header);
      }
    }));
  });

  test('SAN values with spaces at their ends still reach the upstream unchanged (HTTP strips edge whitespace)', () => {
    check(fc.property(identityArbWith(anySanArb), fc.boolean(), (identity, xfcc) => {
      const headers = identityHeaders(identity, { xfcc, forward_cert: false, rfc9440: false });
      for (const [header, value] of Object.entries(headers)) assertNoEdgeWhitespace(header, value);
    }));
  });

  test('regression: a SAN URI ending in a space (seed 20261124, counterexample uri [" "]) must not reach the upstream as a different URI', () => {
    const identity: ClientIdentity = { ...BASE, san: { uri: ['spiffe://example.org/admin '], dns: [' svc.internal'], email: [], ip: [] } };
    const headers = identityHeaders(identity, { xfcc: true, forward_cert: false, rfc9440: false });
    for (const header of ['x-client-cert-san-uri', 'x-client-cert-san-dns', 'x-forwarded-client-cert']) assertHeaderSafe(header, headers[header]!);
  });
});

// ---------------------------------------------------------------------------------------------
// Request-path normalisation and route matching
// ---------------------------------------------------------------------------------------------

const PATH_TOKENS = ['/', '//', '.', '..', '%2e', '%2E', '.%2e', '%2f', '%2F', '%5c', '\\', ';', ';x=1', ';/', 'admin', 'ADMIN', 'Admin', '%61dmin',
  'api', 'v1', 'a', 'é', '%C3%A9', '%c0%ae', '%', '%zz', '%0', '%00', '\0', '?', '?x=/../admin', '#', ' ', '%20', '%3B', '\uFEFF', '\u00c3\u00a9'];
const pathArb = fc.oneof(
  { weight: 8, arbitrary: fc.array(fc.constantFrom(...PATH_TOKENS), { maxLength: 12 }).map((t) => `/${t.join('')}`) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 30 }) },
  { weight: 1, arbitrary: fc.string({ unit: fc.constantFrom('/', '.', '%', '2', 'e', 'f', '5', 'c', 'a', ';', '\\'), maxLength: 30 }).map((s) => `/${s}`) },
);

/**
 * The independent reading of a request target that a normalising upstream (nginx merge_slashes,
 * Tomcat/Spring `;params`) applies: query dropped, `;params` dropped per segment, each segment
 * percent-decoded once, empty and `.` segments dropped, `..` pops (undefined: above the root or
 * undecodable). No trailing slash: matching does not depend on it.
 */
function referencePath(target: string): string | undefined {
  const path = target.split('?')[0]!;
  const out: string[] = [];
  for (const raw of path.slice(1).split('/')) {
    const nameOnly = raw.split(';')[0]!;
    let seg: string;
    try {
      seg = decodeURIComponent(nameOnly.replace(/[\x80-\xff]/g, (c) => `%${c.charCodeAt(0).toString(16)}`));
    } catch {
      return undefined;
    }
    if (seg === '' || seg === '.') continue;
    if (seg === '..') {
      if (out.length === 0) return undefined;
      out.pop();
    } else out.push(seg);
  }
  return `/${out.join('/')}`;
}

const ROUTES: RouteConfig[] = [
  { name: 'admin', path_prefix: '/admin', upstream: new URL('http://127.0.0.1:1'), timeout_ms: 1000, allow: { subject_cn: ['root'] } },
  { name: 'api-v1', path_prefix: '/api/v1/', upstream: new URL('http://127.0.0.1:2'), timeout_ms: 1000 },
  { name: 'vhost', host: 'internal.example', path_prefix: '/', upstream: new URL('http://127.0.0.1:3'), timeout_ms: 1000 },
  { name: 'public', path_prefix: '/', upstream: new URL('http://127.0.0.1:4'), timeout_ms: 1000 },
];
const route = createRouter(ROUTES);
const under = (p: string, prefix: string): boolean => p === prefix || p.startsWith(`${prefix}/`);

describe('request-path normalisation and route matching', () => {
  test('normalizeRequestPath never throws; an accepted path starts at the root with no dot-segment or "//", and is stable', () => {
    check(fc.property(pathArb, (target) => {
      const r = normalizeRequestPath(target);
      if (!r.ok) return;
      if (!r.path.startsWith('/')) bug(`normalised path does not start with "/": ${JSON.stringify(target)} → ${JSON.stringify(r.path)}`);
      const segs = r.path.slice(1).split('/');
      if (segs.some((s) => s === '.' || s === '..') || r.path.includes('//')) bug(`normalised path keeps a dot-segment or "//": ${JSON.stringify(target)} → ${JSON.stringify(r.path)}`);
      const again = normalizeRequestPath(segs.map((s) => encodeURIComponent(s)).join('/').replace(/^/, '/'));
      assert.deepEqual(again, { ok: true, path: r.path }, `re-normalising ${JSON.stringify(r.path)}`);
    }), PATH_PARAMS);
  });

  test('an accepted path reads as the independent resolver reads it, and selects the route that resolver says', () => {
    check(fc.property(pathArb, fc.constantFrom(undefined, 'localhost', 'INTERNAL.example.', 'internal.example:8443', 'evil.example'), (target, host) => {
      const r = normalizeRequestPath(target);
      if (!r.ok) return;
      const ref = referencePath(target);
      if (ref === undefined) bug(`certgate accepted ${JSON.stringify(target)} (→ ${r.path}) which a normalising upstream reads as above the root or undecodable`);
      const mine = r.path.length > 1 ? r.path.replace(/\/+$/, '') : r.path;
      if (mine !== ref) bug(`certgate reads ${JSON.stringify(target)} as ${JSON.stringify(r.path)}, a normalising upstream as ${JSON.stringify(ref)}`);
      const got = route(host, r.path)?.name;
      const p = ref.toLowerCase();
      const want = under(p, '/admin') ? 'admin' : under(p, '/api/v1') ? 'api-v1' : hostFromHeader(host) === 'internal.example' ? 'vhost' : 'public';
      if (got !== want) bug(`${JSON.stringify(target)} (Host ${host}) matched route ${got}, but it resolves to ${ref} (route ${want})`);
    }), PATH_PARAMS);
  });

  test('route matching, hostFromHeader and pathPrefixProblem never throw on arbitrary strings', () => {
    check(fc.property(fc.option(fc.string({ unit: 'binary', maxLength: 30 })), fc.string({ unit: 'binary', maxLength: 30 }), fc.string({ maxLength: 30 }), (host, path, prefix) => {
      route(host ?? undefined, path);
      hostFromHeader(host ?? undefined);
      const problem = pathPrefixProblem(prefix);
      assert.ok(problem === undefined || typeof problem === 'string');
    }), PATH_PARAMS);
  });
});
