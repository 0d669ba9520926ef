"""The mount when things fail: nodes killed, a node frozen, nodes slow
for a moment, the mount unmounted or stopped with files open, the mount
process killed."""

import errno
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest

from cluster import Mount, db_rows, is_mounted

MIB = 1 << 20


@pytest.fixture
def mounts(cluster, tmp_path):
    """Mounts made by the test (mounts.new()), all closed at the end."""
    made = []

    class Mounts:
        def new(self, *opts):
            m = Mount(cluster.conf, tmp_path / "mnt", *opts)
            made.append(m)
            return m

    yield Mounts()
    for m in made:
        m.close()


def sha(data):
    return hashlib.sha256(data).hexdigest()


def cat(path, timeout=60):
    """cat(1) of path: its bytes and the seconds it took."""
    t = time.monotonic()
    out = subprocess.run(["cat", path], capture_output=True, check=True, timeout=timeout).stdout
    return out, time.monotonic() - t


WRITER = r"""
import json, os, sys, time
path, n = sys.argv[1], int(sys.argv[2])
res, t = {}, time.monotonic()
fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
for step, call in (("write", lambda: os.write(fd, os.urandom(n))), ("fsync", lambda: os.fsync(fd)),
                   ("close", lambda: os.close(fd))):
    try:
        call()
        res[step] = 0
    except OSError as e:
        res[step] = e.errno
res["seconds"] = time.monotonic() - t
print(json.dumps(res))
"""


def write_in_child(path, n, timeout=60):
    """write, fsync and close of n bytes by another process, which must
    not hang: the errno of each step (0 for success) and the time."""
    out = subprocess.run([sys.executable, "-c", WRITER, path, str(n)], capture_output=True,
                         check=True, timeout=timeout).stdout
    return json.loads(out)


def missing_shards(cl, path):
    """(parts, parts with a shard recorded as missing) of the file at path."""
    rows = db_rows(cl, "SELECT missing FROM parts WHERE ino = ?", os.stat(path).st_ino)
    return len(rows), sum(1 for (missing,) in rows if missing)


def test_node_killed_reads_exact_writes_go_on(cluster, mounts):
    """With one node of 2+1 killed (kill -9), every file reads back
    byte-exact and writes go on: an overwrite and a new file succeed at
    fsync and close within 30 s (the first one while the mount does not
    yet know the node is gone), each of their parts records the one shard
    it could not write, and they read back exact with the node still down
    and once it is back."""
    cl = cluster
    m = mounts.new()
    files = {f"f{n}": os.urandom(n) for n in (0, 1, 5 * MIB, 20 * MIB)}
    files["over"] = os.urandom(MIB + 3)
    for name, data in files.items():
        with open(os.path.join(m.path, name), "wb") as f:
            f.write(data)
    m.unmount()
    m = mounts.new()  # nothing of it in this kernel's page cache
    cl.kill(3)
    res = write_in_child(os.path.join(m.path, "over"), 3 * MIB)
    print("overwrite with node 3 just killed:", res)
    assert res["write"] == res["fsync"] == res["close"] == 0 and res["seconds"] < 30, res
    for name, data in files.items():
        if name != "over":
            got, secs = cat(os.path.join(m.path, name))
            print(f"cat {name} ({len(data)} bytes) with node 3 killed: {secs:.2f} s")
            assert sha(got) == sha(data), name
    files["over"], _ = cat(os.path.join(m.path, "over"))
    assert len(files["over"]) == 3 * MIB
    files["new"] = os.urandom(17 * MIB + 5)
    t = time.monotonic()
    with open(os.path.join(m.path, "new"), "wb") as f:
        f.write(files["new"])
        os.fsync(f.fileno())
    print(f"new 17 MiB file with node 3 killed: {time.monotonic() - t:.2f} s")
    for name in ("over", "new"):
        parts, degraded = missing_shards(cl, os.path.join(m.path, name))
        print(f"{name}: {parts} parts, {degraded} with a shard missing")
        assert parts >= 1 and degraded == parts, name
    assert missing_shards(cl, os.path.join(m.path, "f20971520")) == (3, 0)
    m.unmount()
    m = mounts.new()
    for name in ("over", "new"):
        assert sha(cat(os.path.join(m.path, name))[0]) == sha(files[name]), name
    cl.start(3)
    cl.wait_up()
    m.unmount()
    m = mounts.new()
    for name, data in files.items():
        assert sha(cat(os.path.join(m.path, name))[0]) == sha(data), name


