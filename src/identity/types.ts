/** A client certificate that certgate verified on this TLS connection, in header-ready form. */
export interface ClientIdentity {
  /** RFC 4514, byte-identical to `openssl x509 -noout -subject -nameopt RFC2253` (ASCII only). */
  readonly subject: string;
  readonly issuer: string;
  /** Subject attribute values, decoded to UTF-8, for policy matching (not for headers). */
  readonly subjectCn: readonly string[];
  readonly subjectOu: readonly string[];
  /** SHA-256 of the DER, lowercase hex, no separators. */
  readonly fingerprint: string;
  /** Uppercase hex, as `openssl x509 -serial`. */
  readonly serial: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly san: {
    readonly uri: readonly string[];
    readonly dns: readonly string[];
    readonly email: readonly string[];
    readonly ip: readonly string[];
  };
  /** The leaf DER. */
  readonly der: Buffer;
  /** Intermediates the client sent (leaf excluded), DER, TLS order. Empty when not needed. */
  readonly chain: readonly Buffer[];
}
