"""Writers and readers of numbered chunks on stream files, run as separate
processes by test_streams.py so that they share no interpreter lock.

A chunk is CHUNK bytes: a header (magic, writer id, sequence number, the
CLOCK_MONOTONIC time of its write in ns) and a body derived from writer
and sequence, so a reader can tell a whole chunk from a torn one.

    stream_tool.py write PATH --writer W --seconds S [--every-ms M] [--count N]
                          [--hold-after N --hold-s S]
    stream_tool.py read PATH --out FILE.json [--pause-after N --pause-s S]

The reader's JSON: the chunks it got in order as [writer, seq] pairs, the
bytes before its first chunk boundary (a reader that joined mid-chunk),
write-to-read latencies in microseconds, and how it ended (eof or an errno).
"""

import argparse
import errno
import json
import os
import struct
import sys
import time

CHUNK = 64 * 1024
MAGIC = b"SFSCHUNK"
HEADER = struct.Struct("<8sQQQ")


def body(writer, seq):
    unit = struct.pack("<QQ", writer, seq)
    n = (CHUNK - HEADER.size) // len(unit) + 1
    return (unit * n)[:CHUNK - HEADER.size]


def chunk(writer, seq):
    return HEADER.pack(MAGIC, writer, seq, time.monotonic_ns()) + body(writer, seq)


def parse(buf, start):
    """Whole chunks of buf from start: [(writer, seq, t_ns)], next offset.
    Raises ValueError on a torn or foreign chunk."""
    out = []
    while len(buf) - start >= CHUNK:
        magic, writer, seq, t_ns = HEADER.unpack_from(buf, start)
        if magic != MAGIC or buf[start + HEADER.size:start + CHUNK] != body(writer, seq):
            raise ValueError(f"torn chunk at byte {start}")
        out.append((writer, seq, t_ns))
        start += CHUNK
    return out, start


def first_boundary(buf):
    """Where the first whole chunk starts in what a reader got first."""
    i = buf.find(MAGIC)
    while i >= 0:
        if len(buf) - i < HEADER.size:
            return None
        _, writer, seq, _ = HEADER.unpack_from(buf, i)
        want = body(writer, seq)[:max(0, min(len(buf) - i - HEADER.size, 64))]
        if buf[i + HEADER.size:i + HEADER.size + len(want)] == want:
            return i
        i = buf.find(MAGIC, i + 1)
    return None


def write(args):
    fd = os.open(args.path, os.O_WRONLY)
    deadline = time.monotonic() + args.seconds
    seq = 0
    try:
        while time.monotonic() < deadline and (args.count is None or seq < args.count):
            data = chunk(args.writer, seq)
            if os.write(fd, data) != len(data):
                raise OSError(errno.EIO, "short write")
            seq += 1
            if seq == args.hold_after:
                time.sleep(args.hold_s)
            if args.every_ms:
                time.sleep(args.every_ms / 1000)
    except OSError as e:
        print(json.dumps({"written": seq, "errno": e.errno}))
        return 1
    finally:
        os.close(fd)
    print(json.dumps({"written": seq}))
    return 0


def read(args):
    fd = os.open(args.path, os.O_RDONLY)
    buf = bytearray()
    start = None
    got, lat = [], []
    end = "eof"
    try:
        while True:
            data = os.read(fd, 1 << 20)
            now = time.monotonic_ns()
            if not data:
                break
            buf += data
            if start is None:
                start = first_boundary(bytes(buf))
                if start is None:
                    continue
            chunks, start = parse(buf, start)
            for writer, seq, t_ns in chunks:
                got.append([writer, seq])
                lat.append((now - t_ns) // 1000)
            del buf[:start]
            start = 0
            if args.pause_after is not None and len(got) >= args.pause_after:
                args.pause_after = None
                time.sleep(args.pause_s)
    except OSError as e:
        end = e.errno
    finally:
        os.close(fd)
    with open(args.out, "w") as f:
        json.dump({"chunks": got, "latency_us": lat, "end": end, "tail": len(buf)}, f)
    return 0


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("write")
    w.add_argument("path")
    w.add_argument("--writer", type=int, default=0)
    w.add_argument("--seconds", type=float, default=10)
    w.add_argument("--every-ms", type=float, default=0)
    w.add_argument("--count", type=int)
    w.add_argument("--hold-after", type=int)
    w.add_argument("--hold-s", type=float, default=0)
    r = sub.add_parser("read")
    r.add_argument("path")
    r.add_argument("--out", required=True)
    r.add_argument("--pause-after", type=int)
    r.add_argument("--pause-s", type=float, default=0)
    args = p.parse_args()
    return write(args) if args.cmd == "write" else read(args)


if __name__ == "__main__":
    sys.exit(main())
