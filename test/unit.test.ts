// Unit tests: no root needed, nothing forks. Argv splitting, C strings, PATH search, wait statuses,
// /proc/self/maps parsing and the compiled step list.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { CString, read, type Pointer } from "bun:ffi";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ArgsDef } from "citty";
import { splitArgv, UsageError } from "../src/cli/argv.ts";
import { run } from "../src/cli/run.ts";
import { CStr, CStrArray, envList } from "../src/libc/cstr.ts";
import { commandCandidates, DEFAULT_PATH } from "../src/process/path.ts";
import { decodeWaitStatus, describeWaitStatus, exitCodeFor, exitCodeForFailure } from "../src/process/status.ts";
import { anonymousRegions } from "../src/process/fork.ts";
import { compilePlan, envValue } from "../src/plan.ts";
import { describeStep } from "../src/process/step.ts";
import { formatPlan } from "../src/container.ts";
import { EACCES, EISDIR, ENOENT, ENOEXEC, ENOTDIR, EPERM } from "../src/libc/errno.ts";
import { OCI_VERSION, type Spec } from "../src/spec/types.ts";

// Flags shaped like minic's: switches, a value flag with a short alias, a repeatable one, an enum.
const defs = {
  trace: { type: "boolean" },
  interactive: { type: "boolean", alias: "i" },
  tty: { type: "boolean", alias: "t" },
  hostname: { type: "string", alias: "H" },
  env: { type: "string", alias: "e" },
  "log-level": { type: "enum", options: ["quiet", "info", "debug"] },
  command: { type: "positional" },
} satisfies ArgsDef;

function usageError(argv: string[], d: ArgsDef = defs): UsageError {
  try {
    splitArgv(argv, d);
  } catch (error) {
    if (error instanceof UsageError) return error;
    throw error;
  }
  throw new Error(`no UsageError for ${JSON.stringify(argv)}`);
}

