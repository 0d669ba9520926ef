"""Runs `shardfs bench wal --json` on a small volume and checks that it prints
one JSON object with every documented field, with sane values."""
import json
import subprocess
import sys
import tempfile

FIELDS = {
    "bench", "size_mib", "dd_write_mibs", "dd_direct_mibs", "append_mibs", "append_ratio",
    "dd_read_mibs", "read_mibs", "read_ratio", "concurrent_writers",
    "concurrent_record_kib", "concurrent_mibs", "concurrent_ratio",
    "append_records_per_sync", "concurrent_records_per_sync", "peak_rss_mib",
}


def main():
    shardfs = sys.argv[1]
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run(
            [shardfs, "bench", "wal", "--size", "32", "--writers", "8", "--json",
             "--dir", tmp],
            check=True, capture_output=True, text=True, timeout=300).stdout
    lines = out.strip().splitlines()
    assert len(lines) == 1, out
    figures = json.loads(lines[0])
    missing = FIELDS - figures.keys()
    assert not missing, f"missing fields: {missing}"
    assert figures["bench"] == "wal" and figures["size_mib"] == 32
    for key in ("dd_write_mibs", "append_mibs", "read_mibs", "concurrent_mibs"):
        assert figures[key] > 0, (key, figures[key])
    assert abs(figures["append_ratio"] - figures["append_mibs"] / figures["dd_write_mibs"]) < 0.01
    assert figures["append_records_per_sync"] >= 1
    print("bench wal --json: ok", figures)


if __name__ == "__main__":
    main()
