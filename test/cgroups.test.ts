// The cgroup library: flag parsing and its messages, layout detection on sample mountinfo, the
// exact files written on a fake cgroup2 tree (this machine has no v2 controllers), and the real
// v1 controllers of this machine (as root): limits, join, OOM kill, pids limit, removal.
import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseResources, parseSize, type ResourceFlags } from "../src/cgroups/flags.ts";
import { ResourceError, validateResources, formatBytes, type LinuxResources } from "../src/cgroups/resources.ts";
import type { HostInfo } from "../src/cgroups/host.ts";
import { cgroupDir, detectLayout, type CgroupLayout } from "../src/cgroups/layout.ts";
import { ContainerCgroup } from "../src/cgroups/cgroup.ts";
import { cpuWeight, ioWeight } from "../src/cgroups/files.ts";
import { killAndRemoveCgroup } from "./helpers.ts";

const MiB = 1024 * 1024;
/** A machine with 2 CPUs, one memory node and one disk, so that messages are the same everywhere. */
const host: HostInfo = {
  cpuCount: () => 2,
  cpus: () => [0, 1],
  memoryNodes: () => [0],
  blockDevice: (path) => (path === "/dev/sda" ? { major: 8, minor: 0 } : null),
};

/** The line the CLI would print for bad input. */
function problem(run: () => unknown): string {
  try {
    run();
  } catch (error) {
    if (error instanceof ResourceError) return error.full;
    throw error;
  }
  throw new Error("no ResourceError");
}
const bad = (flags: ResourceFlags) => problem(() => parseResources(flags, host));

const tmpDirs: string[] = [];
function tmp(): string {
  const dir = mkdtempSync(join(tmpdir(), "minic-cgroups-"));
  tmpDirs.push(dir);
  return dir;
}