def status(cl):
    r = cl.run("status", check=False)
    return r.returncode, r.stdout.decode()


def test_mount_heals_by_itself(cluster, mounts):
    """Files copied in with node 3 killed leave parts with a shard missing
    (`status`: node down, DEGRADED); once the node is back the mount's
    repairer rebuilds them without any command (status HEALTHY, exit 0,
    within 60 s), after which another node may go: every file, written
    before, during and after the outage, reads back exact with node 1
    killed."""
    cl = cluster
    m = mounts.new("repair_interval=1")
    files = {"before": os.urandom(9 * MIB + 1)}
    with open(os.path.join(m.path, "before"), "wb") as f:
        f.write(files["before"])
    cl.kill(3)
    for i in range(3):
        files[f"during{i}"] = os.urandom(3 * MIB * (i + 1) + i)
        with open(os.path.join(m.path, f"during{i}"), "wb") as f:
            f.write(files[f"during{i}"])
    rc, out = status(cl)
    assert rc == 1 and "2 of 3 nodes up" in out and "health: DEGRADED" in out, out
    cl.start(3)
    cl.wait_up()
    files["after"] = os.urandom(5 * MIB)
    with open(os.path.join(m.path, "after"), "wb") as f:
        f.write(files["after"])
    t = time.monotonic()
    while True:
        rc, out = status(cl)
        if rc == 0 or time.monotonic() - t > 60:
            break
        time.sleep(0.5)
    print(f"healthy {time.monotonic() - t:.1f} s after node 3 came back:", out.splitlines()[-1])
    assert rc == 0 and "health: HEALTHY" in out, out
    assert db_rows(cl, "SELECT count(*) FROM parts WHERE missing <> 0")[0][0] == 0
    cl.kill(1)
    m.unmount()
    m = mounts.new()
    for name, data in files.items():
        assert sha(cat(os.path.join(m.path, name))[0]) == sha(data), name


def test_wiped_node_is_rebuilt_by_itself(cluster, mounts):
    """Node 3 is killed, files are written on (shards recorded missing), its
    data directory is wiped, and it comes back empty with a new identity:
    the mount's repairer sees the store is another one, marks the shards
    the manifests put on it missing and rebuilds them, until `status` says
    HEALTHY with no command run. Then node 1 may go: every file, written
    before, during and after, reads back exact."""
    cl = cluster
    m = mounts.new("repair_interval=1")
    files = {"before": os.urandom(17 * MIB + 3)}
    with open(os.path.join(m.path, "before"), "wb") as f:
        f.write(files["before"])
    old_identity = open(os.path.join(cl.node_dir(3), "identity")).read()
    cl.kill(3)
    files["during"] = os.urandom(9 * MIB)
    with open(os.path.join(m.path, "during"), "wb") as f:
        f.write(files["during"])
    shutil.rmtree(cl.node_dir(3))
    cl.start(3)
    cl.wait_up()
    assert open(os.path.join(cl.node_dir(3), "identity")).read() != old_identity
    t = time.monotonic()
    while True:
        rc, out = status(cl)
        if rc == 0 or time.monotonic() - t > 90:
            break
        time.sleep(0.5)
    print(f"healthy {time.monotonic() - t:.1f} s after node 3 came back empty:",
          out.splitlines()[-1])
    assert rc == 0 and "health: HEALTHY" in out, out
    assert b"another store than the one the manifests name" in open(m.log, "rb").read()
    shards = int(re.search(r"^3 .* up +[0-9.]+ +([0-9]+) ", out, re.M).group(1))
    assert shards >= 4, out  # 3 parts of "before" and 2 of "during" have a shard there
    files["after"] = os.urandom(5 * MIB)
    with open(os.path.join(m.path, "after"), "wb") as f:
        f.write(files["after"])
    cl.kill(1)
    m.unmount()
    m = mounts.new()
    for name, data in files.items():
        assert sha(cat(os.path.join(m.path, name))[0]) == sha(data), name


