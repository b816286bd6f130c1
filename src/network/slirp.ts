// Rootless networking that reaches out: an unprivileged user cannot create veths or NAT rules, so,
// as podman does, a user-mode network stack (slirp4netns, or pasta from Debian's passt) joins the
// container's network namespace, creates tap0 there (10.0.2.100/24, gateway 10.0.2.2, DNS
// 10.0.2.3) and carries its traffic through ordinary sockets of the user's own.
import { tool } from "./nat.ts";
import { readTextIfExists } from "../libc/fs.ts";
import { libc } from "../libc/ffi.ts";
import { CStr } from "../libc/cstr.ts";

export const SLIRP_DNS = "10.0.2.3";

/** Which user-mode network tool is installed, if any. */
export function userModeNetworkTool(): "slirp4netns" | "pasta" | null {
  if (tool("slirp4netns")) return "slirp4netns";
  if (tool("pasta")) return "pasta";
  return null;
}

/**
 * Start the tool for the network namespace of `pid` and wait until tap0 is configured. The tool
 * exits when its stdin (the exit fd) reaches EOF: when `stop()` is called, or when minic dies.
 */
export async function startUserModeNetwork(pid: number): Promise<{ stop(): Promise<void> }> {
  const name = userModeNetworkTool();
  if (!name) throw new Error("rootless --network bridge needs slirp4netns or pasta (Debian packages slirp4netns, passt); use --network none");
  if (libc.faccessat(-100, new CStr("/dev/net/tun").ptr, 6 /* R_OK|W_OK */, 0) !== 0) {
    throw new Error("rootless --network bridge needs /dev/net/tun to be usable by you (Debian makes it mode 666; here it is not); use --network none");
  }
  const argv = name === "slirp4netns"
    ? [tool(name)!, "--configure", "--mtu=65520", "--disable-host-loopback", "--exit-fd=0", "--ready-fd=1", String(pid), "tap0"]
    : [tool(name)!, "--config-net", "--quiet", "--foreground", "--netns", `/proc/${pid}/ns/net`, "--userns", `/proc/${pid}/ns/user`];
  const child = Bun.spawn(argv, { stdin: "pipe", stdout: "pipe", stderr: "pipe" });
  // Ready: slirp4netns writes "1" to its ready fd; for pasta, wait until the interface is there.
  const deadline = Date.now() + 5000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) {
      const why = (await new Response(child.stderr).text()).trim().split("\n").pop();
      throw new Error(`${name} exited ${child.exitCode}${why ? `: ${why}` : ""}`);
    }
    const devices = readTextIfExists(`/proc/${pid}/net/dev`) ?? "";
    if (/^\s*(tap0|eth0|ens\w*):/m.test(devices) && (name === "pasta" || (await readyByte(child)))) break;
    await Bun.sleep(10);
  }
  return {
    async stop() {
      child.stdin.end(); // EOF on the exit fd
      child.kill();
      await child.exited;
    },
  };
}

async function readyByte(child: Bun.Subprocess<"pipe", "pipe", "pipe">): Promise<boolean> {
  const reader = child.stdout.getReader();
  const { value } = await reader.read();
  reader.releaseLock();
  return !!value?.length;
}
