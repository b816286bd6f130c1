// Running one container in the foreground: prepare its state directory, compile the plan, launch
// it, wait, and clean up whatever happened.
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { compilePlan, type PlanContext } from "./plan.ts";
import type { Spec } from "./spec/types.ts";
import { launch, waitForExit, SetupError, SignalRelay } from "./process/agent.ts";
import { exitCodeFor } from "./process/status.ts";
import { describeStep } from "./process/step.ts";
import { ENOENT, EISDIR, EACCES, ENOEXEC, errnoName } from "./libc/errno.ts";
import { strerror } from "./libc/ffi.ts";
import { log } from "./log.ts";

export interface RunOptions {
  trace?: (line: string) => void;
  setupTimeoutMs?: number;
  init?: boolean;
}

/** 12 random hex digits, like a short docker id. */
export function newContainerId(): string {
  return [...crypto.getRandomValues(new Uint8Array(6))].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** Where minic keeps per-container files: /run/minic for root, the user's runtime dir otherwise. */
export function stateRoot(): string {
  if (process.env.MINIC_ROOT) return process.env.MINIC_ROOT;
  if (process.getuid!() === 0) return "/run/minic";
  return process.env.XDG_RUNTIME_DIR ? `${process.env.XDG_RUNTIME_DIR}/minic` : `/tmp/minic-${process.getuid!()}`;
}

export function containerId(spec: Spec): string {
  return spec.annotations?.["org.minic.id"] ?? "container";
}

/** The plan as --dry-run prints it: one numbered line per step. */
export function formatPlan(spec: Spec, context: PlanContext = {}): string {
  return compilePlan(spec, context)
    .map((step, i) => `${String(i + 1).padStart(2)}. ${describeStep(step)}${step.kind === "call" ? "" : `   [${step.kind}]`}\n      ${step.label}`)
    .join("\n");
}

/**
 * The files docker generates for a container with its own root: /etc/hostname, /etc/hosts, and
 * /etc/resolv.conf (the host's, less loopback name servers, which do not answer from inside).
 */
export function writeEtcFiles(dir: string, spec: Spec, hostNetwork: boolean): NonNullable<PlanContext["etcFiles"]> {
  const hostname = spec.hostname ?? containerId(spec);
  const files = {
    hostname: `${hostname}\n`,
    hosts:
      "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\n" +
      `ff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n127.0.1.1\t${hostname}\n`,
    "resolv.conf": resolvConf(hostNetwork),
  };
  const paths: Record<string, string> = {};
  for (const [name, text] of Object.entries(files)) writeFileSync((paths[name] = `${dir}/${name}`), text, { mode: 0o644 });
  return paths;
}

function resolvConf(hostNetwork: boolean): string {
  const host = existsSync("/etc/resolv.conf") ? readFileSync("/etc/resolv.conf", "utf8") : "";
  if (hostNetwork) return host;
  const loopback = /^\s*nameserver\s+(127\.|::1\b)/;
  return host.split("\n").filter((line) => !loopback.test(line)).join("\n");
}

/** Run the container to its end and return the exit code minic should end with. */
export async function runContainer(spec: Spec, options: RunOptions = {}): Promise<number> {
  const id = containerId(spec);
  const dir = `${stateRoot()}/${id}`;
  if (existsSync(dir)) throw new Error(`a container named ${id} already exists (${dir}); choose another --name`);
  mkdirSync(dir, { recursive: true, mode: 0o711 });
  const relay = new SignalRelay({ trace: options.trace }).start();
  try {
    const context: PlanContext = {};
    if (spec.root && spec.annotations?.["org.minic.etc"] !== "none") {
      const hostNetwork = !spec.linux?.namespaces?.some((n) => n.type === "network");
      context.etcFiles = writeEtcFiles(dir, spec, hostNetwork);
    }
    const steps = compilePlan(spec, context);
    const launched = await launch(steps, { trace: options.trace, setupTimeoutMs: options.setupTimeoutMs }, relay);
    return exitCodeFor(await waitForExit(launched, options.trace));
  } catch (error) {
    if (!(error instanceof SetupError)) throw error;
    log.error(error.step.kind === "exec" ? execFailureMessage(spec.process!.args[0]!, error.errno) : error.message);
    return error.exitCode;
  } finally {
    relay.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** How a shell would say that the command could not be run. */
export function execFailureMessage(command: string, err: number): string {
  if (err === ENOENT && !command.includes("/")) return `${command}: command not found`;
  if (err === EACCES && !command.includes("/")) return `${command}: permission denied (found in PATH but not executable)`;
  const text = err === EISDIR ? "is a directory" : err === ENOEXEC ? "exec format error (not a binary, no #! line)" : strerror(err).toLowerCase();
  return `${command}: ${text} (${errnoName(err)})`;
}
