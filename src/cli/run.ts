// `minic run [FLAGS] COMMAND [ARG...]`: flags become an OCI spec, the spec becomes a container.
import { isDirectory, lexists, readText, readTextIfExists, resolvePath as resolve } from "../libc/fs.ts";
import { stateRoot } from "../state.ts";
import { userModeNetworkTool } from "../network/slirp.ts";
import type { ArgsDef } from "citty";
import type { Mount, NamespaceType, Spec } from "../spec/types.ts";
import { defaultSpec } from "../spec/defaults.ts";
import { validateSpec } from "../spec/validate.ts";
import { envList } from "../libc/cstr.ts";
import { formatPlan, runContainer, newContainerId } from "../container.ts";
import { log, LOG_LEVELS, traceLine } from "../log.ts";
import { DEFAULT_PATH } from "../process/path.ts";
import { defaultIdMappings, lookupUser } from "../security/users.ts";
import { UsageError } from "./argv.ts";
import { capabilitiesFromFlags } from "../security/capabilities.ts";
import { DEFAULT_MASKED_PATHS, DEFAULT_READONLY_PATHS } from "../security/hardening.ts";
import { RLIMITS } from "../spec/validate.ts";
import { parseResources, resourceFlags, type ResourceFlags } from "../cgroups/flags.ts";
import { validateResources } from "../cgroups/resources.ts";
import { defaultProfile, parseSeccompProfile, seccompFromSecurityOpt } from "../security/seccomp.ts";
import { DEFAULT_DEVICE_RULES, parseDeviceFlag } from "../security/devices.ts";
import type { Verb, VerbInput } from "./verb.ts";

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

/** Build the container's spec from `run`'s flags and the command line. */
export function specFromRunFlags({ flags, all, rest }: Pick<VerbInput, "flags" | "all" | "rest">): Spec {
  if (flags.bundle && flags.rootfs) throw new UsageError("--bundle and --rootfs cannot be used together");
  const spec = flags.bundle ? readBundle(flags.bundle) : baseSpec(flags);
  const proc = spec.process!;
  // With --bundle, as with runc, the command comes from config.json and the one word left is the id.
  if (flags.bundle && rest.length > 1) throw new UsageError("with --bundle, give at most a container id: the command comes from config.json");
  if (!flags.bundle && rest.length > 0) proc.args = rest;
  if (proc.args.length === 0) throw new UsageError("run needs a command", "usage: minic run [FLAGS] COMMAND [ARG...]");
  // -t decides, as with docker: a bundle's process.terminal is for `create --console-socket`.
  if (flags.tty) proc.terminal = true;
  else delete proc.terminal;
  const id = flags.name ?? (flags.bundle ? rest[0] : undefined) ?? newContainerId();
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(id)) throw new UsageError(`--name "${id}": use letters, digits, _ . and -`);
  if (id === "network") throw new UsageError(`--name network: the name is reserved (minic keeps its network state there)`);
  spec.annotations = { ...spec.annotations, "org.minic.id": id };
  if (flags["no-namespaces"]) {
    delete spec.linux;
    delete spec.mounts;
    if (spec.root) throw new UsageError("--no-namespaces runs on the host's files: it cannot take --rootfs or --bundle");
  } else if (!flags.bundle) {
    spec.hostname = flags.hostname ?? id.slice(0, 12);
    spec.linux = { ...spec.linux, namespaces: namespacesFromFlags(flags) };
    if (process.getuid!() !== 0 || flags.userns) addUserNamespace(spec);
  }
  if (flags.hostname) spec.hostname = flags.hostname;
  if (flags.domainname) spec.domainname = flags.domainname;
  if (flags["read-only"]) spec.root = { path: spec.root?.path ?? "/", readonly: true };
  proc.env = mergeEnv(proc.env ?? [], [...(all["env-file"] ?? []).flatMap(readEnvFile), ...(all.env ?? [])], spec.hostname);
  if (flags.workdir) proc.cwd = flags.workdir.startsWith("/") ? flags.workdir : badFlag("--workdir", "must be an absolute path");
  // Without a user namespace the command runs as whoever runs minic (root, usually); inside one, as its root.
  const userns = spec.linux?.namespaces?.some((n) => n.type === "user") ?? false;
  if (!flags.bundle && !userns) proc.user = { uid: process.getuid!(), gid: process.getgid!() };
  if (flags.user) proc.user = lookupUser(flags.user, spec.root?.path ?? "/");
  spec.mounts = [...(spec.mounts ?? []), ...(all.volume ?? []).map(parseVolume), ...(all.tmpfs ?? []).map(parseTmpfs)];
  if (!flags.bundle && !flags["no-namespaces"]) applySecurityFlags(spec, flags, all);
  applyResourceFlags(spec, flags, all, id);
  applyNetworkFlags(spec, flags, all);
  return spec;
}

