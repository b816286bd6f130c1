// fork() from inside Bun, made safe. Two facts measured on this runtime (see README, "How it works"):
//
// 1. Bun's JavaScriptCore marks its JIT code region MADV_DONTFORK (VmFlags `dc` in smaps), so a
//    forked child has no code to return into and dies of SIGSEGV. Once per process, the region is
//    marked MADV_DOFORK again.
// 2. A fork that lands while a concurrent GC cycle is running leaves the child (which has only
//    the forking thread) waiting forever for collector threads that do not exist in it. A quick
//    eden collection right before fork() makes sure no cycle is in flight.
import { edenGC } from "bun:jsc";
import { ptr } from "bun:ffi";
import { libc, errno, SysError } from "../libc/ffi.ts";
import { readText } from "../libc/fs.ts";
import { MADV_DOFORK, SIG_SETMASK } from "../libc/constants.ts";

let jitInheritable = false;
let jitWarned = false;

/**
 * 3. With JavaScriptCore compiling on background threads, a fork can copy a JIT lock held by one of
 *    them, and the child then waits on it forever (~1 fork in 150 here). bin/minic and `npm test`
 *    set BUN_JSC_useConcurrentJIT=0; a process that did not gets one warning on stderr.
 */
function warnIfConcurrentJit(): void {
  if (jitWarned || process.env.BUN_JSC_useConcurrentJIT === "0") return;
  jitWarned = true;
  process.stderr.write("minic: warning: forking with the concurrent JIT on can hang a child; start Bun with BUN_JSC_useConcurrentJIT=0\n");
}

/**
 * The anonymous mappings of a /proc/PID/maps text, as [start, end) pairs. The region JSC marks
 * MADV_DONTFORK is anonymous (its smaps VmFlags show `dc`); /proc/self/smaps would name it exactly,
 * but generating smaps walks every page table and costs ~1.7 ms at startup, /proc/self/maps
 * ~0.05 ms. MADV_DOFORK on a mapping that was never DONTFORK changes nothing, so every anonymous
 * mapping is advised (test/fork.test.ts checks that no `dc` region is left afterwards).
 */
export function anonymousRegions(maps: string): Array<[bigint, bigint]> {
  const regions: Array<[bigint, bigint]> = [];
  for (const line of maps.split("\n")) {
    const fields = line.trim().split(/\s+/);
    if (fields.length !== 5 || fields[4] !== "0") continue; // a path or [tag] follows file-backed and special maps
    const [start, end] = fields[0]!.split("-");
    regions.push([BigInt(`0x${start}`), BigInt(`0x${end}`)]);
  }
  return regions;
}

/** Undo MADV_DONTFORK on Bun's JIT region, once per process. */
export function makeJitInheritable(): void {
  if (jitInheritable) return;
  for (const [start, end] of anonymousRegions(readText("/proc/self/maps"))) {
    libc.madvise(start, end - start, MADV_DOFORK); // EINVAL on special mappings is harmless: they are not ours
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
  warnIfConcurrentJit();
  libc.sigprocmask(SIG_SETMASK, ptr(allSignals), ptr(savedMask));
  edenGC(); // nothing may allocate between this collection and the fork
  const pid = libc.fork();
  const forkErrno = errno();
  if (pid !== 0) libc.sigprocmask(SIG_SETMASK, ptr(savedMask), null);
  if (pid < 0) throw new SysError("fork", forkErrno);
  return pid; // the child keeps everything blocked until its reset step clears the mask
}
