"""Local shardfs clusters for integration tests: `shardfs init`, real
`shardfs node` processes on 127.0.0.1 with free ports, stopped by pid."""

import os
import signal
import socket
import subprocess
import time

SHARDFS = os.environ.get("SHARDFS_BIN", "shardfs")


def free_udp_ports(n):
    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class Cluster:
    def __init__(self, root, nodes=3, ec="2+1"):
        self.dir = str(root)
        self.n = nodes
        self.procs = {}
        ports = free_udp_ports(nodes)
        args = [SHARDFS, "init", "--dir", self.dir, "--ec", ec]
        for i, port in enumerate(ports, 1):
            args += ["--node", f"{i}=127.0.0.1:{port}"]
        subprocess.run(args, check=True, stdout=subprocess.DEVNULL)
        self.conf = os.path.join(self.dir, "cluster.conf")
        for i in range(1, nodes + 1):
            self.start(i)
        self.wait_up()

    def start(self, i):
        log = open(os.path.join(self.dir, f"node-{i}.log"), "ab")
        self.procs[i] = subprocess.Popen(
            [SHARDFS, "node", "--config", self.conf, "--id", str(i)],
            stdout=log, stderr=log, start_new_session=True)

    def wait_up(self, timeout=20):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if subprocess.run([SHARDFS, "status", self.conf], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL).returncode == 0:
                return
            time.sleep(0.2)
        raise TimeoutError("cluster did not come up")

    def kill(self, i, sig=signal.SIGKILL):
        self.procs[i].send_signal(sig)
        if sig in (signal.SIGKILL, signal.SIGTERM):
            self.procs[i].wait(timeout=30)

    def node_dir(self, i):
        return os.path.join(self.dir, f"node-{i}")

    def run(self, *args, input=None, timeout=300, check=True):
        env = dict(os.environ, SHARDFS_CONF=self.conf)
        return subprocess.run([SHARDFS, *args], input=input, capture_output=True, env=env,
                              timeout=timeout, check=check)

    def stop(self):
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGCONT)
                p.terminate()
        for p in self.procs.values():
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
