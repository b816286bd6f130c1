// minic's default seccomp profile, in docker's profile format so that it reads like moby's
// profiles/seccomp/default.json and goes through the same code as a user's --security-opt profile.
//
// It is docker's current default profile (moby 28, which dropped io_uring and blocks socket() for
// AF_VSOCK and AF_ALG) with these differences, each for a stated reason:
//
//  - ioctl is allowed except TIOCSTI and TIOCLINUX, which push keystrokes or a selection into a
//    terminal (the TIOCSTI attack on a terminal the container shares with its host). Docker allows
//    every ioctl. The command argument is an `unsigned int`, so only its low 32 bits are compared:
//    the kernel ignores the high half, and a filter comparing all 64 bits could be dodged by setting it.
//  - socket(AF_VSOCK) and socket(AF_ALG) are refused by comparing the low 32 bits of the family, for
//    the same reason (docker writes `family != 40`, a 64-bit comparison).
//  - adjtimex, clock_adjtime and clock_adjtime64 need CAP_SYS_TIME, like settimeofday. Docker allows
//    them because the kernel itself refuses changes without CAP_SYS_TIME; minic blocks them outright,
//    which also refuses read-only queries (`adjtimex(modes=0)`, ntp_gettime).
//  - name_to_handle_at needs CAP_SYS_ADMIN or CAP_DAC_READ_SEARCH (the pair of open_by_handle_at,
//    which docker gates on CAP_DAC_READ_SEARCH); docker allows it to everyone since 23.0.
//  - open_tree_attr (Linux 6.15) joins the other mount-API calls behind CAP_SYS_ADMIN.
//  - Entries for architectures minic does not run on (ppc64le, s390, riscv64, mips) are left out,
//    and so is the s390 variant of the clone rule. Names that do not exist on the running
//    architecture (chown32, _llseek, ...) are kept, as in docker's file, and skipped when compiling.
//  - Only the native architecture is filtered: 32-bit (i386, arm) system calls are refused (the
//    process is killed) and x32 calls fail with EPERM, where docker allows them through sub-architectures.
//
// ptrace, process_vm_readv and process_vm_writev stay allowed, as in docker on kernels >= 4.8, where
// seccomp re-checks a system call after a tracer changes it. Tracing a process outside the
// container is stopped by the PID namespace (it cannot be named) and by the capability check: the
// container lacks CAP_SYS_PTRACE, and a host process holds capabilities outside its permitted set.
import type { DockerSeccompProfile } from "./seccomp.ts";

const EPERM = 1, ENOSYS = 38;
const TIOCSTI = 0x5412, TIOCLINUX = 0x541c, AF_ALG = 38, AF_VSOCK = 40;
/** CLONE_NEWNS|CLONE_NEWUTS|CLONE_NEWIPC|CLONE_NEWUSER|CLONE_NEWPID|CLONE_NEWNET|CLONE_NEWCGROUP */
const CLONE_NAMESPACE_FLAGS = 0x7e020000;

const words = (text: string) => text.trim().split(/\s+/);

