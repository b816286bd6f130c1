// rtnetlink: links, addresses and routes, over a NETLINK_ROUTE socket driven through bun:ffi, with
// the messages built here byte by byte (no `ip` subprocess).
//
// A request is one netlink message: struct nlmsghdr, a fixed header (ifinfomsg, ifaddrmsg or
// rtmsg), then attributes (struct rtattr: u16 length, u16 type, payload padded to 4 bytes; an
// attribute may nest others). Every change is sent with NLM_F_REQUEST|NLM_F_ACK and its ack read
// back at once, so a failure surfaces as a SysError naming the request and the object, e.g.
// `netlink RTM_NEWLINK veth veth-web-1a2b3c (peer eth0): EEXIST (File exists)`, followed by the
// kernel's own explanation when it gives one (NETLINK_EXT_ACK).
//
// ---- Reaching into another network namespace without forking ---------------------------------
// A netlink socket talks to the network namespace it was created in, for its whole life, whatever
// namespace its user later moves to. So to configure the container's eth0, the agent briefly moves
// its calling thread into the container's namespace, creates a socket there, and moves back:
//
//     home = open("/proc/thread-self/ns/net")      the agent's own namespace, opened first
//     setns(open("/proc/PID/ns/net"), CLONE_NEWNET)
//     fd = socket(AF_NETLINK, SOCK_RAW, NETLINK_ROUTE)    bound to the container's namespace
//     setns(home, CLONE_NEWNET)                    back home before anything else runs
//
// This is safe on Bun's main thread although Bun runs other threads: a thread's namespaces live in
// its own nsproxy, and setns(CLONE_NEWNET) (unlike CLONE_NEWUSER or CLONE_NEWNS) has no
// single-threaded requirement; the other threads never move. The window is synchronous JS (no
// await), so no other code of the agent runs while the thread is away. If the move back failed
// (it cannot for root holding the fd), `inNetns` throws an error saying so, and the caller must
// abort: the agent's thread would be left in the container's namespace.
import { ptr } from "bun:ffi";
import { libc, errno, SysError } from "../libc/ffi.ts";
import { EINTR, EAGAIN } from "../libc/errno.ts";
import { CStr } from "../libc/cstr.ts";
import { CLONE_NEWNET, O_CLOEXEC, O_RDONLY } from "../libc/constants.ts";
import { ipv4Bytes, formatIPv4 } from "./ipv4.ts";

const AF_UNSPEC = 0, AF_INET = 2, AF_NETLINK = 16, SOCK_RAW = 3, NETLINK_ROUTE = 0;
const SOL_SOCKET = 1, SO_RCVTIMEO = 20, SOL_NETLINK = 270, NETLINK_CAP_ACK = 10, NETLINK_EXT_ACK = 11;

// message types and flags (<linux/netlink.h>, <linux/rtnetlink.h>)
const NLMSG_ERROR = 2, NLMSG_DONE = 3;
export const RTM_NEWLINK = 16, RTM_DELLINK = 17, RTM_GETLINK = 18, RTM_NEWADDR = 20, RTM_DELADDR = 21;
export const RTM_GETADDR = 22, RTM_NEWROUTE = 24, RTM_DELROUTE = 25, RTM_GETROUTE = 26;
const RTM_NAMES: Record<number, string> = {
  16: "RTM_NEWLINK", 17: "RTM_DELLINK", 18: "RTM_GETLINK", 20: "RTM_NEWADDR", 21: "RTM_DELADDR",
  22: "RTM_GETADDR", 24: "RTM_NEWROUTE", 25: "RTM_DELROUTE", 26: "RTM_GETROUTE",
};
const NLM_F_REQUEST = 0x1, NLM_F_ACK = 0x4, NLM_F_DUMP = 0x300;
const NLM_F_REPLACE = 0x100, NLM_F_EXCL = 0x200, NLM_F_CREATE = 0x400;
const NLM_F_ACK_TLVS = 0x200, NLMSGERR_ATTR_MSG = 1;

