// Running one container in the foreground: prepare its state directory, compile the plan, launch
// it, wait, and clean up whatever happened.
import { listDir, mkdirp, readTextIfExists, removeTree, writeText } from "./libc/fs.ts";
import { createStateDir, isLiveContainer, processStartTime, writeState, type ContainerState } from "./state.ts";
import { OCI_VERSION } from "./spec/types.ts";
import { CStr } from "./libc/cstr.ts";
import { O_APPEND, O_CLOEXEC, O_CREAT, O_RDONLY, O_WRONLY } from "./libc/constants.ts";
import { ContainerCgroup } from "./cgroups/cgroup.ts";
import { detectLayout } from "./cgroups/layout.ts";
import { formatBytes } from "./cgroups/resources.ts";
import type { WaitStatus } from "./process/status.ts";
import { compilePlan, type PlanContext } from "./plan.ts";
import type { Spec } from "./spec/types.ts";
import { launch, waitForExit, SetupError, SignalRelay } from "./process/agent.ts";
import { execFailureMessage, exitCodeFor } from "./process/status.ts";
import { describeStep } from "./process/step.ts";
import { log } from "./log.ts";
import { libc, errno, SysError } from "./libc/ffi.ts";
import { SIGKILL, SIGNALS } from "./libc/constants.ts";

export interface RunOptions {
  trace?: (line: string) => void;
  setupTimeoutMs?: number;
  init?: boolean;
  /** Put the container in a cgroup of its own (needs root); limits come from spec.linux.resources. */
  cgroup?: boolean;
  /** Print the cgroup's peak memory, CPU time and peak pids at exit. */
  stats?: boolean;
  /**
   * `run -d`'s monitor: write the container's output to STATE/container.log, and keep the state
   * (with the exit code) after the container ends, for `logs`, `ps -a` and `rm`; unless `remove`.
   */
  monitor?: { remove: boolean };
  /** -i: with process.terminal (-t), forward minic's stdin to the container's terminal. */
  interactive?: boolean;
}

/** 12 random hex digits, like a short docker id. */
export function newContainerId(): string {
  return [...crypto.getRandomValues(new Uint8Array(6))].map((b) => b.toString(16).padStart(2, "0")).join("");
}

export function containerId(spec: Spec): string {
  return spec.annotations?.["org.minic.id"] ?? "container";
}

/** The plan as --dry-run prints it: one numbered line per step. */
export function formatPlan(spec: Spec, context: PlanContext = {}): string {
  return compilePlan(spec, context)
    .map((step, i) => `${String(i + 1).padStart(2)}. ${describeStep(step)}${step.kind === "call" ? "" : `   [${step.kind}]`}\n      ${step.label}`)
    .join("\n");
}

/**
 * The files docker generates for a container with its own root: /etc/hostname, /etc/hosts, and
 * /etc/resolv.conf (the host's, less loopback name servers, which do not answer from inside).
 */
export function writeEtcFiles(dir: string, spec: Spec, hostNetwork: boolean, address = "127.0.1.1"): NonNullable<PlanContext["etcFiles"]> {
  const hostname = spec.hostname ?? containerId(spec);
  const files = {
    hostname: `${hostname}\n`,
    hosts:
      "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\n" +
      `ff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n${address}\t${hostname}\n`,
    "resolv.conf": resolvConf(hostNetwork),
  };
  const paths: Record<string, string> = {};
  for (const [name, text] of Object.entries(files)) writeText((paths[name] = `${dir}/${name}`), text);
  return paths;
}

function resolvConf(hostNetwork: boolean): string {
  const host = readTextIfExists("/etc/resolv.conf") ?? "";
  if (hostNetwork) return host;
  const loopback = /^\s*nameserver\s+(127\.|::1\b)/;
  return host.split("\n").filter((line) => !loopback.test(line)).join("\n");
}

