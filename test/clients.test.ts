// Real clients driving minic as their OCI runtime: podman (through conmon) and containerd (through
// its runc shim), from Debian, exactly as they drive runc. These tests need root, the packages from
// test/setup.ts (installed here too when missing) and no network: podman runs with --network none,
// and the image comes from `podman import` of the test rootfs.
//
// Every client call has a generous hang guard (first imports are slow); nothing asserts on wall
// time. A failure shows the command, its exit status and output, and what minic logged (--log).
// Each daemon, store, container and temp dir is removed in afterAll, even when a test fails.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { MINIC } from "./helpers.ts";
import { ensurePackage, ensureRootfs } from "./rootfs.ts";
import { IMAGE, Podman, PODMAN_MINIC_ROOT, RUN_FLAGS } from "./clients/podman.ts";
import { Containerd } from "./clients/containerd.ts";
import { describeCall, runTool, type ToolResult } from "./clients/tool.ts";

const isRoot = process.getuid!() === 0;
const SETUP_MS = 600_000; // apt-get install and the first import
const TEST_MS = 240_000;

/** minic's state directory for a container podman made (podman passes no --root: minic's default). */
const podmanStateDir = (id: string) => `${PODMAN_MINIC_ROOT}/${id}`;
const minicState = (id: string) => runTool([MINIC, "--root", PODMAN_MINIC_ROOT, "state", id]);

function expectOk(r: ToolResult, explain: (r: ToolResult) => string): void {
  if (r.code !== 0 || r.timedOut) throw new Error(`expected success:\n${explain(r)}`);
}

