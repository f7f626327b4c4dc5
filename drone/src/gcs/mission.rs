//! The MAVLink mission protocol as two transport-free state machines.
//!
//! Every transfer of a mission, fence or rally list has a side that holds the items and a side
//! that asks for them one by one (<https://mavlink.io/en/services/mission.html>):
//!
//! | transfer                          | [`Sender`] (holds the items) | [`Receiver`] (requests them) |
//! |-----------------------------------|------------------------------|------------------------------|
//! | upload (ground station → vehicle) | ground station               | vehicle                      |
//! | download (vehicle → ground station)| vehicle                     | ground station               |
//!
//! The machines never touch a socket or a clock: they are fed the messages of their peer and the
//! current instant, and answer with the messages to send, the next deadline and, once finished,
//! the outcome. The ground station ([`super::station`]) and the vehicle simulator
//! ([`crate::sim`]) drive the same code, and tests drive it message by message.
//!
//! Timing follows the protocol's recommendations: 1.5 s for a reply to a request, 250 ms for an
//! item the receiver has asked for, 5 retries of the last message before giving up. A transfer
//! that gives up or is refused is an error, never a partial success: an upload counts as done
//! only when the vehicle accepted it after it was sent every item.

use std::time::{Duration, Instant};

use mavlink::dialects::common::{
    MavCmd, MavFrame, MavMessage, MavMissionResult, MavMissionType, MISSION_ACK_DATA,
    MISSION_COUNT_DATA, MISSION_ITEM_INT_DATA, MISSION_REQUEST_INT_DATA, MISSION_REQUEST_LIST_DATA,
};
use num_traits::{FromPrimitive, ToPrimitive};
use serde::{Deserialize, Serialize};

/// Which of a vehicle's three lists a transfer is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ListKind {
    Mission,
    Fence,
    Rally,
}

impl ListKind {
    pub fn wire(self) -> MavMissionType {
        match self {
            ListKind::Mission => MavMissionType::MAV_MISSION_TYPE_MISSION,
            ListKind::Fence => MavMissionType::MAV_MISSION_TYPE_FENCE,
            ListKind::Rally => MavMissionType::MAV_MISSION_TYPE_RALLY,
        }
    }

    pub fn from_wire(t: MavMissionType) -> Option<ListKind> {
        match t {
            MavMissionType::MAV_MISSION_TYPE_MISSION => Some(ListKind::Mission),
            MavMissionType::MAV_MISSION_TYPE_FENCE => Some(ListKind::Fence),
            MavMissionType::MAV_MISSION_TYPE_RALLY => Some(ListKind::Rally),
            _ => None,
        }
    }
}

impl std::fmt::Display for ListKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ListKind::Mission => "mission",
            ListKind::Fence => "fence",
            ListKind::Rally => "rally",
        })
    }
}

/// One item of a list, with plain numbers (the wire's MISSION_ITEM_INT without addressing).
/// `x`/`y` are latitude/longitude × 1e7 for global frames.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MissionItem {
    pub seq: u16,
    pub frame: u8,
    pub command: u16,
    pub current: u8,
    pub autocontinue: u8,
    pub param1: f32,
    pub param2: f32,
    pub param3: f32,
    pub param4: f32,
    pub x: i32,
    pub y: i32,
    pub z: f32,
}

impl MissionItem {
    /// The wire message for this item, or `None` for a command or frame the common dialect
    /// does not know (such an item cannot be sent).
    pub fn to_wire(&self, kind: ListKind, target: Target) -> Option<MISSION_ITEM_INT_DATA> {
        Some(MISSION_ITEM_INT_DATA {
            param1: self.param1,
            param2: self.param2,
            param3: self.param3,
            param4: self.param4,
            x: self.x,
            y: self.y,
            z: self.z,
            seq: self.seq,
            command: MavCmd::from_u16(self.command)?,
            target_system: target.system,
            target_component: target.component,
            frame: MavFrame::from_u8(self.frame)?,
            current: self.current,
            autocontinue: self.autocontinue,
            mission_type: kind.wire(),
        })
    }

