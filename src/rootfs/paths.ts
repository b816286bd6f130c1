// Paths inside a rootfs, resolved as the container will see them.
import { readlink } from "../libc/fs.ts";

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
    const target = readlink(host); // null: not a link, or missing (it will be created right here)
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