/** Run the container to its end and return the exit code minic should end with. */
export async function runContainer(spec: Spec, options: RunOptions = {}): Promise<number> {
  const id = containerId(spec);
  const dir = createStateDir(id);
  if (options.monitor) redirectOutput(`${dir}/container.log`);
  const state: ContainerState = {
    ociVersion: OCI_VERSION, id, status: "creating", pid: 0, bundle: spec.annotations?.["org.minic.bundle"] ?? "",
    annotations: spec.annotations, created: new Date().toISOString(), command: spec.process?.args,
  };
  let exitCode: number | undefined;
  const escalation = new Escalation(spec, options);
  const relay = new SignalRelay({ trace: options.trace, onSignal: (name) => escalation.onSignal(name) }).start();
  let cgroup: ContainerCgroup | undefined;
  let network: { cleanup(): Promise<void> } | undefined;
  let terminal: import("./terminal/console.ts").ForegroundConsole | undefined;
  try {
    const context: PlanContext = { init: options.init };
    if (spec.process?.terminal) {
      terminal = (await import("./terminal/console.ts")).ForegroundConsole.prepare(spec, context, { interactive: options.interactive });
    }
    cgroup = createCgroup(spec, id, options);
    if (cgroup) context.beforeNamespaces = [(pid) => cgroup!.join(pid)];
    if (spec.annotations?.["org.minic.network"] === "bridge") {
      network = await prepareBridge(spec, id, dir, context, options);
    }
    if (spec.annotations?.["org.minic.network"] === "slirp") network = await prepareSlirp(context);
    if (spec.root && spec.annotations?.["org.minic.etc"] !== "none") {
      const hostNetwork = !spec.linux?.namespaces?.some((n) => n.type === "network");
      context.etcFiles = writeEtcFiles(dir, spec, hostNetwork);
    }
    const steps = compilePlan(spec, context);
    const launched = await launch(steps, { trace: options.trace, setupTimeoutMs: options.setupTimeoutMs }, relay);
    escalation.pid = launched.pid;
    terminal?.attach(); // the pty's master: relayed to and from minic's own stdio
    // What `minic state`, `list`, `ps`, `kill` and `exec` read: the running container and its spec.
    writeText(`${dir}/config.json`, JSON.stringify(spec));
    Object.assign(state, { status: "running", pid: launched.pid, pidStart: processStartTime(launched.pid), cgroupPath: cgroup?.path });
    writeState(state);
    const status = await waitForExit(launched, options.trace);
    await terminal?.finish(); // the rest of the container's output
    if (cgroup) reportCgroup(cgroup, status, options);
    return (exitCode = escalation.exitCode ?? exitCodeFor(status));
  } catch (error) {
    if (!(error instanceof SetupError)) throw error;
    log.error(error.step.kind === "exec" ? execFailureMessage(spec.process!.args[0]!, error.errno) : error.message);
    return (exitCode = error.exitCode);
  } finally {
    terminal?.close(); // restores the user's terminal
    escalation.stop();
    relay.stop();
    await network?.cleanup().catch((error: Error) => log.warn(`could not remove the container's network: ${error.message}`));
    try {
      cgroup?.destroy({ kill: true }); // the PID namespace's processes are gone; with --pid host, some may not be
      if (cgroup) releaseCgroup(id);
    } catch (error) {
      log.warn(`could not remove the container's cgroup: ${(error as Error).message}`);
    }
    if (options.monitor && !options.monitor.remove) keepState(dir, { ...state, status: "stopped", pid: 0, exitCode });
    else removeTree(dir);
  }
}

/** The monitor's stdout and stderr (and so the container's) go to the log file; stdin is /dev/null. */
function redirectOutput(file: string): void {
  const out = libc.open(new CStr(file).ptr, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o640);
  const devNull = libc.open(new CStr("/dev/null").ptr, O_RDONLY | O_CLOEXEC, 0);
  if (out < 0 || devNull < 0) throw new SysError("open", errno(), file);
  libc.dup2(devNull, 0);
  libc.dup2(out, 1);
  libc.dup2(out, 2);
}

/** A finished detached container: its state stays, marked kept, so no later run sweeps it away. */
function keepState(dir: string, state: ContainerState): void {
  writeState(state);
  writeText(`${dir}/kept`, "");
}

/**
 * Bridge networking: ports are checked before anything starts; the veth, address, routes and NAT
 * are set up while the child waits, right after it made its network namespace. The modules are
 * loaded only here (they cost a few ms to import).
 */
async function prepareBridge(spec: Spec, id: string, dir: string, context: PlanContext, options: RunOptions) {
  const net = await import("./network/index.ts");
  const annotations = spec.annotations ?? {};
  const ports = net.parsePortMappings(JSON.parse(annotations["org.minic.publish"] ?? "[]"));
  const subnet = annotations["org.minic.subnet"] ?? process.env.MINIC_SUBNET;
  await net.cleanupStaleNetworks({ subnet });
  net.checkHostPortsFree(ports);
  const handle = { cleanup: async () => {} };
  context.afterNamespaces = [
    async (pid) => {
      const bridge = await net.setupBridgeNetwork({ id, pid, ip: annotations["org.minic.ip"], ports, subnet, trace: options.trace });
      handle.cleanup = () => bridge.cleanup();
      // /etc/hosts is bound in later in the setup: give it the address now.
      if (context.etcFiles?.hosts) writeEtcFiles(dir, spec, false, bridge.address);
    },
  ];
  return handle;
}

/** Rootless networking: slirp4netns (or pasta) joins the new network namespace while the child waits. */
async function prepareSlirp(context: PlanContext) {
  const { startUserModeNetwork, SLIRP_DNS } = await import("./network/slirp.ts");
  const handle = { cleanup: async () => {} };
  context.afterNamespaces = [
    async (pid) => {
      const net = await startUserModeNetwork(pid);
      handle.cleanup = () => net.stop();
      // slirp4netns answers DNS itself; /etc/resolv.conf is bound in later in the setup.
      const resolv = context.etcFiles?.["resolv.conf"];
      if (resolv) writeText(resolv, `nameserver ${SLIRP_DNS}\n`);
    },
  ];
  return handle;
}

