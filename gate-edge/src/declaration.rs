//! The customs declaration a traveller carries as a QR code, and its CBOR encoding.
//!
//! The CBOR form uses small integer keys to keep the QR code small (the schema is in the crate
//! README). Decoding is strict: every field is checked for type and bounds, unknown keys are
//! refused (a signed payload with fields this gate does not understand is not trusted blindly),
//! and a schema version other than [`SCHEMA_VERSION`] is refused.

use ciborium::value::{Integer, Value};
use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime};

use crate::allowance::{GoodsCategory, GoodsItem};

/// The version of the CBOR schema written by this crate (key 0 of the map).
pub const SCHEMA_VERSION: u64 = 1;
/// Longest text field accepted (characters).
pub const MAX_TEXT_CHARS: usize = 128;
/// Most goods lines accepted on one declaration.
pub const MAX_GOODS_LINES: usize = 100;

/// Family members travelling with the declarant, by the age bands of the customs form.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FamilyMembers {
    pub aged_20_and_over: u32,
    pub aged_6_to_19: u32,
    pub under_6: u32,
}

/// The yes/no questions of the customs form (true = "yes").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answers {
    /// Prohibited or restricted articles (narcotics, firearms, ...).
    pub prohibited_or_restricted: bool,
    /// Goods exceeding the duty-free allowance.
    pub over_allowance: bool,
    /// Commercial goods or samples.
    pub commercial_goods: bool,
    /// Items someone else asked the traveller to bring.
    pub carried_for_others: bool,
    /// Cash, cheques or securities over ¥1,000,000 (or equivalent).
    pub cash_over_limit: bool,
    /// Unaccompanied baggage (shipped separately).
    pub unaccompanied_baggage: bool,
}

impl Answers {
    fn to_array(self) -> [bool; 6] {
        [
            self.prohibited_or_restricted,
            self.over_allowance,
            self.commercial_goods,
            self.carried_for_others,
            self.cash_over_limit,
            self.unaccompanied_baggage,
        ]
    }
}

/// A traveller's customs declaration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Declaration {
    /// Unique, single-use declaration ID (the replay key).
    pub id: String,
    pub passport_number: String,
    pub surname: String,
    pub given_names: String,
    pub date_of_birth: Date,
    /// ICAO 9303 three-letter code ("JPN", "UTO").
    pub nationality: String,
    pub flight: String,
    pub arrival_date: Date,
    pub family: FamilyMembers,
    pub answers: Answers,
    pub goods: Vec<GoodsItem>,
    #[serde(with = "time::serde::rfc3339")]
    pub issued_at: OffsetDateTime,
}

/// Why a CBOR value is not a valid declaration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct DeclarationError {
    /// Where: "declaration", "goods[3].volume_ml", ...
    pub field: String,
    pub problem: String,
}

fn err(field: impl Into<String>, problem: impl Into<String>) -> DeclarationError {
    DeclarationError {
        field: field.into(),
        problem: problem.into(),
    }
}

// Declaration map keys.
const K_VERSION: u64 = 0;
const K_ID: u64 = 1;
const K_PASSPORT: u64 = 2;
const K_SURNAME: u64 = 3;
const K_GIVEN: u64 = 4;
const K_BIRTH: u64 = 5;
const K_NATIONALITY: u64 = 6;
const K_FLIGHT: u64 = 7;
const K_ARRIVAL: u64 = 8;
const K_FAMILY: u64 = 9;
const K_ANSWERS: u64 = 10;
const K_GOODS: u64 = 11;
const K_ISSUED: u64 = 12;
// Goods item map keys.
const G_CATEGORY: u64 = 0;
const G_NAME: u64 = 1;
const G_QUANTITY: u64 = 2;
const G_VALUE: u64 = 3;
const G_VOLUME: u64 = 4;
const G_WEIGHT: u64 = 5;
const G_CHILD: u64 = 6;