    pub fn from_wire(m: &MISSION_ITEM_INT_DATA) -> MissionItem {
        MissionItem {
            seq: m.seq,
            frame: m.frame.to_u8().unwrap_or(u8::MAX),
            command: m.command.to_u16().unwrap_or(u16::MAX),
            current: m.current,
            autocontinue: m.autocontinue,
            param1: m.param1,
            param2: m.param2,
            param3: m.param3,
            param4: m.param4,
            x: m.x,
            y: m.y,
            z: m.z,
        }
    }
}

/// The system and component a transfer talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Target {
    pub system: u8,
    pub component: u8,
}

/// Timeouts and retries of a transfer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timing {
    /// How long to wait for the reply to a request (count, list request, item sent).
    pub reply_timeout: Duration,
    /// How long the receiver waits for an item it asked for.
    pub item_timeout: Duration,
    /// How often the last message is sent again before the transfer gives up.
    pub retries: u32,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            reply_timeout: Duration::from_millis(1500),
            item_timeout: Duration::from_millis(250),
            retries: 5,
        }
    }
}

/// Why a transfer failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MissionError {
    #[error("no answer from the vehicle after {attempts} attempts (waiting for {waiting_for})")]
    Timeout {
        attempts: u32,
        waiting_for: &'static str,
    },
    #[error("the peer refused the {kind}: {result:?}")]
    Refused {
        kind: ListKind,
        result: MavMissionResult,
    },
    #[error("the peer acknowledged the {kind} after only {sent} of {count} items: treated as failed, nothing is reported as uploaded")]
    PartialAccept {
        kind: ListKind,
        sent: u16,
        count: u16,
    },
    #[error("the peer asked for item {seq} of a {kind} of {count} items (next expected {expected}): out of sequence, transfer cancelled")]
    OutOfSequence {
        kind: ListKind,
        seq: u16,
        expected: u16,
        count: u16,
    },
    #[error("item {seq} cannot be sent: command {command} or frame {frame} is not in the MAVLink common dialect")]
    UnknownItem { seq: u16, command: u16, frame: u8 },
    #[error("item {index} has seq {seq}: items must be numbered 0, 1, 2, ...")]
    BadNumbering { index: usize, seq: u16 },
    #[error("{count} items do not fit a MAVLink list (at most 65535)")]
    TooMany { count: usize },
    #[error("the transfer was cancelled: {0}")]
    Cancelled(String),
}

/// What a step of a transfer produced.
#[derive(Debug, Default)]
pub struct Step {
    /// Messages to send to the peer, in order.
    pub send: Vec<MavMessage>,
    /// Set once the transfer is over: the items (for a receiver; the sent items for a sender).
    pub done: Option<Result<Vec<MissionItem>, MissionError>>,
}

impl Step {
    fn send(msg: MavMessage) -> Step {
        Step {
            send: vec![msg],
            done: None,
        }
    }

    fn nothing() -> Step {
        Step::default()
    }
}

fn ack(kind: ListKind, target: Target, result: MavMissionResult) -> MavMessage {
    MavMessage::MISSION_ACK(MISSION_ACK_DATA {
        target_system: target.system,
        target_component: target.component,
        mavtype: result,
        mission_type: kind.wire(),
        opaque_id: 0,
    })
}

/// Retries and the deadline of the message last sent.
#[derive(Debug)]
struct Resend {
    last: MavMessage,
    deadline: Instant,
    attempts: u32,
    waiting_for: &'static str,
}

impl Resend {
    fn new(last: MavMessage, now: Instant, wait: Duration, waiting_for: &'static str) -> Resend {
        Resend {
            last,
            deadline: now + wait,
            attempts: 1,
            waiting_for,
        }
    }

    /// Progress was made: a new message went out.
    fn sent(&mut self, last: MavMessage, now: Instant, wait: Duration, waiting_for: &'static str) {
        *self = Resend::new(last, now, wait, waiting_for);
    }

