// End to end: the real CLI (bin/minic) as a subprocess; stdout, stderr and exit codes.
//
// The container's behaviour is checked twice: with `minic run`'s defaults (namespaces), and with
// --no-namespaces, the seed's Part 0 (fork, exec, wait and nothing else). Both must keep every
// promise of the core: argv untouched, exit codes, stdio, environment, signals reset, no fds leaked.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pkg from "../package.json" with { type: "json" };
import { MINIC, minic, type MinicOptions } from "./helpers.ts";

// Each test starts minic (a fresh Bun) one or more times. bunfig's [test] timeout is not applied
// by Bun 1.4.5, and its default of 5 s is too tight on a loaded machine.
setDefaultTimeout(60_000);

let scratch: string;
beforeAll(() => {
  scratch = mkdtempSync(join(tmpdir(), "minic-run-"));
});
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/** minic's own lines on stderr all start with "minic: ". */
const minicLines = (stderr: string) => stderr.split("\n").filter((l) => l.startsWith("minic: "));

const MODES: Array<[string, string[]]> = [
  ["default", []],
  ["--no-namespaces", ["--no-namespaces"]],
];

for (const [mode, modeFlags] of MODES) {
  /** `minic run [mode flags] ...args` */
  const run = (args: string[], options?: MinicOptions) => minic(["run", ...modeFlags, ...args], options);

  describe(`run (${mode}): the command and its output`, () => {
    test("run echo hi prints hi", async () => {
      expect(await run(["echo", "hi"])).toEqual({ code: 0, stdout: "hi\n", stderr: "" });
    });

    test("argv reaches the container untouched: sh -c 'echo $0' x prints x", async () => {
      const r = await run(["sh", "-c", 'echo $0 $1 "$2"', "x", "--trace", "a  b"]);
      // The --trace belonged to sh, not to minic: nothing on stderr.
      expect(r).toEqual({ code: 0, stdout: "x --trace a  b\n", stderr: "" });
    });

    test("run ls -la / lists the root in ls's long format", async () => {
      const r = await run(["ls", "-la", "/"]);
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/^total \d+/);
      expect(r.stdout).toMatch(/^d[rwx-]{9}.* \.\.?$/m);
      expect(r.stdout).toMatch(/ etc$/m);
    });

    test("a --help after the command belongs to the container", async () => {
      expect(await run(["sh", "-c", 'echo "$1"', "x", "--help"])).toEqual({ code: 0, stdout: "--help\n", stderr: "" });
    });

    test("stdin passes through: echo hi | minic run cat", async () => {
      expect(await run(["cat"], { stdin: "hi\nthere\n" })).toEqual({ code: 0, stdout: "hi\nthere\n", stderr: "" });
    });

    test("the environment is passed on", async () => {
      const r = await run(["sh", "-c", "echo $FOO"], { env: { ...process.env, FOO: "bar" } });
      expect(r).toEqual({ code: 0, stdout: "bar\n", stderr: "" });
    });

    test("a bare name is looked up in minic's PATH", async () => {
      const bin = join(scratch, `pathbin-${mode}`);
      mkdirSync(bin, { recursive: true });
      writeFileSync(join(bin, "only-here"), '#!/bin/sh\necho found-in-path "$@"\n', { mode: 0o755 });
      const r = await run(["only-here", "a"], { env: { ...process.env, PATH: `${bin}:/usr/bin:/bin` } });
      expect(r).toEqual({ code: 0, stdout: "found-in-path a\n", stderr: "" });
    });
  });

  describe(`run (${mode}): exit codes`, () => {
    test("the command's own exit code comes back", async () => {
      expect((await run(["sh", "-c", "exit 7"])).code).toBe(7);
      expect((await run(["false"])).code).toBe(1);
    });

    test("a command not found: 127 and 'command not found'", async () => {
      expect(await run(["nosuchcmd"])).toEqual({ code: 127, stdout: "", stderr: "minic: nosuchcmd: command not found\n" });
    });

    test("a path that does not exist: 127 with the errno text", async () => {
      expect(await run(["/no/such/file"])).toEqual({
        code: 127,
        stdout: "",
        stderr: "minic: /no/such/file: no such file or directory (ENOENT)\n",
      });
    });

    test("a directory: 126", async () => {
      const r = await run(["/etc"]);
      expect(r.code).toBe(126);
      expect(r.stdout).toBe("");
      expect(minicLines(r.stderr)).toHaveLength(1);
      expect(r.stderr).toStartWith("minic: /etc: ");
    });

    test("a file that is not executable: 126, 'permission denied'", async () => {
      const file = join(scratch, "not-executable");
      writeFileSync(file, "#!/bin/sh\necho should-not-run\n", { mode: 0o644 });
      expect(await run([file])).toEqual({ code: 126, stdout: "", stderr: `minic: ${file}: permission denied (EACCES)\n` });
    });

    test("an unknown flag: 125 and one line that names the flag and hints at --help", async () => {
      for (const flag of ["--bogus", "-x"]) {
        const r = await run([flag, "true"]);
        expect(r.code).toBe(125);
        expect(r.stdout).toBe("");
        const lines = r.stderr.trimEnd().split("\n");
        expect(lines).toHaveLength(1);
        expect(lines[0]).toStartWith("minic: ");
        expect(lines[0]).toContain(flag);
        expect(lines[0]).toContain("--help");
      }
    });

    test("no command: 125 and a one-line usage hint", async () => {
      for (const args of [[], ["--trace"]]) {
        const r = await run(args);
        expect(r.code).toBe(125);
        expect(r.stdout).toBe("");
        expect(r.stderr.trimEnd().split("\n")).toHaveLength(1);
        expect(r.stderr).toStartWith("minic: ");
      }
    });
  });

  describe(`run (${mode}): what the container inherits`, () => {
    test("no ignored signals: SigIgn is all zeros (Bun ignores SIGPIPE)", async () => {
      const r = await run(["grep", "SigIgn", "/proc/self/status"]);
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/^SigIgn:\s+0{16}\n$/);
    });

    test("no blocked signals: SigBlk is all zeros", async () => {
      const r = await run(["grep", "SigBlk", "/proc/self/status"]);
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/^SigBlk:\s+0{16}\n$/);
    });

    test("SIGPIPE kills a writer in the container as it would outside (status 141)", async () => {
      expect(await run(["sh", "-c", "(yes; echo yes-exit=$? >&2) | head -n 1"])).toEqual({
        code: 0,
        stdout: "y\n",
        stderr: "yes-exit=141\n",
      });
    });

    test("only fds 0, 1 and 2 reach the container, even when minic holds more", async () => {
      // minic gets an extra inherited fd (3), on top of Bun's own descriptors.
      const proc = Bun.spawn([MINIC, "run", ...modeFlags, "ls", "-l", "/proc/self/fd"], { stdio: ["ignore", "pipe", "pipe", "pipe"] });
      const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
      expect({ code, stderr }).toEqual({ code: 0, stderr: "" });
      const fds = stdout
        .split("\n")
        .map((line) => line.match(/ (\d+) -> (.*)$/))
        .filter((m): m is RegExpMatchArray => m !== null)
        .filter((m) => !/^\/proc\/\d+\/fd$/.test(m[2]!)) // ls's own handle on the directory it lists
        .map((m) => Number(m[1]));
      expect(fds).toEqual([0, 1, 2]);
    });
  });

  describe(`run (${mode}): --trace and --dry-run`, () => {
    test("--trace narrates fork, the child's steps, execve and waitpid on stderr; stdout is the container's", async () => {
      const r = await run(["--trace", "sh", "-c", "echo out; echo err >&2"]);
      expect(r.code).toBe(0);
      expect(r.stdout).toBe("out\n");
      const lines = minicLines(r.stderr);
      const at = (re: RegExp) => lines.findIndex((l) => re.test(l));
      // Child lines are tagged with the pid that ran the step (the forked child, or its own child
      // after a second fork into a PID namespace); every call shows its result and time.
      const fork = at(/^minic: \[agent\] fork\(\) = \d+ \(\d+\.\d+ ms\)$/);
      const prctl = at(/^minic: \[\d+\] prctl\(PR_SET_PDEATHSIG, SIGKILL\) = 0 \(\d+\.\d+ ms\)$/);
      const closeRange = at(/^minic: \[\d+\] close_range\(3, .*\) = 0 \(\d+\.\d+ ms\)$/);
      const signals = at(/^minic: \[\d+\] sigaction\+sigprocmask\(.*\) = 0 \(\d+\.\d+ ms\)$/);
      const execve = at(/^minic: \[\d+\] execve\(.*"\/[^"]*\/sh".*\["sh", "-c", "echo out; echo err >&2"\]/);
      const waitpid = at(/^minic: \[agent\] waitpid\(\d+\) = exited 0 \(\d+\.\d+ ms\)$/);
      const order = [fork, prctl, closeRange, signals, execve, waitpid];
      expect(order.every((i) => i >= 0)).toBe(true);
      expect(order).toEqual([...order].sort((a, b) => a - b));
      // The process that called execve is the one waitpid reports on.
      const execPid = lines[execve]!.match(/^minic: \[(\d+)\]/)![1];
      expect(lines[waitpid]).toContain(`waitpid(${execPid})`);
      expect(r.stderr).toContain("err\n"); // the container's own stderr is still there
    });

    test("--trace reports a failed exec with its errno", async () => {
      const r = await run(["--trace", "/no/such/file"]);
      expect(r.code).toBe(127);
      expect(r.stdout).toBe("");
      expect(r.stderr).toMatch(/execve\("\/no\/such\/file".* = -1 ENOENT/);
    });

    test("--dry-run prints the steps and runs nothing", async () => {
      const marker = join(scratch, `dry-run-marker-${mode}`);
      const r = await run(["--dry-run", "touch", marker]);
      expect(r.code).toBe(0);
      expect(existsSync(marker)).toBe(false);
      const steps = r.stdout.split("\n").filter((l) => /^\s*\d+\. /.test(l));
      const calls = steps.map((l) => l.trim().match(/^\d+\. ([\w+]+)\(/)?.[1]);
      expect(calls[0]).toBe("prctl");
      expect(calls.at(-1)).toBe("execve");
      expect(calls.indexOf("close_range")).toBeGreaterThan(0);
      expect(calls.indexOf("sigaction+sigprocmask")).toBeGreaterThan(calls.indexOf("close_range"));
      expect(steps.at(-1)).toContain(`["touch", ${JSON.stringify(marker)}]`);
      expect(steps.at(-1)).toMatch(/"\/[^"]*\/touch"/);
      // The same command without --dry-run does create the file: the check above can fail.
      expect((await run(["touch", marker])).code).toBe(0);
      expect(existsSync(marker)).toBe(true);
    });
  });
}

describe("death by signal", () => {
  // Part 0 only: in a PID namespace the command is PID 1, and the kernel drops signals that PID 1
  // sends itself without a handler, so `kill -9 $$` would not kill it there. A container killed
  // from outside is tested for both modes in signals.test.ts.
  test("a command killed by signal N: minic exits 128+N", async () => {
    expect((await minic(["run", "--no-namespaces", "sh", "-c", "kill -9 $$"])).code).toBe(137);
    expect((await minic(["run", "--no-namespaces", "sh", "-c", "kill -TERM $$"])).code).toBe(143);
    expect((await minic(["run", "--no-namespaces", "sh", "-c", "kill -SEGV $$"])).code).toBe(139);
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

  test("an unknown global flag or verb: 125 and one line", async () => {
    for (const args of [["--bogus", "run", "true"], ["nope"], []]) {
      const r = await minic(args);
      expect(r.code).toBe(125);
      expect(r.stdout).toBe("");
      expect(r.stderr.trimEnd().split("\n")).toHaveLength(1);
      expect(r.stderr).toStartWith("minic: ");
    }
  });

  test("minic's own messages go to stderr, never stdout", async () => {
    for (const args of [["run", "nosuchcmd"], ["run", "--bogus"], ["run", "--trace", "true"], ["-v", "run", "true"], ["nope"]]) {
      const r = await minic(args);
      expect(r.stdout).toBe("");
      if (r.code !== 0) expect(minicLines(r.stderr).length).toBeGreaterThan(0);
    }
    expect(minicLines((await minic(["run", "--trace", "true"])).stderr).length).toBeGreaterThan(3);
  });

  test("-q and --log-level keep stdout clean and the exit code intact", async () => {
    for (const flag of [["-q"], ["--log-level", "quiet"], ["--log-level=debug"]]) {
      const r = await minic([...flag, "run", "nosuchcmd"]);
      expect(r.code).toBe(127);
      expect(r.stdout).toBe("");
    }
  });
});