/**
 * The network mode, kept in an annotation (the OCI spec leaves networking to the caller): bridge
 * by default for root, as docker does, and none for an unprivileged user, who cannot create links.
 */
function applyNetworkFlags(spec: Spec, flags: Record<string, any>, all: Record<string, string[]>) {
  const ownNetns = spec.linux?.namespaces?.some((n) => n.type === "network" && !n.path) ?? false;
  const mode = flags.network ?? (ownNetns && process.getuid!() === 0 && !flags.bundle ? "bridge" : "none");
  const publish = all.publish ?? [];
  if (mode !== "bridge") {
    if (publish.length || flags.ip) throw new UsageError(`-p and --ip need --network bridge (the network is ${mode})`);
    return;
  }
  if (!ownNetns) throw new UsageError("--network bridge needs the container's own network namespace");
  if (process.getuid!() !== 0) {
    // Rootless: a user-mode network stack instead of a bridge, where one is installed.
    if (!userModeNetworkTool()) throw new UsageError("rootless --network bridge needs slirp4netns or pasta (Debian packages slirp4netns, passt); use --network none");
    if (publish.length || flags.ip) throw new UsageError("-p and --ip are not available rootless (slirp4netns gives outbound networking only)");
    spec.annotations = { ...spec.annotations, "org.minic.network": "slirp" };
    return;
  }
  spec.annotations = {
    ...spec.annotations,
    "org.minic.network": "bridge",
    ...(publish.length ? { "org.minic.publish": JSON.stringify(publish) } : {}),
    ...(flags.ip ? { "org.minic.ip": flags.ip } : {}),
    ...(flags.subnet ? { "org.minic.subnet": flags.subnet } : {}),
  };
}

/** --memory, --cpus, --pids-limit and friends become linux.resources; --cgroup-parent its path. */
function applyResourceFlags(spec: Spec, flags: Record<string, any>, all: Record<string, string[]>, id: string) {
  const given: ResourceFlags = {};
  for (const name of Object.keys(resourceFlags) as Array<keyof ResourceFlags>) if (all[name]) given[name] = all[name];
  const resources = parseResources(given);
  if (Object.keys(resources).length > 0) spec.linux = { ...spec.linux, resources: { ...spec.linux?.resources, ...resources } };
  if (flags["cgroup-parent"]) spec.linux = { ...spec.linux, cgroupsPath: `${String(flags["cgroup-parent"]).replace(/\/+$/, "")}/${id}` };
}

/** docker's defaults: its capability set, no_new_privs, masked and read-only paths; and the flags that loosen them. */
function applySecurityFlags(spec: Spec, flags: Record<string, any>, all: Record<string, string[]>) {
  const proc = spec.process!;
  const privileged = !!flags.privileged;
  let caps: string[];
  try {
    caps = capabilitiesFromFlags(all["cap-add"] ?? [], all["cap-drop"] ?? [], privileged);
  } catch (error) {
    throw new UsageError(`--cap-add/--cap-drop: ${(error as Error).message}`);
  }
  // As in docker, a non-root user keeps the bounding set but starts with no capabilities at all.
  const held = proc.user.uid === 0 ? caps : [];
  proc.capabilities = { bounding: caps, effective: held, permitted: held, inheritable: [], ambient: [] };
  const options = parseSecurityOpts(all["security-opt"] ?? []);
  // (--privileged leaves it off, as in docker, unless asked for explicitly.)
  proc.noNewPrivileges = options.noNewPrivileges && !(privileged && !(all["security-opt"] ?? []).some((o) => o.startsWith("no-new-privileges")));
  spec.linux = { ...spec.linux, maskedPaths: privileged ? [] : DEFAULT_MASKED_PATHS, readonlyPaths: privileged ? [] : DEFAULT_READONLY_PATHS };
  // docker's default filter, widened for the capabilities granted (CAP_SYS_ADMIN allows mount...).
  const seccomp = privileged ? null : options.seccomp ? seccompFromSecurityOpt(`seccomp=${options.seccomp}`, { capabilities: caps }) : defaultProfile(caps);
  if (seccomp) spec.linux.seccomp = seccomp;
  if (privileged) {
    spec.mounts = spec.mounts?.map((m) => (m.destination === "/sys" ? { ...m, options: m.options?.filter((o) => o !== "ro") } : m));
  }
  proc.rlimits = (all.ulimit ?? []).map(parseUlimit);
  // Devices: the standard ones, plus --device; the devices cgroup denies the rest (all, if privileged).
  const devices = (all.device ?? []).map((d) => {
    try {
      return parseDeviceFlag(d);
    } catch (error) {
      throw new UsageError((error as Error).message);
    }
  });
  if (devices.length) spec.linux.devices = devices.map((d) => d.device);
  const rules = privileged ? [{ allow: true, access: "rwm" }] : [...DEFAULT_DEVICE_RULES, ...devices.map((d) => d.rule)];
  spec.linux.resources = { ...spec.linux.resources, devices: rules };
  if (flags["oom-score-adj"] !== undefined) {
    const n = Number(flags["oom-score-adj"]);
    if (!Number.isInteger(n) || n < -1000 || n > 1000) badFlag("--oom-score-adj", `"${flags["oom-score-adj"]}" is not an integer from -1000 to 1000`);
    proc.oomScoreAdj = n;
  }
}

