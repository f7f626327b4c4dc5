#!/usr/bin/env python3
"""CoT load for command-bench (command/bench): pytak clients sending as fast as they can.

Opens --connections pytak connections to a TAK server (pytak.protocol_factory) and, on each,
sends CoT events built by pytak (gen_cot_xml + serialize_cot) through pytak's TXWorker for
--duration seconds, then prints one JSON line:

    {"sent": N, "seconds": S, "rate": N/S, "per_connection": [...]}

Every connection cycles through --uids distinct uids (bench-<conn>-<k>), like a fleet of TAK
clients moving, so the receiver holds a bounded set of records. The pool is rebuilt with fresh
times every --refresh seconds (pytak's default stale: time + 120 s), which keeps generation off
the send path. A progress line {"t": seconds, "sent": N} is printed every second.

    pytak_load.py tcp://127.0.0.1:8087 --duration 60 --connections 2 --uids 500
"""

import argparse
import asyncio
import configparser
import json
import random
import sys
import time
import warnings
from importlib.metadata import version

# pytak warns at import that its optional aiohttp extra (certificate enrollment) is missing.
warnings.filterwarnings("ignore", message=".*aiohttp.*")
import pytak  # noqa: E402


def emit(obj):
    print(json.dumps(obj), flush=True)


def build_pool(conn, uids, rng):
    pool = []
    for k in range(uids):
        event = pytak.gen_cot_xml(
            lat=round(33.0 + rng.random() * 3.0, 6),
            lon=round(129.0 + rng.random() * 3.0, 6),
            uid=f"bench-{conn}-{k}",
            cot_type="a-f-G-U-C",
            callsign=f"Bench {conn}-{k}",
            stale=120,
        )
        pool.append(pytak.serialize_cot(event))
    return pool


async def sender(url, conn, args, counts, stop_at):
    parser = configparser.ConfigParser(interpolation=None)
    parser["pytak"] = {"COT_URL": url}
    section = parser["pytak"]
    reader, writer = await pytak.protocol_factory(section)
    tx = pytak.TXWorker(asyncio.Queue(), section, writer)
    # Read (and drop) what the server sends us: the server relays other clients' events and
    # replays persisted ones. Left unread, they fill our receive buffer, and closing a socket
    # with unread data resets the connection, which makes the server drop what it has not yet
    # read from us.
    drain = asyncio.ensure_future(discard(reader))
    rng = random.Random(conn)
    loop = asyncio.get_running_loop()
    pool = build_pool(conn, args.uids, rng)
    refreshed = loop.time()
    i = 0
    while loop.time() < stop_at:
        if loop.time() - refreshed >= args.refresh:
            pool = build_pool(conn, args.uids, rng)
            refreshed = loop.time()
        await tx.send_data(pool[i % len(pool)])
        i += 1
        counts[conn] = i
    writer.close()
    try:
        await writer.wait_closed()
    except (ConnectionError, OSError):
        pass
    drain.cancel()


async def discard(reader):
    try:
        while await reader.read(65536):
            pass
    except (ConnectionError, OSError):
        pass


async def progress(counts, start, stop_at):
    loop = asyncio.get_running_loop()
    while loop.time() < stop_at:
        await asyncio.sleep(1.0)
        emit({"t": round(time.monotonic() - start, 3), "sent": sum(counts)})


async def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("url", help="COT_URL, e.g. tcp://127.0.0.1:8087")
    ap.add_argument("--duration", type=float, default=60.0, help="seconds to send")
    ap.add_argument("--connections", type=int, default=1, help="pytak connections (each also receives the others' events from the server)")
    ap.add_argument("--uids", type=int, default=500, help="distinct uids per connection")
    ap.add_argument("--refresh", type=float, default=1.0, help="seconds between pool rebuilds")
    args = ap.parse_args()

    counts = [0] * args.connections
    start = time.monotonic()
    stop_at = asyncio.get_running_loop().time() + args.duration
    emit({"ready": True})
    tasks = [sender(args.url, c, args, counts, stop_at) for c in range(args.connections)]
    await asyncio.gather(progress(counts, start, stop_at), *tasks)
    seconds = time.monotonic() - start
    emit(
        {
            "sent": sum(counts),
            "seconds": round(seconds, 3),
            "rate": sum(counts) / seconds,
            "per_connection": counts,
            "pytak": version("pytak"),
        }
    )
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
