// A containerd daemon of the test's own: private root, state, config and sockets under one temp dir,
// no CRI plugin. `ctr` talks to it on that socket; its shim (containerd-shim-runc-v2) calls the
// runtime given by `ctr run --runc-binary`: `minic --root /run/containerd/runc/NAMESPACE --log
// BUNDLE/log.json --log-format json create --bundle BUNDLE --pid-file BUNDLE/init.pid ID`, then
// start, delete.
import { existsSync, mkdtempSync, openSync, closeSync, rmdirSync, writeFileSync } from "node:fs";
import type { Subprocess } from "bun";
import { describeCall, killPids, minicForceDelete, processesMentioning, removeEmptyCgroups, removeTempDir, runTool, tailFile, type ToolOptions, type ToolResult } from "./tool.ts";

/** ctr's namespace; also the shim's minic state root (/run/containerd/runc/NS) and the cgroup parent (/NS). */
export const NAMESPACE = "minic-test";

export class Containerd {
  readonly socket: string;
  readonly logFile: string;
  private daemon?: Subprocess;

  private constructor(readonly dir: string) {
    this.socket = `${dir}/containerd.sock`;
    this.logFile = `${dir}/containerd.log`;
  }

  /** The runtime state root the shim gives minic (--root). */
  static readonly runtimeRoot = `/run/containerd/runc/${NAMESPACE}`;

  /** Write a config and start containerd; resolve once it answers `ctr version`. */
  static async start(): Promise<Containerd> {
    const c = new Containerd(mkdtempSync("/tmp/minic-ctd-"));
    const d = c.dir;
    writeFileSync(`${d}/config.toml`, [
      "version = 2",
      `root = "${d}/root"`,
      `state = "${d}/state"`,
      'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
      "[grpc]",
      `  address = "${c.socket}"`,
      "[ttrpc]",
      `  address = "${c.socket}.ttrpc"`,
      "[debug]",
      `  address = "${d}/debug.sock"`,
      '  level = "debug"',
      "",
    ].join("\n"));
    const log = openSync(c.logFile, "a");
    try {
      c.daemon = Bun.spawn(["containerd", "--config", `${d}/config.toml`], { stdin: "ignore", stdout: log, stderr: log });
    } finally {
      closeSync(log);
    }
    let last: ToolResult | undefined;
    for (let i = 0; i < 300; i++) {
      if (c.daemon.exitCode !== null) {
        throw new Error(`containerd exited (status ${c.daemon.exitCode}) before it served ${c.socket}\n${tailFile(c.logFile)}`);
      }
      if (existsSync(c.socket)) {
        last = await c.ctr(["version"], { timeoutMs: 10_000 });
        if (last.code === 0) return c;
      }
      await Bun.sleep(100);
    }
    await c.stop();
    throw new Error(`containerd did not answer on ${c.socket}\n${last ? describeCall(last) : ""}\n${tailFile(c.logFile)}`);
  }

  ctr(args: string[], options: ToolOptions = {}): Promise<ToolResult> {
    return runTool(["ctr", "--address", this.socket, "--namespace", NAMESPACE, ...args], { timeoutMs: 120_000, ...options });
  }

  /** A readable account of a failed ctr call, with containerd's log (which carries the shim's). */
  explain(r: ToolResult, ...context: Array<[string, string]>): string {
    return describeCall(r, ...context, ["containerd log (last lines)", tailFile(this.logFile, 50)]);
  }

  /**
   * Kill and delete every task and container, stop the daemon (SIGTERM, then SIGKILL), kill any
   * shim still serving it, drop minic's state for our containers, remove the temp dir and the
   * namespace's runtime root and cgroup parent when empty. Never throws.
   */
  async stop(): Promise<void> {
    let ids: string[] = [];
    if (this.daemon && this.daemon.exitCode === null) {
      try {
        ids = (await this.ctr(["containers", "list", "--quiet"], { timeoutMs: 30_000 })).stdout.split("\n").map((s) => s.trim()).filter(Boolean);
        for (const id of ids) {
          await this.ctr(["task", "kill", "--signal", "SIGKILL", id], { timeoutMs: 30_000 });
          await this.ctr(["task", "delete", "--force", id], { timeoutMs: 30_000 });
          await this.ctr(["containers", "delete", id], { timeoutMs: 30_000 });
        }
      } catch {}
      this.daemon.kill("SIGTERM");
      const timer = setTimeout(() => this.daemon?.kill("SIGKILL"), 15_000);
      await this.daemon.exited;
      clearTimeout(timer);
    }
    // Shims outlive the daemon by design; ours are the ones started with our socket's address.
    killPids(processesMentioning(this.dir));
    for (const id of ids) await minicForceDelete(id, Containerd.runtimeRoot).catch(() => {});
    try {
      removeTempDir(this.dir);
    } catch {}
    try {
      rmdirSync(Containerd.runtimeRoot); // only if empty: a concurrent run may still use it
    } catch {}
    removeEmptyCgroups(NAMESPACE);
  }
}
