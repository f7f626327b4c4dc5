//! Behaviour rules over AIS tracks: gaps in transmission, spoofing signs, encounters at sea and
//! loitering, each turned into one [`BehaviourAlert`] per condition.
//!
//! ```text
//! AisReport ─▶ Tracks::update ─▶ TrackUpdate ─▶ BehaviourMonitor::observe ─▶ Vec<BehaviourAlert>
//!                                   clock ─────▶ BehaviourMonitor::check_silent ─┘
//! ```
//!
//! The monitor is a state machine in the manner of the rest of the crate: it is fed reports (with
//! the [`TrackUpdate`] that applying them to [`Tracks`] returned, and the track store itself for
//! a fix's neighbours in time) and the caller's clock, and answers with alerts. It reads no clock,
//! opens nothing and never panics; its memory is bounded by [`BehaviourConfig::max_vessels`] and
//! [`BehaviourConfig::max_pairs`], and vessels not heard for
//! [`BehaviourConfig::forget_after_hours`] are forgotten.
//!
//! # The rules and what they deliberately do not report
//!
//! All durations and speeds are measured on receive times ([`Fix::time_ms`]); distances are
//! great-circle (`geo`'s Haversine).
//!
//! * **`ais_gap`**: a class A or class B ship whose latest fix said it was moving (speed over
//!   ground above [`gap_min_speed_knots`](BehaviourConfig::gap_min_speed_knots)) and that has
//!   been silent (no report of any type) for more than
//!   [`gap_minutes`](BehaviourConfig::gap_minutes). Reported by [`BehaviourMonitor::check_silent`]
//!   while the silence lasts (once), and by [`BehaviourMonitor::observe`] when the ship is heard
//!   again (with where it reappeared). Both carry the same `id` (MMSI and the time it fell
//!   silent), so a store that keys alerts by id updates one record. Stationary ships (a moored
//!   class A may legitimately report rarely), base stations and aids to navigation never gap.
//!   Time the caller declared the feed down ([`BehaviourMonitor::feed_lost`] and
//!   [`feed_restored`](BehaviourMonitor::feed_restored), e.g. a dropped TCP connection) does not
//!   count as silence: a receiver outage is not every ship going dark.
//! * **`ais_spoofing_two_places`** and **`ais_spoofing_speed`**: a new fix is compared with its
//!   neighbours in time in the track (before and after it, and any other fix at the same
//!   instant). Two fixes less than [`two_places_window_s`](BehaviourConfig::two_places_window_s)
//!   apart in time and more than [`two_places_km`](BehaviourConfig::two_places_km) apart in space
//!   are one MMSI in two places (typically two transmitters with one identity, heard by different
//!   receivers). Otherwise, a jump of at least
//!   [`implied_speed_min_distance_m`](BehaviourConfig::implied_speed_min_distance_m) (shorter
//!   jumps are GNSS noise and receive-time jitter) at an implied speed above
//!   [`max_implied_speed_knots`](BehaviourConfig::max_implied_speed_knots) is an impossible
//!   speed. One pair of fixes is only ever one of the two, a fix raises at most one of them
//!   (two places preferred, it is the stronger evidence), and both share one spacing per vessel
//!   ([`repeat_after_minutes`](BehaviourConfig::repeat_after_minutes)): one spoofed position
//!   between two good ones is one alert, not two. Receive times are only as good as the
//!   delivery: when two fixes less than a minute apart both carry the UTC second their ship
//!   stamped, and the two intervals disagree by more than five seconds (a backlog flushed at
//!   once by a receiver or aggregator, a replayed file), the pair is not judged.
//! * **`ais_spoofing_land`**: a ship (not a base station or aid to navigation, which stand on
//!   land) reporting a position the [`LandTest`] calls land, at most once per
//!   `repeat_after_minutes`. The test is the caller's (the field node wires the site's land
//!   mask); it should answer "land" only well inland of the shore, so that ships at quays and
//!   GNSS noise near the coast are not spoofers. Without a test the rule is off.
//! * **`encounter`**: two ships both slower than
//!   [`encounter_max_speed_knots`](BehaviourConfig::encounter_max_speed_knots), closer than
//!   [`encounter_distance_m`](BehaviourConfig::encounter_distance_m), for at least
//!   [`encounter_min_minutes`](BehaviourConfig::encounter_min_minutes) from the first fix that
//!   showed them close. Reported once when it passes the duration, with its start time; not again
//!   until the pair separates (a fix of either puts them apart or faster, or one of them falls
//!   silent for `gap_minutes`), after which a new encounter needs the full duration again.
//!   Candidates come from a grid of the latest positions of slow ships (cells of about the
//!   encounter distance), so a fix costs a look at nine cells, never a scan of every vessel.
//! * **`loitering`**: a ship whose fixes stay slower than
//!   [`loiter_max_speed_knots`](BehaviourConfig::loiter_max_speed_knots) and within
//!   [`loiter_radius_m`](BehaviourConfig::loiter_radius_m) of where the episode began, with no
//!   silence longer than `gap_minutes` in between, for at least
//!   [`loiter_min_minutes`](BehaviourConfig::loiter_min_minutes). Once per episode. A gap breaks
//!   the episode: what the ship did while silent is unknown, so a ship at 0 kn with a gap in the
//!   middle is not reported until it has been watched for the whole duration again.
//! * With [`exclude_moored`](BehaviourConfig::exclude_moored) (the default), fixes whose
//!   navigational status is *moored* or *aground* take no part in encounters or loitering: ships
//!   berthed side by side in port would otherwise be an encounter every two hours. Anchorages
//!   and port areas are better excluded by area, which the node can do with its own masks.
//!
//! Speeds are the reported speed over ground, or when a fix has none, the speed implied by the
//! previous fix. A fix older than the vessel's newest one (satellite feeds deliver out of
//! order) is checked for spoofing but does not move the vessel in the encounter grid or its
//! loitering episode. Reports stamped more than ten minutes after the clock, or older than
//! `forget_after_hours` before it, are ignored: the monitor's clock and the receive times must
//! be on the same time scale (for a replay, pass the report's own time as the clock).
//!
//! ```
//! use mizugiwa_satellite::ais::{BehaviourConfig, BehaviourMonitor, Decoder, Tracks};
//!
//! let mut decoder = Decoder::new();
//! let mut tracks = Tracks::default();
//! let mut monitor = BehaviourMonitor::new(BehaviourConfig::default())
//!     .unwrap()
//!     .with_land_test(|lon: f64, _lat: f64| lon > 200.0); // the site's land mask in real use
//! let now = 1_700_000_000_000;
//! let line = "!AIVDM,1,1,,B,15M67FC000G?ufbE`FepT@3n00Sa,0*5C";
//! let report = decoder.feed_line(line, now).unwrap().unwrap();
//! let update = tracks.update(&report);
//! let alerts = monitor.observe(&report, &update, &tracks, now);
//! assert!(alerts.is_empty());
//! assert!(monitor.check_silent(now + 3_600_000).is_empty(), "a stationary ship never gaps");
//! ```

