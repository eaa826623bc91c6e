#!/usr/bin/env bash
# The README's first command: one host with embedded defaults (etcd, local storage, a nat network),
# and a small demo image so a VM boots at once.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
node_modules/.bin/bun build.ts >&2
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-${NEUROFLOW_CACHE_DIR:-$HOME/.cache/neuroflow}/cargo-target}
scripts/build-agent.sh >/dev/null
guest=$(scripts/build-test-guest.sh | tail -1)
data_dir=${NEUROFLOW_DATA_DIR:-/var/lib/neuroflow}
listen=${NEUROFLOW_LISTEN:-127.0.0.1:8006}
exec dist/neuroflow serve --dev --data-dir "$data_dir" --listen "$listen" \
  --demo-image "demo=$guest/demo.iso" "$@"
