// `--network bridge`: the bridge minic0, a veth pair per container with eth0 inside, an address
// from the IPAM, a default route, forwarding, masquerading and published ports.
//
// The agent calls setupBridgeNetwork while the child waits on its sync pipe, after it unshared its
// network namespace (reached as /proc/PID/ns/net), and teardownBridgeNetwork (or the returned
// cleanup) when the container has ended, failed runs included. Everything happens under the IPAM
// lock, so concurrent runs serialise here for a few milliseconds:
//
//   1. reclaim the leases of dead runs; delete their veths and any other orphan port of minic0
//   2. ensure minic0: a bridge, with the gateway address (.1) of the subnet, up, route_localnet
//      (created only if the subnet overlaps no route of the host)
//   3. take the lease (fixed --ip or the lowest free address) and write it, before any kernel
//      object exists, so that a crash from here on leaves a record for the next run to clean
//   4. create the veth pair in one request: host end veth-XXXXXXXXXX, enslaved to minic0 and up;
//      peer eth0 created directly inside the container's namespace, its MAC derived from its
//      address (so a reused address keeps its MAC and neighbours' ARP caches stay right)
//   5. in the container's namespace (netlink.ts: a socket opened there through setns): eth0 gets
//      its address, goes up, and gets the default route via the bridge (lo is the child's)
//   6. net.ipv4.ip_forward=1 and the firewall rebuilt from the live leases (nat.ts)
// A failure in 4-6 undoes what was done (veth, lease, rules) before the error is thrown.
//
// The bridge itself stays when the last container ends (as docker0 does): it holds no state of
// any container, and keeping it saves the next run its creation. Its firewall rules do not stay.
import { CryptoHasher } from "bun";
import { libc, SysError } from "../libc/ffi.ts";
import { isDirectory } from "../libc/fs.ts";
import { Ipam, leaseAlive, networkDir, type LeaseBook, type LeasePort } from "./ipam.ts";
import { formatIPv4, macForIPv4, maskOf, overlaps, parseIPv4, parseSubnet, type Subnet } from "./ipv4.ts";
import { IFF_UP, Netlink, openNamespace, withNetlink } from "./netlink.ts";
import { applyFirewall, enableIpForwarding, enableRouteLocalnet, firewallBackend, type FirewallConfig } from "./nat.ts";
import { PortError, checkHostPortsFree, sameHostPort, type PortMapping } from "./ports.ts";

export { DEFAULT_SUBNET } from "./ipam.ts";
export { parsePortMapping, parsePortMappings, checkHostPortsFree, PortError, type PortMapping } from "./ports.ts";

/** The bridge's name. */
export const BRIDGE = "minic0";
/** The container's end of the veth pair. */
export const CONTAINER_IFNAME = "eth0";

export interface BridgeNetworkOptions {
  /** The container's id (its lease, its veth's name, its rules' comments). */
  id: string;
  /** The container's process, whose network namespace (/proc/PID/ns/net) gets eth0. */
  pid: number;
  /** A fixed address (`--ip`), which must be a free host address of the subnet. */
  ip?: string;
  /** Published ports (`-p`, parsed with parsePortMappings). */
  ports?: PortMapping[];
  /** The network's subnet (default 10.77.0.0/24). */
  subnet?: string;
  /** Where timed `[network] ...` lines go (the agent's --trace); off when absent. */
  trace?: (line: string) => void;
}

export interface BridgeNetwork {
  /** The container's address, e.g. "10.77.0.2". */
  address: string;
  prefix: number;
  /** The bridge's address, the container's default gateway, e.g. "10.77.0.1". */
  gateway: string;
  subnet: string;
  /** The host end of the veth pair. */
  veth: string;
  /** The MAC address of eth0. */
  mac: string;
  /** teardownBridgeNetwork(id): safe to call more than once. */
  cleanup(): Promise<void>;
}

export interface TeardownOptions {
  trace?: (line: string) => void;
  /** Only used if the bridge is gone and its subnet cannot be read from it. */
  subnet?: string;
}

/** The host end of container `id`'s veth pair: "veth-" and 10 hex digits of a hash of the id (IFNAMSIZ is 16). */
export function vethName(id: string): string {
  return `veth-${new CryptoHasher("sha256").update(id).digest("hex").slice(0, 10)}`;
}

