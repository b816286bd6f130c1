// The one module that talks to the host's firewall: masquerading for the bridge network and the
// forwarding of published ports. Nothing else in minic knows whether it is nft or iptables.
//
// ---- Rebuilt, never appended -----------------------------------------------------------------
// minic's rules are a pure function of the live leases (ipam.ts): every change (a container
// starting or ending, a stale lease reclaimed) rebuilds the whole set from them, atomically:
//   nft:      one `nft -f -` transaction: `table ip minic` / `delete table ip minic` / the new table
//   iptables: `iptables-restore --noflush` of minic's own chains (declaring a chain flushes it), and
//             jumps from the built-in chains added only after `iptables -C` says they are missing
// So rules cannot pile up across runs, a rule of a container whose run was killed disappears at
// the next run, and running it twice changes nothing. With no live container, everything is
// removed: the table (or the chains and jumps). Each port rule carries `minic:ID` as its comment,
// so `nft list table ip minic` tells which container it belongs to.
//
// ---- Published ports reach the container through DNAT, also from 127.0.0.1 --------------------
// A packet to a local address of the host (`fib daddr type local`, iptables `addrtype LOCAL`) on a
// published port is DNATed to the container, in prerouting (from outside and from containers) and
// in output (from the host itself). For the host's own 127.0.0.1:HOSTPORT, the DNATed packet still
// has source 127.0.0.1, which the kernel refuses to route out of a non-loopback device unless
// net.ipv4.conf.minic0.route_localnet=1, and which the container could not answer; so it is set on
// the bridge, and postrouting masquerades 127.0.0.0/8 going out minic0 (to the bridge address),
// as docker does without its userland proxy. route_localnet would also let a container send to the
// host's 127.0.0.1 services through the bridge: a raw-priority rule drops anything arriving on
// minic0 for 127.0.0.0/8. DNAT was chosen over a userspace proxy: no process must outlive or
// accompany the agent, UDP works the same, and the rule goes away with the rest.
//
// Containers reaching a published port through the bridge address (or another host address) are
// masqueraded too (`ct status dnat`), so that the answer comes back through the host. A container
// reaching its OWN published port that way (hairpin) does not work while br_netfilter is active
// (net.bridge.bridge-nf-call-iptables=1, the default): the DNATed packet is then bridged straight
// back to the port it came in on, which a bridge only does in hairpin mode, and hairpin mode would
// reflect the container's own broadcasts to it (its IPv6 duplicate address detection then fails).
//
// Not handled: a host whose own forward chain drops by default (docker sets iptables' FORWARD
// policy to DROP): with iptables, minic adds its MINIC-FORWARD accepts to FORWARD; with nft, a
// drop in another table's base chain cannot be overridden from ours, so it must be allowed there.
import { readTextIfExists, removeTree, writeText } from "../libc/fs.ts";

export interface PortForward {
  /** The container the rule belongs to (in the rule's comment). */
  id: string;
  /** The host address it is published on; null for every local address. */
  hostIp: string | null;
  hostPort: number;
  protocol: "tcp" | "udp";
  containerIp: string;
  containerPort: number;
}

export interface FirewallConfig {
  /** The bridge, minic0. */
  bridge: string;
  /** Its subnet, e.g. 10.77.0.0/24. */
  subnet: string;
  forwards: PortForward[];
}

export type FirewallBackend = "nft" | "iptables";

const TABLE = "minic";
const COMMAND_TIMEOUT_MS = 20_000;

// ---- running the tools ---------------------------------------------------------------------------

interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

async function run(argv: string[], stdin?: string, timeoutMs = COMMAND_TIMEOUT_MS): Promise<CommandResult> {
  const proc = Bun.spawn([tool(argv[0]!) ?? argv[0]!, ...argv.slice(1)], {
    stdin: stdin === undefined ? "ignore" : new TextEncoder().encode(stdin),
    stdout: "pipe",
    stderr: "pipe",
    env: { ...process.env, LC_ALL: "C" },
  });
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    proc.kill("SIGKILL");
  }, timeoutMs);
  try {
    const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
    if (timedOut) return { code: -1, stdout, stderr: `${stderr}(killed after ${timeoutMs / 1000} s)` };
    return { code, stdout, stderr };
  } finally {
    clearTimeout(timer);
  }
}

async function mustRun(argv: string[], stdin?: string): Promise<string> {
  const r = await run(argv, stdin);
  if (r.code !== 0) {
    const why = r.stderr.trim().split("\n").slice(0, 6).join("; ") || `exit ${r.code}`;
    throw new Error(`${argv.join(" ")} failed: ${why}`);
  }
  return r.stdout;
}

let backend: FirewallBackend | null = null;

/** Firewall tools live in sbin, which an unprivileged PATH (or a test's) may leave out. */
const TOOL_PATH = "/usr/local/sbin:/usr/sbin:/sbin:/usr/local/bin:/usr/bin:/bin";
export const tool = (name: string) => Bun.which(name, { PATH: `${process.env.PATH ?? ""}:${TOOL_PATH}` });

