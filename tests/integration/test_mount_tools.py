"""Everyday tools in a real mount of a 3-node 2+1 cluster: cp, rsync, tar,
git, gcc; O_APPEND from several handles; rename over a file read in a
loop; statfs, st_blocks, inode numbers; the page cache kept or dropped at
open, and bypassed by direct I/O; mount(8) and its helper; permissions
checked by the kernel."""

import ctypes
import errno
import hashlib
import json
import mmap
import os
import random
import shutil
import signal
import struct
import subprocess
import sys
import threading
import time
import zlib

import pytest

from cluster import SHARDFS, Mount, is_mounted

MIB = 1 << 20
NOBODY = 65534


def run(*args, timeout=300, **kw):
    kw.setdefault("check", True)
    return subprocess.run([str(a) for a in args], timeout=timeout, **kw)


def make_tree(root, dirs=(5, 5), files=100, seed=1):
    """dirs[0] x dirs[1] nested directories of `files` small files each
    (some empty), symlinks (one dangling) and empty directories."""
    rng = random.Random(seed)
    for a in range(dirs[0]):
        for b in range(dirs[1]):
            d = root / f"a{a}" / f"b{b}"
            os.makedirs(d)
            for f in range(files):
                (d / f"f{f}").write_bytes(rng.randbytes(rng.choice([0, 1, 37, 600, 4096, 20000])))
            os.symlink("f1", d / "link")
            os.symlink("../b0/f2", d / "up")
            os.symlink("nowhere", d / "dangling")
            os.makedirs(d / "empty")
            os.chmod(d / "f3", 0o600)
    return root


def diff(a, b, *opts):
    run("diff", "-r", "--no-dereference", *opts, a, b)


@pytest.fixture
def mounted(cluster, tmp_path):
    m = Mount(cluster.conf, tmp_path / "mnt")
    yield cluster, m
    m.close()


def test_cp_a_of_a_tree_of_2500_files(mounted, tmp_path):
    """cp -a of 2,500 small files in nested directories, with symlinks and
    empty directories, into the mount and back out compares equal."""
    cl, m = mounted
    src = make_tree(tmp_path / "src")
    t = time.monotonic()
    run("cp", "-a", src, f"{m.path}/tree")
    t_in = time.monotonic() - t
    t = time.monotonic()
    run("cp", "-a", f"{m.path}/tree", tmp_path / "back")
    print(f"cp -a 2500 files: in {t_in:.1f} s, out {time.monotonic() - t:.1f} s")
    diff(src, tmp_path / "back")
    diff(src, f"{m.path}/tree")
    st = os.lstat(f"{m.path}/tree/a1/b2/f3")
    assert (st.st_mode & 0o777, st.st_mtime_ns) == (0o600, os.lstat(src / "a1/b2/f3").st_mtime_ns)


def test_rsync_checksum_round_trip(mounted, tmp_path):
    """rsync -a --checksum in and out gives an equal tree, and a second run
    finds nothing to transfer."""
    cl, m = mounted
    src = make_tree(tmp_path / "src", dirs=(2, 3), files=50, seed=2)
    run("rsync", "-a", "--checksum", f"{src}/", f"{m.path}/r/")
    run("rsync", "-a", "--checksum", f"{m.path}/r/", f"{tmp_path}/back/")
    diff(src, tmp_path / "back")
    again = run("rsync", "-a", "--checksum", "--itemize-changes", f"{src}/", f"{m.path}/r/",
                capture_output=True).stdout
    assert again == b"", again.decode()


def test_tar_pipe_in_and_compare(mounted, tmp_path):
    """tar c | tar x into the mount, diff -r equal, and tar -d finds no
    difference, both with the archive local and with it in the mount."""
    cl, m = mounted
    src = make_tree(tmp_path / "src", dirs=(2, 3), files=40, seed=3)
    dst = f"{m.path}/t"
    os.mkdir(dst)
    run("sh", "-c", f"tar -C {src} -cf - . | tar -C {dst} -xpf -")
    diff(src, dst)
    run("tar", "-C", src, "-cf", tmp_path / "a.tar", ".")
    run("tar", "-C", dst, "-df", tmp_path / "a.tar")
    run("tar", "-C", src, "-cf", f"{m.path}/a.tar", ".")
    run("tar", "-C", src, "-df", f"{m.path}/a.tar")


