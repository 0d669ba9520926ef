"""The object layer through `shardfs put/get/cat/ls/rm`, on real node
processes: round trips, range reads, nodes killed, frozen and corrupted,
and the writer's memory bound."""

import json
import os
import random
import re
import signal
import subprocess
import time
import urllib.request

import pytest

from cluster import SHARDFS, Cluster, db_rows, flip_byte_in_shard, free_tcp_ports, put, rand_bytes

PART = 8 << 20
MIB = 1 << 20


@pytest.fixture
def c3(tmp_path):
    cl = Cluster(tmp_path / "c3", nodes=3, ec="2+1")
    yield cl
    cl.stop()


@pytest.fixture
def c6(tmp_path):
    cl = Cluster(tmp_path / "c6", nodes=6, ec="4+2")
    yield cl
    cl.stop()


def cat(cl, remote, *opts, check=True, timeout=300):
    return cl.run("cat", *opts, remote, check=check, timeout=timeout)


def missing_by_part(cl, name):
    """The missing-shard set of each part of the file called name."""
    return [m for (m,) in db_rows(cl, "SELECT p.missing FROM parts p JOIN dentries d"
                                  " ON d.ino = p.ino WHERE d.name = ? ORDER BY p.idx",
                                  name.encode())]


def stats(stderr):
    m = re.search(rb"stats: (.*)", stderr)
    return {k: int(v) for k, v in (kv.split("=") for kv in m.group(1).decode().split())}


def test_round_trips_of_every_boundary_size(c3, tmp_path):
    """Sizes around part boundaries come back byte-exact through get and cat."""
    for i, n in enumerate([0, 1, PART - 1, PART, PART + 1, 3 * PART + 17]):
        data = rand_bytes(n, i)
        put(c3, data, f"/f{i}", tmp_path)
        out = tmp_path / f"out{i}"
        c3.run("get", f"/f{i}", str(out))
        assert out.read_bytes() == data, n
        assert cat(c3, f"/f{i}").stdout == data
    listing = c3.run("ls", "-l", "/").stdout.decode()
    assert re.search(rf"\s{3 * PART + 17}\s.*f5$", listing, re.M), listing


def test_200mib_and_random_ranges(c3, tmp_path):
    """A 200 MiB random file round-trips; random ranges match the source and
    a 4 KiB read moves about 4 KiB."""
    data = os.urandom(200 * MIB)
    src = tmp_path / "big"
    src.write_bytes(data)
    c3.run("put", str(src), "/big")
    out = tmp_path / "big.out"
    c3.run("get", "/big", str(out))
    assert out.read_bytes() == data
    rng = random.Random(7)
    for _ in range(25):
        off = rng.randrange(len(data))
        n = rng.choice([1, 4096, 65536, rng.randrange(1, 20 * MIB)])
        r = cat(c3, "/big", "--stats", "-o", str(off), "-n", str(n))
        assert r.stdout == data[off:off + n], (off, n)
    r = cat(c3, "/big", "--stats", "-o", str(123 * MIB + 4321), "-n", "4096")
    assert r.stdout == data[123 * MIB + 4321:][:4096]
    assert stats(r.stderr)["shard_bytes_fetched"] <= 8192, r.stderr


def test_reads_survive_m_nodes_killed_and_fail_cleanly_beyond(c6, tmp_path):
    """4+2: with 2 nodes killed reads are exact; with 3 they fail with a
    clear error and never print wrong bytes."""
    data = rand_bytes(5 * PART + 1234, 1)
    put(c6, data, "/f", tmp_path)
    c6.kill(2)
    c6.kill(5)
    r = cat(c6, "/f", "--stats")
    assert r.stdout == data
    assert stats(r.stderr)["degraded_reads"] > 0
    assert cat(c6, "/f", "-o", str(PART + 5), "-n", "100000").stdout == data[PART + 5:][:100000]
    c6.kill(6)
    r = cat(c6, "/f", check=False)
    assert r.returncode == 1
    assert b"too few storage nodes answer" in r.stderr
    assert data.startswith(r.stdout)


