// End to end: the real CLI (bin/minic) as a subprocess; stdout, stderr and exit codes.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pkg from "../package.json" with { type: "json" };
import { MINIC, minic } from "./helpers.ts";

// Each test starts minic (a fresh Bun) one or more times; bunfig's [test] timeout is not applied by
// Bun 1.4.5, so the default of 5 s would be the limit on a loaded machine.
setDefaultTimeout(60_000);

let scratch: string;
beforeAll(() => {
  scratch = mkdtempSync(join(tmpdir(), "minic-run-"));
});
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/** minic's own lines on stderr all start with "minic: ". */
const minicLines = (stderr: string) => stderr.split("\n").filter((l) => l.startsWith("minic: "));

describe("the command and its output", () => {
  test("run echo hi prints hi", async () => {
    const r = await minic(["run", "echo", "hi"]);
    expect(r).toEqual({ code: 0, stdout: "hi\n", stderr: "" });
  });

  test("argv reaches the container untouched: sh -c 'echo $0' x prints x", async () => {
    const r = await minic(["run", "sh", "-c", "echo $0 $1 \"$2\"", "x", "--trace", "a  b"]);
    expect(r.stdout).toBe("x --trace a  b\n");
    expect(r.code).toBe(0);
    expect(r.stderr).toBe(""); // the --trace belonged to sh, not to minic
  });

  test("run ls -la / lists the root with ls's long format", async () => {
    const r = await minic(["run", "ls", "-la", "/"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^total \d+/);
    expect(r.stdout).toMatch(/^d[rwx-]{9}.* \.\.?$/m);
    expect(r.stdout).toMatch(/ etc$/m);
  });

  test("stdin passes through: echo hi | minic run cat", async () => {
    const r = await minic(["run", "cat"], { stdin: "hi\nthere\n" });
    expect(r).toEqual({ code: 0, stdout: "hi\nthere\n", stderr: "" });
  });

  test("the environment is passed on", async () => {
    const r = await minic(["run", "sh", "-c", "echo $FOO"], { env: { ...process.env, FOO: "bar" } });
    expect(r.stdout).toBe("bar\n");
    expect(r.code).toBe(0);
  });

  test("PATH from minic's environment is used to find the command", async () => {
    const bin = join(scratch, "pathbin");
    mkdirSync(bin, { recursive: true });
    writeFileSync(join(bin, "only-here"), "#!/bin/sh\necho found-in-path \"$@\"\n", { mode: 0o755 });
    const r = await minic(["run", "only-here", "a"], { env: { ...process.env, PATH: `${bin}:/usr/bin:/bin` } });
    expect(r).toEqual({ code: 0, stdout: "found-in-path a\n", stderr: "" });
  });
});

describe("exit codes", () => {
  test("the command's own exit code comes back", async () => {
    expect((await minic(["run", "sh", "-c", "exit 7"])).code).toBe(7);
    expect((await minic(["run", "false"])).code).toBe(1);
  });

  test("death by signal N gives 128+N", async () => {
    const r = await minic(["run", "sh", "-c", "kill -9 $$"]);
    expect(r.code).toBe(137);
    const term = await minic(["run", "sh", "-c", "kill -TERM $$"]);
    expect(term.code).toBe(143);
  });

  test("a command not found: 127 and 'command not found'", async () => {
    const r = await minic(["run", "nosuchcmd"]);
    expect(r.code).toBe(127);
    expect(r.stderr).toBe("minic: nosuchcmd: command not found\n");
    expect(r.stdout).toBe("");
  });

  test("a path that does not exist: 127 with the errno text", async () => {
    const r = await minic(["run", "/no/such/file"]);
    expect(r.code).toBe(127);
    expect(r.stderr).toBe("minic: /no/such/file: no such file or directory (ENOENT)\n");
    expect(r.stdout).toBe("");
  });

  test("a directory: 126", async () => {
    const r = await minic(["run", "/etc"]);
    expect(r.code).toBe(126);
    expect(minicLines(r.stderr)).toHaveLength(1);
    expect(r.stderr).toStartWith("minic: /etc: ");
    expect(r.stdout).toBe("");
  });

  test("a file that is not executable: 126, 'permission denied'", async () => {
    const file = join(scratch, "not-executable");
    writeFileSync(file, "#!/bin/sh\necho should-not-run\n", { mode: 0o644 });
    const r = await minic(["run", file]);
    expect(r.code).toBe(126);
    expect(r.stderr).toBe(`minic: ${file}: permission denied (EACCES)\n`);
    expect(r.stdout).toBe("");
  });

  test("an unknown flag: 125 and one line that names the flag", async () => {
    for (const args of [["run", "--bogus", "true"], ["--bogus", "run", "true"], ["run", "-x", "true"]]) {
      const r = await minic(args);
      expect(r.code).toBe(125);
      expect(r.stdout).toBe("");
      const lines = r.stderr.trimEnd().split("\n");
      expect(lines).toHaveLength(1);
      expect(lines[0]).toStartWith("minic: ");
      expect(lines[0]).toContain(args.find((a) => a.startsWith("-"))!);
      expect(lines[0]).toContain("--help"); // the usage hint
    }
  });

  test("no command: 125 and a one-line usage hint", async () => {
    for (const args of [["run"], ["run", "--trace"], []]) {
      const r = await minic(args);
      expect(r.code).toBe(125);
      expect(r.stdout).toBe("");
      expect(r.stderr.trimEnd().split("\n")).toHaveLength(1);
      expect(r.stderr).toStartWith("minic: ");
    }
  });
});

describe("what the container inherits", () => {
  test("no ignored signals: SigIgn is all zeros (Bun ignores SIGPIPE)", async () => {
    const r = await minic(["run", "grep", "SigIgn", "/proc/self/status"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^SigIgn:\s+0{16}\n$/);
  });

  test("no blocked signals: SigBlk is all zeros", async () => {
    const r = await minic(["run", "grep", "SigBlk", "/proc/self/status"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^SigBlk:\s+0{16}\n$/);
  });

  test("SIGPIPE kills a writer in the container as it would outside (status 141)", async () => {
    const r = await minic(["run", "sh", "-c", "(yes; echo yes-exit=$? >&2) | head -n 1"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe("y\n");
    expect(r.stderr).toBe("yes-exit=141\n");
  });

  test("only fds 0, 1 and 2 reach the container, even when minic holds more", async () => {
    // Give minic an extra inherited fd (3) on top of Bun's own descriptors.
    const proc = Bun.spawn([MINIC, "run", "ls", "-l", "/proc/self/fd"], {
      stdio: ["ignore", "pipe", "pipe", "pipe"],
    });
    const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
    expect(stderr).toBe("");
    expect(code).toBe(0);
    const fds = stdout
      .split("\n")
      .map((line) => line.match(/ (\d+) -> (.*)$/))
      .filter((m): m is RegExpMatchArray => m !== null)
      .filter((m) => !/^\/proc\/\d+\/fd$/.test(m[2]!)) // ls's own handle on the directory it lists
      .map((m) => Number(m[1]));
    expect(fds).toEqual([0, 1, 2]);
  });
});

describe("--trace and --dry-run", () => {
  test("--trace narrates fork, the child's steps, execve and waitpid on stderr; stdout is the container's", async () => {
    const r = await minic(["run", "--trace", "sh", "-c", "echo out; echo err >&2"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe("out\n");
    const lines = minicLines(r.stderr);
    const at = (re: RegExp) => lines.findIndex((l) => re.test(l));
    // Child lines are tagged with the pid that ran the step: the forked child, or its own child
    // after a second fork (PID namespace). Timings are "(N.NNN ms)".
    const fork = at(/^minic: \[agent\] fork\(\) = \d+ \(\d+\.\d+ ms\)$/);
    const prctl = at(/^minic: \[\d+\] prctl\(PR_SET_PDEATHSIG, SIGKILL\) = 0 \(\d+\.\d+ ms\)$/);
    const closeRange = at(/^minic: \[\d+\] close_range\(3, .*\) = 0 \(\d+\.\d+ ms\)$/);
    const signals = at(/^minic: \[\d+\] sigaction\+sigprocmask\(.*\) = 0 \(\d+\.\d+ ms\)$/);
    const execve = at(/^minic: \[\d+\] execve\(.*"\/[^"]*\/sh".*\["sh", "-c", "echo out; echo err >&2"\]/);
    const waitpid = at(/^minic: \[agent\] waitpid\(\d+\) = exited 0 \(\d+\.\d+ ms\)$/);
    const order = [fork, prctl, closeRange, signals, execve, waitpid];
    expect(order.every((i) => i >= 0)).toBe(true);
    expect(order).toEqual([...order].sort((a, b) => a - b));
    // The pid execve ran in is the one waitpid reports on.
    const execPid = lines[execve]!.match(/^minic: \[(\d+)\]/)![1];
    expect(lines[waitpid]).toContain(`waitpid(${execPid})`);
    expect(r.stderr).toContain("err\n"); // the container's own stderr is still there
  });

  test("--trace reports a failed exec with its errno", async () => {
    const r = await minic(["run", "--trace", "/no/such/file"]);
    expect(r.code).toBe(127);
    expect(r.stderr).toMatch(/execve\("\/no\/such\/file".* = -1 ENOENT/);
  });

  test("--dry-run prints the steps and runs nothing", async () => {
    const marker = join(scratch, "dry-run-marker");
    const r = await minic(["run", "--dry-run", "touch", marker]);
    expect(r.code).toBe(0);
    expect(existsSync(marker)).toBe(false);
    const steps = r.stdout.split("\n").filter((l) => /^\s*\d+\. /.test(l));
    const calls = steps.map((l) => l.trim().match(/^\d+\. ([\w+]+)\(/)?.[1]);
    expect(calls[0]).toBe("prctl");
    expect(calls.slice(-3)).toEqual(["close_range", "sigaction+sigprocmask", "execve"]);
    expect(steps.at(-1)).toContain(`["touch", ${JSON.stringify(marker)}]`);
    expect(steps.at(-1)).toMatch(/"\/[^"]*\/touch"/);
    // The same command without --dry-run does create the file: the check above can fail.
    expect((await minic(["run", "touch", marker])).code).toBe(0);
    expect(existsSync(marker)).toBe(true);
  });
});

describe("the CLI itself", () => {
  test("--version prints the version on stdout", async () => {
    const r = await minic(["--version"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toStartWith(`minic ${pkg.version}`);
    expect(r.stderr).toBe("");
  });

  test("--help describes the commands and global flags", async () => {
    const r = await minic(["--help"]);
    expect(r.code).toBe(0);
    for (const word of ["run", "--version", "--help", "--log-level", "--verbose", "--quiet"]) expect(r.stdout).toContain(word);
    expect(r.stdout).not.toMatch(/\x1b\[/); // no colour codes in a pipe
  });

  test("run --help describes run's flags and the exit codes", async () => {
    const r = await minic(["run", "--help"]);
    expect(r.code).toBe(0);
    for (const word of ["--trace", "--dry-run", "COMMAND", "125", "126", "127"]) expect(r.stdout).toContain(word);
  });

  test("a --help after the command belongs to the container", async () => {
    const r = await minic(["run", "sh", "-c", 'echo "$1"', "x", "--help"]);
    expect(r).toEqual({ code: 0, stdout: "--help\n", stderr: "" });
  });

  test("minic's own messages go to stderr, never stdout", async () => {
    for (const args of [["run", "nosuchcmd"], ["run", "--bogus"], ["run", "--trace", "true"], ["-v", "run", "true"], ["nope"]]) {
      const r = await minic(args);
      expect(r.stdout).toBe("");
      if (r.code !== 0) expect(minicLines(r.stderr).length).toBeGreaterThan(0);
    }
  });

  test("-q and --log-level quiet keep stdout clean and the exit code intact", async () => {
    for (const flag of [["-q"], ["--log-level", "quiet"], ["--log-level=debug"]]) {
      const r = await minic([...flag, "run", "nosuchcmd"]);
      expect(r.code).toBe(127);
      expect(r.stdout).toBe("");
    }
  });
});
