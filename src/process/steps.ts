// The process steps every container runs: signals, parent-death signal, fds, a second fork, exec.
// Each builder prepares its buffers now (in the agent, before the fork) and returns a Step.
import { ptr } from "bun:ffi";
import { libc } from "../libc/ffi.ts";
import { CStr, CStrArray } from "../libc/cstr.ts";
import { EACCES } from "../libc/errno.ts";
import {
  CLONE_FLAG_NAMES, CLONE_PARENT, NSIG, O_CLOEXEC, O_WRONLY, PR_SET_PDEATHSIG, SIGCHLD, SIGKILL, SIGSTOP, SIG_SETMASK, SYS_clone,
  flagNames, signalName,
} from "../libc/constants.ts";
import { type Step, viaErrno, q, qlist } from "./step.ts";

/**
 * Set every catchable signal back to SIG_DFL and unblock all signals. Dispositions set to "ignore"
 * survive execve, and Bun ignores SIGPIPE and SIGXFSZ: without this, `yes | head -1` inside the
 * container would never die of SIGPIPE.
 */
export function resetSignals(): Step {
  const empty = new BigUint64Array(16);
  const emptyPtr = ptr(empty);
  return {
    kind: "call",
    call: "sigaction+sigprocmask",
    args: ["1..64 -> SIG_DFL", "SIG_SETMASK, {}"],
    label: "reset signal dispositions and mask",
    keep: [empty],
    run: () => {
      for (let sig = 1; sig < NSIG; sig++) {
        // SIGKILL and SIGSTOP cannot be caught; 32 and 33 are glibc's own (cancellation, setxid).
        if (sig !== SIGKILL && sig !== SIGSTOP && sig !== 32 && sig !== 33) libc.signal(sig, null);
      }
      return viaErrno(libc.sigprocmask(SIG_SETMASK, emptyPtr, null));
    },
  };
}

/** Ask the kernel to send `signal` to this process when the agent dies, so no container is orphaned. */
export function parentDeathSignal(signal = SIGKILL): Step {
  return {
    kind: "call",
    call: "prctl",
    args: ["PR_SET_PDEATHSIG", signalName(signal)],
    label: "set the parent-death signal",
    run: () => viaErrno(libc.prctl(PR_SET_PDEATHSIG, signal, 0, 0, 0)),
  };
}

/** Mark every fd above stderr close-on-exec: the container gets stdin, stdout, stderr and nothing of Bun's. */
export function closeInheritedFds(keepUpTo = 2): Step {
  return {
    kind: "call",
    call: "close_range",
    args: [String(keepUpTo + 1), "~0U", "CLOSE_RANGE_CLOEXEC"],
    label: "mark inherited file descriptors close-on-exec",
    run: () => viaErrno(libc.close_range(keepUpTo + 1, 0xffffffff, 4 /* CLOSE_RANGE_CLOEXEC */)),
  };
}

/**
 * Fork again with the raw clone syscall. A PID namespace made by unshare() applies to the next
 * child only, so the command must run in a new process to be PID 1. CLONE_PARENT makes that process
 * a child of the agent rather than of this one, so the agent waits for it directly, and this
 * intermediate process reports the new pid and exits. (The raw syscall skips glibc's fork
 * handlers; the new process makes only plain syscalls until exec, so none are needed.)
 */
export function forkAgain(extraFlags = 0): Step {
  const flags = CLONE_PARENT | extraFlags;
  return {
    kind: "fork",
    call: "clone",
    args: [`${flagNames(flags, CLONE_FLAG_NAMES)}|SIGCHLD`],
    label: "fork into the new PID namespace",
    run: () => viaErrno(libc.syscall(SYS_clone, flags | SIGCHLD, 0, 0, 0, 0)),
  };
}

/** Wait here while the agent does its part (`agent`), then go on. */
export function syncWithAgent(label: string, agent: (pid: number) => void | Promise<void>): Step {
  return { kind: "sync", call: "read", args: ["go pipe"], label, agent, run: () => 0 };
}

