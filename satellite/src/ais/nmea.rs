//! One NMEA 0183 line: optional tag blocks, then an `!xxVDM` / `!xxVDO` sentence.
//!
//! ```text
//! \s:rORBCOMM008,c:1418169601,g:1-2-1604*37\!AIVDM,2,1,6,A,53@o0E0...,0*63,b003669794,1272412827
//! └────────────── tag block ──────────────┘ └talker/fmt┘ │ │ │ │ └payload┘ │ └hh┘ └─ receiver extras ─┘
//!                                                  count ┘ │ │ └channel   fill bits
//!                                                   number ┘ └sequence id
//! ```
//!
//! Parsing borrows from the line: nothing is allocated unless the line is refused.

use super::bits::sextet;
use super::error::AisError;

/// Longest line accepted. An NMEA sentence is at most 82 characters, but tag blocks and the
/// receiver extras some loggers append (USCG `,b003669794,1272412827`, signal strength, ...)
/// make real lines longer; anything beyond this is not a line from an AIS receiver.
pub const MAX_LINE_LEN: usize = 1024;

/// Most fragments a sentence group may have (the count field is one digit).
pub const MAX_FRAGMENTS: u8 = 9;

/// The group field (`g:`) of a tag block: sentence `sentence` of `total` in group `id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TagGroup {
    /// This line's number in the group, from 1.
    pub sentence: u32,
    /// Lines in the group.
    pub total: u32,
    /// Group identifier.
    pub id: u32,
}

/// The fields of the tag blocks in front of a sentence (NMEA 0183 v4, IEC 61162-1 §7.9).
/// Fields that vendors add (`q:`, `T:`, ...) are skipped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TagBlock<'a> {
    /// `s:` the source: receiver, station or satellite that heard the sentence.
    pub source: Option<&'a str>,
    /// `c:` the receive time in UNIX milliseconds.
    pub time_ms: Option<i64>,
    /// `d:` destination.
    pub destination: Option<&'a str>,
    /// `g:` sentence grouping.
    pub group: Option<TagGroup>,
    /// `n:` line count.
    pub line_count: Option<u64>,
    /// `r:` relative time.
    pub relative_time: Option<u64>,
    /// `t:` free text.
    pub text: Option<&'a str>,
}

/// A parsed VDM/VDO sentence, borrowing from its line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sentence<'a> {
    /// The tag block fields, when the line had any.
    pub tag_block: Option<TagBlock<'a>>,
    /// The two-letter talker (`AI` mobile station, `AB` base station, `BS`, `SA`, ...).
    pub talker: &'a str,
    /// `true` for VDO (the receiver's own ship), `false` for VDM (heard from others).
    pub own_ship: bool,
    /// Fragments in this sentence's group (1-9).
    pub fragment_count: u8,
    /// This fragment's number, from 1.
    pub fragment_number: u8,
    /// Sequential message id tying the fragments of one group together (empty for single ones).
    pub sequence_id: Option<u8>,
    /// Radio channel (`A`, `B`, or `1`/`2` from some receivers), if given.
    pub channel: Option<char>,
    /// The armored payload, validated against the 6-bit alphabet.
    pub payload: &'a str,
    /// Bits of padding at the end of the payload (0-5).
    pub fill_bits: u8,
    /// The line from its first tag block (or `!`) through the checksum, without receiver extras.
    pub text: &'a str,
}

/// XOR of the bytes: the NMEA checksum of the text between the start character and `*`.
pub fn checksum(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0, |acc, b| acc ^ b)
}

