//! Typed AIS messages (ITU-R M.1371-5), decoded from a payload's bits.
//!
//! Field layouts follow ITU-R M.1371-5 annex 8 as documented by gpsd's "AIVDM/AIVDO protocol
//! decoding". Values the standard reserves for "not available" (latitude 91°, longitude 181°,
//! speed 1023, course 3600, heading 511, second 60, rate of turn -128, ...) are decoded as `None`,
//! and so are values outside the field's domain (a latitude of 100° is no position either): a
//! consumer never has to know the sentinels.

use serde::{Deserialize, Serialize};

use super::bits::BitReader;
use super::error::AisError;

/// A WGS 84 position in decimal degrees.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LatLon {
    /// Latitude, -90..=90, north positive.
    pub lat: f64,
    /// Longitude, -180..=180, east positive.
    pub lon: f64,
}

/// Navigational status of a class A station (4 bits; 15 "not defined" is `None`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum NavStatus {
    /// 0.
    UnderWayUsingEngine,
    /// 1.
    AtAnchor,
    /// 2.
    NotUnderCommand,
    /// 3.
    RestrictedManoeuvrability,
    /// 4.
    ConstrainedByDraught,
    /// 5.
    Moored,
    /// 6.
    Aground,
    /// 7.
    EngagedInFishing,
    /// 8.
    UnderWaySailing,
    /// 11 (regional use until standardised).
    PowerDrivenTowingAstern,
    /// 12 (regional use until standardised).
    PowerDrivenPushingAhead,
    /// 14: AIS-SART, MOB-AIS or EPIRB-AIS active.
    AisSartActive,
    /// 9, 10 and 13: reserved for future amendment (9 and 10 are for HSC and WIG).
    Reserved(u8),
}

impl NavStatus {
    /// Decodes the 4-bit field; 15 ("not defined", the default) is `None`.
    pub fn from_code(code: u8) -> Option<NavStatus> {
        use NavStatus::*;
        Some(match code {
            0 => UnderWayUsingEngine,
            1 => AtAnchor,
            2 => NotUnderCommand,
            3 => RestrictedManoeuvrability,
            4 => ConstrainedByDraught,
            5 => Moored,
            6 => Aground,
            7 => EngagedInFishing,
            8 => UnderWaySailing,
            11 => PowerDrivenTowingAstern,
            12 => PowerDrivenPushingAhead,
            14 => AisSartActive,
            9 | 10 | 13 => Reserved(code),
            _ => return None,
        })
    }

    /// The 4-bit code.
    pub fn code(self) -> u8 {
        use NavStatus::*;
        match self {
            UnderWayUsingEngine => 0,
            AtAnchor => 1,
            NotUnderCommand => 2,
            RestrictedManoeuvrability => 3,
            ConstrainedByDraught => 4,
            Moored => 5,
            Aground => 6,
            EngagedInFishing => 7,
            UnderWaySailing => 8,
            PowerDrivenTowingAstern => 11,
            PowerDrivenPushingAhead => 12,
            AisSartActive => 14,
            Reserved(code) => code,
        }
    }
}

/// Rate of turn of a class A station.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum RateOfTurn {
    /// From a turn indicator, in degrees per minute, positive to starboard. The field carries
    /// `4.733 * sqrt(rate)`, so the decoded rate is exact only to that quantisation.
    DegreesPerMinute(f64),
    /// No turn indicator; turning right at more than 5° per 30 s (raw +127).
    RightMoreThan5DegPer30s,
    /// No turn indicator; turning left at more than 5° per 30 s (raw -127).
    LeftMoreThan5DegPer30s,
}

impl RateOfTurn {
    /// Decodes the signed 8-bit field; -128 is "not available".
    pub fn from_raw(raw: i32) -> Option<RateOfTurn> {
        match raw {
            -128 => None,
            127 => Some(RateOfTurn::RightMoreThan5DegPer30s),
            -127 => Some(RateOfTurn::LeftMoreThan5DegPer30s),
            r => {
                let rate = (f64::from(r) / 4.733).powi(2);
                Some(RateOfTurn::DegreesPerMinute(rate.copysign(f64::from(r))))
            }
        }
    }
}

/// The UTC second of a position report, or why there is none (6 bits; 60 is `None`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TimeStamp {
    /// The second of the UTC minute in which the position was fixed (0-59).
    Second(u8),
    /// 61: the positioning system is in manual input mode.
    ManualInput,
    /// 62: the electronic position fixing system is in dead reckoning mode (the position is
    /// estimated, not measured).
    DeadReckoning,
    /// 63: the positioning system is inoperative.
    Inoperative,
}