describe("parseResources", () => {
  test("sizes: k, m, g, t suffixes in any case, with an optional b or ib, decimals", () => {
    expect(["64m", "64M", "64mb", "64MiB", "65536k", "0.0625g", "67108864", "67108864b"].map(parseSize)).toEqual(Array(8).fill(64 * MiB));
    expect(parseSize("1.5G")).toBe(1.5 * 1024 * MiB);
    expect(["abc", "", "m", "-1m", "64x", "6 4m"].map(parseSize)).toEqual(Array(6).fill(null));
  });

  test("the issue's flags become OCI linux.resources; swap defaults to twice the memory, as in docker", () => {
    expect(parseResources({ memory: "64m", cpus: "0.5", "pids-limit": "10", "cpuset-cpus": "0" }, host)).toEqual({
      memory: { limit: 64 * MiB, swap: 128 * MiB },
      cpu: { quota: 50000, period: 100000, cpus: "0" },
      pids: { limit: 10 },
    });
    expect(parseResources({}, host)).toEqual({});
  });

  test("every flag", () => {
    const r = parseResources({
      memory: "1g", "memory-swap": "-1", "memory-reservation": "512m", cpus: "1.5", "cpu-shares": "512",
      "cpuset-cpus": "0-1", "cpuset-mems": "0", "pids-limit": "-1", "blkio-weight": "500",
      "device-read-bps": ["/dev/sda:1mb", "/dev/sda:2m"], "device-write-bps": "/dev/sda:10k",
    }, host);
    expect(r).toEqual({
      memory: { limit: 1024 * MiB, swap: -1, reservation: 512 * MiB },
      cpu: { quota: 150000, period: 100000, shares: 512, cpus: "0-1", mems: "0" },
      pids: { limit: -1 },
      blockIO: {
        weight: 500,
        throttleReadBpsDevice: [{ major: 8, minor: 0, rate: MiB }, { major: 8, minor: 0, rate: 2 * MiB }],
        throttleWriteBpsDevice: [{ major: 8, minor: 0, rate: 10240 }],
      },
    });
  });

  test("docker's conventions: --pids-limit 0 is no limit; --cpu-shares 0 and --blkio-weight 0 are the defaults; swap equal to memory", () => {
    expect(parseResources({ "pids-limit": "0" }, host)).toEqual({ pids: { limit: -1 } });
    expect(parseResources({ "cpu-shares": "0", "blkio-weight": "0" }, host)).toEqual({});
    expect(parseResources({ memory: "64m", "memory-swap": "64m" }, host)).toEqual({ memory: { limit: 64 * MiB, swap: 64 * MiB } });
  });

  test("bad input: one line naming the flag, the value and what to do", () => {
    const size = "use a number with an optional k, m or g suffix, e.g. 64m";
    expect(bad({ memory: "abc" })).toBe(`--memory abc: not a size (${size})`);
    expect(bad({ memory: "-5m" })).toBe(`--memory -5m: must be more than zero (${size})`);
    expect(bad({ memory: "0" })).toBe(`--memory 0: must be more than zero (${size})`);
    expect(bad({ memory: "4m" })).toBe("--memory 4m: below the minimum of 6 MiB (docker refuses less too: a process cannot even start in it; use 6m or more)");
    expect(bad({ memory: "64m", "memory-swap": "32m" })).toBe(
      "--memory-swap 32m: smaller than --memory (64m) (it limits memory plus swap: use at least the memory limit, or -1 for unlimited swap)");
    expect(bad({ "memory-swap": "128m" })).toBe("--memory-swap 128m: needs --memory too (it limits memory plus swap, so set the memory limit as well)");
    expect(bad({ memory: "64m", "memory-reservation": "128m" })).toBe(
      "--memory-reservation 128m: larger than --memory (64m) (the reservation is a soft limit, below the hard one)");
    expect(bad({ cpus: "0" })).toBe("--cpus 0: must be more than zero (use a decimal such as 0.5 for half a CPU)");
    expect(bad({ cpus: "-1" })).toBe("--cpus -1: must be more than zero (use a decimal such as 0.5 for half a CPU)");
    expect(bad({ cpus: "abc" })).toBe("--cpus abc: not a number of CPUs (use a decimal such as 0.5 for half a CPU)");
    expect(bad({ cpus: "3" })).toBe("--cpus 3: this machine has only 2 CPUs (use at most 2)");
    expect(bad({ cpus: "0.001" })).toBe("--cpus 0.001: below the kernel's minimum of 0.01 (use at least 0.01 (1 ms of CPU time per 100 ms))");
    expect(bad({ "cpu-shares": "1" })).toBe("--cpu-shares 1: not a whole number from 2 to 262144 (1024 is the default weight; 512 is half of it)");
    expect(bad({ "cpu-shares": "x" })).toBe("--cpu-shares x: not a whole number (1024 is the default weight; 512 is half of it)");
    expect(bad({ "cpuset-cpus": "0-3" })).toBe("--cpuset-cpus 0-3: CPUs 2-3 do not exist (this machine has CPUs 0-1)");
    expect(bad({ "cpuset-cpus": "0,5" })).toBe("--cpuset-cpus 0,5: CPU 5 does not exist (this machine has CPUs 0-1)");
    expect(bad({ "cpuset-cpus": "one" })).toBe("--cpuset-cpus one: not a CPU list (use numbers and ranges, e.g. 0-1,3)");
    expect(bad({ "cpuset-mems": "1" })).toBe("--cpuset-mems 1: memory node 1 does not exist (this machine has memory node 0)");
    expect(bad({ "pids-limit": "ten" })).toBe("--pids-limit ten: not a whole number (use a number of processes such as 100, or -1 for no limit)");
    expect(bad({ "blkio-weight": "5" })).toBe("--blkio-weight 5: not a whole number from 10 to 1000 (500 is the default weight)");
    expect(bad({ "device-read-bps": "/dev/sdz:1mb" })).toBe("--device-read-bps /dev/sdz:1mb: /dev/sdz is not a block device (lsblk lists this machine's disks)");
    expect(bad({ "device-write-bps": "/dev/sda" })).toBe("--device-write-bps /dev/sda: not DEVICE:RATE (e.g. /dev/sda:1mb)");
    expect(bad({ "device-read-bps": ["/dev/sda:1m", "/dev/sda:fast"] })).toBe(
      "--device-read-bps /dev/sda:fast: fast is not a rate (use bytes per second with an optional k, m or g suffix, e.g. 1mb)");
  });

  test("this machine: its own CPU count, and its disks found through sysfs", () => {
    const cpus = Number(Bun.spawnSync(["nproc"]).stdout.toString().trim());
    expect(parseResources({ cpus: `${cpus}` }).cpu!.quota).toBe(cpus * 100000);
    expect(problem(() => parseResources({ cpus: `${cpus + 1}` }))).toStartWith(`--cpus ${cpus + 1}: this machine has only ${cpus} CPU`);
    const disk = readdirSync("/sys/class/block").find((name) => existsSync(`/dev/${name}`));
    if (disk) {
      const [major, minor] = readFileSync(`/sys/class/block/${disk}/dev`, "utf8").trim().split(":").map(Number);
      expect(parseResources({ "device-read-bps": `/dev/${disk}:1mb` }).blockIO!.throttleReadBpsDevice).toEqual([{ major: major!, minor: minor!, rate: MiB }]);
    }
  });

  test("formatBytes, for the OOM message", () => {
    expect([64 * MiB, 1536 * MiB, 6 * MiB + 512 * 1024, 100].map(formatBytes)).toEqual(["64 MiB", "1.5 GiB", "6.5 MiB", "100 bytes"]);
  });
});