def test_put_with_a_node_down_hands_off(tmp_path):
    """7 nodes, 4+2, one node down: shards meant for it go to the next node
    of the ring, so every part has 6 shards on 6 live nodes: reads survive
    two more nodes lost."""
    c7 = Cluster(tmp_path / "c7", nodes=7, ec="4+2")
    try:
        c7.kill(3)
        data = rand_bytes(6 * PART + 99, 2)
        put(c7, data, "/f", tmp_path)
        assert missing_by_part(c7, "f") == [0] * 7  # handed off, none missing
        r = cat(c7, "/f", "--stats")
        assert r.stdout == data
        print(stats(r.stderr))
        c7.kill(1)
        c7.kill(6)
        assert cat(c7, "/f").stdout == data
    finally:
        c7.stop()


def test_put_with_no_spare_node_records_missing_shards(c3, tmp_path):
    """3 nodes, 2+1, one down: there is no node to hand off to, so each
    part commits with its 2 durable shards (min_shards) and records the
    third as missing; the file reads back exact with the node down and
    once it is back."""
    put(c3, rand_bytes(100000, 3), "/f", tmp_path)
    c3.kill(2)
    new = rand_bytes(3 * PART + 5, 4)
    put(c3, new, "/f", tmp_path)
    put(c3, new, "/g", tmp_path)
    for name in ("f", "g"):
        missing = missing_by_part(c3, name)
        assert len(missing) == 4 and all(bin(m).count("1") == 1 for m in missing), missing
        assert cat(c3, "/" + name).stdout == new
    c3.start(2)
    c3.wait_up()
    assert cat(c3, "/f").stdout == new
    assert cat(c3, "/g", "-o", str(PART + 17), "-n", "4096").stdout == new[PART + 17:PART + 17 + 4096]


def test_repair_rebuilds_missing_shards(c3, tmp_path):
    """Shards a write left missing (node 2 down) are rebuilt by `shardfs
    repair --once` once the node is back: before it, losing another node
    loses the file; after it, every part has its 3 shards, none missing,
    and the file reads back exact with any one node down. A second pass
    finds nothing to do. `status` says DEGRADED (exit 3) before, HEALTHY
    after."""
    data = rand_bytes(3 * PART + 5, 9)
    c3.kill(2)
    put(c3, data, "/f", tmp_path)
    c3.start(2)
    c3.wait_up()
    c3.kill(1)
    r = cat(c3, "/f", check=False, timeout=120)
    assert r.returncode == 1 and r.stdout != data  # one shard left of some part
    c3.start(1)
    c3.wait_up()
    r = c3.run("status", check=False)
    assert r.returncode == 3, r.stdout
    assert (b"health: DEGRADED: 4 parts (24.0 MiB) with shards missing, 4 (24.0 MiB) with 2 or"
            b" fewer (min_shards)") in r.stdout, r.stdout
    r = c3.run("status", "--json", check=False)
    assert r.returncode == 3
    st = json.loads(r.stdout)
    assert st["health"] == {"state": "degraded", "degraded_parts": 4,
                            "degraded_bytes": 3 * PART + 5, "at_min_shards_parts": 4,
                            "at_min_shards_bytes": 3 * PART + 5, "nodes_down": 0, "new_stores": 0,
                            "repair_workers": 0, "repair_bytes_per_s": 0,
                            "repair_seconds_left": None, "rebalance_workers": 0,
                            "rebalance_bytes_per_s": 0, "rebalance_parts_done": 0,
                            "rebalance_parts_total": 0, "rebalance_seconds_left": None,
                            "error": None}, st
    r = c3.run("repair", "--once")
    print(r.stdout.decode().strip())
    assert r.stdout.startswith(b"repaired 4 parts (4 shards rebuilt), 0 failed"), r.stdout
    assert missing_by_part(c3, "f") == [0] * 4
    assert c3.run("repair", "--once").stdout.startswith(b"repaired 0 parts")
    r = c3.run("status")
    assert b"3 of 3 nodes up" in r.stdout and b"health: HEALTHY" in r.stdout, r.stdout
    for down in (1, 2, 3):
        c3.kill(down)
        assert cat(c3, "/f", timeout=120).stdout == data, down
        c3.start(down)
        c3.wait_up()


