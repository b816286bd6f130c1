// A container's cgroup: created before the container's process runs, joined by that process while
// it waits on the sync pipe, read at exit (OOM kill, peak memory, CPU time), removed afterwards.
//
// On v2 it is one directory; on v1 one per hierarchy (memory, cpu, pids, ...), at the same path in
// each. Every directory that create() makes is remembered, so that a failure half-way, or destroy(),
// removes exactly those and nothing that another container may be using.
import { SysError } from "../libc/ffi.ts";
import { isDirectory, lexists, listDir, readTextIfExists, writeText } from "../libc/fs.ts";
import { killAll, makeDirs, procs, removeDir } from "./dirs.ts";
import { v1Writes, v2Writes, neededControllers, type LimitWrite } from "./files.ts";
import { cgroupDir, checkCgroupPath, type CgroupLayout } from "./layout.ts";
import { label, ResourceError, type Controller, type LinuxResources, type Source } from "./resources.ts";

/** The v2 controllers minic may enable, in the order they are written to cgroup.subtree_control. */
const V2_ENABLE: Controller[] = ["memory", "cpu", "cpuset", "io", "pids"];
/** Joined even without limits, so that oomKilled() and stats() have something to read (and pause works). */
const ACCOUNTING: Controller[] = ["memory", "cpuacct", "pids", "freezer"];

export interface CreateOptions {
  id: string;
  /** Also place the container in the memory, cpuacct and pids controllers it has no limits for (default true). */
  accounting?: boolean;
  /** Whether messages name flags (--memory, the default) or config.json fields. */
  source?: Source;
}

export interface CgroupStats {
  /** Bytes; null if the kernel does not record it. */
  memoryPeak: number | null;
  cpuTimeNs: number | null;
  /** The most tasks at once (pids.peak), or the current count where the kernel has no peak. */
  pidsPeak: number | null;
}

/** `key value` lines (memory.events, cpu.stat, memory.oom_control) → the value of `key`. */
function keyed(text: string | null, key: string): number | null {
  const m = text && new RegExp(`^${key} (\\d+)$`, "m").exec(text);
  return m ? Number(m[1]) : null;
}

function readNumber(path: string): number | null {
  const text = readTextIfExists(path)?.trim();
  return text && /^\d+$/.test(text) ? Number(text) : null;
}

const removeIt = (source: Source) => (source === "flags" ? "remove the flag" : "remove the field from config.json");

export class ContainerCgroup {
  /** Things the kernel could not do that docker also lets pass (a swap limit without swap accounting). */
  readonly warnings: string[] = [];

  private constructor(
    readonly layout: CgroupLayout,
    /** The cgroup path, as in /proc/PID/cgroup (absolute) or relative to minic's own cgroup. */
    readonly path: string,
    /** The container's directory in each hierarchy used. */
    readonly dirs: string[],
    /** Ancestors to remove if empty at the end (those create() made, and /minic), deepest first. */
    private readonly prune: string[],
    private readonly served: Map<Controller, { dir: string; version: 1 | 2 }>,
    private readonly resources: LinuxResources,
  ) {}

  /**
   * Create the cgroup at `path` (default /minic/ID) in every hierarchy the resources need, and
   * write the limits. Throws a one-line error (a ResourceError for a missing controller or a value
   * the kernel refuses) after removing whatever it had created.
   */
  static create(layout: CgroupLayout, path: string | undefined, resources: LinuxResources, options: CreateOptions): ContainerCgroup {
    const { id, accounting = true, source = "flags" } = options;
    const cgroupPath = path ?? `/minic/${id}`;
    checkCgroupPath(cgroupPath);
    const needed = neededControllers(v2Writes(resources));
    for (const [controller, field] of needed) {
      if (layout.serve[controller]) continue;
      const name = controller === "io" && layout.mode !== "v2" ? "blkio" : controller;
      throw new ResourceError(label(field, source), "", `this machine has no ${name} controller`,
        `/proc/cgroups lists the ones this kernel has; ${removeIt(source)}`);
    }
    // The devices controller enforces linux.resources.devices (v1 only: v2 needs an eBPF program).
    const devices: Controller[] = resources.devices?.length && layout.serve.devices?.version === 1 ? ["devices"] : [];
    const wanted = new Set<Controller>([...needed.keys(), ...devices, ...(accounting ? ACCOUNTING : [])].filter((c) => layout.serve[c]));
    const hierarchies = [...new Set([...wanted].map((c) => layout.serve[c]!))];
    const made: string[] = [];
    const leaves: string[] = [];
    const served = new Map<Controller, { dir: string; version: 1 | 2 }>();
    try {
      for (const h of hierarchies) {
        const enable = V2_ENABLE.filter((c) => wanted.has(c) && layout.serve[c] === h);
        const dir = makeDirs(layout, h, cgroupPath, enable, made);
        leaves.push(dir);
        for (const c of wanted) if (layout.serve[c] === h) served.set(c, { dir, version: h.version });
      }
      const cgroup = new ContainerCgroup(layout, cgroupPath, leaves, [], served, resources);
      cgroup.writeLimits(source);
      // Remove what create() made, deepest first, and /minic too: both only once empty.
      const prune = made.filter((d) => !leaves.includes(d)).reverse();
      if (path === undefined) for (const h of hierarchies) if (!prune.includes(cgroupDir(h, "/minic"))) prune.push(cgroupDir(h, "/minic"));
      cgroup.prune.push(...prune);
      return cgroup;
    } catch (error) {
      // (Controllers enabled in v2 ancestors stay enabled: harmless, and others may rely on them.)
      for (const dir of [...made].reverse()) removeDir(layout, dir, true);
      throw error;
    }
  }