def git(*args, cwd, timeout=120):
    env = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.org",
               GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@example.org",
               GIT_CONFIG_NOSYSTEM="1", HOME=str(cwd))
    return run("git", *args, cwd=cwd, env=env, timeout=timeout, capture_output=True)


def test_git_commit_fsck_clone_gc(mounted, tmp_path):
    """A git repository in the mount: commit, fsck --full, clone out equal,
    gc, fsck again."""
    cl, m = mounted
    repo = os.path.join(m.path, "repo")
    make_tree(tmp_path / "src", dirs=(2, 2), files=50, seed=4)
    shutil.copytree(tmp_path / "src", repo, symlinks=True)
    git("init", "-q", ".", cwd=repo)
    git("add", "-A", cwd=repo)
    git("commit", "-q", "-m", "first", cwd=repo)
    with open(os.path.join(repo, "a0/b0/f5"), "ab") as f:
        f.write(b"more\n")
    git("commit", "-q", "-a", "-m", "second", cwd=repo)
    git("fsck", "--full", "--strict", cwd=repo)
    git("clone", "-q", "--no-hardlinks", repo, tmp_path / "clone", cwd=tmp_path)
    # git keeps no empty directories
    diff(repo, tmp_path / "clone", "--exclude=.git", "--exclude=empty")
    git("fsck", "--full", cwd=tmp_path / "clone")
    t = time.monotonic()
    git("gc", "-q", "--aggressive", "--prune=now", cwd=repo)
    print(f"git gc in the mount: {time.monotonic() - t:.1f} s")
    git("fsck", "--full", "--strict", cwd=repo)
    log = git("log", "--format=%s", cwd=repo).stdout.split()
    assert log == [b"second", b"first"]


def test_gcc_builds_and_runs_in_the_mount(mounted):
    """gcc compiles and links a program whose source, object and executable
    are in the mount, and it runs from there."""
    cl, m = mounted
    d = os.path.join(m.path, "src")
    os.mkdir(d)
    with open(os.path.join(d, "sum.c"), "w") as f:
        f.write('#include <stdio.h>\n#include <stdlib.h>\n'
                'int main(int argc, char **argv)\n{\n'
                '\tlong n = argc > 1 ? atol(argv[1]) : 0, s = 0;\n'
                '\tfor (long i = 1; i <= n; i++)\n\t\ts += i * i;\n'
                '\tprintf("sum %ld\\n", s);\n\treturn 0;\n}\n')
    run("gcc", "-O2", "-Wall", "-c", "sum.c", "-o", "sum.o", cwd=d, timeout=120)
    run("gcc", "sum.o", "-o", "sum", cwd=d, timeout=120)
    out = run("./sum", "1000", cwd=d, capture_output=True, timeout=30).stdout
    assert out == b"sum %d\n" % sum(i * i for i in range(1, 1001))


def record(w, seq, rng):
    """One self-checking line: writer, sequence, payload, crc32."""
    letters = bytes(97 + b % 26 for b in range(256))
    payload = rng.randbytes(rng.randrange(1, 9000)).translate(letters)
    body = b"%d %d %s" % (w, seq, payload)
    return b"%s %08x\n" % (body, zlib.crc32(body))


def test_o_append_from_several_handles(mounted):
    """Three O_APPEND handles written from three threads: every record is
    there once and whole, and the size is their sum."""
    cl, m = mounted
    path = os.path.join(m.path, "log")
    per, sizes = 1000, [0, 0, 0]

    def writer(w):
        rng = random.Random(w)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            for seq in range(per):
                r = record(w, seq, rng)
                assert os.write(fd, r) == len(r)
                sizes[w] += len(r)
        finally:
            os.close(fd)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=240)
        assert not t.is_alive()
    with open(path, "rb") as f:
        data = f.read()
    assert len(data) == sum(sizes) == os.stat(path).st_size
    last = [-1, -1, -1]
    lines = data.split(b"\n")
    assert lines.pop() == b""
    for line in lines:
        body, crc = line.rsplit(b" ", 1)
        assert int(crc, 16) == zlib.crc32(body), line[:40]
        w, seq = map(int, body.split(b" ", 2)[:2])
        assert seq == last[w] + 1  # each writer's records in its order
        last[w] = seq
    assert last == [per - 1] * 3
    print(f"O_APPEND: {len(lines)} records, {len(data)} bytes, past the first part: "
          f"{len(data) > 8 * MIB}")


