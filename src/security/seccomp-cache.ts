// A cache for the two costly seccomp computations of every `minic run`: building docker's default
// profile for the container's capabilities (~3 ms) and compiling a profile to BPF (~3 ms).
// Each result is a small JSON file, keyed by a hash of its inputs and of minic's seccomp source
// code, so that a change to either simply misses. Writing it is best effort: a run never fails
// for the cache's sake, it only computes again.
import { libc } from "../libc/ffi.ts";
import { CStr } from "../libc/cstr.ts";
import { mkdirp, readText, readTextIfExists, writeText } from "../libc/fs.ts";

const SOURCES = ["seccomp.ts", "seccomp-bpf.ts", "seccomp-profile.ts", "seccomp-syscalls.ts"];
let codeHash: string | undefined;

/** JSON has no BigInt (profile argument values may be 64-bit) and no Uint8Array (the program). */
function replacer(_key: string, value: unknown) {
  if (typeof value === "bigint") return { $bigint: value.toString() };
  if (value instanceof Uint8Array) return { $bytes: Buffer.from(value).toString("base64") };
  return value;
}
function reviver(_key: string, value: any) {
  if (value && typeof value === "object" && typeof value.$bigint === "string") return BigInt(value.$bigint);
  if (value && typeof value === "object" && typeof value.$bytes === "string") return new Uint8Array(Buffer.from(value.$bytes, "base64"));
  return value;
}

/**
 * One cache per user, whatever the --root (podman's and containerd's differ): the results do not
 * depend on it. An unprivileged user without a runtime directory gets none (nothing left in /tmp).
 */
export function cacheDir(): string | null {
  if (process.env.MINIC_CACHE) return process.env.MINIC_CACHE;
  if (process.getuid!() === 0) return "/run/minic-cache";
  return process.env.XDG_RUNTIME_DIR ? `${process.env.XDG_RUNTIME_DIR}/minic-cache` : null;
}

/** `make()`'s result for `key`, from the cache if an earlier run computed it. */
export function cached<T>(kind: string, key: string, make: () => T): T {
  codeHash ??= Bun.hash(SOURCES.map((f) => readText(`${import.meta.dir}/${f}`)).join("\0")).toString(36);
  const dir = cacheDir();
  if (dir === null) return make();
  const file = `${dir}/${kind}-${Bun.hash(`${codeHash}\0${key}`).toString(36)}.json`;
  const hit = readTextIfExists(file);
  if (hit) {
    try {
      return JSON.parse(hit, reviver) as T;
    } catch {
      // a torn or foreign file: compute again, and replace it
    }
  }
  const value = make();
  try {
    mkdirp(dir, 0o700);
    const tmp = `${file}.${process.pid}`;
    writeText(tmp, JSON.stringify(value, replacer), 0o600);
    libc.rename(new CStr(tmp).ptr, new CStr(file).ptr); // atomic: a reader sees all of it or none
  } catch {
    // read-only or full: no cache this time
  }
  return value;
}

/** The key of a JSON-able value (the profile, for the compiled program). */
export function keyOf(value: unknown): string {
  return JSON.stringify(value, replacer);
}