  /**
   * v1 device rules, in order, as runc writes them: each rule goes to devices.allow or devices.deny
   * as "TYPE MAJOR:MINOR ACCESS" ("a" and "*" for all). The usual list starts with "deny all".
   */
  private writeDeviceRules(): void {
    const devices = this.served.get("devices");
    if (!devices || devices.version !== 1) return;
    for (const rule of this.resources.devices ?? []) {
      const num = (n: number | undefined) => (n === undefined || n < 0 ? "*" : String(n));
      const text = `${rule.type ?? "a"} ${num(rule.major)}:${num(rule.minor)} ${rule.access ?? "rwm"}`;
      writeText(`${devices.dir}/devices.${rule.allow ? "allow" : "deny"}`, text);
    }
  }

  private writeLimits(source: Source): void {
    this.writeDeviceRules();
    const memory = this.served.get("memory");
    const memsw = memory?.version === 1 ? readNumber(`${memory.dir}/memory.memsw.limit_in_bytes`) : null;
    const writes = { 1: v1Writes(this.resources, memsw), 2: v2Writes(this.resources) };
    // Each controller's limits in the files of its own hierarchy's version (hybrid mixes both).
    for (const version of [1, 2] as const) {
      for (const w of writes[version]) if (this.served.get(w.controller)?.version === version) this.writeOne(w, source);
    }
  }

  private writeOne(w: LimitWrite, source: Source): void {
    const { dir, version } = this.served.get(w.controller)!;
    const choice = w.choices.find((c) => lexists(`${dir}/${c.file}`)) ?? w.choices[w.choices.length - 1]!;
    try {
      writeText(`${dir}/${choice.file}`, choice.value);
    } catch (error) {
      if (!(error instanceof SysError)) throw error;
      const files = w.choices.map((c) => c.file).join(" or ");
      if (lexists(`${dir}/${choice.file}`)) {
        throw new ResourceError(label(w.field, source), "", `the kernel refused ${JSON.stringify(choice.value)} in ${choice.file} (${error.code})`,
          `in ${dir}; a parent cgroup's limits may not allow it`);
      }
      if (w.optional) return void this.warnings.push(w.optional);
      throw new ResourceError(label(w.field, source), "", `this machine's ${version === 1 && w.controller === "io" ? "blkio" : w.controller} controller has no ${files}`,
        `this kernel lacks the feature; ${removeIt(source)}`);
    }
  }

  /** Move process `pid` (and its threads) into the cgroup, in every hierarchy. */
  join(pid: number): void {
    for (const dir of this.dirs) {
      try {
        writeText(`${dir}/cgroup.procs`, `${pid}`);
      } catch (error) {
        throw new Error(`cannot move process ${pid} into cgroup ${dir}: ${(error as Error).message}`);
      }
    }
  }

  /** Whether the kernel's OOM killer killed a process of the container. */
  oomKilled(): boolean {
    const memory = this.served.get("memory");
    if (!memory) return false;
    if (memory.version === 2) return (keyed(readTextIfExists(`${memory.dir}/memory.events`), "oom_kill") ?? 0) > 0;
    // v1: the oom_kill count (Linux 4.13+); before it, only the fail count says the limit was hit.
    const kills = keyed(readTextIfExists(`${memory.dir}/memory.oom_control`), "oom_kill");
    return kills !== null ? kills > 0 : (readNumber(`${memory.dir}/memory.failcnt`) ?? 0) > 0;
  }

  /** The memory limit in bytes, for "out of memory (limit 64 MiB)"; null if unlimited. */
  memoryLimit(): number | null {
    const limit = this.resources.memory?.limit;
    return limit !== undefined && limit > 0 ? limit : null;
  }

