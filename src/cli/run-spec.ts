// From `minic run`'s flags to the container's OCI spec: the one model that the plan compiles.
// Each group of flags has its applier: namespaces and user, environment and mounts, security,
// resources, network. A bundle (--bundle) is read and checked here too.
import { isDirectory, lexists, readText, resolvePath as resolve } from "../libc/fs.ts";
import { envList } from "../libc/cstr.ts";
import type { Mount, NamespaceType, Spec } from "../spec/types.ts";
import { defaultSpec } from "../spec/defaults.ts";
import { RLIMITS, validateSpec } from "../spec/validate.ts";
import { newContainerId } from "../container.ts";
import { DEFAULT_PATH } from "../process/path.ts";
import { defaultIdMappings, lookupUser } from "../security/users.ts";
import { capabilitiesFromFlags } from "../security/capabilities.ts";
import { DEFAULT_MASKED_PATHS, DEFAULT_READONLY_PATHS } from "../security/hardening.ts";
import { defaultProfile, parseSeccompProfile, seccompFromSecurityOpt } from "../security/seccomp.ts";
import { cached } from "../security/seccomp-cache.ts";
import { DEFAULT_DEVICE_RULES, parseDeviceFlag } from "../security/devices.ts";
import { parseResources, resourceFlags, type ResourceFlags } from "../cgroups/flags.ts";
import { validateResources } from "../cgroups/resources.ts";
import { UsageError } from "./argv.ts";
import type { VerbInput } from "./verb.ts";

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
    // (loaded here only: the network modules cost a few ms to import, and most runs need none)
    const { userModeNetworkTool } = require("../network/slirp.ts") as typeof import("../network/slirp.ts");
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
  const seccomp = privileged
    ? null
    : options.seccomp
      ? seccompFromSecurityOpt(`seccomp=${options.seccomp}`, { capabilities: caps })
      : cached("profile", `${process.arch}\0${readText("/proc/sys/kernel/osrelease")}\0${[...caps].sort()}`, () => defaultProfile(caps));
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
