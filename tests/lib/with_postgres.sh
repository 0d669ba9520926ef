#!/bin/sh
# with_postgres.sh CMD [ARG...] - runs CMD beside a throwaway PostgreSQL
# server: Debian's initdb and postgres, a data directory and a unix socket
# in a new temporary directory, no TCP. CMD finds it through
# SHARDFS_TEST_PG, a URL of its maintenance database for a superuser
# "shardfs"; tests make their own databases on it. With SHARDFS_PG_LISTEN
# set to an address (a test's network namespace), the server also listens
# there on TCP port 5432, trusting any client (only that namespace's
# hosts can reach it), and SHARDFS_TEST_PG_TCP is that URL. The server is stopped
# by its pid and the directory removed however CMD ends; CMD's exit code
# is this script's.
#
# initdb and postgres refuse to run as root, so as root they run as the
# "postgres" system user of Debian's package (or "nobody" without it).
set -eu

bindir=$(pg_config --bindir 2>/dev/null || true)
if [ ! -x "$bindir/initdb" ]; then
	bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
fi
if [ ! -x "$bindir/initdb" ]; then
	echo "with_postgres: no PostgreSQL server (apt-get install postgresql)" >&2
	exit 1
fi

dir=$(mktemp -d /tmp/shardfs-pg.XXXXXX)
pid=
# A command prefix, not a function: a function run in the background is a
# subshell whose pid is not the server's.
as_owner=
if [ "$(id -u)" = 0 ]; then
	owner=postgres
	id "$owner" >/dev/null 2>&1 || owner=nobody
	chown "$owner" "$dir"
	as_owner="setpriv --reuid=$owner --regid=$(id -g "$owner") --clear-groups --"
fi

stop() {
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
		kill -INT "$pid" 2>/dev/null || true # fast shutdown
		for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$pid" 2>/dev/null || true
	fi
	rm -rf "$dir"
}
trap stop EXIT
trap 'exit 130' INT TERM

# fsync off: the tests kill processes, never the machine, and a process
# crash loses nothing the kernel was given.
$as_owner "$bindir/initdb" -D "$dir/data" -U shardfs -A trust -E UTF8 --no-sync >"$dir/initdb.log" 2>&1 ||
	{ cat "$dir/initdb.log" >&2; exit 1; }
listen=${SHARDFS_PG_LISTEN:-}
if [ -n "$listen" ]; then
	echo "host all all 0.0.0.0/0 trust" >>"$dir/data/pg_hba.conf"
fi
$as_owner "$bindir/postgres" -D "$dir/data" -k "$dir" -c listen_addresses="$listen" \
	-c fsync=off -c max_connections=200 >"$dir/server.log" 2>&1 &
pid=$!
for _ in $(seq 100); do
	[ -S "$dir/.s.PGSQL.5432" ] && break
	kill -0 "$pid" 2>/dev/null || { cat "$dir/server.log" >&2; exit 1; }
	sleep 0.1
done
until "$bindir/pg_isready" -q -h "$dir"; do
	kill -0 "$pid" 2>/dev/null || { cat "$dir/server.log" >&2; exit 1; }
	sleep 0.1
done

export SHARDFS_TEST_PG="postgresql:///postgres?host=$dir&user=shardfs"
if [ -n "$listen" ]; then
	export SHARDFS_TEST_PG_TCP="postgresql://shardfs@$listen:5432/postgres"
fi
set +e
"$@"
rc=$?
set -e
exit $rc