READER = r"""
import hashlib, json, os, struct, sys, time
path, stop = sys.argv[1], sys.argv[2]
seen, reads, bad = set(), 0, []
deadline = time.monotonic() + 240
while not os.path.exists(stop) and time.monotonic() < deadline:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        bad.append("open/read: " + str(e))
        continue
    reads += 1
    if len(data) < 44:
        bad.append("short: %d" % len(data))
        continue
    ver, n = struct.unpack_from("<II", data, 4)
    if data[:4] != b"VERS" or len(data) != 44 + n or \
            hashlib.sha256(data[44:]).digest() != data[12:44]:
        bad.append("torn: version %d, %d bytes" % (ver, len(data)))
    seen.add(ver)
print(json.dumps({"reads": reads, "versions": len(seen), "bad": bad[:10], "nbad": len(bad)}))
"""


def version(v, rng):
    """Version v: VERS, v and the length (u32 LE), sha256 of the payload,
    the payload."""
    payload = rng.randbytes(rng.choice([10, 3000, 70000, 300000]))
    head = b"VERS" + struct.pack("<II", v, len(payload))
    return head + hashlib.sha256(payload).digest() + payload


def rename_storm(m, readers_at, stop):
    """Renames 300 self-checking versions over m/cur while a reader
    process per path in readers_at opens and reads it in a loop; returns
    the readers' reports."""
    path = os.path.join(m.path, "cur")
    rng = random.Random(5)
    with open(path, "wb") as f:
        f.write(version(0, rng))
    readers = [subprocess.Popen([sys.executable, "-c", READER, p, stop], stdout=subprocess.PIPE)
               for p in readers_at]
    try:
        t = time.monotonic()
        for v in range(1, 301):
            tmp = os.path.join(m.path, f".cur.{v}")
            with open(tmp, "wb") as f:
                f.write(version(v, rng))
            os.rename(tmp, path)
        print(f"300 renames in {time.monotonic() - t:.1f} s")
        open(stop, "w").close()
        return [json.loads(r.communicate(timeout=60)[0]) for r in readers]
    finally:
        for r in readers:
            if r.poll() is None:
                r.kill()
                r.wait()


def test_rename_over_a_file_read_in_a_loop(mounted, tmp_path):
    """A writer writes a temp file and renames it over a path 300 times; a
    reader on the same mount opening the path in a loop always opens it and
    reads one whole version."""
    cl, m = mounted
    res, = rename_storm(m, [os.path.join(m.path, "cur")], str(tmp_path / "stop"))
    print(res)
    assert res["nbad"] == 0 and res["reads"] > 0, res


def test_rename_over_a_file_read_on_another_mount(cluster, mounted, tmp_path):
    """The same with two readers on a second mount, which caches the name
    for up to a second after the rename replaced the file."""
    cl, m = mounted
    other = Mount(cl.conf, tmp_path / "mnt2")
    try:
        at = os.path.join(other.path, "cur")
        for res in rename_storm(m, [at, at], str(tmp_path / "stop")):
            print(res)
            assert res["nbad"] == 0 and res["reads"] > 0, res
    finally:
        other.close()


def test_statfs_and_df(mounted, tmp_path):
    """statvfs reports the nodes' space x k/(k+m), each filesystem counted
    once however many nodes it holds; df works on the mount."""
    cl, m = mounted
    sv = os.statvfs(m.path)
    total, free = sv.f_blocks * sv.f_frsize, sv.f_bavail * sv.f_frsize
    assert total > 0 and 0 < free <= total
    # The three nodes' stores share the disk of tmp_path: it counts once.
    disk = os.statvfs(tmp_path)
    expect = disk.f_blocks * disk.f_frsize * 2 / 3
    assert 0.99 * expect < total < 1.01 * expect, (total, expect)
    st = json.loads(cl.run("status", "--json").stdout)
    assert len({n["filesystem"] for n in st["nodes"]}) == 1, st
    out = run("df", "-P", m.path, capture_output=True, timeout=30).stdout.decode()
    fields = out.splitlines()[1].split()
    assert fields[0] == "shardfs" and int(fields[1]) * 1024 == pytest.approx(total, rel=0.01), out


