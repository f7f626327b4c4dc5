#!/usr/bin/env python3
"""Uploads a mission to a vehicle with MAVProxy (`wp load`), driven non-interactively, timed.

MAVProxy's `--cmd="wp load FILE"` runs before the link has seen the vehicle (the MISSION_COUNT
goes nowhere on a `udpin:` link, which knows no peer yet), and `--daemon` / `--non-interactive`
take away the console, so this script runs mavproxy.py with a pipe as its console instead:
it waits for MAVProxy's "online system N" line, types `wp load FILE`, and times until the
"Got MISSION_ACK: TYPE_MISSION: <RESULT>" line. Only the mission (wp) list: MAVProxy's fence
and rally modules use their own file formats.

The mission comes either as our JSON item list (--mission, converted to a QGC WPL 110 file) or
as a QGC WPL 110 file (--waypoints). MAVProxy turns a WPL latitude/longitude into
MISSION_ITEM_INT x/y with int(deg * 1e7), which truncates: about 6 % of 7-decimal coordinates
come out 1e-7 deg low. The conversion here writes coordinates offset by half a unit (9
decimals) so that the vehicle gets exactly the JSON's x/y.

Prints JSON lines on stdout (see README.md beside this file); MAVProxy's console output and our
logs go to stderr.
"""

import argparse
import os
import re
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ beside the tests for our helper modules
import _peerlib as P  # noqa: E402

RE_ONLINE = re.compile(r"online system (\d+)")
RE_LOADED = re.compile(r"Loaded (\d+) waypoints in ([0-9.]+)s")
RE_ACK = re.compile(r"Got MISSION_ACK: TYPE_(\w+): (\w+)")


def has_location(cmd):
    """MAVProxy's own rule for scaling x/y by 1e7 (modules/lib/mission_item_protocol.py)."""
    os.environ.setdefault("MAVLINK20", "1")
    from pymavlink.dialects.v20 import ardupilotmega as apm
    e = apm.enums["MAV_CMD"].get(cmd)
    return e is not None and getattr(e, "has_location", True)


def write_wpl(items, path):
    with open(path, "w", encoding="ascii") as f:
        f.write("QGC WPL 110\n")
        for it in items:
            def coord(v):
                if has_location(it["command"]):
                    # int() truncates toward zero: aim half a unit past the value.
                    return "%.9f" % ((v + (0.5 if v >= 0 else -0.5)) / 1e7)
                return "%d" % v
            params = ["nan" if it[k] != it[k] else "%.9g" % it[k]  # pymavlink reads "nan"
                      for k in ("param1", "param2", "param3", "param4")]
            f.write("\t".join([str(it["seq"]), str(it["current"]), str(it["frame"]),
                               str(it["command"])] + params +
                              [coord(it["x"]), coord(it["y"]), "%.9g" % it["z"],
                               str(it["autocontinue"])]) + "\n")


class MavProxy:
    def __init__(self, args, workdir, log):
        self.log = log
        exe = args.mavproxy or shutil.which("mavproxy.py") or os.path.join(
            os.path.dirname(sys.executable), "mavproxy.py")
        cmd = [sys.executable, exe, "--master=" + args.link,
               "--source-system=%d" % args.sysid, "--source-component=%d" % args.compid,
               "--mav20", "--default-modules=link,wp", "--state-basedir=" + workdir]
        if args.target_sysid:
            cmd.append("--target-system=%d" % args.target_sysid)
        log.info("starting %s", " ".join(cmd))
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True, bufsize=1, cwd=workdir,
                                  env=env, start_new_session=True)
        self.buf = ""

    def send(self, line):
        self.log.info("mavproxy< %s", line)
        self.p.stdin.write(line + "\n")
        self.p.stdin.flush()

    def lines(self, timeout, stopper):
        """Yields MAVProxy's output lines (as they come) for up to `timeout` seconds."""
        deadline = time.monotonic() + timeout
        fd = self.p.stdout.fileno()
        while not stopper.stopped:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            r, _, _ = select.select([fd], [], [], min(left, 0.2))
            if not r:
                continue
            chunk = os.read(fd, 65536).decode("utf-8", "replace")
            if not chunk:
                return
            self.buf += chunk
            while "\n" in self.buf:
                line, self.buf = self.buf.split("\n", 1)
                line = line.rstrip("\r")
                self.log.info("mavproxy> %s", line)
                yield line

    def close(self):
        if self.p.poll() is None:
            try:
                # End of input is MAVProxy's clean way out: its console loop sets the stop
                # flag on EOF. (SIGTERM only sets that flag while the console loop sits
                # blocked reading the pipe, and plain "exit" needs `set requireexit`.)
                self.p.stdin.close()
                self.p.wait(5)
            except (OSError, subprocess.TimeoutExpired):
                self.log.info("MAVProxy did not exit at end of input")
        for sig in (signal.SIGINT, signal.SIGKILL):
            if self.p.poll() is not None:
                break
            try:
                self.log.info("sending %s to MAVProxy", signal.Signals(sig).name)
                os.killpg(self.p.pid, sig)  # MAVProxy's own process group (start_new_session)
                self.p.wait(3)
            except (OSError, subprocess.TimeoutExpired):
                pass
        return self.p.returncode