/** A trace function that prefixes each line with the milliseconds since the previous one. */
function stopwatch(trace?: (line: string) => void): (what: string) => void {
  if (!trace) return () => {};
  let last = Bun.nanoseconds();
  return (what) => {
    const now = Bun.nanoseconds();
    trace(`[network] ${what} (${((now - last) / 1e6).toFixed(3)} ms)`);
    last = now;
  };
}

const formatMac = (mac: Uint8Array) => [...mac].map((b) => b.toString(16).padStart(2, "0")).join(":");
const isGone = (error: unknown) => error instanceof SysError && (error.code === "ENODEV" || error.code === "ENOENT");

/** Delete a link if it exists; "already gone" is fine. Returns whether it deleted one. */
function deleteLinkIfExists(nl: Netlink, name: string): boolean {
  try {
    if (nl.linkIndex(name) === null) return false;
    nl.deleteLink(name);
    return true;
  } catch (error) {
    if (isGone(error)) return false;
    throw error;
  }
}

/** The subnet of the bridge's (first) IPv4 address, if it exists and has one. */
function bridgeSubnet(nl: Netlink): Subnet | null {
  const index = nl.linkIndex(BRIDGE);
  const addr = index === null ? undefined : nl.addresses(index)[0];
  if (!addr) return null;
  const network = (parseIPv4(addr.address)! & maskOf(addr.prefix)) >>> 0;
  return parseSubnet(`${formatIPv4(network)}/${addr.prefix}`);
}

/** Refuse a subnet that overlaps a route of the host through another device. */
function checkSubnetFree(nl: Netlink, subnet: Subnet, bridgeIndex: number | null): void {
  const names = new Map(nl.links().map((l) => [l.index, l.name]));
  for (const route of nl.routes()) {
    if (route.table !== 254 || route.prefix === 0 || route.type !== 1 /* RTN_UNICAST */) continue;
    if (route.oif !== null && route.oif === bridgeIndex) continue;
    const dst = parseIPv4(route.dst);
    if (dst !== null && overlaps({ network: dst, prefix: route.prefix }, subnet)) {
      const dev = route.oif === null ? "" : ` dev ${names.get(route.oif) ?? route.oif}`;
      throw new Error(`--network bridge: the subnet ${subnet.cidr} overlaps the host's route ${route.dst}/${route.prefix}${dev}; choose another subnet`);
    }
  }
}

/** Make minic0 a bridge with the subnet's gateway address, up. Returns its ifindex. */
function ensureBridge(nl: Netlink, subnet: Subnet, othersLive: boolean): number {
  let link = nl.link(BRIDGE);
  if (link && link.kind !== "bridge") throw new Error(`--network bridge: ${BRIDGE} exists but is a ${link.kind ?? "plain"} device, not a bridge`);
  const gateway = formatIPv4(subnet.gateway);
  if (!link) {
    checkSubnetFree(nl, subnet, null);
    try {
      nl.createBridge(BRIDGE, { mac: macForIPv4(subnet.gateway) });
    } catch (error) {
      if (!(error instanceof SysError && error.code === "EEXIST")) throw error;
    }
    link = nl.link(BRIDGE);
    if (!link) throw new Error(`--network bridge: ${BRIDGE} vanished right after it was created`);
  }
  const addresses = nl.addresses(link.index);
  const wanted = addresses.some((a) => a.address === gateway && a.prefix === subnet.prefix);
  if (!wanted) checkSubnetFree(nl, subnet, link.index);
  for (const a of addresses) {
    if (a.address === gateway && a.prefix === subnet.prefix) continue;
    if (othersLive) {
      throw new Error(`--network bridge: ${BRIDGE} is ${a.address}/${a.prefix} and running containers use it; ` +
        `it cannot switch to the subnet ${subnet.cidr} until they end`);
    }
    nl.deleteAddress(link.index, a.address, a.prefix);
  }
  if (!wanted) nl.addAddress(link.index, gateway, subnet.prefix, { replace: true });
  if (!(link.flags & IFF_UP)) nl.setUp(link.index);
  enableRouteLocalnet(BRIDGE);
  return link.index;
}

/**
 * Reclaim dead leases and delete their veths (usually gone already: a veth dies with the
 * container's namespace), and any other veth on the bridge that no live lease owns. Leases are
 * written before veths are made, so a live run's veth always has one. Returns the reclaimed ids.
 */
