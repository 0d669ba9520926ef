"""`shardfs up` and `shardfs down` as a user runs them: a local cluster
with a mount, run again safely, stopped without losing files."""

import os
import pathlib
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import pytest

from cluster import SHARDFS


def run(*args, check=True):
    return subprocess.run([SHARDFS, *args], capture_output=True, text=True, timeout=120,
                          check=check)


def mounted(path):
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == str(path) for line in f)


def readahead_kb(path):
    with open("/proc/self/mountinfo") as f:
        dev = [line.split()[2] for line in f if line.split()[4] == str(path)][-1]
    with open(f"/sys/class/bdi/{dev}/read_ahead_kb") as f:
        return int(f.read())


def pids(d):
    return {name: int((d / name).read_text()) for name in os.listdir(d) if name.endswith(".pid")}


def alive(pid):
    """Running, not a zombie waiting for init to reap it."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.fixture
def local():
    # Not under pytest's own root: the PostgreSQL server's user must pass
    # through every parent, and each pytest run that starts (ctest runs
    # several at once) sets that root back to 0700.
    top = pathlib.Path(tempfile.mkdtemp(prefix="shardfs-test-up-"))
    top.chmod(0o711)
    d = top / "local"
    yield d
    stop_local(d)
    shutil.rmtree(top, ignore_errors=True)


def stop_local(d):
    if subprocess.run(["fusermount3", "-u", str(d / "mnt")], capture_output=True,
                      timeout=60).returncode:
        subprocess.run(["fusermount3", "-u", "-z", str(d / "mnt")], capture_output=True,
                       timeout=60)
    if d.exists():
        for pid in pids(d).values():
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        pg_pid = d / "pg" / "data" / "postmaster.pid"
        if pg_pid.exists():
            pid = int(pg_pid.read_text().split()[0])
            if alive(pid):
                os.kill(pid, signal.SIGINT)  # fast shutdown
                for _ in range(100):
                    if not alive(pid):
                        break
                    time.sleep(0.1)
                else:
                    os.kill(pid, signal.SIGKILL)


def test_up_mounts_a_cluster_and_down_stops_it(local, tmp_path):
    out = run("up", str(local)).stdout
    assert "created a 3-node cluster (erasure code 2+1)" in out
    assert "3 of 3 nodes up" in out and mounted(local / "mnt")
    assert readahead_kb(local / "mnt") == 1024  # widened by the mount, as root
    data = os.urandom(9 << 20)
    (local / "mnt" / "f").write_bytes(data)

    again = run("up", str(local)).stdout  # running already: changes nothing
    assert "created" not in again and "mounted already" in again
    assert again.count("is running") == 3

    procs = pids(local)
    assert sorted(procs) == ["mount.pid", "node-1.pid", "node-2.pid", "node-3.pid"]
    out = run("down", str(local)).stdout
    assert "unmounted" in out and out.count("stopped") == 3
    assert not mounted(local / "mnt")
    assert not any(alive(p) for p in procs.values())

    run("up", str(local))
    assert (local / "mnt" / "f").read_bytes() == data
    run("down", str(local))


def test_down_refuses_while_files_are_open(local):
    run("up", str(local))
    with open(local / "mnt" / "open", "w") as f:
        f.write("still open")
        r = run("down", str(local), check=False)
        assert r.returncode == 1 and "nothing was stopped" in r.stderr
        assert mounted(local / "mnt") and all(alive(p) for p in pids(local).values())
    run("down", str(local))
    run("up", str(local))
    assert (local / "mnt" / "open").read_text() == "still open"
    run("down", str(local))


def test_up_replaces_a_mount_whose_process_died(local):
    run("up", str(local))
    (local / "mnt" / "x").write_text("kept")
    os.kill(pids(local)["mount.pid"], signal.SIGKILL)
    out = run("up", str(local)).stdout
    assert "lost its process" in out
    assert (local / "mnt" / "x").read_text() == "kept"
    run("down", str(local))


def test_down_without_a_cluster_fails_clearly(tmp_path):
    r = run("down", str(tmp_path / "none"), check=False)
    assert r.returncode == 1 and "no cluster in" in r.stderr


def pg_ctl_cmd(local):
    """pg_ctl on the cluster's server, as the server's user."""
    bindir = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True,
                            check=True).stdout.strip()
    return (f"setpriv --reuid=postgres --regid=postgres --clear-groups {bindir}/pg_ctl"
            f" -D {local}/pg/data -w")


def pg_ctl(local, *args):
    subprocess.run(f"{pg_ctl_cmd(local)} {' '.join(args)}", shell=True, check=True,
                   capture_output=True, timeout=120)


def pg_connect(local, password, sslmode="verify-full"):
    import psycopg2
    port = (local / "pg" / "port").read_text().strip()
    return psycopg2.connect(host="127.0.0.1", port=port, user="shardfs", dbname="shardfs",
                            password=password, sslmode=sslmode,
                            sslrootcert=str(local / "ca.crt"), connect_timeout=10)


def test_up_with_postgres_serves_the_namespace_and_keeps_it(local):
    """up --meta postgres: a PostgreSQL server of the cluster's own in
    DIR/pg holds the namespace; over TCP it takes only TLS with the
    cluster CA's certificate and the password; down stops it and up
    starts it again with every file kept."""
    import psycopg2
    out = run("up", "--meta", "postgres", str(local)).stdout
    assert "created a PostgreSQL server in" in out and "metadata in PostgreSQL" in out
    assert "3 of 3 nodes up" in out and mounted(local / "mnt")
    assert "postgresql://" in (local / "cluster.conf").read_text()
    data = os.urandom(5 << 20)
    (local / "mnt" / "big").write_bytes(data)
    (local / "mnt" / "small").write_text("inline")
    password = (local / "pg" / "password").read_text()
    with pg_connect(local, password) as db, db.cursor() as cur:
        cur.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        assert cur.fetchone()[0] is True
        cur.execute("SELECT count(*) FROM inodes")
        assert cur.fetchone()[0] == 3  # the root and the two files
    with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
        pg_connect(local, "wrong")
    with pytest.raises(psycopg2.OperationalError, match="no encryption"):
        pg_connect(local, password, sslmode="disable")
    # a restart, and a server away for 3 s, while mounted: operations wait
    # and go on, nothing acknowledged is lost
    pg_ctl(local, "-m", "fast", "-l", f"{local}/pg/server.log", "restart")
    (local / "mnt" / "after-restart").write_bytes(data[:1000])
    away = subprocess.Popen(["sh", "-c", f"{pg_ctl_cmd(local)} -m fast stop && sleep 3 &&"
                             f" {pg_ctl_cmd(local)} -l {local}/pg/server.log start"])
    time.sleep(1)
    (local / "mnt" / "while-away").write_text("waited")
    assert away.wait(timeout=60) == 0
    assert (local / "mnt" / "after-restart").read_bytes() == data[:1000]
    assert (local / "mnt" / "while-away").read_text() == "waited"
    server = int((local / "pg" / "data" / "postmaster.pid").read_text().split()[0])
    assert "PostgreSQL stopped" in run("down", str(local)).stdout
    assert not alive(server) and not mounted(local / "mnt")
    out = run("up", str(local)).stdout
    assert "PostgreSQL started" in out and "created" not in out
    assert (local / "mnt" / "big").read_bytes() == data
    assert (local / "mnt" / "small").read_text() == "inline"
    r = run("up", "--meta", "sqlite", str(local), check=False)
    assert r.returncode == 1 and "metadata in PostgreSQL already" in r.stderr
    run("down", str(local))


PR_SET_CHILD_SUBREAPER = 36

WRITER = """
import hashlib, os, sys, time
mnt, log, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
end = time.monotonic() + seconds
i = 0
with open(log, "a") as out:
    while time.monotonic() < end:
        data = hashlib.sha256(str(i).encode()).digest() * (32 + (i * 997) % 9000)
        try:
            with open(os.path.join(mnt, f"w{i}"), "wb") as f:
                f.write(data)
            out.write(f"{i} {hashlib.md5(data).hexdigest()}\\n")
            out.flush()
            os.fsync(out.fileno())
        except OSError as e:
            print(f"w{i}: {e}", file=sys.stderr)
        i += 1
