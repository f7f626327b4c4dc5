#!/usr/bin/env python3
"""A small MAVLink 2 ground station on pymavlink, for the drone interop tests.

Waits for a vehicle's HEARTBEAT, then (in this order) clears the list (--clear), uploads a
mission / fence / rally list read from a JSON file (--upload-mission, optionally --repeat N
times, timed), downloads the list (--download), and sends commands (--command). Implements
the GCS side of the MAVLink mission protocol with the spec's retry rule (1.5 s timeout, up to
5 retries per message). Sends its own HEARTBEAT (MAV_TYPE_GCS) at 1 Hz.

Prints JSON lines on stdout (see README.md beside this file); logs go to stderr.
Exit status: 0 when every requested operation succeeded (or on SIGTERM/SIGINT, after the
"exit" event), 1 when one failed or timed out, 2 on bad arguments.
"""

import argparse
import statistics
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ beside the tests for our helper modules
import _peerlib as P  # noqa: E402

TIMEOUT_S = 1.5  # MAVLink mission protocol: default timeout 1500 ms
MAX_RETRIES = 5  # ... and up to 5 retries


class Failed(Exception):
    def __init__(self, result, detail=""):
        super().__init__(detail or result)
        self.result = result
        self.detail = detail


class Gcs:
    def __init__(self, args, ev, stopper, log):
        from _pymav import Link, mavlink
        self.mavlink = mavlink
        self.ev, self.stopper, self.log, self.args = ev, stopper, log, args
        key = P.parse_sign_key(args.sign_key) if args.sign_key else None
        self.link = Link(args.link, args.sysid, args.compid, key=key, link_id=args.link_id,
                         require_signing=args.require_signing, verify=not args.no_verify,
                         log=log)
        self.mav = self.link.mav
        self.target = None  # (sysid, compid) of the vehicle's autopilot
        self.next_hb = 0.0
        self.rejected = 0
        self.retries = 0

    # -- plumbing -------------------------------------------------------------------------
    def heartbeat_tick(self):
        now = time.monotonic()
        if now >= self.next_hb:
            self.next_hb = now + 1.0
            self.mav.heartbeat_send(self.mavlink.MAV_TYPE_GCS, self.mavlink.MAV_AUTOPILOT_INVALID,
                                    0, 0, self.mavlink.MAV_STATE_ACTIVE)

    def recv(self, timeout):
        """Next accepted message within `timeout`; keeps our 1 Hz heartbeat going and
        reports frames the signing check dropped."""
        deadline = time.monotonic() + timeout
        while not self.stopper.stopped:
            self.heartbeat_tick()
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            m = self.link.recv(min(left, 0.2))
            if m is None:
                continue
            if isinstance(m, tuple):
                self.rejected += 1
                self.ev.emit("rejected", **m[1])
                continue
            return m
        raise Failed("STOPPED", "stopped by signal")

    def from_target(self, m):
        return self.target is None or (m.get_srcSystem(), m.get_srcComponent()) == self.target

    def wait_heartbeat(self):
        t0 = time.monotonic()
        deadline = t0 + self.args.heartbeat_timeout
        while time.monotonic() < deadline:
            m = self.recv(deadline - time.monotonic())
            if m is None:
                break
            if m.get_type() != "HEARTBEAT":
                continue
            if m.type == self.mavlink.MAV_TYPE_GCS or m.autopilot == self.mavlink.MAV_AUTOPILOT_INVALID:
                continue  # another GCS, a camera, ...: not a vehicle's autopilot
            if self.args.target_sysid and m.get_srcSystem() != self.args.target_sysid:
                continue
            self.target = (m.get_srcSystem(), m.get_srcComponent())
            from _pymav import is_signed
            self.ev.emit("heartbeat", sysid=m.get_srcSystem(), compid=m.get_srcComponent(),
                         type=m.type, autopilot=m.autopilot, base_mode=m.base_mode,
                         custom_mode=m.custom_mode, system_status=m.system_status,
                         signed=is_signed(m), seconds=round(time.monotonic() - t0, 3))
            return
        raise Failed("NO_HEARTBEAT", "no vehicle heartbeat within %.1f s" % self.args.heartbeat_timeout)

    def exchange(self, send, accept, what):
        """Sends with `send()`, waits for a message for which `accept(m)` returns non-None,
        re-sending up to MAX_RETRIES times after TIMEOUT_S of silence each."""
        send()
        tries = 0
        deadline = time.monotonic() + TIMEOUT_S
        while True:
            m = self.recv(max(0.0, deadline - time.monotonic()))
            if m is None:
                if tries >= MAX_RETRIES:
                    raise Failed("TIMEOUT", "no answer to %s after %d retries" % (what, tries))
                tries += 1
                self.retries += 1
                self.log.info("timeout waiting for answer to %s, retry %d", what, tries)
                send()
                deadline = time.monotonic() + TIMEOUT_S
                continue
            if not self.from_target(m):
                continue
            r = accept(m)
            if r is not None:
                return r

    # -- mission upload -------------------------------------------------------------------
    def upload(self, items, mtype):
        ml = self.mavlink
        ts, tc = self.target
        n = len(items)
        state = {"last": None}  # the last message we sent (what a retry re-sends)

        def send_count():
            self.mav.mission_count_send(ts, tc, n, mtype)

        def send_item(seq):
            it = items[seq]
            self.mav.mission_item_int_send(
                ts, tc, seq, it["frame"], it["command"], it["current"], it["autocontinue"],
                it["param1"], it["param2"], it["param3"], it["param4"],
                it["x"], it["y"], it["z"], mtype)

        requested = set()
        t0 = time.monotonic()
        send_count()
        state["last"] = send_count
        tries = 0
        deadline = time.monotonic() + TIMEOUT_S
        while True:
            m = self.recv(max(0.0, deadline - time.monotonic()))
            if m is None:
                if tries >= MAX_RETRIES:
                    raise Failed("TIMEOUT", "upload stalled after %d of %d items requested"
                                 % (len(requested), n))
                tries += 1
                self.retries += 1
                self.log.info("upload: timeout, re-sending (retry %d)", tries)
                state["last"]()
                deadline = time.monotonic() + TIMEOUT_S
                continue
            if not self.from_target(m):
                continue
            t = m.get_type()
            if t in ("MISSION_REQUEST_INT", "MISSION_REQUEST"):
                if getattr(m, "mission_type", 0) != mtype:
                    continue
                if m.seq >= n:
                    self.log.warning("vehicle requested seq %d of %d", m.seq, n)
                    continue
                if t == "MISSION_REQUEST":
                    self.log.debug("vehicle used MISSION_REQUEST (not _INT) for seq %d", m.seq)
                requested.add(m.seq)
                seq = m.seq
                send_item(seq)
                state["last"] = lambda seq=seq: send_item(seq)
                tries = 0
                deadline = time.monotonic() + TIMEOUT_S
            elif t == "MISSION_ACK":
                if getattr(m, "mission_type", 0) != mtype:
                    continue
                secs = time.monotonic() - t0
                result = P_result_name(ml, m.type)
                if m.type == ml.MAV_MISSION_ACCEPTED and len(requested) < n:
                    self.log.warning("ACCEPTED after only %d of %d items", len(requested), n)
                return result, secs

    # -- mission download -----------------------------------------------------------------
    def download(self, mtype):
        ml = self.mavlink
        ts, tc = self.target
        t0 = time.monotonic()

        def count_answer(m):
            if m.get_type() == "MISSION_COUNT" and getattr(m, "mission_type", 0) == mtype:
                return m.count
            if m.get_type() == "MISSION_ACK" and getattr(m, "mission_type", 0) == mtype:
                raise Failed(P_result_name(ml, m.type), "vehicle answered the request list with an ACK")
            return None

        n = self.exchange(lambda: self.mav.mission_request_list_send(ts, tc, mtype),
                          count_answer, "MISSION_REQUEST_LIST")
        items = []
        for seq in range(n):
            def item_answer(m, seq=seq):
                t = m.get_type()
                if t == "MISSION_ITEM_INT" and m.seq == seq and getattr(m, "mission_type", 0) == mtype:
                    return m
                if t == "MISSION_ACK" and getattr(m, "mission_type", 0) == mtype:
                    raise Failed(P_result_name(ml, m.type), "vehicle aborted the download at seq %d" % seq)
                return None
            m = self.exchange(lambda seq=seq: self.mav.mission_request_int_send(ts, tc, seq, mtype),
                              item_answer, "MISSION_REQUEST_INT %d" % seq)
            items.append(P.item_to_json(m))
        self.mav.mission_ack_send(ts, tc, ml.MAV_MISSION_ACCEPTED, mtype)
        return items, time.monotonic() - t0

    # -- clear ----------------------------------------------------------------------------
    def clear(self, mtype):
        ml = self.mavlink
        ts, tc = self.target
        t0 = time.monotonic()

        def answer(m):
            if m.get_type() == "MISSION_ACK" and getattr(m, "mission_type", 0) == mtype:
                return P_result_name(ml, m.type)
            return None

        result = self.exchange(lambda: self.mav.mission_clear_all_send(ts, tc, mtype), answer,
                               "MISSION_CLEAR_ALL")
        return result, time.monotonic() - t0

    # -- commands -------------------------------------------------------------------------
    def command(self, cmd, params):
        ml = self.mavlink
        ts, tc = self.target
        p = (list(params) + [0.0] * 7)[:7]
        conf = {"n": 0}

        def send():
            self.mav.command_long_send(ts, tc, cmd, conf["n"], *p)
            conf["n"] = min(conf["n"] + 1, 255)

        def answer(m):
            if m.get_type() == "COMMAND_ACK" and m.command == cmd:
                if m.result == ml.MAV_RESULT_IN_PROGRESS:
                    return None
                return m
            return None

        t0 = time.monotonic()
        m = self.exchange(send, answer, "COMMAND_LONG %d" % cmd)
        return m, time.monotonic() - t0


