// The rest of a container's default hardening, as runc applies it:
//   - masked paths: kernel files that leak host information or power (/proc/kcore, /proc/keys ...)
//     are hidden behind /dev/null (files) or an empty read-only tmpfs (directories);
//   - read-only paths: /proc/sys, /proc/sysrq-trigger ... are bound onto themselves read-only;
//   - no_new_privs: execve can never grant privileges (setuid bits, file capabilities);
//   - rlimits, oom_score_adj, and a session of its own (so the container has no controlling
//     terminal to push keystrokes into: the TIOCSTI attack; seccomp blocks TIOCSTI as well).
import { ptr } from "bun:ffi";
import { libc } from "../libc/ffi.ts";
import { CStr } from "../libc/cstr.ts";
import { EINVAL, ENOENT, ENOTDIR, EPERM } from "../libc/errno.ts";
import { MS_BIND, MS_RDONLY, MS_REC, O_CLOEXEC, O_WRONLY, PR_SET_NO_NEW_PRIVS } from "../libc/constants.ts";
import { type Step, viaErrno, q } from "../process/step.ts";
import { mountStep, remountReadOnlyStep } from "../rootfs/steps.ts";
import { RLIMITS } from "../spec/validate.ts";

/** runc's and docker's defaults. */
export const DEFAULT_MASKED_PATHS = [
  "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
  "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap",
];
export const DEFAULT_READONLY_PATHS = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"];

/**
 * Hide `path` (inside the new root): bind /dev/null over a file, or mount an empty read-only tmpfs
 * over a directory. Which one is decided in the child, where the path is seen: mounting /dev/null
 * onto a directory fails with ENOTDIR, and then the tmpfs is used. A missing path is fine.
 */
export function maskPathStep(path: string): Step {
  const [target, devNull, tmpfs] = [new CStr(path), new CStr("/dev/null"), new CStr("tmpfs")];
  return {
    kind: "call", call: "mount", args: [q(path), '"/dev/null" (file) or tmpfs ro (directory)'], label: `mask ${path}`,
    keep: [target, devNull, tmpfs], tolerate: [ENOENT],
    run: () => {
      const r = viaErrno(libc.mount(devNull.ptr, target.ptr, null, MS_BIND, null));
      if (r !== -ENOTDIR) return r;
      return viaErrno(libc.mount(tmpfs.ptr, target.ptr, tmpfs.ptr, MS_RDONLY, null));
    },
  };
}

/** Bind `path` onto itself, then remount that bind read-only. A missing path is fine. */
export function readonlyPathSteps(path: string): Step[] {
  return [
    { ...mountStep(path, path, null, MS_BIND | MS_REC, null, `bind ${path} onto itself`), tolerate: [ENOENT] },
    { ...remountReadOnlyStep(path), tolerate: [ENOENT, EINVAL] },
  ];
}

export function noNewPrivsStep(): Step {
  return {
    kind: "call", call: "prctl", args: ["PR_SET_NO_NEW_PRIVS", "1"], label: "set no_new_privs",
    run: () => viaErrno(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)),
  };
}

/** A new session: no controlling terminal, and the container's own process group. */
export function newSessionStep(): Step {
  return { kind: "call", call: "setsid", args: [], label: "start a new session", run: () => viaErrno(libc.setsid()) };
}

export function rlimitStep(type: string, soft: number, hard: number): Step {
  const resource = (RLIMITS as readonly string[]).indexOf(type);
  const limits = new BigUint64Array([BigInt(soft), BigInt(hard)]);
  const limitsPtr = ptr(limits);
  const show = (n: number) => (n >= 2 ** 63 ? "unlimited" : String(n));
  return {
    kind: "call", call: "setrlimit", args: [type, `{${show(soft)}, ${show(hard)}}`],
    label: `set ${type} to ${show(soft)}:${show(hard)}`, keep: [limits],
    run: () => viaErrno(libc.setrlimit(resource, limitsPtr)),
  };
}

/** What EPERM from setrlimit means, for the error message. */
export const RLIMIT_EPERM_HINT =
  "raising a hard limit needs CAP_SYS_RESOURCE (which minic's own process may lack: see CapBnd in /proc/self/status), and RLIMIT_NOFILE can never exceed fs.nr_open; lower the hard limit";

export function oomScoreAdjStep(value: number): Step {
  const [file, text] = [new CStr("/proc/self/oom_score_adj"), new TextEncoder().encode(String(value))];
  const textPtr = ptr(text);
  return {
    kind: "call", call: "open+write", args: ['"/proc/self/oom_score_adj"', q(String(value))], label: `set oom_score_adj to ${value}`,
    keep: [file, text],
    run: () => {
      const fd = libc.open(file.ptr, O_WRONLY | O_CLOEXEC, 0);
      if (fd < 0) return viaErrno(fd);
      const r = viaErrno(libc.write(fd, textPtr, text.length));
      libc.close(fd);
      return r;
    },
  };
}

export { EPERM };
