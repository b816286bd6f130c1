// OCI hooks: programs the runtime runs at fixed moments of a container's life, with the
// container's state as JSON on their standard input (runtime-spec config.md, "POSIX-platform Hooks").
//
//   prestart, createRuntime   after the namespaces exist, before pivot_root (runtime's namespaces)
//   createContainer           the same moment (runtime-spec wants the container's mount namespace;
//                             minic runs it in the runtime's, like the two above)
//   startContainer            when `start` releases the container, before the command runs
//   poststart                 after the command started
//   poststop                  after the container was deleted (failures only warn)
//
// A hook that fails, or outlives its timeout, fails the operation (except poststop).
import type { Hook } from "./spec/types.ts";
import { log } from "./log.ts";

export async function runHooks(
  name: string, hooks: Hook[] | undefined, state: object, { warnOnly = false } = {},
): Promise<void> {
  for (const [i, hook] of (hooks ?? []).entries()) {
    const where = `hooks.${name}[${i}] (${hook.path})`;
    try {
      await runHook(hook, state);
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
