//! The AIS workload: ships off a coastal site reporting their positions, served by the drill as
//! NMEA over TCP (as a coastal receiver or an AIS hub serves them) to the site's `ais_tcp`
//! source, every sentence journaled with whether a connection of the site took it.
//!
//! Ships come into range one after another over the first four fifths of the workload, so a
//! site cut off mid-drill hears ships that headquarters has never heard of; each then reports
//! every [`REPORT_EVERY`], moving as its course and speed say, in open water with nothing for
//! the behaviour rules to alert on. The sentences are real AIVDM position reports with a tag
//! block (`c:`, the second of the fix) from `mizugiwa-satellite`'s encoder, so the site's
//! decoder, tracks and record policy do their ordinary work; the fix's second is the `at_ms`
//! the site records, which is how the checker tells one position from another.
//!
//! The listener is bound when the site's config is written, so the site connects from its
//! start (the connection waits in the backlog); [`AisFeed::start`] serves it from the start of
//! the workload until its end, then falls silent but keeps its connections until it is dropped
//! (the ships have left; the receiver is still there), so the site does not spend the rest of
//! the drill reconnecting.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mizugiwa_satellite::ais::encode::{tagged_position_sentence, PositionReportSpec};
use serde::Serialize;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

/// How often a ship in range reports (a class A ship under way reports every 2 to 10 s).
pub const REPORT_EVERY: Duration = Duration::from_secs(2);

/// A connection that does not take a batch of lines within this is dropped; the site
/// reconnects.
const WRITE_TIMEOUT: Duration = Duration::from_secs(1);

/// One simulated ship.
#[derive(Debug, Clone, PartialEq)]
pub struct Ship {
    pub mmsi: u32,
    /// Where it is when the feed starts.
    pub lat: f64,
    pub lon: f64,
    pub sog_knots: f64,
    pub cog_deg: f64,
    /// When it comes into range and starts reporting, ms after the workload started.
    pub in_range_ms: u64,
}

impl Ship {
    /// Where it is `secs` after the feed started: dead reckoning on a flat sea, good for the
    /// few kilometres a ship makes during a drill.
    pub fn at(&self, secs: f64) -> (f64, f64) {
        let metres = self.sog_knots * 1852.0 / 3600.0 * secs;
        let cog = self.cog_deg.to_radians();
        let lat = self.lat + metres * cog.cos() / 111_320.0;
        let lon = self.lon + metres * cog.sin() / (111_320.0 * self.lat.to_radians().cos());
        (lat, lon)
    }

    /// Its position report as a tagged AIVDM sentence: the fix of UNIX second `unix_s`, which is
    /// `secs` after the feed started.
    pub fn sentence(&self, secs: f64, unix_s: i64, source: &str) -> String {
        let (lat, lon) = self.at(secs);
        let spec = PositionReportSpec {
            mmsi: self.mmsi,
            lon,
            lat,
            sog_knots: self.sog_knots,
            cog_deg: self.cog_deg,
            utc_second: unix_s.rem_euclid(60) as u8,
        };
        tagged_position_sentence(&spec, unix_s, source)
    }
}

/// The `count` ships off site number `site_number` (its place in the scenario's node list,
/// which keeps every site's MMSIs apart: 431 for Japan, then the site, then the ship), from
/// `seed`: in the open water of the Tsushima Strait's eastern channel, south of Tsushima and
/// north of Iki, on the channel's courses (060° or 240°, ±15°) at 4 to 10 knots, coming into
/// range over the first four fifths of a `workload_secs` workload.
pub fn ships(site_number: u32, count: u16, workload_secs: f64, seed: u64) -> Vec<Ship> {
    let mut rng = seed | 1;
    let mut unit = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        (rng >> 11) as f64 / (1u64 << 53) as f64
    };
    let spread_ms = workload_secs * 1000.0 * 0.8;
    (0..u32::from(count))
        .map(|i| {
            let lat = 33.92 + 0.06 * unit();
            let lon = 129.05 + 0.40 * unit();
            let sog_knots = (4.0 + 6.0 * unit()).round();
            let heading = if unit() < 0.5 { 60.0 } else { 240.0 };
            let cog_deg = (heading + 30.0 * (unit() - 0.5)).round();
            Ship {
                mmsi: 431_000_000 + site_number * 1000 + i + 1,
                lat,
                lon,
                sog_knots,
                cog_deg,
                in_range_ms: (spread_ms * f64::from(i) / f64::from(count)) as u64,
            }
        })
        .collect()
}

