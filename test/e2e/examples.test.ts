/**
 * The examples users copy (examples/), run for real against a certgate started in-process with the
 * per-run test PKI, verification always on.
 *
 * Clients (examples/clients/): curl, Python requests / aiohttp / httpx, Node https. Each is run as a user
 * runs it (a child process with the README's flags) in three key layouts -- certificate + key files, one
 * combined PEM, an encrypted key + password file -- and must reach the upstream as CN=svc-a,OU=payments.
 * `--ca` is the test ROOT only, so certgate must send its intermediate. A client whose CA does not
 * know certgate's server must fail (the server really is verified), and an expired client certificate
 * must come back with certgate's reason, not a bare TLS error.
 *
 * Upstreams (examples/upstreams/): Flask, FastAPI (uvicorn), Express (its own package.json, installed here
 * with npm ci) and dependency-free Node apps behind certgate must see the
 * verified subject and fingerprint, authorize /admin on the SAN URI, refuse a request without
 * X-Client-Cert-Verified: SUCCESS, and never see identity headers a client forged through certgate.
 * And the reason for the README's "bind to 127.0.0.1" rule: an app reached directly accepts forged ones.
 *
 * A missing tool or Python library is a skip naming it (`t.skip('flask not installed')`), never a pass;
 * .ci/run installs the Debian packages (python3-requests, -aiohttp, -httpx, -flask, -fastapi, uvicorn);
 * Express comes from the npm registry (an npm ci that fails, e.g. offline, is a skip saying so).
 */
import { after, before, describe, it, type TestContext } from 'node:test';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createPrivateKey, generateKeyPairSync } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, renameSync, writeFileSync } from 'node:fs';
import { SignJWT } from 'jose';
import { stringify } from 'yaml';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { listenEchoUpstream } from '../../dist/echo-upstream.js';
import { createTestPki, type TestPki } from '../helpers/pki.js';
import { startTestCertgate, type RunningCertgate } from '../helpers/certgate.js';
import { mtlsRequest } from '../helpers/client.js';
import { waitFor } from '../helpers/wait.js';
import { killRunningCommands, runCommand, type Run } from '../helpers/run.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const EXAMPLES = path.join(ROOT, 'examples');
const TEST_TIMEOUT = 60_000;
const GOOD_SUBJECT = 'CN=svc-a,OU=payments';
const GOOD_SAN_URI = 'spiffe://example.org/ns/prod/sa/svc-a';

const children = new Set<ChildProcess>();

