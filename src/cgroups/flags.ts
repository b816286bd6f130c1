// `minic run` resource flags, docker's spelling, turned into the spec's linux.resources.
// Syntax is checked here (the message quotes the text as typed); the rules shared with
// config.json (minimums, swap >= memory, CPUs that exist) are in resources.ts.
import type { ArgsDef } from "citty";
import { thisMachine, type HostInfo } from "./host.ts";
import {
  checkRules, DEFAULT_PERIOD, FIELDS, MIN_QUOTA, ResourceError, type Field, type LinuxResources, type ThrottleDevice,
} from "./resources.ts";

/** The flags, for run.ts's citty definitions (and --help). */
export const resourceFlags = {
  memory: { type: "string", alias: "m", valueHint: "SIZE", description: "Memory limit, e.g. 64m (k, m, g suffixes)" },
  "memory-swap": { type: "string", valueHint: "SIZE", description: "Memory plus swap limit; -1 for unlimited swap (default: twice --memory)" },
  "memory-reservation": { type: "string", valueHint: "SIZE", description: "Soft memory limit, below --memory" },
  cpus: { type: "string", valueHint: "N", description: "CPU time, in CPUs: 0.5 is half of one CPU" },
  "cpu-shares": { type: "string", valueHint: "N", description: "Relative CPU weight (1024 is the default)" },
  "cpuset-cpus": { type: "string", valueHint: "LIST", description: "CPUs the container may run on, e.g. 0-1,3" },
  "cpuset-mems": { type: "string", valueHint: "LIST", description: "Memory nodes the container may use, e.g. 0" },
  "pids-limit": { type: "string", valueHint: "N", description: "Maximum number of processes and threads; -1 for no limit" },
  "blkio-weight": { type: "string", valueHint: "N", description: "Relative block I/O weight, 10 to 1000" },
  "device-read-bps": { type: "string", valueHint: "DEV:RATE", description: "Read rate limit of a disk, DEVICE:RATE, e.g. /dev/sda:1mb (repeatable)" },
  "device-write-bps": { type: "string", valueHint: "DEV:RATE", description: "Write rate limit of a disk, DEVICE:RATE (repeatable)" },
} satisfies ArgsDef;

/** Flag values by name (without the dashes); a repeated flag may give every value, in order. */
export type ResourceFlags = Partial<Record<keyof typeof resourceFlags, string | string[]>>;

const UNITS: Record<string, number> = { "": 1, b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 };
const SIZE_HINT = "use a number with an optional k, m or g suffix, e.g. 64m";

/** "64m", "1.5g", "512KiB", "100" (bytes) → bytes; null if the text is not a size. */
export function parseSize(text: string): number | null {
  const m = /^(\d+(?:\.\d+)?) ?(?:([kmgt])(?:i?b)?|b)?$/i.exec(text.trim());
  return m ? Math.floor(Number(m[1]) * UNITS[(m[2] ?? "").toLowerCase()]!) : null;
}

/**
 * The resource flags as linux.resources (only the groups that were set). Throws a ResourceError
 * naming the flag, the value and what to do. As docker does, --memory without --memory-swap allows
 * as much swap as memory (swap = twice the limit), and a --pids-limit of 0 or less means no limit.
 */
