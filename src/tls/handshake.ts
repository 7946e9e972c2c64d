/**
 * Why a client was refused, as one of a fixed set of reasons (pure). Used for the 400 JSON
 * body, logs and the metrics label, so the set must stay small and stable.
 *
 * Inputs are what Node gives us: `socket.authorizationError` (an OpenSSL verify code string such
 * as "CERT_HAS_EXPIRED"; sometimes an Error carrying it as `.code`) and, in 'tlsClientError', the
 * error plus the socket. See DEPENDENCIES.md §3 for which side sees what.
 */

export const REFUSAL_REASONS = [
  'no_certificate', 'unknown_ca', 'expired', 'not_yet_valid', 'revoked', 'crl_expired',
  'bad_certificate', 'protocol', 'timeout', 'aborted', 'other',
] as const;

export type RefusalReason = (typeof REFUSAL_REASONS)[number];

const VERIFY_CODES: Readonly<Record<string, RefusalReason>> = {
  CERT_HAS_EXPIRED: 'expired',
  CERT_NOT_YET_VALID: 'not_yet_valid',

  UNABLE_TO_GET_ISSUER_CERT: 'unknown_ca',
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: 'unknown_ca',
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'unknown_ca',
  SELF_SIGNED_CERT_IN_CHAIN: 'unknown_ca',
  DEPTH_ZERO_SELF_SIGNED_CERT: 'unknown_ca',
  CERT_UNTRUSTED: 'unknown_ca',

  CERT_REVOKED: 'revoked',

  // The server's CRL for the client's CA is not current: every client of that CA fails.
  CRL_HAS_EXPIRED: 'crl_expired',
  CRL_NOT_YET_VALID: 'crl_expired',

  // The client's certificate itself is unacceptable.
  CERT_SIGNATURE_FAILURE: 'bad_certificate',
  UNABLE_TO_DECRYPT_CERT_SIGNATURE: 'bad_certificate',
  UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY: 'bad_certificate',
  ERROR_IN_CERT_NOT_BEFORE_FIELD: 'bad_certificate',
  ERROR_IN_CERT_NOT_AFTER_FIELD: 'bad_certificate',
  INVALID_PURPOSE: 'bad_certificate',
  INVALID_CA: 'bad_certificate',
  PATH_LENGTH_EXCEEDED: 'bad_certificate',
  CERT_CHAIN_TOO_LONG: 'bad_certificate',
  CERT_REJECTED: 'bad_certificate',
  INVALID_EXTENSION: 'bad_certificate',
  INVALID_POLICY_EXTENSION: 'bad_certificate',
  INVALID_NON_CA: 'bad_certificate',
  KEYUSAGE_NO_CERTSIGN: 'bad_certificate',
  KEYUSAGE_NO_DIGITAL_SIGNATURE: 'bad_certificate',
  EE_KEY_TOO_SMALL: 'bad_certificate',
  CA_KEY_TOO_SMALL: 'bad_certificate',
  CA_MD_TOO_WEAK: 'bad_certificate',
  UNSUPPORTED_SIGNATURE_ALGORITHM: 'bad_certificate',
  NO_EXPLICIT_POLICY: 'bad_certificate',
  SUBJECT_ISSUER_MISMATCH: 'bad_certificate',
  AKID_SKID_MISMATCH: 'bad_certificate',
  AKID_ISSUER_SERIAL_MISMATCH: 'bad_certificate',
  // Everything else (UNABLE_TO_GET_CRL: the server lacks a CRL for a CA; CRL signature
  // problems; OUT_OF_MEM; unknown codes) is 'other'.
};

function codeOf(e: string | Error | null | undefined): string | undefined {
  if (e === null || e === undefined) return undefined;
  if (typeof e === 'string') return e === '' ? undefined : e;
  const code = (e as Error & { code?: unknown }).code;
  if (typeof code === 'string' && code !== '') return code;
  return e.message === '' ? undefined : e.message;
}

/** Map a `socket.authorizationError` (OpenSSL verify code) to a refusal reason. */
export function refusalReason(authorizationError: string | Error | null | undefined): RefusalReason {
  const code = codeOf(authorizationError);
  if (code === undefined) return 'other';
  return VERIFY_CODES[code] ?? 'other';
}

/**
 * The reason for the server's 'tlsClientError' event. Node verifies the client certificate after
 * OpenSSL finished the handshake and then destroys the socket with ECONNRESET, so the real reason is
 * `socket.authorizationError` when it is set; only without it does `err.code` tell.
 */
export function tlsClientErrorReason(
  err: (Error & { code?: string }) | null | undefined,
  socket?: { authorizationError?: string | Error | null } | null,
): RefusalReason {
  const auth = codeOf(socket?.authorizationError ?? undefined);
  if (auth !== undefined) return refusalReason(auth);
  const code = typeof err?.code === 'string' ? err.code : '';
  const message = typeof err?.message === 'string' ? err.message.toLowerCase() : '';
  if (code === 'ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE') return 'no_certificate';
  if (code === 'ERR_TLS_HANDSHAKE_TIMEOUT' || code === 'ETIMEDOUT') return 'timeout';
  if (code === 'ECONNRESET' || code === 'EPIPE' || code === 'ECONNABORTED'
    || code === 'ERR_SSL_UNEXPECTED_EOF_WHILE_READING' || message.includes('unexpected eof')) {
    return 'aborted';
  }
  if (code.startsWith('ERR_SSL_')) return 'protocol';
  return 'other';
}

const DESCRIPTIONS: Readonly<Record<RefusalReason, string>> = {
  no_certificate: 'The client did not send a certificate, but this server requires one.',
  unknown_ca: 'The client certificate was not issued by a CA this server trusts.',
  expired: 'The client certificate has expired.',
  not_yet_valid: 'The client certificate is not valid yet (check its start date and the clocks).',
  revoked: 'The client certificate has been revoked.',
  crl_expired: 'The server\'s revocation list for the client\'s CA is out of date, so it cannot check the certificate.',
  bad_certificate: 'The client certificate is not acceptable (bad signature, wrong key usage or purpose, or invalid CA constraints).',
  protocol: 'The TLS handshake failed (unsupported protocol version or cipher, plain HTTP sent to the TLS port, or the client rejected the server certificate).',
  timeout: 'The TLS handshake did not complete in time.',
  aborted: 'The client closed the connection during the TLS handshake.',
  other: 'The TLS handshake failed for another reason.',
};

/** One plain sentence for logs and the JSON error body. */
export function describeRefusal(reason: RefusalReason): string {
  return DESCRIPTIONS[reason];
}