impl TimeStamp {
    /// Decodes the 6-bit field; 60 is "not available".
    pub fn from_raw(raw: u32) -> Option<TimeStamp> {
        match raw {
            0..=59 => Some(TimeStamp::Second(raw as u8)),
            61 => Some(TimeStamp::ManualInput),
            62 => Some(TimeStamp::DeadReckoning),
            63 => Some(TimeStamp::Inoperative),
            _ => None,
        }
    }

    /// The UTC second when the report carries one.
    pub fn second(self) -> Option<u8> {
        match self {
            TimeStamp::Second(s) => Some(s),
            _ => None,
        }
    }
}

/// Type of electronic position fixing device (4 bits; 0 "undefined" is `None`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Epfd {
    /// 1.
    Gps,
    /// 2.
    Glonass,
    /// 3.
    CombinedGpsGlonass,
    /// 4.
    LoranC,
    /// 5.
    Chayka,
    /// 6.
    IntegratedNavigation,
    /// 7.
    Surveyed,
    /// 8.
    Galileo,
    /// 15: internal GNSS.
    InternalGnss,
    /// 9-14: not assigned.
    Reserved(u8),
}

impl Epfd {
    /// Decodes the 4-bit field; 0 is "undefined".
    pub fn from_code(code: u8) -> Option<Epfd> {
        use Epfd::*;
        Some(match code {
            0 => return None,
            1 => Gps,
            2 => Glonass,
            3 => CombinedGpsGlonass,
            4 => LoranC,
            5 => Chayka,
            6 => IntegratedNavigation,
            7 => Surveyed,
            8 => Galileo,
            15 => InternalGnss,
            other => Reserved(other),
        })
    }

    /// The 4-bit code.
    pub fn code(self) -> u8 {
        use Epfd::*;
        match self {
            Gps => 1,
            Glonass => 2,
            CombinedGpsGlonass => 3,
            LoranC => 4,
            Chayka => 5,
            IntegratedNavigation => 6,
            Surveyed => 7,
            Galileo => 8,
            InternalGnss => 15,
            Reserved(code) => code,
        }
    }
}

/// Ship and cargo type (8 bits; 0 "not available" is `None` where it is decoded).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ShipType(pub u8);

impl ShipType {
    /// Decodes the 8-bit field; 0 is "not available".
    pub fn from_code(code: u8) -> Option<ShipType> {
        (code != 0).then_some(ShipType(code))
    }

    /// A short description of the type's category (the second digit, hazard category, is not
    /// spelled out).
    pub fn description(self) -> &'static str {
        match self.0 {
            20..=29 => "wing in ground",
            30 => "fishing",
            31 | 32 => "towing",
            33 => "dredging or underwater operations",
            34 => "diving operations",
            35 => "military operations",
            36 => "sailing",
            37 => "pleasure craft",
            40..=49 => "high speed craft",
            50 => "pilot vessel",
            51 => "search and rescue vessel",
            52 => "tug",
            53 => "port tender",
            54 => "anti-pollution equipment",
            55 => "law enforcement",
            58 => "medical transport",
            59 => "noncombatant ship",
            60..=69 => "passenger",
            70..=79 => "cargo",
            80..=89 => "tanker",
            90..=99 => "other type",
            _ => "reserved",
        }
    }

    /// Fishing vessels (type 30), of interest to encounter and loitering rules.
    pub fn is_fishing(self) -> bool {
        self.0 == 30
    }

    /// Tankers (80-89), the usual party to ship-to-ship transfers.
    pub fn is_tanker(self) -> bool {
        (80..=89).contains(&self.0)
    }
}

/// Distances in metres from the position reference point to the bow (A), stern (B), port (C)
/// and starboard (D). A and B saturate at 511 m, C and D at 63 m.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dimensions {
    /// A.
    pub to_bow: u16,
    /// B.
    pub to_stern: u16,
    /// C.
    pub to_port: u8,
    /// D.
    pub to_starboard: u8,
}

impl Dimensions {
    /// Reads A, B, C, D (9, 9, 6, 6 bits); all zero is "not available".
    fn read(r: &mut BitReader<'_>) -> Result<Option<Dimensions>, AisError> {
        let d = Dimensions {
            to_bow: r.u(9)? as u16,
            to_stern: r.u(9)? as u16,
            to_port: r.u(6)? as u8,
            to_starboard: r.u(6)? as u8,
        };
        let all_zero = d.to_bow == 0 && d.to_stern == 0 && d.to_port == 0 && d.to_starboard == 0;
        Ok((!all_zero).then_some(d))
    }

