// The config.json that `minic spec` writes: what `runc spec` writes (runc's specconv.Example),
// and with `rootless`, what `runc spec --rootless` makes of it (specconv.ToRootless).
// Differences from runc: the hostname is "minic", and the capabilities are docker's default set
// (runc's example keeps only CAP_AUDIT_WRITE, CAP_KILL and CAP_NET_BIND_SERVICE).
import { writeText } from "../libc/fs.ts";
import { SysError } from "../libc/ffi.ts";
import { OCI_VERSION, type Spec } from "./types.ts";

export interface DefaultSpecOptions {
  /** For an unprivileged user: a user namespace mapping them to root, no network namespace, /sys bound from the host. */
  rootless?: boolean;
  /** The command (default ["sh"]). */
  args?: string[];
}

/** docker's default capabilities (moby's oci/caps/defaults.go), in bounding, effective and permitted. */
const DEFAULT_CAPABILITIES = [
  "CAP_CHOWN",
  "CAP_DAC_OVERRIDE",
  "CAP_FSETID",
  "CAP_FOWNER",
  "CAP_MKNOD",
  "CAP_NET_RAW",
  "CAP_SETGID",
  "CAP_SETUID",
  "CAP_SETFCAP",
  "CAP_SETPCAP",
  "CAP_NET_BIND_SERVICE",
  "CAP_SYS_CHROOT",
  "CAP_KILL",
  "CAP_AUDIT_WRITE",
];

export function defaultSpec(opts: DefaultSpecOptions = {}): Spec {
  const spec: Spec = {
    ociVersion: OCI_VERSION,
    process: {
      terminal: true,
      user: { uid: 0, gid: 0 },
      args: opts.args ?? ["sh"],
      env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
      cwd: "/",
      capabilities: {
        bounding: [...DEFAULT_CAPABILITIES],
        effective: [...DEFAULT_CAPABILITIES],
        permitted: [...DEFAULT_CAPABILITIES],
      },
      rlimits: [{ type: "RLIMIT_NOFILE", hard: 1024, soft: 1024 }],
      noNewPrivileges: true,
    },
    root: { path: "rootfs", readonly: true },
    hostname: "minic",
    mounts: [
      { destination: "/proc", type: "proc", source: "proc" },
      { destination: "/dev", type: "tmpfs", source: "tmpfs", options: ["nosuid", "strictatime", "mode=755", "size=65536k"] },
      {
        destination: "/dev/pts",
        type: "devpts",
        source: "devpts",
        options: ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
      },
      { destination: "/dev/shm", type: "tmpfs", source: "shm", options: ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"] },
      { destination: "/dev/mqueue", type: "mqueue", source: "mqueue", options: ["nosuid", "noexec", "nodev"] },
      { destination: "/sys", type: "sysfs", source: "sysfs", options: ["nosuid", "noexec", "nodev", "ro"] },
      { destination: "/sys/fs/cgroup", type: "cgroup", source: "cgroup", options: ["nosuid", "noexec", "nodev", "relatime", "ro"] },
    ],
    linux: {
      resources: { devices: [{ allow: false, access: "rwm" }] },
      namespaces: [{ type: "pid" }, { type: "network" }, { type: "ipc" }, { type: "uts" }, { type: "mount" }, { type: "cgroup" }],
      maskedPaths: [
        "/proc/acpi",
        "/proc/asound",
        "/proc/kcore",
        "/proc/keys",
        "/proc/latency_stats",
        "/proc/timer_list",
        "/proc/timer_stats",
        "/proc/sched_debug",
        "/sys/firmware",
        "/proc/scsi",
      ],
      readonlyPaths: ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
    },
  };
  return opts.rootless ? toRootless(spec) : spec;
}

/** runc's ToRootless: what an unprivileged user can set up. */
function toRootless(spec: Spec): Spec {
  const linux = spec.linux!;
  // No network namespace: an unprivileged user could not give it anything but loopback.
  linux.namespaces = [...linux.namespaces!.filter((ns) => ns.type !== "network" && ns.type !== "user"), { type: "user" }];
  // The user who runs minic is root inside, and nobody else is mapped.
  const uid = process.geteuid?.() ?? process.getuid!();
  const gid = process.getegid?.() ?? process.getgid!();
  linux.uidMappings = [{ containerID: 0, hostID: uid, size: 1 }];
  linux.gidMappings = [{ containerID: 0, hostID: gid, size: 1 }];
  spec.mounts = spec.mounts!.map((mount) =>
    // sysfs cannot be mounted without owning the network namespace: bind the host's /sys instead.
    mount.destination === "/sys"
      ? { destination: "/sys", type: "none", source: "/sys", options: ["rbind", "nosuid", "noexec", "nodev", "ro"] }
      : // gid=/uid= options name IDs that are not mapped in the user namespace (gid=5 on /dev/pts).
        { ...mount, ...(mount.options && { options: mount.options.filter((o) => !/^[ug]id=/.test(o)) }) },
  );
  // No cgroup settings: an unprivileged user cannot write them.
  delete linux.resources;
  return spec;
}

/**
 * Write the default spec to `bundleDir/config.json`, as `runc spec` does, and return that path.
 * An existing config.json is never overwritten: that is an Error.
 */
export function writeDefaultSpec(bundleDir: string, opts: DefaultSpecOptions = {}): string {
  const path = `${bundleDir.replace(/\/+$/, "")}/config.json`;
  const text = `${JSON.stringify(defaultSpec(opts), null, "\t")}\n`;
  try {
    writeText(path, text, 0o666, true); // O_EXCL: fail if it exists, even as a dangling link
  } catch (error) {
    const code = error instanceof SysError ? error.code : "";
    if (code === "EEXIST") throw new Error(`${path} already exists: remove it first (a spec is never overwritten)`);
    if (code === "ENOENT" || code === "ENOTDIR") throw new Error(`bundle directory ${bundleDir} does not exist`);
    throw new Error(`cannot write ${path}: ${(error as Error).message}`);
  }
  return path;
}
