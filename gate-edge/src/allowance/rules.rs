//! The dated allowance and rate tables (`data/allowances-jp.toml`).

use std::sync::OnceLock;

use serde::{Deserialize, Serialize};
use time::Date;

use super::AllowanceError;

/// Every period's rules; [`RuleBook::for_date`] picks the one in force.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleBook {
    pub rules: Vec<RuleSet>,
}

/// The allowances and rates in force from `valid_from` until the next table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSet {
    pub valid_from: Date,
    pub source: String,
    pub alcohol_tobacco_min_age: u32,
    pub child_own_use_only_under: u32,
    pub alcohol: AlcoholAllowance,
    pub tobacco: TobaccoAllowance,
    pub perfume: PerfumeAllowance,
    pub other_goods: OtherGoodsAllowance,
    pub rates: Rates,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlcoholAllowance {
    pub bottles: u32,
    pub bottle_ml: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TobaccoAllowance {
    pub cigarettes: u32,
    pub cigars: u32,
    pub heated_tobacco_packages: u32,
    pub other_grams: u32,
    pub mixed_kinds_grams: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PerfumeAllowance {
    pub ml: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtherGoodsAllowance {
    pub total_yen: u64,
    pub per_kind_exempt_yen: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rates {
    pub whisky_brandy_yen_per_litre: u64,
    pub rum_gin_vodka_yen_per_litre: u64,
    pub liqueur_yen_per_litre: u64,
    pub distilled_spirits_yen_per_litre: u64,
    pub wine_beer_other_yen_per_litre: u64,
    pub cigarettes_yen_per_stick: u64,
    pub heated_tobacco_yen_per_stick: u64,
    pub heated_tobacco_sticks_per_package: u64,
    pub general_percent: u64,
    pub tariff_free_percent: u64,
}

const JAPAN_TOML: &str = include_str!("../../data/allowances-jp.toml");

impl RuleBook {
    /// Parse a rule book from TOML text (the format of `data/allowances-jp.toml`).
    pub fn from_toml(text: &str) -> Result<Self, AllowanceError> {
        let mut book: RuleBook =
            toml::from_str(text).map_err(|e| AllowanceError::BadRuleBook(e.to_string()))?;
        if book.rules.is_empty() {
            return Err(AllowanceError::BadRuleBook("no [[rules]] table".into()));
        }
        for set in &book.rules {
            if set.alcohol.bottle_ml == 0 {
                return Err(AllowanceError::BadRuleBook(format!(
                    "rules valid from {}: bottle_ml must be positive",
                    set.valid_from
                )));
            }
        }
        book.rules.sort_by_key(|r| r.valid_from);
        Ok(book)
    }

    /// Japan's published rules, shipped with the crate (parsed once).
    pub fn japan() -> Result<&'static RuleBook, AllowanceError> {
        static BOOK: OnceLock<Result<RuleBook, AllowanceError>> = OnceLock::new();
        BOOK.get_or_init(|| RuleBook::from_toml(JAPAN_TOML))
            .as_ref()
            .map_err(Clone::clone)
    }

    /// The rules in force on `date`: the latest table whose `valid_from` is not after it.
    pub fn for_date(&self, date: Date) -> Result<&RuleSet, AllowanceError> {
        self.rules
            .iter()
            .rev()
            .find(|r| r.valid_from <= date)
            .ok_or(AllowanceError::NoRulesFor { date })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn shipped_rules_parse_and_are_dated() {
        let book = RuleBook::japan().expect("shipped rules parse");
        let set = book
            .for_date(date!(2025 - 04 - 01))
            .expect("rules in force");
        assert_eq!(set.valid_from, date!(2021 - 10 - 01));
        assert_eq!(set.tobacco.cigarettes, 200);
        assert!(book.for_date(date!(2021 - 09 - 30)).is_err());
    }

    #[test]
    fn later_tables_win_from_their_date() {
        let older = JAPAN_TOML.to_string();
        let newer = older
            .replace("valid_from = \"2021-10-01\"", "valid_from = \"2030-01-01\"")
            .replace("cigarettes = 200", "cigarettes = 100");
        let newer_rules = &newer[newer.find("\n[[rules]]").expect("table")..];
        let book = RuleBook::from_toml(&format!("{older}\n{newer_rules}")).expect("parse");
        assert_eq!(
            book.for_date(date!(2029 - 12 - 31))
                .expect("old")
                .tobacco
                .cigarettes,
            200
        );
        assert_eq!(
            book.for_date(date!(2030 - 01 - 01))
                .expect("new")
                .tobacco
                .cigarettes,
            100
        );
    }
}