def test_st_blocks_and_inode_numbers_across_remount(cluster, tmp_path):
    """A written file's st_blocks covers its size; inode numbers of files,
    directories and symlinks are the same after a remount."""
    m = Mount(cluster.conf, tmp_path / "mnt")
    try:
        os.makedirs(f"{m.path}/d/e")
        with open(f"{m.path}/d/f", "wb") as f:
            f.write(os.urandom(1000001))
        os.symlink("f", f"{m.path}/d/l")
        names = ["d", "d/e", "d/f", "d/l"]
        before = {n: os.lstat(f"{m.path}/{n}").st_ino for n in names}
        st = os.stat(f"{m.path}/d/f")
        assert st.st_blocks >= st.st_size // 512
        m.unmount()
        m = Mount(cluster.conf, tmp_path / "mnt")
        assert {n: os.lstat(f"{m.path}/{n}").st_ino for n in names} == before
        assert os.stat(f"{m.path}/d/f").st_blocks >= 1000001 // 512
    finally:
        m.close()


def sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def timed_sha(path, timeout=30):
    """sha256 of a file read by another process, and how long it took."""
    t = time.monotonic()
    code = "import hashlib, sys; print(hashlib.sha256(open(sys.argv[1], 'rb').read()).hexdigest())"
    out = run(sys.executable, "-c", code, path, capture_output=True,
              timeout=timeout).stdout.decode().strip()
    return out, time.monotonic() - t


def test_second_read_is_served_from_the_page_cache(mounted):
    """A file read twice on one mount is served the second time from the
    kernel's cache (keep_cache): it reads even with every node frozen."""
    cl, m = mounted
    path = os.path.join(m.path, "cached")
    data = os.urandom(3 * MIB + 5)
    with open(path, "wb") as f:
        f.write(data)
    want = hashlib.sha256(data).hexdigest()
    assert sha(path) == want  # first read after the write: from the nodes
    for i in cl.procs:
        cl.kill(i, signal.SIGSTOP)
    try:
        got, secs = timed_sha(path)
    finally:
        for i in cl.procs:
            cl.kill(i, signal.SIGCONT)
    print(f"second read with every node frozen: {secs:.2f} s")
    assert got == want and secs < 5


def resident(path):
    """Bytes of path in the kernel's page cache (fincore opens it, read-only)."""
    out = run("fincore", "--bytes", "--noheadings", "--output", "RES", path,
              capture_output=True).stdout
    return int(out.decode().strip())


def test_big_file_first_read_goes_past_the_page_cache(mounted):
    """The first read of a big file since it changed is direct I/O: the
    kernel keeps none of it. A shared mapping works at such an open too.
    The next open reads through the cache, and the open after it keeps
    what it holds (fincore's own open, which would drop it otherwise)."""
    _, m = mounted
    path = os.path.join(m.path, "big")
    data = os.urandom(65 * MIB)
    with open(path, "wb") as f:
        f.write(data)
    assert sha(path) == hashlib.sha256(data).hexdigest()
    assert resident(path) == 0
    with open(path, "r+b") as f:
        f.seek(40 * MIB)
        f.write(b"changed")
    data = data[:40 * MIB] + b"changed" + data[40 * MIB + 7:]
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        assert mm[:] == data
    want = hashlib.sha256(data).hexdigest()
    assert sha(path) == want
    # The kernel may reclaim a few clean pages at any time (seen: 5 of
    # 16,640); an open without keep_cache would drop every one.
    assert resident(path) >= len(data) * 0.9


