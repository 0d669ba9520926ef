#!/usr/bin/env bash
# Sets up everything and runs what shardfs has so far: installs the
# packages, builds, and measures the node-local shard store against this
# disk (`shardfs bench wal`). Pass bench options through, e.g. --size 512.
set -euo pipefail
cd "$(dirname "$0")/.."

tools/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)"
echo "built: build/tools/shardfs"
build/tools/shardfs bench wal "$@"