use std::collections::{BTreeSet, HashMap};

use geo::{Bearing, Distance, Haversine, Point};
use serde::Serialize;

use super::decoder::AisReport;
use super::messages::{LatLon, NavStatus};
use super::tracks::{Fix, StationKind, Track, TrackUpdate, Tracks};

mod alert;
mod config;
mod encounter;
mod grid;
mod outage;
#[cfg(test)]
mod tests;

pub use alert::{AlertKind, BehaviourAlert, Evidence};
pub use config::{BehaviourConfig, BehaviourConfigError};
use encounter::Pair;
use grid::{Cell, Grid};
use outage::Outages;

const MS_PER_MINUTE: i64 = 60_000;
/// Metres per second in one knot.
const KNOT: f64 = 1852.0 / 3600.0;
/// Reports stamped further than this after the clock are ignored (a receiver with a wrong clock
/// must not push vessels into the future, where they would never be pruned or gap).
const FUTURE_TOLERANCE_MS: i64 = 10 * MS_PER_MINUTE;
/// How far the interval between two fixes by their receive times may be from the interval by
/// the UTC seconds the ships stamped on them (modulo a minute) for the receive times to be
/// believed: a backlog flushed at once by a receiver or aggregator arrives within milliseconds,
/// and fixes minutes apart would look like impossible jumps.
const STAMP_TOLERANCE_MS: i64 = 5_000;
/// Implied speeds are computed over at least one second: receive times in tag blocks have a
/// resolution of one second, and two fixes at the same instant have no speed at all.
const MIN_INTERVAL_MS: i64 = 1_000;