def cached_pages(fd, size):
    """Pages of the file open as fd that the kernel's cache holds: mincore
    of a shared read-only mapping (mapping it reads nothing)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                          ctypes.c_int, ctypes.c_long]
    addr = libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
    assert addr not in (None, ctypes.c_void_p(-1).value), os.strerror(ctypes.get_errno())
    try:
        pages = (size + mmap.PAGESIZE - 1) // mmap.PAGESIZE
        vec = (ctypes.c_ubyte * pages)()
        assert libc.mincore(ctypes.c_void_p(addr), ctypes.c_size_t(size), vec) == 0
        return sum(b & 1 for b in vec)
    finally:
        libc.munmap(ctypes.c_void_p(addr), ctypes.c_size_t(size))


def test_write_only_handle_is_seen_at_once_by_a_cached_reader(mounted):
    """A write-only handle does direct I/O; a reader of the same mount that
    holds the file's pages in the kernel's cache sees each of its writes
    at once, in place and past the end, before any close."""
    cl, m = mounted
    path = os.path.join(m.path, "shared")
    base = os.urandom(3 * MIB)
    with open(path, "wb") as f:
        f.write(base)
    r = os.open(path, os.O_RDONLY)
    w = os.open(path, os.O_WRONLY)  # its open drops the cached pages
    try:
        assert os.pread(r, len(base), 0) == base
        assert cached_pages(r, len(base)) >= len(base) // mmap.PAGESIZE * 0.9
        patch = os.urandom(5000)
        os.pwrite(w, patch, MIB + 100)
        want = base[:MIB + 100] + patch + base[MIB + 5100:]
        assert os.pread(r, len(base), 0) == want
        os.pwrite(w, b"tail", len(base))
        assert os.pread(r, len(base) + 10, 0) == want + b"tail"
    finally:
        os.close(w)
        os.close(r)
    with open(path, "rb") as f:
        assert f.read() == want + b"tail"


def test_close_to_open_across_two_mounts(cluster, mounted, tmp_path):
    """A file rewritten and closed on one mount is read fresh on another at
    its next open: same size, larger and smaller, right after the close."""
    cl, a = mounted
    b = Mount(cl.conf, tmp_path / "mnt2")
    try:
        pa, pb = os.path.join(a.path, "f"), os.path.join(b.path, "f")
        rng = random.Random(7)
        for n in [100000, 100000, 300000, 5000, 5000, 9 * MIB, 0, 77]:
            data = rng.randbytes(n)
            with open(pa, "wb") as f:
                f.write(data)
            with open(pb, "rb") as f:
                got = f.read()
                size = os.fstat(f.fileno()).st_size
            assert len(got) == n and got == data and size == n, (n, len(got), size)
    finally:
        b.close()


def serving_pids(path):
    """Pids of shardfs processes whose command line names path."""
    out = []
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                with open(f"/proc/{p}/cmdline", "rb") as f:
                    args = f.read().split(b"\0")
            except OSError:
                continue
            if path.encode() in args and any(a.endswith(b"shardfs") for a in args[:1]):
                out.append(int(p))
    return out


@pytest.fixture
def helper(cluster, tmp_path):
    """A mount.shardfs symlink to the binary under test, and cleanup of
    the background mounts made through it."""
    bindir = tmp_path / "sbin"
    bindir.mkdir()
    os.symlink(os.path.realpath(SHARDFS), bindir / "mount.shardfs")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    yield cluster, str(bindir / "mount.shardfs"), str(mnt)
    if is_mounted(str(mnt)):
        subprocess.run(["fusermount3", "-u", str(mnt)], timeout=60)
    for pid in serving_pids(str(mnt)):
        os.kill(pid, signal.SIGTERM)


def test_mount_shardfs_helper_and_options(helper):
    """mount.shardfs called as mount(8) calls it (SPEC DIR -o rw,_netdev)
    mounts; -o ro passes through and writes fail with EROFS."""
    cl, mh, mnt = helper
    log = open(os.path.join(os.path.dirname(mnt), "helper.log"), "ab")
    run(mh, cl.conf, mnt, "-o", "rw,_netdev", timeout=60, stderr=log)
    with open(f"{mnt}/f", "wb") as f:
        f.write(b"hello")
    run("fusermount3", "-u", mnt, timeout=60)
    run(mh, cl.conf, mnt, "-o", "ro,_netdev", timeout=60, stderr=log)
    try:
        assert open(f"{mnt}/f", "rb").read() == b"hello"
        for attempt in (lambda: open(f"{mnt}/f", "ab"), lambda: open(f"{mnt}/g", "wb"),
                        lambda: os.mkdir(f"{mnt}/d"), lambda: os.unlink(f"{mnt}/f")):
            with pytest.raises(OSError) as e:
                attempt()
            assert e.value.errno == errno.EROFS
    finally:
        run("fusermount3", "-u", mnt, timeout=60)
        log.close()


def test_background_mount_is_silent_and_refuses_bad_mount_points(helper, tmp_path):
    """A background mount says nothing on success and lets go of the
    caller's pipes once mounted, so $(mount.shardfs ...) returns; a second
    mount on the same directory and a mount onto a regular file are
    refused with one line each, and the first mount stays."""
    cl, mh, mnt = helper
    out = run(mh, cl.conf, mnt, capture_output=True, timeout=60)
    assert (out.stdout, out.stderr) == (b"", b"")
    assert is_mounted(mnt)
    again = run(mh, cl.conf, mnt, capture_output=True, timeout=60, check=False)
    assert again.returncode == 1 and b"mounted there already" in again.stderr
    plain = tmp_path / "plain-file"
    plain.write_bytes(b"x")
    onfile = run(mh, cl.conf, plain, capture_output=True, timeout=60, check=False)
    assert onfile.returncode == 1 and b"not a directory" in onfile.stderr
    assert not is_mounted(str(plain)) and plain.read_bytes() == b"x"
    with open(f"{mnt}/f", "wb") as f:
        f.write(b"still served")
    assert open(f"{mnt}/f", "rb").read() == b"still served"
    run("fusermount3", "-u", mnt, timeout=60)
    # the cluster named as for every command: -c DIR, or SHARDFS_CONF
    for args, env in ((["-c", cl.dir, mnt], None),
                      ([mnt], dict(os.environ, SHARDFS_CONF=cl.dir))):
        run(SHARDFS, "mount", *args, env=env, capture_output=True, timeout=60)
        assert open(f"{mnt}/f", "rb").read() == b"still served", args
        run("fusermount3", "-u", mnt, timeout=60)
    # asked for, a second mount stacks over the first
    run(mh, cl.conf, mnt, capture_output=True, timeout=60)
    run(SHARDFS, "mount", "--force", cl.conf, mnt, capture_output=True, timeout=60)
    with open("/proc/self/mountinfo") as f:
        stacked = sum(1 for line in f if f" {os.path.realpath(mnt)} " in line and "fuse.shardfs" in line)
    run("fusermount3", "-u", mnt, timeout=60)
    run("fusermount3", "-u", mnt, timeout=60)
    assert stacked == 2 and not is_mounted(mnt)


MOUNT8 = """
set -e
mount --bind {sbin} /usr/sbin
mount --fstab {fstab} {mnt} 2>>{log}
echo fstab > {mnt}/via-fstab
umount {mnt}
mount -t shardfs -o allow_other {conf} {mnt} 2>>{log}
cat {mnt}/via-fstab
grep -w {mnt} /proc/self/mounts
umount {mnt}
"""


def test_mount_8_finds_the_helper_in_sbin(helper, tmp_path):
    """mount(8) looks for mount.shardfs in /sbin only (not PATH): in a
    private mount namespace whose /usr/sbin holds the helper, an fstab line
    and mount -t shardfs both mount the cluster."""
    cl, mh, mnt = helper
    if not shutil.which("unshare"):
        pytest.skip("no unshare(1)")
    sbin = tmp_path / "usr-sbin"
    sbin.mkdir()
    for name in os.listdir("/usr/sbin"):
        os.symlink(f"/usr/sbin/{name}", sbin / name)
    os.symlink(os.path.realpath(SHARDFS), sbin / "mount.shardfs")
    fstab = tmp_path / "fstab"
    fstab.write_text(f"{cl.conf} {mnt} shardfs defaults,_netdev 0 0\n")
    out = run("unshare", "--mount", "--propagation", "private", "sh", "-c",
              MOUNT8.format(sbin=sbin, fstab=fstab, mnt=mnt, conf=cl.conf,
                            log=tmp_path / "mount8.log"),
              capture_output=True, timeout=120)
    lines = out.stdout.decode().splitlines()
    assert lines[0] == "fstab" and "fuse.shardfs" in lines[1] and "allow_other" in lines[1], lines


def in_child_as(uid, fn):
    """Runs fn() in a forked child with uid and gid `uid` (no groups);
    returns what it returned (JSON-able)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        signal.alarm(60)  # a hang fails the test rather than holding it
        try:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            res = fn()
        except BaseException as e:  # the parent reports it
            res = {"exception": repr(e)}
        os.write(w, json.dumps(res).encode())
        os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        data = f.read()
    os.waitpid(pid, 0)
    return json.loads(data)


