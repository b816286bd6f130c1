// Shared by the real-client tests (podman, containerd): run an outside tool to its end with a hang
// guard, describe a failed call readably, and clean up what those tools leave behind.
import { existsSync, readdirSync, readFileSync, rmdirSync, rmSync } from "node:fs";
import { MINIC } from "../helpers.ts";

export interface ToolResult {
  argv: string[];
  code: number;
  stdout: string;
  stderr: string;
  /** The hang guard fired: the tool was killed (SIGKILL) after `timeoutMs`. */
  timedOut: boolean;
}

export interface ToolOptions {
  /** Bytes fed to stdin (default: /dev/null), or another process's stdout. */
  stdin?: string | ReadableStream<Uint8Array>;
  env?: Record<string, string | undefined>;
  /** Kill the tool (SIGKILL) if it has not ended by then: a hang guard, never a timing assertion. */
  timeoutMs?: number;
}

export async function runTool(argv: string[], options: ToolOptions = {}): Promise<ToolResult> {
  const stdin = options.stdin === undefined ? "ignore" : typeof options.stdin === "string" ? new TextEncoder().encode(options.stdin) : options.stdin;
  const proc = Bun.spawn(argv, { stdin, stdout: "pipe", stderr: "pipe", env: options.env ?? process.env });
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    proc.kill("SIGKILL");
  }, options.timeoutMs ?? 90_000);
  try {
    const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
    return { argv, code, stdout, stderr, timedOut };
  } finally {
    clearTimeout(timer);
  }
}

/** A failed call, for an assertion message: the command line, exit status, output, and any extra context. */
export function describeCall(r: ToolResult, ...context: Array<[title: string, text: string]>): string {
  const parts = [
    `$ ${r.argv.map(quote).join(" ")}`,
    r.timedOut ? "(killed by the test's hang guard: it did not finish)" : `exit status ${r.code}`,
    section("stdout", r.stdout),
    section("stderr", r.stderr),
    ...context.map(([title, text]) => section(title, text)),
  ];
  return parts.filter(Boolean).join("\n");
}

function section(title: string, text: string): string {
  const body = text.trimEnd();
  return body ? `--- ${title} ---\n${body}` : `--- ${title}: (empty) ---`;
}

function quote(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

/** The last `lines` lines of a file, or a note that it is missing. */
export function tailFile(path: string, lines = 60): string {
  try {
    return readFileSync(path, "utf8").split("\n").slice(-lines - 1).join("\n");
  } catch {
    return `(no file ${path})`;
  }
}

/** Processes whose command line contains `marker` (e.g. a private temp dir that only our daemons name). */
export function processesMentioning(marker: string): number[] {
  const pids: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${name}/cmdline`, "utf8").includes(marker)) pids.push(Number(name));
    } catch {}
  }
  return pids;
}

/** SIGKILL each process by its pid (only ones this test started, found by a private marker). */
export function killPids(pids: number[]): void {
  for (const pid of pids) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {}
  }
}

/** Best effort: `minic delete --force ID` with the given state root (undefined: minic's default). */
export async function minicForceDelete(id: string, root?: string): Promise<void> {
  await runTool([MINIC, ...(root ? ["--root", root] : []), "delete", "--force", id], { timeoutMs: 20_000 });
}

/** Unmount (lazily, deepest first) everything mounted under `dir`, then remove it. */
export function removeTempDir(dir: string): void {
  if (!dir || dir === "/" || !existsSync(dir)) return;
  const mounts = readFileSync("/proc/self/mountinfo", "utf8").split("\n")
    .map((line) => line.split(" ")[4]?.replace(/\\040/g, " "))
    .filter((m): m is string => !!m && (m === dir || m.startsWith(`${dir}/`)))
    .sort((a, b) => b.length - a.length);
  for (const m of mounts) Bun.spawnSync(["umount", "-l", m]);
  rmSync(dir, { recursive: true, force: true });
}

/** Remove `name` and its empty sub-cgroups in every cgroup hierarchy, where empty (best effort). */
export function removeEmptyCgroups(name: string): void {
  const base = "/sys/fs/cgroup";
  if (!existsSync(base)) return;
  for (const hierarchy of readdirSync(base)) removeCgroupTree(`${base}/${hierarchy}/${name}`);
}

function removeCgroupTree(dir: string): void {
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return;
  }
  for (const e of entries) if (e.isDirectory()) removeCgroupTree(`${dir}/${e.name}`);
  try {
    rmdirSync(dir);
  } catch {} // still has processes: not ours to remove
}
