// Checking a parsed config.json (OCI runtime-spec 1.x) before minic acts on it.
//
// The checks are tables: each object of the spec is a map from its field names to a Check, so
// the tables below are also the list of what minic accepts. A field missing from its object's
// table is refused ("not supported by minic"), never silently ignored. A few fields minic does
// not act on yet are accepted with a light shape check and passed through untouched (marked
// "passed through" below); later issues implement them.
import type { Process, Spec } from "./types.ts";

/** An invalid or unsupported config.json: the message names the file, the JSON path and the problem. */
export class SpecError extends Error {
  override name = "SpecError";
  constructor(
    readonly source: string,
    /** Where in the document, as `process.args[0]` or `annotations["org.example"]`; "" for the whole. */
    readonly path: string,
    readonly problem: string,
  ) {
    super(`${source}: ${path ? `${path}: ` : ""}${problem}`);
  }
}

/** Linux capability names, indexed by their number (CAP_CHOWN is 0). */
export const CAPABILITIES = [
  "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
  "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
  "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE",
  "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT",
  "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
  "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG",
  "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
] as const;

/** Linux resource limit names, indexed by their number in setrlimit(2) (x86, arm and most others). */
export const RLIMITS = [
  "RLIMIT_CPU", "RLIMIT_FSIZE", "RLIMIT_DATA", "RLIMIT_STACK", "RLIMIT_CORE", "RLIMIT_RSS", "RLIMIT_NPROC",
  "RLIMIT_NOFILE", "RLIMIT_MEMLOCK", "RLIMIT_AS", "RLIMIT_LOCKS", "RLIMIT_SIGPENDING", "RLIMIT_MSGQUEUE",
  "RLIMIT_NICE", "RLIMIT_RTPRIO", "RLIMIT_RTTIME",
] as const;

export const NAMESPACE_TYPES = ["pid", "network", "mount", "ipc", "uts", "user", "cgroup", "time"] as const;
const HOOK_NAMES = ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"];
const CAPABILITY_SETS = ["bounding", "effective", "inheritable", "permitted", "ambient"];
const PROPAGATIONS = ["private", "rprivate", "slave", "rslave", "shared", "rshared", "unbindable", "runbindable"];

// ---- the checking vocabulary ---------------------------------------------------------------

/** Thrown by a check; validateSpec adds the file name and rethrows it as a SpecError. */
class Problem {
  constructor(
    readonly path: string,
    readonly problem: string,
  ) {}
}

interface Check {
  /** What a valid value is, for "must be ...". */
  what: string;
  /** Throw a Problem if `value`, found at `path`, is not valid. */
  test(value: unknown, path: string): void;
  /** For an object's field: absent is an error. */
  required?: boolean;
}

/** An extra rule on a whole object or array, run after its parts are checked. */
type Rule = (value: any, path: string) => void;

/** `path.key`, or `path["key"]` for a key that is not a plain identifier. */
function at(path: string, key: string): string {
  if (!/^[A-Za-z_$][\w$]*$/.test(key)) return `${path}[${JSON.stringify(key)}]`;
  return path ? `${path}.${key}` : key;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);
const isInt = (v: unknown): v is number => Number.isInteger(v);

/** A leaf check; with `showValue`, the message quotes the bad value (for names that are easy to mistype). */
function is(what: string, ok: (v: unknown) => boolean, showValue = false): Check {
  return {
    what,
    test(v, path) {
      if (ok(v)) return;
      const got = showValue && v !== undefined ? ` (got ${JSON.stringify(v)})` : "";
      throw new Problem(path, `must be ${what}${got}`);
    },
  };
}

const required = (check: Check): Check => ({ ...check, required: true });
const oneOf = (values: readonly string[], what = `one of ${values.join(", ")}`) =>
  is(what, (v) => typeof v === "string" && values.includes(v), true);

function list(item: Check, what: string, { nonEmpty = false, unique = "" } = {}): Check {
  return {
    what,
    test(v, path) {
      if (!Array.isArray(v) || (nonEmpty && v.length === 0)) throw new Problem(path, `must be ${what}`);
      v.forEach((x, i) => item.test(x, `${path}[${i}]`));
      if (!unique) return; // "field noun": no two items may have the same value of `field`
      const [field, noun] = unique.split(" ");
      const seen = new Set<unknown>();
      v.forEach((x, i) => {
        if (seen.has(x[field!])) throw new Problem(`${path}[${i}].${field}`, `duplicate ${noun} ${JSON.stringify(x[field!])}`);
        seen.add(x[field!]);
      });
    },
  };
}

/** An object with exactly these fields (each optional unless required()), then the rules. */
function object(fields: Record<string, Check>, ...rules: Rule[]): Check {
  return {
    what: "an object",
    test(v, path) {
      if (!isObject(v)) throw new Problem(path, "must be an object");
      for (const key of Object.keys(v)) if (!Object.hasOwn(fields, key)) throw new Problem(at(path, key), "not supported by minic");
      for (const [key, check] of Object.entries(fields)) {
        if (v[key] !== undefined) check.test(v[key], at(path, key));
        else if (check.required) throw new Problem(at(path, key), `must be ${check.what}`);
      }
      for (const rule of rules) rule(v, path);
    },
  };
}

/** An object with any keys, each value checked by `value`. */
function map(value: Check, what: string): Check {
  return {
    what,
    test(v, path) {
      if (!isObject(v)) throw new Problem(path, `must be ${what}`);
      for (const [key, x] of Object.entries(v)) value.test(x, at(path, key));
    },
  };
}

