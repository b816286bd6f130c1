// `minic exec`: start one more process inside a running container, as runc exec and docker exec do.
//
// The container already exists, so nothing is created: the child joins what the container's init
// is in, and takes on the same security. The steps, and why in this order:
//   1. prctl(PDEATHSIG)             (not with --detach) the process dies with `minic exec`
//   2. sync: join the cgroups       the agent writes the child's pid into the init's cgroups while
//                                   the child waits, so everything after runs constrained
//   3. setns(user)                  first: the container's other namespaces belong to it, and
//                                   joining them needs CAP_SYS_ADMIN there
//   4. setns(ipc, uts, net, pid, cgroup, time)
//   5. setns(mnt)                   last: /proc/INIT/ns/* are opened through the host's /proc, which
//                                   the container's mount namespace no longer shows; it also moves
//                                   root and cwd to the container's root
//   6. clone(CLONE_PARENT)          setns(pid) applies to children only: fork once more, so the
//                                   command runs in the container's PID namespace; the agent waits
//   7. setsid (or, with a terminal, a pty from the container's devpts as the controlling terminal,
//      its master sent over the console socket), cwd, rlimits, then the container's capabilities,
//      user, no_new_privs, umask, fds, signals, and seccomp last, as compilePlan does for the init
//   8. execve
import { readlink, readText, writeText } from "./libc/fs.ts";
import { EACCES, ENOENT, EPERM, ESRCH } from "./libc/errno.ts";
import { libc } from "./libc/ffi.ts";
import { envValue, privilegeSteps, seccompFilterStep } from "./plan.ts";
import { joinStep, NAMESPACE_FILES } from "./namespaces.ts";
import {
  chdirStep, closeInheritedFds, execCommand, forkAgain, parentDeathSignal, resetSignals, syncWithAgent, umaskStep,
} from "./process/steps.ts";
import { newSessionStep, oomScoreAdjStep, rlimitStep, RLIMIT_EPERM_HINT } from "./security/hardening.ts";
import { commandCandidates, DEFAULT_PATH } from "./process/path.ts";
import { launch, waitForExit, SetupError, SignalRelay } from "./process/agent.ts";
import { execFailureMessage, exitCodeFor } from "./process/status.ts";
import type { Step } from "./process/step.ts";
import { detectLayout, type CgroupLayout } from "./cgroups/layout.ts";
import { terminalSteps } from "./terminal/pty.ts";
import { readState, type ContainerState } from "./state.ts";
import { readSpec } from "./lifecycle.ts";
import { log } from "./log.ts";
import { OCI_VERSION, type NamespaceType, type Process, type Spec } from "./spec/types.ts";

/** The namespaces joined, in this order: user first, mount last (see above). */
export const JOIN_ORDER: readonly NamespaceType[] = ["user", "ipc", "uts", "network", "pid", "cgroup", "time", "mount"];

export interface ExecContext {
  /** The container's init, as the host sees it. */
  initPid: number;
  /** The namespaces to join, in order (namespacesToJoin). */
  joins: Array<{ type: NamespaceType; path: string }>;
  /** The agent's half: move the child into the container's cgroups (cgroupJoiner). */
  joinCgroups?: (pid: number) => void | Promise<void>;
  /** --detach: the process outlives `minic exec`, so it gets no parent-death signal. */
  detach?: boolean;
  /** --preserve-fds N: fds 3 to 3+N-1 stay open across exec, as runc does. */
  preserveFds?: number;
  /** process.terminal: the console socket (inherited by the child) that the pty's master goes to. */
  consoleSocket?: number;
}

/** A running container to exec into: its state and saved spec. Throws the lifecycle's errors. */
export function execTarget(id: string): { state: ContainerState; spec: Spec } {
  const state = readState(id); // `container "ID" does not exist`
  if (state.status === "stopped") throw new Error(`container "${id}" is stopped`);
  if (state.status === "paused") throw new Error(`container "${id}" is paused: \`minic resume ${id}\` first`);
  if (state.status === "creating") throw new Error(`container "${id}" is still being created`);
  let spec: Spec;
  try {
    spec = readSpec(id);
  } catch {
    throw new Error(`container "${id}" has no saved configuration (${id}/config.json): it cannot be exec'd into`);
  }
  return { state, spec };
}

/**
 * Every namespace of `pid` that differs from minic's own, in JOIN_ORDER. Comparing with our own
 * also covers what the config does not list (a container sharing the namespace of a process
 * other than minic's), and skips what is shared (setns into one's own user namespace is EINVAL).
 */