describe.skipIf(!isRoot)("podman with --runtime minic", () => {
  let podman: Podman;
  let importError = "";

  beforeAll(async () => {
    ensurePackage("/usr/bin/podman", "podman");
    ensurePackage("/usr/bin/conmon", "conmon");
    podman = Podman.create();
    const r = await podman.importRootfs(ensureRootfs());
    if (r.code !== 0) importError = `podman import of the test rootfs failed:\n${podman.explain(r)}`;
  }, SETUP_MS);

  afterAll(async () => {
    await podman?.destroy();
  }, SETUP_MS);

  /** Fail at once, readably, when there is no image to run. */
  function needImage(): void {
    if (importError) throw new Error(importError);
  }

  test("podman run --rm IMAGE echo hi prints hi, and leaves no container or runtime state", async () => {
    needImage();
    const cidfile = `${podman.dir}/echo.cid`;
    const r = await podman.run(["run", "--rm", "--cidfile", cidfile, ...RUN_FLAGS, IMAGE, "echo", "hi"]);
    expectOk(r, (r) => podman.explain(r));
    expect(r.stdout, podman.explain(r)).toBe("hi\n");
    const id = readFileSync(cidfile, "utf8").trim();
    expect(await podman.containerIds()).not.toContain(id);
    expect(existsSync(podmanStateDir(id))).toBe(false);
  }, TEST_MS);

  test("podman run reports the container's exit status", async () => {
    needImage();
    const r = await podman.run(["run", "--rm", ...RUN_FLAGS, IMAGE, "sh", "-c", "echo out; echo err >&2; exit 3"]);
    if (r.code !== 3) throw new Error(`expected exit status 3:\n${podman.explain(r)}`);
    expect(r.stdout, podman.explain(r)).toBe("out\n");
    expect(r.stderr).toContain("err\n");
  }, TEST_MS);

  test("a create that fails: podman shows minic's error, and no other, and nothing is left", async () => {
    needImage();
    // A hard limit above fs.nr_open fails setrlimit even with CAP_SYS_RESOURCE; podman leaves it to the runtime.
    const tooMany = Number(readFileSync("/proc/sys/fs/nr_open", "utf8")) + 1;
    const cidfile = `${podman.dir}/fail.cid`;
    const r = await podman.run(["run", "--rm", "--cidfile", cidfile, ...RUN_FLAGS, "--ulimit", `nofile=${tooMany}:${tooMany}`, IMAGE, "true"]);
    const why = podman.explain(r);
    if (r.code === 0 || r.timedOut) throw new Error(`expected a failure:\n${why}`);
    expect(r.stderr, why).toContain("RLIMIT_NOFILE");
    // podman runs `delete --force` after a failed create: as with runc, that is not a second error.
    expect(r.stderr, why).not.toContain("does not exist");
    const id = readFileSync(cidfile, "utf8").trim();
    expect(await podman.containerIds()).not.toContain(id);
    expect(existsSync(podmanStateDir(id))).toBe(false);
  }, TEST_MS);

  test("podman run -i passes stdin through to the container", async () => {
    needImage();
    const r = await podman.run(["run", "--rm", "-i", ...RUN_FLAGS, IMAGE, "sh", "-c", "cat; echo done"], { stdin: "one\ntwo\n" });
    expectOk(r, (r) => podman.explain(r));
    expect(r.stdout, podman.explain(r)).toBe("one\ntwo\ndone\n");
  }, TEST_MS);

  describe("podman run -d IMAGE sleep 60, then exec, stop, rm", () => {
    let ctr = "";
    let runResult: ToolResult | undefined;

    beforeAll(async () => {
      if (importError) return;
      runResult = await podman.run(["run", "-d", "--name", `minic-detached-${process.pid}`, ...RUN_FLAGS, IMAGE, "sleep", "60"]);
      if (runResult.code === 0) ctr = runResult.stdout.trim();
    }, TEST_MS);

    function needContainer(): void {
      needImage();
      if (!ctr) throw new Error(`podman run -d did not start the container:\n${runResult ? podman.explain(runResult) : "(not run)"}`);
    }

    test("run -d starts it: podman and minic state agree it is running, with the same pid", async () => {
      needContainer();
      expect(ctr).toMatch(/^[0-9a-f]{64}$/);
      expect(await podman.inspect(ctr, "{{.State.Status}}")).toBe("running");
      const pid = Number(await podman.inspect(ctr, "{{.State.Pid}}"));
      const state = await minicState(ctr);
      if (state.code !== 0) throw new Error(describeCall(state));
      const json = JSON.parse(state.stdout);
      expect({ status: json.status, pid: json.pid, id: json.id }).toEqual({ status: "running", pid, id: ctr });
      expect(readFileSync(`/proc/${pid}/cmdline`, "utf8")).toBe("sleep\x0060\x00");
    }, TEST_MS);

    test("podman exec CTR echo in (minic exec --process ... --detach)", async () => {
      needContainer();
      const r = await podman.run(["exec", ctr, "echo", "in"]);
      expectOk(r, (r) => podman.explain(r));
      expect(r.stdout, podman.explain(r)).toBe("in\n");
    }, TEST_MS);

    test("podman exec -e -w, and exec -t (exec --console-socket)", async () => {
      needContainer();
      const r = await podman.run(["exec", "-e", "X=from-exec", "-w", "/tmp", ctr, "sh", "-c", "echo $X; pwd"]);
      expectOk(r, (r) => podman.explain(r));
      expect(r.stdout, podman.explain(r)).toBe("from-exec\n/tmp\n");
      const t = await podman.run(["exec", "-t", ctr, "sh", "-c", "tty"]);
      expectOk(t, (r) => podman.explain(r));
      expect(t.stdout.replace(/\r/g, ""), podman.explain(t)).toMatch(/^\/dev\/pts\/\d+\n$/);
    }, TEST_MS);

    test("podman pause and unpause (minic pause/resume, the freezer)", async () => {
      needContainer();
      expectOk(await podman.run(["pause", ctr]), (r) => podman.explain(r));
      expect(await podman.inspect(ctr, "{{.State.Status}}")).toBe("paused");
      const state = JSON.parse((await minicState(ctr)).stdout || "{}");
      expect(state.status).toBe("paused");
      expectOk(await podman.run(["unpause", ctr]), (r) => podman.explain(r));
      expect(await podman.inspect(ctr, "{{.State.Status}}")).toBe("running");
    }, TEST_MS);

    test("podman stop: SIGTERM (ignored by sleep as pid 1), then SIGKILL after --time", async () => {
      needContainer();
      const r = await podman.run(["stop", "--time", "2", ctr]);
      expectOk(r, (r) => podman.explain(r));
      expect(await podman.inspect(ctr, "{{.State.Status}}")).toBe("exited");
      expect(await podman.inspect(ctr, "{{.State.ExitCode}}")).toBe("137");
    }, TEST_MS);

    test("podman rm removes it, and minic's state with it", async () => {
      needContainer();
      const r = await podman.run(["rm", ctr]);
      expectOk(r, (r) => podman.explain(r));
      expect(await podman.containerIds()).not.toContain(ctr);
      expect(existsSync(podmanStateDir(ctr))).toBe(false);
    }, TEST_MS);
  });

  test("podman stop delivers SIGTERM: a container that traps it exits with its own status", async () => {
    needImage();
    const run = await podman.run(["run", "-d", ...RUN_FLAGS, IMAGE, "sh", "-c", "trap 'exit 42' TERM; echo ready; sleep 600 & wait"]);
    expectOk(run, (r) => podman.explain(r));
    const ctr = run.stdout.trim();
    // Wait (hang guard only) until the trap is set: the script has printed "ready".
    for (let i = 0; i < 600; i++) {
      const logs = await podman.run(["logs", ctr], { timeoutMs: 30_000 });
      if (logs.stdout.includes("ready")) break;
      await Bun.sleep(100);
    }
    const stop = await podman.run(["stop", "--time", "60", ctr]);
    expectOk(stop, (r) => podman.explain(r));
    expect(await podman.inspect(ctr, "{{.State.ExitCode}}")).toBe("42");
    expectOk(await podman.run(["rm", ctr]), (r) => podman.explain(r));
  }, TEST_MS);

  test("podman run -t IMAGE sh -c tty prints /dev/pts/0 (create --console-socket)", async () => {
    needImage();
    const r = await podman.run(["run", "--rm", "-t", ...RUN_FLAGS, IMAGE, "sh", "-c", "tty"]);
    expectOk(r, (r) => podman.explain(r));
    expect(r.stdout.replace(/\r/g, ""), podman.explain(r)).toBe("/dev/pts/0\n");
  }, TEST_MS);
});

