// Issue 7, `minic exec`, end to end through the real CLI (bin/minic), as root, on the busybox
// rootfs: a process started by exec is in the container (same hostname, PID namespace, mount
// namespace, cgroup), with the container's security (capabilities, seccomp, no_new_privs), and its
// exit status, signals, flags and errors behave as with runc exec and docker exec.
//
// Containers run `sleep 60` in the background: one made by `minic run`, one by `minic create` +
// `minic start` from a bundle, one with a user namespace. Every container and exec'd process
// carries MARK in its environment, so that none may outlive the file.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MINIC, isDead, minic, procInfo, waitUntil, type MinicResult } from "./helpers.ts";
import { processesMarked } from "./helpers.ts";
import { ensureRootfs } from "./rootfs.ts";
import { compileExecPlan, JOIN_ORDER } from "../src/exec.ts";
import { NAMESPACE_FILES } from "../src/namespaces.ts";
import { describeStep } from "../src/process/step.ts";
import type { Process, Spec } from "../src/spec/types.ts";

setDefaultTimeout(60_000); // bunfig's [test] timeout is not applied by Bun 1.4.5

const MARK = `exe${process.pid}x${Math.random().toString(16).slice(2, 8)}`;
const STATE_ROOT = process.env.MINIC_ROOT ?? "/run/minic";
let R: string; // the busybox rootfs
let scratch: string; // logs, bundles, process.json files
let containers = 0;
const newName = () => `${MARK}-${++containers}`;

/** The namespaces a container has of its own (minic run's defaults, less the network: --network none keeps its own). */
const NAMESPACES = ["ipc", "mnt", "net", "pid", "uts", "cgroup"];

// ---- helpers --------------------------------------------------------------------------------------

/** The stdout of a minic run that must succeed; on failure the diff shows the exit code and stderr. */
function ok(result: MinicResult): string {
  expect({ code: result.code, stderr: result.stderr }).toEqual({ code: 0, stderr: "" });
  return result.stdout;
}

const lines = (text: string) => text.split("\n").filter(Boolean);

/** `minic exec FLAGS NAME COMMAND...` */
function execIn(name: string, command: string[], flags: string[] = []): Promise<MinicResult> {
  return minic(["exec", ...flags, name, ...command]);
}

const markedProcesses = () => processesMarked(MARK);

/** A marked process running exactly `args`, once it exists. */
const findProcess = (args: string[]) =>
  waitUntil(() => markedProcesses().find((p) => p.args.join(" ") === args.join(" ")), `a process running ${args.join(" ")}`);

/** The host's view of a process: its namespaces, cgroups and security fields. */
const nsLinks = (pid: number | string) => NAMESPACES.map((ns) => readlinkSync(`/proc/${pid}/ns/${ns}`));
const cgroups = (pid: number) => readFileSync(`/proc/${pid}/cgroup`, "utf8");
const SECURITY_FIELDS = /^(CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs|Seccomp):.*$/gm;
const security = (status: string) => status.match(SECURITY_FIELDS)!.join("\n");

function readState(name: string): { status: string; pid: number } | null {
  try {
    return JSON.parse(readFileSync(`${STATE_ROOT}/${name}/state.json`, "utf8"));
  } catch {
    return null;
  }
}

interface Box {
  name: string;
  /** The container's init, as the host sees it. */
  init: number;
  /** Kill it (`minic delete -f`) and wait for it to be gone. */
  remove(): Promise<void>;
}
const boxes: Box[] = [];

/** `minic run --name NAME --network none --rootfs R FLAGS sleep 60` in the background, until it runs. */
async function runBox(flags: string[] = []): Promise<Box> {
  const name = newName();
  const log = join(scratch, `${name}.log`);
  const proc = Bun.spawn([MINIC, "run", "--name", name, "-e", `MARK=${MARK}`, "--network", "none", "--rootfs", R, ...flags, "sleep", "60"], {
    stdin: "ignore",
    stdout: Bun.file(log),
    stderr: Bun.file(log),
  });
  const guard = setTimeout(() => proc.kill("SIGKILL"), 55_000);
  const init = await waitUntil(() => {
    const state = readState(name);
    return state?.status === "running" && state.pid > 0 && procInfo(state.pid)?.args[0] === "sleep" && state.pid;
  }, () => `container ${name} to run (log: ${existsSync(log) ? readFileSync(log, "utf8") : ""})`);
  const box: Box = {
    name,
    init,
    async remove() {
      await minic(["delete", "-f", name]);
      await proc.exited;
      clearTimeout(guard);
    },
  };
  boxes.push(box);
  return box;
}