export function namespacesToJoin(pid: number, self = "self"): Array<{ type: NamespaceType; path: string }> {
  const joins: Array<{ type: NamespaceType; path: string }> = [];
  for (const type of JOIN_ORDER) {
    const path = `/proc/${pid}/ns/${NAMESPACE_FILES[type]}`;
    const theirs = readlink(path);
    if (theirs === null) continue; // a kernel without that namespace type (time before 5.6), or the init is gone
    if (theirs !== readlink(`/proc/${self}/ns/${NAMESPACE_FILES[type]}`)) joins.push({ type, path });
  }
  return joins;
}

/** /proc/PID/cgroup as hierarchy key ("" for v2, else its sorted v1 controllers) -> path. */
export function parseProcCgroup(text: string, layout: CgroupLayout): Map<string, string> {
  const known = new Set(layout.v1.flatMap((h) => h.controllers));
  const paths = new Map<string, string>();
  for (const line of text.split("\n")) {
    const m = /^\d+:([^:]*):(.*)$/.exec(line);
    if (!m) continue;
    const key = m[1]!.split(",").filter((c) => known.has(c)).sort().join(",");
    if (key || m[1] === "") paths.set(key, m[2]!);
  }
  return paths;
}

/**
 * The directories of the cgroups the init is in, in every hierarchy where that differs from
 * minic's own: where the child must be moved to be in "the same cgroup" as the container.
 */
export function initCgroupDirs(initPid: number, layout = detectLayout()): string[] {
  const theirs = parseProcCgroup(readText(`/proc/${initPid}/cgroup`), layout);
  const dirs: string[] = [];
  for (const h of [...(layout.unified ? [layout.unified] : []), ...layout.v1]) {
    const path = theirs.get(h.version === 2 ? "" : h.controllers.join(","));
    if (path === undefined || path === h.own) continue;
    // The mount shows the sub-tree at h.root; paths in /proc/PID/cgroup are the hierarchy's.
    const relative = h.root !== "/" && path.startsWith(h.root) ? path.slice(h.root.length) : path;
    dirs.push(`${h.mount}/${relative}`.replace(/\/+/g, "/").replace(/\/$/, ""));
  }
  return dirs;
}

/**
 * The agent's half of joining the cgroups. As root every move must work; an unprivileged user
 * (whose container has no cgroup of its own) moves where it may, and stays elsewhere.
 */
export function cgroupJoiner(initPid: number): ((pid: number) => void) | undefined {
  const dirs = initCgroupDirs(initPid);
  if (dirs.length === 0) return undefined;
  const strict = process.getuid!() === 0;
  return (pid) => {
    for (const dir of dirs) {
      try {
        writeText(`${dir}/cgroup.procs`, String(pid));
      } catch (error) {
        if (strict) throw new Error(`cannot move process ${pid} into the container's cgroup ${dir}: ${(error as Error).message}`);
        log.debug(`exec: staying out of ${dir}: ${(error as Error).message}`);
      }
    }
  };
}

/** The child's steps: join the container, take on its security, exec `proc.args`. */
export function compileExecPlan(spec: Spec, proc: Process, context: ExecContext): Step[] {
  if (proc.args.length === 0) throw new Error("exec needs a command");
  const { detach = false, joins } = context;
  const steps: Step[] = detach ? [] : [parentDeathSignal()];
  if (context.joinCgroups) steps.push(syncWithAgent("join the container's cgroups", context.joinCgroups));
  for (const j of joins) steps.push(joinStep(j.type, j.path));
  if (joins.some((j) => j.type === "pid" || j.type === "time")) {
    steps.push(forkAgain()); // the new process is the container's; the intermediate one reports it and exits
    if (!detach) steps.push(parentDeathSignal()); // not inherited across fork
  }
  const hardened = proc.capabilities !== undefined;
  if (proc.terminal) {
    // After setns(mnt): /dev/ptmx is the container's, so the terminal is one of its /dev/pts.
    steps.push(...terminalSteps({ socketFd: context.consoleSocket ?? -1, consoleSize: proc.consoleSize, uid: proc.user.uid }));
  } else if (hardened) steps.push(newSessionStep()); // no controlling terminal to inject keystrokes into
  if (proc.oomScoreAdj !== undefined) steps.push(oomScoreAdjStep(proc.oomScoreAdj));
  steps.push(chdirStep(proc.cwd));
  for (const r of proc.rlimits ?? []) steps.push({ ...rlimitStep(r.type, r.soft, r.hard), hints: { [EPERM]: RLIMIT_EPERM_HINT } });
  const seccomp = spec.linux?.seccomp ? seccompFilterStep(spec.linux.seccomp) : undefined;
  if (seccomp && !proc.noNewPrivileges) steps.push(seccomp);
  steps.push(...privilegeSteps({ ...spec, process: proc }));
  // A change of user clears the parent-death signal (prctl(2)): set it again, as that user.
  if (!detach) steps.push({ ...parentDeathSignal(), tolerate: [EPERM, EACCES] }); // a seccomp profile may forbid prctl
  steps.push(umaskStep(proc.user.umask ?? 0o022));
  steps.push(closeInheritedFds(2 + (context.preserveFds ?? 0)));
  steps.push(resetSignals());
  if (seccomp && proc.noNewPrivileges) steps.push(seccomp);
  const env = proc.env ?? [];
  // The command is looked up in the container's root, as the host sees it through the init.
  const candidates = commandCandidates(proc.args[0]!, envValue(env, "PATH") ?? DEFAULT_PATH, `/proc/${context.initPid}/root`);
  steps.push(execCommand({ candidates, argv: proc.args, env }));
  return steps;
}

