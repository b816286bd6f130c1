// Issue 6, end to end: networking through the real CLI (bin/minic), as root, on the busybox rootfs.
//
// SAFETY: test/run.sh runs the suite in a fresh network namespace (`unshare --net`, lo up) that
// stands in for "the host". This file refuses to run anywhere else (see the check right below the
// imports): its own network namespace must not be the machine's initial one, and it must have no
// interface but lo and minic's own (minic0, veth-*). Traffic only goes to loopback, to the bridge's
// address and to the addresses of containers this file started. Nothing here reaches outside.
//
// Everything runs under a state root of this file's own (MINIC_ROOT, a temporary directory), so
// that its leases and rules never mix with those of minic runs elsewhere on the machine, which use
// /run/minic (see the report of issue 6: network state is kept per state root).
import { afterAll, afterEach, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MINIC, isDead, minic, waitUntil, type MinicOptions, type MinicResult } from "./helpers.ts";
import { ensureRootfs } from "./rootfs.ts";
import { vethName } from "../src/network/index.ts";
import { networkDir } from "../src/network/ipam.ts";

setDefaultTimeout(60_000); // bunfig's [test] timeout is not applied by Bun 1.4.5

// ---- SAFETY: never in the machine's own network namespace -------------------------------------------

/** Run a host command (in the sandbox) to its end, killed after `timeoutMs`. */
function hostSync(argv: string[], timeoutMs = 10_000): { code: number; out: string } {
  const r = Bun.spawnSync(argv, { stdin: "ignore", stdout: "pipe", stderr: "pipe", timeout: timeoutMs, killSignal: "SIGKILL" });
  return { code: r.exitCode ?? -1, out: r.stdout.toString() + r.stderr.toString() };
}

/** The interface names `ip -o link` shows (veth names without their @ifN). */
const linkNames = (text: string) =>
  text.split("\n").map((l) => /^\d+:\s+([^:@\s]+)/.exec(l)?.[1]).filter((n): n is string => !!n);

function assertSandboxed(): void {
  const mine = readlinkSync("/proc/self/ns/net");
  let init: string | null = null;
  try {
    init = readlinkSync("/proc/1/ns/net"); // EACCES on some machines: the link check below still applies
  } catch {}
  if (init !== null && init === mine) {
    throw new Error(`SAFETY: this test runs in the machine's initial network namespace (${mine}); run it with sh test/run.sh`);
  }
  const listed = hostSync(["ip", "-o", "link"]);
  const names = linkNames(listed.out);
  const foreign = names.filter((n) => n !== "lo" && n !== "minic0" && !/^veth-[0-9a-f]{10}$/.test(n));
  if (listed.code !== 0 || !names.includes("lo") || foreign.length) {
    throw new Error(
      `SAFETY: this network namespace has interfaces that are not lo or minic's (${foreign.join(", ") || listed.out.trim()}): ` +
        "it is not the sandbox of test/run.sh (unshare --net); refusing to run any network test",
    );
  }
}
assertSandboxed();

// ---- setup ------------------------------------------------------------------------------------------

const STATE = mkdtempSync(join(tmpdir(), "minic-net-state-"));
const ENV = { ...process.env, MINIC_ROOT: STATE };
const LEASES = `${networkDir()}/leases.json`; // per network namespace, whatever the state root
const MARK = `net${process.pid}`;
const GATEWAY = "10.77.0.1";
const BASE_PORT = 18400; // host ports (of the sandbox): BASE_PORT + n
let R: string;
let scratch: string;
let www: string;
let containers = 0;
/** Names of the containers started (detached) by the current test: removed after it. */
const started: string[] = [];
/** Links this file made itself (not minic's): deleted in afterAll. */
const testLinks: string[] = [];

beforeAll(() => {
  R = ensureRootfs();
  scratch = mkdtempSync(join(tmpdir(), "minic-net-"));
  chmodSync(scratch, 0o755);
  www = join(scratch, "www");
  mkdirSync(www);
  writeFileSync(`${www}/index.html`, "hello from the container\n");
  chmodSync(www, 0o755);
});

afterEach(async () => {
  await removeStarted();
  // No test may leave a live lease (a container of ours) for the next one.
  await waitUntil(() => Object.keys(leases()).length === 0, () => `the leases to be released: ${JSON.stringify(leases())}`);
});

