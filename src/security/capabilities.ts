// Capabilities: root in a container keeps only docker's default fourteen.
//
// Linux splits root's power into ~41 capabilities, held in five sets per process. minic, in the
// child and before exec:
//   1. drops every capability not wanted from the bounding set (prctl PR_CAPBSET_DROP), so that
//      not even a setuid binary can get it back;
//   2. keeps its permitted set across the switch to a non-root user (PR_SET_KEEPCAPS), so that...
//   3. capset() can then set effective, permitted and inheritable exactly (for a non-root user
//      effective and permitted end up empty, as in docker);
//   4. raises the ambient set, if the spec asks for one.
import { ptr } from "bun:ffi";
import { libc } from "../libc/ffi.ts";
import { readText } from "../libc/fs.ts";
import { type Step, viaErrno } from "../process/step.ts";
import { CAPABILITIES } from "../spec/validate.ts";

export { CAPABILITIES };

/** docker's default set (moby oci/caps/defaults.go). */
export const DEFAULT_CAPABILITIES = [
  "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID",
  "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
];

export type CapabilitySets = Record<"bounding" | "effective" | "inheritable" | "permitted" | "ambient", string[]>;

/** "net_admin", "NET_ADMIN" or "CAP_NET_ADMIN" -> "CAP_NET_ADMIN"; throws on an unknown name. */
export function capabilityName(name: string): string {
  const full = name.toUpperCase().startsWith("CAP_") ? name.toUpperCase() : `CAP_${name.toUpperCase()}`;
  if (!(CAPABILITIES as readonly string[]).includes(full)) throw new Error(`unknown capability "${name}" (e.g. NET_ADMIN, SYS_PTRACE, ALL)`);
  return full;
}

/** The capabilities this process's bounding set still holds: what a --privileged container can get. */
export function ownBoundingSet(): string[] {
  const hex = /CapBnd:\s*([0-9a-f]+)/.exec(readText("/proc/self/status"))?.[1] ?? "0";
  const mask = BigInt(`0x${hex}`);
  return CAPABILITIES.filter((_, i) => (mask >> BigInt(i)) & 1n);
}

/** docker's --cap-add / --cap-drop / --privileged, applied to the default set. */
export function capabilitiesFromFlags(add: string[], drop: string[], privileged: boolean): string[] {
  if (privileged) return ownBoundingSet();
  const dropAll = drop.some((d) => d.toUpperCase() === "ALL");
  let caps = new Set(dropAll ? [] : DEFAULT_CAPABILITIES);
  for (const d of drop) if (d.toUpperCase() !== "ALL") caps.delete(capabilityName(d));
  for (const a of add) {
    if (a.toUpperCase() === "ALL") caps = new Set(ownBoundingSet());
    else caps.add(capabilityName(a));
  }
  return [...caps];
}

export function mask(names: readonly string[] = []): bigint {
  return names.reduce((m, n) => m | (1n << BigInt((CAPABILITIES as readonly string[]).indexOf(n))), 0n);
}

const PR_CAPBSET_DROP = 24, PR_SET_KEEPCAPS = 8, PR_CAP_AMBIENT = 47, PR_CAP_AMBIENT_RAISE = 2;
const LINUX_CAPABILITY_VERSION_3 = 0x20080522;

/** Drop from the bounding set every capability not in `keep`. Needs CAP_SETPCAP: run it as root. */
export function dropBoundingStep(keep: readonly string[]): Step {
  const drop = CAPABILITIES.map((_, i) => i).filter((i) => !keep.includes(CAPABILITIES[i]!));
  const lastCap = Number(readText("/proc/sys/kernel/cap_last_cap").trim());
  const dropNow = new Int32Array(drop.filter((i) => i <= lastCap));
  return {
    kind: "call", call: "prctl", args: ["PR_CAPBSET_DROP", `${dropNow.length} capabilities, keeping ${keep.length}`],
    label: "drop capabilities from the bounding set", keep: [dropNow],
    run: () => {
      for (let i = 0; i < dropNow.length; i++) {
        const r = viaErrno(libc.prctl(PR_CAPBSET_DROP, dropNow[i]!, 0, 0, 0));
        if (r < 0) return r;
      }
      return 0;
    },
  };
}

export function keepCapsStep(on: boolean): Step {
  return {
    kind: "call", call: "prctl", args: ["PR_SET_KEEPCAPS", on ? "1" : "0"],
    label: on ? "keep capabilities across the user switch" : "stop keeping capabilities across user switches",
    run: () => viaErrno(libc.prctl(PR_SET_KEEPCAPS, on ? 1 : 0, 0, 0, 0)),
  };
}

/** capset(2) with the three sets; the data is two 32-bit words per set (version 3). */
export function capsetStep(sets: Pick<CapabilitySets, "effective" | "permitted" | "inheritable">): Step {
  const header = new Uint32Array([LINUX_CAPABILITY_VERSION_3, 0]);
  const data = new Uint32Array(6);
  const [e, p, i] = [mask(sets.effective), mask(sets.permitted), mask(sets.inheritable)];
  for (const [word, m] of [[0, e], [1, p], [2, i]] as const) {
    data[word] = Number(m & 0xffffffffn);
    data[word + 3] = Number(m >> 32n);
  }
  const [h, d] = [ptr(header), ptr(data)];
  const hex = (m: bigint) => `0x${m.toString(16).padStart(16, "0")}`;
  return {
    kind: "call", call: "capset", args: [`effective=${hex(e)}`, `permitted=${hex(p)}`, `inheritable=${hex(i)}`],
    label: "set the capability sets", keep: [header, data],
    run: () => viaErrno(libc.capset(h, d)),
  };
}

export function ambientStep(names: readonly string[]): Step {
  const caps = new Int32Array(names.map((n) => (CAPABILITIES as readonly string[]).indexOf(n)));
  return {
    kind: "call", call: "prctl", args: ["PR_CAP_AMBIENT_RAISE", `[${names.join(", ")}]`], label: "raise the ambient capabilities",
    keep: [caps],
    // Best effort, as runc does: the kernel refuses an ambient capability that is not also
    // inheritable and permitted (`runc spec` lists ambient ones with no inheritable set).
    run: () => {
      for (let i = 0; i < caps.length; i++) libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, caps[i]!, 0, 0);
      return 0;
    },
  };
}