// attributes
const IFLA_ADDRESS = 1, IFLA_IFNAME = 3, IFLA_MASTER = 10, IFLA_IFALIAS = 20, IFLA_LINKINFO = 18, IFLA_NET_NS_PID = 19, IFLA_NET_NS_FD = 28;
const IFLA_INFO_KIND = 1, IFLA_INFO_DATA = 2, VETH_INFO_PEER = 1;
const IFA_ADDRESS = 1, IFA_LOCAL = 2, IFA_BROADCAST = 4;
const RTA_DST = 1, RTA_OIF = 4, RTA_GATEWAY = 5, RTA_TABLE = 15;
const RT_TABLE_MAIN = 254, RTPROT_BOOT = 3, RT_SCOPE_UNIVERSE = 0, RTN_UNICAST = 1;
export const IFF_UP = 0x1;

const RECV_TIMEOUT_S = 5;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A netlink request the kernel refused: a SysError, plus the kernel's extended-ack text if any. */
export class NetlinkError extends SysError {
  constructor(call: string, code: number, detail: string, readonly kernelMessage: string | null) {
    super(call, code, detail);
    if (kernelMessage) this.message += `: ${kernelMessage}`;
  }
}

// ---- building messages ---------------------------------------------------------------------------

/** A growing netlink message: nlmsghdr first, then whatever the request appends. */
class Message {
  private buf = new Uint8Array(256);
  private view = new DataView(this.buf.buffer);
  length = 16; // nlmsghdr, filled in by finish()

  private room(n: number): number {
    if (this.length + n > this.buf.length) {
      const bigger = new Uint8Array(Math.max(this.buf.length * 2, this.length + n));
      bigger.set(this.buf);
      this.buf = bigger;
      this.view = new DataView(bigger.buffer);
    }
    const at = this.length;
    this.length += n;
    return at;
  }
  private pad(): void {
    this.room((4 - (this.length % 4)) % 4);
  }
  u8(v: number): this { this.view.setUint8(this.room(1), v); return this; }
  u16(v: number): this { this.view.setUint16(this.room(2), v, true); return this; }
  u32(v: number): this { this.view.setUint32(this.room(4), v >>> 0, true); return this; }
  i32(v: number): this { this.view.setInt32(this.room(4), v, true); return this; }
  bytes(b: Uint8Array): this { this.buf.set(b, this.room(b.length)); return this; }

  /** struct ifinfomsg */
  ifinfo(index = 0, flags = 0, change = 0): this {
    return this.u8(AF_UNSPEC).u8(0).u16(0).i32(index).u32(flags).u32(change);
  }
  attr(type: number, payload: Uint8Array): this {
    this.pad();
    this.u16(4 + payload.length).u16(type).bytes(payload);
    this.pad();
    return this;
  }
  attrU32(type: number, v: number): this {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, v >>> 0, true);
    return this.attr(type, b);
  }
  /** A NUL-terminated string attribute (names, kinds). */
  attrStr(type: number, s: string): this {
    const b = new Uint8Array(encoder.encode(s).length + 1);
    b.set(encoder.encode(s));
    return this.attr(type, b);
  }
  /** An attribute whose payload is whatever `fill` appends (nested attributes, or a header and attributes). */
  nest(type: number, fill: () => void): this {
    this.pad();
    const at = this.room(4);
    fill();
    this.pad();
    this.view.setUint16(at, this.length - at, true);
    this.view.setUint16(at + 2, type, true);
    return this;
  }
  finish(type: number, flags: number, seq: number): Uint8Array {
    this.view.setUint32(0, this.length, true);
    this.view.setUint16(4, type, true);
    this.view.setUint16(6, flags, true);
    this.view.setUint32(8, seq, true);
    this.view.setUint32(12, 0, true);
    return this.buf.subarray(0, this.length);
  }
}

// ---- reading messages ----------------------------------------------------------------------------

/** One message of a reply: its type and its payload (after nlmsghdr). */
export interface Reply {
  type: number;
  data: DataView;
}

/** The attributes in `view` from `start` on, by type (the last one wins), as views of their payloads. */
export function parseAttrs(view: DataView, start: number): Map<number, DataView> {
  const attrs = new Map<number, DataView>();
  for (let off = start; off + 4 <= view.byteLength; ) {
    const len = view.getUint16(off, true);
    if (len < 4 || off + len > view.byteLength) break;
    attrs.set(view.getUint16(off + 2, true) & 0x3fff, new DataView(view.buffer, view.byteOffset + off + 4, len - 4));
    off += (len + 3) & ~3;
  }
  return attrs;
}

