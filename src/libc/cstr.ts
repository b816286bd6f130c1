// C strings and NULL-terminated string tables, built in JS memory before the fork.
//
// A pointer taken with ptr() is only a number: it does not keep its buffer alive. Each object
// here owns its buffers and must stay referenced until exec (the step list holds them), or the
// garbage collector may free the memory the child is about to pass to the kernel.
import { ptr, type Pointer } from "bun:ffi";

const encoder = new TextEncoder();

/** A NUL-terminated copy of `s` and its address. */
export class CStr {
  readonly bytes: Uint8Array;
  readonly ptr: Pointer;
  constructor(readonly value: string) {
    if (value.includes("\0")) throw new TypeError(`string contains a NUL byte: ${JSON.stringify(value)}`);
    const encoded = encoder.encode(value);
    this.bytes = new Uint8Array(encoded.length + 1); // zero-filled, so the last byte is the NUL
    this.bytes.set(encoded);
    this.ptr = ptr(this.bytes);
  }
  get length(): number {
    return this.bytes.length - 1;
  }
}

/** `char *const argv[]`: an array of pointers to C strings, ending with NULL, as execve wants. */
export class CStrArray {
  readonly strings: CStr[];
  readonly table: BigUint64Array;
  readonly ptr: Pointer;
  constructor(readonly values: readonly string[]) {
    this.strings = values.map((v) => new CStr(v));
    this.table = new BigUint64Array(values.length + 1); // last slot stays 0n: the NULL terminator
    this.strings.forEach((s, i) => (this.table[i] = BigInt(s.ptr)));
    this.ptr = ptr(this.table);
  }
}

/** A NUL-terminated string, or the NULL pointer (0) for `null`. */
export function cstrOrNull(value: string | null): CStr | null {
  return value === null ? null : new CStr(value);
}

/** Environment as a KEY=VALUE list; entries without a value are dropped, like `env` does. */
export function envList(env: Record<string, string | undefined>): string[] {
  return Object.entries(env)
    .filter((e): e is [string, string] => e[1] !== undefined)
    .map(([k, v]) => `${k}=${v}`);
}
