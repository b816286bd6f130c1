// Devices: which device files exist in the container's /dev, and which the devices cgroup lets it use.
//
// /dev is a fresh tmpfs holding only the standard harmless devices. The devices cgroup (v1) then
// denies everything and allows exactly those, plus what --device adds: CAP_MKNOD alone would let
// root in the container create a node for the host's disk and read it raw.
import { ptr } from "bun:ffi";
import { libc, errno, SysError } from "../libc/ffi.ts";
import { CStr } from "../libc/cstr.ts";
import { resolvePath } from "../libc/fs.ts";

export interface DeviceRule {
  allow: boolean;
  type?: string;
  major?: number;
  minor?: number;
  access?: string;
}

/** runc's default allow list, minus "b *:* m" (so mknod of a block device fails). */
export const DEFAULT_DEVICE_RULES: DeviceRule[] = [
  { allow: false, access: "rwm" },
  { allow: true, type: "c", major: -1, minor: -1, access: "m" }, // mknod of character devices
  ...[[1, 3], [1, 5], [1, 7], [1, 8], [1, 9], [5, 0], [5, 1], [5, 2], [10, 200]].map(([major, minor]) => ({
    allow: true, type: "c", major, minor, access: "rwm",
  })),
  { allow: true, type: "c", major: 136, minor: -1, access: "rwm" }, // /dev/pts/*
];

export interface LinuxDevice {
  path: string;
  type: string;
  major: number;
  minor: number;
  fileMode?: number;
  uid?: number;
  gid?: number;
}

const S_IFMT = 0o170000, S_IFCHR = 0o20000, S_IFBLK = 0o60000;

/** A host device's type and numbers, from stat(2)'s st_mode and st_rdev. */
export function hostDevice(path: string): { type: "c" | "b"; major: number; minor: number; mode: number } {
  const st = new BigUint64Array(18); // struct stat is 144 bytes on x86_64 and 128 on aarch64
  if (libc.stat(new CStr(path).ptr, ptr(st)) !== 0) throw new SysError("stat", errno(), path);
  const view = new DataView(st.buffer);
  const x86 = process.arch === "x64";
  const mode = view.getUint32(x86 ? 24 : 16, true);
  const rdev = view.getBigUint64(x86 ? 40 : 32, true);
  const kind = mode & S_IFMT;
  if (kind !== S_IFCHR && kind !== S_IFBLK) throw new Error(`${path} is not a device`);
  // gnu_dev_major/minor, for the 64-bit dev_t
  const major = Number(((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn));
  const minor = Number((rdev & 0xffn) | ((rdev >> 12n) & ~0xffn));
  return { type: kind === S_IFCHR ? "c" : "b", major, minor, mode: mode & 0o777 };
}

/** `--device HOST[:CONTAINER][:PERMS]` -> the device to create and the rule that allows it. */
export function parseDeviceFlag(text: string): { device: LinuxDevice; rule: DeviceRule } {
  const [host = "", second, third] = text.split(":");
  const perms = third ?? (second && /^[rwm]+$/.test(second) ? second : "rwm");
  const inside = second && !/^[rwm]+$/.test(second) ? second : host;
  if (!host.startsWith("/") || !inside.startsWith("/") || !/^[rwm]+$/.test(perms)) {
    throw new Error(`--device "${text}" is not HOST[:CONTAINER][:rwm] with absolute paths`);
  }
  const dev = hostDevice(resolvePath(host));
  return {
    device: { path: inside, type: dev.type, major: dev.major, minor: dev.minor, fileMode: dev.mode, uid: 0, gid: 0 },
    rule: { allow: true, type: dev.type, major: dev.major, minor: dev.minor, access: perms },
  };
}
