// Per-container state on the host: a directory under the state root holding the files minic
// generated for the container and the identity of the agent that owns it. A directory whose agent
// is gone (killed with SIGKILL, the machine crashed) is removed by the next run.
import { isDirectory, lexists, listDir, mkdirp, readText, readTextIfExists, removeTree, writeText } from "./libc/fs.ts";
import { libc, errno, SysError } from "./libc/ffi.ts";
import { CStr } from "./libc/cstr.ts";
import { EEXIST } from "./libc/errno.ts";

const AT_FDCWD = -100, RENAME_NOREPLACE = 1, ENOTEMPTY = 39;

/** Where minic keeps per-container files: /run/minic for root, the user's runtime dir otherwise. */
export function stateRoot(): string {
  if (process.env.MINIC_ROOT) return process.env.MINIC_ROOT;
  if (process.getuid!() === 0) return "/run/minic";
  return process.env.XDG_RUNTIME_DIR ? `${process.env.XDG_RUNTIME_DIR}/minic` : `/tmp/minic-${process.getuid!()}`;
}

/**
 * A process's start time (field 22 of /proc/PID/stat), which tells a live pid from a reused one;
 * null for a process that is gone, or a zombie (dead, waiting for a parent that may be slow to reap
 * it: an orphaned `run -d` monitor is reaped by init, here up to seconds later).
 */
export function processStartTime(pid: number): string | null {
  try {
    const stat = readText(`/proc/${pid}/stat`);
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return fields[0] === "Z" ? null : (fields[19] ?? null);
  } catch {
    return null;
  }
}

function ownerAlive(dir: string): boolean {
  try {
    const [pid, start] = readText(`${dir}/agent`).trim().split(" ");
    return processStartTime(Number(pid)) === start;
  } catch {
    return false;
  }
}

/**
 * Create the state directory of container `id`, owned by this process; refuse a live duplicate.
 * The directory is built under a temporary name (".ID.PID") and renamed into place with
 * RENAME_NOREPLACE, so that it appears complete, with its owner recorded, or not at all: a run
 * sweeping stale directories at the same moment can never mistake it for an abandoned one.
 */
export function createStateDir(id: string, { owned = true } = {}): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(id)) {
    throw new Error(`invalid container id "${id}": use letters, digits, _ . and -`);
  }
  const root = stateRoot();
  mkdirp(root, 0o711);
  removeStaleStateDirs(root);
  const dir = `${root}/${id}`;
  const tmp = `${root}/.${id}.${process.pid}`;
  mkdirp(tmp, 0o711);
  // A foreground run owns its directory through its agent; a created container's lives until `delete`.
  writeText(`${tmp}/${owned ? "agent" : "oci"}`, `${process.pid} ${processStartTime(process.pid)}\n`);
  if (libc.renameat2(AT_FDCWD, new CStr(tmp).ptr, AT_FDCWD, new CStr(dir).ptr, RENAME_NOREPLACE) !== 0) {
    const err = errno();
    removeTree(tmp);
    // (`minic run` names containers with --name; `minic create` takes the id as its argument.)
    if (err === EEXIST || err === ENOTEMPTY) throw new Error(`a container named ${id} already exists (${dir}); ${owned ? "choose another --name" : "choose another id"}`);
    throw new SysError("rename", err, `${tmp} to ${dir}`);
  }
  return dir;
}

/** Whether container `id` has a state directory whose agent is alive, or that `create` made. */
export function isLiveContainer(id: string, root = stateRoot()): boolean {
  return ownerAlive(`${root}/${id}`) || lexists(`${root}/${id}/oci`);
}

/** Remove the directories whose agent is gone (a temporary one only once its creator is gone too). */
export function removeStaleStateDirs(root = stateRoot()): void {
  if (!isDirectory(root)) return;
  for (const name of listDir(root)) {
    const dir = `${root}/${name}`;
    const creator = /^\.[^/]+\.(\d+)$/.exec(name)?.[1];
    // Kept: created by `minic create`, or a detached run that ended: they wait for delete or rm.
    const kept = lexists(`${dir}/oci`) || lexists(`${dir}/kept`);
    if (creator ? processStartTime(Number(creator)) === null : !kept && !ownerAlive(dir)) removeTree(dir);
  }
}

// ---- the OCI state of a container ---------------------------------------------------------------

export type Status = "creating" | "created" | "running" | "paused" | "stopped";

/** runtime-spec's state, plus what minic needs to act on the container later. */
export interface ContainerState {
  ociVersion: string;
  id: string;
  status: Status;
  /** The container's init process, as the host sees it; 0 once stopped. */
  pid: number;
  bundle: string;
  annotations?: Record<string, string>;
  /** When it was created (ISO 8601). */
  created: string;
  /** The init's start time, to tell it from a later process that reuses the pid. */
  pidStart?: string | null;
  cgroupPath?: string;
  command?: string[];
  /** Exit code, once a foreground or detached run recorded it. */
  exitCode?: number;
}

export function stateDir(id: string): string {
  return `${stateRoot()}/${id}`;
}

export function writeState(state: ContainerState): void {
  const dir = stateDir(state.id);
  writeText(`${dir}/state.json.tmp`, JSON.stringify(state));
  if (libc.renameat2(AT_FDCWD, new CStr(`${dir}/state.json.tmp`).ptr, AT_FDCWD, new CStr(`${dir}/state.json`).ptr, 0) !== 0) {
    throw new SysError("rename", errno(), `${dir}/state.json`);
  }
}

/** The container's state with its status as of now; throws a clear error for an unknown id. */
export function readState(id: string): ContainerState {
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(id)) throw new Error(`invalid container id "${id}"`);
  const text = readTextIfExists(`${stateDir(id)}/state.json`);
  if (text === null) throw new Error(`container "${id}" does not exist`);
  const state = JSON.parse(text) as ContainerState;
  return { ...state, status: currentStatus(state), pid: currentStatus(state) === "stopped" ? 0 : state.pid };
}

/** created: its init waits on exec.fifo; running: it exec'd; stopped: its init is gone. */
export function currentStatus(state: ContainerState): Status {
  if (state.status === "creating") return state.status;
  if (!state.pid || processStartTime(state.pid) !== state.pidStart || isZombie(state.pid)) return "stopped";
  if (lexists(`${stateDir(state.id)}/exec.fifo`)) return "created";
  return state.status === "paused" ? "paused" : "running";
}

function isZombie(pid: number): boolean {
  const stat = readTextIfExists(`/proc/${pid}/stat`);
  return !stat || stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) === "Z";
}

/** Every container with a state.json, as of now. */
export function listStates(): ContainerState[] {
  const root = stateRoot();
  if (!isDirectory(root)) return [];
  return listDir(root)
    .filter((name) => !name.startsWith(".") && name !== "network" && lexists(`${root}/${name}/state.json`))
    .map((name) => {
      try {
        return readState(name);
      } catch {
        return null;
      }
    })
    .filter((s): s is ContainerState => s !== null);
}
