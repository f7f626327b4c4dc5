#!/usr/bin/env python3
"""A MAVLink 2 vehicle made of MAVSDK's C++ core (the `mavsdk` PyPI package, 4.x: the C++
library loaded in-process through its C wrapper, no separate mavsdk_server) acting as the
autopilot component, for the drone interop tests.

Server plugins used:
* MissionRawServer: receives mission/fence/rally uploads, answers downloads.
* TelemetryServer: publishes position (GLOBAL_POSITION_INT), home, battery, sys/extended state.
* ActionServer: arm/disarm, takeoff, DO_SET_MODE / SET_MODE (PX4 custom modes), all allowed.
* MavlinkDirectServer: answers the commands ActionServer does not handle (NAV_LAND,
  NAV_RETURN_TO_LAUNCH, MISSION_START, ... see --ack-commands) with COMMAND_ACK ACCEPTED, and
  lets us observe incoming mission/command messages for the event stream.

MAVSDK itself sends HEARTBEAT at 1 Hz (autopilot component), and ActionServer an
AUTOPILOT_VERSION at 1 Hz.

Prints JSON lines on stdout (see README.md beside this file); logs (including MAVSDK's own)
go to stderr.
"""

import argparse
import ctypes
import json
import sys
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ beside the tests for our helper modules
import _peerlib as P  # noqa: E402

# Commands ActionServer has no handler for, which we ack ACCEPTED ourselves (MAVSDK would
# otherwise not answer them at all): 20 NAV_RETURN_TO_LAUNCH, 21 NAV_LAND, 300 MISSION_START,
# 178 DO_CHANGE_SPEED, 189 DO_LAND_START, 192 DO_REPOSITION.
DEFAULT_ACK_COMMANDS = "20,21,300,178,189,192"

OBSERVED = ("MISSION_COUNT", "MISSION_REQUEST_LIST", "MISSION_ACK", "MISSION_CLEAR_ALL",
            "MISSION_SET_CURRENT", "COMMAND_LONG", "COMMAND_INT", "SET_MODE")

CMD_NAMES = {20: "MAV_CMD_NAV_RETURN_TO_LAUNCH", 21: "MAV_CMD_NAV_LAND", 22: "MAV_CMD_NAV_TAKEOFF",
             176: "MAV_CMD_DO_SET_MODE", 178: "MAV_CMD_DO_CHANGE_SPEED",
             189: "MAV_CMD_DO_LAND_START", 192: "MAV_CMD_DO_REPOSITION",
             300: "MAV_CMD_MISSION_START", 400: "MAV_CMD_COMPONENT_ARM_DISARM",
             246: "MAV_CMD_PREFLIGHT_REBOOT_SHUTDOWN", 511: "MAV_CMD_SET_MESSAGE_INTERVAL",
             512: "MAV_CMD_REQUEST_MESSAGE", 520: "MAV_CMD_REQUEST_AUTOPILOT_CAPABILITIES"}


def mavsdk_url(gcs):
    """The GCS address as a MAVSDK connection URL. A vehicle *sends* to a GCS that listens, so
    that is MAVSDK's `udpout://HOST:PORT` (`udp://` / `udpin://` would make MAVSDK listen).
    Also accepted: `HOST:PORT`, pymavlink's `udpout:HOST:PORT`, and `udp://HOST:PORT` (read as
    "the GCS is at"), all turned into udpout://."""
    for prefix in ("udpout://", "udp://", "udpout:", "udp:"):
        if gcs.startswith(prefix):
            return "udpout://" + gcs[len(prefix):]
    if "://" in gcs:
        return gcs  # tcp://, serial://, udpin:// ... passed through as given
    return "udpout://" + gcs


