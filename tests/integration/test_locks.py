"""flock and POSIX locks held in the metadata: two mounts of one cluster
exclude each other, waits end when the holder lets go or a signal comes,
and the locks of a killed process, or of a mount killed or frozen past its
session lease, are released."""

import errno
import fcntl
import os
import signal
import struct
import subprocess
import sys
import time

import pytest

from cluster import Mount, db_rows

LEASE = 4  # seconds: the session lease of the mount that is killed or frozen


@pytest.fixture
def mounts(cluster, tmp_path):
    a = Mount(cluster.conf, tmp_path / "a")
    b = Mount(cluster.conf, tmp_path / "b")
    yield a, b
    b.close()
    a.close()


def file_in(mounts, data=b"0123456789" * 100):
    a, b = mounts
    with open(os.path.join(a.path, "f"), "wb") as f:
        f.write(data)
    return os.path.join(a.path, "f"), os.path.join(b.path, "f")


def helper(code, *args):
    """A process of its own (another lock owner) running code with the
    argument list in args; its lines come on stdout."""
    return subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE,
                            text=True, start_new_session=True)


HOLD = """
import fcntl, sys, time
f = open(sys.argv[1], "r+")
fcntl.lockf(f, fcntl.LOCK_EX)
print("held", flush=True)
time.sleep(600)
"""

WAIT = """
import fcntl, signal, sys, time
def alarm(*_):
    raise TimeoutError
signal.signal(signal.SIGALRM, alarm)
f = open(sys.argv[1], "r+")
signal.alarm(int(sys.argv[3]))
start = time.monotonic()
try:
    if sys.argv[2] == "flock":
        fcntl.flock(f, fcntl.LOCK_EX)
    else:
        fcntl.lockf(f, fcntl.LOCK_EX)
    print("locked", time.monotonic() - start, flush=True)
except TimeoutError:
    print("interrupted", time.monotonic() - start, flush=True)
"""


def nb_lockf(f, start, length, exclusive=True):
    fcntl.lockf(f, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB,
                length, start)


def refused(fn, *args):
    with pytest.raises(OSError) as e:
        fn(*args)
    assert e.value.errno in (errno.EAGAIN, errno.EACCES)


def getlk(f, start, length):
    arg = struct.pack("hhqqi4x", fcntl.F_WRLCK, os.SEEK_SET, start, length, 0)
    return struct.unpack("hhqqi4x", fcntl.fcntl(f, fcntl.F_GETLK, arg))


