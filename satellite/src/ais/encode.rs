//! Encoding class A position reports (message 1) and static and voyage data (message 5, two
//! sentences) as AIVDM sentences, for simulated traffic:
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

    /// Text in AIS six-bit ASCII, upper-cased, padded with `@` (the standard's blank) and cut to
    /// `chars` characters; characters outside the alphabet become spaces.
    fn text(&mut self, text: &str, chars: usize) {
        let mut codes: Vec<i64> = text
            .chars()
            .map(|c| c.to_ascii_uppercase())
            .map(|c| match c as u32 {
                64..=95 => c as i64 - 64, // @A-Z[\]^_
                32..=63 => c as i64,      // space, digits, punctuation
                _ => 32,
            })
            .take(chars)
            .collect();
        codes.resize(chars, 0);
        for c in codes {
            self.put(c, 6);
        }
    }

    /// The armored payload and its fill bits.
    fn armor(&self) -> (String, usize) {
        let fill = (6 - self.bits.len() % 6) % 6;
        let mut bits = self.bits.clone();
        bits.resize(bits.len() + fill, false);
        let payload = bits
            .chunks(6)
            .map(|c| {
                let v = c.iter().fold(0u8, |a, &b| (a << 1) | b as u8);
                (if v < 40 { v + 48 } else { v + 56 }) as char
            })
            .collect();
        (payload, fill)
    }
}

/// A vessel's static and voyage data to encode (message 5).
#[derive(Debug, Clone, PartialEq)]
pub struct StaticDataSpec<'a> {
    pub mmsi: u32,
    pub imo: Option<u32>,
    pub callsign: &'a str,
    pub name: &'a str,
    /// ITU ship type code (e.g. 70 cargo, 80 tanker, 60 passenger, 30 fishing).
    pub ship_type: u8,
    /// Metres from the reference point to bow, stern, port and starboard.
    pub to_bow: u16,
    pub to_stern: u16,
    pub to_port: u8,
    pub to_starboard: u8,
    pub draught_m: f64,
    pub destination: &'a str,
}

/// The two AIVDM sentences of a message 5 on channel A, in sequential group `group` (0–9), each
/// with a tag block (`c:` UNIX seconds, `s:` source, `g:` the group) as receivers log them.
pub fn tagged_static_sentences(
    spec: &StaticDataSpec<'_>,
    unix_seconds: i64,
    source: &str,
    group: u8,
) -> [String; 2] {
    let mut w = BitWriter {
        bits: Vec::with_capacity(424),
    };
    w.put(5, 6);
    w.put(0, 2);
    w.put(spec.mmsi as i64 & 0x3fff_ffff, 30);
    w.put(0, 2); // AIS version
    w.put(spec.imo.unwrap_or(0) as i64 & 0x3fff_ffff, 30);
    w.text(spec.callsign, 7);
    w.text(spec.name, 20);
    w.put(spec.ship_type as i64, 8);
    w.put(spec.to_bow.min(511) as i64, 9);
    w.put(spec.to_stern.min(511) as i64, 9);
    w.put(spec.to_port.min(63) as i64, 6);
    w.put(spec.to_starboard.min(63) as i64, 6);
    w.put(1, 4); // EPFD: GPS
    w.put(0, 20); // ETA not available
    w.put((spec.draught_m * 10.0).round().clamp(0.0, 255.0) as i64, 8);
    w.text(spec.destination, 20);
    w.put(0, 1); // DTE ready
    w.put(0, 1); // spare
    let (payload, fill) = w.armor();
    let (first, second) = payload.split_at(payload.len().min(60));
    let group = group % 10;
    let sentence = |part: usize, text: &str, fill: usize| {
        let body = format!("AIVDM,2,{part},{group},A,{text},{fill}");
        let tag = format!(
            "s:{source},c:{unix_seconds},g:{part}-2-{}",
            9000 + group as u32
        );
        format!(
            "\\{tag}*{:02X}\\!{body}*{:02X}",
            checksum(&tag),
            checksum(&body)
        )
    };
    [sentence(1, first, 0), sentence(2, second, fill)]
}

