/** How Node's and OpenSSL's errors read inside a finding. */

export function errCode(err: unknown): string {
  const e = err as { code?: unknown; message?: unknown };
  return typeof e.code === 'string' ? e.code : '';
}

export function errText(err: unknown): string {
  const e = err as { code?: unknown; message?: unknown };
  const msg = typeof e.message === 'string' ? e.message.replace(/^error:[0-9A-F]+:[^:]*:[^:]*:/, '') : String(err);
  return typeof e.code === 'string' && !msg.includes(e.code) ? `${msg} (${e.code})` : msg;
}
