//! Time: an injected wall clock and the hybrid logical clock built on it.
//!
//! Logic never reads `SystemTime::now()` directly: it asks a [`Clock`], so tests and drills can
//! freeze or skew time. The [`Hlc`] packs 48 bits of milliseconds since the Unix epoch and a
//! 16-bit logical counter into one `u64`, so timestamps compare as plain integers and fit a
//! single SQLite column.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// A source of wall-clock time in milliseconds since the Unix epoch.
pub trait Clock: Send + Sync + 'static {
    /// The current time, in milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;
}

/// The machine's clock, optionally skewed by a fixed offset (drills use the offset to
/// simulate a site whose clock is wrong).
#[derive(Debug, Default)]
pub struct SystemClock {
    offset_ms: AtomicI64,
}

impl SystemClock {
    /// The machine clock without skew.
    pub fn new() -> Self {
        Self::default()
    }

    /// The machine clock shifted by `offset_ms` (positive is ahead).
    pub fn skewed(offset_ms: i64) -> Self {
        SystemClock {
            offset_ms: AtomicI64::new(offset_ms),
        }
    }
}

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        let real = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        (real + self.offset_ms.load(Ordering::Relaxed)).max(0) as u64
    }
}

/// A clock that moves only when told to: for tests and deterministic simulations.
#[derive(Debug, Clone, Default)]
pub struct ManualClock {
    now: Arc<AtomicU64>,
}

impl ManualClock {
    /// A manual clock reading `start_ms`.
    pub fn new(start_ms: u64) -> Self {
        ManualClock {
            now: Arc::new(AtomicU64::new(start_ms)),
        }
    }

    /// Moves the clock forward by `ms`.
    pub fn advance(&self, ms: u64) {
        self.now.fetch_add(ms, Ordering::Relaxed);
    }

    /// Sets the clock to `ms` (may go backwards, as real clocks do after an NTP step).
    pub fn set(&self, ms: u64) {
        self.now.store(ms, Ordering::Relaxed);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.now.load(Ordering::Relaxed)
    }
}

/// A hybrid logical clock timestamp: `physical_ms << 16 | logical`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Hlc(pub u64);

impl Hlc {
    const LOGICAL_BITS: u32 = 16;
    const LOGICAL_MASK: u64 = (1 << Self::LOGICAL_BITS) - 1;

    /// Builds a timestamp from its parts.
    pub fn new(physical_ms: u64, logical: u16) -> Self {
        Hlc((physical_ms << Self::LOGICAL_BITS) | logical as u64)
    }

    /// Milliseconds since the Unix epoch.
    pub fn physical_ms(self) -> u64 {
        self.0 >> Self::LOGICAL_BITS
    }

    /// The logical counter within one millisecond.
    pub fn logical(self) -> u16 {
        (self.0 & Self::LOGICAL_MASK) as u16
    }
}

impl std::fmt::Display for Hlc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.physical_ms(), self.logical())
    }
}

/// A remote timestamp was further ahead of local time than the configured skew allows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("remote timestamp {remote} is {ahead_ms} ms ahead of local time (limit {limit_ms} ms)")]
pub struct ClockSkew {
    /// The refused timestamp.
    pub remote: Hlc,
    /// How far ahead of local wall time it was.
    pub ahead_ms: u64,
    /// The configured limit.
    pub limit_ms: u64,
}

/// The hybrid logical clock of one replica.
///
/// `tick` for local events, `observe` for timestamps received from peers (refusing those too
/// far in the future, so one site with a broken clock cannot drag every replica's clock ahead).
pub struct HlcClock {
    wall: Arc<dyn Clock>,
    last: Hlc,
    max_skew_ms: u64,
}

impl HlcClock {
    /// A clock on `wall` that has already issued `last` (restored from the store).
    pub fn new(wall: Arc<dyn Clock>, last: Hlc, max_skew_ms: u64) -> Self {
        HlcClock {
            wall,
            last,
            max_skew_ms,
        }
    }

    /// The wall clock this HLC reads.
    pub fn wall(&self) -> &Arc<dyn Clock> {
        &self.wall
    }

    /// The last timestamp issued or observed.
    pub fn last(&self) -> Hlc {
        self.last
    }

    /// The configured skew limit in milliseconds.
    pub fn max_skew_ms(&self) -> u64 {
        self.max_skew_ms
    }

    /// A new timestamp for a local event, strictly greater than every earlier one.
    pub fn tick(&mut self) -> Hlc {
        let now = Hlc::new(self.wall.now_ms(), 0);
        self.last = if now > self.last {
            now
        } else {
            Hlc(self.last.0 + 1)
        };
        self.last
    }

    /// Checks a remote timestamp against the skew limit without changing the clock.
    pub fn check(&self, remote: Hlc) -> Result<(), ClockSkew> {
        let now = self.wall.now_ms();
        let ahead_ms = remote.physical_ms().saturating_sub(now);
        if ahead_ms > self.max_skew_ms {
            return Err(ClockSkew {
                remote,
                ahead_ms,
                limit_ms: self.max_skew_ms,
            });
        }
        Ok(())
    }

    /// Folds a remote timestamp into the clock (after [`HlcClock::check`] accepted it), so
    /// later local events are ordered after everything this replica has seen.
    pub fn observe(&mut self, remote: Hlc) {
        if remote > self.last {
            self.last = remote;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tick_is_strictly_monotonic_even_when_the_wall_clock_steps_back() {
        let wall = ManualClock::new(10_000);
        let mut hlc = HlcClock::new(Arc::new(wall.clone()), Hlc::default(), 1_000);
        let a = hlc.tick();
        wall.set(5_000);
        let b = hlc.tick();
        let c = hlc.tick();
        assert!(a < b && b < c);
        assert_eq!(b.physical_ms(), 10_000);
        wall.set(20_000);
        let d = hlc.tick();
        assert_eq!(d, Hlc::new(20_000, 0));
    }

    #[test]
    fn far_future_timestamps_are_refused_and_near_ones_observed() {
        let wall = ManualClock::new(100_000);
        let mut hlc = HlcClock::new(Arc::new(wall), Hlc::default(), 1_000);
        let err = hlc.check(Hlc::new(102_000, 0)).unwrap_err();
        assert_eq!(err.ahead_ms, 2_000);
        assert!(hlc.check(Hlc::new(100_900, 3)).is_ok());
        hlc.observe(Hlc::new(100_900, 3));
        assert!(hlc.tick() > Hlc::new(100_900, 3));
    }
}
