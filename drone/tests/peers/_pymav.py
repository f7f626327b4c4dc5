"""pymavlink plumbing shared by pymavlink_vehicle.py and pymavlink_gcs.py.

MAVLink 2 only (MAVLINK20 is set before pymavlink is imported), dialect `common`, MAVLink 2
signing through pymavlink's own `mav.signing` state, and a receive loop that also hands back
the frames pymavlink rejected for their signature, classified.
"""

import hashlib
import os
import select
import time

os.environ["MAVLINK20"] = "1"
from pymavlink import mavutil  # noqa: E402

mavutil.set_dialect("common")
mavlink = mavutil.mavlink

MAVLINK_IFLAG_SIGNED = 0x01


def normalize_url(url):
    """Accepts pymavlink's `udpin:host:port` / `udpout:host:port`, and the `udpin://`,
    `udpout://` spellings (MAVSDK style) for convenience."""
    for scheme in ("udpin", "udpout", "udp", "tcp", "tcpin"):
        prefix = scheme + "://"
        if url.startswith(prefix):
            return scheme + ":" + url[len(prefix):]
    return url


def enum_name(enum, value):
    e = mavlink.enums.get(enum, {}).get(value)
    return e.name if e is not None else str(value)


def cmd_name(cmd):
    return enum_name("MAV_CMD", cmd)


class Link:
    """A pymavlink connection plus signing policy and rejection reporting.

    `require_signing`: with a key, unsigned frames and frames whose signature does not check
    out are dropped and come back from `recv()` as ("rejected", info). Without it, unsigned
    frames are accepted, but badly signed ones are still dropped (MAVLink spec: a signature
    that fails is never accepted). `verify=False` accepts every incoming frame whatever its
    signature (outgoing frames are still signed): for testing how the *other* side treats a
    wrong key.
    """

    def __init__(self, url, sysid, compid, key=None, link_id=0, require_signing=False,
                 verify=True, log=None):
        self.url = normalize_url(url)
        self.log = log
        self.conn = mavutil.mavlink_connection(
            self.url, source_system=sysid, source_component=compid)
        self.mav = self.conn.mav
        self.key = key
        self.require_signing = require_signing
        self.verify = verify
        self._badsig_seen = 0
        if key is not None:
            self._fix_stream_timestamps()
            self.conn.setup_signing(
                key, sign_outgoing=True, allow_unsigned_callback=self._allow_unsigned,
                link_id=link_id)

    def _fix_stream_timestamps(self):
        """pymavlink's check_signature() records a stream's timestamp *before* comparing the
        signature, so one forged frame with a far-future timestamp makes every genuine frame
        of that (link id, sysid, compid) stream look replayed afterwards. The MAVLink C library
        (and the spec) only move the stream timestamp on a frame that verified: do that."""
        mav = self.mav
        orig = mav.check_signature

        def check_signature(msgbuf, src_system, src_component):
            key = (msgbuf[-13], src_system, src_component)
            had = key in mav.signing.stream_timestamps
            before = mav.signing.stream_timestamps.get(key)
            ok = orig(msgbuf, src_system, src_component)
            if not ok:
                if had:
                    mav.signing.stream_timestamps[key] = before
                else:
                    mav.signing.stream_timestamps.pop(key, None)
            return ok

        mav.check_signature = check_signature

    def _allow_unsigned(self, mav, msgid):
        # pymavlink calls this both for unsigned frames and for frames whose signature failed
        # (check_signature() returned False): tell them apart by the bad-signature counter.
        bad = mav.signing.badsig_count != self._badsig_seen
        self._badsig_seen = mav.signing.badsig_count
        if not self.verify:
            return True
        if bad:
            return False
        return not self.require_signing

    def classify_rejected(self, buf):
        """Why a frame pymavlink refused ("Invalid signature") was refused."""
        buf = bytes(buf)
        info = {"bytes": len(buf)}
        if len(buf) >= 10 and buf[0] == 0xFD:
            info["msgid"] = buf[7] | (buf[8] << 8) | (buf[9] << 16)
            info["src"] = [buf[5], buf[6]]
            signed = bool(buf[2] & MAVLINK_IFLAG_SIGNED)
        elif len(buf) >= 6 and buf[0] == 0xFE:
            info["msgid"] = buf[5]
            info["src"] = [buf[3], buf[4]]
            info["mavlink1"] = True
            signed = False
        else:
            signed = False
        msg_cls = mavlink.mavlink_map.get(info.get("msgid"))
        if msg_cls is not None:
            info["msg"] = msg_cls.msgname
        if not signed:
            info["reason"] = "unsigned"
        else:
            info["link_id"] = buf[-13]
            ts = int.from_bytes(buf[-12:-6], "little")
            info["timestamp"] = ts
            h = hashlib.sha256()
            h.update(self.key)
            h.update(buf[:-6])
            if h.digest()[:6] != buf[-6:]:
                info["reason"] = "bad_signature"
            else:
                info["reason"] = "stale_timestamp"
        return info

    def recv(self, timeout):
        """Next message, or None after `timeout` seconds. Returns a pymavlink message, or
        ("rejected", info) for a frame dropped by the signing check. Other BAD_DATA (unknown
        message ids, CRC errors) is logged and skipped."""
        deadline = time.monotonic() + timeout
        while True:
            m = self.conn.recv_msg()
            if m is not None:
                if m.get_type() == "BAD_DATA":
                    reason = getattr(m, "reason", "")
                    if "signature" in reason.lower():
                        return ("rejected", self.classify_rejected(m.get_msgbuf()))
                    if self.log:
                        self.log.debug("bad data: %s", reason)
                    continue
                return m
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            try:
                select.select([self.conn.fd], [], [], min(left, 0.05))
            except (OSError, ValueError):
                time.sleep(min(left, 0.05))

    def close(self):
        try:
            self.conn.close()
        except Exception:
            pass


def is_signed(msg):
    """Whether a received (accepted) pymavlink message carried a signature."""
    try:
        return bool(msg.get_header().incompat_flags & MAVLINK_IFLAG_SIGNED)
    except Exception:
        return False