    /// The deadline passed: the last message again, or the error after the last retry.
    fn timeout(
        &mut self,
        now: Instant,
        wait: Duration,
        retries: u32,
    ) -> Result<MavMessage, MissionError> {
        if self.attempts > retries {
            return Err(MissionError::Timeout {
                attempts: self.attempts,
                waiting_for: self.waiting_for,
            });
        }
        self.attempts += 1;
        self.deadline = now + wait;
        Ok(self.last.clone())
    }
}

/// The side that holds the items and answers requests for them.
#[derive(Debug)]
pub struct Sender {
    kind: ListKind,
    target: Target,
    timing: Timing,
    items: Vec<MISSION_ITEM_INT_DATA>,
    /// One past the highest item the receiver has asked for.
    requested: u16,
    resend: Resend,
    finished: bool,
}

impl Sender {
    /// Checks the items and announces them with MISSION_COUNT: an upload from the ground
    /// station, or a vehicle answering MISSION_REQUEST_LIST.
    pub fn start(
        kind: ListKind,
        items: &[MissionItem],
        target: Target,
        timing: Timing,
        now: Instant,
    ) -> Result<(Sender, Step), MissionError> {
        let count =
            u16::try_from(items.len()).map_err(|_| MissionError::TooMany { count: items.len() })?;
        let mut wire = Vec::with_capacity(items.len());
        for (index, item) in items.iter().enumerate() {
            if usize::from(item.seq) != index {
                return Err(MissionError::BadNumbering {
                    index,
                    seq: item.seq,
                });
            }
            wire.push(
                item.to_wire(kind, target)
                    .ok_or(MissionError::UnknownItem {
                        seq: item.seq,
                        command: item.command,
                        frame: item.frame,
                    })?,
            );
        }
        let announce = MavMessage::MISSION_COUNT(MISSION_COUNT_DATA {
            count,
            target_system: target.system,
            target_component: target.component,
            mission_type: kind.wire(),
            opaque_id: 0,
        });
        let sender = Sender {
            kind,
            target,
            timing,
            items: wire,
            requested: 0,
            resend: Resend::new(
                announce.clone(),
                now,
                timing.reply_timeout,
                "a request for the first item",
            ),
            finished: false,
        };
        Ok((sender, Step::send(announce)))
    }

    pub fn kind(&self) -> ListKind {
        self.kind
    }

    pub fn deadline(&self) -> Instant {
        self.resend.deadline
    }

    fn count(&self) -> u16 {
        self.items.len() as u16
    }

    fn fail(&mut self, error: MissionError, cancel: bool) -> Step {
        self.finished = true;
        let send = if cancel {
            vec![ack(
                self.kind,
                self.target,
                MavMissionResult::MAV_MISSION_OPERATION_CANCELLED,
            )]
        } else {
            Vec::new()
        };
        Step {
            send,
            done: Some(Err(error)),
        }
    }

    /// Feeds a message from the peer. Messages of other lists or kinds are ignored.
    pub fn on_message(&mut self, msg: &MavMessage, now: Instant) -> Step {
        if self.finished {
            return Step::nothing();
        }
        let seq = match msg {
            MavMessage::MISSION_REQUEST_INT(r) if r.mission_type == self.kind.wire() => r.seq,
            // The deprecated float request still comes from older vehicles; the answer is the
            // same integer item.
            #[allow(deprecated)]
            MavMessage::MISSION_REQUEST(r) if r.mission_type == self.kind.wire() => r.seq,
            MavMessage::MISSION_ACK(a) if a.mission_type == self.kind.wire() => {
                return self.on_ack(a.mavtype);
            }
            _ => return Step::nothing(),
        };
        let count = self.count();
        // A request for an item already sent is a retransmission (our item was lost); one
        // further than the next is a protocol violation the vehicle must not get away with.
        if seq >= count || seq > self.requested {
            let error = MissionError::OutOfSequence {
                kind: self.kind,
                seq,
                expected: self.requested,
                count,
            };
            return self.fail(error, true);
        }
        self.requested = self.requested.max(seq + 1);
        let item = MavMessage::MISSION_ITEM_INT(self.items[usize::from(seq)].clone());
        let waiting_for = if self.requested == count {
            "the acknowledgement"
        } else {
            "a request for the next item"
        };
        self.resend
            .sent(item.clone(), now, self.timing.reply_timeout, waiting_for);
        Step::send(item)
    }

