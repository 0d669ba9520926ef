"""Two hosts share one namespace: network namespaces of the test's own
(hosts.py) for a server (nodes, PostgreSQL) and hosts A and B, each with
its own mount of the cluster, reaching the server over veth pairs.

What must hold between them: close-to-open, one winner of a rename race
with no entry lost or doubled, an unlinked file kept for the host that has
it open, EEXIST/ENOTEMPTY from mkdir/rmdir races with a clean tree,
exact link counts, the same inode numbers, live streams, and locks. The
kernel caches attributes and names for 1 s (attr_timeout, entry_timeout):
where a test looks at what the other host changed, it waits that long."""

import errno
import fcntl
import hashlib
import os
import subprocess
import sys
import time
import types

import pytest

from cluster import Cluster, Mount
from hosts import Hosts, Postgres

CACHE_S = 1.2  # a little past the kernel's attribute and entry cache


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The cluster, mounts on A and B, and the PostgreSQL they share."""
    root = tmp_path_factory.mktemp("hosts")
    hosts = Hosts()
    made = []
    try:
        pg = Postgres(hosts.server)
        made.append(pg)
        cl = Cluster(root / "c", meta=pg.database("shared"), host=hosts.server)
        made.append(cl)
        a = Mount(cl.conf, root / "a", "streams=live", host=hosts["a"])
        made.append(a)
        b = Mount(cl.conf, root / "b", "streams=live", host=hosts["b"])
        made.append(b)
        yield types.SimpleNamespace(cl=cl, a=a, b=b, pg=pg)
    finally:
        for thing in reversed(made):
            thing.close() if not isinstance(thing, Cluster) else thing.stop()
        hosts.close()


def md5(path):
    with open(path, "rb") as f:
        return hashlib.md5(f.read()).hexdigest()


def test_mounts_run_in_their_hosts(world):
    # each mount's connection to PostgreSQL comes from its own address
    rows = world.pg.rows("shared", "SELECT DISTINCT host(client_addr) FROM pg_stat_activity"
                       " WHERE datname = 'shared' AND client_addr IS NOT NULL")
    assert {"10.231.0.2", "10.231.0.3"} <= {r[0] for r in rows}


def test_close_to_open(world):
    a, b = world.a, world.b
    data = os.urandom(3 * 1024 * 1024 + 17)
    with open(os.path.join(a.path, "c2o"), "wb") as f:
        f.write(data)
    with open(os.path.join(b.path, "c2o"), "rb") as f:
        assert f.read() == data
    again = os.urandom(100)  # rewritten on B, smaller: read whole on A
    with open(os.path.join(b.path, "c2o"), "wb") as f:
        f.write(again)
    time.sleep(CACHE_S)
    with open(os.path.join(a.path, "c2o"), "rb") as f:
        assert f.read() == again


RENAMER = """
import os, sys
d, to, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
won = 0
for i in range(n):
    try:
        os.rename(os.path.join(d, f"from{i}"), os.path.join(d, f"{to}{i}"))
        won += 1
    except FileNotFoundError:
        pass