const attrString = (v: DataView | undefined) =>
  v ? decoder.decode(new Uint8Array(v.buffer, v.byteOffset, v.byteLength)).replace(/\0.*$/s, "") : null;
const attrU32 = (v: DataView | undefined) => (v && v.byteLength >= 4 ? v.getUint32(0, true) : null);
const attrIPv4 = (v: DataView | undefined) => (v && v.byteLength === 4 ? formatIPv4(v.getUint32(0, false)) : null);

// ---- namespaces ----------------------------------------------------------------------------------

/** open(2) a namespace file read-only, close-on-exec; the fd is the caller's to close. */
export function openNamespace(path: string): number {
  const fd = libc.open(new CStr(path).ptr, O_RDONLY | O_CLOEXEC, 0);
  if (fd < 0) throw new SysError("open", errno(), path);
  return fd;
}

/**
 * Run `fn` with the calling thread in the network namespace at `nsPath` (e.g. /proc/PID/ns/net),
 * then move the thread back to the namespace it started in. `fn` must be synchronous. Sockets it
 * creates stay in that namespace; so do /proc/sys/net files it opens.
 */
export function inNetns<T>(nsPath: string, fn: () => T): T {
  const home = openNamespace("/proc/thread-self/ns/net");
  let target = -1;
  try {
    target = openNamespace(nsPath);
    if (libc.setns(target, CLONE_NEWNET) !== 0) throw new SysError("setns", errno(), `${nsPath} (CLONE_NEWNET)`);
    let result: T;
    try {
      result = fn();
    } finally {
      if (libc.setns(home, CLONE_NEWNET) !== 0) {
        const code = errno();
        throw new SysError("setns", code, "back to the agent's own network namespace; the agent cannot continue safely");
      }
    }
    if (result && typeof (result as { then?: unknown }).then === "function") {
      throw new TypeError("inNetns: the function must be synchronous (it ran with the thread in another namespace)");
    }
    return result;
  } finally {
    libc.close(home);
    if (target >= 0) libc.close(target);
  }
}

// ---- the socket ----------------------------------------------------------------------------------

export interface LinkInfo {
  index: number;
  name: string;
  /** Index of the bridge (or bond) this link is enslaved to, if any. */
  master: number | null;
  /** IFLA_INFO_KIND: "bridge", "veth", ... (null for plain devices such as lo). */
  kind: string | null;
  flags: number;
}

export interface AddressInfo {
  index: number;
  address: string;
  prefix: number;
}

export interface RouteInfo {
  dst: string;
  prefix: number;
  gateway: string | null;
  oif: number | null;
  table: number;
  type: number;
}

export interface VethOptions {
  /** Enslave the new host-side end to this bridge (ifindex) as part of the same request. */
  master?: number;
  /** Bring the host-side end up as part of the same request. */
  up?: boolean;
  /** The peer's network namespace, as an open fd (IFLA_NET_NS_FD) or a pid (IFLA_NET_NS_PID). */
  peerNetnsFd?: number;
  peerNetnsPid?: number;
  /** A MAC address for the peer (6 bytes). */
  peerMac?: Uint8Array;
}

/**
 * A NETLINK_ROUTE socket, bound to the network namespace it was opened in. One request at a time;
 * every method sends one message and reads its answer before returning.
 */
export class Netlink {
  private seq = Math.floor(Math.random() * 0x7fffffff);
  private readonly rbuf = new Uint8Array(65536);
  private closed = false;

  private constructor(
    readonly fd: number,
    /** Where the socket lives, for messages: "" for the agent's namespace, or " in /proc/PID/ns/net". */
    readonly where: string,
  ) {}

