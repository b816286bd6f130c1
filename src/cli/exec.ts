// `minic exec [FLAGS] ID COMMAND [ARG...]`, and conmon's and containerd's
// `minic exec --process process.json --detach --pid-file F ID`.
import type { ArgsDef } from "citty";
import { UsageError } from "./argv.ts";
import type { Verb, VerbInput } from "./verb.ts";
import { traceLine } from "../log.ts";
import { readText, resolvePath } from "../libc/fs.ts";
import { execInContainer, execTarget } from "../exec.ts";
import { lookupUser } from "../security/users.ts";
import { validateProcess } from "../spec/validate.ts";
import type { Process } from "../spec/types.ts";

const args = {
  env: { type: "string", alias: "e", valueHint: "KEY=VAL", description: "Set an environment variable (KEY alone copies it from minic's environment); repeatable" },
  cwd: { type: "string", alias: "w", valueHint: "DIR", description: "Working directory inside (default: the container's)" },
  workdir: { type: "string", valueHint: "DIR", description: "Same as --cwd (docker's name for it)" },
  user: { type: "string", alias: "u", valueHint: "UID[:GID]", description: "User (and group) to run as: numbers, or names from the container's /etc/passwd" },
  detach: { type: "boolean", alias: "d", description: "Start the command and exit at once; it keeps running in the container" },
  "pid-file": { type: "string", valueHint: "FILE", description: "Write the new process's pid (as the host sees it) here" },
  process: { type: "string", alias: "p", valueHint: "FILE", description: "Take the process from FILE, a runtime-spec `process` object (args, env, cwd, user...)" },
  tty: { type: "boolean", alias: "t", description: "Give the command a pseudo-terminal of the container's, relayed to minic's stdio (or sent to --console-socket)" },
  interactive: { type: "boolean", alias: "i", description: "With -t, forward minic's stdin to it (a terminal goes in raw mode); without -t stdin is always passed on" },
  "console-socket": { type: "string", valueHint: "SOCKET", description: "Send the pseudo-terminal's master here (with --tty or process.terminal)" },
  "preserve-fds": { type: "string", valueHint: "N", description: "Pass N more file descriptors (3, 4, ...) on to the command, as runc does" },
  trace: { type: "boolean", description: "Narrate the setup's syscalls on stderr" },
  id: { type: "positional", description: "The container id" },
  command: { type: "positional", description: "The command to run, then its arguments (not with --process)" },
} satisfies ArgsDef;

export const exec: Verb = {
  takesCommandLine: true,
  command: {
    meta: {
      name: "exec",
      description:
        "Run COMMAND in the running container ID: in its namespaces and cgroup, with its capabilities, seccomp filter, " +
        "no_new_privs, user and working directory. minic's flags come before ID; everything from COMMAND on is the " +
        "command's. Exit status as for run: the command's own, 128+N, 125, 126, 127.",
    },
    args,
  },
  async main(input) {
    const [id, ...command] = input.rest;
    if (!id) throw new UsageError("exec needs a container id and a command", "usage: minic exec [FLAGS] ID COMMAND [ARG...]");
    const flags = input.flags;
    const preserveFds = flags["preserve-fds"] === undefined ? 0 : Number(flags["preserve-fds"]);
    if (!Number.isInteger(preserveFds) || preserveFds < 0) throw new UsageError(`--preserve-fds "${flags["preserve-fds"]}" is not a number`);
    const target = execTarget(id);
    const proc = execProcess(input, command, target.spec.process!, target.state.pid);
    return execInContainer(id, target, proc, {
      detach: !!flags.detach,
      consoleSocket: flags["console-socket"] && resolvePath(flags["console-socket"]),
      interactive: !!flags.interactive,
      pidFile: flags["pid-file"] && resolvePath(flags["pid-file"]),
      preserveFds,
      trace: flags.trace ? traceLine : undefined,
      setupTimeoutMs: Number(process.env.MINIC_SETUP_TIMEOUT_MS) || undefined,
    });
  },
};

/**
 * The process to run. From the flags, as runc does: the container's own process, with the
 * command, -e added to its environment, -w, -u and -t. From --process FILE: that process, with
 * the container's capabilities, no_new_privs, rlimits and umask where it gives none.
 */
export function execProcess({ flags, all }: Pick<VerbInput, "flags" | "all">, command: string[], base: Process, initPid: number): Process {
  let proc: Process;
  if (flags.process) {
    if (command.length > 0) throw new UsageError("give either --process FILE or a command, not both");
    const file = resolvePath(flags.process);
    let raw: unknown;
    try {
      raw = JSON.parse(readText(file));
    } catch (error) {
      throw new UsageError(`--process ${file}: ${(error as Error).message}`);
    }
    const given = validateProcess(raw, file);
    proc = {
      ...given,
      user: { ...given.user, umask: given.user.umask ?? base.user.umask },
      capabilities: given.capabilities ?? base.capabilities,
      noNewPrivileges: given.noNewPrivileges ?? base.noNewPrivileges,
      rlimits: given.rlimits?.length ? given.rlimits : base.rlimits,
      oomScoreAdj: given.oomScoreAdj ?? base.oomScoreAdj,
    };
  } else {
    if (command.length === 0) throw new UsageError("exec needs a command", "usage: minic exec [FLAGS] ID COMMAND [ARG...]");
    proc = { ...base, args: command, terminal: false };
  }
  if (flags.tty) proc.terminal = true;
  if (all.env?.length) proc.env = mergeEnv(proc.env ?? [], all.env);
  const cwd: string | undefined = flags.cwd ?? flags.workdir;
  if (cwd) {
    if (!cwd.startsWith("/")) throw new UsageError(`--cwd: "${cwd}" must be an absolute path`);
    proc.cwd = cwd;
  }
  if (flags.user) {
    const user = lookupUser(flags.user, `/proc/${initPid}/root`);
    proc.capabilities = capabilitiesFor(proc, user.uid);
    proc.user = { ...user, umask: proc.user.umask };
  }
  return proc;
}

/**
 * A different user gets what `minic run -u` would give it: the same bounding set, and, as in
 * docker, all of it for root and no capabilities at all for anyone else.
 */
function capabilitiesFor(proc: Process, uid: number): Process["capabilities"] {
  const caps = proc.capabilities;
  if (!caps || uid === proc.user.uid) return caps;
  const bounding = caps.bounding ?? [];
  const held = uid === 0 ? bounding : [];
  return { bounding, effective: held, permitted: held, inheritable: [], ambient: [] };
}

/** KEY=VAL replaces KEY; KEY alone copies minic's own value, if it has one. */
function mergeEnv(base: string[], extra: string[]): string[] {
  const env = new Map(base.map((e) => [e.split("=", 1)[0]!, e] as const));
  for (const entry of extra) {
    const eq = entry.indexOf("=");
    const key = eq < 0 ? entry : entry.slice(0, eq);
    if (!key) throw new UsageError(`--env: "${entry}" has no name`);
    if (eq >= 0) env.set(key, entry);
    else if (process.env[key] !== undefined) env.set(key, `${key}=${process.env[key]}`);
  }
  return [...env.values()];
}
