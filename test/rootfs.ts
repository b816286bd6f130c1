// The test rootfs: Debian's busybox-static, installed if missing, in a tree of its own.
// Tests, the benchmark and the README's examples all use it. Built once into test/.cache/rootfs.
import { copyFileSync, existsSync, mkdirSync, readdirSync, rmSync, symlinkSync, writeFileSync, renameSync } from "node:fs";
import { resolve } from "node:path";

export const ROOTFS = resolve(import.meta.dir, ".cache/rootfs");
const BUSYBOX = "/bin/busybox";

/** Install a Debian package if a file it provides is missing (tests run as root in CI). */
export function ensurePackage(file: string, pkg: string): void {
  if (existsSync(file)) return;
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  let r = Bun.spawnSync(["apt-get", "install", "-y", "-qq", pkg], { env, stdout: "ignore", stderr: "pipe" });
  if (r.exitCode !== 0) {
    Bun.spawnSync(["apt-get", "update", "-qq"], { env, stdout: "ignore", stderr: "ignore" });
    r = Bun.spawnSync(["apt-get", "install", "-y", "-qq", pkg], { env, stdout: "ignore", stderr: "pipe" });
  }
  if (!existsSync(file)) throw new Error(`could not install ${pkg} (for ${file}): ${r.stderr.toString()}`);
}

/** Build (once) and return the busybox rootfs. */
export function ensureRootfs(): string {
  if (existsSync(`${ROOTFS}/bin/busybox`)) return ROOTFS;
  ensurePackage(BUSYBOX, "busybox-static");
  const tmp = `${ROOTFS}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  for (const dir of ["bin", "sbin", "etc", "proc", "sys", "dev", "tmp", "root", "usr/bin", "var"]) mkdirSync(`${tmp}/${dir}`, { recursive: true });
  copyFileSync(BUSYBOX, `${tmp}/bin/busybox`);
  Bun.spawnSync(["chmod", "755", `${tmp}/bin/busybox`]);
  Bun.spawnSync(["chmod", "1777", `${tmp}/tmp`]);
  const applets = Bun.spawnSync([BUSYBOX, "--list"]).stdout.toString().split("\n").filter((a) => a && a !== "busybox");
  for (const applet of applets) symlinkSync("busybox", `${tmp}/bin/${applet}`);
  writeFileSync(`${tmp}/etc/passwd`, "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/tmp:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n");
  writeFileSync(`${tmp}/etc/group`, "root:x:0:\ntty:x:5:\nuser:x:1000:\nnogroup:x:65534:\n");
  // /etc/hostname, hosts and resolv.conf exist so that a rootless run can bind over them.
  for (const f of ["hostname", "hosts", "resolv.conf"]) writeFileSync(`${tmp}/etc/${f}`, "");
  rmSync(ROOTFS, { recursive: true, force: true });
  renameSync(tmp, ROOTFS);
  return ROOTFS;
}

if (import.meta.main) console.log(ensureRootfs(), readdirSync(`${ensureRootfs()}/bin`).length, "entries in bin");
