// A small IPAM for the bridge network: one lease file, taken under a lock.
//
//   /run/minic-network/NETNS/leases.json   {"10.77.0.2": {"id": "web", "pid": 1234, "pidStart": "5678", ...}}
//   /run/minic-network/NETNS/lock          flock(2)ed (LOCK_EX) around every read-modify-write
// (NETNS: the inode of the network namespace the bridge lives in; tests set MINIC_NETWORK_DIR)
//
// The default subnet is 10.77.0.0/24 (the bridge minic0 is 10.77.0.1, containers get .2 to .254):
// it avoids docker's 172.17.0.0/16, podman's 10.88.0.0/16, libvirt's 192.168.122.0/24 and the
// usual Kubernetes ranges (10.244/16, 10.96/12). Pass another with `{ subnet: "A.B.C.D/N" }`.
//
// A lease belongs to the container's process (pid, and its start time from /proc/PID/stat, which
// tells it from a reused pid) and to the agent that set it up. It is live while either is: the
// address is in use as long as the container's namespace may still have it, and the agent may
// still be tearing down. When both are gone (a SIGKILLed run, a crash), the next run reclaims it.
//
// The lock is an flock on a file that is never removed, so concurrent `minic run`s serialise on
// it; closing the fd (or the process dying) releases it. flock is per open file description, so
// two callers inside one process exclude each other too.
import { libc, errno, SysError } from "../libc/ffi.ts";
import { CStr } from "../libc/cstr.ts";
import { O_CLOEXEC, O_CREAT, O_RDWR } from "../libc/constants.ts";
import { EAGAIN, EINTR } from "../libc/errno.ts";
import { mkdirp, readlink, readTextIfExists, writeText } from "../libc/fs.ts";
import { processStartTime } from "../state.ts";
import { formatIPv4, inSubnet, parseIPv4, parseSubnet, type Subnet } from "./ipv4.ts";

export const DEFAULT_SUBNET = "10.77.0.0/24";
const LOCK_EX = 2, LOCK_NB = 4;
const DEFAULT_LOCK_TIMEOUT_MS = 15_000;

/** A published port as the firewall needs it (stored with the lease, so rules can be rebuilt). */
export interface LeasePort {
  hostIp: string | null;
  hostPort: number;
  containerPort: number;
  protocol: "tcp" | "udp";
}

export interface Lease {
  /** The container id. */
  id: string;
  /** The container's process (whose network namespace holds the address) and its start time. */
  pid: number;
  pidStart: string | null;
  /** The agent that set the network up (it tears it down). */
  agentPid?: number;
  agentStart?: string | null;
  /** The host end of the container's veth pair. */
  veth?: string;
  /** Published ports, for the firewall rules. */
  ports?: LeasePort[];
}

export type Leases = Record<string, Lease>;

export interface IpamOptions {
  /** The network's subnet in CIDR notation (default 10.77.0.0/24). */
  subnet?: string;
  /** How long to wait for another run holding the lock (default 15 s). */
  lockTimeoutMs?: number;
}

export interface AddressRequest {
  id: string;
  /** The container's process; default: this process. */
  pid?: number;
  /** A fixed address (`--ip`); it must be a free host address of the subnet. */
  ip?: string;
  veth?: string;
  ports?: LeasePort[];
}

export interface Allocation {
  address: string;
  prefix: number;
  gateway: string;
  lease: Lease;
}

export function networkDir(): string {
  if (process.env.MINIC_NETWORK_DIR) return process.env.MINIC_NETWORK_DIR; // tests keep theirs apart
  // The bridge, its addresses and the nft table belong to a network namespace, not to a --root:
  // podman and containerd run minic with roots of their own, and all must share one lease book.
  const netns = /\[(\d+)\]/.exec(readlink("/proc/self/ns/net") ?? "")?.[1] ?? "default";
  return `/run/minic-network/${netns}`;
}

/**
 * Whether `pid` is still the process that started at `start` (field 22 of /proc/PID/stat, as
 * state.ts's processStartTime reads it). A zombie counts as gone: it has released its network
 * namespace already, it only waits for its parent to reap it.
 */
function isAlive(pid: number | undefined, start: string | null | undefined): boolean {
  if (!pid || pid <= 0 || start === undefined || start === null) return false;
  const stat = readTextIfExists(`/proc/${pid}/stat`);
  if (!stat) return false;
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return fields[0] !== "Z" && fields[0] !== "X" && fields[19] === start;
}

/** Whether the container or the agent of a lease still runs. */
export function leaseAlive(lease: Lease): boolean {
  return isAlive(lease.pid, lease.pidStart) || isAlive(lease.agentPid, lease.agentStart);
}

/**
 * The lease file as read under the lock: look, change, and `save()` before the lock is let go.
 * Addresses are handed out lowest first; a released address gets the same MAC again (see
 * macForIPv4), so neighbours' ARP caches stay right when it is reused.
 */
export class LeaseBook {
  changed = false;
  constructor(
    readonly leases: Leases,
    readonly subnet: Subnet,
    private readonly path: string,
  ) {}

  entries(): Array<[string, Lease]> {
    return Object.entries(this.leases);
  }

  live(): Array<[string, Lease]> {
    return this.entries().filter(([, lease]) => leaseAlive(lease));
  }

  /** Drop the leases whose container and agent are both gone, and return them. */
  reclaimDead(): Array<[string, Lease]> {
    const dead = this.entries().filter(([, lease]) => !leaseAlive(lease));
    for (const [ip] of dead) delete this.leases[ip];
    if (dead.length) this.changed = true;
    return dead;
  }

  /** Find the lease of container `id` (live or not). */
  find(id: string): [string, Lease] | null {
    return this.entries().find(([, lease]) => lease.id === id) ?? null;
  }