/** Allowed for everyone (docker's first entry, minus the calls moved to the rules below). */
const ALLOWED = words(`
  accept accept4 access alarm bind brk cachestat capget capset chdir chmod chown chown32
  clock_getres clock_getres_time64 clock_gettime clock_gettime64 clock_nanosleep
  clock_nanosleep_time64 close close_range connect copy_file_range creat dup dup2 dup3
  epoll_create epoll_create1 epoll_ctl epoll_ctl_old epoll_pwait epoll_pwait2 epoll_wait
  epoll_wait_old eventfd eventfd2 execve execveat exit exit_group faccessat faccessat2 fadvise64
  fadvise64_64 fallocate fanotify_mark fchdir fchmod fchmodat fchmodat2 fchown fchown32 fchownat
  fcntl fcntl64 fdatasync fgetxattr flistxattr flock fork fremovexattr fsetxattr fstat fstat64
  fstatat64 fstatfs fstatfs64 fsync ftruncate ftruncate64 futex futex_requeue futex_time64
  futex_wait futex_waitv futex_wake futimesat getcpu getcwd getdents getdents64 getegid getegid32
  geteuid geteuid32 getgid getgid32 getgroups getgroups32 getitimer getpeername getpgid getpgrp
  getpid getppid getpriority getrandom getresgid getresgid32 getresuid getresuid32 getrlimit
  get_robust_list getrusage getsid getsockname getsockopt get_thread_area gettid gettimeofday
  getuid getuid32 getxattr getxattrat inotify_add_watch inotify_init inotify_init1
  inotify_rm_watch io_cancel io_destroy io_getevents io_pgetevents io_pgetevents_time64
  ioprio_get ioprio_set io_setup io_submit ipc kill landlock_add_rule landlock_create_ruleset
  landlock_restrict_self lchown lchown32 lgetxattr link linkat listen listmount listxattr
  listxattrat llistxattr _llseek lremovexattr lseek lsetxattr lstat lstat64 madvise
  map_shadow_stack membarrier memfd_create memfd_secret mincore mkdir mkdirat mknod mknodat mlock
  mlock2 mlockall mmap mmap2 mprotect mq_getsetattr mq_notify mq_open mq_timedreceive
  mq_timedreceive_time64 mq_timedsend mq_timedsend_time64 mq_unlink mremap mseal msgctl msgget
  msgrcv msgsnd msync munlock munlockall munmap nanosleep newfstatat _newselect open openat
  openat2 pause pidfd_open pidfd_send_signal pipe pipe2 pkey_alloc pkey_free pkey_mprotect poll
  ppoll ppoll_time64 prctl pread64 preadv preadv2 prlimit64 process_mrelease pselect6
  pselect6_time64 pwrite64 pwritev pwritev2 read readahead readlink readlinkat readv recv
  recvfrom recvmmsg recvmmsg_time64 recvmsg remap_file_pages removexattr removexattrat rename
  renameat renameat2 restart_syscall rmdir rseq rt_sigaction rt_sigpending rt_sigprocmask
  rt_sigqueueinfo rt_sigreturn rt_sigsuspend rt_sigtimedwait rt_sigtimedwait_time64
  rt_tgsigqueueinfo sched_getaffinity sched_getattr sched_getparam sched_get_priority_max
  sched_get_priority_min sched_getscheduler sched_rr_get_interval sched_rr_get_interval_time64
  sched_setaffinity sched_setattr sched_setparam sched_setscheduler sched_yield seccomp select
  semctl semget semop semtimedop semtimedop_time64 send sendfile sendfile64 sendmmsg sendmsg
  sendto setfsgid setfsgid32 setfsuid setfsuid32 setgid setgid32 setgroups setgroups32 setitimer
  setpgid setpriority setregid setregid32 setresgid setresgid32 setresuid setresuid32 setreuid
  setreuid32 setrlimit set_robust_list setsid setsockopt set_thread_area set_tid_address setuid
  setuid32 setxattr setxattrat shmat shmctl shmdt shmget shutdown sigaltstack signalfd signalfd4
  sigprocmask sigreturn socket socketpair splice stat stat64 statfs statfs64 statmount statx
  symlink symlinkat sync sync_file_range syncfs sysinfo tee tgkill time timer_create timer_delete
  timer_getoverrun timer_gettime timer_gettime64 timer_settime timer_settime64 timerfd_create
  timerfd_gettime timerfd_gettime64 timerfd_settime timerfd_settime64 times tkill truncate
  truncate64 ugetrlimit umask uname unlink unlinkat uretprobe utime utimensat utimensat_time64
  utimes vfork vmsplice wait4 waitid waitpid write writev
`);

/** The low 32 bits of argument `index` equal `value` (for `int` and `unsigned int` arguments). */
const low32 = (index: number, value: number) =>
  ({ index, value: 0xffffffff, valueTwo: value, op: "SCMP_CMP_MASKED_EQ" }) as const;

const withCaps = (names: string, ...caps: string[]) =>
  ({ names: words(names), action: "SCMP_ACT_ALLOW", includes: { caps } }) as const;

