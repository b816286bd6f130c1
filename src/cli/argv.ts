// Splitting a command line between minic and the container, and reading minic's flags.
//
// Everything from the first positional argument on belongs to the container, as with
// `docker run IMAGE CMD...`: `minic run sh -c 'echo $0' x` passes `-c` to sh. citty's parser
// would take `-c` for itself, scan the whole line for --help and keep only the last of repeated
// flags (-e A -e B), so minic reads the line here, against the same citty flag definitions that
// render --help. (citty itself is then loaded only for --help: importing it costs ~2.5 ms.)
import type { ArgsDef } from "citty";

export class UsageError extends Error {
  constructor(
    message: string,
    public hint = "",
  ) {
    super(message);
  }
}

interface FlagInfo {
  name: string;
  takesValue: boolean;
}

function flagTable(defs: ArgsDef): Map<string, FlagInfo> {
  const table = new Map<string, FlagInfo>();
  for (const [name, def] of Object.entries(defs)) {
    if (def.type === "positional") continue;
    const info = { name, takesValue: def.type === "string" || def.type === "enum" };
    table.set(name, info);
    const aliases = "alias" in def && def.alias ? [def.alias].flat() : [];
    for (const alias of aliases) table.set(alias, info);
    if (def.type === "boolean") table.set(`no-${name}`, { name, takesValue: false });
  }
  return table;
}

export interface SplitArgv {
  /** minic's own flags, normalised to `--name value` / `--name` tokens for citty. */
  flags: string[];
  /** The rest of the line, untouched: the positionals (for `run`, the command and its arguments). */
  rest: string[];
  /** Each flag's value: true/false for a switch, the last value given for the others, else the default. */
  values: Record<string, any>;
  /** Every value of each flag, in order, for repeatable flags (-e, -v). */
  all: Record<string, string[]>;
}

/**
 * Walk `argv` until the first positional (or `--`), checking each flag against `defs`.
 * Combined short flags (`-it`) are expanded; a flag that needs a value takes the next word, or
 * the text after `=` (`--hostname=box`), or the rest of a short group (`-eFOO=bar`).
 */
export function splitArgv(argv: readonly string[], defs: ArgsDef, { stopAtPositional = true } = {}): SplitArgv {
  const table = flagTable(defs);
  const flags: string[] = [];
  const rest: string[] = [];
  const all: Record<string, string[]> = {};
  const values: Record<string, any> = {};
  for (const [name, def] of Object.entries(defs)) if (def.default !== undefined) values[name] = def.default;
  const push = (name: string, value?: string) => {
    if (value === undefined) {
      flags.push(`--${name}`);
      if (name.startsWith("no-") && !(name in defs)) values[name.slice(3)] = false;
      else values[name] = true;
      return;
    }
    const def = defs[name]!;
    if (def.type === "enum" && !def.options?.includes(value)) {
      throw new UsageError(`--${name} must be one of ${def.options?.join(", ")}, not "${value}"`);
    }
    flags.push(`--${name}`, value);
    (all[name] ??= []).push(value);
    values[name] = value;
  };
  for (let i = 0; i < argv.length; i++) {
    const word = argv[i]!;
    if (word === "--") {
      rest.push(...argv.slice(i + 1));
      break;
    }
    if (!word.startsWith("-") || word === "-") {
      if (stopAtPositional) {
        rest.push(...argv.slice(i));
        break;
      }
      rest.push(word);
      continue;
    }
    const takeValue = (flag: string, inline: string | undefined): string => {
      if (inline !== undefined) return inline;
      if (i + 1 >= argv.length) throw new UsageError(`flag ${flag} needs a value`);
      return argv[++i]!;
    };
    if (word.startsWith("--")) {
      const eq = word.indexOf("=");
      const name = word.slice(2, eq < 0 ? undefined : eq);
      const info = table.get(name);
      if (!info) throw new UsageError(`unknown flag --${name}`);
      if (info.takesValue) push(info.name, takeValue(`--${name}`, eq < 0 ? undefined : word.slice(eq + 1)));
      else if (eq >= 0) throw new UsageError(`flag --${name} takes no value`);
      else push(name.startsWith("no-") && info.name !== name ? `no-${info.name}` : info.name);
      continue;
    }
    // -abc: each letter a short flag; one that takes a value ends the group.
    for (let j = 1; j < word.length; j++) {
      const short = word[j]!;
      const info = table.get(short);
      if (!info) throw new UsageError(`unknown flag -${short}`);
      if (!info.takesValue) {
        push(info.name);
        continue;
      }
      push(info.name, takeValue(`-${short}`, j + 1 < word.length ? word.slice(j + 1).replace(/^=/, "") : undefined));
      break;
    }
  }
  return { flags, rest, values, all };
}
