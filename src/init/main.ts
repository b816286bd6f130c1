// minic's init: PID 1 of a container started with `minic run --init`.
//
// Without an init, the command itself is PID 1, and the kernel gives PID 1 two special rules: a
// signal it has no handler for is dropped (so SIGTERM and Ctrl-C's SIGINT do nothing to a plain
// `sleep`), and every orphan in the namespace is re-parented to it (so a command that never calls
// wait() leaves zombies). This program is PID 1 instead: it starts the command as its child,
// forwards signals to it, reaps every child, and exits with the command's status.
//
// It is a fresh process (exec'd Bun, not a fork of the agent), so JavaScript may run here freely.
// It imports nothing outside src/, since inside a rootfs only src/ is mounted for it.
import { ptr } from "bun:ffi";
import { libc } from "../libc/ffi.ts";
import { WNOHANG } from "../libc/constants.ts";
import { launch, SetupError, SignalRelay } from "../process/agent.ts";
import { closeInheritedFds, execCommand, resetSignals } from "../process/steps.ts";
import { commandCandidates, DEFAULT_PATH } from "../process/path.ts";
import { decodeWaitStatus, execFailureMessage, exitCodeFor } from "../process/status.ts";

export async function initMain(argv: string[]): Promise<number> {
  // The command gets the container's environment, less what minic added for the init itself.
  const keepJitVar = process.env.MINIC_INIT_KEEP_JIT_VAR === "1";
  const env = Object.entries(process.env)
    .filter(([k]) => k !== "MINIC_INIT_KEEP_JIT_VAR" && (keepJitVar || k !== "BUN_JSC_useConcurrentJIT"))
    .map(([k, v]) => `${k}=${v}`);
  const relay = new SignalRelay().start();
  let launched;
  try {
    launched = await launch(
      [closeInheritedFds(), resetSignals(), execCommand({ candidates: commandCandidates(argv[0]!, process.env.PATH ?? DEFAULT_PATH), argv, env })],
      {},
      relay,
    );
  } catch (error) {
    relay.stop();
    if (!(error instanceof SetupError)) throw error;
    const message = error.step.kind === "exec" ? execFailureMessage(argv[0]!, error.errno) : error.message;
    process.stderr.write(`minic: ${message}\n`);
    return error.exitCode;
  }
  const main = launched.pid;
  const status = new Int32Array(1);
  return new Promise((resolve) => {
    const keepAlive = setInterval(() => reapAll(), 50); // see waitForExit in agent.ts
    const reapAll = () => {
      // Reap everything that has ended: the command, and any orphan re-parented to PID 1.
      for (;;) {
        const pid = libc.waitpid(-1, ptr(status), WNOHANG);
        if (pid <= 0) return;
        if (pid === main) {
          process.off("SIGCHLD", reapAll);
          clearInterval(keepAlive);
          relay.stop();
          resolve(exitCodeFor(decodeWaitStatus(status[0]!)));
          return;
        }
      }
    };
    process.on("SIGCHLD", reapAll);
    reapAll();
  });
}

// Started as `bun main.ts CMD ARG...` (or through the dynamic loader): argv[2] on is the command.
if (import.meta.main) process.exit(await initMain(process.argv.slice(2)));