afterAll(async () => {
  await removeStarted();
  for (const link of testLinks) hostSync(["ip", "link", "del", link]);
  // minic0 goes with its last container; should it still be here, it goes if no one else's veth is on it.
  if (hostSync(["ip", "-o", "link", "show", "master", "minic0"]).out.trim() === "") hostSync(["ip", "link", "del", "minic0"]);
  rmSync(scratch, { recursive: true, force: true });
  rmSync(STATE, { recursive: true, force: true });
});

async function removeStarted(): Promise<void> {
  const names = started.splice(0).filter((name) => existsSync(`${STATE}/${name}`));
  await Promise.all(names.map((name) => minic(["rm", "-f", name], { env: ENV, timeoutMs: 20_000 })));
}

// ---- helpers ----------------------------------------------------------------------------------------

const newName = () => `${MARK}-${++containers}`;

/** `minic run ARGS` under this file's state root. */
const run = (args: string[], options: MinicOptions = {}) => minic(["run", ...args], { env: ENV, timeoutMs: 30_000, ...options });
const cli = (args: string[], options: MinicOptions = {}) => minic(args, { env: ENV, timeoutMs: 30_000, ...options });

/** The stdout of a run that must succeed; on failure the diff shows the exit code and stderr. */
function ok(result: MinicResult): string {
  expect({ code: result.code, stderr: result.stderr }).toEqual({ code: 0, stderr: "" });
  return result.stdout;
}

/** `minic run -d --name NAME ARGS`: a background container, removed after the test. */
async function detached(args: string[], name = newName()): Promise<string> {
  started.push(name);
  const r = await run(["-d", "--name", name, ...args]);
  expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: "" });
  expect(r.stdout.trim()).toBe(name);
  return name;
}

/** A host command (in the sandbox), with a kill timeout. */
async function host(argv: string[], timeoutMs = 15_000, env?: Record<string, string | undefined>): Promise<{ code: number; out: string; err: string }> {
  const proc = Bun.spawn(argv, { stdin: "ignore", stdout: "pipe", stderr: "pipe", env: env ?? process.env });
  const timer = setTimeout(() => proc.kill("SIGKILL"), timeoutMs);
  try {
    const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
    return { code, out, err };
  } finally {
    clearTimeout(timer);
  }
}

const curl = (url: string) => host(["curl", "-sS", "--noproxy", "*", "--max-time", "5", url]);
const links = async () => linkNames((await host(["ip", "-o", "link"])).out);
/** `nft list table ip minic`, or "" when the table does not exist. */
const ruleset = async () => {
  const r = await host(["nft", "list", "table", "ip", "minic"]);
  return r.code === 0 ? r.out : "";
};
const count = (text: string, what: string) => text.split(what).length - 1;
const OUTBOUND = 'masquerade comment "minic: outbound"';

interface Lease {
  id: string;
  pid: number;
  agentPid?: number;
  veth?: string;
}
const leases = (): Record<string, Lease> => {
  try {
    return JSON.parse(readFileSync(LEASES, "utf8"));
  } catch {
    return {};
  }
};
const leaseOf = (name: string) => Object.entries(leases()).find(([, l]) => l.id === name);

/** The container's pid as the host sees it (its state.json), or 0 while it has none yet. */
function containerPid(name: string): number {
  try {
    return Number(JSON.parse(readFileSync(`${STATE}/${name}/state.json`, "utf8")).pid) || 0;
  } catch {
    return 0;
  }
}

/** Whether a TCP socket listens on `port` in the network namespace of `pid` (read from /proc: no traffic). */
function listening(pid: number, port: number): boolean {
  const hex = port.toString(16).toUpperCase().padStart(4, "0");
  const pattern = new RegExp(`^\\s*\\d+: [0-9A-F]+:${hex} 0+:0000 0A `, "m");
  for (const file of [`/proc/${pid}/net/tcp`, `/proc/${pid}/net/tcp6`]) {
    try {
      if (pattern.test(readFileSync(file, "utf8"))) return true;
    } catch {}
  }
  return false;
}
const waitListening = (name: string, port: number) =>
  waitUntil(() => containerPid(name) > 0 && listening(containerPid(name), port), `${name} to listen on ${port}`);

