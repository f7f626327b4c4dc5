"""Shared helpers for the drone interop peers (see README.md beside this file).

Not a script: the peers import it from their own directory.

* `Events`: JSON lines on the real stdout, one object per line, flushed after every line. It
  moves file descriptor 1 aside first and points fd 1 at stderr, so anything else that writes to
  stdout (a C++ library, a stray print() in a binding) lands in the log, never in the JSON stream.
* `Stopper`: SIGTERM / SIGINT set a flag (and wake waiters) so the peers shut down cleanly.
* The mission item format shared by every peer (`item_from_json`, `item_to_json`, `load_items`).
"""

import json
import logging
import math
import os
import signal
import struct
import sys
import threading

MISSION_TYPES = {"mission": 0, "fence": 1, "rally": 2}
MISSION_TYPE_NAMES = {v: k for k, v in MISSION_TYPES.items()}

ITEM_FIELDS = (
    "seq", "frame", "command", "current", "autocontinue",
    "param1", "param2", "param3", "param4", "x", "y", "z", "mission_type",
)
INT_FIELDS = ("seq", "frame", "command", "current", "autocontinue", "x", "y", "mission_type")
FLOAT_FIELDS = ("param1", "param2", "param3", "param4", "z")
# Defaults for fields a JSON item leaves out (frame 3 = MAV_FRAME_GLOBAL_RELATIVE_ALT,
# command 16 = MAV_CMD_NAV_WAYPOINT).
ITEM_DEFAULTS = {
    "frame": 3, "command": 16, "current": 0, "autocontinue": 1,
    "param1": 0.0, "param2": 0.0, "param3": 0.0, "param4": 0.0,
    "x": 0, "y": 0, "z": 0.0,
}


def setup_logging(name, verbose=False):
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s.%(msecs)03d " + name + " %(levelname)s %(message)s",
        datefmt="%H:%M:%S",
    )
    if not verbose:
        logging.getLogger("pymavlink").setLevel(logging.WARNING)  # "new stream" etc.
    return logging.getLogger(name)


class Events:
    """Writes one JSON object per line to the original stdout, flushed each time."""

    def __init__(self):
        sys.stdout.flush()
        fd = os.dup(1)
        os.dup2(2, 1)  # fd 1 (and sys.stdout, which writes to it) now go to stderr
        self._out = os.fdopen(fd, "w", buffering=1, encoding="utf-8")
        self._lock = threading.Lock()

    def emit(self, event, **fields):
        obj = {"event": event}
        obj.update(fields)
        line = json.dumps(_json_safe(obj), allow_nan=False, separators=(",", ":"))
        with self._lock:
            try:
                self._out.write(line + "\n")
                self._out.flush()
            except (BrokenPipeError, ValueError):
                pass  # the reader went away; nothing more to tell it


def _json_safe(v):
    """NaN/inf are not JSON: they become null (MAVLink uses NaN for "unset" params)."""
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: _json_safe(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_json_safe(x) for x in v]
    return v


class Stopper:
    """Turns SIGTERM/SIGINT into a flag; `wait(t)` sleeps but wakes up on a signal."""

    def __init__(self):
        self._ev = threading.Event()
        self.signal = None
        signal.signal(signal.SIGTERM, self._handler)
        signal.signal(signal.SIGINT, self._handler)

    def _handler(self, signum, _frame):
        self.signal = signal.Signals(signum).name
        self._ev.set()

    @property
    def stopped(self):
        return self._ev.is_set()

    def stop(self):
        self._ev.set()

    def wait(self, seconds):
        return self._ev.wait(seconds)


def f32(x):
    """The value a float has after a trip through a MAVLink float field, printed shortly:
    0.1 stays 0.1 rather than 0.10000000149011612. NaN stays NaN (emitted as null)."""
    if x is None:
        return float("nan")
    x = float(x)
    if not math.isfinite(x):
        return x
    v = struct.unpack("<f", struct.pack("<f", x))[0]
    for digits in range(6, 10):
        s = float("%.*g" % (digits, v))
        if struct.unpack("<f", struct.pack("<f", s))[0] == v:
            return s
    return v


