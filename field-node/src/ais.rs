//! AIS sources: NMEA 0183 from a receiver over TCP or UDP, decoded by
//! [`mizugiwa_satellite::ais`], tracked per MMSI, and handed to the [`Sink`] as vessel
//! positions (downsampled there), static data, and the alerts of the behaviour rules.
//!
//! Receivers and the networks behind them send garbage now and then: a bad line is counted
//! and skipped, a line longer than NMEA allows is dropped without being buffered, and nothing
//! a peer sends can make the node buffer without bound.
//!
//! **One picture and one set of rules per site.** Every AIS source of a site shares a
//! [`SiteAis`]: the tracks (the [`AisPicture`] the SAR inbox reads) and one
//! [`BehaviourMonitor`] over them, with the `[ais.behaviour]` thresholds of `site.toml` and the
//! built-in Natural Earth land mask as its land test. A ship heard by two receivers is one ship
//! to the rules, and an encounter between a ship only one receiver hears and a ship only the
//! other hears is still seen. Each [`BehaviourAlert`] becomes `alerts/ais-<site>-<alert id>`
//! (see [`alert_observation`]); the rules give a condition the same id every time they report it
//! (a gap while the ship is silent, then again when it is heard), so it stays one record whose
//! evidence is updated.
//!
//! **Feed outages.** When a TCP source that was connected loses its connection the monitor is
//! told the feed is down ([`BehaviourMonitor::feed_lost`]) until it is back: the silence of
//! every ship meanwhile is the receiver's, not theirs. With several TCP sources the site's feed
//! counts as down while any of them is (a ship only the lost receiver heard would otherwise
//! "go dark"): a real gap that falls in an outage is reported only for the silence outside it.
//! UDP has no connection to lose.
//!
//! **Silence** is found by [`run_silence_checks`], a task that asks the monitor every minute
//! (the pipeline starts it when the site has an AIS source).
//!
//! Locks: the picture first, then the monitor (the rules read the tracks while judging a fix).
//! The SAR inbox takes only the picture and the silence check only the monitor.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mizugiwa_command::records::NewAlert;
use mizugiwa_satellite::ais::nmea::{LineSplitter, Piece};
use mizugiwa_satellite::ais::{
    AisError, AlertKind, BehaviourAlert, BehaviourConfig, BehaviourConfigError, BehaviourMonitor,
    Decoder, Evidence, Tracks,
};
use mizugiwa_satellite::land::LandMask;
use serde::Deserialize;
use tokio::io::AsyncReadExt;
use tokio::sync::watch;

use crate::pipeline::{Observation, Sink};
use crate::sar::AisPicture;

/// A position is "on land" for `ais_spoofing_land` only this far inland of the Natural Earth
/// shore, metres: that coastline is good to a few hundred metres, and ships at quays, in
/// harbours and rivers, or with GNSS noise near the coast are not spoofers.
pub const LAND_SPOOFING_INLAND_M: f64 = 1_000.0;

/// How often [`run_silence_checks`] looks for ships gone silent when the pipeline starts it.
pub const SILENCE_CHECK_EVERY: Duration = Duration::from_secs(60);

/// `[ais]` in `site.toml`: what the site's AIS sources share.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AisSection {
    /// `[ais.behaviour]`: thresholds of the behaviour rules (gaps, spoofing, encounters,
    /// loitering); every field has a default, see `docs/site.toml`.
    pub behaviour: BehaviourConfig,
}

/// Counters of one AIS source.
#[derive(Debug, Default)]
pub struct AisStats {
    /// Lines received.
    pub lines: AtomicU64,
    /// Messages decoded.
    pub messages: AtomicU64,
    /// Lines refused (bad checksum, malformed, unsupported, too long, ...).
    pub refused: AtomicU64,
    /// Behaviour alerts raised.
    pub alerts: AtomicU64,
}

/// The rules' state: the monitor and how many TCP sources are down.
struct Behaviour {
    monitor: BehaviourMonitor,
    /// TCP sources that were connected and are not now; the feed is down while this is not 0.
    feeds_down: usize,
}

/// What every AIS source of one site shares: the picture and the behaviour rules over it (see
/// the module documentation). Cheap to clone.
#[derive(Clone)]
pub struct SiteAis {
    site: String,
    picture: AisPicture,
    behaviour: Arc<Mutex<Behaviour>>,
}