/**
 * The container's cgroup: limits from linux.resources, and accounting even without them. Only root
 * can create cgroups here (without a delegated cgroup v2 subtree), so a rootless run without limits
 * has none, and one with limits is refused clearly.
 */
export function createCgroup(spec: Spec, id: string, options: Pick<RunOptions, "cgroup">): ContainerCgroup | undefined {
  if (!options.cgroup) return undefined;
  const resources = spec.linux?.resources ?? {};
  const limited = Object.keys(resources).some((k) => k !== "devices");
  if (process.getuid!() !== 0) {
    if (limited) throw new Error("resource limits need root: an unprivileged user cannot create cgroups on this machine");
    return undefined;
  }
  const layout = detectLayout();
  ContainerCgroup.removeStale(layout, (other) => cgroupOwnerAlive(other) || isLiveContainer(other));
  claimCgroup(id);
  try {
    const source = spec.annotations?.["org.minic.bundle"] ? "spec" : "flags";
    const cgroup = ContainerCgroup.create(layout, spec.linux?.cgroupsPath, resources, { id, source });
    for (const warning of cgroup.warnings) log.warn(warning);
    return cgroup;
  } catch (error) {
    releaseCgroup(id);
    throw error;
  }
}

/**
 * Who owns /minic/ID: a file per container in one place for every minic, whatever its --root
 * (podman's and containerd's differ), naming the process that set the cgroup up. An empty cgroup
 * whose owner is gone is stale; one whose owner lives is a container in the middle of its setup.
 */
const CGROUP_OWNERS = "/run/minic-cgroups";

function claimCgroup(id: string): void {
  mkdirp(CGROUP_OWNERS, 0o700);
  for (const other of listDir(CGROUP_OWNERS)) cgroupOwnerAlive(other); // drops the entries of dead owners
  writeText(`${CGROUP_OWNERS}/${id}`, `${process.pid} ${processStartTime(process.pid)}\n`);
}

export function releaseCgroup(id: string): void {
  removeTree(`${CGROUP_OWNERS}/${id}`);
}

function cgroupOwnerAlive(id: string): boolean {
  const [pid, start] = (readTextIfExists(`${CGROUP_OWNERS}/${id}`) ?? "").trim().split(" ");
  const alive = !!pid && processStartTime(Number(pid)) === start;
  if (!alive) removeTree(`${CGROUP_OWNERS}/${id}`);
  return alive;
}

/** An OOM kill, said by name; and --stats. */
function reportCgroup(cgroup: ContainerCgroup, status: WaitStatus, options: RunOptions) {
  if (status.kind === "signaled" && status.signal === SIGKILL && cgroup.oomKilled()) {
    const limit = cgroup.memoryLimit();
    log.error(`container killed: out of memory${limit ? ` (limit ${formatBytes(limit)})` : ""}`);
  }
  if (options.stats) {
    const s = cgroup.stats();
    const mem = s.memoryPeak === null ? "n/a" : formatBytes(s.memoryPeak);
    const cpu = s.cpuTimeNs === null ? "n/a" : `${(s.cpuTimeNs / 1e9).toFixed(3)} s`;
    log.info(`stats: peak memory ${mem}, CPU time ${cpu}, peak processes ${s.pidsPeak ?? "n/a"}`);
  }
}

/** How long a container whose PID 1 ignored a forwarded SIGINT/SIGTERM gets before SIGKILL. */
export const STOP_GRACE_MS = 2000;
const STOPPING = new Set(["SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT"]);

/**
 * PID 1 of a namespace ignores every signal it has no handler for: a plain `sleep` as PID 1 shrugs
 * off the forwarded Ctrl-C. So when a stopping signal was forwarded to such a PID 1 and it is
 * still running after a grace period, or the user sends a second one, minic kills it with SIGKILL,
 * says so, and exits as if the signal had worked (130 for Ctrl-C). With --init the init handles it.
 */
class Escalation {
  pid = 0;
  exitCode: number | undefined;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private readonly applies: boolean;
  constructor(spec: Spec, options: RunOptions) {
    const pidns = spec.linux?.namespaces?.some((n) => n.type === "pid" && !n.path) ?? false;
    this.applies = pidns && !options.init;
  }
  onSignal(name: string) {
    if (!this.applies || !STOPPING.has(name) || this.pid <= 0) return;
    const kill = (why: string) => {
      this.stop();
      this.exitCode = 128 + SIGNALS[name.slice(3)]!;
      log.warn(`the container's PID 1 ${why}; killed it with SIGKILL (PID 1 ignores signals it has no handler for; --init avoids this)`);
      libc.kill(this.pid, SIGKILL);
    };
    if (this.timer) kill(`got a second ${name}`);
    else this.timer = setTimeout(() => kill(`was still running ${STOP_GRACE_MS / 1000} s after ${name}`), STOP_GRACE_MS);
  }
  stop() {
    clearTimeout(this.timer);
  }
}
