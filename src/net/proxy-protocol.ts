/**
 * The PROXY protocol header (HAProxy's proxy-protocol.txt, versions 1 and 2), read from the first bytes
 * of a TCP connection before its TLS ClientHello. Pure: bytes in, a decision out; the socket side is
 * proxy/proxy-protocol-gate.ts.
 *
 * Hand-written, not proxy-protocol-js (4.0.6, the npm package most used for this): its parser takes a
 * whole buffer and cannot say "not enough bytes yet", its v2 parser ignores the length field (whatever
 * follows the addresses is returned as "data", so a header's end is unknown), its v1 parser is a regular
 * expression without the 107-byte bound, does not check the addresses and rejects `PROXY UNKNOWN`. Each of
 * those is a way for a hostile peer to stall or confuse the reader, which is the whole job here.
 *
 * Bounds, so a peer can never make certgate wait for or hold more than a few KiB:
 *   v1  a line of at most 107 bytes including CRLF, printable ASCII only; no CRLF within 107 bytes = invalid
 *   v2  16 bytes + the length field; a length above MAX_V2_PAYLOAD is invalid at once (not waited for);
 *       TLVs are walked to check that each fits inside the header, and otherwise skipped
 */
import { isIPv4, isIPv6 } from 'node:net';
import { ipv6Text } from './ipv6.js';

/** v1: "PROXY " … CRLF, at most this many bytes (the spec's worst case, TCP6 with the longest addresses). */
export const V1_MAX_BYTES = 107;
/** v2: the fixed part before the addresses. */
export const V2_FIXED_BYTES = 16;
/**
 * v2: the largest address + TLV block accepted. Addresses take at most 216 bytes (AF_UNIX); TLVs from real
 * senders (HAProxy's SSL and unique-id TLVs, AWS NLB's VPC endpoint id, Azure's link id) stay far below.
 */
export const MAX_V2_PAYLOAD = 4096;

const V1_SIGNATURE = Buffer.from('PROXY ', 'latin1');
const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);

export interface ProxyAddress {
  readonly address: string;
  readonly port: number;
  readonly family: 'IPv4' | 'IPv6';
}

export type ProxyHeader = {
  readonly kind: 'header';
  readonly version: 1 | 2;
  /** v2 LOCAL (the balancer's own health check): the connection is the sender's own. */
  readonly command: 'proxy' | 'local';
  /** The original client; absent for LOCAL, v1 UNKNOWN and v2 UNSPEC/UNIX (the peer's address stands). */
  readonly source?: ProxyAddress;
  /** Bytes the header took: what follows is the client's own (its TLS ClientHello). */
  readonly length: number;
};

export type ProxyParse =
  | ProxyHeader
  | { readonly kind: 'incomplete' }
  | { readonly kind: 'invalid'; readonly reason: string };

/** Does `buf` start like a PROXY header? 'maybe': it is a strict prefix of a signature (read more). */
export function proxySignature(buf: Buffer): 'v1' | 'v2' | 'maybe' | 'no' {
  if (buf.length === 0) return 'maybe';
  for (const [sig, name] of [[V1_SIGNATURE, 'v1'], [V2_SIGNATURE, 'v2']] as const) {
    const n = Math.min(buf.length, sig.length);
    if (buf.subarray(0, n).equals(sig.subarray(0, n))) return n === sig.length ? name : 'maybe';
  }
  return 'no';
}

/** The PROXY header at the start of `buf`, or why not (yet). */
export function parseProxyHeader(buf: Buffer): ProxyParse {
  const sig = proxySignature(buf);
  if (sig === 'maybe') return { kind: 'incomplete' };
  if (sig === 'no') return invalid('no PROXY protocol header (the connection must start with one)');
  return sig === 'v1' ? parseV1(buf) : parseV2(buf);
}

function invalid(reason: string): ProxyParse {
  return { kind: 'invalid', reason };
}

