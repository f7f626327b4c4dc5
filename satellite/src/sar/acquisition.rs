//! When and how a SAR scene was imaged, and where that puts moving ships in the image.
//!
//! A SAR focuses each target at the azimuth where its Doppler is zero. A ship with a velocity
//! component along the line of sight adds a Doppler offset, so it is imaged displaced along the
//! platform's track by `-(R / V) · v_los` (the "train off the track" effect): with Sentinel-1's
//! R ≈ 850 km and V ≈ 7.6 km/s, a ship closing on the radar at 3 m/s line-of-sight speed shows
//! up about 340 m ahead of where it is. AIS correlation must move the AIS position the same
//! way before matching, and the scene generator images its moving ships there.

use serde::{Deserialize, Serialize};

/// Which side of its track the radar looks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LookSide {
    Right,
    Left,
}

/// The acquisition geometry of a scene, as far as detection and correlation need it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Acquisition {
    /// Mid-scene zero-Doppler time, UNIX milliseconds.
    pub time_ms: i64,
    /// Platform heading over ground, degrees clockwise from north (Sentinel-1 ascending about
    /// 348°, descending about 192° at mid latitudes).
    pub platform_heading_deg: f64,
    /// Sentinel-1 looks right.
    pub look_side: LookSide,
    /// Slant range to mid-scene, metres.
    pub slant_range_m: f64,
    /// Platform speed, metres per second (Sentinel-1 about 7,600 m/s over ground track).
    pub platform_velocity_ms: f64,
    /// Incidence angle at mid-scene, degrees.
    pub incidence_deg: f64,
}

impl Acquisition {
    /// Unit vector (east, north) of the platform's direction of flight.
    pub fn along_track(&self) -> (f64, f64) {
        let (s, c) = self.platform_heading_deg.to_radians().sin_cos();
        (s, c)
    }

    /// Unit vector (east, north) on the ground pointing away from the radar (ground range).
    pub fn ground_range(&self) -> (f64, f64) {
        let side = match self.look_side {
            LookSide::Right => 90.0,
            LookSide::Left => -90.0,
        };
        let (s, c) = (self.platform_heading_deg + side).to_radians().sin_cos();
        (s, c)
    }

    /// Line-of-sight speed (m/s, positive away from the radar) of a ship moving at
    /// `velocity_en` (east, north, m/s) on the sea surface.
    pub fn line_of_sight_speed(&self, velocity_en: (f64, f64)) -> f64 {
        let (ge, gn) = self.ground_range();
        (velocity_en.0 * ge + velocity_en.1 * gn) * self.incidence_deg.to_radians().sin()
    }

    /// Where a ship moving at `velocity_en` (east, north, m/s) is imaged relative to where it
    /// is: the displacement (east, north) in metres along the platform's track.
    pub fn azimuth_shift_m(&self, velocity_en: (f64, f64)) -> (f64, f64) {
        if self.platform_velocity_ms <= 0.0 {
            return (0.0, 0.0);
        }
        let shift =
            -self.slant_range_m / self.platform_velocity_ms * self.line_of_sight_speed(velocity_en);
        let (ae, an) = self.along_track();
        (shift * ae, shift * an)
    }
}

