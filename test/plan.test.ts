// Issue 3, unit level: the list of prepared steps that a spec compiles to (what --dry-run prints
// and the child runs), and resolveInRoot. Nothing is run and no root is needed: specs are built
// with `minic run`'s own flag parsing, or by hand, over a small fake rootfs in a temp directory.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { splitArgv } from "../src/cli/argv.ts";
import { run, specFromRunFlags } from "../src/cli/run.ts";
import { formatPlan } from "../src/container.ts";
import { compilePlan, type PlanContext } from "../src/plan.ts";
import { describeStep, type Step } from "../src/process/step.ts";
import { resolveInRoot } from "../src/rootfs/paths.ts";
import { defaultSpec } from "../src/spec/defaults.ts";
import type { Spec } from "../src/spec/types.ts";

let scratch: string;
let root: string; // a fake rootfs: enough for PATH lookups and mount targets

beforeAll(() => {
  scratch = mkdtempSync(join(tmpdir(), "minic-plan-"));
  root = join(scratch, "rootfs");
  for (const dir of ["bin", "proc", "dev", "sys", "etc", "tmp"]) mkdirSync(join(root, dir), { recursive: true });
  writeFileSync(join(root, "bin/sh"), "");
});
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

// ---- helpers --------------------------------------------------------------------------------------

/** The spec `minic run ARGV...` builds (its flags, then the command). */
function specFor(...argv: string[]): Spec {
  const { values, all, rest } = splitArgv(argv, run.command.args);
  return specFromRunFlags({ flags: values, all, rest });
}

/** The same spec without a user namespace: what root gets without --userns, whoever runs the test. */
function withoutUserns(spec: Spec): Spec {
  spec.linux!.namespaces = spec.linux!.namespaces!.filter((ns) => ns.type !== "user");
  delete spec.linux!.uidMappings;
  delete spec.linux!.gidMappings;
  return spec;
}

/** The plan as lines: `call(args)`, as --dry-run shows them. */
const describePlan = (steps: Step[]) => steps.map(describeStep);
const planLines = (spec: Spec, context?: PlanContext) => describePlan(compilePlan(spec, context));

const matches = (line: string, pattern: string | RegExp) => (typeof pattern === "string" ? line.startsWith(pattern) : pattern.test(line));

/** Indexes of the lines matching each pattern, each found after the previous; fails naming the first missing one. */
function expectInOrder(lines: string[], patterns: Array<string | RegExp>): number[] {
  const at: number[] = [];
  let from = 0;
  for (const pattern of patterns) {
    const i = lines.findIndex((line, j) => j >= from && matches(line, pattern));
    if (i < 0) {
      const listing = lines.map((l, j) => `${String(j + 1).padStart(3)}. ${l}`).join("\n");
      throw new Error(`expected ${pattern} after step ${from} in the plan:\n${listing}`);
    }
    at.push(i);
    from = i + 1;
  }
  return at;
}

const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
const count = (lines: string[], pattern: string | RegExp) => lines.filter((l) => matches(l, pattern)).length;

/** The namespace flags of an unshare line, as a sorted list. */
const unshareFlags = (line: string) => line.slice("unshare(".length, -1).split("|").sort();
const allUnshareFlags = (lines: string[]) => lines.filter((l) => l.startsWith("unshare(")).flatMap(unshareFlags);

// ---- the flow -------------------------------------------------------------------------------------

