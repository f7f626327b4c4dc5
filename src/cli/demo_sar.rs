//! Tsushima's maritime picture in `mizugiwa demo`: a small fleet in the western channel of the
//! Korea Strait broadcasting AIS, fed as NMEA over TCP to the site's real `ais_tcp` source, and
//! one synthetic Sentinel-1-like SAR pass over the same water dropped into the site's real
//! `sar_inbox`, in which three more ships show that broadcast nothing.
//!
//! The fleet is a pure function of time: each vessel runs to and fro along a straight leg at a
//! constant speed, and is at its anchor point, heading on its course, at the acquisition time
//! (four minutes before the demo starts). The feed sends every connection a backlog (the last
//! ten minutes, one report per vessel every 10 s, each with its `c:` tag-block time), then
//! live reports every 2 s, so the site's AIS picture brackets the acquisition time at once.
//! The scene (1536 × 1536 px at 10 m, Natural Earth land, the fleet where it was at the
//! acquisition plus the dark ships; fixed seed, so the same image every run) is written aside
//! as `.<scene>/` with its truth and the AIS backlog (`truth.json`, `ais.nmea`), moved into the
//! inbox when the site's vessel records show every vessel heard after the acquisition, and
//! `READY` is written last. The node then detects the ships, finds AIS for the fleet and raises
//! one `dark_vessel` alert per dark ship.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use mizugiwa_command::records::{ALERTS, DETECTIONS, VESSELS};
use mizugiwa_field_node::pipeline::SourceConfig;
use mizugiwa_field_node::SiteConfig;
use mizugiwa_satellite::ais::encode::{
    tagged_position_sentence, tagged_static_sentences, PositionReportSpec, StaticDataSpec,
};
use mizugiwa_satellite::land::LandMask;
use mizugiwa_satellite::sar::synth::{rfc3339_ms, write_scene, Clutter, SceneSpec, ShipSpec};
use mizugiwa_satellite::sar::Acquisition;
use mizugiwa_sync::{Store, Value};
use tokio::io::AsyncWriteExt;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A ship of the demo: where it is at the acquisition time and how it moves.
pub struct Ship {
    /// `None` for a dark ship: it sends no AIS.
    pub mmsi: Option<u32>,
    /// Longitude and latitude at the acquisition time, degrees.
    pub at: (f64, f64),
    pub cog_deg: f64,
    pub sog_knots: f64,
    pub length_m: f64,
    /// It runs to and fro this far either side of `at`, metres.
    pub leg_m: f64,
}

/// The vessels that broadcast AIS: a container ship and a ferry bound north-east up the
/// channel, a tanker south-west, a trawler working off the west coast, a cargo ship waiting.
pub const FLEET: [Ship; 5] = [
    Ship {
        mmsi: Some(431_000_101),
        at: (129.080, 34.390),
        cog_deg: 30.0,
        sog_knots: 16.0,
        length_m: 260.0,
        leg_m: 6_000.0,
    },
    Ship {
        mmsi: Some(440_123_000),
        at: (129.140, 34.300),
        cog_deg: 210.0,
        sog_knots: 12.0,
        length_m: 180.0,
        leg_m: 6_000.0,
    },
    Ship {
        mmsi: Some(441_000_200),
        at: (129.110, 34.330),
        cog_deg: 25.0,
        sog_knots: 18.0,
        length_m: 140.0,
        leg_m: 6_000.0,
    },
    Ship {
        mmsi: Some(431_000_102),
        at: (129.170, 34.360),
        cog_deg: 300.0,
        sog_knots: 5.0,
        length_m: 80.0,
        leg_m: 3_000.0,
    },
    Ship {
        mmsi: Some(431_000_103),
        at: (129.200, 34.390),
        cog_deg: 0.0,
        sog_knots: 0.0,
        length_m: 110.0,
        leg_m: 0.0,
    },
];

/// Ships in the scene that broadcast nothing.
pub const DARK: [Ship; 3] = [
    Ship {
        mmsi: None,
        at: (129.140, 34.360),
        cog_deg: 160.0,
        sog_knots: 7.0,
        length_m: 90.0,
        leg_m: 0.0,
    },
    Ship {
        mmsi: None,
        at: (129.080, 34.310),
        cog_deg: 70.0,
        sog_knots: 0.0,
        length_m: 95.0,
        leg_m: 0.0,
    },
    Ship {
        mmsi: None,
        at: (129.110, 34.390),
        cog_deg: 245.0,
        sog_knots: 10.0,
        length_m: 95.0,
        leg_m: 0.0,
    },
];

