// The agent's side of a container's terminal: the console socket, passing the pty master with
// SCM_RIGHTS (runc's protocol), and, for `minic run -t`, the relay between the user's terminal and
// the container's.
//
//   minic create --console-socket PATH    connect to PATH before the fork; the child sends the
//                                         master there (conmon receives it), and the agent is done
//   minic run -t [-i]                     a socketpair is the console socket; the agent receives
//                                         the master, puts its own terminal in raw mode (with -i),
//                                         copies master -> stdout and (with -i) stdin -> master,
//                                         passes window-size changes on, and restores the terminal
//                                         however it ends
//
// The relay uses node:fs streams on the fds, which read and write off the main thread: the event
// loop stays free, so signals are still forwarded and SIGCHLD still reaps the container.
import { ptr } from "bun:ffi";
import { createReadStream, createWriteStream, type ReadStream, type WriteStream } from "node:fs";
import { libc, errno, SysError } from "../libc/ffi.ts";
import { CStr } from "../libc/cstr.ts";
import { basename, dirname } from "../libc/fs.ts";
import { O_CLOEXEC, O_PATH, POLLIN } from "../libc/constants.ts";
import { EINTR } from "../libc/errno.ts";
import type { Spec } from "../spec/types.ts";
import type { PlanContext } from "../plan.ts";
import {
  AF_UNIX, FdMessage, MSG_CMSG_CLOEXEC, MSG_NOSIGNAL, MSGHDR_SIZE, SCM_RIGHTS, SOCK_CLOEXEC, SOCK_STREAM, SOL_SOCKET,
  TIOCGWINSZ, TIOCSWINSZ, winsize,
} from "./pty.ts";

const TCSANOW = 0;
const SUN_PATH_MAX = 108;

// ---- the console socket ----------------------------------------------------------------------------

/**
 * Connect to the Unix socket at `path` (conmon's --console-socket), close-on-exec. A path longer
 * than sun_path's 108 bytes is reached through /proc/self/fd/DIR/NAME, as runc does.
 */
export function connectConsoleSocket(path: string): number {
  const fd = libc.socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw new SysError("socket", errno(), "AF_UNIX");
  let dirFd = -1;
  try {
    let target = path;
    if (new TextEncoder().encode(path).length >= SUN_PATH_MAX) {
      dirFd = libc.open(new CStr(dirname(path)).ptr, O_PATH | O_CLOEXEC, 0);
      if (dirFd < 0) throw new SysError("open", errno(), dirname(path));
      target = `/proc/self/fd/${dirFd}/${basename(path)}`;
    }
    const address = sockaddrUn(target);
    if (libc.connect(fd, ptr(address), address.length) !== 0) throw new SysError("connect", errno(), `to the console socket ${path}`);
    return fd;
  } catch (error) {
    libc.close(fd);
    throw error;
  } finally {
    if (dirFd >= 0) libc.close(dirFd);
  }
}

/** struct sockaddr_un for `path`: sa_family, then the NUL-terminated path. */
function sockaddrUn(path: string): Uint8Array {
  const bytes = new TextEncoder().encode(path);
  if (bytes.length >= SUN_PATH_MAX) throw new Error(`socket path too long: ${path}`);
  const address = new Uint8Array(2 + bytes.length + 1);
  new DataView(address.buffer).setUint16(0, AF_UNIX, true);
  address.set(bytes, 2);
  return address;
}

/** A connected pair of Unix stream sockets, close-on-exec: [the agent's end, the child's end]. */
export function consoleSocketPair(): [number, number] {
  const fds = new Int32Array(2);
  if (libc.socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ptr(fds)) !== 0) throw new SysError("socketpair", errno(), "AF_UNIX");
  return [fds[0]!, fds[1]!];
}

/** Send `fd` over `sock` with SCM_RIGHTS, and `text` as the data (runc sends the pty's name). */
export function sendFd(sock: number, fd: number, text = ""): void {
  const bytes = new TextEncoder().encode(text);
  const message = new FdMessage(Math.max(bytes.length, 1));
  message.text.set(bytes);
  message.setTextLength(bytes.length);
  message.setFd(fd);
  if (libc.sendmsg(sock, message.ptr, MSG_NOSIGNAL) < 0) throw new SysError("sendmsg", errno(), "(SCM_RIGHTS)");
}

export interface ReceivedFd {
  fd: number;
  /** The message's data: the pty's name, as runc and minic send it. */
  text: string;
}

/**
 * Receive one fd sent with SCM_RIGHTS on `sock` (close-on-exec), waiting at most `timeoutMs`.
 * Any further fds in the same message are closed.
 */
