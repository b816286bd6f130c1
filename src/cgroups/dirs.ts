// The directories of a cgroup: making them (with what v1 cpusets and v2 delegation need first),
// and removing them, on the kernel's cgroup filesystems or on a test's fake tree of plain files.
import { SysError } from "../libc/ffi.ts";
import { EBUSY, EEXIST, ENOENT } from "../libc/errno.ts";
import { isDirectory, lexists, listDir, mkdir, readTextIfExists, removeTree, rmdir, writeText } from "../libc/fs.ts";
import { cgroupDir, type CgroupLayout, type Hierarchy } from "./layout.ts";
import { ResourceError, type Controller } from "./resources.ts";

const ENOTEMPTY = 39;
const errnoOf = (error: unknown) => (error instanceof SysError ? error.errno : 0);

/** This cgroup's member processes (none if the directory is gone, or going: ENODEV on v1). */
export function procs(dir: string): number[] {
  try {
    return (readTextIfExists(`${dir}/cgroup.procs`) ?? "").split(/\s+/).filter(Boolean).map(Number);
  } catch (error) {
    if (errnoOf(error) === 19 /* ENODEV */) return [];
    throw error;
  }
}

/**
 * mkdir each missing component of the cgroup's path in `h`, recording those made. On v2, first
 * enable `enable` in each ancestor's cgroup.subtree_control; on v1, give each new cpuset its
 * parent's CPUs and memory nodes (a new cpuset starts empty and refuses tasks).
 */
export function makeDirs(layout: CgroupLayout, h: Hierarchy, path: string, enable: Controller[], made: string[]): string {
  const leaf = cgroupDir(h, path);
  const parts = leaf.slice(h.mount.length).split("/").filter(Boolean);
  // Another container's destroy() may remove an empty /minic between two mkdirs: start again.
  for (let attempt = 0; ; attempt++) {
    try {
      let dir = h.mount;
      for (const [i, part] of parts.entries()) {
        if (h.version === 2 && enable.length) enableControllers(h, dir, enable, path);
        const parent = dir;
        dir = `${dir}/${part}`;
        if (mkdir(dir)) made.push(dir);
        else if (i === parts.length - 1) {
          // A leaf left by a killed run keeps its old limits: replace it with a fresh one, if unused.
          if (procs(dir).length > 0 || !removeDir(layout, dir) || !mkdir(dir)) {
            throw new Error(`cgroup ${dir} already exists and is in use: is a container with this name running?`);
          }
          made.push(dir);
        }
        if (h.version === 1 && h.controllers.includes("cpuset")) inheritCpuset(parent, dir);
      }
      return dir;
    } catch (error) {
      if (errnoOf(error) !== ENOENT || attempt >= 5) throw error;
    }
  }
}

function enableControllers(h: Hierarchy, dir: string, enable: Controller[], path: string): void {
  const active = (readTextIfExists(`${dir}/cgroup.subtree_control`) ?? "").split(/\s+/);
  const missing = enable.filter((c) => !active.includes(c));
  if (missing.length === 0) return;
  // The no-internal-processes rule: only the root may both hold processes and delegate controllers.
  const members = dir === h.mount && h.root === "/" ? [] : procs(dir);
  const busy = () =>
    new ResourceError(`cgroup ${path}`, "", `cannot enable ${missing.join(", ")} in ${dir}: it holds processes${members.length ? ` (${members.slice(0, 5).join(", ")})` : ""}, and cgroup v2 gives controllers only to the children of a cgroup without processes`,
      "use an absolute cgroup path (the default /minic/ID, or --cgroup-parent /PARENT), or first move those processes into a child cgroup of their own");
  if (members.length > 0) throw busy();
  try {
    writeText(`${dir}/cgroup.subtree_control`, missing.map((c) => `+${c}`).join(" "));
  } catch (error) {
    if (errnoOf(error) === EBUSY) throw busy();
    if (errnoOf(error) === ENOENT) {
      throw new ResourceError(`cgroup ${path}`, "", `cannot enable ${missing.join(", ")} in ${dir}: its parent does not delegate them (see ${dir}/cgroup.controllers)`,
        "use an absolute cgroup path such as the default /minic/ID, or have the parent's manager delegate them (systemd: Delegate=yes)");
    }
    throw error;
  }
}

function inheritCpuset(parent: string, dir: string): void {
  for (const file of ["cpuset.cpus", "cpuset.mems"]) {
    if ((readTextIfExists(`${dir}/${file}`) ?? "").trim() !== "") continue;
    const value = (readTextIfExists(`${parent}/${file}`) ?? "").trim();
    if (value === "") throw new Error(`cannot create cgroup ${dir}: its parent's ${file} is empty`);
    writeText(`${dir}/${file}`, value);
  }
}

export function killAll(dir: string, members: number[]): void {
  // cgroup.kill (v2, Linux 5.14+) also catches processes forked while we kill.
  if (lexists(`${dir}/cgroup.kill`)) return writeText(`${dir}/cgroup.kill`, "1");
  for (const pid of members) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {} // already gone
  }
}

/**
 * rmdir a cgroup; false if it is busy (EBUSY, or ENOTEMPTY for one with children). With `quiet`,
 * other failures are ignored too (for the best-effort removal of parents). In a test's fake tree
 * the interface files are plain files, so a directory without sub-directories is emptied first.
 */
export function removeDir(layout: CgroupLayout, dir: string, quiet = false): boolean {
  try {
    if (layout.prefix && isDirectory(dir) && !listDir(dir).some((n) => isDirectory(`${dir}/${n}`))) removeTree(dir);
    else rmdir(dir);
    return true;
  } catch (error) {
    const code = errnoOf(error);
    if (code === ENOENT) return true;
    if (quiet || code === EBUSY || code === ENOTEMPTY || code === EEXIST) return false;
    throw error;
  }
}
