// Compiling a container's configuration (an OCI spec) into the child's list of prepared steps.
// The list is plain data that --dry-run prints, --trace narrates and the unit tests read.
//
// The order, and why:
//   1. prctl(PDEATHSIG)            the container dies with the agent, from the first instant
//   2. unshare(USER), sync         the agent writes uid_map/gid_map while the child waits
//   3. unshare(NS|UTS|IPC|NET|PID) every other namespace, owned by the user namespace if there is one
//   4. unshare(CGROUP)             after the agent has placed the child in its cgroup
//   5. clone(CLONE_PARENT)         a PID namespace applies to the next child: fork once more, so
//                                  the command is PID 1; the agent is its parent and waits for it
//   6. mounts, pivot_root          in the new PID namespace, so /proc shows it
//   7. masked and read-only paths, hostname, loopback, cwd, rlimits
//   8. capabilities, user, no_new_privs, umask, fds, signals, and seccomp last
//   9. execve
import type { Spec, IdMapping } from "./spec/types.ts";
import type { Step } from "./process/step.ts";
import {
  chdirStep, closeInheritedFds, execCommand, findCommandStep, forkAgain, holdUntilStarted, parentDeathSignal, resetSignals, syncWithAgent,
  umaskStep,
} from "./process/steps.ts";
import { commandCandidates, DEFAULT_PATH } from "./process/path.ts";
import {
  namespacePlan, unshareStep, joinStep, sethostnameStep, writeIdMaps, isMapped, loopbackUpStep, needsIdMapHelpers,
  type NamespacePlan,
} from "./namespaces.ts";
import { filesystemSteps } from "./rootfs/filesystem.ts";
import { identitySteps } from "./security/identity.ts";
import { initTarget } from "./init/install.ts";
import { ambientStep, capsetStep, dropBoundingStep, keepCapsStep } from "./security/capabilities.ts";
import {
  maskPathStep, newSessionStep, noNewPrivsStep, oomScoreAdjStep, readonlyPathSteps, rlimitStep, RLIMIT_EPERM_HINT,
} from "./security/hardening.ts";
import { EACCES, EPERM } from "./libc/errno.ts";
import type { LinuxSeccomp } from "./security/seccomp.ts";
import { compileSeccomp, seccompStep } from "./security/seccomp-bpf.ts";
import { cached, keyOf } from "./security/seccomp-cache.ts";
import { terminalSteps } from "./terminal/pty.ts";

/** The value of `name` in a KEY=VALUE list, as getenv would find it. */
export function envValue(env: readonly string[], name: string): string | undefined {
  const entry = env.find((e) => e.startsWith(`${name}=`));
  return entry?.slice(name.length + 1);
}

/** What the agent knows that the spec does not say. */
export interface PlanContext {
  /** Host files bind-mounted over the container's /etc/hostname, /etc/hosts and /etc/resolv.conf. */
  etcFiles?: Partial<Record<"hostname" | "hosts" | "resolv.conf", string>>;
  /** Run minic's init as PID 1, with the command as its child (`minic run --init`). */
  init?: boolean;
  /**
   * The agent's work while the child waits, before the child creates its namespaces (after its
   * user namespace, if any): joining the container's cgroup, so the command never runs unconstrained.
   */
  beforeNamespaces?: Array<(pid: number) => void | Promise<void>>;
  /**
   * `minic create`: hold before exec until `minic start` opens the fifo open (O_PATH) at this fd.
   * The container then outlives the agent, so no parent-death signal is set.
   */
  hold?: { fifoFd: number };
  /**
   * process.terminal: the console socket (connected before the fork, inherited by the child) that
   * the pty's master is sent to (src/terminal/pty.ts).
   */
  consoleSocket?: number;
  /** The agent's work once the namespaces exist (before the second fork): network setup. */
  afterNamespaces?: Array<(pid: number) => void | Promise<void>>;
  /** The agent's work once the container's own process exists, before its mounts: create-time hooks. */
  beforeMounts?: Array<(pid: number) => void | Promise<void>>;
}

