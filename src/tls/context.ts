/** TLS policy (protocol versions, ciphers, session-ticket keys) applied to a TlsMaterial. */
import { createHash, hkdfSync, randomBytes } from 'node:crypto';
import type { SecureContextOptions } from 'node:tls';
import type { TlsConfig } from '../config/types.js';
import type { TlsMaterial } from './material.js';

/**
 * Forward-secret AEAD suites only (TLS 1.3 suites first); no CBC, no RSA key exchange. TLS 1.0/1.1 are
 * never offered: min_version is TLSv1.2 or TLSv1.3.
 */
export const CIPHERS = [
  'TLS_AES_128_GCM_SHA256', 'TLS_AES_256_GCM_SHA384', 'TLS_CHACHA20_POLY1305_SHA256',
  'ECDHE-ECDSA-AES128-GCM-SHA256', 'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384', 'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305', 'ECDHE-RSA-CHACHA20-POLY1305',
].join(':');

/**
 * Ticket keys rotate on this period (wall-clock epochs, so every worker rotates at the same moment):
 * a stolen key opens at most one period's sessions. Tickets from the previous period fall back to a
 * full handshake.
 */
export const TICKET_ROTATION_MS = 3_600_000;

/** The session-ticket keys of one process; its secret is held here and nowhere else. */
export interface SessionTickets {
  /** 48 bytes for tls.Server ticketKeys: HKDF(secret; trust material digest, rotation epoch). */
  keys(material: TlsMaterial, now?: number): Buffer;
}

/**
 * `secret`: random per process by default; under `workers: N` the primary's, handed to every worker
 * (cluster/worker.ts), so a ticket issued by one worker resumes on another.
 */
export function createSessionTickets(secret: Uint8Array = randomBytes(32)): SessionTickets {
  if (secret.length < 32) throw new Error('session ticket secret: at least 32 bytes');
  const own = Buffer.from(secret);
  return {
    keys(material, now = Date.now()) {
      const trust = createHash('sha256').update(material.ca.join('\n')).update('\0').update((material.crl ?? []).join('\n')).digest();
      const epoch = Buffer.alloc(8);
      epoch.writeBigUInt64BE(BigInt(Math.floor(now / TICKET_ROTATION_MS)));
      return Buffer.from(hkdfSync('sha256', own, Buffer.concat([trust, epoch]), 'certgate session tickets', 48));
    },
  };
}

/** Milliseconds until the next ticket-key rotation. */
export function untilNextRotation(now = Date.now()): number {
  return TICKET_ROTATION_MS - (now % TICKET_ROTATION_MS);
}

/**
 * The complete secure-context option set for the material. setSecureContext() resets every option
 * that is not passed (except ticketKeys, which are sticky), so the server and every reload use this.
 * Ticket keys derive from the trust material: when client_ca or crl change, old tickets stop resuming,
 * because a resumed session skips certificate verification (a revoked client would get back in).
 */
export function secureContextOptions(material: TlsMaterial, tls: TlsConfig, tickets: SessionTickets): SecureContextOptions {
  return {
    key: material.key,
    cert: material.cert,
    ca: [...material.ca],
    // leaf mode: certgate checks revocation itself (tls/revocation/); handing CRLs to OpenSSL would
    // switch on CRL_CHECK_ALL, which demands a current CRL for every CA of every chain.
    ...(tls.crl_mode === 'chain' && material.crl !== undefined && material.crl.length > 0 && { crl: [...material.crl] }),
    ...(material.passphrase !== undefined && { passphrase: material.passphrase }),
    minVersion: tls.min_version,
    maxVersion: 'TLSv1.3',
    ciphers: CIPHERS,
    honorCipherOrder: true,
    ticketKeys: tickets.keys(material),
  };
}

