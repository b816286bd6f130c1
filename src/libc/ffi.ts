// The one door to the kernel: libc, opened once through bun:ffi.
//
// Every syscall minic makes goes through a symbol declared here. Types follow the C prototypes;
// pointers are "ptr" (a number holding an address), sizes are u64. Variadic functions (prctl,
// syscall, ioctl) are declared with a fixed number of integer arguments, which is how the x86_64
// and aarch64 calling conventions pass them anyway.
import { dlopen, read, CString, FFIType, type Pointer } from "bun:ffi";
import { errnoName } from "./errno.ts";

const { symbols } = dlopen("libc.so.6", {
  // process: the seed's three calls, and what surrounds them
  fork: { args: [], returns: "i32" },
  execve: { args: ["ptr", "ptr", "ptr"], returns: "i32" },
  waitpid: { args: ["i32", "ptr", "i32"], returns: "i32" },
  _exit: { args: ["i32"], returns: "void" },
  kill: { args: ["i32", "i32"], returns: "i32" },
  getpid: { args: [], returns: "i32" },
  getuid: { args: [], returns: "u32" },
  getgid: { args: [], returns: "u32" },
  prctl: { args: ["i32", "u64", "u64", "u64", "u64"], returns: "i32" },
  syscall: { args: ["i64", "u64", "u64", "u64", "u64", "u64"], returns: FFIType.i64_fast }, // a number, not a BigInt
  setsid: { args: [], returns: "i32" },
  // signals, reset in the child before exec
  signal: { args: ["i32", "ptr"], returns: "ptr" },
  sigprocmask: { args: ["i32", "ptr", "ptr"], returns: "i32" },
  // file descriptors: the report pipe, the go pipe, and closing what the container must not see
  pipe2: { args: ["ptr", "i32"], returns: "i32" },
  // ssize_t results declared i32: our reads and writes are far below 2 GiB, and an "i64" result
  // would be a BigInt, an allocation, which the forked child must avoid (see process/child.ts).
  read: { args: ["i32", "ptr", "u64"], returns: "i32" },
  write: { args: ["i32", "ptr", "u64"], returns: "i32" },
  close: { args: ["i32"], returns: "i32" },
  close_range: { args: ["u32", "u32", "i32"], returns: "i32" },
  poll: { args: ["ptr", "u64", "i32"], returns: "i32" },
  open: { args: ["ptr", "i32", "u32"], returns: "i32" },
  ioctl: { args: ["i32", "u64", "ptr"], returns: "i32" },
  socket: { args: ["i32", "i32", "i32"], returns: "i32" },
  // networking (src/network/): netlink sockets, the host-port check, the IPAM lock
  bind: { args: ["i32", "ptr", "u32"], returns: "i32" },
  setsockopt: { args: ["i32", "i32", "i32", "ptr", "u32"], returns: "i32" },
  flock: { args: ["i32", "i32"], returns: "i32" },
  // memory: making Bun's JIT region survive fork
  madvise: { args: ["u64", "u64", "i32"], returns: "i32" },
  // time, for --trace records written by the child
  clock_gettime: { args: ["i32", "ptr"], returns: "i32" },
  // errno and its text
  __errno_location: { args: [], returns: "ptr" },
  strerror: { args: ["i32"], returns: "ptr" },
  // namespaces, mounts and identity (used by the setup steps)
  unshare: { args: ["i32"], returns: "i32" },
  setns: { args: ["i32", "i32"], returns: "i32" },
  mount: { args: ["ptr", "ptr", "ptr", "u64", "ptr"], returns: "i32" },
  umount2: { args: ["ptr", "i32"], returns: "i32" },
  pivot_root: { args: ["ptr", "ptr"], returns: "i32" },
  chdir: { args: ["ptr"], returns: "i32" },
  chroot: { args: ["ptr"], returns: "i32" },
  mkdir: { args: ["ptr", "u32"], returns: "i32" },
  mknod: { args: ["ptr", "u32", "u64"], returns: "i32" },
  symlink: { args: ["ptr", "ptr"], returns: "i32" },
  sethostname: { args: ["ptr", "u64"], returns: "i32" },
  setdomainname: { args: ["ptr", "u64"], returns: "i32" },
  setgroups: { args: ["u64", "ptr"], returns: "i32" },
  setresuid: { args: ["u32", "u32", "u32"], returns: "i32" },
  setresgid: { args: ["u32", "u32", "u32"], returns: "i32" },
  umask: { args: ["u32"], returns: "u32" },
  capset: { args: ["ptr", "ptr"], returns: "i32" },
  stat: { args: ["ptr", "ptr"], returns: "i32" },
  setrlimit: { args: ["i32", "ptr"], returns: "i32" },
  statvfs: { args: ["ptr", "ptr"], returns: "i32" },
  // plain file operations (libc/fs.ts), so that start-up need not load node:fs
  faccessat: { args: ["i32", "ptr", "i32", "i32"], returns: "i32" },
  readlink: { args: ["ptr", "ptr", "u64"], returns: "i32" },
  realpath: { args: ["ptr", "ptr"], returns: "ptr" },
  free: { args: ["ptr"], returns: "void" },
  unlinkat: { args: ["i32", "ptr", "i32"], returns: "i32" },
  opendir: { args: ["ptr"], returns: "ptr" },
  readdir: { args: ["ptr"], returns: "ptr" },
  closedir: { args: ["ptr"], returns: "i32" },
  unlink: { args: ["ptr"], returns: "i32" },
  rename: { args: ["ptr", "ptr"], returns: "i32" },
  dup2: { args: ["i32", "i32"], returns: "i32" },
  renameat2: { args: ["i32", "ptr", "i32", "ptr", "u32"], returns: "i32" },
  // terminals (src/terminal/): the console socket, SCM_RIGHTS, the pty's owner, raw mode
  socketpair: { args: ["i32", "i32", "i32", "ptr"], returns: "i32" },
  connect: { args: ["i32", "ptr", "u32"], returns: "i32" },
  sendmsg: { args: ["i32", "ptr", "i32"], returns: "i32" },
  recvmsg: { args: ["i32", "ptr", "i32"], returns: "i32" },
  fchown: { args: ["i32", "u32", "u32"], returns: "i32" },
  isatty: { args: ["i32"], returns: "i32" },
  tcgetattr: { args: ["i32", "ptr"], returns: "i32" },
  tcsetattr: { args: ["i32", "i32", "ptr"], returns: "i32" },
  cfmakeraw: { args: ["ptr"], returns: "void" },
  fcntl: { args: ["i32", "i32", "i32"], returns: "i32" }, // the int-argument forms (F_GETFL, F_SETFL)
});

export const libc = symbols;

// errno lives in thread-local storage; its address is fixed for the main thread, so it is cached.
// Read it immediately after the failing call, before anything else can overwrite it.
const errnoPtr = symbols.__errno_location() as Pointer;
export function errno(): number {
  return read.i32(errnoPtr, 0);
}

export function strerror(code: number): string {
  return new CString(symbols.strerror(code) as Pointer).toString();
}

/** A failed system call, with the context a person needs: which call, on what, and why. */
export class SysError extends Error {
  readonly code: string;
  constructor(
    readonly call: string,
    readonly errno: number,
    readonly detail = "",
  ) {
    const name = errnoName(errno);
    super(`${call}${detail ? ` ${detail}` : ""}: ${name} (${strerror(errno)})`);
    this.code = name;
  }
}

/** Run a libc call that returns -1 on failure; throw a SysError carrying errno if it did. */
export function check(call: string, result: number | bigint, detail = ""): number {
  if (Number(result) === -1) throw new SysError(call, errno(), detail);
  return Number(result);
}