/// Whether a reported position is well inland (see [`LAND_SPOOFING_INLAND_M`]).
fn inland(lon: f64, lat: f64) -> bool {
    let land = LandMask::natural_earth();
    // `contains` skips every polygon whose box misses the point: cheap at sea, where nearly
    // every fix is; the distance is computed only for the rare fix on land.
    land.contains(lon, lat) && land.distance_to_shore_m(lon, lat) >= LAND_SPOOFING_INLAND_M
}

impl SiteAis {
    /// The AIS state of `site`: an empty picture and a monitor with `config`, whose error names
    /// the bad threshold.
    pub fn new(site: &str, config: &BehaviourConfig) -> Result<SiteAis, BehaviourConfigError> {
        let monitor = BehaviourMonitor::new(config.clone())?.with_land_test(inland);
        // Parsed once, here, rather than on the first fix.
        LandMask::natural_earth();
        Ok(SiteAis {
            site: site.to_owned(),
            picture: AisPicture::default(),
            behaviour: Arc::new(Mutex::new(Behaviour {
                monitor,
                feeds_down: 0,
            })),
        })
    }

    /// The site's tracks, for the SAR inbox.
    pub fn picture(&self) -> &AisPicture {
        &self.picture
    }

    fn behaviour(&self) -> std::sync::MutexGuard<'_, Behaviour> {
        // The monitor never panics; a poisoned lock only means a panic elsewhere mid-call,
        // after which its state is still consistent enough to go on.
        self.behaviour.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A TCP source lost its connection at `at_ms`.
    pub fn feed_lost(&self, at_ms: i64) {
        let mut b = self.behaviour();
        b.feeds_down += 1;
        if b.feeds_down == 1 {
            b.monitor.feed_lost(at_ms);
        }
    }

    /// A TCP source that had lost its connection has it back at `at_ms`.
    pub fn feed_restored(&self, at_ms: i64) {
        let mut b = self.behaviour();
        b.feeds_down = b.feeds_down.saturating_sub(1);
        if b.feeds_down == 0 {
            b.monitor.feed_restored(at_ms);
        }
    }

    /// The moving ships silent for longer than `gap_minutes` at `now_ms`, as alerts.
    pub fn check_silent(&self, now_ms: i64) -> Vec<Observation> {
        let alerts = self.behaviour().monitor.check_silent(now_ms);
        if alerts.is_empty() {
            return Vec::new();
        }
        // The monitor's lock is released: the picture may be taken now (for the names).
        let tracks = self.picture.lock().unwrap_or_else(|e| e.into_inner());
        alerts
            .iter()
            .map(|a| alert_observation(&self.site, a, &tracks, now_ms))
            .collect()
    }
}

/// The severity of an alert of `kind`: a false identity (spoofing) and a meeting at sea
/// (transhipment, smuggling's usual hand-over) are `high`; a gap and loitering, which have
/// innocent explanations often (coverage holes, fishing, waiting for a berth), `medium`.
pub fn severity(kind: AlertKind) -> &'static str {
    match kind {
        AlertKind::AisSpoofingSpeed
        | AlertKind::AisSpoofingLand
        | AlertKind::AisSpoofingTwoPlaces
        | AlertKind::Encounter => "high",
        AlertKind::AisGap | AlertKind::Loitering => "medium",
    }
}

/// `MMSI 431000001 (NAME)`, or without the name when the picture has none.
fn vessel_label(tracks: &Tracks, mmsi: u32) -> String {
    match vessel_name(tracks, mmsi) {
        Some(name) => format!("MMSI {mmsi} ({name})"),
        None => format!("MMSI {mmsi}"),
    }
}

fn vessel_name(tracks: &Tracks, mmsi: u32) -> Option<String> {
    tracks
        .get(mmsi)
        .and_then(|t| t.vessel().name.clone())
        .map(|n| n.trim().to_owned())
        .filter(|n| !n.is_empty())
}

