// Replacing this process with a fresh copy of itself, with extra environment variables.
import { libc, SysError, errno } from "../libc/ffi.ts";
import { CStr, CStrArray, envList } from "../libc/cstr.ts";

/** execve(bun, the same argv, env + extra). Returns only by throwing. */
export function execSelf(extra: Record<string, string>): never {
  const argv = new CStrArray([process.argv0, ...process.execArgv, ...process.argv.slice(1)]);
  const env = new CStrArray(envList({ ...process.env, ...extra }));
  libc.execve(new CStr(process.execPath).ptr, argv.ptr, env.ptr);
  throw new SysError("execve", errno(), process.execPath);
}
