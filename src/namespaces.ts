// Namespaces: which ones a container gets, how the child enters them, and the agent's half of a
// user namespace (writing uid_map and gid_map while the child waits).
import { ptr } from "bun:ffi";
import { libc } from "./libc/ffi.ts";
import { readTextIfExists, writeText } from "./libc/fs.ts";
import { CStr } from "./libc/cstr.ts";
import {
  CLONE_FLAG_NAMES, CLONE_NEWCGROUP, CLONE_NEWIPC, CLONE_NEWNET, CLONE_NEWNS, CLONE_NEWPID, CLONE_NEWTIME,
  CLONE_NEWUSER, CLONE_NEWUTS, O_CLOEXEC, O_RDONLY, flagNames,
} from "./libc/constants.ts";
import { type Step, viaErrno, q } from "./process/step.ts";
import type { IdMapping, NamespaceType, Spec } from "./spec/types.ts";

export const NAMESPACE_FLAGS: Record<NamespaceType, number> = {
  user: CLONE_NEWUSER, mount: CLONE_NEWNS, pid: CLONE_NEWPID, network: CLONE_NEWNET,
  ipc: CLONE_NEWIPC, uts: CLONE_NEWUTS, cgroup: CLONE_NEWCGROUP, time: CLONE_NEWTIME,
};
/** Names of the namespace files under /proc/PID/ns/. */
export const NAMESPACE_FILES: Record<NamespaceType, string> = {
  user: "user", mount: "mnt", pid: "pid", network: "net", ipc: "ipc", uts: "uts", cgroup: "cgroup", time: "time",
};

/** What the spec asks for: namespaces to create, and namespaces to join by path. */
export interface NamespacePlan {
  create: Set<NamespaceType>;
  join: Array<{ type: NamespaceType; path: string }>;
}

export function namespacePlan(spec: Spec): NamespacePlan {
  const plan: NamespacePlan = { create: new Set(), join: [] };
  for (const ns of spec.linux?.namespaces ?? []) {
    if (ns.path) plan.join.push({ type: ns.type, path: ns.path });
    else plan.create.add(ns.type);
  }
  return plan;
}

/** unshare(2) the given namespaces. */
export function unshareStep(types: NamespaceType[]): Step {
  const flags = types.reduce((acc, t) => acc | NAMESPACE_FLAGS[t], 0);
  return {
    kind: "call",
    call: "unshare",
    args: [flagNames(flags, CLONE_FLAG_NAMES)],
    label: `create ${types.join(", ")} namespace${types.length > 1 ? "s" : ""}`,
    run: () => viaErrno(libc.unshare(flags)),
  };
}

/** setns(2) into an existing namespace. The file is opened in the child, by a path the agent checked. */
export function joinStep(type: NamespaceType, path: string): Step {
  const file = new CStr(path);
  const flag = NAMESPACE_FLAGS[type];
  return {
    kind: "call",
    call: "open+setns",
    args: [q(path), flagNames(flag, CLONE_FLAG_NAMES)],
    label: `join the ${type} namespace at ${path}`,
    keep: [file],
    run: () => {
      const fd = libc.open(file.ptr, O_RDONLY | O_CLOEXEC, 0);
      if (fd < 0) return viaErrno(fd);
      const r = viaErrno(libc.setns(fd, flag));
      libc.close(fd);
      return r;
    },
  };
}

export function sethostnameStep(name: string, domain = false): Step {
  const value = new CStr(name);
  return {
    kind: "call",
    call: domain ? "setdomainname" : "sethostname",
    args: [q(name), String(value.length)],
    label: `set the ${domain ? "NIS domain name" : "hostname"} to ${name}`,
    keep: [value],
    run: () => viaErrno((domain ? libc.setdomainname : libc.sethostname)(value.ptr, value.length)),
  };
}

// ---- user namespaces: the agent's half ---------------------------------------------------------

export function formatIdMap(mappings: IdMapping[]): string {
  return mappings.map((m) => `${m.containerID} ${m.hostID} ${m.size}\n`).join("");
}

