// linux.resources of the OCI runtime-spec: the part minic applies, typed, and the rules that
// both `minic run` flags (cgroups/flags.ts) and a bundle's config.json must pass. Checking here,
// before any cgroup exists, turns a kernel's bare EINVAL into one line that says what to change.
import { UsageError } from "../cli/argv.ts";
import { formatCpuList, parseCpuList, thisMachine, type HostInfo } from "./host.ts";

export interface ThrottleDevice {
  major: number;
  minor: number;
  /** Bytes per second. */
  rate: number;
}

export interface LinuxResources {
  memory?: {
    /** Bytes; -1 for no limit. */
    limit?: number;
    /** Soft limit in bytes (memory.low on v2, memory.soft_limit_in_bytes on v1). */
    reservation?: number;
    /** Memory plus swap, in bytes; -1 for unlimited swap. */
    swap?: number;
  };
  cpu?: {
    /** Relative weight, 2 to 262144 (1024 is the default). */
    shares?: number;
    /** Microseconds of CPU time per period; -1 for no limit. */
    quota?: number;
    period?: number;
    /** CPU list such as "0-1,3". */
    cpus?: string;
    /** Memory node list such as "0". */
    mems?: string;
  };
  /** Maximum number of tasks; 0 or less for no limit. */
  pids?: { limit: number };
  blockIO?: {
    weight?: number;
    throttleReadBpsDevice?: ThrottleDevice[];
    throttleWriteBpsDevice?: ThrottleDevice[];
  };
  /** Device rules (runc's default config.json has one): accepted but not enforced by minic. */
  devices?: Array<{ allow: boolean; type?: string; major?: number; minor?: number; access?: string }>;
}

export type Controller = "memory" | "cpu" | "cpuacct" | "cpuset" | "pids" | "io" | "freezer" | "devices";

/** Each field minic applies: the flag that sets it and the controller that enforces it. */
export const FIELDS = {
  "memory.limit": { flag: "--memory", controller: "memory" },
  "memory.swap": { flag: "--memory-swap", controller: "memory" },
  "memory.reservation": { flag: "--memory-reservation", controller: "memory" },
  "cpu.quota": { flag: "--cpus", controller: "cpu" },
  "cpu.period": { flag: "--cpus", controller: "cpu" },
  "cpu.shares": { flag: "--cpu-shares", controller: "cpu" },
  "cpu.cpus": { flag: "--cpuset-cpus", controller: "cpuset" },
  "cpu.mems": { flag: "--cpuset-mems", controller: "cpuset" },
  "pids.limit": { flag: "--pids-limit", controller: "pids" },
  "blockIO.weight": { flag: "--blkio-weight", controller: "io" },
  "blockIO.throttleReadBpsDevice": { flag: "--device-read-bps", controller: "io" },
  "blockIO.throttleWriteBpsDevice": { flag: "--device-write-bps", controller: "io" },
} as const satisfies Record<string, { flag: string; controller: Controller }>;
export type Field = keyof typeof FIELDS;

/** Whether messages name the flag (`--memory`) or the config.json field (`linux.resources.memory.limit`). */
export type Source = "flags" | "spec";

export function label(field: Field, source: Source): string {
  return source === "flags" ? FIELDS[field].flag : `linux.resources.${field}`;
}

/** The value of `field` in `r`, if set. */
export function fieldValue(r: LinuxResources, field: Field): unknown {
  const [group, key] = field.split(".") as [keyof LinuxResources, string];
  return (r[group] as Record<string, unknown> | undefined)?.[key];
}

/**
 * Bad resource input, as one line: `--memory abc: not a size (use a number ...)`. It is a
 * UsageError, so the CLI prints `message (hint)` and exits 125; `field` and `value` let a bundle's
 * caller rephrase it as a SpecError.
 */