describe("validateResources (a bundle's config.json)", () => {
  const check = (r: unknown) => problem(() => validateResources(r, host));

  test("valid resources pass through typed, device rules included", () => {
    const r = { memory: { limit: 64 * MiB, swap: -1 }, cpu: { quota: 50000, period: 100000, cpus: "1" }, pids: { limit: 10 }, devices: [{ allow: false, access: "rwm" }] };
    expect(validateResources(r, host)).toBe(r as LinuxResources);
  });

  test("the same rules as the flags, naming the JSON field", () => {
    expect(check({ memory: { limit: 4096 } })).toBe(
      "linux.resources.memory.limit 4096: below the minimum of 6 MiB (docker refuses less too: a process cannot even start in it; use 6m or more)");
    expect(check({ memory: { limit: 64 * MiB, swap: MiB * 32 } })).toStartWith("linux.resources.memory.swap 33554432: smaller than linux.resources.memory.limit (67108864)");
    expect(check({ cpu: { quota: 300000, period: 100000 } })).toBe("linux.resources.cpu.quota 300000: this machine has only 2 CPUs (quota/period is 3: use at most 2)");
    expect(check({ cpu: { cpus: "7" } })).toBe('linux.resources.cpu.cpus "7": CPU 7 does not exist (this machine has CPUs 0-1)');
    expect(check({ cpu: { quota: 10 } })).toBe("linux.resources.cpu.quota 10: must be -1 or at least 1000 (microseconds) (see the OCI runtime-spec)");
    expect(check({ memory: { limit: "64m" } })).toBe('linux.resources.memory.limit "64m": must be -1 or a number of bytes (see the OCI runtime-spec)');
    expect(check({ hugepageLimits: [] })).toBe("linux.resources.hugepageLimits: not supported by minic (remove it from config.json)");
    expect(check({ memory: { kernel: 1 } })).toBe("linux.resources.memory.kernel: not supported by minic (remove it from config.json)");
    expect(check({ pids: {} })).toBe("linux.resources.pids.limit: is required (see the OCI runtime-spec)");
  });
});

// ---- layouts -------------------------------------------------------------------------------

const V2_MOUNTINFO = `24 30 0:22 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
29 24 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
`;
const V2_SELF = "0::/user.slice/user-0.slice/session-1.scope\n";

const V1_MOUNTINFO = `25 24 0:22 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
26 25 0:23 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:10 - cgroup cgroup rw,xattr,name=systemd
29 25 0:26 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:13 - cgroup cgroup rw,cpu,cpuacct
30 25 0:27 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:14 - cgroup cgroup rw,memory
31 25 0:28 / /sys/fs/cgroup/blkio rw,nosuid,nodev,noexec,relatime shared:15 - cgroup cgroup rw,blkio
32 25 0:29 / /sys/fs/cgroup/pids rw,nosuid,nodev,noexec,relatime shared:16 - cgroup cgroup rw,pids
33 25 0:30 / /sys/fs/cgroup/cpuset rw,nosuid,nodev,noexec,relatime shared:17 - cgroup cgroup rw,cpuset,clone_children
34 25 0:31 / /sys/fs/cgroup/net_cls,net_prio rw,nosuid,nodev,noexec,relatime shared:18 - cgroup cgroup rw,net_cls,net_prio
35 25 0:30 / /mnt/cpuset\\040copy rw,relatime shared:17 - cgroup cgroup rw,cpuset,clone_children
`;
const V1_SELF = `12:pids:/user.slice/user-0.slice/session-1.scope
5:cpu,cpuacct:/user.slice
4:memory:/user.slice/user-0.slice/session-1.scope
1:name=systemd:/user.slice/user-0.slice/session-1.scope
`;

