// Issue 4, end to end: resource limits through the real CLI (bin/minic run), as root, on this
// machine's cgroup v1 controllers and the busybox rootfs of test/rootfs.ts. Every test asserts an
// effect a user would see: a process OOM-killed and reported by name, forks refused, CPU time
// capped, a pinned CPU, the cgroup namespace, and no cgroup left behind after any kind of ending.
// (test/cgroups.test.ts covers the library itself: parsing, layouts, the exact files written.)
//
// Every container is named MARK-n, so that its cgroup directories (/sys/fs/cgroup/*/minic/MARK-n)
// can be looked for, and any left over are killed and removed in afterAll. Other minic runs may
// share this machine at the same time: their cgroups under /minic are not this file's business.
// Nothing here asserts on wall time: CPU time comes from --stats (the cgroup's cpuacct.usage).
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MINIC, childrenOf, isDead, killAndRemoveCgroup, minic, procInfo, waitUntil, type MinicResult } from "./helpers.ts";
import { ensureRootfs } from "./rootfs.ts";

setDefaultTimeout(60_000); // bunfig's [test] timeout is not applied by Bun 1.4.5

const CG = "/sys/fs/cgroup";
const STATE_ROOT = process.env.MINIC_ROOT ?? "/run/minic";
const MiB = 1024 * 1024;
const MARK = `lim${process.pid}x${Math.random().toString(16).slice(2, 8)}`;
let containers = 0;
const newName = () => `${MARK}-${++containers}`;

/** This machine's cgroup layout, as the tests need it: root, and memory, cpu, cpuacct, cpuset and pids on v1. */
const selfCgroup = existsSync("/proc/self/cgroup") ? readFileSync("/proc/self/cgroup", "utf8") : "";
const onV1 = process.getuid?.() === 0 && ["memory", "cpu", "cpuacct", "cpuset", "pids"].every((c) => new RegExp(`^\\d+:([^:]*,)?${c}(,[^:]*)?:`, "m").test(selfCgroup));

let R: string; // the busybox rootfs
let scratch: string; // bundles
beforeAll(() => {
  R = ensureRootfs();
  scratch = mkdtempSync(join(tmpdir(), "minic-limits-"));
});

// ---- helpers --------------------------------------------------------------------------------------

/** The hierarchies mounted under /sys/fs/cgroup (memory, cpu, pids, ..., unified). */
const hierarchies = () => readdirSync(CG).filter((h) => existsSync(`${CG}/${h}/cgroup.procs`));
const subdirs = (dir: string) => {
  try {
    return readdirSync(dir, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name);
  } catch {
    return [];
  }
};
/** The directories named `name` under /sys/fs/cgroup/*\/minic/. */
const cgroupsOf = (name: string) => hierarchies().map((h) => `${CG}/${h}/minic/${name}`).filter((d) => existsSync(d));

/**
 * No cgroup of container `name` is left, and /sys/fs/cgroup/*\/minic holds none of this file's
 * containers: it is gone, or holds only other runs' cgroups (another session may be using minic).
 * An empty /minic must go away (it is pruned after the container's own directory; a moment is allowed
 * in case a concurrent run is between creating /minic and its own directory in it).
 */
async function expectNoCgroup(name: string) {
  expect(cgroupsOf(name)).toEqual([]);
  for (const h of hierarchies()) {
    const base = `${CG}/${h}/minic`;
    expect(subdirs(base).filter((d) => d.startsWith(MARK))).toEqual([]);
    await waitUntil(() => !existsSync(base) || subdirs(base).length > 0, `${base} to be removed once empty`, 3000);
  }
}

/** `minic run --name NAME --network none ARGS`. */
async function run(args: string[], name = newName(), timeoutMs?: number): Promise<MinicResult & { name: string }> {
  return { name, ...(await minic(["run", "--name", name, "--network", "none", ...args], { timeoutMs })) };
}
/** `minic run ... --rootfs R [FLAGS] sh -c SCRIPT` */
const sh = (script: string, flags: string[] = [], name?: string, timeoutMs?: number) =>
  run(["--rootfs", R, ...flags, "sh", "-c", script], name, timeoutMs);