def item_from_json(obj, index, mission_type=None):
    """A JSON item -> normalised dict with every field (see README for the format)."""
    if not isinstance(obj, dict):
        raise ValueError("item %d is not an object" % index)
    unknown = set(obj) - set(ITEM_FIELDS)
    if unknown:
        raise ValueError("item %d has unknown fields %s" % (index, sorted(unknown)))
    it = dict(ITEM_DEFAULTS)
    it["seq"] = index
    it["mission_type"] = 0 if mission_type is None else mission_type
    for k, v in obj.items():
        if k in FLOAT_FIELDS:
            it[k] = float("nan") if v is None else float(v)
        else:
            if isinstance(v, float) and not v.is_integer():
                raise ValueError("item %d field %s must be an integer" % (index, k))
            it[k] = int(v)
    if mission_type is not None:
        it["mission_type"] = mission_type
    return it


def item_to_json(it):
    """Anything with the MISSION_ITEM_INT attributes (pymavlink message, MAVSDK MissionItem,
    dict) -> the canonical JSON dict."""
    get = (lambda k: it[k]) if isinstance(it, dict) else (lambda k: getattr(it, k))
    out = {}
    for k in ITEM_FIELDS:
        v = get(k)
        out[k] = f32(v) if k in FLOAT_FIELDS else int(v)
    return out


def load_items(path, mission_type=None):
    """Reads a JSON file: a list of items, or an object with an "items" list. With
    `mission_type`, every item gets it; otherwise the items' own (all must agree)."""
    with open(path, encoding="utf-8") as f:
        doc = json.load(f)
    if isinstance(doc, dict):
        doc = doc.get("items")
    if not isinstance(doc, list):
        raise ValueError("%s: expected a JSON list of items (or {\"items\": [...]})" % path)
    items = [item_from_json(o, i, mission_type) for i, o in enumerate(doc)]
    items.sort(key=lambda it: it["seq"])
    for i, it in enumerate(items):
        if it["seq"] != i:
            raise ValueError("%s: seq must run 0..%d without gaps" % (path, len(items) - 1))
    types = {it["mission_type"] for it in items}
    if len(types) > 1:
        raise ValueError("%s: items have mixed mission_type %s" % (path, sorted(types)))
    return items


def items_equal(a, b):
    """Compares two JSON item lists field by field (floats after float32 rounding,
    NaN/None equal to each other). Returns a list of differences (empty when equal)."""
    diffs = []
    if len(a) != len(b):
        diffs.append("count %d != %d" % (len(a), len(b)))
    for i, (x, y) in enumerate(zip(a, b)):
        for k in ITEM_FIELDS:
            vx, vy = x.get(k), y.get(k)
            if k in FLOAT_FIELDS:
                fx, fy = f32(vx), f32(vy)
                if math.isnan(fx) and math.isnan(fy):
                    continue
                if fx != fy:
                    diffs.append("item %d %s: %r != %r" % (i, k, vx, vy))
            elif vx != vy:
                diffs.append("item %d %s: %r != %r" % (i, k, vx, vy))
    return diffs


def mission_type_arg(s):
    s = str(s).lower()
    if s in MISSION_TYPES:
        return MISSION_TYPES[s]
    if s.isdigit() and int(s) in MISSION_TYPE_NAMES:
        return int(s)
    raise ValueError("mission type must be mission, fence, rally (or 0, 1, 2)")


def parse_sign_key(hexkey):
    """64 hex digits -> 32-byte secret key."""
    try:
        key = bytes.fromhex(hexkey.strip())
    except ValueError:
        raise ValueError("--sign-key must be 64 hex digits")
    if len(key) != 32:
        raise ValueError("--sign-key must be 64 hex digits (32 bytes), got %d bytes" % len(key))
    return key

