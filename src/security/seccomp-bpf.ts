// seccomp without libseccomp, part 2: a profile (seccomp.ts) compiled to a classic BPF program in
// TypeScript, and the step that loads it in the child.
//
// The program, for the running architecture only:
//
//   ld  [4]                      seccomp_data.arch
//   jeq AUDIT_ARCH_X86_64, +1    a foreign architecture (i386 via int 0x80, arm32 compat) ...
//   ret KILL_PROCESS             ... kills the process: its system call numbers mean other things
//   ld  [0]                      seccomp_data.nr
//   jset 0x40000000, 0, +1       x86_64 only: the x32 ABI (numbers with bit 30 set) ...
//   ret ERRNO(EPERM)             ... always fails with EPERM (docker lets x32 through via libseccomp)
//   <decision tree>              a balanced tree of `jge` over the number line, cut into intervals
//                                of consecutive numbers with the same outcome: log2(intervals) tests
//   <ret ...>                    one shared return per outcome that needs no argument test
//   <one block per system call with argument rules>
//
// Semantics, where the OCI spec leaves them open:
//  - For one system call, rules with argument conditions are tried first, in profile order, and the
//    first whose conditions all hold decides; then the first unconditional rule; then the default
//    action. So "allow ioctl" plus "ERRNO for ioctl TIOCSTI" refuses TIOCSTI in either order.
//  - The conditions of one rule must all hold (AND). Arguments are compared as unsigned 64-bit
//    values, high half then low half, as libseccomp does on 64-bit architectures.
//  - Names the architecture does not have (chown32 on x86_64) or that minic does not know are
//    skipped, as libseccomp does; `skipped` lists them.
//  - When the default action refuses, system calls numbered above every call the profile names get
//    ENOSYS instead, as runc does, so that programs probing a call newer than the profile fall back.
import { ptr } from "bun:ffi";
import { libc } from "../libc/ffi.ts";
import { type Step, viaErrno } from "../process/step.ts";
import { NATIVE_ARCH, type SeccompArch, syscallName, syscallNumber } from "./seccomp-syscalls.ts";
import { AUDIT, FILTER_FLAGS, type LinuxSeccomp, type SeccompAction, type SeccompArg } from "./seccomp.ts";

// ---------------------------------------------------------------------------------------------
// The compiler

/** seccomp(2) return values (SECCOMP_RET_*), the high 16 bits being the action. */
export const RET = {
  KILL_PROCESS: 0x80000000,
  KILL_THREAD: 0x00000000,
  TRAP: 0x00030000,
  ERRNO: 0x00050000,
  TRACE: 0x7ff00000,
  LOG: 0x7ffc0000,
  ALLOW: 0x7fff0000,
} as const;

const EPERM = 1, ENOSYS = 38;
const X32_SYSCALL_BIT = 0x40000000;
/** BPF_MAXINSNS: the kernel refuses longer programs. */
export const MAX_INSTRUCTIONS = 4096;

// Classic BPF opcodes (linux/filter.h, linux/bpf_common.h)
const LD_W_ABS = 0x20, ALU_AND_K = 0x54, RET_K = 0x06;
const JA = 0x05, JEQ = 0x15, JGT = 0x25, JGE = 0x35, JSET = 0x45;
// Offsets in struct seccomp_data { int nr; __u32 arch; __u64 instruction_pointer; __u64 args[6]; }
const NR = 0, ARCH = 4;
const argLow = (i: number) => 16 + 8 * i; // little-endian: the low half comes first
const argHigh = (i: number) => 16 + 8 * i + 4;

/** The return value of an action: SECCOMP_RET_ERRNO | errno, and so on. */
export function actionValue(action: SeccompAction, errno?: number): number {
  switch (action) {
    case "SCMP_ACT_ALLOW": return RET.ALLOW;
    case "SCMP_ACT_ERRNO": return (RET.ERRNO | (errno ?? EPERM)) >>> 0;
    case "SCMP_ACT_KILL":
    case "SCMP_ACT_KILL_THREAD": return RET.KILL_THREAD;
    case "SCMP_ACT_KILL_PROCESS": return RET.KILL_PROCESS;
    case "SCMP_ACT_TRAP": return RET.TRAP;
    case "SCMP_ACT_TRACE": return (RET.TRACE | ((errno ?? EPERM) & 0xffff)) >>> 0;
    case "SCMP_ACT_LOG": return RET.LOG;
  }
}