/** eth0's IPv4 address in a running container, through `minic exec`. */
async function addressOf(name: string): Promise<string> {
  const out = ok(await cli(["exec", name, "ip", "-o", "-4", "addr", "show", "eth0"]));
  const address = /\binet (\d+\.\d+\.\d+\.\d+)\/24\b/.exec(out)?.[1];
  expect(address).toBeDefined();
  return address!;
}

/** Nothing of container `name` left: no veth, no lease, no firewall rule, no state directory, no cgroup claim. */
async function expectNothingLeft(name: string): Promise<void> {
  expect(await links()).not.toContain(vethName(name));
  expect(leaseOf(name)).toBeUndefined();
  expect(await ruleset()).not.toContain(`minic:${name}`);
  expect(existsSync(`${STATE}/${name}`)).toBe(false);
  expect(existsSync(`/run/minic-cgroups/${name}`)).toBe(false);
}

/** The sandbox with no container of ours: no veth, no bridge (it goes with the last container), no lease, no table. */
async function expectNetworkIdle(): Promise<void> {
  expect((await links()).filter((n) => n.startsWith("veth-") || n === "minic0")).toEqual([]);
  expect(leases()).toEqual({});
  expect(await ruleset()).toBe("");
}

/** minic's own lines on stderr. */
const minicLines = (stderr: string) => stderr.split("\n").filter(Boolean);

// ---- the tests ----------------------------------------------------------------------------------------

describe("bridge: traffic", () => {
  test("two containers on the bridge reach each other over TCP (busybox nc), both ways", async () => {
    const server = newName();
    const proc = Bun.spawn([MINIC, "run", "--name", server, "--rootfs", R, "sh", "-c", "echo pong | nc -l -p 5000"], {
      env: ENV, stdin: "ignore", stdout: "pipe", stderr: "pipe",
    });
    const timer = setTimeout(() => proc.kill("SIGKILL"), 30_000);
    try {
      await waitListening(server, 5000);
      const address = await addressOf(server);
      expect(address).toMatch(/^10\.77\.0\.\d+$/);
      expect(address).not.toBe(GATEWAY);
      // Its /etc/hosts names it with that address.
      expect(ok(await cli(["exec", server, "cat", "/etc/hosts"]))).toContain(`${address}\t${server.slice(0, 12)}\n`);
      const client = await run(["--rootfs", R, "sh", "-c", `echo hi | nc ${address} 5000`]);
      expect(client).toEqual({ code: 0, stdout: "pong\n", stderr: "" });
      const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
      expect({ code, stdout, stderr }).toEqual({ code: 0, stdout: "hi\n", stderr: "" });
    } finally {
      clearTimeout(timer);
      proc.kill("SIGKILL");
      await proc.exited;
    }
    await expectNothingLeft(server);
  });

  test("--ip fixes a container's address; another container reaches it there", async () => {
    const server = await detached(["--ip", "10.77.0.77", "--rootfs", R, "sh", "-c", "echo fixed | nc -l -p 5001; sleep 60"]);
    expect(await addressOf(server)).toBe("10.77.0.77");
    expect(leaseOf(server)?.[0]).toBe("10.77.0.77");
    await waitListening(server, 5001);
    expect(await run(["--rootfs", R, "sh", "-c", "nc 10.77.0.77 5001 </dev/null"])).toEqual({ code: 0, stdout: "fixed\n", stderr: "" });
    // The address is taken while it runs.
    const taken = await run(["--ip", "10.77.0.77", "--rootfs", R, "true"]);
    expect(taken.code).toBe(125);
    expect(minicLines(taken.stderr)).toEqual([`minic: --ip 10.77.0.77: the address is in use by container ${server}`]);
  });

  test("a container reaches the bridge's host address (a TCP server of the host's on 10.77.0.1)", async () => {
    // The bridge exists while a container uses it: one keeps it (and its address) up for the host to listen on.
    await detached(["--rootfs", R, "sleep", "60"]);
    const received: string[] = [];
    const server = Bun.listen({
      hostname: GATEWAY,
      port: 0,
      socket: {
        data(socket, data) {
          received.push(data.toString());
          socket.write("hello container\n");
          socket.end();
        },
      },
    });
    try {
      const r = await run(["--rootfs", R, "sh", "-c", `ip route | grep ^default; echo hi | nc ${GATEWAY} ${server.port}`]);
      expect(r.stderr).toBe("");
      expect(r.stdout).toMatch(new RegExp(`^default via ${GATEWAY.replace(/\./g, "\\.")} dev eth0\\s*\\nhello container\\n$`));
      expect(r.code).toBe(0);
      expect(received.join("")).toBe("hi\n");
    } finally {
      server.stop(true);
    }
  });

  test("-p: the host reaches busybox httpd at 127.0.0.1:HOSTPORT, on the bridge address, and at the container's address", async () => {
    const [all, local] = [BASE_PORT + 1, BASE_PORT + 2];
    const name = await detached([
      "-p", `${all}:80`, "-p", `127.0.0.1:${local}:80`, "-v", `${www}:/www:ro`, "--rootfs", R, "httpd", "-f", "-p", "80", "-h", "/www",
    ]);
    await waitListening(name, 80);
    const address = await addressOf(name);
    const page = { code: 0, out: "hello from the container\n", err: "" };
    expect(await curl(`http://127.0.0.1:${all}/`)).toEqual(page);
    expect(await curl(`http://127.0.0.1:${local}/`)).toEqual(page);
    expect(await curl(`http://${GATEWAY}:${all}/`)).toEqual(page); // the bridge's address is the host's too
    expect(await curl(`http://${address}/`)).toEqual(page); // straight to the container
    expect((await curl(`http://${GATEWAY}:${local}/`)).code).not.toBe(0); // published on 127.0.0.1 only
    expect((await curl(`http://127.0.0.1:${BASE_PORT + 3}/`)).code).not.toBe(0); // not published
    // Another container reaches the published port through the bridge address.
    const other = await run(["--rootfs", R, "sh", "-c", `printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc ${GATEWAY} ${all}`]);
    expect(other.code).toBe(0);
    expect(other.stdout).toMatch(/^HTTP\/1\.[01] 200 OK\r\n/);
    expect(other.stdout).toEndWith("\r\n\r\nhello from the container\n");
    // The rules name the container.
    const rules = await ruleset();
    expect(rules).toContain(`tcp dport ${all} dnat to ${address}:80 comment "minic:${name}"`);
    expect(rules).toContain(`ip daddr 127.0.0.1 tcp dport ${local} dnat to ${address}:80 comment "minic:${name}"`);
  });

  test("4 containers started at once get distinct addresses, each its own lease", async () => {
    const names = await Promise.all([1, 2, 3, 4].map(() => detached(["--rootfs", R, "sleep", "60"])));
    const addresses = await Promise.all(names.map(addressOf));
    expect(new Set(addresses).size).toBe(4);
    for (const a of addresses) expect(a).toMatch(/^10\.77\.0\.(\d+)$/);
    expect(addresses).not.toContain(GATEWAY);
    const book = leases();
    expect(Object.keys(book).sort()).toEqual([...addresses].sort());
    names.forEach((name, i) => expect(book[addresses[i]!]?.id).toBe(name));
    expect((await links()).filter((n) => n.startsWith("veth-")).sort()).toEqual(names.map(vethName).sort());
  });
});

