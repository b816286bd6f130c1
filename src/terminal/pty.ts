// The container's terminal, made in the child between fork and exec (runc's order and calls):
//
//   open("/dev/ptmx", O_RDWR|O_NOCTTY|O_CLOEXEC)      after pivot_root: the container's own devpts,
//                                                       so the terminal is /dev/pts/0 inside
//   ioctl(ptmx, TIOCSPTLCK, 0)                          unlock the peer
//   ioctl(ptmx, TIOCSWINSZ, consoleSize)                if the spec gives a size
//   ioctl(ptmx, TIOCGPTPEER, O_RDWR|O_NOCTTY|O_CLOEXEC) the peer, without a path lookup
//   fchown(pts, uid, -1)                                the process's user owns its terminal
//   setsid(); ioctl(pts, TIOCSCTTY, 0)                  a new session, with the pty as its terminal
//   dup2(pts, 0), dup2(pts, 1), dup2(pts, 2)
//   sendmsg(console socket, SCM_RIGHTS ptmx, "/dev/pts/N")   the master goes to whoever holds the
//                                                       other end: the agent (run -t), conmon (create)
//   close(ptmx), close(console socket)                  the container keeps only the peer
//
// Like every step, these only make FFI calls on buffers prepared here, before the fork. The fds the
// calls return (the master, the peer) are kept in an Int32Array and the master's number is written
// into the SCM_RIGHTS message with a DataView at run time: no allocation in the child.
import { ptr } from "bun:ffi";
import { libc } from "../libc/ffi.ts";
import { CStr } from "../libc/cstr.ts";
import { EINVAL, EPERM } from "../libc/errno.ts";
import { O_CLOEXEC, O_NOCTTY, O_RDWR } from "../libc/constants.ts";
import { type Step, viaErrno } from "../process/step.ts";

// ioctl requests: <asm-generic/ioctls.h>, shared by x86_64 and aarch64.
export const TIOCSCTTY = 0x540e, TIOCGWINSZ = 0x5413, TIOCSWINSZ = 0x5414;
export const TIOCGPTN = 0x80045430, TIOCSPTLCK = 0x40045431, TIOCGPTPEER = 0x5441;
// sockets
export const AF_UNIX = 1, SOCK_STREAM = 1, SOCK_CLOEXEC = O_CLOEXEC, SOL_SOCKET = 1, SCM_RIGHTS = 1;
export const MSG_NOSIGNAL = 0x4000, MSG_DONTWAIT = 0x40, MSG_CMSG_CLOEXEC = 0x40000000;

/** struct msghdr on LP64: name, namelen(+pad), iov, iovlen, control, controllen, flags(+pad). */
export const MSGHDR_SIZE = 56;
/** CMSG_LEN(sizeof(int)) and CMSG_SPACE(sizeof(int)): a 16-byte cmsghdr, then the fd. */
export const CMSG_LEN_FD = 20, CMSG_SPACE_FD = 24;

export interface TerminalOptions {
  /** The console socket, connected before the fork (inherited by the child); -1 when there is none (--dry-run). */
  socketFd: number;
  /** process.consoleSize: the window size the terminal starts with. */
  consoleSize?: { height: number; width: number };
  /** process.user.uid: the user the terminal is handed to (fchown), as runc's fixStdioPermissions does. */
  uid?: number;
}

/** A struct winsize { rows, cols, xpixel, ypixel } (four u16), for TIOCSWINSZ. */
export function winsize(rows: number, cols: number): Uint16Array {
  return new Uint16Array([rows, cols, 0, 0]);
}

/**
 * A prepared sendmsg(2) carrying one fd with SCM_RIGHTS and a short text (the pty's name, as runc
 * sends it). `setFd` and `setText*` only write into the buffers; nothing allocates.
 */
export class FdMessage {
  readonly header = new Uint8Array(MSGHDR_SIZE);
  readonly iov = new Uint8Array(16);
  readonly control = new Uint8Array(CMSG_SPACE_FD);
  readonly text: Uint8Array;
  private readonly controlView = new DataView(this.control.buffer);
  private readonly iovView = new DataView(this.iov.buffer);
  readonly ptr: number;

  constructor(capacity = 64) {
    this.text = new Uint8Array(capacity);
    const header = new DataView(this.header.buffer);
    this.iovView.setBigUint64(0, BigInt(ptr(this.text)), true); // iov_base
    header.setBigUint64(16, BigInt(ptr(this.iov)), true); // msg_iov
    header.setBigUint64(24, 1n, true); // msg_iovlen
    header.setBigUint64(32, BigInt(ptr(this.control)), true); // msg_control
    header.setBigUint64(40, BigInt(CMSG_SPACE_FD), true); // msg_controllen
    this.controlView.setBigUint64(0, BigInt(CMSG_LEN_FD), true); // cmsg_len
    this.controlView.setInt32(8, SOL_SOCKET, true);
    this.controlView.setInt32(12, SCM_RIGHTS, true);
    this.ptr = ptr(this.header);
  }

  setFd(fd: number): void {
    this.controlView.setInt32(16, fd, true);
  }

  /** iov_len: the low half of a u64 (the high half stays 0). */
  setTextLength(length: number): void {
    this.iovView.setUint32(8, length, true);
  }