/// The scene's centre (the strait west of Tsushima), size and spacing.
const CENTRE: (f64, f64) = (129.15, 34.35);
const SCENE_PX: usize = 1536;
const SPACING_M: f64 = 10.0;
const SCENE_SEED: u64 = 20_261_120;
/// Seconds between reports in the backlog, and between live reports.
const BACKLOG_STEP_S: i64 = 10;
const LIVE_EVERY: Duration = Duration::from_secs(2);
/// The receiver's name in the tag blocks.
const STATION: &str = "tsushima-ais";

/// Metres per degree of longitude and of latitude at `lat` (local plane: the legs are a few km).
fn metres_per_degree(lat: f64) -> (f64, f64) {
    let r = lat.to_radians();
    (
        111_412.84 * r.cos(),
        111_132.954 - 559.822 * (2.0 * r).cos(),
    )
}

impl Ship {
    /// Longitude, latitude and course `dt_s` seconds after the acquisition time.
    pub fn at(&self, dt_s: f64) -> (f64, f64, f64) {
        let speed = self.sog_knots * 1852.0 / 3600.0;
        if self.leg_m <= 0.0 || speed <= 0.0 {
            return (self.at.0, self.at.1, self.cog_deg);
        }
        // A triangle wave: out along the course to +leg, back to -leg, out again.
        let h = self.leg_m;
        let u = (speed * dt_s + h).rem_euclid(4.0 * h);
        let (s, cog) = if u < 2.0 * h {
            (u - h, self.cog_deg)
        } else {
            (3.0 * h - u, (self.cog_deg + 180.0) % 360.0)
        };
        let (sin, cos) = self.cog_deg.to_radians().sin_cos();
        let (m_lon, m_lat) = metres_per_degree(self.at.1);
        (
            self.at.0 + s * sin / m_lon,
            self.at.1 + s * cos / m_lat,
            cog,
        )
    }
}

/// The scene's id (its folder in the inbox): the acquisition time to the second.
pub fn scene_id(acquisition_ms: i64) -> String {
    let t: String = rfc3339_ms(acquisition_ms)
        .chars()
        .take(19)
        .filter(|c| c.is_ascii_alphanumeric())
        .collect();
    format!("s1-tsushima-{t}")
}

/// Tsushima as a site config: its runtime's settings, the demo's AIS feed and a SAR inbox.
pub fn site_config(
    rc: mizugiwa_command::runtime::RuntimeConfig,
    ais: SocketAddr,
    sar_inbox: &Path,
) -> anyhow::Result<SiteConfig> {
    let sources: Vec<SourceConfig> = serde_json::from_value(serde_json::json!([
        { "kind": "ais_tcp", "addr": ais.to_string(), "reconnect_secs": 1 },
        { "kind": "sar_inbox", "dir": sar_inbox },
    ]))?;
    Ok(SiteConfig {
        node: rc.node,
        data_dir: rc.data_dir,
        pki_dir: rc.pki_dir,
        location: rc.location,
        status_interval_secs: rc.status_interval.as_secs(),
        sync: rc.sync,
        http: rc.http,
        users: rc.users,
        sources,
        records: Default::default(),
        ais: Default::default(),
        bus: None,
        gates: None,
        drones: None,
    })
}

/// Names, call signs and ITU ship types of the fleet, in `FLEET` order.
const IDENTITIES: [(&str, &str, u8, &str); 5] = [
    ("TSUSHIMA BRIDGE", "JD4021", 71, "BUSAN"),
    ("HANA MARU", "DSQR7", 80, "HAKATA"),
    ("KAIKYO LINER", "6KCB3", 60, "IZUHARA"),
    ("SHINSEI MARU NO.8", "JK2210", 30, "IZUHARA"),
    ("GENKAI TRADER", "JM7731", 70, "KITAKYUSHU"),
];

