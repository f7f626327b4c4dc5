//! `mizugiwa ais`: AIS feeds as an operator sees them, through `mizugiwa-satellite`'s decoder,
//! track store and behaviour rules.
//!
//! * `ais decode [FILE|-]`: NMEA lines in, one JSON line per decoded message out (the
//!   [`AisReport`]: message, receive time and its source, receiver, channel, sentences);
//! * `ais listen tcp://HOST:PORT | udp://BIND:PORT`: the same live, from a receiver or an
//!   aggregator serving NMEA over TCP (connected to as a client, reconnected with backoff) or
//!   from datagrams; `--tracks` prints a periodic summary of the tracks instead, `--behaviour`
//!   the alerts of the behaviour rules (gaps, spoofing, encounters, loitering).
//!
//! Feeds carry garbage: a line that does not decode is counted by kind and reported on stderr
//! at the end (each one with `--verbose`), a line longer than NMEA allows is dropped without
//! being buffered, and nothing a peer sends can stop the command or grow its memory. Exit
//! status: 0 unless the input cannot be read (a missing file, an unusable address).
//!
//! The on-land spoofing rule needs the site's land mask, which the field node wires into the
//! monitor; here it is off. This module reads the wall clock: it is the edge where the clock is
//! injected into the decoder and the rules.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use mizugiwa_satellite::ais::nmea::{LineSplitter, Piece};
use mizugiwa_satellite::ais::{
    AisError, AisReport, BehaviourConfig, BehaviourMonitor, Decoder, Tracks,
};
use serde::Serialize;
use tokio::io::AsyncReadExt;

#[derive(Debug, Subcommand)]
pub enum AisCommand {
    /// Decode NMEA 0183 AIVDM/AIVDO lines (with or without tag blocks): one JSON line per
    /// decoded message on stdout.
    ///
    /// Multi-sentence messages are joined; lines that do not decode (bad checksum, unsupported
    /// message type, receiver noise) are counted by kind and summarised on stderr at the end.
    /// Without a tag block time (`c:`), a message's `received_ms` is when its last line was
    /// read.
    ///
    /// Exit status: 0 when the input was read to its end, whatever it held; 1 when it could not
    /// be read.
    Decode(DecodeArgs),
    /// Listen to a live AIS feed and print what it decodes as JSON lines, until Ctrl-C.
    ///
    /// tcp://HOST:PORT connects to a receiver or aggregator serving NMEA over TCP (as AIS-catcher,
    /// rtl-ais or an AIS hub do) and reconnects with backoff when it drops; udp://BIND:PORT
    /// listens for datagrams of NMEA lines. --tracks prints a summary of the tracks every
    /// --every seconds instead of the messages; --behaviour prints the alerts of the behaviour
    /// rules. Both may be given.
    Listen(ListenArgs),
}

#[derive(Debug, Args)]
pub struct DecodeArgs {
    /// NMEA file, or `-` for standard input.
    #[arg(value_name = "FILE|-", default_value = "-")]
    input: String,
    /// Also print every refused line and why on stderr.
    #[arg(long, short)]
    verbose: bool,
}

#[derive(Debug, Args)]
pub struct ListenArgs {
    /// tcp://HOST:PORT (a server of NMEA lines) or udp://BIND:PORT (e.g. udp://0.0.0.0:10110).
    #[arg(value_name = "URL")]
    url: String,
    /// Print a summary of the tracks every --every seconds instead of the messages.
    #[arg(long)]
    tracks: bool,
    /// Run the behaviour rules and print their alerts as JSON lines instead of the messages
    /// (on-land spoofing is off: the land mask is wired by the field node). Reports stamped
    /// more than a day before the clock are not judged.
    #[arg(long)]
    behaviour: bool,
    /// Thresholds of the behaviour rules: a TOML file with an [ais.behaviour] table (as in a
    /// site's configuration) or with the table's fields at top level.
    #[arg(long, value_name = "FILE.toml", requires = "behaviour")]
    behaviour_config: Option<PathBuf>,
    /// Seconds between track summaries and between checks for ships gone silent.
    #[arg(long, default_value_t = 10, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    every: u64,
    /// Vessels listed in a track summary, most recently heard first.
    #[arg(long, default_value_t = 20, value_name = "N")]
    top: usize,
    /// Stop after this many decoded messages.
    #[arg(long, value_name = "N")]
    count: Option<u64>,
    /// Also print every refused line and why on stderr.
    #[arg(long, short)]
    verbose: bool,
}