/// Parses one line into a VDM/VDO sentence.
///
/// Leading junk before the first `\`, `!` or `$` (timestamps some loggers prepend) and trailing
/// fields after the checksum (receiver extras) are ignored; everything between is checked.
pub fn parse_line(line: &str) -> Result<Sentence<'_>, AisError> {
    if line.len() > MAX_LINE_LEN {
        return Err(AisError::LineTooLong(line.len()));
    }
    let line = line.trim();
    if line.is_empty() {
        return Err(AisError::Empty);
    }
    let start = line
        .bytes()
        .position(|b| matches!(b, b'\\' | b'!' | b'$'))
        .ok_or(AisError::NotASentence)?;
    let from_start = &line[start..];

    let (tag_block, rest) = parse_tag_blocks(from_start)?;
    if !matches!(rest.as_bytes().first(), Some(b'!' | b'$')) {
        return Err(AisError::NotASentence);
    }

    // One pass finds the `*` and computes the checksum of what precedes it.
    let bytes = rest.as_bytes();
    let mut computed = 0u8;
    let mut star = None;
    for (i, &b) in bytes.iter().enumerate().skip(1) {
        if b == b'*' {
            star = Some(i);
            break;
        }
        computed ^= b;
    }
    let star = star.ok_or(AisError::MissingChecksum)?;
    let stated = parse_checksum(&rest[star + 1..])?;
    if computed != stated {
        return Err(AisError::BadChecksum {
            part: "sentence",
            computed,
            stated,
        });
    }
    // `star + 3` is in bounds: `parse_checksum` read two ASCII hex digits after the star.
    let text_len = (from_start.len() - rest.len()) + star + 3;
    let text = from_start.get(..text_len).unwrap_or(from_start);

    let body = &rest[1..star];
    let formatter = body.get(..5).unwrap_or(body);
    let is_vdm = matches!(formatter.as_bytes(), [t1, t2, b'V', b'D', b'M' | b'O']
        if t1.is_ascii_uppercase() && t2.is_ascii_uppercase());
    if !is_vdm || rest.starts_with('$') || body.as_bytes().get(5) != Some(&b',') {
        let start = if rest.starts_with('$') { '$' } else { '!' };
        let formatter = body.split(',').next().unwrap_or_default();
        return Err(AisError::UnsupportedSentence(
            std::iter::once(start)
                .chain(formatter.chars().take(16))
                .collect(),
        ));
    }
    // The formatter is five ASCII bytes here, so these are character boundaries.
    let (talker, kind) = formatter.split_at(2);
    let [_, count, number, seq, channel, payload, fill] = split_fields(body)?;

    let fragment_count = parse_digit(count, "fragment count")?;
    let fragment_number = parse_digit(number, "fragment number")?;
    if !(1..=MAX_FRAGMENTS).contains(&fragment_count) {
        return Err(AisError::BadFragmentSequence(format!(
            "fragment count {fragment_count} is not in 1-{MAX_FRAGMENTS}"
        )));
    }
    if fragment_number == 0 || fragment_number > fragment_count {
        return Err(AisError::BadFragmentSequence(format!(
            "fragment number {fragment_number} of {fragment_count}"
        )));
    }
    let sequence_id = if seq.is_empty() {
        None
    } else {
        Some(parse_digit(seq, "sequence id")?)
    };
    let channel = match channel.as_bytes() {
        [] => None,
        [c] if c.is_ascii_alphanumeric() => Some(char::from(*c)),
        _ => return Err(AisError::bad_field("channel", channel)),
    };
    if payload.is_empty() {
        return Err(AisError::EmptyPayload);
    }
    if let Some(&bad) = payload.as_bytes().iter().find(|&&c| sextet(c).is_none()) {
        return Err(AisError::BadPayloadChar(char::from(bad)));
    }
    let fill_bits = match fill.as_bytes() {
        [d @ b'0'..=b'5'] => d - b'0',
        _ => {
            return Err(AisError::BadFillBits(format!(
                "{:?} is not a digit 0-5",
                fill.chars().take(8).collect::<String>()
            )))
        }
    };

    Ok(Sentence {
        tag_block,
        talker,
        own_ship: kind.as_bytes() == b"VDO",
        fragment_count,
        fragment_number,
        sequence_id,
        channel,
        payload,
        fill_bits,
        text,
    })
}

/// Splits the seven comma-separated fields of a VDM/VDO body (a byte scan: `str::split` with
/// its general pattern machinery was a fifth of the decoding time).
fn split_fields(body: &str) -> Result<[&str; 7], AisError> {
    let mut fields = [""; 7];
    let mut count = 0;
    let mut from = 0;
    for (i, &b) in body.as_bytes().iter().enumerate() {
        if b == b',' {
            if let Some(slot) = fields.get_mut(count) {
                *slot = body.get(from..i).unwrap_or_default();
            }
            count += 1;
            from = i + 1;
        }
    }
    if let Some(slot) = fields.get_mut(count) {
        *slot = body.get(from..).unwrap_or_default();
    }
    count += 1;
    if count != fields.len() {
        return Err(AisError::BadFieldCount(count));
    }
    Ok(fields)
}

