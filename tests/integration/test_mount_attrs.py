"""Attributes of files being written: changes made before the close go
with the content's commit (a second mount sees both at the close), those
that take access away reach other mounts at once, and the mount clears
set-user-ID and set-group-ID bits itself (FUSE_HANDLE_KILLPRIV). Also:
the open record of a closed, unlinked file is dropped in a later batch."""

import os
import re
import time

import pytest

from cluster import Mount, db_rows
from test_mount_tools import NOBODY, errno_of, in_child_as

T_NS = 1_500_000_000_123_456_789  # an explicit mtime, to the nanosecond


def stored(cl, ino):
    """(mode, uid, gid, size, mtime) of ino as committed in the database."""
    rows = db_rows(cl, "SELECT mode, uid, gid, size, mtime FROM inodes WHERE ino = ?", ino)
    return rows[0] if rows else None


def test_attributes_set_while_writing_go_with_the_content(cluster, tmp_path):
    """tar's sequence (create 0600, write, futimens, fchown, fchmod,
    close): the writing mount shows every change at once; the database
    has them with the content at the close, and so has a second mount,
    with the mtime to the nanosecond."""
    A, B = tmp_path / "a", tmp_path / "b"
    a = Mount(cluster.conf, tmp_path / "a")
    b = Mount(cluster.conf, tmp_path / "b")
    try:
        data = os.urandom(4096)
        fd = os.open(A / "f", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, data)
        os.utime(fd, ns=(T_NS, T_NS))
        os.fchown(fd, 0, 0)
        os.fchmod(fd, 0o644)
        st = os.fstat(fd)
        assert (st.st_mode & 0o7777, st.st_size, st.st_mtime_ns) == (0o644, 4096, T_NS)
        st = os.stat(A / "f")
        assert (st.st_mode & 0o7777, st.st_size, st.st_mtime_ns) == (0o644, 4096, T_NS)
        ino = st.st_ino
        mode, _, _, size, mtime = stored(cluster, ino)
        assert (mode & 0o7777, size) == (0o600, 0)  # nothing committed before the close
        os.close(fd)
        mode, uid, gid, size, mtime = stored(cluster, ino)
        assert (mode & 0o7777, uid, gid, size, mtime) == (0o644, 0, 0, 4096, T_NS)
        st = os.stat(B / "f")
        assert (st.st_mode & 0o7777, st.st_size, st.st_mtime_ns) == (0o644, 4096, T_NS)
        assert (B / "f").read_bytes() == data
        a.unmount()
        a = Mount(cluster.conf, tmp_path / "a")
        assert os.stat(A / "f").st_mtime_ns == T_NS
    finally:
        b.close()
        a.close()


def test_write_after_an_explicit_mtime_stamps_it_again(cluster, tmp_path):
    """A write after futimens makes the mtime the time of the commit, as
    on a local file system; a futimens after the last write stays."""
    A, B = tmp_path / "a", tmp_path / "b"
    a = Mount(cluster.conf, tmp_path / "a")
    try:
        path = A / "g"
        before = time.time_ns()
        with open(path, "wb") as f:
            f.write(b"one")
            os.utime(f.fileno(), ns=(T_NS, T_NS))
            f.write(b"two")
            f.flush()
        st = os.stat(path)
        assert st.st_mtime_ns >= before - 1_000_000_000, st.st_mtime_ns
        mtime = stored(cluster, st.st_ino)[4]
        assert mtime == st.st_mtime_ns
        with open(path, "ab") as f:
            f.write(b"three")
            f.flush()
            os.utime(f.fileno(), ns=(T_NS, T_NS))
        assert os.stat(path).st_mtime_ns == T_NS
        assert stored(cluster, st.st_ino)[4] == T_NS
        assert path.read_bytes() == b"onetwothree"
    finally:
        a.close()


def seen_within(path, want, seconds=3):
    """(mode, uid, gid, size) of path as a mount shows it, polled until it
    is want: another mount's cached attributes last attr_timeout (1 s)."""
    deadline = time.monotonic() + seconds
    while True:
        st = os.stat(path)
        got = (st.st_mode & 0o7777, st.st_uid, st.st_gid, st.st_size)
        if got == want or time.monotonic() > deadline:
            return got
        time.sleep(0.1)


@pytest.fixture
def two_mounts(cluster, tmp_path):
    """Two mounts of the cluster, at tmp_path/a and tmp_path/b."""
    a = Mount(cluster.conf, tmp_path / "a")
    try:
        b = Mount(cluster.conf, tmp_path / "b")
        try:
            yield tmp_path / "a", tmp_path / "b"
        finally:
            b.close()
    finally:
        a.close()


def test_changes_that_take_access_away_reach_other_mounts_at_once(cluster, two_mounts):
    """While one mount holds a written, unclosed file: a chmod that
    clears bits, and a chown to another owner, are committed at once, with
    the content written so far, and a second mount sees them as soon as
    its cached attributes expire."""
    A, B = two_mounts
    fd = os.open(A / "h", os.O_WRONLY | os.O_CREAT, 0o644)
    ino = os.fstat(fd).st_ino
    assert seen_within(B / "h", (0o644, 0, 0, 0)) == (0o644, 0, 0, 0)
    os.write(fd, b"secret")
    os.fchmod(fd, 0o600)
    assert stored(cluster, ino)[:4] == (0o100600, 0, 0, 6)
    assert seen_within(B / "h", (0o600, 0, 0, 6)) == (0o600, 0, 0, 6)
    os.write(fd, b" more")
    os.fchown(fd, NOBODY, NOBODY)
    assert stored(cluster, ino)[:4] == (0o100600, NOBODY, NOBODY, 11)
    assert seen_within(B / "h", (0o600, NOBODY, NOBODY, 11)) == (0o600, NOBODY, NOBODY, 11)
    os.write(fd, b"!")
    os.fchmod(fd, 0o640)  # adds a bit, to uncommitted content: kept for the close
    assert stored(cluster, ino)[:4] == (0o100600, NOBODY, NOBODY, 11)
    os.close(fd)
    assert stored(cluster, ino)[:4] == (0o100640, NOBODY, NOBODY, 12)
    assert seen_within(B / "h", (0o640, NOBODY, NOBODY, 12)) == (0o640, NOBODY, NOBODY, 12)
    assert (B / "h").read_bytes() == b"secret more!"