export function compilePlan(spec: Spec, context: PlanContext = {}): Step[] {
  const proc = spec.process;
  if (!proc || proc.args.length === 0) throw new Error("config.json: process.args: must be a non-empty array");
  const ns = namespacePlan(spec);
  const orphanable = context.hold !== undefined; // a created container outlives `minic create`
  const steps: Step[] = orphanable ? [] : [parentDeathSignal()];
  steps.push(...namespaceSteps(spec, ns, context));
  if (ns.create.has("pid") || ns.create.has("time")) {
    steps.push(forkAgain()); // from here on, steps run in the new process: PID 1 of its namespace
    if (!orphanable) steps.push(parentDeathSignal()); // not inherited across fork
  }
  if (context.beforeMounts?.length) steps.push(syncWithAgent("run the create-time hooks", runAll(context.beforeMounts)));
  const hardened = proc.capabilities !== undefined; // a spec without capabilities is the seed's bare flow
  // no controlling terminal to inject keystrokes into (with process.terminal, the terminal steps make the session)
  if (hardened && !proc.terminal) steps.push(newSessionStep());
  if (proc.oomScoreAdj !== undefined) {
    steps.push({ ...oomScoreAdjStep(proc.oomScoreAdj), hints: { [EACCES]: "lowering oom_score_adj below 0 needs CAP_SYS_RESOURCE, which minic's own process lacks here" } });
  }
  if (ns.create.has("mount")) {
    steps.push(...filesystemSteps(spec, ns, context));
    for (const path of spec.linux?.maskedPaths ?? []) steps.push(maskPathStep(path));
    for (const path of spec.linux?.readonlyPaths ?? []) steps.push(...readonlyPathSteps(path));
  }
  // After pivot_root, so the pty comes from the container's own devpts (/dev/pts/0 inside).
  if (proc.terminal) {
    steps.push(...terminalSteps({ socketFd: context.consoleSocket ?? -1, consoleSize: proc.consoleSize, uid: proc.user.uid }));
  }
  if (ns.create.has("uts") && spec.hostname) steps.push(sethostnameStep(spec.hostname));
  if (ns.create.has("uts") && spec.domainname) steps.push(sethostnameStep(spec.domainname, true));
  if (ns.create.has("network")) steps.push(loopbackUpStep());
  steps.push(chdirStep(proc.cwd));
  // Limits first: raising one may need CAP_SYS_RESOURCE, which the capability steps may drop.
  for (const r of proc.rlimits ?? []) steps.push({ ...rlimitStep(r.type, r.soft, r.hard), hints: { [EPERM]: RLIMIT_EPERM_HINT } });
  // The seccomp filter goes last, as it may forbid calls the setup needs. Loading one needs
  // no_new_privs or CAP_SYS_ADMIN: without no_new_privs it must come before the capabilities go.
  const seccomp = spec.linux?.seccomp ? seccompFilterStep(spec.linux.seccomp) : undefined;
  if (seccomp && !proc.noNewPrivileges) steps.push(seccomp);
  steps.push(...privilegeSteps(spec));
  // prctl(2): a change of effective uid or gid clears the parent-death signal; set it again.
  if (!orphanable && (proc.user.uid !== 0 || proc.user.gid !== 0)) steps.push(parentDeathSignal());
  steps.push(umaskStep(proc.user.umask ?? 0o022));
  steps.push(closeInheritedFds()); // the container gets stdin, stdout, stderr and nothing of the runtime's
  steps.push(resetSignals()); // last before exec: what the runtime ignored or blocked must not reach the command so
  if (seccomp && proc.noNewPrivileges) steps.push(seccomp);
  const env = proc.env ?? [];
  const target = context.init
    ? initTarget(proc.args, env, spec.root?.path)
    : { candidates: commandCandidates(proc.args[0]!, envValue(env, "PATH") ?? DEFAULT_PATH, spec.root?.path ?? "/"), argv: proc.args, env };
  if (context.hold) {
    // After the hold nobody hears a failure, so the command is looked for now, as runc does.
    steps.push(findCommandStep(target.candidates));
    steps.push(holdUntilStarted(context.hold.fifoFd));
  }
  steps.push(execCommand(target));
  return steps;
}

/**
 * Who the command runs as, and with what privileges: bounding set, user switch, capability sets,
 * ambient set, no_new_privs. The user switch comes between the bounding drop (which needs
 * CAP_SETPCAP) and capset (which, for a non-root user, needs the permitted set kept across it).
 */
