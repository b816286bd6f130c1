// The mount vocabulary: mount options as config.json writes them, and the steps that mount,
// create directories and device nodes, and switch to the new root. filesystem.ts puts them in order.
import { ptr } from "bun:ffi";
import { libc } from "../libc/ffi.ts";
import { isDirectory } from "../libc/fs.ts";
import { CStr, cstrOrNull } from "../libc/cstr.ts";
import {
  MNT_DETACH, MS_BIND, MS_FLAG_NAMES, MS_NOATIME, MS_NODEV, MS_NODIRATIME, MS_NOEXEC, MS_NOSUID, MS_PRIVATE, MS_RDONLY,
  MS_REC, MS_RELATIME, MS_REMOUNT, MS_SHARED, MS_SLAVE, MS_STRICTATIME, MS_UNBINDABLE, O_CLOEXEC, O_CREAT, O_WRONLY,
  S_IFBLK, S_IFCHR, flagNames,
} from "../libc/constants.ts";
import { EEXIST } from "../libc/errno.ts";
import { type Step, viaErrno, q } from "../process/step.ts";

// ---- mount options, as in config.json and `mount -o` ------------------------------------------

const SET: Record<string, number> = {
  ro: MS_RDONLY, nosuid: MS_NOSUID, nodev: MS_NODEV, noexec: MS_NOEXEC, bind: MS_BIND, rbind: MS_BIND | MS_REC,
  relatime: MS_RELATIME, strictatime: MS_STRICTATIME, noatime: MS_NOATIME, nodiratime: MS_NODIRATIME,
};
const CLEAR: Record<string, number> = {
  rw: MS_RDONLY, suid: MS_NOSUID, dev: MS_NODEV, exec: MS_NOEXEC, norelatime: MS_RELATIME, atime: MS_NOATIME,
  diratime: MS_NODIRATIME, nostrictatime: MS_STRICTATIME,
};
const PROPAGATION: Record<string, number> = {
  private: MS_PRIVATE, rprivate: MS_PRIVATE | MS_REC, slave: MS_SLAVE, rslave: MS_SLAVE | MS_REC,
  shared: MS_SHARED, rshared: MS_SHARED | MS_REC, unbindable: MS_UNBINDABLE, runbindable: MS_UNBINDABLE | MS_REC,
};

export interface MountOptions {
  flags: number;
  propagation: number;
  /** Filesystem-specific options (mode=755,size=64m), passed as mount(2)'s data. */
  data: string;
}

export function parseMountOptions(options: readonly string[] = []): MountOptions {
  let flags = 0;
  let propagation = 0;
  const data: string[] = [];
  for (const option of options) {
    if (option in SET) flags |= SET[option]!;
    else if (option in CLEAR) flags &= ~CLEAR[option]!;
    else if (option in PROPAGATION) propagation |= PROPAGATION[option]!;
    else if (option !== "defaults" && option !== "async" && option !== "private") data.push(option);
  }
  return { flags, propagation, data: data.join(",") };
}

// ---- steps --------------------------------------------------------------------------------------

export function mountStep(
  source: string | null, target: string, fstype: string | null, flags: number, data: string | null, label: string,
): Step {
  const [src, tgt, fs, dat] = [cstrOrNull(source), new CStr(target), cstrOrNull(fstype), cstrOrNull(data || null)];
  return {
    kind: "call",
    call: "mount",
    args: [q(source), q(target), q(fstype), flagNames(flags, MS_FLAG_NAMES), q(data || null)],
    label,
    keep: [src, tgt, fs, dat],
    run: () => viaErrno(libc.mount(src?.ptr ?? null, tgt.ptr, fs?.ptr ?? null, flags, dat?.ptr ?? null)),
  };
}

/** mkdir -p inside the rootfs: one mkdir per missing component (an existing one is fine). */
export function mkdirSteps(root: string, dir: string): Step[] {
  const steps: Step[] = [];
  const relative = dir.slice(root.length).split("/").filter(Boolean);
  for (let i = 1; i <= relative.length; i++) {
    const path = `${root}/${relative.slice(0, i).join("/")}`;
    if (isDirectory(path)) continue; // already there: nothing to do in the child
    const p = new CStr(path);
    steps.push({
      kind: "call", call: "mkdir", args: [q(path), "0755"], label: `create directory ${path}`, keep: [p],
      tolerate: [EEXIST], run: () => viaErrno(libc.mkdir(p.ptr, 0o755)),
    });
  }
  return steps;
}

