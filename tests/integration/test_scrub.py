"""Healing on real node processes: `shardfs scrub` (a store that lost
its shards without a new identity, orphan shards young and old, a byte
flipped on disk, parts that no longer read), a node put out after
down_out_s, and what `shardfs status` says meanwhile."""

import glob
import json
import os
import random
import re
import signal
import socket
import sqlite3
import subprocess
import time

import pytest

from cluster import SHARDFS, Cluster, Mount, db_rows, flip_byte_in_shard, pg_rows, put, rand_bytes

PART = 8 << 20


@pytest.fixture
def c3(cluster):
    return cluster


def cat(cl, remote, check=True):
    return cl.run("cat", remote, check=check).stdout


def scrub(cl, *opts, code=0):
    r = cl.run("scrub", "--json", *opts, check=False)
    assert r.returncode == code, (r.returncode, r.stdout, r.stderr)
    return json.loads(r.stdout)


def wipe_store_keeping_identity(cl, i):
    """Node i loses every shard but keeps its identity file: a loss that
    only a scrub can see (a restored or half-copied data directory)."""
    cl.kill(i)
    for path in glob.glob(os.path.join(cl.node_dir(i), "*")):
        if os.path.basename(path) != "identity":
            os.unlink(path)
    cl.start(i)
    cl.wait_up()


def status(cl, code=0):
    r = cl.run("status", "--json", check=False)
    assert r.returncode == code, (r.returncode, r.stdout)
    return json.loads(r.stdout)


def test_scrub_finds_the_shards_a_store_lost_and_repair_rebuilds_them(c3, tmp_path):
    files = {f"/f{n}": rand_bytes(size, n) for n, size in
             enumerate([100_000, PART + 12345, 2 * PART + 1])}
    for name, data in files.items():
        put(c3, data, name, tmp_path)
    clean = scrub(c3)
    assert clean["parts"] == 6 and clean["shards_named"] == 18 and clean["shards_listed"] == 18
    assert clean["missing_found"] == 0 and clean["orphans_found"] == 0 and clean["clean"]
    wipe_store_keeping_identity(c3, 2)
    found = scrub(c3)
    lost = 18 - found["shards_listed"]
    assert lost > 0 and found["missing_found"] == lost and found["missing_marked"] == lost, found
    assert found["clean"]  # each is marked for repair
    again = scrub(c3)
    assert again["missing_found"] == 0, again  # marked once
    r = c3.run("repair", "--once")
    assert r.stdout.startswith(f"repaired {lost} parts ({lost} shards rebuilt), 0 failed".encode()), r.stdout
    healed = scrub(c3, "--deep")
    assert healed["shards_listed"] == 18 and healed["missing_found"] == 0, healed
    assert healed["parts_read"] == 6 and healed["parts_unreadable"] == 0, healed
    # redundancy is back: any other node may go
    c3.kill(3)
    for name, data in files.items():
        assert cat(c3, name) == data, name


def drop_from_metadata(cl, name):
    """The file called name vanishes from the metadata, its shards left on
    the nodes: what a writer that died before its commit leaves."""
    (ino,) = db_rows(cl, "SELECT ino FROM dentries WHERE name = ?", name.encode())[0]
    for sql in ("DELETE FROM parts WHERE ino = ?", "DELETE FROM dentries WHERE ino = ?",
                "DELETE FROM inodes WHERE ino = ?"):
        if cl.meta_url.startswith("postgresql:"):
            pg_rows(cl.meta_url, sql, ino)
        else:
            with sqlite3.connect(os.path.join(cl.dir, "meta.db"), timeout=10) as db:
                db.execute(sql, (ino,))


def test_scrub_deletes_orphans_past_the_grace_period_and_keeps_backups(c3, tmp_path):
    keep = rand_bytes(300_000, 1)
    put(c3, keep, "/keep", tmp_path)
    put(c3, rand_bytes(PART + 1, 2), "/gone", tmp_path)
    c3.run("meta", "backup")
    backups = c3.run("meta", "backups").stdout
    drop_from_metadata(c3, "gone")
    young = scrub(c3)
    assert young["orphans_found"] == 6 and young["orphans_young"] == 6, young
    assert young["orphans_deleted"] == 0 and young["clean"], young
    dry = scrub(c3, "--grace", "0", "--dry-run", code=1)
    assert dry["orphans_found"] == 6 and dry["orphans_deleted"] == 0, dry
    old = scrub(c3, "--grace", "0")
    assert old["orphans_found"] == 6 and old["orphans_deleted"] == 6 and old["clean"], old
    after = scrub(c3, "--grace", "0")
    assert after["orphans_found"] == 0 and after["shards_listed"] == after["shards_named"], after
    assert after["backup_shards"] > 0, after
    assert cat(c3, "/keep") == keep
    assert c3.run("meta", "backups").stdout == backups  # never an orphan


