#!/usr/bin/env python3
"""Decodes the AIS test corpora with pyais and writes what it decoded, in the conventions of
`mizugiwa_satellite::ais`, to testdata/ais/pyais-expected.json.

The Rust test `tests/ais_pyais.rs` decodes the same files line by line and compares every field
of every message with this file. Run it again after changing the corpus or upgrading pyais:

    python3 -m venv /tmp/pyais-venv && /tmp/pyais-venv/bin/pip install pyais
    /tmp/pyais-venv/bin/python satellite/scripts/pyais_expected.py

Conventions (so the comparison is one of values, not of representations):
- every "not available" sentinel and every value outside its domain is null (lat 91, lon 181,
  speed 102.3, course >= 360, heading >= 360, nav status 15, EPFD 0, ship type 0, IMO 0, ...);
- a position is null unless both latitude and longitude are on the globe;
- dimensions are null when all four are 0;
- the rate of turn is null (-128), "right"/"left" (+/-127 without turn indicator), or pyais's
  value in degrees per minute rounded to an integer;
- the second field keeps its raw 6-bit code (60 = none, 61-63 = positioning mode).
"""
import json
import pathlib
import re
import sys

import pyais
from pyais import decode
from pyais.messages import NMEAMessage

HERE = pathlib.Path(__file__).resolve().parent
DATA = HERE.parent / "testdata" / "ais"
FILES = [
    "libais-tagblock.nmea",
    "libais-typeexamples.nmea",
    "libais-test.aivdm",
    "pyais-nmea_data_sample.txt",
]
SUPPORTED = {1, 2, 3, 4, 5, 11, 18, 19, 21, 24, 27}
# The sentence alone: tag blocks and receiver extras after the checksum are cut off, because
# pyais's checksum check and fragment parsing do not expect them (its tag block parsing is
# compared separately, against libais's expected JSON).
SENTENCE = re.compile(r"![A-Z]{2}VD[MO],[^*]*\*[0-9A-Fa-f]{2}")


def i(v):
    """Enum or int to int."""
    return None if v is None else int(v)


def position(lat, lon):
    if lat is None or lon is None or not (-90 <= lat <= 90 and -180 <= lon <= 180):
        return None, None
    return lat, lon


def speed(v):
    return None if v is None or v >= 102.3 else v


def course(v):
    return None if v is None or v >= 360 else v


def heading(v):
    return None if v is None or v >= 360 else int(v)


def text(v):
    return v if v else None


def code_or_none(v, none_code):
    v = i(v)
    return None if v == none_code else v


def nav_status(v):
    return code_or_none(v, 15)


def rng(v, lo, hi):
    v = i(v)
    return v if v is not None and lo <= v <= hi else None


def dims(m):
    d = [int(m.to_bow), int(m.to_stern), int(m.to_port), int(m.to_starboard)]
    return None if d == [0, 0, 0, 0] else d


def turn(v):
    v = float(v) if v is not None else None
    if v is None or v == -128:
        return None
    if v == 127:
        return "right"
    if v == -127:
        return "left"
    return int(v)