/// The alert's title: what happened, to whom, in a line.
fn title(alert: &BehaviourAlert, tracks: &Tracks) -> String {
    let who = vessel_label(tracks, alert.mmsi);
    let minutes = |s: f64| (s / 60.0).round();
    match &alert.evidence {
        Evidence::AisGap {
            last_speed_knots,
            silent_s,
            resumed,
            ..
        } => {
            if *resumed {
                format!(
                    "AIS gap: {who} was silent for {:.0} min (last seen at {last_speed_knots:.1} kn), heard again",
                    minutes(*silent_s)
                )
            } else {
                format!(
                    "AIS gap: {who} silent for {:.0} min, last seen at {last_speed_knots:.1} kn",
                    minutes(*silent_s)
                )
            }
        }
        Evidence::AisSpoofingSpeed {
            distance_m,
            interval_s,
            implied_speed_knots,
            ..
        } => format!(
            "AIS spoofing: {who} jumped {:.1} km in {interval_s:.0} s ({implied_speed_knots:.0} kn)",
            distance_m / 1000.0
        ),
        Evidence::AisSpoofingLand { .. } => format!(
            "AIS spoofing: {who} reports a position on land ({:.4}° N {:.4}° E)",
            alert.position.lat, alert.position.lon
        ),
        Evidence::AisSpoofingTwoPlaces {
            distance_km,
            interval_s,
            ..
        } => format!(
            "AIS spoofing: {who} in two places {distance_km:.1} km apart within {interval_s:.0} s"
        ),
        Evidence::Encounter {
            other_mmsi,
            duration_s,
            min_distance_m,
            ..
        } => format!(
            "Encounter at sea: {who} and {} within {min_distance_m:.0} m for {:.0} min",
            vessel_label(tracks, *other_mmsi),
            minutes(*duration_s)
        ),
        Evidence::Loitering {
            duration_s,
            max_offset_m,
            ..
        } => format!(
            "Loitering: {who} within {max_offset_m:.0} m for {:.0} min",
            minutes(*duration_s)
        ),
    }
}

/// `alerts/ais-<site>-<alert id>` for a behaviour alert: kind the rule's name (`ais_gap`,
/// `ais_spoofing_speed`, ...), severity from [`severity`], the alert's position, raised at
/// `now_ms`, and the alert itself (serialised, plus `name` and for an encounter `other_name`
/// when the picture knows them) as `detail`.
pub fn alert_observation(
    site: &str,
    alert: &BehaviourAlert,
    tracks: &Tracks,
    now_ms: i64,
) -> Observation {
    let kind = alert.kind();
    let mut detail = serde_json::to_value(alert).unwrap_or_else(|_| serde_json::json!({}));
    if let serde_json::Value::Object(map) = &mut detail {
        if let Some(name) = vessel_name(tracks, alert.mmsi) {
            map.insert("name".into(), name.into());
        }
        if let Evidence::Encounter { other_mmsi, .. } = &alert.evidence {
            if let Some(name) = vessel_name(tracks, *other_mmsi) {
                map.insert("other_name".into(), name.into());
            }
        }
    }
    let ops = NewAlert {
        title: title(alert, tracks),
        kind: kind.as_str(),
        severity: severity(kind),
        site,
        position: Some((alert.position.lat, alert.position.lon)),
        raised_ms: now_ms.max(0) as u64,
        detail,
    }
    .ops();
    Observation::Alert {
        id: format!("ais-{site}-{}", alert.id),
        ops,
    }
}

/// Decoder of one feed, and the site's AIS state it feeds.
pub struct AisIngest {
    decoder: Decoder,
    /// Shared by every AIS source of the site (the picture is read by the SAR inbox).
    ais: SiteAis,
    /// Counters.
    pub stats: Arc<AisStats>,
}

impl Default for AisIngest {
    /// A feed with a picture and rules (default thresholds) of its own, for site `site`.
    fn default() -> Self {
        let ais = SiteAis::new("site", &BehaviourConfig::default())
            .expect("the default behaviour thresholds are valid");
        AisIngest::new(ais)
    }
}

