#!/usr/bin/env python3
"""A small independent MAVLink 2 vehicle on pymavlink, for the drone interop tests.

Sends HEARTBEAT at 1 Hz (MAV_TYPE_QUADROTOR, MAV_AUTOPILOT_ARDUPILOTMEGA) and
GLOBAL_POSITION_INT; implements the vehicle side of the mission protocol for mission, fence and
rally lists (upload and download, kept in memory, MISSION_CLEAR_ALL, MISSION_SET_CURRENT);
answers every COMMAND_LONG / COMMAND_INT with COMMAND_ACK ACCEPTED. Optional MAVLink 2 signing
(--sign-key), and with --require-signing it drops unsigned or badly signed frames and reports
each one as a "rejected" event.

Prints JSON lines on stdout (see README.md beside this file); logs go to stderr.
"""

import argparse
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ beside the tests for our helper modules
import _peerlib as P  # noqa: E402

TIMEOUT_S = 1.5
MAX_RETRIES = 5


class Vehicle:
    def __init__(self, args, ev, stopper, log):
        from _pymav import Link, mavlink
        self.ml = mavlink
        self.args, self.ev, self.stopper, self.log = args, ev, stopper, log
        key = P.parse_sign_key(args.sign_key) if args.sign_key else None
        self.link = Link(args.gcs, args.sysid, args.compid, key=key, link_id=args.link_id,
                         require_signing=args.require_signing, log=log)
        self.mav = self.link.mav
        self.lists = {0: [], 1: [], 2: []}
        self.upload = None  # state of an upload in progress
        self.last_upload = None  # (partner, type, count) of the last completed upload
        self.current_seq = 0
        self.armed = False
        self.custom_mode = args.custom_mode
        self.rel_alt = 0.0
        self.t0 = time.monotonic()
        self.rejected = 0
        self.commands = 0

    # -- periodic -------------------------------------------------------------------------
    def send_heartbeat(self):
        ml = self.ml
        base = ml.MAV_MODE_FLAG_CUSTOM_MODE_ENABLED
        if self.armed:
            base |= ml.MAV_MODE_FLAG_SAFETY_ARMED
        self.mav.heartbeat_send(ml.MAV_TYPE_QUADROTOR, ml.MAV_AUTOPILOT_ARDUPILOTMEGA, base,
                                self.custom_mode,
                                ml.MAV_STATE_ACTIVE if self.armed else ml.MAV_STATE_STANDBY)

    def send_position(self):
        a = self.args
        boot_ms = int((time.monotonic() - self.t0) * 1000) & 0xFFFFFFFF
        self.mav.global_position_int_send(
            boot_ms, int(round(a.lat * 1e7)), int(round(a.lon * 1e7)),
            int(round((a.alt + self.rel_alt) * 1000)), int(round(self.rel_alt * 1000)),
            0, 0, 0, int(a.heading * 100) % 36000)

    # -- message handling -----------------------------------------------------------------
    def for_us(self, m):
        ts = getattr(m, "target_system", 0)
        tc = getattr(m, "target_component", 0)
        return ts in (0, self.args.sysid) and tc in (0, self.args.compid)

    def handle(self, m):
        t = m.get_type()
        if t == "HEARTBEAT" or not self.for_us(m):
            return
        src = (m.get_srcSystem(), m.get_srcComponent())
        fn = getattr(self, "on_" + t, None)
        if fn is not None:
            fn(m, src)

    def ack(self, src, mtype, result):
        self.mav.mission_ack_send(src[0], src[1], result, mtype)

    def request(self, src, mtype, seq):
        self.mav.mission_request_int_send(src[0], src[1], seq, mtype)

    def on_MISSION_COUNT(self, m, src):
        mtype = getattr(m, "mission_type", 0)
        if mtype not in self.lists:
            self.ack(src, mtype, self.ml.MAV_MISSION_UNSUPPORTED)
            return
        up = self.upload
        if up and up["src"] == src and up["type"] == mtype and up["count"] == m.count \
                and up["next"] == 0:
            self.request(src, mtype, 0)  # the GCS re-sent MISSION_COUNT: our request got lost
            up["deadline"] = time.monotonic() + TIMEOUT_S
            return
        if up and up["src"] != src:
            self.ack(src, mtype, self.ml.MAV_MISSION_DENIED)  # busy with another GCS
            return
        self.log.info("upload of %d %s items from %s", m.count, P.MISSION_TYPE_NAMES[mtype], src)
        if m.count == 0:
            self.finish_upload(src, mtype, [])
            return
        self.upload = {"src": src, "type": mtype, "count": m.count, "next": 0, "items": [],
                       "deadline": time.monotonic() + TIMEOUT_S, "retries": 0,
                       "t0": time.monotonic()}
        self.request(src, mtype, 0)

    def on_MISSION_ITEM_INT(self, m, src):
        mtype = getattr(m, "mission_type", 0)
        up = self.upload
        if up is None:
            lu = self.last_upload
            if lu and lu == (src, mtype, m.seq + 1):
                self.ack(src, mtype, self.ml.MAV_MISSION_ACCEPTED)  # our ACK got lost
            return
        if src != up["src"]:
            return
        if mtype != up["type"]:
            self.ack(src, up["type"], self.ml.MAV_MISSION_INVALID_SEQUENCE)
            self.upload = None
            self.ev.emit("mission_upload_failed", mission_type=P.MISSION_TYPE_NAMES[up["type"]],
                         reason="mission_type %d in item %d" % (mtype, m.seq))
            return
        if m.seq != up["next"]:
            self.request(src, mtype, up["next"])  # out of order / duplicate: ask again
            return
        up["items"].append(P.item_to_json(m))
        up["next"] += 1
        up["retries"] = 0
        up["deadline"] = time.monotonic() + TIMEOUT_S
        if up["next"] == up["count"]:
            self.finish_upload(src, mtype, up["items"], time.monotonic() - up["t0"])
        else:
            self.request(src, mtype, up["next"])

    def on_MISSION_ITEM(self, m, src):
        # Float MISSION_ITEM is deprecated; we only ever request MISSION_ITEM_INT.
        self.log.warning("ignoring legacy MISSION_ITEM seq %d from %s", m.seq, src)

    def finish_upload(self, src, mtype, items, secs=0.0):
        self.lists[mtype] = items
        self.upload = None
        self.last_upload = (src, mtype, len(items))
        if mtype == 0:
            self.current_seq = 0
        self.ack(src, mtype, self.ml.MAV_MISSION_ACCEPTED)
        self.ev.emit("mission_uploaded", mission_type=P.MISSION_TYPE_NAMES[mtype],
                     count=len(items), seconds=round(secs, 6), src=list(src), items=items)

    def tick_upload(self):
        up = self.upload
        if up is None or time.monotonic() < up["deadline"]:
            return
        if up["retries"] >= MAX_RETRIES:
            self.log.warning("upload from %s timed out at item %d", up["src"], up["next"])
            self.ack(up["src"], up["type"], self.ml.MAV_MISSION_OPERATION_CANCELLED)
            self.ev.emit("mission_upload_failed", mission_type=P.MISSION_TYPE_NAMES[up["type"]],
                         reason="timeout at item %d of %d" % (up["next"], up["count"]))
            self.upload = None
            return
        up["retries"] += 1
        up["deadline"] = time.monotonic() + TIMEOUT_S
        self.request(up["src"], up["type"], up["next"])

    def on_MISSION_REQUEST_LIST(self, m, src):
        mtype = getattr(m, "mission_type", 0)
        if mtype not in self.lists:
            self.ack(src, mtype, self.ml.MAV_MISSION_UNSUPPORTED)
            return
        self.mav.mission_count_send(src[0], src[1], len(self.lists[mtype]), mtype)
        self.ev.emit("download_requested", mission_type=P.MISSION_TYPE_NAMES[mtype],
                     count=len(self.lists[mtype]), src=list(src))

    def on_MISSION_REQUEST_INT(self, m, src):
        mtype = getattr(m, "mission_type", 0)
        items = self.lists.get(mtype)
        if items is None or m.seq >= len(items):
            self.ack(src, mtype, self.ml.MAV_MISSION_INVALID_SEQUENCE)
            return
        it = items[m.seq]
        self.mav.mission_item_int_send(
            src[0], src[1], m.seq, it["frame"], it["command"], it["current"], it["autocontinue"],
            *[float("nan") if it[k] is None else it[k] for k in ("param1", "param2", "param3", "param4")],
            it["x"], it["y"], it["z"], mtype)

    on_MISSION_REQUEST = on_MISSION_REQUEST_INT  # legacy request: still answer with _INT

    def on_MISSION_ACK(self, m, src):
        mtype = getattr(m, "mission_type", 0)
        self.ev.emit("mission_ack", mission_type=P.MISSION_TYPE_NAMES.get(mtype, mtype),
                     result=m.type, src=list(src))

    def on_MISSION_CLEAR_ALL(self, m, src):
        mtype = getattr(m, "mission_type", 0)
        types = list(self.lists) if mtype == self.ml.MAV_MISSION_TYPE_ALL else [mtype]
        for t in types:
            if t in self.lists:
                self.lists[t] = []
        self.ack(src, mtype, self.ml.MAV_MISSION_ACCEPTED)
        self.ev.emit("mission_cleared", mission_type=P.MISSION_TYPE_NAMES.get(mtype, "all"),
                     src=list(src))

    def on_MISSION_SET_CURRENT(self, m, src):
        if m.seq < len(self.lists[0]):
            self.current_seq = m.seq
        self.mav.mission_current_send(self.current_seq)
        self.ev.emit("mission_set_current", seq=m.seq, src=list(src))

    def on_COMMAND_LONG(self, m, src):
        self.command(m, src, [m.param1, m.param2, m.param3, m.param4, m.param5, m.param6,
                              m.param7], "long", confirmation=m.confirmation)

    def on_COMMAND_INT(self, m, src):
        self.command(m, src, [m.param1, m.param2, m.param3, m.param4, m.x, m.y, m.z], "int",
                     frame=m.frame)

    def command(self, m, src, params, kind, **extra):
        ml = self.ml
        cmd = m.command
        self.commands += 1
        # A little state so that a GCS sees its commands take effect in the HEARTBEAT.
        if cmd == ml.MAV_CMD_COMPONENT_ARM_DISARM:
            self.armed = params[0] == 1.0
        elif cmd == ml.MAV_CMD_DO_SET_MODE:
            self.custom_mode = int(params[1])
        elif cmd == ml.MAV_CMD_NAV_TAKEOFF:
            self.rel_alt = float(params[6])
        elif cmd == ml.MAV_CMD_NAV_LAND:
            self.rel_alt = 0.0
        self.mav.command_ack_send(cmd, ml.MAV_RESULT_ACCEPTED, 0, 0, src[0], src[1])
        from _pymav import cmd_name, is_signed
        self.ev.emit("command", id=cmd, name=cmd_name(cmd), kind=kind, params=params,
                     src=list(src), signed=is_signed(m), result="MAV_RESULT_ACCEPTED", **extra)

    def on_SET_MODE(self, m, src):
        self.custom_mode = m.custom_mode
        self.ev.emit("set_mode", base_mode=m.base_mode, custom_mode=m.custom_mode, src=list(src))