/// Whether a position is on land: the site's land mask, written elsewhere.
///
/// Any `Fn(lon, lat) -> bool` is one.
pub trait LandTest {
    /// `true` when (`lon`, `lat`), WGS 84 degrees, is on land.
    fn is_land(&self, lon: f64, lat: f64) -> bool;
}

impl<F: Fn(f64, f64) -> bool> LandTest for F {
    fn is_land(&self, lon: f64, lat: f64) -> bool {
        self(lon, lat)
    }
}

/// Sizes of the monitor's state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct BehaviourStats {
    /// Vessels followed.
    pub vessels: usize,
    /// Slow ships in the encounter grid.
    pub grid_entries: usize,
    /// Pairs of close slow ships followed.
    pub pairs: usize,
    /// Close pairs not followed because `max_pairs` was reached.
    pub pairs_refused: u64,
}

/// The behaviour rules over a stream of reports (see the module documentation).
pub struct BehaviourMonitor {
    config: BehaviourConfig,
    land: Option<Box<dyn LandTest + Send>>,
    vessels: HashMap<u32, Vessel>,
    /// (last heard, MMSI): the order of forgetting and of silence.
    by_heard: BTreeSet<(i64, u32)>,
    grid: Grid,
    /// Close slow pairs, lower MMSI first.
    pairs: HashMap<(u32, u32), Pair>,
    pairs_refused: u64,
    outages: Outages,
}

impl std::fmt::Debug for BehaviourMonitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BehaviourMonitor")
            .field("config", &self.config)
            .field("land_test", &self.land.is_some())
            .field("stats", &self.stats())
            .finish()
    }
}

/// The newest fix of a vessel, as the rules need it.
#[derive(Debug, Clone)]
struct Latest {
    time_ms: i64,
    position: LatLon,
    speed_knots: Option<f64>,
    nav_status: Option<NavStatus>,
}

/// A loitering episode in progress.
#[derive(Debug, Clone)]
struct Loiter {
    anchor: LatLon,
    start_ms: i64,
    last_ms: i64,
    max_offset_m: f64,
    fixes: u32,
    reported: bool,
}

#[derive(Debug, Clone)]
struct Vessel {
    kind: Option<StationKind>,
    last_heard_ms: i64,
    latest: Option<Latest>,
    /// `check_silent` reported the current silence.
    silence_reported: bool,
    /// Its cell in the encounter grid, when it is there.
    cell: Option<Cell>,
    /// The MMSIs it forms a close pair with.
    partners: Vec<u32>,
    loiter: Option<Loiter>,
    last_jump_alert_ms: Option<i64>,
    last_land_alert_ms: Option<i64>,
}

fn point(p: LatLon) -> Point<f64> {
    Point::new(p.lon, p.lat)
}

fn distance_m(a: LatLon, b: LatLon) -> f64 {
    Haversine.distance(point(a), point(b))
}

fn valid(p: LatLon) -> bool {
    p.lat.is_finite() && p.lon.is_finite() && p.lat.abs() <= 90.0 && p.lon.abs() <= 180.0
}

/// Not a base station or an aid to navigation (a station of unknown kind counts as a ship: only
/// ships send the long-range and UTC-response messages that leave the kind unknown).
fn is_ship(kind: Option<StationKind>) -> bool {
    !matches!(
        kind,
        Some(StationKind::BaseStation | StationKind::AidToNavigation)
    )
}

/// `now` is at least `spacing` away from `last` (in either direction: feeds run out of order).
fn spaced(last: Option<i64>, now: i64, spacing: i64) -> bool {
    last.is_none_or(|l| l.abs_diff(now) >= spacing.unsigned_abs())
}

impl BehaviourMonitor {
    /// A monitor with the given thresholds and no land test.
    pub fn new(config: BehaviourConfig) -> Result<BehaviourMonitor, BehaviourConfigError> {
        config.validate()?;
        Ok(BehaviourMonitor {
            grid: Grid::new(config.encounter_distance_m),
            config,
            land: None,
            vessels: HashMap::new(),
            by_heard: BTreeSet::new(),
            pairs: HashMap::new(),
            pairs_refused: 0,
            outages: Outages::default(),
        })
    }

