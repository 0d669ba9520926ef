"""`shardfs meta migrate --to URL`: a namespace moved from SQLite into
PostgreSQL and back, with every file, inode number, link and attribute;
refused while mounted and into a database that holds one. Needs the
PostgreSQL server of tests/lib/with_postgres.sh."""

import os
import subprocess

import pytest

from cluster import SHARDFS, TEST_PG, Cluster, Mount, new_pg_database

pytestmark = pytest.mark.skipif(not TEST_PG, reason="needs SHARDFS_TEST_PG")


def tree_state(mnt):
    """Every name under mnt with its inode, mode, links, size, content or
    target, and xattrs."""
    state = {}
    for dirpath, dirs, files in os.walk(mnt):
        for name in sorted(dirs + files):
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            if os.path.islink(path):
                body = os.readlink(path)
            elif os.path.isfile(path):
                with open(path, "rb") as f:
                    body = f.read()
            else:
                body = None
            xattrs = {x: os.getxattr(path, x, follow_symlinks=False)
                      for x in os.listxattr(path, follow_symlinks=False)}
            state[os.path.relpath(path, mnt)] = (st.st_ino, st.st_mode, st.st_nlink, st.st_size,
                                                 st.st_mtime_ns, body, xattrs)
    return state


def migrate(cl, url, check=True):
    return subprocess.run([SHARDFS, "meta", "migrate", "-c", cl.conf, "--to", url],
                          capture_output=True, text=True, timeout=300, check=check)


def meta_check(cl):
    return subprocess.run([SHARDFS, "meta", "check", "-c", cl.conf], capture_output=True,
                          text=True, timeout=120, check=True).stdout


def test_migrate_to_postgres_and_back(tmp_path):
    cl = Cluster(tmp_path / "c", meta="sqlite")
    try:
        m = Mount(cl.conf, tmp_path / "mnt")
        try:
            root = tmp_path / "mnt"
            (root / "big").write_bytes(os.urandom((8 << 20) * 2 + 123))
            (root / "small").write_text("kept inline")
            (root / "d" / "e").mkdir(parents=True)
            (root / "d" / "e" / "f").write_bytes(b"deep")
            os.link(root / "small", root / "d" / "hard")
            os.symlink("../big", root / "d" / "sym")
            os.setxattr(root / "big", "user.colour", b"blue")
            before = tree_state(root)
            to = new_pg_database()
            r = migrate(cl, to, check=False)
            assert r.returncode == 1 and "still run" in r.stderr
            assert "sqlite://" in open(cl.conf).read()
        finally:
            m.close()
        out = migrate(cl, to).stdout
        assert "checked" in out and "postgresql://" in open(cl.conf).read()
        r = migrate(cl, to, check=False)  # the cluster's own database now
        assert r.returncode == 1 and "already holds a shardfs namespace" in r.stderr
        assert "clean" in meta_check(cl)
        m = Mount(cl.conf, tmp_path / "mnt")
        try:
            assert tree_state(root) == before
            (root / "new").write_text("after the move")  # keys go on after the copied ones
            ino = os.stat(root / "new").st_ino
            assert ino > max(v[0] for v in before.values())
            before = tree_state(root)
        finally:
            m.close()
        back = f"sqlite://{tmp_path}/back.db"
        migrate(cl, back)
        assert "clean" in meta_check(cl)
        m = Mount(cl.conf, tmp_path / "mnt")
        try:
            assert tree_state(root) == before
            small = os.stat(root / "small").st_ino
        finally:
            m.close()
        subprocess.run(["sqlite3", f"{tmp_path}/back.db",
                        f"UPDATE inodes SET nlink = 7 WHERE ino = {small}"], check=True)
        r = subprocess.run([SHARDFS, "meta", "check", "-c", cl.conf], capture_output=True,
                           text=True, timeout=120)
        assert r.returncode == 1 and "NOT clean" in r.stdout and "link count" in r.stdout
    finally:
        cl.stop()