export function privilegeSteps(spec: Spec): Step[] {
  const proc = spec.process!;
  const identity = identitySteps(proc.user, { setgroupsAllowed: !setgroupsDenied(spec) });
  const caps = proc.capabilities;
  if (!caps) return [...identity, ...(proc.noNewPrivileges ? [noNewPrivsStep()] : [])];
  const keep = proc.user.uid !== 0 && (caps.permitted?.length ?? 0) > 0;
  const steps: Step[] = [dropBoundingStep(caps.bounding ?? [])];
  if (keep) steps.push(keepCapsStep(true));
  steps.push(...identity);
  if (keep) steps.push(keepCapsStep(false));
  steps.push(capsetStep({ effective: caps.effective ?? [], permitted: caps.permitted ?? [], inheritable: caps.inheritable ?? [] }));
  if (caps.ambient?.length) steps.push(ambientStep(caps.ambient));
  if (proc.noNewPrivileges) steps.push(noNewPrivsStep());
  return steps;
}

function namespaceSteps(spec: Spec, ns: NamespacePlan, context: PlanContext): Step[] {
  const steps: Step[] = [];
  // Joining existing namespaces (spec paths, `--network container:` style) comes first, user first,
  // so that the namespaces created next are owned by the right user namespace.
  const joins = [...ns.join].sort((a, b) => Number(b.type === "user") - Number(a.type === "user"));
  for (const j of joins) steps.push(joinStep(j.type, j.path));
  const early = [...(context.beforeNamespaces ?? [])];
  const uids = spec.linux?.uidMappings ?? [];
  const gids = spec.linux?.gidMappings ?? [];
  if (ns.create.has("user")) {
    steps.push(unshareStep(["user"]));
    const helpers = needsIdMapHelpers(uids, gids);
    early.unshift((pid) => writeIdMaps(pid, uids, gids, helpers));
  }
  if (early.length > 0) steps.push(syncWithAgent(agentLabel(ns, context), runAll(early)));
  // Become the user namespace's root (if it is mapped), so that what the setup creates belongs to it.
  if (ns.create.has("user") && isMapped(uids, 0) && isMapped(gids, 0)) {
    steps.push(...identitySteps({ uid: 0, gid: 0 }, { setgroupsAllowed: false }));
  }
  const rest = (["mount", "uts", "ipc", "network", "pid", "time"] as const).filter((t) => ns.create.has(t));
  if (rest.length > 0) steps.push(unshareStep([...rest]));
  if (context.afterNamespaces?.length) steps.push(syncWithAgent("set up the network namespace", runAll(context.afterNamespaces)));
  // After the cgroup was joined, so that the namespace's root is the container's own cgroup.
  if (ns.create.has("cgroup")) steps.push(unshareStep(["cgroup"]));
  return steps;
}

export function seccompFilterStep(profile: LinuxSeccomp): Step {
  const compiled = cached("bpf", keyOf(profile), () => compileSeccomp(profile));
  const step = seccompStep(compiled.program, compiled.flags);
  return { ...step, args: [...step.args, `${compiled.rules} rules`] };
}

function runAll(actions: Array<(pid: number) => void | Promise<void>>) {
  return async (pid: number) => {
    for (const action of actions) await action(pid);
  };
}

function agentLabel(ns: NamespacePlan, context: PlanContext): string {
  const parts = [...(ns.create.has("user") ? ["write uid_map and gid_map"] : []), ...(context.beforeNamespaces?.length ? ["join the container's cgroup"] : [])];
  return parts.join(", ");
}

/**
 * Whether setgroups(2) is out of reach: for an unprivileged user outside a user namespace, or in one
 * whose /proc/PID/setgroups says "deny" (an unprivileged agent writing the maps itself).
 */
export function setgroupsDenied(spec: Spec): boolean {
  if (process.getuid!() === 0) return false;
  if (!namespacePlan(spec).create.has("user")) return true;
  const linux = spec.linux ?? {};
  return !needsIdMapHelpers(linux.uidMappings ?? [], linux.gidMappings ?? []);
}

export type { IdMapping };