pub fn run(c: AisCommand) -> anyhow::Result<()> {
    match c {
        AisCommand::Decode(a) => decode(a),
        AisCommand::Listen(a) => listen(a),
    }
}

/// UNIX milliseconds by the wall clock: the arrival time of lines without a tag block time.
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The decoder of one feed and what it has seen.
struct Feed {
    decoder: Decoder,
    verbose: bool,
    lines: u64,
    messages: u64,
    refused: BTreeMap<&'static str, u64>,
}

impl Feed {
    fn new(verbose: bool) -> Feed {
        Feed {
            decoder: Decoder::new(),
            verbose,
            lines: 0,
            messages: 0,
            refused: BTreeMap::new(),
        }
    }

    /// Decodes one piece; blank lines are skipped without being counted.
    fn piece(&mut self, piece: Piece, now_ms: i64) -> Option<AisReport> {
        let line = match piece {
            Piece::TooLong(n) => {
                self.lines += 1;
                self.refuse(&AisError::LineTooLong(n), "");
                return None;
            }
            Piece::Line(line) => line,
        };
        let line = line.trim();
        if line.is_empty() {
            return None;
        }
        self.lines += 1;
        match self.decoder.feed_line(line, now_ms) {
            Ok(Some(report)) => {
                self.messages += 1;
                Some(report)
            }
            Ok(None) => None,
            Err(e) => {
                self.refuse(&e, line);
                None
            }
        }
    }

    fn refuse(&mut self, e: &AisError, line: &str) {
        *self.refused.entry(e.kind()).or_insert(0) += 1;
        if self.verbose {
            let shown: String = line.chars().take(100).collect();
            eprintln!("refused line {}: {e}: {shown}", self.lines);
        }
    }

    /// One line for stderr: lines, messages, refusals by kind, incomplete fragment groups.
    fn summary(&self, what: &str) -> String {
        let refused: u64 = self.refused.values().sum();
        let kinds: Vec<String> = self
            .refused
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        let mut s = format!(
            "{what}: {} lines, {} messages, {refused} refused",
            self.lines, self.messages
        );
        if !kinds.is_empty() {
            s.push_str(&format!(" ({})", kinds.join(", ")));
        }
        let pending = self.decoder.pending_groups();
        if pending > 0 {
            s.push_str(&format!(", {pending} incomplete multi-sentence messages"));
        }
        s
    }
}

/// Writes `value` as one JSON line; `Ok(false)` when stdout was closed (`| head`): the caller
/// stops quietly, as any Unix filter does.
fn emit(out: &mut impl Write, value: &impl Serialize) -> anyhow::Result<bool> {
    let text = serde_json::to_string(value)?;
    match writeln!(out, "{text}") {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(anyhow::Error::new(e).context("writing to stdout")),
    }
}

/// Flushes stdout; a closed pipe is not an error.
fn flush(out: &mut impl Write) -> anyhow::Result<bool> {
    match out.flush() {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(anyhow::Error::new(e).context("writing to stdout")),
    }
}

fn decode(a: DecodeArgs) -> anyhow::Result<()> {
    let (mut input, name): (Box<dyn Read>, String) = if a.input == "-" {
        (Box::new(std::io::stdin().lock()), "standard input".into())
    } else {
        let file =
            std::fs::File::open(&a.input).with_context(|| format!("cannot open {}", a.input))?;
        (Box::new(file), a.input.clone())
    };
    let mut feed = Feed::new(a.verbose);
    let mut splitter = LineSplitter::default();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut buf = vec![0u8; 64 * 1024];
    let mut open = true;
    while open {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(anyhow::Error::new(e).context(format!("reading {name}"))),
        };
        for piece in splitter.push(&buf[..n]) {
            if let Some(report) = feed.piece(piece, now_ms()) {
                open = emit(&mut out, &report)?;
                if !open {
                    break;
                }
            }
        }
    }
    if open {
        for piece in splitter.finish() {
            if let Some(report) = feed.piece(piece, now_ms()) {
                if !emit(&mut out, &report)? {
                    break;
                }
            }
        }
        flush(&mut out)?;
    }
    eprintln!("{}", feed.summary(&format!("decoded {name}")));
    Ok(())
}