def errno_of(fn):
    try:
        fn()
        return 0
    except OSError as e:
        return e.errno


def test_default_permissions_as_another_user(cluster, tmp_path):
    """With allow_other,default_permissions the kernel checks modes: a
    root-owned 0600 file cannot be read by uid 65534, its own file can;
    chown and chmod are kept across a remount."""
    m = Mount(cluster.conf, tmp_path / "mnt", "allow_other,default_permissions")
    try:
        os.chmod(m.path, 0o755)
        with open(f"{m.path}/secret", "wb") as f:
            f.write(b"root only")
        os.chmod(f"{m.path}/secret", 0o600)
        with open(f"{m.path}/mine", "wb") as f:
            f.write(b"nobody's")
        os.chown(f"{m.path}/mine", NOBODY, NOBODY)
        os.chmod(f"{m.path}/mine", 0o600)
        with open(f"{m.path}/other", "wb"):
            pass
        os.chown(f"{m.path}/other", 1234, 5678)
        os.chmod(f"{m.path}/other", 0o640)
        os.chdir(m.path)  # the child cannot walk root's 0700 tmp_path
        try:
            res = in_child_as(NOBODY, lambda: {
                "read_secret": errno_of(lambda: open("secret", "rb").read()),
                "write_secret": errno_of(lambda: open("secret", "ab")),
                "read_mine": open("mine", "rb").read().decode(),
                "create_in_root_dir": errno_of(lambda: open("new", "wb")),
                "chmod_secret": errno_of(lambda: os.chmod("secret", 0o644)),
            })
        finally:
            os.chdir(tmp_path)
        assert res == {"read_secret": errno.EACCES, "write_secret": errno.EACCES,
                       "read_mine": "nobody's", "create_in_root_dir": errno.EACCES,
                       "chmod_secret": errno.EPERM}, res
        m.unmount()
        m = Mount(cluster.conf, tmp_path / "mnt", "allow_other,default_permissions")
        st = os.stat(f"{m.path}/other")
        assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (1234, 5678, 0o640)
        st = os.stat(f"{m.path}/secret")
        assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (0, 0, 0o600)
    finally:
        m.close()


