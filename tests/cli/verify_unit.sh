#!/bin/sh
# systemd-analyze verify on the units as an install makes them, with
# ExecStart pointed at the built binary (verify checks that the executable
# exists) and an instance name, as systemd would load them.
set -eu
units=$1
shardfs=$2
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
configure() { # template, instance
  sed -e "s|@SHARDFS_BINDIR@|$(dirname "$shardfs")|" -e "s|@SHARDFS_DOCDIR@|/usr/share/doc/shardfs|" \
    "$units/$1.in" > "$dir/$(echo "$1" | sed "s|@|@$2|")"
}
configure shardfs-node@.service 1
configure shardfs-mount@.service mnt-shardfs
sed -e "s|@SHARDFS_BINDIR@|$(dirname "$shardfs")|" -e "s|@SHARDFS_DOCDIR@|/usr/share/doc/shardfs|" \
  "$units/shardfs-repair.service.in" > "$dir/shardfs-repair.service"
for unit in "$dir/shardfs-node@1.service" "$dir/shardfs-mount@mnt-shardfs.service" \
            "$dir/shardfs-repair.service"; do
  out=$(systemd-analyze verify "$unit" 2>&1) || { echo "$out"; exit 1; }
  # verify also prints warnings without failing: none are expected from ours
  if echo "$out" | grep -i "shardfs-"; then
    exit 1
  fi
done
echo "units verified"