describe("bridge: what is left behind", () => {
  test("a container that exits leaves no veth, lease, NAT or port rule (and no table once it was the last)", async () => {
    const name = newName();
    const r = await run(["--name", name, "-p", `${BASE_PORT + 10}:80`, "--rootfs", R, "sh", "-c", "ip -o link | grep -c eth0"]);
    expect(r).toEqual({ code: 0, stdout: "1\n", stderr: "" });
    await expectNothingLeft(name);
    await expectNetworkIdle();
  });

  test("a failed run (command not found) leaves nothing either", async () => {
    const name = newName();
    const r = await run(["--name", name, "-p", `${BASE_PORT + 11}:80`, "--rootfs", R, "/no/such/command"]);
    expect(r.code).toBe(127);
    await expectNothingLeft(name);
    await expectNetworkIdle();
  });

  test("a detached container removed with rm -f leaves nothing; the others' rules stay", async () => {
    const a = await detached(["-p", `${BASE_PORT + 12}:80`, "--rootfs", R, "sleep", "60"]);
    const b = await detached(["-p", `${BASE_PORT + 13}:80`, "--rootfs", R, "sleep", "60"]);
    expect(await ruleset()).toContain(`minic:${b}`);
    ok(await cli(["rm", "-f", b]));
    await expectNothingLeft(b);
    const rules = await ruleset();
    expect(count(rules, `comment "minic:${a}"`)).toBe(1);
    expect(count(rules, OUTBOUND)).toBe(1);
    expect(await links()).toContain(vethName(a));
  });

  test("a second container does not duplicate rules: the same masquerading with two containers alive as with one", async () => {
    const a = await detached(["-p", `${BASE_PORT + 20}:80`, "--rootfs", R, "sleep", "60"]);
    const one = await ruleset();
    expect(count(one, OUTBOUND)).toBe(1);
    const b = await detached(["-p", `${BASE_PORT + 21}:80`, "--rootfs", R, "sleep", "60"]);
    const two = await ruleset();
    expect(count(two, "masquerade")).toBe(count(one, "masquerade"));
    expect(count(two, OUTBOUND)).toBe(1);
    expect(count(two, "table ip minic")).toBe(1);
    expect(count(two, `comment "minic:${a}"`)).toBe(1);
    expect(count(two, `comment "minic:${b}"`)).toBe(1);
    // A third, short run coming and going changes nothing for them.
    ok(await run(["--rootfs", R, "true"]));
    ok(await run(["--rootfs", R, "true"]));
    expect(await ruleset()).toBe(two);
    ok(await cli(["rm", "-f", b]));
    const back = await ruleset();
    expect(count(back, "masquerade")).toBe(count(one, "masquerade"));
    expect(back).toBe(one);
  });

  test("a killed run's veth, lease and rules are cleaned by the next run", async () => {
    const ghost = newName();
    const port = BASE_PORT + 30;
    // The agent is the spawned process itself: bin/minic is a sh script that execs bun.
    const agent = Bun.spawn([MINIC, "run", "--name", ghost, "-p", `${port}:80`, "--rootfs", R, "sleep", "60"], {
      env: ENV, stdin: "ignore", stdout: "ignore", stderr: "ignore",
    });
    const timer = setTimeout(() => agent.kill("SIGKILL"), 30_000);
    try {
      await waitUntil(() => leaseOf(ghost) && existsSync(`${STATE}/${ghost}/state.json`), "the ghost's lease and state");
      await waitUntil(() => linkNames(hostSync(["ip", "-o", "link"]).out).includes(vethName(ghost)), "the ghost's veth");
      expect(await ruleset()).toContain(`comment "minic:${ghost}"`);
      const lease = leaseOf(ghost)![1];
      expect(lease.agentPid).toBe(agent.pid);
      agent.kill("SIGKILL");
      await agent.exited;
      // The container dies with its agent; until the next run, its lease and rule are still there.
      await waitUntil(() => isDead(lease.pid), "the ghost container to die with its agent");
      expect(leaseOf(ghost)).toBeDefined();
      expect(await ruleset()).toContain(`comment "minic:${ghost}"`);
    } finally {
      clearTimeout(timer);
      agent.kill("SIGKILL");
      await agent.exited;
    }
    const next = newName();
    const r = await run(["--name", next, "--rootfs", R, "sh", "-c", "ip -o -4 addr show eth0"]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("inet 10.77.0.2/24"); // the ghost's address is free again
    await expectNothingLeft(ghost);
    await expectNothingLeft(next);
    await expectNetworkIdle();
    // And its host port is free for a new container.
    const again = newName();
    ok(await run(["--name", again, "-p", `${port}:80`, "--rootfs", R, "true"]));
    await expectNothingLeft(again);
  });
});

describe("bridge: two state roots in one network namespace", () => {
  // minic0 and `table ip minic` belong to the network namespace, so the leases, the lock and the
  // firewall's record are kept per namespace (/run/minic-network/NETNS), not per state root: a run
  // under another root (`minic --root X`, as podman and containerd run minic) must see the first
  // root's containers (a regression test: it once handed out the same address and deleted minic0).
  test("a run under another --root leaves a running container's address, veth, rules and bridge alone", async () => {
    const other = mkdtempSync(join(tmpdir(), "minic-net-other-"));
    try {
      const a = await detached(["-p", `${BASE_PORT + 50}:80`, "--rootfs", R, "sleep", "60"]);
      const address = await addressOf(a);
      const r = await minic(["--root", other, "run", "--rootfs", R, "ip", "-o", "-4", "addr", "show", "eth0"], { env: process.env, timeoutMs: 30_000 });
      expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: "" });
      expect(r.stdout).not.toContain(`inet ${address}/`);
      expect(await links()).toEqual(expect.arrayContaining(["minic0", vethName(a)]));
      expect(await ruleset()).toContain(`comment "minic:${a}"`);
      expect((await host(["ping", "-c1", "-W2", address])).code).toBe(0);
    } finally {
      rmSync(other, { recursive: true, force: true });
    }
  });
});