    /// Length overall (A + B) in metres, if known. When the reference point is unknown the
    /// standard puts the whole length in B, so the sum holds either way.
    pub fn length_m(&self) -> Option<u16> {
        let l = self.to_bow + self.to_stern;
        (l > 0).then_some(l)
    }

    /// Beam (C + D) in metres, if known.
    pub fn beam_m(&self) -> Option<u16> {
        let b = u16::from(self.to_port) + u16::from(self.to_starboard);
        (b > 0).then_some(b)
    }
}

/// Estimated time of arrival (month, day, hour, minute in UTC; each may be unavailable).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Eta {
    /// 1-12.
    pub month: Option<u8>,
    /// 1-31.
    pub day: Option<u8>,
    /// 0-23.
    pub hour: Option<u8>,
    /// 0-59.
    pub minute: Option<u8>,
}

/// A UTC date and time as broadcast by a base station; each field may be unavailable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct UtcDateTime {
    /// 1-9999.
    pub year: Option<u16>,
    /// 1-12.
    pub month: Option<u8>,
    /// 1-31.
    pub day: Option<u8>,
    /// 0-23.
    pub hour: Option<u8>,
    /// 0-59.
    pub minute: Option<u8>,
    /// 0-59.
    pub second: Option<u8>,
}

/// Types 1, 2 and 3: class A position report (scheduled, assigned, or in response to
/// interrogation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PositionReport {
    /// 1, 2 or 3.
    pub msg_type: u8,
    /// Times the message was repeated (0-3).
    pub repeat: u8,
    /// Maritime Mobile Service Identity of the sender.
    pub mmsi: u32,
    /// Navigational status.
    pub nav_status: Option<NavStatus>,
    /// Rate of turn.
    pub rot: Option<RateOfTurn>,
    /// Speed over ground in knots (0.1 kn steps; 102.2 means 102.2 kn or more).
    pub sog_knots: Option<f64>,
    /// `true`: accuracy better than 10 m (DGNSS); `false`: worse, or unknown.
    pub position_accuracy: bool,
    /// Position.
    pub position: Option<LatLon>,
    /// Course over ground in degrees (0.1° steps).
    pub cog_deg: Option<f64>,
    /// True heading in degrees.
    pub heading_deg: Option<u16>,
    /// UTC second of the fix, or the positioning mode.
    pub timestamp: Option<TimeStamp>,
    /// Special manoeuvre indicator: `Some(true)` engaged in a special manoeuvre.
    pub special_manoeuvre: Option<bool>,
    /// Receiver autonomous integrity monitoring in use.
    pub raim: bool,
    /// Communication state (SOTDMA for 1 and 2, ITDMA for 3), undecoded.
    pub radio: u32,
}

/// Types 4 and 11: base station report and UTC/date response (same layout).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BaseStationReport {
    /// 4 or 11.
    pub msg_type: u8,
    /// Times the message was repeated (0-3).
    pub repeat: u8,
    /// MMSI of the base station (or of the responding mobile for 11).
    pub mmsi: u32,
    /// The station's UTC date and time.
    pub utc: UtcDateTime,
    /// `true`: accuracy better than 10 m.
    pub position_accuracy: bool,
    /// Position.
    pub position: Option<LatLon>,
    /// Position fixing device.
    pub epfd: Option<Epfd>,
    /// RAIM in use.
    pub raim: bool,
    /// SOTDMA communication state, undecoded.
    pub radio: u32,
}

/// Type 5: static and voyage related data of a class A station (two sentences).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StaticAndVoyage {
    /// Times the message was repeated (0-3).
    pub repeat: u8,
    /// MMSI.
    pub mmsi: u32,
    /// AIS version indicator (0: ITU-R M.1371-1, ...).
    pub ais_version: u8,
    /// IMO ship number.
    pub imo: Option<u32>,
    /// Call sign.
    pub callsign: Option<String>,
    /// Vessel name.
    pub name: Option<String>,
    /// Ship and cargo type.
    pub ship_type: Option<ShipType>,
    /// Dimensions to the reference point.
    pub dimensions: Option<Dimensions>,
    /// Position fixing device.
    pub epfd: Option<Epfd>,
    /// Estimated time of arrival.
    pub eta: Option<Eta>,
    /// Present maximum static draught in metres (0.1 m steps; 25.5 means 25.5 m or more).
    pub draught_m: Option<f64>,
    /// Destination.
    pub destination: Option<String>,
    /// Data terminal equipment ready (`false` when the DTE flag says "not available"). `None`
    /// when the transmitter cut the message short before this bit, as some do.
    pub dte_ready: Option<bool>,
}

