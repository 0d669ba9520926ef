"""Local shardfs clusters for integration tests: `shardfs init`, real
`shardfs node` processes on 127.0.0.1 with free ports, stopped by pid;
`shardfs mount -f` processes on them, unmounted by fusermount3."""

import os
import random
import re
import signal
import socket
import sqlite3
import subprocess
import time

SHARDFS = os.environ.get("SHARDFS_BIN", "shardfs")


def _ephemeral_range():
    with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
        low, high = (int(v) for v in f.read().split())
    return low, high


def free_ports(n, kind):
    """n ports free now, drawn at random below the kernel's ephemeral range:
    a port the kernel hands out for 0 is also what the next client socket
    of a test running beside this one may get (QUIC clients bind one each)
    before our server binds it."""
    low = _ephemeral_range()[0]
    chosen = []
    rng = random.Random()
    while len(chosen) < n:
        port = rng.randrange(10000, low)
        if port in chosen:
            continue
        with socket.socket(socket.AF_INET, kind) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        chosen.append(port)
    return chosen


def free_tcp_ports(n):
    return free_ports(n, socket.SOCK_STREAM)


def free_udp_ports(n):
    return free_ports(n, socket.SOCK_DGRAM)


# A PostgreSQL server for the metadata (tests/lib/with_postgres.sh), or
# None: then clusters keep it in SQLite.
TEST_PG = os.environ.get("SHARDFS_TEST_PG") or None


def pg_url(db):
    """The URL of database db on the TEST_PG server."""
    return re.sub(r"^postgresql:///[^?]*", f"postgresql:///{db}", TEST_PG)


def pg_rows(url, sql, *args):
    """Rows of sql on url, with psycopg2 (libpq) in this process: a helper
    process would close, and so flush, the test's open files in the
    mount as it starts."""
    import psycopg2
    db = psycopg2.connect(url)
    try:
        db.autocommit = True
        with db.cursor() as cur:
            cur.execute(sql.replace("?", "%s"), args)
            return cur.fetchall() if cur.description else []
    finally:
        db.close()


def db_rows(cl, sql, *args):
    """Rows of a query on cluster cl's metadata database, read beside the
    mounts (WAL mode lets a reader in at any time)."""
    if cl.meta_url.startswith("postgresql:"):
        return [tuple(bytes(v) if isinstance(v, memoryview) else v for v in row)
                for row in pg_rows(cl.meta_url, sql, *args)]
    db = sqlite3.connect(os.path.join(cl.dir, "meta.db"), timeout=10)
    try:
        return db.execute(sql, args).fetchall()
    finally:
        db.close()


_databases = 0


def new_pg_database():
    """A new database on the TEST_PG server, for one cluster."""
    global _databases
    _databases += 1
    name = f"cluster_{os.getpid()}_{_databases}"
    pg_rows(TEST_PG, f"CREATE DATABASE {name}")
    return pg_url(name)


class Cluster:
    def __init__(self, root, nodes=3, ec="2+1", meta=None, host=None):
        """meta: "sqlite" keeps the metadata in SQLite even when the run
        has a PostgreSQL server (TEST_PG) for it; a URL puts it there.
        host: where the nodes run (hosts.Host: a network namespace of the
        test's own, whose ports are all free), else 127.0.0.1 here."""
        self.dir = str(root)
        self.n = nodes
        self.procs = {}
        self.prefix = host.prefix if host else []
        address = host.address if host else "127.0.0.1"
        ports = [7001 + i for i in range(nodes)] if host else free_udp_ports(nodes)
        args = [*self.prefix, SHARDFS, "init", "--dir", self.dir, "--ec", ec]
        self.meta_url = "sqlite://" + os.path.join(self.dir, "meta.db")
        if meta and meta.startswith("postgresql:"):
            self.meta_url = meta
            args += ["--meta", self.meta_url]
        elif TEST_PG and meta != "sqlite":
            self.meta_url = new_pg_database()
            args += ["--meta", self.meta_url]
        for i, port in enumerate(ports, 1):
            args += ["--node", f"{i}={address}:{port}"]
        subprocess.run(args, check=True, stdout=subprocess.DEVNULL)
        self.conf = os.path.join(self.dir, "cluster.conf")
        for i in range(1, nodes + 1):
            self.start(i)
        self.wait_up()

    def start(self, i, *extra):
        """Starts node i (extra: more `shardfs node` arguments)."""
        log = open(os.path.join(self.dir, f"node-{i}.log"), "ab")
        self.procs[i] = subprocess.Popen(
            [*self.prefix, SHARDFS, "node", "--config", self.conf, "--id", str(i), *extra],
            stdout=log, stderr=log, start_new_session=True)

    def wait_up(self, timeout=20):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            # 3: every node up, parts with shards missing
            if subprocess.run([*self.prefix, SHARDFS, "status", self.conf],
                              stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL).returncode in (0, 3):
                return
            self.raise_if_a_node_died()
            time.sleep(0.2)
        raise TimeoutError("cluster did not come up")

    def raise_if_a_node_died(self):
        for i, p in self.procs.items():
            if p.poll() is not None:
                with open(os.path.join(self.dir, f"node-{i}.log"), errors="replace") as f:
                    tail = f.read()[-2000:]
                raise RuntimeError(f"node {i} exited with {p.returncode}:\n{tail}")

    def add_node(self, *attrs):
        """`shardfs node add` of node n+1 on a free port (attrs: ",zone=Z"
        and the like), started; its id."""
        i = self.n + 1
        port = free_udp_ports(1)[0]
        self.run("node", "add", f"{i}=127.0.0.1:{port}" + "".join(attrs))
        self.n = i
        self.start(i)
        self.wait_up()
        return i

    def kill(self, i, sig=signal.SIGKILL):
        self.procs[i].send_signal(sig)
        if sig in (signal.SIGKILL, signal.SIGTERM):
            self.procs[i].wait(timeout=30)

    def node_dir(self, i):
        return os.path.join(self.dir, f"node-{i}")

    def run(self, *args, input=None, timeout=300, check=True):
        env = dict(os.environ, SHARDFS_CONF=self.conf)
        return subprocess.run([*self.prefix, SHARDFS, *args], input=input, capture_output=True,
                              env=env,
                              timeout=timeout, check=check)

    def stop(self):
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGCONT)
                p.terminate()
        for p in self.procs.values():
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def rand_bytes(n, seed):
    return random.Random(seed).randbytes(n)


