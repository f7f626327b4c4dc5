//! Field values: what a record field holds.

use crate::wire::{Reader, WireError, Writer};

/// A scalar value stored in a field. Nested JSON (objects, arrays) is kept as canonical JSON
/// text so that equal documents always encode to equal bytes.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// No value.
    Null,
    /// A boolean.
    Bool(bool),
    /// A 64-bit signed integer.
    Int(i64),
    /// A double.
    Float(f64),
    /// UTF-8 text.
    Text(String),
    /// Raw bytes (evidence crops, signatures).
    Bytes(Vec<u8>),
    /// A JSON object or array, as compact JSON text.
    Json(String),
}

impl Value {
    pub(crate) fn encode(&self, w: &mut Writer) {
        match self {
            Value::Null => w.u8(0),
            Value::Bool(false) => w.u8(1),
            Value::Bool(true) => w.u8(2),
            Value::Int(i) => {
                w.u8(3);
                w.zigzag(*i)
            }
            Value::Float(f) => {
                w.u8(4);
                w.f64(*f)
            }
            Value::Text(s) => {
                w.u8(5);
                w.str(s)
            }
            Value::Bytes(b) => {
                w.u8(6);
                w.bytes(b)
            }
            Value::Json(s) => {
                w.u8(7);
                w.str(s)
            }
        }
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Value, WireError> {
        Ok(match r.u8()? {
            0 => Value::Null,
            1 => Value::Bool(false),
            2 => Value::Bool(true),
            3 => Value::Int(r.zigzag()?),
            4 => Value::Float(r.f64()?),
            5 => Value::Text(r.str()?.to_owned()),
            6 => Value::Bytes(r.bytes()?.to_vec()),
            7 => Value::Json(r.str()?.to_owned()),
            _ => return Err(r.invalid("value tag")),
        })
    }

    /// Converts from JSON: scalars map to their variants, objects and arrays to [`Value::Json`].
    pub fn from_json(v: &serde_json::Value) -> Value {
        match v {
            serde_json::Value::Null => Value::Null,
            serde_json::Value::Bool(b) => Value::Bool(*b),
            serde_json::Value::Number(n) => match n.as_i64() {
                Some(i) => Value::Int(i),
                None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
            },
            serde_json::Value::String(s) => Value::Text(s.clone()),
            other => Value::Json(other.to_string()),
        }
    }

    /// Converts to JSON; bytes become a hex string.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Value::Null => serde_json::Value::Null,
            Value::Bool(b) => (*b).into(),
            Value::Int(i) => (*i).into(),
            Value::Float(f) => serde_json::Number::from_f64(*f)
                .map(serde_json::Value::Number)
                .unwrap_or(serde_json::Value::Null),
            Value::Text(s) => s.clone().into(),
            Value::Bytes(b) => b
                .iter()
                .map(|x| format!("{x:02x}"))
                .collect::<String>()
                .into(),
            Value::Json(s) => serde_json::from_str(s).unwrap_or(serde_json::Value::Null),
        }
    }

    /// The text, if this is a text value.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Text(s) => Some(s),
            _ => None,
        }
    }

    /// The integer, if this is an integer value.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Text(s.to_owned())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Text(s)
    }
}

impl From<i64> for Value {
    fn from(i: i64) -> Self {
        Value::Int(i)
    }
}

impl From<f64> for Value {
    fn from(f: f64) -> Self {
        Value::Float(f)
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}
