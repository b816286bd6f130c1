// Everything the tests need from outside the project, installed if missing (CI starts from a clean
// Debian machine): run by test/run.sh before the suite.
import { ensurePackage, ensureRootfs } from "./rootfs.ts";

const PACKAGES: Array<[file: string, pkg: string]> = [
  ["/bin/busybox", "busybox-static"],
  ["/usr/bin/newuidmap", "uidmap"], // rootless runs with /etc/subuid ranges
  ["/usr/sbin/nft", "nftables"], // bridge networking's NAT
  ["/usr/bin/curl", "curl"], // published ports, from the host side
  ["/usr/bin/script", "bsdutils"], // a real pty for terminal tests
  ["/usr/bin/cc", "gcc"], // the escape tests' raw-syscall helper
  ["/usr/lib/x86_64-linux-gnu/libc.a", "libc6-dev"],
  ["/usr/bin/podman", "podman"], // real clients (clients.test.ts): podman, through conmon
  ["/usr/bin/conmon", "conmon"],
  ["/usr/bin/containerd", "containerd"], // and containerd's shim; ctr comes with it
];

if (process.getuid!() === 0) for (const [file, pkg] of PACKAGES) if (process.arch === "x64" || !file.includes("x86_64")) ensurePackage(file, pkg);
console.log(`test setup: rootfs at ${ensureRootfs()}`);