def test_two_nodes_killed_writes_fail_with_eio(cluster, mounts):
    """With two nodes of 2+1 killed, one shard of a part is below
    min_shards (2): a write fails with EIO at fsync and close within 30 s
    and the file keeps its previous content; a small file, kept inline in
    the metadata, is still written."""
    cl = cluster
    m = mounts.new()
    path = os.path.join(m.path, "over")
    old = os.urandom(MIB + 3)
    with open(path, "wb") as f:
        f.write(old)
    cl.kill(2)
    cl.kill(3)
    res = write_in_child(path, 3 * MIB)
    print("overwrite with nodes 2 and 3 killed:", res)
    assert res["write"] == 0 and res["fsync"] == res["close"] == errno.EIO, res
    assert res["seconds"] < 30, res
    assert missing_shards(cl, path) == (1, 0)
    res = write_in_child(os.path.join(m.path, "small"), 100)
    print("new small file with nodes 2 and 3 killed:", res)
    assert res["fsync"] == res["close"] == 0, res
    assert len(cat(os.path.join(m.path, "small"))[0]) == 100
    cl.start(2)
    cl.start(3)
    cl.wait_up()
    m.unmount()
    m = mounts.new()
    assert sha(cat(path)[0]) == sha(old)


def test_node_frozen_cat_and_ls_stay_fast(cluster, mounts):
    """With one node frozen (SIGSTOP), cat of a 4-part file and ls -l of a
    directory of 200 files each complete within 10 s."""
    cl = cluster
    m = mounts.new()
    data = os.urandom(24 * MIB + 5)
    with open(os.path.join(m.path, "big"), "wb") as f:
        f.write(data)
    os.mkdir(os.path.join(m.path, "d"))
    for i in range(200):
        with open(os.path.join(m.path, "d", f"f{i}"), "wb") as f:
            f.write(b"%d" % i)
    m.unmount()
    m = mounts.new()
    cl.kill(1, signal.SIGSTOP)
    try:
        got, t_cat = cat(os.path.join(m.path, "big"))
        t = time.monotonic()
        ls = subprocess.run(["ls", "-l", os.path.join(m.path, "d")], capture_output=True,
                            check=True, timeout=60).stdout
        t_ls = time.monotonic() - t
    finally:
        cl.kill(1, signal.SIGCONT)
    print(f"node 1 frozen: cat of 24 MiB {t_cat:.2f} s, ls -l of 200 files {t_ls:.2f} s")
    assert sha(got) == sha(data)
    assert len(ls.splitlines()) == 201  # "total" and the files
    assert t_cat < 10 and t_ls < 10


def test_node_frozen_write_goes_on_in_bounded_time(cluster, mounts):
    """A write while one node of 2+1 is frozen, before anything told the
    mount so, succeeds at fsync and close within 30 s rather than hang:
    the frozen node's shards are recorded as missing, and the new content
    reads back exact, the node frozen and after it woke."""
    cl = cluster
    m = mounts.new()
    path = os.path.join(m.path, "f")
    with open(path, "wb") as f:
        f.write(os.urandom(MIB))
    new = os.urandom(2 * MIB)
    cl.kill(2, signal.SIGSTOP)
    try:
        t = time.monotonic()
        with open(path, "wb") as f:
            f.write(new)
            os.fsync(f.fileno())
        secs = time.monotonic() - t
        print(f"write with node 2 frozen: {secs:.2f} s")
        assert secs < 30
        assert missing_shards(cl, path) == (1, 1)
        assert sha(cat(path)[0]) == sha(new)
    finally:
        cl.kill(2, signal.SIGCONT)
    m.unmount()
    m = mounts.new()
    assert sha(cat(path)[0]) == sha(new)


HOLDER = r"""
import json, os, sys
d = sys.argv[1]
def put(name, data, fsync, close):
    fd = os.open(os.path.join(d, name), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.write(fd, data)
    if fsync:
        os.fsync(fd)
    if close:
        os.close(fd)
    return fd
fds = []
for i in range(3):
    put(f"closed{i}", os.urandom(1000 * i + 3 * (1 << 20) * (i == 2)), False, True)
    fds.append(put(f"synced{i}", os.urandom(1000 * i + 9 * (1 << 20) * (i == 2)), True, False))
    fds.append(put(f"dirty{i}", os.urandom(1000 * i + 5), False, False))
fd = put("synced_then_more", b"A" * 100000, True, False)
os.write(fd, b"B" * 50000)
fds.append(fd)
print("ready", flush=True)
sys.stdin.read()
"""