    /// Turns on `ais_spoofing_land` with the site's land test.
    pub fn with_land_test(mut self, land: impl LandTest + Send + 'static) -> BehaviourMonitor {
        self.land = Some(Box::new(land));
        self
    }

    /// The thresholds.
    pub fn config(&self) -> &BehaviourConfig {
        &self.config
    }

    /// Sizes of the state.
    pub fn stats(&self) -> BehaviourStats {
        BehaviourStats {
            vessels: self.vessels.len(),
            grid_entries: self.grid.entries,
            pairs: self.pairs.len(),
            pairs_refused: self.pairs_refused,
        }
    }

    /// Applies one report, after `tracks.update(report)` returned `update`, at clock `now_ms`;
    /// returns the alerts it raised.
    ///
    /// The fix is judged only when the store added it (`update.fix_added`: a transmission
    /// heard twice is judged once), against its neighbours in the track's history, so the
    /// store must keep one ([`TrackConfig::history_len`](super::TrackConfig) of 2 or more).
    pub fn observe(
        &mut self,
        report: &AisReport,
        update: &TrackUpdate,
        tracks: &Tracks,
        now_ms: i64,
    ) -> Vec<BehaviourAlert> {
        let mut alerts = Vec::new();
        if let Some(evicted) = update.evicted {
            self.forget(evicted);
        }
        self.prune(now_ms);
        let t = report.received_ms;
        if t > now_ms.saturating_add(FUTURE_TOLERANCE_MS)
            || t < now_ms.saturating_sub(self.config.forget_ms())
        {
            return alerts;
        }
        let mmsi = report.message.mmsi();
        let track = tracks.get(mmsi);
        let kind = track
            .and_then(|tr| tr.kind())
            .or_else(|| StationKind::of(&report.message));
        let fix = if update.fix_added {
            Fix::from_report(report).filter(|f| valid(f.position))
        } else {
            None
        };
        self.heard(mmsi, kind, t, fix.as_ref().map(|f| f.position), &mut alerts);
        let Some(fix) = fix else {
            return alerts;
        };
        if let Some(track) = track {
            self.check_jumps(mmsi, fixes_around(track, &fix), &fix, &mut alerts);
        }
        self.check_land(mmsi, &fix, &mut alerts);
        self.advance(mmsi, &fix, &mut alerts);
        alerts
    }

    /// Reports the moving ships silent for more than `gap_minutes` at `now_ms` (each silence
    /// once), and drops silent ships from the encounter grid. Call it periodically (every
    /// minute or so): it looks only at the silent vessels.
    pub fn check_silent(&mut self, now_ms: i64) -> Vec<BehaviourAlert> {
        self.prune(now_ms);
        let cutoff = now_ms.saturating_sub(self.config.gap_ms());
        let silent: Vec<u32> = self
            .by_heard
            .range(..(cutoff, 0))
            .map(|&(_, m)| m)
            .collect();
        let mut alerts = Vec::new();
        for mmsi in silent {
            self.leave_grid(mmsi);
            let Some(v) = self.vessels.get_mut(&mmsi) else {
                continue;
            };
            let down = self.outages.overlap(v.last_heard_ms, now_ms);
            let silent_ms = now_ms.saturating_sub(v.last_heard_ms).saturating_sub(down);
            if v.silence_reported || silent_ms <= self.config.gap_ms() {
                continue;
            }
            v.silence_reported = true;
            alerts.extend(gap_alert(&self.config, mmsi, v, now_ms, down, None));
        }
        alerts
    }

    /// The feed has been down since `since_ms` (the connection to the receiver was lost):
    /// silence is not counted against ships while it is, so that a receiver outage does not
    /// make every moving ship "go dark". Only the caller knows this; the monitor never guesses
    /// it from a quiet feed.
    pub fn feed_lost(&mut self, since_ms: i64) {
        self.outages.lost(since_ms);
    }

    /// The feed is back at `at_ms` (after [`feed_lost`](Self::feed_lost)); the outage is
    /// remembered, so ships heard again are not blamed for it either.
    pub fn feed_restored(&mut self, at_ms: i64) {
        self.outages.restored(at_ms);
    }

    /// Forgets a vessel (as when the track store evicted it).
    pub fn forget(&mut self, mmsi: u32) {
        self.leave_grid(mmsi);
        if let Some(v) = self.vessels.remove(&mmsi) {
            self.by_heard.remove(&(v.last_heard_ms, mmsi));
        }
    }