def normalize(m):
    t = int(m.msg_type)
    out = {"msg_type": t, "repeat": int(m.repeat), "mmsi": int(m.mmsi)}
    if t in (1, 2, 3):
        lat, lon = position(m.lat, m.lon)
        manoeuvre = {1: False, 2: True}.get(i(m.maneuver))
        out.update(nav_status=nav_status(m.status), rot=turn(m.turn), sog=speed(m.speed),
                   accuracy=bool(m.accuracy), lat=lat, lon=lon, cog=course(m.course),
                   heading=heading(m.heading), second=int(m.second), manoeuvre=manoeuvre,
                   raim=bool(m.raim), radio=int(m.radio))
    elif t in (4, 11):
        lat, lon = position(m.lat, m.lon)
        out.update(year=None if m.year == 0 else int(m.year), month=rng(m.month, 1, 12),
                   day=rng(m.day, 1, 31), hour=rng(m.hour, 0, 23), minute=rng(m.minute, 0, 59),
                   second=rng(m.second, 0, 59), accuracy=bool(m.accuracy), lat=lat, lon=lon,
                   epfd=code_or_none(m.epfd, 0), raim=bool(m.raim), radio=int(m.radio))
    elif t == 5:
        eta = [rng(m.month, 1, 12), rng(m.day, 1, 31), rng(m.hour, 0, 23), rng(m.minute, 0, 59)]
        out.update(ais_version=int(m.ais_version), imo=None if m.imo == 0 else int(m.imo),
                   callsign=text(m.callsign), name=text(m.shipname),
                   ship_type=code_or_none(m.ship_type, 0), dims=dims(m),
                   epfd=code_or_none(m.epfd, 0), eta=None if eta == [None] * 4 else eta,
                   draught=None if m.draught == 0 else m.draught,
                   destination=text(m.destination), dte_ready=not m.dte)
    elif t == 18:
        lat, lon = position(m.lat, m.lon)
        out.update(sog=speed(m.speed), accuracy=bool(m.accuracy), lat=lat, lon=lon,
                   cog=course(m.course), heading=heading(m.heading), second=int(m.second),
                   cs=bool(m.cs), display=bool(m.display), dsc=bool(m.dsc), band=bool(m.band),
                   msg22=bool(m.msg22), assigned=bool(m.assigned), raim=bool(m.raim),
                   radio=int(m.radio))
    elif t == 19:
        lat, lon = position(m.lat, m.lon)
        out.update(sog=speed(m.speed), accuracy=bool(m.accuracy), lat=lat, lon=lon,
                   cog=course(m.course), heading=heading(m.heading), second=int(m.second),
                   name=text(m.shipname), ship_type=code_or_none(m.ship_type, 0), dims=dims(m),
                   epfd=code_or_none(m.epfd, 0), raim=bool(m.raim), dte_ready=not m.dte,
                   assigned=bool(m.assigned))
    elif t == 21:
        lat, lon = position(m.lat, m.lon)
        out.update(aid_type=code_or_none(m.aid_type, 0), name=text(m.full_name),
                   accuracy=bool(m.accuracy), lat=lat, lon=lon, dims=dims(m),
                   epfd=code_or_none(m.epfd, 0), second=int(m.second),
                   off_position=bool(m.off_position), raim=bool(m.raim),
                   virtual_aid=bool(m.virtual_aid), assigned=bool(m.assigned))
    elif t == 24:
        out["part"] = int(m.partno)
        if m.partno == 0:
            out.update(name=text(m.shipname))
        else:
            out.update(ship_type=code_or_none(m.ship_type, 0), vendor_id=text(m.vendorid),
                       model=int(m.model), serial=int(m.serial), callsign=text(m.callsign))
            if hasattr(m, "mothership_mmsi"):
                out.update(dims=None, mothership_mmsi=int(m.mothership_mmsi) or None)
            else:
                out.update(dims=dims(m), mothership_mmsi=None)
    elif t == 27:
        lat, lon = position(m.lat, m.lon)
        out.update(accuracy=bool(m.accuracy), raim=bool(m.raim), nav_status=nav_status(m.status),
                   lat=lat, lon=lon, sog=None if m.speed >= 63 else m.speed,
                   cog=None if m.course >= 360 else m.course, latency=bool(m.gnss))
    return out


def decode_file(path):
    """One entry per line that pyais refuses or that completes a message, keyed by line."""
    entries = []
    pending = {}
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        found = SENTENCE.search(raw)
        if not raw.strip():
            continue
        if found is None:
            entries.append({"line": number, "error": "no sentence"})
            continue
        line = found.group(0)
        try:
            sentence = NMEAMessage.from_string(line)
        except Exception as e:  # pyais refuses the line itself
            entries.append({"line": number, "error": type(e).__name__})
            continue
        key = (sentence.channel, sentence.seq_id, sentence.frag_cnt)
        if sentence.frag_cnt == 1:
            group = [line]
        elif sentence.frag_num == 1:
            pending[key] = [line]
            continue
        else:
            group = pending.get(key)
            if group is None or len(group) + 1 != sentence.frag_num:
                entries.append({"line": number, "error": "fragment sequence"})
                continue
            group.append(line)
            if sentence.frag_num != sentence.frag_cnt:
                continue
            del pending[key]
        try:
            message = decode(*group, error_if_checksum_invalid=True)
        except Exception as e:
            entries.append({"line": number, "error": type(e).__name__})
            continue
        bits = sum(6 * len(s.split(",")[5]) for s in group) - int(group[-1].split(",")[6][0])
        if int(message.msg_type) in SUPPORTED:
            try:
                entries.append({"line": number, "bits": bits, "message": normalize(message)})
            except TypeError:
                # pyais leaves fields past the end of a short payload as None.
                entries.append({"line": number, "bits": bits, "error": "incomplete"})
        else:
            entries.append({"line": number, "unsupported": int(message.msg_type)})
    return entries


def main():
    out = {
        "generator": "satellite/scripts/pyais_expected.py",
        "pyais_version": pyais.__version__,
        "files": {name: decode_file(DATA / name) for name in FILES},
    }
    # `pyais_expected.py [OUT]`: the test suite writes a fresh decode elsewhere and compares.
    target = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else DATA / "pyais-expected.json"
    # One entry per line of text, so that a regenerated file diffs readably.
    files = ",\n".join(
        f" {json.dumps(name)}: [\n" + ",\n".join("  " + json.dumps(e, sort_keys=True) for e in entries) + "\n ]"
        for name, entries in out["files"].items()
    )
    header = json.dumps({k: v for k, v in out.items() if k != "files"}, sort_keys=True)[:-1]
    target.write_text(header + ', "files": {\n' + files + "\n}}\n")
    counts = {name: len(entries) for name, entries in out["files"].items()}
    print(f"wrote {target} (pyais {pyais.__version__}): {counts}", file=sys.stderr)


if __name__ == "__main__":
    main()
