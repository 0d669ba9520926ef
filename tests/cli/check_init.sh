#!/bin/sh
# shardfs init: keys 0600, the CA key apart in ca/ (0700), one directory
# per host holding only that host's files, a second init refuses and changes nothing, bad
# arguments are usage errors, and a node with a broken cluster file says
# what is wrong and exits non-zero.
set -eu
shardfs=$1
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

"$shardfs" init --dir "$dir/c" --node 1=127.0.0.1:7001 --node 2=127.0.0.1:7002 --ec 1+1 >/dev/null
for key in ca/ca.key client.key node-1.key node-2.key hosts/node-1/node-1.key \
           hosts/client/client.key meta.db; do
  [ "$(stat -c %a "$dir/c/$key")" = 600 ] || fail "$key is not mode 0600"
done
for d in ca hosts hosts/node-1 hosts/node-2 hosts/client; do
  [ "$(stat -c %a "$dir/c/$d")" = 700 ] || fail "$d is not mode 0700"
done
[ ! -e "$dir/c/ca.key" ] || fail "the CA key is beside the files hosts copy"
[ "$(ls "$dir/c/hosts/node-1" | tr '\n' ' ')" = "ca.crt cluster.conf node-1.crt node-1.key " ] \
  || fail "hosts/node-1 holds: $(ls "$dir/c/hosts/node-1")"
[ "$(ls "$dir/c/hosts/client" | tr '\n' ' ')" = "ca.crt client.crt client.key cluster.conf " ] \
  || fail "hosts/client holds: $(ls "$dir/c/hosts/client")"
cmp -s "$dir/c/cluster.conf" "$dir/c/hosts/node-2/cluster.conf" || fail "hosts/node-2 has another cluster file"
for crt in ca.crt client.crt node-1.crt; do
  certtool -i --infile "$dir/c/$crt" >/dev/null || fail "$crt is not a certificate"
done
certtool --verify --load-ca-certificate "$dir/c/ca.crt" --infile "$dir/c/node-1.crt" >/dev/null \
  || fail "node-1.crt is not signed by the CA"
certtool -i --infile "$dir/c/node-1.crt" | grep -q "IPAddress: 127.0.0.1" || fail "no address in node-1.crt"
[ "$(sqlite3 "$dir/c/meta.db" 'SELECT version FROM schema_version')" = 11 ] || fail "no metadata schema"
[ "$(sqlite3 "$dir/c/meta.db" 'SELECT count(*) FROM inodes WHERE ino = 1')" = 1 ] || fail "no root inode"
before=$(find "$dir/c" -type f -exec sha256sum {} + | sort | sha256sum)
rc=0; "$shardfs" init --dir "$dir/c" --node 1=127.0.0.1:7001 --node 2=127.0.0.1:7002 2>/dev/null || rc=$?
[ $rc -eq 1 ] || fail "second init exited $rc"
[ "$(find "$dir/c" -type f -exec sha256sum {} + | sort | sha256sum)" = "$before" ] || fail "second init changed files"
rc=0; "$shardfs" init --dir "$dir/d" --node nonsense 2>/dev/null || rc=$?
[ $rc -eq 2 ] || fail "bad --node exited $rc"
rc=0; "$shardfs" init --dir "$dir/d" --node 1=h:1 --node 1=h:2 2>/dev/null || rc=$?
[ $rc -eq 2 ] || fail "repeated node id exited $rc"

# Codes that cannot work are refused with one line naming the value, and
# create nothing.
refused() { # expected words, then init's arguments
  want=$1; shift
  rc=0; out=$("$shardfs" init --dir "$dir/e" "$@" 2>&1) || rc=$?
  [ $rc -eq 2 ] || fail "init $* exited $rc"
  [ "$(echo "$out" | wc -l)" -eq 1 ] || fail "init $*: more than one line: $out"
  echo "$out" | grep -qF -- "$want" || fail "init $*: no '$want' in: $out"
  [ ! -e "$dir/e" ] || fail "init $* created $dir/e"
}
two="--node 1=127.0.0.1:7001 --node 2=127.0.0.1:7002"
refused "--ec -1+2" $two --ec -1+2
refused "--ec 1+0" $two --ec 1+0
refused "--ec 0+2" $two --ec 0+2
refused "--ec 2+x" $two --ec 2+x
refused "need at least 6 nodes, 2 given" $two --ec 4+2
refused "at least 2 nodes" --node 1=127.0.0.1:7001
refused "--meta mysql://db/x" $two --meta mysql://db/x
# A PostgreSQL server that cannot be reached is named, its password never,
# and no cluster file is written.
rc=0; out=$("$shardfs" init --dir "$dir/p" $two --meta "postgresql://u:sekrit@127.0.0.1:1/x" 2>&1) || rc=$?
[ $rc -eq 1 ] || fail "init with an unreachable server exited $rc"
echo "$out" | grep -qF "server 127.0.0.1:1" || fail "no server named in: $out"
! echo "$out" | grep -q sekrit || fail "the password was printed: $out"
[ ! -e "$dir/p/cluster.conf" ] || fail "init wrote a cluster file without its metadata"
refused "weight=0" --node 1=h:1,weight=0 --node 2=h:2
refused "zone=" --node 1=h:1,zone= --node 2=h:2
refused "PORT 1..65535" --node 1=h:70000 --node 2=h:2
# The default code follows the node count and is said; zones and weights
# go to the cluster file.
out=$("$shardfs" init --dir "$dir/z" --node 1=127.0.0.1:7001,zone=a \
  --node 2=127.0.0.1:7002,zone=b,weight=3 --node 3=127.0.0.1:7003,zone=c)
echo "$out" | grep -q "erasure code 2+1" || fail "default code for 3 nodes not said: $out"
grep -q "^ec=2+1$" "$dir/z/cluster.conf" || fail "3 nodes did not get 2+1"
[ "$(grep -c '^zone=' "$dir/z/cluster.conf")" = 3 ] || fail "zones not written"
grep -q "^weight=3$" "$dir/z/cluster.conf" || fail "weight not written"
for n in 2:1+1 4:2+2 6:4+2; do
  count=${n%%:*} code=${n#*:} args=""
  for i in $(seq 1 "$count"); do args="$args --node $i=127.0.0.1:$((7000 + i))"; done
  "$shardfs" init --dir "$dir/n$count" $args >/dev/null
  grep -q "^ec=$code$" "$dir/n$count/cluster.conf" || fail "$count nodes did not get $code"
done

printf '[cluster]\nca=ca.crt\n[node.1]\naddress=127.0.0.1\nport=99999\n' > "$dir/bad.conf"
rc=0; out=$("$shardfs" node --config "$dir/bad.conf" --id 1 2>&1) || rc=$?
[ $rc -eq 1 ] || fail "node with a bad port exited $rc"
echo "$out" | grep -q "port" || fail "no word about the port: $out"
echo "init and config checks: ok"