  /** A socket in the calling thread's current network namespace. */
  static open(where = ""): Netlink {
    const fd = libc.socket(AF_NETLINK, SOCK_RAW | O_CLOEXEC, NETLINK_ROUTE);
    if (fd < 0) throw new SysError("socket", errno(), "AF_NETLINK, NETLINK_ROUTE");
    const one = new Int32Array([1]);
    // Best effort: the kernel's text for a refusal, and acks without a copy of our request.
    libc.setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, ptr(one), 4);
    libc.setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, ptr(one), 4);
    const timeout = new BigInt64Array([BigInt(RECV_TIMEOUT_S), 0n]); // struct timeval
    libc.setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, ptr(timeout), 16);
    return new Netlink(fd, where);
  }

  /** A socket in the network namespace at `nsPath` (see the note at the top of this file). */
  static openIn(nsPath: string): Netlink {
    return inNetns(nsPath, () => Netlink.open(` in ${nsPath}`));
  }

  close(): void {
    if (!this.closed) libc.close(this.fd);
    this.closed = true;
  }

  // ---- transport ----

  /**
   * Send one request and collect its answer: the reply messages of a GET, every part of a dump
   * (until NLMSG_DONE), or nothing but the ack of a change. A negative error in the ack throws.
   */
  private transact(type: number, flags: number, build: (m: Message) => void, what: string): Reply[] {
    if (this.closed) throw new Error("netlink socket used after close");
    const seq = (this.seq = (this.seq + 1) & 0x7fffffff);
    const m = new Message();
    build(m);
    const bytes = m.finish(type, NLM_F_REQUEST | flags, seq);
    const call = `netlink ${RTM_NAMES[type] ?? type}`;
    const detail = `${what}${this.where}`;
    for (;;) {
      const n = Number(libc.write(this.fd, ptr(bytes), bytes.length));
      if (n === bytes.length) break;
      if (n < 0 && errno() === EINTR) continue;
      throw new SysError(`${call} (send)`, n < 0 ? errno() : 5 /* EIO */, detail);
    }
    const dump = (flags & NLM_F_DUMP) === NLM_F_DUMP;
    const replies: Reply[] = [];
    const deadline = Date.now() + RECV_TIMEOUT_S * 1000 * 2;
    while (Date.now() < deadline) {
      const n = Number(libc.read(this.fd, ptr(this.rbuf), this.rbuf.length));
      if (n < 0) {
        const code = errno();
        if (code === EINTR) continue;
        if (code === EAGAIN) throw new SysError(`${call} (no answer in ${RECV_TIMEOUT_S}s)`, code, detail);
        throw new SysError(`${call} (receive)`, code, detail);
      }
      const view = new DataView(this.rbuf.buffer, 0, n);
      for (let off = 0; off + 16 <= n; ) {
        const len = view.getUint32(off, true);
        if (len < 16 || off + len > n) break;
        const msgType = view.getUint16(off + 4, true);
        const msgFlags = view.getUint16(off + 6, true);
        const msgSeq = view.getUint32(off + 8, true);
        const data = new DataView(this.rbuf.buffer.slice(off + 16, off + len));
        off += (len + 3) & ~3;
        if (msgSeq !== seq) continue; // a late answer to an earlier request (cannot happen one at a time)
        if (msgType === NLMSG_DONE) return replies;
        if (msgType === NLMSG_ERROR) {
          const error = data.getInt32(0, true);
          if (error === 0) return replies; // the ack
          let kernelMessage: string | null = null;
          if (msgFlags & NLM_F_ACK_TLVS) {
            // struct nlmsgerr: int error; struct nlmsghdr msg (capped: header only); then TLVs
            const origLen = data.getUint32(4, true);
            const tlvStart = msgFlags & 0x100 /* NLM_F_CAPPED */ ? 4 + 16 : 4 + ((origLen + 3) & ~3);
            kernelMessage = attrString(parseAttrs(data, tlvStart).get(NLMSGERR_ATTR_MSG));
          }
          throw new NetlinkError(call, -error, detail, kernelMessage);
        }
        replies.push({ type: msgType, data });
        if (!dump && !(flags & NLM_F_ACK)) return replies;
      }
    }
    throw new Error(`${call} ${detail}: no complete answer from the kernel`);
  }

  private change(type: number, flags: number, build: (m: Message) => void, what: string): void {
    this.transact(type, NLM_F_ACK | flags, build, what);
  }

  // ---- links ----

  private static linkInfo(r: Reply): LinkInfo {
    const attrs = parseAttrs(r.data, 16);
    const linkinfo = attrs.get(IFLA_LINKINFO);
    return {
      index: r.data.getInt32(4, true),
      name: attrString(attrs.get(IFLA_IFNAME)) ?? "",
      master: attrU32(attrs.get(IFLA_MASTER)),
      kind: linkinfo ? attrString(parseAttrs(linkinfo, 0).get(IFLA_INFO_KIND)) : null,
      flags: r.data.getUint32(8, true),
    };
  }

  /** The link called `name`, or null if there is none. */
  link(name: string): LinkInfo | null {
    try {
      const replies = this.transact(RTM_GETLINK, 0, (m) => m.ifinfo().attrStr(IFLA_IFNAME, name), name);
      return replies.length ? Netlink.linkInfo(replies[0]!) : null;
    } catch (error) {
      if (error instanceof SysError && error.code === "ENODEV") return null;
      throw error;
    }
  }

  /** The ifindex of link `name`, or null (if_nametoindex, but in this socket's namespace). */
  linkIndex(name: string): number | null {
    return this.link(name)?.index ?? null;
  }

  /** Every link in the namespace. */
  links(): LinkInfo[] {
    return this.transact(RTM_GETLINK, NLM_F_DUMP, (m) => m.ifinfo(), "(dump)")
      .filter((r) => r.type === RTM_NEWLINK)
      .map(Netlink.linkInfo);
  }

  /** `ip link add NAME [address MAC] type bridge`; EEXIST if it exists. */
  createBridge(name: string, options: { mac?: Uint8Array } = {}): void {
    this.change(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, (m) => {
      m.ifinfo().attrStr(IFLA_IFNAME, name);
      if (options.mac) m.attr(IFLA_ADDRESS, options.mac);
      m.nest(IFLA_LINKINFO, () => m.attrStr(IFLA_INFO_KIND, "bridge"));
    }, `bridge ${name}`);
  }

  /**
   * `ip link add NAME type veth peer name PEER netns NS`: the peer is created directly inside the
   * other namespace (so it never appears in this one), optionally already enslaved and up here.
   */
  createVethPair(name: string, peerName: string, options: VethOptions = {}): void {
    const up = options.up ? IFF_UP : 0;
    this.change(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, (m) => {
      m.ifinfo(0, up, up).attrStr(IFLA_IFNAME, name);
      if (options.master !== undefined) m.attrU32(IFLA_MASTER, options.master);
      m.nest(IFLA_LINKINFO, () => {
        m.attrStr(IFLA_INFO_KIND, "veth");
        m.nest(IFLA_INFO_DATA, () =>
          m.nest(VETH_INFO_PEER, () => {
            m.ifinfo().attrStr(IFLA_IFNAME, peerName);
            if (options.peerMac) m.attr(IFLA_ADDRESS, options.peerMac);
            if (options.peerNetnsFd !== undefined) m.attrU32(IFLA_NET_NS_FD, options.peerNetnsFd);
            else if (options.peerNetnsPid !== undefined) m.attrU32(IFLA_NET_NS_PID, options.peerNetnsPid);
          }),
        );
      });
    }, `veth ${name} (peer ${peerName})`);
  }

  /** `ip link set INDEX master MASTER` (0: no master). */
  setMaster(index: number, master: number): void {
    this.change(RTM_NEWLINK, 0, (m) => m.ifinfo(index).attrU32(IFLA_MASTER, master), `link ${index} master ${master}`);
  }

  /** `ip link set INDEX up|down`. */
  setUp(index: number, up = true): void {
    this.change(RTM_NEWLINK, 0, (m) => m.ifinfo(index, up ? IFF_UP : 0, IFF_UP), `link ${index} ${up ? "up" : "down"}`);
  }

  /** `ip link set INDEX alias TEXT` (shown by `ip link`; not accepted at creation). */
  setAlias(index: number, alias: string): void {
    this.change(RTM_NEWLINK, 0, (m) => m.ifinfo(index).attrStr(IFLA_IFALIAS, alias), `link ${index} alias ${alias}`);
  }

  /** `ip link del`, by index or name. */
  deleteLink(link: number | string): void {
    this.change(RTM_DELLINK, 0, (m) => {
      if (typeof link === "number") m.ifinfo(link);
      else m.ifinfo().attrStr(IFLA_IFNAME, link);
    }, `link ${link}`);
  }

  // ---- addresses ----

  /** `ip addr add IP/PREFIX brd + dev INDEX`; with `replace`, no error if it is already there. */
  addAddress(index: number, ip: string, prefix: number, options: { replace?: boolean } = {}): void {
    const bytes = ipv4Bytes(ip);
    const n = new DataView(bytes.buffer).getUint32(0, false);
    const bcast = prefix >= 31 ? null : formatIPv4((n | (prefix === 0 ? 0xffffffff : ~(0xffffffff << (32 - prefix)))) >>> 0);
    this.change(RTM_NEWADDR, NLM_F_CREATE | (options.replace ? NLM_F_REPLACE : NLM_F_EXCL), (m) => {
      m.u8(AF_INET).u8(prefix).u8(0).u8(RT_SCOPE_UNIVERSE).u32(index); // struct ifaddrmsg
      m.attr(IFA_LOCAL, bytes).attr(IFA_ADDRESS, bytes);
      if (bcast) m.attr(IFA_BROADCAST, ipv4Bytes(bcast));
    }, `${ip}/${prefix} dev ${index}`);
  }

  deleteAddress(index: number, ip: string, prefix: number): void {
    const bytes = ipv4Bytes(ip);
    this.change(RTM_DELADDR, 0, (m) => {
      m.u8(AF_INET).u8(prefix).u8(0).u8(RT_SCOPE_UNIVERSE).u32(index);
      m.attr(IFA_LOCAL, bytes).attr(IFA_ADDRESS, bytes);
    }, `${ip}/${prefix} dev ${index}`);
  }

  /** The IPv4 addresses of link `index` (of every link without it). */
  addresses(index?: number): AddressInfo[] {
    return this.transact(RTM_GETADDR, NLM_F_DUMP, (m) => m.u8(AF_INET).u8(0).u8(0).u8(0).u32(0), "(dump)")
      .filter((r) => r.type === RTM_NEWADDR)
      .map((r) => {
        const attrs = parseAttrs(r.data, 8);
        return {
          index: r.data.getUint32(4, true),
          prefix: r.data.getUint8(1),
          address: attrIPv4(attrs.get(IFA_LOCAL)) ?? attrIPv4(attrs.get(IFA_ADDRESS)) ?? "",
        };
      })
      .filter((a) => index === undefined || a.index === index);
  }

  // ---- routes ----

  /** `ip route add default via GATEWAY dev INDEX`. */
  addDefaultRoute(gateway: string, oif: number): void {
    this.change(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, (m) => {
      // struct rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type; u32 flags
      m.u8(AF_INET).u8(0).u8(0).u8(0).u8(RT_TABLE_MAIN).u8(RTPROT_BOOT).u8(RT_SCOPE_UNIVERSE).u8(RTN_UNICAST).u32(0);
      m.attr(RTA_GATEWAY, ipv4Bytes(gateway)).attrU32(RTA_OIF, oif);
    }, `default via ${gateway} dev ${oif}`);
  }

  /** The IPv4 routes of every table. */
  routes(): RouteInfo[] {
    return this.transact(RTM_GETROUTE, NLM_F_DUMP, (m) => m.u8(AF_INET).u8(0).u8(0).u8(0).u8(0).u8(0).u8(0).u8(0).u32(0), "(dump)")
      .filter((r) => r.type === RTM_NEWROUTE)
      .map((r) => {
        const attrs = parseAttrs(r.data, 12);
        return {
          dst: attrIPv4(attrs.get(RTA_DST)) ?? "0.0.0.0",
          prefix: r.data.getUint8(1),
          gateway: attrIPv4(attrs.get(RTA_GATEWAY)),
          oif: attrU32(attrs.get(RTA_OIF)),
          table: attrU32(attrs.get(RTA_TABLE)) ?? r.data.getUint8(4),
          type: r.data.getUint8(7),
        };
      });
  }
}

/** Open a socket in the agent's own namespace, run `fn`, close it. */
export function withNetlink<T>(fn: (nl: Netlink) => T): T {
  const nl = Netlink.open();
  try {
    return fn(nl);
  } finally {
    nl.close();
  }
}

