#!/usr/bin/env bash
# Sets up everything and runs a local shardfs cluster:
#   tools/quickstart.sh         install packages, build, create (first time)
#                               a 3-node cluster under ./shardfs-local on free
#                               loopback ports, start the nodes, show status
#   tools/quickstart.sh stop    stop the nodes (SIGTERM: they drain and sync)
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${SHARDFS_LOCAL:-$PWD/shardfs-local}
shardfs=$PWD/build/tools/shardfs

stop_nodes() {
  for pidfile in "$dir"/node-*.pid; do
    [ -e "$pidfile" ] || continue
    pid=$(cat "$pidfile")
    if kill -TERM "$pid" 2>/dev/null; then
      for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
    rm -f "$pidfile"
  done
}

if [ "${1:-}" = stop ]; then
  stop_nodes
  echo "nodes stopped"
  exit 0
fi

tools/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)"

if [ ! -e "$dir/cluster.conf" ]; then
  ports=$(/usr/bin/python3 -c '
import socket
socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(3)]
for s in socks: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))')
  set -- $ports
  "$shardfs" init --dir "$dir" --ec 2+1 \
    --node "1=127.0.0.1:$1" --node "2=127.0.0.1:$2" --node "3=127.0.0.1:$3"
fi

stop_nodes
for id in 1 2 3; do
  setsid "$shardfs" node --config "$dir/cluster.conf" --id "$id" >>"$dir/node-$id.log" 2>&1 &
  echo $! >"$dir/node-$id.pid"
done
for _ in $(seq 50); do
  "$shardfs" status "$dir/cluster.conf" >/dev/null 2>&1 && break
  sleep 0.2
done
"$shardfs" status "$dir/cluster.conf"
cat <<EOT

The cluster runs in the background (logs: $dir/node-N.log).
  $shardfs status $dir/cluster.conf
  $shardfs bench wal --size 512      the shard store against dd on this disk
  $shardfs bench net --size 512      QUIC shard put/get against loopback TCP
  tools/quickstart.sh stop           stop the nodes
EOT
