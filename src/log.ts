// minic's own messages. They all go to stderr: stdout belongs to the container.
// consola/core (not the full consola, whose terminal detection costs ~25 ms at startup) with one
// plain reporter: "minic: message", "minic: warning: message".
import { ptr } from "bun:ffi";
import { libc } from "./libc/ffi.ts";
import { createConsola, type ConsolaReporter, type LogObject } from "consola/core";

const PREFIX: Record<string, string> = { error: "", fatal: "", warn: "warning: ", debug: "debug: ", trace: "" };

const stderrReporter: ConsolaReporter = {
  log(entry: LogObject) {
    const text = entry.args.map((a) => (a instanceof Error ? a.message : String(a))).join(" ");
    writeStderr(`minic: ${PREFIX[entry.type] ?? ""}${text}\n`);
  },
};

/** Levels as consola counts them: 0 fatal/error, 1 warn, 3 info, 4 debug, 5 trace. */
export const LOG_LEVELS = { quiet: 0, error: 0, warn: 1, info: 3, debug: 4, trace: 5 } as const;
export type LogLevelName = keyof typeof LOG_LEVELS;

export const log = createConsola({ level: LOG_LEVELS.info, reporters: [stderrReporter] });

/** --trace output: written at once (not buffered), so it interleaves truthfully with the container's. */
export function traceLine(line: string): void {
  writeStderr(`minic: ${line}\n`);
}

/** write(2) straight to fd 2: unbuffered, so lines interleave truthfully with the container's output. */
function writeStderr(text: string): void {
  const bytes = new TextEncoder().encode(text);
  for (let off = 0; off < bytes.length; ) {
    const n = Number(libc.write(2, ptr(bytes, off), bytes.length - off));
    if (n <= 0) return; // stderr closed or broken: nowhere left to report to
    off += n;
  }
}
