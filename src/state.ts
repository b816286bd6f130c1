// Per-container state on the host: a directory under the state root holding the files minic
// generated for the container and the identity of the agent that owns it. A directory whose agent
// is gone (killed with SIGKILL, the machine crashed) is removed by the next run.
import { isDirectory, lexists, listDir, mkdirp, readText, removeTree, writeText } from "./libc/fs.ts";

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

/** Create the state directory of container `id`, owned by this process; refuse a live duplicate. */
export function createStateDir(id: string): string {
  const root = stateRoot();
  removeStaleStateDirs(root);
  const dir = `${root}/${id}`;
  if (lexists(dir)) throw new Error(`a container named ${id} is already running (${dir}); choose another --name`);
  mkdirp(dir, 0o711);
  writeText(`${dir}/agent`, `${process.pid} ${processStartTime(process.pid)}\n`);
  return dir;
}

export function removeStaleStateDirs(root = stateRoot()): void {
  if (!isDirectory(root)) return;
  for (const name of listDir(root)) {
    const dir = `${root}/${name}`;
    if (!ownerAlive(dir)) removeTree(dir);
  }
}
