"""Membership in the metadata on real node processes: `shardfs node add`
reaching a running mount, `shardfs rebalance` moving about 1/N of the
shards, `node drain` emptying a node and `node remove` taking it away,
a rebalance killed with SIGKILL again and again, and bad input."""

import json
import os
import signal
import subprocess
import time

import pytest

from cluster import SHARDFS, Mount, put, rand_bytes

PART = 8 << 20


def members(cl):
    return {n["id"]: n for n in json.loads(cl.run("node", "list", "--json").stdout)["nodes"]}


def rebalance(cl, *opts, code=0):
    r = cl.run("rebalance", "--json", *opts, check=False)
    assert r.returncode == code, (r.returncode, r.stdout, r.stderr)
    return json.loads(r.stdout)


def scrub(cl):
    r = cl.run("scrub", "--json", "--grace", "0", check=False)
    assert r.returncode == 0, (r.stdout, r.stderr)
    return json.loads(r.stdout)


def put_files(cl, tmp_path, count, parts=3, seed=0):
    files = {}
    for i in range(count):
        data = rand_bytes(parts * PART + 4096 * i + 17, seed + i)
        put(cl, data, f"/f{seed + i}", tmp_path)
        files[f"/f{seed + i}"] = data
    return files


def assert_exact(cl, files):
    for name, data in files.items():
        assert cl.run("cat", name).stdout == data, name