/**
 * nft if it is installed, else iptables, else a clear error (a runtime does not install packages
 * on its own). MINIC_FIREWALL=nft|iptables forces one (the tests use it).
 */
export async function firewallBackend(): Promise<FirewallBackend> {
  if (backend) return backend;
  const forced = process.env.MINIC_FIREWALL;
  if (forced === "nft" || forced === "iptables") {
    if (!tool(forced)) throw new Error(`MINIC_FIREWALL=${forced}, but ${forced} is not installed`);
    return (backend = forced);
  }
  if (tool("nft")) return (backend = "nft");
  if (tool("iptables") && tool("iptables-restore")) return (backend = "iptables");
  throw new Error("--network bridge needs nft (Debian package nftables) or iptables; neither is installed (or use --network none)");
}

// ---- sysctls -------------------------------------------------------------------------------------

function setSysctl(path: string, value: string): void {
  if (readTextIfExists(path)?.trim() === value) return;
  writeText(path, `${value}\n`);
}

/**
 * net.ipv4.ip_forward=1 (in the calling thread's network namespace). It is left on afterwards:
 * turning it off could break whatever else on the host relies on it.
 */
export function enableIpForwarding(): void {
  setSysctl("/proc/sys/net/ipv4/ip_forward", "1");
}

/** net.ipv4.conf.BRIDGE.route_localnet=1, for published ports on 127.0.0.1 (see above). */
export function enableRouteLocalnet(bridge: string): void {
  setSysctl(`/proc/sys/net/ipv4/conf/${bridge}/route_localnet`, "1");
}

// ---- the rules -----------------------------------------------------------------------------------

const safeComment = (id: string) => `minic:${id.replace(/[^A-Za-z0-9_.-]/g, "_")}`;
const quote = (name: string) => `"${name.replace(/[^A-Za-z0-9_.-]/g, "")}"`;

/** The nft script that replaces table ip minic with the rules for `config` (or just removes it). */
export function nftScript(config: FirewallConfig | null): string {
  const lines = [`table ip ${TABLE}`, `delete table ip ${TABLE}`];
  if (!config) return `${lines.join("\n")}\n`;
  const br = quote(config.bridge);
  const published = config.forwards.map((f) => {
    const daddr = f.hostIp ? `ip daddr ${f.hostIp} ` : "";
    return `    ${daddr}${f.protocol} dport ${f.hostPort} dnat to ${f.containerIp}:${f.containerPort} comment "${safeComment(f.id)}"`;
  });
  lines.push(
    `table ip ${TABLE} {`,
    `  chain guard {`,
    `    type filter hook prerouting priority raw; policy accept;`,
    `    iifname ${br} ip daddr 127.0.0.0/8 drop comment "minic: nothing from containers to the host's 127.0.0.0/8"`,
    `  }`,
    `  chain prerouting {`,
    `    type nat hook prerouting priority dstnat; policy accept;`,
    `    fib daddr type local jump published`,
    `  }`,
    `  chain output {`,
    `    type nat hook output priority -100; policy accept;`,
    `    fib daddr type local jump published`,
    `  }`,
    `  chain published {`,
    ...published,
    `  }`,
    `  chain postrouting {`,
    `    type nat hook postrouting priority srcnat; policy accept;`,
    `    oifname != ${br} ip saddr ${config.subnet} masquerade comment "minic: outbound"`,
    `    oifname ${br} ip saddr 127.0.0.0/8 masquerade comment "minic: published ports from 127.0.0.1"`,
    `    oifname ${br} ip saddr ${config.subnet} ct status dnat masquerade comment "minic: published ports from the bridge"`,
    `  }`,
    `}`,
  );
  return `${lines.join("\n")}\n`;
}

/** iptables: minic's chains, by table, and the jumps into them from the built-in chains. */
const IPT_JUMPS: Array<[table: string, chain: string, rule: string[]]> = [
  ["raw", "PREROUTING", ["-j", "MINIC-GUARD"]],
  ["nat", "PREROUTING", ["-m", "addrtype", "--dst-type", "LOCAL", "-j", "MINIC-PUBLISHED"]],
  ["nat", "OUTPUT", ["-m", "addrtype", "--dst-type", "LOCAL", "-j", "MINIC-PUBLISHED"]],
  ["nat", "POSTROUTING", ["-j", "MINIC-POSTROUTING"]],
  ["filter", "FORWARD", ["-j", "MINIC-FORWARD"]],
];
const IPT_CHAINS: Record<string, string[]> = {
  raw: ["MINIC-GUARD"],
  nat: ["MINIC-PUBLISHED", "MINIC-POSTROUTING"],
  filter: ["MINIC-FORWARD"],
};