describe("bridge: refused clearly, leaving nothing", () => {
  test("a host port in use (the test listens on 127.0.0.1:PORT) gets exit 125 and one clear line", async () => {
    const port = BASE_PORT + 40;
    const listener = Bun.listen({ hostname: "127.0.0.1", port, socket: { data() {} } });
    try {
      for (const spec of [`${port}:80`, `127.0.0.1:${port}:80`]) {
        const name = newName();
        const r = await run(["--name", name, "-p", spec, "--rootfs", R, "echo", "ran"]);
        expect({ code: r.code, stdout: r.stdout }).toEqual({ code: 125, stdout: "" });
        expect(minicLines(r.stderr)).toEqual([`minic: -p ${spec}: host port ${port}/tcp is already in use`]);
        await expectNothingLeft(name);
      }
    } finally {
      listener.stop(true);
    }
    await expectNetworkIdle();
  });

  test("a host port published by a running container is refused too", async () => {
    const port = BASE_PORT + 41;
    const a = await detached(["-p", `${port}:80`, "-v", `${www}:/www:ro`, "--rootfs", R, "httpd", "-f", "-p", "80", "-h", "/www"]);
    await waitListening(a, 80);
    const name = newName();
    const r = await run(["--name", name, "-p", `${port}:81`, "--rootfs", R, "echo", "ran"]);
    expect({ code: r.code, stdout: r.stdout }).toEqual({ code: 125, stdout: "" });
    expect(minicLines(r.stderr)).toHaveLength(1);
    expect(r.stderr).toMatch(new RegExp(`^minic: -p ${port}:81: host port ${port}/tcp is already (in use|published by container ${a})`));
    await expectNothingLeft(name);
    expect(Object.values(leases()).map((l) => l.id)).toEqual([a]);
  });

  test("malformed -p values get exit 125 and one clear line each", async () => {
    const cases: Array<[string, string]> = [
      ["80", "minic: -p 80: give the host port too, as in -p 80:80 (expected HOSTPORT:CTRPORT[/tcp|/udp] or IP:HOSTPORT:CTRPORT[/tcp|/udp])"],
      ["abc:80", 'minic: -p abc:80: the host port "abc" is not a port number (1-65535)'],
      ["1:2:3:4", "minic: -p 1:2:3:4: expected HOSTPORT:CTRPORT[/tcp|/udp] or IP:HOSTPORT:CTRPORT[/tcp|/udp]"],
      ["70000:80", 'minic: -p 70000:80: the host port "70000" is not a port number (1-65535)'],
      ["8080:80/sctp", 'minic: -p 8080:80/sctp: protocol "sctp" is not supported (use tcp or udp)'],
    ];
    for (const [spec, message] of cases) {
      const name = newName();
      const r = await run(["--name", name, "-p", spec, "--rootfs", R, "echo", "ran"]);
      expect({ spec, code: r.code, stdout: r.stdout, stderr: minicLines(r.stderr) }).toEqual({ spec, code: 125, stdout: "", stderr: [message] });
      await expectNothingLeft(name);
    }
    await expectNetworkIdle();
  });

  test("--subnet: another subnet while the bridge is idle, refused while containers use it; a bad one is refused", async () => {
    const out = ok(await run(["--subnet", "10.78.0.0/28", "--rootfs", R, "sh", "-c", "ip -o -4 addr show eth0; ip route | grep ^default"]));
    expect(out).toContain("inet 10.78.0.2/28");
    expect(out).toMatch(/^default via 10\.78\.0\.1 dev eth0/m);
    await expectNetworkIdle();
    // Back to the default subnet (the bridge is idle again), with a container that stays.
    const a = await detached(["--rootfs", R, "sleep", "60"]);
    expect(await addressOf(a)).toBe("10.77.0.2");
    expect((await host(["ip", "-o", "-4", "addr", "show", "dev", "minic0"])).out).toContain("inet 10.77.0.1/24");
    const busy = await run(["--subnet", "10.78.0.0/28", "--rootfs", R, "echo", "ran"]);
    expect({ code: busy.code, stdout: busy.stdout }).toEqual({ code: 125, stdout: "" });
    expect(minicLines(busy.stderr)).toHaveLength(1);
    expect(busy.stderr).toContain("minic0 is 10.77.0.1/24 and running containers use it");
    const name = newName();
    const bad = await run(["--name", name, "--subnet", "banana", "--rootfs", R, "echo", "ran"]);
    expect({ code: bad.code, stdout: bad.stdout }).toEqual({ code: 125, stdout: "" });
    expect(minicLines(bad.stderr)).toHaveLength(1);
    expect(bad.stderr).toMatch(/banana.*expected an IPv4 CIDR such as 10\.77\.0\.0\/24/);
    await expectNothingLeft(name);
    expect(Object.values(leases()).map((l) => l.id)).toEqual([a]);
  });

  test("-p and --ip without the bridge network are refused", async () => {
    for (const flags of [["--network", "none", "-p", "8080:80"], ["--network", "host", "--ip", "10.77.0.9"]]) {
      const r = await run([...flags, "--rootfs", R, "echo", "ran"]);
      expect({ code: r.code, stdout: r.stdout }).toEqual({ code: 125, stdout: "" });
      expect(minicLines(r.stderr)[0]).toMatch(/^minic: -p and --ip need --network bridge \(the network is (none|host)\)/);
    }
  });
});

