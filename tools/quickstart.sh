#!/usr/bin/env bash
# Sets up everything and runs a local shardfs cluster with a mount:
#   tools/quickstart.sh         install packages, build, then `shardfs up`:
#                               a 3-node 2+1 cluster under ./shardfs-local
#                               (created the first time) mounted on
#                               ./shardfs-local/mnt
#   tools/quickstart.sh stop    `shardfs down`: unmount, stop the nodes
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${SHARDFS_LOCAL:-$PWD/shardfs-local}
shardfs=$PWD/build/tools/shardfs

if [ "${1:-}" = stop ]; then
  exec "$shardfs" down "$dir"
fi

tools/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)"
exec "$shardfs" up "$dir"
