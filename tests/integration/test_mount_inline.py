"""Small files kept inline in the metadata database: byte-exact after a
remount, on a second mount and through the CLI; growing past the inline
limit, truncation, unlink, and the mount killed after close."""

import os
import random
import subprocess
import time

from cluster import SHARDFS, Mount, db_rows

INLINE_MAX = 16 << 10
SIZES = [0, 1, 100, 4096, 5000, INLINE_MAX - 1, INLINE_MAX, INLINE_MAX + 1, 100000]


def inline_len(cl, path):
    """Length of a file's inline content, or None when it has none."""
    ino = os.stat(path).st_ino
    rows = db_rows(cl, "SELECT length(data) FROM inline_data WHERE ino = ?", ino)
    return rows[0][0] if rows else None


def parts_of(cl, path):
    return db_rows(cl, "SELECT count(*) FROM parts WHERE ino = ?", os.stat(path).st_ino)[0][0]


def assert_sound(cl):
    """The inline invariants meta_check verifies, checked from outside."""
    assert db_rows(cl, "SELECT count(*) FROM inline_data d LEFT JOIN inodes i ON i.ino = d.ino"
                       " WHERE i.ino IS NULL")[0][0] == 0
    assert db_rows(cl, "SELECT count(*) FROM inline_data d"
                       " WHERE EXISTS (SELECT 1 FROM parts p WHERE p.ino = d.ino)")[0][0] == 0
    assert db_rows(cl, "SELECT count(*) FROM inline_data d JOIN inodes i ON i.ino = d.ino"
                       " WHERE length(d.data) > i.size OR length(d.data) > ?",
                   INLINE_MAX)[0][0] == 0


def write_files(mnt, seed=5):
    rng = random.Random(seed)
    files = {f"s{n}": rng.randbytes(n) for n in SIZES}
    for name, data in files.items():
        (mnt / name).write_bytes(data)
    return files


def test_small_files_read_back_after_remount_and_elsewhere(cluster, tmp_path):
    """Files up to the limit are inline (no parts), larger ones are not;
    all read byte-exact after a remount, on a second mount, and through
    shardfs cat and get."""
    m = Mount(cluster.conf, tmp_path / "mnt")
    other = None
    try:
        mnt = tmp_path / "mnt"
        files = write_files(mnt)
        for name, data in files.items():
            n = len(data)
            assert inline_len(cluster, mnt / name) == (n if 0 < n <= INLINE_MAX else None), name
            assert parts_of(cluster, mnt / name) == (0 if n <= INLINE_MAX else 1), name
        m.unmount()
        m = Mount(cluster.conf, tmp_path / "mnt")
        other = Mount(cluster.conf, tmp_path / "mnt2")
        for name, data in files.items():
            assert (mnt / name).read_bytes() == data, name
            assert (tmp_path / "mnt2" / name).read_bytes() == data, name
            out = cluster.run("cat", "--stats", f"/{name}")
            assert out.stdout == data, name
            if 0 < len(data) <= INLINE_MAX:
                assert b"shard_bytes_fetched=0 " in out.stderr, name
            got = tmp_path / f"got-{name}"
            cluster.run("get", f"/{name}", str(got))
            assert got.read_bytes() == data, name
        data = files[f"s{INLINE_MAX}"]
        assert cluster.run("cat", "-o", "4000", "-n", "200", f"/s{INLINE_MAX}").stdout == \
            data[4000:4200]
        assert_sound(cluster)
    finally:
        if other:
            other.close()
        m.close()


def test_growing_past_the_limit_and_truncating(cluster, tmp_path):
    """An inline file appended past the limit moves to parts (its inline
    copy goes); cut back below it, it is inline again; a truncate that
    grows it reads zeros; every step reads back exact on a second mount."""
    m = Mount(cluster.conf, tmp_path / "mnt")
    other = Mount(cluster.conf, tmp_path / "mnt2")
    try:
        path, seen = tmp_path / "mnt" / "g", tmp_path / "mnt2" / "g"
        rng = random.Random(9)
        want = rng.randbytes(10000)
        path.write_bytes(want)
        assert inline_len(cluster, path) == 10000
        with open(path, "ab") as f:
            more = rng.randbytes(30000)
            f.write(more)
            want += more
        assert inline_len(cluster, path) is None and parts_of(cluster, path) == 1
        assert seen.read_bytes() == want
        os.truncate(path, 100)
        want = want[:100]
        assert inline_len(cluster, path) == 100 and parts_of(cluster, path) == 0
        assert seen.read_bytes() == want
        with open(path, "r+b") as f:  # truncate of an open inline file, then a write
            f.truncate(5)
            f.seek(50)
            f.write(b"tail")
        want = want[:5] + bytes(45) + b"tail"
        assert inline_len(cluster, path) == 54
        assert seen.read_bytes() == want
        os.truncate(path, 12000)  # grows within the limit: zeros
        want += bytes(12000 - len(want))
        assert seen.read_bytes() == want
        os.truncate(path, 20000)  # past it: parts, a hole
        want += bytes(8000)
        assert inline_len(cluster, path) is None
        assert seen.read_bytes() == want
        with open(path, "wb") as f:  # O_TRUNC, then small again
            f.write(b"x" * 7)
        assert inline_len(cluster, path) == 7 and parts_of(cluster, path) == 0
        assert seen.read_bytes() == b"x" * 7
        assert path.read_bytes() == b"x" * 7
        assert_sound(cluster)
    finally:
        other.close()
        m.close()