class Vehicle:
    def __init__(self, args, ev, stopper, log):
        self.args, self.ev, self.stopper, self.log = args, ev, stopper, log
        self.lock = threading.Lock()
        self.armed = False
        self.rel_alt = 0.0
        self.landed = True
        self.mode = "READY"
        self.current_seq = None

    def start(self):
        import mavsdk
        from mavsdk import Mavsdk, Configuration, ComponentType
        from mavsdk.cmavsdk_loader import _cmavsdk_lib
        from mavsdk.logging import log_subscribe, LogLevel
        from mavsdk.plugins.mission_raw_server import MissionRawServer
        from mavsdk.plugins.telemetry_server import TelemetryServer
        from mavsdk.plugins.action_server import ActionServer, AllowableFlightModes
        from mavsdk.plugins.mavlink_direct_server import MavlinkDirectServer

        # MAVSDK's log lines -> our stderr log (they would go to stdout/stderr raw otherwise).
        def on_log(level, message, file, line):
            lvl = {LogLevel.DEBUG: 10, LogLevel.INFO: 20, LogLevel.WARN: 30,
                   LogLevel.ERROR: 40}.get(level, 20)
            self.log.log(lvl, "mavsdk: %s", message)
            return True
        log_subscribe(on_log)

        cfg = Configuration.create_with_component_type(ComponentType.AUTOPILOT)
        cfg.system_id = self.args.sysid
        cfg.component_id = self.args.compid
        # Not wrapped in Python (yet): HEARTBEAT.type would otherwise be MAV_TYPE_GENERIC.
        if hasattr(_cmavsdk_lib, "mavsdk_configuration_set_mav_type"):
            _cmavsdk_lib.mavsdk_configuration_set_mav_type.argtypes = [ctypes.c_void_p, ctypes.c_uint8]
            _cmavsdk_lib.mavsdk_configuration_set_mav_type.restype = None
            _cmavsdk_lib.mavsdk_configuration_set_mav_type(cfg._handle, self.args.mav_type)
        self.sdk = Mavsdk(cfg)
        self.version = self.sdk.version()
        self.url = mavsdk_url(self.args.gcs)
        res = self.sdk.add_any_connection(self.url)
        if int(res) != 0 and getattr(res, "name", "") != "SUCCESS":
            raise RuntimeError("add_any_connection(%s) failed: %s" % (self.url, res))

        sc = self.sdk.server_component(0)
        self.mission = MissionRawServer(sc)
        self.telem = TelemetryServer(sc)
        self.action = ActionServer(sc)
        self.direct = MavlinkDirectServer(sc)
        self.mavsdk_mod = mavsdk

        self.action.set_allowable_flight_modes(AllowableFlightModes(
            can_auto_mode=True, can_guided_mode=True, can_stabilize_mode=True,
            can_auto_rtl_mode=True, can_auto_takeoff_mode=True, can_auto_land_mode=True,
            can_auto_loiter_mode=True))
        self.action.set_allow_takeoff(True)
        self.action.set_armable(True, True)
        self.action.set_disarmable(True, True)

        self.mission.subscribe_incoming_mission(self._guard(self.on_incoming_mission))
        self.mission.subscribe_current_item_changed(self._guard(self.on_current_item))
        self.mission.subscribe_clear_all(self._guard(self.on_clear_all))
        self.action.subscribe_arm_disarm(self._guard(self.on_arm_disarm))
        self.action.subscribe_takeoff(self._guard(self.on_takeoff))
        self.action.subscribe_land(self._guard(self.on_land))
        self.action.subscribe_flight_mode_change(self._guard(self.on_flight_mode))
        self.action.subscribe_reboot(self._guard(lambda r, d, u: self.ev.emit("reboot", result=r.name)))
        self.action.subscribe_shutdown(self._guard(lambda r, d, u: self.ev.emit("shutdown", result=r.name)))
        self.action.subscribe_terminate(self._guard(lambda r, d, u: self.ev.emit("terminate", result=r.name)))
        for name in OBSERVED:
            self.direct.subscribe_message(name, self._guard(self.on_message))
        for cmd in self.ack_commands():
            self.direct.subscribe_command(cmd, self._guard(self.on_direct_command))

    def ack_commands(self):
        s = self.args.ack_commands.strip()
        return [int(x) for x in s.split(",") if x.strip()] if s else []

    def _guard(self, fn):
        """MAVSDK's Python wrappers print() callback exceptions; log them properly instead."""
        def wrapped(*a):
            try:
                fn(*a)
            except Exception:
                self.log.exception("callback %s failed", getattr(fn, "__name__", fn))
        return wrapped

    # -- callbacks (MAVSDK's callback thread) ---------------------------------------------
    def on_incoming_mission(self, result, plan, _ud):
        items = [P.item_to_json(it) for it in plan.mission_items]
        mtype = items[0]["mission_type"] if items else self._last_count_type
        self.ev.emit("incoming_mission", result=result.name,
                     mission_type=P.MISSION_TYPE_NAMES.get(mtype, mtype), count=len(items),
                     items=items)

    _last_count_type = None

    def on_current_item(self, item, _ud):
        self.current_seq = item.seq
        self.ev.emit("current_item_changed", seq=item.seq, item=P.item_to_json(item))

    def on_clear_all(self, mission_type, _ud):
        self.ev.emit("clear_all", mission_type="all" if mission_type == 255 else
                     P.MISSION_TYPE_NAMES.get(mission_type, mission_type))

    def on_arm_disarm(self, result, data, _ud):
        if result.name == "SUCCESS":
            with self.lock:
                self.armed = bool(data.arm)
        self.ev.emit("arm_disarm", result=result.name, arm=bool(data.arm), force=bool(data.force))

    def on_takeoff(self, result, takeoff, _ud):
        if result.name == "SUCCESS":
            with self.lock:
                self.rel_alt = self.args.takeoff_alt
                self.landed = False
            self._set_mode("TAKEOFF")
        self.ev.emit("takeoff", result=result.name)

    def on_land(self, result, land, _ud):
        if result.name == "SUCCESS":
            with self.lock:
                self.rel_alt = 0.0
                self.landed = True
        self.ev.emit("land", result=result.name)

    def on_flight_mode(self, result, mode, _ud):
        self.ev.emit("flight_mode_change", result=result.name, mode=mode.name)

    def on_message(self, msg, _ud):
        try:
            fields = json.loads(msg.fields_json) if msg.fields_json else {}
        except ValueError:
            fields = {"raw": msg.fields_json}
        if msg.message_name == "MISSION_COUNT":
            self._last_count_type = fields.get("mission_type", 0)
        if msg.message_name in ("COMMAND_LONG", "COMMAND_INT"):
            cmd = int(fields.get("command", -1))
            params = [fields.get("param%d" % i) for i in range(1, 5)]
            if msg.message_name == "COMMAND_LONG":
                params += [fields.get("param5"), fields.get("param6"), fields.get("param7")]
            else:
                params += [fields.get("x"), fields.get("y"), fields.get("z")]
            self.ev.emit("command", id=cmd, name=CMD_NAMES.get(cmd, str(cmd)),
                         kind="long" if msg.message_name == "COMMAND_LONG" else "int",
                         params=params, src=[msg.system_id, msg.component_id],
                         target=[fields.get("target_system"), fields.get("target_component")])
            return
        self.ev.emit("rx", msg=msg.message_name, src=[msg.system_id, msg.component_id],
                     fields=fields)

    def on_direct_command(self, msg, _ud):
        fields = json.loads(msg.fields_json) if msg.fields_json else {}
        cmd = int(fields.get("command", -1))
        ack = {"command": cmd, "result": 0, "progress": 255, "result_param2": 0,
               "target_system": msg.system_id, "target_component": msg.component_id}
        from mavsdk.plugins.mavlink_direct_server import MavlinkMessage
        self.direct.send_message(MavlinkMessage(
            message_name="COMMAND_ACK", system_id=self.args.sysid, component_id=self.args.compid,
            target_system_id=0, target_component_id=0, fields_json=json.dumps(ack)))
        # Reflect the command in the state we publish.
        if cmd == 20:
            self._set_mode("RETURN_TO_LAUNCH")
        elif cmd == 21:
            with self.lock:
                self.rel_alt = 0.0
                self.landed = True
            self._set_mode("LAND")
        elif cmd == 300:
            self._set_mode("MISSION")
        self.ev.emit("command_acked", id=cmd, name=CMD_NAMES.get(cmd, str(cmd)),
                     result="MAV_RESULT_ACCEPTED", src=[msg.system_id, msg.component_id])

    def _set_mode(self, name):
        from mavsdk.plugins.action_server import FlightMode
        try:
            self.action.set_flight_mode_internal(FlightMode[name])
            self.mode = name
        except Exception as e:  # noqa: BLE001
            self.log.warning("set_flight_mode(%s): %s", name, e)

    # -- telemetry ------------------------------------------------------------------------
    def publish(self, with_home):
        from mavsdk.plugins.telemetry_server import (
            Position, VelocityNed, Heading, Battery, VtolState, LandedState)
        a = self.args
        with self.lock:
            rel = self.rel_alt
            landed = self.landed
        pos = Position(a.lat, a.lon, a.alt + rel, rel)
        self.telem.publish_position(pos, VelocityNed(0.0, 0.0, 0.0), Heading(a.heading))
        batt = Battery(a.battery_v, a.battery_pct / 100.0)  # MAVSDK wants 0..1 here
        self.telem.publish_battery(batt)
        self.telem.publish_sys_status(batt, True, True, True, True, True)
        self.telem.publish_extended_sys_state(
            VtolState.UNDEFINED, LandedState.ON_GROUND if landed else LandedState.IN_AIR)
        if with_home:
            self.telem.publish_home(Position(a.lat, a.lon, a.alt, 0.0))

    def stop(self):
        try:
            self.sdk.destroy()
        except Exception:  # noqa: BLE001
            pass


