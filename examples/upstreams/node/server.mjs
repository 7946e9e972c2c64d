#!/usr/bin/env node
// A Node upstream behind certgate, no dependencies: reads the verified client identity from certgate's
// headers and authorizes on it. requireClientCert() is Express-compatible middleware as well:
//   app.use(requireClientCert());  app.get('/whoami', (req, res) => res.json(req.client));
//
//   node examples/upstreams/node/server.mjs --port 8000        # binds 127.0.0.1 only
//
// Trust these headers ONLY because certgate is the only way to reach this app (bind 127.0.0.1, or allow
// only certgate with a firewall / NetworkPolicy); see ../README.md.
import http from 'node:http';
import { parseArgs } from 'node:util';
import { pathToFileURL } from 'node:url';

/** certgate joins SAN values with ',' and percent-encodes a ',' (or '%') inside a value. */
export function splitSan(value) {
  return value ? value.split(',').map((v) => decodeURIComponent(v)) : [];
}

/** The identity certgate verified, or undefined when the request did not come with one. */
export function clientIdentity(req) {
  const h = req.headers;
  if (h['x-client-cert-verified'] !== 'SUCCESS') return undefined;
  return {
    subject: h['x-client-cert-subject'],
    issuer: h['x-client-cert-issuer'],
    fingerprint: h['x-client-cert-fingerprint'],
    serial: h['x-client-cert-serial'],
    not_after: h['x-client-cert-not-after'],
    san_uri: splitSan(h['x-client-cert-san-uri']),
    san_dns: splitSan(h['x-client-cert-san-dns']),
  };
}

function sendJson(res, status, body) {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/**
 * (req, res, next) middleware: sets req.client, or answers 403 when certgate did not verify a client.
 * With `sanUris`, only clients holding one of those URI SANs pass.
 */
export function requireClientCert({ sanUris } = {}) {
  return (req, res, next) => {
    const client = clientIdentity(req);
    if (client === undefined) {
      sendJson(res, 403, { error: 'client_certificate_required', message: 'this app is only reachable through certgate with a verified client certificate' });
      return;
    }
    if (sanUris !== undefined && !client.san_uri.some((u) => sanUris.includes(u))) {
      sendJson(res, 403, { error: 'forbidden', message: `${client.subject} may not use ${req.url}` });
      return;
    }
    req.client = client;
    next();
  };
}

const ADMIN_SAN_URIS = (process.env.ADMIN_SAN_URIS ?? 'spiffe://example.org/ns/prod/sa/svc-a').split(',').filter(Boolean);
const anyClient = requireClientCert();
const adminOnly = requireClientCert({ sanUris: ADMIN_SAN_URIS });

export function createApp() {
  return http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/whoami') return anyClient(req, res, () => sendJson(res, 200, { app: 'node', client: req.client }));
    if (path === '/admin') return adminOnly(req, res, () => sendJson(res, 200, { app: 'node', admin: true, caller: req.client.subject }));
    return anyClient(req, res, () => sendJson(res, 404, { error: 'not_found' }));
  });
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const { values } = parseArgs({ options: { host: { type: 'string', default: '127.0.0.1' }, port: { type: 'string', default: '8000' } } });
  const server = createApp();
  server.listen(Number(values.port), values.host, () => {
    console.log(`listening on http://${values.host}:${server.address().port}`);
  });
  const stop = () => server.close(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}