function sweep(nl: Netlink, book: LeaseBook): string[] {
  const dead = book.reclaimDead();
  const keep = new Set(book.live().map(([, l]) => l.veth ?? vethName(l.id)));
  for (const [, lease] of dead) {
    const veth = lease.veth ?? vethName(lease.id);
    if (!keep.has(veth)) deleteLinkIfExists(nl, veth);
  }
  const bridge = nl.linkIndex(BRIDGE);
  if (bridge !== null) {
    for (const link of nl.links()) {
      if (link.master === bridge && link.kind === "veth" && !keep.has(link.name)) deleteLinkIfExists(nl, link.name);
    }
  }
  return dead.map(([, l]) => l.id);
}

/** The firewall rules for the live leases, or null (no rules at all) when there are none. */
function firewallConfig(book: LeaseBook, subnet: Subnet): FirewallConfig | null {
  const live = book.live();
  if (!live.length) return null;
  return {
    bridge: BRIDGE,
    subnet: subnet.cidr,
    forwards: live.flatMap(([ip, lease]) => (lease.ports ?? []).map((p) => ({ id: lease.id, containerIp: ip, ...p }))),
  };
}

/** Set up `--network bridge` for a container whose network namespace is /proc/PID/ns/net. */
export async function setupBridgeNetwork(options: BridgeNetworkOptions): Promise<BridgeNetwork> {
  const { id, pid } = options;
  const ports = options.ports ?? [];
  const ipam = new Ipam({ subnet: options.subnet });
  const subnet = ipam.subnet;
  const veth = vethName(id);
  const nsPath = `/proc/${pid}/ns/net`;
  const step = stopwatch(options.trace);
  const backend = await firewallBackend(); // fail (or install nftables) before anything is created
  checkHostPortsFree(ports);
  step(`firewall backend ${backend}; host ports ${ports.map((p) => p.spec).join(" ") || "(none)"} free`);

  return ipam.locked(async (book) => {
    step(`locked ${ipam.dir}/lock`);
    const brIndex = withNetlink((nl) => {
      const reclaimed = sweep(nl, book);
      if (reclaimed.length) step(`reclaimed the leases of dead containers ${reclaimed.join(", ")}`);
      return ensureBridge(nl, subnet, book.live().length > 0);
    });
    step(`bridge ${BRIDGE} ${formatIPv4(subnet.gateway)}/${subnet.prefix} up`);
    for (const [, lease] of book.live()) {
      if (lease.veth === veth && lease.id !== id) throw new Error(`container ${id}: its veth name ${veth} is taken by container ${lease.id}`);
      for (const m of ports) {
        if ((lease.ports ?? []).some((p) => sameHostPort(p, m))) {
          throw new PortError(`-p ${m.spec}: host port ${m.hostPort}/${m.protocol} is already published by container ${lease.id}`);
        }
      }
    }
    const leasePorts: LeasePort[] = ports.map(({ hostIp, hostPort, containerPort, protocol }) => ({ hostIp, hostPort, containerPort, protocol }));
    const allocation = book.allocate({ id, pid, ip: options.ip, veth, ports: leasePorts });
    book.save();
    step(`lease ${allocation.address} for ${id}`);
    const mac = macForIPv4(parseIPv4(allocation.address)!);
    try {
      withNetlink((nl) => {
        deleteLinkIfExists(nl, veth); // left by an earlier run of the same id
        const nsFd = openNamespace(nsPath);
        try {
          nl.createVethPair(veth, CONTAINER_IFNAME, { master: brIndex, up: true, peerNetnsFd: nsFd, peerMac: mac });
        } finally {
          libc.close(nsFd);
        }
        const index = nl.linkIndex(veth);
        if (index !== null) nl.setAlias(index, `minic container ${id}`);
      });
      step(`veth ${veth} in ${BRIDGE}, peer ${CONTAINER_IFNAME} in ${nsPath}`);
      const inner = Netlink.openIn(nsPath);
      try {
        const eth0 = inner.linkIndex(CONTAINER_IFNAME);
        if (eth0 === null) throw new Error(`${CONTAINER_IFNAME} did not appear in ${nsPath}`);
        inner.addAddress(eth0, allocation.address, allocation.prefix);
        inner.setUp(eth0);
        inner.addDefaultRoute(allocation.gateway, eth0);
      } finally {
        inner.close();
      }
      step(`${CONTAINER_IFNAME} ${allocation.address}/${allocation.prefix} up, default via ${allocation.gateway}`);
      enableIpForwarding();
      await applyFirewall(firewallConfig(book, subnet), { stateFile: `${ipam.dir}/firewall` });
      step(`ip_forward on; firewall rules for ${book.live().length} container(s)`);
    } catch (error) {
      try {
        withNetlink((nl) => deleteLinkIfExists(nl, veth));
      } catch {}
      book.release(id);
      book.save();
      try {
        await applyFirewall(firewallConfig(book, subnet), { stateFile: `${ipam.dir}/firewall` });
      } catch {}
      throw error;
    }
    return {
      address: allocation.address,
      prefix: allocation.prefix,
      gateway: allocation.gateway,
      subnet: subnet.cidr,
      veth,
      mac: formatMac(mac),
      cleanup: () => teardownBridgeNetwork(id, { subnet: subnet.cidr, trace: options.trace }),
    };
  });
}

