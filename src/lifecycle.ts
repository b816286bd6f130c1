// The OCI runtime lifecycle (runtime-spec "Runtime and Lifecycle"), as podman's conmon and
// containerd's shim drive runc:
//
//   create   set everything up, then hold the container's process just before exec, and exit
//   start    release it: it execs the command
//   state    creating, created, running, paused or stopped, as JSON
//   kill     send a signal to its init (or, with --all, to every process in its cgroup)
//   delete   remove what create made: cgroup, state; a running container only with --force
//
// The container's process is a child of `minic create` (CLONE_PARENT); when create exits it is
// re-parented to the caller's subreaper (conmon, the shim), which reaps it, as with runc.
import { ptr } from "bun:ffi";
import { libc, errno, SysError } from "./libc/ffi.ts";
import { CStr } from "./libc/cstr.ts";
import { readText, removeTree, writeText } from "./libc/fs.ts";
import { O_CLOEXEC, O_NONBLOCK, O_PATH, O_RDONLY, POLLIN, SIGKILL, SIGNALS } from "./libc/constants.ts";
import { compilePlan, type PlanContext } from "./plan.ts";
import { launch, SetupError } from "./process/agent.ts";
import { execFailureMessage } from "./process/status.ts";
import { createCgroup, releaseCgroup, writeEtcFiles } from "./container.ts";
import { ContainerCgroup } from "./cgroups/cgroup.ts";
import { detectLayout } from "./cgroups/layout.ts";
import { runHooks } from "./hooks.ts";
import {
  createStateDir, processStartTime, readState, stateDir, writeState, type ContainerState,
} from "./state.ts";
import type { Spec } from "./spec/types.ts";
import { OCI_VERSION } from "./spec/types.ts";

const S_IFIFO = 0o10000;

export interface CreateOptions {
  bundle: string;
  pidFile?: string;
  consoleSocket?: string;
  trace?: (line: string) => void;
  setupTimeoutMs?: number;
}

/** The public state, as `minic state` prints it (runtime-spec's fields only). */
export function publicState(state: ContainerState) {
  const { ociVersion, id, status, pid, bundle, annotations } = state;
  return { ociVersion, id, status, pid, bundle, annotations: annotations ?? {} };
}

export async function createContainer(spec: Spec, id: string, options: CreateOptions): Promise<ContainerState> {
  const dir = createStateDir(id, { owned: false });
  const state: ContainerState = {
    ociVersion: OCI_VERSION, id, status: "creating", pid: 0, bundle: options.bundle, annotations: spec.annotations,
    created: new Date().toISOString(), command: spec.process?.args,
  };
  let cgroup: ContainerCgroup | undefined;
  let consoleFd = -1;
  try {
    writeState(state);
    writeText(`${dir}/config.json`, JSON.stringify(spec));
    const fifo = `${dir}/exec.fifo`;
    if (libc.mknod(new CStr(fifo).ptr, S_IFIFO | 0o622, 0) !== 0) throw new SysError("mkfifo", errno(), fifo);
    const fifoFd = libc.open(new CStr(fifo).ptr, O_PATH | O_CLOEXEC, 0);
    if (fifoFd < 0) throw new SysError("open", errno(), fifo);
    const context: PlanContext = { hold: { fifoFd } };
    if (options.consoleSocket) {
      // process.terminal: the child sends the pty's master to this socket (conmon's), as runc does.
      consoleFd = context.consoleSocket = (await import("./terminal/console.ts")).connectConsoleSocket(options.consoleSocket);
    }
    cgroup = createCgroup(spec, id, { cgroup: true });
    if (cgroup) {
      context.beforeNamespaces = [(pid) => cgroup!.join(pid)];
      state.cgroupPath = cgroup.path;
    }
    if (spec.root && spec.annotations?.["org.minic.etc"] === "generate") context.etcFiles = writeEtcFiles(dir, spec, false);
    const hooks = spec.hooks ?? {};
    context.beforeMounts = [
      async (pid) => {
        // prestart (deprecated) and createRuntime: in the runtime's namespaces, the container's exist.
        const now = publicState({ ...state, pid, status: "creating" });
        await runHooks("prestart", hooks.prestart, now);
        await runHooks("createRuntime", hooks.createRuntime, now);
        await runHooks("createContainer", hooks.createContainer, now, { inContainer: pid });
      },
    ];
    const launched = await launch(compilePlan(spec, context), { trace: options.trace, setupTimeoutMs: options.setupTimeoutMs });
    libc.close(fifoFd);
    if (consoleFd >= 0) libc.close(consoleFd); // the master is on its way: the child sent it before holding
    consoleFd = -1;
    for (const child of launched.children) if (child !== launched.pid) libc.waitpid(child, null, 0);
    Object.assign(state, { status: "created", pid: launched.pid, pidStart: processStartTime(launched.pid) });
    writeState(state);
    if (options.pidFile) writeText(options.pidFile, String(launched.pid));
    return state;
  } catch (error) {
    if (consoleFd >= 0) libc.close(consoleFd);
    try {
      cgroup?.destroy({ kill: true });
      if (cgroup) releaseCgroup(id);
    } catch {}
    removeTree(dir);
    if (error instanceof SetupError && (error.step.kind === "exec" || error.step.call === "access")) {
      throw new Error(execFailureMessage(spec.process!.args[0]!, error.errno));
    }
    throw error;
  }
}

