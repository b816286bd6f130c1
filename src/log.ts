// minic's own messages. They all go to stderr: stdout belongs to the container.
// consola/core (not the full consola, whose terminal detection costs ~25 ms at startup) with one
// plain reporter: "minic: message", "minic: warning: message".
import { ptr } from "bun:ffi";
import { libc } from "./libc/ffi.ts";
import { CStr } from "./libc/cstr.ts";
import { createConsola, type ConsolaReporter, type LogObject } from "consola/core";

const PREFIX: Record<string, string> = { error: "", fatal: "", warn: "warning: ", debug: "debug: ", trace: "" };

let logFile: { fd: number; format: "text" | "json" } | null = null;

const stderrReporter: ConsolaReporter = {
  log(entry: LogObject) {
    const text = entry.args.map((a) => (a instanceof Error ? a.message : String(a))).join(" ");
    writeStderr(`minic: ${PREFIX[entry.type] ?? ""}${text}\n`);
    if (logFile) {
      const line = logFile.format === "json"
        ? JSON.stringify({ level: entry.type === "fatal" ? "error" : entry.type, msg: text, time: new Date().toISOString() })
        : `${new Date().toISOString()} ${entry.type}: ${text}`;
      writeAll(logFile.fd, `${line}\n`);
    }
  },
};

/** --log FILE (and --log-format): every message also goes to FILE, as JSON lines if asked (runc's format). */
export function logToFile(path: string, format: "text" | "json"): void {
  const fd = libc.open(new CStr(path).ptr, 0o1 | 0o100 | 0o2000 | 0o2000000 /* O_WRONLY|O_CREAT|O_APPEND|O_CLOEXEC */, 0o644);
  if (fd >= 0) logFile = { fd, format };
}

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
  writeAll(2, text);
}

function writeAll(fd: number, text: string): void {
  const bytes = new TextEncoder().encode(text);
  for (let off = 0; off < bytes.length; ) {
    const n = Number(libc.write(fd, ptr(bytes, off), bytes.length - off));
    if (n <= 0) return; // stderr closed or broken: nowhere left to report to
    off += n;
  }
}
