//! The AIS payload: 6-bit armored ASCII turned into a bit string, read field by field.
//!
//! Each payload character carries six bits (ITU-R M.1371 / IEC 61162-1 armoring): characters
//! `0`..`W` (48-87) are 0-39 and `` ` ``..`w` (96-119) are 40-63. The reader works on the armored
//! bytes directly, so a single-sentence message is decoded without copying its payload.

use super::error::AisError;

/// Marks a byte outside the armoring alphabet in [`SEXTETS`].
const INVALID: u8 = 0xff;

/// The 6-bit value of every byte, or [`INVALID`]: a table lookup beats two range checks in the
/// decoder's innermost loop.
static SEXTETS: [u8; 256] = {
    let mut table = [INVALID; 256];
    let mut c = 0;
    while c < 256 {
        table[c] = match c as u8 {
            b'0'..=b'W' => c as u8 - 48,
            b'`'..=b'w' => c as u8 - 56,
            _ => INVALID,
        };
        c += 1;
    }
    table
};

/// The 6-bit value of an armored payload character, or `None` outside the alphabet.
#[inline]
pub fn sextet(c: u8) -> Option<u8> {
    let v = SEXTETS[usize::from(c)];
    (v != INVALID).then_some(v)
}

/// A cursor over the bits of a validated armored payload.
///
/// Reads past the end return [`AisError::Truncated`]; nothing here can panic.
#[derive(Debug, Clone)]
pub struct BitReader<'a> {
    armored: &'a [u8],
    len: usize,
    pos: usize,
    msg_type: u8,
}

impl<'a> BitReader<'a> {
    /// Validates `payload` (non-empty, only armoring characters, `fill_bits` in 0-5) and returns a
    /// reader at bit 0. The payload's bit length is `6 * chars - fill_bits`.
    pub fn new(payload: &'a [u8], fill_bits: u8) -> Result<Self, AisError> {
        if payload.is_empty() {
            return Err(AisError::EmptyPayload);
        }
        if fill_bits > 5 {
            return Err(AisError::BadFillBits(format!("{fill_bits} is not in 0-5")));
        }
        if let Some(&bad) = payload.iter().find(|&&c| sextet(c).is_none()) {
            return Err(AisError::BadPayloadChar(char::from(bad)));
        }
        let len = payload.len() * 6 - usize::from(fill_bits);
        let msg_type = payload.first().and_then(|&c| sextet(c)).unwrap_or(0);
        Ok(BitReader {
            armored: payload,
            len,
            pos: 0,
            msg_type,
        })
    }

    /// The payload length in bits.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the payload has no bits (never true for a reader built by [`BitReader::new`]).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The current bit position.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Bits left after the current position.
    pub fn remaining(&self) -> usize {
        self.len - self.pos
    }

    /// The message type (the first six bits).
    pub fn message_type(&self) -> u8 {
        self.msg_type
    }

    /// Fails with [`AisError::Truncated`] unless the payload has at least `bits` bits.
    pub fn require(&self, bits: usize) -> Result<(), AisError> {
        if self.len < bits {
            return Err(AisError::Truncated {
                msg_type: self.msg_type,
                needed: bits,
                got: self.len,
            });
        }
        Ok(())
    }

    /// Moves the cursor forward by `n` bits (spare and reserved fields).
    pub fn skip(&mut self, n: usize) -> Result<(), AisError> {
        self.require(self.pos + n)?;
        self.pos += n;
        Ok(())
    }

    /// Reads `n` (at most 32) bits as an unsigned big-endian integer.
    pub fn u(&mut self, n: u32) -> Result<u32, AisError> {
        debug_assert!(n <= 32, "fields are at most 32 bits wide");
        let n = n.min(32) as usize;
        if n == 0 {
            return Ok(0);
        }
        let end = self.pos + n;
        self.require(end)?;
        // The field lies in characters first..=last (at most 7 of them, 42 bits): gather them,
        // then cut the field out.
        let (first, last) = (self.pos / 6, (end - 1) / 6);
        let chars = self.armored.get(first..=last).ok_or(AisError::Truncated {
            msg_type: self.msg_type,
            needed: end,
            got: self.len,
        })?;
        let gathered = chars.iter().fold(0u64, |acc, &c| {
            // Validated in `new`, so the table never says INVALID here.
            acc << 6 | u64::from(SEXTETS[usize::from(c)] & 0x3f)
        });
        let after = (last + 1) * 6 - end;
        self.pos = end;
        Ok(((gathered >> after) & ((1u64 << n) - 1)) as u32)
    }