def main():
    ap = argparse.ArgumentParser(
        description="pymavlink MAVLink 2 vehicle: heartbeat, position, mission/fence/rally "
                    "protocol, commands, optional signing. JSON lines on stdout, logs on stderr.")
    ap.add_argument("--gcs", required=True,
                    help="pymavlink connection to the GCS, e.g. udpout:127.0.0.1:14550 (the "
                         "GCS listens there)")
    ap.add_argument("--sysid", type=int, default=1, help="system id (default 1)")
    ap.add_argument("--compid", type=int, default=1, help="component id (default 1)")
    ap.add_argument("--sign-key", metavar="HEX64",
                    help="MAVLink 2 signing secret key, 64 hex digits: signs everything sent; "
                         "incoming frames with a bad signature are dropped and reported")
    ap.add_argument("--require-signing", action="store_true",
                    help="with --sign-key, also drop (and report) unsigned incoming frames")
    ap.add_argument("--link-id", type=int, default=0, help="signing link id (default 0)")
    ap.add_argument("--position-rate", type=float, default=2.0,
                    help="GLOBAL_POSITION_INT rate in Hz (default 2; 0 = none)")
    ap.add_argument("--lat", type=float, default=35.4437)
    ap.add_argument("--lon", type=float, default=139.6380)
    ap.add_argument("--alt", type=float, default=10.0, help="AMSL altitude on the ground, m")
    ap.add_argument("--heading", type=float, default=90.0)
    ap.add_argument("--custom-mode", type=int, default=0,
                    help="initial HEARTBEAT custom_mode (default 0, ArduCopter STABILIZE)")
    ap.add_argument("--duration", type=float, default=0.0,
                    help="exit by itself after this many seconds (default: run until SIGTERM)")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args()
    if args.require_signing and not args.sign_key:
        ap.error("--require-signing needs --sign-key")
    if args.sign_key:
        try:
            P.parse_sign_key(args.sign_key)
        except ValueError as e:
            ap.error(str(e))

    log = P.setup_logging("pymavlink_vehicle", args.verbose)
    ev = P.Events()
    stopper = P.Stopper()
    v = Vehicle(args, ev, stopper, log)
    ev.emit("ready", sysid=args.sysid, compid=args.compid, gcs=v.link.url,
            signing=bool(args.sign_key), require_signing=args.require_signing)

    next_hb = 0.0
    pos_period = 1.0 / args.position_rate if args.position_rate > 0 else None
    next_pos = 0.0
    t_end = time.monotonic() + args.duration if args.duration > 0 else None
    while not stopper.stopped:
        now = time.monotonic()
        if t_end is not None and now >= t_end:
            break
        if now >= next_hb:
            v.send_heartbeat()
            next_hb = now + 1.0
        if pos_period and now >= next_pos:
            v.send_position()
            next_pos = now + pos_period
        v.tick_upload()
        wake = min(next_hb, next_pos if pos_period else next_hb)
        if v.upload:
            wake = min(wake, v.upload["deadline"])
        m = v.link.recv(max(0.0, min(wake - time.monotonic(), 0.2)))
        if m is None:
            continue
        if isinstance(m, tuple):
            v.rejected += 1
            ev.emit("rejected", **m[1])
            continue
        try:
            v.handle(m)
        except Exception:  # noqa: BLE001
            log.exception("handling %s", m.get_type())
    v.link.close()
    ev.emit("exit", rejected=v.rejected, commands=v.commands,
            **({"signal": stopper.signal} if stopper.signal else {}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
