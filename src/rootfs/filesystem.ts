// The container's filesystem, in runc's order:
//   1. make every mount in the new namespace a slave, so nothing the container mounts reaches the host
//   2. bind the rootfs onto itself: pivot_root needs the new root to be a mount point
//   3. the spec's mounts inside it (/proc, /dev, /dev/pts, /dev/shm, /dev/mqueue, /sys, volumes)
//   4. fill /dev: device nodes (or binds of the host's, inside a user namespace) and the usual links
//   5. bind the generated /etc/hostname, /etc/hosts, /etc/resolv.conf
//   6. pivot_root into the rootfs and detach the old root
//   7. remount the root read-only if asked
// Without a rootfs the container keeps the host's files, seen through its own mount namespace,
// with its own /proc.
import { dirname, isDirectory, lexists } from "../libc/fs.ts";
import { EACCES, ENOENT, EPERM, EROFS } from "../libc/errno.ts";
import { MS_BIND, MS_NODEV, MS_NOEXEC, MS_NOSUID, MS_RDONLY, MS_REC, MS_SLAVE } from "../libc/constants.ts";
import { isMapped, type NamespacePlan } from "../namespaces.ts";
import type { Step } from "../process/step.ts";
import { umaskStep } from "../process/steps.ts";
import type { IdMapping, Mount, Spec } from "../spec/types.ts";
import type { LinuxDevice } from "../security/devices.ts";
import type { PlanContext } from "../plan.ts";
import { resolveInRoot } from "./paths.ts";
import { cgroupMountSteps } from "./cgroupfs.ts";
import { initMountSteps } from "../init/install.ts";
import {
  mkdirSteps, mknodStep, mountStep, parseMountOptions, pivotRootSteps, remountReadOnlyStep, symlinkStep, touchStep,
} from "./steps.ts";

/** The device nodes every container gets (runc's list): all character devices, mode 0666. */
export const DEFAULT_DEVICES = [
  { path: "/dev/null", major: 1, minor: 3 },
  { path: "/dev/zero", major: 1, minor: 5 },
  { path: "/dev/full", major: 1, minor: 7 },
  { path: "/dev/random", major: 1, minor: 8 },
  { path: "/dev/urandom", major: 1, minor: 9 },
  { path: "/dev/tty", major: 5, minor: 0 },
];

const DEV_LINKS: Array<[string, string]> = [
  ["/proc/self/fd", "/dev/fd"], ["/proc/self/fd/0", "/dev/stdin"], ["/proc/self/fd/1", "/dev/stdout"],
  ["/proc/self/fd/2", "/dev/stderr"], ["pts/ptmx", "/dev/ptmx"],
];