    /// Reads `n` (1 to 32) bits as a two's-complement signed integer.
    pub fn i(&mut self, n: u32) -> Result<i32, AisError> {
        let n = n.clamp(1, 32);
        let raw = self.u(n)?;
        // Shift the field's sign bit into bit 31, then arithmetic-shift back.
        let shift = 32 - n;
        Ok(((raw << shift) as i32) >> shift)
    }

    /// Reads one bit as a flag.
    pub fn flag(&mut self) -> Result<bool, AisError> {
        Ok(self.u(1)? == 1)
    }

    /// Reads `n` bits if they are all present, else `None` without moving: for fields that
    /// shorter transmissions of the same message type leave out.
    pub fn u_opt(&mut self, n: u32) -> Option<u32> {
        if self.pos + n as usize > self.len {
            return None;
        }
        self.u(n).ok()
    }

    /// Reads `chars` six-bit ASCII characters. Trailing `@` (the padding of fixed-width text
    /// fields) and spaces are trimmed.
    pub fn text(&mut self, chars: usize) -> Result<String, AisError> {
        self.require(self.pos + chars * 6)?;
        let mut s = String::with_capacity(chars);
        for _ in 0..chars {
            s.push(six_bit_ascii(self.u(6)?));
        }
        Ok(trim_text(s))
    }

    /// Reads as many whole six-bit characters as remain, up to `max_chars` (the variable-length
    /// tails of text fields, e.g. the name extension of message 21).
    pub fn text_tail(&mut self, max_chars: usize) -> String {
        let chars = (self.remaining() / 6).min(max_chars);
        self.text(chars).unwrap_or_default()
    }
}

/// Maps a six-bit value to its character: 0-31 are `@A-Z[\]^_`, 32-63 are `` !"#..?``.
#[inline]
fn six_bit_ascii(v: u32) -> char {
    let v = (v & 0x3f) as u8;
    char::from(if v < 32 { v + 64 } else { v })
}

fn trim_text(mut s: String) -> String {
    let keep = s.trim_end_matches(['@', ' ']).len();
    s.truncate(keep);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sextet_covers_the_alphabet_and_nothing_else() {
        let valid: Vec<u8> = (0u8..=255).filter(|&c| sextet(c).is_some()).collect();
        assert_eq!(valid.len(), 64);
        assert_eq!(sextet(b'0'), Some(0));
        assert_eq!(sextet(b'W'), Some(39));
        assert_eq!(sextet(b'`'), Some(40));
        assert_eq!(sextet(b'w'), Some(63));
        assert_eq!(sextet(b'X'), None);
        assert_eq!(sextet(b'x'), None);
    }

    #[test]
    fn reads_unsigned_and_signed_across_characters() {
        // "1" = 000001, "w" = 111111, "0" = 000000
        let mut r = BitReader::new(b"1w0", 0).unwrap();
        assert_eq!(r.len(), 18);
        assert_eq!(r.u(6).unwrap(), 1);
        assert_eq!(r.u(3).unwrap(), 0b111);
        assert_eq!(r.i(4).unwrap(), -2); // 1110
        assert_eq!(r.u(5).unwrap(), 0);
        assert!(matches!(r.u(1), Err(AisError::Truncated { .. })));
    }

    #[test]
    fn fill_bits_shorten_the_payload() {
        let r = BitReader::new(b"1w0", 2).unwrap();
        assert_eq!(r.len(), 16);
        assert!(matches!(
            BitReader::new(b"1w0", 6),
            Err(AisError::BadFillBits(_))
        ));
    }

    #[test]
    fn rejects_characters_outside_the_armoring() {
        assert_eq!(
            BitReader::new(b"1x0", 0).unwrap_err(),
            AisError::BadPayloadChar('x')
        );
        assert_eq!(BitReader::new(b"", 0).unwrap_err(), AisError::EmptyPayload);
    }

    #[test]
    fn text_trims_padding() {
        // Six-bit values 1 ('A'), 2 ('B'), 32 (' ') and 0 ('@'), armored as '1', '2', 'P', '0'.
        let mut r = BitReader::new(b"12P0", 0).unwrap();
        assert_eq!(r.text(4).unwrap(), "AB");
    }
}
