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
//   7. hostname, loopback, cwd, user, fds, signals
//   8. execve
import type { Spec, IdMapping } from "./spec/types.ts";
import type { Step } from "./process/step.ts";
import {
  chdirStep, closeInheritedFds, execCommand, forkAgain, parentDeathSignal, resetSignals, syncWithAgent, umaskStep,
} from "./process/steps.ts";
import { commandCandidates, DEFAULT_PATH } from "./process/path.ts";
import {
  namespacePlan, unshareStep, joinStep, sethostnameStep, writeIdMaps, isMapped, loopbackUpStep, needsIdMapHelpers,
  type NamespacePlan,
} from "./namespaces.ts";
import { filesystemSteps } from "./rootfs/filesystem.ts";
import { identitySteps } from "./security/identity.ts";
import { initTarget } from "./init/install.ts";

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
}

export function compilePlan(spec: Spec, context: PlanContext = {}): Step[] {
  const proc = spec.process;
  if (!proc || proc.args.length === 0) throw new Error("config.json: process.args: must be a non-empty array");
  const ns = namespacePlan(spec);
  const steps: Step[] = [parentDeathSignal()];
  steps.push(...namespaceSteps(spec, ns));
  if (ns.create.has("pid") || ns.create.has("time")) {
    steps.push(forkAgain()); // from here on, steps run in the new process: PID 1 of its namespace
    steps.push(parentDeathSignal()); // not inherited across fork
  }
  if (ns.create.has("mount")) steps.push(...filesystemSteps(spec, ns, context));
  if (ns.create.has("uts") && spec.hostname) steps.push(sethostnameStep(spec.hostname));
  if (ns.create.has("uts") && spec.domainname) steps.push(sethostnameStep(spec.domainname, true));
  if (ns.create.has("network")) steps.push(loopbackUpStep());
  steps.push(chdirStep(proc.cwd));
  steps.push(...identitySteps(proc.user, { setgroupsAllowed: !setgroupsDenied(spec) }));
  steps.push(umaskStep(proc.user.umask ?? 0o022));
  steps.push(closeInheritedFds()); // the container gets stdin, stdout, stderr and nothing of the runtime's
  steps.push(resetSignals()); // last before exec: what the runtime ignored or blocked must not reach the command so
  const env = proc.env ?? [];
  if (context.init) {
    steps.push(execCommand(initTarget(proc.args, env, spec.root?.path)));
    return steps;
  }
  const candidates = commandCandidates(proc.args[0]!, envValue(env, "PATH") ?? DEFAULT_PATH, spec.root?.path ?? "/");
  steps.push(execCommand({ candidates, argv: proc.args, env }));
  return steps;
}

function namespaceSteps(spec: Spec, ns: NamespacePlan): Step[] {
  const steps: Step[] = [];
  // Joining existing namespaces (spec paths, `--network container:` style) comes first, user first,
  // so that the namespaces created next are owned by the right user namespace.
  const joins = [...ns.join].sort((a, b) => Number(b.type === "user") - Number(a.type === "user"));
  for (const j of joins) steps.push(joinStep(j.type, j.path));
  if (ns.create.has("user")) {
    const uids = spec.linux?.uidMappings ?? [];
    const gids = spec.linux?.gidMappings ?? [];
    steps.push(unshareStep(["user"]));
    const helpers = needsIdMapHelpers(uids, gids);
    steps.push(syncWithAgent("write uid_map and gid_map", (pid) => writeIdMaps(pid, uids, gids, helpers)));
    // Become the namespace's root (if it is mapped), so that what the setup creates belongs to it.
    if (isMapped(uids, 0) && isMapped(gids, 0)) steps.push(...identitySteps({ uid: 0, gid: 0 }, { setgroupsAllowed: false }));
  }
  const rest = (["mount", "uts", "ipc", "network", "pid", "time"] as const).filter((t) => ns.create.has(t));
  if (rest.length > 0) steps.push(unshareStep([...rest]));
  if (ns.create.has("cgroup")) steps.push(unshareStep(["cgroup"]));
  return steps;
}

/** Whether /proc/PID/setgroups will say "deny": an unprivileged agent writing the maps itself. */
export function setgroupsDenied(spec: Spec): boolean {
  const linux = spec.linux ?? {};
  return namespacePlan(spec).create.has("user") && process.getuid!() !== 0 && !needsIdMapHelpers(linux.uidMappings ?? [], linux.gidMappings ?? []);
}

export type { IdMapping };
