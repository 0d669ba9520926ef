#!/bin/sh
# systemd-analyze verify on the node unit, with ExecStart pointed at the
# built binary (verify checks that the executable exists) and an instance
# name, as systemd would load it.
set -eu
unit_src=$1
shardfs=$2
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
sed "s|/usr/local/bin/shardfs|$shardfs|" "$unit_src" > "$dir/shardfs-node@1.service"
out=$(systemd-analyze verify "$dir/shardfs-node@1.service" 2>&1) || { echo "$out"; exit 1; }
# verify also prints warnings without failing: none are expected from our unit
if echo "$out" | grep -i "shardfs-node"; then
  exit 1
fi
echo "unit verified"