/// Where `listen` reads from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Source {
    Tcp(String),
    Udp(String),
}

impl Source {
    fn parse(url: &str) -> anyhow::Result<Source> {
        let usage = "expected tcp://HOST:PORT or udp://BIND:PORT";
        let (scheme, addr) = url
            .split_once("://")
            .with_context(|| format!("{url:?}: {usage}"))?;
        let port_ok = addr
            .rsplit_once(':')
            .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
        if !port_ok {
            bail!("{url:?}: no HOST:PORT ({usage})");
        }
        match scheme {
            "tcp" => Ok(Source::Tcp(addr.to_string())),
            "udp" => Ok(Source::Udp(addr.to_string())),
            other => bail!("{url:?}: unknown scheme {other:?} ({usage})"),
        }
    }
}

/// Reads a behaviour configuration: an `[ais.behaviour]` table, or its fields at top level.
fn behaviour_config(path: &std::path::Path) -> anyhow::Result<BehaviourConfig> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut value: toml::Table =
        toml::from_str(&text).with_context(|| format!("{} is not TOML", path.display()))?;
    let table = match value.remove("ais") {
        Some(toml::Value::Table(mut ais)) => match ais.remove("behaviour") {
            Some(toml::Value::Table(b)) => b,
            _ => bail!("{}: [ais] has no [ais.behaviour] table", path.display()),
        },
        Some(_) => bail!("{}: `ais` is not a table", path.display()),
        None => value,
    };
    let config: BehaviourConfig = toml::Value::Table(table)
        .try_into()
        .with_context(|| format!("{}: bad [ais.behaviour]", path.display()))?;
    config
        .validate()
        .with_context(|| format!("{}", path.display()))?;
    Ok(config)
}

/// One vessel in a track summary.
#[derive(Serialize)]
struct VesselLine<'a> {
    mmsi: u32,
    kind: Option<mizugiwa_satellite::ais::StationKind>,
    name: Option<&'a str>,
    lat: Option<f64>,
    lon: Option<f64>,
    sog_knots: Option<f64>,
    cog_deg: Option<f64>,
    last_seen_ms: i64,
    reports: u64,
}

/// A periodic track summary.
#[derive(Serialize)]
struct TrackSummary<'a> {
    time_ms: i64,
    lines: u64,
    messages: u64,
    refused: u64,
    tracks: usize,
    vessels: Vec<VesselLine<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    behaviour: Option<mizugiwa_satellite::ais::BehaviourStats>,
}

/// What `listen` keeps between reads.
struct Session {
    feed: Feed,
    tracks: Tracks,
    monitor: Option<BehaviourMonitor>,
    print_messages: bool,
    print_tracks: bool,
    top: usize,
    count: Option<u64>,
    out: std::io::Stdout,
}

/// Whether to keep listening.
#[derive(Debug, PartialEq, Eq)]
enum Flow {
    Go,
    /// `--count` reached, or stdout closed.
    Stop,
}