export function receiveFd(sock: number, timeoutMs = 10_000): ReceivedFd {
  const pollfd = new Int32Array([sock, POLLIN, 0]);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ready = libc.poll(ptr(pollfd), 1, Math.max(0, deadline - Date.now()));
    if (ready > 0) break;
    if (ready === 0) throw new Error(`no terminal arrived on the console socket within ${timeoutMs} ms`);
    if (errno() !== EINTR) throw new SysError("poll", errno(), "(console socket)");
  }
  const text = new Uint8Array(4096);
  const iov = new BigUint64Array([BigInt(ptr(text)), BigInt(text.length)]);
  const control = new Uint8Array(256);
  const header = new Uint8Array(MSGHDR_SIZE);
  const view = new DataView(header.buffer);
  view.setBigUint64(16, BigInt(ptr(iov)), true);
  view.setBigUint64(24, 1n, true);
  view.setBigUint64(32, BigInt(ptr(control)), true);
  view.setBigUint64(40, BigInt(control.length), true);
  let n: number;
  do n = libc.recvmsg(sock, ptr(header), MSG_CMSG_CLOEXEC);
  while (n < 0 && errno() === EINTR);
  if (n < 0) throw new SysError("recvmsg", errno(), "(console socket)");
  const fds: number[] = [];
  const controlLength = Number(view.getBigUint64(40, true));
  const cmsg = new DataView(control.buffer);
  for (let at = 0; at + 16 <= controlLength; ) {
    const length = Number(cmsg.getBigUint64(at, true));
    if (length < 16) break;
    if (cmsg.getInt32(at + 8, true) === SOL_SOCKET && cmsg.getInt32(at + 12, true) === SCM_RIGHTS) {
      for (let p = at + 16; p + 4 <= at + length; p += 4) fds.push(cmsg.getInt32(p, true));
    }
    at += (length + 7) & ~7;
  }
  if (fds.length === 0) throw new Error(n === 0 ? "the console socket closed without sending a terminal" : "the console socket sent no file descriptor");
  for (const extra of fds.slice(1)) libc.close(extra);
  return { fd: fds[0]!, text: new TextDecoder().decode(text.subarray(0, n)) };
}

// ---- terminal settings -----------------------------------------------------------------------------

export function isTerminal(fd: number): boolean {
  return libc.isatty(fd) === 1;
}

export interface WindowSize {
  rows: number;
  cols: number;
}

/** TIOCGWINSZ: the terminal's size, or null if `fd` is not a terminal. */
export function windowSize(fd: number): WindowSize | null {
  const size = new Uint16Array(4);
  if (libc.ioctl(fd, TIOCGWINSZ, ptr(size)) !== 0) return null;
  return { rows: size[0]!, cols: size[1]! };
}

/** TIOCSWINSZ: the kernel sends SIGWINCH to the terminal's foreground process group. */
export function setWindowSize(fd: number, size: WindowSize): void {
  if (libc.ioctl(fd, TIOCSWINSZ, ptr(winsize(size.rows, size.cols))) !== 0) throw new SysError("ioctl", errno(), "TIOCSWINSZ");
}

/**
 * Raw mode on a terminal (cfmakeraw: no echo, no line editing, no signal keys, no output
 * processing), undone by restore(). The settings are glibc's struct termios, kept as bytes.
 */
export class RawMode {
  private restored = false;
  private constructor(
    readonly fd: number,
    private readonly saved: Uint8Array,
  ) {}

  /** Put `fd` in raw mode; null if it is not a terminal. */
  static enter(fd: number): RawMode | null {
    const saved = new Uint8Array(64); // sizeof(struct termios) is 60 in glibc
    if (libc.tcgetattr(fd, ptr(saved)) !== 0) return null;
    const raw = saved.slice();
    libc.cfmakeraw(ptr(raw));
    if (libc.tcsetattr(fd, TCSANOW, ptr(raw)) !== 0) throw new SysError("tcsetattr", errno(), `(fd ${fd}, raw mode)`);
    return new RawMode(fd, saved);
  }

  restore(): void {
    if (this.restored) return;
    this.restored = true;
    libc.tcsetattr(this.fd, TCSANOW, ptr(this.saved));
  }
}

// ---- `minic run -t`: the foreground relay ----------------------------------------------------------

export interface ForegroundOptions {
  /** -i: forward minic's stdin to the container (and, if it is a terminal, put it in raw mode). */
  interactive?: boolean;
}

/** The user's terminal: stdin if it is one, else stdout; -1 if neither is. */
function outerTerminal(): number {
  return isTerminal(0) ? 0 : isTerminal(1) ? 1 : -1;
}

