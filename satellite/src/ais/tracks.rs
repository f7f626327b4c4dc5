//! Tracks per MMSI: the latest fix, a bounded time-ordered history, and the merged static data.
//!
//! The behaviour rules (AIS gaps, spoofing, encounters, loitering) and the projection of tracks
//! to a SAR image time are built on this store, so it keeps what they need: fixes ordered by
//! receive time even when feeds deliver out of order, the receiver that heard each fix (one MMSI
//! heard in two places by two receivers is a spoofing sign), speed, course and navigational
//! status per fix, and the vessel's class, type and size. Memory is bounded twice: per vessel
//! (`history_len` fixes) and in vessels (`max_vessels`, least recently heard evicted first), so
//! a feed of random MMSIs cannot exhaust it.

use std::collections::{BTreeSet, HashMap, VecDeque};

use serde::{Deserialize, Serialize};

use super::decoder::AisReport;
use super::messages::{AisMessage, LatLon, NavStatus, TimeStamp};
use super::vessel::VesselStatic;

/// Limits of the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrackConfig {
    /// Fixes kept per vessel (oldest dropped first). 0 keeps only the static data and times.
    pub history_len: usize,
    /// Vessels kept (least recently heard dropped first); at least 1.
    pub max_vessels: usize,
}

impl Default for TrackConfig {
    /// 256 fixes (over an hour of a class B, a quarter hour of a fast class A), 10,000 vessels.
    fn default() -> Self {
        TrackConfig {
            history_len: 256,
            max_vessels: 10_000,
        }
    }
}

/// What kind of station an MMSI is, from the messages it sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StationKind {
    /// Class A ship (1, 2, 3, 5).
    ClassA,
    /// Class B ship (18, 19, 24).
    ClassB,
    /// Base station (4).
    BaseStation,
    /// Aid to navigation (21).
    AidToNavigation,
}

impl StationKind {
    /// The kind a message type implies; `None` for types any station may send (11, 27).
    pub fn of(message: &AisMessage) -> Option<StationKind> {
        match message.message_type() {
            1..=3 | 5 => Some(StationKind::ClassA),
            18 | 19 | 24 => Some(StationKind::ClassB),
            4 => Some(StationKind::BaseStation),
            21 => Some(StationKind::AidToNavigation),
            _ => None,
        }
    }
}

/// One reported position with the dynamics reported with it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fix {
    /// Receive time in UNIX milliseconds (see [`AisReport::received_ms`]).
    pub time_ms: i64,
    /// The UTC second the sender stamped on the fix, when it gave one; lets later stages correct
    /// `time_ms` for receive latency.
    pub utc_second: Option<u8>,
    /// Position.
    pub position: LatLon,
    /// Speed over ground in knots.
    pub sog_knots: Option<f64>,
    /// Course over ground in degrees.
    pub cog_deg: Option<f64>,
    /// True heading in degrees.
    pub heading_deg: Option<u16>,
    /// Navigational status (class A and long range only).
    pub nav_status: Option<NavStatus>,
    /// Accuracy better than 10 m.
    pub position_accuracy: bool,
    /// The position came from dead reckoning, manual input or an inoperative fixing system
    /// (timestamp 61-63), not from a live GNSS fix.
    pub estimated: bool,
    /// The message type that carried it.
    pub msg_type: u8,
    /// The repeat indicator: a repeated copy of an earlier transmission is older than its
    /// receive time says.
    pub repeat: u8,
    /// The receiver (tag block `s:`), if known.
    pub source: Option<String>,
}

