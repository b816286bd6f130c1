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
// The relay never blocks the event loop (signals are still forwarded, SIGCHLD still reaps the
// container) nor a worker thread: see ForegroundConsole.
import { ptr } from "bun:ffi";
import { createWriteStream, type WriteStream } from "node:fs";
import { libc, errno, SysError } from "../libc/ffi.ts";
import { CStr } from "../libc/cstr.ts";
import { basename, dirname } from "../libc/fs.ts";
import { O_CLOEXEC, O_NONBLOCK, O_PATH, POLLIN } from "../libc/constants.ts";
import { EAGAIN, EINTR } from "../libc/errno.ts";
import type { Spec } from "../spec/types.ts";
import type { PlanContext } from "../plan.ts";
import {
  AF_UNIX, FdMessage, MSG_CMSG_CLOEXEC, MSG_NOSIGNAL, MSGHDR_SIZE, SCM_RIGHTS, SOCK_CLOEXEC, SOCK_STREAM, SOL_SOCKET,
  TIOCGWINSZ, TIOCSWINSZ, winsize,
} from "./pty.ts";

const TCSANOW = 0;
const F_GETFL = 3, F_SETFL = 4;
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

/** Resolves when `sink` can take more, or will take nothing more (an error, or closed). */
function drainOrEnd(sink: WriteStream): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      sink.off("drain", done).off("error", done).off("close", done);
      resolve();
    };
    sink.on("drain", done).on("error", done).on("close", done);
  });
}

/** The user's terminal: stdin if it is one, else stdout; -1 if neither is. */
function outerTerminal(): number {
  return isTerminal(0) ? 0 : isTerminal(1) ? 1 : -1;
}

/**
 * Writes to a non-blocking fd (the pty master) from the main thread: what the fd does not take now
 * (EAGAIN) is retried shortly. Nothing waits on a worker thread, so nothing can starve them.
 */
class NonBlockingWriter {
  private readonly queue: Uint8Array[] = [];
  private timer: ReturnType<typeof setTimeout> | undefined;
  private waiters: Array<() => void> = [];
  private failed = false;
  pending = 0;

  constructor(private readonly fd: number) {}

  write(chunk: Uint8Array): void {
    if (this.failed || chunk.length === 0) return;
    this.queue.push(chunk);
    this.pending += chunk.length;
    if (!this.timer) this.flush();
  }

  /** Resolves once less than `limit` bytes wait to be written (or writing failed). */
  drained(limit = 0): Promise<void> {
    if (this.pending <= limit || this.failed) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  stop(): void {
    clearTimeout(this.timer);
    this.failed = true;
    this.wake();
  }

  private flush = (): void => {
    this.timer = undefined;
    while (this.queue.length > 0 && !this.failed) {
      const chunk = this.queue[0]!;
      const n = libc.write(this.fd, ptr(chunk), chunk.length);
      if (n < 0) {
        const code = errno();
        if (code === EINTR) continue;
        if (code === EAGAIN) {
          this.timer = setTimeout(this.flush, 10);
          return;
        }
        this.failed = true; // EIO: the container's side is gone; nothing left to type into
        break;
      }
      this.pending -= n;
      if (n < chunk.length) this.queue[0] = chunk.subarray(n);
      else this.queue.shift();
    }
    this.wake();
  };

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const resolve of waiters) resolve();
  }
}

/**
 * A container's terminal, run in the foreground: prepare() before the plan is compiled, attach()
 * once the container runs, finish() when it has exited, close() in any case (it is idempotent, and
 * also runs at process exit, so the user's terminal is restored however minic ends).
 *
 * No read ever blocks a thread: the master is made non-blocking and read through Bun's event loop
 * (Bun.file(fd).stream() polls a non-blocking fd), and stdin is read the same way (Bun polls fd 0
 * without changing its flags, which the user's shell shares). Blocking reads on Bun's small worker
 * pool (node:fs streams) were tried first: two of them, on the master and on a quiet stdin, took
 * every worker, and the write of the container's output to stdout then waited forever.
 */
export class ForegroundConsole {
  private master = -1;
  private raw: RawMode | null = null;
  private output: { cancel(): Promise<void> } | null = null; // the readers of the master and of stdin
  private input: { cancel(): Promise<void> } | null = null;
  private toMaster: NonBlockingWriter | null = null;
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
    const flags = libc.fcntl(master, F_GETFL, 0);
    if (flags < 0 || libc.fcntl(master, F_SETFL, flags | O_NONBLOCK) < 0) throw new SysError("fcntl", errno(), "(O_NONBLOCK on the terminal's master)");

    // master -> stdout, with backpressure; the end comes as EIO once every copy of the peer is closed.
    const sink = createWriteStream("", { fd: 1, autoClose: false });
    const output = Bun.file(master).stream().getReader();
    this.output = output;
    sink.on("error", () => void output.cancel().catch(() => {})); // stdout went away (a closed pipe): stop copying
    this.outputDone = (async () => {
      try {
        for (;;) {
          const { value, done } = await output.read();
          if (done) break;
          if (value.length > 0 && !sink.write(value)) await drainOrEnd(sink);
        }
      } catch {
        // EIO: the container's side is closed; or the copy was cancelled
      }
      this.outputEnded = true;
      await new Promise<void>((resolve) => sink.write("", () => resolve())); // after every earlier write
    })();

    if (this.options.interactive) {
      if (isTerminal(0)) this.raw = RawMode.enter(0);
      const toMaster = (this.toMaster = new NonBlockingWriter(master));
      const input = Bun.file(0).stream().getReader();
      this.input = input;
      void (async () => {
        try {
          for (;;) {
            const { value, done } = await input.read();
            if (done) break;
            toMaster.write(value);
            await toMaster.drained(64 * 1024);
          }
          // End of input: a terminal has no half-close, so type the EOF character (^D), as script(1) does.
          if (!this.closed) toMaster.write(new Uint8Array([4]));
        } catch {
          // stdin failed, or the copy was cancelled
        }
      })();
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
    this.toMaster?.stop();
    void this.input?.cancel().catch(() => {});
    if (!this.outputEnded) void this.output?.cancel().catch(() => {});
    for (const fd of [this.agentEnd, this.childEnd]) if (fd >= 0) libc.close(fd);
    // Bun's reader may still hold the master in its poll set until the cancel is processed: the
    // master is closed now only if its copy has ended, else at exit.
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