// This machine's: cpu and cpuacct on separate mounts, and a cgroup2 mount holding only hugetlb.
const HYBRID_MOUNTINFO = `31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
38 31 0:35 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
`;
const HYBRID_SELF = "9:name=systemd:/\n8:pids:/\n7:blkio:/\n6:freezer:/\n5:devices:/\n4:memory:/process_api/abc\n3:cpuset:/\n2:cpuacct:/\n1:cpu:/\n0::/\n";

/** A fake cgroup2 root: the root's files as plain files, under `prefix`. */
function fakeV2Root(prefix: string, controllers = "cpuset cpu io memory hugetlb pids rdma misc", mount = "/sys/fs/cgroup"): string {
  const root = `${prefix}${mount}`;
  mkdirSync(root, { recursive: true });
  writeFileSync(`${root}/cgroup.controllers`, `${controllers}\n`);
  writeFileSync(`${root}/cgroup.subtree_control`, "");
  writeFileSync(`${root}/cgroup.procs`, "1\n2\n");
  return root;
}

describe("detectLayout", () => {
  test("pure v2: every controller the root lists, and the core ones, on the one hierarchy", () => {
    const prefix = tmp();
    fakeV2Root(prefix, "cpuset cpu memory pids");
    const layout = detectLayout(V2_MOUNTINFO, V2_SELF, { prefix });
    expect(layout.mode).toBe("v2");
    expect(layout.unified).toEqual({ version: 2, mount: `${prefix}/sys/fs/cgroup`, root: "/", controllers: ["cpuset", "cpu", "memory", "pids"], own: "/user.slice/user-0.slice/session-1.scope" });
    for (const c of ["memory", "cpu", "cpuacct", "cpuset", "pids", "freezer", "devices"] as const) expect(layout.serve[c]).toBe(layout.unified!);
    expect(layout.serve.io).toBeUndefined(); // not listed: this machine would have no io controller
    expect(cgroupDir(layout.unified!, "/minic/a")).toBe(`${prefix}/sys/fs/cgroup/minic/a`);
    expect(cgroupDir(layout.unified!, "sub/a")).toBe(`${prefix}/sys/fs/cgroup/user.slice/user-0.slice/session-1.scope/sub/a`);
  });

  test("pure v1: one hierarchy per mount, co-mounted cpu,cpuacct, blkio serving io, name=systemd and duplicates left out", () => {
    const layout = detectLayout(V1_MOUNTINFO, V1_SELF);
    expect(layout.mode).toBe("v1");
    expect(layout.unified).toBeNull();
    expect(layout.v1.map((h) => h.mount)).toEqual(["cpu,cpuacct", "memory", "blkio", "pids", "cpuset", "net_cls,net_prio"].map((m) => `/sys/fs/cgroup/${m}`));
    expect(layout.serve.cpu).toBe(layout.serve.cpuacct!);
    expect(layout.serve.io!.mount).toBe("/sys/fs/cgroup/blkio");
    expect(layout.serve.freezer).toBeUndefined();
    expect(layout.serve.memory!.own).toBe("/user.slice/user-0.slice/session-1.scope");
    expect(layout.serve.cpu!.own).toBe("/user.slice");
    expect(cgroupDir(layout.serve.cpu!, "sub/a")).toBe("/sys/fs/cgroup/cpu,cpuacct/user.slice/sub/a");
    expect(cgroupDir(layout.serve.memory!, "/minic/a")).toBe("/sys/fs/cgroup/memory/minic/a");
  });

  test("hybrid: v1 serves what the cgroup2 mount does not list; a controller the cgroup2 root lists goes to v2", () => {
    const prefix = tmp();
    fakeV2Root(prefix, "hugetlb", "/sys/fs/cgroup/unified");
    const layout = detectLayout(HYBRID_MOUNTINFO, HYBRID_SELF, { prefix });
    expect(layout.mode).toBe("hybrid");
    expect(layout.serve.memory!.mount).toBe(`${prefix}/sys/fs/cgroup/memory`);
    expect(layout.serve.memory!.own).toBe("/process_api/abc");
    expect(layout.serve.cpu!.mount).toBe(`${prefix}/sys/fs/cgroup/cpu`);
    expect(layout.serve.cpuacct!.mount).toBe(`${prefix}/sys/fs/cgroup/cpuacct`);
    for (const c of ["freezer", "devices", "pids"] as const) expect(layout.serve[c]!.mount).toBe(`${prefix}/sys/fs/cgroup/${c}`);
    expect(layout.serve.io!.mount).toBe(`${prefix}/sys/fs/cgroup/blkio`);
    expect(layout.unified!.controllers).toEqual(["hugetlb"]);
    expect(layout.v1).toHaveLength(8);
  });

  test("hybrid where the cgroup2 root lists pids and io, and v1 mounts lack them", () => {
    const prefix = tmp();
    fakeV2Root(prefix, "pids io", "/sys/fs/cgroup/unified");
    const mountinfo = HYBRID_MOUNTINFO.split("\n").filter((l) => !/(blkio|pids) rw/.test(l)).join("\n");
    const layout = detectLayout(mountinfo, HYBRID_SELF, { prefix });
    expect(layout.serve.pids).toBe(layout.unified!);
    expect(layout.serve.io).toBe(layout.unified!);
    expect(layout.serve.memory!.version).toBe(1);
    expect(layout.serve.freezer!.version).toBe(1);
  });

  test("this machine", () => {
    const layout = detectLayout();
    expect(["v1", "v2", "hybrid"]).toContain(layout.mode);
    for (const h of [...layout.v1, ...(layout.unified ? [layout.unified] : [])]) expect(existsSync(`${h.mount}/cgroup.procs`)).toBe(true);
  });
});

