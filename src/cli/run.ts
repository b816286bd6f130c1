// `minic run [FLAGS] COMMAND [ARG...]`: flags become an OCI spec, the spec becomes a container.
import type { ArgsDef } from "citty";
import { lexists, readTextIfExists } from "../libc/fs.ts";
import { stateRoot } from "../state.ts";
import { formatPlan, runContainer } from "../container.ts";
import { log, LOG_LEVELS, traceLine } from "../log.ts";
import { resourceFlags } from "../cgroups/flags.ts";
import { specFromRunFlags } from "./run-spec.ts";
import type { Verb } from "./verb.ts";

const shareable = (what: string) =>
  ({ type: "enum" as const, options: ["host", "private"], description: `"host" shares the host's ${what} namespace (default: a new one)` });

const args = {
  rootfs: { type: "string", valueHint: "DIR", description: "Root filesystem for the container (default: the host's files, in a private mount namespace)" },
  bundle: { type: "string", alias: "b", valueHint: "DIR", description: "Run the OCI bundle in DIR (DIR/config.json; its root.path is relative to DIR)" },
  name: { type: "string", valueHint: "ID", description: "Container id (default: 12 random hex digits); also the default hostname" },
  hostname: { type: "string", alias: "H", description: "Hostname inside (default: the container id)" },
  domainname: { type: "string", description: "NIS domain name inside" },
  env: { type: "string", alias: "e", valueHint: "KEY=VAL", description: "Set an environment variable (KEY alone copies it from minic's environment); repeatable" },
  "env-file": { type: "string", valueHint: "FILE", description: "Read KEY=VAL lines from FILE (# comments); repeatable" },
  workdir: { type: "string", alias: "w", valueHint: "DIR", description: "Working directory inside (default: / with a rootfs, else the current one)" },
  user: { type: "string", alias: "u", valueHint: "UID[:GID]", description: "User (and group) to run as: numbers, or names from the rootfs's /etc/passwd" },
  volume: { type: "string", alias: "v", valueHint: "HOST:CTR[:ro]", description: "Bind-mount a host path into the container; repeatable" },
  tmpfs: { type: "string", valueHint: "PATH[:OPTS]", description: "Mount a tmpfs at PATH (default rw,nosuid,nodev,noexec,size=65536k); repeatable" },
  "read-only": { type: "boolean", description: "Mount the container's root filesystem read-only" },
  network: {
    type: "enum", options: ["bridge", "none", "host"],
    description: '"bridge" (default as root): eth0 on the minic0 bridge, NAT outbound; "none": only lo (default rootless); "host": the host\'s',
  },
  publish: { type: "string", alias: "p", valueHint: "[IP:]HOST:CTR[/tcp|udp]", description: "Publish a container port on the host (bridge network); repeatable" },
  ip: { type: "string", valueHint: "ADDR", description: "A fixed address on the bridge network" },
  subnet: { type: "string", valueHint: "CIDR", description: "The bridge network's subnet (default 10.77.0.0/24, or MINIC_SUBNET)" },
  pid: shareable("PID"),
  ipc: shareable("IPC"),
  uts: shareable("UTS"),
  cgroupns: shareable("cgroup"),
  userns: { type: "boolean", description: "As root: map container root to an unprivileged host range (root's /etc/subuid entry, else 100000:65536)" },
  "no-namespaces": { type: "boolean", description: "The seed's Part 0: fork, exec and wait, with no namespaces or mounts at all" },
  init: { type: "boolean", description: "Run a small init as PID 1 that reaps zombies and forwards signals to the command" },
  "cap-add": { type: "string", valueHint: "CAP", description: "Add a capability to docker's default set (NET_ADMIN, SYS_PTRACE, ALL); repeatable" },
  "cap-drop": { type: "string", valueHint: "CAP", description: "Drop a capability (or ALL); repeatable" },
  privileged: { type: "boolean", description: "All capabilities minic has, no seccomp filter, no masked or read-only paths" },
  "security-opt": { type: "string", valueHint: "OPT", description: "no-new-privileges[=false], seccomp=unconfined or seccomp=PROFILE.json; repeatable" },
  ulimit: { type: "string", valueHint: "NAME=SOFT[:HARD]", description: "Set a resource limit (nofile, nproc, core, stack, ...; -1 or unlimited); repeatable" },
  "oom-score-adj": { type: "string", valueHint: "N", description: "The container's oom_score_adj (-1000 to 1000)" },
  device: { type: "string", valueHint: "HOST[:CTR][:rwm]", description: "Give the container a host device (and allow it in the devices cgroup); repeatable" },
  ...resourceFlags,
  "cgroup-parent": { type: "string", valueHint: "PATH", description: "Parent cgroup (absolute, or relative to minic's own); default /minic" },
  stats: { type: "boolean", description: "At exit, print the peak memory, CPU time and peak number of processes (also with -v)" },
  tty: { type: "boolean", alias: "t", description: "Give the container a pseudo-terminal (its stdin, stdout and stderr), relayed to minic's" },
  interactive: { type: "boolean", alias: "i", description: "With -t, forward minic's stdin to it (a terminal goes in raw mode); without -t stdin is always passed on" },
  detach: { type: "boolean", alias: "d", description: "Run in the background: print the id and exit; a monitor keeps the output (minic logs) and exit status" },
  rm: { type: "boolean", description: "Remove the container's state when it ends (always so in the foreground)" },
  trace: { type: "boolean", description: "Print each syscall of the flow on stderr as it happens, with its arguments, result and time" },
  "dry-run": { type: "boolean", description: "Print the prepared setup steps in order, and run nothing" },
  command: { type: "positional", description: "The command to run, then its arguments" },
} satisfies ArgsDef;

