// The container's setup as data: a list of prepared steps that the child runs between fork and exec.
//
// Each step names its call and shows its arguments (for --dry-run, --trace, error messages and
// unit tests) and carries `run`, a closure over buffers built before the fork. `run` makes FFI
// calls only and returns the call's result, or -errno on failure, the kernel's own convention.
import { errno } from "../libc/ffi.ts";

export type StepKind =
  | "call" // an ordinary call: success continues, failure aborts the setup
  | "sync" // report to the agent, then block until it answers (it writes uid_map, joins a cgroup, ...)
  | "fork" // fork again: the parent side reports the new pid and exits, the child side goes on
  | "hold" // setup is done: tell the agent (which may exit), then wait in `run` until released
  | "exec"; // replace the process image; returning at all means failure

export interface Step {
  kind: StepKind;
  /** The C function or syscall, as a reader would look it up: "mount", "execve", "clone". */
  call: string;
  /** Arguments rendered for people: strings quoted, flags by name. */
  args: string[];
  /** What the step achieves, for error messages: "mount proc on /proc". */
  label: string;
  /** The prepared call. Returns >= 0 on success or -errno. Runs in the child: FFI calls only. */
  run: () => number;
  /** errnos that mean "nothing to do" rather than failure (an optional path that is absent). */
  tolerate?: number[];
  /** What a given errno means here, added to the error message (EPERM from setrlimit: which capability). */
  hints?: Partial<Record<number, string>>;
  /** For "sync" steps: the agent's half, run while the child waits. Receives the child's pid. */
  agent?: (pid: number) => void | Promise<void>;
  /** Buffers `run` points into. Holding them here keeps them alive until exec. */
  keep?: unknown[];
}

/** Wrap a libc call that returns -1 and sets errno into the step convention (-errno). */
export function viaErrno(result: number | bigint): number {
  const r = Number(result);
  return r === -1 ? -errno() : r;
}

/** Quote a string argument the way strace does. */
export function q(value: string | null): string {
  return value === null ? "NULL" : JSON.stringify(value);
}

/** Render a string list as ["a", "b"], eliding long ones. */
export function qlist(values: readonly string[], max = 8): string {
  const shown = values.slice(0, max).map((v) => q(v));
  if (values.length > max) shown.push(`... ${values.length - max} more`);
  return `[${shown.join(", ")}]`;
}

/** One line per step, as --dry-run prints them and tests read them. */
export function describeStep(step: Step): string {
  return `${step.call}(${step.args.join(", ")})`;
}