"""


def test_postgres_killed_while_writing_loses_no_closed_file(local):
    """kill -9 of the server while a mount writes files: it comes back
    after crash recovery, the mount goes on by itself, and every file
    whose close returned is there, exact, after a remount."""
    import ctypes
    import hashlib
    # The server's parent is then this process, which can reap it at once:
    # a killed server not yet reaped keeps a new one from starting.
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    try:
        run("up", "--meta", "postgres", str(local))
    finally:
        libc.prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)
    log = local / "closed.log"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(local / "mnt"), str(log), "12"],
                              stderr=subprocess.PIPE, text=True)
    time.sleep(4)
    server = int((local / "pg" / "data" / "postmaster.pid").read_text().split()[0])
    os.kill(server, signal.SIGKILL)
    os.waitpid(server, 0)
    time.sleep(1)
    pg_ctl(local, "-l", f"{local}/pg/server.log", "start")  # crash recovery
    _, errors = writer.communicate(timeout=120)
    assert writer.returncode == 0, errors
    closed = dict(line.split() for line in log.read_text().splitlines())
    assert len(closed) > 20, errors
    run("down", str(local))
    run("up", str(local))
    for i, digest in closed.items():
        data = (local / "mnt" / f"w{i}").read_bytes()
        assert hashlib.md5(data).hexdigest() == digest, f"w{i}"
    assert run("meta", "check", "-c", str(local / "cluster.conf")).returncode == 0
    run("down", str(local))


def test_postgres_away_past_the_timeout_gives_eio_then_recovers(local, tmp_path):
    """With the server stopped for longer than -o meta_timeout, operations
    fail with EIO (not hang); once it is back the mount goes on by itself."""
    import errno

    from cluster import Mount
    run("up", "--meta", "postgres", str(local))
    subprocess.run(["fusermount3", "-u", str(local / "mnt")], check=True, timeout=60)
    m = Mount(str(local / "cluster.conf"), tmp_path / "m", "meta_timeout=3")
    try:
        (tmp_path / "m" / "before").write_text("kept")
        pg_ctl(local, "-m", "fast", "stop")
        start = time.monotonic()
        with pytest.raises(OSError) as e:
            (tmp_path / "m" / "while-down").write_text("x")
        assert e.value.errno == errno.EIO
        assert time.monotonic() - start < 30
        pg_ctl(local, "-l", f"{local}/pg/server.log", "start")
        (tmp_path / "m" / "after").write_text("back")
        assert (tmp_path / "m" / "before").read_text() == "kept"
        assert (tmp_path / "m" / "after").read_text() == "back"
    finally:
        m.close()
    run("down", str(local))
