// The container's /sys/fs/cgroup: a config.json mount of type "cgroup".
//
// On a cgroup v2 host this is one cgroup2 mount. On v1 and hybrid hosts a single "cgroup" mount
// cannot stand for the host's several hierarchies (mounting all controllers at once fails while
// they are mounted apart), so, as runc does, minic mounts a tmpfs there and one cgroup mount per
// hierarchy inside it, named like the host's, plus cgroup2 at unified/ on a hybrid host. Mounted
// from inside the container's cgroup namespace, each shows the container's own cgroup as its root.
// In a user namespace the kernel refuses new v1 mounts, so the host's tree is bound instead.
import { detectLayout } from "../cgroups/layout.ts";
import { basename, listDir, readlink } from "../libc/fs.ts";
import { MS_BIND, MS_NODEV, MS_NOEXEC, MS_NOSUID, MS_RDONLY, MS_REC } from "../libc/constants.ts";
import type { Step } from "../process/step.ts";
import { mkdirSteps, mountStep, remountReadOnlyStep, symlinkStep } from "./steps.ts";

export function cgroupMountSteps(rootfs: string, target: string, flags: number, userns: boolean): Step[] {
  const layout = detectLayout();
  const ro = flags & MS_RDONLY;
  const base = MS_NOSUID | MS_NODEV | MS_NOEXEC;
  if (userns) {
    const bind = mountStep("/sys/fs/cgroup", target, null, MS_BIND | MS_REC, null, "bind the host's /sys/fs/cgroup (a user namespace may not mount cgroup v1)");
    return ro ? [bind, remountReadOnlyStep(target)] : [bind];
  }
  if (layout.mode === "v2") return [mountStep("cgroup2", target, "cgroup2", base | flags, null, "mount cgroup2 on /sys/fs/cgroup")];
  const steps: Step[] = [mountStep("tmpfs", target, "tmpfs", base, "mode=755", "mount a tmpfs for the cgroup hierarchies")];
  for (const h of layout.v1) {
    const name = basename(h.mount);
    steps.push(...mkdirSteps(rootfs, `${target}/${name}`));
    steps.push(mountStep("cgroup", `${target}/${name}`, "cgroup", base | ro, h.controllers.join(","), `mount the ${name} cgroup hierarchy`));
  }
  if (layout.unified) {
    steps.push(...mkdirSteps(rootfs, `${target}/unified`));
    steps.push(mountStep("cgroup2", `${target}/unified`, "cgroup2", base | ro, null, "mount the unified cgroup2 hierarchy"));
  }
  // The host's aliases, such as cpu -> cpu,cpuacct.
  for (const name of listDir("/sys/fs/cgroup")) {
    const link = readlink(`/sys/fs/cgroup/${name}`);
    if (link && !link.includes("/")) steps.push(symlinkStep(link, `${target}/${name}`));
  }
  if (ro) steps.push(remountReadOnlyStep(target));
  return steps;
}