export function parseResources(flags: ResourceFlags, host: HostInfo = thisMachine): LinuxResources {
  const shown: Partial<Record<Field, string>> = {};
  const last = (name: keyof ResourceFlags, field: Field): string | undefined => {
    const v = flags[name];
    const text = Array.isArray(v) ? v[v.length - 1] : v;
    if (text !== undefined) shown[field] = text;
    return text;
  };
  const fail = (field: Field, problem: string, hint: string): never => {
    throw new ResourceError(FIELDS[field].flag, shown[field]!, problem, hint);
  };
  const size = (name: keyof ResourceFlags, field: Field, allowUnlimited = false): number | undefined => {
    const text = last(name, field);
    if (text === undefined) return undefined;
    if (allowUnlimited && text.trim() === "-1") return -1;
    if (/^\s*-/.test(text)) fail(field, "must be more than zero", SIZE_HINT);
    const n = parseSize(text);
    if (n === null) fail(field, "not a size", SIZE_HINT);
    if (n === 0) fail(field, "must be more than zero", SIZE_HINT);
    return n!;
  };
  const whole = (name: keyof ResourceFlags, field: Field, hint: string): number | undefined => {
    const text = last(name, field);
    if (text === undefined) return undefined;
    if (!/^\s*-?\d+\s*$/.test(text)) fail(field, "not a whole number", hint);
    return Number(text);
  };

  const r: LinuxResources = {};
  const limit = size("memory", "memory.limit");
  let swap = size("memory-swap", "memory.swap", true);
  const reservation = size("memory-reservation", "memory.reservation");
  if (limit !== undefined && swap === undefined) swap = 2 * limit;
  if (limit !== undefined || swap !== undefined || reservation !== undefined) r.memory = clean({ limit, swap, reservation });

  const cpu: NonNullable<LinuxResources["cpu"]> = {};
  const cpusText = last("cpus", "cpu.quota");
  if (cpusText !== undefined) {
    const hint = "use a decimal such as 0.5 for half a CPU";
    if (!/^\s*-?(\d+\.?\d*|\.\d+)\s*$/.test(cpusText)) fail("cpu.quota", "not a number of CPUs", hint);
    const n = Number(cpusText);
    if (n <= 0) fail("cpu.quota", "must be more than zero", hint);
    cpu.quota = Math.round(n * DEFAULT_PERIOD);
    cpu.period = DEFAULT_PERIOD;
    if (cpu.quota < MIN_QUOTA) fail("cpu.quota", "below the kernel's minimum of 0.01", "use at least 0.01 (1 ms of CPU time per 100 ms)");
  }
  const shares = whole("cpu-shares", "cpu.shares", "1024 is the default weight; 512 is half of it");
  if (shares) cpu.shares = shares; // 0 means the default, as in docker
  const cpus = last("cpuset-cpus", "cpu.cpus");
  if (cpus !== undefined) cpu.cpus = cpus.trim();
  const mems = last("cpuset-mems", "cpu.mems");
  if (mems !== undefined) cpu.mems = mems.trim();
  if (Object.keys(cpu).length) r.cpu = cpu;

  const pids = whole("pids-limit", "pids.limit", "use a number of processes such as 100, or -1 for no limit");
  if (pids !== undefined) r.pids = { limit: pids > 0 ? pids : -1 };

  const blockIO: NonNullable<LinuxResources["blockIO"]> = {};
  const weight = whole("blkio-weight", "blockIO.weight", "use 10 to 1000; 500 is the default weight");
  if (weight) blockIO.weight = weight; // 0 means the default, as in docker
  const devices = (name: keyof ResourceFlags, field: Field): ThrottleDevice[] | undefined => {
    const values = flags[name] === undefined ? undefined : [flags[name]].flat();
    return values?.map((text) => {
      shown[field] = text;
      const colon = text.lastIndexOf(":");
      if (colon <= 0) fail(field, "not DEVICE:RATE", "e.g. /dev/sda:1mb");
      const [path, rateText] = [text.slice(0, colon), text.slice(colon + 1)];
      const dev = host.blockDevice(path);
      if (!dev) fail(field, `${path} is not a block device`, "lsblk lists this machine's disks");
      const rate = parseSize(rateText);
      if (rate === null || rate === 0) fail(field, `${rateText} is not a rate`, "use bytes per second with an optional k, m or g suffix, e.g. 1mb");
      return { ...dev!, rate: rate! };
    });
  };
  const read = devices("device-read-bps", "blockIO.throttleReadBpsDevice");
  const write = devices("device-write-bps", "blockIO.throttleWriteBpsDevice");
  if (read) blockIO.throttleReadBpsDevice = read;
  if (write) blockIO.throttleWriteBpsDevice = write;
  if (Object.keys(blockIO).length) r.blockIO = blockIO;

  checkRules(r, "flags", (f) => shown[f] ?? "", host);
  return r;
}

/** The object without its undefined fields, so that the spec written out stays tidy. */
function clean<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}