/** Release a created container: open its exec.fifo for reading, which lets its init exec. */
export async function startContainer(id: string): Promise<void> {
  const state = readState(id);
  if (state.status !== "created") throw new Error(`cannot start container "${id}": it is ${state.status}, not created`);
  const fifo = `${stateDir(id)}/exec.fifo`;
  await runHooks("startContainer", readSpec(id).hooks?.startContainer, publicState(state), { inContainer: state.pid });
  const fd = libc.open(new CStr(fifo).ptr, O_RDONLY | O_NONBLOCK | O_CLOEXEC, 0);
  if (fd < 0) throw new SysError("open", errno(), fifo);
  try {
    const pollfd = new Int32Array([fd, POLLIN, 0]);
    const byte = new Uint8Array(1);
    // The init is blocked in open(O_WRONLY) until now; it writes one byte, then execs.
    if (libc.poll(ptr(pollfd), 1, 10_000) <= 0 || libc.read(fd, ptr(byte), 1) !== 1) {
      throw new Error(`container "${id}" did not start: its init is gone (state: ${readState(id).status})`);
    }
  } finally {
    libc.close(fd);
    libc.unlink(new CStr(fifo).ptr);
  }
  const spec = readSpec(id);
  writeState({ ...state, status: "running" });
  // runtime-spec: a failing poststart hook only warns; the lifecycle goes on as if it had succeeded.
  await runHooks("poststart", spec.hooks?.poststart, publicState({ ...state, status: "running" }), { warnOnly: true });
}

export function readSpec(id: string): Spec {
  return JSON.parse(readText(`${stateDir(id)}/config.json`)) as Spec;
}

/** TERM, SIGTERM or 15 -> 15. */
export function parseSignal(text: string): number {
  if (/^\d+$/.test(text)) {
    const n = Number(text);
    if (n < 1 || n > 64) throw new Error(`signal ${text} is out of range (1 to 64)`);
    return n;
  }
  const name = text.toUpperCase().replace(/^SIG/, "");
  const n = SIGNALS[name];
  if (n === undefined) throw new Error(`unknown signal "${text}" (e.g. TERM, SIGKILL, 9)`);
  return n;
}

export function killContainer(id: string, signal: number, all = false): void {
  const state = readState(id);
  if (state.status === "stopped") throw new Error(`cannot kill container "${id}": it is stopped`);
  const pids = all && state.cgroupPath ? ContainerCgroup.open(detectLayout(), state.cgroupPath).pids() : [state.pid];
  // (A paused container's processes get the signal when resumed, as with runc.)
  for (const pid of pids) {
    if (libc.kill(pid, signal) !== 0 && errno() !== 3 /* ESRCH: already gone */) throw new SysError("kill", errno(), `${pid}`);
  }
}

export async function deleteContainer(id: string, force = false): Promise<void> {
  const state = readState(id);
  if (state.status !== "stopped" && state.status !== "created" && !force) {
    throw new Error(`cannot delete container "${id}": it is ${state.status} (stop it first, or use --force)`);
  }
  if (state.status !== "stopped") {
    killContainer(id, SIGKILL, true);
    // A frozen process cannot die until it is thawed.
    if (state.status === "paused" && state.cgroupPath) ContainerCgroup.open(detectLayout(), state.cgroupPath).freeze(false);
    for (let i = 0; i < 200 && readState(id).status !== "stopped"; i++) await Bun.sleep(10);
  }
  if (state.cgroupPath) ContainerCgroup.open(detectLayout(), state.cgroupPath).destroy({ kill: true });
  releaseCgroup(id);
  let spec: Spec | undefined;
  try {
    spec = readSpec(id);
  } catch {}
  removeTree(stateDir(id));
  await runHooks("poststop", spec?.hooks?.poststop, publicState({ ...state, status: "stopped", pid: 0 }), { warnOnly: true });
}

export function pauseContainer(id: string, pause: boolean): void {
  const state = readState(id);
  const want = pause ? "running" : "paused";
  if (state.status !== want) throw new Error(`cannot ${pause ? "pause" : "resume"} container "${id}": it is ${state.status}`);
  if (!state.cgroupPath) throw new Error(`container "${id}" has no cgroup to freeze`);
  ContainerCgroup.open(detectLayout(), state.cgroupPath).freeze(pause);
  writeState({ ...state, status: pause ? "paused" : "running" });
}