export interface CompiledFilter {
  arch: SeccompArch;
  /** struct sock_filter[], 8 bytes an instruction, in host byte order. */
  program: Uint8Array;
  instructions: number;
  /** Rules that took effect: one per (profile entry, system call name) found on this architecture. */
  rules: number;
  /** Distinct system calls with a rule. */
  syscalls: number;
  /** Names skipped because this architecture has no such call (or minic does not know it). */
  skipped: string[];
  /** seccomp(2) flags the profile asked for. */
  flags: number;
}

/** A jump target: bound to the instruction emitted after `bind`. */
interface Label { at?: Instruction }
interface Instruction { code: number; k: number; jt?: Label; jf?: Label }

class Assembler {
  readonly code: Instruction[] = [];
  private pending: Label[] = [];

  label(): Label {
    return {};
  }
  bind(label: Label): void {
    this.pending.push(label);
  }
  emit(code: number, k: number, jt?: Label, jf?: Label): Instruction {
    const ins: Instruction = { code, k: k >>> 0, jt, jf };
    for (const label of this.pending) label.at = ins;
    this.pending = [];
    this.code.push(ins);
    return ins;
  }
  load(offset: number): void {
    this.emit(LD_W_ABS, offset);
  }
  ret(value: number): void {
    this.emit(RET_K, value);
  }
  /** Conditional jump; an absent target means the next instruction. */
  jump(code: number, k: number, jt?: Label, jf?: Label): void {
    this.emit(code, k, jt, jf);
  }

  /**
   * Lay out and encode. Conditional jumps reach at most 255 instructions forward: a farther
   * target gets a trampoline, an unconditional `ja` (32-bit offset) placed right after the jump.
   * Inserting it moves only what follows, so one backward pass settles every jump.
   */
  assemble(): Uint8Array {
    if (this.pending.length) throw new Error("seccomp compiler: a label is bound past the last instruction");
    const code = this.code;
    let position = new Map(code.map((ins, i) => [ins, i]));
    const offset = (from: number, label: Label | undefined): number => {
      if (!label) return 0;
      const to = position.get(label.at!);
      if (to === undefined || to <= from) throw new Error("seccomp compiler: jump to an unbound or earlier label");
      return to - from - 1;
    };
    for (let i = code.length - 1; i >= 0; i--) {
      const ins = code[i]!;
      if (ins.code === JA || (ins.code & 0x07) !== 0x05) continue;
      const far: Array<"jt" | "jf"> = (["jt", "jf"] as const).filter((b) => offset(i, ins[b]) > 255);
      if (!far.length) continue;
      const trampolines = far.map((branch) => {
        const hop: Instruction = { code: JA, k: 0, jt: ins[branch] };
        ins[branch] = { at: hop };
        return hop;
      });
      code.splice(i + 1, 0, ...trampolines);
      position = new Map(code.map((x, j) => [x, j]));
    }
    const bytes = new Uint8Array(code.length * 8);
    const view = new DataView(bytes.buffer);
    code.forEach((ins, i) => {
      let jt = 0, jf = 0, k = ins.k;
      if (ins.code === JA) k = offset(i, ins.jt);
      else if ((ins.code & 0x07) === 0x05) {
        jt = offset(i, ins.jt);
        jf = offset(i, ins.jf);
      }
      view.setUint16(i * 8, ins.code, true);
      view.setUint8(i * 8 + 2, jt);
      view.setUint8(i * 8 + 3, jf);
      view.setUint32(i * 8 + 4, k, true);
    });
    return bytes;
  }
}

interface Rule { args: SeccompArg[]; ret: number }
interface CallRules { conditional: Rule[]; unconditional?: number }

const u64Of = (v: number | bigint | undefined): bigint => BigInt(v ?? 0);
const high = (v: bigint) => Number((v >> 32n) & 0xffffffffn);
const low = (v: bigint) => Number(v & 0xffffffffn);

/**
 * Compile a profile (OCI form, see parseSeccompProfile) to a BPF program for `arch`. Throws if the
 * program would pass the kernel's limit of 4096 instructions.
 */
