// Users and id ranges: `-u NAME` looked up in the container's /etc/passwd, and the uid/gid ranges
// a user namespace maps.
import { lexists, readTextIfExists } from "../libc/fs.ts";
import { UsageError } from "../cli/argv.ts";
import { subordinateRange } from "../namespaces.ts";
import type { IdMapping } from "../spec/types.ts";

function lookup(file: string, name: string): string[] | null {
  for (const line of (readTextIfExists(file) ?? "").split("\n")) {
    const fields = line.split(":");
    if (fields[0] === name) return fields;
  }
  return null;
}

/** `-u UID[:GID]` or `-u NAME[:GROUP]`; names come from the rootfs's /etc/passwd and /etc/group. */
export function lookupUser(spec: string, root: string): { uid: number; gid: number } {
  const [userPart, groupPart] = spec.split(":");
  let uid: number;
  let gid: number | undefined;
  if (/^\d+$/.test(userPart ?? "")) uid = Number(userPart);
  else {
    const entry = lookup(`${root}/etc/passwd`, userPart ?? "");
    if (!entry) throw new UsageError(`--user: no user "${userPart}" in ${root}/etc/passwd (use a number)`);
    uid = Number(entry[2]);
    gid = Number(entry[3]);
  }
  if (groupPart !== undefined) {
    if (/^\d+$/.test(groupPart)) gid = Number(groupPart);
    else {
      const entry = lookup(`${root}/etc/group`, groupPart);
      if (!entry) throw new UsageError(`--user: no group "${groupPart}" in ${root}/etc/group (use a number)`);
      gid = Number(entry[2]);
    }
  }
  return { uid, gid: gid ?? uid };
}

/**
 * The mappings of a new user namespace. Root gets root's /etc/subuid range (else 100000:65536), all
 * of it unprivileged on the host. An unprivileged user is root inside, mapped to themselves, plus
 * their /etc/subuid range when newuidmap can map it (`helpers`).
 */
export function defaultIdMappings(): { uidMappings: IdMapping[]; gidMappings: IdMapping[]; helpers: boolean } {
  const uid = process.getuid!();
  const gid = process.getgid!();
  const name = userName(uid);
  const subuid = subordinateRange("/etc/subuid", name, uid);
  const subgid = subordinateRange("/etc/subgid", name, uid);
  if (uid === 0) {
    const u = subuid ?? { start: 100000, count: 65536 };
    const g = subgid ?? { start: 100000, count: 65536 };
    return {
      uidMappings: [{ containerID: 0, hostID: u.start, size: u.count }],
      gidMappings: [{ containerID: 0, hostID: g.start, size: g.count }],
      helpers: false,
    };
  }
  const helpers = !!subuid && !!subgid && lexists("/usr/bin/newuidmap") && lexists("/usr/bin/newgidmap");
  return {
    uidMappings: [{ containerID: 0, hostID: uid, size: 1 }, ...(helpers ? [{ containerID: 1, hostID: subuid!.start, size: subuid!.count }] : [])],
    gidMappings: [{ containerID: 0, hostID: gid, size: 1 }, ...(helpers ? [{ containerID: 1, hostID: subgid!.start, size: subgid!.count }] : [])],
    helpers,
  };
}

function userName(uid: number): string {
  const line = (readTextIfExists("/etc/passwd") ?? "").split("\n").find((l) => l.split(":")[2] === String(uid));
  return line?.split(":")[0] ?? String(uid);
}
