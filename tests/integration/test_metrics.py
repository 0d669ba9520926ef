"""Prometheus metrics of a node and a mount, scraped by Debian's real
`prometheus` server: both targets up, counters that rise after a write,
and `promtool check metrics` clean on both endpoints."""

import json
import os
import re
import shutil
import signal
import subprocess
import time
import urllib.parse
import urllib.request

import pytest

from cluster import Mount, free_tcp_ports

PROMETHEUS = shutil.which("prometheus")
PROMTOOL = shutil.which("promtool")

pytestmark = pytest.mark.skipif(not (PROMETHEUS and PROMTOOL),
                                reason="Debian's prometheus package is not installed")


def get(url, timeout=10):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read()


def wait_for(what, fn, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            v = fn()
            if v:
                return v
        except OSError:
            pass
        time.sleep(0.25)
    raise TimeoutError(what)


class Prometheus:
    """A prometheus server on 127.0.0.1 scraping targets every second,
    its data in a temporary directory, stopped by its pid."""

    def __init__(self, root, targets):
        self.port = free_tcp_ports(1)[0]
        root.mkdir()
        jobs = "".join(f"  - job_name: {job}\n    static_configs:\n"
                       f"      - targets: ['{addr}']\n" for job, addr in targets.items())
        conf = root / "prometheus.yml"
        conf.write_text("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
                        f"scrape_configs:\n{jobs}")
        self.log = open(root / "prometheus.log", "wb")
        self.proc = subprocess.Popen(
            [PROMETHEUS, f"--config.file={conf}", f"--storage.tsdb.path={root / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}"],
            stdout=self.log, stderr=self.log, start_new_session=True)
        wait_for("prometheus ready", lambda: get(self.url("/-/ready")))

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def api(self, path, **params):
        body = json.loads(get(self.url(f"/api/v1/{path}?{urllib.parse.urlencode(params)}")))
        assert body["status"] == "success", body
        return body["data"]

    def value(self, query):
        """The query's one sample value, or None before there is one."""
        result = self.api("query", query=query)["result"]
        return float(result[0]["value"][1]) if result else None

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


DASHBOARD = os.path.join(os.path.dirname(__file__), "..", "..", "tools", "grafana",
                         "shardfs-dashboard.json")


def dashboard_exprs():
    with open(DASHBOARD) as f:
        return [t["expr"] for p in json.load(f)["panels"] for t in p["targets"]]


def dashboard_metric_names():
    names = set()
    for expr in dashboard_exprs():
        for name in re.findall(r"\b(shardfs_[a-z_]+|process_[a-z_]+)", expr):
            names.add(re.sub(r"_(bucket|sum|count)$", "", name))
    return names


def promtool_check(url):
    text = get(url)
    r = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True,
                       timeout=60)
    assert r.returncode == 0 and not r.stdout.strip() and not r.stderr.strip(), (
        url, r.stdout, r.stderr)
    return text.decode()


def test_prometheus_scrapes_a_node_and_a_mount(cluster, tmp_path):
    node_port, mount_port = free_tcp_ports(2)
    node_addr, mount_addr = f"127.0.0.1:{node_port}", f"127.0.0.1:{mount_port}"
    cluster.kill(1, signal.SIGTERM)
    cluster.start(1, "--metrics", node_addr)
    cluster.wait_up()
    m = Mount(cluster.conf, tmp_path / "mnt", f"metrics={mount_addr}")
    prom = None
    try:
        node_text = promtool_check(f"http://{node_addr}/metrics")
        mount_text = promtool_check(f"http://{mount_addr}/metrics")
        assert "# TYPE shardfs_wal_fsync_duration_seconds histogram" in node_text
        assert "# TYPE shardfs_fuse_request_duration_seconds histogram" in mount_text
        prom = Prometheus(tmp_path / "prom", {"node": node_addr, "mount": mount_addr})

        def both_up():
            targets = prom.api("targets")["activeTargets"]
            return len(targets) == 2 and all(t["health"] == "up" for t in targets)
        wait_for("both targets up", both_up)
        written = 'shardfs_fuse_written_bytes_total{job="mount"}'
        puts = 'shardfs_node_requests_total{job="node",op="put"}'
        before = wait_for("a first scrape", lambda: prom.value(written) is not None and
                          (prom.value(written), prom.value(puts)))
        data = os.urandom(9 << 20)
        with open(f"{m.path}/f", "wb") as f:
            f.write(data)
            os.fsync(f.fileno())
        wait_for("the counters rose", lambda: prom.value(written) >= before[0] + len(data) and
                 prom.value(puts) > before[1])
        assert open(f"{m.path}/f", "rb").read() == data
        lat = prom.value('sum(shardfs_fuse_request_duration_seconds_count{job="mount",op="write"})')
        assert lat and lat >= 9, lat
        # every series the dashboard queries is served by a node or a mount
        for expr in dashboard_exprs():
            assert prom.api("query", query=expr)["result"] is not None, expr
        served = get(f"http://{node_addr}/metrics").decode() + get(f"http://{mount_addr}/metrics").decode()
        for name in dashboard_metric_names():
            assert f"\n{name}" in served or f"\n# TYPE {name} " in served, name
    finally:
        if prom:
            prom.stop()
        m.close()


def test_metrics_address_refused_when_bad(cluster, tmp_path):
    """A metrics address that is no HOST:PORT stops the node and the mount
    at start, with one line naming it."""
    r = subprocess.run([os.environ.get("SHARDFS_BIN", "shardfs"), "node", "-c", cluster.conf,
                        "--id", "1", "--metrics", "localhost"], capture_output=True, timeout=60)
    assert r.returncode == 2 and b"metrics address localhost: not HOST:PORT" in r.stderr, r.stderr
    with pytest.raises(RuntimeError, match="metrics address nowhere:1"):
        Mount(cluster.conf, tmp_path / "mnt", "metrics=nowhere:1").close()