export function compileSeccomp(profile: LinuxSeccomp, options: { arch?: SeccompArch } = {}): CompiledFilter {
  const arch = options.arch ?? NATIVE_ARCH;
  const defaultRet = actionValue(profile.defaultAction, profile.defaultErrnoRet);
  const calls = new Map<number, CallRules>();
  const skipped = new Set<string>();
  let rules = 0;

  for (const entry of profile.syscalls ?? []) {
    const ret = actionValue(entry.action, entry.errnoRet);
    const args = entry.args ?? [];
    for (const name of entry.names) {
      const nr = syscallNumber(name, arch);
      if (nr === undefined) {
        skipped.add(name);
        continue;
      }
      rules++;
      let call = calls.get(nr);
      if (!call) calls.set(nr, (call = { conditional: [] }));
      if (args.length) call.conditional.push({ args, ret });
      else call.unconditional ??= ret;
    }
  }

  // What each listed number leads to: a shared return, or its own block of argument tests.
  type Target = { kind: "ret"; value: number } | { kind: "block"; nr: number };
  const targets = new Map<number, Target>();
  for (const [nr, call] of calls) {
    const fallback = call.unconditional ?? defaultRet;
    // A trailing conditional rule with the fallback's outcome changes nothing.
    while (call.conditional.length && call.conditional.at(-1)!.ret === fallback) call.conditional.pop();
    targets.set(nr, call.conditional.length ? { kind: "block", nr } : { kind: "ret", value: fallback });
  }

  // Intervals over [0, 2^32): runs of consecutive numbers with the same target, gaps default.
  const refuses = profile.defaultAction !== "SCMP_ACT_ALLOW" && profile.defaultAction !== "SCMP_ACT_LOG";
  const highest = calls.size ? Math.max(...calls.keys()) : -1;
  const tail: Target = { kind: "ret", value: refuses && calls.size ? actionValue("SCMP_ACT_ERRNO", ENOSYS) : defaultRet };
  const fallbackTarget: Target = { kind: "ret", value: defaultRet };
  const same = (a: Target, b: Target) =>
    a.kind === "ret" && b.kind === "ret" ? a.value === b.value : a.kind === "block" && b.kind === "block" && a.nr === b.nr;
  const intervals: Array<{ from: number; target: Target }> = [];
  const add = (from: number, target: Target) => {
    const last = intervals.at(-1);
    if (!last || !same(last.target, target)) intervals.push({ from, target });
  };
  for (let nr = 0; nr <= highest; nr++) add(nr, targets.get(nr) ?? fallbackTarget);
  add(highest + 1, tail);

  const asm = new Assembler();
  const audit = AUDIT[arch].audit;
  const pass = asm.label();
  asm.load(ARCH);
  asm.jump(JEQ, audit, pass);
  asm.ret(RET.KILL_PROCESS);
  asm.bind(pass);
  asm.load(NR);
  if (arch === "x86_64") {
    const native = asm.label();
    asm.jump(JSET, X32_SYSCALL_BIT, undefined, native);
    asm.ret(actionValue("SCMP_ACT_ERRNO", EPERM));
    asm.bind(native);
  }

  const returns = new Map<number, Label>();
  const blocks = new Map<number, Label>();
  const labelOf = (target: Target): Label => {
    const map = target.kind === "ret" ? returns : blocks;
    const key = target.kind === "ret" ? target.value : target.nr;
    let label = map.get(key);
    if (!label) map.set(key, (label = asm.label()));
    return label;
  };

  // The decision tree: `jge from(mid)` splits intervals [a, b] into [a, mid) and [mid, b].
  const tree = (a: number, b: number): Label => {
    if (a === b) return labelOf(intervals[a]!.target);
    const here = asm.label();
    asm.bind(here);
    const mid = (a + b + 1) >> 1;
    const node: Instruction = asm.emit(JGE, intervals[mid]!.from);
    node.jf = tree(a, mid - 1);
    node.jt = tree(mid, b);
    return here;
  };
  if (intervals.length === 1) asm.emit(JA, 0, labelOf(intervals[0]!.target));
  else tree(0, intervals.length - 1);

  for (const [value, label] of returns) {
    asm.bind(label);
    asm.ret(value);
  }
  for (const [nr, label] of blocks) {
    asm.bind(label);
    const call = calls.get(nr)!;
    for (const rule of call.conditional) {
      const next = asm.label();
      for (const arg of rule.args) condition(asm, arg, next);
      asm.ret(rule.ret);
      asm.bind(next);
    }
    asm.ret(call.unconditional ?? defaultRet);
  }

  const program = asm.assemble();
  const instructions = program.length / 8;
  if (instructions > MAX_INSTRUCTIONS) {
    throw new Error(`seccomp: the profile compiles to ${instructions} BPF instructions; the kernel accepts at most ${MAX_INSTRUCTIONS}`);
  }
  const flags = (profile.flags ?? []).reduce((f, name) => f | (FILTER_FLAGS[name] ?? 0), 0);
  return { arch, program, instructions, rules, syscalls: calls.size, skipped: [...skipped], flags };
}

