"""Hosts for multi-host tests: network namespaces of the test's own,
joined by a bridge. The "server" host runs the nodes and PostgreSQL; each
other host runs a mount. Processes enter a host's network with nsenter
(not `ip netns exec`, which also makes a mount namespace of its own: the
test could not see the host's FUSE mount). Everything made is removed at
close; traffic stays between these namespaces."""

import os
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))
WITH_POSTGRES = os.path.join(HERE, "..", "lib", "with_postgres.sh")
SUBNET = "10.231.0"


def ip(*args):
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


class Host:
    def __init__(self, name, address):
        self.name = name
        self.address = address
        self.prefix = ["nsenter", f"--net=/var/run/netns/{name}"]


class Hosts:
    """Namespaces server, a, b, ... (names made unique by the test's pid),
    each with its loopback up; the server holds a bridge with SUBNET.1,
    the others SUBNET.2, .3, ... on veth pairs plugged into it."""

    def __init__(self, others=("a", "b")):
        tag = f"sf{os.getpid() % 100000}"
        self.made = []
        try:
            self.server = self._host(f"{tag}s", f"{SUBNET}.1")
            ip("-n", self.server.name, "link", "add", "br0", "type", "bridge")
            ip("-n", self.server.name, "addr", "add", f"{SUBNET}.1/24", "dev", "br0")
            ip("-n", self.server.name, "link", "set", "br0", "up")
            self.hosts = {}
            for i, name in enumerate(others, 2):
                h = self._host(f"{tag}{name}", f"{SUBNET}.{i}")
                self._wire(h, f"{tag}{name}v")
                self.hosts[name] = h
        except Exception:
            self.close()
            raise

    def _host(self, name, address):
        ip("netns", "add", name)
        self.made.append(name)
        ip("-n", name, "link", "set", "lo", "up")
        return Host(name, address)

    def _wire(self, h, veth):
        ip("link", "add", veth, "type", "veth", "peer", "name", veth + "p")
        ip("link", "set", veth, "netns", h.name)
        ip("link", "set", veth + "p", "netns", self.server.name)
        ip("-n", h.name, "link", "set", veth, "name", "eth0")
        ip("-n", h.name, "addr", "add", f"{h.address}/24", "dev", "eth0")
        ip("-n", h.name, "link", "set", "eth0", "up")
        ip("-n", self.server.name, "link", "set", veth + "p", "master", "br0")
        ip("-n", self.server.name, "link", "set", veth + "p", "up")

    def __getitem__(self, name):
        return self.hosts[name]

    def close(self):
        for name in reversed(self.made):  # the veths go with them
            subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=30)
        self.made = []


class Postgres:
    """A throwaway PostgreSQL on host (with_postgres.sh) listening on its
    address: tcp_url for the hosts, admin_url (its unix socket, a file the
    test reaches from anywhere) for making databases. Stopped at close."""

    def __init__(self, host):
        env = dict(os.environ, SHARDFS_PG_LISTEN=host.address)
        self.proc = subprocess.Popen(
            [*host.prefix, WITH_POSTGRES, "sh", "-c",
             'echo "$SHARDFS_TEST_PG_TCP"; echo "$SHARDFS_TEST_PG"; exec cat >/dev/null'],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        self.tcp_url = self.proc.stdout.readline().strip()
        self.admin_url = self.proc.stdout.readline().strip()
        if not self.tcp_url.startswith("postgresql://"):
            self.close()
            raise RuntimeError("PostgreSQL did not start")

    def database(self, name):
        """A new database: its URL over TCP."""
        from cluster import pg_rows
        pg_rows(self.admin_url, f"CREATE DATABASE {name}")
        return self.tcp_url.rsplit("/", 1)[0] + "/" + name

    def rows(self, db, sql, *args):
        """Rows of sql on database db, through the unix socket."""
        from cluster import pg_rows
        return pg_rows(self.admin_url.replace("postgresql:///postgres?", f"postgresql:///{db}?"),
                       sql, *args)

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()  # its cat ends, and the script stops the server
            self.proc.wait(timeout=60)
