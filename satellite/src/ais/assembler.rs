//! Reassembly of multi-sentence messages (type 5 and long binary messages span 2-9 sentences).
//!
//! Fragments of one message share (channel, sequence id, fragment count) and arrive in order,
//! usually within milliseconds. A group is completed by its last fragment, replaced by a new
//! first fragment with the same key, dropped when it waits longer than the timeout, and evicted
//! (oldest first) when too many groups are pending: a receiver spewing first fragments cannot
//! grow memory. Time is whatever the caller says it is; there is no hidden clock.
//!
//! A fragment that does not fit (an orphan, a gap, a duplicate) is refused and leaves every
//! pending group as it was.

use std::borrow::Cow;

use super::error::AisError;
use super::nmea::{Sentence, TagBlock};

/// Reassembly limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AssemblerConfig {
    /// A pending group older than this (from its first fragment) is dropped, in milliseconds.
    /// Fragments are sent back to back in consecutive slots, so seconds are plenty even for
    /// feeds relayed over slow links.
    pub timeout_ms: i64,
    /// Most groups pending at once (each holds at most 9 sentences).
    pub max_pending: usize,
}

impl Default for AssemblerConfig {
    fn default() -> Self {
        AssemblerConfig {
            timeout_ms: 10_000,
            max_pending: 256,
        }
    }
}

/// What the assembler has done to groups it could not complete, since it was created.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AssemblerStats {
    /// Messages completed (single sentences included).
    pub completed: u64,
    /// Groups dropped because their time ran out.
    pub expired: u64,
    /// Groups dropped because a new first fragment with the same key arrived.
    pub superseded: u64,
    /// Groups dropped to make room (`max_pending` reached).
    pub evicted: u64,
}

/// The tag-block fields a completed group keeps (from the first fragment that had them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupTags {
    /// `s:` source.
    pub source: Option<String>,
    /// `c:` receive time in UNIX milliseconds.
    pub time_ms: Option<i64>,
}

impl GroupTags {
    fn absorb(&mut self, tags: Option<&TagBlock<'_>>) {
        if let Some(tags) = tags {
            if self.source.is_none() {
                self.source = tags.source.map(str::to_owned);
            }
            if self.time_ms.is_none() {
                self.time_ms = tags.time_ms;
            }
        }
    }
}

/// A complete message: its payload and what the sentences said about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assembled<'a> {
    /// The armored payload of all fragments, in order (borrowed from the line when the message
    /// came in one sentence, which is almost always).
    pub payload: Cow<'a, str>,
    /// Fill bits of the last fragment.
    pub fill_bits: u8,
    /// Radio channel.
    pub channel: Option<char>,
    /// VDO (own ship) rather than VDM.
    pub own_ship: bool,
    /// Tag-block source and time.
    pub tags: GroupTags,
    /// The sentences as received (tag blocks included, receiver extras not).
    pub sentences: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct GroupKey {
    channel: Option<char>,
    sequence_id: Option<u8>,
    total: u8,
}

#[derive(Debug, Clone)]
struct Pending {
    key: GroupKey,
    started_ms: i64,
    /// The fragment number expected next.
    next: u8,
    payload: String,
    own_ship: bool,
    tags: GroupTags,
    sentences: Vec<String>,
}

/// Collects fragments into complete messages.
#[derive(Debug, Clone, Default)]
pub struct Assembler {
    config: AssemblerConfig,
    // A handful of groups are pending at any time, so a vector searched linearly beats a map.
    pending: Vec<Pending>,
    stats: AssemblerStats,
}

impl Assembler {
    /// An assembler with the given limits (a `max_pending` of 0 is taken as 1).
    pub fn new(config: AssemblerConfig) -> Self {
        Assembler {
            config: AssemblerConfig {
                max_pending: config.max_pending.max(1),
                ..config
            },
            pending: Vec::new(),
            stats: AssemblerStats::default(),
        }
    }

    /// The limits in force.
    pub fn config(&self) -> AssemblerConfig {
        self.config
    }

    /// Groups waiting for more fragments.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// What happened to groups so far.
    pub fn stats(&self) -> AssemblerStats {
        self.stats
    }

    /// Drops the groups whose first fragment is older than the timeout at `now_ms`; returns how
    /// many. A clock that went backwards expires nothing.
    pub fn expire(&mut self, now_ms: i64) -> usize {
        let timeout = self.config.timeout_ms;
        let before = self.pending.len();
        self.pending
            .retain(|g| now_ms.saturating_sub(g.started_ms) <= timeout);
        let expired = before - self.pending.len();
        self.stats.expired += expired as u64;
        expired
    }