export class ResourceError extends UsageError {
  constructor(
    readonly field: string,
    readonly value: string,
    readonly problem: string,
    hint: string,
  ) {
    super(`${field}${value === "" ? "" : ` ${value}`}: ${problem}`, hint);
  }
  /** The whole line as the CLI prints it. (Not `line`: JavaScriptCore gives errors a `line` of their own.) */
  get full(): string {
    return this.hint ? `${this.message} (${this.hint})` : this.message;
  }
}

const KiB = 1024, MiB = 1024 * KiB, GiB = 1024 * MiB;
/** docker's minimum for --memory: below it even the container's first process cannot start. */
export const MIN_MEMORY = 6 * MiB;
/** The kernel's shortest CFS quota: 1 ms. */
export const MIN_QUOTA = 1000;
export const DEFAULT_PERIOD = 100_000;

/** 67108864 → "64 MiB", for messages and --stats. */
export function formatBytes(n: number): string {
  for (const [unit, size] of [["GiB", GiB], ["MiB", MiB], ["KiB", KiB]] as const) {
    if (n >= size) return `${+(n / size).toFixed(1)} ${unit}`;
  }
  return `${n} bytes`;
}

/**
 * The rules that hold however the values were given. `shown(field)` is the value as the user wrote
 * it (flags) or as it is in the JSON (spec), for the message.
 */
export function checkRules(r: LinuxResources, source: Source, shown: (f: Field) => string, host: HostInfo = thisMachine): void {
  const fail = (field: Field, problem: string, hint: string): never => {
    throw new ResourceError(label(field, source), shown(field), problem, hint);
  };
  const { limit, swap, reservation } = r.memory ?? {};
  const limited = limit !== undefined && limit > 0;
  if (limited && limit < MIN_MEMORY) {
    fail("memory.limit", "below the minimum of 6 MiB", "docker refuses less too: a process cannot even start in it; use 6m or more");
  }
  if (swap !== undefined && swap !== -1) {
    if (!limited) fail("memory.swap", `needs ${label("memory.limit", source)} too`, "it limits memory plus swap, so set the memory limit as well");
    if (swap < limit!) {
      fail("memory.swap", `smaller than ${label("memory.limit", source)} (${shown("memory.limit")})`,
        "it limits memory plus swap: use at least the memory limit, or -1 for unlimited swap");
    }
  }
  if (limited && reservation !== undefined && reservation > limit) {
    fail("memory.reservation", `larger than ${label("memory.limit", source)} (${shown("memory.limit")})`,
      "the reservation is a soft limit, below the hard one");
  }
  const { quota, period = DEFAULT_PERIOD, shares, cpus, mems } = r.cpu ?? {};
  if (quota !== undefined && quota > 0 && quota / period > host.cpuCount()) {
    const n = host.cpuCount();
    fail("cpu.quota", `this machine has only ${n} CPU${n === 1 ? "" : "s"}`,
      source === "flags" ? `use at most ${n}` : `quota/period is ${+(quota / period).toFixed(2)}: use at most ${n}`);
  }
  if (shares !== undefined && shares !== 0 && (shares < 2 || shares > 262144)) {
    fail("cpu.shares", "not a whole number from 2 to 262144", "1024 is the default weight; 512 is half of it");
  }
  if (cpus !== undefined) checkList(cpus, host.cpus(), "cpu.cpus", "CPU", fail);
  if (mems !== undefined) checkList(mems, host.memoryNodes(), "cpu.mems", "memory node", fail);
  const weight = r.blockIO?.weight;
  if (weight !== undefined && weight !== 0 && (weight < 10 || weight > 1000)) {
    fail("blockIO.weight", "not a whole number from 10 to 1000", "500 is the default weight");
  }
}