describe("network modes", () => {
  test("--network none: only lo, up", async () => {
    const out = ok(await run(["--network", "none", "--rootfs", R, "ip", "-o", "link"]));
    expect(linkNames(out)).toEqual(["lo"]);
    expect(out).toMatch(/^1: lo: <[^>]*\bUP\b/);
    expect(await links()).not.toContain("veth-"); // no veth made for it
  });

  test("the default as root is the bridge: lo and eth0", async () => {
    const out = ok(await run(["--rootfs", R, "ip", "-o", "link"]));
    expect(linkNames(out).sort()).toEqual(["eth0", "lo"]);
  });

  test("--network host: the host's (the sandbox's) interfaces, a test link of the host's included", async () => {
    const [a, b] = [`nt${process.pid % 100000}a`, `nt${process.pid % 100000}b`];
    testLinks.push(a);
    expect(await host(["ip", "link", "add", a, "type", "veth", "peer", "name", b])).toMatchObject({ code: 0 });
    try {
      const hostNames = (await links()).sort();
      expect(hostNames).toContain(a);
      const inside = linkNames(ok(await run(["--network", "host", "--rootfs", R, "ip", "-o", "link"]))).sort();
      expect(inside).toEqual(hostNames);
    } finally {
      await host(["ip", "link", "del", a]);
    }
  });
});