export interface ExecOptions {
  detach?: boolean;
  /** With process.terminal: send the pty's master to this Unix socket (conmon's), rather than relay it. */
  consoleSocket?: string;
  /** -i: with a terminal relayed in the foreground, forward minic's stdin to it. */
  interactive?: boolean;
  pidFile?: string;
  preserveFds?: number;
  trace?: (line: string) => void;
  setupTimeoutMs?: number;
}

/**
 * Run `proc` in container `id`. In the foreground, wait for it and return minic's exit code (the
 * command's own, 128+N, 126/127, 125), forwarding signals to it meanwhile; with `detach`, return 0
 * as soon as it has exec'd.
 */
export async function execInContainer(id: string, target: { state: ContainerState; spec: Spec }, proc: Process, options: ExecOptions = {}): Promise<number> {
  const { state, spec } = target;
  if (options.consoleSocket && !proc.terminal) throw new Error("--console-socket needs a terminal (-t, or process.terminal in --process)");
  if (proc.terminal && options.detach && !options.consoleSocket) {
    throw new Error("a terminal for a detached exec needs --console-socket, to hand its master over");
  }
  const context: ExecContext = {
    initPid: state.pid, joins: namespacesToJoin(state.pid), joinCgroups: cgroupJoiner(state.pid),
    detach: options.detach, preserveFds: options.preserveFds,
  };
  let terminal: import("./terminal/console.ts").ForegroundConsole | undefined;
  let socket = -1; // the console socket we connected to, closed once the child has it
  const relay = options.detach ? undefined : new SignalRelay({ trace: options.trace }).start();
  try {
    if (proc.terminal) {
      const { connectConsoleSocket, ForegroundConsole } = await import("./terminal/console.ts");
      if (options.consoleSocket) context.consoleSocket = socket = connectConsoleSocket(options.consoleSocket);
      else {
        const holder: { consoleSocket?: number } = {}; // prepare() gives the child's end of its socket pair here
        terminal = ForegroundConsole.prepare({ ociVersion: OCI_VERSION, process: proc }, holder, { interactive: options.interactive });
        context.consoleSocket = holder.consoleSocket;
      }
    }
    const steps = compileExecPlan(spec, proc, context);
    const launched = await launch(steps, { trace: options.trace, setupTimeoutMs: options.setupTimeoutMs }, relay);
    terminal?.attach(); // the pty's master: relayed to and from minic's own stdio
    if (options.pidFile) writeText(options.pidFile, String(launched.pid));
    if (options.detach) {
      // The intermediate process of the second fork has exited (or is about to): reap it. The
      // command itself is re-parented to init (or the caller's subreaper) when minic exits.
      for (const child of launched.children) if (child !== launched.pid) libc.waitpid(child, null, 0);
      return 0;
    }
    const status = await waitForExit(launched, options.trace);
    await terminal?.finish(); // the rest of its output
    return exitCodeFor(status);
  } catch (error) {
    if (!(error instanceof SetupError)) throw error;
    if (error.step.kind === "exec") log.error(execFailureMessage(proc.args[0]!, error.errno));
    else if (error.step.call === "open+setns" && (error.errno === ENOENT || error.errno === ESRCH) && stoppedMeanwhile(id)) {
      log.error(`container "${id}" is stopped`); // it ended while we were joining it
    } else log.error(error.message);
    return error.exitCode;
  } finally {
    terminal?.close(); // restores the user's terminal
    if (socket >= 0) libc.close(socket);
    relay?.stop();
  }
}

function stoppedMeanwhile(id: string): boolean {
  try {
    return readState(id).status === "stopped";
  } catch {
    return true; // its state is gone: a foreground run that ended
  }
}
