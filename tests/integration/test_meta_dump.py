"""`shardfs meta dump` and `shardfs meta load`: a namespace written as a
dump and loaded into an empty database of either engine gives the same
files and the same dump again; a truncated or altered dump, or a database
that is not empty, is refused and nothing is loaded. With the server of
tests/lib/with_postgres.sh the round trip goes through PostgreSQL."""

import base64
import hashlib
import json
import os
import signal
import subprocess
import time

import pytest

from cluster import SHARDFS, TEST_PG, Cluster, Mount, new_pg_database
from test_meta_migrate import tree_state


def meta(*args, check=True):
    return subprocess.run([SHARDFS, "meta", *args], capture_output=True, text=True,
                          timeout=300, check=check)


def conf_with_meta(cl, url, path):
    """A copy of the cluster file whose metadata is url (in the cluster
    directory: it names the certificates relative to itself)."""
    text = open(cl.conf).read()
    lines = [f"meta={url}" if line.startswith("meta=") else line for line in text.splitlines()]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return str(path)


def fill(mnt):
    os.makedirs(os.path.join(mnt, "dir", "sub"))
    big = os.urandom(3 << 20)
    with open(os.path.join(mnt, "dir", "big"), "wb") as f:
        f.write(big)
    for i in range(300):  # more rows than a page of the dump
        with open(os.path.join(mnt, "dir", "sub", f"small{i}"), "w") as f:
            f.write(f"inline {i}\n")
    os.link(os.path.join(mnt, "dir", "big"), os.path.join(mnt, "hard"))
    os.symlink("dir/big", os.path.join(mnt, "sym"))
    for i in range(3):
        os.setxattr(os.path.join(mnt, "dir", "big"), f"user.k{i}", b"\x00\xffvalue%d" % i)


