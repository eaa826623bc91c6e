#!/usr/bin/env bash
# Generates the TypeScript of the cluster protocol (src/cluster/proto/**/*.proto) into src/cluster/gen/
# with protoc + ts-proto: message codecs and grpc-js service definitions/clients. The output is not
# checked in; build.ts and scripts/test.sh run this first. Skips the work when the output is newer
# than every .proto (and this script); --force regenerates anyway.
set -euo pipefail
cd "$(dirname "$0")/.."
proto_dir=src/cluster/proto
out_dir=src/cluster/gen
stamp=$out_dir/.stamp
plugin=node_modules/.bin/protoc-gen-ts_proto

mapfile -t protos < <(find "$proto_dir" -name '*.proto' | sort)
if [[ "${1:-}" != --force && -f $stamp ]]; then
  stale=0
  for f in "${protos[@]}" "$0" "$plugin"; do [[ $f -nt $stamp ]] && stale=1; done
  ((stale)) || exit 0
fi
command -v protoc >/dev/null || { echo "gen-proto: protoc not found (apt-get install protobuf-compiler)" >&2; exit 1; }
[[ -x $plugin ]] || { echo "gen-proto: $plugin missing (npm ci)" >&2; exit 1; }

tmp=$(mktemp -d "${out_dir%/*}/.gen.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
protoc --plugin="protoc-gen-ts_proto=$plugin" --proto_path="$proto_dir" --ts_proto_out="$tmp" \
  --ts_proto_opt=outputServices=grpc-js,env=node,esModuleInterop=true,useOptionals=messages \
  --ts_proto_opt=oneof=unions-value,forceLong=number,useDate=false,outputJsonMethods=false \
  --ts_proto_opt=outputPartialMethods=false \
  "${protos[@]}"
touch "$tmp/.stamp"
chmod 755 "$tmp"
rm -rf "$out_dir"
# -T: a concurrent run that got there first wins (same output) instead of nesting ours inside it.
mv -T "$tmp" "$out_dir" 2>/dev/null || true
