// The bridge-network library (src/network/): netlink, IPAM, NAT and published ports.
//
// SAFETY: nothing here touches the machine's real network. The pure tests (parsing, the rule
// scripts) run in this process. Everything else runs in a second `bun test` of this same file,
// started under `unshare --net --mount`, in a fresh network namespace that stands in for "the
// host": its own interfaces, its own nft tables, its own sysctls. Inside it, the "containers" and
// an "outside" host are network namespaces of `unshare --net sleep` processes the test made, and
// the only traffic goes to loopback, to the addresses the test gave them, and to the bridge. The
// sandboxed run refuses to start unless its namespace differs from the one the outer run is in,
// and has no interface but lo.
import { afterAll, afterEach, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { mkdtempSync, readFileSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { checkHostPortFree, parsePortMapping, parsePortMappings, PortError } from "../src/network/ports.ts";
import { parseSubnet, parseIPv4, formatIPv4, overlaps } from "../src/network/ipv4.ts";
import { iptablesScript, nftScript, type FirewallConfig } from "../src/network/nat.ts";

setDefaultTimeout(60_000);

const SANDBOX = process.env.MINIC_NETLIB_SANDBOX === "1";
const REPO = join(import.meta.dir, "..");
const isRoot = process.getuid!() === 0;
const hasTools = ["unshare", "nsenter", "ip"].every((t) => Bun.which(t));

// ---- pure: parsing and rule scripts (no namespace needed) ---------------------------------------

describe.if(!SANDBOX)("ports: parsing -p", () => {
  test("HOSTPORT:CTRPORT and IP:HOSTPORT:CTRPORT, tcp by default", () => {
    expect(parsePortMapping("8080:80")).toEqual({ hostIp: null, hostPort: 8080, containerPort: 80, protocol: "tcp", spec: "8080:80" });
    expect(parsePortMapping("53:5353/udp")).toMatchObject({ hostPort: 53, containerPort: 5353, protocol: "udp" });
    expect(parsePortMapping("127.0.0.1:8080:80/tcp")).toMatchObject({ hostIp: "127.0.0.1", hostPort: 8080, containerPort: 80 });
    expect(parsePortMapping("0.0.0.0:1:65535").hostIp).toBeNull();
  });

  test("malformed values get one clear line each", () => {
    const cases: Array<[string, RegExp]> = [
      ["80", /^-p 80: give the host port too, as in -p 80:80/],
      ["", /^-p : give the host port too/],
      ["8080:", /^-p 8080:: the container port is missing$/],
      [":80", /^-p :80: the host port is missing$/],
      ["0:80", /^-p 0:80: the host port "0" is not a port number \(1-65535\)$/],
      ["8080:65536", /^-p 8080:65536: the container port "65536" is not a port number/],
      ["http:80", /^-p http:80: the host port "http" is not a port number/],
      ["8080:80/sctp", /^-p 8080:80\/sctp: protocol "sctp" is not supported \(use tcp or udp\)$/],
      ["8080:80/", /^-p 8080:80\/: protocol "" is not supported/],
      ["8080:80/tcp/udp", /^-p 8080:80\/tcp\/udp: expected HOSTPORT:CTRPORT/],
      ["1.2.3:8080:80", /^-p 1.2.3:8080:80: "1.2.3" is not an IPv4 address$/],
      ["256.0.0.1:8080:80", /"256.0.0.1" is not an IPv4 address/],
      ["a:b:c:d", /^-p a:b:c:d: expected HOSTPORT:CTRPORT\[\/tcp\|\/udp\] or IP:HOSTPORT:CTRPORT/],
      ["[::1]:8080:80", /IPv6 host addresses are not supported/],
    ];
    for (const [spec, message] of cases) {
      let error: unknown;
      try {
        parsePortMapping(spec);
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(PortError);
      expect((error as Error).message).toMatch(message);
      expect((error as Error).message).not.toContain("\n");
    }
  });

  test("two -p for the same host port are refused; tcp and udp may share a number", () => {
    expect(() => parsePortMappings(["8080:80", "127.0.0.1:8080:81"])).toThrow(
      "-p 127.0.0.1:8080:81: host port 8080/tcp is already published by -p 8080:80",
    );
    expect(parsePortMappings(["8080:80", "8080:80/udp", "127.0.0.1:9090:90", "127.0.0.2:9090:90"])).toHaveLength(4);
  });
});

describe.if(!SANDBOX)("ipv4 and subnets", () => {
  test("parse, format, overlap", () => {
    expect(formatIPv4(parseIPv4("10.77.0.254")!)).toBe("10.77.0.254");
    expect(parseIPv4("10.77.0.1.2")).toBeNull();
    expect(parseIPv4("010.1.1.1")).toBeNull();
    const s = parseSubnet("10.77.0.0/24");
    expect([formatIPv4(s.gateway), formatIPv4(s.broadcast), s.prefix]).toEqual(["10.77.0.1", "10.77.0.255", 24]);
    expect(() => parseSubnet("10.77.0.1/24")).toThrow("host bits are set; did you mean 10.77.0.0/24?");
    expect(() => parseSubnet("10.77.0.0/31")).toThrow("between /8 and /30");
    expect(() => parseSubnet("banana")).toThrow("expected an IPv4 CIDR");
    expect(overlaps(parseSubnet("10.0.0.0/8"), s)).toBe(true);
    expect(overlaps(parseSubnet("10.78.0.0/24"), s)).toBe(false);
  });
});

describe.if(!SANDBOX)("nat: rule scripts", () => {
  const config: FirewallConfig = {
    bridge: "minic0",
    subnet: "10.77.0.0/24",
    forwards: [
      { id: "web", hostIp: null, hostPort: 8080, protocol: "tcp", containerIp: "10.77.0.2", containerPort: 80 },
      { id: "dns", hostIp: "127.0.0.1", hostPort: 5353, protocol: "udp", containerIp: "10.77.0.3", containerPort: 53 },
    ],
  };

  test("nft: the table is replaced as a whole, one masquerade, port rules commented with the container id", () => {
    const script = nftScript(config);
    expect(script.startsWith("table ip minic\ndelete table ip minic\ntable ip minic {\n")).toBe(true);
    expect(script.match(/masquerade comment "minic: outbound"/g)).toHaveLength(1);
    expect(script).toContain('tcp dport 8080 dnat to 10.77.0.2:80 comment "minic:web"');
    expect(script).toContain('ip daddr 127.0.0.1 udp dport 5353 dnat to 10.77.0.3:53 comment "minic:dns"');
    expect(nftScript(null)).toBe("table ip minic\ndelete table ip minic\n");
  });

  test("iptables: minic's own chains, declared (so flushed) before they are filled", () => {
    const script = iptablesScript(config);
    expect(script).toContain(":MINIC-PUBLISHED - [0:0]");
    expect(script).toContain("-A MINIC-PUBLISHED -p tcp -m tcp --dport 8080 -m comment --comment minic:web -j DNAT --to-destination 10.77.0.2:80");
    expect(script.match(/-j MASQUERADE/g)).toHaveLength(3);
  });
});

// ---- the sandbox: a second bun test of this file, in a fresh network namespace ----------------------

describe.if(!SANDBOX)("inside a fresh network namespace standing in for the host", () => {
  test.skipIf(!isRoot || !hasTools)("network library tests (unshare --net --mount -- bun test ...)", async () => {
    const root = mkdtempSync(join(tmpdir(), "minic-netlib-"));
    try {
      const proc = Bun.spawn(["unshare", "--net", "--mount", "--", process.execPath, "test", import.meta.path], {
        cwd: REPO,
        env: { ...process.env, MINIC_NETLIB_SANDBOX: "1", MINIC_NETLIB_OUTER_NETNS: readlinkSync("/proc/self/ns/net"), MINIC_ROOT: `${root}/state`, MINIC_NETWORK_DIR: `${root}/network` },
        stdout: "pipe",
        stderr: "pipe",
      });
      const timer = setTimeout(() => proc.kill("SIGKILL"), 240_000);
      const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
      clearTimeout(timer);
      const output = `${stdout}${stderr}`;
      // bun test reports on stderr; show the sandboxed run's own report either way
      process.stderr.write(`\n---- sandboxed run (exit ${code}) ----\n${output}\n---- end of sandboxed run ----\n`);
      const summary = { code, passed: Number(/\b(\d+) pass\b/.exec(output)?.[1] ?? 0), failed: Number(/\b(\d+) fail\b/.exec(output)?.[1] ?? -1) };
      expect(summary).toMatchObject({ code: 0, failed: 0 });
      expect(summary.passed).toBeGreaterThanOrEqual(12);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  }, 260_000);
});

if (SANDBOX) sandboxTests();

function sandboxTests() {
  // Imported here only: the outer run never loads the FFI-heavy modules it does not test.
  const lib = () => import("../src/network/index.ts");
  const netlink = () => import("../src/network/netlink.ts");
  const nat = () => import("../src/network/nat.ts");
  const ipam = () => import("../src/network/ipam.ts");

  const ROOT = process.env.MINIC_ROOT!;
  const LEASES = `${process.env.MINIC_NETWORK_DIR}/leases.json`;
  const WWW = mkdtempSync(join(tmpdir(), "minic-netlib-www-"));
  writeFileSync(`${WWW}/index.html`, "hello from the container\n");

  interface Sh {
    code: number;
    out: string;
  }
  /** A shell command in the sandbox, killed after `timeoutMs`. */
  async function sh(cmd: string, timeoutMs = 10_000): Promise<Sh> {
    const proc = Bun.spawn(["sh", "-c", cmd], { stdout: "pipe", stderr: "pipe" });
    const timer = setTimeout(() => proc.kill("SIGKILL"), timeoutMs);
    const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
    clearTimeout(timer);
    return { code, out: out + err };
  }
  const inNs = (pid: number, cmd: string) => `nsenter --net=/proc/${pid}/ns/net ${cmd}`;

  const processes: Array<{ pid: number; kill: (sig?: number) => void; exited: Promise<number> }> = [];
  /** A "container": a process in a network namespace of its own (with lo up, as minic's child does). */
  async function container(): Promise<number> {
    const proc = Bun.spawn(["unshare", "--net", "sh", "-c", "ip link set lo up; exec sleep 120"], { stdout: "ignore", stderr: "ignore" });
    processes.push(proc);
    const mine = readlinkSync("/proc/self/ns/net");
    for (let i = 0; i < 200; i++) {
      try {
        if (readlinkSync(`/proc/${proc.pid}/ns/net`) !== mine && readFileSync(`/proc/${proc.pid}/cmdline`, "utf8").startsWith("sleep")) return proc.pid;
      } catch {}
      await Bun.sleep(10);
    }
    throw new Error("the container process did not start");
  }
  /** busybox httpd serving WWW in the namespace of `pid`, on `port`. */
  async function httpd(pid: number, port = 80): Promise<void> {
    const proc = Bun.spawn(["nsenter", `--net=/proc/${pid}/ns/net`, "busybox", "httpd", "-f", "-p", String(port), "-h", WWW], { stdout: "ignore", stderr: "ignore" });
    processes.push(proc);
    for (let i = 0; i < 100; i++) {
      const listening = `:${port.toString(16).toUpperCase().padStart(4, "0")} 0+:0000 0A`; // state 0A: LISTEN (v4 or v6)
      if ((await sh(inNs(pid, `grep -Eq '${listening}' /proc/net/tcp /proc/net/tcp6`))).code === 0) return;
      await Bun.sleep(20);
    }
    throw new Error("httpd did not start");
  }
  const curl = (url: string, pid?: number) => {
    const cmd = `curl -sS --max-time 3 ${url}`;
    return sh(pid ? inNs(pid, cmd) : cmd);
  };
  const leases = (): Record<string, { id: string }> => {
    try {
      return JSON.parse(readFileSync(LEASES, "utf8"));
    } catch {
      return {};
    }
  };
  const links = async () => (await sh("ip -o link")).out;
  const ruleset = async () => (await sh("nft list ruleset")).out;
  const usedIds = new Set<string>();
  let n = 0;
  const newId = () => {
    const id = `c${++n}`;
    usedIds.add(id);
    return id;
  };

  beforeAll(async () => {
    // Refuse to run anywhere but in a namespace of our own (not the one the outer run was started in).
    const outer = process.env.MINIC_NETLIB_OUTER_NETNS;
    if (!outer || readlinkSync("/proc/self/ns/net") === outer) {
      throw new Error("SAFETY: the sandboxed run is not in a network namespace of its own; refusing");
    }
    if (!ROOT || !ROOT.startsWith(tmpdir())) throw new Error(`SAFETY: MINIC_ROOT (${ROOT}) is not a test directory`);
    const before = (await links()).trim().split("\n");
    if (before.length !== 1 || !before[0]!.includes(": lo:")) throw new Error(`SAFETY: the sandbox has other links:\n${before.join("\n")}`);
    expect((await sh("ip link set lo up")).code).toBe(0);
  });

  afterEach(async () => {
    const { teardownBridgeNetwork } = await lib();
    for (const id of usedIds) await teardownBridgeNetwork(id).catch(() => {});
    usedIds.clear();
    for (const p of processes.splice(0)) {
      p.kill(9);
      await p.exited;
    }
  });

  afterAll(() => rmSync(WWW, { recursive: true, force: true }));

  describe("netlink", () => {
    test("inNetns returns the thread to the agent's namespace, also when the function throws", async () => {
      const { inNetns, Netlink } = await netlink();
      const pid = await container();
      const home = readlinkSync("/proc/thread-self/ns/net");
      const seen = inNetns(`/proc/${pid}/ns/net`, () => readlinkSync("/proc/thread-self/ns/net"));
      expect(seen).toBe(readlinkSync(`/proc/${pid}/ns/net`));
      expect(readlinkSync("/proc/thread-self/ns/net")).toBe(home);
      expect(() => inNetns(`/proc/${pid}/ns/net`, () => { throw new Error("inside"); })).toThrow("inside");
      expect(readlinkSync("/proc/thread-self/ns/net")).toBe(home);
      // A socket opened there keeps talking to that namespace.
      const inner = Netlink.openIn(`/proc/${pid}/ns/net`);
      try {
        expect(inner.links().map((l) => l.name)).toEqual(["lo"]);
      } finally {
        inner.close();
      }
      expect(() => inNetns("/proc/0/ns/net", () => 1)).toThrow(/open \/proc\/0\/ns\/net: ENOENT/);
    });

    test("a refused request names the request, the object and the errno", async () => {
      const { withNetlink } = await netlink();
      withNetlink((nl) => {
        nl.createBridge("nltest0");
        try {
          expect(() => nl.createBridge("nltest0")).toThrow("netlink RTM_NEWLINK bridge nltest0: EEXIST (File exists)");
          expect(() => nl.deleteLink("nosuchlink0")).toThrow(/^netlink RTM_DELLINK link nosuchlink0: ENODEV/);
          expect(nl.linkIndex("nosuchlink0")).toBeNull();
          expect(nl.link("nltest0")).toMatchObject({ name: "nltest0", kind: "bridge" });
        } finally {
          nl.deleteLink("nltest0");
        }
      });
    });
  });

  describe("bridge network", () => {
    test("setup: minic0, the veth and eth0 with its address and route; the host and the container ping each other", async () => {
      const { setupBridgeNetwork, BRIDGE } = await lib();
      const pid = await container();
      const id = newId();
      const net = await setupBridgeNetwork({ id, pid });
      expect(net).toMatchObject({ address: "10.77.0.2", prefix: 24, gateway: "10.77.0.1", subnet: "10.77.0.0/24", mac: "02:4d:0a:4d:00:02" });
      expect(net.veth).toMatch(/^veth-[0-9a-f]{10}$/);

      const hostLinks = await links();
      expect(hostLinks).toMatch(new RegExp(`: ${BRIDGE}: <[^>]*\\bUP\\b`));
      expect(hostLinks).toMatch(new RegExp(`: ${net.veth}@if\\d+: <[^>]*\\bUP\\b[^\\n]*master ${BRIDGE}`));
      expect(hostLinks).toContain(`alias minic container ${id}`);
      expect((await sh("ip -o -4 addr show dev minic0")).out).toContain("inet 10.77.0.1/24 brd 10.77.0.255");
      expect((await sh(inNs(pid, "ip -o link"))).out).toMatch(/: eth0@if\d+: <[^>]*\bUP\b/);
      expect((await sh(inNs(pid, "ip -o -4 addr show dev eth0"))).out).toContain("inet 10.77.0.2/24 brd 10.77.0.255");
      expect((await sh(inNs(pid, "ip route show default"))).out.trim()).toBe("default via 10.77.0.1 dev eth0");
      expect(readFileSync("/proc/sys/net/ipv4/ip_forward", "utf8").trim()).toBe("1");
      expect(leases()["10.77.0.2"]).toMatchObject({ id, pid, veth: net.veth });

      expect((await sh("ping -c1 -W2 10.77.0.2")).code).toBe(0);
      expect((await sh(inNs(pid, "ping -c1 -W2 10.77.0.1"))).code).toBe(0);
    });

    test("two containers reach each other over TCP; a published port answers on 127.0.0.1, a host address and the bridge", async () => {
      const { setupBridgeNetwork, parsePortMappings } = await lib();
      const [a, b] = [await container(), await container()];
      const na = await setupBridgeNetwork({ id: newId(), pid: a, ports: parsePortMappings(["18080:80", "127.0.0.1:18081:80"]) });
      const nb = await setupBridgeNetwork({ id: newId(), pid: b });
      await httpd(a);
      expect((await curl(`http://${na.address}/`, b)).out).toBe("hello from the container\n"); // container to container
      expect((await curl("http://127.0.0.1:18080/")).out).toBe("hello from the container\n"); // host, 127.0.0.1
      expect((await curl("http://127.0.0.1:18081/")).out).toBe("hello from the container\n"); // host, -p 127.0.0.1:...
      expect((await curl(`http://${nb.gateway}:18080/`, b)).out).toBe("hello from the container\n"); // another container, via the bridge address
      expect((await curl(`http://${nb.gateway}:18081/`, b)).code).not.toBe(0); // published on 127.0.0.1 only
      expect((await curl("http://127.0.0.1:18082/")).code).not.toBe(0); // not published
    });

    test("outbound traffic is masqueraded: a host outside, with no route back to the subnet, answers", async () => {
      const { setupBridgeNetwork } = await lib();
      const outside = await container();
      // The sandbox host's uplink: 198.51.100.1 here, 198.51.100.2 outside (TEST-NET-2), default route out.
      const fixture = await sh(
        `ip link add uplink0 type veth peer name wan0 netns ${outside} && ip addr add 198.51.100.1/24 dev uplink0 && ` +
        `ip link set uplink0 up && ip route add default via 198.51.100.2 && ` +
        inNs(outside, "sh -c 'ip addr add 198.51.100.2/24 dev wan0 && ip link set wan0 up'"),
      );
      expect(fixture).toEqual({ code: 0, out: "" });
      try {
        const pid = await container();
        await setupBridgeNetwork({ id: newId(), pid });
        expect((await sh(inNs(outside, "ip route get 10.77.0.2"))).code).not.toBe(0); // no way back but through NAT
        await httpd(outside, 8000);
        const r = await curl("http://198.51.100.2:8000/", pid);
        expect(r).toEqual({ code: 0, out: "hello from the container\n" });
      } finally {
        await sh("ip link del uplink0");
      }
    });

    test("concurrent allocations get distinct addresses (in one process and across processes)", async () => {
      const { setupBridgeNetwork } = await lib();
      const [a, b] = [await container(), await container()];
      const [na, nb] = await Promise.all([setupBridgeNetwork({ id: newId(), pid: a }), setupBridgeNetwork({ id: newId(), pid: b })]);
      expect(na.address).not.toBe(nb.address);
      expect((await sh(`ping -c1 -W2 ${na.address} && ping -c1 -W2 ${nb.address}`)).code).toBe(0);

      // Four processes allocating at once through the lock file; each keeps its lease (lives) 1.5 s.
      const script = `import { Ipam } from "${REPO}/src/network/ipam.ts";
        const a = await new Ipam().allocate({ id: process.env.LEASE_ID });
        console.log(a.address); await Bun.sleep(1500);`;
      const procs = [1, 2, 3, 4].map((i) =>
        Bun.spawn([process.execPath, "-e", script], { env: { ...process.env, LEASE_ID: `proc${i}` }, stdout: "pipe", stderr: "pipe" }));
      const timer = setTimeout(() => procs.forEach((p) => p.kill(9)), 20_000);
      const outs = await Promise.all(procs.map(async (p) => `${await new Response(p.stdout).text()}${await new Response(p.stderr).text()}`.trim()));
      await Promise.all(procs.map((p) => p.exited));
      clearTimeout(timer);
      expect(outs.every((o) => /^10\.77\.0\.\d+$/.test(o))).toBe(true);
      expect(new Set([...outs, na.address, nb.address]).size).toBe(6);
      // Their owners are gone now: the next allocation reclaims those leases.
      const { Ipam } = await ipam();
      const again = await new Ipam().allocate({ id: "reclaimer" });
      expect(Object.values(leases()).map((l) => l.id).filter((id) => id.startsWith("proc"))).toEqual([]);
      await new Ipam().release("reclaimer");
      expect(again.address).toBe(formatIPv4(Math.min(...outs.map((o) => parseIPv4(o)!))));
    });

    test("teardown leaves no veth, lease or rule; a second teardown is harmless", async () => {
      const { setupBridgeNetwork, teardownBridgeNetwork, parsePortMappings } = await lib();
      const pid = await container();
      const id = newId();
      const net = await setupBridgeNetwork({ id, pid, ports: parsePortMappings(["18090:80"]) });
      expect(await links()).toContain(net.veth);
      expect(await ruleset()).toContain(`comment "minic:${id}"`);
      await net.cleanup();
      expect(await links()).not.toContain("veth-");
      expect((await sh(inNs(pid, "ip -o link"))).out).not.toContain("eth0");
      expect(leases()).toEqual({});
      expect((await ruleset()).trim()).toBe(""); // the last container gone: no table at all
      await teardownBridgeNetwork(id);
      await net.cleanup();
    });

    test("rules are never duplicated: a second container, the same rules applied twice", async () => {
      const { setupBridgeNetwork, parsePortMappings } = await lib();
      const { applyFirewall } = await nat();
      const count = async (what: string) => (await ruleset()).split(what).length - 1;
      const [a, b] = [await container(), await container()];
      const ida = newId();
      await setupBridgeNetwork({ id: ida, pid: a, ports: parsePortMappings(["18100:80"]) });
      await setupBridgeNetwork({ id: newId(), pid: b });
      expect(await count('masquerade comment "minic: outbound"')).toBe(1);
      expect(await count(`comment "minic:${ida}"`)).toBe(1);
      const config = { bridge: "minic0", subnet: "10.77.0.0/24", forwards: [] };
      await applyFirewall(config);
      await applyFirewall(config);
      expect(await count('masquerade comment "minic: outbound"')).toBe(1);
      expect(await count("table ip minic")).toBe(1);
    });

    test("a killed run's lease, veth and rules are reclaimed", async () => {
      const { cleanupStaleNetworks, setupBridgeNetwork, listBridgeLeases } = await lib();
      const pid = await container();
      // A run that sets up and dies without tearing down (as under SIGKILL).
      const script = `import { setupBridgeNetwork, parsePortMappings } from "${REPO}/src/network/index.ts";
        const net = await setupBridgeNetwork({ id: "ghost", pid: ${pid}, ports: parsePortMappings(["18110:80"]) });
        console.log(net.address); process.exit(0);`;
      const run = Bun.spawn([process.execPath, "-e", script], { stdout: "pipe", stderr: "pipe" });
      const timer = setTimeout(() => run.kill(9), 20_000);
      const out = (await new Response(run.stdout).text()) + (await new Response(run.stderr).text());
      clearTimeout(timer);
      expect(out.trim()).toBe("10.77.0.2");
      // The container still runs: its lease is live and kept.
      expect(await cleanupStaleNetworks()).toEqual([]);
      expect((await listBridgeLeases()).map((l) => l.id)).toEqual(["ghost"]);
      expect(await ruleset()).toContain('comment "minic:ghost"');
      // Now the container dies too.
      const proc = processes.find((p) => p.pid === pid)!;
      proc.kill(9);
      await proc.exited;
      expect(await cleanupStaleNetworks()).toEqual(["ghost"]);
      expect(leases()).toEqual({});
      expect(await ruleset()).not.toContain("minic:ghost");
      for (let i = 0; i < 100 && (await links()).includes("veth-"); i++) await Bun.sleep(20);
      expect(await links()).not.toContain("veth-");
      // And its address is free again.
      const next = await setupBridgeNetwork({ id: newId(), pid: await container() });
      expect(next.address).toBe("10.77.0.2");
    });

    test("--ip: a fixed address; taken, outside the subnet or the bridge's own are refused, leaving nothing", async () => {
      const { setupBridgeNetwork } = await lib();
      const [a, b] = [await container(), await container()];
      const na = await setupBridgeNetwork({ id: newId(), pid: a, ip: "10.77.0.50" });
      expect(na.address).toBe("10.77.0.50");
      expect((await sh(inNs(a, "ip -o -4 addr show dev eth0"))).out).toContain("10.77.0.50/24");
      const idb = newId();
      await expect(setupBridgeNetwork({ id: idb, pid: b, ip: "10.77.0.50" })).rejects.toThrow(/--ip 10.77.0.50: the address is in use by container c\d+/);
      await expect(setupBridgeNetwork({ id: idb, pid: b, ip: "10.78.0.5" })).rejects.toThrow("--ip 10.78.0.5: not a host address of the network's subnet 10.77.0.0/24");
      await expect(setupBridgeNetwork({ id: idb, pid: b, ip: "10.77.0.255" })).rejects.toThrow("not a host address");
      await expect(setupBridgeNetwork({ id: idb, pid: b, ip: "10.77.0.1" })).rejects.toThrow("that is the bridge's own address");
      expect(Object.keys(leases())).toEqual(["10.77.0.50"]);
      expect((await sh(inNs(b, "ip -o link"))).out).not.toContain("eth0");
    });

    test("a host port in use is refused before anything is made: by a listener on 127.0.0.1, by another container", async () => {
      const { setupBridgeNetwork, parsePortMappings, checkHostPortsFree } = await lib();
      const listener = Bun.listen({ hostname: "127.0.0.1", port: 18120, socket: { data() {} } });
      try {
        expect(() => checkHostPortsFree(parsePortMappings(["127.0.0.1:18120:80"]))).toThrow("-p 127.0.0.1:18120:80: host port 18120/tcp is already in use");
        expect(() => checkHostPortsFree(parsePortMappings(["18120:80"]))).toThrow("-p 18120:80: host port 18120/tcp is already in use");
        checkHostPortsFree(parsePortMappings(["18120:80/udp", "127.0.0.1:18121:80"])); // other protocol, other port: free
        expect(() => checkHostPortFree(parsePortMapping("192.0.2.1:18122:80"))).toThrow("-p 192.0.2.1:18122:80: 192.0.2.1 is not an address of this host");
        const pid = await container();
        await expect(setupBridgeNetwork({ id: newId(), pid, ports: parsePortMappings(["18120:80"]) })).rejects.toThrow("host port 18120/tcp is already in use");
        expect(leases()).toEqual({});
        expect(await links()).not.toContain("veth-");
      } finally {
        listener.stop(true);
      }
      const [a, b] = [await container(), await container()];
      const ida = newId();
      await setupBridgeNetwork({ id: ida, pid: a, ports: parsePortMappings(["18123:80"]) });
      await expect(setupBridgeNetwork({ id: newId(), pid: b, ports: parsePortMappings(["127.0.0.1:18123:81"]) })).rejects.toThrow(
        `-p 127.0.0.1:18123:81: host port 18123/tcp is already published by container ${ida}`,
      );
      expect(Object.values(leases()).map((l) => l.id)).toEqual([ida]);
    });

    test("subnets: another one when the bridge is idle; refused while in use, or over a host route", async () => {
      const { setupBridgeNetwork } = await lib();
      const [a, b] = [await container(), await container()];
      const ida = newId();
      const na = await setupBridgeNetwork({ id: ida, pid: a, subnet: "10.79.0.0/28" });
      expect(na).toMatchObject({ address: "10.79.0.2", gateway: "10.79.0.1", prefix: 28 });
      expect((await sh("ip -o -4 addr show dev minic0")).out).toContain("inet 10.79.0.1/28");
      expect((await sh("ping -c1 -W2 10.79.0.2")).code).toBe(0);
      await expect(setupBridgeNetwork({ id: newId(), pid: b })).rejects.toThrow(/minic0 is 10.79.0.1\/28 and running containers use it/);
      await na.cleanup();
      await sh("ip link add dummyroute0 type veth peer name dummyroute1 && ip link set dummyroute0 up && ip route add 10.99.0.0/16 dev dummyroute0");
      try {
        await expect(setupBridgeNetwork({ id: newId(), pid: b, subnet: "10.99.3.0/24" })).rejects.toThrow(
          "the subnet 10.99.3.0/24 overlaps the host's route 10.99.0.0/16 dev dummyroute0; choose another subnet",
        );
      } finally {
        await sh("ip link del dummyroute0");
      }
      const nb = await setupBridgeNetwork({ id: newId(), pid: b });
      expect(nb.address).toBe("10.77.0.2");
      expect((await sh("ip -o -4 addr show dev minic0")).out.trim().split("\n")).toHaveLength(1);
    });

    test.skipIf(!Bun.which("iptables") || !Bun.which("iptables-restore"))("the iptables backend: same behaviour, no duplicates, nothing left", async () => {
      const { setupBridgeNetwork, parsePortMappings } = await lib();
      const { applyFirewall, resetFirewallBackend, listFirewall } = await nat();
      process.env.MINIC_FIREWALL = "iptables";
      resetFirewallBackend();
      try {
        const pid = await container();
        const id = newId();
        const net = await setupBridgeNetwork({ id, pid, ports: parsePortMappings(["18130:80"]) });
        await httpd(pid);
        expect((await curl("http://127.0.0.1:18130/")).out).toBe("hello from the container\n");
        const rules = await listFirewall();
        expect(rules).toMatch(new RegExp(`--dport 18130 -m comment --comment "?minic:${id}"? -j DNAT --to-destination ${net.address}:80`));
        const config = { bridge: "minic0", subnet: "10.77.0.0/24", forwards: [] };
        await applyFirewall(config);
        await applyFirewall(config);
        const saved = (await sh("iptables-save")).out;
        expect(saved.split("-j MINIC-POSTROUTING").length - 1).toBe(1);
        expect(saved.split("-s 10.77.0.0/24 ! -o minic0 -j MASQUERADE").length - 1).toBe(1);
        await net.cleanup();
        expect((await sh("iptables-save")).out).not.toContain("MINIC");
        expect(await listFirewall()).toBe("");
      } finally {
        delete process.env.MINIC_FIREWALL;
        resetFirewallBackend();
      }
    });
  });
}