describe("splitArgv", () => {
  test("everything from the command on is left untouched, flag-looking words included", () => {
    const split = splitArgv(["--trace", "ls", "-la", "--trace", "--hostname", "/"], defs);
    expect(split.rest).toEqual(["ls", "-la", "--trace", "--hostname", "/"]);
    expect(split.values.trace).toBe(true);
    expect(split.values.hostname).toBeUndefined();
  });

  test("sh -c 'echo $0' x keeps -c and the script for sh", () => {
    const split = splitArgv(["sh", "-c", "echo $0", "x"], defs);
    expect(split.rest).toEqual(["sh", "-c", "echo $0", "x"]);
    expect(split.flags).toEqual([]);
  });

  test("run's real flag set: --trace before the command is minic's, after it the container's", () => {
    const args = run.command.args;
    expect(splitArgv(["--trace", "sh", "-c", "true"], args).values.trace).toBe(true);
    const after = splitArgv(["sh", "--trace", "--dry-run"], args);
    expect(after.values.trace).toBeUndefined();
    expect(after.values["dry-run"]).toBeUndefined();
    expect(after.rest).toEqual(["sh", "--trace", "--dry-run"]);
  });

  test("-- ends minic's flags; what follows is the command even if it looks like a flag", () => {
    const split = splitArgv(["--trace", "--", "--help", "-x"], defs);
    expect(split.rest).toEqual(["--help", "-x"]);
    expect(split.values.trace).toBe(true);
    expect(split.values.help).toBeUndefined();
  });

  test("a lone - is a positional", () => {
    expect(splitArgv(["-", "a"], defs).rest).toEqual(["-", "a"]);
  });

  test("combined short flags expand; a value flag ends the group and takes the rest or the next word", () => {
    const a = splitArgv(["-it", "sh"], defs);
    expect(a.values.interactive).toBe(true);
    expect(a.values.tty).toBe(true);
    expect(a.rest).toEqual(["sh"]);

    const b = splitArgv(["-ieFOO=bar", "sh"], defs);
    expect(b.values.interactive).toBe(true);
    expect(b.values.env).toBe("FOO=bar");
    expect(b.rest).toEqual(["sh"]);

    const c = splitArgv(["-tH", "box", "sh"], defs);
    expect(c.values.tty).toBe(true);
    expect(c.values.hostname).toBe("box");
    expect(c.rest).toEqual(["sh"]);
  });

  test("--flag=value and --flag value; repeated flags keep every value in order", () => {
    const split = splitArgv(["--hostname=box", "-e", "A=1", "--env", "B=2", "--env=C=3", "true"], defs);
    expect(split.values.hostname).toBe("box");
    expect(split.all.env).toEqual(["A=1", "B=2", "C=3"]);
    expect(split.values.env).toBe("C=3");
    expect(split.flags).toEqual(["--hostname", "box", "--env", "A=1", "--env", "B=2", "--env", "C=3"]);
    expect(split.rest).toEqual(["true"]);
  });

  test("--no-<switch> turns a switch off", () => {
    expect(splitArgv(["--no-trace", "x"], defs).values.trace).toBe(false);
  });

  test("an unknown flag is a UsageError that names it", () => {
    expect(usageError(["--bogus", "ls"]).message).toContain("--bogus");
    expect(usageError(["-x", "ls"]).message).toContain("-x");
    expect(usageError(["-iz", "ls"]).message).toContain("-z");
  });

  test("a value flag at the end of the line is a UsageError: missing value", () => {
    expect(usageError(["--hostname"]).message).toMatch(/--hostname needs a value/);
    expect(usageError(["-e"]).message).toMatch(/-e needs a value/);
  });

  test("a switch given a value, or an enum given a value outside its options, is a UsageError", () => {
    expect(usageError(["--trace=yes", "ls"]).message).toContain("--trace");
    expect(usageError(["--log-level", "loud", "ls"]).message).toContain("loud");
    expect(splitArgv(["--log-level", "debug"], defs).values["log-level"]).toBe("debug");
  });

  test("without stopAtPositional, flags after positionals are still read", () => {
    const split = splitArgv(["run", "--trace", "x"], defs, { stopAtPositional: false });
    expect(split.rest).toEqual(["run", "x"]);
    expect(split.values.trace).toBe(true);
  });
});

describe("C strings", () => {
  test("CStr is a NUL-terminated UTF-8 copy whose pointer reads back as the string", () => {
    const s = new CStr("héllo wörld");
    const utf8 = new TextEncoder().encode("héllo wörld");
    expect(s.bytes.length).toBe(utf8.length + 1);
    expect(s.bytes[s.bytes.length - 1]).toBe(0);
    expect(s.length).toBe(utf8.length);
    expect(Array.from(s.bytes.subarray(0, utf8.length))).toEqual(Array.from(utf8));
    expect(new CString(s.ptr).toString()).toBe("héllo wörld");
    expect(new CString(new CStr("").ptr).toString()).toBe("");
  });

  test("CStr refuses a string with an embedded NUL", () => {
    expect(() => new CStr("a\0b")).toThrow(TypeError);
  });

  test("CStrArray is a NULL-terminated pointer table; each entry points at its string", () => {
    const values = ["ls", "-la", "/", "", "ünïcode", "echo $0"];
    const arr = new CStrArray(values);
    expect(arr.table.length).toBe(values.length + 1);
    expect(arr.table[values.length]).toBe(0n);
    values.forEach((value, i) => {
      // Read the table through its own pointer, as execve will.
      const entry = read.ptr(arr.ptr, i * 8) as Pointer;
      expect(BigInt(entry)).toBe(arr.table[i]!);
      expect(entry).toBe(arr.strings[i]!.ptr);
      expect(new CString(entry).toString()).toBe(value);
    });
    expect(read.ptr(arr.ptr, values.length * 8)).toBe(0);
  });

  test("an empty CStrArray is just the NULL terminator", () => {
    const arr = new CStrArray([]);
    expect(Array.from(arr.table)).toEqual([0n]);
  });

  test("envList renders KEY=VALUE and drops unset entries", () => {
    expect(envList({ A: "1", B: undefined, C: "", D: "x=y" })).toEqual(["A=1", "C=", "D=x=y"]);
  });
});

