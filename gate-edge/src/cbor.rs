//! Strict CBOR decoding for untrusted input.
//!
//! `ciborium` decodes maps into a list of pairs and keeps duplicate keys, and its default
//! nesting limit (256) is far deeper than any declaration. Both matter for signed payloads:
//! a duplicate key lets two parsers of the same signed bytes see two different values. So every
//! CBOR item read from a QR code goes through [`decode_strict`], which bounds the depth while
//! decoding and then rejects duplicate map keys explicitly.

use std::collections::HashSet;

use ciborium::value::Value;
use serde::{Deserialize, Serialize};

/// The deepest nesting accepted in any CBOR item read from a QR code. A COSE_Sign1 is tag →
/// array → header map (3 levels); a declaration is map → goods array → item map (3 levels).
pub const MAX_DEPTH: usize = 8;

/// Why a CBOR item was refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CborError {
    /// The bytes are not well-formed CBOR (truncated, bad header, invalid UTF-8, ...).
    #[error("not well-formed CBOR: {detail}")]
    Syntax { detail: String },
    /// Nesting deeper than [`MAX_DEPTH`].
    #[error("CBOR nested deeper than {max} levels")]
    TooDeep { max: usize },
    /// A map holds the same key twice (compared after decoding, so `1` and a non-minimal `1`
    /// are the same key).
    #[error("CBOR map has duplicate key {key}")]
    DuplicateKey { key: String },
    /// Bytes left over after the item.
    #[error("{count} trailing bytes after the CBOR item")]
    TrailingBytes { count: usize },
}

/// Decode exactly one CBOR item from `bytes`, refusing duplicate map keys, nesting deeper than
/// [`MAX_DEPTH`] and trailing bytes.
pub fn decode_strict(bytes: &[u8]) -> Result<Value, CborError> {
    let mut rest = bytes;
    // ciborium counts a level per array, map and tag; give it a little headroom so that our own
    // walk, which reports the exact limit, is the one that normally fires.
    let value: Value = ciborium::de::from_reader_with_recursion_limit(&mut rest, MAX_DEPTH + 2)
        .map_err(|e| match e {
            ciborium::de::Error::RecursionLimitExceeded => CborError::TooDeep { max: MAX_DEPTH },
            other => CborError::Syntax {
                detail: other.to_string(),
            },
        })?;
    if !rest.is_empty() {
        return Err(CborError::TrailingBytes { count: rest.len() });
    }
    check_value(&value, 1)?;
    Ok(value)
}

/// Walk a decoded value: depth (the item itself is level 1) and duplicate keys.
fn check_value(value: &Value, depth: usize) -> Result<(), CborError> {
    if depth > MAX_DEPTH {
        return Err(CborError::TooDeep { max: MAX_DEPTH });
    }
    match value {
        Value::Array(items) => items.iter().try_for_each(|v| check_value(v, depth + 1)),
        Value::Tag(_, inner) => check_value(inner, depth + 1),
        Value::Map(entries) => {
            // Keys compared by their minimal re-encoding: equal values encode equally.
            let mut seen = HashSet::with_capacity(entries.len());
            for (key, val) in entries {
                check_value(key, depth + 1)?;
                let mut encoded = Vec::new();
                ciborium::ser::into_writer(key, &mut encoded).map_err(|e| CborError::Syntax {
                    detail: e.to_string(),
                })?;
                if !seen.insert(encoded) {
                    return Err(CborError::DuplicateKey {
                        key: describe_key(key),
                    });
                }
                check_value(val, depth + 1)?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

fn describe_key(key: &Value) -> String {
    match key {
        Value::Integer(i) => i128::from(*i).to_string(),
        Value::Text(t) => format!("{t:?}"),
        other => format!("{other:?}"),
    }
}

/// Encode a value (only fails on writer errors, which a `Vec` never raises).
pub(crate) fn encode(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    // Writing into a Vec cannot fail; an error here would be a ciborium bug, and the empty
    // output would then fail signature verification rather than panic.
    let _ = ciborium::ser::into_writer(value, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_keys_are_refused_even_when_encoded_differently() {
        // {1: 1, 1: 2} with the second key in the non-minimal one-byte-follows form.
        let bytes = [0xa2, 0x01, 0x01, 0x18, 0x01, 0x02];
        assert_eq!(
            decode_strict(&bytes),
            Err(CborError::DuplicateKey { key: "1".into() })
        );
    }

    #[test]
    fn nesting_is_bounded() {
        let mut bytes = vec![0x81; MAX_DEPTH]; // MAX_DEPTH nested one-element arrays
        bytes.push(0x00);
        assert!(decode_strict(&bytes).is_err());
        let mut ok = vec![0x81; MAX_DEPTH - 1];
        ok.push(0x00);
        assert!(decode_strict(&ok).is_ok());
        let deep = vec![0x81; 10_000];
        assert_eq!(
            decode_strict(&deep),
            Err(CborError::TooDeep { max: MAX_DEPTH })
        );
    }

    #[test]
    fn trailing_bytes_are_refused() {
        assert_eq!(
            decode_strict(&[0x01, 0x02]),
            Err(CborError::TrailingBytes { count: 1 })
        );
    }

    #[test]
    fn truncated_input_is_a_syntax_error() {
        assert!(matches!(
            decode_strict(&[0x82, 0x01]),
            Err(CborError::Syntax { .. })
        ));
    }
}