// ---- a fake cgroup2 tree ---------------------------------------------------------------------

/** Every file under `dir`, relative to it, with its text. */
function tree(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const entry of readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (entry.isFile()) out[join(entry.parentPath, entry.name).slice(dir.length + 1)] = readFileSync(join(entry.parentPath, entry.name), "utf8");
  }
  return out;
}

describe("ContainerCgroup on a fake cgroup2 tree", () => {
  function fakeV2(controllers?: string): { layout: CgroupLayout; root: string } {
    const prefix = tmp();
    const root = fakeV2Root(prefix, controllers);
    return { layout: detectLayout(V2_MOUNTINFO, V2_SELF, { prefix }), root };
  }

  test("create() enables the controllers in the ancestors and writes exactly the limits; destroy() removes the dirs", () => {
    const { layout, root } = fakeV2();
    const resources = parseResources({ memory: "64m", cpus: "0.5", "pids-limit": "10" }, host);
    const cg = ContainerCgroup.create(layout, undefined, resources, { id: "c1" });
    expect(cg.path).toBe("/minic/c1");
    expect(cg.dirs).toEqual([`${root}/minic/c1`]);
    expect(tree(root)).toEqual({
      "cgroup.controllers": "cpuset cpu io memory hugetlb pids rdma misc\n",
      "cgroup.procs": "1\n2\n",
      "cgroup.subtree_control": "+memory +cpu +pids",
      "minic/cgroup.subtree_control": "+memory +cpu +pids",
      "minic/c1/memory.max": "67108864",
      "minic/c1/memory.swap.max": "67108864", // swap alone on v2: 128m of memory+swap minus 64m
      "minic/c1/cpu.max": "50000 100000",
      "minic/c1/pids.max": "10",
    });
    expect(cg.memoryLimit()).toBe(64 * MiB);

    cg.join(4242);
    expect(readFileSync(`${root}/minic/c1/cgroup.procs`, "utf8")).toBe("4242");
    expect(cg.oomKilled()).toBe(false);
    writeFileSync(`${root}/minic/c1/memory.events`, "low 0\nhigh 0\nmax 12\noom 1\noom_kill 1\noom_group_kill 0\n");
    expect(cg.oomKilled()).toBe(true);
    writeFileSync(`${root}/minic/c1/memory.peak`, "52428800\n");
    writeFileSync(`${root}/minic/c1/cpu.stat`, "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n");
    writeFileSync(`${root}/minic/c1/pids.current`, "0\n");
    expect(cg.stats()).toEqual({ memoryPeak: 50 * MiB, cpuTimeNs: 1_500_000, pidsPeak: 0 });
    writeFileSync(`${root}/minic/c1/pids.peak`, "7\n");
    expect(cg.stats().pidsPeak).toBe(7);

    // A cgroup that still lists a process is never removed...
    expect(() => cg.destroy({ timeoutMs: 30 })).toThrow(`cgroup not removed: ${root}/minic/c1 still holds processes 4242`);
    expect(existsSync(`${root}/minic/c1`)).toBe(true);
    // ...and once it is empty, the cgroup and the empty /minic go.
    const again = ContainerCgroup.create(layout, undefined, resources, { id: "c2" });
    writeFileSync(`${root}/minic/c1/cgroup.procs`, "");
    ContainerCgroup.removeStale(layout, (id) => id === "c2");
    expect(existsSync(`${root}/minic/c1`)).toBe(false);
    again.destroy();
    expect(readdirSync(root).sort()).toEqual(["cgroup.controllers", "cgroup.procs", "cgroup.subtree_control"]);
  });

  test("the other limits: shares as cpu.weight, cpuset, memory.low, io.weight and io.max; unlimited values as max", () => {
    const { layout, root } = fakeV2();
    const resources = parseResources({
      memory: "1g", "memory-swap": "-1", "memory-reservation": "256m", "cpu-shares": "512", "cpuset-cpus": "1", "cpuset-mems": "0",
      "pids-limit": "-1", "blkio-weight": "500", "device-read-bps": "/dev/sda:1m", "device-write-bps": "/dev/sda:2m",
    }, host);
    const cg = ContainerCgroup.create(layout, "/custom/parent/c3", resources, { id: "c3" });
    const files = tree(root);
    expect(files["cgroup.subtree_control"]).toBe("+memory +cpu +cpuset +io +pids");
    expect(files["custom/cgroup.subtree_control"]).toBe("+memory +cpu +cpuset +io +pids");
    expect(files["custom/parent/cgroup.subtree_control"]).toBe("+memory +cpu +cpuset +io +pids");
    expect(Object.fromEntries(Object.entries(files).filter(([f]) => f.startsWith("custom/parent/c3/")).map(([f, v]) => [f.slice(17), v]))).toEqual({
      "memory.max": "1073741824",
      "memory.swap.max": "max",
      "memory.low": "268435456",
      "cpu.weight": "20",
      "cpuset.cpus": "1",
      "cpuset.mems": "0",
      "pids.max": "max",
      "io.weight": "default 4950",
      "io.max": "8:0 rbps=1048576 wbps=2097152",
    });
    expect([cpuWeight(2), cpuWeight(1024), cpuWeight(262144), ioWeight(10), ioWeight(1000)]).toEqual([1, 39, 10000, 1, 10000]);
    cg.destroy();
    // The parents it made go too, since they are empty; a path given by the caller has no /minic.
    expect(existsSync(`${root}/custom`)).toBe(false);
  });

  test("the no-internal-processes rule: a relative path under minic's own busy cgroup is refused, clearly", () => {
    const { layout, root } = fakeV2();
    const scope = `${root}/user.slice/user-0.slice/session-1.scope`;
    mkdirSync(scope, { recursive: true });
    writeFileSync(`${scope}/cgroup.procs`, "4242\n4343\n");
    const error = problem(() => ContainerCgroup.create(layout, "sub/c4", parseResources({ memory: "64m" }, host), { id: "c4" }));
    expect(error).toBe(
      `cgroup sub/c4: cannot enable memory, pids in ${scope}: it holds processes (4242, 4343), and cgroup v2 gives controllers only to the children of a cgroup without processes ` +
        "(use an absolute cgroup path (the default /minic/ID, or --cgroup-parent /PARENT), or first move those processes into a child cgroup of their own)");
    expect(existsSync(`${scope}/sub`)).toBe(false);
  });

  test("a controller the machine lacks: one line, and nothing created", () => {
    const { layout, root } = fakeV2("cpuset cpu io memory");
    expect(problem(() => ContainerCgroup.create(layout, undefined, parseResources({ memory: "64m", "pids-limit": "10" }, host), { id: "c5" }))).toBe(
      "--pids-limit: this machine has no pids controller (/proc/cgroups lists the ones this kernel has; remove the flag)");
    expect(problem(() => ContainerCgroup.create(layout, undefined, { pids: { limit: 5 } }, { id: "c5", source: "spec" }))).toBe(
      "linux.resources.pids.limit: this machine has no pids controller (/proc/cgroups lists the ones this kernel has; remove the field from config.json)");
    expect(existsSync(`${root}/minic`)).toBe(false);
    // Without limits, accounting uses what there is: memory here, and cpu.stat which every v2 cgroup has.
    const cg = ContainerCgroup.create(layout, undefined, {}, { id: "c5" });
    expect(readFileSync(`${root}/cgroup.subtree_control`, "utf8")).toBe("+memory");
    cg.destroy();
    expect(existsSync(`${root}/minic`)).toBe(false);
  });

  test("bad cgroup paths", () => {
    const { layout } = fakeV2();
    expect(() => ContainerCgroup.create(layout, "system.slice:minic:x", {}, { id: "x" })).toThrow("systemd's slice:prefix:name form is not supported");
    expect(() => ContainerCgroup.create(layout, "/minic/../../etc", {}, { id: "x" })).toThrow('cgroup path "/minic/../../etc": not a cgroup path');
  });
});

