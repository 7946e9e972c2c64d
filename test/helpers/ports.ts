/**
 * For real servers that cannot listen on port 0 and say which port they got (nginx, HAProxy) and for tests that
 * need an address certgate will move to: a port the kernel chose a moment ago and released. Another process may
 * take it in between; the callers retry or fail loudly.
 */
import net from 'node:net';

export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
