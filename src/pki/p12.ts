/**
 * PKCS#12 (client.p12) for browsers, curl and Node's `pfx`, built with pkijs because @peculiar/x509 has
 * no PKCS#12 and node-forge refuses EC keys.
 *
 * Algorithms are OpenSSL 3's defaults: key and certificates in PBES2 (PBKDF2-HMAC-SHA256, AES-256-CBC),
 * integrity by a SHA-256 HMAC with the PKCS#12 KDF. Node 20/22/24 and `openssl pkcs12` read it. (macOS
 * Keychain has a history of rejecting AES p12s; the legacy RC2 alternative cannot be read by Node 20.)
 */
import { KeyObject, createHash, webcrypto } from 'node:crypto';
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import type { x509 } from './x509.js';

// OpenSSL 3's default iteration count for both the PBES2 key derivation and the MAC.
const ITERATIONS = 2048;
const OID = {
  pkcs8ShroudedKeyBag: '1.2.840.113549.1.12.10.1.2',
  certBag: '1.2.840.113549.1.12.10.1.3',
  x509Certificate: '1.2.840.113549.1.9.22.1',
  friendlyName: '1.2.840.113549.1.9.20',
  localKeyId: '1.2.840.113549.1.9.21',
} as const;

// Passed to each call rather than installed with pkijs.setEngine, which would change a process-wide global.
const engine = new pkijs.CryptoEngine({ name: 'node', crypto: webcrypto as unknown as Crypto });

export interface P12Input {
  readonly privateKey: CryptoKey;
  readonly cert: x509.X509Certificate;
  /** Issuing CAs, nearest first; stored as extra certificate bags. */
  readonly chain: readonly x509.X509Certificate[];
  readonly password: string;
  /** Shown by key stores as the entry's name. */
  readonly friendlyName: string;
}

/** Returns the DER of a password-protected PFX holding the key, its certificate and the chain. */
export async function buildP12(input: P12Input): Promise<Buffer> {
  const password = new TextEncoder().encode(input.password).buffer as ArrayBuffer;
  // localKeyID ties the key bag to its certificate bag; OpenSSL's PKCS12_parse pairs them by it.
  const keyId = createHash('sha1').update(new Uint8Array(input.cert.rawData)).digest();
  const attrs = [
    new pkijs.Attribute({ type: OID.friendlyName, values: [new asn1js.BmpString({ value: input.friendlyName })] }),
    new pkijs.Attribute({ type: OID.localKeyId, values: [new asn1js.OctetString({ valueHex: keyId })] }),
  ];
  const pkcs8 = KeyObject.from(input.privateKey).export({ type: 'pkcs8', format: 'der' });
  const keyBag = new pkijs.PKCS8ShroudedKeyBag({ parsedValue: pkijs.PrivateKeyInfo.fromBER(pkcs8) });
  const encryption = {
    // pkijs draws a fresh random IV and salt per encryption; the type's required `iv` is never read.
    password, contentEncryptionAlgorithm: { name: 'AES-CBC', length: 256 } as pkijs.ContentEncryptionAesCbcParams,
    hmacHashAlgorithm: 'SHA-256', iterationCount: ITERATIONS,
  };
  await keyBag.makeInternalValues(encryption, engine);

  const certBag = (c: x509.X509Certificate, bagAttributes?: pkijs.Attribute[]): pkijs.SafeBag =>
    new pkijs.SafeBag({
      bagId: OID.certBag,
      bagValue: new pkijs.CertBag({ parsedValue: pkijs.Certificate.fromBER(c.rawData) }),
      ...(bagAttributes && { bagAttributes }),
    });
  const pfx = new pkijs.PFX({
    parsedValue: {
      integrityMode: 0, // password MAC
      authenticatedSafe: new pkijs.AuthenticatedSafe({
        parsedValue: {
          safeContents: [
            // privacyMode 0: the key bag is already encrypted on its own (as OpenSSL lays it out).
            { privacyMode: 0, value: new pkijs.SafeContents({ safeBags: [new pkijs.SafeBag({ bagId: OID.pkcs8ShroudedKeyBag, bagValue: keyBag, bagAttributes: attrs })] }) },
            // privacyMode 1: certificates in a password-encrypted EncryptedData.
            { privacyMode: 1, value: new pkijs.SafeContents({ safeBags: [certBag(input.cert, attrs), ...input.chain.map((c) => certBag(c))] }) },
          ],
        },
      }),
    },
  });
  await pfx.parsedValue!.authenticatedSafe!.makeInternalValues({ safeContents: [{}, encryption] }, engine);
  await pfx.makeInternalValues({
    password, iterations: ITERATIONS, pbkdf2HashAlgorithm: { name: 'SHA-256' }, hmacHashAlgorithm: 'SHA-256',
  }, engine);
  return Buffer.from(pfx.toSchema().toBER(false));
}
