/** OpenSSL's word on the assembled material: the secure context built step by step, a refusal pinned on the right file. */
import { createSecureContext, type SecureContextOptions } from 'node:tls';
import { problem, type Problem } from '../../errors.js';
import { errCode, errText } from './node-errors.js';

/** Build the secure context step by step, so a failure is pinned on the right file. */
export function validateContext(
  options: SecureContextOptions,
  files: { cert: string; key: string; ca: string; crl: string | undefined },
): Problem | undefined {
  const { crl, ca, ...base } = options;
  const steps: Array<[string, string, SecureContextOptions]> = [
    ['key and certificate', files.key === files.cert ? files.cert : files.key, base],
    ['client CAs', files.ca, { ...base, ca }],
  ];
  if (crl !== undefined && files.crl !== undefined) steps.push(['CRLs', files.crl, { ...base, ca, crl }]);
  for (const [what, file, opts] of steps) {
    try {
      createSecureContext(opts);
    } catch (err) {
      return translateContextError(err, what, file, files);
    }
  }
  return undefined;
}

function translateContextError(
  err: unknown, what: string, file: string, files: { cert: string; key: string },
): Problem {
  const code = errCode(err);
  const text = `Node/OpenSSL refused the ${what}: ${errText(err)}`;
  if (code === 'ERR_OSSL_X509_KEY_VALUES_MISMATCH') return problem('error', 'CG_KEY_MISMATCH', text, { file: files.key });
  if (code === 'ERR_OSSL_BAD_DECRYPT' || code === 'ERR_OSSL_EVP_BAD_DECRYPT' || code === 'ERR_OSSL_CRYPTO_INTERRUPTED_OR_CANCELLED') {
    return problem('error', 'CG_KEY_PASSPHRASE', text, { file: files.key });
  }
  return problem('error', 'CG_TLS_REJECTED', text, { file });
}