def test_deep_scrub_finds_a_flipped_byte_and_repair_rewrites_it(c3, tmp_path):
    data = rand_bytes(PART, 3)
    put(c3, data, "/f", tmp_path)
    flip_byte_in_shard(c3, data[7000:7064])
    plain = scrub(c3)
    assert plain["missing_found"] == 0 and plain["corrupt_reads"] == 0  # listings only
    deep = scrub(c3, "--deep")
    assert deep["parts_read"] == 1 and deep["corrupt_reads"] >= 1, deep
    assert deep["parts_unreadable"] == 0 and deep["clean"], deep
    r = c3.run("repair", "--once")
    assert r.stdout.startswith(b"repaired 1 parts (1 shards rebuilt), 0 failed"), r.stdout
    healed = scrub(c3, "--deep")
    assert healed["corrupt_reads"] == 0 and healed["parts_read"] == 1, healed
    assert cat(c3, "/f") == data


def test_scrub_and_repair_name_the_files_whose_parts_no_longer_read(c3, tmp_path):
    put(c3, rand_bytes(200_000, 4), "/lost", tmp_path)
    (ino,) = db_rows(c3, "SELECT ino FROM dentries WHERE name = ?", b"lost")[0]
    wipe_store_keeping_identity(c3, 1)
    wipe_store_keeping_identity(c3, 2)
    r = c3.run("scrub", "--deep", check=False)
    assert r.returncode == 1, r.stdout
    assert f"unreadable: /lost (inode {ino})".encode() in r.stdout, r.stdout
    st = scrub(c3, "--deep", code=1)
    assert st["parts_unreadable"] == 1 and st["unreadable_inodes"] == [ino], st
    assert st["unreadable_paths"] == ["/lost"], st
    r = c3.run("repair", "--once", check=False)
    assert r.returncode == 1 and f"file /lost (inode {ino})".encode() in r.stderr, r.stderr
    assert not st["clean"]


def test_a_node_that_does_not_answer_is_not_judged(c3, tmp_path):
    put(c3, rand_bytes(100_000, 5), "/f", tmp_path)
    c3.kill(3, signal.SIGSTOP)
    try:
        st = scrub(c3, "--grace", "0", code=1)
    finally:
        c3.kill(3, signal.SIGCONT)
    assert st["nodes_answered"] == 2 and st["missing_found"] == 0, st
    assert st["orphans_found"] == 0 and not st["clean"], st


def test_a_node_down_past_down_out_s_has_its_shards_rebuilt_on_the_others(tmp_path):
    cl = Cluster(tmp_path / "c4", nodes=4, ec="2+1")
    try:
        conf = open(cl.conf).read()
        with open(cl.conf, "w") as f:
            f.write(conf.replace("[cluster]\n", "[cluster]\ndown_out_s=3\n", 1))
        files = {f"/f{n}": rand_bytes(PART + n * 1000, 10 + n) for n in range(4)}
        for name, data in files.items():
            put(cl, data, name, tmp_path)
        before = scrub(cl)
        cl.kill(4)
        first = cl.run("repair", "--once", check=False)  # records since when it is down
        assert b"has not answered" not in first.stderr, first.stderr
        time.sleep(3.5)
        r = cl.run("repair", "--once")
        assert b"node 4 has not answered for 3 s" in r.stderr, r.stderr
        rebuilt = int(r.stdout.split()[1])
        assert rebuilt > 0 and b"0 failed, 0 waiting" in r.stdout, r.stdout
        st = status(cl, code=1)
        out = [n for n in st["nodes"] if n["id"] == 4][0]
        assert out["state"] == "out" and out["down_seconds"] >= 3, out
        assert st["health"]["state"] == "degraded" and st["health"]["nodes_down"] == 1, st
        assert st["health"]["degraded_parts"] == 0, st
        # every part is whole again without node 4: node 1 may go too
        cl.kill(1)
        for name, data in files.items():
            assert cat(cl, name) == data, name
        cl.start(1)
        cl.start(4)
        cl.wait_up()
        back = cl.run("repair", "--once")
        assert b"node 4 answers again" in back.stderr, back.stderr
        after = scrub(cl)
        assert after["missing_found"] == 0 and after["shards_named"] == before["shards_named"]
        assert after["orphans_young"] == rebuilt, after  # node 4's old copies, for a later scrub
    finally:
        cl.stop()