def wait_for(what, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if what():
            return True
        time.sleep(0.5)
    return False


def test_a_node_added_takes_writes_of_a_running_mount_and_a_quarter_of_the_shards(cluster, tmp_path):
    files = put_files(cluster, tmp_path, 8)
    mnt = Mount(cluster.conf, tmp_path / "mnt", "repair_interval=0")  # no rebalance of its own
    try:
        four = cluster.add_node(",zone=z4")
        assert members(cluster)[four]["zone"] == "z4"
        # the mount was not restarted: within 10 s its new files have shards on node 4
        added = {}

        def new_file_reaches_four():
            name = f"late{len(added)}"
            data = rand_bytes(2 * PART, 100 + len(added))
            with open(os.path.join(mnt.path, name), "wb") as f:
                f.write(data)
            added[name] = data
            return members(cluster)[four]["parts"] > 0
        assert wait_for(new_file_reaches_four, 10), members(cluster)
        before = members(cluster)[four]["parts"]
        dry = rebalance(cluster, "--dry-run")
        assert members(cluster)[four]["parts"] == before  # a dry run moves nothing
        # 4 nodes: the ring gives the new one about a quarter of every shard
        assert 0.12 <= dry["moved_share"] <= 0.38, dry
        done = rebalance(cluster)
        assert done["balanced"] and done["shards_moved"] == dry["shards_moved"], (dry, done)
        assert rebalance(cluster)["shards_misplaced"] == 0
        held = [n["parts"] for n in members(cluster).values()]
        assert min(held) >= 0.5 * max(held), held
        for name, data in added.items():
            with open(os.path.join(mnt.path, name), "rb") as f:
                assert f.read() == data, name
        st = scrub(cluster)
        assert st["missing_found"] == 0 and st["orphans_found"] == 0, st
        assert_exact(cluster, files)
    finally:
        mnt.close()


def test_drain_empties_a_node_and_remove_takes_it_away(cluster, tmp_path):
    cluster.add_node()
    files = put_files(cluster, tmp_path, 6)
    r = cluster.run("node", "remove", "2", check=False)
    assert r.returncode == 1 and b"still holds shards of" in r.stderr, r.stderr
    cluster.run("node", "drain", "2")
    assert members(cluster)[2]["state"] == "draining"
    held = members(cluster)[2]["parts"]
    files.update(put_files(cluster, tmp_path, 2, seed=50))
    assert members(cluster)[2]["parts"] == held  # a draining node takes no new shard
    done = rebalance(cluster)
    assert done["nodes_out"] == 1 and done["balanced"], done
    assert members(cluster)[2]["state"] == "out" and members(cluster)[2]["parts"] == 0
    cluster.kill(2)  # an out node may be down: nothing depends on it
    st = json.loads(cluster.run("status", "--json").stdout)
    assert st["health"]["state"] == "healthy", st
    cluster.run("node", "remove", "2")
    assert 2 not in members(cluster)
    assert_exact(cluster, files)
    assert scrub(cluster)["missing_found"] == 0


def test_remove_with_force_marks_the_lost_shards_for_repair(cluster, tmp_path):
    cluster.add_node()
    files = put_files(cluster, tmp_path, 4)
    held = members(cluster)[3]["parts"]
    assert held > 0
    r = cluster.run("node", "remove", "3", "--force")
    assert f"{held} parts lost a shard".encode() in r.stdout, r.stdout
    cluster.kill(3)
    st = json.loads(cluster.run("status", "--json", check=False).stdout)
    assert st["health"]["degraded_parts"] == held, st
    cluster.run("repair", "--once")
    st = json.loads(cluster.run("status", "--json").stdout)
    assert st["health"]["state"] == "healthy", st
    assert_exact(cluster, files)


def test_rebalance_killed_again_and_again_loses_nothing(cluster, tmp_path):
    files = put_files(cluster, tmp_path, 6, parts=4)
    cluster.add_node()
    env = dict(os.environ, SHARDFS_CONF=cluster.conf)
    kills = 0
    for run in range(4):
        worker = subprocess.Popen([SHARDFS, "rebalance", "--rate", "8"], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(3.5 if run == 0 else 1.5)
        if run == 0:  # status tells of the pass, with a rate and a time to go
            r = cluster.run("status", "--json", check=False)
            health = json.loads(r.stdout)["health"]
            assert r.returncode == 3 and health["state"] == "rebalancing", health
            assert health["rebalance_workers"] == 1 and health["rebalance_bytes_per_s"] > 0
            assert health["rebalance_parts_total"] == 30, health  # 6 files of 4 parts and a bit
        if worker.poll() is None:
            worker.send_signal(signal.SIGKILL)
            kills += 1
        worker.wait(timeout=30)
    assert kills >= 2  # at 8 MiB/s a quarter of 96 MiB of shards takes longer
    done = rebalance(cluster)
    assert done["balanced"], done
    assert rebalance(cluster)["shards_misplaced"] == 0
    st = scrub(cluster)
    assert st["missing_found"] == 0, st
    assert_exact(cluster, files)
    assert scrub(cluster)["orphans_found"] == 0


def test_bad_membership_commands_are_refused(cluster, tmp_path):
    for args, code, says in [
        (["node", "add", "4=127.0.0.1"], 2, b"expected ID=HOST:PORT"),
        (["node", "add", "0=127.0.0.1:9"], 2, b"expected ID=HOST:PORT"),
        (["node", "drain", "x"], 2, b"expected a node id"),
        (["node", "drain", "9"], 1, b"no member has that id"),
        (["node", "remove", "9"], 1, b"no member has that id"),
        (["node", "list", "extra"], 2, b"expected no argument"),
    ]:
        r = cluster.run(*args, check=False)
        assert r.returncode == code and says in r.stderr, (args, r.returncode, r.stderr)
    taken = members(cluster)[1]
    r = cluster.run("node", "add", f"4={taken['host']}:{taken['port']}", check=False)
    assert r.returncode == 1 and b"has that id or address" in r.stderr, r.stderr
    r = cluster.run("node", "add", "1=127.0.0.1:9", check=False)
    assert r.returncode == 1 and b"has that id or address" in r.stderr, r.stderr
    # signing needs the CA key, which stays where init ran
    key = os.path.join(cluster.dir, "ca", "ca.key")
    os.rename(key, key + ".away")
    try:
        r = cluster.run("node", "add", "4=127.0.0.1:9", check=False)
        assert r.returncode == 1 and b"ca.key is not here" in r.stderr, r.stderr
    finally:
        os.rename(key + ".away", key)
    assert sorted(members(cluster)) == [1, 2, 3]


def test_a_mount_moves_shards_by_itself_after_add_and_drain(cluster, tmp_path):
    """No rebalance command: the cluster's one mount that makes backups
    rebalances after its repair rounds."""
    files = put_files(cluster, tmp_path, 4)
    mnt = Mount(cluster.conf, tmp_path / "mnt", "repair_interval=1")
    try:
        four = cluster.add_node()
        assert wait_for(lambda: rebalance(cluster, "--dry-run")["shards_misplaced"] == 0, 60), \
            "log: " + mnt.log_text()
        assert members(cluster)[four]["parts"] > 0
        cluster.run("node", "drain", "1")
        assert wait_for(lambda: members(cluster)[1]["state"] == "out", 60), mnt.log_text()
        assert members(cluster)[1]["parts"] == 0
        assert "rebalance:" in mnt.log_text()
        assert_exact(cluster, files)
    finally:
        mnt.close()
