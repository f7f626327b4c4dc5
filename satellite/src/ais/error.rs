//! Why a line was refused.
//!
//! Every way radio garbage, a broken logger or a truncated file can go wrong has its own variant,
//! so callers can count rejections by kind ([`AisError::kind`]) and an operator reading a log line
//! knows which part of the sentence was wrong. A refused line changes no decoder state.

use thiserror::Error;

/// Why a line, a sentence group or a payload could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum AisError {
    /// The line is empty or only whitespace.
    #[error("empty line")]
    Empty,
    /// The line is longer than any AIS sentence with its tag block can be.
    #[error("line of {0} bytes is longer than the {max} allowed", max = crate::ais::nmea::MAX_LINE_LEN)]
    LineTooLong(usize),
    /// Neither a tag block nor an NMEA sentence start (`!` or `$`) was found.
    #[error("no NMEA sentence in the line")]
    NotASentence,
    /// A sentence that is not `!xxVDM` or `!xxVDO` (e.g. `$GPRMC`, `!AIALR`), with its start.
    #[error("not an AIS VDM/VDO sentence: {0:?}")]
    UnsupportedSentence(String),
    /// The tag block (`\s:...,c:...*hh\`) is malformed.
    #[error("malformed tag block: {0}")]
    BadTagBlock(&'static str),
    /// The sentence has no `*hh` checksum.
    #[error("missing checksum")]
    MissingChecksum,
    /// The checksum of the sentence (or of its tag block) does not match its content.
    #[error("{part} checksum mismatch: computed {computed:02X}, stated {stated:02X}")]
    BadChecksum {
        /// `"sentence"` or `"tag block"`.
        part: &'static str,
        /// XOR of the covered characters.
        computed: u8,
        /// The value after `*`.
        stated: u8,
    },
    /// The sentence does not have the seven comma-separated fields of VDM/VDO.
    #[error("expected 7 fields in a VDM/VDO sentence, found {0}")]
    BadFieldCount(usize),
    /// A field of the sentence or of the message has a value outside its domain.
    #[error("bad {field}: {value:?}")]
    BadField {
        /// Which field.
        field: &'static str,
        /// The offending value, as text.
        value: String,
    },
    /// The payload is empty (some receivers emit `!AIVDM,1,1,,B,,0*25` for a failed slot).
    #[error("empty payload")]
    EmptyPayload,
    /// A payload character outside the AIS 6-bit armoring alphabet.
    #[error("invalid payload character {0:?}")]
    BadPayloadChar(char),
    /// Fill bits outside 0-5, or non-zero on a fragment that is not the last one.
    #[error("bad fill bits: {0}")]
    BadFillBits(String),
    /// A fragment that does not continue a pending group (orphan, gap, or out of order).
    #[error("bad fragment sequence: {0}")]
    BadFragmentSequence(String),
    /// A message type this decoder does not decode (binary, safety, interrogation, ...).
    #[error("unsupported message type {0}")]
    UnsupportedType(u8),
    /// The payload ends before the last field its message type defines.
    #[error("truncated payload: type {msg_type} needs {needed} bits, got {got}")]
    Truncated {
        /// The AIS message type (0 when even the type is missing).
        msg_type: u8,
        /// Bits required.
        needed: usize,
        /// Bits present.
        got: usize,
    },
}

impl AisError {
    /// A short stable name for the kind of error, for counting and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            AisError::Empty => "empty",
            AisError::LineTooLong(_) => "line_too_long",
            AisError::NotASentence => "not_a_sentence",
            AisError::UnsupportedSentence(_) => "unsupported_sentence",
            AisError::BadTagBlock(_) => "bad_tag_block",
            AisError::MissingChecksum => "missing_checksum",
            AisError::BadChecksum { .. } => "bad_checksum",
            AisError::BadFieldCount(_) => "bad_field_count",
            AisError::BadField { .. } => "bad_field",
            AisError::EmptyPayload => "empty_payload",
            AisError::BadPayloadChar(_) => "bad_payload_char",
            AisError::BadFillBits(_) => "bad_fill_bits",
            AisError::BadFragmentSequence(_) => "bad_fragment_sequence",
            AisError::UnsupportedType(_) => "unsupported_type",
            AisError::Truncated { .. } => "truncated",
        }
    }

    /// Builds a [`AisError::BadField`], quoting at most 40 characters of the value so that a
    /// garbage line cannot make an error message arbitrarily long.
    pub(crate) fn bad_field(field: &'static str, value: &str) -> Self {
        AisError::BadField {
            field,
            value: value.chars().take(40).collect(),
        }
    }
}