impl Fix {
    /// The fix a report carries, if it carries an available position.
    pub fn from_report(report: &AisReport) -> Option<Fix> {
        let m = &report.message;
        let position = m.position()?;
        let (sog_knots, cog_deg, heading_deg, nav_status, accuracy, timestamp) = match m {
            AisMessage::Position(p) => (
                p.sog_knots,
                p.cog_deg,
                p.heading_deg,
                p.nav_status,
                p.position_accuracy,
                p.timestamp,
            ),
            AisMessage::ClassBPosition(p) => (
                p.sog_knots,
                p.cog_deg,
                p.heading_deg,
                None,
                p.position_accuracy,
                p.timestamp,
            ),
            AisMessage::ClassBExtended(p) => (
                p.sog_knots,
                p.cog_deg,
                p.heading_deg,
                None,
                p.position_accuracy,
                p.timestamp,
            ),
            AisMessage::LongRange(p) => (
                p.sog_knots,
                p.cog_deg,
                None,
                p.nav_status,
                p.position_accuracy,
                None,
            ),
            AisMessage::BaseStation(p) => (
                None,
                None,
                None,
                None,
                p.position_accuracy,
                p.utc.second.map(TimeStamp::Second),
            ),
            AisMessage::AidToNavigation(p) => {
                (None, None, None, None, p.position_accuracy, p.timestamp)
            }
            AisMessage::StaticAndVoyage(_) | AisMessage::StaticData(_) => return None,
        };
        Some(Fix {
            time_ms: report.received_ms,
            utc_second: timestamp.and_then(TimeStamp::second),
            position,
            sog_knots,
            cog_deg,
            heading_deg,
            nav_status,
            position_accuracy: accuracy,
            estimated: matches!(
                timestamp,
                Some(TimeStamp::DeadReckoning | TimeStamp::ManualInput | TimeStamp::Inoperative)
            ),
            msg_type: m.message_type(),
            repeat: m.repeat(),
            source: report.source.clone(),
        })
    }
}

/// Everything known about one MMSI.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Track {
    mmsi: u32,
    kind: Option<StationKind>,
    first_seen_ms: i64,
    last_seen_ms: i64,
    reports: u64,
    history: VecDeque<Fix>,
    vessel: VesselStatic,
}

impl Track {
    fn new(mmsi: u32, time_ms: i64) -> Track {
        Track {
            mmsi,
            kind: None,
            first_seen_ms: time_ms,
            last_seen_ms: time_ms,
            reports: 0,
            history: VecDeque::new(),
            vessel: VesselStatic::default(),
        }
    }

    /// The MMSI.
    pub fn mmsi(&self) -> u32 {
        self.mmsi
    }

    /// The station kind, from the latest message that implies one.
    pub fn kind(&self) -> Option<StationKind> {
        self.kind
    }

    /// Earliest receive time of any report.
    pub fn first_seen_ms(&self) -> i64 {
        self.first_seen_ms
    }

    /// Latest receive time of any report (position or not).
    pub fn last_seen_ms(&self) -> i64 {
        self.last_seen_ms
    }

    /// Reports applied, of any type.
    pub fn reports(&self) -> u64 {
        self.reports
    }

    /// The newest fix by receive time.
    pub fn latest(&self) -> Option<&Fix> {
        self.history.back()
    }

    /// The fixes kept, oldest first.
    pub fn fixes(&self) -> impl DoubleEndedIterator<Item = &Fix> + ExactSizeIterator {
        self.history.iter()
    }

    /// The fixes received in `from_ms..=to_ms`, oldest first.
    pub fn fixes_between(&self, from_ms: i64, to_ms: i64) -> impl Iterator<Item = &Fix> {
        let start = self.history.partition_point(|f| f.time_ms < from_ms);
        self.history
            .range(start..)
            .take_while(move |f| f.time_ms <= to_ms)
    }

    /// The last fix at or before `time_ms` and the first one after it: the two reports a
    /// position at `time_ms` is interpolated or dead-reckoned from.
    pub fn bracket(&self, time_ms: i64) -> (Option<&Fix>, Option<&Fix>) {
        let after = self.history.partition_point(|f| f.time_ms <= time_ms);
        let before = after.checked_sub(1).and_then(|i| self.history.get(i));
        (before, self.history.get(after))
    }

    /// The static and voyage data merged from types 5, 19 and 24.
    pub fn vessel(&self) -> &VesselStatic {
        &self.vessel
    }