  allocate(request: AddressRequest): Allocation {
    const existing = this.find(request.id);
    if (existing && leaseAlive(existing[1])) {
      throw new Error(`container ${request.id} already has the address ${existing[0]} (pid ${existing[1].pid})`);
    }
    if (existing) delete this.leases[existing[0]];
    const { subnet } = this;
    let address: number;
    if (request.ip !== undefined) {
      const ip = parseIPv4(request.ip);
      if (ip === null) throw new Error(`--ip ${request.ip}: not an IPv4 address`);
      if (!inSubnet(ip, subnet) || ip === subnet.network || ip === subnet.broadcast) {
        throw new Error(`--ip ${request.ip}: not a host address of the network's subnet ${subnet.cidr}`);
      }
      if (ip === subnet.gateway) throw new Error(`--ip ${request.ip}: that is the bridge's own address`);
      const holder = this.leases[request.ip];
      if (holder && leaseAlive(holder)) throw new Error(`--ip ${request.ip}: the address is in use by container ${holder.id}`);
      address = ip;
    } else {
      address = 0;
      for (let ip = subnet.gateway + 1; ip < subnet.broadcast; ip++) {
        const holder = this.leases[formatIPv4(ip)];
        if (!holder || !leaseAlive(holder)) {
          address = ip;
          break;
        }
      }
      if (!address) throw new Error(`no free address left in the network's subnet ${subnet.cidr}`);
    }
    const pid = request.pid ?? process.pid;
    const lease: Lease = {
      id: request.id,
      pid,
      pidStart: processStartTime(pid),
      agentPid: process.pid,
      agentStart: processStartTime(process.pid),
      ...(request.veth ? { veth: request.veth } : {}),
      ...(request.ports?.length ? { ports: request.ports } : {}),
    };
    this.leases[formatIPv4(address)] = lease;
    this.changed = true;
    return { address: formatIPv4(address), prefix: subnet.prefix, gateway: formatIPv4(subnet.gateway), lease };
  }

  /** Remove every lease of container `id` and return them. */
  release(id: string): Array<[string, Lease]> {
    const gone = this.entries().filter(([, lease]) => lease.id === id);
    for (const [ip] of gone) delete this.leases[ip];
    if (gone.length) this.changed = true;
    return gone;
  }

  save(): void {
    if (!this.changed) return;
    // Small enough for the single write(2) of writeText; sorted, so that diffs of it read well.
    const sorted = Object.fromEntries(this.entries().sort(([a], [b]) => parseIPv4(a)! - parseIPv4(b)!));
    writeText(this.path, `${JSON.stringify(sorted, null, 1)}\n`, 0o644);
    this.changed = false;
  }
}

export class Ipam {
  readonly subnet: Subnet;
  readonly dir: string;
  private readonly lockTimeoutMs: number;

  constructor(options: IpamOptions = {}) {
    this.subnet = parseSubnet(options.subnet ?? DEFAULT_SUBNET);
    this.dir = networkDir();
    this.lockTimeoutMs = options.lockTimeoutMs ?? DEFAULT_LOCK_TIMEOUT_MS;
  }

  get leasesPath(): string {
    return `${this.dir}/leases.json`;
  }

  /**
   * Run `fn` with the lease file, under the lock; the book is saved (if changed) before the lock
   * is released, also when `fn` throws after changing it.
   */
  async locked<T>(fn: (book: LeaseBook) => T | Promise<T>): Promise<T> {
    const fd = await this.lock();
    try {
      const book = new LeaseBook(this.read(), this.subnet, this.leasesPath);
      try {
        return await fn(book);
      } finally {
        book.save();
      }
    } finally {
      libc.close(fd); // releases the flock
    }
  }

  /** Take an address for a container (reclaiming dead leases first). */
  allocate(request: AddressRequest): Promise<Allocation> {
    return this.locked((book) => {
      book.reclaimDead();
      return book.allocate(request);
    });
  }

  /** Give back the addresses of container `id`; returns what was released. */
  release(id: string): Promise<Array<[string, Lease]>> {
    return this.locked((book) => book.release(id));
  }

  /** The leases on file, read without the lock (a snapshot, for looking only). */
  read(): Leases {
    const text = readTextIfExists(this.leasesPath);
    if (!text?.trim()) return {};
    try {
      const parsed = JSON.parse(text) as unknown;
      if (parsed && typeof parsed === "object" && !Array.isArray(parsed)) return parsed as Leases;
    } catch {}
    // A torn file (a crash in the middle of a write): start over rather than refuse every run.
    // Live containers keep their addresses in their namespaces; a clash shows up as an error later.
    process.stderr.write(`minic: warning: ${this.leasesPath} is unreadable; starting a new lease file\n`);
    return {};
  }

  private async lock(): Promise<number> {
    mkdirp(this.dir, 0o755);
    const path = `${this.dir}/lock`;
    const fd = libc.open(new CStr(path).ptr, O_RDWR | O_CREAT | O_CLOEXEC, 0o600);
    if (fd < 0) throw new SysError("open", errno(), path);
    const deadline = Date.now() + this.lockTimeoutMs;
    for (let wait = 1; ; wait = Math.min(wait * 2, 50)) {
      if (libc.flock(fd, LOCK_EX | LOCK_NB) === 0) return fd;
      const code = errno();
      if (code !== EAGAIN && code !== EINTR) {
        libc.close(fd);
        throw new SysError("flock", code, path);
      }
      if (Date.now() > deadline) {
        libc.close(fd);
        throw new Error(`timed out after ${this.lockTimeoutMs / 1000} s waiting for the network lock ${path} (another minic run holds it)`);
      }
      await Bun.sleep(wait);
    }
  }
}