/** The `minic: ...` lines of stderr. */
const minicLines = (stderr: string) => stderr.split("\n").filter((l) => l.startsWith("minic: "));

interface Stats {
  memoryPeak: number;
  cpuSeconds: number;
  pidsPeak: number;
}
const UNITS: Record<string, number> = { bytes: 1, KiB: 1024, MiB, GiB: 1024 * MiB };
/** `minic: stats: peak memory 32 MiB, CPU time 1.011 s, peak processes 4` */
function stats(stderr: string): Stats {
  const m = /^minic: stats: peak memory ([\d.]+) (bytes|KiB|MiB|GiB), CPU time ([\d.]+) s, peak processes (\d+)$/m.exec(stderr);
  if (!m) throw new Error(`no stats line in stderr:\n${stderr}`);
  return { memoryPeak: Number(m[1]) * UNITS[m[2]!]!, cpuSeconds: Number(m[3]), pidsPeak: Number(m[4]) };
}

/** A minic run in the background, whose stdout can be watched while it runs. */
function start(args: string[]) {
  const proc = Bun.spawn([MINIC, "run", "--network", "none", ...args], { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  let out = "";
  const reading = (async () => {
    const decoder = new TextDecoder();
    for await (const chunk of proc.stdout) out += decoder.decode(chunk, { stream: true });
  })();
  const stderr = new Response(proc.stderr).text();
  const timer = setTimeout(() => proc.kill("SIGKILL"), 30_000); // a hang guard
  return {
    /** The agent: bin/minic execs bun, so the spawned pid is minic's own. */
    pid: proc.pid,
    proc,
    stdout: () => out,
    async done(): Promise<MinicResult> {
      const code = await proc.exited;
      await reading;
      clearTimeout(timer);
      return { code, stdout: out, stderr: await stderr };
    },
  };
}

/** The container's process: the agent's child running `args0` (after its exec). */
const containerProcess = (agent: number, args0: string) =>
  waitUntil(() => childrenOf(agent).find((p) => p.args[0] === args0 && p.state !== "Z"), `the container's ${args0} under agent ${agent}`);

/** The busybox loop that spins for 2 s of wall time, then is SIGKILLed (not PID 1: sh stays PID 1 and waits). */
const SPIN = "timeout -s KILL 2 sh -c 'while :; do :; done'; true";

/** A bundle from `minic spec`: root.path R, terminal false, the given args and linux.resources. */
async function bundle(args: string[], resources: unknown): Promise<string> {
  const dir = mkdtempSync(join(scratch, "bundle-"));
  const made = await minic(["spec", "--bundle", dir]);
  expect(made.code).toBe(0);
  const config = JSON.parse(readFileSync(`${dir}/config.json`, "utf8"));
  config.root = { path: R, readonly: true };
  config.process.terminal = false;
  config.process.args = args;
  config.linux.resources = { ...config.linux.resources, ...(resources as object) };
  writeFileSync(`${dir}/config.json`, JSON.stringify(config, null, 2));
  return dir;
}

afterAll(() => {
  // Even after a failure: kill what is left in this file's cgroups, then remove them (deepest first).
  for (const h of onV1 ? hierarchies() : []) {
    for (const name of subdirs(`${CG}/${h}/minic`).filter((d) => d.startsWith(MARK))) {
      killAndRemoveCgroup(`${CG}/${h}/minic/${name}`);
    }
    try {
      rmdirSync(`${CG}/${h}/minic`); // only if empty: another run may be using it
    } catch {}
  }
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

// ---- the tests ------------------------------------------------------------------------------------

describe.skipIf(!onV1)("resource limits through minic run (root, cgroup v1)", () => {
  test("-m 32m: a shell allocating 64 MiB is OOM-killed; minic says so and exits 137; the peak stayed at the limit", async () => {
    // The shell (PID 1) grows a 64 MiB string; swap is twice the limit by default, and there is no swap here.
    const r = await sh('x=$(head -c 67108864 /dev/zero | tr "\\0" a); echo survived ${#x}', ["-m", "32m", "--stats"]);
    expect(r.stdout).toBe("");
    expect(r.code).toBe(137);
    expect(minicLines(r.stderr)[0]).toBe("minic: container killed: out of memory (limit 32 MiB)");
    const s = stats(r.stderr);
    expect(s.memoryPeak).toBeLessThanOrEqual(32 * MiB);
    expect(s.memoryPeak).toBeGreaterThan(24 * MiB); // it did reach the limit
    await expectNoCgroup(r.name);
  });

  test("the same allocation under -m 256m succeeds, and no OOM is reported (so the test above can fail)", async () => {
    // busybox sh peaks at about twice the string (it grows its buffer, then copies): 129 MiB here.
    const r = await sh('x=$(head -c 67108864 /dev/zero | tr "\\0" a); echo survived ${#x}', ["-m", "256m"]);
    expect({ code: r.code, stdout: r.stdout, stderr: r.stderr }).toEqual({ code: 0, stdout: "survived 67108864\n", stderr: "" });
    await expectNoCgroup(r.name);
  });

  test("--pids-limit 10: 20 background sleeps cannot all start (sh: can't fork); the container still ends", async () => {
    // The sleeps die with PID 1 (a new PID namespace), so minic returns instead of waiting for them.
    const script = "i=0; while [ $i -lt 20 ]; do sleep 3141 & i=$((i+1)); done; echo started $i";
    const r = await sh(script, ["--pids-limit", "10", "--stats"]);
    expect(r.stderr).toContain("can't fork");
    expect(r.stdout).not.toContain("started 20");
    expect(r.code).not.toBe(0);
    expect(stats(r.stderr).pidsPeak).toBe(10);
    await expectNoCgroup(r.name);
    const strays = readdirSync("/proc").filter((p) => /^\d+$/.test(p) && procInfo(Number(p))?.args.join(" ") === "sleep 3141");
    expect(strays).toEqual([]);
  });

  test("without --pids-limit the 20 sleeps start (so the test above can fail)", async () => {
    const r = await sh("i=0; while [ $i -lt 20 ]; do sleep 3142 & i=$((i+1)); done; echo started $i", ["--stats"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe("started 20\n");
    expect(stats(r.stderr).pidsPeak).toBeGreaterThanOrEqual(21);
    await expectNoCgroup(r.name);
  });

  test("--cpus 0.5: a 2-second busy loop gets at most about 1.2 s of CPU time; without it, more than 1.5 s", async () => {
    const limited = await sh(SPIN, ["--cpus", "0.5", "--stats"]);
    expect(limited.code).toBe(0);
    const unlimited = await sh(SPIN, ["--stats"]);
    expect(unlimited.code).toBe(0);
    // Both figures in one expectation, so that a failure shows the pair.
    const cpu = { limited: stats(limited.stderr).cpuSeconds, unlimited: stats(unlimited.stderr).cpuSeconds };
    expect({ limitedAtMost1_2: cpu.limited <= 1.2, unlimitedOver1_5: cpu.unlimited > 1.5, cpu }).toEqual({
      limitedAtMost1_2: true, unlimitedOver1_5: true, cpu,
    });
    expect(cpu.limited).toBeGreaterThan(0.5); // it did spin, at about half a CPU
    await expectNoCgroup(limited.name);
    await expectNoCgroup(unlimited.name);
  });

  test("--cpuset-cpus 0 pins the container to CPU 0 (and 1 to CPU 1); without it, every CPU", async () => {
    const grep = "grep Cpus_allowed_list /proc/self/status";
    const zero = await sh(grep, ["--cpuset-cpus", "0"]);
    expect({ code: zero.code, stderr: zero.stderr, stdout: zero.stdout.replace(/\s+/g, " ") }).toEqual({ code: 0, stderr: "", stdout: "Cpus_allowed_list: 0 " });
    const online = readFileSync("/sys/devices/system/cpu/online", "utf8").trim();
    if (online !== "0") {
      const one = await sh(grep, ["--cpuset-cpus", "1"]);
      expect(one.stdout.replace(/\s+/g, " ")).toBe("Cpus_allowed_list: 1 ");
      const all = await sh(grep);
      expect(all.stdout.replace(/\s+/g, " ")).toBe(`Cpus_allowed_list: ${online} `);
      await expectNoCgroup(one.name);
    }
    await expectNoCgroup(zero.name);
  });

  test("the cgroup namespace: / inside, /minic/ID from the host; SIGKILL to the container ends the run and its cgroup", async () => {
    const name = newName();
    const c = start(["--name", name, "--rootfs", R, "-m", "64m", "sh", "-c", "cat /proc/self/cgroup; exec sleep 30"]);
    try {
      await waitUntil(() => /:memory:/.test(c.stdout()), "the container's /proc/self/cgroup");
      const sleep = await containerProcess(c.pid, "sleep");
      const inside = c.stdout();
      expect(inside).toMatch(/^\d+:memory:\/$/m);
      expect(inside).toMatch(/^\d+:pids:\/$/m);
      const host = readFileSync(`/proc/${sleep.pid}/cgroup`, "utf8");
      expect(host).toMatch(new RegExp(`^\\d+:memory:/minic/${name}$`, "m"));
      expect(host).toMatch(new RegExp(`^\\d+:pids:/minic/${name}$`, "m"));
      expect(readFileSync(`${CG}/memory/minic/${name}/cgroup.procs`, "utf8").trim()).toBe(`${sleep.pid}`);
      expect(readFileSync(`${CG}/memory/minic/${name}/memory.limit_in_bytes`, "utf8").trim()).toBe(`${64 * MiB}`);
      process.kill(sleep.pid, "SIGKILL");
    } finally {
      const r = await c.done();
      expect(r.code).toBe(137);
      expect(r.stderr).not.toContain("out of memory");
    }
    await expectNoCgroup(name);
  });

  test("no cgroup is left after a success, a failing command, a missing command, and a run with every limit", async () => {
    const flags = ["-m", "64m", "--cpus", "1", "--pids-limit", "100", "--cpuset-cpus", "0", "--memory-reservation", "32m", "--cpu-shares", "512"];
    const ok = await run(["--rootfs", R, ...flags, "true"]);
    expect({ code: ok.code, stderr: ok.stderr }).toEqual({ code: 0, stderr: "" });
    const failed = await sh("exit 3", flags);
    expect({ code: failed.code, stderr: failed.stderr }).toEqual({ code: 3, stderr: "" });
    const missing = await run(["--rootfs", R, ...flags, "/no/such/command"]);
    expect({ code: missing.code, stderr: missing.stderr }).toEqual({ code: 127, stderr: "minic: /no/such/command: no such file or directory (ENOENT)\n" });
    const host = await run([...flags, "true"]); // on the host's files
    expect({ code: host.code, stderr: host.stderr }).toEqual({ code: 0, stderr: "" });
    for (const r of [ok, failed, missing, host]) await expectNoCgroup(r.name);
  });

  test("a cgroup left by a killed agent is removed by the next run", async () => {
    const name = newName();
    const c = start(["--name", name, "--rootfs", R, "-m", "64m", "sleep", "30"]);
    const sleep = await containerProcess(c.pid, "sleep");
    const dir = `${CG}/memory/minic/${name}`;
    expect(readFileSync(`${dir}/cgroup.procs`, "utf8").trim()).toBe(`${sleep.pid}`);
    process.kill(c.pid, "SIGKILL"); // the agent; PR_SET_PDEATHSIG takes the container with it
    const r = await c.done();
    expect(r.code).toBe(137);
    await waitUntil(() => isDead(sleep.pid), "the container to die with its agent");
    // The agent had no chance to clean up: the cgroup stays, empty. (Another minic run on this machine
    // at this very moment would remove it already: that is the behaviour under test, only sooner.)
    await waitUntil(() => readFileSync(`${dir}/cgroup.procs`, "utf8").trim() === "", `${dir} to be empty`);
    expect(existsSync(dir)).toBe(true);
    expect(existsSync(`${STATE_ROOT}/${name}`)).toBe(true); // its state directory too
    const next = await run(["true"]);
    expect({ code: next.code, stderr: next.stderr }).toEqual({ code: 0, stderr: "" });
    expect(cgroupsOf(name)).toEqual([]);
    expect(existsSync(`${STATE_ROOT}/${name}`)).toBe(false);
    await expectNoCgroup(name);
    await expectNoCgroup(next.name);
  });

  test("runs with another --root never remove the cgroup of a container being set up (or just ended)", async () => {
    // Each run sweeps /minic for cgroups "left by a killed agent", judging liveness by its own state
    // root. A container's cgroup is empty between its creation and the join, and again after its
    // process exits, while its agent reads the OOM count and stats: a sweep by a run with another
    // --root (the OCI lifecycle's users, other tests) must not take it away then.
    const other = mkdtempSync(join(scratch, "root-"));
    const N = 40;
    const loop = async (argsOf: (i: number) => string[]) => {
      const failures: string[] = [];
      for (let i = 0; i < N; i++) {
        const r = await minic(argsOf(i));
        // --stats: "n/a" would mean the cgroup was gone by the time the agent read it.
        if (r.code !== 0 || !/^minic: stats: peak memory \d/.test(r.stderr) || r.stderr.includes("n/a")) failures.push(`exit ${r.code}: ${r.stderr.trim()}`);
      }
      return failures;
    };
    const base = newName();
    const [here, there] = await Promise.all([
      loop((i) => ["run", "--name", `${base}-a${i}`, "--network", "none", "--rootfs", R, "-m", "64m", "--stats", "true"]),
      loop((i) => ["--root", other, "run", "--name", `${base}-b${i}`, "--network", "none", "--rootfs", R, "-m", "64m", "--stats", "true"]),
    ]);
    expect({ here: here.slice(0, 3), hereCount: here.length, there: there.slice(0, 3), thereCount: there.length }).toEqual({
      here: [], hereCount: 0, there: [], thereCount: 0,
    });
    for (let i = 0; i < N; i++) expect([...cgroupsOf(`${base}-a${i}`), ...cgroupsOf(`${base}-b${i}`)]).toEqual([]);
  });

  test("bad input: exit 125, one line saying what and why, and no cgroup", async () => {
    const cases: Array<[string[], string]> = [
      [["--memory", "abc"], "minic: --memory abc: not a size (use a number with an optional k, m or g suffix, e.g. 64m)"],
      [["--memory", "-5m"], "minic: --memory -5m: must be more than zero (use a number with an optional k, m or g suffix, e.g. 64m)"],
      [["--memory", "0"], "minic: --memory 0: must be more than zero (use a number with an optional k, m or g suffix, e.g. 64m)"],
      [["--memory", "1m"], "minic: --memory 1m: below the minimum of 6 MiB (docker refuses less too: a process cannot even start in it; use 6m or more)"],
      [["--cpus", "0"], "minic: --cpus 0: must be more than zero (use a decimal such as 0.5 for half a CPU)"],
      [["--cpus", "99"], "minic: --cpus 99: this machine has only "],
      [["--cpuset-cpus", "7"], "minic: --cpuset-cpus 7: CPU 7 does not exist (this machine has CPU"],
      [["--memory-swap", "10m", "--memory", "20m"], "minic: --memory-swap 10m: smaller than --memory (20m)"],
      // The kernel's blkio has no weight file without CFQ or BFQ: found only once the cgroup exists.
      [["--blkio-weight", "500"], "minic: --blkio-weight: this machine's blkio controller has no blkio.weight or blkio.bfq.weight"],
    ];
    const seen: Record<string, unknown> = {};
    const wanted: Record<string, unknown> = {};
    for (const [flags, line] of cases) {
      const r = await run(["--rootfs", R, ...flags, "sh", "-c", "echo ran"]);
      const key = flags.join(" ");
      const lines = r.stderr.split("\n").filter(Boolean);
      seen[key] = { code: r.code, stdout: r.stdout, lines: lines.length, starts: lines[0]?.startsWith(line), line: lines[0], left: cgroupsOf(r.name) };
      wanted[key] = { code: 125, stdout: "", lines: 1, starts: true, line: lines[0], left: [] };
    }
    expect(seen).toEqual(wanted);
    if (existsSync(`${CG}/blkio/blkio.weight`) || existsSync(`${CG}/blkio/blkio.bfq.weight`)) return;
    expect((seen["--blkio-weight 500"] as { line: string }).line).toContain("this kernel lacks the feature");
  });

  test("--stats prints the peak memory, CPU time and peak processes", async () => {
    // About 20 MiB in a shell variable, three processes besides the shell, some CPU.
    const r = await sh('sleep 1 & sleep 1 & x=$(head -c 20971520 /dev/zero | tr "\\0" a); wait; echo ${#x}', ["--stats"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe("20971520\n");
    expect(minicLines(r.stderr)).toHaveLength(1);
    const s = stats(r.stderr);
    expect(s.memoryPeak).toBeGreaterThanOrEqual(20 * MiB);
    expect(s.memoryPeak).toBeLessThan(1024 * MiB);
    expect(s.cpuSeconds).toBeGreaterThan(0);
    expect(s.pidsPeak).toBeGreaterThanOrEqual(4); // sh, 2 sleeps, the $(...) subshell (and head, tr)
    await expectNoCgroup(r.name);
  });

  test("a bundle's linux.resources.memory.limit holds: the limit is seen inside, and 64 MiB is OOM-killed", async () => {
    const script = 'cat /sys/fs/cgroup/memory/memory.limit_in_bytes; x=$(head -c 67108864 /dev/zero | tr "\\0" a); echo survived';
    const dir = await bundle(["sh", "-c", script], { memory: { limit: 32 * MiB } });
    const name = newName();
    const r = await minic(["run", "--name", name, "--bundle", dir]);
    expect(r.stdout).toBe(`${32 * MiB}\n`); // through the spec's /sys/fs/cgroup mount, in the cgroup namespace
    expect(r.code).toBe(137);
    expect(minicLines(r.stderr)).toEqual(["minic: container killed: out of memory (limit 32 MiB)"]);
    await expectNoCgroup(name);
  });

  test("an invalid linux.resources value in config.json: exit 125, one line naming the field, no cgroup", async () => {
    const cases: Array<[unknown, string]> = [
      [{ memory: { limit: "64m" } }, 'minic: linux.resources.memory.limit "64m": must be -1 or a number of bytes'],
      [{ memory: { limit: 1024 } }, "minic: linux.resources.memory.limit 1024: below the minimum of 6 MiB"],
      [{ cpu: { quota: 500, period: 100000 } }, "minic: linux.resources.cpu.quota 500: must be -1 or at least 1000"],
      [{ cpu: { cpus: "7" } }, 'minic: linux.resources.cpu.cpus "7": CPU 7 does not exist'],
      [{ pids: { limit: 1.5 } }, "minic: linux.resources.pids.limit 1.5: must be a whole number"],
      [{ hugepageLimits: [] }, "minic: linux.resources.hugepageLimits: not supported by minic"],
    ];
    const seen: Record<string, unknown> = {};
    const wanted: Record<string, unknown> = {};
    for (const [resources, line] of cases) {
      const dir = await bundle(["sh", "-c", "echo ran"], resources);
      const name = newName();
      const r = await minic(["run", "--name", name, "--bundle", dir]);
      const lines = r.stderr.split("\n").filter(Boolean);
      const key = JSON.stringify(resources);
      seen[key] = { code: r.code, stdout: r.stdout, lines: lines.length, starts: lines[0]?.startsWith(line), line: lines[0], left: cgroupsOf(name) };
      wanted[key] = { code: 125, stdout: "", lines: 1, starts: true, line: lines[0], left: [] };
    }
    expect(seen).toEqual(wanted);
  });
});