export interface ExecTarget {
  /** Paths to try in order, as execvp would: one for a name with a slash, one per PATH entry otherwise. */
  candidates: string[];
  argv: string[];
  env: string[];
}

/**
 * execve the command. Candidates are tried in PATH order; like execvp, a missing file moves on
 * to the next, and EACCES is remembered and reported if nothing else worked.
 */
export function execCommand(target: ExecTarget): Step {
  const paths = target.candidates.map((c) => new CStr(c));
  const argv = new CStrArray(target.argv);
  const env = new CStrArray(target.env);
  const pathPtrs = paths.map((p) => p.ptr);
  return {
    kind: "exec",
    call: "execve",
    args: [
      paths.length === 1 ? q(target.candidates[0]!) : `${qlist(target.candidates, 3)} (PATH search)`,
      qlist(target.argv),
      `[${target.env.length} vars]`,
    ],
    label: `exec ${target.argv[0]}`,
    keep: [paths, argv, env],
    run: () => {
      let sawEacces = false;
      for (let i = 0; i < pathPtrs.length; i++) {
        const r = viaErrno(libc.execve(pathPtrs[i]!, argv.ptr, env.ptr)); // returns only on failure
        if (r === -EACCES) sawEacces = true;
        else if (r !== -2 /* ENOENT */ && r !== -20 /* ENOTDIR */) return r;
      }
      return sawEacces ? -EACCES : -2;
    },
  };
}

export function chdirStep(dir: string): Step {
  const path = new CStr(dir);
  return {
    kind: "call", call: "chdir", args: [q(dir)], label: `change to the working directory ${dir}`, keep: [path],
    run: () => viaErrno(libc.chdir(path.ptr)),
  };
}

export function umaskStep(mask: number): Step {
  return {
    kind: "call", call: "umask", args: [`0${mask.toString(8)}`], label: "set the file creation mask",
    run: () => (libc.umask(mask), 0),
  };
}

/**
 * `minic create` stops here, all set up, until `minic start`: the step reports that setup is done
 * (the create process then exits) and opens the container's exec.fifo for writing, which blocks
 * until `start` opens it for reading; then it writes one byte for `start` to see, and goes on to
 * exec. The fifo was opened O_PATH by the agent before the fork; after pivot_root it is reached
 * through /proc/self/fd, as runc does.
 */
export function holdUntilStarted(fifoFd: number): Step {
  const path = new CStr(`/proc/self/fd/${fifoFd}`);
  const byte = new Uint8Array(1);
  const bytePtr = ptr(byte);
  return {
    kind: "hold", call: "open+write", args: [q(path.value), "O_WRONLY"], label: "wait for `minic start` on exec.fifo",
    keep: [path, byte],
    run: () => {
      const fd = libc.open(path.ptr, O_WRONLY | O_CLOEXEC, 0);
      if (fd < 0) return viaErrno(fd);
      const r = viaErrno(libc.write(fd, bytePtr, 1));
      libc.close(fd);
      return r < 0 ? r : 0;
    },
  };
}

/**
 * Check, as execvp would search, that one of the candidates is there and executable
 * (faccessat X_OK), for `minic create`, which cannot report an exec failure after its hold.
 */
export function findCommandStep(candidates: string[]): Step {
  const paths = candidates.map((c) => new CStr(c));
  return {
    kind: "call", call: "access", args: [qlist(candidates, 3), "X_OK"], label: "find the command", keep: [paths],
    run: () => {
      let sawEacces = false;
      for (let i = 0; i < paths.length; i++) {
        const r = viaErrno(libc.faccessat(-100 /* AT_FDCWD */, paths[i]!.ptr, 1 /* X_OK */, 0));
        if (r === 0) return 0;
        if (r === -EACCES) sawEacces = true;
      }
      return sawEacces ? -EACCES : -2 /* ENOENT */;
    },
  };
}
