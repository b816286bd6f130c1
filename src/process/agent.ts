// The container agent: fork the child, serve its setup over the pipes, then wait for it.
//
//   agent                                     child (runs the prepared steps, FFI only)
//   -----                                     -----
//   pipe2(report, O_CLOEXEC), pipe2(go, ...)
//   fork()  ----------------------------->    step, step, ...
//   read report pipe  <--------------------   a "sync" step: "waiting"
//   do the agent's half (uid_map, cgroup)
//   write go pipe  ----------------------->   ... more steps ...
//   read report pipe  <--------------------   a failure: {step, -errno}, then _exit
//                     <--------------------   or execve succeeds: the kernel closes the pipe (EOF)
//   waitpid(), forwarding signals meanwhile
import { ptr } from "bun:ffi";
import { libc, check, errno, SysError } from "../libc/ffi.ts";
import { EINTR, errnoName } from "../libc/errno.ts";
import { O_CLOEXEC, POLLIN, SIGKILL, WNOHANG, SIGNALS } from "../libc/constants.ts";
import { ChildRunner } from "./child.ts";
import { safeFork } from "./fork.ts";
import { RECORD_SIZE, RecordType, decodeRecords, type Record } from "./report.ts";
import { decodeWaitStatus, describeWaitStatus, exitCodeForFailure, type WaitStatus } from "./status.ts";
import { describeStep, type Step } from "./step.ts";

export interface LaunchOptions {
  /** Where --trace lines go; tracing is off when absent. */
  trace?: (line: string) => void;
  /** How long the child may take to reach exec before it is presumed stuck and killed. */
  setupTimeoutMs?: number;
}

/** A setup step failed in the child; carries the step and errno for the message and exit code. */
export class SetupError extends Error {
  constructor(
    readonly step: Step,
    readonly errno: number,
    readonly exitCode: number,
    message: string,
  ) {
    super(message);
  }
}

/** The child started but never reached exec (nor failed) in time: it was killed. */
export class SetupTimeoutError extends Error {
  readonly exitCode = 125;
}

export interface Launched {
  /** The process that runs the command: the forked child, or its own child after a second fork. */
  pid: number;
  /** Every pid this launch forked that the agent must still reap (pid included). */
  children: number[];
  /** The child stopped at a "hold" step (minic create) instead of exec'ing. */
  detached?: boolean;
}

const DEFAULT_SETUP_TIMEOUT_MS = 10_000;
const ms = (ns: number) => `${(ns / 1e6).toFixed(3)} ms`;

function pipe(): [number, number] {
  const fds = new Int32Array(2);
  check("pipe2", libc.pipe2(ptr(fds), O_CLOEXEC));
  return [fds[0]!, fds[1]!];
}

/** fork() and run `steps` in the child; resolve once the child has exec'd. Throws SetupError otherwise. */
export async function launch(steps: Step[], options: LaunchOptions = {}, relay?: SignalRelay): Promise<Launched> {
  const trace = options.trace;
  const [reportRead, reportWrite] = pipe();
  const [goRead, goWrite] = pipe();
  const runner = new ChildRunner(steps, reportWrite, goRead, trace !== undefined);

  const t0 = Bun.nanoseconds();
  let pid: number;
  try {
    pid = safeFork();
  } catch (error) {
    for (const fd of [reportRead, reportWrite, goRead, goWrite]) libc.close(fd);
    throw error;
  }
  if (pid === 0) runner.run(); // the child: never returns
  libc.close(reportWrite); // from here the child holds the only write end: its exec closes it
  libc.close(goRead);
  trace?.(`[agent] fork() = ${pid} (${ms(Bun.nanoseconds() - t0)})`);

  const launched: Launched = { pid, children: [pid] };
  if (relay) relay.target = pid;
  try {
    await serveChild(steps, launched, reportRead, goWrite, options);
    if (relay) relay.target = launched.pid;
  } catch (error) {
    for (const child of launched.children) libc.kill(child, SIGKILL);
    reapBlocking(launched.children);
    throw error;
  } finally {
    libc.close(reportRead);
    libc.close(goWrite);
  }
  trace?.(`[agent] ${launched.detached ? "container created, waiting to be started" : "report pipe closed: exec succeeded"} (${ms(Bun.nanoseconds() - t0)} after fork)`);
  return launched;
}

