// Terminals (issue 7, TTY): `minic run -t [-i]` through a real pseudo-terminal, and
// `minic create --console-socket` handing the pty master over as runc does for conmon.
//
// The outer terminal is made by a small python3 driver (below): os.openpty(), minic started as a
// session leader with the pty as its controlling terminal (as a shell would), then a list of
// actions: wait for text, type, resize, signal, snapshot the terminal's settings. A few cases use
// script(1) instead, as a user's shell would run minic.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ptr } from "bun:ffi";
import { MINIC, minic, waitUntil } from "./helpers.ts";
import { ensurePackage, ensureRootfs } from "./rootfs.ts";
import { splitArgv } from "../src/cli/argv.ts";
import { run, specFromRunFlags } from "../src/cli/run.ts";
import { compilePlan } from "../src/plan.ts";
import { describeStep } from "../src/process/step.ts";
import { libc } from "../src/libc/ffi.ts";
import { consoleSocketPair, receiveFd, sendFd } from "../src/terminal/console.ts";

setDefaultTimeout(60_000);

let R: string;
let scratch: string;
const MARK = `minic-tty-${process.pid}`;
let containers = 0;
const PYTHON = "/usr/bin/python3";

beforeAll(() => {
  R = ensureRootfs();
  ensurePackage("/usr/bin/script", "bsdutils");
  ensurePackage(PYTHON, "python3");
  scratch = mkdtempSync(join(tmpdir(), "minic-tty-"));
});
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/** `minic run` with the test rootfs, no network (fast, and nothing touches the host's), a fresh name. */
const runArgs = (flags: string[], command: string[]) =>
  [MINIC, "run", "--name", `${MARK}-${++containers}`, "--network", "none", "--rootfs", R, ...flags, ...command];

// ---- the pty driver --------------------------------------------------------------------------------

const DRIVER = String.raw`
import fcntl, json, os, select, signal, struct, subprocess, sys, termios, time

cfg = json.loads(sys.argv[1])
deadline = time.monotonic() + cfg.get("timeout", 20)
master, slave = os.openpty()

def set_size(rows, cols):
    fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

def settings():
    a = termios.tcgetattr(slave)
    return a[:6] + [[c if isinstance(c, int) else c[0] for c in a[6]]]

set_size(*cfg.get("size", [24, 80]))
snapshots = {"before": settings()}
proc = subprocess.Popen(cfg["argv"], stdin=slave, stdout=slave, stderr=slave, start_new_session=True,
                        preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0))
out = b""
seen = 0

def pump(seconds):
    global out
    end = time.monotonic() + seconds
    while True:
        left = end - time.monotonic()
        if left <= 0:
            return
        r, _, _ = select.select([master], [], [], left)
        if not r:
            return
        try:
            data = os.read(master, 65536)
        except OSError:
            return
        if not data:
            return
        out += data

def fail(why):
    proc.kill()
    pump(0.2)
    print(json.dumps({"error": why, "output": out.decode(errors="replace")}))
    sys.exit(0)

def container_pid():
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            stat = open("/proc/%s/stat" % name).read()
        except OSError:
            continue
        if int(stat[stat.rindex(")") + 2:].split()[1]) == proc.pid:
            return int(name)
    return None

for action in cfg.get("actions", []):
    kind, arg = next(iter(action.items()))
    if kind == "wait":
        while True:
            at = out.find(arg.encode(), seen)
            if at >= 0:
                seen = at + len(arg)
                break
            if time.monotonic() > deadline:
                fail("timed out waiting for %r" % arg)
            if proc.poll() is not None:
                pump(0.3)
                if out.find(arg.encode(), seen) < 0:
                    fail("exited (%s) before %r" % (proc.returncode, arg))
            pump(0.05)
    elif kind == "write":
        os.write(master, arg.encode())
    elif kind == "resize":
        set_size(*arg)
    elif kind == "signal":
        os.kill(proc.pid, getattr(signal, arg))
    elif kind == "snapshot":
        snapshots[arg] = settings()
    elif kind == "kill_container":
        pid = container_pid()
        if pid is None:
            fail("no container process under minic")
        os.kill(pid, getattr(signal, arg))
    elif kind == "sleep":
        pump(arg)

while proc.poll() is None:
    if time.monotonic() > deadline:
        fail("timed out waiting for minic to exit")
    pump(0.05)
pump(0.3)
snapshots["after"] = settings()
print(json.dumps({"code": proc.returncode, "output": out.decode(errors="replace"), "snapshots": snapshots}))
`;