def test_dump_load_round_trip_and_refusals(tmp_path):
    cl = Cluster(tmp_path / "c", meta="sqlite")
    try:
        m = Mount(cl.conf, tmp_path / "m")
        try:
            fill(m.path)
            before = tree_state(m.path)
        finally:
            m.close()
        first = tmp_path / "first.dump"
        r = meta("dump", "-c", cl.conf, str(first))
        assert "dumped" in r.stderr and first.exists() and not (tmp_path / "first.dump.tmp").exists()
        assert meta("dump", "-c", cl.conf).stdout.encode() == first.read_bytes()  # to stdout

        # through PostgreSQL when there is one, else another SQLite file
        middle_url = new_pg_database() if TEST_PG else "sqlite://" + str(tmp_path / "mid.db")
        assert "loaded" in meta("load", "--to", middle_url, str(first)).stdout
        middle_conf = conf_with_meta(cl, middle_url, os.path.join(cl.dir, "middle.conf"))
        second = tmp_path / "second.dump"
        meta("dump", "-c", middle_conf, str(second))
        assert second.read_bytes() == first.read_bytes()

        last_conf = conf_with_meta(cl, "sqlite://" + str(tmp_path / "last.db"),
                                   os.path.join(cl.dir, "last.conf"))
        with open(second) as f:  # from stdin, into the cluster file's database
            r = subprocess.run([SHARDFS, "meta", "load", "-c", last_conf], stdin=f,
                               capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
        assert meta("dump", "-c", last_conf).stdout.encode() == first.read_bytes()
        assert "clean" in meta("check", "-c", last_conf).stdout
        m = Mount(last_conf, tmp_path / "m2")
        try:
            assert tree_state(m.path) == before
        finally:
            m.close()

        # a database that holds a namespace is refused
        r = meta("load", "--to", middle_url, str(first), check=False)
        assert r.returncode == 1 and "holds a namespace already" in r.stderr

        # damaged dumps are refused, saying where, and load nothing
        data = first.read_bytes()
        lines = data.split(b"\n")
        target = "sqlite://" + str(tmp_path / "target.db")
        cases = {
            "cut-mid-line": (data[:len(data) // 2], "cut short (no end of line)"),
            "cut-at-line": (b"\n".join(lines[:len(lines) // 2]) + b"\n", "without its end record"),
            # one digit more in the first row (the root's mode)
            "altered": (b"\n".join(lines[:2] + [lines[2].replace(b",", b",1", 1)] + lines[3:]),
                        "the dump was altered"),
            "not-a-dump": (b'{"hello": 1}\n', "not a shardfs metadata dump"),
            "row-dropped": (b"\n".join(lines[:5] + lines[6:]), "the dump was altered"),
        }
        for name, (damaged, message) in cases.items():
            bad = tmp_path / f"{name}.dump"
            bad.write_bytes(damaged)
            r = meta("load", "--to", target, str(bad), check=False)
            assert r.returncode == 1 and message in r.stderr, (name, r.stderr)
            assert "line " in r.stderr and "nothing was loaded" in r.stderr, r.stderr
        # the target took none of it: a whole dump loads there now
        assert "loaded" in meta("load", "--to", target, str(first)).stdout
    finally:
        cl.stop()


def test_dump_of_a_missing_database_fails_clearly(tmp_path):
    cl = Cluster(tmp_path / "c", meta="sqlite")
    try:
        os.unlink(os.path.join(cl.dir, "meta.db"))
        r = meta("dump", "-c", cl.conf, str(tmp_path / "x.dump"), check=False)
        assert r.returncode == 1 and "shardfs meta dump:" in r.stderr
        assert not (tmp_path / "x.dump").exists() and not (tmp_path / "x.dump.tmp").exists()
    finally:
        cl.stop()


SANITIZED = os.environ.get("SHARDFS_SANITIZED", "0").upper() in ("1", "ON", "TRUE")
TABLES = ["inodes", "dentries", "xattrs", "parts", "garbage", "sessions", "open_files",
          "inline_data", "nodes", "locks", "cluster", "members"]


def synthetic_dump(path, files, columns, schema):
    """A dump of a root with files empty files in it, made here (columns:
    each table's column list, from a real dump, and its schema); schema 9
    has no members."""
    t = 1796677587451469579
    zero_id = base64.b64encode(bytes(16)).decode()
    lines = ['{"format":"shardfs-meta-dump","version":1,"schema":%d}' % schema]
    for table in TABLES if schema >= 10 else TABLES[:-1]:
        lines.append('{"table":"%s","columns":"%s"}' % (table, columns[table]))
        if table == "inodes":
            lines.append(f"[1,16877,0,0,2,0,{t},{t},{t},0,1,null,null]")
            lines += [f'[{i},33188,0,0,1,0,{t},{t},{t},0,null,null,"{zero_id}"]'
                      for i in range(2, files + 2)]
        elif table == "dentries":
            lines += ['[%d,1,"%s",%d]' % (i, base64.b64encode(b"f%d" % i).decode(), i)
                      for i in range(2, files + 2)]
    body = "".join(line + "\n" for line in lines).encode()
    end = '{"end":{"rows":%d,"sha256":"%s"}}\n' % (2 * files + 1, hashlib.sha256(body).hexdigest())
    path.write_bytes(body + end.encode())


def peak_kib(*args):
    """The peak resident memory of a shardfs command, in KiB."""
    r = subprocess.run(["/usr/bin/time", "-f", "%M", SHARDFS, *args], capture_output=True,
                       text=True, timeout=600, check=True)
    return int(r.stderr.strip().splitlines()[-1])


def test_a_dump_made_before_membership_loads_and_takes_the_cluster_files_nodes(tmp_path):
    cl = Cluster(tmp_path / "c", meta="sqlite")
    try:
        real = tmp_path / "real.dump"
        meta("dump", "-c", cl.conf, str(real))
        columns = {json.loads(line)["table"]: json.loads(line)["columns"]
                   for line in real.read_text().splitlines() if line.startswith('{"table"')}
        old = tmp_path / "schema9.dump"
        synthetic_dump(old, 3, columns, schema=9)
        assert b'"members"' not in old.read_bytes()
        url = new_pg_database() if TEST_PG else "sqlite://" + str(tmp_path / "old.db")
        meta("load", "--to", url, str(old))
        conf = conf_with_meta(cl, url, os.path.join(cl.dir, "old.conf"))
        listed = subprocess.run([SHARDFS, "node", "list", "--json", "-c", conf],
                                capture_output=True, text=True, check=True, timeout=60)
        assert [n["id"] for n in json.loads(listed.stdout)["nodes"]] == [1, 2, 3]
    finally:
        cl.stop()


@pytest.mark.skipif(SANITIZED, reason="the sanitizers' quarantine keeps what is freed")
def test_dump_memory_does_not_grow_with_the_namespace(tmp_path):
    cl = Cluster(tmp_path / "c", meta="sqlite")
    try:
        real = tmp_path / "real.dump"
        meta("dump", "-c", cl.conf, str(real))
        columns = {}
        for line in real.read_text().splitlines():
            if line.startswith('{"table"'):
                record = json.loads(line)
                columns[record["table"]] = record["columns"]
        schema = json.loads(real.read_text().splitlines()[0])["schema"]
        peaks = {}
        for files in (2000, 60000):
            src = tmp_path / f"synthetic{files}.dump"
            synthetic_dump(src, files, columns, schema)
            url = new_pg_database() if TEST_PG else "sqlite://" + str(tmp_path / f"s{files}.db")
            meta("load", "--to", url, str(src))
            conf = conf_with_meta(cl, url, os.path.join(cl.dir, f"s{files}.conf"))
            out = tmp_path / f"again{files}.dump"
            peaks[files] = peak_kib("meta", "dump", "-c", conf, str(out))
            assert out.read_bytes() == src.read_bytes()
        print("peak KiB by files:", peaks)
        # 30 times the rows; the process grows by far less than the dump
        assert peaks[60000] - peaks[2000] < 8 * 1024, peaks
        assert (tmp_path / "again60000.dump").stat().st_size > 8 << 20
    finally:
        cl.stop()


def files_md5(mnt):
    out = {}
    for dirpath, _, files in os.walk(mnt):
        for name in files:
            path = os.path.join(dirpath, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, mnt)] = hashlib.md5(f.read()).hexdigest()
    return out


def backups(cl):
    return [int(line.split()[0]) for line in meta("backups", "-c", cl.conf).stdout.splitlines()]


def lose_database(cl):
    """The metadata database is gone, as with its disk: a SQLite file
    removed, or a PostgreSQL database dropped and made again empty."""
    if cl.meta_url.startswith("sqlite://"):
        for suffix in ("", "-wal", "-shm"):
            path = cl.meta_url[len("sqlite://"):] + suffix
            if os.path.exists(path):
                os.unlink(path)
        return
    from cluster import pg_rows
    db = cl.meta_url.split("///")[1].split("?")[0]
    pg_rows(TEST_PG, f"DROP DATABASE {db} WITH (FORCE)")
    pg_rows(TEST_PG, f"CREATE DATABASE {db}")


def test_restore_from_the_cluster_after_the_database_is_lost(tmp_path):
    """A mount backs the metadata up into the cluster on its own; with the
    database lost, `meta restore --from-cluster` brings back every file
    the newest backup knew, exact."""
    cl = Cluster(tmp_path / "c")
    try:
        deadline = time.monotonic() + 60
        while "no node answers" in (r := meta("restore", "--from-cluster", "-c", cl.conf,
                                             check=False)).stderr:
            assert time.monotonic() < deadline, r.stderr  # slow nodes (sanitizers)
            time.sleep(0.5)
        assert r.returncode == 1 and "no backup" in r.stderr
        m = Mount(cl.conf, tmp_path / "m", "backup_interval=2", "backups_kept=3")
        try:
            fill(m.path)
            first = files_md5(m.path)
            written = time.time_ns()
            deadline = time.monotonic() + 60
            while not any(seq > written for seq in backups(cl)):
                assert time.monotonic() < deadline, m.log_text()
                time.sleep(0.5)
            assert len(backups(cl)) <= 3
            os.kill(m.pid, signal.SIGKILL)  # no backup at unmount: the periodic one serves
        finally:
            m.close()
        lose_database(cl)
        r = meta("restore", "--from-cluster", "-c", cl.conf)
        assert "restored the backup of" in r.stdout and "is lost" in r.stdout
        assert "clean" in meta("check", "-c", cl.conf).stdout
        m = Mount(cl.conf, tmp_path / "m", "backup_interval=3600")
        try:
            assert files_md5(m.path) == first
            with open(os.path.join(m.path, "later"), "wb") as f:
                f.write(os.urandom(100000))
            second = files_md5(m.path)
            m.unmount()  # a clean unmount backs up what changed
        finally:
            m.close()
        lose_database(cl)
        r = meta("restore", "--from-cluster", "-c", cl.conf, check=False)
        assert r.returncode == 0, r.stderr
        r = meta("restore", "--from-cluster", "-c", cl.conf, check=False)
        assert r.returncode == 1 and "holds a namespace already" in r.stderr
        m = Mount(cl.conf, tmp_path / "m", "backup_interval=0")
        try:
            assert files_md5(m.path) == second
        finally:
            m.close()
    finally:
        cl.stop()


def test_database_of_another_cluster_is_refused(tmp_path):
    """A cluster file pointed at the database of another cluster (a typo
    in a URL) is refused, by the mount and by commands, in one line."""
    a = Cluster(tmp_path / "a", nodes=2, ec="1+1")
    b = Cluster(tmp_path / "b", nodes=2, ec="1+1")
    try:
        wrong = conf_with_meta(b, a.meta_url, os.path.join(b.dir, "wrong.conf"))
        os.makedirs(tmp_path / "m")
        r = subprocess.run([SHARDFS, "mount", "-f", wrong, str(tmp_path / "m")],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 1
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and "holds the namespace of cluster" in lines[0], r.stderr
        r = subprocess.run([SHARDFS, "ls", "-c", wrong, "/"], capture_output=True, text=True,
                           timeout=60)
        assert r.returncode == 1 and "holds the namespace of cluster" in r.stderr
    finally:
        a.stop()
        b.stop()