print(won)
"""


def test_rename_race_has_one_winner(world):
    """Both hosts rename the same names at once, each to names of its own
    (the same target would hide a loser: a kernel whose cached source
    turns out to be the target's inode calls that rename done)."""
    a, b = world.a, world.b
    n = 60
    os.mkdir(os.path.join(a.path, "race"))
    inos = set()
    for i in range(n):
        p = os.path.join(a.path, "race", f"from{i}")
        with open(p, "w") as f:
            f.write(str(i))
        inos.add(os.stat(p).st_ino)
    time.sleep(CACHE_S)
    procs = [subprocess.Popen([sys.executable, "-c", RENAMER, os.path.join(m.path, "race"),
                               to, str(n)], stdout=subprocess.PIPE, text=True)
             for m, to in ((a, "a"), (b, "b"))]
    won = [int(p.communicate(timeout=300)[0]) for p in procs]
    assert sum(won) == n  # each name renamed once, by one host or the other
    time.sleep(CACHE_S)
    for m in (a, b):
        names = os.listdir(os.path.join(m.path, "race"))
        assert len(names) == n and not any(x.startswith("from") for x in names)
        assert sum(x.startswith("a") for x in names) == won[0]
        assert {int(x[1:]) for x in names} == set(range(n))  # one winner each
        assert {os.stat(os.path.join(m.path, "race", x)).st_ino for x in names} == inos
        for x in names:
            with open(os.path.join(m.path, "race", x)) as f:
                assert f.read() == x[1:]


def test_unlinked_on_b_stays_open_on_a(world):
    a, b = world.a, world.b
    fd = os.open(os.path.join(a.path, "kept"), os.O_CREAT | os.O_RDWR, 0o644)
    try:
        os.write(fd, b"first part;")
        os.fsync(fd)
        os.unlink(os.path.join(b.path, "kept"))
        time.sleep(CACHE_S)
        assert not os.path.exists(os.path.join(a.path, "kept"))
        os.write(fd, b" written after the unlink")
        os.fsync(fd)
        assert os.pread(fd, 100, 0) == b"first part; written after the unlink"
        assert os.fstat(fd).st_nlink == 0
    finally:
        os.close(fd)


DIRS = """
import errno, json, os, sys
d, op, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
seen = {}
for i in range(n):
    p = os.path.join(d, f"dir{i}")
    try:
        if op == "mkdir":
            os.mkdir(p)
        elif op == "rmdir":
            os.rmdir(p)
        else:
            with open(os.path.join(p, "inside"), "w") as f:
                f.write("x")
        r = "ok"
    except OSError as e:
        r = errno.errorcode[e.errno]
    seen[r] = seen.get(r, 0) + 1
print(json.dumps(seen))
"""


def on_both(world, op_a, op_b, n):
    """op_a in A's mount and op_b in B's at once, over dir0..dir{n-1}."""
    import json
    procs = [subprocess.Popen([sys.executable, "-c", DIRS, os.path.join(m.path, "races"), op,
                               str(n)], stdout=subprocess.PIPE, text=True)
             for m, op in ((world.a, op_a), (world.b, op_b))]
    return [json.loads(p.communicate(timeout=300)[0]) for p in procs]


def test_mkdir_rmdir_races(world):
    cl, a, b = world.cl, world.a, world.b
    n = 40
    os.mkdir(os.path.join(a.path, "races"))
    made = on_both(world, "mkdir", "mkdir", n)
    assert made[0].get("ok", 0) + made[1].get("ok", 0) == n
    assert set(made[0]) | set(made[1]) <= {"ok", "EEXIST"}
    time.sleep(CACHE_S)
    # files made in them on A while B removes them: each directory is
    # either removed empty (the file then has nowhere to go) or kept full
    filled, removed = on_both(world, "fill", "rmdir", n)
    assert set(filled) <= {"ok", "ENOENT"} and set(removed) <= {"ok", "ENOTEMPTY"}
    assert filled.get("ok", 0) == removed.get("ENOTEMPTY", 0)
    time.sleep(CACHE_S)
    left = sorted(os.listdir(os.path.join(b.path, "races")))
    assert len(left) == filled.get("ok", 0)
    for name in left:
        assert os.listdir(os.path.join(a.path, "races", name)) == ["inside"]
    with open(os.path.join(a.path, "races", "keep"), "w") as f:  # however the race went
        f.write("x")
    time.sleep(CACHE_S)
    with pytest.raises(OSError) as e:
        os.rmdir(os.path.join(b.path, "races"))
    assert e.value.errno == errno.ENOTEMPTY
    assert cl.run("meta", "check", "-c", cl.conf).returncode == 0


def test_links_and_inode_numbers(world):
    a, b = world.a, world.b
    with open(os.path.join(a.path, "linked"), "w") as f:
        f.write("one file, three names")
    os.link(os.path.join(a.path, "linked"), os.path.join(a.path, "linked2"))
    os.link(os.path.join(b.path, "linked"), os.path.join(b.path, "linked3"))
    time.sleep(CACHE_S)
    sa, sb = os.stat(os.path.join(a.path, "linked3")), os.stat(os.path.join(b.path, "linked2"))
    assert sa.st_ino == sb.st_ino
    assert sa.st_nlink == sb.st_nlink == 3
    os.unlink(os.path.join(a.path, "linked"))
    time.sleep(CACHE_S)
    assert os.stat(os.path.join(b.path, "linked3")).st_nlink == 2


def test_stream_written_on_a_read_live_on_b(world, tmp_path):
    """The writer stays open throughout: a stream whose writer closed has
    ended, and a reader that comes then reads to its end and stops."""
    a, b = world.a, world.b
    path_a = os.path.join(a.path, "live", "events")
    out = tmp_path / "tail"
    with open(path_a, "ab") as w:
        time.sleep(CACHE_S)
        with open(out, "wb") as sink:
            reader = subprocess.Popen(["cat", os.path.join(b.path, "live", "events")],
                                      stdout=sink)
        try:
            time.sleep(1)
            for i in range(50):
                w.write(b"event %d\n" % i)
                w.flush()
            expect = b"".join(b"event %d\n" % i for i in range(50))
            deadline = time.monotonic() + 30
            while out.read_bytes() != expect:
                assert time.monotonic() < deadline, out.read_bytes()[-200:]
                time.sleep(0.1)
            assert reader.poll() is None  # still tailing
        finally:
            reader.kill()
            reader.wait()


def test_locks_between_hosts(world):
    a, b = world.a, world.b
    with open(os.path.join(a.path, "lockfile"), "w") as f:
        f.write("x")
    with open(os.path.join(a.path, "lockfile"), "r+") as fa, \
            open(os.path.join(b.path, "lockfile"), "r+") as fb:
        fcntl.flock(fa, fcntl.LOCK_EX)
        with pytest.raises(BlockingIOError):
            fcntl.flock(fb, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.lockf(fb, fcntl.LOCK_EX | fcntl.LOCK_NB, 10, 0)  # another kind of lock
        with pytest.raises(OSError) as e:
            fcntl.lockf(fa, fcntl.LOCK_SH | fcntl.LOCK_NB, 1, 5)
        assert e.value.errno in (errno.EAGAIN, errno.EACCES)
        fcntl.flock(fa, fcntl.LOCK_UN)
        fcntl.flock(fb, fcntl.LOCK_EX | fcntl.LOCK_NB)