/** `minic spec` in a fresh bundle dir with DIR/rootfs -> R, then `change` applied to its config.json. */
async function bundle(change: (config: any) => void): Promise<string> {
  const dir = mkdtempSync(join(scratch, "bundle-"));
  ok(await minic(["spec", "--bundle", dir]));
  symlinkSync(R, `${dir}/rootfs`);
  const config = JSON.parse(readFileSync(`${dir}/config.json`, "utf8"));
  change(config);
  writeFileSync(`${dir}/config.json`, JSON.stringify(config, null, 2));
  return dir;
}

/** `minic create --bundle DIR NAME` then `minic start NAME`; create's stdio (the container's) are files. */
async function createAndStart(dir: string): Promise<Box> {
  const name = newName();
  const r = await detached(["create", "--bundle", dir, name]);
  expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: "" });
  const box: Box = {
    name,
    init: readState(name)!.pid,
    async remove() {
      await minic(["delete", "-f", name]);
    },
  };
  boxes.push(box);
  ok(await minic(["start", name]));
  await waitUntil(() => procInfo(box.init)?.args[0] === "sleep", "the bundle's sleep to run");
  return box;
}

/** Start `minic ARGS` with its output in a file (a detached process keeps stdio open: no pipes). */
async function detached(args: string[]): Promise<MinicResult & { ms: number }> {
  const out = join(scratch, `detached-${Math.random().toString(16).slice(2)}`);
  const t0 = Date.now();
  const proc = Bun.spawn([MINIC, ...args], { stdin: "ignore", stdout: Bun.file(`${out}.out`), stderr: Bun.file(`${out}.err`) });
  const timer = setTimeout(() => proc.kill("SIGKILL"), 20_000);
  const code = await proc.exited;
  clearTimeout(timer);
  return { code, stdout: readFileSync(`${out}.out`, "utf8"), stderr: readFileSync(`${out}.err`, "utf8"), ms: Date.now() - t0 };
}

beforeAll(() => {
  R = ensureRootfs();
  scratch = mkdtempSync(join(tmpdir(), "minic-exec-"));
});

afterAll(async () => {
  for (const box of boxes) await box.remove();
  try {
    await waitUntil(() => markedProcesses().length === 0, () => `stray processes: ${JSON.stringify(markedProcesses())}`, 5_000);
  } finally {
    for (const p of markedProcesses()) process.kill(p.pid, "SIGKILL");
    rmSync(scratch, { recursive: true, force: true });
  }
  expect(existsSync(STATE_ROOT) ? readdirSync(STATE_ROOT).filter((n) => n.startsWith(MARK)) : []).toEqual([]);
});

// ---- a container started by `minic run` -----------------------------------------------------------