// ---- this machine's real cgroups ---------------------------------------------------------------

const real = (() => {
  try {
    return process.getuid!() === 0 ? detectLayout() : null;
  } catch {
    return null;
  }
})();
const onV1 = real !== null && real.serve.memory?.version === 1 && real.serve.cpu?.version === 1 && !!real.serve.pids && !!real.serve.cpuset;
const testId = `minic-test-${process.pid}-${Date.now().toString(36)}`;

/** Every directory under /sys/fs/cgroup named `id` (default: after any of this file's test ids). */
function leftovers(id = `*${testId}*`): string[] {
  const out = Bun.spawnSync(["find", "/sys/fs/cgroup", "-name", id]).stdout.toString();
  return out.split("\n").filter(Boolean);
}

describe.skipIf(!onV1)("ContainerCgroup on this machine's cgroup v1 controllers (root)", () => {
  const layout = real!;
  const read = (dir: string, file: string) => readFileSync(`${dir}/${file}`, "utf8").trim();

  afterAll(() => {
    // Even after a failure: kill what is left in the test's cgroups, then remove them deepest first.
    for (const dir of leftovers().sort().reverse()) {
      killAndRemoveCgroup(dir);
    }
    for (const h of layout.v1) {
      try {
        rmdirSync(`${h.mount}/minic`); // if empty: another container may be using it
      } catch {}
    }
  });

  test("limits written, a process joined and confined, then everything removed", async () => {
    const resources = parseResources({ memory: "64m", cpus: "0.5", "pids-limit": "10", "cpuset-cpus": "0" });
    const cg = ContainerCgroup.create(layout, undefined, resources, { id: testId });
    const dir = (c: "memory" | "cpu" | "cpuset" | "pids" | "cpuacct") => cgroupDir(layout.serve[c]!, `/minic/${testId}`);
    expect(read(dir("memory"), "memory.limit_in_bytes")).toBe(`${64 * MiB}`);
    if (existsSync(`${dir("memory")}/memory.memsw.limit_in_bytes`)) expect(read(dir("memory"), "memory.memsw.limit_in_bytes")).toBe(`${128 * MiB}`);
    expect(read(dir("cpu"), "cpu.cfs_quota_us")).toBe("50000");
    expect(read(dir("cpu"), "cpu.cfs_period_us")).toBe("100000");
    expect(read(dir("pids"), "pids.max")).toBe("10");
    expect(read(dir("cpuset"), "cpuset.cpus")).toBe("0");
    expect(read(dir("cpuset"), "cpuset.mems")).toBe(read(layout.serve.cpuset!.mount, "cpuset.mems")); // copied from the parent
    expect(new Set(cg.dirs)).toEqual(new Set(["memory", "cpu", "cpuset", "pids", "cpuacct", "freezer"].map((c) => dir(c as "memory"))));

    const sleep = Bun.spawn(["sleep", "5"]);
    try {
      cg.join(sleep.pid);
      const own = readFileSync(`/proc/${sleep.pid}/cgroup`, "utf8");
      for (const c of ["memory", "cpu", "cpuset", "pids", "cpuacct"]) {
        expect(own).toMatch(new RegExp(`^\\d+:([^:]*,)?${c}(,[^:]*)?:/minic/${testId}$`, "m"));
      }
      expect(readFileSync(`/proc/${sleep.pid}/status`, "utf8")).toMatch(/^Cpus_allowed_list:\s+0$/m);
      expect(read(dir("pids"), "cgroup.procs")).toBe(`${sleep.pid}`);
    } finally {
      sleep.kill("SIGKILL");
      await sleep.exited;
    }
    expect(cg.oomKilled()).toBe(false);
    const stats = cg.stats();
    expect(stats.memoryPeak).toBeGreaterThanOrEqual(0); // sleep's pages stay charged where they were faulted in
    expect(stats.cpuTimeNs).toBeGreaterThanOrEqual(0);
    expect(stats.pidsPeak).toBeGreaterThanOrEqual(1);
    cg.destroy();
    expect(leftovers(testId)).toEqual([]);
  });

  test("a process allocating past --memory is OOM-killed, and oomKilled() says so", async () => {
    const cg = ContainerCgroup.create(layout, undefined, parseResources({ memory: "16m" }), { id: `${testId}-oom` });
    // sh waits for a line on stdin, so that it is in the cgroup before it allocates 64 MiB.
    const proc = Bun.spawn(["sh", "-c", 'read go; x=$(head -c 67108864 /dev/zero | tr "\\0" a); echo survived'], { stdin: "pipe", stdout: "pipe" });
    cg.join(proc.pid);
    proc.stdin.write("go\n");
    await proc.stdin.end();
    await proc.exited;
    expect(await new Response(proc.stdout).text()).toBe("");
    expect(proc.signalCode).toBe("SIGKILL");
    expect(cg.oomKilled()).toBe(true);
    expect(cg.stats().memoryPeak).toBeGreaterThanOrEqual(15 * MiB);
    cg.destroy({ kill: true });
    expect(leftovers(`${testId}-oom`)).toEqual([]);
  });

  test("--pids-limit 10 stops the 10th process; destroy({kill: true}) kills the ones left behind", async () => {
    const cg = ContainerCgroup.create(layout, undefined, parseResources({ "pids-limit": "10" }), { id: `${testId}-pids` });
    const script = 'read go; i=0; while [ $i -lt 20 ]; do sleep 30 >/dev/null 2>&1 & i=$((i+1)); done; echo done';
    const proc = Bun.spawn(["sh", "-c", script], { stdin: "pipe", stdout: "pipe", stderr: "pipe" });
    cg.join(proc.pid);
    proc.stdin.write("go\n");
    await proc.stdin.end();
    await proc.exited;
    expect(await new Response(proc.stderr).text()).toMatch(/fork/i);
    const dir = cgroupDir(layout.serve.pids!, `/minic/${testId}-pids`);
    expect(read(dir, "pids.peak")).toBe("10");
    expect(readFileSync(`${dir}/cgroup.procs`, "utf8").trim().split("\n").length).toBe(9); // the sleeps that started
    expect(() => cg.destroy({ timeoutMs: 100 })).toThrow("still holds processes");
    cg.destroy({ kill: true });
    expect(leftovers(`${testId}-pids`)).toEqual([]);
  });

  test("a value the kernel refuses: the line names the flag, and what was created is removed", () => {
    const resources: LinuxResources = { memory: { limit: 64 * MiB }, cpu: { quota: 500, period: 100000 } };
    expect(problem(() => ContainerCgroup.create(layout, undefined, resources, { id: `${testId}-bad` }))).toMatch(
      /^--cpus: the kernel refused "500" in cpu.cfs_quota_us \(EINVAL\) \(in \/sys\/fs\/cgroup\/cpu.*\/minic\/minic-test-.*-bad; a parent cgroup's limits may not allow it\)$/);
    expect(leftovers(`${testId}-bad`)).toEqual([]);
  });
});

afterAll(() => {
  for (const dir of tmpDirs) rmSync(dir, { recursive: true, force: true });
});