/** The /etc/subuid (or subgid) ranges of `user`, by name or numeric id. */
export function subordinateRange(file: string, user: string, id: number): { start: number; count: number } | null {
  for (const line of (readTextIfExists(file) ?? "").split("\n")) {
    const [owner, start, count] = line.trim().split(":");
    if ((owner === user || owner === String(id)) && start && count) return { start: Number(start), count: Number(count) };
  }
  return null;
}

/**
 * Write the child's uid_map and gid_map. An unprivileged agent may map only its own ids, and must
 * first write "deny" to setgroups (else a process in the namespace could drop supplementary groups
 * that deny it access on the host); mapping more needs the setuid helpers newuidmap/newgidmap,
 * which check /etc/subuid and /etc/subgid.
 */
export async function writeIdMaps(pid: number, uidMappings: IdMapping[], gidMappings: IdMapping[], helpers: boolean) {
  if (helpers) {
    await runHelper("newuidmap", pid, uidMappings);
    await runHelper("newgidmap", pid, gidMappings);
    return;
  }
  if (process.getuid!() !== 0) writeText(`/proc/${pid}/setgroups`, "deny");
  writeText(`/proc/${pid}/uid_map`, formatIdMap(uidMappings));
  writeText(`/proc/${pid}/gid_map`, formatIdMap(gidMappings));
}

async function runHelper(tool: string, pid: number, mappings: IdMapping[]) {
  const args = mappings.flatMap((m) => [m.containerID, m.hostID, m.size].map(String));
  const child = Bun.spawn([tool, String(pid), ...args], { stdout: "ignore", stderr: "pipe" });
  if ((await child.exited) !== 0) {
    const why = (await new Response(child.stderr).text()).trim();
    throw new Error(`${tool} ${pid} ${args.join(" ")} failed: ${why || `exit ${child.exitCode}`}`);
  }
}

/**
 * Whether writing these maps needs newuidmap/newgidmap: an unprivileged agent may write only a
 * single mapping of its own uid (and gid) itself.
 */
export function needsIdMapHelpers(uids: IdMapping[], gids: IdMapping[]): boolean {
  if (process.getuid!() === 0) return false;
  const own = (maps: IdMapping[], id: number) => maps.length === 1 && maps[0]!.hostID === id && maps[0]!.size === 1;
  return !own(uids, process.getuid!()) || !own(gids, process.getgid!());
}

/** Whether the mappings give a container id for `id` (e.g. gid 5, the tty group, for devpts). */
export function isMapped(mappings: IdMapping[] | undefined, id: number): boolean {
  return (mappings ?? []).some((m) => id >= m.containerID && id < m.containerID + m.size);
}

/**
 * A new network namespace has a loopback interface, down. Bring it up, as every runtime does:
 * socket(AF_INET, SOCK_DGRAM) and ioctl(SIOCSIFFLAGS) with IFF_UP on "lo".
 */
export function loopbackUpStep(): Step {
  const ifreq = new Uint8Array(40); // struct ifreq: char ifr_name[16], then a union; ifr_flags is a short
  ifreq.set(new TextEncoder().encode("lo"));
  new DataView(ifreq.buffer).setInt16(16, 0x1 /* IFF_UP */, true);
  const ifreqPtr = ptr(ifreq);
  return {
    kind: "call", call: "socket+ioctl", args: ["AF_INET, SOCK_DGRAM", "SIOCSIFFLAGS", '{"lo", IFF_UP}'],
    label: "bring up the loopback interface", keep: [ifreq],
    run: () => {
      const fd = libc.socket(2 /* AF_INET */, 2 /* SOCK_DGRAM */ | O_CLOEXEC, 0);
      if (fd < 0) return viaErrno(fd);
      const r = viaErrno(libc.ioctl(fd, 0x8914 /* SIOCSIFFLAGS */, ifreqPtr));
      libc.close(fd);
      return r;
    },
  };
}