    fn prune(&mut self, now_ms: i64) {
        let cutoff = now_ms.saturating_sub(self.config.forget_ms());
        self.outages.prune(cutoff);
        while self.by_heard.first().is_some_and(|&(t, _)| t < cutoff) {
            // Popped first, so that an index entry without its vessel cannot loop forever.
            if let Some((_, mmsi)) = self.by_heard.pop_first() {
                self.forget(mmsi);
            }
        }
    }

    /// Any report from `mmsi` at `t`: the end of a silence, and the vessel's last-heard time.
    fn heard(
        &mut self,
        mmsi: u32,
        kind: Option<StationKind>,
        t: i64,
        position: Option<LatLon>,
        alerts: &mut Vec<BehaviourAlert>,
    ) {
        if !self.vessels.contains_key(&mmsi) {
            while self.vessels.len() >= self.config.max_vessels {
                let Some((_, oldest)) = self.by_heard.pop_first() else {
                    break;
                };
                self.forget(oldest);
            }
            self.vessels.insert(
                mmsi,
                Vessel {
                    kind,
                    last_heard_ms: t,
                    latest: None,
                    silence_reported: false,
                    cell: None,
                    partners: Vec::new(),
                    loiter: None,
                    last_jump_alert_ms: None,
                    last_land_alert_ms: None,
                },
            );
            self.by_heard.insert((t, mmsi));
            return;
        }
        let gap_ms = self.config.gap_ms();
        let Some(v) = self.vessels.get_mut(&mmsi) else {
            return;
        };
        if kind.is_some() {
            v.kind = kind;
        }
        if t <= v.last_heard_ms {
            return;
        }
        let down = self.outages.overlap(v.last_heard_ms, t);
        if t.saturating_sub(v.last_heard_ms).saturating_sub(down) > gap_ms {
            alerts.extend(gap_alert(&self.config, mmsi, v, t, down, Some(position)));
        }
        self.by_heard.remove(&(v.last_heard_ms, mmsi));
        self.by_heard.insert((t, mmsi));
        v.last_heard_ms = t;
        v.silence_reported = false;
    }

    /// Two places and impossible speed, between `fix` and its neighbours in time.
    fn check_jumps(
        &mut self,
        mmsi: u32,
        neighbours: Vec<&Fix>,
        fix: &Fix,
        alerts: &mut Vec<BehaviourAlert>,
    ) {
        let c = &self.config;
        let window_ms = i64::from(c.two_places_window_s) * 1000;
        let mut best: Option<(bool, f64, BehaviourAlert)> = None;
        for other in neighbours {
            if !intervals_agree(fix, other) {
                continue;
            }
            let interval_ms = fix.time_ms.abs_diff(other.time_ms);
            let d = distance_m(fix.position, other.position);
            let start_ms = fix.time_ms.min(other.time_ms);
            let sources = [fix.source.clone(), other.source.clone()];
            let interval_s = interval_ms as f64 / 1000.0;
            let candidate =
                if interval_ms <= window_ms.unsigned_abs() && d > c.two_places_km * 1000.0 {
                    let evidence = Evidence::AisSpoofingTwoPlaces {
                        other_position: other.position,
                        other_ms: other.time_ms,
                        distance_km: d / 1000.0,
                        interval_s,
                        sources,
                    };
                    (true, d, evidence)
                } else {
                    let speed = d / interval_s.max(MIN_INTERVAL_MS as f64 / 1000.0) / KNOT;
                    if d < c.implied_speed_min_distance_m || speed <= c.max_implied_speed_knots {
                        continue;
                    }
                    let (from, to) = if other.time_ms <= fix.time_ms {
                        (other.position, fix.position)
                    } else {
                        (fix.position, other.position)
                    };
                    let evidence = Evidence::AisSpoofingSpeed {
                        other_position: other.position,
                        other_ms: other.time_ms,
                        distance_m: d,
                        interval_s,
                        implied_speed_knots: speed,
                        bearing_deg: Haversine.bearing(point(from), point(to)),
                        reported_speed_knots: fix.sog_knots,
                        sources,
                    };
                    (false, speed, evidence)
                };
            let (two_places, strength, evidence) = candidate;
            let better = best
                .as_ref()
                .is_none_or(|(bt, bs, _)| (two_places, strength) > (*bt, *bs));
            if better {
                let alert = BehaviourAlert {
                    id: String::new(),
                    mmsi,
                    position: fix.position,
                    time_ms: fix.time_ms,
                    start_ms,
                    evidence,
                };
                best = Some((two_places, strength, alert));
            }
        }
        let Some((_, _, mut alert)) = best else {
            return;
        };
        let repeat_ms = self.config.repeat_ms();
        let Some(v) = self.vessels.get_mut(&mmsi) else {
            return;
        };
        if !spaced(v.last_jump_alert_ms, fix.time_ms, repeat_ms) {
            return;
        }
        v.last_jump_alert_ms = Some(fix.time_ms);
        alert.id = format!("{}-{mmsi}-{}", alert.kind().as_str(), fix.time_ms);
        alerts.push(alert);
    }