/// The fleet's static and voyage data (message 5, two sentences each) stamped at UNIX second
/// `t`: sent when the node connects and every minute after, as a vessel's transponder does
/// every few minutes.
pub fn static_reports(t: i64) -> Vec<String> {
    FLEET
        .iter()
        .zip(IDENTITIES)
        .enumerate()
        .filter_map(|(i, (v, (name, callsign, ship_type, destination)))| {
            let length = v.length_m.round() as u16;
            let beam = (v.length_m / 6.5 / 2.0).round() as u8;
            let spec = StaticDataSpec {
                mmsi: v.mmsi?,
                imo: None,
                callsign,
                name,
                ship_type,
                to_bow: length * 4 / 5,
                to_stern: length - length * 4 / 5,
                to_port: beam,
                to_starboard: beam,
                draught_m: (v.length_m / 25.0).clamp(2.0, 14.0),
                destination,
            };
            Some(tagged_static_sentences(&spec, t, STATION, i as u8))
        })
        .flatten()
        .collect()
}

/// The fleet's position reports at UNIX second `t`, tag blocks and all.
pub fn reports(acquisition_ms: i64, t: i64) -> Vec<String> {
    let dt_s = (t * 1000 - acquisition_ms) as f64 / 1000.0;
    FLEET
        .iter()
        .filter_map(|v| {
            let (lon, lat, cog_deg) = v.at(dt_s);
            let spec = PositionReportSpec {
                mmsi: v.mmsi?,
                lon,
                lat,
                sog_knots: v.sog_knots,
                cog_deg,
                utc_second: t.rem_euclid(60) as u8,
            };
            Some(tagged_position_sentence(&spec, t, STATION))
        })
        .collect()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The AIS feed: a TCP server on loopback sending the fleet's NMEA to whoever connects (the
/// site's `ais_tcp` source): the backlog from `backlog_from_ms`, then live reports.
pub async fn serve_ais(
    acquisition_ms: i64,
    backlog_from_ms: i64,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<(SocketAddr, JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("binding the demo AIS feed")?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        loop {
            let stream = tokio::select! {
                r = listener.accept() => r,
                _ = stop.wait_for(|s| *s) => break,
            };
            match stream {
                Ok((stream, _)) => {
                    tokio::spawn(feed(stream, acquisition_ms, backlog_from_ms, stop.clone()));
                }
                Err(e) => tracing::warn!(error = %e, "demo AIS feed: accept failed"),
            }
        }
    });
    Ok((addr, task))
}

async fn feed(
    mut stream: tokio::net::TcpStream,
    acquisition_ms: i64,
    backlog_from_ms: i64,
    mut stop: watch::Receiver<bool>,
) {
    let first_second = backlog_from_ms.div_euclid(1000);
    let names: String = static_reports(first_second)
        .into_iter()
        .map(|l| l + "\r\n")
        .collect();
    let backlog = names + &backlog(acquisition_ms, backlog_from_ms, now_ms());
    if stream.write_all(backlog.as_bytes()).await.is_err() {
        return;
    }
    let mut last_names = now_ms() / 1000;
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + LIVE_EVERY, LIVE_EVERY);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let t = now_ms() / 1000;
        let mut lines: Vec<String> = reports(acquisition_ms, t);
        if t - last_names >= 60 {
            lines.extend(static_reports(t));
            last_names = t;
        }
        let lines: String = lines.into_iter().map(|l| l + "\r\n").collect();
        if stream.write_all(lines.as_bytes()).await.is_err() {
            return; // the node went away; it reconnects and gets a fresh backlog
        }
    }
}

/// Hull intensity above the sea, dB: bigger hulls return more (as `synth::random_ships`).
fn rcs_db(length_m: f64) -> f64 {
    (12.0 + 8.0 * (length_m / 50.0).max(1.0).log10() / 7f64.log10()).clamp(12.0, 25.0)
}

/// The scene: the strait west of Tsushima at the acquisition time, fleet and dark ships.
pub fn scene_spec(acquisition_ms: i64) -> SceneSpec {
    let base = SceneSpec::default();
    let ships = FLEET
        .iter()
        .chain(DARK.iter())
        .map(|s| ShipSpec {
            lon: s.at.0,
            lat: s.at.1,
            length_m: s.length_m,
            width_m: s.length_m / 6.5,
            heading_deg: s.cog_deg,
            rcs_db: rcs_db(s.length_m),
            sog_knots: s.sog_knots,
            cog_deg: s.cog_deg,
        })
        .collect();
    SceneSpec {
        width: SCENE_PX,
        height: SCENE_PX,
        pixel_spacing_m: SPACING_M,
        center_lon: CENTRE.0,
        center_lat: CENTRE.1,
        clutter: Clutter::Gamma { looks: 4.4 },
        land: Some(LandMask::natural_earth().clone()),
        ships,
        seed: SCENE_SEED,
        acquisition: Acquisition {
            time_ms: acquisition_ms,
            ..base.acquisition
        },
        ..base
    }
}

