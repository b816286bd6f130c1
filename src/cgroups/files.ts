// The files that carry linux.resources into the kernel, and what to write in them, for v1 and v2.
// Pure functions: cgroup.ts decides where they go and does the writing.
import { DEFAULT_PERIOD, type Controller, type Field, type LinuxResources } from "./resources.ts";

export interface LimitWrite {
  controller: Controller;
  /** Where the value came from, for error messages. */
  field: Field;
  /** The file and value to write: the first choice whose file exists, else the last one. */
  choices: Array<{ file: string; value: string }>;
  /** Without the file, skip it with this warning instead of failing (docker does so for swap). */
  optional?: string;
}

const NO_SWAP_ACCOUNTING = "swap limit ignored: this kernel does not account swap (the memory limit still holds)";

function write(controller: Controller, field: Field, file: string, value: string | number, optional?: string): LimitWrite {
  return { controller, field, choices: [{ file, value: String(value) }], optional };
}

/**
 * cgroup v1. `currentMemsw` is memory.memsw.limit_in_bytes as it stands (null: unknown or absent):
 * the kernel keeps memsw >= limit at every step, so when memsw grows past it, it is written first.
 */
export function v1Writes(r: LinuxResources, currentMemsw: number | null): LimitWrite[] {
  const out: LimitWrite[] = [];
  const { limit, swap, reservation } = r.memory ?? {};
  const limitWrite = limit !== undefined && write("memory", "memory.limit", "memory.limit_in_bytes", limit);
  const swapWrite = swap !== undefined && write("memory", "memory.swap", "memory.memsw.limit_in_bytes", swap, NO_SWAP_ACCOUNTING);
  const swapFirst = swap !== undefined && (swap === -1 || currentMemsw === null || swap > currentMemsw);
  for (const w of swapFirst ? [swapWrite, limitWrite] : [limitWrite, swapWrite]) if (w) out.push(w);
  if (reservation !== undefined) out.push(write("memory", "memory.reservation", "memory.soft_limit_in_bytes", reservation));

  const { shares, quota, period, cpus, mems } = r.cpu ?? {};
  if (shares) out.push(write("cpu", "cpu.shares", "cpu.shares", shares));
  // The period first: the kernel checks the quota against it.
  if (period !== undefined) out.push(write("cpu", "cpu.period", "cpu.cfs_period_us", period));
  if (quota !== undefined) out.push(write("cpu", "cpu.quota", "cpu.cfs_quota_us", quota > 0 ? quota : -1));
  if (cpus !== undefined) out.push(write("cpuset", "cpu.cpus", "cpuset.cpus", cpus));
  if (mems !== undefined) out.push(write("cpuset", "cpu.mems", "cpuset.mems", mems));

  if (r.pids) out.push(write("pids", "pids.limit", "pids.max", r.pids.limit > 0 ? r.pids.limit : "max"));

  const { weight, throttleReadBpsDevice = [], throttleWriteBpsDevice = [] } = r.blockIO ?? {};
  // blkio.weight belongs to the CFQ scheduler (gone since 5.0); BFQ names it blkio.bfq.weight.
  if (weight) out.push({ controller: "io", field: "blockIO.weight", choices: [{ file: "blkio.weight", value: `${weight}` }, { file: "blkio.bfq.weight", value: `${weight}` }] });
  for (const d of throttleReadBpsDevice) out.push(write("io", "blockIO.throttleReadBpsDevice", "blkio.throttle.read_bps_device", `${d.major}:${d.minor} ${d.rate}`));
  for (const d of throttleWriteBpsDevice) out.push(write("io", "blockIO.throttleWriteBpsDevice", "blkio.throttle.write_bps_device", `${d.major}:${d.minor} ${d.rate}`));
  return out;
}

/** cgroup v2 shares become a weight from 1 to 10000 (1024 → 39), by runc's formula. */
export const cpuWeight = (shares: number) => 1 + Math.floor(((shares - 2) * 9999) / 262142);
/** A blkio weight (10 to 1000) as an io.weight (1 to 10000), by runc's formula. */
export const ioWeight = (weight: number) => 1 + Math.floor(((weight - 10) * 9999) / 990);

export function v2Writes(r: LinuxResources): LimitWrite[] {
  const out: LimitWrite[] = [];
  const max = (n: number) => (n > 0 ? `${n}` : "max");
  const { limit, swap, reservation } = r.memory ?? {};
  if (limit !== undefined) out.push(write("memory", "memory.limit", "memory.max", max(limit)));
  // v2 limits swap alone, not memory plus swap.
  if (swap !== undefined && (swap === -1 || (limit ?? 0) > 0)) {
    out.push(write("memory", "memory.swap", "memory.swap.max", swap === -1 ? "max" : swap - limit!, NO_SWAP_ACCOUNTING));
  }
  if (reservation !== undefined) out.push(write("memory", "memory.reservation", "memory.low", max(reservation)));

  const { shares, quota, period, cpus, mems } = r.cpu ?? {};
  if (shares) out.push(write("cpu", "cpu.shares", "cpu.weight", cpuWeight(shares)));
  if (quota !== undefined || period !== undefined) {
    out.push(write("cpu", "cpu.quota", "cpu.max", `${max(quota ?? -1)} ${period ?? DEFAULT_PERIOD}`));
  }
  if (cpus !== undefined) out.push(write("cpuset", "cpu.cpus", "cpuset.cpus", cpus));
  if (mems !== undefined) out.push(write("cpuset", "cpu.mems", "cpuset.mems", mems));

  if (r.pids) out.push(write("pids", "pids.limit", "pids.max", max(r.pids.limit)));

  const { weight, throttleReadBpsDevice = [], throttleWriteBpsDevice = [] } = r.blockIO ?? {};
  if (weight) {
    // BFQ's weight when that scheduler is in use (runc's choice), else io.weight (blk-iocost).
    out.push({ controller: "io", field: "blockIO.weight", choices: [{ file: "io.bfq.weight", value: `${weight}` }, { file: "io.weight", value: `default ${ioWeight(weight)}` }] });
  }
  // io.max takes one line per device, with only the keys being set.
  const perDevice = new Map<string, string[]>();
  for (const [list, key] of [[throttleReadBpsDevice, "rbps"], [throttleWriteBpsDevice, "wbps"]] as const) {
    for (const d of list) perDevice.set(`${d.major}:${d.minor}`, [...(perDevice.get(`${d.major}:${d.minor}`) ?? []), `${key}=${d.rate}`]);
  }
  for (const [dev, keys] of perDevice) {
    const field = keys[0]!.startsWith("r") ? "blockIO.throttleReadBpsDevice" : "blockIO.throttleWriteBpsDevice";
    out.push(write("io", field, "io.max", `${dev} ${keys.join(" ")}`));
  }
  return out;
}

/** The controllers a set of resources needs, each with the first field that needs it (for messages). */
export function neededControllers(writes: LimitWrite[]): Map<Controller, Field> {
  const out = new Map<Controller, Field>();
  for (const w of writes) if (!out.has(w.controller)) out.set(w.controller, w.field);
  return out;
}
