// What every minic subcommand provides to the dispatcher in cli.ts.
import type { ArgsDef, CommandDef } from "citty";

export interface Verb {
  /** citty's definition: name, description and flags, used for parsing and --help. */
  command: Omit<CommandDef<ArgsDef>, "args"> & { args: ArgsDef };
  /**
   * True when the first positional starts a command line that belongs to the container
   * (`minic run sh -c x`): flags after it are not minic's.
   */
  takesCommandLine?: boolean;
  /** Run the verb; resolve to minic's exit code. */
  main(input: VerbInput): Promise<number>;
}

export interface VerbInput {
  /** Flags as citty parsed them (the last value of a repeated flag). */
  flags: Record<string, any>;
  /** Every value of each flag that takes one, in order (for -e, -v and friends). */
  all: Record<string, string[]>;
  /** Positionals; for a verb that takes a command line, the command and its arguments. */
  rest: string[];
  /** Global options that every verb honours. */
  global: { trace?: (line: string) => void };
}