def test_status_says_repairing_with_a_rate_and_time_to_go(c3, tmp_path):
    """A node down while 6 parts are written, back, and a repair daemon
    held to 1 MiB/s: after its first step of 4 parts status says
    REPAIRING, with the daemon's rate and the time left for the rest."""
    c3.kill(3)
    put(c3, rand_bytes(6 * PART, 6), "/f", tmp_path)
    c3.start(3)
    c3.wait_up()
    assert status(c3, code=3)["health"]["state"] == "degraded"
    env = dict(os.environ, SHARDFS_CONF=c3.conf)
    daemon = subprocess.Popen([SHARDFS, "repair", "--daemon", "--rate", "1", "--interval", "1"],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            r = c3.run("status", check=False)
            if b"health: REPAIRING" in r.stdout:
                break
            time.sleep(0.5)
        assert b"health: REPAIRING: 2 parts (16.0 MiB) with shards missing" in r.stdout, r.stdout
        assert b"1 repair worker at" in r.stdout and b"to go" in r.stdout, r.stdout
        h = status(c3, code=3)["health"]
        assert h["state"] == "repairing" and h["repair_workers"] == 1, h
        assert h["repair_bytes_per_s"] > 0 and h["repair_seconds_left"] > 0, h
    finally:
        daemon.terminate()
        daemon.wait(timeout=60)


def test_status_tells_a_wiped_store(c3, tmp_path):
    """The put records each node's identity before it places shards (no
    repair round ran), so a node wiped after it is told as a new store."""
    put(c3, rand_bytes(100_000, 7), "/f", tmp_path)
    c3.kill(2)
    for path in glob.glob(os.path.join(c3.node_dir(2), "*")):
        os.unlink(path)
    c3.start(2)
    c3.wait_up()
    r = c3.run("status", check=False)
    assert b"a new store (identity" in r.stdout and b"rebuilt onto it" in r.stdout, r.stdout
    assert b"health: DEGRADED: 1 node with a new store" in r.stdout and r.returncode == 3
    st = status(c3, code=3)
    node = [n for n in st["nodes"] if n["id"] == 2][0]
    assert node["new_store"] and st["health"]["new_stores"] == 1, st
    c3.run("repair", "--once")
    st = status(c3)
    assert st["health"]["state"] == "healthy" and not any(n["new_store"] for n in st["nodes"])


def set_conf(cl, **keys):
    """Keys of the [cluster] group, for the clients started after this."""
    text = open(cl.conf).read()
    for key, value in keys.items():
        text = re.sub(rf"^{key}=.*\n", "", text, flags=re.M)
        text = text.replace("[cluster]\n", f"[cluster]\n{key}={value}\n", 1)
    with open(cl.conf, "w") as f:
        f.write(text)


def missing_of(cl, name):
    return [m for (m,) in db_rows(cl, "SELECT p.missing FROM parts p JOIN dentries d"
                                  " ON d.ino = p.ino WHERE d.name = ? ORDER BY p.idx",
                                  name.encode())]


def test_repair_takes_the_parts_closest_to_loss_first(tmp_path):
    """2+2 on 4 nodes: file a written with one node down (3 shards a
    part), then b with two down (2 shards, one loss from none spare).
    A daemon held to 1 MiB/s rebuilds b's parts before any of a's, though
    a comes first in the list."""
    cl = Cluster(tmp_path / "c4", nodes=4, ec="2+2")
    daemon = None
    try:
        set_conf(cl, min_shards=2, part_size=1 << 20)
        cl.kill(4)
        put(cl, rand_bytes(4 << 20, 21), "/a", tmp_path)
        cl.kill(3)
        put(cl, rand_bytes(4 << 20, 22), "/b", tmp_path)
        assert all(bin(m).count("1") == 1 for m in missing_of(cl, "a"))
        assert all(bin(m).count("1") == 2 for m in missing_of(cl, "b"))
        cl.start(3)
        cl.start(4)
        cl.wait_up()
        env = dict(os.environ, SHARDFS_CONF=cl.conf)
        daemon = subprocess.Popen([SHARDFS, "repair", "--daemon", "--rate", "1", "--interval", "1"],
                                  env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and any(missing_of(cl, "b")):
            assert all(missing_of(cl, "a")), "a part of a rebuilt before b's"
            time.sleep(0.05)
        assert not any(missing_of(cl, "b"))
        assert all(missing_of(cl, "a")), "a's parts wait for the next pass"
    finally:
        if daemon:
            daemon.terminate()
            daemon.wait(timeout=60)
        cl.stop()


def test_two_repair_workers_never_rebuild_the_same_part(c3, tmp_path):
    set_conf(c3, part_size=1 << 20)
    c3.kill(2)
    data = rand_bytes(16 << 20, 23)
    put(c3, data, "/f", tmp_path)
    c3.start(2)
    c3.wait_up()
    env = dict(os.environ, SHARDFS_CONF=c3.conf)
    workers = [subprocess.Popen([SHARDFS, "repair", "--once"], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE) for _ in range(2)]
    outs = [w.communicate(timeout=120)[0].decode() for w in workers]
    counts = [list(map(int, re.findall(r"\d+", out))) for out in outs]
    # repaired, shards rebuilt, failed, waiting, rewritten meanwhile, left to another
    assert sum(c[0] for c in counts) == 16 and sum(c[1] for c in counts) == 16, outs
    assert all(c[2] == 0 and c[4] == 0 for c in counts), outs
    assert not any(missing_of(c3, "f"))
    c3.kill(1)
    assert cat(c3, "/f") == data


def test_repair_workers_killed_mid_run_lose_nothing(c3, tmp_path):
    """Repair daemons killed with SIGKILL at random moments, four times:
    the parts they held leases on are taken up by the next worker on this
    host at once (their holders are gone), nothing is lost, and a scrub
    collects the shards they rebuilt but never committed."""
    set_conf(c3, part_size=1 << 20)
    c3.kill(3)
    files = {f"/f{n}": rand_bytes((6 << 20) + n, 30 + n) for n in range(4)}
    for name, data in files.items():
        put(c3, data, name, tmp_path)
    c3.start(3)
    c3.wait_up()
    env = dict(os.environ, SHARDFS_CONF=c3.conf)
    rng = random.Random(5)
    for _ in range(4):
        daemon = subprocess.Popen([SHARDFS, "repair", "--daemon", "--rate", "4", "--interval", "1"],
                                  env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.2, 1.0))
        daemon.kill()
        daemon.wait()
    r = c3.run("repair", "--once")
    assert b" 0 failed, 0 waiting for a node" in r.stdout and r.stdout.endswith(
        b" 0 left to another worker\n"), r.stdout
    assert not any(m for name in files for m in missing_of(c3, name.lstrip("/")))
    st = scrub(c3, "--grace", "0", "--deep")
    assert st["missing_found"] == 0 and st["parts_unreadable"] == 0 and st["clean"], st
    assert scrub(c3, "--grace", "0")["orphans_found"] == 0
    c3.kill(1)
    for name, data in files.items():
        assert cat(c3, name) == data, name


def test_files_rewritten_while_repair_works_on_them_are_never_mixed(c3, tmp_path):
    """A repair daemon rebuilds parts of files that clients rewrite
    meanwhile: each file reads back as exactly its new content, the
    manifest's compare-and-set leaving the rebuilt old shards aside."""
    set_conf(c3, part_size=1 << 20)
    c3.kill(2)
    names = [f"/r{n}" for n in range(6)]
    for n, name in enumerate(names):
        put(c3, rand_bytes(4 << 20, 40 + n), name, tmp_path)
    c3.start(2)
    c3.wait_up()
    env = dict(os.environ, SHARDFS_CONF=c3.conf)
    daemon = subprocess.Popen([SHARDFS, "repair", "--daemon", "--rate", "2", "--interval", "1"],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    new = {}
    try:
        for n, name in enumerate(names):
            new[name] = rand_bytes((4 << 20) + 77, 50 + n)
            put(c3, new[name], name, tmp_path)
            time.sleep(0.2)
    finally:
        daemon.terminate()
        daemon.wait(timeout=60)
    c3.run("repair", "--once")
    for name, data in new.items():
        assert cat(c3, name) == data, name
    st = scrub(c3, "--grace", "0", "--deep")
    assert st["missing_found"] == 0 and st["parts_unreadable"] == 0 and st["clean"], st
    c3.kill(3)
    for name, data in new.items():
        assert cat(c3, name) == data, name


def db_exec(cl, sql, *args):
    if cl.meta_url.startswith("postgresql:"):
        pg_rows(cl.meta_url, sql, *args)
    else:
        with sqlite3.connect(os.path.join(cl.dir, "meta.db"), timeout=10) as db:
            db.execute(sql, args)


def test_a_lease_of_a_worker_gone_from_this_host_is_taken_at_once(c3, tmp_path):
    c3.kill(3)
    put(c3, rand_bytes(3 << 20, 60), "/a", tmp_path)
    put(c3, rand_bytes(3 << 20, 61), "/b", tmp_path)
    c3.start(3)
    c3.wait_up()
    (a,) = db_rows(c3, "SELECT ino FROM dentries WHERE name = ?", b"a")[0]
    (b,) = db_rows(c3, "SELECT ino FROM dentries WHERE name = ?", b"b")[0]
    dead = subprocess.Popen(["true"])
    dead.wait()  # a pid of this host that no process has now
    until = int(time.time()) + 3600
    db_exec(c3, "INSERT INTO repair_leases (ino, idx, holder, until) VALUES (?, 0, ?, ?)",
            a, f"{socket.gethostname()}:{dead.pid}", until)
    db_exec(c3, "INSERT INTO repair_leases (ino, idx, holder, until) VALUES (?, 0, ?, ?)",
            b, "another-host:1", until)
    r = c3.run("repair", "--once", check=False)
    assert r.stdout.startswith(b"repaired 1 parts") and b"1 left to another worker" in r.stdout, r.stdout
    assert missing_of(c3, "a") == [0] and missing_of(c3, "b") != [0]


def test_a_node_with_a_full_disk_refuses_shards_keeps_serving_reads(c3, tmp_path):
    """Node 3's store on a 12 MiB tmpfs: once it is full, writes still
    commit (its shards recorded missing, min_shards 2 of 3), every file
    reads back exact, also with another node down, since node 3 goes on
    serving the shards it has; status shows the disk and the damage."""
    data_dir = c3.node_dir(3)
    c3.kill(3)
    for path in glob.glob(os.path.join(data_dir, "*")):
        os.unlink(path)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=12m", "tmpfs", data_dir], check=True)
    try:
        c3.start(3)
        c3.wait_up()
        files = {f"/full{n}": rand_bytes(PART, 70 + n) for n in range(5)}
        for name, data in files.items():
            put(c3, data, name, tmp_path)
        log = open(os.path.join(c3.dir, "node-3.log"), "rb").read()
        assert b"the store refuses shards: No space left on device" in log, log[-2000:]
        st = status(c3, code=3)
        node3 = [n for n in st["nodes"] if n["id"] == 3][0]
        assert node3["state"] == "up" and node3["free_bytes"] < 4 << 20, node3
        assert st["health"]["degraded_parts"] >= 1, st
        for name, data in files.items():
            assert cat(c3, name) == data, name
        held = [name for name in files if missing_of(c3, name.lstrip("/")) == [0]]
        assert held, "node 3 took no shard at all"
        c3.kill(1)  # node 3 serves what it holds
        for name in held:
            assert cat(c3, name) == files[name], name
    finally:
        c3.stop()
        subprocess.run(["umount", "-l", data_dir], check=False)


def test_a_mount_places_no_shard_on_a_full_node_for_minutes(tmp_path):
    """Node 4 of 4 on a 12 MiB tmpfs: once it refused a shard with ENOSPC,
    the mount's later writes, well past the 10 s a failed node is avoided
    for, are not offered to it (no further hand-off from it), while other
    nodes take them; every file reads back exact."""
    cl = Cluster(tmp_path / "c4", nodes=4, ec="2+1")
    data_dir = cl.node_dir(4)
    cl.kill(4)
    for path in glob.glob(os.path.join(data_dir, "*")):
        os.unlink(path)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=12m", "tmpfs", data_dir], check=True)
    mnt = None
    try:
        cl.start(4)
        cl.wait_up()
        mnt = Mount(cl.conf, tmp_path / "mnt", "repair_interval=0")
        refused = b"node 4 failed (No space left on device), handed off"
        files, n = {}, 0

        def write(count):
            nonlocal n
            for _ in range(count):
                data = rand_bytes(2 * PART, 300 + n)
                with open(os.path.join(mnt.path, f"f{n}"), "wb") as f:
                    f.write(data)
                files[f"f{n}"] = data
                n += 1
        while refused not in mnt.log_text().encode() and n < 30:
            write(1)
        before = mnt.log_text().encode().count(refused)
        assert before >= 1, mnt.log_text()
        time.sleep(12)
        write(8)
        assert mnt.log_text().encode().count(refused) == before, mnt.log_text()
        for name, data in files.items():
            with open(os.path.join(mnt.path, name), "rb") as f:
                assert f.read() == data, name
    finally:
        if mnt:
            mnt.close()
        cl.stop()
        subprocess.run(["umount", "-l", data_dir], check=False)