    /// Adds a parsed sentence; returns the message once its last fragment is in.
    ///
    /// Expired groups are dropped first (time moves on whatever the line holds); after that a
    /// refused fragment changes nothing.
    pub fn push<'a>(
        &mut self,
        sentence: &Sentence<'a>,
        now_ms: i64,
    ) -> Result<Option<Assembled<'a>>, AisError> {
        self.expire(now_ms);
        let total = sentence.fragment_count;
        let number = sentence.fragment_number;
        let last = number == total;
        if !last && sentence.fill_bits != 0 {
            // Only the last fragment may end inside a character; elsewhere the concatenated
            // bit string would have a hole.
            return Err(AisError::BadFillBits(format!(
                "{} on fragment {number} of {total}",
                sentence.fill_bits
            )));
        }
        if total == 1 {
            let mut tags = GroupTags::default();
            tags.absorb(sentence.tag_block.as_ref());
            self.stats.completed += 1;
            return Ok(Some(Assembled {
                payload: Cow::Borrowed(sentence.payload),
                fill_bits: sentence.fill_bits,
                channel: sentence.channel,
                own_ship: sentence.own_ship,
                tags,
                sentences: vec![sentence.text.to_owned()],
            }));
        }

        let key = GroupKey {
            channel: sentence.channel,
            sequence_id: sentence.sequence_id,
            total,
        };
        let found = self.pending.iter().position(|g| g.key == key);

        if number == 1 {
            if let Some(i) = found {
                self.pending.swap_remove(i);
                self.stats.superseded += 1;
            } else if self.pending.len() >= self.config.max_pending {
                self.evict_oldest();
            }
            let mut tags = GroupTags::default();
            tags.absorb(sentence.tag_block.as_ref());
            self.pending.push(Pending {
                key,
                started_ms: now_ms,
                next: 2,
                payload: sentence.payload.to_owned(),
                own_ship: sentence.own_ship,
                tags,
                sentences: vec![sentence.text.to_owned()],
            });
            return Ok(None);
        }

        let Some(i) = found else {
            return Err(AisError::BadFragmentSequence(format!(
                "fragment {number} of {total} (channel {}, sequence id {}) without its first",
                show(sentence.channel),
                show(sentence.sequence_id),
            )));
        };
        let group = &mut self.pending[i];
        if group.next != number {
            return Err(AisError::BadFragmentSequence(format!(
                "fragment {number} of {total} where {} was expected",
                group.next
            )));
        }
        if group.own_ship != sentence.own_ship {
            return Err(AisError::BadFragmentSequence(
                "VDM and VDO fragments in one group".to_owned(),
            ));
        }
        group.payload.push_str(sentence.payload);
        group.sentences.push(sentence.text.to_owned());
        group.tags.absorb(sentence.tag_block.as_ref());
        group.next += 1;
        if !last {
            return Ok(None);
        }
        let done = self.pending.swap_remove(i);
        self.stats.completed += 1;
        Ok(Some(Assembled {
            payload: Cow::Owned(done.payload),
            fill_bits: sentence.fill_bits,
            channel: done.key.channel,
            own_ship: done.own_ship,
            tags: done.tags,
            sentences: done.sentences,
        }))
    }

    fn evict_oldest(&mut self) {
        if let Some((i, _)) = self
            .pending
            .iter()
            .enumerate()
            .min_by_key(|(_, g)| g.started_ms)
        {
            self.pending.swap_remove(i);
            self.stats.evicted += 1;
        }
    }
}

fn show<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "none".to_owned(), |v| v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ais::nmea::parse_line;

    const PART1: &str =
        "!AIVDM,2,1,3,B,55NBjP01mtGIL@CW;SM<D60P5Ld000000000000P0`<3557l0<50@kk@,0*66";
    const PART2: &str = "!AIVDM,2,2,3,B,K5h@00000000000,2*72";

    fn push<'a>(
        a: &mut Assembler,
        line: &'a str,
        now: i64,
    ) -> Result<Option<Assembled<'a>>, AisError> {
        a.push(&parse_line(line).unwrap(), now)
    }

    #[test]
    fn joins_two_fragments() {
        let mut a = Assembler::default();
        assert_eq!(push(&mut a, PART1, 0).unwrap(), None);
        assert_eq!(a.pending(), 1);
        let done = push(&mut a, PART2, 5).unwrap().unwrap();
        assert_eq!(done.payload.len(), 56 + 15);
        assert_eq!(done.fill_bits, 2);
        assert_eq!(done.sentences, vec![PART1, PART2]);
        assert_eq!(a.pending(), 0);
    }

    #[test]
    fn refuses_orphans_and_changes_nothing() {
        let mut a = Assembler::default();
        assert_eq!(
            push(&mut a, PART2, 0).unwrap_err().kind(),
            "bad_fragment_sequence"
        );
        assert_eq!(a.pending(), 0);
        push(&mut a, PART1, 0).unwrap();
        // A fragment 2 of another sequence id is refused; the pending group is untouched.
        let other = "!AIVDM,2,2,4,B,K5h@00000000000,2*75";
        assert!(push(&mut a, other, 1).is_err());
        assert_eq!(a.pending(), 1);
        assert!(push(&mut a, PART2, 2).unwrap().is_some());
    }

    #[test]
    fn times_out_and_bounds_pending_groups() {
        let mut a = Assembler::new(AssemblerConfig {
            timeout_ms: 1000,
            max_pending: 2,
        });
        push(&mut a, PART1, 0).unwrap();
        assert!(push(&mut a, PART2, 1001).is_err(), "group expired");
        assert_eq!(a.stats().expired, 1);

        for seq in 0..5 {
            let body = format!("AIVDM,2,1,{seq},A,55NBjP01mtGIL@CW,0");
            let cs = crate::ais::nmea::checksum(body.as_bytes());
            push(&mut a, &format!("!{body}*{cs:02X}"), 2000 + seq).unwrap();
            assert!(a.pending() <= 2);
        }
        assert_eq!(a.stats().evicted, 3);
    }
}
