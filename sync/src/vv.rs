//! Version vectors: for each origin node, the highest change sequence whose effect a replica
//! holds (every change of that origin up to it is included, possibly merged into later ones).

use std::collections::BTreeMap;

use crate::wire::{Reader, WireError, Writer};

/// Origin node name → highest sequence seen.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VersionVector(BTreeMap<String, u64>);

impl VersionVector {
    /// An empty vector.
    pub fn new() -> Self {
        Self::default()
    }

    /// The sequence seen for `origin` (0 if none).
    pub fn get(&self, origin: &str) -> u64 {
        self.0.get(origin).copied().unwrap_or(0)
    }

    /// Raises the entry for `origin` to at least `seq`.
    pub fn raise(&mut self, origin: &str, seq: u64) {
        if seq == 0 {
            return;
        }
        let e = self.0.entry(origin.to_owned()).or_insert(0);
        *e = (*e).max(seq);
    }

    /// Sets the entry for `origin` (may lower it; used when a replica resets for a resync).
    pub fn set(&mut self, origin: &str, seq: u64) {
        if seq == 0 {
            self.0.remove(origin);
        } else {
            self.0.insert(origin.to_owned(), seq);
        }
    }

    /// Component-wise maximum.
    pub fn merge(&mut self, other: &VersionVector) {
        for (o, s) in &other.0 {
            self.raise(o, *s);
        }
    }

    /// Component-wise minimum with `other` (for causal stability across members).
    pub fn meet(&self, other: &VersionVector) -> VersionVector {
        VersionVector(
            self.0
                .iter()
                .filter_map(|(o, s)| {
                    let m = (*s).min(other.get(o));
                    (m > 0).then(|| (o.clone(), m))
                })
                .collect(),
        )
    }

    /// Whether this vector has seen everything `other` has.
    pub fn covers(&self, other: &VersionVector) -> bool {
        other.0.iter().all(|(o, s)| self.get(o) >= *s)
    }

    /// The origins and sequences.
    pub fn iter(&self) -> impl Iterator<Item = (&str, u64)> {
        self.0.iter().map(|(o, s)| (o.as_str(), *s))
    }

    /// Whether no origin has been seen.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Sum of the gaps where `other` is ahead of `self`: how many changes `self` lacks at most.
    pub fn lag_behind(&self, other: &VersionVector) -> u64 {
        other
            .0
            .iter()
            .map(|(o, s)| s.saturating_sub(self.get(o)))
            .sum()
    }

    /// Encodes the vector.
    pub fn encode(&self, w: &mut Writer) {
        w.varint(self.0.len() as u64);
        for (o, s) in &self.0 {
            w.str(o);
            w.varint(*s);
        }
    }

    /// Decodes a vector.
    pub fn decode(r: &mut Reader<'_>) -> Result<VersionVector, WireError> {
        let mut v = VersionVector::new();
        for _ in 0..r.count()? {
            let o = r.str()?.to_owned();
            let s = r.varint()?;
            v.raise(&o, s);
        }
        Ok(v)
    }

    /// The vector as bytes (for storing in the member records).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::new();
        self.encode(&mut w);
        w.into_bytes()
    }

    /// Parses [`VersionVector::to_bytes`] output.
    pub fn from_bytes(b: &[u8]) -> Result<VersionVector, WireError> {
        let mut r = Reader::new(b);
        let v = Self::decode(&mut r)?;
        r.finish()?;
        Ok(v)
    }
}

impl FromIterator<(String, u64)> for VersionVector {
    fn from_iter<T: IntoIterator<Item = (String, u64)>>(iter: T) -> Self {
        let mut v = VersionVector::new();
        for (o, s) in iter {
            v.raise(&o, s);
        }
        v
    }
}

impl std::fmt::Display for VersionVector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{{")?;
        for (i, (o, s)) in self.0.iter().enumerate() {
            if i > 0 {
                write!(f, ", ")?;
            }
            write!(f, "{o}:{s}")?;
        }
        write!(f, "}}")
    }
}
