// Numbers from the Linux UAPI headers (x86_64 and aarch64 agree on all of these unless noted).
// Names are kept as in C so that `man 2 mount` and this file read alike.

export const O_RDONLY = 0, O_WRONLY = 1, O_RDWR = 2, O_CLOEXEC = 0o2000000, O_NONBLOCK = 0o4000;
export const O_NOCTTY = 0o400, O_DIRECTORY = 0o200000, O_PATH = 0o10000000, O_CREAT = 0o100, O_APPEND = 0o2000;
export const S_IFCHR = 0o20000, S_IFBLK = 0o60000;

export const WNOHANG = 1;
export const POLLIN = 0x1, POLLHUP = 0x10;
export const CLOCK_MONOTONIC = 1;

export const MADV_DONTFORK = 10, MADV_DOFORK = 11;

export const PR_SET_PDEATHSIG = 1, PR_SET_NAME = 15, PR_SET_NO_NEW_PRIVS = 38, PR_SET_CHILD_SUBREAPER = 36;

export const SIG_SETMASK = 2;
/** Signal numbers, as on x86_64 and aarch64. */
export const SIGNALS: Record<string, number> = {
  HUP: 1, INT: 2, QUIT: 3, ILL: 4, TRAP: 5, ABRT: 6, BUS: 7, FPE: 8, KILL: 9, USR1: 10, SEGV: 11, USR2: 12,
  PIPE: 13, ALRM: 14, TERM: 15, STKFLT: 16, CHLD: 17, CONT: 18, STOP: 19, TSTP: 20, TTIN: 21, TTOU: 22,
  URG: 23, XCPU: 24, XFSZ: 25, VTALRM: 26, PROF: 27, WINCH: 28, IO: 29, PWR: 30, SYS: 31,
};
export const SIGKILL = 9, SIGTERM = 15, SIGCHLD = 17, SIGSTOP = 19, NSIG = 65;

export function signalName(n: number): string {
  const name = Object.keys(SIGNALS).find((k) => SIGNALS[k] === n);
  return name ? `SIG${name}` : n >= 34 && n < NSIG ? `SIGRTMIN+${n - 34}` : `signal ${n}`;
}

// clone(2) and unshare(2)
export const CLONE_NEWTIME = 0x80, CLONE_NEWNS = 0x20000, CLONE_NEWCGROUP = 0x2000000, CLONE_NEWUTS = 0x4000000;
export const CLONE_NEWIPC = 0x8000000, CLONE_NEWUSER = 0x10000000, CLONE_NEWPID = 0x20000000;
export const CLONE_NEWNET = 0x40000000, CLONE_PARENT = 0x8000;
export const CLONE_FLAG_NAMES: Record<number, string> = {
  [CLONE_NEWNS]: "CLONE_NEWNS", [CLONE_NEWUTS]: "CLONE_NEWUTS", [CLONE_NEWIPC]: "CLONE_NEWIPC",
  [CLONE_NEWUSER]: "CLONE_NEWUSER", [CLONE_NEWPID]: "CLONE_NEWPID", [CLONE_NEWNET]: "CLONE_NEWNET",
  [CLONE_NEWCGROUP]: "CLONE_NEWCGROUP", [CLONE_NEWTIME]: "CLONE_NEWTIME", [CLONE_PARENT]: "CLONE_PARENT",
};

// syscall numbers that glibc 2.36 has no wrapper for
const X86_64 = process.arch === "x64";
export const SYS_clone = X86_64 ? 56 : 220;

// mount(2)
export const MS_RDONLY = 0x1, MS_NOSUID = 0x2, MS_NODEV = 0x4, MS_NOEXEC = 0x8, MS_REMOUNT = 0x20;
export const MS_NOATIME = 0x400, MS_NODIRATIME = 0x800, MS_BIND = 0x1000, MS_MOVE = 0x2000, MS_REC = 0x4000;
export const MS_SILENT = 0x8000, MS_UNBINDABLE = 0x20000, MS_PRIVATE = 0x40000, MS_SLAVE = 0x80000;
export const MS_SHARED = 0x100000, MS_RELATIME = 0x200000, MS_STRICTATIME = 0x1000000;
export const MNT_DETACH = 2;
export const MS_FLAG_NAMES: Record<number, string> = {
  [MS_RDONLY]: "MS_RDONLY", [MS_NOSUID]: "MS_NOSUID", [MS_NODEV]: "MS_NODEV", [MS_NOEXEC]: "MS_NOEXEC",
  [MS_REMOUNT]: "MS_REMOUNT", [MS_NOATIME]: "MS_NOATIME", [MS_NODIRATIME]: "MS_NODIRATIME", [MS_BIND]: "MS_BIND",
  [MS_MOVE]: "MS_MOVE", [MS_REC]: "MS_REC", [MS_SILENT]: "MS_SILENT", [MS_UNBINDABLE]: "MS_UNBINDABLE",
  [MS_PRIVATE]: "MS_PRIVATE", [MS_SLAVE]: "MS_SLAVE", [MS_SHARED]: "MS_SHARED", [MS_RELATIME]: "MS_RELATIME",
  [MS_STRICTATIME]: "MS_STRICTATIME",
};

/** Render a bit mask as `A|B|0x40`, for --trace and --dry-run. */
export function flagNames(value: number, names: Record<number, string>): string {
  if (value === 0) return "0";
  const parts: string[] = [];
  let rest = value >>> 0;
  for (const [bit, name] of Object.entries(names)) {
    const b = Number(bit);
    if ((rest & b) === b && b !== 0) {
      parts.push(name);
      rest = (rest & ~b) >>> 0;
    }
  }
  if (rest) parts.push(`0x${rest.toString(16)}`);
  return parts.join("|");
}