def main():
    ap = argparse.ArgumentParser(
        description="MAVSDK (C++ core) as a MAVLink 2 vehicle/autopilot sending to a GCS. "
                    "JSON lines on stdout, logs on stderr.")
    ap.add_argument("--gcs", required=True,
                    help="where the GCS listens: udpout://127.0.0.1:PORT (also accepted: "
                         "udp://127.0.0.1:PORT, udpout:127.0.0.1:PORT, 127.0.0.1:PORT)")
    ap.add_argument("--sysid", type=int, default=1, help="vehicle system id (default 1)")
    ap.add_argument("--compid", type=int, default=1,
                    help="autopilot component id (default 1, MAV_COMP_ID_AUTOPILOT1)")
    ap.add_argument("--mav-type", type=int, default=2,
                    help="HEARTBEAT type (default 2, MAV_TYPE_QUADROTOR; MAVSDK's own default "
                         "for an autopilot is 0, GENERIC)")
    ap.add_argument("--rate", type=float, default=4.0,
                    help="telemetry publish rate in Hz (default 4)")
    ap.add_argument("--lat", type=float, default=35.4437)
    ap.add_argument("--lon", type=float, default=139.6380)
    ap.add_argument("--alt", type=float, default=10.0, help="AMSL altitude on the ground, m")
    ap.add_argument("--heading", type=float, default=90.0)
    ap.add_argument("--takeoff-alt", type=float, default=10.0)
    ap.add_argument("--battery-v", type=float, default=16.2)
    ap.add_argument("--battery-pct", type=float, default=87.0)
    ap.add_argument("--ack-commands", default=DEFAULT_ACK_COMMANDS,
                    help="comma-separated MAV_CMD ids that ActionServer does not handle and we "
                         "ack ACCEPTED ourselves (default %s; empty: none, and MAVSDK then "
                         "sends no COMMAND_ACK for them at all)" % DEFAULT_ACK_COMMANDS)
    ap.add_argument("--duration", type=float, default=0.0,
                    help="exit by itself after this many seconds (default: run until SIGTERM)")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args()

    log = P.setup_logging("mavsdk_vehicle", args.verbose)
    ev = P.Events()
    stopper = P.Stopper()

    v = Vehicle(args, ev, stopper, log)
    try:
        v.start()
    except Exception as e:  # noqa: BLE001
        log.exception("start failed")
        ev.emit("error", detail=str(e))
        return 1
    ev.emit("ready", sysid=args.sysid, compid=args.compid, connection=v.url,
            mavsdk=v.version, mavsdk_python=getattr(v.mavsdk_mod, "__version__", None),
            ack_commands=v.ack_commands())

    period = 1.0 / max(args.rate, 0.1)
    t_end = time.monotonic() + args.duration if args.duration > 0 else None
    n = 0
    while not stopper.stopped:
        try:
            v.publish(with_home=(n % max(1, int(round(args.rate))) == 0))
        except Exception as e:  # noqa: BLE001
            log.warning("publish: %s", e)
        n += 1
        if t_end is not None and time.monotonic() >= t_end:
            break
        stopper.wait(period)
    v.stop()
    ev.emit("exit", **({"signal": stopper.signal} if stopper.signal else {}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
