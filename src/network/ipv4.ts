// IPv4 addresses and subnets as numbers: parsing, formatting, and the arithmetic the IPAM needs.

/** A dotted quad as an unsigned 32-bit number, or null if `text` is not one. */
export function parseIPv4(text: string): number | null {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(text);
  if (!m) return null;
  const parts = m.slice(1).map(Number);
  if (parts.some((p, i) => p > 255 || (m[i + 1]!.length > 1 && m[i + 1]!.startsWith("0")))) return null;
  return ((parts[0]! << 24) | (parts[1]! << 16) | (parts[2]! << 8) | parts[3]!) >>> 0;
}

export function formatIPv4(n: number): string {
  return `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

/** The four bytes of an address, in network order, as netlink and sockaddr_in carry them. */
export function ipv4Bytes(text: string): Uint8Array {
  const n = parseIPv4(text);
  if (n === null) throw new Error(`not an IPv4 address: ${JSON.stringify(text)}`);
  return new Uint8Array([n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255]);
}

export interface Subnet {
  /** As given, normalised: "10.77.0.0/24". */
  cidr: string;
  network: number;
  prefix: number;
  /** The network's broadcast address (all host bits set). */
  broadcast: number;
  /** The bridge's address: the first host address (.1). */
  gateway: number;
}

/** Parse "A.B.C.D/N" (8 <= N <= 30; the host bits must be zero) into a Subnet. */
export function parseSubnet(cidr: string): Subnet {
  const m = /^([\d.]+)\/(\d{1,2})$/.exec(cidr.trim());
  const base = m ? parseIPv4(m[1]!) : null;
  const prefix = m ? Number(m[2]) : NaN;
  if (!m || base === null) throw new Error(`subnet ${JSON.stringify(cidr)}: expected an IPv4 CIDR such as 10.77.0.0/24`);
  if (!(prefix >= 8 && prefix <= 30)) throw new Error(`subnet ${cidr}: the prefix length must be between /8 and /30`);
  const mask = maskOf(prefix);
  if ((base & ~mask) >>> 0 !== 0) {
    throw new Error(`subnet ${cidr}: host bits are set; did you mean ${formatIPv4((base & mask) >>> 0)}/${prefix}?`);
  }
  const broadcast = (base | ~mask) >>> 0;
  return { cidr: `${formatIPv4(base)}/${prefix}`, network: base, prefix, broadcast, gateway: base + 1 };
}

export function maskOf(prefix: number): number {
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
}

/** Whether `ip` lies in `subnet` (network and broadcast included). */
export function inSubnet(ip: number, subnet: Subnet): boolean {
  return (ip & maskOf(subnet.prefix)) >>> 0 === subnet.network;
}

/** Whether two prefixes share any address. */
export function overlaps(a: { network: number; prefix: number }, b: { network: number; prefix: number }): boolean {
  const mask = maskOf(Math.min(a.prefix, b.prefix));
  return (a.network & mask) >>> 0 === (b.network & mask) >>> 0;
}

/** A locally administered unicast MAC derived from an IPv4 address: 02:4d:AA:BB:CC:DD ("M" for minic). */
export function macForIPv4(ip: number): Uint8Array {
  return new Uint8Array([0x02, 0x4d, ip >>> 24, (ip >>> 16) & 255, (ip >>> 8) & 255, ip & 255]);
}