  /** Write `prefix` (bytes), then `n` in decimal; returns the length. Integer arithmetic only. */
  setTextNumber(prefix: Uint8Array, n: number): number {
    const text = this.text;
    let at = 0;
    for (; at < prefix.length; at++) text[at] = prefix[at]!;
    let divisor = 1;
    while (divisor * 10 <= n) divisor *= 10;
    while (divisor >= 1) {
      text[at++] = 48 + (Math.floor(n / divisor) % 10);
      divisor = Math.floor(divisor / 10);
    }
    this.setTextLength(at);
    return at;
  }
}

/** The steps that give the container a terminal and hand its master to the console socket. */
export function terminalSteps(options: TerminalOptions): Step[] {
  // fds[0]: the master, fds[1]: the peer; fds[2]: the pty number (TIOCGPTN writes it).
  const fds = new Int32Array([-1, -1, 0]);
  const ptnPtr = ptr(fds, 8);
  const ptmx = new CStr("/dev/ptmx");
  const zero = new Int32Array(1);
  const message = new FdMessage();
  const prefix = new TextEncoder().encode("/dev/pts/");
  const sock = options.socketFd;
  const sockName = sock >= 0 ? `<console socket ${sock}>` : "<console socket>";
  const steps: Step[] = [
    {
      kind: "call", call: "open", args: ['"/dev/ptmx"', "O_RDWR|O_NOCTTY|O_CLOEXEC"], label: "open the container's pseudo-terminal master",
      keep: [fds, ptmx],
      run: () => {
        const fd = viaErrno(libc.open(ptmx.ptr, O_RDWR | O_NOCTTY | O_CLOEXEC, 0));
        if (fd >= 0) fds[0] = fd;
        return fd;
      },
    },
    {
      kind: "call", call: "ioctl", args: ["<ptmx>", "TIOCSPTLCK", "0"], label: "unlock the pseudo-terminal", keep: [zero],
      run: () => viaErrno(libc.ioctl(fds[0]!, TIOCSPTLCK, ptr(zero))),
    },
  ];
  if (options.consoleSize) {
    const { height, width } = options.consoleSize;
    const size = winsize(height, width);
    steps.push({
      kind: "call", call: "ioctl", args: ["<ptmx>", "TIOCSWINSZ", `{${height} rows, ${width} cols}`], label: "set the terminal's window size",
      keep: [size],
      run: () => viaErrno(libc.ioctl(fds[0]!, TIOCSWINSZ, ptr(size))),
    });
  }
  steps.push({
    kind: "call", call: "ioctl", args: ["<ptmx>", "TIOCGPTPEER", "O_RDWR|O_NOCTTY|O_CLOEXEC"], label: "open the pseudo-terminal's peer",
    run: () => {
      // The third argument is the open flags, passed as the pointer-sized argument.
      const fd = viaErrno(libc.ioctl(fds[0]!, TIOCGPTPEER, (O_RDWR | O_NOCTTY | O_CLOEXEC) as any));
      if (fd >= 0) fds[1] = fd;
      return fd;
    },
  });
  if (options.uid !== undefined && options.uid !== 0) {
    const uid = options.uid;
    steps.push({
      kind: "call", call: "fchown", args: ["<pts>", String(uid), "-1"], label: `give the terminal to uid ${uid}`,
      // EINVAL: the uid is not mapped in the user namespace; EPERM: the terminal's owner is not. runc skips both.
      tolerate: [EINVAL, EPERM],
      run: () => viaErrno(libc.fchown(fds[1]!, uid, 0xffffffff)),
    });
  }
  steps.push(
    { kind: "call", call: "setsid", args: [], label: "start a new session for the terminal", run: () => viaErrno(libc.setsid()) },
    {
      kind: "call", call: "ioctl", args: ["<pts>", "TIOCSCTTY", "0"], label: "make the pseudo-terminal the controlling terminal",
      run: () => viaErrno(libc.ioctl(fds[1]!, TIOCSCTTY, 0 as any)),
    },
    {
      kind: "call", call: "dup2+close", args: ["<pts>", "0, 1, 2"], label: "make the terminal stdin, stdout and stderr",
      run: () => {
        const peer = fds[1]!;
        for (let fd = 0; fd <= 2; fd++) {
          const r = viaErrno(libc.dup2(peer, fd));
          if (r < 0) return r;
        }
        if (peer > 2) libc.close(peer);
        return 0;
      },
    },
    {
      kind: "call", call: "sendmsg", args: [sockName, "SCM_RIGHTS [<ptmx>]", '"/dev/pts/N"'], label: "send the terminal's master over the console socket",
      keep: [message, prefix],
      run: () => {
        const master = fds[0]!;
        const n = viaErrno(libc.ioctl(master, TIOCGPTN, ptnPtr));
        if (n < 0) return n;
        message.setTextNumber(prefix, fds[2]!);
        message.setFd(master);
        const sent = viaErrno(libc.sendmsg(sock, message.ptr, MSG_NOSIGNAL));
        return sent < 0 ? sent : 0;
      },
    },
    {
      kind: "call", call: "close", args: ["<ptmx>", sockName], label: "close the master and the console socket",
      run: () => {
        libc.close(fds[0]!);
        if (sock >= 0) libc.close(sock);
        return 0;
      },
    },
  );
  return steps;
}
