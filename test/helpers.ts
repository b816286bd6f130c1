// Shared by the test files: run the real CLI as a subprocess, and look at processes through /proc.
import { existsSync, readdirSync, readFileSync, rmdirSync } from "node:fs";
import { resolve } from "node:path";

/** The CLI as users start it: a sh script that execs bun, so the spawned pid is minic's agent. */
export const MINIC = resolve(import.meta.dir, "../bin/minic");

export interface MinicResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface MinicOptions {
  /** Text fed to minic's stdin; without it stdin is /dev/null. */
  stdin?: string;
  /** minic's whole environment (default: this process's). */
  env?: Record<string, string | undefined>;
  /** Kill minic (SIGKILL) if it has not ended by then; the test then fails on the exit code. */
  timeoutMs?: number;
}

/** Run `minic ...args` to its end and collect its exit code and output. */
export async function minic(args: string[], options: MinicOptions = {}): Promise<MinicResult> {
  const proc = Bun.spawn([MINIC, ...args], {
    stdin: options.stdin === undefined ? "ignore" : new TextEncoder().encode(options.stdin),
    stdout: "pipe",
    stderr: "pipe",
    env: options.env ?? process.env,
  });
  const timer = setTimeout(() => proc.kill("SIGKILL"), options.timeoutMs ?? 20_000);
  try {
    const [stdout, stderr, code] = await Promise.all([
      new Response(proc.stdout).text(),
      new Response(proc.stderr).text(),
      proc.exited,
    ]);
    return { code, stdout, stderr };
  } finally {
    clearTimeout(timer);
  }
}

/** Poll `check` every 20 ms until it returns a truthy value, or throw after `timeoutMs` (a hang guard, not a timing test). */
export async function waitUntil<T>(
  check: () => T | undefined | null | false,
  what: string | (() => string),
  timeoutMs = 10_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${typeof what === "string" ? what : what()}`);
    await Bun.sleep(20);
  }
}

export interface ProcInfo {
  pid: number;
  ppid: number;
  state: string;
  args: string[];
}

/** A process as /proc shows it, or null if there is no such process (reaped, or never existed). */
export function procInfo(pid: number): ProcInfo | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // "pid (comm) state ppid ...": comm may contain spaces and parentheses, so cut at the last ")".
    const [state, ppid] = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const args = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").filter((a, i, all) => a !== "" || i < all.length - 1);
    return { pid, ppid: Number(ppid), state: state!, args };
  } catch {
    return null;
  }
}

/** The children of `ppid`, zombies included. */
export function childrenOf(ppid: number): ProcInfo[] {
  const out: ProcInfo[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    const info = procInfo(Number(name));
    if (info && info.ppid === ppid) out.push(info);
  }
  return out;
}

/** True when `pid` no longer runs: gone from /proc, or a zombie nobody has reaped yet. */
export function isDead(pid: number): boolean {
  const info = procInfo(pid);
  return info === null || info.state === "Z";
}

/** Live processes whose command line or environment holds `mark`: a test's containers and agents. */
export function processesMarked(mark: string): ProcInfo[] {
  const found: ProcInfo[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      const cmdline = readFileSync(`/proc/${name}/cmdline`, "latin1");
      const environ = readFileSync(`/proc/${name}/environ`, "latin1");
      if (!cmdline.includes(mark) && !environ.includes(mark)) continue;
      const info = procInfo(Number(name));
      if (info && info.state !== "Z") found.push(info);
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

/** Test cleanup: SIGKILL whatever a cgroup directory still holds, then rmdir it (retrying while busy). */
export function killAndRemoveCgroup(dir: string): void {
  for (const pid of (existsSync(`${dir}/cgroup.procs`) ? readFileSync(`${dir}/cgroup.procs`, "utf8") : "").split("\n").filter(Boolean)) {
    try {
      process.kill(Number(pid), "SIGKILL");
    } catch {}
  }
  for (let i = 0; i < 100 && existsSync(dir); i++) {
    try {
      rmdirSync(dir);
    } catch {
      Bun.sleepSync(10);
    }
  }
}