def read_all(path):
    with open(path, "rb") as f:
        return f.read()


def test_data_and_keys_are_unreadable_by_another_user(cluster, tmp_path):
    """What a file holds reaches the disk in the metadata database (inline
    data) and the nodes' segments, and the CA key can sign certificates
    every node trusts: uid 65534 can read none of them, while the CA
    certificate stays public. A node started from the cluster directory,
    where the CA key is, warns about it."""
    m = Mount(cluster.conf, tmp_path / "mnt")
    try:
        with open(f"{m.path}/small", "wb") as f:
            f.write(b"inline secret")
        with open(f"{m.path}/big", "wb") as f:
            f.write(os.urandom(3 << 20))
        m.unmount()
    finally:
        m.close()
    seg = sorted(n for n in os.listdir(cluster.node_dir(1)) if n.startswith("seg-"))[0]
    os.chdir(cluster.dir)  # the child cannot walk root's 0700 tmp_path
    try:
        res = in_child_as(NOBODY, lambda: {
            name: errno_of(lambda: read_all(name))
            for name in ("meta.db", f"node-1/{seg}", "ca/ca.key", "client.key", "ca.crt")
        } | {"list node-2": errno_of(lambda: os.listdir("node-2"))})
    finally:
        os.chdir(tmp_path)
    assert res == {"meta.db": errno.EACCES, f"node-1/{seg}": errno.EACCES,
                   "ca/ca.key": errno.EACCES, "client.key": errno.EACCES, "ca.crt": 0,
                   "list node-2": errno.EACCES}, res
    with open(os.path.join(cluster.dir, "node-1.log"), "rb") as f:
        assert b"CA key" in f.read()