    /// Inserts a fix in time order; returns `false` for a duplicate (the same position at the
    /// same time, as when two receivers or a repeater deliver one transmission) or a fix older
    /// than a full history.
    fn insert_fix(&mut self, fix: Fix, history_len: usize) -> bool {
        if history_len == 0 {
            return false;
        }
        let at = self.history.partition_point(|f| f.time_ms <= fix.time_ms);
        let same_time = self.history.range(..at).rev();
        let duplicate = same_time
            .take_while(|f| f.time_ms == fix.time_ms)
            .any(|f| f.position == fix.position);
        if duplicate {
            return false;
        }
        if self.history.len() >= history_len {
            if at == 0 {
                return false;
            }
            self.history.pop_front();
            self.history.insert(at - 1, fix);
        } else {
            self.history.insert(at, fix);
        }
        true
    }
}

/// What applying a report changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TrackUpdate {
    /// The MMSI had no track before.
    pub new_track: bool,
    /// A fix was added to the history.
    pub fix_added: bool,
    /// Static data was merged.
    pub static_merged: bool,
    /// A track was evicted to make room.
    pub evicted: Option<u32>,
}

/// The tracks of all MMSIs heard.
#[derive(Debug, Clone, Default)]
pub struct Tracks {
    config: TrackConfig,
    tracks: HashMap<u32, Track>,
    /// (last seen, MMSI) of every track: the eviction order.
    by_last_seen: BTreeSet<(i64, u32)>,
}

impl Tracks {
    /// An empty store with the given limits.
    pub fn new(config: TrackConfig) -> Tracks {
        Tracks {
            config: TrackConfig {
                max_vessels: config.max_vessels.max(1),
                ..config
            },
            tracks: HashMap::new(),
            by_last_seen: BTreeSet::new(),
        }
    }

    /// Applies a decoded report to its MMSI's track.
    pub fn update(&mut self, report: &AisReport) -> TrackUpdate {
        let mmsi = report.message.mmsi();
        let time = report.received_ms;
        let mut outcome = TrackUpdate::default();
        if !self.tracks.contains_key(&mmsi) {
            if self.tracks.len() >= self.config.max_vessels {
                outcome.evicted = self.evict_least_recent();
            }
            self.tracks.insert(mmsi, Track::new(mmsi, time));
            self.by_last_seen.insert((time, mmsi));
            outcome.new_track = true;
        }
        let Some(track) = self.tracks.get_mut(&mmsi) else {
            return outcome;
        };
        track.reports += 1;
        track.first_seen_ms = track.first_seen_ms.min(time);
        if time > track.last_seen_ms {
            self.by_last_seen.remove(&(track.last_seen_ms, mmsi));
            self.by_last_seen.insert((time, mmsi));
            track.last_seen_ms = time;
        }
        if let Some(kind) = StationKind::of(&report.message) {
            track.kind = Some(kind);
        }
        outcome.static_merged = track.vessel.merge(&report.message, time);
        if let Some(fix) = Fix::from_report(report) {
            outcome.fix_added = track.insert_fix(fix, self.config.history_len);
        }
        outcome
    }

    /// The track of `mmsi`.
    pub fn get(&self, mmsi: u32) -> Option<&Track> {
        self.tracks.get(&mmsi)
    }

    /// All tracks, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &Track> {
        self.tracks.values()
    }

    /// Tracks held.
    pub fn len(&self) -> usize {
        self.tracks.len()
    }

    /// No track held.
    pub fn is_empty(&self) -> bool {
        self.tracks.is_empty()
    }

    /// Drops the tracks last heard before `cutoff_ms`; returns how many.
    pub fn prune_before(&mut self, cutoff_ms: i64) -> usize {
        let stale: Vec<(i64, u32)> = self.by_last_seen.range(..(cutoff_ms, 0)).copied().collect();
        for key in &stale {
            self.by_last_seen.remove(key);
            self.tracks.remove(&key.1);
        }
        stale.len()
    }

    fn evict_least_recent(&mut self) -> Option<u32> {
        let (_, mmsi) = self.by_last_seen.pop_first()?;
        self.tracks.remove(&mmsi);
        Some(mmsi)
    }
}
