// The OCI config.json model: validation messages, `runc spec`-like defaults, and `minic spec`.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { spec as specVerb } from "../src/cli/spec.ts";
import { defaultSpec, writeDefaultSpec } from "../src/spec/defaults.ts";
import { SpecError, validateSpec } from "../src/spec/validate.ts";
import { MINIC, minic } from "./helpers.ts";

let scratch: string;
beforeAll(() => {
  scratch = mkdtempSync(join(tmpdir(), "minic-spec-"));
});
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

let dirs = 0;
const freshDir = () => {
  const dir = join(scratch, `bundle-${++dirs}`);
  mkdirSync(dir);
  return dir;
};

/** The message validateSpec gives for the default spec after `change`, or "valid". */
function problemAfter(change: (s: any) => void, source?: string): string {
  const spec: any = structuredClone(defaultSpec());
  change(spec);
  try {
    validateSpec(spec, source);
    return "valid";
  } catch (error) {
    expect(error).toBeInstanceOf(SpecError);
    return (error as Error).message;
  }
}

describe("validateSpec", () => {
  test.each<[string, (s: any) => void, string]>([
    ["missing args", (s) => delete s.process.args, "config.json: process.args: must be a non-empty array of strings"],
    ["empty args", (s) => (s.process.args = []), "config.json: process.args: must be a non-empty array of strings"],
    ["args not strings", (s) => (s.process.args = ["sh", 1]), "config.json: process.args[1]: must be a string"],
    ["relative cwd", (s) => (s.process.cwd = "tmp"), "config.json: process.cwd: must be an absolute path"],
    ["missing process", (s) => delete s.process, "config.json: process: must be an object"],
    ["old ociVersion", (s) => (s.ociVersion = "0.6.0"), 'config.json: ociVersion: must be a runtime-spec 1.x version such as "1.2.0" (got "0.6.0")'],
    [
      "bad namespace type",
      (s) => (s.linux.namespaces[1].type = "net"),
      'config.json: linux.namespaces[1].type: must be one of pid, network, mount, ipc, uts, user, cgroup, time (got "net")',
    ],
    ["duplicate namespace", (s) => s.linux.namespaces.push({ type: "pid" }), 'config.json: linux.namespaces[6].type: duplicate namespace "pid"'],
    ["relative namespace path", (s) => (s.linux.namespaces[0].path = "ns/pid"), "config.json: linux.namespaces[0].path: must be an absolute path"],
    ["unsupported linux field", (s) => (s.linux.intelRdt = { closID: "x" }), "config.json: linux.intelRdt: not supported by minic"],
    ["unsupported top-level field", (s) => (s.windows = {}), "config.json: windows: not supported by minic"],
    ["unsupported process field", (s) => (s.process.scheduler = { policy: "SCHED_FIFO" }), "config.json: process.scheduler: not supported by minic"],
    [
      "zero-size mapping",
      (s) => {
        s.linux.namespaces.push({ type: "user" });
        s.linux.uidMappings = [{ containerID: 0, hostID: 1000, size: 0 }];
      },
      "config.json: linux.uidMappings[0].size: must be a positive integer",
    ],
    [
      "negative hostID",
      (s) => {
        s.linux.namespaces.push({ type: "user" });
        s.linux.gidMappings = [{ containerID: 0, hostID: -1, size: 1 }];
      },
      "config.json: linux.gidMappings[0].hostID: must be a non-negative integer",
    ],
    [
      "mapping without a user namespace",
      (s) => (s.linux.uidMappings = [{ containerID: 0, hostID: 1000, size: 1 }]),
      'config.json: linux.uidMappings: needs a "user" namespace in linux.namespaces',
    ],
    ["negative uid", (s) => (s.process.user.uid = -1), "config.json: process.user.uid: must be a non-negative integer"],
    ["env without =", (s) => s.process.env.push("FOO"), 'config.json: process.env[2]: must be a "KEY=VALUE" string'],
    ["terminal not boolean", (s) => (s.process.terminal = "yes"), "config.json: process.terminal: must be a boolean"],
    ["oomScoreAdj out of range", (s) => (s.process.oomScoreAdj = 1001), "config.json: process.oomScoreAdj: must be an integer from -1000 to 1000"],
    ["soft above hard", (s) => (s.process.rlimits[0].soft = 2048), "config.json: process.rlimits[0].soft: must not exceed hard (2048 > 1024)"],
    [
      "unknown rlimit",
      (s) => (s.process.rlimits[0].type = "RLIMIT_FILES"),
      'config.json: process.rlimits[0].type: must be an RLIMIT_* name such as RLIMIT_NOFILE (got "RLIMIT_FILES")',
    ],
    [
      "duplicate rlimit",
      (s) => s.process.rlimits.push({ type: "RLIMIT_NOFILE", soft: 1, hard: 1 }),
      'config.json: process.rlimits[1].type: duplicate rlimit "RLIMIT_NOFILE"',
    ],
    [
      "unknown capability",
      (s) => s.process.capabilities.effective.push("CAP_SYS_ADMN"),
      'config.json: process.capabilities.effective[14]: must be a capability name such as CAP_KILL (got "CAP_SYS_ADMN")',
    ],
    ["empty root.path", (s) => (s.root.path = ""), "config.json: root.path: must be a non-empty string"],
    ["long hostname", (s) => (s.hostname = "h".repeat(65)), "config.json: hostname: must be a string of at most 64 bytes"],
    ["relative mount destination", (s) => (s.mounts[0].destination = "proc"), "config.json: mounts[0].destination: must be an absolute path"],
    ["mount options not strings", (s) => (s.mounts[1].options = "ro"), "config.json: mounts[1].options: must be an array of strings"],
    ["relative hook path", (s) => (s.hooks = { prestart: [{ path: "hook.sh" }] }), "config.json: hooks.prestart[0].path: must be an absolute path"],
    ["zero hook timeout", (s) => (s.hooks = { poststop: [{ path: "/bin/true", timeout: 0 }] }), "config.json: hooks.poststop[0].timeout: must be a positive integer"],
    ["unknown hook", (s) => (s.hooks = { preStart: [] }), "config.json: hooks.preStart: not supported by minic"],
    ["annotation not a string", (s) => (s.annotations = { "org.example.n": 1 }), 'config.json: annotations["org.example.n"]: must be a string'],
  ])("%s", (_name, change, message) => {
    expect(problemAfter(change)).toBe(message);
  });

  test("the message names the file it was given", () => {
    expect(problemAfter((s) => delete s.process.cwd, "/b/config.json")).toBe("/b/config.json: process.cwd: must be an absolute path");
  });

  test("a document that is not an object", () => {
    expect(() => validateSpec([])).toThrow(new SpecError("config.json", "", "must be an object"));
    expect(() => validateSpec(null)).toThrow("config.json: must be an object");
  });

  test("SpecError carries the path and the problem apart", () => {
    try {
      validateSpec({ ociVersion: "1.2.0", process: { user: { uid: 0, gid: 0 }, args: ["sh"], cwd: "/" }, linux: { personality: {} } });
      throw new Error("not rejected");
    } catch (error) {
      expect(error).toBeInstanceOf(SpecError);
      expect(error).toBeInstanceOf(Error);
      expect((error as SpecError).path).toBe("linux.personality");
      expect((error as SpecError).problem).toBe("not supported by minic");
    }
  });

  test("fields minic does not act on yet pass through untouched", () => {
    const raw: any = structuredClone(defaultSpec());
    Object.assign(raw.linux, {
      cgroupsPath: "/minic/x",
      seccomp: { defaultAction: "SCMP_ACT_ALLOW" },
      rootfsPropagation: "rslave",
      sysctl: { "net.ipv4.ip_forward": "1" },
      devices: [{ path: "/dev/fuse", type: "c", major: 10, minor: 229 }],
      mountLabel: "system_u:object_r:container_file_t:s0",
    });
    Object.assign(raw.process, { apparmorProfile: "docker-default", selinuxLabel: "system_u:system_r:container_t:s0" });
    const before = structuredClone(raw);
    expect(validateSpec(raw)).toBe(raw);
    expect(raw).toEqual(before);
  });

  test("a minimal spec is valid", () => {
    const minimal = { ociVersion: "1.0.0", process: { user: { uid: 0, gid: 0 }, args: ["true"], cwd: "/" } };
    expect(validateSpec(minimal)).toEqual(minimal);
  });
});