/**
 * Remove what setupBridgeNetwork made for container `id`: its veth (deleting one end deletes the
 * other), its lease, its port rules (the firewall is rebuilt from the remaining live leases, or
 * emptied). Parts already gone are fine: the veth vanishes by itself when the container's network
 * namespace dies. Every part is attempted; the first failure is thrown at the end.
 */
export async function teardownBridgeNetwork(id: string, options: TeardownOptions = {}): Promise<void> {
  const ipam = new Ipam({ subnet: options.subnet });
  const step = stopwatch(options.trace);
  await ipam.locked(async (book) => {
    step(`locked ${ipam.dir}/lock`);
    const errors: unknown[] = [];
    const released = book.release(id);
    book.save();
    step(`released ${released.map(([ip]) => ip).join(", ") || "no lease"} of ${id}`);
    let subnet: Subnet = ipam.subnet;
    try {
      withNetlink((nl) => {
        subnet = bridgeSubnet(nl) ?? subnet;
        for (const veth of new Set([vethName(id), ...released.map(([, l]) => l.veth).filter((v): v is string => !!v)])) {
          try {
            deleteLinkIfExists(nl, veth);
          } catch (error) {
            errors.push(error);
          }
        }
        sweep(nl, book);
        // The last container gone: the bridge goes too, so that minic leaves no link behind
        // (the next bridge container recreates it, in about a millisecond).
        if (book.live().length === 0) deleteLinkIfExists(nl, BRIDGE);
      });
      step(`deleted ${vethName(id)} (if it was still there)`);
    } catch (error) {
      errors.push(error);
    }
    try {
      await applyFirewall(firewallConfig(book, subnet), { stateFile: `${ipam.dir}/firewall` });
      step(`firewall rules for ${book.live().length} container(s)`);
    } catch (error) {
      errors.push(error);
    }
    if (errors.length) throw errors[0];
  });
}

/**
 * What dead containers left: leases whose container and agent are gone, their veths, orphan ports
 * of the bridge, and their firewall rules. Returns the ids whose leases were reclaimed.
 */
export async function cleanupStaleNetworks(options: TeardownOptions = {}): Promise<string[]> {
  if (!isDirectory(networkDir())) return []; // bridge networking never used: nothing to do
  const ipam = new Ipam({ subnet: options.subnet });
  return ipam.locked(async (book) => {
    let subnet: Subnet = ipam.subnet;
    const ids = withNetlink((nl) => {
      subnet = bridgeSubnet(nl) ?? subnet;
      return sweep(nl, book);
    });
    book.save();
    if (ids.length) await applyFirewall(firewallConfig(book, subnet), { stateFile: `${ipam.dir}/firewall` });
    return ids;
  });
}

/** The live leases: address, container id, pid (for `minic ps`-like views and tests). */
export async function listBridgeLeases(): Promise<Array<{ address: string; id: string; pid: number }>> {
  const ipam = new Ipam();
  return Object.entries(ipam.read())
    .filter(([, l]) => leaseAlive(l))
    .map(([address, l]) => ({ address, id: l.id, pid: l.pid }));
}