/// Type 18: standard class B position report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassBPosition {
    /// Times the message was repeated (0-3).
    pub repeat: u8,
    /// MMSI.
    pub mmsi: u32,
    /// Speed over ground in knots.
    pub sog_knots: Option<f64>,
    /// `true`: accuracy better than 10 m.
    pub position_accuracy: bool,
    /// Position.
    pub position: Option<LatLon>,
    /// Course over ground in degrees.
    pub cog_deg: Option<f64>,
    /// True heading in degrees.
    pub heading_deg: Option<u16>,
    /// UTC second of the fix, or the positioning mode.
    pub timestamp: Option<TimeStamp>,
    /// `true`: carrier-sense (CS) unit; `false`: SOTDMA unit.
    pub carrier_sense: bool,
    /// The unit has a display for message 12 and 14.
    pub display: bool,
    /// The unit has a DSC function.
    pub dsc: bool,
    /// The unit can use the whole marine band.
    pub band: bool,
    /// The unit accepts channel management by message 22.
    pub msg22: bool,
    /// Station operating in assigned mode.
    pub assigned: bool,
    /// RAIM in use.
    pub raim: bool,
    /// Communication state, undecoded.
    pub radio: u32,
}

/// Type 19: extended class B position report (position and static data in one message).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassBExtended {
    /// Times the message was repeated (0-3).
    pub repeat: u8,
    /// MMSI.
    pub mmsi: u32,
    /// Speed over ground in knots.
    pub sog_knots: Option<f64>,
    /// `true`: accuracy better than 10 m.
    pub position_accuracy: bool,
    /// Position.
    pub position: Option<LatLon>,
    /// Course over ground in degrees.
    pub cog_deg: Option<f64>,
    /// True heading in degrees.
    pub heading_deg: Option<u16>,
    /// UTC second of the fix, or the positioning mode.
    pub timestamp: Option<TimeStamp>,
    /// Vessel name.
    pub name: Option<String>,
    /// Ship and cargo type.
    pub ship_type: Option<ShipType>,
    /// Dimensions to the reference point.
    pub dimensions: Option<Dimensions>,
    /// Position fixing device.
    pub epfd: Option<Epfd>,
    /// RAIM in use.
    pub raim: bool,
    /// Data terminal equipment ready.
    pub dte_ready: bool,
    /// Station operating in assigned mode.
    pub assigned: bool,
}

/// Type 21: aid-to-navigation report (buoys, lights, beacons, virtual marks).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AidToNavigation {
    /// Times the message was repeated (0-3).
    pub repeat: u8,
    /// MMSI of the aid.
    pub mmsi: u32,
    /// Type of aid (1-31 per IALA; 0 "not specified" is `None`).
    pub aid_type: Option<u8>,
    /// Name, with the name extension appended.
    pub name: Option<String>,
    /// `true`: accuracy better than 10 m.
    pub position_accuracy: bool,
    /// Position.
    pub position: Option<LatLon>,
    /// Dimensions to the reference point.
    pub dimensions: Option<Dimensions>,
    /// Position fixing device.
    pub epfd: Option<Epfd>,
    /// UTC second of the fix, or the positioning mode.
    pub timestamp: Option<TimeStamp>,
    /// A floating aid is off its charted position (meaningful only when `timestamp` is a second).
    pub off_position: bool,
    /// RAIM in use.
    pub raim: bool,
    /// A virtual aid (no physical object at the position).
    pub virtual_aid: bool,
    /// Station operating in assigned mode.
    pub assigned: bool,
}

/// Type 24: class B static data, in two independent parts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StaticDataReport {
    /// Times the message was repeated (0-3).
    pub repeat: u8,
    /// MMSI.
    pub mmsi: u32,
    /// Part A or part B.
    pub part: StaticDataPart,
}

/// The two parts of a type 24 message; see [`crate::ais::VesselStatic`] for their merge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum StaticDataPart {
    /// Part A: the name.
    A {
        /// Vessel name.
        name: Option<String>,
    },
    /// Part B: type, vendor, call sign, dimensions or mothership.
    B {
        /// Ship and cargo type.
        ship_type: Option<ShipType>,
        /// Manufacturer's mnemonic code (3 characters).
        vendor_id: Option<String>,
        /// Unit model code (4 bits).
        model: u8,
        /// Unit serial number (20 bits).
        serial: u32,
        /// Call sign.
        callsign: Option<String>,
        /// Dimensions, for a vessel (absent for an auxiliary craft).
        dimensions: Option<Dimensions>,
        /// The mothership's MMSI, for an auxiliary craft (MMSI 98XXXYYYY) only.
        mothership_mmsi: Option<u32>,
    },
}