def put(cl, data, remote, tmp_path):
    """`shardfs put` of data as remote, through a file in tmp_path."""
    src = tmp_path / "src"
    src.write_bytes(data)
    cl.run("put", str(src), remote)


def flip_byte_in_shard(cl, needle):
    """Flips a bit of a byte in the middle of needle where a node stores it;
    which node."""
    for i in range(1, cl.n + 1):
        for root, _, files in os.walk(cl.node_dir(i)):
            for name in files:
                path = os.path.join(root, name)
                with open(path, "r+b") as f:
                    blob = f.read()
                    at = blob.find(needle)
                    if at >= 0:
                        f.seek(at + len(needle) // 2)
                        f.write(bytes([blob[at + len(needle) // 2] ^ 0x40]))
                        return i
    raise AssertionError("shard bytes not found on any node")


MOUNT_TYPE = "fuse.shardfs"


def is_mounted(path):
    """Whether a shardfs mount is on path, by the rule the C side uses
    (tools/local_cluster.c): /proc/self/mountinfo lists a fuse.shardfs file
    system at that mount point. True also when its FUSE process is dead
    (os.path.ismount says False then: stat fails with ENOTCONN)."""
    path = os.path.realpath(path)
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields, _, rest = line.partition(" - ")
            # blanks and backslashes come escaped in octal
            point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)),
                           fields.split(" ")[4])
            if point == path and rest.split(" ")[0] == MOUNT_TYPE:
                return True
    return False


class Mount:
    """A `shardfs mount -f` process serving conf on path. The process is
    ours (its pid is known), so tests can signal it; close() always leaves
    the directory unmounted and the process gone."""

    def __init__(self, conf, path, *opts, timeout=30, debug=False, host=None):
        """host: a hosts.Host whose network the mount process uses."""
        self.path = str(path)
        os.makedirs(self.path, exist_ok=True)
        args = [*(host.prefix if host else []), SHARDFS, "mount", "-d" if debug else "-f", conf,
                self.path]
        for o in opts:
            args += ["-o", o]
        self.log = os.path.join(os.path.dirname(self.path),
                                os.path.basename(self.path) + ".log")
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=log, start_new_session=True)
        deadline = time.monotonic() + timeout
        while not (is_mounted(self.path) and os.path.ismount(self.path)):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise RuntimeError(f"mount on {self.path} failed: {self.log_text()}")
            time.sleep(0.05)

    @property
    def pid(self):
        return self.proc.pid

    def log_text(self):
        with open(self.log, "rb") as f:
            return f.read().decode(errors="replace")

    def unmount(self, timeout=60):
        """fusermount3 -u; the process must then exit by itself."""
        subprocess.run(["fusermount3", "-u", self.path], check=True, timeout=timeout)
        self.proc.wait(timeout=timeout)

    def close(self):
        """Cleanup after anything: unmount if still mounted (lazily only
        when a plain unmount is refused, so a failed test cannot leave the
        directory mounted), then make sure the process is gone."""
        if is_mounted(self.path):
            r = subprocess.run(["fusermount3", "-u", self.path], capture_output=True, timeout=60)
            if r.returncode:
                subprocess.run(["fusermount3", "-u", "-z", self.path], capture_output=True,
                               timeout=60)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        # In sanitized builds a report fails the test that made it.
        report = [line for line in self.log_text().splitlines()
                  if "Sanitizer" in line or "runtime error:" in line]
        assert not report, f"{self.log}: {report[:5]}"