export const DEFAULT_PROFILE: DockerSeccompProfile = {
  defaultAction: "SCMP_ACT_ERRNO",
  defaultErrnoRet: EPERM,
  archMap: [
    { architecture: "SCMP_ARCH_X86_64", subArchitectures: ["SCMP_ARCH_X86", "SCMP_ARCH_X32"] },
    { architecture: "SCMP_ARCH_AARCH64", subArchitectures: ["SCMP_ARCH_ARM"] },
  ],
  syscalls: [
    { names: ALLOWED, action: "SCMP_ACT_ALLOW" },
    { names: ["process_vm_readv", "process_vm_writev", "ptrace"], action: "SCMP_ACT_ALLOW", includes: { minKernel: "4.8" } },
    // Conditional rules of a call are tried before its unconditional one (see seccomp.ts), so these
    // refusals hold whatever else allows ioctl or socket.
    { names: ["ioctl"], action: "SCMP_ACT_ERRNO", errnoRet: EPERM, args: [low32(1, TIOCSTI)], comment: "TIOCSTI: no keystrokes pushed into a terminal" },
    { names: ["ioctl"], action: "SCMP_ACT_ERRNO", errnoRet: EPERM, args: [low32(1, TIOCLINUX)], comment: "TIOCLINUX: no console selection pasted into a terminal" },
    { names: ["ioctl"], action: "SCMP_ACT_ALLOW" },
    { names: ["socket"], action: "SCMP_ACT_ERRNO", errnoRet: EPERM, args: [low32(0, AF_VSOCK)], comment: "AF_VSOCK: no talking to the hypervisor" },
    { names: ["socket"], action: "SCMP_ACT_ERRNO", errnoRet: EPERM, args: [low32(0, AF_ALG)], comment: "AF_ALG: the kernel crypto API" },
    // personality(2): Linux, UNAME26, ADDR_NO_RANDOMIZE, both, and the query 0xffffffff.
    ...[0x0, 0x8, 0x20000, 0x20008, 0xffffffff].map((value) => ({
      names: ["personality"], action: "SCMP_ACT_ALLOW" as const, args: [{ index: 0, value, op: "SCMP_CMP_EQ" as const }],
    })),
    {
      names: words("arm_fadvise64_64 arm_sync_file_range sync_file_range2 breakpoint cacheflush set_tls"),
      action: "SCMP_ACT_ALLOW", includes: { arches: ["arm", "arm64"] },
    },
    { names: ["arch_prctl"], action: "SCMP_ACT_ALLOW", includes: { arches: ["amd64", "x32"] } },
    { names: ["modify_ldt"], action: "SCMP_ACT_ALLOW", includes: { arches: ["amd64", "x32", "x86"] } },
    withCaps("open_by_handle_at name_to_handle_at", "CAP_DAC_READ_SEARCH"),
    withCaps(
      `bpf clone clone3 fanotify_init fsconfig fsmount fsopen fspick lookup_dcookie lsm_get_self_attr
       lsm_list_modules lsm_set_self_attr mount mount_setattr move_mount name_to_handle_at open_tree
       open_tree_attr perf_event_open quotactl quotactl_fd setdomainname sethostname setns syslog
       umount umount2 unshare`,
      "CAP_SYS_ADMIN",
    ),
    {
      names: ["clone"], action: "SCMP_ACT_ALLOW",
      args: [{ index: 0, value: CLONE_NAMESPACE_FLAGS, valueTwo: 0, op: "SCMP_CMP_MASKED_EQ" }],
      comment: "clone without namespace flags (flags is argument 0 on x86_64 and aarch64)",
      excludes: { caps: ["CAP_SYS_ADMIN"] },
    },
    {
      names: ["clone3"], action: "SCMP_ACT_ERRNO", errnoRet: ENOSYS,
      comment: "its flags sit in memory seccomp cannot read; ENOSYS makes glibc fall back to clone",
      excludes: { caps: ["CAP_SYS_ADMIN"] },
    },
    withCaps("reboot", "CAP_SYS_BOOT"),
    withCaps("chroot", "CAP_SYS_CHROOT"),
    withCaps("delete_module init_module finit_module", "CAP_SYS_MODULE"),
    withCaps("acct", "CAP_SYS_PACCT"),
    withCaps("kcmp pidfd_getfd process_madvise process_vm_readv process_vm_writev ptrace", "CAP_SYS_PTRACE"),
    withCaps("iopl ioperm", "CAP_SYS_RAWIO"),
    withCaps("settimeofday stime clock_settime clock_settime64 adjtimex clock_adjtime clock_adjtime64", "CAP_SYS_TIME"),
    withCaps("vhangup", "CAP_SYS_TTY_CONFIG"),
    withCaps("get_mempolicy mbind set_mempolicy set_mempolicy_home_node", "CAP_SYS_NICE"),
    withCaps("syslog", "CAP_SYSLOG"),
    withCaps("bpf", "CAP_BPF"),
    withCaps("perf_event_open", "CAP_PERFMON"),
  ],
};