def main():
    ap = argparse.ArgumentParser(
        description="Upload a mission with MAVProxy's `wp load`, driven through a pipe, and "
                    "time it. JSON lines on stdout, MAVProxy's output on stderr.")
    ap.add_argument("--link", required=True,
                    help="MAVProxy --master, e.g. udpin:127.0.0.1:14550 (the vehicle sends there)")
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--mission", metavar="FILE.json", help="our JSON item list (README.md)")
    src.add_argument("--waypoints", metavar="FILE.txt", help="a QGC WPL 110 file, as is")
    ap.add_argument("--repeat", type=int, default=1, metavar="N",
                    help="upload N times in the same MAVProxy session (default 1)")
    ap.add_argument("--sysid", type=int, default=255)
    ap.add_argument("--compid", type=int, default=190)
    ap.add_argument("--target-sysid", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=20.0,
                    help="seconds to wait for the vehicle, and for each upload (default 20)")
    ap.add_argument("--mavproxy", help="path of mavproxy.py (default: the one beside python)")
    ap.add_argument("--keep", action="store_true", help="keep MAVProxy's state dir (tlog)")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args()
    if args.repeat < 1:
        ap.error("--repeat must be at least 1")

    log = P.setup_logging("mavproxy_upload", args.verbose)
    ev = P.Events()
    stopper = P.Stopper()

    workdir = tempfile.mkdtemp(prefix="mavproxy_upload.")
    if args.mission:
        try:
            items = P.load_items(args.mission, 0)
        except (OSError, ValueError) as e:
            ap.error(str(e))
        wpl = os.path.join(workdir, "mission.waypoints")
        write_wpl(items, wpl)
        count = len(items)
    else:
        wpl = os.path.abspath(args.waypoints)
        with open(wpl, encoding="ascii", errors="replace") as f:
            count = max(0, sum(1 for line in f if line.strip()) - 1)

    t_start = time.monotonic()
    mp = MavProxy(args, workdir, log)
    ok = False
    try:
        ev.emit("ready", link=args.link, waypoints=wpl, count=count)
        online = None
        for line in mp.lines(args.timeout, stopper):
            m = RE_ONLINE.search(line)
            if m:
                online = int(m.group(1))
                break
        if online is None:
            if stopper.stopped:
                return 0
            ev.emit("error", result="NO_HEARTBEAT",
                    detail="MAVProxy saw no vehicle within %.1f s" % args.timeout)
            return 1
        ev.emit("heartbeat", sysid=online, seconds=round(time.monotonic() - t_start, 3))

        times = []
        for i in range(args.repeat):
            t0 = time.monotonic()
            mp.send("wp load " + wpl)
            result, mp_secs, secs = "TIMEOUT", None, None
            for line in mp.lines(args.timeout, stopper):
                m = RE_LOADED.search(line)
                if m:
                    mp_secs = float(m.group(2))
                m = RE_ACK.search(line)
                if m and m.group(1) == "MISSION":
                    secs = time.monotonic() - t0
                    result = m.group(2)
                    break
            if stopper.stopped:
                return 0
            fields = dict(result=result, seconds=None if secs is None else round(secs, 6),
                          mavproxy_seconds=mp_secs, mission_type="mission", count=count)
            if args.repeat > 1:
                fields["iteration"] = i + 1
            ev.emit("uploaded", **fields)
            if result != "ACCEPTED":
                return 1
            times.append(secs)
        if args.repeat > 1:
            ev.emit("summary", mission_type="mission", count=count, n=args.repeat,
                    ok=len(times), min=round(min(times), 6), max=round(max(times), 6),
                    mean=round(statistics.mean(times), 6),
                    median=round(statistics.median(times), 6))
        ok = True
        return 0
    finally:
        rc = mp.close()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        ev.emit("exit", ok=ok, mavproxy_rc=rc, seconds=round(time.monotonic() - t_start, 3),
                **({"signal": stopper.signal} if stopper.signal else {}))


if __name__ == "__main__":
    sys.exit(main())