/** Runs a command to completion (bounded by timeoutMs) and collects its output. */
function run(cmd: string, args: readonly string[], opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<Run> {
  return runCommand(cmd, args, { cwd: ROOT, env: { ...process.env, ...opts.env }, timeoutMs: opts.timeoutMs ?? 30_000 });
}

/** A long-running example server: started with --port 0, its real address read from its first line. */
interface ExampleServer {
  readonly url: string;
  readonly output: () => string;
  stop(): Promise<void>;
}

async function startServer(cmd: string, args: readonly string[], env: NodeJS.ProcessEnv = {}): Promise<ExampleServer> {
  const child = spawn(cmd, [...args, '--port', '0'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  children.add(child);
  let out = '';
  let exited: number | null | undefined;
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (out += d));
  const closed = new Promise<void>((resolve) => child.once('close', (code) => {
    exited = code;
    children.delete(child);
    resolve();
  }));
  const url = await waitFor(() => {
    if (exited !== undefined) throw new Error(`${cmd} ${args.join(' ')} exited ${exited}: ${out}`);
    return /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(out)?.[1];
  }, `${args.join(' ')} to print its address`, 20_000);
  return {
    url, output: () => out,
    async stop() {
      if (exited === undefined) child.kill('SIGTERM');
      await closed;
    },
  };
}

after(async () => {
  for (const c of children) c.kill('SIGKILL');
  killRunningCommands();
});

// ---- which tools are here: first interpreter that has the modules (Debian's, whose python3-* packages
// .ci/run installs, then PATH's python3) ----
const PYTHONS = ['/usr/bin/python3', 'python3'];
const pythonCache = new Map<string, string | undefined>();
function pythonWith(modules: readonly string[]): string | undefined {
  const key = modules.join(',');
  if (!pythonCache.has(key)) {
    const found = PYTHONS.find((py) => {
      const r = spawnSync(py, ['-c', modules.map((m) => `import ${m}`).join('; ')], { stdio: 'ignore' });
      return r.error === undefined && r.status === 0;
    });
    pythonCache.set(key, found);
  }
  return pythonCache.get(key);
}
function hasCommand(cmd: string, args: readonly string[]): boolean {
  const r = spawnSync(cmd, args, { stdio: 'ignore' });
  return r.error === undefined && r.status === 0;
}

interface Tool {
  readonly name: string;
  /** [command, ...args] that runs the example, or the skip reason. */
  readonly command: () => readonly string[] | string;
}

const py = (module: string, script: string) => (): readonly string[] | string => {
  const interpreter = pythonWith([module]);
  return interpreter === undefined ? `python3 with ${module} not installed (Debian: python3-${module})` : [interpreter, path.join(EXAMPLES, 'clients', script)];
};

const CLIENTS: readonly Tool[] = [
  { name: 'curl (curl.sh)', command: () => (hasCommand('curl', ['--version']) ? ['sh', path.join(EXAMPLES, 'clients/curl.sh')] : 'curl not installed') },
  { name: 'Python requests', command: py('requests', 'python_requests.py') },
  { name: 'Python aiohttp', command: py('aiohttp', 'python_aiohttp.py') },
  { name: 'Python httpx', command: py('httpx', 'python_httpx.py') },
  { name: 'Node https', command: () => [process.execPath, path.join(EXAMPLES, 'clients/node_https.mjs')] },
];

function commandOrSkip(t: TestContext, tool: Tool): readonly string[] | undefined {
  const c = tool.command();
  if (typeof c === 'string') {
    t.skip(c);
    return undefined;
  }
  return c;
}

interface Echo {
  readonly path: string;
  readonly headers: Record<string, string>;
}

let pki: TestPki;
let cg: RunningCertgate;
let upstream: { url: string; close(): Promise<void> };
let upstreamRequests = 0;
let encryptedKeyPath: string;
let passwordPath: string;

before(async () => {
  pki = await createTestPki();
  // The same key as clients.good, encrypted (PKCS#8, AES-256-CBC): what `openssl pkcs8 -topk8 -v2 aes256` writes.
  const password = 'correct horse battery staple';
  encryptedKeyPath = path.join(pki.dir, 'good.enc.key');
  writeFileSync(encryptedKeyPath, createPrivateKey(pki.clients.good.key).export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: password }), { mode: 0o600 });
  passwordPath = path.join(pki.dir, 'good.pass');
  writeFileSync(passwordPath, `${password}\n`, { mode: 0o600 });
  const w = await listenEchoUpstream('127.0.0.1', 0);
  w.server.on('request', () => void upstreamRequests++);
  upstream = w;
  cg = await startTestCertgate({
    tls: { bundle: pki.serverBundle.pemPath, client_ca: pki.clientCa.path },
    routes: [{ name: 'whoami', path_prefix: '/', upstream: upstream.url }],
  });
});

after(async () => {
  await cg?.close();
  await upstream?.close();
  pki?.cleanup();
});