/// The AIVDM sentence of a position report on channel A, without a tag block.
pub fn position_sentence(spec: &PositionReportSpec) -> String {
    let mut w = BitWriter {
        bits: Vec::with_capacity(168),
    };
    w.put(1, 6); // message type
    w.put(0, 2); // repeat
    w.put(spec.mmsi as i64 & 0x3fff_ffff, 30);
    w.put(0, 4); // under way using engine
    w.put(-128, 8); // rate of turn not available
    w.put(
        (spec.sog_knots * 10.0).round().clamp(0.0, 1022.0) as i64,
        10,
    );
    w.put(1, 1); // position accuracy high
    w.put((spec.lon * 600_000.0).round() as i64 & 0x0fff_ffff, 28);
    w.put((spec.lat * 600_000.0).round() as i64 & 0x07ff_ffff, 27);
    w.put(
        (spec.cog_deg.rem_euclid(360.0) * 10.0).round() as i64 % 3600,
        12,
    );
    w.put(spec.cog_deg.rem_euclid(360.0).round() as i64 % 360, 9);
    w.put(spec.utc_second.min(63) as i64, 6);
    w.put(0, 2); // manoeuvre
    w.put(0, 3); // spare
    w.put(0, 1); // RAIM
    w.put(0, 19); // radio status
    let (payload, _) = w.armor(); // 168 bits: no fill
    let body = format!("AIVDM,1,1,,A,{payload},0");
    format!("!{body}*{:02X}", checksum(&body))
}

/// The sentence with a tag block giving the receive time (`c:`, UNIX seconds) and the source
/// (`s:`), as coastal receivers and aggregators write them.
pub fn tagged_position_sentence(
    spec: &PositionReportSpec,
    unix_seconds: i64,
    source: &str,
) -> String {
    let tag = format!("s:{source},c:{unix_seconds}");
    format!(
        "\\{tag}*{:02X}\\{}",
        checksum(&tag),
        position_sentence(spec)
    )
}

fn checksum(s: &str) -> u8 {
    s.bytes().fold(0, |a, b| a ^ b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ais::{AisMessage, Decoder};

    #[test]
    fn encoded_static_data_decodes_to_what_was_encoded() {
        let spec = StaticDataSpec {
            mmsi: 431_000_101,
            imo: Some(9_321_483),
            callsign: "JD1234",
            name: "Tsushima Maru No.3",
            ship_type: 70,
            to_bow: 150,
            to_stern: 30,
            to_port: 12,
            to_starboard: 14,
            draught_m: 8.4,
            destination: "HAKATA",
        };
        let mut decoder = Decoder::new();
        let [a, b] = tagged_static_sentences(&spec, 1_795_209_342, "sar-test", 3);
        assert!(decoder
            .feed_line(&a, 0)
            .expect("first part valid")
            .is_none());
        let report = decoder
            .feed_line(&b, 0)
            .expect("second part valid")
            .expect("complete");
        let AisMessage::StaticAndVoyage(v) = &report.message else {
            panic!("{:?}", report.message)
        };
        assert_eq!(v.mmsi, 431_000_101);
        assert_eq!(v.imo, Some(9_321_483));
        assert_eq!(v.name.as_deref(), Some("TSUSHIMA MARU NO.3"));
        assert_eq!(v.callsign.as_deref(), Some("JD1234"));
        assert_eq!(v.destination.as_deref(), Some("HAKATA"));
        assert_eq!(v.draught_m, Some(8.4));
        let d = v.dimensions.expect("dimensions");
        assert_eq!(
            (d.to_bow, d.to_stern, d.to_port, d.to_starboard),
            (150, 30, 12, 14)
        );
    }

    #[test]
    fn encoded_reports_decode_to_what_was_encoded() {
        let spec = PositionReportSpec {
            mmsi: 431_000_123,
            lon: 129.412345,
            lat: 34.123456,
            sog_knots: 12.3,
            cog_deg: 271.4,
            utc_second: 42,
        };
        let mut decoder = Decoder::new();
        let line = tagged_position_sentence(&spec, 1_795_209_342, "sar-test");
        let report = decoder
            .feed_line(&line, 0)
            .expect("valid")
            .expect("complete");
        assert_eq!(report.received_ms, 1_795_209_342_000);
        let AisMessage::Position(p) = &report.message else {
            panic!("{:?}", report.message)
        };
        assert_eq!(p.mmsi, 431_000_123);
        let pos = p.position.expect("position");
        assert!((pos.lon - spec.lon).abs() < 2e-6 && (pos.lat - spec.lat).abs() < 2e-6);
        assert_eq!(p.sog_knots, Some(12.3));
        assert_eq!(p.cog_deg, Some(271.4));
    }
}