type Action =
  | { wait: string }
  | { write: string }
  | { resize: [number, number] }
  | { signal: string }
  | { snapshot: string }
  | { kill_container: string }
  | { sleep: number };

interface PtyResult {
  code: number;
  output: string;
  /** tcgetattr of the outer terminal: [iflag, oflag, cflag, lflag, ispeed, ospeed, cc]. */
  snapshots: Record<string, [number, number, number, number, number, number, number[]]>;
}

/** Run argv under a fresh pty of `size` (rows, cols), performing `actions`; fails on a driver error. */
async function underPty(argv: string[], actions: Action[] = [], size: [number, number] = [24, 80]): Promise<PtyResult> {
  const config = JSON.stringify({ argv, actions, size, timeout: 25 });
  const proc = Bun.spawn([PYTHON, "-c", DRIVER, config], { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  const timer = setTimeout(() => proc.kill("SIGKILL"), 40_000);
  try {
    const [stdout, stderr] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
    let result: PtyResult & { error?: string };
    try {
      result = JSON.parse(stdout);
    } catch {
      throw new Error(`the pty driver failed: ${stdout}${stderr}`);
    }
    if (result.error) throw new Error(`${result.error}; output so far: ${JSON.stringify(result.output)}`);
    return result;
  } finally {
    clearTimeout(timer);
  }
}

const ICANON = 0o2, ECHO = 0o10, ISIG = 0o1;
const LFLAG = 3;
const isRaw = (s: PtyResult["snapshots"][string]) => (s[LFLAG] & (ICANON | ECHO | ISIG)) === 0;
/** The output as lines, without the terminal's carriage returns. */
const lines = (text: string) => text.replace(/\r/g, "").split("\n");

/** Run a shell line under script(1), whose pty is the line's controlling terminal. */
async function underScript(line: string): Promise<{ code: number; stdout: string }> {
  const proc = Bun.spawn(["script", "-qfec", line, "/dev/null"], { stdin: "pipe", stdout: "pipe", stderr: "pipe" });
  const timer = setTimeout(() => proc.kill("SIGKILL"), 30_000);
  try {
    const [stdout, , code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
    return { code, stdout: stdout.replace(/\r/g, "") };
  } finally {
    clearTimeout(timer);
    proc.stdin.end(); // held open until the end: at EOF script would type ^D into the terminal
  }
}
const shellQuote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

// ---- minic run -t ----------------------------------------------------------------------------------

describe("minic run -t: the container's terminal", () => {
  test("tty inside is /dev/pts/0 (the container's own devpts), it is stdin, stdout, stderr and the controlling terminal; the exit code passes", async () => {
    const script = "tty; readlink /proc/self/fd/1; readlink /proc/self/fd/2; echo via-dev-tty > /dev/tty; exit 3";
    const r = await underPty(runArgs(["-t"], ["sh", "-c", script]));
    expect(r.code).toBe(3);
    expect(lines(r.output)).toEqual(["/dev/pts/0", "/dev/pts/0", "/dev/pts/0", "via-dev-tty", ""]);
  });

  test("under script(1): tty prints /dev/pts/0 and `sh -c 'exit 3'` ends minic with 3", async () => {
    const r = await underScript(`${runArgs(["-t"], ["tty"]).map(shellQuote).join(" ")}; ${runArgs(["-t"], ["sh", "-c", "exit 3"]).map(shellQuote).join(" ")}`);
    expect(r.code).toBe(3);
    expect(r.stdout).toBe("/dev/pts/0\n");
  });

  test("stty size inside is the outer terminal's; a change after start reaches it (SIGWINCH)", async () => {
    const script = 'stty size; trap "stty size; exit 5" WINCH; echo ready; while :; do sleep 0.1; done';
    const r = await underPty(runArgs(["-t"], ["sh", "-c", script]), [{ wait: "ready" }, { resize: [40, 132] }, { signal: "SIGWINCH" }], [33, 111]);
    expect(r.code).toBe(5);
    expect(lines(r.output)).toEqual(["33 111", "ready", "40 132", ""]);
  });

  test("-i: keystrokes reach the container; the terminal is raw meanwhile and restored afterwards", async () => {
    const script = "echo ready; read line; echo got=$line; exit 4";
    const r = await underPty(runArgs(["-ti"], ["sh", "-c", script]), [{ wait: "ready" }, { snapshot: "during" }, { write: "hello\r" }]);
    expect(r.code).toBe(4);
    expect(lines(r.output)).toEqual(["ready", "hello", "got=hello", ""]); // the container's terminal echoes
    expect(isRaw(r.snapshots.before!)).toBe(false);
    expect(isRaw(r.snapshots.during!)).toBe(true);
    expect(r.snapshots.after).toEqual(r.snapshots.before!);
  });

  test("-i: an interactive shell, driven by typing", async () => {
    // (ash prints its prompt before it sets up its line editing, which flushes earlier input: hence the pause)
    const typing: Action[] = [{ wait: "# " }, { sleep: 0.5 }, { write: "echo hi-$((1+2))\r" }, { wait: "hi-3" }, { sleep: 0.5 }, { write: "exit 6\r" }];
    const r = await underPty(runArgs(["-ti"], ["sh"]), typing);
    expect(r.code).toBe(6);
    expect(r.snapshots.after).toEqual(r.snapshots.before!);
  });

  test("without -i, stdin is not forwarded and the terminal is left as it is", async () => {
    const script = "echo ready; read -t 2 line; echo got=[$line]";
    const r = await underPty(runArgs(["-t"], ["sh", "-c", script]), [{ wait: "ready" }, { snapshot: "during" }, { write: "typed\r" }]);
    expect(r.code).toBe(0);
    expect(r.output).toContain("got=[]");
    expect(r.snapshots.during).toEqual(r.snapshots.before!);
    expect(r.snapshots.after).toEqual(r.snapshots.before!);
  });

  test("the terminal is restored when minic gets SIGTERM (forwarded to the container)", async () => {
    const script = 'trap "exit 7" TERM; echo ready; while :; do sleep 0.1; done';
    const r = await underPty(runArgs(["-ti"], ["sh", "-c", script]), [{ wait: "ready" }, { snapshot: "during" }, { signal: "SIGTERM" }]);
    expect(r.code).toBe(7);
    expect(isRaw(r.snapshots.during!)).toBe(true);
    expect(r.snapshots.after).toEqual(r.snapshots.before!);
  });

  test("the terminal is restored when the container is killed", async () => {
    const script = "echo ready; while :; do sleep 0.1; done";
    const r = await underPty(runArgs(["-ti"], ["sh", "-c", script]), [{ wait: "ready" }, { snapshot: "during" }, { kill_container: "SIGKILL" }]);
    expect(r.code).toBe(137);
    expect(isRaw(r.snapshots.during!)).toBe(true);
    expect(r.snapshots.after).toEqual(r.snapshots.before!);
  });

  test("Ctrl-C typed with -ti goes to the container's terminal, which signals its foreground process", async () => {
    const script = 'trap "echo interrupted; exit 8" INT; echo ready; while :; do sleep 0.1; done';
    const r = await underPty(runArgs(["-ti"], ["sh", "-c", script]), [{ wait: "ready" }, { write: "\x03" }]);
    expect(r.code).toBe(8);
    expect(r.output).toContain("interrupted");
  });

  test("stty -g in the same pty is the same before and after minic run -ti (script(1))", async () => {
    const minicLine = runArgs(["-ti"], ["sh", "-c", "stty -a >/dev/null; exit 0"]).map(shellQuote).join(" ");
    // (script(1) without a terminal of its own makes a 0x0 one, which busybox's stty complains about)
    const r = await underScript(`stty rows 24 cols 80; stty -g; ${minicLine}; echo code=$?; stty -g`);
    const out = r.stdout.trim().split("\n");
    expect(out).toHaveLength(3);
    expect(out[1]).toBe("code=0");
    expect(out[2]).toBe(out[0]!);
  });

  test("-t with stdin and stdout not terminals (pipes) still works: no raw mode, output relayed", async () => {
    const proc = Bun.spawn(runArgs(["-t"], ["sh", "-c", "tty; echo out; echo err >&2; exit 2"]), { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
    const timer = setTimeout(() => proc.kill("SIGKILL"), 20_000);
    const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
    clearTimeout(timer);
    expect(code).toBe(2);
    expect(stdout).toBe("/dev/pts/0\r\nout\r\nerr\r\n"); // the pty carries stderr too, and adds the CRs
    expect(stderr).toBe("");
  });

  test("-ti with a pipe as stdin: input is forwarded, and its end types ^D", async () => {
    const r = await minic(["run", "--network", "none", "--rootfs", R, "-ti", "sh", "-c", "while read l; do echo got=$l; done; echo eof"], {
      stdin: "one\ntwo\n",
      timeoutMs: 20_000,
    });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("got=one\r\n");
    expect(r.stdout).toContain("got=two\r\n");
    expect(r.stdout).toContain("eof\r\n");
  });

  test("a large output arrives whole", async () => {
    const proc = Bun.spawn(runArgs(["-t"], ["sh", "-c", "seq 1 20000"]), { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
    const timer = setTimeout(() => proc.kill("SIGKILL"), 20_000);
    const [stdout, , code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
    clearTimeout(timer);
    expect(code).toBe(0);
    const got = stdout.replace(/\r/g, "").trim().split("\n");
    expect(got.length).toBe(20000);
    expect(got.at(-1)).toBe("20000");
  });

  test("-t -u 1000: the terminal belongs to the container's user", async () => {
    const proc = Bun.spawn(runArgs(["-t", "-u", "1000"], ["sh", "-c", "stat -c %u /dev/pts/0; echo x > /dev/tty && echo writable"]), {
      stdin: "ignore", stdout: "pipe", stderr: "pipe",
    });
    const [stdout, , code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
    expect({ code, out: lines(stdout) }).toEqual({ code: 0, out: ["1000", "x", "writable", ""] });
  });

  test("-t in a user namespace (--userns)", async () => {
    const proc = Bun.spawn(runArgs(["-t", "--userns"], ["sh", "-c", "tty; exit 9"]), { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
    const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
    expect({ code, stdout, stderr }).toEqual({ code: 9, stdout: "/dev/pts/0\r\n", stderr: "" });
  });
});

// ---- minic create --console-socket -------------------------------------------------------------------

/** conmon's half: listen on PATH, take the master that arrives, type into it and collect the output. */
const RECEIVER = String.raw`
import json, os, select, socket, sys, time
path, text = sys.argv[1], sys.argv[2]
srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
srv.bind(path)
srv.listen(1)
srv.settimeout(20)
conn, _ = srv.accept()
msg, fds, flags, addr = socket.recv_fds(conn, 4096, 4)
master = fds[0]
os.write(master, text.encode())
out = b""
end = time.monotonic() + 20
while time.monotonic() < end:
    r, _, _ = select.select([master], [], [], 0.5)
    if not r:
        continue
    try:
        data = os.read(master, 4096)
    except OSError:
        break
    if not data:
        break
    out += data
print(json.dumps({"name": msg.decode(), "fds": len(fds), "output": out.decode(errors="replace")}))
`;

describe("minic create --console-socket", () => {
  function bundle(args: string[]): string {
    const dir = mkdtempSync(join(scratch, "bundle-"));
    symlinkSync(R, join(dir, "rootfs"));
    return dir;
  }

  test("the master arrives over SCM_RIGHTS with the pty's name; typing into it drives the container", async () => {
    const dir = bundle([]);
    expect((await minic(["spec", "--bundle", dir])).code).toBe(0);
    const config = JSON.parse(readFileSync(join(dir, "config.json"), "utf8"));
    expect(config.process.terminal).toBe(true); // runc spec's default
    config.process.args = ["sh"];
    config.process.consoleSize = { height: 20, width: 70 };
    writeFileSync(join(dir, "config.json"), JSON.stringify(config));
    const sock = join(scratch, "console.sock");
    const receiver = Bun.spawn([PYTHON, "-c", RECEIVER, sock, "stty size; tty; echo hi; exit 3\n"], { stdout: "pipe", stderr: "pipe" });
    const killer = setTimeout(() => receiver.kill("SIGKILL"), 40_000);
    const id = `${MARK}-create`;
    try {
      await waitUntil(() => existsSync(sock), "the receiver's socket");
      const created = await minic(["create", "--bundle", dir, "--console-socket", sock, id], { timeoutMs: 20_000 });
      expect(created).toEqual({ code: 0, stdout: "", stderr: "" });
      const state = JSON.parse((await minic(["state", id])).stdout);
      expect(state.status).toBe("created");
      expect((await minic(["start", id], { timeoutMs: 20_000 })).code).toBe(0);
      const [out, err] = await Promise.all([new Response(receiver.stdout).text(), new Response(receiver.stderr).text(), receiver.exited]);
      expect(err).toBe("");
      const got = JSON.parse(out);
      expect({ name: got.name, fds: got.fds }).toEqual({ name: "/dev/pts/0", fds: 1 });
      const shown = lines(got.output);
      expect(shown).toContain("20 70");
      expect(shown).toContain("/dev/pts/0");
      expect(shown).toContain("hi");
      await waitUntil(async () => JSON.parse((await minic(["state", id])).stdout).status === "stopped", "the container to stop");
    } finally {
      clearTimeout(killer);
      await minic(["delete", "--force", id]);
    }
    expect((await minic(["state", id])).code).not.toBe(0);
  });

  test("process.terminal without --console-socket, and --console-socket without process.terminal, are refused", async () => {
    const dir = bundle([]);
    expect((await minic(["spec", "--bundle", dir])).code).toBe(0);
    const noSocket = await minic(["create", "--bundle", dir, `${MARK}-refused`]);
    expect(noSocket.code).toBe(125);
    expect(noSocket.stderr).toContain("create needs --console-socket");
    const config = JSON.parse(readFileSync(join(dir, "config.json"), "utf8"));
    config.process.terminal = false;
    writeFileSync(join(dir, "config.json"), JSON.stringify(config));
    const noTerminal = await minic(["create", "--bundle", dir, "--console-socket", join(scratch, "none.sock"), `${MARK}-refused`]);
    expect(noTerminal.code).toBe(125);
    expect(noTerminal.stderr).toContain("process.terminal is false");
  });

  test("a console socket nobody listens on: create fails clearly and leaves nothing", async () => {
    const dir = bundle([]);
    expect((await minic(["spec", "--bundle", dir])).code).toBe(0);
    const id = `${MARK}-nosock`;
    const r = await minic(["create", "--bundle", dir, "--console-socket", join(scratch, "nobody.sock"), id]);
    expect(r.code).toBe(125);
    expect(r.stderr).toContain("connect to the console socket");
    expect((await minic(["state", id])).code).not.toBe(0);
  });
});

// ---- the pieces ----------------------------------------------------------------------------------

describe("SCM_RIGHTS helpers and the plan", () => {
  test("sendFd/receiveFd pass a working fd and the text across a socketpair", () => {
    const [a, b] = consoleSocketPair();
    const pipe = new Int32Array(2);
    expect(libc.pipe2(ptr(pipe), 0o2000000)).toBe(0);
    try {
      sendFd(a, pipe[1]!, "/dev/pts/7");
      const got = receiveFd(b, 1000);
      expect(got.text).toBe("/dev/pts/7");
      expect(got.fd).not.toBe(pipe[1]);
      const msg = new TextEncoder().encode("through");
      expect(libc.write(got.fd, ptr(msg), msg.length)).toBe(msg.length);
      libc.close(got.fd);
      const buf = new Uint8Array(16);
      expect(new TextDecoder().decode(buf.subarray(0, libc.read(pipe[0]!, ptr(buf), 16)))).toBe("through");
      expect(() => receiveFd(b, 50)).toThrow("no terminal arrived on the console socket within 50 ms");
    } finally {
      for (const fd of [a, b, pipe[0]!, pipe[1]!]) libc.close(fd);
    }
  });

  test("the plan: the terminal after pivot_root, one setsid before TIOCSCTTY, all before the capabilities go", () => {
    const specFor = (...argv: string[]) => {
      const { values, all, rest } = splitArgv(argv, run.command.args);
      return specFromRunFlags({ flags: values, all, rest });
    };
    const spec = specFor("--rootfs", R, "--network", "none", "-t", "sh");
    const steps = compilePlan(spec, { consoleSocket: 9 }).map(describeStep);
    const at = (prefix: string) => steps.findIndex((s) => s.startsWith(prefix));
    expect(steps.filter((s) => s === "setsid()")).toHaveLength(1);
    const order = [
      at('pivot_root('), at('open("/dev/ptmx"'), at("ioctl(<ptmx>, TIOCSPTLCK"), at("ioctl(<ptmx>, TIOCGPTPEER"), at("setsid()"),
      at("ioctl(<pts>, TIOCSCTTY"), at("dup2+close(<pts>"), at("sendmsg(<console socket 9>"), at("close(<ptmx>"), at("capset("), at("execve("),
    ];
    expect(order.every((i) => i >= 0)).toBe(true);
    expect([...order].sort((x, y) => x - y)).toEqual(order);
    // Without -t: the hardened flow's own setsid, early, and no terminal.
    const plain = compilePlan(specFor("--rootfs", R, "--network", "none", "sh")).map(describeStep);
    expect(plain.filter((s) => s === "setsid()")).toHaveLength(1);
    expect(plain.some((s) => s.startsWith('open("/dev/ptmx"') || s.startsWith("sendmsg("))).toBe(false);
  });

  test("process.consoleSize becomes a TIOCSWINSZ on the master; -u gives the terminal to the user", () => {
    const { values, all, rest } = splitArgv(["--rootfs", R, "-t", "-u", "1000", "sh"], run.command.args);
    const spec = specFromRunFlags({ flags: values, all, rest });
    spec.process!.consoleSize = { height: 50, width: 160 };
    const steps = compilePlan(spec, { consoleSocket: 9 }).map(describeStep);
    expect(steps).toContain("ioctl(<ptmx>, TIOCSWINSZ, {50 rows, 160 cols})");
    expect(steps).toContain("fchown(<pts>, 1000, -1)");
  });
});