describe("/etc/resolv.conf and /etc/hosts", () => {
  test("the host's resolv.conf without loopback name servers; hosts has the container's address and name", async () => {
    const out = ok(await run(["--hostname", "webhost", "--ip", "10.77.0.66", "--rootfs", R, "sh", "-c", "cat /etc/resolv.conf; echo ---; cat /etc/hosts"]));
    const [resolv, hosts] = out.split("---\n");
    expect(resolv).not.toMatch(/^\s*nameserver\s+127\./m);
    expect(resolv).not.toMatch(/^\s*nameserver\s+::1\b/m);
    const hostServers = (existsSync("/etc/resolv.conf") ? readFileSync("/etc/resolv.conf", "utf8") : "")
      .split("\n").filter((l) => /^\s*nameserver\s+/.test(l) && !/^\s*nameserver\s+(127\.|::1\b)/.test(l));
    for (const line of hostServers) expect(resolv).toContain(`${line}\n`);
    expect(hosts).toContain("127.0.0.1\tlocalhost\n");
    expect(hosts).toContain("10.77.0.66\twebhost\n");
  });

  test("loopback name servers are dropped from a host resolv.conf that has some (bound over it in a private mount namespace)", async () => {
    const fake = join(scratch, "resolv.conf");
    writeFileSync(fake, [
      "# a host with a local resolver",
      "nameserver 127.0.0.53",
      "nameserver 192.0.2.53",
      "  nameserver 127.0.0.1",
      "nameserver ::1",
      "nameserver 198.51.100.53",
      "search example.test",
      "options edns0 trust-ad",
      "",
    ].join("\n"));
    chmodSync(fake, 0o644);
    const name = newName();
    // minic runs in a mount namespace of its own where /etc/resolv.conf is the fake: the sandbox's stays as it is.
    const r = await host(
      ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", 'mount --bind "$0" /etc/resolv.conf && exec "$@"', fake,
       "env", `MINIC_ROOT=${STATE}`, MINIC, "run", "--name", name, "--rootfs", R, "cat", "/etc/resolv.conf"],
      30_000,
    );
    expect({ code: r.code, err: r.err }).toEqual({ code: 0, err: "" });
    expect(r.out).toBe([
      "# a host with a local resolver",
      "nameserver 192.0.2.53",
      "nameserver 198.51.100.53",
      "search example.test",
      "options edns0 trust-ad",
      "",
    ].join("\n"));
    await expectNothingLeft(name);
  });
});

