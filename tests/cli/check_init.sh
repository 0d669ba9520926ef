#!/bin/sh
# shardfs init: keys 0600, a second init refuses and changes nothing, bad
# arguments are usage errors, and a node with a broken cluster file says
# what is wrong and exits non-zero.
set -eu
shardfs=$1
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

"$shardfs" init --dir "$dir/c" --node 1=127.0.0.1:7001 --node 2=127.0.0.1:7002 --ec 1+1 >/dev/null
for key in ca.key client.key node-1.key node-2.key; do
  [ "$(stat -c %a "$dir/c/$key")" = 600 ] || fail "$key is not mode 0600"
done
for crt in ca.crt client.crt node-1.crt; do
  certtool -i --infile "$dir/c/$crt" >/dev/null || fail "$crt is not a certificate"
done
certtool --verify --load-ca-certificate "$dir/c/ca.crt" --infile "$dir/c/node-1.crt" >/dev/null \
  || fail "node-1.crt is not signed by the CA"
certtool -i --infile "$dir/c/node-1.crt" | grep -q "IPAddress: 127.0.0.1" || fail "no address in node-1.crt"
[ "$(sqlite3 "$dir/c/meta.db" 'SELECT version FROM schema_version')" = 3 ] || fail "no metadata schema"
[ "$(sqlite3 "$dir/c/meta.db" 'SELECT count(*) FROM inodes WHERE ino = 1')" = 1 ] || fail "no root inode"
before=$(sha256sum "$dir"/c/* | sha256sum)
rc=0; "$shardfs" init --dir "$dir/c" --node 1=127.0.0.1:7001 2>/dev/null || rc=$?
[ $rc -eq 1 ] || fail "second init exited $rc"
[ "$(sha256sum "$dir"/c/* | sha256sum)" = "$before" ] || fail "second init changed files"
rc=0; "$shardfs" init --dir "$dir/d" --node nonsense 2>/dev/null || rc=$?
[ $rc -eq 2 ] || fail "bad --node exited $rc"
rc=0; "$shardfs" init --dir "$dir/d" --node 1=h:1 --node 1=h:2 2>/dev/null || rc=$?
[ $rc -eq 2 ] || fail "repeated node id exited $rc"

printf '[cluster]\nca=ca.crt\n[node.1]\naddress=127.0.0.1\nport=99999\n' > "$dir/bad.conf"
rc=0; out=$("$shardfs" node --config "$dir/bad.conf" --id 1 2>&1) || rc=$?
[ $rc -eq 1 ] || fail "node with a bad port exited $rc"
echo "$out" | grep -q "port" || fail "no word about the port: $out"
echo "init and config checks: ok"