def test_put_below_min_shards_fails_and_leaves_nothing(c3, tmp_path):
    """3 nodes, 2+1, two down: one shard per part is below min_shards (2),
    so the put fails with a clear error and the old content stays."""
    old = rand_bytes(100000, 3)
    put(c3, old, "/f", tmp_path)
    c3.kill(2)
    c3.kill(3)
    src = tmp_path / "new"
    src.write_bytes(rand_bytes(3 * PART, 4))
    r = c3.run("put", str(src), "/f", check=False)
    assert r.returncode == 1 and b"too few storage nodes answer" in r.stderr, r.stderr
    r = c3.run("put", str(src), "/g", check=False)
    assert r.returncode == 1
    c3.start(2)
    c3.start(3)
    c3.wait_up()
    assert cat(c3, "/f").stdout == old
    assert b"g" not in c3.run("ls", "/").stdout.split()


def test_flipped_byte_on_disk_is_read_around_and_reported(c3, tmp_path):
    """A byte flipped in a stored shard: reads stay exact and the corrupt
    shard is reported."""
    data = rand_bytes(2 * PART, 5)
    put(c3, data, "/f", tmp_path)
    flip_byte_in_shard(c3, data[1000:1064])
    r = cat(c3, "/f", "--stats")
    assert r.stdout == data
    assert stats(r.stderr)["corrupt_shards"] >= 1
    assert b"corrupt shard" in r.stderr
    r = cat(c3, "/f", "--stats", "-o", "1000", "-n", "64")
    assert r.stdout == data[1000:1064]
    assert stats(r.stderr)["corrupt_shards"] >= 1


def test_two_corrupt_shards_of_a_part_are_told_as_corruption(c3, tmp_path):
    """With both data shards of a 2+1 part corrupt, every node answers but
    the part cannot be read: the error says so, not that too few nodes
    answered."""
    data = rand_bytes(PART, 6)
    put(c3, data, "/f", tmp_path)
    half = PART // 2
    flipped = {flip_byte_in_shard(c3, data[1000:1064]),
               flip_byte_in_shard(c3, data[half + 1000:half + 1064])}
    assert len(flipped) == 2
    r = cat(c3, "/f", check=False, timeout=120)
    assert r.returncode == 1 and r.stdout != data
    assert b"cat /f: corrupt shards: fewer than k shards of a part are intact" in r.stderr, r.stderr
    assert b"too few" not in r.stderr and b"2 of them corrupt" in r.stderr, r.stderr