/// Reads the two hex digits after `*`; what follows must be the end or a receiver extra field.
fn parse_checksum(after_star: &str) -> Result<u8, AisError> {
    let bytes = after_star.as_bytes();
    let (Some(&hi), Some(&lo)) = (bytes.first(), bytes.get(1)) else {
        return Err(AisError::MissingChecksum);
    };
    let (Some(hi), Some(lo)) = (hex(hi), hex(lo)) else {
        return Err(AisError::bad_field("checksum", after_star));
    };
    match bytes.get(2) {
        None | Some(b',') => Ok(hi << 4 | lo),
        Some(_) => Err(AisError::bad_field("checksum", after_star)),
    }
}

fn hex(c: u8) -> Option<u8> {
    char::from(c).to_digit(16).map(|d| d as u8)
}

fn parse_digit(s: &str, field: &'static str) -> Result<u8, AisError> {
    match s.as_bytes() {
        [d @ b'0'..=b'9'] => Ok(d - b'0'),
        _ => Err(AisError::bad_field(field, s)),
    }
}

/// Parses the tag blocks at the start of `s` (zero or more `\...\`), returning their merged
/// fields and the rest of the line.
fn parse_tag_blocks(mut s: &str) -> Result<(Option<TagBlock<'_>>, &str), AisError> {
    let mut tags: Option<TagBlock<'_>> = None;
    while let Some(inner) = s.strip_prefix('\\') {
        let end = inner
            .find('\\')
            .ok_or(AisError::BadTagBlock("no closing backslash"))?;
        parse_tag_block(&inner[..end], tags.get_or_insert_with(TagBlock::default))?;
        s = &inner[end + 1..];
    }
    Ok((tags, s))
}

fn parse_tag_block<'a>(block: &'a str, tags: &mut TagBlock<'a>) -> Result<(), AisError> {
    // The checksum is mandatory in the standard, but some loggers write tag blocks without one.
    // A tag block carries only metadata and the sentence keeps its own checksum, so a missing
    // one is accepted; a present one must match.
    let content = match block.rfind('*') {
        Some(star) => {
            let content = &block[..star];
            let stated = parse_checksum(&block[star + 1..])
                .map_err(|_| AisError::BadTagBlock("checksum is not two hex digits"))?;
            if star + 3 != block.len() {
                return Err(AisError::BadTagBlock("text after the checksum"));
            }
            let computed = checksum(content.as_bytes());
            if computed != stated {
                return Err(AisError::BadChecksum {
                    part: "tag block",
                    computed,
                    stated,
                });
            }
            content
        }
        None => block,
    };
    if content.is_empty() {
        return Err(AisError::BadTagBlock("empty"));
    }
    for field in content.split(',') {
        let (key, value) = field
            .split_once(':')
            .ok_or(AisError::BadTagBlock("field without ':'"))?;
        match key {
            "c" => tags.time_ms = Some(parse_unix_time(value)?),
            "s" => tags.source = Some(value),
            "d" => tags.destination = Some(value),
            "t" => tags.text = Some(value),
            "n" => tags.line_count = Some(parse_u64(value, "bad line count (n:)")?),
            "r" => tags.relative_time = Some(parse_u64(value, "bad relative time (r:)")?),
            "g" => tags.group = Some(parse_group(value)?),
            // Vendor fields (ORBCOMM's q: and T:, ...): not ours to judge.
            _ => {}
        }
    }
    Ok(())
}

fn parse_u64(value: &str, what: &'static str) -> Result<u64, AisError> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(AisError::BadTagBlock(what));
    }
    value.parse().map_err(|_| AisError::BadTagBlock(what))
}

/// `c:` is UNIX seconds in the standard; some aggregators write milliseconds. Any value of
/// 10^12 or more cannot be seconds of a real receiver (that is the year 33658) and is read as
/// milliseconds.
fn parse_unix_time(value: &str) -> Result<i64, AisError> {
    const WHAT: &str = "bad UNIX time (c:)";
    let raw = parse_u64(value, WHAT)?;
    let raw = i64::try_from(raw).map_err(|_| AisError::BadTagBlock(WHAT))?;
    if raw >= 1_000_000_000_000 {
        Ok(raw)
    } else {
        Ok(raw * 1000)
    }
}