const DATE_FORMAT: &[time::format_description::FormatItem<'static>] =
    time::macros::format_description!("[year]-[month]-[day]");

fn key(k: u64) -> Value {
    Value::Integer(k.into())
}

fn text(s: &str) -> Value {
    Value::Text(s.to_string())
}

fn date_text(d: Date) -> Value {
    // Formatting a valid Date with a fixed numeric format cannot fail; fall back to an empty
    // string (which decoding refuses) rather than panic.
    Value::Text(d.format(DATE_FORMAT).unwrap_or_default())
}

impl Declaration {
    /// The declaration as a CBOR value with integer keys.
    pub fn to_cbor_value(&self) -> Value {
        let family = Value::Array(vec![
            Value::Integer(self.family.aged_20_and_over.into()),
            Value::Integer(self.family.aged_6_to_19.into()),
            Value::Integer(self.family.under_6.into()),
        ]);
        let answers = Value::Array(self.answers.to_array().map(Value::Bool).to_vec());
        let goods = Value::Array(self.goods.iter().map(goods_to_value).collect());
        Value::Map(vec![
            (key(K_VERSION), Value::Integer(SCHEMA_VERSION.into())),
            (key(K_ID), text(&self.id)),
            (key(K_PASSPORT), text(&self.passport_number)),
            (key(K_SURNAME), text(&self.surname)),
            (key(K_GIVEN), text(&self.given_names)),
            (key(K_BIRTH), date_text(self.date_of_birth)),
            (key(K_NATIONALITY), text(&self.nationality)),
            (key(K_FLIGHT), text(&self.flight)),
            (key(K_ARRIVAL), date_text(self.arrival_date)),
            (key(K_FAMILY), family),
            (key(K_ANSWERS), answers),
            (key(K_GOODS), goods),
            (
                key(K_ISSUED),
                Value::Integer(self.issued_at.unix_timestamp().into()),
            ),
        ])
    }

    /// The declaration as CBOR bytes (the COSE payload).
    pub fn to_cbor(&self) -> Vec<u8> {
        crate::cbor::encode(&self.to_cbor_value())
    }

    /// Decode CBOR bytes strictly (depth, duplicate keys, then every field).
    pub fn from_cbor(bytes: &[u8]) -> Result<Self, DeclarationError> {
        let value = crate::cbor::decode_strict(bytes).map_err(|e| err("cbor", e.to_string()))?;
        Self::from_cbor_value(&value)
    }

    /// Read a declaration from a CBOR value (already checked for duplicate keys and depth).
    pub fn from_cbor_value(value: &Value) -> Result<Self, DeclarationError> {
        let mut map = Fields::new(value, "declaration")?;
        let version = map.uint(K_VERSION, "version")?;
        if version != SCHEMA_VERSION {
            return Err(err(
                "version",
                format!("schema version {version}, this gate reads {SCHEMA_VERSION}"),
            ));
        }
        let id = map.text(K_ID, "id")?;
        if id.is_empty() {
            return Err(err("id", "empty"));
        }
        let family = map.take(K_FAMILY, "family")?;
        let family = match family.as_array().map(Vec::as_slice) {
            Some([a, b, c]) => FamilyMembers {
                aged_20_and_over: small_uint(a, "family[0]")?,
                aged_6_to_19: small_uint(b, "family[1]")?,
                under_6: small_uint(c, "family[2]")?,
            },
            _ => return Err(err("family", "array of three counts expected")),
        };
        let answers = map.take(K_ANSWERS, "answers")?;
        let answers = match answers.as_array().map(Vec::as_slice) {
            Some([a, b, c, d, e, f]) => Answers {
                prohibited_or_restricted: boolean(a, "answers[0]")?,
                over_allowance: boolean(b, "answers[1]")?,
                commercial_goods: boolean(c, "answers[2]")?,
                carried_for_others: boolean(d, "answers[3]")?,
                cash_over_limit: boolean(e, "answers[4]")?,
                unaccompanied_baggage: boolean(f, "answers[5]")?,
            },
            _ => return Err(err("answers", "array of six booleans expected")),
        };
        let goods_value = map.take(K_GOODS, "goods")?;
        let goods_items = goods_value
            .as_array()
            .ok_or_else(|| err("goods", "array expected"))?;
        if goods_items.len() > MAX_GOODS_LINES {
            return Err(err("goods", format!("more than {MAX_GOODS_LINES} lines")));
        }
        let goods = goods_items
            .iter()
            .enumerate()
            .map(|(i, v)| goods_from_value(v, i))
            .collect::<Result<Vec<_>, _>>()?;
        let issued = map.int(K_ISSUED, "issued_at")?;
        let issued_at = OffsetDateTime::from_unix_timestamp(issued)
            .map_err(|e| err("issued_at", e.to_string()))?;
        let declaration = Declaration {
            id,
            passport_number: map.text(K_PASSPORT, "passport_number")?,
            surname: map.text(K_SURNAME, "surname")?,
            given_names: map.text(K_GIVEN, "given_names")?,
            date_of_birth: map.date(K_BIRTH, "date_of_birth")?,
            nationality: map.text(K_NATIONALITY, "nationality")?,
            flight: map.text(K_FLIGHT, "flight")?,
            arrival_date: map.date(K_ARRIVAL, "arrival_date")?,
            family,
            answers,
            goods,
            issued_at,
        };
        map.finish()?;
        Ok(declaration)
    }
}

fn goods_to_value(g: &GoodsItem) -> Value {
    let mut entries = vec![
        (key(G_CATEGORY), Value::Integer(g.category.code().into())),
        (key(G_NAME), text(&g.name)),
        (key(G_QUANTITY), Value::Integer(g.quantity.into())),
        (key(G_VALUE), Value::Integer(g.unit_value_yen.into())),
    ];
    if let Some(ml) = g.volume_ml {
        entries.push((key(G_VOLUME), Value::Integer(ml.into())));
    }
    if let Some(w) = g.weight_g {
        entries.push((key(G_WEIGHT), Value::Integer(w.into())));
    }
    if g.for_child {
        entries.push((key(G_CHILD), Value::Bool(true)));
    }
    Value::Map(entries)
}

fn goods_from_value(v: &Value, index: usize) -> Result<GoodsItem, DeclarationError> {
    let ctx = format!("goods[{index}]");
    let mut map = Fields::new(v, &ctx)?;
    let code = map.uint(G_CATEGORY, "category")?;
    let category = GoodsCategory::from_code(code).ok_or_else(|| {
        err(
            format!("{ctx}.category"),
            format!("unknown category {code}"),
        )
    })?;
    let item = GoodsItem {
        category,
        name: map.text(G_NAME, "name")?,
        quantity: map.small(G_QUANTITY, "quantity")?,
        unit_value_yen: map.uint(G_VALUE, "unit_value_yen")?,
        volume_ml: map.optional_small(G_VOLUME, "volume_ml")?,
        weight_g: map.optional_small(G_WEIGHT, "weight_g")?,
        for_child: match map.optional(G_CHILD) {
            Some(v) => boolean(v, &format!("{ctx}.for_child"))?,
            None => false,
        },
    };
    map.finish()?;
    Ok(item)
}

fn small_uint(v: &Value, field: &str) -> Result<u32, DeclarationError> {
    match v {
        Value::Integer(i) => u32::try_from(*i).map_err(|_| err(field, "count out of range")),
        _ => Err(err(field, "unsigned integer expected")),
    }
}

fn boolean(v: &Value, field: &str) -> Result<bool, DeclarationError> {
    v.as_bool().ok_or_else(|| err(field, "boolean expected"))
}

/// An integer-keyed CBOR map being read: each key taken once, leftovers refused.
struct Fields<'a> {
    context: String,
    entries: Vec<(u64, &'a Value)>,
}

impl<'a> Fields<'a> {
    fn new(value: &'a Value, context: &str) -> Result<Self, DeclarationError> {
        let pairs = value.as_map().ok_or_else(|| err(context, "map expected"))?;
        let mut entries = Vec::with_capacity(pairs.len());
        for (k, v) in pairs {
            let k = match k {
                Value::Integer(i) => u64::try_from(*i).ok(),
                _ => None,
            }
            .ok_or_else(|| err(context, "keys must be unsigned integers"))?;
            entries.push((k, v));
        }
        Ok(Fields {
            context: context.to_string(),
            entries,
        })
    }

    fn name(&self, field: &str) -> String {
        if self.context == "declaration" {
            field.to_string()
        } else {
            format!("{}.{field}", self.context)
        }
    }

    fn optional(&mut self, k: u64) -> Option<&'a Value> {
        let pos = self.entries.iter().position(|(key, _)| *key == k)?;
        Some(self.entries.swap_remove(pos).1)
    }

    fn take(&mut self, k: u64, field: &str) -> Result<&'a Value, DeclarationError> {
        self.optional(k)
            .ok_or_else(|| err(self.name(field), "missing"))
    }

    fn text(&mut self, k: u64, field: &str) -> Result<String, DeclarationError> {
        let v = self.take(k, field)?;
        let s = v
            .as_text()
            .ok_or_else(|| err(self.name(field), "text expected"))?;
        if s.chars().count() > MAX_TEXT_CHARS {
            return Err(err(
                self.name(field),
                format!("longer than {MAX_TEXT_CHARS} characters"),
            ));
        }
        Ok(s.to_string())
    }

    fn date(&mut self, k: u64, field: &str) -> Result<Date, DeclarationError> {
        let s = self.text(k, field)?;
        Date::parse(&s, DATE_FORMAT)
            .map_err(|_| err(self.name(field), format!("{s:?} is not a YYYY-MM-DD date")))
    }

    fn integer(&mut self, k: u64, field: &str) -> Result<Integer, DeclarationError> {
        match self.take(k, field)? {
            Value::Integer(i) => Ok(*i),
            _ => Err(err(self.name(field), "integer expected")),
        }
    }

    fn uint(&mut self, k: u64, field: &str) -> Result<u64, DeclarationError> {
        let i = self.integer(k, field)?;
        u64::try_from(i).map_err(|_| err(self.name(field), "unsigned integer expected"))
    }

    fn int(&mut self, k: u64, field: &str) -> Result<i64, DeclarationError> {
        let i = self.integer(k, field)?;
        i64::try_from(i).map_err(|_| err(self.name(field), "integer out of range"))
    }

    fn small(&mut self, k: u64, field: &str) -> Result<u32, DeclarationError> {
        let v = self.uint(k, field)?;
        u32::try_from(v).map_err(|_| err(self.name(field), "out of range"))
    }

    fn optional_small(&mut self, k: u64, field: &str) -> Result<Option<u32>, DeclarationError> {
        match self.optional(k) {
            None => Ok(None),
            Some(v) => small_uint(v, &self.name(field)).map(Some),
        }
    }

    fn finish(self) -> Result<(), DeclarationError> {
        match self.entries.first() {
            None => Ok(()),
            Some((k, _)) => Err(err(self.context.clone(), format!("unknown key {k}"))),
        }
    }
}