export function filesystemSteps(spec: Spec, ns: NamespacePlan, context: PlanContext): Step[] {
  const userns = ns.create.has("user") || ns.join.some((j) => j.type === "user");
  const steps: Step[] = [
    mountStep(null, "/", null, MS_REC | MS_SLAVE, null, "stop mount propagation to the host"),
    umaskStep(0), // device nodes and mount points get exactly the modes asked for
  ];
  const rootfs = spec.root?.path;
  if (!rootfs) {
    if (ns.create.has("pid")) steps.push(mountStep("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, null, "mount a /proc for the new PID namespace"));
    for (const mount of spec.mounts ?? []) steps.push(...specMountSteps("", mount, { userns, ns, gids: undefined }));
    return steps;
  }
  steps.push(mountStep(rootfs, rootfs, null, MS_BIND | MS_REC, null, "bind the rootfs onto itself"));
  const mounts = spec.mounts ?? [];
  mounts.forEach((mount, i) => {
    // Name the config.json entry in every step of it, so an error points at the line to fix.
    const named = specMountSteps(rootfs, mount, { userns, ns, gids: spec.linux?.gidMappings });
    steps.push(...named.map((step) => ({ ...step, label: `${step.label} (mounts[${i}])` })));
  });
  const devIsTmpfs = mounts.some((m) => m.destination === "/dev" && m.type === "tmpfs");
  if (devIsTmpfs) steps.push(...deviceSteps(rootfs, userns, spec.linux?.devices ?? []));
  if (context.init) {
    if (!devIsTmpfs) throw new Error("--init needs the container's /dev to be a tmpfs (its files are mounted there)");
    steps.push(...initMountSteps(rootfs));
  }
  for (const [name, source] of Object.entries(context.etcFiles ?? {})) {
    const target = resolveInRoot(rootfs, `/etc/${name}`);
    // Best effort, as these files are a convenience: a rootfs the container's root may not write to
    // (read-only media, or owned by the host's root in a rootless run) keeps its own, if it has one.
    steps.push(...mkdirSteps(rootfs, dirname(target)), { ...touchStep(target), tolerate: [EROFS, EACCES, EPERM] });
    steps.push({ ...mountStep(source, target, null, MS_BIND, null, `bind the generated /etc/${name}`), tolerate: [ENOENT] });
  }
  steps.push(...pivotRootSteps(rootfs));
  if (spec.root?.readonly) steps.push(remountReadOnlyStep("/"));
  return steps;
}

interface MountContext {
  userns: boolean;
  ns: NamespacePlan;
  gids: IdMapping[] | undefined;
}

/** The steps for one entry of config.json's `mounts`. */
export function specMountSteps(rootfs: string, mount: Mount, ctx: MountContext): Step[] {
  const target = rootfs ? resolveInRoot(rootfs, mount.destination) : mount.destination;
  let { type = "", source = "", options = [] } = mount;
  // In a user namespace some filesystems may only be mounted by the owner of the matching
  // namespace; where the container shares that namespace with the host, bind the host's instead.
  if (ctx.userns && type === "sysfs" && !ctx.ns.create.has("network")) [type, source, options] = ["bind", "/sys", ["rbind", ...options]];
  if (ctx.userns && type === "mqueue" && !ctx.ns.create.has("ipc")) [type, source, options] = ["bind", "/dev/mqueue", ["rbind", ...options]];
  if (ctx.userns && type === "devpts" && !isMapped(ctx.gids, 5)) options = options.filter((o) => !o.startsWith("gid="));
  const parsed = parseMountOptions(options);
  const bind = type === "bind" || (parsed.flags & MS_BIND) !== 0;
  const steps: Step[] = [];
  if (type === "cgroup" || type === "cgroup2") {
    return [...mkdirSteps(rootfs, target), ...cgroupMountSteps(rootfs, target, parsed.flags, ctx.userns)];
  }
  if (bind && isFile(source)) steps.push(...mkdirSteps(rootfs, dirname(target)), touchStep(target));
  else steps.push(...mkdirSteps(rootfs, target));
  const label = `mount ${bind ? source : type} on ${mount.destination}`;
  if (bind) {
    steps.push(mountStep(source, target, null, MS_BIND | (parsed.flags & MS_REC), null, label));
    // A bind mount ignores every flag but MS_BIND and MS_REC; the others take a remount.
    const extra = parsed.flags & ~(MS_BIND | MS_REC | MS_RDONLY);
    if (parsed.flags & MS_RDONLY) steps.push(remountReadOnlyStep(target, extra));
    else if (extra) steps.push(mountStep(null, target, null, MS_BIND | 0x20 /* MS_REMOUNT */ | extra, null, `apply ${options.join(",")} to ${mount.destination}`));
  } else {
    steps.push(mountStep(source || type, target, type, parsed.flags, parsed.data, label));
  }
  if (parsed.propagation) steps.push(mountStep(null, target, null, parsed.propagation, null, `set propagation of ${mount.destination}`));
  return steps;
}

/**
 * /dev is a fresh tmpfs: create the standard devices in it. mknod needs CAP_MKNOD in the initial
 * user namespace, so inside a user namespace each device is an empty file with the host's node
 * bind-mounted on it.
 */
function deviceSteps(rootfs: string, userns: boolean, extra: LinuxDevice[]): Step[] {
  const steps: Step[] = [];
  const all = [...DEFAULT_DEVICES.map((d) => ({ ...d, type: "c", fileMode: 0o666 })), ...extra];
  for (const dev of all) {
    const target = `${rootfs}${dev.path}`;
    steps.push(...mkdirSteps(rootfs, dirname(target)));
    if (userns) steps.push(touchStep(target), mountStep(dev.path, target, null, MS_BIND, null, `bind the host's ${dev.path}`));
    else steps.push(mknodStep(target, dev.fileMode ?? 0o666, dev.major, dev.minor, dev.type === "b" ? "b" : "c"));
  }
  for (const [to, link] of DEV_LINKS) steps.push(symlinkStep(to, `${rootfs}${link}`));
  return steps;
}

function isFile(path: string): boolean {
  return lexists(path) && !isDirectory(path);
}
