// Paths inside a rootfs, resolved as the container will see them.
import { lstatSync, readlinkSync } from "node:fs";

/**
 * Resolve `path` inside `root` the way the container will see it: symlinks are followed, but an
 * absolute link, or `..` past the top, stays inside the root instead of escaping to the host.
 * A rootfs that links /proc to /etc cannot trick minic into mounting over the host's /etc.
 */
export function resolveInRoot(root: string, path: string, depth = 0): string {
  const parts = path.split("/").filter((p) => p && p !== ".");
  const resolved: string[] = [];
  while (parts.length > 0) {
    const part = parts.shift()!;
    if (part === "..") {
      resolved.pop();
      continue;
    }
    const host = `${root}/${[...resolved, part].join("/")}`;
    let target: string | null = null;
    try {
      if (lstatSync(host).isSymbolicLink()) target = readlinkSync(host);
    } catch {
      // Missing: it will be created as a directory, right here.
    }
    if (target === null) {
      resolved.push(part);
      continue;
    }
    if (depth > 40) throw new Error(`too many levels of symbolic links resolving ${path} in ${root}`);
    const rest = parts.join("/");
    const base = target.startsWith("/") ? "" : resolved.join("/");
    return resolveInRoot(root, `${base}/${target}/${rest}`, depth + 1);
  }
  return `${root}/${resolved.join("/")}`.replace(/\/+$/, "") || "/";
}

