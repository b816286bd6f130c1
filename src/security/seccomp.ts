// seccomp without libseccomp, part 1: the profiles. docker's and the OCI format are read into the
// OCI shape (linux.seccomp), with docker's includes/excludes decided for the container's
// capabilities, architecture and kernel; seccomp-bpf.ts compiles a profile into a BPF program.
import { SysError } from "../libc/ffi.ts";
import { readText } from "../libc/fs.ts";
import { NATIVE_ARCH, type SeccompArch } from "./seccomp-syscalls.ts";
import { DEFAULT_PROFILE } from "./seccomp-profile.ts";

export { NATIVE_ARCH, type SeccompArch, syscallName, syscallNumber } from "./seccomp-syscalls.ts";

// ---------------------------------------------------------------------------------------------
// Profiles: the OCI runtime-spec shape (linux.seccomp) and docker's superset of it.

export const ACTIONS = [
  "SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_TRAP", "SCMP_ACT_ERRNO",
  "SCMP_ACT_TRACE", "SCMP_ACT_ALLOW", "SCMP_ACT_LOG",
] as const;
export type SeccompAction = (typeof ACTIONS)[number];

export const OPERATORS = [
  "SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_MASKED_EQ",
] as const;
export type SeccompOperator = (typeof OPERATORS)[number];

/** Flags of seccomp(2) that a profile may ask for, with their values. */
export const FILTER_FLAGS: Record<string, number> = {
  SECCOMP_FILTER_FLAG_TSYNC: 1,
  SECCOMP_FILTER_FLAG_LOG: 2,
  SECCOMP_FILTER_FLAG_SPEC_ALLOW: 4,
  SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV: 32,
};

export interface SeccompArg {
  /** 0 to 5 */
  index: number;
  /** For SCMP_CMP_MASKED_EQ, the mask. Unsigned 64-bit; a bigint when beyond 2^53. */
  value: number | bigint;
  /** For SCMP_CMP_MASKED_EQ, the value the masked argument must equal. */
  valueTwo?: number | bigint;
  op: SeccompOperator;
}

export interface SeccompSyscall {
  names: string[];
  action: SeccompAction;
  /** The errno for SCMP_ACT_ERRNO, the message for SCMP_ACT_TRACE; EPERM when absent. */
  errnoRet?: number;
  args?: SeccompArg[];
  comment?: string;
}

/** The OCI runtime spec's `linux.seccomp`. */
export interface LinuxSeccomp {
  defaultAction: SeccompAction;
  defaultErrnoRet?: number;
  architectures?: string[];
  flags?: string[];
  syscalls?: SeccompSyscall[];
}

/** docker's conditions on a rule: capabilities granted, architecture, kernel version. */
export interface DockerFilter {
  caps?: string[];
  arches?: string[];
  minKernel?: string;
}

export interface DockerSyscall extends Omit<SeccompSyscall, "names" | "args"> {
  names?: string[];
  /** The old single-name form. */
  name?: string;
  args?: SeccompArg[] | null;
  includes?: DockerFilter;
  excludes?: DockerFilter;
}

/** docker's profile format (moby profiles/seccomp), of which the OCI format is a subset. */
export interface DockerSeccompProfile extends Omit<LinuxSeccomp, "syscalls"> {
  archMap?: Array<{ architecture: string; subArchitectures: string[] | null }>;
  syscalls?: DockerSyscall[];
}

/** What resolving docker's includes/excludes depends on. */
export interface ProfileContext {
  /** Capabilities the container gets, "CAP_SYS_ADMIN" or "SYS_ADMIN". */
  capabilities?: Iterable<string>;
  arch?: SeccompArch;
  /** Kernel release, as uname -r prints it; the running kernel's by default. */
  kernel?: string;
}

// ---------------------------------------------------------------------------------------------
// The default profile and --security-opt

/**
 * minic's default profile for a container with `capabilities`: docker's default, with the calls
 * that docker gates on a capability added for the capabilities granted (CAP_SYS_ADMIN brings
 * mount, umount2, unshare, setns, clone with namespace flags and clone3, ...). The differences from
 * docker's profile are listed in seccomp-profile.ts.
 */
export function defaultProfile(capabilities: Iterable<string> = [], context: Omit<ProfileContext, "capabilities"> = {}): LinuxSeccomp {
  return parseSeccompProfile(DEFAULT_PROFILE, "minic's default seccomp profile", { ...context, capabilities });
}

