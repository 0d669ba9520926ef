"""The FUSE mount on real node processes: everyday tools in and out,
random writes against a local file, remount, two mounts, open files."""

import errno
import filecmp
import os
import random
import struct
import subprocess

import pytest

from cluster import SHARDFS, Cluster, db_rows

PART = 8 << 20


def mount(cl, mnt):
    os.makedirs(mnt, exist_ok=True)
    subprocess.run([SHARDFS, "mount", cl.conf, str(mnt)], check=True, timeout=60)


def unmount(mnt):
    subprocess.run(["fusermount3", "-u", str(mnt)], check=True, timeout=120)


@pytest.fixture
def mounted(tmp_path):
    cl = Cluster(tmp_path / "c", nodes=3, ec="2+1")
    mnt = tmp_path / "mnt"
    mount(cl, mnt)
    yield cl, mnt
    # A failed test may leave a file open: then detach lazily, so that the
    # mount process ends with the test process instead of serving on.
    if subprocess.run(["fusermount3", "-u", str(mnt)], timeout=120).returncode:
        subprocess.run(["fusermount3", "-u", "-z", str(mnt)], timeout=120)
    cl.stop()


def test_cp_tree_in_and_out(mounted, tmp_path):
    """cp -a of a tree into the mount and back out compares equal."""
    cl, mnt = mounted
    src = tmp_path / "src"
    rng = random.Random(3)
    for d in range(5):
        os.makedirs(src / f"d{d}" / "sub")
        for f in range(20):
            (src / f"d{d}" / f"f{f}").write_bytes(rng.randbytes(rng.choice([0, 1, 5000, 70000])))
        (src / f"d{d}" / "sub" / "big").write_bytes(rng.randbytes(PART + 12345))
        os.symlink("../f1", src / f"d{d}" / "sub" / "link")
    subprocess.run(["cp", "-a", str(src), str(mnt / "tree")], check=True)
    subprocess.run(["cp", "-a", str(mnt / "tree"), str(tmp_path / "back")], check=True)
    subprocess.run(["diff", "-r", "--no-dereference", str(src), str(tmp_path / "back")], check=True)


def test_random_writes_match_a_local_file_and_survive_remount(mounted, tmp_path):
    """pwrite/ftruncate/fsync/pread on a file in the mount and on a local
    file with the same seed give the same bytes, also after remount."""
    cl, mnt = mounted
    rng = random.Random(11)
    m, loc = mnt / "rw", tmp_path / "rw"
    fm = os.open(m, os.O_RDWR | os.O_CREAT, 0o644)
    fl = os.open(loc, os.O_RDWR | os.O_CREAT, 0o644)
    for step in range(1500):
        op = rng.random()
        if op < 0.55:
            off, data = rng.randrange(3 * PART), rng.randbytes(rng.randrange(1, 200000))
            os.pwrite(fm, data, off)
            os.pwrite(fl, data, off)
        elif op < 0.65:
            size = rng.randrange(3 * PART)
            os.ftruncate(fm, size)
            os.ftruncate(fl, size)
        elif op < 0.7:
            os.fsync(fm)
        else:
            off, n = rng.randrange(3 * PART), rng.randrange(1, 100000)
            assert os.pread(fm, n, off) == os.pread(fl, n, off), step
        assert os.fstat(fm).st_size == os.fstat(fl).st_size, step
    os.close(fm)
    os.close(fl)
    assert filecmp.cmp(m, loc, shallow=False)
    unmount(mnt)
    mount(cl, mnt)
    assert filecmp.cmp(m, loc, shallow=False)


def test_two_mounts_see_closed_files(mounted, tmp_path):
    """A file written and closed on one mount reads byte-exact on another."""
    cl, mnt = mounted
    other = tmp_path / "mnt2"
    mount(cl, other)
    try:
        data = os.urandom(2 * PART + 77)
        (mnt / "shared").write_bytes(data)
        assert (other / "shared").read_bytes() == data
        out = subprocess.run([SHARDFS, "cat", "-c", cl.conf, "/shared"], capture_output=True,
                             check=True).stdout
        assert out == data
    finally:
        unmount(other)


def test_metadata_connections_are_an_option(mounted, tmp_path):
    """-o meta_connections=N: the mount opens N connections to its
    metadata (counted on a server by their application name); 0 or a
    word is refused as a usage error."""
    cl, mnt = mounted
    other = tmp_path / "mnt3"
    os.makedirs(other)
    for bad in ("meta_connections=0", "meta_connections=many"):
        r = subprocess.run([SHARDFS, "mount", cl.conf, str(other), "-o", bad],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 2 and "metadata connections 1..64" in r.stderr
    if not cl.meta_url.startswith("postgresql:"):
        return
    count = "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'shardfs'"
    before = db_rows(cl, count)[0][0]
    subprocess.run([SHARDFS, "mount", cl.conf, str(other), "-o", "meta_connections=3"],
                   check=True, timeout=60)
    try:
        (other / "x").write_bytes(b"through three")
        assert (mnt / "x").read_bytes() == b"through three"
        assert db_rows(cl, count)[0][0] == before + 3
    finally:
        unmount(other)


def test_unlinked_open_file_stays_readable_and_rename_replaces(mounted):
    """An open file unlinked is still readable until closed; rename over
    an existing file replaces it atomically."""
    cl, mnt = mounted
    data = os.urandom(PART + 5)
    (mnt / "f").write_bytes(data)
    with open(mnt / "f", "rb") as f:
        os.unlink(mnt / "f")
        assert f.read() == data
    (mnt / "a").write_bytes(b"old")
    (mnt / "b").write_bytes(b"new")
    os.rename(mnt / "b", mnt / "a")
    assert (mnt / "a").read_bytes() == b"new"
    assert not (mnt / "b").exists()


def test_sqlite_database_in_the_mount(mounted):
    """An sqlite3 database with 10,000 rows in one transaction passes
    integrity_check."""
    cl, mnt = mounted
    sql = ("CREATE TABLE t(a INTEGER, b TEXT); BEGIN;" +
           "".join(f"INSERT INTO t VALUES({i}, 'row {i}');" for i in range(10000)) +
           "COMMIT; PRAGMA integrity_check; SELECT count(*) FROM t;")
    out = subprocess.run(["sqlite3", str(mnt / "db.sqlite")], input=sql.encode(),
                         capture_output=True, check=True, timeout=300).stdout.split()
    assert out == [b"ok", b"10000"], out


def test_security_capability_is_not_stored(mounted):
    """File capabilities are not kept: setting one fails with EOPNOTSUPP,
    asking for one gives ENODATA (at once, without a metadata query), and
    other xattrs are stored as before."""
    cl, mnt = mounted
    f = mnt / "prog"
    f.write_bytes(b"#!/bin/sh\n")
    cap = struct.pack("<IIIII", 0x02000000, 1 << 10, 0, 0, 0)  # v2, CAP_NET_BIND_SERVICE
    with pytest.raises(OSError) as e:
        os.setxattr(f, "security.capability", cap)
    assert e.value.errno == errno.EOPNOTSUPP
    with pytest.raises(OSError) as e:
        os.getxattr(f, "security.capability")
    assert e.value.errno == errno.ENODATA
    os.setxattr(f, "user.note", b"kept")
    assert os.getxattr(f, "user.note") == b"kept"