describe("exec into a container of `minic run`", () => {
  let box: Box;
  beforeAll(async () => {
    box = await runBox(["--hostname", "execbox"]);
  });

  test("`minic state` sees the foreground run, with its init's pid", async () => {
    const state = JSON.parse(ok(await minic(["state", box.name])));
    expect(state).toMatchObject({ id: box.name, status: "running", pid: box.init });
  });

  test("the hostname is the container's, and every namespace is its init's", async () => {
    const script = `hostname; for ns in ${NAMESPACES.join(" ")}; do readlink /proc/self/ns/$ns; done`;
    const [hostname, ...links] = lines(ok(await execIn(box.name, ["sh", "-c", script])));
    expect(hostname).toBe("execbox");
    expect(links).toEqual(nsLinks(box.init));
    expect(links).not.toEqual(nsLinks("self"));
  });

  test("the same PID namespace: exec is not PID 1, and ps shows the container's PID 1", async () => {
    const [pid, ...ps] = lines(ok(await execIn(box.name, ["sh", "-c", "echo $$; ps -o pid,args"])));
    expect(pid).not.toBe("1");
    expect(Number(pid)).toBeGreaterThan(1);
    expect(ps.some((l) => /^\s*1\s+sleep 60$/.test(l))).toBe(true);
    expect(ps.some((l) => new RegExp(`^\\s*${pid}\\s`).test(l))).toBe(true); // itself (sh, or the ps it became)
  });

  test("the same cgroup as the init: seen from inside (its cgroup namespace) and from the host", async () => {
    const out = ok(await execIn(box.name, ["sh", "-c", "cat /proc/self/cgroup; echo --; cat /proc/1/cgroup"]));
    const [self, init] = out.split("--\n");
    expect(self).toBe(init!);
    expect(lines(self!).filter((l) => /:(memory|pids)[,:]/.test(l)).every((l) => l.endsWith(":/"))).toBe(true); // the namespace's root

    // From the host, and through a foreground exec that SIGTERM to minic then ends (forwarded).
    const proc = Bun.spawn([MINIC, "exec", box.name, "sleep", "31"], { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
    const sleeper = await findProcess(["sleep", "31"]);
    expect(cgroups(sleeper.pid)).toBe(cgroups(box.init));
    expect(cgroups(box.init)).toContain(`/minic/${box.name}`);
    expect(sleeper.ppid).toBe(proc.pid); // the second fork's CLONE_PARENT: minic exec waits for it
    proc.kill("SIGTERM");
    expect(await proc.exited).toBe(143);
    expect(await new Response(proc.stderr).text()).toBe("");
  });

  test("the container's security: capabilities, no_new_privs and the seccomp filter", async () => {
    const inside = ok(await execIn(box.name, ["cat", "/proc/self/status"]));
    expect(security(inside)).toBe(security(readFileSync(`/proc/${box.init}/status`, "utf8")));
    expect(inside).toMatch(/^Seccomp:\s+2$/m);
    expect(inside).toMatch(/^NoNewPrivs:\s+1$/m);
    expect(inside).toMatch(/^CapEff:\s+00000000a80425fb$/m); // docker's default set, as the init's
  });

  test("-e adds to the container's environment, -w sets the directory, -u the user", async () => {
    const out = ok(await execIn(box.name, ["sh", "-c", 'echo "$FOO $MARK"; pwd; id -u; id -g; grep CapEff /proc/self/status'], ["-e", "FOO=bar", "-w", "/tmp", "-u", "1000"]));
    expect(out).toBe(`bar ${MARK}\n/tmp\n1000\n1000\nCapEff:\t0000000000000000\n`); // a non-root user holds no capabilities
    expect(ok(await execIn(box.name, ["id"], ["--user", "nobody"]))).toBe("uid=65534(nobody) gid=65534(nogroup)\n");
    expect(ok(await execIn(box.name, ["id"], ["-u", "1000:0"]))).toBe("uid=1000(user) gid=0(root)\n");
    expect(ok(await execIn(box.name, ["pwd"], ["--workdir", "/root"]))).toBe("/root\n");
    expect(ok(await execIn(box.name, ["pwd"]))).toBe("/\n"); // the container's own
  });

  test("exit status: the command's own, 128+N, 126 and 127 with run's messages", async () => {
    expect((await execIn(box.name, ["sh", "-c", "exit 7"])).code).toBe(7);
    expect((await execIn(box.name, ["sh", "-c", "kill -TERM $$"])).code).toBe(143);
    expect(await execIn(box.name, ["no-such-command"])).toEqual({ code: 127, stdout: "", stderr: "minic: no-such-command: command not found\n" });
    const r = await execIn(box.name, ["/etc/passwd"]);
    expect(r.code).toBe(126);
    expect(r.stderr).toContain("/etc/passwd: permission denied");
    expect((await execIn(box.name, ["bash", "-c", "true"])).code).toBe(127); // on the host, not in the container
  });

  test("--process FILE --detach --pid-file (conmon's form): exits at once, the process runs on in the container", async () => {
    const processJson = join(scratch, "process.json");
    const pidFile = join(scratch, "exec.pid");
    writeFileSync(processJson, JSON.stringify({
      terminal: false,
      user: { uid: 1000, gid: 1000 },
      args: ["sleep", "32"],
      env: ["PATH=/bin", `MARK=${MARK}`],
      cwd: "/tmp",
    }));
    const r = await detached(["exec", "--pid-file", pidFile, "--process", processJson, "--detach", box.name]);
    expect({ code: r.code, stderr: r.stderr, stdout: r.stdout }).toEqual({ code: 0, stderr: "", stdout: "" });
    expect(r.ms).toBeLessThan(10_000); // not the 32 s of the sleep
    const pid = Number(readFileSync(pidFile, "utf8"));
    expect(procInfo(pid)?.args).toEqual(["sleep", "32"]);
    expect(nsLinks(pid)).toEqual(nsLinks(box.init));
    expect(cgroups(pid)).toBe(cgroups(box.init));
    expect(readFileSync(`/proc/${pid}/status`, "utf8")).toMatch(/^Uid:\s+1000\s/m);
    const ps = ok(await execIn(box.name, ["ps", "-o", "user,args"]));
    expect(lines(ps).some((l) => /^user\s+sleep 32$/.test(l))).toBe(true);
    expect(JSON.parse(ok(await minic(["ps", "--format", "json", box.name])))).toContain(pid);
    process.kill(pid, "SIGKILL");
  });

  test("-d with a command line", async () => {
    const r = await detached(["exec", "-d", box.name, "sleep", "33"]);
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: "" });
    const sleeper = await findProcess(["sleep", "33"]);
    expect(nsLinks(sleeper.pid)).toEqual(nsLinks(box.init));
    process.kill(sleeper.pid, "SIGKILL");
  });

  test("-t: the command gets a terminal of the container's own devpts", async () => {
    const r = Bun.spawnSync(["script", "-qec", `${MINIC} exec -t ${box.name} sh -c 'tty; exit 3'`, "/dev/null"], { stdout: "pipe", stderr: "pipe" });
    expect(r.stdout.toString()).toMatch(/^\/dev\/pts\/0\r+\n$/); // (\r\r\n: script's pty adds its own \r)
    expect(r.exitCode).toBe(3);
    const noSocket = await execIn(box.name, ["true"], ["-d", "-t"]);
    expect(noSocket.code).toBe(125);
    expect(noSocket.stderr).toContain("needs --console-socket");
  });

  test("usage errors: no command, a command and --process, a bad process.json", async () => {
    const none = await execIn(box.name, []);
    expect(none.code).toBe(125);
    expect(none.stderr).toContain("exec needs a command");
    const bad = join(scratch, "bad-process.json");
    writeFileSync(bad, JSON.stringify({ args: [], cwd: "/", user: { uid: 0, gid: 0 } }));
    const both = await execIn(box.name, ["true"], ["--process", bad]);
    expect(both.code).toBe(125);
    expect(both.stderr).toContain("either --process FILE or a command");
    const invalid = await execIn(box.name, [], ["--process", bad]);
    expect(invalid.code).toBe(125);
    expect(invalid.stderr).toContain(`${bad}: args: must be a non-empty array of strings`);
  });
});

