// Issue 7, end to end: the OCI runtime verbs (create, start, state, kill, delete, pause, resume,
// list, ps), hooks, the global flags, and the docker-like layer (run -d, logs, stop, rm, ps),
// through the real CLI (bin/minic), as root, on the busybox rootfs of test/rootfs.ts.
//
// Every minic here runs with `--root ROOT`, a private state directory, so no other test's
// containers show up in `list` and nothing of ours lands in /run/minic. Container ids, the scratch
// directory (and so every minic command line, through --root) and every container's environment
// carry MARK: after each test, no process with MARK in its command line or environment may
// remain, and no cgroup named MARK-* under /sys/fs/cgroup/*/minic/.
//
// `minic create` hands its own stdout and stderr to the container, which outlives it: so every
// minic here writes to files, never to pipes a test would wait on until the container ends.
import { afterAll, afterEach, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import {
  closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MINIC, isDead, procInfo, waitUntil } from "./helpers.ts";
import { ensureRootfs } from "./rootfs.ts";

setDefaultTimeout(60_000); // bunfig's [test] timeout is not applied by Bun 1.4.5

const MARK = `lc${process.pid}x${Math.random().toString(16).slice(2, 8)}`;
let R: string; // the busybox rootfs
let scratch: string; // bundles, volumes, outputs, hook logs; its path (with MARK) is in every --root
let ROOT: string; // the private state directory
let ids = 0;
/** Containers to remove after the test: OCI ones with `delete -f`, detached runs with `rm -f`. */
const toDelete = new Set<string>();
const toRm = new Set<string>();

beforeAll(() => {
  R = ensureRootfs();
  scratch = mkdtempSync(join(tmpdir(), `minic-${MARK}-`));
  ROOT = join(scratch, "root");
});

afterEach(async () => {
  for (const id of toDelete) await cli(["delete", "--force", id]);
  for (const id of toRm) await cli(["rm", "-f", id]);
  toDelete.clear();
  toRm.clear();
  try {
    await waitUntil(() => markedProcesses().length === 0, () => `stray processes: ${JSON.stringify(markedProcesses())}`, 10_000);
  } catch (error) {
    for (const p of markedProcesses()) process.kill(p.pid, "SIGKILL"); // ours, by the marker
    throw error;
  }
  expect(ourCgroups()).toEqual([]);
});

afterAll(() => {
  for (const p of markedProcesses()) process.kill(p.pid, "SIGKILL");
  rmSync(scratch, { recursive: true, force: true });
});

// ---- helpers --------------------------------------------------------------------------------------

const newId = () => `${MARK}-${++ids}`;

interface Result {
  code: number;
  stdout: string;
  stderr: string;
  /** minic's pid (bin/minic execs bun: the same process throughout). */
  pid: number;
  /** The file minic's stdout went to: for `create`, the container's stdout too. */
  stdoutFile: string;
}

let outputs = 0;
/**
 * `minic --root ROOT ARGS` to its end, stdout and stderr in files (see the top). `root: null`
 * leaves --root out; `global` adds flags before it.
 */
async function cli(args: string[], options: { root?: string | null; global?: string[]; timeoutMs?: number } = {}): Promise<Result> {
  const base = join(scratch, `out-${++outputs}`);
  const [outFile, errFile] = [`${base}.stdout`, `${base}.stderr`];
  const out = openSync(outFile, "w");
  const err = openSync(errFile, "w");
  const root = options.root === undefined ? ROOT : options.root;
  const argv = [MINIC, ...(options.global ?? []), ...(root === null ? [] : ["--root", root]), ...args];
  let proc;
  try {
    proc = Bun.spawn(argv, { stdin: "ignore", stdout: out, stderr: err });
  } finally {
    closeSync(out);
    closeSync(err);
  }
  const timer = setTimeout(() => proc.kill("SIGKILL"), options.timeoutMs ?? 20_000);
  const code = await proc.exited;
  clearTimeout(timer);
  return { code, stdout: readFileSync(outFile, "utf8"), stderr: readFileSync(errFile, "utf8"), pid: proc.pid, stdoutFile: outFile };
}

/** The stdout of a command that must succeed; on failure the diff shows the exit code and stderr. */
function ok(result: Result): string {
  expect({ code: result.code, stderr: result.stderr }).toEqual({ code: 0, stderr: "" });
  return result.stdout;
}

/** A command that must fail: non-zero, with `message` in its error, and nothing on stdout. */
function fails(result: Result, message: string | RegExp): void {
  expect(result.code).not.toBe(0);
  if (typeof message === "string") expect(result.stderr).toContain(message);
  else expect(result.stderr).toMatch(message);
  expect(result.stdout).toBe("");
}

interface State {
  ociVersion: string;
  id: string;
  status: string;
  pid: number;
  bundle: string;
  annotations: Record<string, string>;
}

/** `minic state ID`, parsed; null when it fails. */
async function stateOf(id: string, root: string = ROOT): Promise<State | null> {
  const r = await cli(["state", id], { root });
  return r.code === 0 ? (JSON.parse(r.stdout) as State) : null;
}

/** Like helpers.ts's waitUntil, for a check that runs minic: poll until it gives a truthy value (a hang guard). */
async function poll<T>(check: () => Promise<T | null | undefined | false>, what: (last: unknown) => string, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what(value)}`);
    await Bun.sleep(50);
  }
}

/** Poll `minic state` until the container's status is `status`. */
async function waitForStatus(id: string, status: string): Promise<State> {
  let last: State | null = null;
  return poll(async () => ((last = await stateOf(id))?.status === status ? last : null), () => `${id} to be ${status}: last state ${JSON.stringify(last)}`);
}

interface Bundle {
  dir: string;
  /** Host directory bind-mounted at /tmp inside: how the container and the test talk. */
  vol: string;
}

/**
 * `minic spec` in a fresh bundle dir, DIR/rootfs -> R, no terminal, `args` as the command, MARK in
 * its environment, DIR/vol bound at /tmp; then `change` applied to its config.json.
 */
async function makeBundle(args: string[], change?: (config: any) => void): Promise<Bundle> {
  const dir = mkdtempSync(join(scratch, "bundle-"));
  ok(await cli(["spec", "--bundle", dir], { root: null }));
  symlinkSync(R, `${dir}/rootfs`);
  const vol = `${dir}/vol`;
  mkdirSync(vol);
  const config = JSON.parse(readFileSync(`${dir}/config.json`, "utf8"));
  config.process.terminal = false;
  config.process.args = args;
  config.process.env.push(`MARK=${MARK}`);
  config.annotations = { "org.example.test": "lifecycle" };
  config.mounts.push({ destination: "/tmp", type: "bind", source: vol, options: ["rbind", "rw"] });
  change?.(config);
  writeFileSync(`${dir}/config.json`, JSON.stringify(config, null, 2));
  return { dir, vol };
}

/** `minic create --bundle DIR ID` (plus `extra` flags), remembered for cleanup. */
async function create(bundle: Bundle, id: string, extra: string[] = []): Promise<Result> {
  toDelete.add(id);
  return cli(["create", "--bundle", bundle.dir, ...extra, id]);
}

/** A command that waits for /tmp/exit (host: VOL/exit) before it ends. */
const WAIT_FOR_EXIT = "while [ ! -e /tmp/exit ]; do sleep 0.05; done";

/** The text of a file, or "" if it does not exist (yet). */
const read = (file: string) => (existsSync(file) ? readFileSync(file, "utf8") : "");
const lines = (text: string) => text.split("\n").filter(Boolean);

/** Processes of ours, by MARK in their command line (every minic: --root) or environment (every container). */
function markedProcesses(): Array<{ pid: number; args: string[] }> {
  const found: Array<{ pid: number; args: string[] }> = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      const cmdline = readFileSync(`/proc/${name}/cmdline`, "utf8");
      const environ = readFileSync(`/proc/${name}/environ`, "utf8");
      if (cmdline.includes(MARK) || environ.includes(`MARK=${MARK}`)) found.push({ pid: Number(name), args: cmdline.split("\0") });
    } catch {}
  }
  return found;
}

/** The cgroup directories of container `id` (all of ours without one), under every hierarchy's minic/. */
function ourCgroups(id?: string): string[] {
  const found: string[] = [];
  for (const h of readdirSync("/sys/fs/cgroup")) {
    const base = `/sys/fs/cgroup/${h}/minic`;
    if (!existsSync(base)) continue;
    try {
      for (const name of readdirSync(base)) if (id ? name === id : name.startsWith(`${MARK}-`)) found.push(`${base}/${name}`);
    } catch {}
  }
  return found;
}

/** The ids with a state directory under ROOT (hidden temporary ones included). */
const stateDirs = () => (existsSync(ROOT) ? readdirSync(ROOT).filter((n) => n !== "network").sort() : []);

// ---- create, start, state, delete -----------------------------------------------------------------

describe("create, start, state, delete", () => {
  test("create holds the init before exec; start runs the command; it stops; delete removes everything", async () => {
    const b = await makeBundle(["sh", "-c", `echo ran > /tmp/ran; echo hello-stdout; ${WAIT_FOR_EXIT}`]);
    const id = newId();
    const pidFile = join(scratch, `${id}.pid`);
    const created = await create(b, id, ["--pid-file", pidFile]);
    expect({ code: created.code, stdout: created.stdout, stderr: created.stderr }).toEqual({ code: 0, stdout: "", stderr: "" });

    const state = (await stateOf(id))!;
    expect(state).toMatchObject({ id, status: "created", bundle: b.dir });
    expect(state.ociVersion).toMatch(/^1\.\d+\.\d+/);
    expect(state.annotations).toMatchObject({ "org.example.test": "lifecycle" });
    expect(state.pid).toBeGreaterThan(1);
    expect(readFileSync(pidFile, "utf8").trim()).toBe(String(state.pid));
    // The init exists, in the container's cgroup, blocked before exec: still minic's program, not sh.
    const init = procInfo(state.pid)!;
    expect(init).not.toBeNull();
    expect(init.state).toBe("S");
    expect(init.args).toContain("create");
    expect(readFileSync(`/proc/${state.pid}/cgroup`, "utf8")).toContain(`:/minic/${id}\n`);
    expect(existsSync(`${ROOT}/${id}`)).toBe(true);
    await Bun.sleep(300); // time for a command that was not held to run (it must not)
    expect(existsSync(`${b.vol}/ran`)).toBe(false);
    expect(read(created.stdoutFile)).toBe("");
    expect((await stateOf(id))!.status).toBe("created");

    ok(await cli(["start", id]));
    expect(await stateOf(id)).toEqual({ ...state, status: "running" });
    await waitUntil(() => existsSync(`${b.vol}/ran`), "the command to run");
    expect(procInfo(state.pid)!.args.slice(0, 2)).toEqual(["sh", "-c"]);
    // The container's stdout is the one create was given.
    await waitUntil(() => read(created.stdoutFile) === "hello-stdout\n", () => `create's stdout to get the container's line: ${read(created.stdoutFile)}`);

    writeFileSync(`${b.vol}/exit`, "");
    const stopped = await waitForStatus(id, "stopped");
    expect(stopped).toEqual({ ...state, status: "stopped", pid: 0 });
    await waitUntil(() => isDead(state.pid), "the init to end");

    ok(await cli(["delete", id]));
    toDelete.delete(id);
    fails(await cli(["state", id]), `container "${id}" does not exist`);
    expect(ourCgroups(id)).toEqual([]);
    expect(existsSync(`${ROOT}/${id}`)).toBe(false);
    expect(stateDirs()).toEqual([]);
  });

  test("a created container can be deleted without --force: its held init is killed", async () => {
    const b = await makeBundle(["sh", "-c", "echo ran > /tmp/ran"]);
    const id = newId();
    ok(await create(b, id));
    const { pid } = (await stateOf(id))!;
    ok(await cli(["delete", id]));
    toDelete.delete(id);
    await waitUntil(() => isDead(pid), "the held init to die");
    expect(existsSync(`${b.vol}/ran`)).toBe(false);
    expect(ourCgroups(id)).toEqual([]);
    expect(stateDirs()).toEqual([]);
  });
});

// ---- kill -----------------------------------------------------------------------------------------

describe("kill", () => {
  test("kill takes TERM, SIGTERM and 15; --all reaches every process; a stopped container cannot be killed", async () => {
    // PID 1 traps TERM (so it survives it) and has a child, `sleep 1000`, that does not.
    const script = [
      "trap 'echo TERM >> /tmp/sigs' TERM",
      "sleep 1000 &",
      "echo $! > /tmp/child",
      "while :; do wait; sleep 0.05; done",
    ].join("\n");
    const b = await makeBundle(["sh", "-c", script]);
    const id = newId();
    ok(await create(b, id));
    ok(await cli(["start", id]));
    const { pid } = (await stateOf(id))!;
    await waitUntil(() => read(`${b.vol}/child`), "the container's child to start");
    const pidsBefore = JSON.parse(ok(await cli(["ps", "--format", "json", id]))) as number[];
    const child = pidsBefore.find((p) => procInfo(p)?.args.join(" ") === "sleep 1000")!;
    expect(child).toBeDefined();

    let count = 0;
    for (const signal of ["TERM", "SIGTERM", "15"]) {
      ok(await cli(["kill", id, signal]));
      count++;
      await waitUntil(() => lines(read(`${b.vol}/sigs`)).length === count, () => `trap to record kill ${signal}: ${read(`${b.vol}/sigs`)}`);
    }
    // Only the init got them: the child still runs.
    expect(isDead(child)).toBe(false);
    expect((await stateOf(id))!.status).toBe("running");

    ok(await cli(["kill", "--all", id, "TERM"]));
    await waitUntil(() => isDead(child), "--all to kill the child");
    await waitUntil(() => lines(read(`${b.vol}/sigs`)).length === 4, "the init's trap to record --all's TERM");
    expect((await stateOf(id))!).toMatchObject({ status: "running", pid });

    ok(await cli(["kill", id, "KILL"]));
    await waitForStatus(id, "stopped");
    const before = stateDirs();
    fails(await cli(["kill", id, "TERM"]), `cannot kill container "${id}": it is stopped`);
    expect(stateDirs()).toEqual(before);
  });

  test("an unknown signal is refused clearly", async () => {
    const b = await makeBundle(["sleep", "1000"]);
    const id = newId();
    ok(await create(b, id));
    fails(await cli(["kill", id, "NOPE"]), `unknown signal "NOPE"`);
    fails(await cli(["kill", id, "99"]), "out of range");
    expect((await stateOf(id))!.status).toBe("created");
  });
});

// ---- errors ---------------------------------------------------------------------------------------

describe("errors change nothing", () => {
  test("start on a running container, and start twice, fail; the state stays", async () => {
    const b = await makeBundle(["sh", "-c", `echo x >> /tmp/starts; ${WAIT_FOR_EXIT}`]);
    const id = newId();
    ok(await create(b, id));
    ok(await cli(["start", id]));
    const running = (await stateOf(id))!;
    expect(running.status).toBe("running");
    fails(await cli(["start", id]), `cannot start container "${id}": it is running, not created`);
    fails(await cli(["start", id]), `cannot start container "${id}": it is running, not created`);
    expect(await stateOf(id)).toEqual(running);
    expect(isDead(running.pid)).toBe(false);
    await waitUntil(() => read(`${b.vol}/starts`), "the command to run");
    expect(read(`${b.vol}/starts`)).toBe("x\n"); // it ran once
    // and start on a stopped one
    writeFileSync(`${b.vol}/exit`, "");
    await waitForStatus(id, "stopped");
    fails(await cli(["start", id]), `cannot start container "${id}": it is stopped, not created`);
  });

  test("delete refuses a running container without --force; --force kills it and removes everything", async () => {
    const b = await makeBundle(["sleep", "1000"]);
    const id = newId();
    ok(await create(b, id));
    ok(await cli(["start", id]));
    const running = (await stateOf(id))!;
    fails(await cli(["delete", id]), `cannot delete container "${id}": it is running (stop it first, or use --force)`);
    expect(await stateOf(id)).toEqual(running);
    expect(isDead(running.pid)).toBe(false);
    expect(ourCgroups(id).length).toBeGreaterThan(0);

    ok(await cli(["delete", "--force", id]));
    toDelete.delete(id);
    await waitUntil(() => isDead(running.pid), "delete --force to kill the container");
    fails(await cli(["state", id]), "does not exist");
    expect(ourCgroups(id)).toEqual([]);
    expect(stateDirs()).toEqual([]);
  });

  test("an unknown id: state, start, kill, delete, pause, resume and ps fail with 'does not exist'", async () => {
    const id = newId();
    mkdirSync(ROOT, { recursive: true });
    const before = stateDirs();
    for (const verb of [["state"], ["start"], ["kill"], ["kill", "--all"], ["delete"], ["pause"], ["resume"], ["ps"]]) {
      fails(await cli([...verb, id]), `container "${id}" does not exist`);
    }
    // As runc: `delete --force` of a container that does not exist succeeds (engines clean up with it).
    expect(await cli(["delete", "--force", id])).toMatchObject({ code: 0, stdout: "", stderr: "" });
    expect(stateDirs()).toEqual(before);
    expect(ourCgroups(id)).toEqual([]);
  });

  test("a duplicate id on create fails and leaves the first container as it was", async () => {
    const b = await makeBundle(["sleep", "1000"]);
    const other = await makeBundle(["sleep", "1000"]);
    const id = newId();
    ok(await create(b, id));
    const first = (await stateOf(id))!;
    const pidFile = join(scratch, `${id}.second.pid`);
    const dup = await cli(["create", "--bundle", other.dir, "--pid-file", pidFile, id]);
    fails(dup, id);
    expect(dup.stderr).toContain(`a container named ${id} already exists`);
    expect(await stateOf(id)).toEqual(first);
    expect(procInfo(first.pid)?.state).toBe("S");
    expect(existsSync(pidFile)).toBe(false);
    expect(ourCgroups(id).length).toBeGreaterThan(0);
    // The first is still fine: it starts.
    ok(await cli(["start", id]));
    expect((await stateOf(id))!.status).toBe("running");
  });

  test('an id with "/", "..", or empty, is refused, and nothing is created anywhere', async () => {
    const b = await makeBundle(["true"]);
    mkdirSync(ROOT, { recursive: true });
    const before = readdirSync(scratch).sort();
    for (const bad of ["a/b", "..", "../escape", "", ".", "a b", "-x"]) {
      const r = await cli(["create", "--bundle", b.dir, "--", bad]);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(/invalid container id|needs a container id/);
      fails(await cli(["state", "--", bad]), /invalid container id|needs a container id/);
    }
    expect(stateDirs()).toEqual([]);
    expect(readdirSync(scratch).filter((n) => !n.startsWith("out-")).sort()).toEqual(before.filter((n) => !n.startsWith("out-")));
    expect(existsSync(join(scratch, "escape"))).toBe(false);
  });

  test("create with a missing bundle or an invalid config.json fails clearly, with no state or cgroup", async () => {
    const id = newId();
    toDelete.add(id);
    const missing = join(scratch, "no-such-bundle");
    fails(await cli(["create", "--bundle", missing, id]), `${missing}/config.json does not exist`);

    const b = await makeBundle(["true"]);
    writeFileSync(`${b.dir}/config.json`, "{ not json");
    fails(await cli(["create", "--bundle", b.dir, id]), `${b.dir}/config.json: not valid JSON`);

    const empty = await makeBundle([]);
    fails(await cli(["create", "--bundle", empty.dir, id]), `${empty.dir}/config.json: process.args: must be a non-empty array`);

    const terminal = await makeBundle(["true"], (c) => (c.process.terminal = true));
    fails(await cli(["create", "--bundle", terminal.dir, id]), "--console-socket");

    // As runc: a command missing from the rootfs fails create, not start.
    const notFound = await makeBundle(["no-such-command"]);
    fails(await cli(["create", "--bundle", notFound.dir, id]), "no-such-command: command not found");
    expect(stateDirs()).toEqual([]);
    expect(ourCgroups(id)).toEqual([]);
  });
});

// ---- pause and resume -----------------------------------------------------------------------------

describe("pause and resume", () => {
  test("a paused container stops counting; state says paused; resume continues", async () => {
    const b = await makeBundle(["sh", "-c", "i=0; while :; do i=$((i+1)); echo $i > /tmp/count.new; mv /tmp/count.new /tmp/count; sleep 0.02; done"]);
    const id = newId();
    ok(await create(b, id));
    fails(await cli(["pause", id]), `cannot pause container "${id}": it is created`);
    ok(await cli(["start", id]));
    const count = () => Number(read(`${b.vol}/count`).trim() || 0);
    await waitUntil(() => count() >= 3, "the counter to count");

    ok(await cli(["pause", id]));
    // Frozen, not merely freezing, once pause returns (runc waits for it too).
    const freezerState = `/sys/fs/cgroup/freezer/minic/${id}/freezer.state`; // cgroup v1, as on the CI machines
    if (existsSync(freezerState)) expect(readFileSync(freezerState, "utf8").trim()).toBe("FROZEN");
    expect((await stateOf(id))!.status).toBe("paused");
    const list = JSON.parse(ok(await cli(["list", "--format", "json"]))) as State[];
    expect(list.find((s) => s.id === id)?.status).toBe("paused");
    const frozen = count();
    await Bun.sleep(300);
    expect(count()).toBe(frozen);
    fails(await cli(["pause", id]), `cannot pause container "${id}": it is paused`);
    fails(await cli(["start", id]), "it is paused");

    ok(await cli(["resume", id]));
    expect((await stateOf(id))!.status).toBe("running");
    await waitUntil(() => count() > frozen + 2, "the counter to count again");
    fails(await cli(["resume", id]), `cannot resume container "${id}": it is running`);
  });

  test("delete --force removes a paused container", async () => {
    const b = await makeBundle(["sleep", "1000"]);
    const id = newId();
    ok(await create(b, id));
    ok(await cli(["start", id]));
    const { pid } = (await stateOf(id))!;
    ok(await cli(["pause", id]));
    fails(await cli(["delete", id]), "it is paused");
    ok(await cli(["delete", "--force", id]));
    toDelete.delete(id);
    await waitUntil(() => isDead(pid), "the paused container to die");
    expect(ourCgroups(id)).toEqual([]);
    expect(stateDirs()).toEqual([]);
  });
});

// ---- list and ps ----------------------------------------------------------------------------------

describe("list and ps", () => {
  test("list (table, -q, --format json) shows every container with its status; ps ID its processes", async () => {
    const b = await makeBundle(["sh", "-c", `sleep 1000 & ${WAIT_FOR_EXIT}`]);
    const quick = await makeBundle(["true"]);
    const [createdId, runningId, stoppedId] = [newId(), newId(), newId()];
    ok(await create(b, createdId));
    ok(await create(b, runningId));
    ok(await cli(["start", runningId]));
    ok(await create(quick, stoppedId));
    ok(await cli(["start", stoppedId]));
    await waitForStatus(stoppedId, "stopped");

    expect(lines(ok(await cli(["list", "-q"]))).sort()).toEqual([createdId, runningId, stoppedId].sort());
    const json = JSON.parse(ok(await cli(["list", "--format", "json"]))) as State[];
    const byId = Object.fromEntries(json.map((s) => [s.id, s]));
    expect(Object.keys(byId).sort()).toEqual([createdId, runningId, stoppedId].sort());
    expect(byId[createdId]).toMatchObject({ status: "created", bundle: b.dir, ociVersion: expect.any(String) });
    expect(byId[runningId]).toMatchObject({ status: "running", bundle: b.dir });
    expect(byId[stoppedId]).toMatchObject({ status: "stopped", pid: 0, bundle: quick.dir });
    expect(byId[runningId]!.pid).toBeGreaterThan(1);

    const table = lines(ok(await cli(["list"])));
    expect(table[0]).toMatch(/^ID\s+PID\s+STATUS\s+BUNDLE\s+CREATED$/);
    expect(table.length).toBe(4);
    expect(table.find((l) => l.startsWith(`${runningId} `))).toMatch(new RegExp(`^${runningId}\\s+${byId[runningId]!.pid}\\s+running\\s+${b.dir}\\s`));
    expect(table.find((l) => l.startsWith(`${createdId} `))).toMatch(/\screated\s/);
    expect(table.find((l) => l.startsWith(`${stoppedId} `))).toMatch(/\sstopped\s/);

    // ps ID: the container's processes, as the host sees them.
    const pidOf = byId[runningId]!.pid;
    let ps: string[] = [];
    await poll(async () => (ps = lines(ok(await cli(["ps", runningId])))).some((l) => /\ssleep 1000$/.test(l)), () => `ps to show sleep 1000: ${ps}`);
    expect(ps[0]).toMatch(/^PID\s+CMD$/);
    expect(ps.some((l) => new RegExp(`^${pidOf}\\s+sh -c `).test(l))).toBe(true);
    const pids = JSON.parse(ok(await cli(["ps", "--format", "json", runningId]))) as number[];
    expect(pids).toContain(pidOf);
    for (const p of pids) expect(readFileSync(`/proc/${p}/cgroup`, "utf8")).toContain(`/minic/${runningId}\n`);
    fails(await cli(["ps", stoppedId]), "stopped");
  });
});

// ---- hooks ----------------------------------------------------------------------------------------

const HOOK_NAMES = ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"] as const;

/**
 * A hook on the host: /bin/sh running a script that appends one tab-separated line to LOG: its
 * name, whether the container's command had run (VOL/ran exists), the network namespace of the pid
 * in its state, and the state JSON from its stdin.
 */
function hookScript(dir: string): string {
  const file = join(dir, "hook.sh");
  writeFileSync(file, [
    "# $1 name, $2 log, $3 the file the container's command creates",
    "json=$(cat)",
    `pid=$(printf '%s' "$json" | sed -n 's/.*"pid":\\([0-9]*\\).*/\\1/p')`,
    'ns=$(readlink "/proc/$pid/ns/net" 2>/dev/null)',
    'ran=no; [ -e "$3" ] && ran=yes',
    `printf '%s\\t%s\\t%s\\t%s\\n' "$1" "$ran" "$ns" "$json" >> "$2"`,
    "",
  ].join("\n"));
  return file;
}

interface HookLine {
  name: string;
  ran: string;
  netns: string;
  state: State;
}
function hookLog(file: string): HookLine[] {
  return lines(read(file)).map((line) => {
    const [name, ran, netns, json] = line.split("\t");
    return { name: name!, ran: ran!, netns: netns!, state: JSON.parse(json!) };
  });
}

describe("hooks", () => {
  /** A bundle with one logging hook of each kind (hook.path absolute, args[0] is argv0). */
  async function hookedBundle(args: string[], change?: (config: any) => void) {
    // The script and the log live in the bundle's volume, which the container sees at /tmp: the
    // startContainer hook runs inside the container, and its path resolves there (runtime-spec).
    const b = await makeBundle(args, (c) => {
      c.hooks = Object.fromEntries(HOOK_NAMES.map((name) => {
        const dir = name === "startContainer" ? "/tmp" : "VOL";
        return [name, [{ path: "/bin/sh", args: ["sh", `${dir}/hook.sh`, name, `${dir}/hooks.log`, `${dir}/ran`] }]];
      }));
      change?.(c);
    });
    hookScript(b.vol);
    const config = JSON.parse(readFileSync(`${b.dir}/config.json`, "utf8"));
    for (const name of HOOK_NAMES) for (const h of config.hooks[name] ?? []) h.args = h.args.map((a: string) => a.replace("VOL", b.vol));
    writeFileSync(`${b.dir}/config.json`, JSON.stringify(config, null, 2));
    return { ...b, log: `${b.vol}/hooks.log` };
  }

  test("prestart, createRuntime, createContainer at create; startContainer, poststart at start; poststop at delete; state JSON on stdin", async () => {
    const b = await hookedBundle(["sh", "-c", "echo ran > /tmp/ran"]);
    const id = newId();
    ok(await create(b, id));
    const state = (await stateOf(id))!;
    const atCreate = hookLog(b.log);
    expect(atCreate.map((h) => h.name)).toEqual(["prestart", "createRuntime", "createContainer"]);
    const containerNetns = readlinkSync(`/proc/${state.pid}/ns/net`);
    expect(containerNetns).not.toBe(readlinkSync("/proc/self/ns/net"));
    for (const h of atCreate) {
      expect(h.state).toMatchObject({ ociVersion: state.ociVersion, id, status: "creating", bundle: b.dir });
      expect(h.state.annotations).toMatchObject({ "org.example.test": "lifecycle" });
      expect(h.state.pid).toBeGreaterThan(1);
      // The pid in the state leads to the container's namespaces (the net namespace exists by now).
      expect(h.netns).toBe(containerNetns);
      expect(h.ran).toBe("no");
    }

    ok(await cli(["start", id]));
    await waitUntil(() => existsSync(`${b.vol}/ran`), "the command to run");
    const atStart = hookLog(b.log).slice(3);
    expect(atStart.map((h) => h.name)).toEqual(["startContainer", "poststart"]);
    expect(atStart[0]!.ran).toBe("no"); // before the command
    expect(atStart[0]!.state).toMatchObject({ id, pid: state.pid, bundle: b.dir });
    expect(["created", "running"]).toContain(atStart[0]!.state.status);
    expect(atStart[1]!.state).toMatchObject({ id, pid: state.pid, status: "running", bundle: b.dir });

    await waitForStatus(id, "stopped");
    expect(hookLog(b.log).length).toBe(5);
    ok(await cli(["delete", id]));
    toDelete.delete(id);
    const all = hookLog(b.log);
    expect(all.map((h) => h.name)).toEqual([...HOOK_NAMES]);
    expect(all[5]!.state).toMatchObject({ id, status: "stopped", bundle: b.dir });
    expect(all[5]!.ran).toBe("yes");
  });

  // runtime-spec: state.pid is "the ID of the container process, as seen by the host"; the hooks
  // run at a sync point after the second fork, not with the intermediate process's pid.
  test("create-time hooks get the container's pid (as state shows it)", async () => {
    const b = await hookedBundle(["true"]);
    const id = newId();
    ok(await create(b, id));
    const { pid } = (await stateOf(id))!;
    const atCreate = hookLog(b.log);
    expect(atCreate.length).toBe(3);
    for (const h of atCreate) expect({ hook: h.name, pid: h.state.pid }).toEqual({ hook: h.name, pid });
  });

  test("a failing createRuntime hook fails create, names the hook, and leaves no state, cgroup or process", async () => {
    const b = await hookedBundle(["sh", "-c", "echo ran > /tmp/ran"], (c) => {
      c.hooks.createRuntime = [{ path: "/bin/sh", args: ["sh", "-c", "echo hook-broke >&2; exit 7"] }];
    });
    const id = newId();
    const r = await create(b, id);
    fails(r, "hooks.createRuntime[0] (/bin/sh)");
    expect(r.stderr).toContain("hook-broke");
    expect(r.stderr).toContain("7");
    expect(hookLog(b.log).map((h) => h.name)).toEqual(["prestart"]); // createContainer never ran
    expect(stateDirs()).toEqual([]);
    expect(ourCgroups(id)).toEqual([]);
    await waitUntil(() => markedProcesses().length === 0, () => `the held init to be gone: ${JSON.stringify(markedProcesses())}`);
    expect(existsSync(`${b.vol}/ran`)).toBe(false);
    fails(await cli(["state", id]), "does not exist");
  });

  test("a hook that outlives its timeout fails create", async () => {
    const b = await makeBundle(["true"], (c) => {
      c.hooks = { createRuntime: [{ path: "/bin/sh", args: ["sh", "-c", "sleep 5"], timeout: 1 }] };
    });
    const id = newId();
    const r = await create(b, id);
    fails(r, "hooks.createRuntime[0] (/bin/sh): timed out after 1 s");
    expect(stateDirs()).toEqual([]);
    expect(ourCgroups(id)).toEqual([]);
  });

  test("a failing startContainer hook fails start; the command does not run", async () => {
    const b = await makeBundle(["sh", "-c", "echo ran > /tmp/ran"], (c) => {
      c.hooks = { startContainer: [{ path: "/bin/sh", args: ["sh", "-c", "exit 3"] }] };
    });
    const id = newId();
    ok(await create(b, id));
    fails(await cli(["start", id]), "hooks.startContainer[0] (/bin/sh): exited 3");
    await Bun.sleep(200);
    expect(existsSync(`${b.vol}/ran`)).toBe(false);
  });

  test("a failing poststart hook only warns: start succeeds and the container runs", async () => {
    const b = await makeBundle(["sh", "-c", `echo ran > /tmp/ran; ${WAIT_FOR_EXIT}`], (c) => {
      c.hooks = { poststart: [{ path: "/bin/sh", args: ["sh", "-c", "exit 4"] }] };
    });
    const id = newId();
    ok(await create(b, id));
    const r = await cli(["start", id]);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain("warning: hooks.poststart[0] (/bin/sh): exited 4");
    await waitUntil(() => existsSync(`${b.vol}/ran`), "the command to run");
    expect((await stateOf(id))!.status).toBe("running");
  });

  test("a failing poststop hook only warns: delete succeeds", async () => {
    const b = await makeBundle(["true"], (c) => {
      c.hooks = { poststop: [{ path: "/bin/sh", args: ["sh", "-c", "exit 5"] }] };
    });
    const id = newId();
    ok(await create(b, id));
    const r = await cli(["delete", id]);
    toDelete.delete(id);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain("warning: hooks.poststop[0] (/bin/sh): exited 5");
    expect(stateDirs()).toEqual([]);
  });
});

// ---- global flags ---------------------------------------------------------------------------------

describe("global flags", () => {
  test("--root DIR keeps the state in DIR, and only there", async () => {
    const b = await makeBundle(["sleep", "1000"]);
    const other = join(scratch, "other-root");
    const id = newId();
    toDelete.add(id);
    const r = await cli(["create", "--bundle", b.dir, id], { root: other });
    ok(r);
    try {
      expect(JSON.parse(readFileSync(`${other}/${id}/state.json`, "utf8"))).toMatchObject({ id, status: "created" });
      expect(stateDirs()).toEqual([]); // not in ROOT
      expect(existsSync(`/run/minic/${id}`)).toBe(false);
      fails(await cli(["state", id]), "does not exist");
      fails(await cli(["state", id], { root: null }), "does not exist"); // the default root
      expect((await stateOf(id, other))!.status).toBe("created");
      expect(lines(ok(await cli(["list", "-q"], { root: other })))).toEqual([id]);
      // --debug is accepted with it
      expect(JSON.parse(ok(await cli(["state", id], { root: other, global: ["--debug"] })))).toMatchObject({ id });
    } finally {
      ok(await cli(["delete", "--force", id], { root: other }));
      toDelete.delete(id);
    }
    expect(existsSync(`${other}/${id}`)).toBe(false);
  });

  test("--log FILE --log-format json writes errors as JSON lines; text by default", async () => {
    const id = newId();
    const jsonLog = join(scratch, "log.json");
    fails(await cli(["state", id], { global: ["--log", jsonLog, "--log-format", "json"] }), "does not exist");
    const entries = lines(read(jsonLog)).map((l) => JSON.parse(l));
    expect(entries.length).toBe(1);
    expect(entries[0]).toMatchObject({ level: "error", msg: `container "${id}" does not exist` });
    // runc's lines also carry a time
    expect(Number.isNaN(Date.parse(entries[0].time))).toBe(false);
    // appended, not truncated
    fails(await cli(["kill", id], { global: ["--log", jsonLog, "--log-format", "json"] }), "does not exist");
    expect(lines(read(jsonLog)).length).toBe(2);

    const textLog = join(scratch, "log.txt");
    fails(await cli(["state", id], { global: ["--log", textLog] }), "does not exist");
    expect(read(textLog)).toMatch(new RegExp(`error: container "${id}" does not exist\\n$`));
  });

  test("--systemd-cgroup is refused clearly, and creates nothing", async () => {
    const b = await makeBundle(["true"]);
    const id = newId();
    toDelete.add(id);
    const r = await cli(["create", "--bundle", b.dir, id], { global: ["--systemd-cgroup"] });
    fails(r, "--systemd-cgroup is not available");
    expect(stateDirs()).toEqual([]);
    expect(ourCgroups(id)).toEqual([]);
  });
});

// ---- the docker-like layer ------------------------------------------------------------------------

describe("run -d, logs, ps, stop, rm", () => {
  /** `minic run -d --name ID --network none -e MARK -v VOL:/tmp --rootfs R ...`: the host's network untouched. */
  /** A detached container's entry in `ps -a --format json`, once its monitor recorded the exit code. */
  async function exitRecord(id: string): Promise<any> {
    let entry: any;
    return poll(async () => {
      entry = (JSON.parse(ok(await cli(["ps", "-a", "--format", "json"]))) as any[]).find((c) => c.id === id);
      return entry?.exitCode != null ? entry : null;
    }, () => `the monitor to record the exit code of ${id}: ${JSON.stringify(entry)}`);
  }

  async function runDetached(id: string, command: string[], flags: string[] = []): Promise<Result & { vol: string }> {
    const vol = mkdtempSync(join(scratch, "vol-"));
    toRm.add(id);
    const r = await cli(["run", "-d", "--name", id, "--network", "none", "-e", `MARK=${MARK}`, "-v", `${vol}:/tmp`, ...flags, "--rootfs", R, ...command]);
    return { ...r, vol };
  }

  test("run -d prints the id and returns while the container runs; it outlives that minic; logs, logs -f, ps, ps -a", async () => {
    const id = newId();
    const r = await runDetached(id, ["sh", "-c", `echo hello; ${WAIT_FOR_EXIT}; echo bye; echo oops >&2; exit 3`]);
    expect(ok(r)).toBe(`${id}\n`);
    // The minic that started it is gone; the container runs on.
    expect(procInfo(r.pid)).toBeNull();
    const state = (await stateOf(id))!;
    expect(state.status).toBe("running");
    expect(isDead(state.pid)).toBe(false);
    expect(procInfo(state.pid)!.args).toEqual(["sh", "-c", expect.stringContaining("echo hello")]);
    // Its parent is the monitor: a `minic run` in a session of its own, which reaps it.
    const monitorPid = procInfo(state.pid)!.ppid;
    expect(monitorPid).not.toBe(r.pid);
    expect(procInfo(monitorPid)!.args).toEqual(expect.arrayContaining(["run", `--name=${id}`]));
    const stat = readFileSync(`/proc/${monitorPid}/stat`, "utf8");
    expect(Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[3])).toBe(monitorPid); // its session id: setsid'd

    let logs = "";
    await poll(async () => (logs = ok(await cli(["logs", id]))) === "hello\n", () => `logs to show hello: ${JSON.stringify(logs)}`);

    const table = lines(ok(await cli(["ps"])));
    expect(table[0]).toMatch(/^CONTAINER ID\s+NAME\s+COMMAND\s+STATUS\s+CREATED$/);
    const row = table.find((l) => l.includes(id));
    expect(row).toMatch(/\sUp /);
    expect(row).toContain('"sh -c echo hello;');

    // logs -f follows until the container ends.
    const follow = cli(["logs", "-f", id]);
    await Bun.sleep(200);
    writeFileSync(`${r.vol}/exit`, "");
    const followed = await follow;
    expect(followed.code).toBe(0);
    expect(followed.stdout).toBe("hello\nbye\noops\n");
    expect(await exitRecord(id)).toMatchObject({
      id, name: id, status: "stopped", exitCode: 3, pid: 0, command: ["sh", "-c", expect.stringContaining("echo hello")],
    });
    expect(ourCgroups(id)).toEqual([]); // its monitor removed the cgroup before it recorded the exit
    expect(ok(await cli(["logs", id]))).toBe("hello\nbye\noops\n");
    expect(ok(await cli(["ps"]))).not.toContain(id);
    const all = lines(ok(await cli(["ps", "-a"])));
    expect(all.find((l) => l.includes(id))).toMatch(/\sExited \(3\)\s/);

    ok(await cli(["rm", id]));
    toRm.delete(id);
    fails(await cli(["state", id]), "does not exist");
    fails(await cli(["logs", id]), "does not exist");
    expect(stateDirs()).toEqual([]);
  });

  test("ps --format json lists running containers with name, command, status and pid", async () => {
    const id = newId();
    ok(await runDetached(id, ["sleep", "1000"]));
    const json = JSON.parse(ok(await cli(["ps", "--format", "json"]))) as any[];
    const entry = json.find((c) => c.id === id);
    expect(entry).toMatchObject({ id, name: id, command: ["sleep", "1000"], status: "running", exitCode: null });
    expect(entry.pid).toBe((await stateOf(id))!.pid);
    expect(Number.isNaN(Date.parse(entry.created))).toBe(false);
  });

  test("stop -t 1 stops a PID 1 that ignores SIGTERM: SIGKILL after the grace period", async () => {
    const id = newId();
    ok(await runDetached(id, ["sleep", "1000"]));
    const { pid } = (await stateOf(id))!;
    ok(await cli(["stop", "-t", "1", id]));
    expect(isDead(pid)).toBe(true);
    expect((await stateOf(id))!).toMatchObject({ status: "stopped", pid: 0 });
    expect(await exitRecord(id)).toMatchObject({ status: "stopped", exitCode: 137 });
    // stop on a stopped container is a no-op
    ok(await cli(["stop", "-t", "1", id]));
  });

  test("stop sends SIGTERM first: a container that handles it exits by itself", async () => {
    const id = newId();
    const r = await runDetached(id, ["sh", "-c", "trap 'echo term > /tmp/term; exit 0' TERM; echo up > /tmp/up; while :; do sleep 0.05; done"]);
    ok(r);
    await waitUntil(() => read(`${r.vol}/up`), "the trap to be set");
    ok(await cli(["stop", "-t", "30", id]));
    expect(read(`${r.vol}/term`)).toBe("term\n");
    expect(await exitRecord(id)).toMatchObject({ status: "stopped", exitCode: 0 });
  });

  test("rm refuses a running container; rm -f kills and removes it", async () => {
    const id = newId();
    ok(await runDetached(id, ["sleep", "1000"]));
    const running = (await stateOf(id))!;
    fails(await cli(["rm", id]), `cannot remove container "${id}": it is running`);
    expect(await stateOf(id)).toEqual(running);
    ok(await cli(["rm", "-f", id]));
    toRm.delete(id);
    expect(isDead(running.pid)).toBe(true);
    fails(await cli(["state", id]), "does not exist");
    await waitUntil(() => ourCgroups(id).length === 0, "the monitor to remove the cgroup");
    expect(stateDirs()).toEqual([]);
  });

  test("run -d --rm leaves nothing once the container ends", async () => {
    const id = newId();
    const r = await runDetached(id, ["sh", "-c", WAIT_FOR_EXIT], ["--rm"]);
    expect(ok(r)).toBe(`${id}\n`);
    expect((await stateOf(id))!.status).toBe("running");
    writeFileSync(`${r.vol}/exit`, "");
    await waitUntil(() => !existsSync(`${ROOT}/${id}`), "the monitor to remove the state");
    toRm.delete(id);
    fails(await cli(["state", id]), "does not exist");
    expect(ok(await cli(["ps", "-a"]))).not.toContain(id);
    await waitUntil(() => ourCgroups(id).length === 0, "the monitor to remove the cgroup");
    expect(stateDirs()).toEqual([]);
  });

  test("rm -f and stop work on a paused container (a frozen process acts on no signal until thawed)", async () => {
    const id = newId();
    const r = await runDetached(id, ["sh", "-c", "trap 'echo term > /tmp/term; exit 0' TERM; echo up > /tmp/up; while :; do sleep 0.05; done"]);
    ok(r);
    await waitUntil(() => read(`${r.vol}/up`), "the trap to be set");
    const { pid } = (await stateOf(id))!;
    ok(await cli(["pause", id]));
    ok(await cli(["stop", "-t", "10", id]));
    expect(isDead(pid)).toBe(true);
    expect(read(`${r.vol}/term`)).toBe("term\n"); // the SIGTERM, handled once thawed
    expect(await exitRecord(id)).toMatchObject({ status: "stopped", exitCode: 0 });
    ok(await cli(["rm", id]));
    toRm.delete(id);

    const id2 = newId();
    ok(await runDetached(id2, ["sleep", "1000"]));
    const pid2 = (await stateOf(id2))!.pid;
    ok(await cli(["pause", id2]));
    fails(await cli(["rm", id2]), "it is paused");
    ok(await cli(["rm", "-f", id2]));
    toRm.delete(id2);
    expect(isDead(pid2)).toBe(true);
    fails(await cli(["state", id2]), "does not exist");
    await waitUntil(() => ourCgroups(id2).length === 0, "the monitor to remove the cgroup");
    expect(stateDirs()).toEqual([]);
  });

  test("run -d with a name in use fails, and leaves the running one alone", async () => {
    const id = newId();
    ok(await runDetached(id, ["sleep", "1000"]));
    const first = (await stateOf(id))!;
    const again = await runDetached(id, ["true"]);
    expect(again.code).not.toBe(0);
    expect(again.stderr).toContain(`a container named ${id} already exists`);
    expect(again.stdout).toBe("");
    expect(await stateOf(id)).toEqual(first);
  });
});
