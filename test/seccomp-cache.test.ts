// The seccomp cache: a hit gives exactly what computing again gives, and a damaged file is computed again.
import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const root = mkdtempSync(join(tmpdir(), "minic-seccomp-cache-"));
const { cached, keyOf } = await import("../src/security/seccomp-cache.ts");
const { defaultProfile } = await import("../src/security/seccomp.ts");
const { compileSeccomp } = await import("../src/security/seccomp-bpf.ts");
const { DEFAULT_CAPABILITIES } = await import("../src/security/capabilities.ts");

afterAll(() => rmSync(root, { recursive: true, force: true }));

/** Run `body` with the cache in this file's own directory (MINIC_CACHE), restored after. */
function inOwnRoot(body: () => void) {
  const saved = process.env.MINIC_CACHE;
  process.env.MINIC_CACHE = root;
  try {
    body();
  } finally {
    if (saved === undefined) delete process.env.MINIC_CACHE;
    else process.env.MINIC_CACHE = saved;
  }
}

test("a cached profile and program equal freshly computed ones (BigInt arguments and bytes included)", () => inOwnRoot(() => {
  let made = 0;
  const make = () => (made++, defaultProfile(DEFAULT_CAPABILITIES));
  const first = cached("profile", "k", make);
  const second = cached("profile", "k", make);
  expect(made).toBe(1);
  expect(second).toEqual(first);
  const withBigInt = { ...first, syscalls: [...first.syscalls!, { names: ["ioctl"], action: "SCMP_ACT_ERRNO", args: [{ index: 1, value: 2n ** 63n + 5n, op: "SCMP_CMP_EQ" }] }] } as typeof first;
  expect(cached("profile", "big", () => withBigInt)).toEqual(withBigInt);
  expect(cached("profile", "big", () => ({}) as typeof first)).toEqual(withBigInt);
  const fresh = compileSeccomp(first);
  const fromCache = cached("bpf", keyOf(first), () => compileSeccomp(first));
  expect(cached("bpf", keyOf(first), () => compileSeccomp(first)).program).toEqual(fresh.program);
  expect(fromCache.rules).toBe(fresh.rules);
}));

test("a damaged cache file is computed again and replaced", () => inOwnRoot(() => {
  cached("profile", "damaged", () => ({ defaultAction: "SCMP_ACT_ALLOW" }));
  for (const f of readdirSync(root)) writeFileSync(`${root}/${f}`, "{not json");
  expect(cached("profile", "damaged", () => ({ defaultAction: "SCMP_ACT_LOG" }))).toEqual({ defaultAction: "SCMP_ACT_LOG" });
  expect(cached("profile", "damaged", () => ({ defaultAction: "SCMP_ACT_KILL" }))).toEqual({ defaultAction: "SCMP_ACT_LOG" });
}));
