// seccomp: the BPF compiler, profile parsing, the default profile, and filters really loaded.
//
// Programs are checked three ways: their text (disassemble), an interpreter of classic BPF here
// that runs them on made-up seccomp_data, and the kernel itself, in a child `bun` process that
// sets no_new_privs, loads the filter through seccompStep().run() and makes raw system calls
// through bun:ffi. Each refusal is compared with the same call made without a filter, so that no
// test passes because the call would have failed anyway.
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ptr } from "bun:ffi";
import {
  DEFAULT_DOCKER_PROFILE, defaultProfile, loadSeccompProfile, parseSeccompJson, parseSeccompProfile,
  seccompFromSecurityOpt, syscallNumber, type LinuxSeccomp, type SeccompArch, type SeccompOperator,
} from "../src/security/seccomp.ts";
import { RET, compileSeccomp, countRules, disassemble, seccompStep } from "../src/security/seccomp-bpf.ts";
import { describeStep } from "../src/process/step.ts";
import { errnoName } from "../src/libc/errno.ts";

const dir = mkdtempSync(join(tmpdir(), "minic-seccomp-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const AUDIT_X86_64 = 0xc000003e, AUDIT_AARCH64 = 0xc00000b7, AUDIT_I386 = 0x40000003;
const ALLOW = RET.ALLOW, EPERM = RET.ERRNO | 1, ENOSYS = RET.ERRNO | 38;
const errno = (n: number) => (RET.ERRNO | n) >>> 0;

// ---------------------------------------------------------------------------------------------
// A classic BPF interpreter, enough for seccomp programs. It also checks what the kernel's
// verifier checks: aligned loads inside seccomp_data, forward jumps that stay in the program.

interface Data { nr: number; arch?: number; args?: Array<number | bigint> }

function run(program: Uint8Array, data: Data): number {
  const mem = new DataView(new ArrayBuffer(64));
  mem.setInt32(0, data.nr, true);
  mem.setUint32(4, data.arch ?? AUDIT_X86_64, true);
  (data.args ?? []).forEach((a, i) => mem.setBigUint64(16 + 8 * i, BigInt(a), true));
  const code = new DataView(program.buffer, program.byteOffset, program.byteLength);
  const count = program.length / 8;
  let A = 0, pc = 0;
  for (;;) {
    if (pc >= count) throw new Error(`ran off the end of the program at ${pc}`);
    const op = code.getUint16(pc * 8, true), jt = code.getUint8(pc * 8 + 2), jf = code.getUint8(pc * 8 + 3);
    const k = code.getUint32(pc * 8 + 4, true);
    pc++;
    switch (op) {
      case 0x20:
        if (k % 4 || k > 60) throw new Error(`bad load offset ${k}`);
        A = mem.getUint32(k, true);
        break;
      case 0x54: A = (A & k) >>> 0; break;
      case 0x06: return k;
      case 0x05: pc += k; break;
      case 0x15: pc += A === k ? jt : jf; break;
      case 0x25: pc += A > k ? jt : jf; break;
      case 0x35: pc += A >= k ? jt : jf; break;
      case 0x45: pc += (A & k) !== 0 ? jt : jf; break;
      default: throw new Error(`unexpected opcode 0x${op.toString(16)}`);
    }
  }
}

const nr = (name: string, arch: SeccompArch = "x86_64") => {
  const n = syscallNumber(name, arch);
  if (n === undefined) throw new Error(`no ${name} on ${arch}`);
  return n;
};
const decide = (profile: LinuxSeccomp, name: string, args: Array<number | bigint> = [], arch: SeccompArch = "x86_64") =>
  run(compileSeccomp(profile, { arch }).program, { nr: nr(name, arch), arch: arch === "x86_64" ? AUDIT_X86_64 : AUDIT_AARCH64, args });

// ---------------------------------------------------------------------------------------------

describe("compiler", () => {
  test("a small profile, instruction by instruction", () => {
    const compiled = compileSeccomp({
      defaultAction: "SCMP_ACT_ALLOW",
      syscalls: [{ names: ["getcwd"], action: "SCMP_ACT_ERRNO", errnoRet: 13 }],
    }, { arch: "x86_64" });
    expect(disassemble(compiled.program, "x86_64")).toEqual([
      "   0: ld arch",
      "   1: jeq 0xc000003e, 3, 2",
      "   2: ret KILL_PROCESS",
      "   3: ld nr",
      "   4: jset 0x40000000, 5, 6",
      "   5: ret ERRNO(1)",
      "   6: jge 0x4f (getcwd), 7, 8",
      "   7: jge 0x50 (chdir), 8, 9",
      "   8: ret ALLOW",
      "   9: ret ERRNO(13)",
    ]);
    expect(compiled).toMatchObject({ instructions: 10, rules: 1, syscalls: 1, skipped: [], flags: 0 });
    // The raw encoding of instruction 1: code 0x15 (BPF_JMP|BPF_JEQ|BPF_K), jt 1, jf 0, k.
    expect([...compiled.program.subarray(8, 16)]).toEqual([0x15, 0, 1, 0, 0x3e, 0, 0, 0xc0]);
  });

  test("aarch64: its own AUDIT_ARCH and numbers, and no x32 test", () => {
    const compiled = compileSeccomp({
      defaultAction: "SCMP_ACT_ALLOW",
      syscalls: [{ names: ["getcwd"], action: "SCMP_ACT_ERRNO", errnoRet: 13 }],
    }, { arch: "aarch64" });
    const text = disassemble(compiled.program, "aarch64");
    expect(text[1]).toBe("   1: jeq 0xc00000b7, 3, 2");
    expect(text.join("\n")).not.toContain("jset");
    expect(run(compiled.program, { nr: 17, arch: AUDIT_AARCH64 })).toBe(errno(13)); // getcwd is 17 there
    expect(run(compiled.program, { nr: 79, arch: AUDIT_AARCH64 })).toBe(ALLOW); // and 79 is newfstatat
    expect(run(compiled.program, { nr: 17, arch: AUDIT_X86_64 })).toBe(RET.KILL_PROCESS);
  });

  test("a foreign architecture is killed, x32 gets EPERM, -1 is not let through", () => {
    const { program } = compileSeccomp({ defaultAction: "SCMP_ACT_ALLOW" }, { arch: "x86_64" });
    expect(run(program, { nr: 39 })).toBe(ALLOW);
    expect(run(program, { nr: 20, arch: AUDIT_I386 })).toBe(RET.KILL_PROCESS);
    expect(run(program, { nr: 39, arch: AUDIT_AARCH64 })).toBe(RET.KILL_PROCESS);
    expect(run(program, { nr: 0x40000000 | 39 })).toBe(EPERM);
    expect(run(program, { nr: 0x40000000 | 520 })).toBe(EPERM); // x32's own execve
    expect(run(program, { nr: -1 })).toBe(EPERM);
  });

  test("every action has its SECCOMP_RET value", () => {
    const actions = {
      SCMP_ACT_ALLOW: ALLOW, SCMP_ACT_ERRNO: errno(1), SCMP_ACT_KILL: RET.KILL_THREAD,
      SCMP_ACT_KILL_THREAD: RET.KILL_THREAD, SCMP_ACT_KILL_PROCESS: RET.KILL_PROCESS, SCMP_ACT_TRAP: RET.TRAP,
      SCMP_ACT_LOG: RET.LOG, SCMP_ACT_TRACE: (RET.TRACE | 1) >>> 0,
    } as const;
    for (const [action, value] of Object.entries(actions)) {
      const profile: LinuxSeccomp = { defaultAction: "SCMP_ACT_ALLOW", syscalls: [{ names: ["getpid"], action: action as keyof typeof actions }] };
      expect(decide(profile, "getpid")).toBe(value);
    }
    const withRet: LinuxSeccomp = {
      defaultAction: "SCMP_ACT_ALLOW",
      syscalls: [
        { names: ["getpid"], action: "SCMP_ACT_ERRNO", errnoRet: 22 },
        { names: ["getppid"], action: "SCMP_ACT_TRACE", errnoRet: 4242 },
      ],
    };
    expect(decide(withRet, "getpid")).toBe(errno(22));
    expect(decide(withRet, "getppid")).toBe((RET.TRACE | 4242) >>> 0);
    expect(decide({ defaultAction: "SCMP_ACT_ERRNO", defaultErrnoRet: 13 }, "getpid")).toBe(errno(13));
    expect(decide({ defaultAction: "SCMP_ACT_KILL_PROCESS" }, "getpid")).toBe(RET.KILL_PROCESS);
  });

  test("64-bit argument comparisons agree with BigInt arithmetic, around both halves", () => {
    const H = 1n << 32n, MAX = (1n << 64n) - 1n;
    const pivots = [0n, 1n, 5n, 0xffffffffn, H, H + 5n, 7n * H + 0x80000000n, MAX];
    const probes = new Set<bigint>();
    for (const p of pivots) for (const d of [-H - 1n, -H, -1n, 0n, 1n, H, H + 1n]) if (p + d >= 0n && p + d <= MAX) probes.add(p + d);
    const reference: Record<SeccompOperator, (x: bigint, v: bigint, w: bigint) => boolean> = {
      SCMP_CMP_EQ: (x, v) => x === v, SCMP_CMP_NE: (x, v) => x !== v, SCMP_CMP_LT: (x, v) => x < v,
      SCMP_CMP_LE: (x, v) => x <= v, SCMP_CMP_GT: (x, v) => x > v, SCMP_CMP_GE: (x, v) => x >= v,
      SCMP_CMP_MASKED_EQ: (x, v, w) => (x & v) === w,
    };
    let checked = 0;
    for (const [op, holds] of Object.entries(reference) as Array<[SeccompOperator, (x: bigint, v: bigint, w: bigint) => boolean]>) {
      for (const value of pivots) {
        const valueTwo = op === "SCMP_CMP_MASKED_EQ" ? value & 0x0000_0003_ffff_0005n : undefined;
        for (const index of [0, 5]) {
          const { program } = compileSeccomp({
            defaultAction: "SCMP_ACT_ALLOW",
            syscalls: [{ names: ["getpid"], action: "SCMP_ACT_ERRNO", errnoRet: 7, args: [{ index, value, valueTwo, op }] }],
          }, { arch: "x86_64" });
          for (const x of probes) {
            const args = [0n, 0n, 0n, 0n, 0n, 0n];
            args[index] = x;
            const want = holds(x, value, valueTwo ?? 0n) ? errno(7) : ALLOW;
            const got = run(program, { nr: 39, args });
            if (got !== want) throw new Error(`${op} ${value} (${valueTwo}) on arg ${index} = ${x}: got ${got}, want ${want}`);
            checked++;
          }
        }
      }
    }
    expect(checked).toBeGreaterThan(2000);
  });

  test("rules of one call: conditions AND; conditional rules first, in order; then the unconditional one", () => {
    const profile: LinuxSeccomp = {
      defaultAction: "SCMP_ACT_ERRNO",
      syscalls: [
        { names: ["ioctl"], action: "SCMP_ACT_ALLOW" }, // listed first, still tried last
        { names: ["ioctl"], action: "SCMP_ACT_ERRNO", errnoRet: 1, args: [{ index: 1, value: 0x5412, op: "SCMP_CMP_EQ" }] },
        { names: ["ioctl"], action: "SCMP_ACT_ERRNO", errnoRet: 2, args: [{ index: 1, value: 0x5412, op: "SCMP_CMP_GE" }] },
        {
          names: ["ioctl"], action: "SCMP_ACT_ERRNO", errnoRet: 3,
          args: [{ index: 0, value: 3, op: "SCMP_CMP_EQ" }, { index: 2, value: 100, op: "SCMP_CMP_GT" }],
        },
        { names: ["ioctl"], action: "SCMP_ACT_ERRNO", errnoRet: 4 }, // a second unconditional rule: the first one stands
      ],
    };
    expect(decide(profile, "ioctl", [0, 0x5412])).toBe(errno(1)); // matches 1 and 2: the first wins
    expect(decide(profile, "ioctl", [0, 0x5413])).toBe(errno(2));
    expect(decide(profile, "ioctl", [3, 1, 101])).toBe(errno(3));
    expect(decide(profile, "ioctl", [3, 1, 100])).toBe(ALLOW); // only one of the two conditions holds
    expect(decide(profile, "ioctl", [4, 1, 101])).toBe(ALLOW);
  });

  test("unknown names are skipped and counted; calls above the profile's newest get ENOSYS", () => {
    const profile: LinuxSeccomp = {
      defaultAction: "SCMP_ACT_ERRNO",
      syscalls: [{ names: ["read", "chown32", "no_such_call", "write"], action: "SCMP_ACT_ALLOW" }],
    };
    const compiled = compileSeccomp(profile, { arch: "x86_64" });
    expect(compiled.skipped).toEqual(["chown32", "no_such_call"]);
    expect(compiled.rules).toBe(2);
    expect(run(compiled.program, { nr: 0 })).toBe(ALLOW);
    expect(run(compiled.program, { nr: 1 })).toBe(ALLOW);
    expect(run(compiled.program, { nr: 2 })).toBe(ENOSYS); // open: newer than write, the newest named
    // With a default that allows, or with no rule at all, there is no ENOSYS tail.
    expect(decide({ defaultAction: "SCMP_ACT_ALLOW", syscalls: [{ names: ["read"], action: "SCMP_ACT_ERRNO" }] }, "mount")).toBe(ALLOW);
    expect(decide({ defaultAction: "SCMP_ACT_ERRNO" }, "mount")).toBe(EPERM);
    expect(decide({ defaultAction: "SCMP_ACT_ERRNO", syscalls: [{ names: ["mount"], action: "SCMP_ACT_ALLOW" }] }, "read")).toBe(EPERM);
  });

  test("600 rules: jumps beyond 255 instructions go through trampolines, and the result is still right", () => {
    const profile = bigProfile(602);
    const compiled = compileSeccomp(profile, { arch: "x86_64" });
    const text = disassemble(compiled.program, "x86_64");
    expect(compiled.rules).toBe(602);
    expect(compiled.instructions).toBeGreaterThan(2000);
    expect(compiled.instructions).toBeLessThanOrEqual(4096);
    expect(text.some((line) => / ja \d+$/.test(line))).toBe(true);
    for (const [name, arg] of bigProbes(profile)) {
      expect(run(compiled.program, { nr: nr(name), args: [arg] })).toBe(expectedBig(profile, name, arg));
    }
  });

  test("a program longer than 4096 instructions is refused with the count", () => {
    expect(() => compileSeccomp(bigProfile(900), { arch: "x86_64" })).toThrow(
      /seccomp: the profile compiles to \d+ BPF instructions; the kernel accepts at most 4096/,
    );
  });
});

/** `count` rules on calls that ignore their arguments: ERRNO(1 + j % 90) when arg0 is 1000*c + j. */
const ARGLESS = ["getppid", "getuid", "getgid", "geteuid", "getegid", "getpgrp", "gettid"];
function bigProfile(count: number): LinuxSeccomp {
  const syscalls: LinuxSeccomp["syscalls"] = [];
  for (let i = 0; i < count; i++) {
    const c = i % ARGLESS.length, j = Math.floor(i / ARGLESS.length);
    syscalls.push({
      names: [ARGLESS[c]!], action: "SCMP_ACT_ERRNO", errnoRet: 1 + (j % 90),
      args: [{ index: 0, value: 1000 * c + j, op: "SCMP_CMP_EQ" }],
    });
  }
  return { defaultAction: "SCMP_ACT_ALLOW", syscalls };
}
function expectedBig(profile: LinuxSeccomp, name: string, arg: number): number {
  const rule = profile.syscalls!.find((s) => s.names[0] === name && s.args![0]!.value === arg);
  return rule ? errno(rule.errnoRet!) : ALLOW;
}
function bigProbes(profile: LinuxSeccomp): Array<[string, number]> {
  const perCall = Math.ceil(profile.syscalls!.length / ARGLESS.length);
  return ARGLESS.flatMap((name, c) => [0, 1, 2, 45, perCall - 2, perCall - 1, perCall, 999].map((j) => [name, 1000 * c + j] as [string, number]));
}

describe("the default profile", () => {
  // The calls the issue and docker's documentation name as blocked, and arguments that reach the filter.
  const BLOCKED = [
    "keyctl", "add_key", "request_key", "mount", "umount2", "pivot_root", "unshare", "setns", "reboot", "kexec_load",
    "kexec_file_load", "init_module", "finit_module", "delete_module", "bpf", "perf_event_open", "open_by_handle_at",
    "userfaultfd", "swapon", "swapoff", "acct", "settimeofday", "clock_settime", "clock_adjtime", "adjtimex", "iopl",
    "ioperm", "lookup_dcookie", "name_to_handle_at", "nfsservctl", "quotactl", "syslog", "create_module",
    "get_kernel_syms", "query_module", "uselib", "ustat", "sysfs", "_sysctl", "mbind", "move_pages", "set_mempolicy",
    "get_mempolicy", "io_uring_setup", "io_uring_enter", "io_uring_register", "kcmp", "process_madvise", "pidfd_getfd",
    "vhangup", "fsopen", "fsmount", "move_mount", "open_tree", "sethostname", "setdomainname", "fanotify_init",
    "migrate_pages", "lsm_set_self_attr",
  ];
  // docker's default capabilities, which include CAP_SYS_CHROOT and so chroot(2).
  const DOCKER_CAPS = words(`CHOWN DAC_OVERRIDE FSETID FOWNER MKNOD NET_RAW SETGID SETUID SETFCAP SETPCAP
    NET_BIND_SERVICE SYS_CHROOT KILL AUDIT_WRITE`);
  const profile = defaultProfile(DOCKER_CAPS);

  for (const arch of ["x86_64", "aarch64"] as const) {
    test(`${arch}: the blocked calls fail with EPERM, ordinary ones are allowed`, () => {
      const { program } = compileSeccomp(profile, { arch });
      const audit = arch === "x86_64" ? AUDIT_X86_64 : AUDIT_AARCH64;
      const at = (name: string, args: Array<number | bigint> = []) => run(program, { nr: nr(name, arch), arch: audit, args });
      for (const name of BLOCKED) {
        if (syscallNumber(name, arch) === undefined) continue; // iopl, create_module, ... are x86_64 only
        expect(`${name}: ${at(name)}`).toBe(`${name}: ${EPERM}`);
      }
      for (const name of ["read", "write", "openat", "execve", "exit_group", "futex", "mmap", "wait4", "getcwd", "ptrace", "chroot", "statx"]) {
        expect(`${name}: ${at(name)}`).toBe(`${name}: ${ALLOW}`);
      }
      // clone: namespace flags refused, threads and forks allowed; clone3: ENOSYS so glibc falls back.
      expect(at("clone", [0x10000000 /* CLONE_NEWUSER */ | 17])).toBe(EPERM);
      expect(at("clone", [0x20000 /* CLONE_NEWNS */])).toBe(EPERM);
      expect(at("clone", [17 /* SIGCHLD */])).toBe(ALLOW);
      expect(at("clone", [0x3d0f00 /* pthread_create's flags */])).toBe(ALLOW);
      expect(at("clone", [0x80 /* CLONE_NEWTIME: not in docker's mask either */])).toBe(ALLOW);
      expect(at("clone3")).toBe(ENOSYS);
      // TIOCSTI and TIOCLINUX refused however the high half of the command is dressed.
      expect(at("ioctl", [0, 0x5412])).toBe(EPERM);
      expect(at("ioctl", [0, 0xdead_0000_5412n])).toBe(EPERM);
      expect(at("ioctl", [0, 0x541c])).toBe(EPERM);
      expect(at("ioctl", [0, 0x5413 /* TIOCGWINSZ */])).toBe(ALLOW);
      // socket: AF_VSOCK and AF_ALG refused, the rest allowed.
      expect(at("socket", [40, 1])).toBe(EPERM);
      expect(at("socket", [0x1_0000_0028n, 1])).toBe(EPERM);
      expect(at("socket", [38, 5])).toBe(EPERM);
      expect(at("socket", [2, 1])).toBe(ALLOW);
      expect(at("socket", [16 /* AF_NETLINK */, 3])).toBe(ALLOW);
      // personality: only the values docker allows.
      for (const value of [0, 8, 0x20000, 0x20008, 0xffffffff]) expect(at("personality", [value])).toBe(ALLOW);
      expect(at("personality", [0x0400000 /* READ_IMPLIES_EXEC */])).toBe(EPERM);
      expect(at("personality", [0x1_0000_0000n])).toBe(EPERM);
    });
  }

  test("capabilities bring back docker's groups", () => {
    const groups: Record<string, string[]> = {
      CAP_SYS_ADMIN: ["mount", "umount2", "unshare", "setns", "sethostname", "bpf", "perf_event_open", "syslog", "clone3", "name_to_handle_at", "fsopen", "quotactl"],
      CAP_SYS_PTRACE: ["kcmp", "pidfd_getfd", "process_madvise"],
      CAP_SYS_MODULE: ["init_module", "finit_module", "delete_module"],
      CAP_SYS_TIME: ["settimeofday", "clock_settime", "adjtimex", "clock_adjtime"],
      CAP_SYS_BOOT: ["reboot"],
      CAP_SYS_NICE: ["mbind", "set_mempolicy", "get_mempolicy", "set_mempolicy_home_node"],
      CAP_SYSLOG: ["syslog"],
      CAP_BPF: ["bpf"],
      CAP_PERFMON: ["perf_event_open"],
      CAP_SYS_PACCT: ["acct"],
      CAP_SYS_RAWIO: ["iopl", "ioperm"],
      CAP_DAC_READ_SEARCH: ["open_by_handle_at"],
      CAP_SYS_TTY_CONFIG: ["vhangup"],
    };
    for (const [cap, names] of Object.entries(groups)) {
      const granted = defaultProfile([cap]);
      for (const name of names) {
        expect(`${cap} ${name}: ${decide(granted, name)}`).toBe(`${cap} ${name}: ${ALLOW}`);
        expect(`no caps ${name}: ${decide(profile, name)}`).not.toBe(`no caps ${name}: ${ALLOW}`);
      }
    }
    const admin = defaultProfile(["SYS_ADMIN"]); // with or without the CAP_ prefix
    expect(decide(admin, "clone", [0x10000000 | 17])).toBe(ALLOW);
    expect(decide(admin, "ioctl", [0, 0x5412])).toBe(EPERM); // TIOCSTI stays refused
    expect(decide(defaultProfile(["CAP_SYS_PTRACE"]), "keyctl")).toBe(EPERM);
    expect(decide(defaultProfile([]), "chroot")).toBe(EPERM); // CAP_SYS_CHROOT, as in docker
  });

  test("ptrace follows docker: allowed from kernel 4.8", () => {
    expect(decide(defaultProfile([], { kernel: "4.8.0" }), "ptrace")).toBe(ALLOW);
    expect(decide(defaultProfile([], { kernel: "4.4.0-210-generic" }), "ptrace")).toBe(EPERM);
    expect(decide(defaultProfile(["CAP_SYS_PTRACE"], { kernel: "4.4.0" }), "ptrace")).toBe(ALLOW);
  });

  test("every name in the profile is known on some architecture minic runs on", () => {
    const names = new Set(DEFAULT_DOCKER_PROFILE.syscalls!.flatMap((s) => s.names ?? []));
    // Names of 32-bit and other architectures, which docker's profile lists and both skip.
    const foreign = new Set(words(`
      chown32 clock_getres_time64 clock_gettime64 clock_nanosleep_time64 fadvise64_64 fchown32 fcntl64 fstat64
      fstatat64 fstatfs64 ftruncate64 futex_time64 getegid32 geteuid32 getgid32 getgroups32 getresgid32 getresuid32
      getuid32 io_pgetevents_time64 ipc lchown32 _llseek lstat64 mmap2 mq_timedreceive_time64 mq_timedsend_time64
      _newselect ppoll_time64 pselect6_time64 recv recvmmsg_time64 rt_sigtimedwait_time64
      sched_rr_get_interval_time64 semtimedop_time64 send sendfile64 setfsgid32 setfsuid32 setgid32 setgroups32
      setregid32 setresgid32 setresuid32 setreuid32 setuid32 sigprocmask sigreturn stat64 statfs64 timer_gettime64
      timer_settime64 timerfd_gettime64 timerfd_settime64 truncate64 ugetrlimit utimensat_time64 waitpid
      arm_fadvise64_64 arm_sync_file_range sync_file_range2 breakpoint cacheflush set_tls stime umount
      clock_settime64 clock_adjtime64
    `));
    const unknown = [...names].filter((n) => !foreign.has(n) && syscallNumber(n, "x86_64") === undefined && syscallNumber(n, "aarch64") === undefined);
    expect(unknown).toEqual([]);
    const skipped = compileSeccomp(defaultProfile([...ALL_CAPS]), { arch: "x86_64" }).skipped;
    expect(skipped.filter((n) => !foreign.has(n))).toEqual([]);
  });

  test("countRules, for --dry-run", () => {
    const counts = countRules(profile, { arch: "x86_64" });
    expect(counts.summary).toBe(`seccomp: ${counts.rules} rules, ${counts.instructions} instructions`);
    expect(counts.rules).toBeGreaterThan(300);
    expect(counts.instructions).toBeLessThan(200); // a tree, not a 300-deep chain
    expect(counts.skipped).toBeGreaterThan(0);
  });
});

const ALL_CAPS = ["CAP_SYS_ADMIN", "CAP_SYS_PTRACE", "CAP_SYS_MODULE", "CAP_SYS_TIME", "CAP_SYS_BOOT", "CAP_SYS_NICE",
  "CAP_SYSLOG", "CAP_BPF", "CAP_PERFMON", "CAP_SYS_PACCT", "CAP_SYS_RAWIO", "CAP_DAC_READ_SEARCH", "CAP_SYS_TTY_CONFIG", "CAP_SYS_CHROOT"];
function words(text: string): string[] {
  return text.trim().split(/\s+/);
}

describe("profiles from files and options", () => {
  const write = (name: string, content: string) => {
    const file = join(dir, name);
    writeFileSync(file, content);
    return file;
  };

  test("docker's format: archMap, includes and excludes, the old name form", () => {
    const profile = parseSeccompProfile({
      defaultAction: "SCMP_ACT_ERRNO",
      archMap: [
        { architecture: "SCMP_ARCH_X86_64", subArchitectures: ["SCMP_ARCH_X86", "SCMP_ARCH_X32"] },
        { architecture: "SCMP_ARCH_AARCH64", subArchitectures: ["SCMP_ARCH_ARM"] },
      ],
      syscalls: [
        { names: ["read", "write"], action: "SCMP_ACT_ALLOW", comment: "always" },
        { name: "mount", action: "SCMP_ACT_ALLOW", args: null, includes: { caps: ["CAP_SYS_ADMIN"] } },
        { names: ["clone"], action: "SCMP_ACT_ALLOW", includes: {}, excludes: { caps: ["CAP_SYS_ADMIN"] } },
        { names: ["arch_prctl"], action: "SCMP_ACT_ALLOW", includes: { arches: ["amd64"] } },
        { names: ["cacheflush"], action: "SCMP_ACT_ALLOW", includes: { arches: ["arm", "arm64"] } },
        { names: ["ptrace"], action: "SCMP_ACT_ALLOW", includes: { minKernel: "4.8" } },
        { names: ["kcmp"], action: "SCMP_ACT_ALLOW", excludes: { minKernel: "99.0" } },
      ],
    }, "test", { arch: "x86_64", kernel: "6.18.44-fc", capabilities: [] });
    expect(profile).toEqual({
      defaultAction: "SCMP_ACT_ERRNO",
      architectures: ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
      syscalls: [
        { names: ["read", "write"], action: "SCMP_ACT_ALLOW", comment: "always" },
        { names: ["clone"], action: "SCMP_ACT_ALLOW" },
        { names: ["arch_prctl"], action: "SCMP_ACT_ALLOW" },
        { names: ["ptrace"], action: "SCMP_ACT_ALLOW" },
        { names: ["kcmp"], action: "SCMP_ACT_ALLOW" },
      ],
    });
    const admin = parseSeccompProfile({
      defaultAction: "SCMP_ACT_ERRNO",
      syscalls: [
        { name: "mount", action: "SCMP_ACT_ALLOW", includes: { caps: ["CAP_SYS_ADMIN"] } },
        { names: ["clone"], action: "SCMP_ACT_ALLOW", excludes: { caps: ["CAP_SYS_ADMIN"] } },
      ],
    }, "test", { arch: "aarch64", capabilities: ["sys_admin"] });
    expect(admin.syscalls).toEqual([{ names: ["mount"], action: "SCMP_ACT_ALLOW" }]);
  });

  test("the OCI format passes through, big integers included", () => {
    const file = write("oci.json", `{
      "defaultAction": "SCMP_ACT_ALLOW",
      "architectures": ["SCMP_ARCH_X86_64"],
      "flags": ["SECCOMP_FILTER_FLAG_LOG"],
      "syscalls": [{"names": ["getpid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13,
        "args": [{"index": 0, "value": 18446744073709551615, "op": "SCMP_CMP_EQ"}]}]
    }`);
    const profile = loadSeccompProfile(file);
    expect(profile.syscalls![0]!.args![0]!.value).toBe(18446744073709551615n);
    expect(profile.flags).toEqual(["SECCOMP_FILTER_FLAG_LOG"]);
    const compiled = compileSeccomp(profile, { arch: "x86_64" });
    expect(compiled.flags).toBe(2);
    expect(run(compiled.program, { nr: 39, args: [(1n << 64n) - 1n] })).toBe(errno(13));
    expect(run(compiled.program, { nr: 39, args: [(1n << 64n) - 2n] })).toBe(ALLOW);
  });

  test("seccomp=unconfined, builtin, a file; the older seccomp: form", () => {
    expect(seccompFromSecurityOpt("seccomp=unconfined")).toBeNull();
    expect(seccompFromSecurityOpt("seccomp:unconfined")).toBeNull();
    expect(seccompFromSecurityOpt("seccomp=builtin", { capabilities: ["CAP_SYS_ADMIN"] })).toEqual(defaultProfile(["CAP_SYS_ADMIN"]));
    const file = write("small.json", JSON.stringify({ defaultAction: "SCMP_ACT_LOG" }));
    expect(seccompFromSecurityOpt(`seccomp=${file}`)).toEqual({ defaultAction: "SCMP_ACT_LOG", syscalls: [] });
    expect(() => seccompFromSecurityOpt("apparmor=unconfined")).toThrow("not a seccomp option");
  });

  test("errors are one line, with the file and the JSON path", () => {
    const cases: Array<[string, string]> = [
      ["{ \"defaultAction\": ", "not valid JSON"],
      [`{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}, {"names": ["write"], "action": "SCMP_ACT_MAYBE"}]}`,
        `syscalls[1].action: unknown action "SCMP_ACT_MAYBE"`],
      [`{"defaultAction": "ALLOW"}`, `defaultAction: unknown action "ALLOW"`],
      [`{"syscalls": []}`, `defaultAction: unknown action undefined`],
      [`{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_NOTIFY"}]}`,
        "syscalls[0].action: SCMP_ACT_NOTIFY needs a seccomp listener"],
      [`{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]}`,
        "syscalls[0].args[0].index: expected an argument index from 0 to 5"],
      [`{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_ABOUT"}]}]}`,
        `syscalls[0].args[0].op: unknown operator "SCMP_CMP_ABOUT"`],
      [`{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": -1, "op": "SCMP_CMP_EQ"}]}]}`,
        "syscalls[0].args[0].value: expected an unsigned 64-bit integer"],
      [`{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": "read", "action": "SCMP_ACT_ALLOW"}]}`,
        "syscalls[0].names: expected an array"],
      [`{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"action": "SCMP_ACT_ALLOW"}]}`, "syscalls[0]: no names"],
      [`{"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 70000}`, "defaultErrnoRet: expected an errno from 0 to 4095"],
      [`{"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86_64"], "archMap": []}`, "archMap: give either architectures or archMap, not both"],
      [`{"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_VAX"]}`, `architectures[0]: unknown architecture "SCMP_ARCH_VAX"`],
      [`{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "four"}}]}`,
        "syscalls[0].includes.minKernel: expected a version"],
      [`[]`, "(top level): expected an object, got an array"],
    ];
    cases.forEach(([content, message], i) => {
      const file = write(`bad${i}.json`, content);
      let error: Error | undefined;
      try {
        seccompFromSecurityOpt(`seccomp=${file}`);
      } catch (e) {
        error = e as Error;
      }
      expect(error?.message).toStartWith(`seccomp profile ${file}: `);
      expect(error?.message).toContain(message);
      expect(error?.message).not.toContain("\n");
    });
    expect(() => seccompFromSecurityOpt(`seccomp=${join(dir, "missing.json")}`)).toThrow(/missing.json: cannot read it \(ENOENT\)/);
    expect(() => parseSeccompJson("{}", "config.json linux.seccomp")).toThrow(/^config\.json linux\.seccomp: defaultAction: /);
  });
});

describe("the step", () => {
  test("prepares struct sock_fprog before the fork and shows the call", () => {
    const { program, instructions } = compileSeccomp(defaultProfile([]));
    const step = seccompStep(program);
    expect(step.kind).toBe("call");
    expect(step.label).toBe("load the seccomp filter");
    expect(describeStep(step)).toBe(`seccomp(SECCOMP_SET_MODE_FILTER, 0, {len=${instructions}, filter=[${instructions} instructions]})`);
    const [filter, fprog] = step.keep as [Uint8Array, Uint8Array];
    expect(filter).toEqual(program);
    expect(fprog.length).toBe(16);
    const view = new DataView(fprog.buffer);
    expect(view.getUint16(0, true)).toBe(instructions);
    expect(view.getBigUint64(8, true)).toBe(BigInt(ptr(filter)));
    expect(describeStep(seccompStep(program, 1 | 4))).toContain("SECCOMP_FILTER_FLAG_TSYNC|SECCOMP_FILTER_FLAG_SPEC_ALLOW");
    expect(() => seccompStep(new Uint8Array(12))).toThrow("8-byte instructions");
  });
});

// ---------------------------------------------------------------------------------------------
// Loading filters for real, in a child bun process.

const PROBE = join(dir, "probe.ts");
writeFileSync(PROBE, `
import { ptr } from "bun:ffi";
import { readFileSync } from "node:fs";
import { libc, errno } from ${JSON.stringify(join(import.meta.dir, "../src/libc/ffi.ts"))};
import { compileSeccomp, seccompStep } from ${JSON.stringify(join(import.meta.dir, "../src/security/seccomp-bpf.ts"))};
import { syscallNumber } from ${JSON.stringify(join(import.meta.dir, "../src/security/seccomp.ts"))};

const config = JSON.parse(readFileSync(process.argv[2], "utf8"), (_k, v, ctx) =>
  typeof v === "string" && /^\\d+n$/.test(v) ? BigInt(v.slice(0, -1)) : v);
const u64 = (x) => BigInt.asUintN(64, BigInt(x));
const sys = (name, ...args) => {
  const nr = typeof name === "number" ? name : syscallNumber(name);
  if (nr === undefined) return "absent";
  const a = [...args, 0, 0, 0, 0, 0].slice(0, 5).map(u64);
  const r = Number(libc.syscall(nr, a[0], a[1], a[2], a[3], a[4]));
  return r === -1 ? -errno() : r;
};
const str = (s) => { const b = Buffer.from(s + "\\0"); keep.push(b); return ptr(b); };
const keep = [];
const buf = new Uint8Array(4096);

// A pseudo-terminal to try TIOCSTI on, opened before any filter.
const master = libc.open(str("/dev/ptmx"), 2 | 0o400 /* O_RDWR|O_NOCTTY */, 0);
const n = new Int32Array(1);
libc.ioctl(master, 0x40045431 /* TIOCSPTLCK */, ptr(n));
libc.ioctl(master, 0x80045430 /* TIOCGPTN */, ptr(n));
const slave = libc.open(str("/dev/pts/" + n[0]), 2 | 0o400, 0);
const c = new Uint8Array([0x78]);

const probes = {
  getpid: () => sys("getpid"),
  getcwd: () => sys("getcwd", ptr(buf), buf.length),
  keyctl: () => sys("keyctl", 0 /* KEYCTL_GET_KEYRING_ID */, 0xfffffffe /* KEY_SPEC_PROCESS_KEYRING */, 1),
  add_key: () => sys("add_key", 0, 0, 0, 0, 0),
  request_key: () => sys("request_key", 0, 0, 0, 0),
  unshare: () => sys("unshare", 0x04000000 /* CLONE_NEWUTS */),
  mount: () => sys("mount", str("none"), str("/nonexistent-minic-probe"), str("tmpfs"), 0, 0),
  umount2: () => sys("umount2", str("/nonexistent-minic-probe"), 0),
  pivot_root: () => sys("pivot_root", 0, 0),
  setns: () => sys("setns", 0xffffffff, 0),
  clone_plain: () => sys("clone", 0x800 /* CLONE_SIGHAND without CLONE_VM: EINVAL, no process made */),
  clone_newuts: () => sys("clone", 0x800 | 0x04000000),
  clone3: () => sys("clone3", 0, 0),
  reboot: () => sys("reboot", 0, 0, 0, 0 /* wrong magic: EINVAL when allowed */),
  finit_module: () => sys("finit_module", 0xffffffff, str(""), 0),
  delete_module: () => sys("delete_module", str("minic-none"), 0),
  bpf: () => sys("bpf", 9999, 0, 0),
  perf_event_open: () => sys("perf_event_open", 0, 0, 0xffffffff, 0xffffffff, 0),
  open_by_handle_at: () => sys("open_by_handle_at", 0xffffffff, 0, 0),
  name_to_handle_at: () => sys("name_to_handle_at", 0xffffffff, 0, 0, 0, 0),
  userfaultfd: () => sys("userfaultfd", 0x80000 /* O_CLOEXEC */),
  swapoff: () => sys("swapoff", 0),
  clock_settime: () => sys("clock_settime", 0, 0),
  adjtimex: () => sys("adjtimex", 0),
  syslog: () => sys("syslog", 10 /* SYSLOG_ACTION_SIZE_BUFFER */, 0, 0),
  iopl: () => sys("iopl", 0),
  mbind: () => sys("mbind", 0, 0, 0, 0, 0),
  io_uring_setup: () => sys("io_uring_setup", 1, 0),
  personality_query: () => sys("personality", 0xffffffff),
  personality_change: () => sys("personality", 0x0400000 /* READ_IMPLIES_EXEC */),
  socket_unix: () => sys("socket", 1, 1, 0),
  socket_vsock: () => sys("socket", 40, 1, 0),
  socket_vsock_high: () => sys("socket", 0x100000028n, 1, 0),
  socket_alg: () => sys("socket", 38, 5, 0),
  tiocsti: () => sys("ioctl", slave, 0x5412, ptr(c)),
  tiocsti_high: () => sys("ioctl", slave, 0x100005412n, ptr(c)),
  tiocgwinsz: () => sys("ioctl", slave, 0x5413, ptr(buf)),
  x32_getpid: () => process.arch === "x64" ? sys(0x40000000 | 39) : "absent",
  seccomp_status: () => /Seccomp:\\s*(\\d)/.exec(readFileSync("/proc/self/status", "utf8"))[1],
};
for (const [name, arg] of config.argless ?? []) probes[name + "(" + arg + ")"] = () => sys(name, arg);

let loaded = null;
if (config.profile) {
  const compiled = compileSeccomp(config.profile);
  const step = seccompStep(compiled.program, compiled.flags);
  if (libc.prctl(38 /* PR_SET_NO_NEW_PRIVS */, 1, 0, 0, 0) !== 0) throw new Error("prctl failed");
  loaded = step.run();
}
const results = {};
for (const name of config.probes ?? Object.keys(probes)) results[name] = probes[name]();
console.log(JSON.stringify({ loaded, results }));
`);

interface ProbeOutput { loaded: number | null; results: Record<string, number | string> }
let probeCount = 0;

/** Run the probes in a fresh bun, under `profile` (or none); results are "ok" or an errno name. */
function probe(profile: LinuxSeccomp | null, extra: { argless?: Array<[string, number]>; probes?: string[] } = {}): Record<string, string> {
  const config = join(dir, `probe-${probeCount++}.json`);
  writeFileSync(config, JSON.stringify({ profile, ...extra }, (_k, v) => (typeof v === "bigint" ? `${v}n` : v)));
  const child = Bun.spawnSync([process.execPath, PROBE, config], { stdout: "pipe", stderr: "pipe" });
  const stdout = child.stdout.toString(), stderr = child.stderr.toString();
  if (child.exitCode !== 0) throw new Error(`probe exited with ${child.exitCode} (signal ${child.signalCode}): ${stderr}${stdout}`);
  const output = JSON.parse(stdout) as ProbeOutput;
  if (profile) expect(output.loaded).toBe(0);
  return Object.fromEntries(Object.entries(output.results).map(([k, v]) =>
    [k, typeof v === "string" ? v : v >= 0 ? "ok" : errnoName(-v)]));
}

const isRoot = process.getuid?.() === 0;

describe.skipIf(!isRoot)("filters loaded in the kernel", () => {
  const baseline = isRoot ? probe(null) : {};

  test("the default profile: each blocked call fails with EPERM where it would otherwise not", () => {
    const filtered = probe(defaultProfile([]));
    const expected: Record<string, string> = {
      getpid: "ok", getcwd: "ok", socket_unix: "ok", tiocgwinsz: "ok", personality_query: "ok",
      clone_plain: "EINVAL", seccomp_status: "2",
      keyctl: "EPERM", add_key: "EPERM", request_key: "EPERM", unshare: "EPERM", mount: "EPERM", umount2: "EPERM",
      pivot_root: "EPERM", setns: "EPERM", clone_newuts: "EPERM", clone3: "ENOSYS", reboot: "EPERM",
      finit_module: "EPERM", delete_module: "EPERM", bpf: "EPERM", perf_event_open: "EPERM",
      open_by_handle_at: "EPERM", name_to_handle_at: "EPERM", userfaultfd: "EPERM", swapoff: "EPERM",
      clock_settime: "EPERM", adjtimex: "EPERM", syslog: "EPERM", iopl: "EPERM", mbind: "EPERM",
      io_uring_setup: "EPERM", personality_change: "EPERM", socket_vsock: "EPERM", socket_vsock_high: "EPERM",
      socket_alg: "EPERM", tiocsti: "EPERM", tiocsti_high: "EPERM",
      x32_getpid: process.arch === "x64" ? "EPERM" : "absent",
    };
    if (process.arch !== "x64") expected.iopl = "absent";
    expect(filtered).toEqual(expected);
    // Not vacuous: without the filter every refused call gets past seccomp (and the allowed ones agree).
    for (const [name, result] of Object.entries(expected)) {
      if (result === "absent" || name === "seccomp_status") continue;
      if (result === "EPERM" || result === "ENOSYS") expect(`${name}: ${baseline[name]}`).not.toBe(`${name}: ${result}`);
      else expect(`${name}: ${baseline[name]}`).toBe(`${name}: ${result}`);
    }
    expect(baseline.seccomp_status).toBe("0");
    // TIOCSTI works on this machine without the filter, the high half of the command ignored.
    expect(baseline.tiocsti).toBe("ok");
    expect(baseline.tiocsti_high).toBe("ok");
  });

  test("with CAP_SYS_ADMIN granted, namespaces and mounts get past the filter", () => {
    const filtered = probe(defaultProfile(["CAP_SYS_ADMIN"]), {
      probes: ["unshare", "mount", "clone_newuts", "clone3", "setns", "keyctl", "tiocsti"],
    });
    expect(filtered).toEqual({
      unshare: baseline.unshare!, mount: baseline.mount!, clone_newuts: baseline.clone_newuts!, clone3: baseline.clone3!,
      setns: baseline.setns!, keyctl: "EPERM", tiocsti: "EPERM",
    });
    expect(filtered.unshare).toBe("ok");
  });

  test("errnoRet: a profile allowing everything but getcwd, which fails with EACCES", () => {
    const filtered = probe({
      defaultAction: "SCMP_ACT_ALLOW",
      syscalls: [{ names: ["getcwd"], action: "SCMP_ACT_ERRNO", errnoRet: 13 }],
    }, { probes: ["getcwd", "getpid", "unshare", "seccomp_status"] });
    expect(filtered).toEqual({ getcwd: "EACCES", getpid: "ok", unshare: "ok", seccomp_status: "2" });
  });

  test("the kernel accepts the 600-rule program with trampolines, and it decides as computed", () => {
    const profile = bigProfile(602);
    const probes = bigProbes(profile);
    const filtered = probe(profile, { argless: probes, probes: probes.map(([n, a]) => `${n}(${a})`) });
    for (const [name, arg] of probes) {
      const want = expectedBig(profile, name, arg);
      expect(`${name}(${arg}): ${filtered[`${name}(${arg})`]}`)
        .toBe(`${name}(${arg}): ${want === ALLOW ? "ok" : errnoName(want & 0xffff)}`);
    }
  });
});