/// Type 27: long-range position report (for satellite reception; coarse, 1/10 minute).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LongRangePosition {
    /// Times the message was repeated (0-3).
    pub repeat: u8,
    /// MMSI.
    pub mmsi: u32,
    /// `true`: accuracy better than 10 m.
    pub position_accuracy: bool,
    /// RAIM in use.
    pub raim: bool,
    /// Navigational status.
    pub nav_status: Option<NavStatus>,
    /// Position, in 1/10 minute steps (about 185 m).
    pub position: Option<LatLon>,
    /// Speed over ground in whole knots.
    pub sog_knots: Option<f64>,
    /// Course over ground in whole degrees.
    pub cog_deg: Option<f64>,
    /// `true`: the position is more than 5 s old when sent (position latency bit; gpsd calls
    /// it "GNSS position status", with 1 = not the current GNSS position).
    pub position_latency_over_5s: bool,
}

/// A decoded AIS message of one of the supported types.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind")]
pub enum AisMessage {
    /// Types 1, 2, 3.
    Position(PositionReport),
    /// Types 4, 11.
    BaseStation(BaseStationReport),
    /// Type 5.
    StaticAndVoyage(StaticAndVoyage),
    /// Type 18.
    ClassBPosition(ClassBPosition),
    /// Type 19.
    ClassBExtended(ClassBExtended),
    /// Type 21.
    AidToNavigation(AidToNavigation),
    /// Type 24.
    StaticData(StaticDataReport),
    /// Type 27.
    LongRange(LongRangePosition),
}

impl AisMessage {
    /// Decodes a whole (reassembled) armored payload.
    pub fn decode(payload: &str, fill_bits: u8) -> Result<AisMessage, AisError> {
        let mut r = BitReader::new(payload.as_bytes(), fill_bits)?;
        AisMessage::read(&mut r)
    }

    /// Decodes a message from a reader positioned at bit 0.
    pub fn read(r: &mut BitReader<'_>) -> Result<AisMessage, AisError> {
        // The type needs six bits; a one-character payload shorter than that by its fill bits
        // is truncated rather than of type 0.
        r.require(6)?;
        Ok(match r.message_type() {
            1..=3 => AisMessage::Position(read_position_report(r)?),
            4 | 11 => AisMessage::BaseStation(read_base_station(r)?),
            5 => AisMessage::StaticAndVoyage(read_static_voyage(r)?),
            18 => AisMessage::ClassBPosition(read_class_b(r)?),
            19 => AisMessage::ClassBExtended(read_class_b_extended(r)?),
            21 => AisMessage::AidToNavigation(read_aid_to_navigation(r)?),
            24 => AisMessage::StaticData(read_static_data(r)?),
            27 => AisMessage::LongRange(read_long_range(r)?),
            other => return Err(AisError::UnsupportedType(other)),
        })
    }

    /// The message type number (1-27).
    pub fn message_type(&self) -> u8 {
        match self {
            AisMessage::Position(m) => m.msg_type,
            AisMessage::BaseStation(m) => m.msg_type,
            AisMessage::StaticAndVoyage(_) => 5,
            AisMessage::ClassBPosition(_) => 18,
            AisMessage::ClassBExtended(_) => 19,
            AisMessage::AidToNavigation(_) => 21,
            AisMessage::StaticData(_) => 24,
            AisMessage::LongRange(_) => 27,
        }
    }

    /// The sender's MMSI.
    pub fn mmsi(&self) -> u32 {
        match self {
            AisMessage::Position(m) => m.mmsi,
            AisMessage::BaseStation(m) => m.mmsi,
            AisMessage::StaticAndVoyage(m) => m.mmsi,
            AisMessage::ClassBPosition(m) => m.mmsi,
            AisMessage::ClassBExtended(m) => m.mmsi,
            AisMessage::AidToNavigation(m) => m.mmsi,
            AisMessage::StaticData(m) => m.mmsi,
            AisMessage::LongRange(m) => m.mmsi,
        }
    }