describe("PATH resolution (commandCandidates)", () => {
  let root: string;
  beforeAll(() => {
    root = mkdtempSync(join(tmpdir(), "minic-path-"));
    for (const dir of ["a/bin", "b/bin", "c/bin"]) mkdirSync(join(root, dir), { recursive: true });
    writeFileSync(join(root, "a/bin/tool"), "#!/bin/sh\n", { mode: 0o755 });
    writeFileSync(join(root, "b/bin/tool"), "#!/bin/sh\n", { mode: 0o755 });
    symlinkSync("/nonexistent/target", join(root, "c/bin/link")); // dangling: lstat still finds it
  });
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  test("a name with a slash is used as it is", () => {
    expect(commandCandidates("./tool", "/a/bin", root)).toEqual(["./tool"]);
    expect(commandCandidates("/a/bin/tool", "/b/bin", root)).toEqual(["/a/bin/tool"]);
  });

  test("the first PATH entry holding the file goes first; later entries follow, earlier ones are dropped", () => {
    expect(commandCandidates("tool", "/x/bin:/a/bin:/b/bin", root)).toEqual(["/a/bin/tool", "/b/bin/tool"]);
    expect(commandCandidates("tool", "/x/bin:/b/bin:/a/bin", root)).toEqual(["/b/bin/tool", "/a/bin/tool"]);
  });

  test("files are looked up under the root, not on the host", () => {
    // /bin/sh exists on the host but not under root: nothing is found, every candidate is kept.
    expect(commandCandidates("sh", "/usr/bin:/bin", root)).toEqual(["/usr/bin/sh", "/bin/sh"]);
    expect(commandCandidates("tool", "/x/bin:/a/bin", `${root}/`)).toEqual(["/a/bin/tool"]);
  });

  test("not found anywhere: every PATH entry, in order", () => {
    expect(commandCandidates("nosuchcmd", "/x:/a/bin:/y", root)).toEqual(["/x/nosuchcmd", "/a/bin/nosuchcmd", "/y/nosuchcmd"]);
  });

  test("an empty PATH entry means the current directory; trailing slashes are trimmed", () => {
    expect(commandCandidates("nosuchcmd", ":/a/bin/", root)).toEqual(["./nosuchcmd", "/a/bin/nosuchcmd"]);
    expect(commandCandidates("tool", "/x:/a/bin//", root)).toEqual(["/a/bin/tool"]);
  });

  test("a symlink is found by lstat, not followed", () => {
    expect(commandCandidates("link", "/a/bin:/c/bin", root)).toEqual(["/c/bin/link"]);
  });

  test("the default PATH is the usual one", () => {
    expect(commandCandidates("nosuchcmd-xyz", undefined, root)).toEqual(DEFAULT_PATH.split(":").map((d) => `${d}/nosuchcmd-xyz`));
  });
});

