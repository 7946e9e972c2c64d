/**
 * Address ranges written as CIDR (`10.0.0.0/8`, `2001:db8::/32`, or one address alone), checked once when
 * the config loads and matched per connection with Node's net.BlockList, which also matches an
 * IPv4-mapped IPv6 peer (`::ffff:10.1.2.3`, how a dual-stack listener on `::` sees an IPv4 client)
 * against IPv4 ranges. Pure.
 */
import { BlockList, isIPv4, isIPv6 } from 'node:net';
import { ipv6Bytes, ipv6Text } from './ipv6.js';

export interface Cidr {
  readonly address: string;
  readonly prefix: number;
  readonly family: 'ipv4' | 'ipv6';
}

/** `text` as a CIDR, or why it is not one (a sentence with the fix). */
export function parseCidr(text: string): Cidr | { readonly problem: string } {
  const slash = text.indexOf('/');
  const address = slash < 0 ? text : text.slice(0, slash);
  const family = isIPv4(address) ? 'ipv4' : isIPv6(address) && !address.includes('%') ? 'ipv6' : undefined;
  if (family === undefined) return { problem: `"${text}" is not an IPv4 or IPv6 address or CIDR (host names and zone ids are not accepted)` };
  const max = family === 'ipv4' ? 32 : 128;
  if (slash < 0) return { address, prefix: max, family };
  const p = text.slice(slash + 1);
  if (!/^(?:0|[1-9][0-9]{0,2})$/.test(p) || Number(p) > max) return { problem: `"${text}": the prefix length must be a number from 0 to ${max}` };
  const prefix = Number(p);
  const network = networkOf(address, family, prefix);
  if (family === 'ipv4' ? network !== address : !ipv6Bytes(network).equals(ipv6Bytes(address))) {
    // 10.0.0.1/8 is most likely a typo for one address or for 10.0.0.0/8: say which range it would be.
    return { problem: `"${text}" has bits set past its /${prefix} prefix: the range is ${network}/${prefix}, one address is ${address} alone` };
  }
  return { address, prefix, family };
}

/** A matcher over already parsed ranges: true when `address` (as Node reports a peer) is in one of them. */
export function addressMatcher(cidrs: readonly Cidr[]): (address: string | undefined) => boolean {
  const list = new BlockList();
  for (const c of cidrs) list.addSubnet(c.address, c.prefix, c.family);
  return (address) => {
    if (address === undefined) return false;
    const family = isIPv4(address) ? 'ipv4' : isIPv6(address) ? 'ipv6' : undefined;
    return family !== undefined && list.check(address, family);
  };
}

function networkOf(address: string, family: 'ipv4' | 'ipv6', prefix: number): string {
  const bytes = family === 'ipv4' ? Buffer.from(address.split('.').map(Number)) : ipv6Bytes(address);
  for (let bit = prefix; bit < bytes.length * 8; bit++) bytes[bit >> 3]! &= ~(0x80 >> (bit & 7));
  return family === 'ipv4' ? [...bytes].join('.') : ipv6Text(bytes);
}