function checkList(text: string, existing: number[], field: Field, what: string, fail: (f: Field, p: string, h: string) => never): void {
  const list = parseCpuList(text);
  if (!list) fail(field, `not a ${what === "CPU" ? "CPU" : "memory node"} list`, "use numbers and ranges, e.g. 0-1,3");
  const missing = list.filter((n) => !existing.includes(n));
  if (missing.length === 0) return;
  const many = missing.length > 1;
  fail(field, `${what}${many ? "s" : ""} ${formatCpuList(missing)} ${many ? "do" : "does"} not exist`,
    `this machine has ${what}${existing.length > 1 ? "s" : ""} ${formatCpuList(existing)}`);
}

// ---- config.json ----------------------------------------------------------------------------

const int = (v: unknown): v is number => Number.isInteger(v);
const SHAPES: Record<string, Record<string, [string, (v: unknown) => boolean]>> = {
  memory: {
    limit: ["-1 or a number of bytes", (v) => int(v) && (v === -1 || v > 0)],
    swap: ["-1 or a number of bytes", (v) => int(v) && (v === -1 || v > 0)],
    reservation: ["a number of bytes", (v) => int(v) && v >= -1],
  },
  cpu: {
    shares: ["a whole number", (v) => int(v) && v >= 0],
    quota: [`-1 or at least ${MIN_QUOTA} (microseconds)`, (v) => int(v) && (v === -1 || v >= MIN_QUOTA)],
    period: ["from 1000 to 1000000 (microseconds)", (v) => int(v) && v >= 1000 && v <= 1_000_000],
    cpus: ["a CPU list such as \"0-1,3\"", (v) => typeof v === "string"],
    mems: ["a memory node list such as \"0\"", (v) => typeof v === "string"],
  },
  pids: { limit: ["a whole number (0 or less: no limit)", int] },
  blockIO: {
    weight: ["a whole number", (v) => int(v) && v >= 0],
    throttleReadBpsDevice: ["an array of {major, minor, rate}", isThrottleList],
    throttleWriteBpsDevice: ["an array of {major, minor, rate}", isThrottleList],
  },
  devices: {}, // an array, checked below
};

function isThrottleList(v: unknown): boolean {
  const uint = (x: unknown) => int(x) && x >= 0;
  return Array.isArray(v) && v.every((d) => uint(d?.major) && uint(d?.minor) && uint(d?.rate) && Object.keys(d).length === 3);
}

/**
 * Check a config.json's linux.resources with the same rules as the flags, and return it typed.
 * Fields minic cannot apply (hugepageLimits, memory.kernel, rdma, ...) are refused, not ignored.
 */
export function validateResources(raw: unknown, host: HostInfo = thisMachine): LinuxResources {
  const path = "linux.resources";
  const object = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);
  if (!object(raw)) throw new ResourceError(path, "", "must be an object", "see the OCI runtime-spec");
  for (const [group, value] of Object.entries(raw)) {
    const shape = SHAPES[group];
    if (!shape) throw new ResourceError(`${path}.${group}`, "", "not supported by minic", "remove it from config.json");
    if (group === "devices") {
      if (!Array.isArray(value) || !value.every((d) => object(d) && typeof d.allow === "boolean")) {
        throw new ResourceError(`${path}.devices`, "", "must be an array of {allow, type, major, minor, access}", "see the OCI runtime-spec");
      }
      continue;
    }
    if (!object(value)) throw new ResourceError(`${path}.${group}`, "", "must be an object", "see the OCI runtime-spec");
    if (group === "pids" && !("limit" in value)) throw new ResourceError(`${path}.pids.limit`, "", "is required", "see the OCI runtime-spec");
    for (const [key, v] of Object.entries(value)) {
      const rule = shape[key];
      if (!rule) throw new ResourceError(`${path}.${group}.${key}`, "", "not supported by minic", "remove it from config.json");
      if (!rule[1](v)) throw new ResourceError(`${path}.${group}.${key}`, JSON.stringify(v), `must be ${rule[0]}`, "see the OCI runtime-spec");
    }
  }
  const r = raw as LinuxResources;
  checkRules(r, "spec", (f) => JSON.stringify(fieldValue(r, f)), host);
  return r;
}