    /// The repeat indicator (0: original transmission).
    pub fn repeat(&self) -> u8 {
        match self {
            AisMessage::Position(m) => m.repeat,
            AisMessage::BaseStation(m) => m.repeat,
            AisMessage::StaticAndVoyage(m) => m.repeat,
            AisMessage::ClassBPosition(m) => m.repeat,
            AisMessage::ClassBExtended(m) => m.repeat,
            AisMessage::AidToNavigation(m) => m.repeat,
            AisMessage::StaticData(m) => m.repeat,
            AisMessage::LongRange(m) => m.repeat,
        }
    }

    /// The position the message reports, if it reports one and it is available.
    pub fn position(&self) -> Option<LatLon> {
        match self {
            AisMessage::Position(m) => m.position,
            AisMessage::BaseStation(m) => m.position,
            AisMessage::ClassBPosition(m) => m.position,
            AisMessage::ClassBExtended(m) => m.position,
            AisMessage::AidToNavigation(m) => m.position,
            AisMessage::LongRange(m) => m.position,
            AisMessage::StaticAndVoyage(_) | AisMessage::StaticData(_) => None,
        }
    }
}

/// Lengths in bits below which a message lacks defined fields. Where transmitters in the field
/// are known to send shorter messages than the standard (type 5 without the DTE and spare
/// bits), the decoder accepts them and the missing trailing fields are `None`.
mod min_bits {
    pub const POSITION_REPORT: usize = 168;
    pub const BASE_STATION: usize = 168;
    /// Through the destination; the DTE bit and the spare bit are optional.
    pub const STATIC_VOYAGE: usize = 422;
    pub const CLASS_B: usize = 168;
    pub const CLASS_B_EXTENDED: usize = 312;
    /// Without the optional name extension.
    pub const AID_TO_NAVIGATION: usize = 272;
    /// Part A and its name (the 8 spare bits some units add are optional).
    pub const STATIC_DATA_A: usize = 160;
    /// Part B through the dimensions (the 6 spare bits are optional).
    pub const STATIC_DATA_B: usize = 162;
    /// Through the position latency bit (the spare bit is optional).
    pub const LONG_RANGE: usize = 95;
}

/// Type, repeat, MMSI: the 38 bits every message starts with.
fn header(r: &mut BitReader<'_>) -> Result<(u8, u8, u32), AisError> {
    Ok((r.u(6)? as u8, r.u(2)? as u8, r.u(30)?))
}

/// Speed in 0.1 kn; 1023 is "not available".
fn speed(raw: u32) -> Option<f64> {
    (raw < 1023).then(|| f64::from(raw) / 10.0)
}

/// Course in 0.1°; 3600 is "not available", larger values are invalid.
fn course(raw: u32) -> Option<f64> {
    (raw < 3600).then(|| f64::from(raw) / 10.0)
}

/// Heading in degrees; 511 is "not available", 360-510 are invalid.
fn heading(raw: u32) -> Option<u16> {
    (raw < 360).then_some(raw as u16)
}

/// A position from raw longitude and latitude in `1 / scale` degrees. The "not available"
/// values (181°, 91°) and anything else outside the globe give `None`.
fn lat_lon(lon_raw: i32, lat_raw: i32, scale: f64) -> Option<LatLon> {
    let lon = f64::from(lon_raw) / scale;
    let lat = f64::from(lat_raw) / scale;
    ((-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon))
        .then_some(LatLon { lat, lon })
}

/// Reads longitude (28 bits) then latitude (27 bits) in 1/10000 minute.
fn read_position(r: &mut BitReader<'_>) -> Result<Option<LatLon>, AisError> {
    let lon = r.i(28)?;
    let lat = r.i(27)?;
    Ok(lat_lon(lon, lat, 600_000.0))
}

fn non_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

fn in_range(raw: u32, range: std::ops::RangeInclusive<u32>) -> Option<u8> {
    range.contains(&raw).then_some(raw as u8)
}

fn read_position_report(r: &mut BitReader<'_>) -> Result<PositionReport, AisError> {
    r.require(min_bits::POSITION_REPORT)?;
    let (msg_type, repeat, mmsi) = header(r)?;
    let nav_status = NavStatus::from_code(r.u(4)? as u8);
    let rot = RateOfTurn::from_raw(r.i(8)?);
    let sog_knots = speed(r.u(10)?);
    let position_accuracy = r.flag()?;
    let position = read_position(r)?;
    let cog_deg = course(r.u(12)?);
    let heading_deg = heading(r.u(9)?);
    let timestamp = TimeStamp::from_raw(r.u(6)?);
    let special_manoeuvre = match r.u(2)? {
        1 => Some(false),
        2 => Some(true),
        _ => None,
    };
    r.skip(3)?;
    let raim = r.flag()?;
    let radio = r.u(19)?;
    Ok(PositionReport {
        msg_type,
        repeat,
        mmsi,
        nav_status,
        rot,
        sog_knots,
        position_accuracy,
        position,
        cog_deg,
        heading_deg,
        timestamp,
        special_manoeuvre,
        raim,
        radio,
    })
}

