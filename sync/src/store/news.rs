//! Where the news is for each home: the last log position and the last movement of the version
//! vector that concern the records of one home, or the shared records.
//!
//! A hub with a thousand sites that hold only their own records (`Interest::Shared`) must not
//! read through every other site's entries, nor rebuild its scoped vector of thousands of
//! components, each time any site writes, only to learn that nothing concerns this one: with
//! every session doing so the hub did the N² work in reads that it no longer does in sends.
//! The store notes, as it stores entries and moves its vector, which home they concern; a
//! session asks [`News::for_holder`] and skips the read when nothing moved for its peer.

use std::collections::{BTreeSet, HashMap};

use crate::interest;
use crate::vv::VersionVector;

/// Positions of the latest news, by home (see the module documentation).
#[derive(Debug, Default)]
pub(crate) struct News {
    /// Entries at or below this local sequence were stored before this handle opened (or
    /// before its last reset): their homes are unknown, so they concern everyone.
    floor: u64,
    /// The latest entry of a shared origin.
    shared_lseq: u64,
    /// The latest entry of each home.
    home_lseq: HashMap<String, u64>,
    /// Counts every movement of the version vector; the fields below hold its value at the
    /// latest movement that concerned everyone, a shared component, or a home's components.
    ticks: u64,
    all_moved: u64,
    shared_moved: u64,
    home_moved: HashMap<String, u64>,
    /// Every origin the vector has had a component for, shared ones and by home (a superset
    /// after a reset: a component gone reads as zero). The part of the vector a peer that
    /// holds shared records takes is read through these, not by filtering thousands of
    /// components (see [`News::origins_for`]).
    shared_origins: BTreeSet<String>,
    home_origins: HashMap<String, BTreeSet<String>>,
}

impl News {
    /// News tracking for a log that ends at `log_end`, with the vector `vv`: everything up to
    /// it concerns everyone.
    pub(crate) fn starting_at(log_end: u64, vv: &VersionVector) -> News {
        let mut news = News {
            floor: log_end,
            ticks: 1,
            all_moved: 1,
            ..News::default()
        };
        for (origin, _) in vv.iter() {
            news.know(origin);
        }
        news
    }

    fn know(&mut self, origin: &str) {
        match interest::home_of(origin) {
            None => {
                if !self.shared_origins.contains(origin) {
                    self.shared_origins.insert(origin.to_owned());
                }
            }
            Some(home) => {
                let set = self.home_origins.entry(home.to_owned()).or_default();
                if !set.contains(origin) {
                    set.insert(origin.to_owned());
                }
            }
        }
    }

    /// The origins of the vector that a replica `holder` holding shared records takes.
    pub(crate) fn origins_for<'a>(&'a self, holder: &str) -> impl Iterator<Item = &'a str> {
        self.shared_origins
            .iter()
            .chain(self.home_origins.get(holder).into_iter().flatten())
            .map(String::as_str)
    }

    /// An entry of `origin` was stored at `lseq`.
    pub(crate) fn stored(&mut self, origin: &str, lseq: u64) {
        match interest::home_of(origin) {
            None => self.shared_lseq = self.shared_lseq.max(lseq),
            Some(home) => {
                let at = self.home_lseq.entry(home.to_owned()).or_default();
                *at = (*at).max(lseq);
            }
        }
    }

    /// The vector's component for `origin` moved.
    pub(crate) fn vector_moved(&mut self, origin: &str) {
        self.know(origin);
        self.ticks += 1;
        match interest::home_of(origin) {
            None => self.shared_moved = self.ticks,
            Some(home) => {
                self.home_moved.insert(home.to_owned(), self.ticks);
            }
        }
    }

    /// The whole vector may have moved, and the log up to `log_end` concerns everyone (a reset,
    /// a rollback).
    pub(crate) fn everything_moved(&mut self, log_end: u64) {
        self.ticks += 1;
        self.all_moved = self.ticks;
        self.floor = self.floor.max(log_end);
    }

    /// For a replica `holder` that takes the shared origins and its own home: the last log
    /// position that may hold an entry for it, and a stamp that changes whenever the part of
    /// the vector it takes may have moved.
    pub(crate) fn for_holder(&self, holder: &str) -> (u64, u64) {
        let lseq = self
            .floor
            .max(self.shared_lseq)
            .max(self.home_lseq.get(holder).copied().unwrap_or(0));
        let moved = self
            .all_moved
            .max(self.shared_moved)
            .max(self.home_moved.get(holder).copied().unwrap_or(0));
        (lseq, moved)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn news_follows_the_homes_it_concerns() {
        let mut vv = VersionVector::new();
        vv.raise("hq", 3);
        vv.raise("hq@a", 2);
        let mut news = News::starting_at(10, &vv);
        assert_eq!(news.origins_for("a").collect::<Vec<_>>(), ["hq", "hq@a"]);
        assert_eq!(news.origins_for("b").collect::<Vec<_>>(), ["hq"]);
        assert_eq!(news.for_holder("a"), (10, 1));
        news.stored("b@b", 11);
        news.stored("hq@b", 12);
        news.vector_moved("b@b");
        assert_eq!(
            news.for_holder("a"),
            (10, 1),
            "b's records are no news for a"
        );
        assert_eq!(news.for_holder("b").0, 12);
        news.stored("hq@a", 13);
        news.vector_moved("hq@a");
        let (lseq, moved) = news.for_holder("a");
        assert_eq!(lseq, 13);
        assert!(moved > 1);
        news.stored("hq", 14);
        assert_eq!(
            news.for_holder("a").0,
            14,
            "shared entries concern everyone"
        );
        assert_eq!(news.for_holder("b").0, 14);
        let before = news.for_holder("b").1;
        news.vector_moved("hq");
        assert!(news.for_holder("b").1 > before);
        assert_eq!(
            news.origins_for("b").collect::<Vec<_>>(),
            ["hq", "b@b"],
            "the vector's origins, not the log's"
        );
        news.everything_moved(20);
        assert_eq!(news.for_holder("c").0, 20);
    }
}