def P_result_name(ml, value):
    e = ml.enums["MAV_MISSION_RESULT"].get(value)
    return e.name.replace("MAV_MISSION_", "") if e else str(value)


def parse_command(s):
    parts = [x for x in s.replace(" ", "").split(",") if x != ""]
    if not parts or len(parts) > 8:
        raise argparse.ArgumentTypeError("--command wants ID[,P1,...,P7]")
    try:
        return int(parts[0]), [float(x) for x in parts[1:]]
    except ValueError:
        raise argparse.ArgumentTypeError("--command wants numbers: ID[,P1,...,P7]")


def main():
    ap = argparse.ArgumentParser(
        description="pymavlink MAVLink 2 ground station: waits for a vehicle heartbeat, "
                    "uploads/downloads mission, fence or rally lists, sends commands. "
                    "JSON lines on stdout, logs on stderr.")
    ap.add_argument("--link", required=True,
                    help="pymavlink connection, e.g. udpin:127.0.0.1:14550 (listen; vehicles "
                         "send to it) or udpout:127.0.0.1:14551")
    ap.add_argument("--upload-mission", metavar="FILE.json",
                    help="upload the items in this JSON file (format: README.md)")
    ap.add_argument("--download", action="store_true",
                    help="download the list of --type from the vehicle and print it (after "
                         "the upload when both are given, then also compare)")
    ap.add_argument("--type", default=None, type=P.mission_type_arg,
                    help="mission, fence or rally (default: the items' mission_type, else mission)")
    ap.add_argument("--clear", action="store_true",
                    help="send MISSION_CLEAR_ALL for --type first (before any upload)")
    ap.add_argument("--repeat", type=int, default=1, metavar="N",
                    help="upload N times and print a timing summary (default 1)")
    ap.add_argument("--command", action="append", default=[], type=parse_command,
                    metavar="ID[,P1..P7]",
                    help="send COMMAND_LONG and wait for its COMMAND_ACK, e.g. 400,1 (arm); "
                         "repeatable, sent after upload/download")
    ap.add_argument("--sign-key", metavar="HEX64",
                    help="MAVLink 2 signing secret key (32 bytes as 64 hex digits): signs "
                         "everything sent; incoming frames with a bad signature are dropped")
    ap.add_argument("--require-signing", action="store_true",
                    help="with --sign-key, also drop unsigned incoming frames")
    ap.add_argument("--no-verify", action="store_true",
                    help="with --sign-key, still sign what we send but accept every incoming "
                         "frame whatever its signature (to see how the vehicle treats a wrong "
                         "key without our side stopping first)")
    ap.add_argument("--link-id", type=int, default=0, help="signing link id (default 0)")
    ap.add_argument("--sysid", type=int, default=255, help="our system id (default 255)")
    ap.add_argument("--compid", type=int, default=190,
                    help="our component id (default 190, MAV_COMP_ID_MISSIONPLANNER)")
    ap.add_argument("--target-sysid", type=int, default=0,
                    help="only talk to this vehicle system id (default: the first heard)")
    ap.add_argument("--heartbeat-timeout", type=float, default=15.0,
                    help="seconds to wait for the vehicle heartbeat (default 15)")
    ap.add_argument("--linger", type=float, default=0.0,
                    help="keep the link (and our heartbeat) up this many seconds at the end")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args()
    if (args.require_signing or args.no_verify) and not args.sign_key:
        ap.error("--require-signing / --no-verify need --sign-key")
    if args.require_signing and args.no_verify:
        ap.error("--require-signing and --no-verify contradict each other")
    if args.repeat < 1:
        ap.error("--repeat must be at least 1")
    if args.sign_key:
        try:
            P.parse_sign_key(args.sign_key)
        except ValueError as e:
            ap.error(str(e))

    log = P.setup_logging("pymavlink_gcs", args.verbose)
    ev = P.Events()
    stopper = P.Stopper()

    items = None
    mtype = args.type
    if args.upload_mission:
        try:
            items = P.load_items(args.upload_mission, mtype)
        except (OSError, ValueError) as e:
            ap.error(str(e))
        if mtype is None:
            mtype = items[0]["mission_type"] if items else 0
    if mtype is None:
        mtype = 0
    tname = P.MISSION_TYPE_NAMES.get(mtype, str(mtype))

    gcs = Gcs(args, ev, stopper, log)
    ok = True
    try:
        ev.emit("ready", link=gcs.link.url, sysid=args.sysid, compid=args.compid,
                signing=bool(args.sign_key), require_signing=args.require_signing)
        gcs.wait_heartbeat()

        if args.clear:
            try:
                result, secs = gcs.clear(mtype)
            except Failed as e:
                if e.result == "STOPPED":
                    raise
                result, secs = e.result, None
            ev.emit("cleared", result=result, mission_type=tname,
                    seconds=None if secs is None else round(secs, 6))
            ok = result == "ACCEPTED"

        if items is not None and ok:
            times = []
            for i in range(args.repeat):
                gcs.retries = 0
                try:
                    result, secs = gcs.upload(items, mtype)
                except Failed as e:
                    if e.result == "STOPPED":
                        raise
                    result, secs = e.result, None
                    log.error("upload failed: %s", e.detail)
                fields = dict(result=result, seconds=None if secs is None else round(secs, 6),
                              mission_type=tname, count=len(items), retries=gcs.retries)
                if args.repeat > 1:
                    fields["iteration"] = i + 1
                ev.emit("uploaded", **fields)
                if result != "ACCEPTED":
                    ok = False
                    break
                times.append(secs)
            if args.repeat > 1 and times:
                ev.emit("summary", mission_type=tname, count=len(items), n=args.repeat,
                        ok=len(times), min=round(min(times), 6), max=round(max(times), 6),
                        mean=round(statistics.mean(times), 6),
                        median=round(statistics.median(times), 6))

        if args.download and ok:
            gcs.retries = 0
            try:
                got, secs = gcs.download(mtype)
                ev.emit("downloaded", result="ACCEPTED", mission_type=tname, count=len(got),
                        seconds=round(secs, 6), retries=gcs.retries, items=got)
                if items is not None:
                    want = [P.item_to_json(it) for it in items]
                    diffs = P.items_equal(want, got)
                    ev.emit("compare", equal=not diffs, diffs=diffs)
                    ok = ok and not diffs
            except Failed as e:
                if e.result == "STOPPED":
                    raise
                log.error("download failed: %s", e.detail)
                ev.emit("downloaded", result=e.result, mission_type=tname, detail=e.detail)
                ok = False

        for cmd, params in args.command:
            if not ok:
                break
            from _pymav import cmd_name, enum_name
            try:
                m, secs = gcs.command(cmd, params)
                ev.emit("command_ack", command=cmd, name=cmd_name(cmd), result=m.result,
                        result_name=enum_name("MAV_RESULT", m.result), seconds=round(secs, 6))
                if m.result != gcs.mavlink.MAV_RESULT_ACCEPTED:
                    ok = False
            except Failed as e:
                if e.result == "STOPPED":
                    raise
                ev.emit("command_ack", command=cmd, name=cmd_name(cmd), result=None,
                        result_name=e.result)
                ok = False

        end = time.monotonic() + args.linger
        try:
            while not stopper.stopped and time.monotonic() < end:
                gcs.recv(end - time.monotonic())
        except Failed:
            pass  # stopped while lingering: everything asked for was done already
    except Failed as e:
        if e.result != "STOPPED":
            log.error("%s", e.detail)
            ev.emit("error", result=e.result, detail=e.detail)
        ok = False
    finally:
        gcs.link.close()
        ev.emit("exit", ok=ok, rejected=gcs.rejected,
                **({"signal": stopper.signal} if stopper.signal else {}))
    if stopper.signal:
        return 0  # stopped on request: a clean exit ("ok" above says whether all was done)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