describe.skipIf(!isRoot)("containerd (ctr run --runc-binary minic)", () => {
  let ctd: Containerd | undefined;
  let startError = "";
  let rootfs = "";

  beforeAll(async () => {
    ensurePackage("/usr/bin/containerd", "containerd");
    ensurePackage("/usr/bin/containerd-shim-runc-v2", "containerd");
    try {
      ctd = await Containerd.start();
      // A copy: `ctr run --rootfs` uses the directory itself, writable, as the container's root.
      rootfs = `${ctd.dir}/rootfs`;
      const cp = await runTool(["cp", "-a", ensureRootfs(), rootfs]);
      if (cp.code !== 0) throw new Error(describeCall(cp));
    } catch (error) {
      startError = `could not start containerd: ${error instanceof Error ? error.message : error}`;
    }
  }, SETUP_MS);

  afterAll(async () => {
    await ctd?.stop();
  }, SETUP_MS);

  function daemon(): Containerd {
    if (!ctd || startError) throw new Error(startError || "containerd did not start");
    return ctd;
  }

  const id = (name: string) => `${name}-${process.pid}`;

  test("ctr run --rm --runc-binary MINIC --rootfs ROOTFS ID echo hi prints hi, and leaves nothing", async () => {
    const c = daemon();
    const ctr = id("minic-hi");
    const r = await c.ctr(["run", "--rm", "--runc-binary", MINIC, "--rootfs", rootfs, ctr, "echo", "hi"]);
    expectOk(r, (r) => c.explain(r));
    expect(r.stdout, c.explain(r)).toBe("hi\n");
    const list = await c.ctr(["containers", "list", "--quiet"]);
    expect(list.stdout.split("\n")).not.toContain(ctr);
    expect(existsSync(`${Containerd.runtimeRoot}/${ctr}`)).toBe(false);
  }, TEST_MS);

  test("ctr run reports the container's exit status", async () => {
    const c = daemon();
    const r = await c.ctr(["run", "--rm", "--runc-binary", MINIC, "--rootfs", rootfs, id("minic-exit"), "sh", "-c", "exit 7"]);
    if (r.code !== 7) throw new Error(`expected exit status 7:\n${c.explain(r)}`);
  }, TEST_MS);

  test("a create that fails: ctr shows minic's error (from log.json), and nothing is left", async () => {
    const c = daemon();
    const ctr = id("minic-fail");
    const r = await c.ctr(["run", "--rm", "--runc-binary", MINIC, "--rootfs", `${c.dir}/no-such-rootfs`, ctr, "true"]);
    const why = c.explain(r);
    if (r.code === 0 || r.timedOut) throw new Error(`expected a failure:\n${why}`);
    expect(r.stderr, why).toContain("no-such-rootfs");
    expect(existsSync(`${Containerd.runtimeRoot}/${ctr}`)).toBe(false);
  }, TEST_MS);

  test("a detached task: ctr task ls/ps (minic state, ps), kill, delete", async () => {
    const c = daemon();
    const ctr = id("minic-task");
    const run = await c.ctr(["run", "--detach", "--runc-binary", MINIC, "--rootfs", rootfs, ctr, "sleep", "600"]);
    expectOk(run, (r) => c.explain(r));
    const ls = await c.ctr(["task", "list"]);
    expectOk(ls, (r) => c.explain(r));
    const row = ls.stdout.split("\n").find((line) => line.startsWith(`${ctr} `));
    expect(row, c.explain(ls)).toMatch(/\s\d+\s+RUNNING\s*$/);
    const pid = Number(row!.trim().split(/\s+/)[1]);
    expect(readFileSync(`/proc/${pid}/cmdline`, "utf8")).toBe("sleep\x00600\x00");
    const ps = await c.ctr(["task", "ps", ctr]);
    expectOk(ps, (r) => c.explain(r));
    expect(ps.stdout, c.explain(ps)).toContain(String(pid));
    expectOk(await c.ctr(["task", "kill", "--signal", "SIGKILL", ctr]), (r) => c.explain(r));
    // Wait (hang guard only) for the shim to see it exit.
    let status = "";
    for (let i = 0; i < 600 && status !== "STOPPED"; i++) {
      const r = await c.ctr(["task", "list"]);
      status = r.stdout.split("\n").find((line) => line.startsWith(`${ctr} `))?.trim().split(/\s+/)[2] ?? "";
      if (status !== "STOPPED") await Bun.sleep(100);
    }
    expect(status).toBe("STOPPED");
    expectOk(await c.ctr(["task", "delete", ctr]), (r) => c.explain(r));
    expectOk(await c.ctr(["containers", "delete", ctr]), (r) => c.explain(r));
    expect(existsSync(`${Containerd.runtimeRoot}/${ctr}`)).toBe(false);
  }, TEST_MS);

  test("ctr task exec into a running task (minic exec --process ... --detach)", async () => {
    const c = daemon();
    const ctr = id("minic-exec");
    expectOk(await c.ctr(["run", "--detach", "--runc-binary", MINIC, "--rootfs", rootfs, ctr, "sleep", "600"]), (r) => c.explain(r));
    try {
      const r = await c.ctr(["task", "exec", "--exec-id", "e1", ctr, "sh", "-c", "echo in; hostname"]);
      expectOk(r, (r) => c.explain(r));
      expect(r.stdout.split("\n")[0], c.explain(r)).toBe("in");
    } finally {
      await c.ctr(["task", "kill", "--signal", "SIGKILL", ctr]);
      for (let i = 0; i < 100; i++) {
        if ((await c.ctr(["task", "delete", ctr])).code === 0) break;
        await Bun.sleep(100);
      }
      await c.ctr(["containers", "delete", ctr]);
    }
  }, TEST_MS);
});
