// The container's configuration: the OCI runtime-spec config.json (runtime-spec 1.x), typed.
// `minic run` flags build one of these in memory; `minic run --bundle DIR` reads one. The fields
// listed are the ones minic reads; anything else in a config.json is checked by spec/validate.ts.
import type { LinuxResources } from "../cgroups/resources.ts";
import type { LinuxSeccomp } from "../security/seccomp.ts";
import type { LinuxDevice } from "../security/devices.ts";

export const OCI_VERSION = "1.2.0";

export interface Spec {
  ociVersion: string;
  process?: Process;
  root?: { path: string; readonly?: boolean };
  hostname?: string;
  domainname?: string;
  mounts?: Mount[];
  hooks?: Hooks;
  annotations?: Record<string, string>;
  linux?: Linux;
}

export interface Process {
  terminal?: boolean;
  consoleSize?: { height: number; width: number };
  user: { uid: number; gid: number; umask?: number; additionalGids?: number[] };
  args: string[];
  env?: string[];
  cwd: string;
  capabilities?: Partial<Record<"bounding" | "effective" | "inheritable" | "permitted" | "ambient", string[]>>;
  rlimits?: Array<{ type: string; soft: number; hard: number }>;
  noNewPrivileges?: boolean;
  oomScoreAdj?: number;
}

export interface Mount {
  destination: string;
  source?: string;
  type?: string;
  options?: string[];
}

export interface Hook {
  path: string;
  args?: string[];
  env?: string[];
  timeout?: number;
}
export type Hooks = Partial<
  Record<"prestart" | "createRuntime" | "createContainer" | "startContainer" | "poststart" | "poststop", Hook[]>
>;

export type NamespaceType = "pid" | "network" | "mount" | "ipc" | "uts" | "user" | "cgroup" | "time";

export interface IdMapping {
  containerID: number;
  hostID: number;
  size: number;
}

export interface Linux {
  namespaces?: Array<{ type: NamespaceType; path?: string }>;
  uidMappings?: IdMapping[];
  gidMappings?: IdMapping[];
  resources?: LinuxResources;
  cgroupsPath?: string;
  seccomp?: LinuxSeccomp;
  maskedPaths?: string[];
  readonlyPaths?: string[];
  rootfsPropagation?: string;
  sysctl?: Record<string, string>;
  devices?: LinuxDevice[];
}