def read_tree(d):
    return {n: open(os.path.join(d, n), "rb").read() for n in sorted(os.listdir(d))}


def test_unmount_with_files_open(cluster, mounts, tmp_path):
    """Files open for writing when the mount goes: a plain unmount is
    refused (busy); the mount stopped with SIGTERM then commits what it
    holds, and after a remount everything acknowledged by close() or
    fsync() is there byte-exact."""
    m = mounts.new()
    d = os.path.join(m.path, "d")
    os.mkdir(d)
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, d], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE)
    try:
        assert holder.stdout.readline() == b"ready\n"
        # What the holder wrote, read by this process while it is open
        # (each file's content is the same through any handle).
        seen = read_tree(d)
        r = subprocess.run(["fusermount3", "-u", m.path], capture_output=True, timeout=60)
        print("fusermount3 -u with files open:", r.returncode, r.stderr.decode().strip())
        assert r.returncode != 0 and b"busy" in r.stderr
        m.proc.send_signal(signal.SIGTERM)
        m.proc.wait(timeout=60)
        assert not is_mounted(m.path)
    finally:
        holder.kill()
        holder.wait()
    m = mounts.new()
    after = read_tree(os.path.join(m.path, "d"))
    assert set(after) == set(seen)
    # Acknowledged by close() or fsync(): exact. The rest too, since the
    # mount commits the files still open when it stops.
    for name, data in seen.items():
        assert after[name] == data, name
    assert after["synced_then_more"] == b"A" * 100000 + b"B" * 50000
    assert len(seen["synced2"]) > 9 * MIB


APPENDER = r"""
import os, sys
path = sys.argv[1]
fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
data = os.urandom(12 * (1 << 20) + 12345)
os.write(fd, data)
os.fsync(fd)
sys.stdout.buffer.write(data)
sys.stdout.flush()
os.close(1)
chunk = os.urandom(65536)
try:
    while True:
        os.write(fd, chunk)
except OSError:
    pass
"""


def test_mount_killed_after_fsync_keeps_the_synced_data(cluster, mounts, tmp_path):
    """The mount process killed (kill -9) while a file is written past an
    fsync: after cleanup (fusermount3 -u) and a remount the file holds at
    least everything up to the fsync."""
    m = mounts.new()
    path = os.path.join(m.path, "f")
    writer = subprocess.Popen([sys.executable, "-c", APPENDER, path], stdout=subprocess.PIPE)
    try:
        synced = writer.stdout.read()  # until the writer closes its stdout: after the fsync
        assert len(synced) == 12 * MIB + 12345
        time.sleep(0.5)  # writing on past the fsync
        m.proc.kill()
        m.proc.wait(timeout=30)
        writer.wait(timeout=30)  # its writes fail once the mount is gone
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.wait()
    subprocess.run(["fusermount3", "-u", m.path], check=True, timeout=60)
    m = mounts.new()
    with open(path, "rb") as f:
        got = f.read()
    print(f"after kill -9: {len(got)} bytes, {len(synced)} synced")
    assert len(got) >= len(synced) and sha(got[:len(synced)]) == sha(synced)


def test_write_right_after_nodes_were_slow(cluster, mounts):
    """A node that missed a read's hedge deadline (frozen for a second) is
    suspected, but a write once it answers again puts every shard (2+1 on
    three, nothing recorded missing): suspicion only steers placement."""
    cl = cluster
    m = mounts.new()
    names = [f"r{i}" for i in cl.procs]
    for name in names:
        with open(os.path.join(m.path, name), "wb") as f:
            f.write(os.urandom(MIB))
    m.unmount()
    m = mounts.new()  # nothing of them in this kernel's page cache
    for i, name in zip(cl.procs, names):
        cl.kill(i, signal.SIGSTOP)
        try:
            got, secs = cat(os.path.join(m.path, name))
            time.sleep(max(0.0, 1.0 - secs))
        finally:
            cl.kill(i, signal.SIGCONT)
        assert len(got) == MIB
    res = write_in_child(os.path.join(m.path, "f"), 2 * MIB)
    print("write right after each node was slow:", res)
    assert res["write"] == res["fsync"] == res["close"] == 0 and res["seconds"] < 5, res
    got, _ = cat(os.path.join(m.path, "f"))
    assert len(got) == 2 * MIB
    assert missing_shards(cl, os.path.join(m.path, "f")) == (1, 0)