/** The default profile in docker's format, for `minic` to print or a user to start a profile from. */
export const DEFAULT_DOCKER_PROFILE: DockerSeccompProfile = DEFAULT_PROFILE;

/**
 * Resolve `--security-opt seccomp=...` (or docker's older `seccomp:...`): `unconfined` gives null,
 * meaning no filter; `builtin` or `default` gives the default profile; anything else is a profile
 * file in docker's or the OCI format.
 */
export function seccompFromSecurityOpt(option: string, context: ProfileContext = {}): LinuxSeccomp | null {
  const match = /^seccomp[=:](.*)$/s.exec(option);
  if (!match) throw new Error(`--security-opt ${option}: not a seccomp option (expected seccomp=PROFILE.json or seccomp=unconfined)`);
  const value = match[1]!;
  if (value === "unconfined") return null;
  if (value === "builtin" || value === "default") return defaultProfile(context.capabilities, context);
  if (value === "") throw new Error("--security-opt seccomp=: give a profile file, or unconfined");
  return loadSeccompProfile(value, context);
}

/** Read and resolve a profile file (docker or OCI format). Errors name the file and the JSON path. */
export function loadSeccompProfile(file: string, context: ProfileContext = {}): LinuxSeccomp {
  let text: string;
  try {
    text = readText(file);
  } catch (error) {
    throw new Error(`seccomp profile ${file}: cannot read it (${error instanceof SysError ? error.code : String(error)})`);
  }
  return parseSeccompJson(text, `seccomp profile ${file}`, context);
}

/** Parse profile JSON text. Integers beyond 2^53 are read exactly, as bigints. */
export function parseSeccompJson(text: string, source: string, context: ProfileContext = {}): LinuxSeccomp {
  let json: unknown;
  try {
    json = JSON.parse(text, (_key, value, ctx?: { source?: string }) =>
      typeof value === "number" && !Number.isSafeInteger(value) && ctx?.source && /^\d+$/.test(ctx.source)
        ? BigInt(ctx.source)
        : value);
  } catch (error) {
    throw new Error(`${source}: not valid JSON (${(error as Error).message})`);
  }
  return parseSeccompProfile(json, source, context);
}

/**
 * Check a profile object (docker's format or the OCI one, from a file or a bundle's
 * `linux.seccomp`) and resolve it to the OCI form for this container: docker's `archMap` becomes
 * `architectures`, `name` becomes `names`, and rules whose includes/excludes do not fit the
 * capabilities, architecture or kernel are dropped. Errors read `SOURCE: JSON.path: what is wrong`.
 */