impl Session {
    /// Bytes from the feed; `finish` ends the last line (a datagram holds whole lines).
    fn bytes(
        &mut self,
        splitter: &mut LineSplitter,
        bytes: &[u8],
        finish: bool,
    ) -> anyhow::Result<Flow> {
        let mut pieces = splitter.push(bytes);
        if finish {
            pieces.extend(splitter.finish());
        }
        for piece in pieces {
            let now = now_ms();
            let Some(report) = self.feed.piece(piece, now) else {
                continue;
            };
            let update = self.tracks.update(&report);
            if self.print_messages && !emit(&mut self.out, &report)? {
                return Ok(Flow::Stop);
            }
            if let Some(monitor) = &mut self.monitor {
                for alert in monitor.observe(&report, &update, &self.tracks, now) {
                    if !emit(&mut self.out, &alert)? {
                        return Ok(Flow::Stop);
                    }
                }
            }
            if self.count.is_some_and(|c| self.feed.messages >= c) {
                return Ok(Flow::Stop);
            }
        }
        Ok(if flush(&mut self.out)? {
            Flow::Go
        } else {
            Flow::Stop
        })
    }

    /// The periodic work: ships gone silent, the track summary.
    fn tick(&mut self) -> anyhow::Result<Flow> {
        let now = now_ms();
        if let Some(monitor) = &mut self.monitor {
            for alert in monitor.check_silent(now) {
                if !emit(&mut self.out, &alert)? {
                    return Ok(Flow::Stop);
                }
            }
        }
        if self.print_tracks {
            let mut all: Vec<_> = self.tracks.iter().collect();
            all.sort_by_key(|t| std::cmp::Reverse(t.last_seen_ms()));
            let vessels = all
                .into_iter()
                .take(self.top)
                .map(|t| {
                    let fix = t.latest();
                    VesselLine {
                        mmsi: t.mmsi(),
                        kind: t.kind(),
                        name: t.vessel().name.as_deref(),
                        lat: fix.map(|f| f.position.lat),
                        lon: fix.map(|f| f.position.lon),
                        sog_knots: fix.and_then(|f| f.sog_knots),
                        cog_deg: fix.and_then(|f| f.cog_deg),
                        last_seen_ms: t.last_seen_ms(),
                        reports: t.reports(),
                    }
                })
                .collect();
            let summary = TrackSummary {
                time_ms: now,
                lines: self.feed.lines,
                messages: self.feed.messages,
                refused: self.feed.refused.values().sum(),
                tracks: self.tracks.len(),
                vessels,
                behaviour: self.monitor.as_ref().map(BehaviourMonitor::stats),
            };
            if !emit(&mut self.out, &summary)? {
                return Ok(Flow::Stop);
            }
        }
        Ok(if flush(&mut self.out)? {
            Flow::Go
        } else {
            Flow::Stop
        })
    }
}

fn listen(a: ListenArgs) -> anyhow::Result<()> {
    let source = Source::parse(&a.url)?;
    let monitor = if a.behaviour {
        let config = match &a.behaviour_config {
            Some(path) => behaviour_config(path)?,
            None => BehaviourConfig::default(),
        };
        Some(BehaviourMonitor::new(config)?)
    } else {
        None
    };
    let mut session = Session {
        feed: Feed::new(a.verbose),
        tracks: Tracks::default(),
        monitor,
        print_messages: !a.tracks && !a.behaviour,
        print_tracks: a.tracks,
        top: a.top,
        count: a.count,
        out: std::io::stdout(),
    };
    let every = Duration::from_secs(a.every);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let result = runtime.block_on(async {
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let run = async {
            match &source {
                Source::Tcp(addr) => run_tcp(addr, &mut session, &mut ticker).await,
                Source::Udp(addr) => run_udp(addr, &mut session, &mut ticker).await,
            }
        };
        tokio::select! {
            r = run => r,
            _ = tokio::signal::ctrl_c() => Ok(()),
        }
    });
    eprintln!(
        "{}",
        session.feed.summary(&format!("listened to {}", a.url))
    );
    result
}

