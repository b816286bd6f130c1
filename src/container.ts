// Running one container in the foreground: compile the plan, launch it, wait, and clean up.
import { compilePlan } from "./plan.ts";
import type { Spec } from "./spec/types.ts";
import { launch, waitForExit, SetupError, SignalRelay } from "./process/agent.ts";
import { exitCodeFor } from "./process/status.ts";
import { describeStep } from "./process/step.ts";
import { ENOENT, EISDIR, EACCES, ENOEXEC, errnoName } from "./libc/errno.ts";
import { strerror } from "./libc/ffi.ts";
import { log } from "./log.ts";

export interface RunOptions {
  trace?: (line: string) => void;
  setupTimeoutMs?: number;
}

/** The plan as --dry-run prints it: one numbered line per step. */
export function formatPlan(spec: Spec): string {
  return compilePlan(spec)
    .map((step, i) => `${String(i + 1).padStart(2)}. ${describeStep(step)}${step.kind === "call" ? "" : `   [${step.kind}]`}\n      ${step.label}`)
    .join("\n");
}

/** Run the container to its end and return the exit code minic should end with. */
export async function runContainer(spec: Spec, options: RunOptions = {}): Promise<number> {
  const steps = compilePlan(spec);
  const relay = new SignalRelay({ trace: options.trace }).start();
  try {
    const launched = await launch(steps, { trace: options.trace, setupTimeoutMs: options.setupTimeoutMs }, relay);
    return exitCodeFor(await waitForExit(launched, options.trace));
  } catch (error) {
    if (!(error instanceof SetupError)) throw error;
    log.error(error.step.kind === "exec" ? execFailureMessage(spec.process!.args[0]!, error.errno) : error.message);
    return error.exitCode;
  } finally {
    relay.stop();
  }
}

/** How a shell would say that the command could not be run. */
export function execFailureMessage(command: string, err: number): string {
  if (err === ENOENT && !command.includes("/")) return `${command}: command not found`;
  if (err === EACCES && !command.includes("/")) return `${command}: permission denied (found in PATH but not executable)`;
  const text = err === EISDIR ? "is a directory" : err === ENOEXEC ? "exec format error (not a binary, no #! line)" : strerror(err).toLowerCase();
  return `${command}: ${text} (${errnoName(err)})`;
}

