//! A small, bounds-checked binary codec: unsigned LEB128 varints, zigzag for signed deltas and
//! length-prefixed strings and bytes.
//!
//! Everything that arrives from the network or from the store is decoded through [`Reader`],
//! which never panics and never allocates more than the bytes actually present.

/// Input ended early or held an invalid value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The input ended in the middle of a value.
    #[error("truncated input: needed {needed} more bytes at offset {offset}")]
    Truncated {
        /// Byte offset where reading stopped.
        offset: usize,
        /// Bytes still needed.
        needed: usize,
    },
    /// A varint ran past 10 bytes or overflowed 64 bits.
    #[error("malformed varint at offset {0}")]
    BadVarint(usize),
    /// A string was not UTF-8.
    #[error("invalid UTF-8 string at offset {0}")]
    BadUtf8(usize),
    /// A value was structurally wrong (unknown tag, index out of range, ...).
    #[error("invalid {what} at offset {offset}")]
    Invalid {
        /// What was being decoded.
        what: &'static str,
        /// Byte offset of the value.
        offset: usize,
    },
    /// Bytes were left over after a complete value.
    #[error("{0} trailing bytes after the message")]
    Trailing(usize),
}

/// Appends encoded values to a byte buffer.
#[derive(Debug, Default, Clone)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    /// An empty writer.
    pub fn new() -> Self {
        Self::default()
    }

    /// The bytes written so far.
    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }

    /// How many bytes have been written.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Whether nothing has been written.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// One raw byte.
    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }

    /// An unsigned LEB128 varint.
    pub fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.buf.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.buf.push(v as u8);
    }

    /// A signed value, zigzag-encoded so small magnitudes stay short.
    pub fn zigzag(&mut self, v: i64) {
        self.varint(((v << 1) ^ (v >> 63)) as u64);
    }

    /// Length-prefixed bytes.
    pub fn bytes(&mut self, b: &[u8]) {
        self.varint(b.len() as u64);
        self.buf.extend_from_slice(b);
    }

    /// A length-prefixed UTF-8 string.
    pub fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }

    /// An IEEE 754 double, little endian.
    pub fn f64(&mut self, v: f64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
}

/// Reads encoded values from a byte slice, checking every bound.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    /// Current byte offset.
    pub fn offset(&self) -> usize {
        self.pos
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Fails unless every byte was consumed.
    pub fn finish(&self) -> Result<(), WireError> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(WireError::Trailing(n)),
        }
    }

    /// An error for a structurally invalid value at the current offset.
    pub fn invalid(&self, what: &'static str) -> WireError {
        WireError::Invalid {
            what,
            offset: self.pos,
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if self.remaining() < n {
            return Err(WireError::Truncated {
                offset: self.pos,
                needed: n - self.remaining(),
            });
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    /// One raw byte.
    pub fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.take(1)?[0])
    }

    /// An unsigned LEB128 varint.
    pub fn varint(&mut self) -> Result<u64, WireError> {
        let start = self.pos;
        let mut out: u64 = 0;
        for i in 0..10 {
            let b = self.u8()?;
            let part = (b & 0x7f) as u64;
            if i == 9 && part > 1 {
                return Err(WireError::BadVarint(start));
            }
            out |= part << (7 * i);
            if b & 0x80 == 0 {
                return Ok(out);
            }
        }
        Err(WireError::BadVarint(start))
    }

    /// A varint that must fit a `usize` count no larger than the bytes left (each counted item
    /// takes at least one byte), so a forged count cannot make us allocate.
    pub fn count(&mut self) -> Result<usize, WireError> {
        let n = self.varint()?;
        if n > self.remaining() as u64 {
            return Err(self.invalid("count larger than the remaining input"));
        }
        Ok(n as usize)
    }

    /// A zigzag-encoded signed value.
    pub fn zigzag(&mut self) -> Result<i64, WireError> {
        let v = self.varint()?;
        Ok(((v >> 1) as i64) ^ -((v & 1) as i64))
    }

    /// Length-prefixed bytes, borrowed from the input.
    pub fn bytes(&mut self) -> Result<&'a [u8], WireError> {
        let n = self.varint()?;
        if n > self.remaining() as u64 {
            return Err(WireError::Truncated {
                offset: self.pos,
                needed: (n - self.remaining() as u64).min(usize::MAX as u64) as usize,
            });
        }
        self.take(n as usize)
    }

    /// A length-prefixed UTF-8 string.
    pub fn str(&mut self) -> Result<&'a str, WireError> {
        let at = self.pos;
        let b = self.bytes()?;
        std::str::from_utf8(b).map_err(|_| WireError::BadUtf8(at))
    }

    /// An IEEE 754 double, little endian.
    pub fn f64(&mut self) -> Result<f64, WireError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(f64::from_le_bytes(a))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn varints_and_zigzags_round_trip(u in any::<u64>(), i in any::<i64>(), s in ".{0,40}") {
            let mut w = Writer::new();
            w.varint(u);
            w.zigzag(i);
            w.str(&s);
            let bytes = w.into_bytes();
            let mut r = Reader::new(&bytes);
            prop_assert_eq!(r.varint().unwrap(), u);
            prop_assert_eq!(r.zigzag().unwrap(), i);
            prop_assert_eq!(r.str().unwrap(), s.as_str());
            prop_assert!(r.finish().is_ok());
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut r = Reader::new(&bytes);
            let _ = r.varint();
            let _ = r.str();
            let _ = r.count();
            let _ = r.f64();
        }
    }

    #[test]
    fn overlong_varint_is_an_error() {
        let bytes = [0xffu8; 11];
        assert_eq!(Reader::new(&bytes).varint(), Err(WireError::BadVarint(0)));
        let huge_len = [0xff, 0xff, 0xff, 0xff, 0x0f];
        assert!(matches!(
            Reader::new(&huge_len).bytes(),
            Err(WireError::Truncated { .. })
        ));
    }
}