def test_kept_change_does_not_undo_a_later_one_elsewhere(cluster, two_mounts):
    """A mode kept with uncommitted content is dropped at the close when
    another mount changed the mode meanwhile: the other mount's change
    (here one that takes access away) stays."""
    A, B = two_mounts
    fd = os.open(A / "k", os.O_WRONLY | os.O_CREAT, 0o640)
    ino = os.fstat(fd).st_ino
    os.write(fd, b"data")
    os.fchmod(fd, 0o644)  # kept
    assert stored(cluster, ino)[0] == 0o100640
    os.chmod(B / "k", 0o600)
    assert stored(cluster, ino)[0] == 0o100600
    os.close(fd)
    assert stored(cluster, ino)[0] == 0o100600
    assert stored(cluster, ino)[3] == 4
    assert seen_within(A / "k", (0o600, 0, 0, 4)) == (0o600, 0, 0, 4)


def requests_of(mount, fn):
    """FUSE opcodes the debug log of mount shows while fn runs."""
    start = len(mount.log_text())
    fn()
    time.sleep(0.2)
    return re.findall(r"opcode: (\w+)", mount.log_text()[start:])


def test_kernel_leaves_set_id_bits_to_the_mount(cluster, tmp_path):
    """FUSE_HANDLE_KILLPRIV reaches the kernel (the mount adds it to the
    INIT reply that libfuse 3.14 writes without it): a chown is one
    SETATTR, without the GETATTR the kernel sends first otherwise."""
    A = tmp_path / "a"
    a = Mount(cluster.conf, A, debug=True)
    try:
        (A / "c").write_bytes(b"x")
        os.stat(A / "c")  # fresh cached attributes
        ops = requests_of(a, lambda: os.chown(A / "c", 0, 0))
        assert "SETATTR" in ops and "GETATTR" not in ops, ops
    finally:
        a.close()


def test_set_id_bits_cleared_by_the_mount(cluster, tmp_path):
    """As the kernel does for a local file: a write, truncate or O_TRUNC
    by another user clears set-user-ID and set-group-ID (with group
    execute), a write by root keeps them, any chown clears them. Seen by
    the writing mount at once and by a second mount after the close."""
    A, B = tmp_path / "a", tmp_path / "b"
    a = Mount(cluster.conf, tmp_path / "a", "allow_other,default_permissions")
    b = Mount(cluster.conf, tmp_path / "b")
    try:
        os.chmod(a.path, 0o777)
        for name in ("append", "truncate", "otrunc", "root", "chown", "new"):
            (A / name).write_bytes(b"content")
            os.chmod(A / name, 0o6777 if name != "chown" else 0o4755)
        os.chown(A / "chown", 0, 0)
        os.unlink(A / "new")
        with open(A / "root", "ab") as f:
            f.write(b"+")
        os.chdir(a.path)  # the child cannot walk root's 0700 tmp_path
        try:
            res = in_child_as(NOBODY, lambda: {
                "append": errno_of(lambda: open("append", "ab").write(b"+")),
                "truncate": errno_of(lambda: os.truncate("truncate", 2)),
                "otrunc": errno_of(lambda: open("otrunc", "wb").write(b"new")),
                "new": errno_of(lambda: os.close(os.open(
                    "new", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o4755))),
                "modes": {n: os.stat(n).st_mode & 0o7777
                          for n in ("append", "truncate", "otrunc", "new")},
            })
        finally:
            os.chdir(tmp_path)
        # a file the open creates keeps the set-ID bit it is made with
        assert res == {"append": 0, "truncate": 0, "otrunc": 0, "new": 0,
                       "modes": {"append": 0o777, "truncate": 0o777, "otrunc": 0o777,
                                 "new": 0o4755}}, res
        want = {"append": 0o777, "truncate": 0o777, "otrunc": 0o777, "root": 0o6777,
                "chown": 0o755, "new": 0o4755}
        for m in (a, b):
            got = {n: os.stat(os.path.join(m.path, n)).st_mode & 0o7777 for n in want}
            assert got == want, (m.path, got)
        assert (B / "append").read_bytes() == b"content+"
        assert (B / "otrunc").read_bytes() == b"new"
    finally:
        b.close()
        a.close()


def test_closed_unlinked_file_goes_in_a_later_batch(cluster, tmp_path):
    """A file unlinked while open stays readable until its close; its
    open record goes with a later batch of closes (the housekeeper runs
    every 5 s), and the inode with it."""
    A, B = tmp_path / "a", tmp_path / "b"
    a = Mount(cluster.conf, tmp_path / "a")
    try:
        (A / "u").write_bytes(b"x" * 5000)
        with open(A / "u", "rb") as f:
            ino = os.fstat(f.fileno()).st_ino
            os.unlink(A / "u")
            assert f.read() == b"x" * 5000
        deadline = time.monotonic() + 15
        while stored(cluster, ino) is not None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert stored(cluster, ino) is None
        assert db_rows(cluster, "SELECT count(*) FROM open_files WHERE ino = ?", ino)[0][0] == 0
    finally:
        a.close()
