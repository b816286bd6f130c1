// Signals sent to minic reach the container; a dead agent takes its container with it.
// bin/minic is a sh script that execs bun, so the pid Bun.spawn returns is the agent itself.
// Each case runs with run's defaults (the command is PID 1 of a PID namespace) and with
// --no-namespaces (the seed's Part 0: a plain child of the agent).
import { afterEach, describe, expect, setDefaultTimeout, test } from "bun:test";
import { MINIC, childrenOf, isDead, procInfo, waitUntil, type ProcInfo } from "./helpers.ts";

// Waits below give up after 10 s (a hang guard); let them report before the test itself times out.
setDefaultTimeout(60_000);

const strays: number[] = [];
afterEach(() => {
  // If a test failed half-way, do not leave its sleep behind for 100 s.
  for (const pid of strays.splice(0)) if (!isDead(pid)) process.kill(pid, "SIGKILL");
});

const MODES: Array<[string, string[]]> = [
  ["default", []],
  ["--no-namespaces", ["--no-namespaces"]],
];

function startMinic(args: string[]) {
  return Bun.spawn([MINIC, "run", ...args], { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
}

/** Wait until the agent's child is running `args` (it has exec'd), and return it. */
async function containerOf(agentPid: number, args: string[]): Promise<ProcInfo> {
  const found = await waitUntil(
    () => childrenOf(agentPid).find((p) => JSON.stringify(p.args) === JSON.stringify(args)),
    () => `${args.join(" ")} to run under minic (pid ${agentPid}); agent: ${JSON.stringify(procInfo(agentPid))}; its children: ${JSON.stringify(childrenOf(agentPid))}`,
  );
  strays.push(found.pid);
  return found;
}

/**
 * Collect minic's end. If it has not exited `graceMs` after the signal, it is SIGKILLed and
 * `hung` is set, so a signal that was not forwarded fails the test at once instead of timing it out.
 */
async function finish(proc: ReturnType<typeof startMinic>, graceMs = 15_000) {
  let hung = false;
  const timer = setTimeout(() => {
    hung = true;
    proc.kill("SIGKILL");
  }, graceMs);
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  clearTimeout(timer);
  return { hung, code, stdout, stderr };
}

for (const [mode, flags] of MODES) {
  describe(`run (${mode}): signals sent to minic are forwarded to the container`, () => {
    for (const [signal, code] of [["SIGTERM", 143], ["SIGINT", 130]] as const) {
      test(`${signal}: the sleep ends, minic exits ${code} and has reaped it`, async () => {
        const proc = startMinic([...flags, "sleep", "100"]);
        const sleep = await containerOf(proc.pid, ["sleep", "100"]);
        expect(sleep.ppid).toBe(proc.pid);
        proc.kill(signal);
        const result = await finish(proc);
        expect({ hung: result.hung, code: result.code }).toEqual({ hung: false, code });
        expect(result.stdout).toBe("");
        expect(procInfo(sleep.pid)).toBeNull(); // not running, and not left as a zombie either
      });
    }

    for (const signal of ["USR1", "USR2", "HUP", "QUIT"] as const) {
      test(`SIG${signal} reaches a container that traps it`, async () => {
        const script = `trap "echo got-${signal.toLowerCase()}; exit 3" ${signal}; while :; do sleep 0.1; done`;
        const proc = startMinic([...flags, "sh", "-c", script]);
        const sh = await containerOf(proc.pid, ["sh", "-c", script]);
        // Once sh runs its loop's sleep, the trap is installed.
        await waitUntil(() => childrenOf(sh.pid).some((p) => p.args[0] === "sleep"), "the trap loop to start");
        proc.kill(`SIG${signal}`);
        const result = await finish(proc);
        expect({ hung: result.hung, code: result.code, stdout: result.stdout }).toEqual({ hung: false, code: 3, stdout: `got-${signal.toLowerCase()}\n` });
        expect(result.stderr).toBe("");
      });
    }
  });

  describe(`run (${mode}): the container's own death`, () => {
    test("a container killed from outside with SIGKILL: minic exits 137", async () => {
      const proc = startMinic([...flags, "sleep", "100"]);
      const sleep = await containerOf(proc.pid, ["sleep", "100"]);
      process.kill(sleep.pid, "SIGKILL");
      const result = await finish(proc);
      expect({ hung: result.hung, code: result.code }).toEqual({ hung: false, code: 137 });
      expect(procInfo(sleep.pid)).toBeNull();
    });
  });

  describe(`run (${mode}): PR_SET_PDEATHSIG`, () => {
    test("when the agent is SIGKILLed, the container dies with it", async () => {
      const proc = startMinic([...flags, "sleep", "100"]);
      const sleep = await containerOf(proc.pid, ["sleep", "100"]);
      proc.kill("SIGKILL");
      await proc.exited;
      expect(proc.signalCode).toBe("SIGKILL");
      // Dead means gone or a zombie (its new parent, PID 1 here, may be slow to reap). The wait
      // below is a hang guard: a sleep that survives its agent fails the test.
      await waitUntil(() => isDead(sleep.pid), `sleep ${sleep.pid} to die after its agent was killed`, 3_000);
      expect(isDead(sleep.pid)).toBe(true);
    });
  });
}
