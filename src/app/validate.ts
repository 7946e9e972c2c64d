/**
 * The one validation path `certgate check` and a live reload (app/live-config.ts) share: everything
 * `serve` loads from files — the config schema (file:line:col), every PEM (tls/material.ts), each route's
 * upstream_ca, admin.token_file, headers.assertion's key files, the enrollment files — plus the advice check prints (keep-alive timing,
 * an exposed admin listener). A reload applies a config only when this finds no error; check prints it.
 */
import { createHash } from 'node:crypto';
import { access } from 'node:fs/promises';
import { parseConfig, readConfigSource } from '../config/load.js';
import { keepAliveAdvice } from '../config/keepalive.js';
import type { Config } from '../config/types.js';
import { CertgateError, type Problem } from '../errors.js';
import { adminExposure } from '../admin/host.js';
import { loadAdminToken, type AdminToken } from '../admin/auth.js';
import { inspectTls, type TlsMaterial } from '../tls/material.js';
import { inspectAssertionKeys, type AssertionKeys } from '../tls/assertion-keys.js';
import type { LoadedEnrollment } from '../enroll/handler.js';

export interface Validated {
  /** Absent when the config itself does not parse or fit the schema. */
  readonly config?: Config;
  /** The loaded TLS material when every PEM is usable. */
  readonly material?: TlsMaterial;
  /** SHA-256 of the file's bytes (hex); absent when it cannot be read. */
  readonly sha256?: string;
  /** admin.token_file, loaded (a live reload puts it in force). */
  readonly adminToken?: AdminToken;
  /** headers.assertion's keys, loaded (the admin listener publishes them; a reload compares their digest). */
  readonly assertionKeys?: AssertionKeys;
  /** enrollment, loaded and checked as serve loads it (a live reload puts it in force). */
  readonly enrollment?: LoadedEnrollment;
  /** The file's text as validated (a cluster primary hands exactly these bytes to its workers). */
  readonly source?: string;
  readonly problems: Problem[];
}

export async function validateConfigFile(file: string): Promise<Validated> {
  let abs: string;
  let source: string;
  try {
    ({ abs, source } = await readConfigSource(file));
  } catch (err) {
    if (err instanceof CertgateError) return { problems: [err.toProblem()] };
    throw err;
  }
  const sha256 = createHash('sha256').update(source).digest('hex');
  let config: Config;
  try {
    config = parseConfig(source, abs);
  } catch (err) {
    if (err instanceof CertgateError) return { sha256, problems: err.problems.length > 0 ? [...err.problems] : [err.toProblem()] };
    throw err;
  }
  const { material, problems } = await inspectTls(config.tls, { listenHost: config.listen.host });
  for (const route of config.routes) {
    if (route.upstream_ca === undefined) continue;
    try {
      await access(route.upstream_ca);
    } catch {
      problems.push({ severity: 'error', code: 'CG_FILE_READ', message: `routes[${route.name}].upstream_ca: cannot read ${route.upstream_ca}`, file: route.upstream_ca });
    }
  }
  let adminToken: AdminToken | undefined;
  if (config.admin.token_file !== undefined) {
    try {
      adminToken = await loadAdminToken(config.admin.token_file);
    } catch (err) {
      if (!(err instanceof CertgateError)) throw err;
      problems.push(err.toProblem());
    }
  }
  let assertionKeys: AssertionKeys | undefined;
  if (config.headers.assertion !== undefined) {
    const inspected = await inspectAssertionKeys(config.headers.assertion, config.file, config.tls.allow_insecure_key_permissions);
    problems.push(...inspected.problems);
    assertionKeys = inspected.keys;
  }
  const enrollment = config.enrollment;
  let loadedEnrollment: LoadedEnrollment | undefined;
  if (enrollment !== undefined) {
    const before = problems.length;
    for (const key of ['ca_cert', 'ca_key', 'tokens_file'] as const) {
      try {
        await access(enrollment[key]);
      } catch {
        problems.push({
          severity: 'error', code: 'CG_FILE_READ', message: `enrollment.${key}: cannot read ${enrollment[key]}`, file: config.file,
          line: enrollment.lines[key], hint: `create ${enrollment[key]} or correct enrollment.${key}`,
        });
      }
    }
    // Readable: then everything serve's createEnrollment checks (the CA's key matches its certificate, the CA
    // is in tls.client_ca, the tokens file parses, the state file's folder is writable). Imported only when
    // configured: the CSR/PKI libraries cost ~10 MB of RSS.
    if (problems.length === before) {
      try {
        loadedEnrollment = await (await import('../enroll/handler.js')).loadEnrollment({ file: config.file, enrollment, tls: config.tls });
      } catch (err) {
        if (!(err instanceof CertgateError)) throw err;
        problems.push(...(err.problems.length > 0 ? err.problems : [err.toProblem()]));
      }
    }
  }
  const keepAlive = keepAliveAdvice(config);
  if (keepAlive !== undefined) problems.push(keepAlive);
  const exposed = adminExposure(config);
  if (exposed !== undefined) problems.push(exposed);
  return {
    config, sha256, source, problems, ...(material !== undefined && { material }), ...(adminToken !== undefined && { adminToken }),
    ...(assertionKeys !== undefined && { assertionKeys }), ...(loadedEnrollment !== undefined && { enrollment: loadedEnrollment }),
  };
}