describe("rootless", () => {
  const USER = `minicnt${process.pid % 100000}`;
  let uid = -1;
  let userRoot = "";
  const asUser = async (args: string[]): Promise<MinicResult> => {
    // Only PATH and a state root of the user's: nothing of root's environment (MINIC_ROOT, XDG_RUNTIME_DIR).
    const r = await host(["runuser", "-u", USER, "--", MINIC, "run", ...args], 30_000, { PATH: process.env.PATH, MINIC_ROOT: userRoot });
    return { code: r.code, stdout: r.out, stderr: r.err };
  };

  beforeAll(() => {
    const made = hostSync(["useradd", "-M", "-s", "/bin/sh", USER]);
    if (made.code !== 0) throw new Error(`useradd ${USER}: ${made.out}`);
    uid = Number(hostSync(["id", "-u", USER]).out.trim());
  });
  afterAll(() => {
    hostSync(["userdel", USER]);
    rmSync(`/tmp/minic-${uid}`, { recursive: true, force: true });
    if (userRoot) rmSync(userRoot, { recursive: true, force: true });
  });

  test("an unprivileged user gets --network none by default (only lo); --network bridge is user-mode (slirp4netns) or refused clearly", async () => {
    userRoot = join(scratch, "user-root");
    mkdirSync(userRoot);
    chownSync(userRoot, uid, uid);
    const out = await asUser(["--rootfs", R, "ip", "-o", "link"]);
    expect({ code: out.code, stderr: out.stderr }).toEqual({ code: 0, stderr: "" });
    expect(linkNames(out.stdout)).toEqual(["lo"]);
    const publish = await asUser(["-p", "8080:80", "--rootfs", R, "echo", "ran"]);
    expect({ code: publish.code, stdout: publish.stdout, stderr: minicLines(publish.stderr) }).toEqual({
      code: 125, stdout: "", stderr: ["minic: -p and --ip need --network bridge (the network is none) (see minic --help)"],
    });
    // Rootless, minic can make no veth or rule: --network bridge is slirp4netns's (or pasta's) tap0 in the
    // container's namespace, which only reaches out through the user's own sockets (here: nowhere, the sandbox
    // has only lo and minic's links). Where neither tool, or /dev/net/tun, is usable, one clear line says so.
    const bridge = await asUser(["--network", "bridge", "--rootfs", R, "ip", "-o", "link"]);
    if (bridge.code === 0) {
      expect(bridge.stderr).toBe("");
      expect(linkNames(bridge.stdout).sort()).toEqual(expect.arrayContaining(["lo"]));
      expect(linkNames(bridge.stdout).filter((n) => n !== "lo")).toHaveLength(1); // tap0 (slirp4netns) or the host's name (pasta)
    } else {
      expect({ code: bridge.code, stdout: bridge.stdout }).toEqual({ code: 125, stdout: "" });
      expect(minicLines(bridge.stderr)).toHaveLength(1);
      expect(bridge.stderr).toMatch(/^minic: rootless --network bridge needs (slirp4netns or pasta|\/dev\/net\/tun to be usable by you)\b.*; use --network none$/m);
    }
    const ports = await asUser(["--network", "bridge", "-p", "8080:80", "--rootfs", R, "echo", "ran"]);
    expect({ code: ports.code, stdout: ports.stdout }).toEqual({ code: 125, stdout: "" });
    expect(minicLines(ports.stderr)).toHaveLength(1);
    expect(ports.stderr).toMatch(/^minic: (-p and --ip are not available rootless|rootless --network bridge needs slirp4netns or pasta)/);
    expect(readdirSync(userRoot).filter((n) => n !== "network")).toEqual([]); // no container state left
    await expectNetworkIdle();
  });
});