function parseV1(buf: Buffer): ProxyParse {
  const window = buf.subarray(0, V1_MAX_BYTES);
  let end = -1;
  for (let i = 0; i < window.length; i++) {
    const c = window[i]!;
    if (c === 0x0d) {
      if (i + 1 >= window.length) return window.length >= V1_MAX_BYTES ? invalid('v1 header longer than 107 bytes') : { kind: 'incomplete' };
      if (window[i + 1] !== 0x0a) return invalid('v1 header: CR not followed by LF');
      end = i;
      break;
    }
    if (c < 0x20 || c > 0x7e) return invalid('v1 header: a byte that is not printable ASCII');
  }
  if (end < 0) return window.length >= V1_MAX_BYTES ? invalid('v1 header longer than 107 bytes (no CRLF)') : { kind: 'incomplete' };
  const length = end + 2;
  const fields = window.subarray(V1_SIGNATURE.length, end).toString('latin1').split(' ');
  const proto = fields[0];
  // UNKNOWN: the sender could not tell (e.g. a health check); the rest of the line is ignored (spec 2.1).
  if (proto === 'UNKNOWN') return { kind: 'header', version: 1, command: 'proxy', length };
  if (proto !== 'TCP4' && proto !== 'TCP6') return invalid(`v1 header: protocol must be TCP4, TCP6 or UNKNOWN, not "${proto?.slice(0, 8) ?? ''}"`);
  if (fields.length !== 5) return invalid('v1 header: expected "PROXY TCP4|TCP6 src dst srcport dstport"');
  const [, src, dst, sport, dport] = fields as [string, string, string, string, string];
  const isIp = proto === 'TCP4' ? isIPv4 : isIPv6;
  // No zone ids (fe80::1%eth0): isIPv6 accepts them, but a client address never carries one.
  if (!isIp(src) || !isIp(dst) || src.includes('%') || dst.includes('%')) return invalid(`v1 header: addresses are not ${proto === 'TCP4' ? 'IPv4' : 'IPv6'}`);
  const port = v1Port(sport);
  if (port === undefined || v1Port(dport) === undefined) return invalid('v1 header: a port is not a number from 0 to 65535');
  return { kind: 'header', version: 1, command: 'proxy', length, source: { address: src, port, family: proto === 'TCP4' ? 'IPv4' : 'IPv6' } };
}

/** Decimal 0-65535 without a leading zero (the spec's form). */
function v1Port(s: string): number | undefined {
  if (!/^(?:0|[1-9][0-9]{0,4})$/.test(s)) return undefined;
  const n = Number(s);
  return n <= 65535 ? n : undefined;
}

function parseV2(buf: Buffer): ProxyParse {
  if (buf.length < V2_FIXED_BYTES) return { kind: 'incomplete' };
  const verCmd = buf[12]!;
  if (verCmd >> 4 !== 2) return invalid(`v2 header: version ${verCmd >> 4}, expected 2`);
  const cmd = verCmd & 0x0f;
  if (cmd > 1) return invalid(`v2 header: unknown command ${cmd}`);
  const famProto = buf[13]!;
  const payload = buf.readUInt16BE(14);
  // Refused before waiting for it: a peer announcing 64 KiB must not make certgate buffer 64 KiB.
  if (payload > MAX_V2_PAYLOAD) return invalid(`v2 header: length ${payload} is above the ${MAX_V2_PAYLOAD}-byte limit`);
  const length = V2_FIXED_BYTES + payload;
  if (buf.length < length) return { kind: 'incomplete' };
  const body = buf.subarray(V2_FIXED_BYTES, length);
  // LOCAL: the sender's own connection (a health check); its address block, if any, is ignored (spec 2.2).
  if (cmd === 0) return { kind: 'header', version: 2, command: 'local', length };
  const family = famProto >> 4;
  const transport = famProto & 0x0f;
  if (family > 3 || transport > 2) return invalid(`v2 header: unknown address family/protocol 0x${famProto.toString(16)}`);
  if (transport === 2) return invalid('v2 header: a datagram (UDP) connection on a TCP listener');
  const addrLen = [0, 12, 36, 216][family]!;
  if (payload < addrLen) return invalid(`v2 header: length ${payload} is too short for its addresses (${addrLen})`);
  const tlvProblem = checkTlvs(body.subarray(addrLen));
  if (tlvProblem !== undefined) return invalid(tlvProblem);
  if (family === 1) {
    const address = `${body[0]}.${body[1]}.${body[2]}.${body[3]}`;
    return { kind: 'header', version: 2, command: 'proxy', length, source: { address, port: body.readUInt16BE(8), family: 'IPv4' } };
  }
  if (family === 2) {
    return { kind: 'header', version: 2, command: 'proxy', length, source: { address: ipv6Text(body.subarray(0, 16)), port: body.readUInt16BE(32), family: 'IPv6' } };
  }
  // UNSPEC, UNIX: no IP address to name (spec: the receiver uses the connection's own).
  return { kind: 'header', version: 2, command: 'proxy', length };
}

/** TLVs are not used, only checked to be well formed: type (1), length (2, big-endian), value, to the end. */
function checkTlvs(tlvs: Buffer): string | undefined {
  let at = 0;
  while (at < tlvs.length) {
    if (tlvs.length - at < 3) return 'v2 header: a truncated TLV';
    const len = tlvs.readUInt16BE(at + 1);
    at += 3 + len;
    if (at > tlvs.length) return 'v2 header: a TLV longer than the header';
  }
  return undefined;
}
