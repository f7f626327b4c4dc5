//! Patrol plans as the three lists a vehicle holds: mission (take-off, waypoints, return),
//! fence (inclusion and exclusion polygons) and rally points, and back.

use geo::{Coord, LineString, Polygon};

use super::mission::MissionItem;
use crate::plan::{Geofence, Plan, Waypoint};

/// MAVLink command and frame numbers used here (common dialect).
pub mod cmd {
    pub const NAV_WAYPOINT: u16 = 16;
    pub const NAV_RETURN_TO_LAUNCH: u16 = 20;
    pub const NAV_LAND: u16 = 21;
    pub const NAV_TAKEOFF: u16 = 22;
    pub const FENCE_POLYGON_VERTEX_INCLUSION: u16 = 5001;
    pub const FENCE_POLYGON_VERTEX_EXCLUSION: u16 = 5002;
    pub const RALLY_POINT: u16 = 5100;
}

pub mod frame {
    /// Absolute altitude (used for home).
    pub const GLOBAL: u8 = 0;
    /// Altitude above home, lat/lon as integers × 1e7.
    pub const GLOBAL_RELATIVE_ALT_INT: u8 = 6;
    pub const GLOBAL_INT: u8 = 5;
}

fn deg_e7(v: f64) -> i32 {
    (v * 1e7).round() as i32
}

fn item(seq: usize, frame: u8, command: u16, lat: f64, lon: f64, z: f32) -> MissionItem {
    MissionItem {
        seq: seq as u16,
        frame,
        command,
        current: 0,
        autocontinue: 1,
        param1: 0.0,
        param2: 0.0,
        param3: 0.0,
        param4: 0.0,
        x: deg_e7(lat),
        y: deg_e7(lon),
        z,
    }
}

/// Take-off to the first waypoint's altitude, every waypoint, return to launch.
pub fn mission_items(plan: &Plan) -> Vec<MissionItem> {
    let mut items = Vec::with_capacity(plan.waypoints.len() + 2);
    let takeoff_alt = plan
        .waypoints
        .first()
        .map(|w| w.alt_m)
        .unwrap_or(plan.home.alt_m);
    items.push(item(
        0,
        frame::GLOBAL_RELATIVE_ALT_INT,
        cmd::NAV_TAKEOFF,
        plan.home.lat,
        plan.home.lon,
        takeoff_alt as f32,
    ));
    for w in &plan.waypoints {
        items.push(item(
            items.len(),
            frame::GLOBAL_RELATIVE_ALT_INT,
            cmd::NAV_WAYPOINT,
            w.lat,
            w.lon,
            w.alt_m as f32,
        ));
    }
    items.push(item(
        items.len(),
        frame::GLOBAL_RELATIVE_ALT_INT,
        cmd::NAV_RETURN_TO_LAUNCH,
        0.0,
        0.0,
        0.0,
    ));
    items
}

/// The home position as ArduPilot's mission item 0.
pub fn home_item(home: &Waypoint) -> MissionItem {
    item(
        0,
        frame::GLOBAL,
        cmd::NAV_WAYPOINT,
        home.lat,
        home.lon,
        home.alt_m as f32,
    )
}

/// Polygon vertices, each carrying its polygon's vertex count in param1 (the closing vertex of
/// a GeoJSON ring is not repeated).
pub fn fence_items(fence: &Geofence) -> Vec<MissionItem> {
    let mut items = Vec::new();
    let zones = fence
        .inclusions
        .iter()
        .map(|p| (p, cmd::FENCE_POLYGON_VERTEX_INCLUSION))
        .chain(
            fence
                .exclusions
                .iter()
                .map(|p| (p, cmd::FENCE_POLYGON_VERTEX_EXCLUSION)),
        );
    for (polygon, command) in zones {
        let ring = &polygon.exterior().0;
        let open = if ring.len() > 1 && ring.first() == ring.last() {
            &ring[..ring.len() - 1]
        } else {
            &ring[..]
        };
        for c in open {
            let mut it = item(items.len(), frame::GLOBAL_INT, command, c.y, c.x, 0.0);
            it.param1 = open.len() as f32;
            items.push(it);
        }
    }
    items
}

pub fn rally_items(rally: &[Waypoint]) -> Vec<MissionItem> {
    rally
        .iter()
        .enumerate()
        .map(|(i, w)| {
            item(
                i,
                frame::GLOBAL_RELATIVE_ALT_INT,
                cmd::RALLY_POINT,
                w.lat,
                w.lon,
                w.alt_m as f32,
            )
        })
        .collect()
}