// ---- a container made by `minic create` + `minic start` --------------------------------------------

describe("exec into a created and started container (bundle)", () => {
  let box: Box;
  beforeAll(async () => {
    const dir = await bundle((c) => {
      c.hostname = "bundlebox";
      c.process.terminal = false;
      c.process.args = ["sleep", "60"];
      c.process.env = [...c.process.env, `MARK=${MARK}`];
      c.linux.seccomp = { defaultAction: "SCMP_ACT_ALLOW", syscalls: [{ names: ["reboot"], action: "SCMP_ACT_ERRNO" }] };
    });
    box = await createAndStart(dir);
  });

  test("hostname, namespaces, PID namespace and cgroup are the container's", async () => {
    const script = `hostname; echo $$; ps -o pid,args | grep -c '^ *1 sleep 60$'; for ns in ${NAMESPACES.join(" ")}; do readlink /proc/self/ns/$ns; done`;
    const [hostname, pid, pid1, ...links] = lines(ok(await execIn(box.name, ["sh", "-c", script])));
    expect(hostname).toBe("bundlebox");
    expect(pid).not.toBe("1");
    expect(pid1).toBe("1");
    expect(links).toEqual(nsLinks(box.init));
    const [self, init] = ok(await execIn(box.name, ["sh", "-c", "cat /proc/self/cgroup; echo --; cat /proc/1/cgroup"])).split("--\n");
    expect(self).toBe(init!);
  });

  test("the bundle's security: its capabilities, no_new_privs and seccomp filter", async () => {
    const inside = ok(await execIn(box.name, ["cat", "/proc/self/status"]));
    expect(security(inside)).toBe(security(readFileSync(`/proc/${box.init}/status`, "utf8")));
    expect(inside).toMatch(/^Seccomp:\s+2$/m);
    expect(inside).toMatch(/^NoNewPrivs:\s+1$/m);
  });

  test("once stopped, exec fails with 125 and says so; the state is left as it was", async () => {
    ok(await minic(["kill", box.name, "KILL"]));
    await waitUntil(() => isDead(box.init), "the container's init to die");
    expect(JSON.parse(ok(await minic(["state", box.name]))).status).toBe("stopped");
    const r = await execIn(box.name, ["true"]);
    expect(r).toEqual({ code: 125, stdout: "", stderr: `minic: container "${box.name}" is stopped\n` });
    expect(JSON.parse(ok(await minic(["state", box.name]))).status).toBe("stopped");
  });
});

