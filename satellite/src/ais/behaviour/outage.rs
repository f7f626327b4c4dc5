//! Feed outages: spans of time when the caller knows the feed itself was down (the connection to
//! the receiver was lost), so that the silence of every ship during them is not taken for ships
//! going dark.
//!
//! Only the caller knows: a feed that goes quiet may be a dead receiver or a quiet sea (in an
//! empty area, the one boat that switches off its transponder silences the whole feed), so the
//! monitor never infers an outage from silence alone.

use std::collections::VecDeque;

/// Past outages remembered; older ones are forgotten first (as they are when older than the
/// vessels the monitor remembers).
const MAX_OUTAGES: usize = 64;

#[derive(Debug, Clone, Default)]
pub(super) struct Outages {
    /// Ended outages, `(from, to)`, in the order they ended.
    past: VecDeque<(i64, i64)>,
    /// The current outage, if the feed is down.
    down_since: Option<i64>,
}

impl Outages {
    pub(super) fn lost(&mut self, since_ms: i64) {
        self.down_since.get_or_insert(since_ms);
    }

    pub(super) fn restored(&mut self, at_ms: i64) {
        let Some(from) = self.down_since.take() else {
            return;
        };
        if at_ms <= from {
            return;
        }
        if self.past.len() >= MAX_OUTAGES {
            self.past.pop_front();
        }
        self.past.push_back((from, at_ms));
    }

    /// Milliseconds of `from..to` during which the feed was down.
    pub(super) fn overlap(&self, from_ms: i64, to_ms: i64) -> i64 {
        let current = self.down_since.map(|s| (s, i64::MAX));
        self.past
            .iter()
            .chain(current.as_ref())
            .map(|&(a, b)| b.min(to_ms).saturating_sub(a.max(from_ms)).max(0))
            .fold(0i64, i64::saturating_add)
    }

    /// Forgets the outages that ended before `cutoff_ms`.
    pub(super) fn prune(&mut self, cutoff_ms: i64) {
        self.past.retain(|&(_, to)| to >= cutoff_ms);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlap_counts_past_and_current_outages_within_the_span() {
        let mut o = Outages::default();
        o.lost(100);
        o.lost(150); // already down: the outage began at 100
        o.restored(200);
        o.restored(300); // not down: nothing
        o.lost(400);
        assert_eq!(o.overlap(0, 1000), 100 + 600);
        assert_eq!(o.overlap(150, 450), 50 + 50);
        assert_eq!(o.overlap(250, 350), 0);
        o.restored(500);
        o.prune(300);
        assert_eq!(o.overlap(0, 1000), 100);
        for i in 0..1000 {
            o.lost(1000 + 2 * i);
            o.restored(1001 + 2 * i);
        }
        assert!(o.past.len() <= MAX_OUTAGES);
    }
}
