#!/usr/bin/env bash
# Installs, from Debian's packages, everything shardfs builds, tests and
# runs with. Idempotent: when every package is already present it only
# checks and returns in well under a second.
set -euo pipefail

PACKAGES=(
  # build
  build-essential cmake pkg-config clang llvm libclang-rt-dev git
  # libraries named in the design
  libglib2.0-dev libfuse3-dev fuse3
  libngtcp2-dev libngtcp2-crypto-gnutls-dev libgnutls28-dev gnutls-bin
  liberasurecode-dev libisal-dev libisal2 libxxhash-dev
  libsqlite3-dev sqlite3 libsystemd-dev systemd
  libpq-dev postgresql  # the PostgreSQL metadata engine; tests run a throwaway server
  libjson-glib-dev  # status --json
  libmicrohttpd-dev  # the /metrics endpoints
  # tests
  libcmocka-dev python3 python3-pytest attr rsync procps time
  python3-psycopg2  # tests read a PostgreSQL metadata database
  util-linux-extra  # fincore: what the page cache holds of a file
  iproute2 util-linux  # hosts of multi-host tests: ip netns, veth, bridge; nsenter
  dpkg-dev file lintian  # cpack -G DEB (dpkg-shlibdeps) and its check
  prometheus  # a real Prometheus scrapes a node and a mount; promtool
)

missing=()
for pkg in "${PACKAGES[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
  [ "$status" = installed ] || missing+=("$pkg")
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "install-deps: installing ${missing[*]}" >&2
SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
