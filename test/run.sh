#!/bin/sh
# The test suite, as `npm test` runs it.
#
# 1. test/setup.ts installs the Debian packages the tests use and builds the busybox rootfs; it
#    needs this machine's network (apt), so it runs first.
# 2. As root, the suite then runs in a network namespace of its own, with only lo. minic's default
#    bridge, its NAT rules and every published port live and die there, so no test, whatever it
#    does, touches this machine's real network (and no link or rule can outlive the run).
set -e
cd "$(dirname "$0")/.."
export BUN_JSC_useConcurrentJIT=0 # see bin/minic: no JIT threads to hold locks across fork()
bun=node_modules/.bin/bun
"$bun" test/setup.ts
if [ "$(id -u)" != 0 ]; then
  echo "test/run.sh: not root: the tests that need root will fail" >&2
  exec "$bun" test "$@"
fi
exec unshare --net -- sh -c 'ip link set lo up && exec "$0" test "$@"' "$bun" "$@"
