// What the resource checks need to know about this machine: how many CPUs minic may use, which
// CPUs and memory nodes exist, and the numbers of a block device. Read lazily, only when a flag
// needs them, and replaceable in tests so that messages such as "only 2 CPUs" are predictable.
import { readTextIfExists, realpath } from "../libc/fs.ts";

export interface HostInfo {
  /** The CPUs this process may run on, as `nproc` counts them (docker checks --cpus against this). */
  cpuCount(): number;
  /** The CPUs that exist (online), e.g. [0, 1]. */
  cpus(): number[];
  /** The memory (NUMA) nodes that exist, e.g. [0]. */
  memoryNodes(): number[];
  /** major:minor of the block device at `path`, or null if it is not one. */
  blockDevice(path: string): { major: number; minor: number } | null;
}

/** "0-2,5" → [0, 1, 2, 5]; null if the text is not a list of numbers and ranges. */
export function parseCpuList(text: string): number[] | null {
  const out = new Set<number>();
  for (const part of text.trim().split(",")) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part.trim());
    if (!m) return null;
    const [from, to] = [Number(m[1]), Number(m[2] ?? m[1])];
    if (to < from || to - from > 65536) return null;
    for (let i = from; i <= to; i++) out.add(i);
  }
  return [...out].sort((a, b) => a - b);
}

/** [0, 1, 2, 5] → "0-2,5", for messages. */
export function formatCpuList(list: number[]): string {
  const parts: string[] = [];
  for (let i = 0; i < list.length; i++) {
    let j = i;
    while (j + 1 < list.length && list[j + 1] === list[j]! + 1) j++;
    parts.push(j === i ? `${list[i]}` : `${list[i]}-${list[j]}`);
    i = j;
  }
  return parts.join(",");
}

function listFile(path: string, fallback: string): number[] {
  return parseCpuList(readTextIfExists(path) ?? fallback) ?? [0];
}

export const thisMachine: HostInfo = {
  // nproc counts the CPUs in this process's affinity mask; /proc/self/status lists them.
  cpuCount: () => parseCpuList(/Cpus_allowed_list:\s*(\S+)/.exec(readTextIfExists("/proc/self/status") ?? "")?.[1] ?? "0")?.length ?? 1,
  cpus: () => listFile("/sys/devices/system/cpu/online", "0"),
  // Kernels built without NUMA have no node directory: then there is one node, 0.
  memoryNodes: () => listFile("/sys/devices/system/node/online", "0"),
  blockDevice(path) {
    // No stat(2) needed: /dev names follow the kernel's, and sysfs gives each block device's numbers.
    let real: string;
    try {
      real = realpath(path);
    } catch {
      return null;
    }
    if (!real.startsWith("/dev/")) return null;
    const dev = readTextIfExists(`/sys/class/block/${real.slice(5).replace(/\//g, "!")}/dev`);
    const m = dev ? /^(\d+):(\d+)/.exec(dev) : null;
    return m ? { major: Number(m[1]), minor: Number(m[2]) } : null;
  },
};
