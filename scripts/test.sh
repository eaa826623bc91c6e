#!/usr/bin/env bash
# The README's second command: installs what is missing, builds, then runs every test layer that
# exists (units, integration with real QEMU guests and etcd, the web UI in a real Chromium), lint and
# type checks.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/gen-proto.sh
export PATH="$PWD/node_modules/.bin:$PATH"

echo "== build" >&2
bun build.ts
# Rust builds are cached outside the checkout, so a fresh clone does not recompile every crate.
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-${NEUROFLOW_CACHE_DIR:-$HOME/.cache/neuroflow}/cargo-target}
scripts/build-agent.sh >/dev/null
NEUROFLOW_TEST_GUEST=$(scripts/build-test-guest.sh | tail -1)
export NEUROFLOW_TEST_GUEST NEUROFLOW_BINARY="$PWD/dist/neuroflow"

echo "== lint and types" >&2
biome check .
tsc --noEmit -p .
tsc --noEmit -p ui
(cd agent-rs && cargo fmt --check && cargo clippy --locked --all-targets -q -- -D warnings)

echo "== agent-rs tests" >&2
(cd agent-rs && cargo test --locked -q)

echo "== unit and integration tests" >&2
bunx --bun vitest run "$@"