/**
 * A container's terminal, run in the foreground: prepare() before the plan is compiled, attach()
 * once the container runs, finish() when it has exited, close() in any case (it is idempotent, and
 * also runs at process exit, so the user's terminal is restored however minic ends).
 */
export class ForegroundConsole {
  private master = -1;
  private raw: RawMode | null = null;
  private output: ReadStream | null = null;
  private input: ReadStream | null = null;
  private toMaster: WriteStream | null = null;
  private outputDone: Promise<void> = Promise.resolve();
  private outputEnded = false;
  private closed = false;
  private readonly onWinch = () => this.copyWindowSize();
  private readonly onExit = () => this.close();

  private constructor(
    private agentEnd: number,
    private childEnd: number,
    private readonly options: ForegroundOptions,
  ) {}

  /**
   * Make the console socket and give its child's end to the plan; the terminal starts with the
   * size of the user's (unless the spec sets process.consoleSize).
   */
  static prepare(spec: Spec, context: PlanContext, options: ForegroundOptions = {}): ForegroundConsole {
    const [agentEnd, childEnd] = consoleSocketPair();
    context.consoleSocket = childEnd;
    const outer = outerTerminal();
    const size = outer >= 0 ? windowSize(outer) : null;
    if (spec.process && !spec.process.consoleSize && size && size.rows > 0 && size.cols > 0) {
      spec.process.consoleSize = { height: size.rows, width: size.cols };
    }
    const foreground = new ForegroundConsole(agentEnd, childEnd, options);
    process.on("exit", foreground.onExit);
    return foreground;
  }

  /** The container has exec'd: take the master it sent, and start relaying. */
  attach(): void {
    libc.close(this.childEnd);
    this.childEnd = -1;
    this.master = receiveFd(this.agentEnd).fd;
    libc.close(this.agentEnd);
    this.agentEnd = -1;
    const master = this.master;

    // master -> stdout, with backpressure; the end comes as EIO once every copy of the peer is closed.
    const output = (this.output = createReadStream("", { fd: master, autoClose: false, highWaterMark: 64 * 1024 }));
    const sink = createWriteStream("", { fd: 1, autoClose: false });
    sink.on("error", () => output.destroy()); // stdout went away (a closed pipe): stop copying
    this.outputDone = new Promise<void>((resolve) => {
      const end = () => {
        if (this.outputEnded) return;
        this.outputEnded = true;
        sink.write("", () => resolve()); // after every earlier write is done
      };
      output.on("data", (chunk) => {
        if (!sink.write(chunk)) {
          output.pause();
          sink.once("drain", () => output.resume());
        }
      });
      output.on("end", end);
      output.on("error", end); // EIO: the container's side is closed
      output.on("close", end);
    });

    if (this.options.interactive) {
      if (isTerminal(0)) this.raw = RawMode.enter(0);
      const toMaster = (this.toMaster = createWriteStream("", { fd: master, autoClose: false }));
      toMaster.on("error", () => {}); // the container is gone: nothing left to type into
      const input = (this.input = createReadStream("", { fd: 0, autoClose: false }));
      input.on("data", (chunk) => {
        if (!toMaster.write(chunk)) {
          input.pause();
          toMaster.once("drain", () => input.resume());
        }
      });
      // End of input: a terminal has no half-close, so type the EOF character (^D), as script(1) does.
      input.on("end", () => toMaster.write(Buffer.from([4])));
      input.on("error", () => {});
    }
    if (outerTerminal() >= 0) {
      process.on("SIGWINCH", this.onWinch);
      this.copyWindowSize(); // in case it changed between prepare() and now
    }
  }

  /** The container has exited: wait (at most `timeoutMs`) for the rest of its output. */
  async finish(timeoutMs = 2000): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([this.outputDone, new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)))]);
    clearTimeout(timer);
  }

  /** Stop relaying, restore the user's terminal, close the fds. Safe to call more than once. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.raw?.restore();
    process.off("SIGWINCH", this.onWinch);
    process.off("exit", this.onExit);
    this.input?.destroy();
    this.toMaster?.destroy();
    this.output?.destroy();
    for (const fd of [this.agentEnd, this.childEnd]) if (fd >= 0) libc.close(fd);
    // A read may still be pending on the master if the output never ended; then it is left to exit.
    if (this.master >= 0 && (this.outputEnded || !this.output)) libc.close(this.master);
  }

  private copyWindowSize(): void {
    const outer = outerTerminal();
    const size = outer >= 0 ? windowSize(outer) : null;
    if (size && this.master >= 0 && !this.closed) {
      try {
        setWindowSize(this.master, size);
      } catch {
        // the container is gone
      }
    }
  }
}