  stats(): CgroupStats {
    const memory = this.served.get("memory");
    const cpu = this.served.get("cpuacct");
    const pids = this.served.get("pids");
    const usec = cpu?.version === 2 ? keyed(readTextIfExists(`${cpu.dir}/cpu.stat`), "usage_usec") : null;
    return {
      memoryPeak: memory ? readNumber(`${memory.dir}/${memory.version === 2 ? "memory.peak" : "memory.max_usage_in_bytes"}`) : null,
      cpuTimeNs: cpu ? (cpu.version === 2 ? (usec === null ? null : usec * 1000) : readNumber(`${cpu.dir}/cpuacct.usage`)) : null,
      pidsPeak: pids ? (readNumber(`${pids.dir}/pids.peak`) ?? readNumber(`${pids.dir}/pids.current`)) : null,
    };
  }

  /**
   * Remove the cgroup's directories, retrying while the kernel reports them busy (processes still
   * exiting) for up to `timeoutMs`. A directory whose cgroup.procs lists processes is never
   * removed, unless `kill` (for a container sharing the host's PID namespace, whose processes do
   * not die with its init) SIGKILLs them first. Throws, once all else is done, if some remain.
   */
  destroy({ kill = false, timeoutMs = 2000 } = {}): void {
    const deadline = Date.now() + timeoutMs;
    const left: string[] = [];
    for (const dir of [...this.dirs]) {
      for (;;) {
        const members = procs(dir);
        try {
          if (members.length > 0 && kill) killAll(dir, members);
          else if (members.length === 0 && removeDir(this.layout, dir)) {
            this.dirs.splice(this.dirs.indexOf(dir), 1); // so that a second destroy() tries only the rest
            break;
          }
        } catch (error) {
          left.push((error as Error).message);
          break;
        }
        if (Date.now() > deadline) {
          left.push(members.length ? `${dir} still holds processes ${members.join(", ")}` : `${dir} stays busy`);
          break;
        }
        Bun.sleepSync(5);
      }
    }
    if (left.length) throw new Error(`cgroup not removed: ${left.join("; ")}`);
    for (const dir of this.prune.splice(0)) removeDir(this.layout, dir, true); // busy: another container's
  }

  /**
   * Remove the /minic/ID cgroups that a killed agent left behind: those whose container is not
   * live and that hold no process. Returns the directories removed.
   */
  /**
   * The cgroup of an existing container (created by an earlier `minic create`), in every hierarchy
   * where its directory exists: for kill --all, ps, pause, resume and delete.
   */
  static open(layout: CgroupLayout, path: string): ContainerCgroup {
    const served = new Map<Controller, { dir: string; version: 1 | 2 }>();
    const dirs: string[] = [];
    for (const [controller, h] of Object.entries(layout.serve) as Array<[Controller, NonNullable<CgroupLayout["serve"][Controller]>]>) {
      const dir = cgroupDir(h, path);
      if (!isDirectory(dir)) continue;
      served.set(controller, { dir, version: h.version });
      if (!dirs.includes(dir)) dirs.push(dir);
    }
    const prune = path.startsWith("/minic/") ? [...new Set(layout.v1.concat(layout.unified ? [layout.unified] : []))].map((h) => cgroupDir(h, "/minic")) : [];
    return new ContainerCgroup(layout, path, dirs, prune, served, {});
  }

  /** The pids in the cgroup (every process of the container, in any hierarchy that has it). */
  pids(): number[] {
    return [...new Set(this.dirs.flatMap((dir) => procs(dir)))];
  }

  /** Freeze (pause) or thaw (resume) every process: v1 freezer.state, v2 cgroup.freeze. */
  freeze(frozen: boolean): void {
    const freezer = this.served.get("freezer");
    if (!freezer) throw new Error("this machine has no freezer cgroup: pause and resume are not available");
    if (freezer.version === 1) writeText(`${freezer.dir}/freezer.state`, frozen ? "FROZEN" : "THAWED");
    else writeText(`${freezer.dir}/cgroup.freeze`, frozen ? "1" : "0");
  }

  frozen(): boolean {
    const freezer = this.served.get("freezer");
    if (!freezer) return false;
    const text = readTextIfExists(`${freezer.dir}/${freezer.version === 1 ? "freezer.state" : "cgroup.freeze"}`)?.trim();
    return text === "FROZEN" || text === "FREEZING" || text === "1";
  }

  static removeStale(layout: CgroupLayout, isLive: (id: string) => boolean): string[] {
    const removed: string[] = [];
    for (const h of [...(layout.unified ? [layout.unified] : []), ...layout.v1]) {
      const base = cgroupDir(h, "/minic");
      if (!isDirectory(base)) continue;
      for (const id of listDir(base)) {
        const dir = `${base}/${id}`;
        if (!isDirectory(dir) || isLive(id) || procs(dir).length > 0) continue;
        if (removeDir(layout, dir, true)) removed.push(dir);
      }
      removeDir(layout, base, true);
    }
    return removed;
  }
}