export function parseSeccompProfile(input: unknown, source: string, context: ProfileContext = {}): LinuxSeccomp {
  const arch = context.arch ?? NATIVE_ARCH;
  const caps = new Set([...(context.capabilities ?? [])].map(capName));
  const kernel = kernelVersion(context.kernel ?? runningKernel());
  const fail = (path: string, message: string): never => {
    throw new Error(`${source}: ${path}: ${message}`);
  };
  const profile = object(input, "(top level)", fail);

  const result: LinuxSeccomp = { defaultAction: action(profile.defaultAction, "defaultAction", fail) };
  if (profile.defaultErrnoRet !== undefined && profile.defaultErrnoRet !== null) {
    result.defaultErrnoRet = errnoRet(profile.defaultErrnoRet, "defaultErrnoRet", fail);
  }
  if (typeof profile.listenerPath === "string" && profile.listenerPath !== "") {
    fail("listenerPath", "seccomp notification listeners are not supported by minic");
  }

  if (profile.architectures != null && profile.archMap != null) {
    fail("archMap", "give either architectures or archMap, not both");
  }
  if (profile.architectures != null) {
    result.architectures = strings(profile.architectures, "architectures", fail).map((a, i) =>
      ARCH_NAMES.includes(a) ? a : fail(`architectures[${i}]`, `unknown architecture ${JSON.stringify(a)}`));
  } else if (profile.archMap != null) {
    const own = AUDIT[arch].scmp;
    list(profile.archMap, "archMap", fail).forEach((entry, i) => {
      const e = object(entry, `archMap[${i}]`, fail);
      const main = string(e.architecture, `archMap[${i}].architecture`, fail);
      const subs = e.subArchitectures == null ? [] : strings(e.subArchitectures, `archMap[${i}].subArchitectures`, fail);
      if (main === own) result.architectures = [main, ...subs];
    });
    result.architectures ??= [own];
  }

  if (profile.flags != null) {
    result.flags = strings(profile.flags, "flags", fail).map((f, i) =>
      f in FILTER_FLAGS ? f : fail(`flags[${i}]`, `unknown flag ${JSON.stringify(f)} (known: ${Object.keys(FILTER_FLAGS).join(", ")})`));
  }

  result.syscalls = [];
  if (profile.syscalls != null) {
    list(profile.syscalls, "syscalls", fail).forEach((entry, i) => {
      const path = `syscalls[${i}]`;
      const s = object(entry, path, fail);
      if (s.name != null && s.names != null) fail(path, "give either name or names, not both");
      const names = s.names != null
        ? strings(s.names, `${path}.names`, fail)
        : s.name != null ? [string(s.name, `${path}.name`, fail)] : fail(path, "no names");
      const rule: SeccompSyscall = { names, action: action(s.action, `${path}.action`, fail) };
      if (s.errnoRet != null) rule.errnoRet = errnoRet(s.errnoRet, `${path}.errnoRet`, fail, rule.action === "SCMP_ACT_TRACE");
      if (s.args != null) {
        const args = list(s.args, `${path}.args`, fail).map((a, j) => argument(a, `${path}.args[${j}]`, fail));
        if (args.length) rule.args = args;
      }
      if (typeof s.comment === "string" && s.comment) rule.comment = s.comment;
      const includes = s.includes == null ? {} : filter(s.includes, `${path}.includes`, fail);
      const excludes = s.excludes == null ? {} : filter(s.excludes, `${path}.excludes`, fail);
      // docker: every included capability must be granted, and no excluded one; the architecture
      // must be among the included and not among the excluded; the kernel at least minKernel, or
      // below the excluded minKernel.
      const archNames = ARCH_ALIASES[arch];
      if (includes.arches?.length && !includes.arches.some((a) => archNames.includes(a))) return;
      if (excludes.arches?.length && excludes.arches.some((a) => archNames.includes(a))) return;
      if (includes.caps?.length && !includes.caps.every((c) => caps.has(capName(c)))) return;
      if (excludes.caps?.length && excludes.caps.some((c) => caps.has(capName(c)))) return;
      if (includes.minKernel && compareVersions(kernel, includes.minKernel) < 0) return;
      if (excludes.minKernel && compareVersions(kernel, excludes.minKernel) >= 0) return;
      result.syscalls!.push(rule);
    });
  }
  return result;
}

type Fail = (path: string, message: string) => never;

function object(value: unknown, path: string, fail: Fail): Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) fail(path, `expected an object, got ${describe(value)}`);
  return value as Record<string, unknown>;
}
function list(value: unknown, path: string, fail: Fail): unknown[] {
  if (!Array.isArray(value)) fail(path, `expected an array, got ${describe(value)}`);
  return value as unknown[];
}
function string(value: unknown, path: string, fail: Fail): string {
  if (typeof value !== "string") fail(path, `expected a string, got ${describe(value)}`);
  return value as string;
}
function strings(value: unknown, path: string, fail: Fail): string[] {
  return list(value, path, fail).map((v, i) => string(v, `${path}[${i}]`, fail));
}
function describe(value: unknown): string {
  return value === null ? "null" : Array.isArray(value) ? "an array" : `${typeof value} ${JSON.stringify(String(value)).slice(0, 40)}`;
}

function action(value: unknown, path: string, fail: Fail): SeccompAction {
  if (value === "SCMP_ACT_NOTIFY") fail(path, "SCMP_ACT_NOTIFY needs a seccomp listener, which minic does not support");
  if (!ACTIONS.includes(value as SeccompAction)) {
    fail(path, `unknown action ${JSON.stringify(value)} (expected one of ${ACTIONS.join(", ")})`);
  }
  return value as SeccompAction;
}

function errnoRet(value: unknown, path: string, fail: Fail, trace = false): number {
  const max = trace ? 0xffff : 4095;
  if (typeof value !== "number" || !Number.isInteger(value) || value < 0 || value > max) {
    fail(path, `expected ${trace ? "a trace message" : "an errno"} from 0 to ${max}, got ${describe(value)}`);
  }
  return value as number;
}

