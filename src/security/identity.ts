// Who the command runs as: supplementary groups, then gid, then uid, in that order, since each
// call needs the privilege that the next one gives up (after setresuid, setgroups is refused).
import { ptr } from "bun:ffi";
import { libc } from "../libc/ffi.ts";
import { type Step, viaErrno } from "../process/step.ts";

export interface User {
  uid: number;
  gid: number;
  additionalGids?: number[];
}

export function identitySteps(user: User, { setgroupsAllowed }: { setgroupsAllowed: boolean }): Step[] {
  const steps: Step[] = [];
  const groups = new Uint32Array(user.additionalGids ?? []);
  const groupsPtr = groups.length ? ptr(groups) : null;
  if (setgroupsAllowed) {
    steps.push({
      kind: "call", call: "setgroups", args: [String(groups.length), `[${[...groups].join(", ")}]`],
      label: "set the supplementary groups", keep: [groups],
      run: () => viaErrno(libc.setgroups(groups.length, groupsPtr)),
    });
  } else if (groups.length > 0) {
    throw new Error("supplementary groups need setgroups, which this user namespace denies (run as root, or use newgidmap)");
  }
  const { uid, gid } = user;
  steps.push({
    kind: "call", call: "setresgid", args: [gid, gid, gid].map(String), label: `switch to group ${gid}`,
    run: () => viaErrno(libc.setresgid(gid, gid, gid)),
  });
  steps.push({
    kind: "call", call: "setresuid", args: [uid, uid, uid].map(String), label: `switch to user ${uid}`,
    run: () => viaErrno(libc.setresuid(uid, uid, uid)),
  });
  return steps;
}