fn read_base_station(r: &mut BitReader<'_>) -> Result<BaseStationReport, AisError> {
    r.require(min_bits::BASE_STATION)?;
    let (msg_type, repeat, mmsi) = header(r)?;
    let year = r.u(14)?;
    let utc = UtcDateTime {
        year: (year != 0).then_some(year as u16),
        month: in_range(r.u(4)?, 1..=12),
        day: in_range(r.u(5)?, 1..=31),
        hour: in_range(r.u(5)?, 0..=23),
        minute: in_range(r.u(6)?, 0..=59),
        second: in_range(r.u(6)?, 0..=59),
    };
    let position_accuracy = r.flag()?;
    let position = read_position(r)?;
    let epfd = Epfd::from_code(r.u(4)? as u8);
    r.skip(10)?;
    let raim = r.flag()?;
    let radio = r.u(19)?;
    Ok(BaseStationReport {
        msg_type,
        repeat,
        mmsi,
        utc,
        position_accuracy,
        position,
        epfd,
        raim,
        radio,
    })
}

fn read_static_voyage(r: &mut BitReader<'_>) -> Result<StaticAndVoyage, AisError> {
    r.require(min_bits::STATIC_VOYAGE)?;
    let (_, repeat, mmsi) = header(r)?;
    let ais_version = r.u(2)? as u8;
    let imo = r.u(30)?;
    let callsign = non_empty(r.text(7)?);
    let name = non_empty(r.text(20)?);
    let ship_type = ShipType::from_code(r.u(8)? as u8);
    let dimensions = Dimensions::read(r)?;
    let epfd = Epfd::from_code(r.u(4)? as u8);
    let eta = Eta {
        month: in_range(r.u(4)?, 1..=12),
        day: in_range(r.u(5)?, 1..=31),
        hour: in_range(r.u(5)?, 0..=23),
        minute: in_range(r.u(6)?, 0..=59),
    };
    let eta_known =
        eta.month.is_some() || eta.day.is_some() || eta.hour.is_some() || eta.minute.is_some();
    let draught = r.u(8)?;
    let destination = non_empty(r.text(20)?);
    // DTE: 0 = available (ready), 1 = not available.
    let dte_ready = r.u_opt(1).map(|b| b == 0);
    Ok(StaticAndVoyage {
        repeat,
        mmsi,
        ais_version,
        imo: (imo != 0).then_some(imo),
        callsign,
        name,
        ship_type,
        dimensions,
        epfd,
        eta: eta_known.then_some(eta),
        draught_m: (draught != 0).then(|| f64::from(draught) / 10.0),
        destination,
        dte_ready,
    })
}

fn read_class_b(r: &mut BitReader<'_>) -> Result<ClassBPosition, AisError> {
    r.require(min_bits::CLASS_B)?;
    let (_, repeat, mmsi) = header(r)?;
    r.skip(8)?; // regional reserved
    let sog_knots = speed(r.u(10)?);
    let position_accuracy = r.flag()?;
    let position = read_position(r)?;
    let cog_deg = course(r.u(12)?);
    let heading_deg = heading(r.u(9)?);
    let timestamp = TimeStamp::from_raw(r.u(6)?);
    r.skip(2)?; // regional reserved
    Ok(ClassBPosition {
        repeat,
        mmsi,
        sog_knots,
        position_accuracy,
        position,
        cog_deg,
        heading_deg,
        timestamp,
        carrier_sense: r.flag()?,
        display: r.flag()?,
        dsc: r.flag()?,
        band: r.flag()?,
        msg22: r.flag()?,
        assigned: r.flag()?,
        raim: r.flag()?,
        radio: r.u(20)?,
    })
}

