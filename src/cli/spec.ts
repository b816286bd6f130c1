// `minic spec [--rootless] [--bundle DIR]`: write a default config.json, as `runc spec` does.
import { writeDefaultSpec } from "../spec/defaults.ts";
import { UsageError } from "./argv.ts";
import type { Verb } from "./verb.ts";

export const spec: Verb = {
  command: {
    meta: {
      name: "spec",
      description:
        "Write a default OCI runtime-spec config.json into the bundle directory, as `runc spec` does: it runs " +
        "`sh` in DIR/rootfs, read-only, with its own namespaces. Edit it, then run it with `minic run --bundle DIR`. " +
        "An existing config.json is never overwritten.",
    },
    args: {
      rootless: {
        type: "boolean",
        description:
          "For an unprivileged user: a user namespace mapping you to root inside, no network namespace, the host's /sys bound read-only",
      },
      bundle: { type: "string", alias: "b", default: ".", valueHint: "DIR", description: "The bundle directory to write config.json in" },
    },
  },
  async main({ flags, rest }) {
    if (rest.length > 0) throw new UsageError(`spec takes no arguments, got "${rest[0]}"`, "usage: minic spec [--rootless] [--bundle DIR]");
    writeDefaultSpec(flags.bundle || ".", { rootless: Boolean(flags.rootless) });
    return 0;
  },
};