    fn on_ack(&mut self, result: MavMissionResult) -> Step {
        self.finished = true;
        let done = if result != MavMissionResult::MAV_MISSION_ACCEPTED {
            Err(MissionError::Refused {
                kind: self.kind,
                result,
            })
        } else if self.requested < self.count() {
            Err(MissionError::PartialAccept {
                kind: self.kind,
                sent: self.requested,
                count: self.count(),
            })
        } else {
            Ok(self.items.iter().map(MissionItem::from_wire).collect())
        };
        Step {
            send: Vec::new(),
            done: Some(done),
        }
    }

    /// Called at or after [`Sender::deadline`].
    pub fn on_timeout(&mut self, now: Instant) -> Step {
        if self.finished || now < self.resend.deadline {
            return Step::nothing();
        }
        match self
            .resend
            .timeout(now, self.timing.reply_timeout, self.timing.retries)
        {
            Ok(again) => Step::send(again),
            Err(e) => self.fail(e, true),
        }
    }
}

/// The side that asks for the items one by one.
#[derive(Debug)]
pub struct Receiver {
    kind: ListKind,
    target: Target,
    timing: Timing,
    count: Option<u16>,
    items: Vec<MissionItem>,
    resend: Resend,
    finished: bool,
}

impl Receiver {
    /// A ground station downloading a list: sends MISSION_REQUEST_LIST.
    pub fn download(
        kind: ListKind,
        target: Target,
        timing: Timing,
        now: Instant,
    ) -> (Receiver, Step) {
        let request = MavMessage::MISSION_REQUEST_LIST(MISSION_REQUEST_LIST_DATA {
            target_system: target.system,
            target_component: target.component,
            mission_type: kind.wire(),
        });
        let receiver = Receiver {
            kind,
            target,
            timing,
            count: None,
            items: Vec::new(),
            resend: Resend::new(request.clone(), now, timing.reply_timeout, "the item count"),
            finished: false,
        };
        (receiver, Step::send(request))
    }

    /// A vehicle that was sent MISSION_COUNT: starts requesting the items.
    pub fn accept_upload(
        kind: ListKind,
        count: u16,
        target: Target,
        timing: Timing,
        now: Instant,
    ) -> (Receiver, Step) {
        let placeholder = MavMessage::MISSION_ACK(MISSION_ACK_DATA::default());
        let mut receiver = Receiver {
            kind,
            target,
            timing,
            count: None,
            items: Vec::new(),
            resend: Resend::new(placeholder, now, timing.item_timeout, "the first item"),
            finished: false,
        };
        let step = receiver.on_count(count, now);
        (receiver, step)
    }

    pub fn kind(&self) -> ListKind {
        self.kind
    }

    pub fn deadline(&self) -> Instant {
        self.resend.deadline
    }

    fn request(&self, seq: u16) -> MavMessage {
        MavMessage::MISSION_REQUEST_INT(MISSION_REQUEST_INT_DATA {
            seq,
            target_system: self.target.system,
            target_component: self.target.component,
            mission_type: self.kind.wire(),
        })
    }

    fn on_count(&mut self, count: u16, now: Instant) -> Step {
        self.count = Some(count);
        self.items.reserve(usize::from(count));
        if count == 0 {
            return self.finish();
        }
        let first = self.request(0);
        self.resend
            .sent(first.clone(), now, self.timing.item_timeout, "item 0");
        Step::send(first)
    }

    fn finish(&mut self) -> Step {
        self.finished = true;
        Step {
            send: vec![ack(
                self.kind,
                self.target,
                MavMissionResult::MAV_MISSION_ACCEPTED,
            )],
            done: Some(Ok(std::mem::take(&mut self.items))),
        }
    }

