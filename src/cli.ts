// minic's command line: `minic [GLOBAL FLAGS] VERB [FLAGS] [ARGS...]`.
//
// citty defines the verbs and renders --help. The line is read by cli/argv.ts, so that nothing
// after the container's command is ever taken as minic's (citty alone would take the `-c` of
// `minic run sh -c x`, and would see a `--help` meant for the container).
import type { ArgsDef, CommandDef } from "citty";
import pkg from "../package.json" with { type: "json" };
import { splitArgv, UsageError } from "./cli/argv.ts";
import type { Verb } from "./cli/verb.ts";
import { log, logToFile, LOG_LEVELS, type LogLevelName } from "./log.ts";
import { EXIT_MINIC_FAILED } from "./process/status.ts";

const globalArgs = {
  "log-level": {
    type: "enum",
    options: Object.keys(LOG_LEVELS),
    description: "How much minic says on stderr: quiet, error, warn, info (default), debug",
  },
  verbose: { type: "boolean", alias: "v", description: "Same as --log-level debug" },
  quiet: { type: "boolean", alias: "q", description: "Same as --log-level error" },
  version: { type: "boolean", description: "Print minic's version and exit" },
  help: { type: "boolean", alias: "h", description: "Show this help; `minic VERB --help` shows a verb's" },
  root: { type: "string", valueHint: "DIR", description: "State directory (default /run/minic as root, $XDG_RUNTIME_DIR/minic otherwise)" },
  log: { type: "string", valueHint: "FILE", description: "Also write minic's messages to FILE" },
  "log-format": { type: "enum", options: ["text", "json"], description: "Format of --log: text, or JSON lines as runc writes them" },
  debug: { type: "boolean", description: "Same as --log-level debug" },
  "systemd-cgroup": { type: "boolean", description: "Use systemd to manage cgroups (not available: minic writes cgroupfs itself)" },
} satisfies ArgsDef;

// Each verb is imported only when used, so `minic run` pays for nothing else at startup.
const verbs: Record<string, { description: string; load: () => Promise<Verb> }> = {
  run: { description: "Run a command in a new container and wait for it", load: () => import("./cli/run.ts").then((m) => m.run) },
  spec: { description: "Write a default config.json, as runc spec does", load: () => import("./cli/spec.ts").then((m) => m.spec) },
  create: { description: "Create a container from a bundle, held before exec", load: () => import("./cli/oci.ts").then((m) => m.create) },
  start: { description: "Start a created container", load: () => import("./cli/oci.ts").then((m) => m.start) },
  state: { description: "Print a container's state as JSON", load: () => import("./cli/oci.ts").then((m) => m.state) },
  exec: { description: "Run a command in a running container", load: () => import("./cli/exec.ts").then((m) => m.exec) },
  kill: { description: "Send a signal to a container", load: () => import("./cli/oci.ts").then((m) => m.kill) },
  delete: { description: "Delete a container", load: () => import("./cli/oci.ts").then((m) => m.del) },
  pause: { description: "Freeze a container's processes", load: () => import("./cli/oci.ts").then((m) => m.pause) },
  resume: { description: "Thaw a paused container", load: () => import("./cli/oci.ts").then((m) => m.resume) },
  list: { description: "List containers", load: () => import("./cli/oci.ts").then((m) => m.list) },
  ps: { description: "List containers, or one container's processes", load: () => import("./cli/oci.ts").then((m) => m.ps) },
  logs: { description: "Print a detached container's output", load: () => import("./cli/docker.ts").then((m) => m.logs) },
  stop: { description: "Stop a container (SIGTERM, then SIGKILL)", load: () => import("./cli/docker.ts").then((m) => m.stop) },
  rm: { description: "Remove a stopped container", load: () => import("./cli/docker.ts").then((m) => m.rm) },
};

const mainCommand = {
  meta: { name: "minic", version: pkg.version, description: `${pkg.description}.` },
  args: globalArgs,
  subCommands: Object.fromEntries(Object.entries(verbs).map(([name, v]) => [name, { meta: { name, description: v.description } }])),
};

async function renderUsage(command: CommandDef<any>, parent?: CommandDef<any>): Promise<string> {
  const text = await (await import("citty")).renderUsage(command, parent);
  return process.stdout.isTTY ? text : text.replace(/\x1b\[[0-9;]*m/g, ""); // no colour codes in pipes and files
}

async function cli(argv: string[]): Promise<number> {
  const top = splitArgv(argv, globalArgs);
  const global = top.values;
  const level: LogLevelName = global.quiet ? "error" : global.verbose || global.debug ? "debug" : ((global["log-level"] as LogLevelName) ?? "info");
  log.level = LOG_LEVELS[level];
  if (global.log) logToFile(global.log, global["log-format"] === "json" ? "json" : "text");
  if (global.root) process.env.MINIC_ROOT = global.root;
  if (global["systemd-cgroup"]) throw new UsageError("--systemd-cgroup is not available: minic manages cgroups through cgroupfs itself (and this machine has no systemd)");
  if (global.version) {
    console.log(`minic ${pkg.version} (bun ${Bun.version})`);
    return 0;
  }
  const [name, ...verbArgv] = top.rest;
  if (!name) {
    if (!global.help) throw new UsageError("no command given", "try minic run COMMAND, or minic --help");
    console.log(await renderUsage(mainCommand));
    return 0;
  }
  const entry = verbs[name];
  if (!entry) throw new UsageError(`unknown command "${name}"`, "minic --help lists the commands");
  const verb = await entry.load();
  const args: ArgsDef = { ...verb.command.args, help: globalArgs.help };
  let split;
  try {
    split = splitArgv(verbArgv, args, { stopAtPositional: verb.takesCommandLine ?? false });
  } catch (error) {
    if (error instanceof UsageError) error.hint ||= `see minic ${name} --help`;
    throw error;
  }
  const flags = split.values;
  if (flags.help || global.help) {
    console.log(await renderUsage(verb.command, mainCommand));
    return 0;
  }
  return verb.main({ flags, all: split.all, rest: split.rest, global: {} });
}

export async function runCli(argv: string[]): Promise<number> {
  try {
    return await cli(argv);
  } catch (error) {
    if (error instanceof UsageError) log.error(`${error.message} (${error.hint || "see minic --help"})`);
    else {
      log.error(error instanceof Error ? error.message : String(error));
      if (error instanceof Error) log.debug(error.stack ?? "");
    }
    return EXIT_MINIC_FAILED;
  }
}

/**
 * minic forks a copy of this runtime, so JavaScriptCore must not compile code on background
 * threads: one holding a JIT lock at the moment of fork() leaves the child waiting on it forever
 * (~1 run in 150 before this). bin/minic sets the option; started any other way, minic re-executes
 * itself with it set (an option JSC reads only at start-up).
 */
function ensureSerialJit(): void {
  if (process.env.BUN_JSC_useConcurrentJIT === "0") return;
  const { execSelf } = require("./process/reexec.ts") as typeof import("./process/reexec.ts");
  execSelf({ BUN_JSC_useConcurrentJIT: "0" });
}

if (import.meta.main) {
  ensureSerialJit();
  process.exit(await runCli(process.argv.slice(2)));
}