/** Create an empty file to mount over (a device node or an /etc file is bound onto a file). */
export function touchStep(path: string): Step {
  const p = new CStr(path);
  return {
    kind: "call", call: "open", args: [q(path), "O_CREAT|O_WRONLY|O_CLOEXEC", "0644"], label: `create ${path}`,
    keep: [p],
    run: () => {
      const fd = libc.open(p.ptr, O_CREAT | O_WRONLY | O_CLOEXEC, 0o644);
      return fd < 0 ? viaErrno(fd) : (libc.close(fd), 0);
    },
  };
}

export function mknodStep(path: string, mode: number, major: number, minor: number, type: "c" | "b" = "c"): Step {
  const p = new CStr(path);
  // gnu_dev_makedev: minor's low byte, major's low 12 bits, then the high bits of each
  const dev = (minor & 0xff) | ((major & 0xfff) << 8) | ((minor & ~0xff) << 12);
  const kind = type === "c" ? S_IFCHR : S_IFBLK;
  return {
    kind: "call", call: "mknod", args: [q(path), `${type === "c" ? "S_IFCHR" : "S_IFBLK"}|0${mode.toString(8)}`, `makedev(${major}, ${minor})`],
    label: `create device ${path}`, keep: [p],
    run: () => viaErrno(libc.mknod(p.ptr, kind | mode, dev)),
  };
}

export function symlinkStep(target: string, link: string): Step {
  const [t, l] = [new CStr(target), new CStr(link)];
  return {
    kind: "call", call: "symlink", args: [q(target), q(link)], label: `link ${link} to ${target}`, keep: [t, l],
    tolerate: [EEXIST], run: () => viaErrno(libc.symlink(t.ptr, l.ptr)),
  };
}

/**
 * Remount a bind mount read-only. In a user namespace the kernel refuses a remount that would clear
 * flags the mount already has (nosuid, nodev, noexec are "locked"), so they are read with statvfs
 * and kept, as runc does.
 */
export function remountReadOnlyStep(target: string, extraFlags = 0): Step {
  const t = new CStr(target);
  const stat = new BigUint64Array(14); // struct statvfs; f_flag is its 10th unsigned long
  const flagWord = new Uint32Array(stat.buffer, 9 * 8, 1); // its low 32 bits, read without BigInt math
  const statPtr = ptr(stat);
  const base = MS_BIND | MS_REMOUNT | MS_RDONLY | extraFlags;
  const kept = MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_NOATIME | MS_NODIRATIME | MS_RELATIME;
  return {
    kind: "call", call: "statvfs+mount", args: [q(target), `${flagNames(base, MS_FLAG_NAMES)}|<locked flags>`],
    label: `make ${target} read-only`, keep: [t, stat],
    run: () => {
      const r = viaErrno(libc.statvfs(t.ptr, statPtr));
      if (r < 0) return r;
      return viaErrno(libc.mount(null, t.ptr, null, base | (flagWord[0]! & kept), null));
    },
  };
}

/** Switch to the new root: the pivot_root(".", ".") idiom from pivot_root(2), then drop the old root. */
export function pivotRootSteps(rootfs: string): Step[] {
  const root = new CStr(rootfs);
  const dot = new CStr(".");
  const slash = new CStr("/");
  return [
    { kind: "call", call: "chdir", args: [q(rootfs)], label: `enter ${rootfs}`, keep: [root], run: () => viaErrno(libc.chdir(root.ptr)) },
    // The new root is mounted on "."; the old root ends up stacked on top of it, on the same "."
    { kind: "call", call: "pivot_root", args: ['"."', '"."'], label: "pivot_root into the rootfs", keep: [dot], run: () => viaErrno(libc.pivot_root(dot.ptr, dot.ptr)) },
    // Lazily detach the old root: from here no path leads back to the host's filesystem.
    { kind: "call", call: "umount2", args: ['"."', "MNT_DETACH"], label: "detach the old root", run: () => viaErrno(libc.umount2(dot.ptr, MNT_DETACH)) },
    { kind: "call", call: "chdir", args: ['"/"'], label: "enter the new root", keep: [slash], run: () => viaErrno(libc.chdir(slash.ptr)) },
  ];
}