    /// Feeds a message from the peer. Messages of other lists or kinds are ignored.
    pub fn on_message(&mut self, msg: &MavMessage, now: Instant) -> Step {
        if self.finished {
            return Step::nothing();
        }
        match msg {
            MavMessage::MISSION_COUNT(c)
                if c.mission_type == self.kind.wire() && self.count.is_none() =>
            {
                self.on_count(c.count, now)
            }
            MavMessage::MISSION_ITEM_INT(item) if item.mission_type == self.kind.wire() => {
                let Some(count) = self.count else {
                    return Step::nothing();
                };
                let expected = self.items.len() as u16;
                // An item we did not ask for (a duplicate or one from the future) is dropped;
                // the request for the expected one goes out again at its deadline.
                if item.seq != expected {
                    return Step::nothing();
                }
                self.items.push(MissionItem::from_wire(item));
                if self.items.len() == usize::from(count) {
                    return self.finish();
                }
                let next = self.request(expected + 1);
                self.resend
                    .sent(next.clone(), now, self.timing.item_timeout, "the next item");
                Step::send(next)
            }
            MavMessage::MISSION_ACK(a) if a.mission_type == self.kind.wire() => {
                // The sender gave up or refused.
                self.finished = true;
                Step {
                    send: Vec::new(),
                    done: Some(Err(MissionError::Refused {
                        kind: self.kind,
                        result: a.mavtype,
                    })),
                }
            }
            _ => Step::nothing(),
        }
    }

    /// Called at or after [`Receiver::deadline`].
    pub fn on_timeout(&mut self, now: Instant) -> Step {
        if self.finished || now < self.resend.deadline {
            return Step::nothing();
        }
        let wait = if self.count.is_some() {
            self.timing.item_timeout
        } else {
            self.timing.reply_timeout
        };
        match self.resend.timeout(now, wait, self.timing.retries) {
            Ok(again) => Step::send(again),
            Err(e) => {
                self.finished = true;
                Step {
                    send: vec![ack(
                        self.kind,
                        self.target,
                        MavMissionResult::MAV_MISSION_OPERATION_CANCELLED,
                    )],
                    done: Some(Err(e)),
                }
            }
        }
    }
}

/// Numbering conventions for the mission list (fence and rally lists are the same everywhere).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Convention {
    /// PX4, MAVSDK and the MAVLink spec: item 0 is the first mission item.
    Standard,
    /// ArduPilot: item 0 is the home position; the mission proper starts at 1.
    Ardupilot,
}

/// The list to upload for `mission` under `convention`: for ArduPilot, `home` becomes item 0
/// and the rest are renumbered.
pub fn for_upload(
    mission: &[MissionItem],
    home: MissionItem,
    convention: Convention,
) -> Vec<MissionItem> {
    match convention {
        Convention::Standard => mission.to_vec(),
        Convention::Ardupilot => std::iter::once(home)
            .chain(mission.iter().copied())
            .enumerate()
            .map(|(i, mut item)| {
                item.seq = i as u16;
                item
            })
            .collect(),
    }
}

/// The mission proper from a downloaded list: for ArduPilot, item 0 (home) is dropped and the
/// rest renumbered from 0.
pub fn from_download(list: &[MissionItem], convention: Convention) -> Vec<MissionItem> {
    match convention {
        Convention::Standard => list.to_vec(),
        Convention::Ardupilot => list
            .iter()
            .skip(1)
            .enumerate()
            .map(|(i, item)| MissionItem {
                seq: i as u16,
                ..*item
            })
            .collect(),
    }
}

