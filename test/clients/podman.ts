// podman driving minic as its OCI runtime (`--runtime /abs/bin/minic`), with a store of its own.
//
// Everything podman keeps lives under one temp dir: --root (images, containers), --runroot,
// --tmpdir (exit files, events, locks) and TMPDIR (import's scratch files), with a private
// containers.conf that switches podman's locks from the machine-wide SHM segment to files there.
// So nothing collides with the machine's podman, and removing the dir removes every trace.
//
// The flags this machine needs (see ../shared/notes/peers.md): vfs storage (no overlay here),
// cgroupfs (no systemd), file events (no journald), --network none (no CNI/netavark plugins, and
// no traffic), and ulimits no higher than the current hard ones (root lacks CAP_SYS_RESOURCE).
import { mkdtempSync, writeFileSync } from "node:fs";
import { MINIC } from "../helpers.ts";
import { describeCall, killPids, minicForceDelete, processesMentioning, removeEmptyCgroups, removeTempDir, runTool, tailFile, type ToolOptions, type ToolResult } from "./tool.ts";

export const IMAGE = "localhost/minic-test-busybox:latest";

/** minic's state root for podman's containers: podman passes no --root, so minic's default as root. */
export const PODMAN_MINIC_ROOT = "/run/minic";

/** `podman run` flags every container here needs. */
export const RUN_FLAGS = ["--pull", "never", "--network", "none", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"];

export class Podman {
  /** minic's own messages (--log, JSON lines), for every runtime call podman makes with its flags. */
  readonly minicLog: string;
  private readonly env: Record<string, string | undefined>;

  private constructor(readonly dir: string) {
    this.minicLog = `${dir}/minic-log.json`;
    writeFileSync(`${dir}/containers.conf`, '[engine]\nlock_type = "file"\n');
    // No MINIC_ROOT: conmon starts minic with an environment of its own, so every call must agree on
    // minic's default state root (/run/minic).
    this.env = { ...process.env, CONTAINERS_CONF: `${dir}/containers.conf`, TMPDIR: `${dir}/tmp`, MINIC_ROOT: undefined };
    Bun.spawnSync(["mkdir", "-p", `${dir}/tmp`]);
  }

  static create(): Podman {
    return new Podman(mkdtempSync("/tmp/minic-podman-"));
  }

  /** The global flags: private store, this machine's settings, and minic as the runtime. */
  globalFlags(): string[] {
    const d = this.dir;
    return [
      "--root", `${d}/root`, "--runroot", `${d}/runroot`, "--tmpdir", `${d}/libpod`,
      "--storage-driver", "vfs", "--cgroup-manager", "cgroupfs", "--events-backend", "file",
      "--runtime", MINIC,
      // Passed by podman (and conmon) before minic's verb: minic's messages also go to this file.
      "--runtime-flag", `log=${this.minicLog}`, "--runtime-flag", "log-format=json",
    ];
  }

  run(args: string[], options: ToolOptions = {}): Promise<ToolResult> {
    return runTool(["podman", ...this.globalFlags(), ...args], { env: this.env, timeoutMs: 120_000, ...options });
  }

  /** A readable account of a failed podman call, with what minic logged. */
  explain(r: ToolResult, ...context: Array<[string, string]>): string {
    return describeCall(r, ...context, ["minic --log (last lines)", tailFile(this.minicLog, 40)]);
  }

  /** `tar -C rootfs -c . | podman import - NAME`. */
  async importRootfs(rootfs: string, name = IMAGE): Promise<ToolResult> {
    const tar = Bun.spawn(["tar", "-C", rootfs, "-c", "."], { stdout: "pipe", stderr: "pipe" });
    const r = await this.run(["import", "-", name], { stdin: tar.stdout, timeoutMs: 300_000 });
    await tar.exited;
    return r;
  }

  /** Every container podman knows of, full ids. */
  async containerIds(): Promise<string[]> {
    const r = await this.run(["ps", "-a", "-q", "--no-trunc"], { timeoutMs: 60_000 });
    return r.stdout.split("\n").map((s) => s.trim()).filter(Boolean);
  }

  async inspect(ctr: string, format: string): Promise<string> {
    const r = await this.run(["inspect", "--format", format, ctr], { timeoutMs: 60_000 });
    return r.code === 0 ? r.stdout.trim() : `(podman inspect failed: ${r.stderr.trim()})`;
  }

  /**
   * Remove every container (stopping it), every image and the whole store; then whatever podman
   * could not: conmon and cleanup processes (they name our dir), minic's state for each container,
   * mounts under the dir, and the cgroup parent podman made, if empty. Never throws.
   */
  async destroy(): Promise<void> {
    let ids: string[] = [];
    try {
      ids = await this.containerIds();
      await this.run(["rm", "--all", "--force", "--time", "0"], { timeoutMs: 120_000 });
      await this.run(["rmi", "--all", "--force"], { timeoutMs: 120_000 });
    } catch {}
    killPids(processesMentioning(this.dir));
    for (const id of ids) await minicForceDelete(id, PODMAN_MINIC_ROOT).catch(() => {});
    try {
      removeTempDir(this.dir);
    } catch {}
    removeEmptyCgroups("libpod_parent");
  }
}