export const run: Verb = {
  takesCommandLine: true,
  command: {
    meta: {
      name: "run",
      description:
        "Run COMMAND in a new container and wait for it. Everything from COMMAND on goes to the container " +
        "untouched; minic's flags come before it. Exit status: the command's own, 128+N if signal N killed it, " +
        "125 if minic failed, 126 if the command could not be run, 127 if it was not found.",
    },
    args,
  },
  async main(input) {
    const spec = specFromRunFlags(input);
    if (input.flags["dry-run"]) {
      console.log(formatPlan(spec));
      return 0;
    }
    const timeout = Number(process.env.MINIC_SETUP_TIMEOUT_MS) || undefined;
    const monitor = input.flags.detach && process.env.MINIC_MONITOR === "1";
    if (input.flags.detach && !monitor) return startMonitor(spec.annotations!["org.minic.id"]!);
    return runContainer(spec, {
      monitor: monitor ? { remove: !!input.flags.rm } : undefined,
      trace: input.flags.trace ? traceLine : undefined,
      setupTimeoutMs: timeout,
      init: input.flags.init,
      interactive: input.flags.interactive,
      stats: input.flags.stats || log.level >= LOG_LEVELS.debug,
      cgroup: !input.flags["no-namespaces"] || spec.linux?.resources !== undefined,
    });
  },
};

/**
 * `run -d`: start this same command line again as a monitor, in a session of its own, and return
 * once its container runs. The monitor (a foreground `minic run` whose output goes to the log
 * file) reaps the container and records its exit status, as conmon does for podman.
 */
async function startMonitor(id: string): Promise<number> {
  if (lexists(`${stateRoot()}/${id}`)) throw new Error(`a container named ${id} already exists; choose another --name (or minic rm it)`);
  const argv = process.argv.slice(1);
  const at = argv.indexOf("run");
  argv.splice(at + 1, 0, `--name=${id}`); // the monitor must use this id, not draw a new one
  const monitor = Bun.spawn([process.execPath, ...process.execArgv, ...argv], {
    env: { ...process.env, MINIC_MONITOR: "1" }, stdin: "ignore", stdout: "ignore", stderr: "pipe", detached: true,
  });
  const stateFile = `${stateRoot()}/${id}/state.json`;
  for (;;) {
    const text = readTextIfExists(stateFile);
    if (text && JSON.parse(text).status !== "creating") break; // running, or already ended (kept)
    if (monitor.exitCode !== null && readTextIfExists(stateFile) === null) {
      // It failed before its container ran: its stderr says why (after that, its output goes to the log).
      process.stderr.write(await new Response(monitor.stderr).text());
      return monitor.exitCode;
    }
    await Bun.sleep(10);
  }
  monitor.unref();
  console.log(id);
  return 0;
}

export { specFromRunFlags, readBundle, parseUlimit, parseVolume, parseTmpfs } from "./run-spec.ts";
