// OCI hooks: programs the runtime runs at fixed moments of a container's life, with the
// container's state as JSON on their standard input (runtime-spec config.md, "POSIX-platform Hooks").
//
//   prestart, createRuntime   after the namespaces exist, before pivot_root, in the runtime's namespaces
//   createContainer           the same moment, in the container's namespaces (joined with setns)
//   startContainer            when `start` releases the container, before the command runs, in the
//                             container's namespaces: its path resolves inside the container
//   poststart                 after the command started (failures only warn)
//   poststop                  after the container was deleted (failures only warn)
//
// A hook that fails, or outlives its timeout, fails the operation (except poststop).
import { ptr } from "bun:ffi";
import type { Hook } from "./spec/types.ts";
import { log } from "./log.ts";
import { libc, errno, SysError } from "./libc/ffi.ts";
import { O_CLOEXEC } from "./libc/constants.ts";

export async function runHooks(
  name: string, hooks: Hook[] | undefined, state: object, { warnOnly = false, inContainer = 0 } = {},
): Promise<void> {
  for (const [i, hook] of (hooks ?? []).entries()) {
    const where = `hooks.${name}[${i}] (${hook.path})`;
    try {
      await (inContainer > 0 ? runHookIn(inContainer, hook, state) : runHook(hook, state));
    } catch (error) {
      const message = `${where}: ${(error as Error).message}`;
      if (!warnOnly) throw new Error(message);
      log.warn(message);
    }
  }
}

async function runHook(hook: Hook, state: object): Promise<void> {
  const env = Object.fromEntries((hook.env ?? []).map((e) => [e.slice(0, e.indexOf("=")), e.slice(e.indexOf("=") + 1)]));
  const child = Bun.spawn([hook.path, ...(hook.args ?? [hook.path]).slice(1)], {
    argv0: hook.args?.[0] ?? hook.path,
    env,
    stdin: new TextEncoder().encode(JSON.stringify(state)),
    stdout: "inherit",
    stderr: "pipe",
  });
  const timer = hook.timeout ? setTimeout(() => child.kill(9), hook.timeout * 1000) : undefined;
  const code = await child.exited;
  clearTimeout(timer);
  if (child.signalCode === "SIGKILL" && hook.timeout) throw new Error(`timed out after ${hook.timeout} s`);
  if (code !== 0) {
    const why = (await new Response(child.stderr).text()).trim().split("\n").pop();
    throw new Error(`exited ${code}${why ? `: ${why}` : ""}`);
  }
}

/**
 * Run a hook inside the namespaces of process `pid` (the container's), with minic's own fork and
 * exec machinery: the child joins them with setns, takes the state JSON from a pipe as stdin, and
 * execs the hook. (The PID namespace applies only to children; hooks stay out of it, like runc's.)
 */
async function runHookIn(pid: number, hook: Hook, state: object): Promise<void> {
  const { launch, waitForExit } = await import("./process/agent.ts");
  const { namespacesToJoin } = await import("./exec.ts");
  const { joinStep } = await import("./namespaces.ts");
  const { closeInheritedFds, execCommand, parentDeathSignal, resetSignals } = await import("./process/steps.ts");
  const { exitCodeFor } = await import("./process/status.ts");
  const fds = new Int32Array(2);
  if (libc.pipe2(ptr(fds), O_CLOEXEC) !== 0) throw new SysError("pipe2", errno());
  const json = new TextEncoder().encode(JSON.stringify(state)); // well under a pipe's 64 KiB
  libc.write(fds[1]!, ptr(json), json.length);
  libc.close(fds[1]!);
  const stdin = fds[0]!;
  try {
    const joins = namespacesToJoin(pid).filter((ns) => ns.type !== "user" && ns.type !== "pid");
    const launched = await launch([
      parentDeathSignal(),
      ...joins.map((ns) => joinStep(ns.type, ns.path)),
      { kind: "call", call: "dup2", args: [String(stdin), "0"], label: "take the state JSON as stdin", run: () => (libc.dup2(stdin, 0) < 0 ? -errno() : 0) },
      closeInheritedFds(),
      resetSignals(),
      execCommand({ candidates: [hook.path], argv: hook.args ?? [hook.path], env: hook.env ?? [] }),
    ]);
    const timer = hook.timeout ? setTimeout(() => libc.kill(launched.pid, 9), hook.timeout * 1000) : undefined;
    const status = await waitForExit(launched);
    clearTimeout(timer);
    if (status.kind === "signaled" && status.signal === 9 && hook.timeout) throw new Error(`timed out after ${hook.timeout} s`);
    const code = exitCodeFor(status);
    if (code !== 0) throw new Error(`exited ${code}`);
  } finally {
    libc.close(stdin);
  }
}
