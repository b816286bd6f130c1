// The OCI runtime verbs, as runc spells them: create, start, state, kill, delete, pause, resume,
// list and ps. podman (through conmon) and containerd (through its shim) call these.
import type { ArgsDef } from "citty";
import { readBundle } from "./run.ts";
import { UsageError } from "./argv.ts";
import type { Verb, VerbInput } from "./verb.ts";
import { traceLine } from "../log.ts";
import {
  createContainer, deleteContainer, killContainer, parseSignal, pauseContainer, publicState, startContainer,
} from "../lifecycle.ts";
import { listStates, readState, stateDir } from "../state.ts";
import { ContainerCgroup } from "../cgroups/cgroup.ts";
import { detectLayout } from "../cgroups/layout.ts";
import { isDirectory, readTextIfExists, resolvePath } from "../libc/fs.ts";

const idArg = { id: { type: "positional", description: "The container id" } } satisfies ArgsDef;

export function theId(rest: string[], verb: string, extra = 0): string {
  if (rest.length < 1 || rest.length > 1 + extra) throw new UsageError(`${verb} needs a container id`, `usage: minic ${verb} [FLAGS] ID${extra ? " [SIGNAL]" : ""}`);
  return rest[0]!;
}

export function verb(name: string, description: string, args: ArgsDef, main: (input: VerbInput) => Promise<number> | number): Verb {
  return { command: { meta: { name, description }, args: { ...args, ...idArg } }, main: async (input) => main(input) };
}

export const create = verb(
  "create",
  "Create a container from an OCI bundle: set everything up, then hold its process just before exec until `minic start`.",
  {
    bundle: { type: "string", alias: "b", valueHint: "DIR", description: "The bundle (default: the current directory)" },
    "pid-file": { type: "string", valueHint: "FILE", description: "Write the container's init pid here" },
    "console-socket": { type: "string", valueHint: "SOCKET", description: "Send the pseudo-terminal's master here (process.terminal)" },
    "no-pivot": { type: "boolean", description: "Accepted for runc compatibility; minic always uses pivot_root" },
    "no-new-keyring": { type: "boolean", description: "Accepted for runc compatibility (minic creates no keyring)" },
    trace: { type: "boolean", description: "Narrate the setup's syscalls on stderr" },
  },
  async ({ flags, rest }) => {
    const id = theId(rest, "create");
    const bundle = resolvePath(flags.bundle ?? ".");
    const spec = readBundle(bundle);
    if (spec.root && !isDirectory(spec.root.path)) throw new Error(`config.json: root.path ${spec.root.path} is not a directory`);
    if (spec.process?.terminal && !flags["console-socket"]) {
      throw new UsageError("config.json: process.terminal is true: create needs --console-socket to hand the terminal over");
    }
    if (flags["console-socket"] && !spec.process?.terminal) {
      throw new UsageError("--console-socket: config.json's process.terminal is false: there is no terminal to send");
    }
    await createContainer(spec, id, {
      bundle, pidFile: flags["pid-file"] && resolvePath(flags["pid-file"]), trace: flags.trace ? traceLine : undefined,
      consoleSocket: flags["console-socket"] && resolvePath(flags["console-socket"]),
      setupTimeoutMs: Number(process.env.MINIC_SETUP_TIMEOUT_MS) || undefined,
    });
    return 0;
  },
);

export const start = verb("start", "Start a created container: its process execs the configured command.", {}, async ({ rest }) => {
  await startContainer(theId(rest, "start"));
  return 0;
});

export const state = verb("state", "Print a container's state as runtime-spec JSON.", {}, ({ rest }) => {
  console.log(JSON.stringify(publicState(readState(theId(rest, "state"))), null, 2));
  return 0;
});

export const kill = verb(
  "kill",
  "Send a signal (default SIGTERM; TERM, SIGTERM or 15) to a container's init.",
  { all: { type: "boolean", alias: "a", description: "Send it to every process of the container" } },
  ({ flags, rest }) => {
    const id = theId(rest, "kill", 1);
    killContainer(id, parseSignal(rest[1] ?? "SIGTERM"), !!flags.all);
    return 0;
  },
);

export const del = verb(
  "delete",
  "Delete a container: its cgroup and state. A running container needs --force.",
  { force: { type: "boolean", alias: "f", description: "Kill it first if it is still running" } },
  async ({ flags, rest }) => {
    const id = theId(rest, "delete");
    // As runc: --force on a container that does not exist succeeds. podman and containerd's shim
    // run `delete --force` to clean up after a failed create, and would report a second error.
    if (flags.force && /^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(id) && readTextIfExists(`${stateDir(id)}/state.json`) === null) return 0;
    await deleteContainer(id, !!flags.force);
    return 0;
  },
);

export const pause = verb("pause", "Freeze every process of a container (the freezer cgroup).", {}, ({ rest }) => {
  pauseContainer(theId(rest, "pause"), true);
  return 0;
});

export const resume = verb("resume", "Thaw a paused container.", {}, ({ rest }) => {
  pauseContainer(theId(rest, "resume"), false);
  return 0;
});

export const list = verb(
  "list",
  "List containers: ID, PID, STATUS, BUNDLE, CREATED.",
  {
    quiet: { type: "boolean", alias: "q", description: "Print the ids only" },
    format: { type: "enum", alias: "f", options: ["table", "json"], description: "table (default) or json" },
  },
  ({ flags }) => {
    const states = listStates();
    if (flags.quiet) for (const s of states) console.log(s.id);
    else if (flags.format === "json") console.log(JSON.stringify(states.map(publicState)));
    else {
      const rows = [["ID", "PID", "STATUS", "BUNDLE", "CREATED"], ...states.map((s) => [s.id, String(s.pid), s.status, s.bundle, s.created])];
      printTable(rows);
    }
    return 0;
  },
);

export const ps = verb(
  "ps",
  "With an id, list the processes of that container (PID, command); without one, list containers as docker ps does.",
  {
    format: { type: "enum", alias: "f", options: ["table", "json"], description: "table (default) or json" },
    all: { type: "boolean", alias: "a", description: "Without an id: also the stopped containers" },
  },
  async ({ flags, rest }) => {
    if (rest.length === 0) return (await import("./docker.ts")).containerTable({ flags });
    const s = readState(theId(rest, "ps"));
    if (s.status === "stopped") throw new Error(`container "${s.id}" is stopped`);
    const pids = s.cgroupPath ? ContainerCgroup.open(detectLayout(), s.cgroupPath).pids() : [s.pid];
    if (flags.format === "json") console.log(JSON.stringify(pids));
    else printTable([["PID", "CMD"], ...pids.map((p) => [String(p), (readTextIfExists(`/proc/${p}/cmdline`) ?? "").split("\0").join(" ").trim()])]);
    return 0;
  },
);

export function printTable(rows: string[][]): void {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length)));
  for (const row of rows) console.log(row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]! + 3))).join(""));
}