describe("wait statuses and exit codes", () => {
  test("decodeWaitStatus reads the <sys/wait.h> encoding", () => {
    expect(decodeWaitStatus(0x0000)).toEqual({ kind: "exited", code: 0 });
    expect(decodeWaitStatus(0x0100)).toEqual({ kind: "exited", code: 1 });
    expect(decodeWaitStatus(0x7f00)).toEqual({ kind: "exited", code: 127 });
    expect(decodeWaitStatus(0xff00)).toEqual({ kind: "exited", code: 255 });
    expect(decodeWaitStatus(0x000f)).toEqual({ kind: "signaled", signal: 15, coreDumped: false });
    expect(decodeWaitStatus(0x0089)).toEqual({ kind: "signaled", signal: 9, coreDumped: true });
    expect(decodeWaitStatus(0x008b)).toEqual({ kind: "signaled", signal: 11, coreDumped: true });
    expect(decodeWaitStatus(0x137f)).toEqual({ kind: "stopped", signal: 19 });
  });

  test("exit codes: the command's own, or 128+N for signal N", () => {
    expect(exitCodeFor(decodeWaitStatus(0x0700))).toBe(7);
    expect(exitCodeFor(decodeWaitStatus(0x0000))).toBe(0);
    expect(exitCodeFor(decodeWaitStatus(0x0009))).toBe(137);
    expect(exitCodeFor(decodeWaitStatus(0x000f))).toBe(143);
    expect(exitCodeFor(decodeWaitStatus(0x0002))).toBe(130);
    expect(exitCodeFor(decodeWaitStatus(0x0089))).toBe(137);
  });

  test("describeWaitStatus speaks in signal names", () => {
    expect(describeWaitStatus(decodeWaitStatus(0x0000))).toBe("exited 0");
    expect(describeWaitStatus(decodeWaitStatus(0x000f))).toBe("killed by SIGTERM");
    expect(describeWaitStatus(decodeWaitStatus(0x0089))).toBe("killed by SIGKILL (core dumped)");
    expect(describeWaitStatus(decodeWaitStatus(0x137f))).toBe("stopped by SIGSTOP");
  });

  test("a failed step: exec not found 127, exec not runnable 126, anything else 125", () => {
    expect(exitCodeForFailure("exec", ENOENT)).toBe(127);
    expect(exitCodeForFailure("exec", ENOTDIR)).toBe(127);
    expect(exitCodeForFailure("exec", EACCES)).toBe(126);
    expect(exitCodeForFailure("exec", ENOEXEC)).toBe(126);
    expect(exitCodeForFailure("exec", EISDIR)).toBe(126);
    expect(exitCodeForFailure("call", ENOENT)).toBe(125);
    expect(exitCodeForFailure("call", EPERM)).toBe(125);
    expect(exitCodeForFailure("sync", EACCES)).toBe(125);
  });
});

describe("anonymousRegions (/proc/self/maps)", () => {
  const maps = [
    "55d0c0a00000-55d0c0a21000 r--p 00000000 08:01 1234                       /usr/bin/bun",
    "7f0000000000-7f0040000000 ---p 00000000 00:00 0 ",
    "7f1000000000-7f1000001000 rw-p 00000000 00:00 0                          [heap]",
    "7f2000000000-7f2000100000 rwxp 00000000 00:00 0",
    "7f3000000000-7f3000001000 rw-s 00000000 00:05 42                         /dev/zero (deleted)",
    "7ffd10000000-7ffd10002000 r-xp 00000000 00:00 0                          [vdso]",
    "",
  ].join("\n");

  test("returns only mappings with no path or [tag], as [start, end) bigints", () => {
    expect(anonymousRegions(maps)).toEqual([
      [0x7f0000000000n, 0x7f0040000000n],
      [0x7f2000000000n, 0x7f2000100000n],
    ]);
  });

  test("on this process's real maps every region is well formed and anonymous", async () => {
    const text = await Bun.file("/proc/self/maps").text();
    const regions = anonymousRegions(text);
    expect(regions.length).toBeGreaterThan(0);
    for (const [start, end] of regions) {
      expect(start < end).toBe(true);
      expect(start % 4096n).toBe(0n);
      const line = text.split("\n").find((l) => l.startsWith(`${start.toString(16).padStart(8, "0")}-`));
      expect(line?.trim().split(/\s+/)).toHaveLength(5);
    }
  });
});

