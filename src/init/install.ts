// Making minic's init runnable as the container's PID 1.
//
// The init is Bun running src/init/main.ts. Without a rootfs the host's files are in view, so Bun
// is exec'd as it is. Inside a rootfs there is no Bun and usually no glibc, so, like docker's
// /sbin/docker-init, the pieces are bind-mounted read-only into the container's /dev (a tmpfs
// minic created, so the rootfs itself is not touched): Bun, the shared libraries this very process
// has loaded (read from /proc/self/maps, so the list is always Bun's real one), and src/. Bun is
// then started through the dynamic loader with --library-path, so the rootfs needs no /lib.
import { basename, readText, realpath, resolvePath } from "../libc/fs.ts";
import { MS_BIND, MS_REC } from "../libc/constants.ts";
import type { Step } from "../process/step.ts";
import type { ExecTarget } from "../process/steps.ts";
import { mkdirSteps, mountStep, remountReadOnlyStep, touchStep } from "../rootfs/steps.ts";

export const INIT_DIR = "/dev/.minic-init";
const SRC_DIR = resolvePath(import.meta.dir, "..");

/** The shared objects mapped into this process: Bun's libraries and its dynamic loader. */
export function loadedLibraries(maps = readText("/proc/self/maps")): string[] {
  const libs = new Set<string>();
  for (const line of maps.split("\n")) {
    const path = line.trim().split(/\s+/)[5];
    if (path && /\.so(\.\d+)*$/.test(path)) libs.add(path);
  }
  return [...libs];
}

/** The exec target that starts the init, which then runs `argv`. */
export function initTarget(argv: string[], containerEnv: string[], rootfs: string | undefined): ExecTarget {
  const script = argv; // Bun passes everything after the script path to it untouched
  // The init forks too: no JIT threads (see bin/minic). It takes the variable out again for the command.
  const env = [...containerEnv, "BUN_JSC_useConcurrentJIT=0", `MINIC_INIT_KEEP_JIT_VAR=${containerEnv.some((e) => e.startsWith("BUN_JSC_useConcurrentJIT=")) ? 1 : 0}`];
  if (!rootfs) return { candidates: [process.execPath], argv: ["bun", `${SRC_DIR}/init/main.ts`, ...script], env };
  const loader = loadedLibraries().find((l) => basename(l).startsWith("ld-linux"));
  if (!loader) throw new Error("--init: cannot find the dynamic loader among Bun's mapped libraries");
  return {
    candidates: [`${INIT_DIR}/lib/${basename(loader)}`],
    argv: ["minic-init", "--argv0", "minic-init", "--library-path", `${INIT_DIR}/lib`, `${INIT_DIR}/bun`, `${INIT_DIR}/src/init/main.ts`, ...script],
    env,
  };
}

/** Steps that bind Bun, its libraries and src/ read-only under /dev/.minic-init in the rootfs. */
export function initMountSteps(rootfs: string): Step[] {
  const dir = `${rootfs}${INIT_DIR}`;
  const steps: Step[] = [...mkdirSteps(rootfs, `${dir}/lib`), ...mkdirSteps(rootfs, `${dir}/src`)];
  const files: Array<[string, string]> = [
    [realpath(process.execPath), `${dir}/bun`],
    ...loadedLibraries().map((lib) => [lib, `${dir}/lib/${basename(lib)}`] as [string, string]),
  ];
  for (const [source, target] of files) {
    steps.push(touchStep(target), mountStep(source, target, null, MS_BIND, null, `bind ${source} for the init`), remountReadOnlyStep(target));
  }
  steps.push(mountStep(SRC_DIR, `${dir}/src`, null, MS_BIND | MS_REC, null, "bind minic's src/ for the init"), remountReadOnlyStep(`${dir}/src`));
  return steps;
}
