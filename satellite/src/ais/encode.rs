//! Encoding class A position reports (message 1) as AIVDM sentences, for simulated traffic:
//! the demo's AIS feed, the drills' AIS workload and the dark-vessel scenarios give the real
//! decoder real sentences, tag blocks and checksums to chew on.

/// A class A position report to encode.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PositionReportSpec {
    pub mmsi: u32,
    pub lon: f64,
    pub lat: f64,
    /// Speed over ground, knots (0–102.2).
    pub sog_knots: f64,
    /// Course over ground, degrees.
    pub cog_deg: f64,
    /// UTC second of the fix (0–59).
    pub utc_second: u8,
}

struct BitWriter {
    bits: Vec<bool>,
}

impl BitWriter {
    fn put(&mut self, value: i64, width: u32) {
        for i in (0..width).rev() {
            self.bits.push((value >> i) & 1 == 1);
        }
    }
}

/// The AIVDM sentence of a position report on channel A, without a tag block.
pub fn position_sentence(spec: &PositionReportSpec) -> String {
    let mut w = BitWriter { bits: Vec::with_capacity(168) };
    w.put(1, 6); // message type
    w.put(0, 2); // repeat
    w.put(spec.mmsi as i64 & 0x3fff_ffff, 30);
    w.put(0, 4); // under way using engine
    w.put(-128, 8); // rate of turn not available
    w.put((spec.sog_knots * 10.0).round().clamp(0.0, 1022.0) as i64, 10);
    w.put(1, 1); // position accuracy high
    w.put((spec.lon * 600_000.0).round() as i64 & 0x0fff_ffff, 28);
    w.put((spec.lat * 600_000.0).round() as i64 & 0x07ff_ffff, 27);
    w.put((spec.cog_deg.rem_euclid(360.0) * 10.0).round() as i64 % 3600, 12);
    w.put(spec.cog_deg.rem_euclid(360.0).round() as i64 % 360, 9);
    w.put(spec.utc_second.min(63) as i64, 6);
    w.put(0, 2); // manoeuvre
    w.put(0, 3); // spare
    w.put(0, 1); // RAIM
    w.put(0, 19); // radio status
    let payload: String = w
        .bits
        .chunks(6)
        .map(|c| {
            let v = c.iter().fold(0u8, |a, &b| (a << 1) | b as u8);
            (if v < 40 { v + 48 } else { v + 56 }) as char
        })
        .collect();
    let body = format!("AIVDM,1,1,,A,{payload},0");
    format!("!{body}*{:02X}", checksum(&body))
}

/// The sentence with a tag block giving the receive time (`c:`, UNIX seconds) and the source
/// (`s:`), as coastal receivers and aggregators write them.
pub fn tagged_position_sentence(spec: &PositionReportSpec, unix_seconds: i64, source: &str) -> String {
    let tag = format!("s:{source},c:{unix_seconds}");
    format!("\\{tag}*{:02X}\\{}", checksum(&tag), position_sentence(spec))
}

fn checksum(s: &str) -> u8 {
    s.bytes().fold(0, |a, b| a ^ b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ais::{AisMessage, Decoder};

    #[test]
    fn encoded_reports_decode_to_what_was_encoded() {
        let spec = PositionReportSpec { mmsi: 431_000_123, lon: 129.412345, lat: 34.123456, sog_knots: 12.3, cog_deg: 271.4, utc_second: 42 };
        let mut decoder = Decoder::new();
        let line = tagged_position_sentence(&spec, 1_795_209_342, "sar-test");
        let report = decoder.feed_line(&line, 0).expect("valid").expect("complete");
        assert_eq!(report.received_ms, 1_795_209_342_000);
        let AisMessage::Position(p) = &report.message else { panic!("{:?}", report.message) };
        assert_eq!(p.mmsi, 431_000_123);
        let pos = p.position.expect("position");
        assert!((pos.lon - spec.lon).abs() < 2e-6 && (pos.lat - spec.lat).abs() < 2e-6);
        assert_eq!(p.sog_knots, Some(12.3));
        assert_eq!(p.cog_deg, Some(271.4));
    }
}