/// First wait before reconnecting; doubled after each failure up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A connection attempt that takes longer is abandoned (and retried).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Connects to a TCP feed and reads it until `--count` or Ctrl-C, reconnecting with backoff.
async fn run_tcp(
    addr: &str,
    session: &mut Session,
    ticker: &mut tokio::time::Interval,
) -> anyhow::Result<()> {
    let mut backoff = FIRST_BACKOFF;
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        // Ticks go on while connecting; the attempt is not restarted by them.
        let connect = tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(addr));
        tokio::pin!(connect);
        let attempt = loop {
            tokio::select! {
                r = &mut connect => break r,
                _ = ticker.tick() => {
                    if session.tick()? == Flow::Stop {
                        return Ok(());
                    }
                }
            }
        };
        match attempt {
            Ok(Ok(mut stream)) => {
                eprintln!("connected to {addr}");
                if let Some(monitor) = &mut session.monitor {
                    monitor.feed_restored(now_ms());
                }
                let mut splitter = LineSplitter::default();
                let mut delivered = false;
                loop {
                    tokio::select! {
                        r = stream.read(&mut buf) => match r {
                            Ok(0) => {
                                eprintln!("{addr} closed the connection");
                                break;
                            }
                            Ok(n) => {
                                delivered = true;
                                if session.bytes(&mut splitter, &buf[..n], false)? == Flow::Stop {
                                    return Ok(());
                                }
                            }
                            Err(e) => {
                                eprintln!("reading {addr} failed: {e}");
                                break;
                            }
                        },
                        _ = ticker.tick() => {
                            if session.tick()? == Flow::Stop {
                                return Ok(());
                            }
                        }
                    }
                }
                // The last line, if the peer closed without a newline.
                if session.bytes(&mut splitter, &[], true)? == Flow::Stop {
                    return Ok(());
                }
                // Until it is back, ships' silence is the feed's, not theirs.
                if let Some(monitor) = &mut session.monitor {
                    monitor.feed_lost(now_ms());
                }
                if delivered {
                    backoff = FIRST_BACKOFF;
                }
            }
            Ok(Err(e)) => eprintln!("cannot connect to {addr}: {e}"),
            Err(_) => eprintln!("cannot connect to {addr}: no answer in {CONNECT_TIMEOUT:?}"),
        }
        eprintln!("reconnecting in {backoff:?}");
        let wait = tokio::time::sleep(backoff);
        tokio::pin!(wait);
        loop {
            tokio::select! {
                _ = &mut wait => break,
                _ = ticker.tick() => {
                    if session.tick()? == Flow::Stop {
                        return Ok(());
                    }
                }
            }
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Reads datagrams of NMEA lines until `--count` or Ctrl-C.
async fn run_udp(
    addr: &str,
    session: &mut Session,
    ticker: &mut tokio::time::Interval,
) -> anyhow::Result<()> {
    let socket = tokio::net::UdpSocket::bind(addr)
        .await
        .with_context(|| format!("cannot listen on udp://{addr}"))?;
    match socket.local_addr() {
        Ok(local) => eprintln!("listening on udp://{local}"),
        Err(_) => eprintln!("listening on udp://{addr}"),
    }
    let mut buf = vec![0u8; 65_536];
    loop {
        tokio::select! {
            r = socket.recv_from(&mut buf) => match r {
                Ok((n, _from)) => {
                    let mut splitter = LineSplitter::default();
                    if session.bytes(&mut splitter, &buf[..n], true)? == Flow::Stop {
                        return Ok(());
                    }
                }
                // An ICMP error from an earlier send, a truncated datagram: keep listening.
                Err(e) => eprintln!("receiving on udp://{addr} failed: {e}"),
            },
            _ = ticker.tick() => {
                if session.tick()? == Flow::Stop {
                    return Ok(());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_are_tcp_or_udp_with_a_port() {
        assert_eq!(
            Source::parse("tcp://ais.example:5631").unwrap(),
            Source::Tcp("ais.example:5631".into())
        );
        assert_eq!(
            Source::parse("udp://0.0.0.0:10110").unwrap(),
            Source::Udp("0.0.0.0:10110".into())
        );
        assert_eq!(
            Source::parse("tcp://[::1]:5631").unwrap(),
            Source::Tcp("[::1]:5631".into())
        );
        for bad in [
            "ais.example:5631",
            "http://x:1",
            "tcp://x",
            "tcp://:1",
            "udp://x:99999",
        ] {
            assert!(Source::parse(bad).is_err(), "{bad}");
        }
    }
}
