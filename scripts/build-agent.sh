#!/usr/bin/env bash
# Builds the NeuroFlow guest agent (agent-rs/) as a static Linux binary and
# copies it to dist/neuroflow-agent.
#
# Usage: scripts/build-agent.sh
#
# glibc is linked statically (+crt-static on x86_64-unknown-linux-gnu), so
# no musl target is needed; relocation-model=static makes a plain (non-PIE)
# static executable, ~50 KiB smaller than static-pie. Passing --target keeps
# these flags off the host-side proc-macro builds. The cargo target dir stays
# agent-rs/target.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
AGENT_DIR="$ROOT/agent-rs"
TARGET=x86_64-unknown-linux-gnu
OUT="$ROOT/dist/neuroflow-agent"

log() { printf 'build-agent: %s\n' "$*" >&2; }
die() {
	printf 'build-agent: error: %s\n' "$*" >&2
	exit 1
}

command -v cargo >/dev/null || die "cargo not found (install Rust via rustup)"

log "cargo build --release --target $TARGET (static)"
(
	cd "$AGENT_DIR"
	RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static -C relocation-model=static" \
		cargo build --release --locked --target "$TARGET"
)
BIN="${CARGO_TARGET_DIR:-$AGENT_DIR/target}/$TARGET/release/neuroflow-agent"
[ -x "$BIN" ] || die "build produced no binary at $BIN"

# Must be static: ldd says "not a dynamic executable" (or "statically
# linked"), and file(1) says "statically linked" or "static-pie linked".
ldd_out=$(ldd "$BIN" 2>&1 || true)
case "$ldd_out" in
*"not a dynamic executable"* | *"statically linked"*) ;;
*) die "binary is dynamically linked: $ldd_out" ;;
esac
if command -v file >/dev/null; then
	file_out=$(file -b "$BIN")
	case "$file_out" in
	*"statically linked"* | *"static-pie linked"*) ;;
	*) die "file(1) does not report a static binary: $file_out" ;;
	esac
	log "$file_out"
fi

mkdir -p "$ROOT/dist"
cp "$BIN" "$OUT.tmp"
mv "$OUT.tmp" "$OUT"
size=$(stat -c %s "$OUT")
log "dist/neuroflow-agent: $size bytes ($((size / 1024)) KiB)"
# The test guest's I/O benchmark tool (4 KiB random writes), built from the same crate, static too.
IOBENCH="${CARGO_TARGET_DIR:-$AGENT_DIR/target}/$TARGET/release/nf-iobench"
[ -x "$IOBENCH" ] || die "build produced no nf-iobench at $IOBENCH"
cp "$IOBENCH" "$ROOT/dist/nf-iobench.tmp"
mv "$ROOT/dist/nf-iobench.tmp" "$ROOT/dist/nf-iobench"
echo "$OUT"
