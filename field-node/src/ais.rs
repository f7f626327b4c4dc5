//! AIS sources: NMEA 0183 from a receiver over TCP or UDP, decoded by
//! [`mizugiwa_satellite::ais`], tracked per MMSI, and handed to the [`Sink`] as vessel
//! positions (downsampled there) and static data.
//!
//! Receivers and the networks behind them send garbage now and then: a bad line is counted
//! and skipped, a line longer than NMEA allows is dropped without being buffered, and nothing
//! a peer sends can make the node buffer without bound.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mizugiwa_satellite::ais::{AisError, Decoder};
use tokio::io::AsyncReadExt;
use tokio::sync::watch;

use crate::pipeline::{Observation, Sink};
use crate::sar::AisPicture;

/// Longest line kept: NMEA sentences are at most 82 characters, tag blocks add some.
const MAX_LINE: usize = 1024;

/// Counters of one AIS source.
#[derive(Debug, Default)]
pub struct AisStats {
    /// Lines received.
    pub lines: AtomicU64,
    /// Messages decoded.
    pub messages: AtomicU64,
    /// Lines refused (bad checksum, malformed, unsupported, too long, ...).
    pub refused: AtomicU64,
}

/// Decoder of one feed, and the site's AIS picture it feeds.
pub struct AisIngest {
    decoder: Decoder,
    /// Shared by every AIS source of the site and read by the SAR inbox.
    tracks: AisPicture,
    /// Counters.
    pub stats: Arc<AisStats>,
}

impl Default for AisIngest {
    /// A feed with a picture of its own.
    fn default() -> Self {
        AisIngest::new(AisPicture::default())
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl AisIngest {
    /// A feed that updates the site's `picture`.
    pub fn new(picture: AisPicture) -> AisIngest {
        AisIngest {
            decoder: Decoder::new(),
            tracks: picture,
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
        let mut tracks = self.tracks.lock().unwrap_or_else(|e| e.into_inner());
        let update = tracks.update(&report);
        let mut out = Vec::new();
        let Some(track) = tracks.get(mmsi) else {
            return out;
        };
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
        out
    }

    fn refused(&self, e: &AisError, line: &str) {
        self.stats.refused.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(error = %e, line = %line.chars().take(100).collect::<String>(), "AIS line refused");
    }

    /// Splits `bytes` into lines, keeping an unfinished tail in `pending` (bounded).
    pub fn bytes(&mut self, pending: &mut Vec<u8>, bytes: &[u8], now_ms: i64) -> Vec<Observation> {
        let mut out = Vec::new();
        for &b in bytes {
            if b == b'\n' || b == b'\r' {
                if !pending.is_empty() {
                    let line = String::from_utf8_lossy(pending).into_owned();
                    pending.clear();
                    out.extend(self.line(&line, now_ms));
                }
            } else if pending.len() < MAX_LINE {
                pending.push(b);
            } else {
                // Too long to be NMEA: drop it whole, and the rest of it until the newline.
                self.stats.refused.fetch_add(1, Ordering::Relaxed);
                pending.clear();
                pending.push(0);
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

/// Connects to an AIS TCP feed and keeps reading it until stopped.
pub async fn run_tcp(
    addr: String,
    reconnect: Duration,
    picture: AisPicture,
    sink: Arc<Sink>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut ingest = AisIngest::new(picture);
    loop {
        match tokio::net::TcpStream::connect(&addr).await {
            Ok(mut stream) => {
                tracing::info!(%addr, "AIS TCP source connected");
                let mut pending = Vec::new();
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
                            let obs = ingest.bytes(&mut pending, &buf[..n], now_ms());
                            store(&sink, obs).await;
                        }
                        Err(e) => {
                            tracing::warn!(%addr, error = %e, "AIS feed read failed");
                            break;
                        }
                    }
                }
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
    picture: AisPicture,
    sink: Arc<Sink>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut ingest = AisIngest::new(picture);
    let mut buf = vec![0u8; 65536];
    loop {
        let r = tokio::select! {
            r = socket.recv_from(&mut buf) => r,
            _ = stopped.wait_for(|s| *s) => return,
        };
        match r {
            Ok((n, _from)) => {
                let mut pending = Vec::new();
                let mut obs = ingest.bytes(&mut pending, &buf[..n], now_ms());
                if !pending.is_empty() {
                    // A datagram without a final newline still ends its line.
                    let line = String::from_utf8_lossy(&pending).into_owned();
                    obs.extend(ingest.line(&line, now_ms()));
                }
                store(&sink, obs).await;
            }
            Err(e) => tracing::warn!(error = %e, "AIS UDP receive failed"),
        }
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
        let mut pending = Vec::new();
        let long = vec![b'x'; 5000];
        assert!(ingest.bytes(&mut pending, &long, now).is_empty());
        assert!(pending.len() <= MAX_LINE);
    }
}