/// Wall-clock UNIX milliseconds (the sources stamp what they observe with it).
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl AisIngest {
    /// A feed that updates the site's picture and runs its rules.
    pub fn new(ais: SiteAis) -> AisIngest {
        AisIngest {
            decoder: Decoder::new(),
            ais,
            stats: Arc::default(),
        }
    }

    /// Feeds one line; returns what it observed.
    pub fn line(&mut self, line: &str, now_ms: i64) -> Vec<Observation> {
        let line = line.trim();
        if line.is_empty() {
            return Vec::new();
        }
        self.stats.lines.fetch_add(1, Ordering::Relaxed);
        let report = match self.decoder.feed_line(line, now_ms) {
            Ok(Some(r)) => r,
            Ok(None) => return Vec::new(),
            Err(e) => {
                self.refused(&e, line);
                return Vec::new();
            }
        };
        self.stats.messages.fetch_add(1, Ordering::Relaxed);
        let mmsi = report.message.mmsi();
        let mut tracks = self.ais.picture.lock().unwrap_or_else(|e| e.into_inner());
        let update = tracks.update(&report);
        let alerts = self
            .ais
            .behaviour()
            .monitor
            .observe(&report, &update, &tracks, now_ms);
        let mut out = Vec::new();
        if let Some(track) = tracks.get(mmsi) {
            if update.fix_added {
                if let Some(fix) = track.latest() {
                    out.push(Observation::VesselPosition {
                        mmsi,
                        at_ms: fix.time_ms.max(0) as u64,
                        lat: fix.position.lat,
                        lon: fix.position.lon,
                        sog_kn: fix.sog_knots,
                        cog_deg: fix.cog_deg,
                    });
                }
            }
            if update.static_merged {
                let v = track.vessel();
                let mut fields = Vec::new();
                if let Some(name) = &v.name {
                    fields.push(("name".to_string(), serde_json::json!(name)));
                }
                if let Some(t) = v.ship_type {
                    fields.push(("ship_type".to_string(), serde_json::json!(t.description())));
                }
                if let Some(c) = &v.callsign {
                    fields.push(("callsign".to_string(), serde_json::json!(c)));
                }
                if !fields.is_empty() {
                    out.push(Observation::Record {
                        collection: mizugiwa_command::records::VESSELS.into(),
                        id: mmsi.to_string(),
                        fields,
                    });
                }
            }
        }
        // After the position: the vessel's record is where the alert says when both arrive.
        self.stats
            .alerts
            .fetch_add(alerts.len() as u64, Ordering::Relaxed);
        out.extend(
            alerts
                .iter()
                .map(|a| alert_observation(&self.ais.site, a, &tracks, now_ms)),
        );
        out
    }

    fn refused(&self, e: &AisError, line: &str) {
        self.stats.refused.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(error = %e, line = %line.chars().take(100).collect::<String>(), "AIS line refused");
    }

    /// The lines `bytes` completes (the splitter keeps an unfinished one, bounded); `finish`
    /// ends the last line too (a datagram holds whole lines). A line too long to be NMEA is
    /// dropped whole as it streams past and counted as refused.
    pub fn bytes(
        &mut self,
        splitter: &mut LineSplitter,
        bytes: &[u8],
        finish: bool,
        now_ms: i64,
    ) -> Vec<Observation> {
        let mut pieces = splitter.push(bytes);
        if finish {
            pieces.extend(splitter.finish());
        }
        let mut out = Vec::new();
        for piece in pieces {
            match piece {
                Piece::Line(line) => out.extend(self.line(&line, now_ms)),
                Piece::TooLong(n) => {
                    self.stats.refused.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(bytes = n, "AIS line too long to be NMEA, dropped");
                }
            }
        }
        out
    }
}

async fn store(sink: &Arc<Sink>, obs: Vec<Observation>) {
    if obs.is_empty() {
        return;
    }
    let sink = sink.clone();
    match tokio::task::spawn_blocking(move || sink.write(&obs)).await {
        Ok(Err(e)) => tracing::warn!(error = %format!("{e:#}"), "could not store AIS observations"),
        Err(e) => tracing::warn!(error = %e, "AIS writer failed"),
        Ok(Ok(_)) => {}
    }
}