describe("the compiled step list (compilePlan)", () => {
  let root: string;
  beforeAll(() => {
    root = mkdtempSync(join(tmpdir(), "minic-plan-"));
    mkdirSync(join(root, "bin"));
    writeFileSync(join(root, "bin/tool"), "#!/bin/sh\n", { mode: 0o755 });
  });
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  const spec = (args: string[], env: string[], rootPath?: string): Spec => ({
    ociVersion: OCI_VERSION,
    process: { user: { uid: 0, gid: 0 }, args, env, cwd: "/" },
    ...(rootPath ? { root: { path: rootPath } } : {}),
  });

  test("prctl first, then close_range, then the signal reset, and execve last", () => {
    const steps = compilePlan(spec(["true"], ["PATH=/usr/bin:/bin"]));
    const calls = steps.map((s) => s.call);
    // Later issues add steps in between (namespaces, mounts, identity, seccomp); this order must hold.
    expect(calls[0]).toBe("prctl");
    expect(steps[0]!.args).toEqual(["PR_SET_PDEATHSIG", "SIGKILL"]);
    expect(calls.at(-1)).toBe("execve");
    expect(steps.filter((s) => s.kind === "exec")).toEqual([steps.at(-1)!]);
    const closeRange = calls.indexOf("close_range");
    const signals = calls.indexOf("sigaction+sigprocmask");
    expect(closeRange).toBeGreaterThan(0);
    expect(signals).toBeGreaterThan(closeRange);
    expect(signals).toBeLessThan(calls.length - 1);
    expect(steps[closeRange]!.args[0]).toBe("3"); // stdin, stdout and stderr stay; the rest get CLOEXEC
    expect(steps[closeRange]!.args).toContain("CLOSE_RANGE_CLOEXEC");
  });

  test("execve shows the resolved path, the untouched argv and the size of the environment", () => {
    const steps = compilePlan(spec(["tool", "-c", "echo $0", "x"], ["PATH=/nope:/bin", "FOO=bar"], root));
    const exec = steps.at(-1)!;
    expect(exec.args).toEqual(['"/bin/tool"', '["tool", "-c", "echo $0", "x"]', "[2 vars]"]);
    expect(describeStep(exec)).toBe('execve("/bin/tool", ["tool", "-c", "echo $0", "x"], [2 vars])');
  });

  test("the buffers execve will use are kept by the step and hold the right strings", () => {
    const exec = compilePlan(spec(["tool", "a b"], ["PATH=/bin", "FOO=bar"], root)).at(-1)!;
    const kept = exec.keep as [CStr[], CStrArray, CStrArray];
    expect(kept[0].map((p) => new CString(p.ptr).toString())).toEqual(["/bin/tool"]);
    expect(kept[1].strings.map((s) => new CString(s.ptr).toString())).toEqual(["tool", "a b"]);
    expect(kept[2].strings.map((s) => new CString(s.ptr).toString())).toEqual(["PATH=/bin", "FOO=bar"]);
  });

  test("a path with a slash is exec'd as given; a bare name uses the spec's PATH (or the default)", () => {
    expect(compilePlan(spec(["/etc"], [])).at(-1)!.args[0]).toBe('"/etc"');
    const noPath = compilePlan(spec(["nosuchcmd"], [], root)).at(-1)!.args[0];
    expect(noPath).toContain(`"/usr/local/sbin/nosuchcmd"`);
    expect(noPath).toContain("(PATH search)");
  });

  test("a spec without a command is refused", () => {
    expect(() => compilePlan(spec([], []))).toThrow(/process.args/);
  });

  test("formatPlan numbers every step in order, prctl first and execve last", () => {
    const steps = compilePlan(spec(["tool"], ["PATH=/bin"], root));
    const numbered = formatPlan(spec(["tool"], ["PATH=/bin"], root)).split("\n").filter((l) => /^\s*\d+\. /.test(l));
    expect(numbered).toHaveLength(steps.length);
    numbered.forEach((line, i) => expect(line).toStartWith(`${String(i + 1).padStart(2)}. ${describeStep(steps[i]!)}`));
    expect(numbered[0]).toMatch(/^ 1\. prctl\(PR_SET_PDEATHSIG, SIGKILL\)/);
    expect(numbered.at(-1)).toMatch(/\d+\. execve\("\/bin\/tool", \["tool"\], \[1 vars\]\)\s+\[exec\]$/);
  });

  test("envValue finds a variable as getenv would", () => {
    expect(envValue(["PATHX=1", "PATH=/a:/b", "PATH=/c"], "PATH")).toBe("/a:/b");
    expect(envValue(["A=1"], "PATH")).toBeUndefined();
  });
});
