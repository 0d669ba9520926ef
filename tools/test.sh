#!/usr/bin/env bash
# Runs every test of shardfs: installs what is missing, builds with gcc
# (-Werror) and runs the suite, then builds with clang under
# AddressSanitizer + UndefinedBehaviorSanitizer and runs the suite again,
# with each libFuzzer target for a bounded time.
set -euo pipefail
cd "$(dirname "$0")/.."

tools/install-deps.sh
jobs=$(nproc)

echo "== gcc build"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$jobs"
(cd build && ctest --output-on-failure -j"$jobs")

echo "== clang build with ASan + UBSan, and fuzzing"
CC=clang cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug \
  -DSHARDFS_SANITIZE=ON -DSHARDFS_FUZZ=ON >/dev/null
cmake --build build-asan -j"$jobs"
(cd build-asan && ctest --output-on-failure -j"$jobs")
