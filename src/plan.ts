// Compiling a container's configuration (an OCI spec) into the child's list of prepared steps.
// The list is plain data that --dry-run prints, --trace narrates and the unit tests read.
import type { Spec } from "./spec/types.ts";
import type { Step } from "./process/step.ts";
import { closeInheritedFds, execCommand, parentDeathSignal, resetSignals } from "./process/steps.ts";
import { commandCandidates, DEFAULT_PATH } from "./process/path.ts";

/** The value of `name` in a KEY=VALUE list, as getenv would find it. */
export function envValue(env: readonly string[], name: string): string | undefined {
  const entry = env.find((e) => e.startsWith(`${name}=`));
  return entry?.slice(name.length + 1);
}

export function compilePlan(spec: Spec): Step[] {
  const proc = spec.process;
  if (!proc || proc.args.length === 0) throw new Error("config: process.args must be a non-empty array");
  const env = proc.env ?? [];
  const steps: Step[] = [];
  // If the agent dies from here on, the kernel kills this process: no container runs orphaned.
  steps.push(parentDeathSignal());
  // The container inherits stdin, stdout and stderr, and no other descriptor of the runtime's.
  steps.push(closeInheritedFds());
  // Last before exec: signals the runtime ignored (SIGPIPE) or blocked must not reach the command so.
  steps.push(resetSignals());
  steps.push(
    execCommand({
      candidates: commandCandidates(proc.args[0]!, envValue(env, "PATH") ?? DEFAULT_PATH, spec.root?.path ?? "/"),
      argv: proc.args,
      env,
    }),
  );
  return steps;
}
