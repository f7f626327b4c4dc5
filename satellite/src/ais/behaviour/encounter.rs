//! Encounters: pairs of slow ships close together, found through the grid and followed until
//! they separate.

use geo::{Haversine, InterpolatePoint};

use super::{distance_m, point, BehaviourAlert, BehaviourMonitor, Evidence, Latest, MS_PER_MINUTE};
use crate::ais::messages::LatLon;

/// Two close slow ships.
#[derive(Debug, Clone)]
pub(super) struct Pair {
    pub(super) start_ms: i64,
    pub(super) last_ms: i64,
    pub(super) min_distance_m: f64,
    pub(super) reported: bool,
}

impl BehaviourMonitor {
    /// Updates the pairs of `mmsi` (slow, in the grid, newest fix `me`) with its neighbours.
    pub(super) fn encounters(&mut self, mmsi: u32, me: &Latest, alerts: &mut Vec<BehaviourAlert>) {
        let gap_ms = self.config.gap_ms().unsigned_abs();
        let mut close: Vec<(u32, f64, Latest)> = Vec::new();
        let mut stale = Vec::new();
        for cell in self.grid.around(me.position) {
            for &other in self.grid.cells.get(&cell).into_iter().flatten() {
                if other == mmsi {
                    continue;
                }
                let Some(them) = self.vessels.get(&other).and_then(|v| v.latest.as_ref()) else {
                    stale.push(other);
                    continue;
                };
                if me.time_ms.abs_diff(them.time_ms) > gap_ms {
                    if them.time_ms < me.time_ms {
                        stale.push(other);
                    }
                    continue;
                }
                let d = distance_m(me.position, them.position);
                if d < self.config.encounter_distance_m {
                    close.push((other, d, them.clone()));
                }
            }
        }
        for other in stale {
            self.leave_grid(other);
        }
        let partners = self
            .vessels
            .get(&mmsi)
            .map(|v| v.partners.clone())
            .unwrap_or_default();
        for p in partners {
            if !close.iter().any(|(o, _, _)| *o == p) {
                self.end_pair(mmsi, p);
            }
        }
        let min_ms = i64::from(self.config.encounter_min_minutes) * MS_PER_MINUTE;
        for (other, d, them) in close {
            let key = (mmsi.min(other), mmsi.max(other));
            let seen = me.time_ms.max(them.time_ms);
            if !self.pairs.contains_key(&key) {
                if self.pairs.len() >= self.config.max_pairs {
                    self.pairs_refused += 1;
                    continue;
                }
                self.pairs.insert(
                    key,
                    Pair {
                        start_ms: seen,
                        last_ms: seen,
                        min_distance_m: d,
                        reported: false,
                    },
                );
                for (a, b) in [(mmsi, other), (other, mmsi)] {
                    if let Some(v) = self.vessels.get_mut(&a) {
                        v.partners.push(b);
                    }
                }
            }
            let Some(pair) = self.pairs.get_mut(&key) else {
                continue;
            };
            pair.last_ms = pair.last_ms.max(seen);
            pair.min_distance_m = pair.min_distance_m.min(d);
            let duration = pair.last_ms.saturating_sub(pair.start_ms);
            if pair.reported || duration < min_ms {
                continue;
            }
            pair.reported = true;
            let positions = if key.0 == mmsi {
                [me.position, them.position]
            } else {
                [them.position, me.position]
            };
            let mid =
                Haversine.point_at_ratio_between(point(positions[0]), point(positions[1]), 0.5);
            alerts.push(BehaviourAlert {
                id: format!("encounter-{}-{}-{}", key.0, key.1, pair.start_ms),
                mmsi: key.0,
                position: LatLon {
                    lat: mid.y(),
                    lon: mid.x(),
                },
                time_ms: pair.last_ms,
                start_ms: pair.start_ms,
                evidence: Evidence::Encounter {
                    other_mmsi: key.1,
                    positions,
                    duration_s: duration as f64 / 1000.0,
                    distance_m: d,
                    min_distance_m: pair.min_distance_m,
                },
            });
        }
    }

    /// Takes `mmsi` out of the encounter grid and ends its pairs.
    pub(super) fn leave_grid(&mut self, mmsi: u32) {
        let Some(v) = self.vessels.get_mut(&mmsi) else {
            return;
        };
        let partners = std::mem::take(&mut v.partners);
        if let Some(cell) = v.cell.take() {
            self.grid.remove(cell, mmsi);
        }
        for p in partners {
            self.end_pair(mmsi, p);
        }
    }

    fn end_pair(&mut self, a: u32, b: u32) {
        self.pairs.remove(&(a.min(b), a.max(b)));
        for (x, y) in [(a, b), (b, a)] {
            if let Some(v) = self.vessels.get_mut(&x) {
                v.partners.retain(|p| *p != y);
            }
        }
    }
}
