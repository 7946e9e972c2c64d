#!/usr/bin/env node
// Call a certgate-protected API from Node with node:https, no dependencies.
//
//   node examples/clients/node_https.mjs https://localhost:8443/ \
//       --cert certs/dev/client.crt --key certs/dev/client.key --ca certs/dev/ca.crt
//   node examples/clients/node_https.mjs https://localhost:8443/ --cert certs/dev/client.pem --ca certs/dev/ca.crt
//   node examples/clients/node_https.mjs https://localhost:8443/ \
//       --cert client.crt --key client.enc.key --password-file client.pass --ca certs/dev/ca.crt
//
// `ca` REPLACES Node's built-in roots for this request (verification stays on; never set
// rejectUnauthorized: false). Global fetch() cannot present a client certificate by itself; with the
// undici package use `fetch(url, { dispatcher: new Agent({ connect: { cert, key, ca } }) })`.
import https from 'node:https';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { cert: { type: 'string' }, key: { type: 'string' }, 'password-file': { type: 'string' }, ca: { type: 'string' } },
});
const url = positionals[0];
if (url === undefined || values.cert === undefined || values.ca === undefined) {
  console.error('usage: node_https.mjs URL --cert CERT [--key KEY] [--password-file FILE] --ca CA');
  process.exit(2);
}
const cert = readFileSync(values.cert);
const options = {
  cert,
  key: values.key !== undefined ? readFileSync(values.key) : cert, // a combined PEM holds the key too
  ca: readFileSync(values.ca),
  ...(values['password-file'] !== undefined && { passphrase: readFileSync(values['password-file'], 'utf8').replace(/\r?\n$/, '') }),
  timeout: 30_000,
};
const req = https.get(url, options, (res) => {
  const chunks = [];
  res.on('data', (c) => chunks.push(c));
  res.on('end', () => {
    console.log(Buffer.concat(chunks).toString('utf8'));
    if (res.statusCode < 200 || res.statusCode >= 300) {
      console.error(`HTTP ${res.statusCode}`);
      process.exitCode = 1;
    }
  });
});
req.on('timeout', () => req.destroy(new Error('timed out')));
req.on('error', (err) => {
  console.error(`TLS/connection error: ${err.code ?? ''} ${err.message}`);
  process.exitCode = 1;
});
