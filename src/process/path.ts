// Finding the command, as execvp(3) does, but in the agent so that --trace and --dry-run show the
// path that will really be executed.
import { lexists } from "../libc/fs.ts";

export const DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/**
 * The paths execve should try, best first. A name containing "/" is used as it is. A bare name is
 * joined to each PATH entry (an empty entry means the current directory, as POSIX says); the first
 * entry that exists under `root` (the container's root as the agent sees it) goes first, followed
 * by the later entries, which the child still tries if it fails. The files are looked up with
 * lstat, so an absolute symlink inside a rootfs is never followed out to the host.
 */
export function commandCandidates(command: string, path = DEFAULT_PATH, root = "/"): string[] {
  if (command.includes("/")) return [command];
  const all = path.split(":").map((dir) => `${dir === "" ? "." : dir.replace(/\/+$/, "")}/${command}`);
  const prefix = root.replace(/\/+$/, "");
  const found = all.findIndex((candidate) => lexists(candidate.startsWith("/") ? prefix + candidate : candidate));
  return found < 0 ? all : all.slice(found);
}