describe("defaultSpec", () => {
  test("is what runc spec writes, and valid", () => {
    const s = defaultSpec();
    expect(validateSpec(structuredClone(s))).toEqual(s);
    expect(s.process).toMatchObject({ terminal: true, user: { uid: 0, gid: 0 }, args: ["sh"], cwd: "/", noNewPrivileges: true });
    expect(s.process!.env).toEqual(["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"]);
    expect(s.process!.rlimits).toEqual([{ type: "RLIMIT_NOFILE", soft: 1024, hard: 1024 }]);
    expect(s.process!.capabilities!.bounding).toContain("CAP_NET_BIND_SERVICE");
    expect(s.process!.capabilities!.effective).toEqual(s.process!.capabilities!.permitted!);
    expect(s.root).toEqual({ path: "rootfs", readonly: true });
    expect(s.hostname).toBe("minic");
    expect(s.mounts!.map((m) => `${m.destination} ${m.type}`)).toEqual([
      "/proc proc",
      "/dev tmpfs",
      "/dev/pts devpts",
      "/dev/shm tmpfs",
      "/dev/mqueue mqueue",
      "/sys sysfs",
      "/sys/fs/cgroup cgroup",
    ]);
    expect(s.mounts![2]!.options).toEqual(["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]);
    expect(s.linux!.namespaces!.map((ns) => ns.type)).toEqual(["pid", "network", "ipc", "uts", "mount", "cgroup"]);
    expect(s.linux!.maskedPaths).toContain("/proc/kcore");
    expect(s.linux!.readonlyPaths).toContain("/proc/sys");
    expect(s.linux!.uidMappings).toBeUndefined();
  });

  test("args replace sh", () => {
    expect(defaultSpec({ args: ["/bin/echo", "hi"] }).process!.args).toEqual(["/bin/echo", "hi"]);
  });

  test("rootless: a user namespace mapping the caller to root, no network namespace, /sys bound", () => {
    const s = defaultSpec({ rootless: true });
    expect(validateSpec(structuredClone(s))).toEqual(s);
    expect(s.linux!.namespaces!.map((ns) => ns.type)).toEqual(["pid", "ipc", "uts", "mount", "cgroup", "user"]);
    expect(s.linux!.uidMappings).toEqual([{ containerID: 0, hostID: process.geteuid!(), size: 1 }]);
    expect(s.linux!.gidMappings).toEqual([{ containerID: 0, hostID: process.getegid!(), size: 1 }]);
    expect(s.mounts!.find((m) => m.destination === "/dev/pts")!.options).toEqual(["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]);
    expect(s.mounts!.find((m) => m.destination === "/sys")).toEqual({
      destination: "/sys",
      type: "none",
      source: "/sys",
      options: ["rbind", "nosuid", "noexec", "nodev", "ro"],
    });
    expect(s.linux!.resources).toBeUndefined();
    // The rest is the same as without --rootless.
    const plain = defaultSpec();
    expect(s.process).toEqual(plain.process!);
    expect(s.mounts!.length).toBe(plain.mounts!.length);
  });
});

describe("writing config.json", () => {
  const readSpec = (dir: string) => validateSpec(JSON.parse(readFileSync(join(dir, "config.json"), "utf8")), join(dir, "config.json"));
  const input = (flags: Record<string, unknown>) => ({ flags, all: {}, rest: [], global: {} });

  test("writeDefaultSpec writes a valid spec and refuses to overwrite", () => {
    const dir = freshDir();
    expect(writeDefaultSpec(dir)).toBe(join(dir, "config.json"));
    expect(readSpec(dir)).toEqual(defaultSpec());
    writeFileSync(join(dir, "config.json"), "{}\n");
    expect(() => writeDefaultSpec(dir)).toThrow(`${join(dir, "config.json")} already exists: remove it first (a spec is never overwritten)`);
    expect(readFileSync(join(dir, "config.json"), "utf8")).toBe("{}\n");
  });

  test("writeDefaultSpec: a missing bundle directory", () => {
    expect(() => writeDefaultSpec(join(scratch, "nowhere"))).toThrow(`bundle directory ${join(scratch, "nowhere")} does not exist`);
  });

  test("the spec verb writes DIR/config.json, rootless on request", async () => {
    const dir = freshDir();
    expect(await specVerb.main(input({ bundle: dir }))).toBe(0);
    expect(readSpec(dir).linux!.namespaces!.some((ns) => ns.type === "user")).toBe(false);
    await expect(specVerb.main(input({ bundle: dir }))).rejects.toThrow("already exists");

    const rootless = freshDir();
    expect(await specVerb.main(input({ bundle: rootless, rootless: true }))).toBe(0);
    expect(readSpec(rootless).linux!.uidMappings).toEqual([{ containerID: 0, hostID: process.geteuid!(), size: 1 }]);
  });

  test("the spec verb takes no arguments", async () => {
    await expect(specVerb.main({ ...input({ bundle: freshDir() }), rest: ["extra"] })).rejects.toThrow('spec takes no arguments, got "extra"');
  });

  // Skipped until src/cli.ts registers the verb.
  const registered = readFileSync(resolve(import.meta.dir, "../src/cli.ts"), "utf8").includes("cli/spec.ts");

  test.skipIf(!registered)("minic spec through the CLI: --bundle, -b, --rootless, the default '.', no overwrite", async () => {
    const dir = freshDir();
    expect(await minic(["spec", "--bundle", dir])).toEqual({ code: 0, stdout: "", stderr: "" });
    expect(readSpec(dir)).toEqual(defaultSpec());

    const again = await minic(["spec", "-b", dir]);
    expect(again.code).toBe(125);
    expect(again.stderr).toBe(`minic: ${join(dir, "config.json")} already exists: remove it first (a spec is never overwritten)\n`);

    const rootless = freshDir();
    expect((await minic(["spec", "--rootless", `--bundle=${rootless}`])).code).toBe(0);
    expect(readSpec(rootless)).toEqual(defaultSpec({ rootless: true }));

    const here = freshDir();
    const proc = Bun.spawn([MINIC, "spec"], { cwd: here, stdout: "ignore", stderr: "pipe" });
    expect(await proc.exited).toBe(0);
    expect(existsSync(join(here, "config.json"))).toBe(true);

    const help = await minic(["spec", "--help"]);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain("--rootless");
  });
});