fn read_class_b_extended(r: &mut BitReader<'_>) -> Result<ClassBExtended, AisError> {
    r.require(min_bits::CLASS_B_EXTENDED)?;
    let (_, repeat, mmsi) = header(r)?;
    r.skip(8)?; // regional reserved
    let sog_knots = speed(r.u(10)?);
    let position_accuracy = r.flag()?;
    let position = read_position(r)?;
    let cog_deg = course(r.u(12)?);
    let heading_deg = heading(r.u(9)?);
    let timestamp = TimeStamp::from_raw(r.u(6)?);
    r.skip(4)?; // regional reserved
    let name = non_empty(r.text(20)?);
    let ship_type = ShipType::from_code(r.u(8)? as u8);
    let dimensions = Dimensions::read(r)?;
    let epfd = Epfd::from_code(r.u(4)? as u8);
    Ok(ClassBExtended {
        repeat,
        mmsi,
        sog_knots,
        position_accuracy,
        position,
        cog_deg,
        heading_deg,
        timestamp,
        name,
        ship_type,
        dimensions,
        epfd,
        raim: r.flag()?,
        dte_ready: r.u(1)? == 0,
        assigned: r.flag()?,
    })
}

fn read_aid_to_navigation(r: &mut BitReader<'_>) -> Result<AidToNavigation, AisError> {
    r.require(min_bits::AID_TO_NAVIGATION)?;
    let (_, repeat, mmsi) = header(r)?;
    let aid_type = r.u(5)? as u8;
    let mut name = r.text(20)?;
    let position_accuracy = r.flag()?;
    let position = read_position(r)?;
    let dimensions = Dimensions::read(r)?;
    let epfd = Epfd::from_code(r.u(4)? as u8);
    let timestamp = TimeStamp::from_raw(r.u(6)?);
    let off_position = r.flag()?;
    r.skip(8)?; // regional reserved
    let raim = r.flag()?;
    let virtual_aid = r.flag()?;
    let assigned = r.flag()?;
    r.skip(1)?;
    // Names longer than 20 characters continue in up to 14 more characters at the end; the
    // first part is only padded with '@' when there is no extension.
    let extension = r.text_tail(14);
    if !extension.is_empty() {
        name.push_str(&extension);
    }
    Ok(AidToNavigation {
        repeat,
        mmsi,
        aid_type: (aid_type != 0).then_some(aid_type),
        name: non_empty(name),
        position_accuracy,
        position,
        dimensions,
        epfd,
        timestamp,
        off_position,
        raim,
        virtual_aid,
        assigned,
    })
}

/// Auxiliary craft (a daughter boat of a mothership) have MMSIs of the form 98XXXYYYY, and their
/// part B carries the mothership's MMSI where other vessels put their dimensions.
fn is_auxiliary_craft(mmsi: u32) -> bool {
    (980_000_000..990_000_000).contains(&mmsi)
}

fn read_static_data(r: &mut BitReader<'_>) -> Result<StaticDataReport, AisError> {
    r.require(40)?;
    let (_, repeat, mmsi) = header(r)?;
    let part = match r.u(2)? {
        0 => {
            r.require(min_bits::STATIC_DATA_A)?;
            StaticDataPart::A {
                name: non_empty(r.text(20)?),
            }
        }
        1 => {
            r.require(min_bits::STATIC_DATA_B)?;
            let ship_type = ShipType::from_code(r.u(8)? as u8);
            let vendor_id = non_empty(r.text(3)?);
            let model = r.u(4)? as u8;
            let serial = r.u(20)?;
            let callsign = non_empty(r.text(7)?);
            let (dimensions, mothership_mmsi) = if is_auxiliary_craft(mmsi) {
                let mother = r.u(30)?;
                (None, (mother != 0).then_some(mother))
            } else {
                (Dimensions::read(r)?, None)
            };
            StaticDataPart::B {
                ship_type,
                vendor_id,
                model,
                serial,
                callsign,
                dimensions,
                mothership_mmsi,
            }
        }
        other => {
            return Err(AisError::BadField {
                field: "type 24 part number",
                value: other.to_string(),
            })
        }
    };
    Ok(StaticDataReport { repeat, mmsi, part })
}

fn read_long_range(r: &mut BitReader<'_>) -> Result<LongRangePosition, AisError> {
    r.require(min_bits::LONG_RANGE)?;
    let (_, repeat, mmsi) = header(r)?;
    let position_accuracy = r.flag()?;
    let raim = r.flag()?;
    let nav_status = NavStatus::from_code(r.u(4)? as u8);
    let lon = r.i(18)?;
    let lat = r.i(17)?;
    let sog = r.u(6)?;
    let cog = r.u(9)?;
    Ok(LongRangePosition {
        repeat,
        mmsi,
        position_accuracy,
        raim,
        nav_status,
        // 1/10 minute: 600 steps per degree.
        position: lat_lon(lon, lat, 600.0),
        sog_knots: (sog < 63).then_some(f64::from(sog)),
        cog_deg: (cog < 360).then_some(f64::from(cog)),
        position_latency_over_5s: r.flag()?,
    })
}
