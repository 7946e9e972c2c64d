#!/usr/bin/env node
// An Express app behind certgate: reads the verified client identity from certgate's headers and
// authorizes on it. Its own package.json (Express is not a certgate dependency):
//
//   npm ci --prefix examples/upstreams/express
//   node examples/upstreams/express/app.mjs --port 8000          # binds 127.0.0.1 only
//
// then point a certgate route at http://127.0.0.1:8000.
//
// Trust these headers ONLY because certgate is the only way to reach this app: certgate removes any
// X-Client-Cert-* header a client sends and sets its own, but a client that can reach the app directly
// can send whatever it likes. Bind to 127.0.0.1 (same host or same pod), or allow only certgate with a
// firewall / NetworkPolicy; see ../README.md. The X-Client-Cert-Verified check below is a second line of
// defence (it turns away requests certgate let through without a certificate, e.g. client_auth: optional).
import express from 'express';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import { parseArgs } from 'node:util';
import { pathToFileURL } from 'node:url';

/** Clients allowed on /admin, by SAN URI (e.g. SPIFFE IDs); comma-separated. */
const ADMIN_SAN_URIS = (process.env.ADMIN_SAN_URIS ?? 'spiffe://example.org/ns/prod/sa/svc-a').split(',').filter(Boolean);

/** certgate joins SAN values with ',' and percent-encodes a ',' (or '%') inside a value. */
export function splitSan(value) {
  return value ? value.split(',').map((v) => decodeURIComponent(v)) : [];
}

// --- Optional: verify certgate's signed identity assertion (headers.assertion) ---------------------------
// With CERTGATE_JWKS_URL set (certgate's admin listener: http://127.0.0.1:9090/.well-known/jwks.json), the
// identity comes ONLY from a valid X-Client-Cert-Assertion: a request that came around certgate (forged
// X-Client-Cert-* headers, no or a bad signature, another route's audience, an expired token) is refused
// even if it reaches this app.
const JWKS_URL = process.env.CERTGATE_JWKS_URL;
/** The route's assertion_audience (default: the route name). */
const AUDIENCE = process.env.CERTGATE_AUDIENCE;
/** headers.assertion.issuer. */
const ISSUER = process.env.CERTGATE_ISSUER ?? 'certgate';
if (JWKS_URL && !AUDIENCE) throw new Error('CERTGATE_AUDIENCE must name this app\'s route (its assertion_audience, default the route name)');
// jose caches the key set and fetches it again when a token names a kid it does not know (a rotated key).
const JWKS = JWKS_URL ? createRemoteJWKSet(new URL(JWKS_URL)) : undefined;

/** The claims of a valid assertion for this app, or undefined: missing, bad signature, wrong iss/aud, expired. */
export async function verifiedAssertion(token) {
  if (!token) return undefined;
  try {
    const { payload } = await jwtVerify(token, JWKS, {
      issuer: ISSUER, audience: AUDIENCE, algorithms: ['ES256', 'EdDSA'], clockTolerance: 5, requiredClaims: ['exp', 'iat', 'nbf', 'sub'],
    });
    return payload;
  } catch {
    return undefined;
  }
}

/** The identity the assertion states (README "Signed identity assertion" lists the claims). */
export function identityFromClaims(claims) {
  return {
    subject: claims.sub,
    // x5t#S256 is base64url(SHA-256(DER)); X-Client-Cert-Fingerprint is the same digest in hex.
    fingerprint: Buffer.from(claims['x5t#S256'], 'base64url').toString('hex'),
    serial: claims.serial,
    not_after: claims.not_after,
    san_uri: claims.sans.uri,
    san_dns: claims.sans.dns,
    verified_by: 'assertion',
  };
}

/** The identity certgate verified, or undefined when the request did not come with one. */
export function clientIdentity(req) {
  if (req.get('X-Client-Cert-Verified') !== 'SUCCESS') return undefined;
  return {
    subject: req.get('X-Client-Cert-Subject'),
    issuer: req.get('X-Client-Cert-Issuer'),
    fingerprint: req.get('X-Client-Cert-Fingerprint'),
    serial: req.get('X-Client-Cert-Serial'),
    not_after: req.get('X-Client-Cert-Not-After'),
    san_uri: splitSan(req.get('X-Client-Cert-SAN-URI')),
    san_dns: splitSan(req.get('X-Client-Cert-SAN-DNS')),
  };
}

/** Middleware: sets req.client, or answers 403 when certgate did not verify a client. */
export async function requireClientCert(req, res, next) {
  if (JWKS) {
    const claims = await verifiedAssertion(req.get('X-Client-Cert-Assertion'));
    if (claims === undefined) {
      res.status(403).json({ error: 'invalid_assertion', message: 'no valid X-Client-Cert-Assertion: reach this app through certgate' });
      return;
    }
    req.client = identityFromClaims(claims);
    next();
    return;
  }
  const client = clientIdentity(req);
  if (client === undefined) {
    res.status(403).json({ error: 'client_certificate_required', message: 'this app is only reachable through certgate with a verified client certificate' });
    return;
  }
  req.client = client;
  next();
}

/** Middleware for one route: only clients holding one of `sanUris` as a URI SAN pass. */
export function requireSanUri(sanUris) {
  return (req, res, next) => {
    if (!req.client.san_uri.some((u) => sanUris.includes(u))) {
      res.status(403).json({ error: 'forbidden', message: `${req.client.subject} may not use ${req.path}` });
      return;
    }
    next();
  };
}

export function createApp() {
  const app = express();
  app.disable('x-powered-by');
  app.use(requireClientCert);
  app.get('/whoami', (req, res) => res.json({ app: 'express', client: req.client }));
  app.get('/admin', requireSanUri(ADMIN_SAN_URIS), (req, res) => res.json({ app: 'express', admin: true, caller: req.client.subject }));
  app.use((req, res) => res.status(404).json({ error: 'not_found' }));
  return app;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const { values } = parseArgs({ options: { host: { type: 'string', default: '127.0.0.1' }, port: { type: 'string', default: '8000' } } });
  const server = createApp().listen(Number(values.port), values.host, () => {
    console.log(`listening on http://${values.host}:${server.address().port}`);
  });
  const stop = () => server.close(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}