/// Velocity (east, north) in m/s of a ship at `sog_knots` on course `cog_deg`.
pub fn velocity_en(sog_knots: f64, cog_deg: f64) -> (f64, f64) {
    let speed = sog_knots * 1852.0 / 3600.0;
    let (s, c) = cog_deg.to_radians().sin_cos();
    (speed * s, speed * c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn descending() -> Acquisition {
        Acquisition {
            time_ms: 0,
            platform_heading_deg: 192.0,
            look_side: LookSide::Right,
            slant_range_m: 850_000.0,
            platform_velocity_ms: 7_600.0,
            incidence_deg: 37.0,
        }
    }

    #[test]
    fn a_ship_closing_on_the_radar_is_imaged_ahead_along_track() {
        let acq = descending();
        // Right-looking on a heading of 192°: the radar looks towards 282° (west-north-west),
        // so a ship steaming towards 102° closes on it.
        let v = velocity_en(10.0, 102.0);
        assert!(acq.line_of_sight_speed(v) < -2.9);
        let (de, dn) = acq.azimuth_shift_m(v);
        let (ae, an) = acq.along_track();
        let ahead = de * ae + dn * an;
        assert!(ahead > 300.0 && ahead < 400.0, "{ahead}");
        // Moving along the track: no line-of-sight speed, no shift.
        let (de, dn) = acq.azimuth_shift_m(velocity_en(10.0, 192.0));
        assert!(de.hypot(dn) < 1e-6);
    }
}

/// UNIX milliseconds of an ISO 8601 UTC time as products write them: `2026-11-20T21:15:42`,
/// with optional fraction (any number of digits) and optional `Z`, years 0000 to 9999. `None`
/// for anything else.
pub fn parse_utc_ms(text: &str) -> Option<i64> {
    let t = text.trim().trim_end_matches('Z');
    let (date, time) = t.split_once('T').or_else(|| t.split_once(' '))?;
    let mut d = date.splitn(3, '-');
    let (y, m, day): (i64, i64, i64) = (
        d.next()?.parse().ok()?,
        d.next()?.parse().ok()?,
        d.next()?.parse().ok()?,
    );
    let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
    let mut h = hms.splitn(3, ':');
    let (hh, mm, ss): (i64, i64, i64) = (
        h.next()?.parse().ok()?,
        h.next()?.parse().ok()?,
        h.next()?.parse().ok()?,
    );
    // Four-digit years only: the day arithmetic below cannot overflow, whatever the text says.
    if !(0..=9999).contains(&y)
        || !(1..=12).contains(&m)
        || !(1..=31).contains(&day)
        || !(0..=23).contains(&hh)
        || !(0..=59).contains(&mm)
        || !(0..=60).contains(&ss)
    {
        return None;
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let ms = frac
        .bytes()
        .chain(std::iter::repeat(b'0'))
        .take(3)
        .fold(0i64, |a, b| a * 10 + (b - b'0') as i64);
    // Days from the civil date (Howard Hinnant's algorithm).
    let (y, m) = if m <= 2 { (y - 1, m + 9) } else { (y, m - 3) };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 24 + hh) * 60 + mm) * 60_000 + ss * 1000 + ms)
}

#[cfg(test)]
mod time_tests {
    #[test]
    fn product_times_parse_to_unix_milliseconds() {
        assert_eq!(super::parse_utc_ms("1970-01-01T00:00:00"), Some(0));
        assert_eq!(
            super::parse_utc_ms("2026-11-20T21:15:42.123456"),
            Some(1_795_209_342_123)
        );
        assert_eq!(
            super::parse_utc_ms("2026-11-20T21:15:42.1Z"),
            Some(1_795_209_342_100)
        );
        assert_eq!(super::parse_utc_ms("2026-13-20T21:15:42"), None);
        assert_eq!(super::parse_utc_ms("yesterday"), None);
    }

    #[test]
    fn absurd_years_and_negative_fields_are_refused_not_overflowed() {
        assert_eq!(super::parse_utc_ms("99999999999999-01-01T00:00:00"), None);
        assert_eq!(super::parse_utc_ms("-4000-01-01T00:00:00"), None);
        assert_eq!(super::parse_utc_ms("2026-11-20T-5:15:42"), None);
        assert_eq!(super::parse_utc_ms("2026-11-20T21:-1:42"), None);
        assert_eq!(super::parse_utc_ms("2026-11-20T21:15:-1"), None);
        assert_eq!(
            super::parse_utc_ms("9999-12-31T23:59:59.999"),
            Some(253_402_300_799_999)
        );
    }
}
