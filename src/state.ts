// Per-container state on the host: a directory under the state root holding the files minic
// generated for the container and the identity of the agent that owns it. A directory whose agent
// is gone (killed with SIGKILL, the machine crashed) is removed by the next run.
import { isDirectory, listDir, mkdirp, readText, removeTree, writeText } from "./libc/fs.ts";
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

/** A process's start time (field 22 of /proc/PID/stat), which tells a live pid from a reused one. */
export function processStartTime(pid: number): string | null {
  try {
    const stat = readText(`/proc/${pid}/stat`);
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19] ?? null;
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
export function createStateDir(id: string): string {
  const root = stateRoot();
  mkdirp(root, 0o711);
  removeStaleStateDirs(root);
  const dir = `${root}/${id}`;
  const tmp = `${root}/.${id}.${process.pid}`;
  mkdirp(tmp, 0o711);
  writeText(`${tmp}/agent`, `${process.pid} ${processStartTime(process.pid)}\n`);
  if (libc.renameat2(AT_FDCWD, new CStr(tmp).ptr, AT_FDCWD, new CStr(dir).ptr, RENAME_NOREPLACE) !== 0) {
    const err = errno();
    removeTree(tmp);
    if (err === EEXIST || err === ENOTEMPTY) throw new Error(`a container named ${id} is already running (${dir}); choose another --name`);
    throw new SysError("rename", err, `${tmp} to ${dir}`);
  }
  return dir;
}

/** Whether container `id` has a state directory whose agent is alive. */
export function isLiveContainer(id: string, root = stateRoot()): boolean {
  return ownerAlive(`${root}/${id}`);
}

/** Remove the directories whose agent is gone (a temporary one only once its creator is gone too). */
export function removeStaleStateDirs(root = stateRoot()): void {
  if (!isDirectory(root)) return;
  for (const name of listDir(root)) {
    if (name === "network") continue; // the bridge network's leases and lock, not a container
    const dir = `${root}/${name}`;
    const creator = /^\.[^/]+\.(\d+)$/.exec(name)?.[1];
    if (creator ? processStartTime(Number(creator)) === null : !ownerAlive(dir)) removeTree(dir);
  }
}
