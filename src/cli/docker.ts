// The docker-like verbs, on the same state as the OCI ones: logs, stop, rm, and `ps` with no id
// (the container table). `run -d` starts a monitor: a `minic run` of its own, in its own session,
// that reaps the container, writes its output to a log file and records its exit status.
import type { VerbInput } from "./verb.ts";
import { UsageError } from "./argv.ts";
import { printTable, theId, verb } from "./oci.ts";
import { libc } from "../libc/ffi.ts";
import { readTextIfExists, removeTree } from "../libc/fs.ts";
import { SIGKILL, SIGTERM } from "../libc/constants.ts";
import { listStates, processStartTime, readState, stateDir, writeState, type ContainerState } from "../state.ts";
import { ContainerCgroup } from "../cgroups/cgroup.ts";
import { detectLayout } from "../cgroups/layout.ts";

export const logs = verb(
  "logs",
  "Print the output of a container started with `run -d`.",
  { follow: { type: "boolean", alias: "f", description: "Keep printing new output until the container stops" } },
  async ({ flags, rest }) => {
    const id = theId(rest, "logs");
    const file = `${stateDir(id)}/container.log`;
    readState(id); // a clear error for an unknown id
    let printed = 0;
    for (;;) {
      const text = readTextIfExists(file) ?? "";
      if (text.length > printed) {
        process.stdout.write(text.slice(printed));
        printed = text.length;
      }
      if (!flags.follow || statusOf(id) === "stopped") break;
      await Bun.sleep(100);
    }
    return 0;
  },
);

/** The status, counting a container whose state is gone (removed by its monitor, --rm) as stopped. */
function statusOf(id: string): string {
  try {
    return readState(id).status;
  } catch {
    return "stopped";
  }
}

/** SIGTERM, then SIGKILL after the grace period: what `docker stop` does. */
export async function stopContainer(id: string, seconds: number): Promise<void> {
  const state = readState(id);
  if (state.status === "stopped") return;
  libc.kill(state.pid, SIGTERM);
  if (state.status === "paused" && state.cgroupPath) {
    // A frozen process acts on no signal, SIGKILL included: thaw it, the SIGTERM pending. (State
    // first: the monitor's final write, once the container ends, must come after this one.)
    writeState({ ...state, status: "running" });
    ContainerCgroup.open(detectLayout(), state.cgroupPath).freeze(false);
  }
  const deadline = Date.now() + seconds * 1000;
  while (Date.now() < deadline && statusOf(id) !== "stopped") await Bun.sleep(50);
  if (statusOf(id) !== "stopped") libc.kill(state.pid, SIGKILL);
  for (let i = 0; i < 100 && statusOf(id) !== "stopped"; i++) await Bun.sleep(50);
  if (statusOf(id) !== "stopped") throw new Error(`container "${id}" did not stop: its init ${state.pid} outlived SIGKILL`);
}

export const stop = verb(
  "stop",
  "Stop a container: SIGTERM, then SIGKILL after a grace period.",
  { time: { type: "string", alias: "t", valueHint: "SECONDS", description: "Grace period before SIGKILL (default 10)" } },
  async ({ flags, rest }) => {
    const seconds = flags.time === undefined ? 10 : Number(flags.time);
    if (!Number.isFinite(seconds) || seconds < 0) throw new UsageError(`--time "${flags.time}" is not a number of seconds`);
    await stopContainer(theId(rest, "stop"), seconds);
    return 0;
  },
);

export const rm = verb(
  "rm",
  "Remove a stopped container started with `run -d` (its state and log).",
  { force: { type: "boolean", alias: "f", description: "Kill it first if it is running" } },
  async ({ flags, rest }) => {
    const id = theId(rest, "rm");
    const state = readState(id);
    if (state.status !== "stopped") {
      if (!flags.force) throw new Error(`cannot remove container "${id}": it is ${state.status} (stop it first, or use -f)`);
      await stopContainer(id, 0);
    }
    // Its monitor removes the cgroup and network when the container ends; what is left is state.
    for (let i = 0; i < 100 && readTextIfExists(`${stateDir(id)}/agent`) !== null && agentAlive(id); i++) await Bun.sleep(50);
    removeTree(stateDir(id));
    return 0;
  },
);

function agentAlive(id: string): boolean {
  const [pid, start] = (readTextIfExists(`${stateDir(id)}/agent`) ?? "").trim().split(" ");
  return !!pid && processStartTime(Number(pid)) === start;
}

function ago(iso: string): string {
  const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  return s < 60 ? `${s} seconds` : s < 3600 ? `${Math.round(s / 60)} minutes` : `${Math.round(s / 3600)} hours`;
}

function statusText(s: ContainerState): string {
  if (s.status === "stopped") return s.exitCode === undefined ? "Exited" : `Exited (${s.exitCode})`;
  if (s.status === "running") return `Up ${ago(s.created)}`;
  return s.status[0]!.toUpperCase() + s.status.slice(1);
}

/** `minic ps` with no id: the container table. */
export function containerTable({ flags }: Pick<VerbInput, "flags">): number {
  const states = listStates().filter((s) => flags.all || s.status !== "stopped");
  if (flags.format === "json") {
    console.log(JSON.stringify(states.map((s) => ({
      id: s.id, name: s.annotations?.["org.minic.name"] ?? s.id, command: s.command ?? [], status: s.status,
      exitCode: s.exitCode ?? null, created: s.created, pid: s.pid,
    }))));
    return 0;
  }
  printTable([
    ["CONTAINER ID", "NAME", "COMMAND", "STATUS", "CREATED"],
    ...states.map((s) => [s.id.slice(0, 12), s.annotations?.["org.minic.name"] ?? s.id, JSON.stringify((s.command ?? []).join(" ")), statusText(s), `${ago(s.created)} ago`]),
  ]);
  return 0;
}
