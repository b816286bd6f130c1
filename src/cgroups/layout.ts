// Where this machine's cgroups are, and which hierarchy serves each controller.
//
// Three layouts exist in the wild: pure v2 (one cgroup2 mount holding every controller), pure v1
// (one cgroup mount per controller or group of controllers) and "hybrid" (v1 mounts for the
// controllers, plus a cgroup2 mount, often /sys/fs/cgroup/unified, holding few or none). A
// controller is on one hierarchy at a time, so the rule is per controller: the v2 hierarchy if its
// root lists it in cgroup.controllers, else the v1 hierarchy mounted with it.
import { UsageError } from "../cli/argv.ts";
import { readText, readTextIfExists } from "../libc/fs.ts";
import type { Controller } from "./resources.ts";

export interface Hierarchy {
  version: 1 | 2;
  /** Its mount point (under the layout's prefix, in tests). */
  mount: string;
  /** The cgroup shown at the mount point (mountinfo's root field): "/" unless a sub-tree was mounted. */
  root: string;
  /** v1: the controllers named in the mount's options; v2: those its root's cgroup.controllers lists. */
  controllers: string[];
  /** This process's cgroup in the hierarchy, from /proc/self/cgroup; null if not listed there. */
  own: string | null;
}

export interface CgroupLayout {
  mode: "v2" | "v1" | "hybrid" | "none";
  unified: Hierarchy | null;
  /** The v1 hierarchies that have at least one controller (name=systemd is left out). */
  v1: Hierarchy[];
  /** The hierarchy serving each controller; a controller missing here is missing on this machine. */
  serve: Partial<Record<Controller, Hierarchy>>;
  /** "" normally; in tests, the directory the mount points were moved under (a fake, plain-file tree). */
  prefix: string;
}

const V1_CONTROLLERS = [
  "cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "net_cls", "net_prio", "blkio", "perf_event",
  "hugetlb", "pids", "rdma", "misc",
];
/** Controllers whose v1 name differs from minic's (the v2 one). */
const V1_NAME: Partial<Record<Controller, string>> = { io: "blkio" };
/** On v2 these are core features of every cgroup (cpu.stat, cgroup.freeze, eBPF device filters), not listed controllers. */
const V2_CORE: Controller[] = ["cpuacct", "freezer", "devices"];
const CONTROLLERS: Controller[] = ["memory", "cpu", "cpuacct", "cpuset", "pids", "io", "freezer", "devices"];

/** mountinfo escapes space, tab, newline and backslash as \040 and so on. */
const unescape = (s: string) => s.replace(/\\([0-7]{3})/g, (_, oct) => String.fromCharCode(parseInt(oct, 8)));

export function detectLayout(
  mountinfo = readText("/proc/self/mountinfo"),
  selfCgroup = readText("/proc/self/cgroup"),
  { prefix = "" } = {},
): CgroupLayout {
  // /proc/self/cgroup: "ID:CONTROLLERS:PATH", with "0::PATH" for v2.
  const own = new Map<string, string>();
  for (const line of selfCgroup.split("\n")) {
    const m = /^\d+:([^:]*):(.*)$/.exec(line);
    if (!m) continue;
    const key = m[1]!.split(",").filter((c) => V1_CONTROLLERS.includes(c)).sort().join(",");
    if (key || m[1] === "") own.set(key, m[2]!); // "" is v2; name=systemd alone is skipped
  }
  let unified: Hierarchy | null = null;
  const v1: Hierarchy[] = [];
  for (const line of mountinfo.split("\n")) {
    // ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTIONS
    const [left, right] = line.split(" - ");
    if (!left || !right) continue;
    const [, , , root, mountPoint] = left.split(" ");
    const [fstype, , superOptions = ""] = right.split(" ");
    const mount = prefix + unescape(mountPoint!);
    if (fstype === "cgroup2" && !unified) {
      const controllers = (readTextIfExists(`${mount}/cgroup.controllers`) ?? "").split(/\s+/).filter(Boolean);
      unified = { version: 2, mount, root: unescape(root!), controllers, own: own.get("") ?? null };
    } else if (fstype === "cgroup") {
      const controllers = superOptions.split(",").filter((o) => V1_CONTROLLERS.includes(o)).sort();
      // The same hierarchy may be mounted twice (bind mounts): the first mount is used.
      if (controllers.length === 0 || v1.some((h) => h.controllers.join() === controllers.join())) continue;
      v1.push({ version: 1, mount, root: unescape(root!), controllers, own: own.get(controllers.join()) ?? null });
    }
  }
  const serve: CgroupLayout["serve"] = {};
  for (const c of CONTROLLERS) {
    const name = V1_NAME[c] ?? c;
    const onV1 = v1.find((h) => h.controllers.includes(name));
    if (unified && (unified.controllers.includes(c) || (V2_CORE.includes(c) && !onV1))) serve[c] = unified;
    else if (onV1) serve[c] = onV1;
  }
  const mode = v1.length === 0 ? (unified ? "v2" : "none") : unified ? "hybrid" : "v1";
  return { mode, unified, v1, serve, prefix };
}

/**
 * The directory of cgroup `path` in hierarchy `h`. As in runc, an absolute path starts at the top
 * of the mount, and a relative one at this process's own cgroup (so `--cgroup-parent p` puts the
 * container under the cgroup minic was started in).
 */
export function cgroupDir(h: Hierarchy, path: string): string {
  if (path.startsWith("/")) return `${h.mount}${path}`.replace(/\/+$/, "");
  if (h.own === null) throw new Error(`cannot place cgroup ${path}: /proc/self/cgroup does not list the hierarchy mounted at ${h.mount}`);
  // The own path is the hierarchy's, but the mount shows only the sub-tree at h.root.
  const own = h.root !== "/" && h.own.startsWith(h.root) ? h.own.slice(h.root.length) : h.own;
  return `${h.mount}${own}/${path}`.replace(/\/+/g, "/").replace(/\/$/, "");
}

/** Check a cgroupsPath (from --cgroup-parent or a bundle) before it becomes directory names. */
export function checkCgroupPath(path: string): void {
  const hint = "use a path such as /minic/NAME, or a relative one such as parent/NAME";
  if (path.includes(":")) throw new UsageError(`cgroup path ${path}: systemd's slice:prefix:name form is not supported`, hint);
  const parts = path.split("/").filter(Boolean);
  if (parts.length === 0 || parts.some((p) => p === "." || p === "..")) throw new UsageError(`cgroup path "${path}": not a cgroup path`, hint);
}
