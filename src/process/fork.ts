// fork() from inside Bun, made safe. Two facts measured on this runtime (see README, "How it works"):
//
// 1. Bun's JavaScriptCore marks its JIT code region MADV_DONTFORK, so a forked child has no code
//    to return into and dies of SIGSEGV. Once per process, every mapping whose VmFlags in
//    /proc/self/smaps include `dc` ("don't copy") is marked MADV_DOFORK again.
// 2. A fork that lands while a concurrent GC cycle is running leaves the child (which has only
//    the forking thread) waiting forever for collector threads that do not exist in it. A quick
//    eden collection right before fork() makes sure no cycle is in flight.
import { readFileSync } from "node:fs";
import { edenGC } from "bun:jsc";
import { ptr } from "bun:ffi";
import { libc, check, errno, SysError } from "../libc/ffi.ts";
import { MADV_DOFORK, SIG_SETMASK } from "../libc/constants.ts";

let jitInheritable = false;

/** Parse /proc/self/smaps and return the [start, end) of each mapping flagged `dc`. */
export function dontForkRegions(smaps: string): Array<[bigint, bigint]> {
  const regions: Array<[bigint, bigint]> = [];
  let current: [bigint, bigint] | null = null;
  for (const line of smaps.split("\n")) {
    const range = /^([0-9a-f]+)-([0-9a-f]+) /.exec(line);
    if (range) {
      current = [BigInt(`0x${range[1]}`), BigInt(`0x${range[2]}`)];
    } else if (current && line.startsWith("VmFlags:") && line.slice(8).trim().split(" ").includes("dc")) {
      regions.push(current);
    }
  }
  return regions;
}

/** Undo MADV_DONTFORK on Bun's JIT regions, once per process. */
export function makeJitInheritable(): void {
  if (jitInheritable) return;
  for (const [start, end] of dontForkRegions(readFileSync("/proc/self/smaps", "utf8"))) {
    check("madvise", libc.madvise(start, end - start, MADV_DOFORK), `(0x${start.toString(16)}, MADV_DOFORK)`);
  }
  jitInheritable = true;
}

const allSignals = new BigUint64Array(16).fill(0xffffffffffffffffn); // a full sigset_t (1024 bits)
const savedMask = new BigUint64Array(16);

/**
 * fork(), with the runtime made ready for it. Signals are blocked across the call so that no
 * handler of the agent's runs in the child before the child resets them; the agent's mask is
 * restored right after. Returns the child's pid in the agent and 0 in the child, like fork().
 */
export function safeFork(): number {
  makeJitInheritable();
  libc.sigprocmask(SIG_SETMASK, ptr(allSignals), ptr(savedMask));
  edenGC(); // nothing may allocate between this collection and the fork
  const pid = libc.fork();
  const forkErrno = errno();
  if (pid !== 0) libc.sigprocmask(SIG_SETMASK, ptr(savedMask), null);
  if (pid < 0) throw new SysError("fork", forkErrno);
  return pid; // the child keeps everything blocked until its reset step clears the mask
}
