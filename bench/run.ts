// Start-to-exit wall time of `minic run /bin/true` next to the things it is made of and competes with.
//
//   bun bench/run.ts            BENCH_RUNS=N (default 50), BENCH_WARMUP=N (default 5),
//                               BENCH_RSS_RUNS=N (default 5), BENCH_HYPERFINE=0 to skip hyperfine
//
// Each row is a command spawned from this process with Bun.spawnSync and timed with Bun.nanoseconds()
// around the call, so every row carries the same harness cost: the cost of spawning /bin/true itself,
// which the in-process spawnSync row shows. Rows run round-robin (one run of each row per round), so
// drift in the machine's load spreads over all rows instead of biasing whichever ran during it.
// Nothing is asserted: the script prints, and a human reads.
//
// Container rows (issue 3) run on the busybox rootfs R that test/rootfs.ts builds: minic, bwrap, unshare,
// and crun and runc on a bundle B in bench/.cache/bundle whose config.json is `runc spec` with root.path = R,
// terminal false and args ["/bin/true"]. Every crun/runc run gets a fresh container id (minic-bench-PID-N);
// after each run, outside the timed section, a container whose state is still there is deleted with
// `delete -f`. At the end the script checks that nothing leaked: the host's mountinfo, cgroup directories
// named after the bench ids under /sys/fs/cgroup/*/ (removed, with a warning), and /run/minic.
import { existsSync, mkdirSync, readFileSync, readdirSync, rmdirSync, rmSync, writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { ensureRootfs } from "../test/rootfs.ts";

const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const CACHE = `${ROOT}/bench/.cache`;
const RUNS = Number(process.env.BENCH_RUNS) || 50;
const RSS_RUNS = Number(process.env.BENCH_RSS_RUNS) || 5; // peak RSS barely varies: a few runs under GNU time
const WARMUP = Number(process.env.BENCH_WARMUP ?? 5) || 0;
// The Bun that bin/minic runs, so that `bun -e 0` is the floor of the very same binary.
const BUN = existsSync(`${ROOT}/node_modules/.bin/bun`) ? `${ROOT}/node_modules/.bin/bun` : process.execPath;
const MINIC = `${ROOT}/bin/minic`;

interface Row {
  name: string;
  /** A command, timed from spawn to exit; a function when each run needs its own argv (a fresh container id). */
  argv?: string[] | (() => string[]);
  /** Called after every spawn of argv (probe, timed, RSS), outside the timed section: cleans up after the run. */
  after?: (argv: string[]) => void;
  /** Or a call timed inside this Bun process. */
  inProcess?: () => void;
  needsRoot?: boolean;
  /** true when the row can run; otherwise why not (printed, and the row is skipped). */
  available?: () => true | string;
}

const onPath = (tool: string) => () => (Bun.which(tool) ? (true as const) : `${tool} not found on PATH`);

// The seed's Part 0: the least a runtime can do. Includes added so that a strict compiler takes it.
const C_SOURCE = `#include <unistd.h>
#include <sys/wait.h>
int main(int c,char**v){int p=fork(); if(!p){execv(v[1],&v[1]);_exit(127);} waitpid(p,0,0);}
`;
const C_BINARY = `${CACHE}/forkexec`;

/** Build the C program into bench/.cache (again only when the source changed). */
function buildForkExec(): true | string {
  if (!Bun.which("cc")) return "cc not found on PATH";
  mkdirSync(CACHE, { recursive: true });
  const source = `${CACHE}/forkexec.c`;
  if (existsSync(C_BINARY) && existsSync(source) && readFileSync(source, "utf8") === C_SOURCE) return true;
  writeFileSync(source, C_SOURCE);
  const cc = Bun.spawnSync(["cc", "-O2", "-o", C_BINARY, source], { stderr: "pipe" });
  return cc.exitCode === 0 ? true : `cc failed: ${cc.stderr.toString().trim()}`;
}

const spawnTrue = () => Bun.spawnSync(["/bin/true"], { stdio: ["ignore", "ignore", "ignore"] });

// ---- container rows: the rootfs, the bundle, fresh ids, cleanup ----
let rootfs: string | null = null;
let rootfsError = "";
/** The busybox rootfs, built once by test/rootfs.ts (which may apt-get install busybox-static). */
function haveRootfs(): true | string {
  if (rootfs) return true;
  if (rootfsError) return rootfsError;
  try {
    rootfs = ensureRootfs();
    return true;
  } catch (e) {
    return (rootfsError = `no rootfs: ${(e as Error).message.split("\n")[0]}`);
  }
}
// Resolved once, here, so that the rows below have fixed argvs (and hyperfine can run them too).
const R = haveRootfs() === true ? rootfs! : "/nonexistent: no rootfs";

const BUNDLE = `${CACHE}/bundle`;
let bundleState: true | string | null = null;
/**
 * B: `runc spec` (crun spec if runc is missing) with root.path = R (absolute, so no copy and no bind),
 * process.terminal false and process.args ["/bin/true"]; everything else as the runtime writes it
 * (root.readonly true, the default mounts, namespaces, masked paths, 3 capabilities, RLIMIT_NOFILE 1024).
 * Written afresh on every bench run.
 */
function haveBundle(tool: string): () => true | string {
  return () => {
    if (!Bun.which(tool)) return `${tool} not found on PATH`;
    if (bundleState !== null) return bundleState;
    const root = haveRootfs();
    if (root !== true) return (bundleState = root);
    const specTool = Bun.which("runc") ? "runc" : "crun";
    rmSync(BUNDLE, { recursive: true, force: true });
    mkdirSync(BUNDLE, { recursive: true });
    const spec = Bun.spawnSync([specTool, "spec"], { cwd: BUNDLE, stdin: "ignore", stdout: "ignore", stderr: "pipe" });
    if (spec.exitCode !== 0) return (bundleState = `${specTool} spec failed: ${spec.stderr.toString().trim()}`);
    const config = JSON.parse(readFileSync(`${BUNDLE}/config.json`, "utf8"));
    config.root.path = R;
    config.process.terminal = false;
    config.process.args = ["/bin/true"];
    writeFileSync(`${BUNDLE}/config.json`, JSON.stringify(config, null, "\t") + "\n");
    return (bundleState = true);
  };
}

// Every crun/runc run gets its own id. The prefix is what the leak checks at the end look for.
const ID_PREFIX = "minic-bench-";
let idCounter = 0;
const freshId = () => `${ID_PREFIX}${process.pid}-${++idCounter}`;
const warnings: string[] = [];

// crun 1.8.1 refuses this machine's "hybrid" cgroups (a cgroup2 mount at /sys/fs/cgroup/unified that lists a
// controller), so it runs in a private mount namespace where that mount is lazily unmounted (notes/peers.md).
// The wrapper costs an unshare(1) and a sh; the "crun wrapper alone" row measures that part by itself.
const CRUN_WRAP = ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", 'umount -l /sys/fs/cgroup/unified; exec crun "$@"', "crun"];
const crunArgv = () => [...CRUN_WRAP, "run", "--bundle", BUNDLE, freshId()];
const runcArgv = () => ["runc", "run", "--bundle", BUNDLE, freshId()];
/** After a run: if the runtime still has the container's state, delete it (outside the timed section). */
function deleteIfLeft(runtime: "crun" | "runc") {
  return (argv: string[]) => {
    const id = argv[argv.length - 1]!;
    if (!existsSync(`/run/${runtime}/${id}`)) return;
    warnings.push(`${runtime} left container ${id} behind; deleted with \`${runtime} delete -f\``);
    const del = runtime === "crun" ? [...CRUN_WRAP, "delete", "-f", id] : ["runc", "delete", "-f", id];
    Bun.spawnSync(del, { stdio: ["ignore", "ignore", "ignore"] });
  };
}

// The first row is the reference for the "x minic run" column, ROOTFS_ROW for "x minic --rootfs", C_ROW for "x C".
const C_ROW = "C fork+execv+waitpid";
const ROOTFS_ROW = "minic run --rootfs R /bin/true";
const LIMITS_ROW = "minic run --rootfs R -m 64m --cpus 1 --pids-limit 100 /bin/true";
const CRUN_ROW = "crun run --bundle B (+ unshare --mount + sh wrapper)";
const CRUN_WRAP_ROW = "  crun's wrapper alone: unshare --mount + sh umount -l";
const rows: Row[] = [
  // --network none: the bridge (root's default) is measured apart, below, in a namespace of the bench's own.
  { name: "minic run /bin/true", argv: [MINIC, "run", "--network", "none", "/bin/true"] },
  { name: "minic run --no-namespaces /bin/true (Part 0)", argv: [MINIC, "run", "--no-namespaces", "/bin/true"] },
  { name: C_ROW, argv: [C_BINARY, "/bin/true"], available: buildForkExec },
  // The one call that a spawnSync-based agent would make, without any startup around it.
  { name: "Bun.spawnSync(/bin/true) in-process", inProcess: spawnTrue },
  { name: "bun -e 'Bun.spawnSync(/bin/true)'", argv: [BUN, "-e", 'Bun.spawnSync(["/bin/true"])'] },
  { name: "unshare --fork --pid true", argv: ["unshare", "--fork", "--pid", "true"], needsRoot: true, available: onPath("unshare") },
  { name: "bun -e 0", argv: [BUN, "-e", "0"] },
  { name: "minic --version", argv: [MINIC, "--version"] },
  // Not one of the issue's rows: it splits minic's time between bin/minic's sh wrapper and Bun itself.
  { name: "bun src/cli.ts run /bin/true", argv: [BUN, `${ROOT}/src/cli.ts`, "run", "--network", "none", "/bin/true"] },
  // ---- containers on the busybox rootfs R (issue 3) ----
  { name: ROOTFS_ROW, argv: [MINIC, "run", "--network", "none", "--rootfs", R, "/bin/true"], needsRoot: true, available: haveRootfs },
  // What resource limits cost (issue 4): the same run with a memory, CPU and pids limit written into its cgroups.
  {
    name: LIMITS_ROW,
    argv: [MINIC, "run", "--network", "none", "--rootfs", R, "-m", "64m", "--cpus", "1", "--pids-limit", "100", "/bin/true"],
    needsRoot: true, available: haveRootfs,
  },
  // What the namespaces cost: the same run with only the mount namespace new.
  {
    name: "minic run --rootfs R, all host but mount ns",
    argv: [MINIC, "run", "--rootfs", R, "--network", "host", "--pid", "host", "--ipc", "host", "--uts", "host", "--cgroupns", "host", "/bin/true"],
    needsRoot: true, available: haveRootfs,
  },
  {
    name: "bwrap --unshare-all --ro-bind R / --proc --dev",
    argv: ["bwrap", "--unshare-all", "--ro-bind", R, "/", "--proc", "/proc", "--dev", "/dev", "/bin/true"],
    available: () => (Bun.which("bwrap") ? haveRootfs() : "bwrap not found on PATH"),
  },
  {
    name: "unshare --fork --pid --mount --uts --ipc --net --mount-proc true",
    argv: ["unshare", "--fork", "--pid", "--mount", "--uts", "--ipc", "--net", "--mount-proc", "true"],
    needsRoot: true, available: onPath("unshare"),
  },
  { name: CRUN_ROW, argv: crunArgv, after: deleteIfLeft("crun"), needsRoot: true, available: haveBundle("crun") },
  {
    name: CRUN_WRAP_ROW,
    argv: ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", "umount -l /sys/fs/cgroup/unified; exec /bin/true"],
    needsRoot: true, available: onPath("unshare"),
  },
  { name: "runc run --bundle B", argv: runcArgv, after: deleteIfLeft("runc"), needsRoot: true, available: haveBundle("runc") },
];

// ---- create && start (issue 7): the OCI lifecycle as engines drive it ----
// `RT create --bundle B2 ID && RT start ID` through `sh -c` for all three runtimes (two commands need a shell;
// crun's row runs them inside its cgroup wrapper, as the crun run row does). Timed: from spawning the sh to
// `start` returning. Not timed (the row's `after`): waiting for the container to stop, then `RT delete ID`.
// B2 is B without process.capabilities.ambient: `runc spec` lists ambient capabilities without inheritable
// ones, which the kernel refuses to raise (PR_CAP_AMBIENT_RAISE needs both); runc and crun go on silently,
// minic fails with EPERM. Without them the bundle means the same to all three runtimes.
const OCI_BUNDLE = `${CACHE}/bundle-oci`;
let ociBundleState: true | string | null = null;
function haveOciBundle(tool: string): () => true | string {
  return () => {
    const base = haveBundle(tool === "minic" ? (Bun.which("runc") ? "runc" : "crun") : tool)();
    if (base !== true) return base;
    if (ociBundleState !== null) return ociBundleState;
    rmSync(OCI_BUNDLE, { recursive: true, force: true });
    mkdirSync(OCI_BUNDLE, { recursive: true });
    const config = JSON.parse(readFileSync(`${BUNDLE}/config.json`, "utf8"));
    delete config.process.capabilities?.ambient;
    writeFileSync(`${OCI_BUNDLE}/config.json`, JSON.stringify(config, null, "\t") + "\n");
    return (ociBundleState = true);
  };
}
const CREATE_START = 'RT=$0; "$RT" create --bundle "$1" "$2" && exec "$RT" start "$2"';
const CRUN_CREATE_START = 'umount -l /sys/fs/cgroup/unified; crun create --bundle "$1" "$2" && exec crun start "$2"';
/** The runtime's command line for `verb ID`. */
const ociCommand: Record<"minic" | "crun" | "runc", (verb: string[]) => string[]> = {
  minic: (verb) => [MINIC, ...verb],
  crun: (verb) => [...CRUN_WRAP, ...verb],
  runc: (verb) => ["runc", ...verb],
};
/** After a create && start: wait (up to 2 s) for the container to stop, then `delete ID`; `delete -f` if it will not. */
function waitThenDelete(runtime: "minic" | "crun" | "runc") {
  return (argv: string[]) => {
    const id = argv[argv.length - 1]!;
    const command = ociCommand[runtime];
    const status = () => {
      const r = Bun.spawnSync(command(["state", id]), { stdin: "ignore", stdout: "pipe", stderr: "ignore" });
      try {
        return r.exitCode === 0 ? (JSON.parse(r.stdout.toString()).status as string) : "gone";
      } catch {
        return "unreadable";
      }
    };
    let now = status();
    for (let i = 0; i < 100 && now !== "stopped" && now !== "gone"; i++) {
      Bun.sleepSync(20);
      now = status();
    }
    if (now === "gone") return; // create failed: the probe run reports it
    const del = Bun.spawnSync(command(now === "stopped" ? ["delete", id] : ["delete", "-f", id]), { stdio: ["ignore", "ignore", "pipe"] });
    if (now !== "stopped") warnings.push(`${runtime} container ${id} still ${now} 2 s after start; deleted with \`delete -f\``);
    if (del.exitCode !== 0) warnings.push(`${runtime} delete ${id} failed: ${del.stderr.toString().trim()}`);
  };
}
const MINIC_CS_ROW = "minic create --bundle B2 ID && minic start ID (sh -c)";
const CRUN_CS_ROW = "crun create && crun start (sh -c, in crun's wrapper)";
const RUNC_CS_ROW = "runc create && runc start (sh -c)";
rows.push(
  {
    name: MINIC_CS_ROW,
    argv: () => ["sh", "-c", CREATE_START, MINIC, OCI_BUNDLE, freshId()],
    after: waitThenDelete("minic"), needsRoot: true, available: haveOciBundle("minic"),
  },
  {
    name: CRUN_CS_ROW,
    argv: () => ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", CRUN_CREATE_START, "sh", OCI_BUNDLE, freshId()],
    after: waitThenDelete("crun"), needsRoot: true, available: haveOciBundle("crun"),
  },
  {
    name: RUNC_CS_ROW,
    argv: () => ["sh", "-c", CREATE_START, "runc", OCI_BUNDLE, freshId()],
    after: waitThenDelete("runc"), needsRoot: true, available: haveOciBundle("runc"),
  },
  // What the shell around every create && start costs, so that crun's wrapper can be taken out fairly.
  { name: "  sh -c 'exec /bin/true' alone", argv: ["sh", "-c", "exec /bin/true"] },
);

// ---- the bridge network (issue 6): what --network bridge adds to a start, over --network none ----
// Both rows run in a network namespace N of the bench's own, entered with nsenter(1), so that minic0, the
// veths, the nft table and the ip_forward sysctl are made there and the machine's network is never touched;
// and under a state root of their own (bench/.cache/net-state, through --root), so that their leases never mix
// with /run/minic's. N is held by an `unshare --net` process reading a pipe from this script: it ends when the
// script does, however the script ends. The nsenter row is the wrapper's cost alone (the same in both rows).
// Each bridge run is the only container in N, so it pays for everything a first container does: the bridge
// minic0, a lease, a veth pair, eth0's address and route, the nft table; and, as it ends, their removal (the
// bridge and the table go with the last container).
const NET_ROOT = `${CACHE}/net-state`;
const NETNS_ROW = "  nsenter --net=N /bin/true alone";
const NET_NONE_ROW = "minic run --rootfs R --network none /bin/true";
const NET_BRIDGE_ROW = "minic run --rootfs R --network bridge /bin/true";
type Holder = ReturnType<typeof Bun.spawn>;
/** Start the process that holds N; it, or why N could not be made. */
async function startNetns(): Promise<Holder | string> {
  if (process.getuid?.() !== 0) return "needs root";
  for (const tool of ["unshare", "nsenter", "ip"]) if (!Bun.which(tool)) return `${tool} not found on PATH`;
  const holder = Bun.spawn(["unshare", "--net", "--", "sh", "-c", "ip link set lo up && echo ready && exec cat >/dev/null"], {
    stdin: "pipe", stdout: "pipe", stderr: "pipe",
  });
  const timer = setTimeout(() => holder.kill("SIGKILL"), 10_000);
  const reader = holder.stdout.getReader();
  const first = await reader.read();
  clearTimeout(timer);
  reader.releaseLock();
  if (!first.value || !new TextDecoder().decode(first.value).startsWith("ready")) {
    holder.kill("SIGKILL");
    return `unshare --net failed: ${(await new Response(holder.stderr).text()).trim().split("\n")[0]}`;
  }
  return holder;
}
const netHolderOrError = await startNetns();
const netHolder: Holder | null = typeof netHolderOrError === "string" ? null : netHolderOrError;
const netnsState: true | string = typeof netHolderOrError === "string" ? netHolderOrError : true;
const NETNS = netHolder ? `/proc/${netHolder.pid}/ns/net` : "/nonexistent: no bench network namespace";
const inNetns = (argv: string[]) => ["nsenter", `--net=${NETNS}`, "--", ...argv];
const haveNetns = () => (netnsState === true ? haveRootfs() : netnsState);
rows.push(
  { name: NETNS_ROW, argv: inNetns(["/bin/true"]), needsRoot: true, available: () => netnsState },
  {
    name: NET_NONE_ROW,
    argv: inNetns([MINIC, "--root", NET_ROOT, "run", "--rootfs", R, "--network", "none", "/bin/true"]),
    needsRoot: true, available: haveNetns,
  },
  {
    name: NET_BRIDGE_ROW,
    argv: inNetns([MINIC, "--root", NET_ROOT, "run", "--rootfs", R, "--network", "bridge", "/bin/true"]),
    needsRoot: true, available: haveNetns,
  },
);

/** The argv for one run: a fresh one (new container id) for rows that need it. */
const argvOf = (row: Row): string[] | undefined => (typeof row.argv === "function" ? row.argv() : row.argv);
/** Whether every run of the row uses the same argv (so that hyperfine can run it). */
const fixedArgv = (row: Row): row is Row & { argv: string[] } => Array.isArray(row.argv);

// ---- leak checks ----
const readMountinfo = () => readFileSync("/proc/self/mountinfo", "utf8");
const listRunMinic = () => (existsSync("/run/minic") ? readdirSync("/run/minic").sort() : []);
/** Whether the agent named in a /run/minic entry's `agent` file ("PID STARTTIME") is still that live process. */
function minicAgentAlive(dir: string): boolean {
  try {
    const [pid, start] = readFileSync(`${dir}/agent`, "utf8").trim().split(" ");
    const stat = readFileSync(`/proc/${Number(pid)}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19] === start;
  } catch {
    return false;
  }
}
/** Directories under /sys/fs/cgroup/HIERARCHY/ (any depth) whose name starts with the bench's id prefix. */
function benchCgroups(): string[] {
  const found: string[] = [];
  const walk = (dir: string) => {
    let entries;
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      if (!e.isDirectory()) continue;
      const path = `${dir}/${e.name}`;
      if (e.name.startsWith(ID_PREFIX)) found.push(path);
      walk(path);
    }
  };
  let hierarchies: string[] = [];
  try {
    hierarchies = readdirSync("/sys/fs/cgroup");
  } catch {}
  for (const h of hierarchies) walk(`/sys/fs/cgroup/${h}`);
  return found;
}

interface Result {
  row: Row;
  ms: number[];
  failures: number;
  /** Peak RSS of the spawned process in KiB, one value per RSS run (see peakRssKiB). */
  rssKiB: number[];
}

/** One timed run. Output goes nowhere: we time the program, not a pipe reader. */
function runOnce(row: Row, result: Result | null): void {
  if (row.inProcess) {
    const t0 = Bun.nanoseconds();
    row.inProcess();
    const t1 = Bun.nanoseconds();
    result?.ms.push((t1 - t0) / 1e6);
    return;
  }
  const argv = argvOf(row)!; // built before the clock starts
  const t0 = Bun.nanoseconds();
  const proc = Bun.spawnSync(argv, { cwd: ROOT, stdio: ["ignore", "ignore", "ignore"] });
  const t1 = Bun.nanoseconds();
  row.after?.(argv);
  if (!result) return;
  result.ms.push((t1 - t0) / 1e6);
  if (proc.exitCode !== 0) result.failures++;
}

/**
 * Peak RSS of one run, in KiB: GNU time's %M, the ru_maxrss that wait4() returns. The kernel keeps
 * that peak across exec (bin/minic is a sh script that execs bun: same pid, so this is the agent's),
 * and folds in reaped children; the container child is a fork of the agent that then execs
 * /bin/true, so it cannot exceed the agent's own peak.
 * Not Bun.spawnSync's resourceUsage.maxRSS: Bun spawns through posix_spawn (vfork), and at exec the
 * kernel records the peak of the mm being left, which for a vfork child is the *parent's*, so every
 * row would read at least this harness's own RSS (~35 MiB). GNU time fork()s: its floor is ~1 MiB.
 */
function peakRssKiB(row: Row): number {
  const out = `${CACHE}/rss.txt`;
  const argv = argvOf(row)!;
  rmSync(out, { force: true }); // a stale value must not pass for this run's
  Bun.spawnSync(["/usr/bin/time", "-f", "%M", "-o", out, ...argv], { cwd: ROOT, stdio: ["ignore", "ignore", "ignore"] });
  row.after?.(argv);
  return existsSync(out) ? Number(readFileSync(out, "utf8").trim().split("\n").pop()) : NaN;
}

/** Why the row cannot run here, or null. A failing first run counts: its stderr says why. */
function skipReason(row: Row): string | null {
  if (row.needsRoot && process.getuid?.() !== 0) return "needs root";
  const available = row.available?.() ?? true;
  if (available !== true) return available;
  const argv = argvOf(row);
  if (!argv) return null;
  const probe = Bun.spawnSync(argv, { cwd: ROOT, stdin: "ignore", stdout: "ignore", stderr: "pipe" });
  row.after?.(argv);
  if (probe.exitCode === 0) return null;
  return `exit ${probe.exitCode ?? probe.signalCode}: ${probe.stderr.toString().trim().split("\n")[0]}`;
}

const median = (xs: number[]) => quantile(xs, 0.5);
/** A number for the table; "-" where a row was skipped or not measured (NaN, or -Infinity from Math.max()). */
const num = (x: number, digits = 2) => (Number.isFinite(x) ? x.toFixed(digits) : "-");
function quantile(xs: number[], q: number): number {
  if (xs.length === 0) return NaN;
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.max(0, Math.ceil(q * sorted.length) - 1)]!; // nearest rank
}

/**
 * hyperfine's medians for the command rows (ms), as a cross-check of this harness; null if not run.
 * Rows whose argv changes per run (crun/runc: a fresh container id each time) are left out: hyperfine
 * runs one fixed command line, and reusing an id would not be the same measurement.
 */
function hyperfineMedians(active: Row[]): Map<Row, number> | null {
  if (process.env.BENCH_HYPERFINE === "0" || !Bun.which("hyperfine")) return null;
  const commands = active.filter(fixedArgv);
  const quote = (s: string) => (/^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`);
  const json = `${CACHE}/hyperfine.json`;
  mkdirSync(CACHE, { recursive: true });
  const hf = Bun.spawnSync(
    ["hyperfine", "-N", "--warmup", String(WARMUP), "--runs", String(RUNS), "--export-json", json,
     ...commands.map((r) => r.argv.map(quote).join(" "))],
    { cwd: ROOT, stdio: ["ignore", "ignore", "pipe"] },
  );
  if (hf.exitCode !== 0) {
    console.log(`hyperfine failed (ignored): ${hf.stderr.toString().trim().split("\n").pop()}`);
    return null;
  }
  const results: Array<{ median: number }> = JSON.parse(readFileSync(json, "utf8")).results;
  return new Map(commands.map((r, i) => [r, results[i]!.median * 1000]));
}

// ---- run ----
const kernel = readFileSync("/proc/sys/kernel/osrelease", "utf8").trim();
console.log(`minic bench: ${RUNS} runs + ${WARMUP} warmup per row, round-robin; kernel ${kernel}, ` +
  `${cpus().length} x ${cpus()[0]?.model ?? "?"}; bun ${Bun.version} (${BUN})`);

// Leak baselines, taken before anything runs.
const mountinfoBefore = readMountinfo();
const runMinicBefore = new Set(listRunMinic());
const cgroupsBefore = benchCgroups();
if (cgroupsBefore.length) console.log(`warning: cgroups from an earlier bench run: ${cgroupsBefore.join(", ")}`);

const active: Result[] = [];
for (const row of rows) {
  const reason = skipReason(row);
  if (reason) console.log(`skipped: ${row.name}: ${reason}`);
  else active.push({ row, ms: [], failures: 0, rssKiB: [] });
}
for (let round = 0; round < WARMUP + RUNS; round++) {
  for (const result of active) runOnce(result.row, round < WARMUP ? null : result);
}
// Separate from the timed loop, so that GNU time's own cost never lands in the times.
const haveTime = existsSync("/usr/bin/time");
if (haveTime) {
  mkdirSync(CACHE, { recursive: true });
  for (const result of active) {
    for (let i = 0; i < RSS_RUNS && result.row.argv; i++) result.rssKiB.push(peakRssKiB(result.row));
  }
}
const hyperfine = hyperfineMedians(active.map((r) => r.row));

// ---- report ----
const find = (name: string) => active.find((r) => r.row.name === name);
const minicMs = median(find(rows[0]!.name)?.ms ?? []);
const cMs = median(find(C_ROW)?.ms ?? []);
const rootfsMs = median(find(ROOTFS_ROW)?.ms ?? []);
const limitsMs = median(find(LIMITS_ROW)?.ms ?? []);
const table = active.map(({ row, ms, rssKiB, failures }) => ({
  name: row.name,
  "median ms": num(median(ms)),
  "p90 ms": num(quantile(ms, 0.9)),
  "x minic run": num(median(ms) / minicMs),
  "x minic --rootfs": num(median(ms) / rootfsMs),
  "x C": num(median(ms) / cMs),
  "max RSS MiB": num(Math.max(...rssKiB) / 1024, 1),
  ...(hyperfine ? { "hyperfine median ms": num(hyperfine.get(row) ?? NaN) } : {}),
  ...(failures ? { failures } : {}),
}));
console.log();
printTable(table);
console.log(hyperfine
  ? "(hyperfine -N, run after the loop above, one row after another; not for crun/runc, which need a fresh id per run)"
  : "(hyperfine: not run)");
console.log("R = test/.cache/rootfs (busybox); B = bench/.cache/bundle (runc spec, root.path = R, args /bin/true). " +
  "The crun row includes unshare(1) + sh + umount -l; the row under it is that wrapper alone.");

const minic = find(rows[0]!.name);
const agentMib = Math.max(...(minic?.rssKiB ?? [])) / 1024;
console.log(haveTime
  ? `\nagent peak RSS: max of ${RSS_RUNS} runs of \`/usr/bin/time -f %M bin/minic run /bin/true\` (ru_maxrss from wait4; ` +
    `the sh wrapper execs bun, so it is the agent's): ${num(agentMib, 1)} MiB`
  : "\nagent peak RSS: /usr/bin/time not found, not measured");

// The issue's targets, with medians.
const bunMs = median(find("bun -e 0")?.ms ?? []);
const verdict = (ok: boolean) => (ok ? "met" : "NOT met");
const startLimit = 2 * bunMs + 3;
console.log(`\ntargets:`);
console.log(`  minic run true <= 2 x bun -e 0 + 3 ms: ${num(minicMs)} <= ${num(startLimit)} ms: ` +
  (Number.isFinite(minicMs + bunMs) ? verdict(minicMs <= startLimit) : "unknown (row skipped)"));
// "40 MB" read as MiB, the unit ru_maxrss comes in (KiB); the value in 10^6 bytes is shown too.
console.log(`  agent RSS <= 40 MiB: ${num(agentMib, 1)} MiB (${num((agentMib * 1048576) / 1e6, 1)} MB): ` +
  (Number.isFinite(agentMib) ? verdict(agentMib <= 40) : "unknown (not measured)"));
// Against crun itself: the crun row minus its wrapper alone. That also subtracts one exec of /bin/true that
// crun's row does not contain, so crun comes out slightly faster than it is: the stricter reading.
const crunRowMs = median(find(CRUN_ROW)?.ms ?? []);
const crunWrapMs = median(find(CRUN_WRAP_ROW)?.ms ?? []);
const crunMs = crunRowMs - crunWrapMs;
console.log(`  minic run --rootfs R true <= crun run: ${num(rootfsMs)} <= ${num(crunMs)} ms ` +
  `(crun row ${num(crunRowMs)} ms minus its wrapper alone ${num(crunWrapMs)} ms): ` +
  (Number.isFinite(rootfsMs + crunMs)
    ? `${verdict(rootfsMs <= crunMs)}; against the crun row with the wrapper: ${verdict(rootfsMs <= crunRowMs)}`
    : "unknown (row skipped)"));
// Issue 4: what limits add to a container's start. The plain row has a cgroup too (memory, cpuacct and pids, for
// accounting); the limits row also makes the cpu one and writes the limit files.
console.log(`\nlimits: extra start cost of -m 64m --cpus 1 --pids-limit 100 over the plain rootfs row: ` +
  (Number.isFinite(limitsMs + rootfsMs)
    ? `${num(limitsMs - rootfsMs)} ms (medians ${num(limitsMs)} - ${num(rootfsMs)} ms, x${num(limitsMs / rootfsMs)})`
    : "unknown (row skipped)"));

// Issue 7: create && start next to crun and runc doing the same, as ratios (delete is outside the timed part).
// crun's row also pays for its wrapper's unshare(1) and umount -l: the wrapper row minus the plain sh row.
const csMinicMs = median(find(MINIC_CS_ROW)?.ms ?? []);
const csCrunRowMs = median(find(CRUN_CS_ROW)?.ms ?? []);
const csRuncMs = median(find(RUNC_CS_ROW)?.ms ?? []);
const shAloneMs = median(find("  sh -c 'exec /bin/true' alone")?.ms ?? []);
const csCrunMs = csCrunRowMs - (crunWrapMs - shAloneMs);
console.log(`\ncreate && start (B2; each through sh -c; delete not timed): minic ${num(csMinicMs)} ms, ` +
  `crun ${num(csCrunRowMs)} ms (${num(csCrunMs)} ms less its wrapper's unshare + umount), runc ${num(csRuncMs)} ms`);
console.log(`  minic / crun: x${num(csMinicMs / csCrunMs)} (x${num(csMinicMs / csCrunRowMs)} against the crun row with its wrapper); ` +
  `minic / runc: x${num(csMinicMs / csRuncMs)}`);

// Issue 6: what the bridge network adds to a start (both rows pay the same nsenter into N).
const netNoneMs = median(find(NET_NONE_ROW)?.ms ?? []);
const netBridgeMs = median(find(NET_BRIDGE_ROW)?.ms ?? []);
console.log(`\nnetwork: extra start cost of --network bridge over --network none: ` +
  (Number.isFinite(netBridgeMs + netNoneMs)
    ? `${num(netBridgeMs - netNoneMs)} ms (medians ${num(netBridgeMs)} - ${num(netNoneMs)} ms, x${num(netBridgeMs / netNoneMs)}); ` +
      `both rows run through nsenter in the bench's own network namespace N (the nsenter row: ${num(median(find(NETNS_ROW)?.ms ?? []))} ms)`
    : "unknown (row skipped)"));

// ---- leaks ----
// Whatever a runtime left behind: cgroups named after our ids are removed (deepest first), with a warning.
const leftCgroups = benchCgroups().filter((p) => !cgroupsBefore.includes(p)).sort((a, b) => b.length - a.length);
for (const path of leftCgroups) {
  let how = "removed";
  try {
    rmdirSync(path);
  } catch (e) {
    how = `could not remove: ${(e as Error).message}`;
  }
  warnings.push(`cgroup left behind: ${path} (${how})`);
}
const mountinfoAfter = readMountinfo();
if (mountinfoAfter !== mountinfoBefore) {
  const before = new Set(mountinfoBefore.split("\n"));
  const after = new Set(mountinfoAfter.split("\n"));
  for (const line of after) if (!before.has(line)) warnings.push(`host mountinfo gained: ${line}`);
  for (const line of before) if (!after.has(line)) warnings.push(`host mountinfo lost: ${line}`);
}
// Every minic run of the bench has exited by now, so a new entry whose agent is still alive belongs to someone
// else using minic on this machine at the same time (a test run, say); one whose agent is gone is a leak.
const runMinicNew = listRunMinic().filter((e) => !runMinicBefore.has(e));
const runMinicLeft = runMinicNew.filter((e) => !minicAgentAlive(`/run/minic/${e}`));
const runMinicOthers = runMinicNew.filter((e) => !runMinicLeft.includes(e));
if (runMinicLeft.length) warnings.push(`/run/minic not empty after the bench (agent gone): ${runMinicLeft.join(", ")}`);
console.log(`\nleaks: host mountinfo ${mountinfoAfter === mountinfoBefore ? "unchanged" : "CHANGED"}; ` +
  `cgroups named ${ID_PREFIX}* left: ${leftCgroups.length}; entries left in /run/minic: ${runMinicLeft.length}` +
  (runMinicOthers.length ? ` (and ${runMinicOthers.length} of live containers started by others meanwhile)` : "") +
  (runMinicBefore.size ? ` (${runMinicBefore.size} there before the bench)` : ""));
// N must hold nothing of minic's after the bridge rows: no veth, no nft table, no lease. Then N goes.
if (netHolder) {
  const inN = (argv: string[]) => Bun.spawnSync(inNetns(argv), { stdin: "ignore", stdout: "pipe", stderr: "pipe", timeout: 10_000 });
  const veths = inN(["ip", "-o", "link"]).stdout.toString().split("\n").filter((l) => /^\d+: veth-/.test(l));
  if (veths.length) warnings.push(`network namespace N: veths left behind: ${veths.map((l) => l.split(":")[1]!.trim()).join(", ")}`);
  if (Bun.which("nft") && inN(["nft", "list", "table", "ip", "minic"]).exitCode === 0) warnings.push("network namespace N: nft table ip minic left behind");
  if (/^\d+: minic0[:@]/m.test(inN(["ip", "-o", "link"]).stdout.toString())) warnings.push("network namespace N: the bridge minic0 left behind");
  const leases = existsSync(`${NET_ROOT}/network/leases.json`) ? readFileSync(`${NET_ROOT}/network/leases.json`, "utf8").trim() : "{}";
  if (leases !== "{}") warnings.push(`${NET_ROOT}/network/leases.json not empty: ${leases}`);
  netHolder.kill("SIGKILL");
  await netHolder.exited;
  rmSync(NET_ROOT, { recursive: true, force: true });
}
for (const w of warnings) console.log(`warning: ${w}`);

function printTable(objects: Array<Record<string, string | number>>): void {
  const headers = [...new Set(objects.flatMap((o) => Object.keys(o)))];
  const cells = [headers, ...objects.map((o) => headers.map((h) => String(o[h] ?? "")))];
  const widths = headers.map((_, i) => Math.max(...cells.map((row) => row[i]!.length)));
  // Text left, numbers right, like any table meant to be compared by eye.
  const fmt = (row: string[]) => row.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  ");
  console.log(fmt(cells[0]!));
  console.log(widths.map((w) => "-".repeat(w)).join("  "));
  for (const row of cells.slice(1)) console.log(fmt(row));
}
