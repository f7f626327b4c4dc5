//! Times as the imagery road uses them: microseconds since the Unix epoch (UTC), as tlog
//! records carry them, written as RFC 3339 and read from file names.

/// `2025-06-01T03:00:00.250Z` (milliseconds).
pub fn rfc3339(unix_us: u64) -> String {
    let secs = unix_us / 1_000_000;
    let ms = (unix_us % 1_000_000) / 1000;
    let (y, mo, d) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The time written in a file name, if it holds one in a form that says it is UTC: a basic
/// ISO 8601 stamp `YYYYMMDDTHHMMSS[.fff]Z` (how `mizugiwa drone render` and many recorders
/// name files), or a 13-digit Unix time in milliseconds. Local-time stamps (`DJI_20240612...`)
/// are not taken: their time zone is unknown.
pub fn from_file_name(name: &str) -> Option<u64> {
    let b = name.as_bytes();
    for start in 0..b.len() {
        if start > 0 && b[start - 1].is_ascii_digit() {
            continue;
        }
        if let Some(t) = iso_basic(&b[start..]) {
            return Some(t);
        }
        let digits = b[start..].iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 13 {
            let ms: u64 = name[start..start + 13].parse().ok()?;
            return Some(ms * 1000);
        }
    }
    None
}

fn iso_basic(b: &[u8]) -> Option<u64> {
    let num = |r: std::ops::Range<usize>| -> Option<u64> {
        let s = b.get(r)?;
        s.iter()
            .all(u8::is_ascii_digit)
            .then(|| std::str::from_utf8(s).ok()?.parse().ok())?
    };
    if b.get(8) != Some(&b'T') {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (h, mi, s) = (num(9..11)?, num(11..13)?, num(13..15)?);
    let (frac_us, end) = match b.get(15) {
        Some(b'.') => {
            let n = b[16..]
                .iter()
                .take_while(|c| c.is_ascii_digit())
                .count()
                .min(6);
            let digits = num(16..16 + n)?;
            (digits * 10u64.pow(6 - n as u32), 16 + n)
        }
        _ => (0, 15),
    };
    if b.get(end) != Some(&b'Z')
        || !(1..=12).contains(&mo)
        || !(1..=31).contains(&d)
        || h > 23
        || mi > 59
        || s > 60
    {
        return None;
    }
    let days = days_from_civil(y as i64, mo as u32, d as u32);
    let secs = u64::try_from(days).ok()? * 86_400 + h * 3600 + mi * 60 + s;
    Some(secs * 1_000_000 + frac_us)
}

/// `YYYYMMDDTHHMMSSZ` for a file name.
pub fn file_stamp(unix_us: u64) -> String {
    let secs = unix_us / 1_000_000;
    let (y, mo, d) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    format!(
        "{y:04}{mo:02}{d:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_round_trip_through_names_and_rfc3339() {
        // 2025-06-01T03:00:00Z = 1748746800 s.
        let t = 1_748_746_800_000_000;
        assert_eq!(rfc3339(t + 250_000), "2025-06-01T03:00:00.250Z");
        assert_eq!(file_stamp(t), "20250601T030000Z");
        assert_eq!(from_file_name("sortie-20250601T030000Z.avi"), Some(t));
        assert_eq!(
            from_file_name("cam_20250601T030000.5Z_0001.jpg"),
            Some(t + 500_000)
        );
        assert_eq!(from_file_name("frame-1748746800250.png"), Some(t + 250_000));
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400_000_000), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn names_without_a_utc_stamp_give_none() {
        for name in [
            "DJI_20240612143005_0001.MP4",
            "frame_000123.png",
            "20251301T000000Z.avi",
            "x20250601T030000.avi",
            "12345678901234.png",
            "",
        ] {
            assert_eq!(from_file_name(name), None, "{name}");
        }
    }
}