def test_flock_excludes_across_mounts(mounts):
    pa, pb = file_in(mounts)
    with open(pa, "rb") as fa, open(pb, "rb") as fb:
        fcntl.flock(fa, fcntl.LOCK_EX)
        refused(fcntl.flock, fb, fcntl.LOCK_EX | fcntl.LOCK_NB)
        refused(fcntl.flock, fb, fcntl.LOCK_SH | fcntl.LOCK_NB)
        fcntl.flock(fa, fcntl.LOCK_SH)  # downgraded: readers share
        fcntl.flock(fb, fcntl.LOCK_SH | fcntl.LOCK_NB)
        refused(fcntl.flock, fa, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(fa, fcntl.LOCK_UN)
        fcntl.flock(fb, fcntl.LOCK_UN)
        fcntl.flock(fb, fcntl.LOCK_EX | fcntl.LOCK_NB)
    # the close of fb lets go of it: with the kernel's RELEASE, which it
    # sends a moment after close() returns
    with open(pa, "rb") as fa:
        deadline = time.monotonic() + 5
        while True:
            try:
                fcntl.flock(fa, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.01)


def test_posix_ranges_across_mounts(mounts):
    pa, pb = file_in(mounts)
    fa, fb = open(pa, "r+b"), open(pb, "r+b")
    try:
        nb_lockf(fa, 0, 100)
        refused(nb_lockf, fb, 50, 10)
        refused(nb_lockf, fb, 99, 1, False)
        ltype, _, start, length, pid = getlk(fb, 50, 10)
        assert (ltype, start, length, pid) == (fcntl.F_WRLCK, 0, 100, 0)
        nb_lockf(fb, 100, 0, False)  # from 100 to the end, shared
        ltype, _, start, length, _ = getlk(fa, 500, 1)
        assert (ltype, start, length) == (fcntl.F_RDLCK, 100, 0)
        assert getlk(fa, 0, 100)[0] == fcntl.F_UNLCK  # its own lock
        fcntl.lockf(fa, fcntl.LOCK_UN, 10, 20)  # a hole in the middle
        nb_lockf(fb, 20, 10)
        refused(nb_lockf, fb, 19, 2)
        fa.close()  # a close lets go of the process's locks of the file
        nb_lockf(fb, 0, 100)
    finally:
        fa.close()
        fb.close()


@pytest.mark.parametrize("kind", ["fcntl", "flock"])
def test_wait_until_released_or_interrupted(mounts, kind):
    pa, pb = file_in(mounts)
    with open(pa, "r+b") as fa:
        if kind == "flock":
            fcntl.flock(fa, fcntl.LOCK_EX)
        else:
            fcntl.lockf(fa, fcntl.LOCK_EX)
        out, _ = helper(WAIT, pb, kind, "1").communicate(timeout=30)
        assert out.startswith("interrupted"), out  # the signal ended the wait
        waiter = helper(WAIT, pb, kind, "60")
        time.sleep(1.5)
        assert waiter.poll() is None  # still waiting
        if kind == "flock":
            fcntl.flock(fa, fcntl.LOCK_UN)
        else:
            fcntl.lockf(fa, fcntl.LOCK_UN)
        out, _ = waiter.communicate(timeout=30)
        assert out.startswith("locked"), out


def test_killed_holder_lets_go(mounts):
    pa, pb = file_in(mounts)
    holder = helper(HOLD, pa)
    try:
        assert holder.stdout.readline() == "held\n"
        with open(pb, "r+b") as fb:
            refused(nb_lockf, fb, 0, 0)
            os.killpg(holder.pid, signal.SIGKILL)
            holder.wait(timeout=30)
            nb_lockf(fb, 0, 0)  # its exit closed the file
    finally:
        if holder.poll() is None:
            os.killpg(holder.pid, signal.SIGKILL)
            holder.wait()


def wait_for(what, timeout=60):
    deadline = time.monotonic() + timeout
    while not what():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def lock_free(path):
    with open(path, "r+b") as f:
        try:
            nb_lockf(f, 0, 0)
            return True
        except OSError as e:
            assert e.errno in (errno.EAGAIN, errno.EACCES)
            return False


def test_killed_mount_locks_go_with_its_lease(cluster, mounts, tmp_path):
    pa, pb = file_in(mounts)
    c = Mount(cluster.conf, tmp_path / "mc", f"session_lease={LEASE}")
    holder = helper(HOLD, os.path.join(c.path, "f"))
    try:
        assert holder.stdout.readline() == "held\n"
        assert not lock_free(pb)
        os.kill(c.pid, signal.SIGKILL)
        c.proc.wait(timeout=30)
        killed = time.monotonic()
        assert not lock_free(pb)  # the lease has not run out yet
        wait_for(lambda: lock_free(pb), timeout=LEASE + 30)
        assert time.monotonic() - killed >= LEASE - 1
    finally:
        os.killpg(holder.pid, signal.SIGKILL)
        c.close()
        holder.wait()


def test_frozen_mount_past_its_lease_fails_open_files(cluster, mounts, tmp_path):
    pa, pb = file_in(mounts)
    c = Mount(cluster.conf, tmp_path / "mc", f"session_lease={LEASE}")
    try:
        fd = os.open(os.path.join(c.path, "g"), os.O_CREAT | os.O_WRONLY, 0o644)
        os.write(fd, b"before")
        sessions = db_rows(cluster, "SELECT count(*) FROM sessions")[0][0]
        os.kill(c.pid, signal.SIGSTOP)
        try:
            wait_for(lambda: db_rows(cluster, "SELECT count(*) FROM sessions")[0][0]
                     == sessions - 1, timeout=LEASE + 30)
        finally:
            os.kill(c.pid, signal.SIGCONT)
        wait_for(lambda: "was reclaimed" in c.log_text(), timeout=30)
        with pytest.raises(OSError) as e:
            os.write(fd, b"after")
        assert e.value.errno == errno.EIO
        with pytest.raises(OSError) as e:
            os.close(fd)
        assert e.value.errno == errno.EIO
        # new opens go on, in a new session
        with open(os.path.join(c.path, "h"), "wb") as f:
            f.write(b"new session")
        with open(os.path.join(mounts[1].path, "h"), "rb") as f:
            assert f.read() == b"new session"
    finally:
        c.close()
