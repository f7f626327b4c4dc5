//! Lines in, reports out: parsing, reassembly and message decoding behind one call.

use serde::{Deserialize, Serialize};

use super::assembler::{Assembler, AssemblerConfig, AssemblerStats};
use super::error::AisError;
use super::messages::AisMessage;
use super::nmea::parse_line;

/// Where a report's receive time came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TimeSource {
    /// The `c:` field of a tag block: the time the receiver (or satellite) heard it.
    TagBlock,
    /// The time the caller passed in when the line arrived.
    Arrival,
}

/// A decoded message and what is known about its reception.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AisReport {
    /// The message.
    pub message: AisMessage,
    /// Receive time in UNIX milliseconds: the tag block's `c:` if any, else the arrival time of
    /// the line that completed the message.
    pub received_ms: i64,
    /// Which of the two `received_ms` is.
    pub time_source: TimeSource,
    /// The tag block's `s:` (receiver, station or satellite), if any.
    pub source: Option<String>,
    /// Radio channel, if the sentence named it.
    pub channel: Option<char>,
    /// Sent as VDO: the receiver's own ship.
    pub own_ship: bool,
    /// The sentences the message came in, as received (with tag blocks, without receiver
    /// extras after the checksum).
    pub sentences: Vec<String>,
}

/// An AIS decoder for one feed.
///
/// ```
/// use mizugiwa_satellite::ais::{AisMessage, Decoder};
///
/// let mut decoder = Decoder::new();
/// let report = decoder
///     .feed_line("!AIVDM,1,1,,B,15M67FC000G?ufbE`FepT@3n00Sa,0*5C", 1_700_000_000_000)
///     .unwrap()
///     .unwrap();
/// assert_eq!(report.message.mmsi(), 366053209);
/// let AisMessage::Position(p) = &report.message else { panic!() };
/// assert_eq!(p.heading_deg, Some(1));
/// ```
#[derive(Debug, Clone, Default)]
pub struct Decoder {
    assembler: Assembler,
}

impl Decoder {
    /// A decoder with the default reassembly limits.
    pub fn new() -> Self {
        Decoder::default()
    }

    /// A decoder with the given reassembly limits.
    pub fn with_config(config: AssemblerConfig) -> Self {
        Decoder {
            assembler: Assembler::new(config),
        }
    }

    /// Feeds one line received at `now_ms` (UNIX milliseconds, as the caller's clock says).
    ///
    /// Returns the report when the line completes a message, `None` when it is a fragment that
    /// waits for more, or why the line (or the message it completed) was refused. A refused line
    /// changes nothing but the time-driven expiry of stale fragment groups.
    pub fn feed_line(&mut self, line: &str, now_ms: i64) -> Result<Option<AisReport>, AisError> {
        let sentence = parse_line(line)?;
        let Some(done) = self.assembler.push(&sentence, now_ms)? else {
            return Ok(None);
        };
        let message = AisMessage::decode(&done.payload, done.fill_bits)?;
        let (received_ms, time_source) = match done.tags.time_ms {
            Some(t) => (t, TimeSource::TagBlock),
            None => (now_ms, TimeSource::Arrival),
        };
        Ok(Some(AisReport {
            message,
            received_ms,
            time_source,
            source: done.tags.source,
            channel: done.channel,
            own_ship: done.own_ship,
            sentences: done.sentences,
        }))
    }

    /// Drops fragment groups that timed out by `now_ms` (also done on every `feed_line`).
    pub fn expire(&mut self, now_ms: i64) -> usize {
        self.assembler.expire(now_ms)
    }

    /// Fragment groups waiting for more sentences.
    pub fn pending_groups(&self) -> usize {
        self.assembler.pending()
    }

    /// What happened to fragment groups so far.
    pub fn stats(&self) -> AssemblerStats {
        self.assembler.stats()
    }
}