describe("compilePlan: the order of the flow", () => {
  test("with a user namespace: unshare(user), sync, unshare(rest), unshare(cgroup), clone, mounts, pivot_root, hostname, ..., execve", () => {
    const steps = compilePlan(specFor("--rootfs", root, "--userns", "--hostname", "h1", "sh"));
    const lines = describePlan(steps);
    expect(lines[0]).toBe("prctl(PR_SET_PDEATHSIG, SIGKILL)");
    const [user, sync, rest, cgroup, clone, , slave, selfBind, proc, pivot, umount, chdirRoot, hostname, , , , , , exec] = expectInOrder(lines, [
      "unshare(CLONE_NEWUSER)",
      "read(go pipe)",
      /^unshare\(CLONE_NEW(NS|UTS|IPC|PID|NET)/,
      "unshare(CLONE_NEWCGROUP)",
      "clone(CLONE_PARENT|SIGCHLD)",
      "prctl(PR_SET_PDEATHSIG, SIGKILL)", // again: not inherited across the fork
      'mount(NULL, "/", NULL, MS_REC|MS_SLAVE, NULL)',
      `mount("${root}", "${root}", NULL, MS_BIND|MS_REC, NULL)`,
      `mount("proc", "${root}/proc", "proc", `,
      'pivot_root(".", ".")',
      'umount2(".", MNT_DETACH)',
      'chdir("/")',
      'sethostname("h1", 2)',
      "socket+ioctl(", // lo up
      "setresgid(",
      "setresuid(",
      "close_range(",
      "sigaction+sigprocmask(",
      'execve("/bin/sh", ["sh"], ',
    ]);
    expect(user).toBe(1);
    expect(sync).toBe(2);
    expect(steps[sync!]!.kind).toBe("sync");
    expect(steps[sync!]!.agent).toBeFunction(); // the agent's half: writing uid_map and gid_map
    expect(steps[sync!]!.label).toContain("uid_map");
    expect(unshareFlags(lines[rest!]!)).toEqual(["CLONE_NEWIPC", "CLONE_NEWNET", "CLONE_NEWNS", "CLONE_NEWPID", "CLONE_NEWUTS"]);
    expect(cgroup).toBeGreaterThan(rest!);
    expect(steps[clone!]!.kind).toBe("fork");
    expect(slave).toBeGreaterThan(clone!); // the mounts happen in the new PID namespace
    expect(selfBind).toBeLessThan(proc!);
    expect([umount! - pivot!, chdirRoot! - umount!]).toEqual([1, 1]);
    expect(hostname).toBeGreaterThan(chdirRoot!);
    expect(exec).toBe(lines.length - 1);
    expect(steps[exec!]!.kind).toBe("exec");
  });

  test("with a user namespace, root inside is taken right after the sync, before the other namespaces", () => {
    const lines = planLines(specFor("--rootfs", root, "--userns", "sh"));
    const [sync, gid, uid, rest] = expectInOrder(lines, ["read(go pipe)", "setresgid(0, 0, 0)", "setresuid(0, 0, 0)", /^unshare\(CLONE_NEWNS/]);
    expect([gid! - sync!, uid! - gid!, rest! - uid!]).toEqual([1, 1, 1]);
  });

  test("every step that names the rootfs on the host runs between the clone and pivot_root", () => {
    const lines = planLines(specFor("--rootfs", root, "--userns", "-v", `${scratch}:/mnt`, "--tmpfs", "/scratch", "sh"));
    const [clone, pivot] = expectInOrder(lines, ["clone(", "pivot_root("]);
    lines.forEach((line, i) => {
      if (line.includes(root)) expect({ i, line, inside: i > clone! && i < pivot! }).toEqual({ i, line, inside: true });
    });
  });

  test("without a user namespace: no unshare(CLONE_NEWUSER), no sync", () => {
    const steps = compilePlan(withoutUserns(specFor("--rootfs", root, "sh")));
    const lines = describePlan(steps);
    expect(steps.some((s) => s.kind === "sync")).toBe(false);
    expect(allUnshareFlags(lines)).not.toContain("CLONE_NEWUSER");
    expect(lines[1]).toMatch(/^unshare\(CLONE_NEWNS/);
    expectInOrder(lines, [/^unshare\(CLONE_NEWNS/, "unshare(CLONE_NEWCGROUP)", "clone(CLONE_PARENT|SIGCHLD)", "mount(", 'pivot_root(".", ".")', "execve("]);
  });

  test("compilePlan refuses a spec without a command, naming the JSON path", () => {
    const spec = specFor("--rootfs", root, "sh");
    spec.process!.args = [];
    expect(() => compilePlan(spec)).toThrow("process.args: must be a non-empty array");
  });
});

// ---- namespaces chosen by flags --------------------------------------------------------------------

describe("compilePlan: namespaces from run's flags", () => {
  test("by default: new mount, UTS, IPC, network, PID and cgroup namespaces; lo is brought up", () => {
    const lines = planLines(withoutUserns(specFor("--rootfs", root, "sh")));
    expect(allUnshareFlags(lines).sort()).toEqual(
      ["CLONE_NEWCGROUP", "CLONE_NEWIPC", "CLONE_NEWNET", "CLONE_NEWNS", "CLONE_NEWPID", "CLONE_NEWUTS"],
    );
    expect(count(lines, "socket+ioctl(")).toBe(1);
  });

  test("--network host: no CLONE_NEWNET, and no loopback step", () => {
    const lines = planLines(specFor("--rootfs", root, "--network", "host", "sh"));
    expect(allUnshareFlags(lines)).not.toContain("CLONE_NEWNET");
    expect(allUnshareFlags(lines)).toContain("CLONE_NEWPID");
    expect(count(lines, "socket+ioctl(")).toBe(0);
  });

  test("--pid host: no CLONE_NEWPID and no second fork", () => {
    const steps = compilePlan(specFor("--rootfs", root, "--pid", "host", "sh"));
    expect(allUnshareFlags(describePlan(steps))).not.toContain("CLONE_NEWPID");
    expect(steps.some((s) => s.kind === "fork")).toBe(false);
  });

  test("--ipc host, --uts host, --cgroupns host: those namespaces are shared, and the hostname is not set", () => {
    const lines = planLines(specFor("--rootfs", root, "--ipc", "host", "--uts", "host", "--cgroupns", "host", "sh"));
    const flags = allUnshareFlags(lines);
    for (const flag of ["CLONE_NEWIPC", "CLONE_NEWUTS", "CLONE_NEWCGROUP"]) expect(flags).not.toContain(flag);
    expect(flags).toContain("CLONE_NEWNS");
    expect(count(lines, "sethostname(")).toBe(0);
  });

  test("--hostname and --domainname", () => {
    const lines = planLines(specFor("--rootfs", root, "--hostname", "web", "--domainname", "example.org", "sh"));
    expectInOrder(lines, ['sethostname("web", 3)', 'setdomainname("example.org", 11)']);
  });

  test("--no-namespaces gives the seed's Part 0 plan: fork, exec, wait and nothing else", () => {
    const steps = compilePlan(specFor("--no-namespaces", "true"));
    expect(steps.map((s) => s.call)).toEqual([
      "prctl", "chdir", "setgroups", "setresgid", "setresuid", "umask", "close_range", "sigaction+sigprocmask", "execve",
    ]);
    expect(steps.filter((s) => s.kind !== "call").map((s) => s.kind)).toEqual(["exec"]);
  });

  test("without --rootfs: a private mount namespace with its own /proc, and no pivot_root", () => {
    const lines = planLines(withoutUserns(specFor("true")));
    expectInOrder(lines, ["clone(", 'mount(NULL, "/", NULL, MS_REC|MS_SLAVE, NULL)', 'mount("proc", "/proc", "proc", MS_NOSUID|MS_NODEV|MS_NOEXEC, NULL)']);
    expect(count(lines, "pivot_root(")).toBe(0);
  });
});

// ---- the filesystem ---------------------------------------------------------------------------------

const DEVICES: Array<[string, number, number]> = [
  ["null", 1, 3], ["zero", 1, 5], ["full", 1, 7], ["random", 1, 8], ["urandom", 1, 9], ["tty", 5, 0],
];

describe("compilePlan: the container's filesystem", () => {
  test("without a user namespace the devices are made with mknod, mode 0666", () => {
    const lines = planLines(withoutUserns(specFor("--rootfs", root, "sh")));
    for (const [name, major, minor] of DEVICES) {
      expect(lines).toContain(`mknod("${root}/dev/${name}", S_IFCHR|0666, makedev(${major}, ${minor}))`);
    }
    expect(lines.filter((l) => /^mount\("\/dev\/(null|zero|full|random|urandom|tty)"/.test(l))).toEqual([]);
  });

  test("with a user namespace (rootless, --userns) the host's devices are bound instead: no mknod", () => {
    const lines = planLines(specFor("--rootfs", root, "--userns", "sh"));
    expect(count(lines, "mknod(")).toBe(0);
    for (const [name] of DEVICES) {
      const target = `${root}/dev/${name}`;
      expectInOrder(lines, [`open("${target}", O_CREAT`, `mount("/dev/${name}", "${target}", NULL, MS_BIND, NULL)`]);
    }
  });

  test("/dev gets pts (newinstance, ptmxmode=0666), shm, mqueue and the usual links", () => {
    const lines = planLines(withoutUserns(specFor("--rootfs", root, "sh")));
    expectInOrder(lines, [
      `mount("tmpfs", "${root}/dev", "tmpfs", `,
      `mount("devpts", "${root}/dev/pts", "devpts", MS_NOSUID|MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620`,
      `mount("shm", "${root}/dev/shm", "tmpfs", `,
      `mount("mqueue", "${root}/dev/mqueue", "mqueue", `,
      `mount("sysfs", "${root}/sys", "sysfs", MS_RDONLY|MS_NOSUID|MS_NODEV|MS_NOEXEC, NULL)`,
    ]);
    for (const [to, link] of [["/proc/self/fd", "fd"], ["/proc/self/fd/0", "stdin"], ["/proc/self/fd/1", "stdout"], ["/proc/self/fd/2", "stderr"], ["pts/ptmx", "ptmx"]]) {
      expect(lines).toContain(`symlink("${to}", "${root}/dev/${link}")`);
    }
    expect(lines.find((l) => l.startsWith(`mount("proc", "${root}/proc"`))).toContain("MS_NOSUID|MS_NODEV|MS_NOEXEC");
  });

  test("devpts gets gid=5 (tty) without a user namespace, and none in one that does not map gid 5", () => {
    const devpts = (spec: Spec) => planLines(spec).find((l) => l.startsWith('mount("devpts"'))!;
    const config = defaultSpec(); // runc spec's: no user namespace
    config.root = { path: root, readonly: false };
    config.mounts = config.mounts!.filter((m) => m.destination !== "/sys/fs/cgroup");
    expect(devpts(config)).toContain('"newinstance,ptmxmode=0666,mode=0620,gid=5"');
    const userns = devpts(specFor("--rootfs", root, "--userns", "sh"));
    expect(userns).toContain("newinstance,ptmxmode=0666");
    expect(userns).not.toContain("gid=5");
  });

  test("in a user namespace sharing the host's network, /sys is the host's, bound; sharing its IPC, so is /dev/mqueue", () => {
    const lines = planLines(specFor("--rootfs", root, "--userns", "--network", "host", "--ipc", "host", "sh"));
    expect(count(lines, 'mount("sysfs"')).toBe(0);
    expectInOrder(lines, [`mount("/sys", "${root}/sys", NULL, MS_BIND|MS_REC, NULL)`, `statvfs+mount("${root}/sys", MS_RDONLY|`]);
    expect(count(lines, 'mount("mqueue"')).toBe(0);
    expect(lines).toContain(`mount("/dev/mqueue", "${root}/dev/mqueue", NULL, MS_BIND|MS_REC, NULL)`);
  });

  test("--read-only remounts the new root read-only after pivot_root; without it, no remount", () => {
    const lines = planLines(specFor("--rootfs", root, "--read-only", "sh"));
    const [, , remount] = expectInOrder(lines, ['pivot_root(".", ".")', 'chdir("/")', 'statvfs+mount("/", MS_RDONLY|MS_REMOUNT|MS_BIND|<locked flags>)']);
    expect(remount).toBeLessThan(lines.length - 1);
    expect(count(planLines(specFor("--rootfs", root, "sh")), 'statvfs+mount("/"')).toBe(0);
  });

  test("-v HOST:CTR:ro binds and remounts read-only; -v HOST:CTR binds only; a missing target is created", () => {
    const vol = join(scratch, "vol");
    mkdirSync(vol, { recursive: true });
    const ro = planLines(specFor("--rootfs", root, "-v", `${vol}:/data:ro`, "sh"));
    expectInOrder(ro, [
      `mkdir("${root}/data", 0755)`,
      `mount("${vol}", "${root}/data", NULL, MS_BIND|MS_REC, NULL)`,
      `statvfs+mount("${root}/data", MS_RDONLY|MS_REMOUNT|MS_BIND|<locked flags>)`,
      'pivot_root(".", ".")',
    ]);
    const rw = planLines(specFor("--rootfs", root, "-v", `${vol}:/tmp`, "sh"));
    expect(rw).toContain(`mount("${vol}", "${root}/tmp", NULL, MS_BIND|MS_REC, NULL)`);
    expect(count(rw, `mkdir("${root}/tmp"`)).toBe(0); // it exists
    expect(count(rw, `statvfs+mount("${root}/tmp"`)).toBe(0);
  });

  test("a file volume is bound onto a file created for it, not a directory", () => {
    const file = join(scratch, "config.txt");
    writeFileSync(file, "x");
    const lines = planLines(specFor("--rootfs", root, "-v", `${file}:/etc/app.conf`, "sh"));
    expectInOrder(lines, [`open("${root}/etc/app.conf", O_CREAT`, `mount("${file}", "${root}/etc/app.conf", NULL, MS_BIND|MS_REC, NULL)`]);
    expect(count(lines, `mkdir("${root}/etc/app.conf"`)).toBe(0);
  });

  test("--tmpfs /scratch mounts a tmpfs, nosuid,nodev,noexec, 64 MiB", () => {
    const lines = planLines(specFor("--rootfs", root, "--tmpfs", "/scratch", "sh"));
    expectInOrder(lines, [`mkdir("${root}/scratch", 0755)`, `mount("tmpfs", "${root}/scratch", "tmpfs", MS_NOSUID|MS_NODEV|MS_NOEXEC, "size=65536k")`]);
  });

  test("the generated /etc files are bound before pivot_root", () => {
    const etcFiles = { hostname: "/run/minic/x/hostname", hosts: "/run/minic/x/hosts", "resolv.conf": "/run/minic/x/resolv.conf" };
    const lines = planLines(specFor("--rootfs", root, "sh"), { etcFiles });
    expectInOrder(lines, [
      `mount("/run/minic/x/hostname", "${root}/etc/hostname", NULL, MS_BIND, NULL)`,
      `mount("/run/minic/x/hosts", "${root}/etc/hosts", NULL, MS_BIND, NULL)`,
      `mount("/run/minic/x/resolv.conf", "${root}/etc/resolv.conf", NULL, MS_BIND, NULL)`,
      'pivot_root(".", ".")',
    ]);
  });

  test("--init: minic's init is bound under /dev/.minic-init and exec'd instead of the command", () => {
    const steps = compilePlan(specFor("--rootfs", root, "sh"), { init: true });
    const lines = describePlan(steps);
    const initDir = `${root}/dev/.minic-init`;
    expectInOrder(lines, [
      `mount("tmpfs", "${root}/dev", "tmpfs", `,
      new RegExp(`^mount\\("[^"]+", "${escape(initDir)}/bun", NULL, MS_BIND, NULL\\)$`),
      new RegExp(`^statvfs\\+mount\\("${escape(initDir)}/bun", MS_RDONLY`),
      new RegExp(`^mount\\("[^"]+/src", "${escape(initDir)}/src", NULL, MS_BIND\\|MS_REC, NULL\\)$`),
      'pivot_root(".", ".")',
    ]);
    const exec = lines.at(-1)!;
    expect(exec).toMatch(/^execve\("\/dev\/\.minic-init\/lib\/ld-linux[^"]*", \["minic-init", /);
    expect(exec).toContain('"/dev/.minic-init/bun", "/dev/.minic-init/src/init/main.ts", "sh"]');
    const noDevTmpfs = specFor("--rootfs", root, "sh");
    noDevTmpfs.mounts = noDevTmpfs.mounts!.filter((m) => m.destination !== "/dev");
    expect(() => compilePlan(noDevTmpfs, { init: true })).toThrow("--init needs the container's /dev to be a tmpfs");
  });

  test("mount targets before pivot_root are resolved inside the rootfs: a /proc symlinked to /etc mounts on ROOTFS/etc, not the host's /etc", () => {
    const evil = join(scratch, "evil-rootfs");
    for (const dir of ["bin", "etc", "sys", "dev"]) mkdirSync(join(evil, dir), { recursive: true });
    symlinkSync("/etc", join(evil, "proc"));
    symlinkSync("../../../../../../tmp", join(evil, "mnt"));
    const lines = planLines(withoutUserns(specFor("--rootfs", evil, "-v", `${scratch}:/mnt/x`, "sh")));
    expect(lines).toContain(`mount("proc", "${evil}/etc", "proc", MS_NOSUID|MS_NODEV|MS_NOEXEC, NULL)`);
    expect(lines).toContain(`mount("${scratch}", "${evil}/tmp/x", NULL, MS_BIND|MS_REC, NULL)`);
    const beforePivot = lines.slice(0, lines.findIndex((l) => l.startsWith("pivot_root(")));
    for (const line of beforePivot.filter((l) => l.startsWith("mount(") || l.startsWith("mkdir(") || l.startsWith("mknod("))) {
      const target = line.startsWith("mount(") ? line.split(", ")[1]! : line.slice(line.indexOf("(") + 1).split(", ")[0]!;
      if (target !== '"/"' && target !== "NULL") expect(target.startsWith(`"${evil}`)).toBe(true);
    }
  });
});

// ---- formatPlan: what --dry-run prints ----------------------------------------------------------------

describe("formatPlan", () => {
  test("numbered lines, each with its label, and the non-call steps tagged", () => {
    const text = formatPlan(specFor("--rootfs", root, "--userns", "sh"));
    const rows = text.split("\n");
    expect(rows[0]).toBe(" 1. prctl(PR_SET_PDEATHSIG, SIGKILL)");
    expect(rows[1]).toBe("      set the parent-death signal");
    expect(text).toMatch(/^ 3\. read\(go pipe\)   \[sync\]$/m);
    expect(text).toMatch(/^ *\d+\. clone\(CLONE_PARENT\|SIGCHLD\)   \[fork\]$/m);
    expect(text).toMatch(/^ *\d+\. pivot_root\("\.", "\."\)$/m);
    expect(rows.at(-2)).toMatch(/^ *\d+\. execve\("\/bin\/sh", \["sh"\], \[\d+ vars\]\)   \[exec\]$/);
    expect(rows.at(-1)).toBe("      exec sh");
    // numbering is consecutive
    const numbers = rows.filter((r) => /^ *\d+\. /.test(r)).map((r) => Number(r.trim().split(".")[0]));
    expect(numbers).toEqual(numbers.map((_, i) => i + 1));
  });
});

// ---- resolveInRoot ----------------------------------------------------------------------------------------

describe("resolveInRoot keeps every path inside the root", () => {
  let r: string;
  beforeAll(() => {
    r = join(scratch, "paths");
    mkdirSync(join(r, "etc/ssl"), { recursive: true });
    mkdirSync(join(r, "usr/lib"), { recursive: true });
    symlinkSync("/etc", join(r, "abs")); // absolute: means ROOT/etc
    symlinkSync("/etc/ssl", join(r, "ssl"));
    symlinkSync("../../../../..", join(r, "up")); // relative, climbing past the top
    symlinkSync("../lib", join(r, "usr/rel")); // relative, inside: ROOT/lib
    symlinkSync("/", join(r, "slash"));
    symlinkSync("chain2", join(r, "chain1"));
    symlinkSync("/usr/lib", join(r, "chain2"));
    symlinkSync("loop2", join(r, "loop1"));
    symlinkSync("loop1", join(r, "loop2"));
  });

  test.each<[string, string, string]>([
    ["a plain path", "/etc/passwd", "/etc/passwd"],
    ["a path whose components do not exist yet", "/new/dir/x", "/new/dir/x"],
    ["the root itself", "/", ""],
    [". components", "/./etc/./passwd", "/etc/passwd"],
    ["an absolute symlink", "/abs/passwd", "/etc/passwd"],
    ["an absolute symlink as the last component", "/abs", "/etc"],
    ["`..` past the top", "/../../../etc/passwd", "/etc/passwd"],
    ["a relative symlink climbing past the top", "/up/etc/shadow", "/etc/shadow"],
    ["a relative symlink in a subdirectory", "/usr/rel/x", "/lib/x"],
    ["a symlink to /", "/slash/etc", "/etc"],
    ["a chain of symlinks", "/chain1/x", "/usr/lib/x"],
    ["`..` after a symlink applies to its target", "/ssl/../hosts", "/etc/hosts"],
    ["`..` inside the tree", "/usr/lib/../bin", "/usr/bin"],
  ])("%s: %s", (_, path, inside) => {
    expect(resolveInRoot(r, path)).toBe(`${r}${inside}`);
  });

  test("a symlink loop is an error, not a hang", () => {
    expect(() => resolveInRoot(r, "/loop1/x")).toThrow("too many levels of symbolic links");
  });
});