/// The fleet's reports from `from_ms` to `to_ms`, one per vessel every 10 s, as NMEA lines.
pub fn backlog(acquisition_ms: i64, from_ms: i64, to_ms: i64) -> String {
    let mut text = String::new();
    for t in (from_ms / 1000..=to_ms / 1000).step_by(BACKLOG_STEP_S as usize) {
        for line in reports(acquisition_ms, t) {
            text.push_str(&line);
            text.push_str("\r\n");
        }
    }
    text
}

/// Writes the scene, its truth and the AIS the feed sends first (`ais.nmea`, for
/// `mizugiwa sat detect --ais` by hand) into `inbox/.<scene>/`, which the inbox leaves alone.
fn write_aside(inbox: &Path, acquisition_ms: i64, backlog_from_ms: i64) -> anyhow::Result<PathBuf> {
    let id = scene_id(acquisition_ms);
    let aside = inbox.join(format!(".{id}"));
    std::fs::create_dir_all(&aside).with_context(|| format!("creating {}", aside.display()))?;
    let truth = write_scene(
        &scene_spec(acquisition_ms),
        &aside.join(format!("{id}.tif")),
    )?;
    truth.save_json(&aside.join("truth.json"))?;
    std::fs::write(
        aside.join("ais.nmea"),
        backlog(acquisition_ms, backlog_from_ms, now_ms()),
    )
    .context("writing ais.nmea")?;
    Ok(aside)
}

/// Whether the site's vessel records show every vessel of the fleet heard after the
/// acquisition: its AIS picture then brackets the acquisition time for all of them.
fn heard_after(site: &Mutex<Store>, acquisition_ms: i64) -> anyhow::Result<bool> {
    let s = site
        .lock()
        .map_err(|_| anyhow::anyhow!("store lock poisoned"))?;
    for v in &FLEET {
        let Some(mmsi) = v.mmsi else { continue };
        let heard = s
            .get(VESSELS, &mmsi.to_string())?
            .and_then(|r| match r.get("at_ms") {
                Some(Value::Int(t)) => Some(*t),
                _ => None,
            });
        if heard.is_none_or(|t| t <= acquisition_ms) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The SAR pass: writes the scene aside, waits for the AIS to bracket its acquisition time,
/// moves it into the inbox and writes `READY` last. `backlog_from_ms` is the feed's.
pub async fn sar_pass(
    inbox: PathBuf,
    acquisition_ms: i64,
    backlog_from_ms: i64,
    site: Arc<Mutex<Store>>,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let aside = {
        let inbox = inbox.clone();
        tokio::task::spawn_blocking(move || write_aside(&inbox, acquisition_ms, backlog_from_ms))
            .await??
    };
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => return Ok(()),
        }
        if heard_after(&site, acquisition_ms)? {
            break;
        }
    }
    let id = scene_id(acquisition_ms);
    let folder = inbox.join(&id);
    std::fs::rename(&aside, &folder)
        .with_context(|| format!("moving the scene into {}", folder.display()))?;
    std::fs::write(folder.join(mizugiwa_field_node::scanner::READY), b"")
        .context("writing READY")?;
    println!(
        "  tsushima  SAR scene {id} (acquired {}, {} AIS vessels and {} dark ships in it) in the SAR inbox",
        rfc3339_ms(acquisition_ms),
        FLEET.len(),
        DARK.len()
    );
    Ok(())
}

/// What a replica holds of the scene: detections from SAR, those matched with AIS, and
/// `dark_vessel` alerts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SceneRecords {
    pub detections: usize,
    pub with_ais: usize,
    pub dark_alerts: usize,
}

impl SceneRecords {
    /// Every ship of the scene detected, the fleet's with AIS, an alert for each dark one.
    pub fn complete(&self) -> bool {
        *self
            == SceneRecords {
                detections: FLEET.len() + DARK.len(),
                with_ais: FLEET.len(),
                dark_alerts: DARK.len(),
            }
    }
}

