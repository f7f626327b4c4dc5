#!/usr/bin/env python3
"""Decode throughput of pyais on one core: every line of an NMEA file through pyais's stream
reader (which joins fragments and parses tag blocks, like our Decoder), repeated for at least the
given number of seconds. Prints one JSON object, in the shape of `examples/ais_bench.rs`.

    python3 bench/pyais_bench.py FILE [SECONDS]
"""
import json
import sys
import time

import pyais
from pyais.stream import IterMessages


def main():
    path = sys.argv[1]
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 3.0
    with open(path, "rb") as f:
        lines = [line.rstrip(b"\r\n") for line in f if line.strip()]

    passes = messages = refused = 0
    wall0, cpu0 = time.perf_counter(), time.process_time()
    while time.perf_counter() - wall0 < seconds:
        for sentence in IterMessages(lines):
            try:
                sentence.decode()
                messages += 1
            except Exception:
                refused += 1
        passes += 1
    wall = time.perf_counter() - wall0
    cpu = time.process_time() - cpu0
    print(json.dumps({
        "decoder": f"pyais {pyais.__version__}",
        "file": path,
        "passes": passes,
        "lines": passes * len(lines),
        "messages": messages,
        "refused": refused,
        "seconds": round(wall, 3),
        "cpu_seconds": round(cpu, 3),
        "lines_per_s": round(passes * len(lines) / wall),
        "messages_per_s": round(messages / wall),
        "messages_per_cpu_s": round(messages / cpu),
    }))


if __name__ == "__main__":
    main()