function parseSecurityOpts(options: string[]): { noNewPrivileges: boolean; seccomp?: string } {
  const result: { noNewPrivileges: boolean; seccomp?: string } = { noNewPrivileges: true };
  for (const option of options) {
    const [key, value] = [option.split(/[=:]/, 1)[0]!, option.slice(option.split(/[=:]/, 1)[0]!.length + 1)];
    if (key === "no-new-privileges") {
      if (value !== "" && value !== "true" && value !== "false") badFlag("--security-opt", `no-new-privileges takes true or false, not "${value}"`);
      result.noNewPrivileges = value !== "false";
    } else if (key === "seccomp" && value) {
      if (value !== "unconfined" && !lexists(value)) badFlag("--security-opt", `seccomp profile ${value} does not exist`);
      result.seccomp = value === "unconfined" ? value : resolve(value);
    } else {
      badFlag("--security-opt", `"${option}" is not supported (no-new-privileges[=true|false], seccomp=unconfined|PROFILE.json)`);
    }
  }
  return result;
}

export function parseUlimit(text: string): { type: string; soft: number; hard: number } {
  const match = /^([a-z]+)=(-?\w+)(?::(-?\w+))?$/.exec(text);
  const type = `RLIMIT_${match?.[1]?.toUpperCase()}`;
  if (!match || !(RLIMITS as readonly string[]).includes(type)) {
    badFlag("--ulimit", `"${text}" is not NAME=SOFT[:HARD] with NAME one of ${RLIMITS.map((r) => r.slice(7).toLowerCase()).join(", ")}`);
  }
  const value = (v: string) => {
    if (v === "-1" || v === "unlimited") return 2 ** 64 - 1; // RLIM_INFINITY
    if (!/^\d+$/.test(v)) badFlag("--ulimit", `"${v}" in "${text}" is not a number`);
    return Number(v);
  };
  const soft = value(match[2]!);
  const hard = match[3] === undefined ? soft : value(match[3]);
  if (soft > hard) badFlag("--ulimit", `"${text}": the soft limit is above the hard limit`);
  return { type, soft, hard };
}

function baseSpec(flags: Record<string, any>): Spec {
  if (!flags.rootfs) {
    return {
      ociVersion: "1.2.0",
      // minic's environment, less the JIT option that bin/minic set for minic's own sake.
      process: { user: { uid: 0, gid: 0 }, args: [], env: envList({ ...process.env, BUN_JSC_useConcurrentJIT: undefined }), cwd: process.cwd() },
    };
  }
  const rootfs = resolve(flags.rootfs);
  if (!isDirectory(rootfs)) badFlag("--rootfs", `${rootfs} is not a directory`);
  const spec = defaultSpec({ args: [] });
  // The same filesystem as `runc spec`, but a writable root (as docker's) and no cgroup mount yet.
  spec.root = { path: rootfs, readonly: false };
  spec.mounts = spec.mounts!
    .filter((m) => m.destination !== "/sys/fs/cgroup")
    .map((m) => (m.type === "proc" ? { ...m, options: ["nosuid", "noexec", "nodev"] } : m));
  spec.process = { user: { uid: 0, gid: 0 }, args: [], env: [`PATH=${DEFAULT_PATH}`], cwd: "/" };
  delete spec.linux!.resources;
  delete spec.linux!.maskedPaths;
  delete spec.linux!.readonlyPaths;
  return spec;
}

