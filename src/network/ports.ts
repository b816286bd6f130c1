// Published ports: `-p HOSTPORT:CTRPORT[/tcp|/udp]` and `-p IP:HOSTPORT:CTRPORT[/tcp|/udp]`, and the
// check that a host port is free before the container starts (bind(2) it for a moment, through FFI).
import { ptr } from "bun:ffi";
import { libc, errno, SysError } from "../libc/ffi.ts";
import { O_CLOEXEC } from "../libc/constants.ts";
import { parseIPv4 } from "./ipv4.ts";

export type Protocol = "tcp" | "udp";

export interface PortMapping {
  /** The host address to publish on; null for every address of the host (0.0.0.0). */
  hostIp: string | null;
  hostPort: number;
  containerPort: number;
  protocol: Protocol;
  /** The `-p` value as the user wrote it, for messages. */
  spec: string;
}

/** A malformed `-p`, or a host port that cannot be published; the message is one line for the user. */
export class PortError extends Error {}

const USAGE = "expected HOSTPORT:CTRPORT[/tcp|/udp] or IP:HOSTPORT:CTRPORT[/tcp|/udp]";

function port(spec: string, what: string, text: string): number {
  const n = /^\d{1,5}$/.test(text) ? Number(text) : NaN;
  if (!(n >= 1 && n <= 65535)) {
    throw new PortError(`-p ${spec}: ${what} ${text === "" ? "is missing" : `"${text}" is not a port number (1-65535)`}`);
  }
  return n;
}

/** Parse one `-p` value. */
export function parsePortMapping(spec: string): PortMapping {
  const slash = spec.split("/");
  if (slash.length > 2) throw new PortError(`-p ${spec}: ${USAGE}`);
  const protocol = slash[1] ?? "tcp";
  if (protocol !== "tcp" && protocol !== "udp") {
    throw new PortError(`-p ${spec}: protocol "${protocol}" is not supported (use tcp or udp)`);
  }
  if (slash[0]!.includes("[")) throw new PortError(`-p ${spec}: IPv6 host addresses are not supported`);
  const parts = slash[0]!.split(":");
  if (parts.length === 1) {
    throw new PortError(`-p ${spec}: give the host port too, as in -p ${parts[0] || "8080"}:${parts[0] || "80"} (${USAGE})`);
  }
  if (parts.length > 3) throw new PortError(`-p ${spec}: ${USAGE}`);
  let hostIp: string | null = null;
  if (parts.length === 3) {
    const ip = parts[0]!;
    if (parseIPv4(ip) === null) throw new PortError(`-p ${spec}: "${ip}" is not an IPv4 address`);
    hostIp = ip === "0.0.0.0" ? null : ip;
  }
  const hostPort = port(spec, "the host port", parts[parts.length - 2]!);
  const containerPort = port(spec, "the container port", parts[parts.length - 1]!);
  return { hostIp, hostPort, containerPort, protocol, spec };
}

/** Whether two mappings claim the same host port (an address overlaps itself and 0.0.0.0). */
export function sameHostPort(a: Omit<PortMapping, "spec">, b: Omit<PortMapping, "spec">): boolean {
  return a.protocol === b.protocol && a.hostPort === b.hostPort && (a.hostIp === null || b.hostIp === null || a.hostIp === b.hostIp);
}

/** Parse every `-p` value; refuse two that publish the same host port. */
export function parsePortMappings(specs: readonly string[]): PortMapping[] {
  const mappings = specs.map(parsePortMapping);
  mappings.forEach((m, i) => {
    const other = mappings.slice(0, i).find((o) => sameHostPort(o, m));
    if (other) throw new PortError(`-p ${m.spec}: host port ${m.hostPort}/${m.protocol} is already published by -p ${other.spec}`);
  });
  return mappings;
}

const AF_INET = 2, SOCK_STREAM = 1, SOCK_DGRAM = 2, SOL_SOCKET = 1, SO_REUSEADDR = 2;
const EADDRINUSE = 98, EADDRNOTAVAIL = 99, EACCES = 13;

/** struct sockaddr_in for `ip:port` (ip null: INADDR_ANY). */
function sockaddrIn(ip: string | null, port: number): Uint8Array {
  const sa = new Uint8Array(16);
  const view = new DataView(sa.buffer);
  view.setUint16(0, AF_INET, true);
  view.setUint16(2, port, false);
  view.setUint32(4, ip === null ? 0 : parseIPv4(ip)!, false);
  return sa;
}

/**
 * Throw a PortError unless the host port of `m` can be bound now: e.g. `-p 8080:80: host port
 * 8080/tcp is already in use`. TCP is tried with SO_REUSEADDR, as servers bind, so that a socket
 * in TIME_WAIT does not count as a user, but a listener (on any address that overlaps) does.
 * Published ports are forwarded by the firewall, not bound, so minic's own other containers are
 * checked separately (index.ts compares against the live leases).
 */
export function checkHostPortFree(m: PortMapping): void {
  const fd = libc.socket(AF_INET, (m.protocol === "tcp" ? SOCK_STREAM : SOCK_DGRAM) | O_CLOEXEC, 0);
  if (fd < 0) throw new SysError("socket", errno(), `AF_INET (checking -p ${m.spec})`);
  try {
    if (m.protocol === "tcp") libc.setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, ptr(new Int32Array([1])), 4);
    const sa = sockaddrIn(m.hostIp, m.hostPort);
    if (libc.bind(fd, ptr(sa), sa.length) === 0) return;
    const code = errno();
    const where = `${m.hostIp ?? "0.0.0.0"}:${m.hostPort}/${m.protocol}`;
    if (code === EADDRINUSE) throw new PortError(`-p ${m.spec}: host port ${m.hostPort}/${m.protocol} is already in use`);
    if (code === EADDRNOTAVAIL) throw new PortError(`-p ${m.spec}: ${m.hostIp} is not an address of this host`);
    if (code === EACCES) throw new PortError(`-p ${m.spec}: not allowed to bind ${where} (ports below 1024 need root)`);
    throw new SysError("bind", code, `${where} (checking -p ${m.spec})`);
  } finally {
    libc.close(fd);
  }
}

export function checkHostPortsFree(mappings: readonly PortMapping[]): void {
  for (const m of mappings) checkHostPortFree(m);
}