/** The iptables-restore --noflush input that (re)fills minic's chains for `config`. */
export function iptablesScript(config: FirewallConfig): string {
  const br = config.bridge.replace(/[^A-Za-z0-9_.-]/g, "");
  const rules: Record<string, string[]> = {
    raw: [`-A MINIC-GUARD -i ${br} -d 127.0.0.0/8 -j DROP`],
    nat: [
      ...config.forwards.map((f) =>
        `-A MINIC-PUBLISHED ${f.hostIp ? `-d ${f.hostIp}/32 ` : ""}-p ${f.protocol} -m ${f.protocol} --dport ${f.hostPort} ` +
        `-m comment --comment ${safeComment(f.id)} -j DNAT --to-destination ${f.containerIp}:${f.containerPort}`),
      `-A MINIC-POSTROUTING -s ${config.subnet} ! -o ${br} -j MASQUERADE`,
      `-A MINIC-POSTROUTING -s 127.0.0.0/8 -o ${br} -j MASQUERADE`,
      `-A MINIC-POSTROUTING -s ${config.subnet} -o ${br} -m conntrack --ctstate DNAT -j MASQUERADE`,
    ],
    filter: [
      `-A MINIC-FORWARD -i ${br} -j ACCEPT`,
      `-A MINIC-FORWARD -o ${br} -m conntrack --ctstate RELATED,ESTABLISHED,DNAT -j ACCEPT`,
    ],
  };
  return Object.entries(IPT_CHAINS)
    .map(([table, chains]) => [`*${table}`, ...chains.map((c) => `:${c} - [0:0]`), ...rules[table]!, "COMMIT"].join("\n"))
    .join("\n") + "\n";
}

async function iptablesApply(config: FirewallConfig | null): Promise<void> {
  const has = async (table: string, chain: string, rule: string[]) =>
    (await run(["iptables", "-w", "5", "-t", table, "-C", chain, ...rule])).code === 0;
  if (config) {
    await mustRun(["iptables-restore", "-w", "5", "--noflush"], iptablesScript(config));
    for (const [table, chain, rule] of IPT_JUMPS) {
      if (!(await has(table, chain, rule))) await mustRun(["iptables", "-w", "5", "-t", table, "-I", chain, "1", ...rule]);
    }
    return;
  }
  // Remove the jumps (every copy, in case someone added one by hand), then the chains.
  for (const [table, chain, rule] of IPT_JUMPS) {
    for (let i = 0; i < 10 && (await has(table, chain, rule)); i++) {
      await mustRun(["iptables", "-w", "5", "-t", table, "-D", chain, ...rule]);
    }
  }
  for (const [table, chains] of Object.entries(IPT_CHAINS)) {
    for (const chain of chains) {
      if ((await run(["iptables", "-w", "5", "-t", table, "-F", chain])).code === 0) {
        await mustRun(["iptables", "-w", "5", "-t", table, "-X", chain]);
      }
    }
  }
}

async function firewallPresent(kind: FirewallBackend): Promise<boolean> {
  const argv = kind === "nft" ? ["nft", "list", "table", "ip", TABLE] : ["iptables", "-w", "5", "-t", "nat", "-S", "MINIC-POSTROUTING"];
  return (await run(argv)).code === 0;
}

/**
 * Make the host firewall hold exactly minic's rules for `config` (the bridge's masquerading and
 * the port forwards of live containers), or none at all for null. Idempotent and atomic per table.
 *
 * An nft transaction that replaces the table costs 8-15 ms of kernel time, so with `stateFile`
 * (a file only written under the IPAM lock) the rules last applied are remembered, and applying
 * the same again is skipped while minic's table (or chain) is still there: a container without
 * published ports joining or leaving others changes nothing. If the table was removed by someone
 * (a `flush ruleset`), it is rebuilt.
 */
export async function applyFirewall(config: FirewallConfig | null, options: { stateFile?: string } = {}): Promise<void> {
  const kind = await firewallBackend();
  const wanted = `${kind}\n${kind === "nft" ? nftScript(config) : config ? iptablesScript(config) : "none\n"}`;
  const { stateFile } = options;
  if (stateFile) {
    if (readTextIfExists(stateFile) === wanted && (await firewallPresent(kind)) === (config !== null)) return;
    removeFile(stateFile); // until the new rules are in, nothing is known
  }
  if (kind === "nft") await mustRun(["nft", "-f", "-"], nftScript(config));
  else await iptablesApply(config);
  if (stateFile) writeText(stateFile, wanted, 0o644);
}

function removeFile(path: string): void {
  try {
    removeTree(path);
  } catch {}
}

/** minic's rules as the firewall lists them now ("" when there are none), for diagnostics and tests. */
export async function listFirewall(): Promise<string> {
  if ((await firewallBackend()) === "nft") {
    const r = await run(["nft", "list", "table", "ip", TABLE]);
    return r.code === 0 ? r.stdout : "";
  }
  let out = "";
  for (const [table, chains] of Object.entries(IPT_CHAINS)) {
    for (const chain of chains) {
      const r = await run(["iptables", "-w", "5", "-t", table, "-S", chain]);
      if (r.code === 0) out += r.stdout;
    }
  }
  for (const [table, chain] of IPT_JUMPS) {
    const r = await run(["iptables", "-w", "5", "-t", table, "-S", chain]);
    if (r.code === 0) out += r.stdout.split("\n").filter((l) => l.includes("MINIC-")).map((l) => `${l}\n`).join("");
  }
  return out;
}

/** Forget the detected backend (tests switch MINIC_FIREWALL between runs). */
export function resetFirewallBackend(): void {
  backend = null;
}