function namespacesFromFlags(flags: Record<string, any>): Array<{ type: NamespaceType }> {
  const types: NamespaceType[] = ["mount"];
  if (flags.network !== "host") types.push("network");
  if (flags.pid !== "host") types.push("pid");
  if (flags.ipc !== "host") types.push("ipc");
  if (flags.uts !== "host") types.push("uts");
  if (flags.cgroupns !== "host") types.push("cgroup");
  return types.map((type) => ({ type }));
}

/** Rootless (or --userns as root): a user namespace, mapping container root to an unprivileged host id. */
function addUserNamespace(spec: Spec) {
  const { uidMappings, gidMappings } = defaultIdMappings();
  spec.linux = { ...spec.linux, uidMappings, gidMappings };
  spec.linux.namespaces = [{ type: "user" }, ...(spec.linux.namespaces ?? [])];
  // devpts's gid=5 names a group the namespace may not map.
  spec.mounts = spec.mounts?.map((m) => (m.type === "devpts" ? { ...m, options: m.options?.filter((o) => !o.startsWith("gid=")) } : m));
}

export function readBundle(dir: string): Spec {
  const bundle = resolve(dir);
  const file = `${bundle}/config.json`;
  if (!lexists(file)) badFlag("--bundle", `${file} does not exist (minic spec writes a default one)`);
  let raw: unknown;
  try {
    raw = JSON.parse(readText(file));
  } catch (error) {
    throw new UsageError(`${file}: not valid JSON: ${(error as Error).message}`);
  }
  const spec = validateSpec(raw, file);
  if (spec.linux?.resources) spec.linux.resources = validateResources(spec.linux.resources);
  // As runc does, the standard devices every container gets in /dev stay usable after the
  // config's own device rules (typically "deny all"), and so do the bundle's own devices.
  if (spec.linux?.resources?.devices) {
    const own = (spec.linux.devices ?? []).map((d) => ({ allow: true, type: d.type, major: d.major, minor: d.minor, access: "rwm" }));
    spec.linux.resources.devices = [...spec.linux.resources.devices, ...DEFAULT_DEVICE_RULES.slice(1), ...own];
  }
  if (spec.linux?.seccomp) spec.linux.seccomp = parseSeccompProfile(spec.linux.seccomp, `${file}: linux.seccomp`);
  if (spec.root) spec.root.path = resolve(bundle, spec.root.path);
  spec.annotations = { ...spec.annotations, "org.minic.bundle": bundle };
  return spec;
}

function mergeEnv(base: string[], extra: string[], hostname: string | undefined): string[] {
  const env = new Map(base.map((e) => [e.split("=", 1)[0]!, e] as const));
  if (hostname && !env.has("HOSTNAME")) env.set("HOSTNAME", `HOSTNAME=${hostname}`);
  for (const entry of extra) {
    const eq = entry.indexOf("=");
    const key = eq < 0 ? entry : entry.slice(0, eq);
    if (!key) badFlag("--env", `"${entry}" has no name`);
    if (eq >= 0) env.set(key, entry);
    else if (process.env[key] !== undefined) env.set(key, `${key}=${process.env[key]}`);
  }
  return [...env.values()];
}

function readEnvFile(file: string): string[] {
  if (!lexists(file)) badFlag("--env-file", `${file} does not exist`);
  return readText(file).split("\n").map((l) => l.trim()).filter((l) => l && !l.startsWith("#"));
}

export function parseVolume(spec: string): Mount {
  const [host, ctr, mode, ...extra] = spec.split(":");
  if (!host || !ctr || extra.length || (mode && mode !== "ro" && mode !== "rw")) {
    badFlag("--volume", `"${spec}" is not HOST:CONTAINER[:ro|rw]`);
  }
  if (!ctr.startsWith("/")) badFlag("--volume", `"${ctr}": the container path must be absolute`);
  const source = resolve(host);
  if (!lexists(source)) badFlag("--volume", `${source} does not exist on the host`);
  return { destination: ctr, type: "bind", source, options: ["rbind", mode ?? "rw"] };
}

export function parseTmpfs(spec: string): Mount {
  const [path, opts] = [spec.split(":", 1)[0]!, spec.includes(":") ? spec.slice(spec.indexOf(":") + 1) : ""];
  if (!path.startsWith("/")) badFlag("--tmpfs", `"${path}" must be an absolute path`);
  const options = opts ? opts.split(",") : ["rw", "nosuid", "nodev", "noexec", "size=65536k"];
  return { destination: path, type: "tmpfs", source: "tmpfs", options };
}

function badFlag(flag: string, problem: string): never {
  throw new UsageError(`${flag}: ${problem}`);
}