def test_frozen_node_reads_complete_and_puts_end_within_deadlines(c3, tmp_path):
    """A node stopped with SIGSTOP accepts packets but never answers: reads
    complete from the other shards in bounded time, and a put ends within
    its deadline (here, with no spare node, with a shard per part missing)."""
    data = rand_bytes(4 * PART + 7, 6)
    put(c3, data, "/f", tmp_path)
    c3.kill(1, signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        r = cat(c3, "/f", "--stats", timeout=60)
        took = time.monotonic() - t0
        assert r.stdout == data
        print(f"read with a frozen node: {took:.2f} s, {stats(r.stderr)}")
        assert took < 10
        t0 = time.monotonic()
        r = cat(c3, "/f", "-o", "12345", "-n", "4096", timeout=60)
        assert r.stdout == data[12345:12345 + 4096]
        src = tmp_path / "new"
        src.write_bytes(rand_bytes(2 * PART, 8))
        t0 = time.monotonic()
        r = c3.run("put", str(src), "/g", check=False, timeout=120)
        took = time.monotonic() - t0
        print(f"put with a frozen node: {took:.2f} s, exit {r.returncode}")
        assert r.returncode == 0 and took < 30, r.stderr
        assert [bin(m).count("1") for m in missing_by_part(c3, "g")] == [1, 1]
        assert cat(c3, "/g", timeout=60).stdout == src.read_bytes()
    finally:
        c3.kill(1, signal.SIGCONT)


@pytest.mark.skipif(os.environ.get("SHARDFS_SANITIZED") == "1",
                    reason="AddressSanitizer's shadow memory and quarantine are not the program's")
def test_writer_memory_is_bounded_for_a_1gib_stream(c3):
    """`shardfs put -` of a 1 GiB stream keeps its peak RSS under
    64 MiB + max_inflight x part x (k+m)/k."""
    bound_kib = (64 + 4 * 8 * 3 // 2) * 1024
    env = dict(os.environ, SHARDFS_CONF=c3.conf)
    head = subprocess.Popen(["head", "-c", str(1 << 30), "/dev/zero"], stdout=subprocess.PIPE)
    # GNU time reads the child's getrusage; a child forked from this (large)
    # test process would carry its high-water mark through exec.
    rss_file = os.path.join(c3.dir, "put.rss")
    put_proc = subprocess.Popen(["/usr/bin/time", "-f", "%M", "-o", rss_file,
                                 SHARDFS, "put", "-", "/stream"], stdin=head.stdout, env=env)
    head.stdout.close()
    assert put_proc.wait(timeout=600) == 0
    head.wait()
    peak_kib = int(open(rss_file).read().split()[-1])
    print(f"peak RSS of put: {peak_kib} KiB (bound {bound_kib} KiB)")
    assert peak_kib < bound_kib
    listing = c3.run("ls", "-l", "/stream").stdout.decode()
    assert f" {1 << 30} " in listing, listing
    r = cat(c3, "/stream", "-o", str((1 << 30) - 5000), "-n", "10000")
    assert r.stdout == bytes(5000)


def test_rm_and_errors(c3, tmp_path):
    """rm removes files and their shards; missing paths and directories get
    clear errors and exit codes."""
    put(c3, b"hello", "/a", tmp_path)
    assert cat(c3, "/a").stdout == b"hello"
    c3.run("rm", "/a")
    r = cat(c3, "/a", check=False)
    assert r.returncode == 1 and b"No such file or directory" in r.stderr
    r = c3.run("get", "/nope", str(tmp_path / "x"), check=False)
    assert r.returncode == 1 and not (tmp_path / "x").exists()
    r = c3.run("put", str(tmp_path / "missing"), "/b", check=False)
    assert r.returncode == 1
    r = c3.run("cat", "/", check=False)
    assert r.returncode == 1 and b"Is a directory" in r.stderr
    r = subprocess.run([SHARDFS, "ls", "/"], capture_output=True,
                       env={k: v for k, v in os.environ.items() if k != "SHARDFS_CONF"})
    assert r.returncode == 2 and b"SHARDFS_CONF" in r.stderr


def without_conf_env():
    return {k: v for k, v in os.environ.items() if k != "SHARDFS_CONF"}


def test_every_command_names_the_cluster_the_same_way(c3, tmp_path):
    """-c with the cluster file or its directory, SHARDFS_CONF with either,
    and status's one argument, all reach the same cluster; a directory
    without a cluster file and a file of random bytes are refused in one
    line that names them and echoes no byte of them."""
    put(c3, b"named", "/n", tmp_path)
    env = without_conf_env()
    for how in (["-c", c3.conf], ["-c", c3.dir]):
        r = subprocess.run([SHARDFS, "cat", *how, "/n"], capture_output=True, env=env, check=True)
        assert r.stdout == b"named", how
        r = subprocess.run([SHARDFS, "status", *how], capture_output=True, env=env, check=True)
        assert b"3 of 3 nodes up" in r.stdout
    for value in (c3.conf, c3.dir):
        r = subprocess.run([SHARDFS, "ls", "/"], capture_output=True, check=True,
                           env=dict(env, SHARDFS_CONF=value))
        assert r.stdout.split() == [b"n"], r.stdout
    r = subprocess.run([SHARDFS, "status", c3.dir], capture_output=True, env=env, check=True)
    assert b"3 of 3 nodes up" in r.stdout
    empty = tmp_path / "empty"
    empty.mkdir()
    noise = tmp_path / "noise.conf"
    noise.write_bytes(bytes(range(256)) * 4)
    for cmd in (["status"], ["ls", "/"], ["repair", "--once"]):
        r = subprocess.run([SHARDFS, *cmd, "-c", str(empty)], capture_output=True, env=env)
        assert r.returncode == 1 and r.stderr.count(b"\n") == 1, (cmd, r.stderr)
        assert b"a directory without cluster.conf" in r.stderr, r.stderr
        r = subprocess.run([SHARDFS, *cmd, "-c", str(noise)], capture_output=True, env=env)
        assert r.returncode == 1 and r.stderr.count(b"\n") == 1, (cmd, r.stderr)
        assert b"not a cluster file (binary data, not text)" in r.stderr, r.stderr
        assert all(32 <= b < 127 or b == 10 for b in r.stderr), r.stderr


def test_status_json_says_which_node_is_down(c3):
    """status --json: one object with every node; with node 3 killed it is
    "down" with the reason, the others "up" with their figures, and the
    exit status is 1 as for the table."""
    r = c3.run("status", "--json")
    st = json.loads(r.stdout)
    assert (st["nodes_up"], st["nodes_total"], st["health"]["state"]) == (3, 3, "healthy")
    assert [n["id"] for n in st["nodes"]] == [1, 2, 3]
    assert all(n["state"] == "up" and n["free_bytes"] > 0 and n["total_bytes"] >= n["free_bytes"]
               for n in st["nodes"]), st
    c3.kill(3)
    r = c3.run("status", "--json", check=False)
    assert r.returncode == 1
    st = json.loads(r.stdout)
    down = st["nodes"][2]
    assert st["nodes_up"] == 2 and down["state"] == "down" and down["error"], down
    assert "shards" not in down and st["nodes"][0]["state"] == "up"


def test_progress_bar_on_a_terminal_and_ls_owner_names(c3, tmp_path):
    """On a terminal (script(1) gives one) put and get draw a bar with the
    file's name, done / total in IEC units, the rate, elapsed time and
    ETA, and end with a summary line; without one they print nothing.
    ls -l names the owner and group."""
    src = tmp_path / "blob.bin"
    src.write_bytes(rand_bytes(40 * MIB, 3))
    env = dict(os.environ, SHARDFS_CONF=c3.conf)
    typescript = tmp_path / "typescript"
    subprocess.run(["script", "-qfec", f"{SHARDFS} put {src} /blob", str(typescript)],
                   env=env, check=True, timeout=120, stdout=subprocess.DEVNULL)
    shown = typescript.read_text(errors="replace")
    bars = [line for line in re.split(r"[\r\n]", shown) if "elapsed" in line]
    assert bars and all(f"{src}  " in b and " / 40.0 MiB" in b and re.search(r"[KMG]iB/s", b)
                        and "ETA " in b for b in bars), shown
    assert re.search(rf"{re.escape(str(src))}: 40\.0 MiB in [0-9.]+ s, [0-9.]+ [KMG]iB/s", shown)
    r = c3.run("get", "/blob", str(tmp_path / "back"))
    assert r.stderr == b"" and (tmp_path / "back").read_bytes() == src.read_bytes()
    fields = c3.run("ls", "-l", "/").stdout.decode().split()
    assert fields[2:4] == ["root", "root"] and fields[-1] == "blob", fields


def test_client_of_another_cluster_is_told_why_it_was_refused(c3, tmp_path):
    """A client whose certificate comes from another cluster's CA is told
    that the node refused its certificate (not "connection refused"), and
    the node's log names the refused peer and what was wrong with it."""
    other = tmp_path / "other"
    subprocess.run([SHARDFS, "init", "--dir", str(other), "--node", "1=127.0.0.1:9",
                    "--node", "2=127.0.0.1:10"], check=True, capture_output=True)
    conf = open(c3.conf).read()
    conf = conf.replace("cert=client.crt", f"cert={other}/client.crt", 1)
    conf = conf.replace("key=client.key", f"key={other}/client.key", 1)
    foreign = tmp_path / "foreign.conf"
    foreign.write_text(conf.replace("ca=ca.crt", f"ca={c3.dir}/ca.crt", 1))
    r = subprocess.run([SHARDFS, "status", "-c", str(foreign)], capture_output=True)
    assert r.returncode == 1
    rows = [line for line in r.stdout.decode().splitlines() if "127.0.0.1:" in line]
    assert len(rows) == 3 and all(" down " in row and "does not trust this host's certificate"
                                  in row for row in rows), r.stdout
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        log = open(os.path.join(c3.dir, "node-1.log")).read()
        if "refused the TLS handshake of 127.0.0.1" in log:
            break
        time.sleep(0.1)
    assert "refused the TLS handshake of 127.0.0.1" in log and "NOT trusted" in log, log


def test_background_scrub_finds_a_flipped_byte(c3, tmp_path):
    """A node scrubbing every second finds a byte flipped in one of its
    shards on disk: it logs the shard, counts it in its metrics, and reads
    of the file stay exact, the node answering that shard as corrupt."""
    data = rand_bytes(PART, 8)
    put(c3, data, "/f", tmp_path)
    i = flip_byte_in_shard(c3, data[5000:5064])
    c3.kill(i, signal.SIGTERM)
    port = free_tcp_ports(1)[0]
    c3.start(i, "--scrub-interval", "1", "--scrub-rate", "64", "--metrics", f"127.0.0.1:{port}")
    c3.wait_up()
    log_path = os.path.join(c3.dir, f"node-{i}.log")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and b"scrub: corrupt shard 0 of part 0" not in open(log_path, "rb").read():
        time.sleep(0.2)
    assert b"scrub: corrupt shard 0 of part 0" in open(log_path, "rb").read()
    # the pass's counters are added when it ends, a moment after the log
    pattern = r"^shardfs_scrub_passes_total [1-9](?s:.*)^shardfs_scrub_corrupt_records_total 1$"
    deadline = time.monotonic() + 30
    while True:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
            text = r.read().decode()
        done = re.search(pattern, text, re.M)
        if done or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert done, text
    r = cat(c3, "/f", "--stats")
    assert r.stdout == data and stats(r.stderr)["corrupt_shards"] >= 1
    # repair asks the node what it found bad and rewrites it there
    r = c3.run("repair", "--once")
    assert r.stdout.startswith(b"repaired 1 parts (1 shards rebuilt), 0 failed"), r.stdout
    r = cat(c3, "/f", "--stats")
    assert r.stdout == data and stats(r.stderr)["corrupt_shards"] == 0, r.stderr
    st = json.loads(c3.run("status", "--json").stdout)
    assert st["health"]["state"] == "healthy", st


def test_bad_block_found_by_a_read_is_rewritten_by_repair(c3, tmp_path):
    """A byte flipped in a shard on disk, found by a read (no scrub): the
    read is exact, the node keeps the shard as bad, `repair --once`
    rewrites it, and later reads meet no corrupt shard."""
    data = rand_bytes(PART, 12)
    put(c3, data, "/f", tmp_path)
    flip_byte_in_shard(c3, data[PART // 2 + 7000:PART // 2 + 7064])
    r = cat(c3, "/f", "--stats")
    assert r.stdout == data and stats(r.stderr)["corrupt_shards"] >= 1
    r = c3.run("repair", "--once")
    assert r.stdout.startswith(b"repaired 1 parts (1 shards rebuilt), 0 failed"), r.stdout
    r = cat(c3, "/f", "--stats")
    assert r.stdout == data and stats(r.stderr)["corrupt_shards"] == 0, r.stderr


def test_repair_daemon_heals_at_its_rate_and_stops_on_sigterm(c3, tmp_path):
    """`shardfs repair --daemon` rebuilds what a write with a node down left
    missing once the node is back, holding to --rate (6 parts of 8 MiB at
    16 MiB/s: 48 MiB cannot be read in less than about 2 s after the first
    32), and ends cleanly on SIGTERM."""
    data = rand_bytes(6 * PART, 11)
    c3.kill(2)
    put(c3, data, "/f", tmp_path)
    assert all(missing_by_part(c3, "f")), "the write should have left shards missing"
    c3.start(2)
    c3.wait_up()
    log = open(tmp_path / "repair.log", "wb")
    start = time.monotonic()
    daemon = subprocess.Popen([SHARDFS, "repair", "--daemon", "-c", c3.dir, "--interval", "1",
                               "--rate", "16"], stdout=log, stderr=log, start_new_session=True)
    try:
        deadline = start + 120
        while any(missing_by_part(c3, "f")) and time.monotonic() < deadline:
            time.sleep(0.1)
        took = time.monotonic() - start
        assert not any(missing_by_part(c3, "f"))
        assert took >= 1.9, took
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=30) == 0
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
        log.close()
    text = open(tmp_path / "repair.log", "rb").read()
    assert b"repair: 6 parts repaired (6 shards)" in text and b"repair daemon stopped" in text, text
    c3.kill(1)
    assert cat(c3, "/f", timeout=120).stdout == data
