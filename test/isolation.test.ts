// Issue 3, end to end: real isolation through the real CLI (bin/minic), as root, on the busybox
// rootfs of test/rootfs.ts. Every test asserts an effect a user would see: the hostname, PID 1,
// the processes, files and mounts in view, the host left exactly as it was.
//
// Every container gets MARK in its environment (and every minic its cmdline), so that after each
// test no process of ours may remain, and a --name starting with MARK, so that its state
// directory can be checked for. The host's /proc/self/mountinfo is compared around every test.
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, setDefaultTimeout, test } from "bun:test";
import { chmodSync, chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { hostname as hostHostname, tmpdir } from "node:os";
import { join } from "node:path";
import { MINIC, minic, waitUntil, type MinicOptions, type MinicResult } from "./helpers.ts";
import { processesMarked } from "./helpers.ts";
import { ensureRootfs } from "./rootfs.ts";

setDefaultTimeout(60_000); // bunfig's [test] timeout is not applied by Bun 1.4.5

const MARK = `iso${process.pid}x${Math.random().toString(16).slice(2, 8)}`;
const STATE_ROOT = "/run/minic";
let R: string; // the busybox rootfs
let scratch: string; // host-side files for volumes, env files and bundles
let containers = 0;

beforeAll(() => {
  R = ensureRootfs();
  scratch = mkdtempSync(join(tmpdir(), "minic-iso-"));
  chmodSync(scratch, 0o755); // the rootless tests' user must reach its files
});
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

// ---- helpers --------------------------------------------------------------------------------------

/** A fresh container name of this file's: `--name` value, state directory name. */
const newName = () => `${MARK}-${++containers}`;

interface RunOptions extends MinicOptions {
  /** Leave out --name, so minic picks the id (and the hostname) itself. */
  unnamed?: boolean;
  /** Run minic through `runuser -u USER`, as an unprivileged user. */
  as?: string;
}

/** `minic run ARGS`, marked (env MARK inside, --name MARK-n) so strays and state can be found. */
function run(args: string[], options: RunOptions = {}): Promise<MinicResult> {
  const marked = [...(options.unnamed ? [] : ["--name", newName()]), "-e", `MARK=${MARK}`, ...args];
  if (!options.as) return minic(["run", ...marked], options);
  return collect(["runuser", "-u", options.as, "--", MINIC, "run", ...marked], options);
}

/** `minic run --rootfs R [FLAGS] sh -c SCRIPT` */
const sh = (script: string, flags: string[] = [], options?: RunOptions) => run(["--rootfs", R, ...flags, "sh", "-c", script], options);

/** The stdout of a run that must succeed; on failure the diff shows the exit code and stderr. */
function ok(result: MinicResult): string {
  expect({ code: result.code, stderr: result.stderr }).toEqual({ code: 0, stderr: "" });
  return result.stdout;
}

/** Run any command to its end (with a kill timeout), like helpers.ts's minic(). */
async function collect(argv: string[], options: MinicOptions = {}): Promise<MinicResult> {
  const proc = Bun.spawn(argv, { stdin: "ignore", stdout: "pipe", stderr: "pipe", env: options.env ?? process.env });
  const timer = setTimeout(() => proc.kill("SIGKILL"), options.timeoutMs ?? 20_000);
  try {
    const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
    return { code, stdout, stderr };
  } finally {
    clearTimeout(timer);
  }
}

const lines = (text: string) => text.split("\n").filter(Boolean);

/** One mount of a mountinfo file: field 5 is the mount point; after " - " come type, source, options. */
interface MountEntry {
  point: string;
  options: string[];
  fstype: string;
  superOptions: string[];
}
function parseMountinfo(text: string): MountEntry[] {
  return lines(text).map((line) => {
    const f = line.split(" ");
    const dash = f.indexOf("-");
    return { point: f[4]!, options: f[5]!.split(","), fstype: f[dash + 1]!, superOptions: f[dash + 3]!.split(",") };
  });
}
const hostMountinfo = () => readFileSync("/proc/self/mountinfo", "utf8");

/** Interface names in a /proc/net/dev. */
const interfaces = (netDev: string) => lines(netDev).slice(2).map((l) => l.split(":")[0]!.trim()).sort();

const markedProcesses = () => processesMarked(MARK);

/** State directories of this file's containers under `root`. */
const ourStateDirs = (root = STATE_ROOT) => (existsSync(root) ? readdirSync(root).filter((n) => n.startsWith(MARK)) : []);

// ---- after every test: nothing of ours is left --------------------------------------------------

let mountsBefore = "";
beforeEach(() => {
  mountsBefore = hostMountinfo();
});
afterEach(async () => {
  try {
    await waitUntil(() => markedProcesses().length === 0, () => `stray processes: ${JSON.stringify(markedProcesses())}`, 5_000);
  } catch (error) {
    for (const p of markedProcesses()) process.kill(p.pid, "SIGKILL"); // ours, by the marker: do not let them spoil the next test
    throw error;
  }
  expect(ourStateDirs()).toEqual([]);
  expect(hostMountinfo()).toBe(mountsBefore);
});

// ---- namespaces -----------------------------------------------------------------------------------

describe("namespaces", () => {
  test("the hostname inside is --hostname, and the NIS domain --domainname", async () => {
    const out = ok(await sh("hostname; cat /proc/sys/kernel/domainname", ["--hostname", "box1", "--domainname", "example.org"]));
    expect(out).toBe("box1\nexample.org\n");
    expect(hostHostname()).not.toBe("box1");
  });

  test("the hostname defaults to the 12-hex container id, a new one each run", async () => {
    const first = ok(await sh("hostname; echo $HOSTNAME", [], { unnamed: true }));
    const second = ok(await sh("hostname", [], { unnamed: true }));
    const [name, env] = lines(first);
    expect(name).toMatch(/^[0-9a-f]{12}$/);
    expect(env).toBe(name);
    expect(second.trim()).toMatch(/^[0-9a-f]{12}$/);
    expect(second.trim()).not.toBe(name);
  });

  test("--name gives the hostname", async () => {
    expect(ok(await run(["--name", "web-7", "--rootfs", R, "hostname"], { unnamed: true }))).toBe("web-7\n");
  });

  test("--uts host keeps the host's hostname", async () => {
    expect(ok(await sh("hostname", ["--uts", "host"]))).toBe(`${hostHostname()}\n`);
  });

  test("the command is PID 1: echo $$ prints 1", async () => {
    expect(ok(await sh("echo $$"))).toBe("1\n");
  });

  test("--pid host: the command is not PID 1", async () => {
    const pid = Number(ok(await sh("echo $$", ["--pid", "host"])));
    expect(pid).toBeGreaterThan(1);
  });

  test("ps shows only the container's processes: sh, sleep and ps", async () => {
    const waitForSleep = 'while [ "$(cat /proc/$!/comm)" != sleep ]; do sleep 0.05; done'; // until the & child has exec'd
    const out = ok(await sh(`sleep 3 & ${waitForSleep}; ps -o pid,comm; kill $!`));
    const rows = lines(out).slice(1).map((l) => l.trim().split(/\s+/));
    expect(rows.map(([, comm]) => comm).sort()).toEqual(["ps", "sh", "sleep"]);
    expect(rows.find(([, comm]) => comm === "sh")![0]).toBe("1");
    // and /proc agrees: at most sh, sleep, ls and grep, while the host has far more
    const inProc = Number(ok(await sh(`sleep 3 & ${waitForSleep}; ls /proc | grep -c '^[0-9]'; kill $!`)));
    expect(inProc).toBeLessThanOrEqual(4); // sh, sleep, ls, grep
    expect(readdirSync("/proc").filter((n) => /^\d+$/.test(n)).length).toBeGreaterThan(10);
  });

  test("--network none: only lo in /proc/net/dev, and it is up; the default bridge adds eth0", async () => {
    const out = ok(await sh("cat /proc/net/dev; echo ---; cat /sys/class/net/lo/operstate /sys/class/net/lo/flags", ["--network", "none"]));
    const [netDev, lo] = out.split("---\n");
    expect(interfaces(netDev!)).toEqual(["lo"]);
    expect(Number(lines(lo!)[1]) & 1).toBe(1); // IFF_UP
    expect(interfaces(ok(await sh("cat /proc/net/dev"))).sort()).toEqual(["eth0", "lo"]); // root's default: --network bridge
  });

  test("--network host: the host's interfaces appear", async () => {
    const out = ok(await sh("cat /proc/net/dev", ["--network", "host"]));
    expect(interfaces(out)).toEqual(interfaces(readFileSync("/proc/net/dev", "utf8")));
  });

  test("a SysV message queue made on the host is invisible inside, and visible with --ipc host", async () => {
    const made = await collect(["ipcmk", "-Q"]);
    expect(made.code).toBe(0);
    const id = made.stdout.match(/(\d+)\s*$/)![1]!;
    try {
      // /proc/sysvipc/msg: "key msqid perms ...", for the IPC namespace of whoever mounted /proc
      const key = lines(readFileSync("/proc/sysvipc/msg", "utf8")).map((l) => l.trim().split(/\s+/)).find((f) => f[1] === id)![0]!;
      const ids = (text: string) => lines(text).slice(1).map((l) => l.trim().split(/\s+/).slice(0, 2).join(" "));
      expect(ids(ok(await sh("cat /proc/sysvipc/msg")))).not.toContain(`${key} ${id}`);
      expect(ids(ok(await sh("cat /proc/sysvipc/msg", ["--ipc", "host"])))).toContain(`${key} ${id}`);
    } finally {
      await collect(["ipcrm", "-q", id]);
    }
  });

  test("a new cgroup namespace: /proc/self/cgroup shows / for every hierarchy; --cgroupns host does not", async () => {
    const own = ok(await sh("cat /proc/self/cgroup"));
    for (const line of lines(own)) expect(line).toMatch(/:\/$/);
    // With the host's cgroup namespace the full paths show: the container's own cgroup, /minic/NAME,
    // where minic placed it, and the host's where it did not.
    const host = lines(readFileSync("/proc/self/cgroup", "utf8"));
    const shared = lines(ok(await sh("cat /proc/self/cgroup", ["--cgroupns", "host", "--name", "cgns-host-test"])));
    expect(shared.some((l) => l.endsWith(":/minic/cgns-host-test"))).toBe(true);
    for (const [i, line] of shared.entries()) expect(line.endsWith(":/minic/cgns-host-test") || line === host[i]).toBe(true);
  });
});

// ---- the root filesystem ---------------------------------------------------------------------------

describe("root filesystem", () => {
  test("ls / shows the rootfs's entries", async () => {
    const out = ok(await sh("ls -A /"));
    expect(lines(out).sort()).toEqual(readdirSync(R).sort());
    expect(lines(out)).not.toContain("work");
  });

  test("/proc/1/mountinfo inside: only the container's own mounts, no mount point outside it", async () => {
    const mounts = parseMountinfo(ok(await sh("cat /proc/1/mountinfo", ["--hostname", "m1"])));
    for (const m of mounts) {
      for (const outside of [R, STATE_ROOT, "/work"]) expect(m.point.startsWith(outside)).toBe(false);
    }
    const points = mounts.map((m) => m.point);
    expect(points).toEqual(expect.arrayContaining(["/", "/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys", "/etc/hostname", "/etc/hosts"]));
    // everything else is the container's own: under /proc, /dev or /sys (masked paths, say), or /etc files
    const own = (p: string) => p === "/" || /^\/(proc|dev|sys)(\/|$)/.test(p) || /^\/etc\/(hostname|hosts|resolv\.conf)$/.test(p);
    expect(points.filter((p) => !own(p))).toEqual([]);
  });

  test("the host's mountinfo is the same after a run, a failed setup, and a command not found", async () => {
    const before = hostMountinfo();
    ok(await sh("mount | wc -l"));
    expect(hostMountinfo()).toBe(before);

    // a -v target under a file: mkdir fails in the child after /proc, /dev, /sys are mounted
    const badTarget = await run(["--rootfs", R, "-v", `${scratch}:/etc/passwd/x`, "true"]);
    expect(badTarget.code).toBe(125);
    expect(badTarget.stderr).toContain("ENOTDIR");
    expect(hostMountinfo()).toBe(before);

    // a tmpfs over a file: the mount itself fails
    const badTmpfs = await run(["--rootfs", R, "--tmpfs", "/bin/sh", "true"]);
    expect(badTmpfs.code).toBe(125);
    expect(badTmpfs.stderr).toMatch(/mount tmpfs on \/bin\/sh.*: ENOTDIR/);
    expect(hostMountinfo()).toBe(before);

    const notFound = await run(["--rootfs", R, "no-such-command"]);
    expect(notFound.code).toBe(127);
    expect(hostMountinfo()).toBe(before);
  });

  test("/proc is mounted nosuid,nodev,noexec", async () => {
    const proc = parseMountinfo(ok(await sh("cat /proc/self/mountinfo"))).find((m) => m.point === "/proc")!;
    expect(proc.fstype).toBe("proc");
    expect(proc.options).toEqual(expect.arrayContaining(["nosuid", "nodev", "noexec"]));
  });

  test("/sys is sysfs, read-only", async () => {
    const out = ok(await sh("cat /proc/self/mountinfo; mkdir /sys/minic-x 2>&1 || echo refused"));
    const sys = parseMountinfo(lines(out).filter((l) => l.includes(" - ")).join("\n")).find((m) => m.point === "/sys")!;
    expect(sys.fstype).toBe("sysfs");
    expect(sys.options[0]).toBe("ro");
    expect(out).toContain("refused");
  });

  test("/dev: the devices, pts, shm, mqueue and the usual links, all working", async () => {
    const script = [
      "for c in null zero full random urandom tty; do test -c /dev/$c || echo \"not a char device: $c\"; done",
      "for d in pts shm mqueue; do test -d /dev/$d || echo \"not a dir: $d\"; done",
      "for l in ptmx fd stdin stdout stderr; do test -L /dev/$l || echo \"not a link: $l\"; done",
      "echo x > /dev/null || echo 'cannot write /dev/null'",
      "test \"$(head -c 5 /dev/zero | wc -c)\" = 5 || echo 'cannot read /dev/zero'",
      "test \"$(head -c 5 /dev/urandom | wc -c)\" = 5 || echo 'cannot read /dev/urandom'",
      "(echo x > /dev/full) 2>/dev/null && echo '/dev/full took a write'",
      "echo \"fd -> $(readlink /dev/fd), ptmx -> $(readlink /dev/ptmx)\"",
      "grep ' /dev/pts ' /proc/self/mountinfo | grep -c ' - devpts .*ptmxmode=666'",
    ].join("\n");
    expect(ok(await sh(script))).toBe("fd -> /proc/self/fd, ptmx -> pts/ptmx\n1\n");
  });

  test("--read-only: touch /x fails and nothing is written", async () => {
    const r = await sh("touch /x", ["--read-only"]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("Read-only file system");
    expect(existsSync(`${R}/x`)).toBe(false);
  });

  test("-v HOST:/mnt:ro refuses writes; -v HOST:/mnt allows them, and the host sees the file", async () => {
    const vol = mkdtempSync(join(scratch, "vol-"));
    writeFileSync(`${vol}/from-host`, "hello from the host\n");

    const ro = await sh("cat /mnt/from-host; echo no > /mnt/ro-file", ["-v", `${vol}:/mnt:ro`]);
    expect(ro.code).not.toBe(0);
    expect(ro.stdout).toBe("hello from the host\n");
    expect(ro.stderr).toContain("Read-only file system");
    expect(existsSync(`${vol}/ro-file`)).toBe(false);

    ok(await sh("echo written inside > /mnt/rw-file", ["-v", `${vol}:/mnt`]));
    expect(readFileSync(`${vol}/rw-file`, "utf8")).toBe("written inside\n");
  });

  test("--tmpfs /scratch is a tmpfs, writable", async () => {
    const out = ok(await sh("echo a > /scratch/f && cat /scratch/f && cat /proc/self/mountinfo", ["--tmpfs", "/scratch"]));
    expect(out.startsWith("a\n")).toBe(true);
    const mount = parseMountinfo(lines(out).slice(1).join("\n")).find((m) => m.point === "/scratch");
    expect(mount?.fstype).toBe("tmpfs");
    expect(existsSync(`${R}/scratch/f`)).toBe(false); // it went to the tmpfs, not the rootfs
  });

  test("/etc/hostname and /etc/hosts name the container; the rootfs's own files are untouched", async () => {
    const before = readFileSync(`${R}/etc/hostname`, "utf8");
    const out = ok(await sh("cat /etc/hostname; echo ---; cat /etc/hosts", ["--hostname", "web1"]));
    const [etcHostname, hosts] = out.split("---\n");
    expect(etcHostname).toBe("web1\n");
    expect(hosts).toMatch(/^127\.0\.0\.1\s+localhost$/m);
    expect(hosts).toMatch(/\sweb1$/m);
    expect(readFileSync(`${R}/etc/hostname`, "utf8")).toBe(before);
  });

  test("without --rootfs: the host's files, but a /proc of its own", async () => {
    const hostFile = join(import.meta.dir, "rootfs.ts");
    const out = ok(await run(["sh", "-c", `echo $$; test -f ${hostFile} && echo host-files; ls /proc | grep -c '^[0-9]'`]));
    const [pid, files, count] = lines(out);
    expect(pid).toBe("1");
    expect(files).toBe("host-files");
    expect(Number(count)).toBeLessThanOrEqual(4);
  });
});

// ---- the process: user, environment, working directory ------------------------------------------

describe("process", () => {
  test("-u 1000 gives uid 1000 and gid 1000, with no supplementary groups", async () => {
    expect(ok(await sh("id -u; id -g; id -G", ["-u", "1000"]))).toBe("1000\n1000\n1000\n");
  });

  test("-u 1000:2000 gives uid 1000, gid 2000", async () => {
    expect(ok(await sh("id -u; id -g", ["-u", "1000:2000"]))).toBe("1000\n2000\n");
  });

  test("-u NAME looks the user up in the rootfs's /etc/passwd", async () => {
    expect(ok(await sh("id -u; id -g", ["-u", "user"]))).toBe("1000\n1000\n");
  });

  test("-e K=V and --env-file set the environment; PATH is the container's", async () => {
    const file = join(scratch, "env");
    writeFileSync(file, "# a comment\nFROM_FILE=one two\n\nSHARED=file\n");
    const out = ok(await sh('echo "$K|$FROM_FILE|$SHARED|$PATH"', ["--env-file", file, "-e", "K=V", "-e", "SHARED=flag"]));
    expect(out).toBe("V|one two|flag|/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n");
  });

  test("-w /tmp sets the working directory; the default with a rootfs is /", async () => {
    expect(ok(await sh("pwd", ["-w", "/tmp"]))).toBe("/tmp\n");
    expect(ok(await sh("pwd"))).toBe("/\n");
  });
});

// ---- --init, signals ------------------------------------------------------------------------------

/** Start `minic run --rootfs R FLAGS sleep 100` and wait until the container's sleep runs. */
async function startSleeper(flags: string[]) {
  const proc = Bun.spawn([MINIC, "run", "--name", newName(), "-e", `MARK=${MARK}`, "--rootfs", R, ...flags, "sleep", "100"], {
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  const guard = setTimeout(() => proc.kill("SIGKILL"), 20_000);
  await waitUntil(() => markedProcesses().some((p) => p.args[0] === "sleep"), "the container's sleep to start");
  const end = async () => {
    const [stderr, code] = await Promise.all([new Response(proc.stderr).text(), proc.exited]);
    clearTimeout(guard);
    return { code, stderr };
  };
  return { proc, end };
}

describe("--init and signals", () => {
  test("--init: PID 1 is minic's init, and the command is not", async () => {
    const out = ok(await sh("echo $$; tr '\\0' ' ' < /proc/1/cmdline", ["--init"]));
    const [pid, init] = lines(out);
    expect(pid).not.toBe("1");
    expect(init).toMatch(/minic-init|init\/main\.ts/);
  });

  test("--init passes the command's exit status through", async () => {
    expect((await sh("exit 7", ["--init"])).code).toBe(7);
  });

  // PID 1 is `sleep` (it exec'd), which never calls wait(); a double-forked orphan is re-parented
  // to it and stays a zombie. With --init, PID 1 is the init, which reaps it.
  const ZOMBIE = "((sleep 0.1 &); sleep 0.8; ps -o pid,stat,comm) & exec sleep 1.5";
  const zombies = (ps: string) => lines(ps).slice(1).filter((l) => l.trim().split(/\s+/)[1]!.startsWith("Z"));

  test("without --init an orphan stays a zombie", async () => {
    const ps = ok(await sh(ZOMBIE));
    expect(zombies(ps).length).toBe(1);
  });

  test("with --init the orphan is reaped", async () => {
    const ps = ok(await sh(ZOMBIE, ["--init"]));
    expect(lines(ps).some((l) => /^\s*1\s/.test(l))).toBe(true); // the init, in view
    expect(zombies(ps)).toEqual([]);
  });

  test("SIGTERM to minic with --init ends sleep 100 promptly, with 143", async () => {
    const { proc, end } = await startSleeper(["--init"]);
    const t0 = Date.now();
    proc.kill("SIGTERM");
    const { code, stderr } = await end();
    expect(code).toBe(143);
    expect(Date.now() - t0).toBeLessThan(1_500); // the init forwarded it: no escalation needed
    expect(stderr).not.toContain("SIGKILL");
  });

  test("SIGINT to minic without --init: PID 1 ignores it, minic escalates to SIGKILL and exits 130", async () => {
    const { proc, end } = await startSleeper([]);
    const t0 = Date.now();
    proc.kill("SIGINT");
    const { code, stderr } = await end();
    const elapsed = Date.now() - t0;
    expect(code).toBe(130);
    expect(stderr).toMatch(/^minic: .*SIGKILL/m);
    expect(elapsed).toBeGreaterThan(1_500); // a grace period first
    expect(elapsed).toBeLessThan(6_000);
  });

  test("a second SIGINT kills at once", async () => {
    const { proc, end } = await startSleeper([]);
    proc.kill("SIGINT");
    await Bun.sleep(200);
    const t0 = Date.now();
    proc.kill("SIGINT");
    const { code, stderr } = await end();
    expect(code).toBe(130);
    expect(stderr).toMatch(/second SIGINT.*SIGKILL/);
    expect(Date.now() - t0).toBeLessThan(1_500);
  });
});

// ---- user namespaces --------------------------------------------------------------------------------

const run0 = (argv: string[]) => Bun.spawnSync(argv, { stdout: "pipe", stderr: "pipe" });

describe("rootless: minic run by an unprivileged user", () => {
  const USER = `minicit${process.pid}`;
  let uid = -1;
  let gid = -1;
  const userState = () => `/tmp/minic-${uid}`;
  const asUser = (args: string[]) => run(args, { as: USER, env: { PATH: process.env.PATH } });

  beforeAll(() => {
    const made = run0(["useradd", "-M", "-s", "/bin/sh", USER]);
    if (made.exitCode !== 0) throw new Error(`useradd ${USER}: ${made.stderr}`);
    uid = Number(run0(["id", "-u", USER]).stdout.toString());
    gid = Number(run0(["id", "-g", USER]).stdout.toString());
  });
  afterAll(() => {
    run0(["userdel", USER]);
    rmSync(userState(), { recursive: true, force: true });
  });
  afterEach(() => {
    expect(ourStateDirs(userState())).toEqual([]);
  });

  test("id -u is 0 inside, and uid_map maps 0 to the user's uid", async () => {
    const out = ok(await asUser(["--rootfs", R, "sh", "-c", "id -u; cat /proc/self/uid_map; echo $$"]));
    const [inside, map, ...rest] = lines(out);
    expect(inside).toBe("0");
    expect(map!.trim().split(/\s+/)).toEqual(["0", String(uid), "1"]);
    expect(rest.at(-1)).toBe("1");
  });

  test("a file written to a volume belongs to the user on the host", async () => {
    const vol = mkdtempSync(join(scratch, "rootless-"));
    chownSync(vol, uid, gid);
    ok(await asUser(["--rootfs", R, "-v", `${vol}:/mnt`, "touch", "/mnt/made-inside"]));
    expect(statSync(`${vol}/made-inside`).uid).toBe(uid);
  });

  test("/dev works (devices are bound from the host)", async () => {
    const out = ok(await asUser(["--rootfs", R, "sh", "-c", "echo x > /dev/null && test -c /dev/null && head -c 3 /dev/zero | wc -c"]));
    expect(out.trim()).toBe("3");
  });

  test("without --rootfs: root inside, PID 1", async () => {
    expect(ok(await asUser(["sh", "-c", "id -u; echo $$"]))).toBe("0\n1\n");
  });

  test("--no-namespaces runs the command as the user, on the host", async () => {
    expect(ok(await asUser(["--no-namespaces", "id", "-u"]))).toBe(`${uid}\n`);
  });
});

describe("--userns as root", () => {
  /** Root's /etc/subuid range, else the documented default 100000:65536. */
  const range = () => {
    const entry = existsSync("/etc/subuid")
      ? lines(readFileSync("/etc/subuid", "utf8")).map((l) => l.split(":")).find(([who]) => who === "root" || who === "0")
      : undefined;
    return entry ? [entry[1]!, entry[2]!] : ["100000", "65536"];
  };

  test("container root maps to an unprivileged host range", async () => {
    const out = ok(await sh("id -u; cat /proc/self/uid_map", ["--userns"]));
    const [id, map] = lines(out);
    expect(id).toBe("0");
    expect(map!.trim().split(/\s+/)).toEqual(["0", ...range()]);
  });

  test("what container root writes to a volume belongs to that host uid", async () => {
    const vol = mkdtempSync(join(scratch, "userns-"));
    chmodSync(vol, 0o777);
    ok(await sh("touch /mnt/made-inside", ["--userns", "-v", `${vol}:/mnt`]));
    expect(statSync(`${vol}/made-inside`).uid).toBe(Number(range()[0]));
  });
});

// ---- bundles, errors ----------------------------------------------------------------------------------

describe("bundles, errors and state", () => {
  /** `minic spec` in a fresh bundle dir with DIR/rootfs -> R, then `change` applied to its config.json. */
  async function bundle(change: (config: any) => void): Promise<string> {
    const dir = mkdtempSync(join(scratch, "bundle-"));
    expect(await minic(["spec", "--bundle", dir])).toEqual({ code: 0, stdout: "", stderr: "" });
    symlinkSync(R, `${dir}/rootfs`);
    const config = JSON.parse(readFileSync(`${dir}/config.json`, "utf8"));
    change(config);
    writeFileSync(`${dir}/config.json`, JSON.stringify(config, null, 2));
    return dir;
  }

  test("minic spec, then root.path and args set: minic run --bundle runs it", async () => {
    const dir = await bundle((c) => (c.process.args = ["sh", "-c", "hostname; echo $$; ls /bin/busybox"]));
    expect(ok(await run(["--bundle", dir]))).toBe("minic\n1\n/bin/busybox\n");
  });

  test("a bundle without the cgroup mount runs, read-only as the spec says", async () => {
    const dir = await bundle((c) => {
      c.process.args = ["sh", "-c", "hostname; echo $$; touch /x"];
      c.mounts = c.mounts.filter((m: any) => m.destination !== "/sys/fs/cgroup");
    });
    const r = await run(["--bundle", dir]);
    expect(r.stdout).toBe("minic\n1\n");
    expect(r.stderr).toContain("Read-only file system");
    expect(r.code).toBe(1);
  });

  test("an invalid config.json: 125, and the message names the JSON path", async () => {
    const dir = await bundle((c) => (c.process.args = []));
    const r = await run(["--bundle", dir]);
    expect(r.code).toBe(125);
    expect(r.stderr).toContain(`${dir}/config.json: process.args: must be a non-empty array`);

    const dir2 = await bundle((c) => (c.linux.namespaces[0].type = "bogus"));
    const r2 = await run(["--bundle", dir2, "true"]);
    expect(r2.code).toBe(125);
    expect(r2.stderr).toContain("config.json: linux.namespaces[0].type: must be one of");
  });

  test("a missing --rootfs directory: 125 and a clear message", async () => {
    const r = await run(["--rootfs", `${scratch}/no-such-rootfs`, "true"]);
    expect(r.code).toBe(125);
    expect(r.stderr).toContain(`--rootfs: ${scratch}/no-such-rootfs is not a directory`);
    expect(r.stdout).toBe("");
  });

  test("a command missing inside the rootfs: 127, command not found", async () => {
    const r = await run(["--rootfs", R, "no-such-command-here"]);
    expect(r).toEqual({ code: 127, stdout: "", stderr: "minic: no-such-command-here: command not found\n" });
    const hostOnly = await run(["--rootfs", R, "bash", "-c", "true"]); // on the host, not in the rootfs
    expect(hostOnly.code).toBe(127);
    expect(hostOnly.stderr).toContain("bash: command not found");
  });

  test("nothing is left in /run/minic after a run, a failed run, and a command not found", async () => {
    const names = [newName(), newName(), newName()];
    ok(await run(["--name", names[0]!, "--rootfs", R, "true"], { unnamed: true }));
    expect((await run(["--name", names[1]!, "--rootfs", R, "-w", "/no/such/dir", "true"], { unnamed: true })).code).toBe(125);
    expect((await run(["--name", names[2]!, "--rootfs", R, "no-such-command"], { unnamed: true })).code).toBe(127);
    for (const name of names) expect(existsSync(`${STATE_ROOT}/${name}`)).toBe(false);
  });

  test("containers started at the same time do not disturb each other (state directories, setup)", async () => {
    // 32 runs, 8 at a time; the hostname of each is its own --name
    const results: Array<{ name: string; code: number; stdout: string; stderr: string }> = [];
    let next = 0;
    const worker = async () => {
      while (next < 32) {
        next++;
        const name = newName();
        results.push({ name, ...(await run(["--name", name, "--rootfs", R, "hostname"], { unnamed: true })) });
      }
    };
    await Promise.all(Array.from({ length: 8 }, worker));
    const failed = results.filter((r) => r.code !== 0 || r.stdout !== `${r.name.slice(0, 12)}\n`);
    expect(failed).toEqual([]);
  });
});

// ---- other modes: --no-namespaces, --dry-run, --trace -------------------------------------------------

describe("modes", () => {
  test("--no-namespaces runs on the host: the host's hostname, and not PID 1", async () => {
    const [name, pid, netCount] = lines(ok(await run(["--no-namespaces", "sh", "-c", "hostname; echo $$; grep -c : /proc/net/dev"])));
    expect(name).toBe(hostHostname());
    expect(Number(pid)).toBeGreaterThan(1);
    expect(Number(netCount)).toBe(interfaces(readFileSync("/proc/net/dev", "utf8")).length);
  });

  test("--dry-run prints the plan, with pivot_root for --rootfs, and runs nothing", async () => {
    const vol = mkdtempSync(join(scratch, "dry-"));
    const r = await run(["--dry-run", "--rootfs", R, "-v", `${vol}:/mnt`, "sh", "-c", "echo ran > /mnt/ran"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^ 1\. prctl\(PR_SET_PDEATHSIG, SIGKILL\)$/m);
    expect(r.stdout).toMatch(/^\d+\. pivot_root\("\.", "\."\)$/m);
    expect(r.stdout).toMatch(/^\d+\. execve\("\/bin\/sh", \["sh", "-c", "echo ran > \/mnt\/ran"\], .*\[exec\]$/m);
    expect(existsSync(`${vol}/ran`)).toBe(false);
    const noRootfs = await run(["--dry-run", "true"]);
    expect(noRootfs.stdout).not.toContain("pivot_root");
    expect(noRootfs.stdout).toContain("unshare(");
  });

  test("--trace narrates the flow on stderr: unshare, clone(CLONE_PARENT...), pivot_root", async () => {
    const r = await run(["--trace", "--rootfs", R, "echo", "traced"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe("traced\n");
    expect(r.stderr).toMatch(/unshare\(CLONE_NEWNS\|.*CLONE_NEWPID.*\) = 0/);
    expect(r.stderr).toMatch(/clone\(CLONE_PARENT\|SIGCHLD\) = \d+/);
    expect(r.stderr).toMatch(/pivot_root\("\.", "\."\) = 0/);
    expect(r.stderr).toMatch(/execve\("\/bin\/echo"/);
  });
});
