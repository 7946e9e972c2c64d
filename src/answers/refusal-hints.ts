/**
 * What the person holding the client certificate should do about a refusal, in plain words (pure).
 * certgate puts it in the `hint` field of its 400 refusal bodies, and `certgate probe` prints it: the
 * `reason` tells a program what happened, the hint tells a person what to do next.
 * Never names an identity or CA that *would* be allowed beyond what the TLS handshake already
 * announces (the CA names in the CertificateRequest, which `certgate probe` lists).
 * Here, a floor below the server (proxy/admit.ts) and the client-side doctor (probe/diagnose.ts), which
 * share only what a client sees on the wire.
 */
import type { RefusalReason } from '../tls/handshake.js';

const HINTS: Readonly<Record<RefusalReason, string>> = {
  no_certificate:
    'send your client certificate and its key (curl --cert FILE --key FILE; Python requests cert=(CERT, KEY)); certgate probe URL --cert FILE shows which CAs this server accepts',
  unknown_ca:
    'your certificate was not issued by a CA this server trusts, or you did not send the intermediate CA with it: put the intermediate after your certificate in the cert file, or use a certificate from a CA the server accepts (certgate probe URL --cert FILE lists them)',
  expired: 'your client certificate has expired: get it renewed by its issuer',
  not_yet_valid: 'your client certificate is not valid yet: check its start date and this machine\'s clock',
  revoked: 'your client certificate was revoked: ask its issuer for a new one',
  crl_expired:
    'not a problem with your certificate: the server\'s revocation list for your CA is out of date; ask the server\'s operator to install a current CRL',
  bad_certificate:
    'your certificate is not usable for TLS client authentication: get one with extendedKeyUsage clientAuth (or none), CA:FALSE and a valid signature',
  protocol: 'use TLS 1.2 or newer with a modern client library',
  timeout: 'the TLS handshake did not finish in time: check the network path and retry',
  aborted: 'the connection was closed during the handshake: retry, and check that your client trusts the server certificate',
  other: 'run certgate probe URL --cert FILE for a step-by-step diagnosis',
};

export function refusalHint(reason: RefusalReason): string {
  return HINTS[reason];
}
