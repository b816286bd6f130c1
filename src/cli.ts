// minic's command line: `minic [GLOBAL FLAGS] VERB [FLAGS] [ARGS...]`.
//
// citty defines the verbs and renders --help. The line is split by cli/argv.ts first, so that
// nothing after the container's command is ever read as minic's (citty alone would take the `-c`
// of `minic run sh -c x`, and would see a `--help` meant for the container).
import { renderUsage, parseArgs, type ArgsDef } from "citty";
import pkg from "../package.json" with { type: "json" };
import { splitArgv, UsageError } from "./cli/argv.ts";
import type { Verb } from "./cli/verb.ts";
import { log, LOG_LEVELS, type LogLevelName } from "./log.ts";
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
} satisfies ArgsDef;

// Each verb is imported only when used, so `minic run` pays for nothing else at startup.
const verbs: Record<string, { description: string; load: () => Promise<Verb> }> = {
  run: { description: "Run a command in a new container and wait for it", load: () => import("./cli/run.ts").then((m) => m.run) },
};

const mainCommand = {
  meta: { name: "minic", version: pkg.version, description: `${pkg.description}.` },
  args: globalArgs,
  subCommands: Object.fromEntries(Object.entries(verbs).map(([name, v]) => [name, { meta: { name, description: v.description } }])),
};

async function cli(argv: string[]): Promise<number> {
  const top = splitArgv(argv, globalArgs);
  const global = parseArgs(top.flags, globalArgs);
  const level: LogLevelName = global.quiet ? "error" : global.verbose ? "debug" : ((global["log-level"] as LogLevelName) ?? "info");
  log.level = LOG_LEVELS[level];
  if (global.version) {
    console.log(`minic ${pkg.version} (bun ${Bun.version})`);
    return 0;
  }
  const [name, ...verbArgv] = top.rest;
  if (!name) {
    console.log(await renderUsage(mainCommand));
    if (global.help) return 0;
    throw new UsageError("no command given", "try minic run COMMAND, or minic --help");
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
  // Positionals were already cut off by splitArgv; citty parses the flags only.
  const flagDefs = Object.fromEntries(Object.entries(args).filter(([, def]) => def.type !== "positional"));
  const flags = parseArgs(split.flags, flagDefs);
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

if (import.meta.main) process.exit(await runCli(process.argv.slice(2)));