fn parse_group(value: &str) -> Result<TagGroup, AisError> {
    const WHAT: &str = "bad group (g:), expected n-total-id";
    let mut parts = value.splitn(3, '-');
    let mut part = || -> Result<u32, AisError> {
        let p = parts.next().ok_or(AisError::BadTagBlock(WHAT))?;
        u32::try_from(parse_u64(p, WHAT)?).map_err(|_| AisError::BadTagBlock(WHAT))
    };
    Ok(TagGroup {
        sentence: part()?,
        total: part()?,
        id: part()?,
    })
}

/// A piece of a byte stream: a line, or the length of a line too long to be NMEA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    Line(String),
    TooLong(usize),
}

/// Splits a byte stream (a TCP feed, a datagram, a file) into lines at `\n`, `\r` or both,
/// never holding more than [`MAX_LINE_LEN`] bytes: a longer line is dropped whole as it streams
/// past and reported once as [`Piece::TooLong`]. Blank lines yield nothing.
#[derive(Debug, Default)]
pub struct LineSplitter {
    pending: Vec<u8>,
    /// Bytes of the current line when it is already too long (its start was dropped).
    overlong: Option<usize>,
}

impl LineSplitter {
    /// The lines `bytes` completes; an unfinished one is kept for the next call.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<Piece> {
        let mut out = Vec::new();
        for &b in bytes {
            if b == b'\n' || b == b'\r' {
                self.end_line(&mut out);
            } else if let Some(n) = &mut self.overlong {
                *n = n.saturating_add(1);
            } else if self.pending.len() < MAX_LINE_LEN {
                self.pending.push(b);
            } else {
                self.overlong = Some(self.pending.len() + 1);
                self.pending.clear();
            }
        }
        out
    }

    /// The last line when the stream (or a datagram, which holds whole lines) ends without a
    /// newline.
    pub fn finish(&mut self) -> Vec<Piece> {
        let mut out = Vec::new();
        self.end_line(&mut out);
        out
    }

    /// Bytes held for the unfinished line (at most [`MAX_LINE_LEN`]).
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    fn end_line(&mut self, out: &mut Vec<Piece>) {
        if let Some(n) = self.overlong.take() {
            out.push(Piece::TooLong(n));
        } else if !self.pending.is_empty() {
            out.push(Piece::Line(
                String::from_utf8_lossy(&self.pending).into_owned(),
            ));
            self.pending.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_plain_sentence() {
        let s = parse_line("!AIVDM,1,1,,B,15M67FC000G?ufbE`FepT@3n00Sa,0*5C\r\n").unwrap();
        assert_eq!(s.talker, "AI");
        assert!(!s.own_ship);
        assert_eq!((s.fragment_count, s.fragment_number), (1, 1));
        assert_eq!(s.sequence_id, None);
        assert_eq!(s.channel, Some('B'));
        assert_eq!(s.payload, "15M67FC000G?ufbE`FepT@3n00Sa");
        assert_eq!(s.fill_bits, 0);
        assert_eq!(s.text, "!AIVDM,1,1,,B,15M67FC000G?ufbE`FepT@3n00Sa,0*5C");
        assert!(s.tag_block.is_none());
    }

    #[test]
    fn parses_tag_block_and_receiver_extras() {
        let line = "\\g:1-2-1604,s:rORBCOMM008,c:1418169601,T:2014-12-10 00.00.01*37\\!AIVDM,2,1,6,A,53@o0E000001Q0CG37U8u<Tp4q@D00000000000018330400000000000000,0*63";
        let s = parse_line(line).unwrap();
        let tags = s.tag_block.unwrap();
        assert_eq!(tags.source, Some("rORBCOMM008"));
        assert_eq!(tags.time_ms, Some(1_418_169_601_000));
        assert_eq!(
            tags.group,
            Some(TagGroup {
                sentence: 1,
                total: 2,
                id: 1604
            })
        );
        assert_eq!(s.sequence_id, Some(6));
        assert_eq!((s.fragment_count, s.fragment_number), (2, 1));

        let uscg = "!AIVDM,1,1,,A,15B4FT5000JRP>PE6E68Nbkl0PS5,0*70,b003669794,1272412827";
        let s = parse_line(uscg).unwrap();
        assert_eq!(s.text, "!AIVDM,1,1,,A,15B4FT5000JRP>PE6E68Nbkl0PS5,0*70");
    }

    #[test]
    fn refuses_bad_checksums() {
        let err = parse_line("!AIVDM,1,1,,B,15M67FC000G?ufbE`FepT@3n00Sa,0*5D").unwrap_err();
        assert_eq!(
            err,
            AisError::BadChecksum {
                part: "sentence",
                computed: 0x5C,
                stated: 0x5D
            }
        );
        let err = parse_line("\\s:x,c:1*00\\!AIVDM,1,1,,B,15M67FC000G?ufbE`FepT@3n00Sa,0*5C")
            .unwrap_err();
        assert_eq!(err.kind(), "bad_checksum");
        assert_eq!(
            parse_line("!AIVDM,1,1,,B,15M67FC000G?ufbE`FepT@3n00Sa,0").unwrap_err(),
            AisError::MissingChecksum
        );
    }

    #[test]
    fn refuses_other_sentences_and_garbage() {
        let gga = "$GPGGA,092750.000,5321.6802,N,00630.3372,W,1,8,1.03,61.7,M,55.2,M,,*76";
        assert_eq!(parse_line(gga).unwrap_err().kind(), "unsupported_sentence");
        assert_eq!(parse_line("   ").unwrap_err(), AisError::Empty);
        assert_eq!(parse_line("hello").unwrap_err(), AisError::NotASentence);
        assert_eq!(
            parse_line("!AIVDM,1,1,,B,,0*25").unwrap_err(),
            AisError::EmptyPayload
        );
    }

    #[test]
    fn accepts_vdo_leading_junk_and_lenient_tag_blocks() {
        let vdo = "!AIVDO,1,1,,A,8003hd0=vUvHmVS3o55ifP@WJ8PAQftNSIi;88cRll<wi@7:C4iG,0*6E";
        let s = parse_line(vdo).unwrap();
        assert!(s.own_ship);

        let logged = "2024-05-01T10:00:00Z !AIVDM,1,1,,B,15M67FC000G?ufbE`FepT@3n00Sa,0*5C";
        assert_eq!(parse_line(logged).unwrap().text, &logged[21..]);

        // No tag-block checksum, milliseconds in c:, two consecutive tag blocks.
        let line = "\\c:1418169601123\\\\s:rX*63\\!AIVDM,1,1,,B,15M67FC000G?ufbE`FepT@3n00Sa,0*5C";
        let tags = parse_line(line).unwrap().tag_block.unwrap();
        assert_eq!(tags.time_ms, Some(1_418_169_601_123));
        assert_eq!(tags.source, Some("rX"));
    }

    #[test]
    fn refuses_malformed_tag_blocks() {
        let sentence = "!AIVDM,1,1,,B,15M67FC000G?ufbE`FepT@3n00Sa,0*5C";
        for (tag, why) in [
            ("\\c:12a\\", "bad UNIX time (c:)"),
            ("\\g:1-2\\", "bad group (g:), expected n-total-id"),
            ("\\cx\\", "field without ':'"),
            ("\\\\", "empty"),
            ("\\s:x*4", "no closing backslash"),
        ] {
            assert_eq!(
                parse_line(&format!("{tag}{sentence}")).unwrap_err(),
                AisError::BadTagBlock(why),
                "{tag}"
            );
        }
    }

    #[test]
    fn lines_are_split_on_any_newline_and_overlong_ones_dropped_without_buffering() {
        let mut s = LineSplitter::default();
        let mut pieces = s.push(b"a\r\nb\n\nc");
        pieces.extend(s.push(&vec![b'x'; 3 * MAX_LINE_LEN]));
        assert!(s.pending_len() <= MAX_LINE_LEN);
        pieces.extend(s.push(b"\nd"));
        pieces.extend(s.finish());
        assert_eq!(
            pieces,
            vec![
                Piece::Line("a".into()),
                Piece::Line("b".into()),
                Piece::TooLong(3 * MAX_LINE_LEN + 1),
                Piece::Line("d".into()),
            ]
        );
        assert!(s.finish().is_empty());
    }
}