/// Whether a list read back from a vehicle is the list that was uploaded, as far as the
/// vehicle can be expected to keep it: the same commands at the same places and parameters;
/// `current` (the vehicle marks the active item) and the integer-or-float flavour of the frame
/// (ArduPilot may answer in the float frames) do not count, and altitudes may be rounded to
/// centimetres. For ArduPilot's mission list compare [`from_download`] of both: the vehicle
/// keeps its own home as item 0.
pub fn same_items(sent: &[MissionItem], back: &[MissionItem]) -> bool {
    fn frame_kind(f: u8) -> u8 {
        match f {
            5 => 0,   // GLOBAL_INT → GLOBAL
            6 => 3,   // GLOBAL_RELATIVE_ALT_INT → GLOBAL_RELATIVE_ALT
            11 => 10, // GLOBAL_TERRAIN_ALT_INT → GLOBAL_TERRAIN_ALT
            other => other,
        }
    }
    let close = |a: f32, b: f32| (a.is_nan() && b.is_nan()) || (a - b).abs() <= 0.01;
    sent.len() == back.len()
        && sent.iter().zip(back).all(|(a, b)| {
            a.seq == b.seq
                && a.command == b.command
                && frame_kind(a.frame) == frame_kind(b.frame)
                && a.autocontinue == b.autocontinue
                && a.x == b.x
                && a.y == b.y
                && close(a.z, b.z)
                && close(a.param1, b.param1)
                && close(a.param2, b.param2)
                && close(a.param3, b.param3)
                && close(a.param4, b.param4)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GCS: Target = Target {
        system: 255,
        component: 190,
    };
    const VEHICLE: Target = Target {
        system: 1,
        component: 1,
    };

    fn items(n: u16) -> Vec<MissionItem> {
        (0..n)
            .map(|seq| MissionItem {
                seq,
                frame: 6,
                command: 16,
                current: 0,
                autocontinue: 1,
                param1: 0.0,
                param2: 0.0,
                param3: 0.0,
                param4: 0.0,
                x: 342_000_000 + i32::from(seq) * 1000,
                y: 1_293_000_000,
                z: 120.0,
            })
            .collect()
    }

    fn request(seq: u16) -> MavMessage {
        MavMessage::MISSION_REQUEST_INT(MISSION_REQUEST_INT_DATA {
            seq,
            target_system: 255,
            target_component: 190,
            mission_type: MavMissionType::MAV_MISSION_TYPE_MISSION,
        })
    }

    /// A sender and a receiver talking to each other deliver every item, in order.
    #[test]
    fn upload_and_receive_agree() {
        let t0 = Instant::now();
        let list = items(7);
        let (mut gcs, step) =
            Sender::start(ListKind::Mission, &list, VEHICLE, Timing::default(), t0).unwrap();
        let MavMessage::MISSION_COUNT(c) = &step.send[0] else {
            panic!("{step:?}")
        };
        let (mut vehicle, mut to_gcs) =
            Receiver::accept_upload(ListKind::Mission, c.count, GCS, Timing::default(), t0);
        let mut received = None;
        let mut uploaded = None;
        for _ in 0..100 {
            let mut to_vehicle = Vec::new();
            for m in to_gcs.send.drain(..) {
                let s = gcs.on_message(&m, t0);
                to_vehicle.extend(s.send);
                uploaded = uploaded.or(s.done);
            }
            for m in to_vehicle {
                let s = vehicle.on_message(&m, t0);
                to_gcs.send.extend(s.send);
                received = received.or(s.done);
            }
            if to_gcs.send.is_empty() {
                break;
            }
        }
        assert_eq!(received.unwrap().unwrap(), list);
        assert_eq!(uploaded.unwrap().unwrap(), list);
    }

    /// Lost messages are sent again at the deadline; after the last retry the transfer fails.
    #[test]
    fn retries_then_times_out() {
        let t0 = Instant::now();
        let timing = Timing::default();
        let (mut gcs, _) = Sender::start(ListKind::Fence, &[], VEHICLE, timing, t0).unwrap();
        let mut now = t0;
        for attempt in 0..5 {
            now += timing.reply_timeout;
            let s = gcs.on_timeout(now);
            assert!(
                matches!(s.send[..], [MavMessage::MISSION_COUNT(_)]),
                "retry {attempt}: {s:?}"
            );
            assert!(s.done.is_none());
        }
        now += timing.reply_timeout;
        let s = gcs.on_timeout(now);
        assert!(
            matches!(s.done, Some(Err(MissionError::Timeout { attempts: 6, .. }))),
            "{s:?}"
        );
        // The vehicle is told the transfer is off.
        assert!(
            matches!(&s.send[..], [MavMessage::MISSION_ACK(a)] if a.mavtype == MavMissionResult::MAV_MISSION_OPERATION_CANCELLED)
        );
        // An early timer call does nothing.
        let (mut gcs, _) = Sender::start(ListKind::Fence, &[], VEHICLE, timing, t0).unwrap();
        assert!(gcs
            .on_timeout(t0 + Duration::from_millis(10))
            .send
            .is_empty());
    }

    /// A vehicle that skips ahead, or accepts before it has every item, fails the upload.
    #[test]
    fn out_of_sequence_and_partial_accept_fail() {
        let t0 = Instant::now();
        let (mut gcs, _) =
            Sender::start(ListKind::Mission, &items(5), VEHICLE, Timing::default(), t0).unwrap();
        assert_eq!(gcs.on_message(&request(0), t0).send.len(), 1);
        // Asking for item 0 again is a retransmission.
        assert_eq!(gcs.on_message(&request(0), t0).send.len(), 1);
        let s = gcs.on_message(&request(3), t0);
        assert!(
            matches!(
                s.done,
                Some(Err(MissionError::OutOfSequence {
                    seq: 3,
                    expected: 1,
                    ..
                }))
            ),
            "{s:?}"
        );

        let (mut gcs, _) =
            Sender::start(ListKind::Mission, &items(5), VEHICLE, Timing::default(), t0).unwrap();
        gcs.on_message(&request(0), t0);
        let accepted = ack(
            ListKind::Mission,
            GCS,
            MavMissionResult::MAV_MISSION_ACCEPTED,
        );
        let s = gcs.on_message(&accepted, t0);
        assert!(
            matches!(
                s.done,
                Some(Err(MissionError::PartialAccept {
                    sent: 1,
                    count: 5,
                    ..
                }))
            ),
            "{s:?}"
        );

        let (mut gcs, _) =
            Sender::start(ListKind::Mission, &items(2), VEHICLE, Timing::default(), t0).unwrap();
        let refused = ack(
            ListKind::Mission,
            GCS,
            MavMissionResult::MAV_MISSION_NO_SPACE,
        );
        let s = gcs.on_message(&refused, t0);
        assert!(matches!(
            s.done,
            Some(Err(MissionError::Refused {
                result: MavMissionResult::MAV_MISSION_NO_SPACE,
                ..
            }))
        ));
    }

    /// Messages for another list do not disturb a transfer.
    #[test]
    fn other_lists_are_ignored() {
        let t0 = Instant::now();
        let (mut gcs, _) = Receiver::download(ListKind::Rally, VEHICLE, Timing::default(), t0);
        let mission_count = MavMessage::MISSION_COUNT(MISSION_COUNT_DATA {
            count: 3,
            mission_type: MavMissionType::MAV_MISSION_TYPE_MISSION,
            ..Default::default()
        });
        assert!(gcs.on_message(&mission_count, t0).send.is_empty());
        let rally_count = MavMessage::MISSION_COUNT(MISSION_COUNT_DATA {
            count: 0,
            mission_type: MavMissionType::MAV_MISSION_TYPE_RALLY,
            ..Default::default()
        });
        let s = gcs.on_message(&rally_count, t0);
        assert_eq!(s.done.unwrap().unwrap(), vec![]);
    }

    #[test]
    fn bad_lists_are_refused_before_sending() {
        let t0 = Instant::now();
        let mut list = items(3);
        list[2].seq = 7;
        assert!(matches!(
            Sender::start(ListKind::Mission, &list, VEHICLE, Timing::default(), t0),
            Err(MissionError::BadNumbering { index: 2, seq: 7 })
        ));
        let mut list = items(2);
        list[1].command = 65_000;
        assert!(matches!(
            Sender::start(ListKind::Mission, &list, VEHICLE, Timing::default(), t0),
            Err(MissionError::UnknownItem {
                seq: 1,
                command: 65_000,
                ..
            })
        ));
    }

    #[test]
    fn read_back_lists_compare_as_the_vehicle_keeps_them() {
        let sent = items(3);
        let mut back = sent.clone();
        back[0].current = 1;
        back[1].frame = 3;
        back[2].z = 120.004;
        assert!(same_items(&sent, &back));
        back[2].x += 1;
        assert!(!same_items(&sent, &back));
        assert!(!same_items(&sent, &sent[..2]));
    }

    #[test]
    fn ardupilot_home_is_item_zero() {
        let mission = items(3);
        let home = MissionItem {
            z: 0.0,
            frame: 0,
            ..items(1)[0]
        };
        let list = for_upload(&mission, home, Convention::Ardupilot);
        assert_eq!(list.len(), 4);
        assert_eq!(list[0], home);
        assert_eq!(list[3].seq, 3);
        assert_eq!(from_download(&list, Convention::Ardupilot), mission);
        assert_eq!(for_upload(&mission, home, Convention::Standard), mission);
    }

    fn any_message() -> impl proptest::strategy::Strategy<Value = MavMessage> {
        use proptest::prelude::*;
        let kind = prop_oneof![
            Just(MavMissionType::MAV_MISSION_TYPE_MISSION),
            Just(MavMissionType::MAV_MISSION_TYPE_FENCE),
            Just(MavMissionType::MAV_MISSION_TYPE_RALLY),
        ];
        (0u8..5, 0u16..12, kind, any::<bool>()).prop_map(|(which, seq, mission_type, ok)| {
            match which {
                0 => MavMessage::MISSION_REQUEST_INT(MISSION_REQUEST_INT_DATA {
                    seq,
                    mission_type,
                    ..Default::default()
                }),
                1 => MavMessage::MISSION_COUNT(MISSION_COUNT_DATA {
                    count: seq,
                    mission_type,
                    ..Default::default()
                }),
                2 => MavMessage::MISSION_ITEM_INT(MISSION_ITEM_INT_DATA {
                    seq,
                    mission_type,
                    ..Default::default()
                }),
                3 => MavMessage::MISSION_ACK(MISSION_ACK_DATA {
                    mavtype: if ok {
                        MavMissionResult::MAV_MISSION_ACCEPTED
                    } else {
                        MavMissionResult::MAV_MISSION_ERROR
                    },
                    mission_type,
                    ..Default::default()
                }),
                _ => MavMessage::MISSION_REQUEST_LIST(MISSION_REQUEST_LIST_DATA {
                    mission_type,
                    ..Default::default()
                }),
            }
        })
    }

    proptest::proptest! {
        /// Whatever a peer sends, in whatever order, and whenever the timers fire: no panic, at
        /// most one outcome, and an upload reported done is one whose every item was asked for.
        #[test]
        fn any_peer_behaviour_ends_cleanly(
            msgs in proptest::collection::vec((any_message(), proptest::bool::ANY), 0..80),
        ) {
            let t0 = Instant::now();
            let list = items(6);
            let (mut up, _) = Sender::start(ListKind::Mission, &list, VEHICLE, Timing::default(), t0).unwrap();
            let (mut down, _) = Receiver::download(ListKind::Mission, VEHICLE, Timing::default(), t0);
            let (mut up_done, mut down_done) = (0, 0);
            let mut requested = std::collections::BTreeSet::new();
            let mut now = t0;
            for (m, tick) in &msgs {
                if let MavMessage::MISSION_REQUEST_INT(r) = m {
                    if r.mission_type == MavMissionType::MAV_MISSION_TYPE_MISSION && up_done == 0 {
                        requested.insert(r.seq);
                    }
                }
                let (a, b) = if *tick {
                    now += Duration::from_millis(400);
                    (up.on_timeout(now), down.on_timeout(now))
                } else {
                    (up.on_message(m, now), down.on_message(m, now))
                };
                if let Some(Ok(sent)) = &a.done {
                    proptest::prop_assert_eq!(sent, &list);
                    proptest::prop_assert!((0..6).all(|s| requested.contains(&s)), "accepted before every item was asked for");
                }
                up_done += usize::from(a.done.is_some());
                down_done += usize::from(b.done.is_some());
            }
            proptest::prop_assert!(up_done <= 1 && down_done <= 1);
        }
    }
}
