//! What a vessel says about itself, merged from the messages that carry static data.
//!
//! Class A stations send everything in type 5. Class B stations split it over type 24 part A
//! (name) and part B (type, call sign, dimensions), sent independently and minutes apart, and
//! the extended class B report (19) carries name, type and dimensions too. The record keeps the
//! latest known value of each field: a message that leaves a field out ("not available") does
//! not erase what an earlier one said, because static data rarely changes and class B units
//! often send one part far more often than the other.

use serde::{Deserialize, Serialize};

use super::messages::{AisMessage, Dimensions, Eta, ShipType, StaticDataPart};

/// The static and voyage data known for one MMSI.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VesselStatic {
    /// Vessel name (5, 19, 24A).
    pub name: Option<String>,
    /// Call sign (5, 24B).
    pub callsign: Option<String>,
    /// IMO number (5).
    pub imo: Option<u32>,
    /// Ship and cargo type (5, 19, 24B).
    pub ship_type: Option<ShipType>,
    /// Dimensions (5, 19, 24B).
    pub dimensions: Option<Dimensions>,
    /// Destination (5).
    pub destination: Option<String>,
    /// Estimated time of arrival (5).
    pub eta: Option<Eta>,
    /// Draught in metres (5).
    pub draught_m: Option<f64>,
    /// Transponder vendor mnemonic (24B).
    pub vendor_id: Option<String>,
    /// Mothership, for an auxiliary craft (24B).
    pub mothership_mmsi: Option<u32>,
    /// A type 24 part A has been merged.
    pub has_part_a: bool,
    /// A type 24 part B has been merged.
    pub has_part_b: bool,
    /// Receive time of the latest static message merged, in UNIX milliseconds.
    pub updated_ms: Option<i64>,
}

fn set<T: Clone>(slot: &mut Option<T>, value: &Option<T>) {
    if value.is_some() {
        slot.clone_from(value);
    }
}

impl VesselStatic {
    /// Merges the static fields of `message`, received at `time_ms`; returns whether the
    /// message carried static data at all. The caller matches MMSIs.
    pub fn merge(&mut self, message: &AisMessage, time_ms: i64) -> bool {
        match message {
            AisMessage::StaticAndVoyage(m) => {
                set(&mut self.name, &m.name);
                set(&mut self.callsign, &m.callsign);
                set(&mut self.imo, &m.imo);
                set(&mut self.ship_type, &m.ship_type);
                set(&mut self.dimensions, &m.dimensions);
                set(&mut self.destination, &m.destination);
                set(&mut self.eta, &m.eta);
                set(&mut self.draught_m, &m.draught_m);
            }
            AisMessage::ClassBExtended(m) => {
                set(&mut self.name, &m.name);
                set(&mut self.ship_type, &m.ship_type);
                set(&mut self.dimensions, &m.dimensions);
            }
            AisMessage::StaticData(m) => match &m.part {
                StaticDataPart::A { name } => {
                    set(&mut self.name, name);
                    self.has_part_a = true;
                }
                StaticDataPart::B {
                    ship_type,
                    vendor_id,
                    callsign,
                    dimensions,
                    mothership_mmsi,
                    ..
                } => {
                    set(&mut self.ship_type, ship_type);
                    set(&mut self.vendor_id, vendor_id);
                    set(&mut self.callsign, callsign);
                    set(&mut self.dimensions, dimensions);
                    set(&mut self.mothership_mmsi, mothership_mmsi);
                    self.has_part_b = true;
                }
            },
            _ => return false,
        }
        self.updated_ms = Some(self.updated_ms.map_or(time_ms, |t| t.max(time_ms)));
        true
    }

    /// Length overall in metres, if the dimensions are known.
    pub fn length_m(&self) -> Option<u16> {
        self.dimensions.and_then(|d| d.length_m())
    }

    /// Beam in metres, if the dimensions are known.
    pub fn beam_m(&self) -> Option<u16> {
        self.dimensions.and_then(|d| d.beam_m())
    }
}