/**
 * Emit the test of one argument condition: fall through when it holds, jump to `fail` when not.
 * 64-bit comparisons look at the high half first and at the low half only when the high halves
 * are equal.
 */
function condition(asm: Assembler, arg: SeccompArg, fail: Label): void {
  const v = u64Of(arg.value);
  const hi = high(v), lo = low(v);
  const ok = asm.label();
  switch (arg.op) {
    case "SCMP_CMP_EQ":
      asm.load(argHigh(arg.index));
      asm.jump(JEQ, hi, undefined, fail);
      asm.load(argLow(arg.index));
      asm.jump(JEQ, lo, undefined, fail);
      break;
    case "SCMP_CMP_NE":
      asm.load(argHigh(arg.index));
      asm.jump(JEQ, hi, undefined, ok);
      asm.load(argLow(arg.index));
      asm.jump(JEQ, lo, fail, undefined);
      break;
    case "SCMP_CMP_GT":
    case "SCMP_CMP_GE":
      asm.load(argHigh(arg.index));
      asm.jump(JGT, hi, ok, undefined);
      asm.jump(JEQ, hi, undefined, fail);
      asm.load(argLow(arg.index));
      asm.jump(arg.op === "SCMP_CMP_GT" ? JGT : JGE, lo, undefined, fail);
      break;
    case "SCMP_CMP_LT":
    case "SCMP_CMP_LE":
      asm.load(argHigh(arg.index));
      asm.jump(JGE, hi, undefined, ok);
      asm.jump(JEQ, hi, undefined, fail);
      asm.load(argLow(arg.index));
      asm.jump(arg.op === "SCMP_CMP_LT" ? JGE : JGT, lo, fail, undefined);
      break;
    case "SCMP_CMP_MASKED_EQ": {
      const datum = u64Of(arg.valueTwo);
      for (const [offset, mask, want] of [
        [argHigh(arg.index), hi, high(datum)],
        [argLow(arg.index), lo, low(datum)],
      ] as const) {
        if (mask === 0) {
          if (want !== 0) asm.emit(JA, 0, fail); // (x & 0) can never equal a non-zero value
          continue;
        }
        asm.load(offset);
        if (mask !== 0xffffffff) asm.emit(ALU_AND_K, mask);
        asm.jump(JEQ, want, undefined, fail);
      }
      break;
    }
  }
  asm.bind(ok);
}

/** Rule and instruction counts, for `minic run --dry-run`. */
export function countRules(profile: LinuxSeccomp, options: { arch?: SeccompArch } = {}): {
  rules: number; instructions: number; skipped: number; summary: string;
} {
  const compiled = compileSeccomp(profile, options);
  return {
    rules: compiled.rules,
    instructions: compiled.instructions,
    skipped: compiled.skipped.length,
    summary: `seccomp: ${compiled.rules} rules, ${compiled.instructions} instructions`,
  };
}