/// A specimen declaration (the ICAO specimen traveller, Anna Maria Eriksson of Utopia, with a
/// bottle of wine and a toy): for examples, tests and the demo.
pub fn example() -> Declaration {
    Declaration {
        id: "D-2025-000001".into(),
        passport_number: "L898902C3".into(),
        surname: "Eriksson".into(),
        given_names: "Anna Maria".into(),
        date_of_birth: time::macros::date!(1974 - 08 - 12),
        nationality: "UTO".into(),
        flight: "NH204".into(),
        arrival_date: time::macros::date!(2025 - 05 - 01),
        family: FamilyMembers {
            aged_20_and_over: 1,
            aged_6_to_19: 0,
            under_6: 1,
        },
        answers: Answers::default(),
        goods: vec![
            GoodsItem::new(GoodsCategory::WineBeerOther, "wine", 2, 3_000).with_volume_ml(750),
            GoodsItem::new(GoodsCategory::General, "toy", 1, 4_000).for_child(),
        ],
        issued_at: time::macros::datetime!(2025-04-30 12:00 UTC),
    }
}

/// The machine-readable zone (TD3) of [`example`]'s passport, valid until 15 April 2035, with
/// every check digit computed: what a gate reads from the specimen traveller.
pub fn example_mrz() -> [String; 2] {
    let digit = |f: &str| format!("{f}{}", crate::mrz::check_digit(f).unwrap_or(0));
    let (doc, dob, exp, opt) = (
        digit("L898902C3"),
        digit("740812"),
        digit("350415"),
        digit("ZE184226B<<<<<"),
    );
    let composite = crate::mrz::check_digit(&format!("{doc}{dob}{exp}{opt}")).unwrap_or(0);
    [
        format!("{:<<44}", "P<UTOERIKSSON<<ANNA<MARIA"),
        format!("{doc}UTO{dob}F{exp}{opt}{composite}"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_mrz_is_valid_and_matches_the_example() {
        let [l1, l2] = example_mrz();
        let report = crate::mrz::parse(&[&l1, &l2]).unwrap();
        assert!(report.valid, "{report:?}");
        assert_eq!(report.document_number, example().passport_number);
        // The literal the drills send (drills drive the binary and cannot call this).
        assert_eq!(l2, "L898902C36UTO7408122F3504152ZE184226B<<<<<16");
    }

    #[test]
    fn cbor_round_trip() {
        let d = example();
        let bytes = d.to_cbor();
        assert_eq!(Declaration::from_cbor(&bytes).expect("decode"), d);
        // Integer keys keep it compact: well under what a QR code holds.
        assert!(bytes.len() < 200, "{} bytes", bytes.len());
    }

    #[test]
    fn unknown_keys_and_versions_are_refused() {
        let mut v = example().to_cbor_value();
        if let Value::Map(m) = &mut v {
            m.push((key(99), Value::Bool(true)));
        }
        let e = Declaration::from_cbor_value(&v).expect_err("unknown key");
        assert!(e.problem.contains("unknown key 99"));

        let mut v = example().to_cbor_value();
        if let Value::Map(m) = &mut v {
            m[0].1 = Value::Integer(2.into());
        }
        assert_eq!(
            Declaration::from_cbor_value(&v).expect_err("version").field,
            "version"
        );
    }

    #[test]
    fn wrong_types_name_the_field() {
        let mut v = example().to_cbor_value();
        if let Value::Map(m) = &mut v {
            m[5].1 = text("12 August 1974");
        }
        assert_eq!(
            Declaration::from_cbor_value(&v).expect_err("date").field,
            "date_of_birth"
        );
    }
}