/// One sentence the feed sent.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AisSend {
    /// Milliseconds after the workload started.
    pub t_ms: u64,
    pub mmsi: u32,
    /// The fix's time (the tag block's second), UNIX ms: the `at_ms` the site records.
    pub at_ms: u64,
    /// A connection of the site took it (it was written to the socket). Not proof that the
    /// site stored it: the checker also wants the site steadily up afterwards.
    pub delivered: bool,
}

/// A site's AIS feed while it runs.
pub struct AisFeed {
    /// The site it feeds.
    pub site: String,
    journal: Arc<Mutex<Vec<AisSend>>>,
    /// Fires when the feed has stopped sending.
    silent: Option<oneshot::Receiver<()>>,
    task: JoinHandle<()>,
}

impl Drop for AisFeed {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn now_unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl AisFeed {
    /// Serves `ships` to whoever connects to `listener` (the site's `ais_tcp` source), from
    /// `started` until `stop`; silent after, until dropped. Must be called within a tokio
    /// runtime.
    pub fn start(
        site: &str,
        listener: std::net::TcpListener,
        ships: Vec<Ship>,
        started: Instant,
        mut stop: watch::Receiver<bool>,
    ) -> std::io::Result<AisFeed> {
        listener.set_nonblocking(true)?;
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let journal: Arc<Mutex<Vec<AisSend>>> = Arc::default();
        let (log, source) = (journal.clone(), format!("drill-{site}"));
        let (now_silent, silent) = oneshot::channel();
        let task = tokio::spawn(async move {
            let start_unix_ms = now_unix_ms();
            let mut clients: Vec<TcpStream> = Vec::new();
            let mut due: Vec<u64> = ships.iter().map(|s| s.in_range_ms).collect();
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    r = listener.accept() => {
                        match r {
                            Ok((stream, _)) => clients.push(stream),
                            Err(e) => tracing::warn!(error = %e, "drill AIS feed: accept failed"),
                        }
                        continue;
                    }
                    _ = tick.tick() => {}
                    _ = stop.wait_for(|s| *s) => break,
                }
                let t_ms = started.elapsed().as_millis() as u64;
                let unix_s = (now_unix_ms() / 1000) as i64;
                let secs = (unix_s * 1000 - start_unix_ms as i64) as f64 / 1000.0;
                let mut lines = String::new();
                let mut sent = Vec::new();
                for (ship, due) in ships.iter().zip(due.iter_mut()) {
                    if t_ms < *due {
                        continue;
                    }
                    *due = t_ms + REPORT_EVERY.as_millis() as u64;
                    lines.push_str(&ship.sentence(secs, unix_s, &source));
                    lines.push_str("\r\n");
                    sent.push((ship.mmsi, unix_s as u64 * 1000));
                }
                if sent.is_empty() {
                    continue;
                }
                let mut delivered = false;
                let mut alive = Vec::with_capacity(clients.len());
                for mut c in clients.drain(..) {
                    let w =
                        tokio::time::timeout(WRITE_TIMEOUT, c.write_all(lines.as_bytes())).await;
                    if matches!(w, Ok(Ok(()))) {
                        delivered = true;
                        alive.push(c);
                    }
                    // Otherwise the site went away (killed, restarted): it connects again.
                }
                clients = alive;
                let mut journal = log.lock().unwrap_or_else(|e| e.into_inner());
                journal.extend(sent.into_iter().map(|(mmsi, at_ms)| AisSend {
                    t_ms,
                    mmsi,
                    at_ms,
                    delivered,
                }));
            }
            let _ = now_silent.send(());
            // Silent, connections kept (and new ones taken) until the feed is dropped.
            loop {
                match listener.accept().await {
                    Ok((stream, _)) => clients.push(stream),
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        Ok(AisFeed {
            site: site.to_owned(),
            journal,
            silent: Some(silent),
            task,
        })
    }

    /// What the feed sent, once it has stopped sending (after `stop`).
    pub async fn sent(&mut self) -> Vec<AisSend> {
        if let Some(silent) = self.silent.take() {
            let _ = silent.await;
        }
        let sent = self
            .journal
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        sent
    }
}

/// Binds the listener a site's feed will serve on; the site's config names its address.
pub fn listen() -> std::io::Result<(std::net::TcpListener, SocketAddr)> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    Ok((listener, addr))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncBufReadExt;

    #[test]
    fn ships_are_distinct_spread_in_time_and_stay_in_the_channel() {
        let fleet = ships(2, 10, 30.0, 7);
        assert_eq!(fleet, ships(2, 10, 30.0, 7), "seeded");
        let mmsis: std::collections::BTreeSet<u32> = fleet.iter().map(|s| s.mmsi).collect();
        assert_eq!(mmsis.len(), 10);
        assert!(mmsis
            .iter()
            .all(|m| (431_002_001..=431_002_010).contains(m)));
        assert!(
            ships(3, 10, 30.0, 7)
                .iter()
                .all(|s| !mmsis.contains(&s.mmsi)),
            "sites apart"
        );
        assert_eq!(fleet[0].in_range_ms, 0);
        assert!(fleet
            .windows(2)
            .all(|w| w[0].in_range_ms < w[1].in_range_ms));
        assert!(
            fleet.last().unwrap().in_range_ms < 24_000,
            "all in range before 4/5 of 30 s"
        );
        for s in &fleet {
            // Half an hour at their speed keeps them south of Tsushima (34.08° N at its tip)
            // and north of Iki (33.85° N).
            for secs in [0.0, 1800.0] {
                let (lat, lon) = s.at(secs);
                assert!(
                    (33.85..34.07).contains(&lat) && (128.9..129.65).contains(&lon),
                    "{s:?} at {secs} s: {lat}, {lon}"
                );
            }
            assert!((4.0..=10.0).contains(&s.sog_knots));
        }
        // A minute at 6 knots is 185 m along the course.
        let s = Ship {
            mmsi: 1,
            lat: 34.0,
            lon: 129.0,
            sog_knots: 6.0,
            cog_deg: 90.0,
            in_range_ms: 0,
        };
        let (lat, lon) = s.at(60.0);
        let east_m = (lon - 129.0) * 111_320.0 * 34f64.to_radians().cos();
        assert!(
            (lat - 34.0).abs() < 1e-9 && (east_m - 185.2).abs() < 0.1,
            "{east_m}"
        );
    }

    #[tokio::test]
    async fn the_feed_serves_ships_in_range_and_journals_whether_a_site_took_them() {
        let (listener, addr) = listen().unwrap();
        // The site connects before the workload starts, as a site does at its start.
        let client = TcpStream::connect(addr).await.unwrap();
        let fleet = vec![
            Ship {
                mmsi: 431_000_001,
                lat: 33.95,
                lon: 129.2,
                sog_knots: 8.0,
                cog_deg: 60.0,
                in_range_ms: 0,
            },
            Ship {
                mmsi: 431_000_002,
                lat: 33.96,
                lon: 129.3,
                sog_knots: 5.0,
                cog_deg: 240.0,
                in_range_ms: 300,
            },
        ];
        let (stop, stopped) = watch::channel(false);
        let mut feed =
            AisFeed::start("tsushima", listener, fleet, Instant::now(), stopped).unwrap();
        let mut lines = tokio::io::BufReader::new(client).lines();
        let mut got = Vec::new();
        while got.len() < 2 {
            let line = tokio::time::timeout(Duration::from_secs(5), lines.next_line())
                .await
                .expect("the feed sends within seconds")
                .unwrap()
                .expect("the feed keeps the connection");
            got.push(line);
        }
        for line in &got {
            assert!(
                line.starts_with("\\s:drill-tsushima,c:") && line.contains("!AIVDM,1,1,,A,"),
                "{line}"
            );
        }
        // The site goes away: what the feed sends now is journaled as not taken.
        drop(lines);
        let before = feed.journal.lock().unwrap().len();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !feed
            .journal
            .lock()
            .unwrap()
            .iter()
            .skip(before)
            .any(|s| !s.delivered)
        {
            assert!(
                Instant::now() < deadline,
                "the feed never noticed the site was gone"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        stop.send(true).unwrap();
        let sent = feed.sent().await;
        assert_eq!(
            &sent[..2]
                .iter()
                .map(|s| (s.mmsi, s.delivered))
                .collect::<Vec<_>>(),
            &[(431_000_001, true), (431_000_002, true)]
        );
        assert!(sent[1].t_ms >= 300, "the second ship reports once in range");
        assert!(sent
            .iter()
            .all(|s| s.at_ms % 1000 == 0 && s.at_ms > 1_700_000_000_000));
    }
}