    fn check_land(&mut self, mmsi: u32, fix: &Fix, alerts: &mut Vec<BehaviourAlert>) {
        let Some(land) = &self.land else {
            return;
        };
        let repeat_ms = self.config.repeat_ms();
        let Some(v) = self.vessels.get_mut(&mmsi) else {
            return;
        };
        if !is_ship(v.kind)
            || !spaced(v.last_land_alert_ms, fix.time_ms, repeat_ms)
            || !land.is_land(fix.position.lon, fix.position.lat)
        {
            return;
        }
        v.last_land_alert_ms = Some(fix.time_ms);
        alerts.push(BehaviourAlert {
            id: format!("ais_spoofing_land-{mmsi}-{}", fix.time_ms),
            mmsi,
            position: fix.position,
            time_ms: fix.time_ms,
            start_ms: fix.time_ms,
            evidence: Evidence::AisSpoofingLand {
                speed_knots: fix.sog_knots,
                nav_status: fix.nav_status,
                source: fix.source.clone(),
            },
        });
    }

    /// A vessel's newest fix: its place in the encounter grid, its pairs, its loitering.
    fn advance(&mut self, mmsi: u32, fix: &Fix, alerts: &mut Vec<BehaviourAlert>) {
        let c = &self.config;
        let Some(v) = self.vessels.get_mut(&mmsi) else {
            return;
        };
        if v.latest.as_ref().is_some_and(|l| fix.time_ms < l.time_ms) {
            return;
        }
        let speed_knots = fix.sog_knots.or_else(|| {
            let prev = v.latest.as_ref()?;
            let dt = fix.time_ms.saturating_sub(prev.time_ms);
            (dt > 0).then(|| distance_m(prev.position, fix.position) / (dt as f64 / 1000.0) / KNOT)
        });
        let latest = Latest {
            time_ms: fix.time_ms,
            position: fix.position,
            speed_knots,
            nav_status: fix.nav_status,
        };
        v.latest = Some(latest.clone());
        let excluded = c.exclude_moored
            && matches!(
                latest.nav_status,
                Some(NavStatus::Moored | NavStatus::Aground)
            );
        let eligible = is_ship(v.kind) && !excluded;
        let slow = |max: f64| eligible && speed_knots.is_some_and(|s| s < max);

        // Loitering.
        let slow_loiter = slow(c.loiter_max_speed_knots);
        alerts.extend(loiter_step(c, mmsi, &mut v.loiter, &latest, slow_loiter));

        // Encounters.
        if slow(c.encounter_max_speed_knots) {
            let cell = self.grid.cell(latest.position);
            if v.cell != Some(cell) {
                if let Some(old) = v.cell.take() {
                    self.grid.remove(old, mmsi);
                }
                self.grid.insert(cell, mmsi);
                v.cell = Some(cell);
            }
            self.encounters(mmsi, &latest, alerts);
        } else {
            self.leave_grid(mmsi);
        }
    }
}

