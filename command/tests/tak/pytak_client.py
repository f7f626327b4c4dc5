#!/usr/bin/env python3
"""A pytak TAK client for the interop tests (command/tests/tak_interop.rs).

Connects to a TAK server with pytak, prints {"ready": true} once connected, optionally sends
CoT events built by pytak, then prints every event it receives as one JSON line:

    {"uid": ..., "type": ..., "lat": ..., "lon": ..., "callsign": ..., "xml": ...}

It exits after --listen seconds, or as soon as it has received every uid given with --until.

    pytak_client.py tcp://127.0.0.1:8087 --send UID,LAT,LON,TYPE,CALLSIGN[,STALE_S] --until UID
    pytak_client.py tls://localhost:8089 --cert c.crt --key c.key --ca ca.crt ...

STALE_S is the stale time in seconds from now (default 120); a negative value makes an event
that is already stale (start and time are moved before it, so the event stays valid CoT).
"""

import argparse
import asyncio
import configparser
import datetime
import json
import sys
import warnings
import xml.etree.ElementTree as ET

# pytak warns at import that its optional aiohttp extra (certificate enrollment) is missing.
warnings.filterwarnings("ignore", message=".*aiohttp.*")
import pytak  # noqa: E402


def emit(obj):
    print(json.dumps(obj), flush=True)


def build_event(spec):
    """UID,LAT,LON,TYPE,CALLSIGN[,STALE_S] -> serialized CoT (with pytak's XML declaration)."""
    parts = spec.split(",")
    uid, lat, lon, cot_type, callsign = parts[:5]
    stale_s = int(parts[5]) if len(parts) > 5 else 120
    event = pytak.gen_cot_xml(
        lat=float(lat),
        lon=float(lon),
        uid=uid,
        cot_type=cot_type,
        callsign=callsign,
        stale=max(stale_s, 1),
    )
    if stale_s < 0:
        now = datetime.datetime.now(datetime.timezone.utc)
        fmt = lambda t: t.strftime(pytak.W3C_XML_DATETIME)  # noqa: E731
        stale = now + datetime.timedelta(seconds=stale_s)
        start = stale - datetime.timedelta(seconds=10)
        event.set("time", fmt(start))
        event.set("start", fmt(start))
        event.set("stale", fmt(stale))
    return pytak.serialize_cot(event)


def describe(data):
    """A received CoT document as a JSON-able dict (or the raw text if it does not parse)."""
    text = data.decode("utf-8", "replace")
    # pytak reads up to "</event>"; anything before "<event" (declarations) is dropped here.
    start = text.find("<event")
    doc = text[start:] if start >= 0 else text
    try:
        root = ET.fromstring(doc)
    except ET.ParseError as exc:
        return {"unparsed": doc, "error": str(exc)}
    point = root.find("point")
    contact = root.find("detail/contact")
    return {
        "uid": root.get("uid"),
        "type": root.get("type"),
        "stale": root.get("stale"),
        "lat": float(point.get("lat")) if point is not None else None,
        "lon": float(point.get("lon")) if point is not None else None,
        "callsign": contact.get("callsign") if contact is not None else None,
        "xml": doc,
    }


async def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("url", help="COT_URL, e.g. tcp://127.0.0.1:8087 or tls://localhost:8089")
    ap.add_argument("--send", action="append", default=[], help="UID,LAT,LON,TYPE,CALLSIGN[,STALE_S]")
    ap.add_argument("--until", action="append", default=[], help="exit once this uid was received")
    ap.add_argument("--listen", type=float, default=30.0, help="seconds to listen at most")
    ap.add_argument("--cert", help="client certificate (PEM) for tls://")
    ap.add_argument("--key", help="client key (PEM) for tls://")
    ap.add_argument("--ca", help="CA certificate (PEM) for tls://")
    ap.add_argument("--server-name", default="localhost", help="expected server certificate name")
    args = ap.parse_args()

    config = {"COT_URL": args.url}
    if args.cert:
        config.update(
            {
                "PYTAK_TLS_CLIENT_CERT": args.cert,
                "PYTAK_TLS_CLIENT_KEY": args.key,
                "PYTAK_TLS_CLIENT_CAFILE": args.ca,
                "PYTAK_TLS_SERVER_EXPECTED_HOSTNAME": args.server_name,
            }
        )
    # pytak reads its settings from a ConfigParser section.
    parser = configparser.ConfigParser(interpolation=None)
    parser["pytak"] = config
    section = parser["pytak"]

    reader, writer = await pytak.protocol_factory(section)
    rx = pytak.RXWorker(asyncio.Queue(), section, reader)
    tx = pytak.TXWorker(asyncio.Queue(), section, writer)
    emit({"ready": True})

    for spec in args.send:
        await tx.send_data(build_event(spec))

    waiting = set(args.until)
    deadline = asyncio.get_running_loop().time() + args.listen
    while True:
        remaining = deadline - asyncio.get_running_loop().time()
        if remaining <= 0 or (args.until and not waiting):
            break
        try:
            data = await asyncio.wait_for(rx.readcot(), timeout=remaining)
        except asyncio.TimeoutError:
            break
        if not data:
            emit({"closed": True})
            break
        info = describe(data)
        emit(info)
        waiting.discard(info.get("uid"))

    writer.close()
    try:
        await writer.wait_closed()
    except (ConnectionError, OSError):
        pass
    return 0 if not waiting else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