describe('client examples against a live certgate (examples/clients/)', () => {
  const layouts = [
    { name: 'certificate + key files', args: () => ['--cert', pki.clients.good.certPath, '--key', pki.clients.good.keyPath] },
    { name: 'one combined PEM (key + cert + intermediate)', args: () => ['--cert', pki.clients.good.pemPath] },
    { name: 'encrypted key + password file', args: () => ['--cert', pki.clients.good.certPath, '--key', encryptedKeyPath, '--password-file', passwordPath] },
  ];
  for (const tool of CLIENTS) {
    describe(tool.name, () => {
      for (const layout of layouts) {
        it(`${layout.name}: 200, the upstream sees ${GOOD_SUBJECT}`, { timeout: TEST_TIMEOUT }, async (t) => {
          const cmd = commandOrSkip(t, tool);
          if (cmd === undefined) return;
          t.plan(4);
          const before = upstreamRequests;
          const r = await run(cmd[0]!, [...cmd.slice(1), `${cg.url}/from-example`, ...layout.args(), '--ca', pki.root.certPath]);
          t.assert.equal(r.code, 0, `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
          const echo = JSON.parse(r.stdout) as Echo;
          t.assert.equal(echo.path, '/from-example');
          t.assert.equal(echo.headers['x-client-cert-subject'], GOOD_SUBJECT);
          t.assert.equal(upstreamRequests, before + 1);
        });
      }

      it('a CA that did not issue certgate\'s certificate: the client refuses the server, nothing is forwarded', { timeout: TEST_TIMEOUT }, async (t) => {
        const cmd = commandOrSkip(t, tool);
        if (cmd === undefined) return;
        t.plan(3);
        const before = upstreamRequests;
        const r = await run(cmd[0]!, [...cmd.slice(1), `${cg.url}/`, '--cert', pki.clients.good.pemPath, '--ca', pki.otherRoot.certPath]);
        t.assert.notEqual(r.code, 0, `must fail: ${r.stdout}`);
        t.assert.match(r.stderr, /certificate|verify|SSL|TLS/i, r.stderr);
        t.assert.equal(upstreamRequests, before, 'the upstream saw nothing');
      });

      it('an expired client certificate: fails with certgate\'s reason on stdout (client_certificate_invalid, expired)', { timeout: TEST_TIMEOUT }, async (t) => {
        const cmd = commandOrSkip(t, tool);
        if (cmd === undefined) return;
        t.plan(3);
        const before = upstreamRequests;
        const r = await run(cmd[0]!, [...cmd.slice(1), `${cg.url}/`, '--cert', pki.clients.expired.pemPath, '--ca', pki.root.certPath]);
        t.assert.notEqual(r.code, 0, `stdout: ${r.stdout}\nstderr: ${r.stderr}`); // 1; curl's own 22 for an HTTP error
        const body = JSON.parse(r.stdout) as { error?: string; reason?: string };
        t.assert.deepEqual([body.error, body.reason], ['client_certificate_invalid', 'expired'], r.stdout);
        t.assert.equal(upstreamRequests, before, 'the upstream saw nothing');
      });
    });
  }

  it('seed 000\'s ssl.create_default_context(Purpose.CLIENT_AUTH) fails in aiohttp (the README explains why)', { timeout: TEST_TIMEOUT }, async (t) => {
    const interpreter = pythonWith(['aiohttp']);
    if (interpreter === undefined) {
      t.skip('python3 with aiohttp not installed (Debian: python3-aiohttp)');
      return;
    }
    t.plan(2);
    const script = [
      'import asyncio, ssl, sys, aiohttp',
      'ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)',
      'ctx.load_cert_chain(sys.argv[2])',
      'async def main():',
      '    async with aiohttp.ClientSession() as s:',
      '        async with s.get(sys.argv[1], ssl=ctx) as r:',
      '            print(r.status)',
      'try:',
      '    asyncio.run(main())',
      'except Exception as e:',
      '    print(type(e).__name__, e)',
    ].join('\n');
    const r = await run(interpreter, ['-c', script, `${cg.url}/`, pki.clients.good.pemPath]);
    t.assert.equal(r.code, 0, r.stderr);
    t.assert.match(r.stdout, /PROTOCOL_TLS_SERVER/, r.stdout);
  });
});

// ---- upstream examples behind certgate ----

interface UpstreamExample {
  readonly name: string;
  /** [command, ...args], or the skip reason. */
  readonly command: () => readonly string[] | string;
}

const UPSTREAMS: readonly UpstreamExample[] = [
  {
    name: 'Flask (examples/upstreams/flask/app.py)',
    command: () => {
      const interpreter = pythonWith(['flask']);
      return interpreter === undefined ? 'flask not installed (Debian: python3-flask)' : [interpreter, path.join(EXAMPLES, 'upstreams/flask/app.py')];
    },
  },
  {
    name: 'FastAPI on uvicorn (examples/upstreams/fastapi/app.py)',
    command: () => {
      const interpreter = pythonWith(['fastapi', 'uvicorn']);
      return interpreter === undefined ? 'fastapi + uvicorn not installed (Debian: python3-fastapi uvicorn)' : [interpreter, path.join(EXAMPLES, 'upstreams/fastapi/app.py')];
    },
  },
  {
    name: 'Express (examples/upstreams/express/app.mjs)',
    command: () => {
      const missing = installExampleDependencies('upstreams/express');
      return missing ?? [process.execPath, path.join(EXAMPLES, 'upstreams/express/app.mjs')];
    },
  },
  { name: 'Node (examples/upstreams/node/server.mjs)', command: () => [process.execPath, path.join(EXAMPLES, 'upstreams/node/server.mjs')] },
];

/**
 * `npm ci` in an example with its own package.json, as its README says (every run: the lock file decides,
 * not what an earlier run left in node_modules). undefined when installed, else the skip reason.
 */
function installExampleDependencies(example: string): string | undefined {
  const r = spawnSync('npm', ['ci', '--prefer-offline', '--no-audit', '--no-fund', '--ignore-scripts'],
    { cwd: path.join(EXAMPLES, example), encoding: 'utf8', timeout: 120_000 });
  if (r.error === undefined && r.status === 0) return undefined;
  return `npm ci in examples/${example} failed (offline?): ${r.error?.message ?? r.stderr.trim().split('\n').slice(-3).join(' ')}`;
}

interface AppWhoami {
  readonly app: string;
  readonly client: { subject: string; issuer: string; fingerprint: string; serial: string; san_uri: string[]; san_dns: string[] };
}

for (const example of UPSTREAMS) {
  describe(`upstream example behind certgate: ${example.name}`, () => {
    let server: ExampleServer | undefined;
    let gate: RunningCertgate | undefined;
    let skipReason: string | undefined;

    before(async () => {
      const cmd = example.command();
      if (typeof cmd === 'string') {
        skipReason = cmd;
        return;
      }
      server = await startServer(cmd[0]!, cmd.slice(1), { ADMIN_SAN_URIS: GOOD_SAN_URI });
      gate = await startTestCertgate({
        tls: { bundle: pki.serverBundle.pemPath, client_ca: pki.clientCa.path },
        routes: [{ name: 'app', path_prefix: '/', upstream: server.url }],
      });
    });
    after(async () => {
      await gate?.close();
      await server?.stop();
    });
    const ready = (t: TestContext): { server: ExampleServer; gate: RunningCertgate } | undefined => {
      if (skipReason !== undefined) {
        t.skip(skipReason);
        return undefined;
      }
      return { server: server!, gate: gate! };
    };
    const creds = (c: 'good' | 'direct') => ({ cert: pki.clients[c].cert, key: pki.clients[c].key, ca: pki.root.cert });

    it('binds 127.0.0.1 by default and sees the verified subject, issuer, fingerprint and SAN URI', { timeout: TEST_TIMEOUT }, async (t) => {
      const env = ready(t);
      if (env === undefined) return;
      t.plan(6);
      t.assert.match(env.server.url, /^http:\/\/127\.0\.0\.1:/);
      const r = await mtlsRequest(env.gate.url, creds('good'), { path: '/whoami' });
      t.assert.equal(r.status, 200, r.body);
      const { client } = r.json<AppWhoami>();
      t.assert.equal(client.subject, GOOD_SUBJECT);
      t.assert.equal(client.issuer, 'CN=certgate test intermediate CA,O=certgate test');
      t.assert.equal(client.fingerprint, pki.clients.good.x509.fingerprint256.replaceAll(':', '').toLowerCase());
      t.assert.deepEqual(client.san_uri, [GOOD_SAN_URI]);
    });

    it('authorizes /admin on the SAN URI: svc-a in, a client without that URI 403', { timeout: TEST_TIMEOUT }, async (t) => {
      const env = ready(t);
      if (env === undefined) return;
      t.plan(3);
      const allowed = await mtlsRequest(env.gate.url, creds('good'), { path: '/admin' });
      t.assert.equal(allowed.status, 200, allowed.body);
      const refused = await mtlsRequest(env.gate.url, creds('direct'), { path: '/admin' });
      t.assert.equal(refused.status, 403, refused.body);
      t.assert.match(refused.body, /CN=svc-direct/);
    });

    it('identity headers forged by a client through certgate never reach it (svc-direct posing as svc-a)', { timeout: TEST_TIMEOUT }, async (t) => {
      const env = ready(t);
      if (env === undefined) return;
      t.plan(2);
      const forged = {
        'X-Client-Cert-Subject': GOOD_SUBJECT, 'X-Client-Cert-SAN-URI': GOOD_SAN_URI, 'x_client_cert_san_uri': GOOD_SAN_URI,
        'X-Client-Cert-Verified': 'SUCCESS',
      };
      const r = await mtlsRequest(env.gate.url, creds('direct'), { path: '/admin', headers: forged });
      t.assert.equal(r.status, 403, r.body);
      const me = await mtlsRequest(env.gate.url, creds('direct'), { path: '/whoami', headers: forged });
      t.assert.equal(me.json<AppWhoami>().client.subject, 'CN=svc-direct');
    });

    it('refuses a request without X-Client-Cert-Verified: SUCCESS (403), e.g. one that bypassed certgate', { timeout: TEST_TIMEOUT }, async (t) => {
      const env = ready(t);
      if (env === undefined) return;
      t.plan(2);
      const r = await fetch(`${env.server.url}/whoami`);
      t.assert.equal(r.status, 403);
      t.assert.match(await r.text(), /client_certificate_required/);
    });

    it('why it must be reachable ONLY through certgate: reached directly, forged headers are believed', { timeout: TEST_TIMEOUT }, async (t) => {
      const env = ready(t);
      if (env === undefined) return;
      t.plan(2);
      const r = await fetch(`${env.server.url}/admin`, {
        headers: { 'X-Client-Cert-Verified': 'SUCCESS', 'X-Client-Cert-Subject': 'CN=mallory', 'X-Client-Cert-SAN-URI': GOOD_SAN_URI },
      });
      t.assert.equal(r.status, 200, 'the app cannot tell: only binding / network policy protects it');
      t.assert.match(await r.text(), /CN=mallory/);
    });
  });
}

// ---- the upstream examples verify certgate's signed assertion (headers.assertion, issue 18) ----

/**
 * Setup: certgate signs with an EC P-256 key; each example runs with CERTGATE_JWKS_URL = certgate's admin
 * JWKS and CERTGATE_AUDIENCE = its route's name (the default audience). Through certgate it sees the
 * identity the assertion states. Reached directly -- a request that came around certgate -- it refuses
 * forged identity headers without an assertion, a token signed by another key under certgate's kid, a
 * token for another route's audience and an expired token; a valid token signed with certgate's key is
 * the control that shows each refusal is about that one defect.
 */
const ASSERTION_EXAMPLES: readonly UpstreamExample[] = [
  {
    name: 'Flask + PyJWT',
    command: () => {
      const interpreter = pythonWith(['flask', 'jwt', 'cryptography']);
      return interpreter === undefined ? 'flask + PyJWT not installed (Debian: python3-flask python3-jwt python3-cryptography)' : [interpreter, path.join(EXAMPLES, 'upstreams/flask/app.py')];
    },
  },
  {
    name: 'FastAPI + PyJWT',
    command: () => {
      const interpreter = pythonWith(['fastapi', 'uvicorn', 'jwt', 'cryptography']);
      return interpreter === undefined ? 'fastapi + uvicorn + PyJWT not installed (Debian: python3-fastapi uvicorn python3-jwt python3-cryptography)' : [interpreter, path.join(EXAMPLES, 'upstreams/fastapi/app.py')];
    },
  },
  {
    name: 'Express + jose',
    command: () => installExampleDependencies('upstreams/express') ?? [process.execPath, path.join(EXAMPLES, 'upstreams/express/app.mjs')],
  },
];

for (const example of ASSERTION_EXAMPLES) {
  describe(`assertion: ${example.name} refuses a request that came around certgate`, () => {
    let server: ExampleServer | undefined;
    let gate: RunningCertgate | undefined;
    let skipReason: string | undefined;
    let signingKey: ReturnType<typeof createPrivateKey>;
    let kid: string;

    before(async () => {
      const cmd = example.command();
      if (typeof cmd === 'string') {
        skipReason = cmd;
        return;
      }
      signingKey = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
      const keyFile = path.join(pki.dir, `assertion-${example.name.replace(/\W+/g, '-')}.key`);
      writeFileSync(keyFile, signingKey.export({ format: 'pem', type: 'pkcs8' }), { mode: 0o600 });
      const settings = (upstreamUrl: string) => ({
        tls: { bundle: pki.serverBundle.pemPath, client_ca: pki.clientCa.path },
        headers: { assertion: { key_files: [keyFile] } },
        routes: [{ name: 'app', path_prefix: '/', upstream: upstreamUrl }],
      });
      // certgate first (the app needs its JWKS address), then the app, then the route to it, applied live.
      gate = await startTestCertgate(settings('http://127.0.0.1:9'));
      server = await startServer(cmd[0]!, cmd.slice(1), {
        ADMIN_SAN_URIS: GOOD_SAN_URI, CERTGATE_JWKS_URL: `${gate.adminUrl}/.well-known/jwks.json`, CERTGATE_AUDIENCE: 'app',
      });
      const tmp = `${gate.config.file}.tmp`;
      writeFileSync(tmp, stringify({ listen: '127.0.0.1:0', admin: { listen: '127.0.0.1:0' }, ...settings(server.url) }));
      renameSync(tmp, gate.config.file);
      const applied = await gate.app.reloadConfig!('test');
      if (applied.result !== 'success') throw new Error(`route to the example not applied: ${JSON.stringify(applied)}`);
      kid = ((await (await fetch(`${gate.adminUrl}/.well-known/jwks.json`)).json()) as { keys: { kid: string }[] }).keys[0]!.kid;
    });
    after(async () => {
      await gate?.close();
      await server?.stop();
    });
    const ready = (t: TestContext): { server: ExampleServer; gate: RunningCertgate } | undefined => {
      if (skipReason !== undefined) {
        t.skip(skipReason);
        return undefined;
      }
      return { server: server!, gate: gate! };
    };
    /** A token as certgate would sign it, with `claims` changed; signed by `key` (default certgate's). */
    const token = (claims: Record<string, unknown> = {}, key = signingKey): Promise<string> => {
      const now = Math.floor(Date.now() / 1000);
      const thumbprint = Buffer.from(pki.clients.good.x509.fingerprint256.replaceAll(':', ''), 'hex').toString('base64url');
      return new SignJWT({
        iss: 'certgate', sub: GOOD_SUBJECT, aud: 'app', iat: now, nbf: now, exp: now + 60, cnf: { 'x5t#S256': thumbprint }, 'x5t#S256': thumbprint,
        sans: { dns: [], uri: [GOOD_SAN_URI], email: [], ip: [] }, serial: pki.clients.good.x509.serialNumber, not_after: now + 86_400, ...claims,
      }).setProtectedHeader({ alg: 'ES256', kid, typ: 'JWT' }).sign(key);
    };
    const direct = async (env: { server: ExampleServer }, headers: Record<string, string>): Promise<{ status: number; body: string }> => {
      const r = await fetch(`${env.server.url}/admin`, { headers });
      return { status: r.status, body: await r.text() };
    };

    it('through certgate: the identity comes from the verified assertion; /admin authorizes on its SAN URI', { timeout: TEST_TIMEOUT }, async (t) => {
      const env = ready(t);
      if (env === undefined) return;
      const r = await mtlsRequest(env.gate.url, { cert: pki.clients.good.cert, key: pki.clients.good.key, ca: pki.root.cert }, { path: '/whoami' });
      t.assert.equal(r.status, 200, r.body);
      const { client } = r.json<{ client: Record<string, unknown> }>();
      t.assert.equal(client.subject, GOOD_SUBJECT);
      t.assert.equal(client.verified_by, 'assertion');
      t.assert.equal(client.fingerprint, pki.clients.good.x509.fingerprint256.replaceAll(':', '').toLowerCase());
      t.assert.deepEqual(client.san_uri, [GOOD_SAN_URI]);
      const admin = await mtlsRequest(env.gate.url, { cert: pki.clients.good.cert, key: pki.clients.good.key, ca: pki.root.cert }, { path: '/admin' });
      t.assert.equal(admin.status, 200, admin.body);
      const refused = await mtlsRequest(env.gate.url, { cert: pki.clients.direct.cert, key: pki.clients.direct.key, ca: pki.root.cert }, { path: '/admin' });
      t.assert.equal(refused.status, 403, refused.body);
    });

    it('attack: forged identity headers without an assertion, reached directly → 403', { timeout: TEST_TIMEOUT }, async (t) => {
      const env = ready(t);
      if (env === undefined) return;
      const r = await direct(env, { 'X-Client-Cert-Verified': 'SUCCESS', 'X-Client-Cert-Subject': 'CN=mallory', 'X-Client-Cert-SAN-URI': GOOD_SAN_URI });
      t.assert.equal(r.status, 403, r.body);
      t.assert.match(r.body, /invalid_assertion/);
    });

    it('attack: a token signed by another key under certgate\'s kid (bad signature) → 403', { timeout: TEST_TIMEOUT }, async (t) => {
      const env = ready(t);
      if (env === undefined) return;
      const mallory = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
      t.assert.equal((await direct(env, { 'X-Client-Cert-Assertion': await token({}, mallory) })).status, 403);
      t.assert.equal((await direct(env, { 'X-Client-Cert-Assertion': 'not.a.jws' })).status, 403);
    });

    it('attack: an assertion for another route\'s audience → 403', { timeout: TEST_TIMEOUT }, async (t) => {
      const env = ready(t);
      if (env === undefined) return;
      t.assert.equal((await direct(env, { 'X-Client-Cert-Assertion': await token({ aud: 'other-route' }) })).status, 403);
    });

    it('attack: an expired assertion (a captured one replayed after its ttl) → 403', { timeout: TEST_TIMEOUT }, async (t) => {
      const env = ready(t);
      if (env === undefined) return;
      const past = Math.floor(Date.now() / 1000) - 180;
      t.assert.equal((await direct(env, { 'X-Client-Cert-Assertion': await token({ iat: past, nbf: past, exp: past + 60 }) })).status, 403);
    });

    it('control: a valid token signed with certgate\'s key is accepted (each refusal above is that one defect)', { timeout: TEST_TIMEOUT }, async (t) => {
      const env = ready(t);
      if (env === undefined) return;
      const r = await direct(env, { 'X-Client-Cert-Assertion': await token() });
      t.assert.equal(r.status, 200, r.body);
    });
  });
}

describe('the docs point at files that exist', () => {
  const docs = ['README.md', 'deploy/kubernetes/README.md', 'examples/README.md', 'examples/clients/README.md',
    ...readdirSync(path.join(EXAMPLES, 'upstreams'), { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('README.md') && !f.split(path.sep).includes('node_modules')).map((f) => `examples/upstreams/${f}`)];

  it('README has the deployment sections the issue asks for', () => {
    const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8');
    for (const h of ['## Deployment', '### Run in a container', '### Run on Kubernetes', '### Use from your app / your client']) {
      t_assertIncludes(readme, `\n${h}\n`);
    }
  });

  for (const doc of docs) {
    it(`${doc}: every examples/ and deploy/ path it names exists`, () => {
      const text = readFileSync(path.join(ROOT, doc), 'utf8');
      const named = new Set([...text.matchAll(/(?<![\w.-])((?:examples|deploy\/kubernetes)(?:\/[\w./-]*[\w/])?)/g)].map((m) => m[1]!));
      // Relative links inside a doc resolve against its folder.
      for (const m of text.matchAll(/\]\((?!https?:|#)([^)#\s]+)/g)) named.add(path.relative(ROOT, path.resolve(path.dirname(path.join(ROOT, doc)), m[1]!)));
      for (const p of named) {
        if (!existsSync(path.join(ROOT, p))) throw new Error(`${doc} names ${p}, which does not exist`);
      }
    });
  }
});

function t_assertIncludes(text: string, part: string): void {
  if (!text.includes(part)) throw new Error(`missing ${JSON.stringify(part.trim())}`);
}