/// One newest fix of `mmsi` in its loitering episode: continues it (slow, within the radius of
/// where it began, no gap since the last fix), or starts a new one, or ends it (not slow). The
/// alert when the episode first passes the duration.
fn loiter_step(
    c: &BehaviourConfig,
    mmsi: u32,
    episode: &mut Option<Loiter>,
    latest: &Latest,
    slow: bool,
) -> Option<BehaviourAlert> {
    if !slow {
        *episode = None;
        return None;
    }
    let continues = episode.as_mut().and_then(|l| {
        let d = distance_m(l.anchor, latest.position);
        let unbroken = latest.time_ms.saturating_sub(l.last_ms) <= c.gap_ms();
        (unbroken && d <= c.loiter_radius_m).then_some((l, d))
    });
    let Some((l, d)) = continues else {
        *episode = Some(Loiter {
            anchor: latest.position,
            start_ms: latest.time_ms,
            last_ms: latest.time_ms,
            max_offset_m: 0.0,
            fixes: 1,
            reported: false,
        });
        return None;
    };
    l.last_ms = latest.time_ms;
    l.fixes = l.fixes.saturating_add(1);
    l.max_offset_m = l.max_offset_m.max(d);
    let duration = l.last_ms.saturating_sub(l.start_ms);
    if l.reported || duration < i64::from(c.loiter_min_minutes) * MS_PER_MINUTE {
        return None;
    }
    l.reported = true;
    Some(BehaviourAlert {
        id: format!("loitering-{mmsi}-{}", l.start_ms),
        mmsi,
        position: latest.position,
        time_ms: latest.time_ms,
        start_ms: l.start_ms,
        evidence: Evidence::Loitering {
            anchor: l.anchor,
            duration_s: duration as f64 / 1000.0,
            max_offset_m: l.max_offset_m,
            fixes: l.fixes,
        },
    })
}

/// The gap alert for `v`'s silence up to `time_ms`, if `v` is a moving class A or B ship.
/// `resumed` is `Some(position of the report that ended it)` when it ended.
fn gap_alert(
    config: &BehaviourConfig,
    mmsi: u32,
    v: &Vessel,
    time_ms: i64,
    feed_down_ms: i64,
    resumed: Option<Option<LatLon>>,
) -> Option<BehaviourAlert> {
    if !matches!(v.kind, Some(StationKind::ClassA | StationKind::ClassB)) {
        return None;
    }
    let latest = v.latest.as_ref()?;
    let speed = latest.speed_knots?;
    if speed <= config.gap_min_speed_knots {
        return None;
    }
    let resumed_position = resumed.flatten();
    Some(BehaviourAlert {
        id: format!("ais_gap-{mmsi}-{}", v.last_heard_ms),
        mmsi,
        position: resumed_position.unwrap_or(latest.position),
        time_ms,
        start_ms: v.last_heard_ms,
        evidence: Evidence::AisGap {
            last_position: latest.position,
            last_speed_knots: speed,
            silent_s: time_ms.saturating_sub(v.last_heard_ms) as f64 / 1000.0,
            feed_down_s: feed_down_ms as f64 / 1000.0,
            resumed: resumed.is_some(),
            resumed_position,
        },
    })
}

/// Whether the receive times of two fixes less than a minute apart agree with the UTC seconds
/// stamped on them (see [`STAMP_TOLERANCE_MS`]); fixes without stamps, or further apart, are
/// taken at their receive times.
fn intervals_agree(a: &Fix, b: &Fix) -> bool {
    let received = a.time_ms.abs_diff(b.time_ms);
    let (Some(sa), Some(sb)) = (a.utc_second, b.utc_second) else {
        return true;
    };
    if received >= 60_000 {
        return true;
    }
    let (early, late) = if a.time_ms <= b.time_ms {
        (sa, sb)
    } else {
        (sb, sa)
    };
    let stamped = (i64::from(late) - i64::from(early)).rem_euclid(60) * 1000;
    let off = (stamped - received as i64).rem_euclid(60_000);
    off.min(60_000 - off) <= STAMP_TOLERANCE_MS
}

/// The fixes of `track` next to `fix` in time: the last one before it, the first one after
/// it, and any other position at the same instant.
fn fixes_around<'a>(track: &'a Track, fix: &Fix) -> Vec<&'a Fix> {
    let t = fix.time_ms;
    let mut out: Vec<&Fix> = Vec::with_capacity(4);
    out.extend(
        track
            .bracket(t.saturating_sub(1))
            .0
            .filter(|f| f.time_ms < t),
    );
    out.extend(track.bracket(t).1);
    out.extend(
        track
            .fixes_between(t, t)
            .filter(|f| f.position != fix.position)
            .take(4),
    );
    out
}
