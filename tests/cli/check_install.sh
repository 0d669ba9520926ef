#!/bin/sh
# cmake --install with DESTDIR and with --prefix puts the binary, the
# mount helper and the units under the prefix, the units naming it. The
# .deb: cpack builds it from this build tree, lintian finds no error in it,
# and unpacked into a scratch root with dpkg -x its binary runs, its mount
# helper resolves to it, and its systemd units verify.
set -eu
build=$1
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

installed() { # the tree's root, the prefix
  [ -x "$1$2/bin/shardfs" ] || fail "no $2/bin/shardfs under $1"
  [ "$(readlink "$1$2/sbin/mount.shardfs")" = ../bin/shardfs ] || fail "no $2/sbin/mount.shardfs"
  "$1$2/sbin/mount.shardfs" --help >/dev/null || fail "$2/sbin/mount.shardfs does not run"
  for unit in shardfs-node@.service shardfs-mount@.service shardfs-repair.service; do
    grep -q "^ExecStart=$2/bin/shardfs " "$1$2/lib/systemd/system/$unit" || fail "$unit not for $2"
    grep -q "^Documentation=file://$2/share/doc/shardfs/README.md" "$1$2/lib/systemd/system/$unit" \
      || fail "$unit documentation not under $2"
  done
  [ -f "$1$2/share/doc/shardfs/README.md" ] || fail "no README under $2"
}
DESTDIR=$dir/staged cmake --install "$build" >/dev/null
prefix=$(sed -n 's/^CMAKE_INSTALL_PREFIX:PATH=//p' "$build/CMakeCache.txt")
installed "$dir/staged" "$prefix"
cmake --install "$build" --prefix "$dir/opt" >/dev/null
installed "" "$dir/opt"

cpack --config "$build/CPackConfig.cmake" -G DEB -B "$dir/out" >"$dir/cpack.log" 2>&1 \
  || { cat "$dir/cpack.log"; fail "cpack"; }
deb=$(ls "$dir"/out/shardfs_*.deb)
dpkg-deb -f "$deb" Depends | grep -q "libfuse3-3" || fail "no library dependencies computed"
rc=0
out=$(lintian --fail-on error "$deb" 2>&1) || rc=$?
echo "$out" | grep -v "running with root privileges" || true
[ $rc -eq 0 ] || fail "lintian reports errors"

root=$dir/root
dpkg -x "$deb" "$root"
"$root/usr/bin/shardfs" version | grep -q "^shardfs " || fail "the unpacked binary does not run"
[ "$(readlink -f "$root/usr/sbin/mount.shardfs")" = "$(readlink -f "$root/usr/bin/shardfs")" ] \
  || fail "mount.shardfs does not lead to the binary"
units=$root/usr/lib/systemd/system
for unit in shardfs-node@.service shardfs-mount@.service shardfs-repair.service; do
  [ -f "$units/$unit" ] || fail "$unit not packaged"
  grep -q "^ExecStart=/usr/bin/shardfs " "$units/$unit" || fail "$unit does not run /usr/bin/shardfs"
done
# verify checks that ExecStart exists: point it into the scratch root
sed "s|/usr/bin/shardfs|$root/usr/bin/shardfs|" "$units/shardfs-node@.service" > "$dir/shardfs-node@1.service"
sed "s|/usr/bin/shardfs|$root/usr/bin/shardfs|" "$units/shardfs-mount@.service" > "$dir/shardfs-mount@mnt-x.service"
sed "s|/usr/bin/shardfs|$root/usr/bin/shardfs|" "$units/shardfs-repair.service" > "$dir/shardfs-repair.service"
for unit in "$dir/shardfs-node@1.service" "$dir/shardfs-mount@mnt-x.service" "$dir/shardfs-repair.service"; do
  out=$(systemd-analyze verify "$unit" 2>&1) || { echo "$out"; fail "$unit does not verify"; }
  if echo "$out" | grep -i "shardfs-"; then fail "$unit: warnings"; fi
done
echo "package checked: $(basename "$deb")"