/// Why downloaded lists do not make a plan.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ItemsError {
    #[error("fence item {seq}: polygon of {count} vertices is cut short")]
    ShortPolygon { seq: u16, count: f32 },
    #[error("fence item {seq}: command {command} is not a polygon vertex")]
    UnsupportedFence { seq: u16, command: u16 },
}

/// The fence back from its items.
pub fn fence_from_items(items: &[MissionItem]) -> Result<Geofence, ItemsError> {
    let mut fence = Geofence::default();
    let mut at = 0;
    while at < items.len() {
        let first = items[at];
        let inclusion = match first.command {
            cmd::FENCE_POLYGON_VERTEX_INCLUSION => true,
            cmd::FENCE_POLYGON_VERTEX_EXCLUSION => false,
            command => {
                return Err(ItemsError::UnsupportedFence {
                    seq: first.seq,
                    command,
                })
            }
        };
        let count = first.param1;
        // param1 comes from the vehicle: anything but a whole count that fits is refused
        // before it is used as a length.
        if !(3.0..=65535.0).contains(&count)
            || count.fract() != 0.0
            || count as usize > items.len() - at
        {
            return Err(ItemsError::ShortPolygon {
                seq: first.seq,
                count,
            });
        }
        let n = count as usize;
        if items[at..at + n].iter().any(|i| i.command != first.command) {
            return Err(ItemsError::ShortPolygon {
                seq: first.seq,
                count,
            });
        }
        let mut ring: Vec<Coord<f64>> = items[at..at + n]
            .iter()
            .map(|i| Coord {
                x: f64::from(i.y) / 1e7,
                y: f64::from(i.x) / 1e7,
            })
            .collect();
        ring.push(ring[0]);
        let polygon = Polygon::new(LineString::from(ring), vec![]);
        if inclusion {
            fence.inclusions.push(polygon)
        } else {
            fence.exclusions.push(polygon)
        }
        at += n;
    }
    Ok(fence)
}

/// Waypoints flown by a mission (navigation items with a position).
pub fn waypoints_from_items(items: &[MissionItem]) -> Vec<Waypoint> {
    items
        .iter()
        .filter(|i| i.command == cmd::NAV_WAYPOINT)
        .map(|i| Waypoint {
            lat: f64::from(i.x) / 1e7,
            lon: f64::from(i.y) / 1e7,
            alt_m: f64::from(i.z),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn square(lon: f64, lat: f64, d: f64) -> Polygon<f64> {
        Polygon::new(
            LineString::from(vec![
                (lon, lat),
                (lon + d, lat),
                (lon + d, lat + d),
                (lon, lat + d),
                (lon, lat),
            ]),
            vec![],
        )
    }

    #[test]
    fn plans_become_lists_and_back() {
        let home = Waypoint {
            lat: 34.2,
            lon: 129.3,
            alt_m: 0.0,
        };
        let plan = Plan {
            home,
            waypoints: vec![
                Waypoint {
                    lat: 34.21,
                    lon: 129.31,
                    alt_m: 120.0,
                },
                Waypoint {
                    lat: 34.22,
                    lon: 129.31,
                    alt_m: 120.0,
                },
            ],
            fence: Geofence {
                inclusions: vec![square(129.2, 34.1, 0.3)],
                exclusions: vec![square(129.25, 34.15, 0.01)],
            },
            rally: vec![Waypoint {
                lat: 34.2,
                lon: 129.29,
                alt_m: 30.0,
            }],
            cruise_speed_mps: 15.0,
        };
        let mission = mission_items(&plan);
        assert_eq!(mission.len(), 4);
        assert_eq!(mission[0].command, cmd::NAV_TAKEOFF);
        assert_eq!(mission[0].z, 120.0);
        assert_eq!(mission[3].command, cmd::NAV_RETURN_TO_LAUNCH);
        assert_eq!(waypoints_from_items(&mission), plan.waypoints);

        let fence = fence_items(&plan.fence);
        assert_eq!(fence.len(), 8);
        assert!(fence.iter().all(|i| i.param1 == 4.0));
        assert_eq!(fence_from_items(&fence).unwrap(), plan.fence);
        assert!(matches!(
            fence_from_items(&fence[..6]),
            Err(ItemsError::ShortPolygon { seq: 4, .. })
        ));
        // Counts a vehicle could send that are not counts.
        for bad in [f32::INFINITY, f32::NAN, 1e30, -4.0, 3.5, 2.0] {
            let mut f = fence.clone();
            f[4].param1 = bad;
            assert!(
                matches!(
                    fence_from_items(&f),
                    Err(ItemsError::ShortPolygon { seq: 4, .. })
                ),
                "{bad}"
            );
        }

        let rally = rally_items(&plan.rally);
        assert_eq!(rally[0].command, cmd::RALLY_POINT);
        assert_eq!(rally[0].x, 342_000_000);
    }
}