/// Connects to an AIS TCP feed and keeps reading it until stopped. While a connection that
/// was up is down, the site's rules are told the feed is (see the module documentation).
pub async fn run_tcp(
    addr: String,
    reconnect: Duration,
    ais: SiteAis,
    sink: Arc<Sink>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut ingest = AisIngest::new(ais.clone());
    // This source told the rules its feed was lost and has not had it back.
    let mut lost = false;
    loop {
        match tokio::net::TcpStream::connect(&addr).await {
            Ok(mut stream) => {
                tracing::info!(%addr, "AIS TCP source connected");
                if std::mem::take(&mut lost) {
                    ais.feed_restored(now_ms());
                }
                let mut splitter = LineSplitter::default();
                let mut buf = vec![0u8; 16 * 1024];
                loop {
                    let n = tokio::select! {
                        r = stream.read(&mut buf) => r,
                        _ = stopped.wait_for(|s| *s) => return,
                    };
                    match n {
                        Ok(0) => {
                            tracing::warn!(%addr, "AIS feed closed the connection");
                            break;
                        }
                        Ok(n) => {
                            let obs = ingest.bytes(&mut splitter, &buf[..n], false, now_ms());
                            store(&sink, obs).await;
                        }
                        Err(e) => {
                            tracing::warn!(%addr, error = %e, "AIS feed read failed");
                            break;
                        }
                    }
                }
                // Until it is back, ships' silence is the feed's, not theirs.
                ais.feed_lost(now_ms());
                lost = true;
            }
            Err(e) => tracing::warn!(%addr, error = %e, "cannot reach the AIS feed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(reconnect) => {}
            _ = stopped.wait_for(|s| *s) => return,
        }
    }
}

/// Reads AIS datagrams until stopped. Each datagram holds whole lines.
pub async fn run_udp(
    socket: tokio::net::UdpSocket,
    ais: SiteAis,
    sink: Arc<Sink>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut ingest = AisIngest::new(ais);
    let mut buf = vec![0u8; 65536];
    loop {
        let r = tokio::select! {
            r = socket.recv_from(&mut buf) => r,
            _ = stopped.wait_for(|s| *s) => return,
        };
        match r {
            Ok((n, _from)) => {
                // A datagram holds whole lines: one without a final newline still ends it.
                let mut splitter = LineSplitter::default();
                let obs = ingest.bytes(&mut splitter, &buf[..n], true, now_ms());
                store(&sink, obs).await;
            }
            Err(e) => tracing::warn!(error = %e, "AIS UDP receive failed"),
        }
    }
}

/// Asks the site's rules for ships gone silent every `every` (the first time one `every` after
/// the start), and stores the gaps they report, until stopped.
pub async fn run_silence_checks(
    ais: SiteAis,
    every: Duration,
    sink: Arc<Sink>,
    mut stopped: watch::Receiver<bool>,
) {
    let every = every.max(Duration::from_millis(10));
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stopped.wait_for(|s| *s) => return,
        }
        let obs = ais.check_silent(now_ms());
        if !obs.is_empty() {
            tracing::info!(site = %ais.site, gaps = obs.len(), "AIS ships gone silent");
        }
        store(&sink, obs).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_and_static_data_become_observations_and_garbage_is_counted() {
        let mut ingest = AisIngest::default();
        let now = 1_700_000_000_000;
        let obs = ingest.line("!AIVDM,1,1,,B,15M67FC000G?ufbE`FepT@3n00Sa,0*5C", now);
        match &obs[..] {
            [Observation::VesselPosition { mmsi, lat, lon, .. }] => {
                assert_eq!(*mmsi, 366053209);
                assert!((lat - 37.802118).abs() < 1e-5 && (lon + 122.341618).abs() < 1e-5);
            }
            other => panic!("{other:?}"),
        }
        // A two-part type 5 gives the vessel's name.
        let a = "!AIVDM,2,1,1,A,55?MbV02;H;s<HtKR20EHE:0@T4@Dn2222222216L961O5Gf0NSQEp6ClRp8,0*1C";
        let b = "!AIVDM,2,2,1,A,88888888880,2*25";
        assert!(ingest.line(a, now).is_empty());
        let obs = ingest.line(b, now);
        assert!(
            obs.iter()
                .any(|o| matches!(o, Observation::Record { fields, .. }
                if fields.iter().any(|(f, v)| f == "name" && v == "EVER DIADEM"))),
            "{obs:?}"
        );
        let before = ingest.stats.refused.load(Ordering::Relaxed);
        for junk in [
            "!AIVDM,1,1,,B,15M67FC000G?ufbE`FepT@3n00Sa,0*5D",
            "hello",
            "!AIVDM,,,",
        ] {
            assert!(ingest.line(junk, now).is_empty());
        }
        assert_eq!(ingest.stats.refused.load(Ordering::Relaxed), before + 3);
        let mut splitter = LineSplitter::default();
        let long = vec![b'x'; 5000];
        assert!(ingest.bytes(&mut splitter, &long, false, now).is_empty());
        assert!(splitter.pending_len() <= mizugiwa_satellite::ais::nmea::MAX_LINE_LEN);
        // The overlong line is refused once, when it ends; the next line is read normally.
        let next = format!("\n{}\n", "!AIVDM,1,1,,B,15M67FC000G?ufbE`FepT@3n00Sa,0*5C");
        let decoded = ingest.stats.messages.load(Ordering::Relaxed);
        ingest.bytes(&mut splitter, next.as_bytes(), false, now);
        assert_eq!(ingest.stats.refused.load(Ordering::Relaxed), before + 4);
        assert_eq!(
            ingest.stats.messages.load(Ordering::Relaxed),
            decoded + 1,
            "the line after an overlong one is lost"
        );
    }

    use mizugiwa_satellite::ais::encode::{tagged_position_sentence, PositionReportSpec};
    use mizugiwa_sync::{FieldOp, Value};

    fn at(mmsi: u32, lon: f64, lat: f64, sog_knots: f64, unix_s: i64) -> String {
        let spec = PositionReportSpec {
            mmsi,
            lon,
            lat,
            sog_knots,
            cog_deg: 90.0,
            utc_second: (unix_s % 60) as u8,
        };
        tagged_position_sentence(&spec, unix_s, "rx1")
    }

    fn alerts(obs: &[Observation]) -> Vec<(&str, &[(&'static str, FieldOp)])> {
        obs.iter()
            .filter_map(|o| match o {
                Observation::Alert { id, ops } => Some((id.as_str(), ops.as_slice())),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn an_impossible_jump_is_an_alert_record_with_its_status_kind_and_place() {
        let ais = SiteAis::new("tsushima", &BehaviourConfig::default()).unwrap();
        let mut ingest = AisIngest::new(ais);
        let t0 = 1_795_200_000;
        let now = (t0 + 600) * 1000;
        assert!(alerts(&ingest.line(&at(431_000_001, 129.0, 34.0, 12.0, t0), now)).is_empty());
        // 3 km east in 30 s: 194 kn.
        let obs = ingest.line(&at(431_000_001, 129.0326, 34.0, 12.0, t0 + 30), now);
        let found = alerts(&obs);
        let [(id, ops)] = found.as_slice() else {
            panic!("{obs:?}")
        };
        assert_eq!(
            *id,
            format!(
                "ais-tsushima-ais_spoofing_speed-431000001-{}",
                (t0 + 30) * 1000
            )
        );
        let field = |name: &str| {
            ops.iter()
                .find(|(f, _)| *f == name)
                .map(|(_, op)| op.clone())
        };
        assert_eq!(field("status"), Some(FieldOp::Advance("new".into())));
        assert_eq!(
            field("kind"),
            Some(FieldOp::Set("ais_spoofing_speed".into()))
        );
        assert_eq!(field("severity"), Some(FieldOp::Set("high".into())));
        let Some(FieldOp::Set(Value::Float(lon))) = field("lon") else {
            panic!("no position")
        };
        assert!((lon - 129.0326).abs() < 1e-5);
        let Some(FieldOp::Set(Value::Json(detail))) = field("detail") else {
            panic!("no detail")
        };
        let detail: serde_json::Value = serde_json::from_str(&detail).unwrap();
        assert_eq!(detail["kind"], "ais_spoofing_speed");
        assert!(
            detail["implied_speed_knots"].as_f64().unwrap() > 150.0,
            "{detail}"
        );
        assert_eq!(ingest.stats.alerts.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn the_feed_is_down_while_any_tcp_source_is() {
        let ais = SiteAis::new("tsushima", &BehaviourConfig::default()).unwrap();
        let mut ingest = AisIngest::new(ais.clone());
        let t0 = 1_795_200_000i64;
        let min = 60_000i64;
        // A ship under way, heard last at t0.
        ingest.line(&at(431_000_002, 129.0, 34.0, 12.0, t0 - 10), t0 * 1000);
        ingest.line(&at(431_000_002, 129.0006, 34.0, 12.0, t0), t0 * 1000);
        let t0 = t0 * 1000;
        // Two sources drop; one is back after an hour, the other after an hour and a half.
        ais.feed_lost(t0 + min);
        ais.feed_lost(t0 + 2 * min);
        ais.feed_restored(t0 + 60 * min);
        assert!(ais.check_silent(t0 + 61 * min).is_empty(), "still down");
        ais.feed_restored(t0 + 90 * min);
        // Silent 95 min, of which 89 with a feed down: 6 min of silence is no gap (had the first
        // source's return ended the outage, it would be 36 min, a gap).
        assert!(ais.check_silent(t0 + 95 * min).is_empty());
        let obs = ais.check_silent(t0 + 125 * min);
        let found = alerts(&obs);
        let [(id, ops)] = found.as_slice() else {
            panic!("{obs:?}")
        };
        assert_eq!(*id, format!("ais-tsushima-ais_gap-431000002-{t0}"));
        assert!(ops.contains(&("severity", FieldOp::Set("medium".into()))));
    }
}