/** Read the child's records until EOF (exec worked) or a failure; answer its sync steps. */
async function serveChild(steps: Step[], launched: Launched, fd: number, goFd: number, options: LaunchOptions) {
  const deadline = Date.now() + (options.setupTimeoutMs ?? DEFAULT_SETUP_TIMEOUT_MS);
  const buffer = new Uint8Array(RECORD_SIZE * 64);
  const pollfd = new Int32Array([fd, POLLIN, 0]); // struct pollfd { int fd; short events, revents; }
  // Records of the steps after a second fork come from the new process. It may report before the
  // intermediate process has reported the new pid, so its trace lines wait for that pid.
  const forkAt = steps.findIndex((s) => s.kind === "fork");
  const afterFork = (index: number) => forkAt >= 0 && index > forkAt;
  let held: string[] = [];
  const say = (index: number, text: string) => {
    if (!options.trace) return;
    if (afterFork(index) && launched.children.length < 2) held.push(text);
    else options.trace(`[${afterFork(index) ? launched.pid : launched.children[0]}] ${text}`);
  };
  let failure: Record | null = null;
  let detached = false;
  const deferred: Record[] = [];
  /** Do the agent's half of a "sync" step, then let the child go on (or tell it to stop). */
  const answerSync = async (record: Record) => {
    const step = steps[record.index]!;
    say(record.index, `waiting for the agent: ${step.label}`);
    try {
      await step.agent?.(launched.pid);
    } catch (error) {
      libc.write(goFd, ptr(new Uint8Array([1])), 1); // 1: the child _exits; the error is the agent's to report
      throw error;
    }
    check("write", libc.write(goFd, ptr(new Uint8Array([0])), 1), "(go pipe)");
  };
  for (;;) {
    const left = deadline - Date.now();
    const ready = left > 0 ? libc.poll(ptr(pollfd), 1, left) : 0;
    if (ready === 0) {
      throw new SetupTimeoutError(
        `the container did not finish its setup within ${options.setupTimeoutMs ?? DEFAULT_SETUP_TIMEOUT_MS} ms; ` +
          `it was killed (set MINIC_SETUP_TIMEOUT_MS to allow longer)`,
      );
    }
    if (ready < 0) continue; // EINTR: a signal for the agent; poll again
    const n = Number(libc.read(fd, ptr(buffer), buffer.length));
    if (n === 0) break; // EOF: every copy of the write end is closed, so exec succeeded
    if (n < 0) continue;
    for (const record of decodeRecords(buffer.subarray(0, n))) {
      const step = steps[record.index]!;
      switch (record.type) {
        case RecordType.Done:
          say(record.index, `${describeStep(step)} = ${record.result} (${ms(record.endNs - record.startNs)})`);
          break;
        case RecordType.ExecBegin:
          say(record.index, `${describeStep(step)} ...`);
          break;
        case RecordType.Forked:
          say(record.index, `${describeStep(step)} = ${record.result}; this process exits, ${record.result} goes on`);
          launched.pid = record.result;
          launched.children.push(record.result);
          for (const line of held) say(forkAt + 1, line);
          held = [];
          for (const waiting of deferred.splice(0)) await answerSync(waiting);
          break;
        case RecordType.Sync:
          // A sync from after the second fork needs the new pid, which may not have arrived yet.
          if (afterFork(record.index) && launched.children.length < 2) deferred.push(record);
          else await answerSync(record);
          break;
        case RecordType.Detached:
          say(record.index, `setup complete; ${step.label}`);
          detached = true;
          break;
        case RecordType.Failed:
          failure = record;
          say(record.index, `${describeStep(step)} = -1 ${errnoName(-record.result)}`);
          break;
      }
    }
    if (detached) {
      launched.detached = true;
      break; // the child holds before exec; `minic start` will release it
    }
  }
  if (failure) {
    const step = steps[failure.index]!;
    const err = -failure.result;
    const hint = step.hints?.[err];
    const message = new SysError(step.label, err).message + (hint ? `: ${hint}` : "");
    throw new SetupError(step, err, exitCodeForFailure(step.kind, err), message);
  }
}

/** Reap `pids` synchronously (used on failure paths, where they were killed or are exiting). */
function reapBlocking(pids: number[]): void {
  const status = new Int32Array(1);
  for (const pid of pids) while (libc.waitpid(pid, ptr(status), 0) < 0 && errno() === EINTR) {}
}

/** The signals a user sends to a foreground program, passed on to the container. */
export const FORWARDED_SIGNALS = ["SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2"] as const;

/**
 * Passes the agent's signals on to the container. Started before the fork, so that a Ctrl-C during
 * setup reaches the child (which then dies of it) instead of killing the agent before it can clean up.
 */
export class SignalRelay {
  /** Where signals go: the forked child first, the command's process once known. */
  target = 0;
  private readonly handlers = FORWARDED_SIGNALS.map((name) => [name, () => this.forward(name)] as const);
  constructor(private readonly options: { trace?: (line: string) => void; onSignal?: (name: string) => void } = {}) {}

  start(): this {
    for (const [name, handler] of this.handlers) process.on(name, handler);
    return this;
  }
  stop(): void {
    for (const [name, handler] of this.handlers) process.off(name, handler);
  }
  private forward(name: string): void {
    if (this.target > 0) {
      libc.kill(this.target, SIGNALS[name.slice(3)]!);
      this.options.trace?.(`[agent] kill(${this.target}, ${name}) (forwarded)`);
    }
    this.options.onSignal?.(name);
  }
}

/**
 * Wait for the container to end without blocking the event loop, so that signals sent to the
 * agent are forwarded meanwhile. SIGCHLD wakes the agent; waitpid(WNOHANG) collects the status.
 * The listener is installed before the first check, so an exit can never fall between the two.
 * Every other child of this launch (the intermediate process of a second fork) is reaped too.
 */
export function waitForExit(launched: Launched, trace?: (line: string) => void): Promise<WaitStatus> {
  const t0 = Bun.nanoseconds();
  const statusBuf = new Int32Array(1);
  const pending = new Set(launched.children);
  let result: WaitStatus | null = null;
  return new Promise((resolve) => {
    // Two things measured on Bun 1.4.5: an event loop kept alive only by a signal listener spins
    // at 100% CPU, and a SIGCHLD that the kernel hands to one of Bun's helper threads can reach the
    // listener a second late. A timer that also reaps every 50 ms fixes both.
    const keepAlive = setInterval(() => reap(), 50);
    const reap = () => {
      for (const pid of pending) {
        if (libc.waitpid(pid, ptr(statusBuf), WNOHANG) !== pid) continue;
        pending.delete(pid);
        if (pid === launched.pid) result = decodeWaitStatus(statusBuf[0]!);
      }
      if (pending.size > 0 || !result) return;
      process.off("SIGCHLD", reap);
      clearInterval(keepAlive);
      trace?.(`[agent] waitpid(${launched.pid}) = ${describeWaitStatus(result)} (${ms(Bun.nanoseconds() - t0)})`);
      resolve(result);
    };
    process.on("SIGCHLD", reap);
    reap();
  });
}