/// Counts the scene's records in `store`.
pub fn scene_records(store: &Store, acquisition_ms: i64) -> anyhow::Result<SceneRecords> {
    let id = scene_id(acquisition_ms);
    let text = |r: &mizugiwa_sync::Record, f: &str, want: &str| matches!(r.get(f), Some(Value::Text(t)) if t == want);
    let (detection, alert) = (
        format!("tsushima-sar-{id}-"),
        format!("dark-tsushima-{id}-"),
    );
    let detections: Vec<_> = store
        .list(DETECTIONS)?
        .into_iter()
        .filter(|r| r.id.starts_with(&detection) && text(r, "source", "sar"))
        .collect();
    Ok(SceneRecords {
        detections: detections.len(),
        with_ais: detections
            .iter()
            .filter(|r| r.get("matched_mmsi").is_some())
            .count(),
        dark_alerts: store
            .list(ALERTS)?
            .iter()
            .filter(|r| r.id.starts_with(&alert) && text(r, "kind", "dark_vessel"))
            .count(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ships_stay_at_sea_apart_and_in_the_scene() {
        let land = LandMask::natural_earth();
        let (m_lon, m_lat) = metres_per_degree(CENTRE.1);
        let half = SCENE_PX as f64 * SPACING_M / 2.0 - 1_000.0;
        for s in FLEET.iter().chain(DARK.iter()) {
            let (e, n) = ((s.at.0 - CENTRE.0) * m_lon, (s.at.1 - CENTRE.1) * m_lat);
            assert!(
                e.abs() < half && n.abs() < half,
                "{:?} is not well inside the scene",
                s.at
            );
            // Along the whole leg, both ways.
            for k in 0..200 {
                let (lon, lat, _) = s.at(k as f64 * 60.0);
                assert!(
                    land.distance_to_shore_m(lon, lat) > 1_500.0 && !land.contains(lon, lat),
                    "{:?} comes near land at ({lon}, {lat})",
                    s.mmsi
                );
            }
        }
        let all: Vec<&Ship> = FLEET.iter().chain(DARK.iter()).collect();
        for (i, a) in all.iter().enumerate() {
            for b in &all[i + 1..] {
                let d = ((a.at.0 - b.at.0) * m_lon).hypot((a.at.1 - b.at.1) * m_lat);
                assert!(d > 2_500.0, "{:?} and {:?} are {d:.0} m apart", a.at, b.at);
            }
        }
    }

    #[test]
    fn vessels_run_to_and_fro_through_their_anchor_at_the_acquisition() {
        let v = &FLEET[0];
        let (lon, lat, cog) = v.at(0.0);
        assert_eq!((lon, lat, cog), (v.at.0, v.at.1, v.cog_deg));
        let leg_s = v.leg_m / (v.sog_knots * 1852.0 / 3600.0);
        let (_, _, back) = v.at(1.5 * leg_s);
        assert_eq!(back, (v.cog_deg + 180.0) % 360.0);
        let (lon2, lat2, _) = v.at(4.0 * leg_s);
        assert!(
            (lon2 - lon).abs() < 1e-9 && (lat2 - lat).abs() < 1e-9,
            "back at the anchor after a period"
        );
    }

    #[test]
    fn reports_decode_to_the_fleet_at_their_tag_block_time() {
        let acq = 1_795_209_342_123;
        let mut decoder = mizugiwa_satellite::ais::Decoder::new();
        let lines = reports(acq, acq / 1000 + 60);
        assert_eq!(lines.len(), FLEET.len());
        for (line, v) in lines.iter().zip(&FLEET) {
            let r = decoder.feed_line(line, 0).unwrap().unwrap();
            assert_eq!(r.received_ms, (acq / 1000 + 60) * 1000);
            assert_eq!(Some(r.message.mmsi()), v.mmsi);
        }
        assert_eq!(scene_id(acq), "s1-tsushima-20261120T211542");
    }

    #[test]
    fn static_reports_name_every_vessel() {
        let mut decoder = mizugiwa_satellite::ais::Decoder::new();
        let mut named = Vec::new();
        for line in static_reports(1_795_209_342) {
            if let Some(r) = decoder.feed_line(&line, 0).unwrap() {
                if let mizugiwa_satellite::ais::AisMessage::StaticAndVoyage(v) = r.message {
                    named.push((v.mmsi, v.name.unwrap_or_default()));
                }
            }
        }
        let want: Vec<(u32, String)> = FLEET
            .iter()
            .zip(IDENTITIES)
            .map(|(v, id)| (v.mmsi.unwrap(), id.0.to_string()))
            .collect();
        assert_eq!(named, want);
    }
}
