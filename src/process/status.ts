// What a process's end means, in the exit codes docker and the shell use.
//
//   the command's own status   it exited normally
//   128 + N                    signal N killed it
//   125                        minic itself failed (a setup step, bad input)
//   126                        the command exists but could not be run (EACCES, ENOEXEC, a directory)
//   127                        the command was not found (ENOENT, ENOTDIR)
import { EACCES, EISDIR, ENOENT, ENOEXEC, ENOTDIR, errnoName } from "../libc/errno.ts";
import { strerror } from "../libc/ffi.ts";
import { signalName } from "../libc/constants.ts";
import type { StepKind } from "./step.ts";

export const EXIT_MINIC_FAILED = 125;
export const EXIT_CANNOT_RUN = 126;
export const EXIT_NOT_FOUND = 127;

export type WaitStatus =
  | { kind: "exited"; code: number }
  | { kind: "signaled"; signal: number; coreDumped: boolean }
  | { kind: "stopped"; signal: number };

/** Decode the int that waitpid() stores (the WIFEXITED / WTERMSIG macros of <sys/wait.h>). */
export function decodeWaitStatus(status: number): WaitStatus {
  const low = status & 0x7f;
  if (low === 0) return { kind: "exited", code: (status >> 8) & 0xff };
  if (low === 0x7f) return { kind: "stopped", signal: (status >> 8) & 0xff };
  return { kind: "signaled", signal: low, coreDumped: (status & 0x80) !== 0 };
}

/** The exit code minic itself ends with, for a container that ended this way. */
export function exitCodeFor(status: WaitStatus): number {
  return status.kind === "exited" ? status.code : 128 + status.signal;
}

export function describeWaitStatus(status: WaitStatus): string {
  if (status.kind === "exited") return `exited ${status.code}`;
  if (status.kind === "stopped") return `stopped by ${signalName(status.signal)}`;
  return `killed by ${signalName(status.signal)}${status.coreDumped ? " (core dumped)" : ""}`;
}

/** The exit code for a setup step that failed with `err` (an errno). */
export function exitCodeForFailure(kind: StepKind, err: number): number {
  if (kind !== "exec") return EXIT_MINIC_FAILED;
  return err === ENOENT || err === ENOTDIR ? EXIT_NOT_FOUND : EXIT_CANNOT_RUN;
}

/** How a shell would say that the command could not be run. */
export function execFailureMessage(command: string, err: number): string {
  if (err === ENOENT && !command.includes("/")) return `${command}: command not found`;
  if (err === EACCES && !command.includes("/")) return `${command}: permission denied (found in PATH but not executable)`;
  const text = err === EISDIR ? "is a directory" : err === ENOEXEC ? "exec format error (not a binary, no #! line)" : strerror(err).toLowerCase();
  return `${command}: ${text} (${errnoName(err)})`;
}
