"""Runs `shardfs bench fs --json` small (a real cluster and a real mount)
and checks that it prints one JSON object with every documented field,
with figures above zero, and that it leaves nothing behind."""
import json
import os
import subprocess
import sys
import tempfile

POSITIVE = [
    "write_mib_s", "cp_write_mib_s", "read_mib_s", "cp_read_mib_s", "put_mib_s", "get_mib_s",
    "write_ratio", "read_ratio", "local_write_mib_s", "local_cp_write_mib_s",
    "local_read_mib_s", "local_cp_read_mib_s", "files_per_s", "local_files_per_s",
    "read_files_per_s", "local_read_files_per_s", "ls_s", "local_ls_s",
    "mount_peak_rss_mib", "mount_copy_rss_mib", "mount_idle_rss_mib", "mount_after_rss_mib",
    "mount_after_read_rss_mib", "put_rss_mib", "get_rss_mib",
    "idle_fdatasync_us", "tar_fdatasync_us", "local_tar_fdatasync_us",
]


def main():
    shardfs = sys.argv[1]
    with tempfile.TemporaryDirectory(dir=os.getcwd()) as tmp:
        run = subprocess.run(
            [shardfs, "bench", "fs", "--size", "32", "--files", "200", "--entries", "500",
             "--json", "--dir", tmp],
            capture_output=True, text=True, timeout=280)
        assert run.returncode == 0, f"exit {run.returncode}: {run.stderr}"
        out = run.stdout
        assert os.listdir(tmp) == [], f"left behind: {os.listdir(tmp)}"
    lines = out.strip().splitlines()
    assert len(lines) == 1, out
    d = json.loads(lines[0])
    assert d["bench"] == "fs" and d["size_mib"] == 32, d
    assert d["files"] == 200 and d["ls_entries"] == 500, d
    for key in POSITIVE:
        assert d[key] > 0, (key, d.get(key))
    assert len(d["node_peak_rss_mib"]) == 3 and min(d["node_peak_rss_mib"]) > 0, d
    assert abs(d["write_ratio"] - d["write_mib_s"] / d["put_mib_s"]) < 0.01, d
    assert d["mount_peak_rss_mib"] >= d["mount_idle_rss_mib"], d
    for key in ("tar_calm_wait_s", "local_tar_calm_wait_s"):  # bounded at 60 s
        assert 0 <= d[key] < 70, (key, d[key])
    print("bench fs --json: ok", d)


if __name__ == "__main__":
    main()
