#!/usr/bin/env bash
# The README's second command: installs what is missing, builds, then runs every test layer that
# exists (units, integration with real QEMU guests and etcd), lint and type checks.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export PATH="$PWD/node_modules/.bin:$PATH"

echo "== build" >&2
bun build.ts
NEUROFLOW_TEST_GUEST=$(scripts/build-test-guest.sh | tail -1)
export NEUROFLOW_TEST_GUEST NEUROFLOW_BINARY="$PWD/dist/neuroflow"

echo "== lint and types" >&2
biome check .
tsc --noEmit -p .

echo "== unit and integration tests" >&2
bunx --bun vitest run "$@"