function u64(value: unknown, path: string, fail: Fail): number | bigint {
  const ok = typeof value === "bigint"
    ? value >= 0n && value < 1n << 64n
    : typeof value === "number" && Number.isSafeInteger(value) && value >= 0;
  if (!ok) fail(path, `expected an unsigned 64-bit integer, got ${describe(value)}`);
  return value as number | bigint;
}

function argument(value: unknown, path: string, fail: Fail): SeccompArg {
  const a = object(value, path, fail);
  if (typeof a.index !== "number" || !Number.isInteger(a.index) || a.index < 0 || a.index > 5) {
    fail(`${path}.index`, `expected an argument index from 0 to 5, got ${describe(a.index)}`);
  }
  if (!OPERATORS.includes(a.op as SeccompOperator)) {
    fail(`${path}.op`, `unknown operator ${JSON.stringify(a.op)} (expected one of ${OPERATORS.join(", ")})`);
  }
  const arg: SeccompArg = { index: a.index as number, value: u64(a.value ?? 0, `${path}.value`, fail), op: a.op as SeccompOperator };
  if (a.valueTwo != null) arg.valueTwo = u64(a.valueTwo, `${path}.valueTwo`, fail);
  return arg;
}

function filter(value: unknown, path: string, fail: Fail): DockerFilter {
  const f = object(value, path, fail);
  const out: DockerFilter = {};
  if (f.caps != null) out.caps = strings(f.caps, `${path}.caps`, fail);
  if (f.arches != null) out.arches = strings(f.arches, `${path}.arches`, fail);
  if (f.minKernel != null && f.minKernel !== "") {
    out.minKernel = string(f.minKernel, `${path}.minKernel`, fail);
    if (!/^\d+\.\d+(\.\d+)?$/.test(out.minKernel)) fail(`${path}.minKernel`, `expected a version like "4.8", got ${JSON.stringify(out.minKernel)}`);
  }
  return out;
}

function capName(cap: string): string {
  const upper = cap.toUpperCase();
  return upper.startsWith("CAP_") ? upper : `CAP_${upper}`;
}

let kernelRelease: string | undefined;
/** uname -r, from /proc (node:os would cost start-up time, see libc/fs.ts). */
function runningKernel(): string {
  return (kernelRelease ??= readText("/proc/sys/kernel/osrelease").trim());
}

function kernelVersion(text: string): string {
  return /^\d+(\.\d+)*/.exec(text)?.[0] ?? "0";
}

/** Compare dotted versions numerically: "6.18.44" against "4.8". */
function compareVersions(a: string, b: string): number {
  const x = a.split(".").map(Number), y = b.split(".").map(Number);
  for (let i = 0; i < Math.max(x.length, y.length); i++) {
    const d = (x[i] ?? 0) - (y[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

const ARCH_NAMES = [
  "SCMP_ARCH_X86", "SCMP_ARCH_X86_64", "SCMP_ARCH_X32", "SCMP_ARCH_ARM", "SCMP_ARCH_AARCH64", "SCMP_ARCH_MIPS",
  "SCMP_ARCH_MIPS64", "SCMP_ARCH_MIPS64N32", "SCMP_ARCH_MIPSEL", "SCMP_ARCH_MIPSEL64", "SCMP_ARCH_MIPSEL64N32",
  "SCMP_ARCH_PPC", "SCMP_ARCH_PPC64", "SCMP_ARCH_PPC64LE", "SCMP_ARCH_S390", "SCMP_ARCH_S390X", "SCMP_ARCH_PARISC",
  "SCMP_ARCH_PARISC64", "SCMP_ARCH_RISCV64", "SCMP_ARCH_LOONGARCH64", "SCMP_ARCH_M68K", "SCMP_ARCH_SH", "SCMP_ARCH_SHEB",
];

/** Names an includes/excludes `arches` list may use for the running architecture (docker uses Go's). */
const ARCH_ALIASES: Record<SeccompArch, string[]> = {
  x86_64: ["amd64", "x86_64", "SCMP_ARCH_X86_64"],
  aarch64: ["arm64", "aarch64", "SCMP_ARCH_AARCH64"],
};

export const AUDIT: Record<SeccompArch, { audit: number; scmp: string; seccompNr: number }> = {
  x86_64: { audit: 0xc000003e, scmp: "SCMP_ARCH_X86_64", seccompNr: 317 },
  aarch64: { audit: 0xc00000b7, scmp: "SCMP_ARCH_AARCH64", seccompNr: 277 },
};