const string = is("a string", (v) => typeof v === "string");
const nonEmptyString = is("a non-empty string", (v) => typeof v === "string" && v !== "");
const boolean = is("a boolean", (v) => typeof v === "boolean");
const absolutePath = is("an absolute path", (v) => typeof v === "string" && v.startsWith("/"));
const anyObject = is("an object", isObject);
const uint = is("a non-negative integer", (v) => isInt(v) && v >= 0);
const positiveInt = is("a positive integer", (v) => isInt(v) && v > 0);
const between = (min: number, max: number, what = `an integer from ${min} to ${max}`) =>
  is(what, (v) => isInt(v) && v >= min && v <= max);
const utsName = is("a string of at most 64 bytes", (v) => typeof v === "string" && Buffer.byteLength(v) <= 64);
const envEntry = is('a "KEY=VALUE" string', (v) => typeof v === "string" && /^[^=]+=/.test(v));

const strings = list(string, "an array of strings");
const envList = list(envEntry, 'an array of "KEY=VALUE" strings');
const stringMap = map(string, "an object of string values");
const absolutePaths = list(absolutePath, "an array of absolute paths");

// ---- the spec -------------------------------------------------------------------------------

const softNotAboveHard: Rule = (r, path) => {
  if (r.soft > r.hard) throw new Problem(`${path}.soft`, `must not exceed hard (${r.soft} > ${r.hard})`);
};

const mappingsNeedUserNamespace: Rule = (linux, path) => {
  const key = ["uidMappings", "gidMappings"].find((k) => linux[k] !== undefined);
  if (key && !linux.namespaces?.some((ns: { type: string }) => ns.type === "user")) {
    throw new Problem(at(path, key), 'needs a "user" namespace in linux.namespaces');
  }
};

const capabilitySet = list(
  is("a capability name such as CAP_KILL", (v) => (CAPABILITIES as readonly unknown[]).includes(v), true),
  "an array of capability names",
);

const processSchema = object({
  terminal: boolean,
  consoleSize: object({ height: required(uint), width: required(uint) }),
  user: required(
    object({
      uid: required(uint),
      gid: required(uint),
      umask: between(0, 0o777, "an integer from 0 to 511 (0777)"),
      additionalGids: list(uint, "an array of non-negative integers"),
    }),
  ),
  args: required(list(string, "a non-empty array of strings", { nonEmpty: true })),
  env: envList,
  cwd: required(absolutePath),
  capabilities: object(Object.fromEntries(CAPABILITY_SETS.map((set) => [set, capabilitySet]))),
  rlimits: list(
    object(
      {
        type: required(oneOf(RLIMITS, "an RLIMIT_* name such as RLIMIT_NOFILE")),
        soft: required(uint),
        hard: required(uint),
      },
      softNotAboveHard,
    ),
    "an array of rlimits",
    { unique: "type rlimit" },
  ),
  noNewPrivileges: boolean,
  oomScoreAdj: between(-1000, 1000),
  apparmorProfile: string, // passed through
  selinuxLabel: string, // passed through
});

const idMappings = list(
  object({ containerID: required(uint), hostID: required(uint), size: required(positiveInt) }),
  "an array of ID mappings",
);

const linuxSchema = object(
  {
    namespaces: list(object({ type: required(oneOf(NAMESPACE_TYPES)), path: absolutePath }), "an array of namespaces", {
      unique: "type namespace",
    }),
    uidMappings: idMappings,
    gidMappings: idMappings,
    // Passed through:
    resources: anyObject,
    cgroupsPath: string,
    seccomp: anyObject,
    maskedPaths: absolutePaths,
    readonlyPaths: absolutePaths,
    rootfsPropagation: oneOf(PROPAGATIONS),
    sysctl: stringMap,
    devices: list(anyObject, "an array of objects"),
    mountLabel: string,
  },
  mappingsNeedUserNamespace,
);

const hook = object({ path: required(absolutePath), args: strings, env: envList, timeout: positiveInt });

const specSchema = object({
  ociVersion: required(is('a runtime-spec 1.x version such as "1.2.0"', (v) => typeof v === "string" && v.startsWith("1."), true)),
  process: required(processSchema),
  root: object({ path: required(nonEmptyString), readonly: boolean }),
  hostname: utsName,
  domainname: utsName,
  mounts: list(
    object({ destination: required(absolutePath), source: string, type: string, options: strings }),
    "an array of mounts",
  ),
  hooks: object(Object.fromEntries(HOOK_NAMES.map((name) => [name, list(hook, "an array of hooks")]))),
  annotations: stringMap,
  linux: linuxSchema,
});

/**
 * Check a parsed config.json and return it typed, or throw a SpecError such as
 * `config.json: process.args: must be a non-empty array of strings`. `source` names the file in
 * messages. The value is returned as it is (not copied); passed-through fields stay in it.
 */
export function validateSpec(raw: unknown, source = "config.json"): Spec {
  try {
    specSchema.test(raw, "");
  } catch (error) {
    if (error instanceof Problem) throw new SpecError(source, error.path, error.problem);
    throw error;
  }
  return raw as Spec;
}

/** Check a runtime-spec `process` object on its own: `minic exec --process FILE`, as conmon and containerd write it. */
export function validateProcess(raw: unknown, source = "process.json"): Process {
  try {
    processSchema.test(raw, "");
  } catch (error) {
    if (error instanceof Problem) throw new SpecError(source, error.path, error.problem);
    throw error;
  }
  return raw as Process;
}
