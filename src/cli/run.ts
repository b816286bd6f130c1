// `minic run [FLAGS] COMMAND [ARG...]`: flags become an OCI spec, the spec becomes a container.
import { OCI_VERSION, type Spec } from "../spec/types.ts";
import { envList } from "../libc/cstr.ts";
import { formatPlan, runContainer } from "../container.ts";
import { traceLine } from "../log.ts";
import { UsageError } from "./argv.ts";
import type { Verb } from "./verb.ts";

export const run: Verb = {
  takesCommandLine: true,
  command: {
    meta: {
      name: "run",
      description:
        "Run COMMAND in a new container and wait for it. Everything from COMMAND on goes to the container " +
        "untouched; minic's flags come before it. Exit status: the command's own, 128+N if signal N killed it, " +
        "125 if minic failed, 126 if the command could not be run, 127 if it was not found.",
    },
    args: {
      trace: {
        type: "boolean",
        description: "Print each syscall of the flow on stderr as it happens, with its arguments, result and time",
      },
      "dry-run": { type: "boolean", description: "Print the prepared setup steps in order, and run nothing" },
      command: { type: "positional", description: "The command to run, then its arguments" },
    },
  },
  async main({ flags, rest }) {
    if (rest.length === 0) throw new UsageError("run needs a command", "usage: minic run [FLAGS] COMMAND [ARG...]");
    const spec = specFromRunFlags(rest);
    if (flags["dry-run"]) {
      console.log(formatPlan(spec));
      return 0;
    }
    const timeout = Number(process.env.MINIC_SETUP_TIMEOUT_MS) || undefined;
    return runContainer(spec, { trace: flags.trace ? traceLine : undefined, setupTimeoutMs: timeout });
  },
};

/** Build the container's spec from `run`'s flags and the command line. */
export function specFromRunFlags(command: string[], env: Record<string, string | undefined> = process.env): Spec {
  return {
    ociVersion: OCI_VERSION,
    process: { user: { uid: 0, gid: 0 }, args: command, env: envList(env), cwd: process.cwd() },
  };
}