def test_unlink_drops_the_inline_content(cluster, tmp_path):
    """Unlinking an inline file removes its content from the database; an
    unlinked file still open stays readable until closed."""
    m = Mount(cluster.conf, tmp_path / "mnt")
    try:
        mnt = tmp_path / "mnt"
        (mnt / "a").write_bytes(b"a" * 3000)
        ino = os.stat(mnt / "a").st_ino
        os.unlink(mnt / "a")
        # The mount holds an unlinked file the kernel still knows for a
        # grace period (a racing open must find it), then lets it go.
        deadline = time.monotonic() + 30
        while db_rows(cluster, "SELECT count(*) FROM inline_data WHERE ino = ?", ino)[0][0]:
            assert time.monotonic() < deadline, "inline content of an unlinked file stays"
            time.sleep(0.2)
        assert db_rows(cluster, "SELECT count(*) FROM inodes WHERE ino = ?", ino)[0][0] == 0
        (mnt / "b").write_bytes(b"b" * 2000)
        with open(mnt / "b", "rb") as f:
            os.unlink(mnt / "b")
            assert f.read() == b"b" * 2000
        assert_sound(cluster)
    finally:
        m.close()


def test_mount_killed_after_close_keeps_small_files(cluster, tmp_path):
    """kill -9 of the mount right after close: after cleanup and a
    remount every closed small file is there, byte-exact."""
    m = Mount(cluster.conf, tmp_path / "mnt")
    mnt = tmp_path / "mnt"
    try:
        rng = random.Random(21)
        files = {f"k{i}": rng.randbytes(rng.randrange(1, INLINE_MAX)) for i in range(50)}
        for name, data in files.items():
            with open(mnt / name, "wb") as f:
                f.write(data)
        m.proc.kill()
        m.proc.wait(timeout=30)
        subprocess.run(["fusermount3", "-u", str(mnt)], check=True, timeout=60)
    finally:
        m.close()
    m = Mount(cluster.conf, tmp_path / "mnt")
    try:
        for name, data in files.items():
            assert (mnt / name).read_bytes() == data, name
        assert_sound(cluster)
    finally:
        m.close()


def test_random_small_writes_match_a_local_file(cluster, tmp_path):
    """pwrite/ftruncate/fsync/pread/reopen on a file that crosses the
    inline limit both ways give the same bytes as a local file, on this
    mount, on a second one, and after a remount."""
    m = Mount(cluster.conf, tmp_path / "mnt")
    other = Mount(cluster.conf, tmp_path / "mnt2")
    try:
        rng = random.Random(17)
        path, seen, loc = tmp_path / "mnt" / "r", tmp_path / "mnt2" / "r", tmp_path / "r"
        fm = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        fl = os.open(loc, os.O_RDWR | os.O_CREAT, 0o644)
        for step in range(1500):
            op = rng.random()
            if op < 0.5:
                off, data = rng.randrange(2 * INLINE_MAX), rng.randbytes(rng.randrange(1, 6000))
                os.pwrite(fm, data, off)
                os.pwrite(fl, data, off)
            elif op < 0.62:
                size = rng.choice([0, rng.randrange(INLINE_MAX + 1), rng.randrange(3 * INLINE_MAX)])
                os.ftruncate(fm, size)
                os.ftruncate(fl, size)
            elif op < 0.67:
                os.fsync(fm)
            elif op < 0.72:  # close and reopen: a commit, then a fresh load
                os.close(fm)
                assert seen.read_bytes() == loc.read_bytes(), step
                fm = os.open(path, os.O_RDWR)
            else:
                off, n = rng.randrange(3 * INLINE_MAX), rng.randrange(1, 20000)
                assert os.pread(fm, n, off) == os.pread(fl, n, off), step
            assert os.fstat(fm).st_size == os.fstat(fl).st_size, step
        os.close(fm)
        os.close(fl)
        want = loc.read_bytes()
        assert seen.read_bytes() == want
        m.unmount()
        m = Mount(cluster.conf, tmp_path / "mnt")
        assert path.read_bytes() == want
        assert_sound(cluster)
    finally:
        other.close()
        m.close()