describe("exec errors", () => {
  test("an unknown container: 125, does not exist", async () => {
    const r = await execIn(`${MARK}-none`, ["true"]);
    expect(r).toEqual({ code: 125, stdout: "", stderr: `minic: container "${MARK}-none" does not exist\n` });
  });

  test("no id at all: a usage error", async () => {
    const r = await minic(["exec"]);
    expect(r.code).toBe(125);
    expect(r.stderr).toContain("exec needs a container id");
  });
});

// ---- a container with a user namespace --------------------------------------------------------------

describe("exec into a container with a user namespace", () => {
  test("joins the user namespace first: root inside, mapped to the unprivileged range", async () => {
    const box = await runBox(["--userns"]);
    const out = ok(await execIn(box.name, ["sh", "-c", "id -u; cat /proc/self/uid_map; readlink /proc/self/ns/user; grep CapEff /proc/self/status"]));
    const [uid, map, userns, capEff] = lines(out);
    expect(uid).toBe("0");
    expect(map!.trim().split(/\s+/)).toEqual(["0", "100000", "65536"]);
    expect(userns).toBe(readlinkSync(`/proc/${box.init}/ns/user`));
    expect(capEff).toBe("CapEff:\t00000000a80425fb");
    const host = readFileSync(`/proc/${box.init}/status`, "utf8").match(/^Uid:\s+(\d+)/m)![1];
    expect(host).toBe("100000");
  });
});

// ---- the plan, as data ---------------------------------------------------------------------------------

describe("the exec plan", () => {
  const proc: Process = {
    args: ["sh"], env: ["PATH=/bin"], cwd: "/tmp", user: { uid: 1000, gid: 1000 }, noNewPrivileges: true,
    capabilities: { bounding: ["CAP_KILL"], effective: [], permitted: [], inheritable: [], ambient: [] },
  };
  const spec: Spec = { ociVersion: "1.2.0", process: proc, linux: { seccomp: { defaultAction: "SCMP_ACT_ALLOW", syscalls: [] } } };
  const joins = JOIN_ORDER.map((type) => ({ type, path: `/proc/42/ns/${NAMESPACE_FILES[type]}` }));

  test("cgroups first, then user, the others, mnt last; the fork after; security as the init's; seccomp last", () => {
    const steps = compileExecPlan(spec, proc, { initPid: 42, joins, joinCgroups: () => {} }).map(describeStep);
    const at = (prefix: string) => steps.findIndex((s) => s.startsWith(prefix));
    expect(steps[0]).toBe("prctl(PR_SET_PDEATHSIG, SIGKILL)");
    expect(steps[1]).toBe("read(go pipe)"); // the agent moves the child into the cgroups
    expect(steps.slice(2, 10)).toEqual([
      'open+setns("/proc/42/ns/user", CLONE_NEWUSER)', 'open+setns("/proc/42/ns/ipc", CLONE_NEWIPC)',
      'open+setns("/proc/42/ns/uts", CLONE_NEWUTS)', 'open+setns("/proc/42/ns/net", CLONE_NEWNET)',
      'open+setns("/proc/42/ns/pid", CLONE_NEWPID)', 'open+setns("/proc/42/ns/cgroup", CLONE_NEWCGROUP)',
      'open+setns("/proc/42/ns/time", CLONE_NEWTIME)', 'open+setns("/proc/42/ns/mnt", CLONE_NEWNS)',
    ]);
    expect(steps[10]).toBe("clone(CLONE_PARENT|SIGCHLD)");
    expect(steps[11]).toBe("prctl(PR_SET_PDEATHSIG, SIGKILL)");
    expect(at("chdir")).toBeGreaterThan(10);
    expect(at("setresuid(1000")).toBeGreaterThan(at("prctl(PR_CAPBSET_DROP"));
    expect(at("prctl(PR_SET_NO_NEW_PRIVS")).toBeGreaterThan(at("setresuid"));
    expect(steps.at(-2)).toStartWith("seccomp(");
    expect(steps.at(-1)).toStartWith('execve("/bin/sh"');
  });

  test("--detach: no parent-death signal; nothing shared: no joins, no fork", () => {
    const detached = compileExecPlan(spec, proc, { initPid: 42, joins, detach: true }).map(describeStep);
    expect(detached.filter((s) => s.includes("PDEATHSIG"))).toEqual([]);
    const alone = compileExecPlan(spec, proc, { initPid: 42, joins: [] }).map(describeStep);
    expect(alone.filter((s) => s.startsWith("open+setns") || s.startsWith("clone") || s.startsWith("read"))).toEqual([]);
  });
});