/** One line per instruction, in the style of `seccomp-tools dump`, for tests and debugging. */
export function disassemble(program: Uint8Array, arch: SeccompArch = NATIVE_ARCH): string[] {
  const view = new DataView(program.buffer, program.byteOffset, program.byteLength);
  const lines: string[] = [];
  const hex = (n: number) => `0x${n.toString(16)}`;
  const field = (k: number) =>
    k === NR ? "nr" : k === ARCH ? "arch" : k >= 16 ? `args[${(k - 16) >> 3}]${(k - 16) & 4 ? ".hi" : ".lo"}` : `[${k}]`;
  const ret = (k: number) => {
    const action = (k & 0xffff0000) >>> 0, data = k & 0xffff;
    const name = Object.entries(RET).find(([, v]) => v === action)?.[0] ?? hex(action);
    return action === RET.ERRNO || action === RET.TRACE ? `${name}(${data})` : name;
  };
  for (let i = 0; i < program.length / 8; i++) {
    const code = view.getUint16(i * 8, true), jt = view.getUint8(i * 8 + 2), jf = view.getUint8(i * 8 + 3);
    const k = view.getUint32(i * 8 + 4, true);
    const op = { [JEQ]: "jeq", [JGT]: "jgt", [JGE]: "jge", [JSET]: "jset" }[code];
    let text: string;
    if (code === LD_W_ABS) text = `ld ${field(k)}`;
    else if (code === ALU_AND_K) text = `and ${hex(k)}`;
    else if (code === RET_K) text = `ret ${ret(k)}`;
    else if (code === JA) text = `ja ${i + 1 + k}`;
    else if (op) {
      const name = op === "jge" && k < 0x40000000 ? syscallName(k, arch) : undefined;
      text = `${op} ${hex(k)}${name ? ` (${name})` : ""}, ${i + 1 + jt}, ${i + 1 + jf}`;
    } else text = `.code ${hex(code)} ${jt} ${jf} ${hex(k)}`;
    lines.push(`${String(i).padStart(4)}: ${text}`);
  }
  return lines;
}

// ---------------------------------------------------------------------------------------------
// The step

const SECCOMP_SET_MODE_FILTER = 1;

/**
 * Load `program` with seccomp(SECCOMP_SET_MODE_FILTER, flags, &prog). The struct sock_fprog
 * { unsigned short len; struct sock_filter *filter; } (16 bytes on 64-bit: len, 6 bytes of
 * padding, the pointer) is built here, before the fork; run() only makes the system call.
 *
 * Ordering, for whoever assembles the steps: the kernel accepts a filter only from a task with
 * no_new_privs set or with CAP_SYS_ADMIN in its user namespace, so this step comes after
 * prctl(PR_SET_NO_NEW_PRIVS) or, when no_new_privs is off, before the identity steps drop
 * CAP_SYS_ADMIN (as runc does; the filter then also sees setgroups/setresgid/setresuid). It should
 * otherwise be the last step before execve: every system call after it is filtered, minic's own
 * included, and a profile that refuses execve makes the exec step fail.
 *
 * Flags default to 0: the child is single-threaded after fork, so TSYNC has nothing to
 * synchronise; SPEC_ALLOW would drop the speculation mitigation the kernel may apply to filtered
 * tasks; LOG only matters for SCMP_ACT_LOG. A profile's `flags` come in through CompiledFilter.flags.
 */
export function seccompStep(program: Uint8Array, flags = 0, arch: SeccompArch = NATIVE_ARCH): Step {
  if (program.length === 0 || program.length % 8 !== 0) throw new Error("seccomp: a BPF program is a non-empty array of 8-byte instructions");
  const count = program.length / 8;
  if (count > MAX_INSTRUCTIONS) throw new Error(`seccomp: ${count} instructions; the kernel accepts at most ${MAX_INSTRUCTIONS}`);
  const instructions = program.slice(); // our own copy: the caller's array may be reused
  const fprog = new Uint8Array(16);
  const view = new DataView(fprog.buffer);
  view.setUint16(0, count, true);
  view.setBigUint64(8, BigInt(ptr(instructions)), true);
  const fprogPtr = ptr(fprog);
  const nr = AUDIT[arch].seccompNr;
  const flagText = flags === 0 ? "0" : Object.entries(FILTER_FLAGS).filter(([, v]) => flags & v).map(([n]) => n).join("|");
  return {
    kind: "call",
    call: "seccomp",
    args: ["SECCOMP_SET_MODE_FILTER", flagText, `{len=${count}, filter=[${count} instructions]}`],
    label: "load the seccomp filter",
    keep: [instructions, fprog],
    run: () => viaErrno(libc.syscall(nr, SECCOMP_SET_MODE_FILTER, flags, fprogPtr, 0, 0)),
  };
}
