//! Japan's duty-free allowances and the simplified duty on what exceeds them.
//!
//! [`assess`] answers "what do I owe?" for a list of goods: it applies the rules in force on the
//! given date ([`RuleBook`], from `data/allowances-jp.toml`), chooses the duty-free units in the
//! traveller's favour (the choice that leaves the least duty, as Customs does: "Customs selects
//! the duty-free items in the travelers' favor"), and computes the duty per goods line with the
//! rule behind it.
//!
//! ```
//! use mizugiwa_gate_edge::allowance::{assess, GoodsCategory, GoodsItem};
//! let goods = vec![GoodsItem::new(GoodsCategory::Cigarettes, "cigarettes", 400, 30)];
//! let a = assess(&goods, 35, time::macros::date!(2025 - 05 - 01)).unwrap();
//! assert_eq!(a.lines[0].duty_free_quantity, 200);
//! assert_eq!(a.total_duty_yen, 200 * 15); // ¥15 per cigarette beyond the 200 allowed
//! ```

mod choose;
mod rules;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::Date;

pub use rules::{
    AlcoholAllowance, OtherGoodsAllowance, PerfumeAllowance, Rates, RuleBook, RuleSet,
    TobaccoAllowance,
};

use choose::{Group, Profit};

/// Largest quantity and unit value accepted on one line (beyond this the input is nonsense and
/// the arithmetic would risk overflow).
pub const MAX_QUANTITY: u32 = 1_000_000;
pub const MAX_UNIT_VALUE_YEN: u64 = 1_000_000_000_000;

/// What kind of goods a line is, as far as allowances and rates are concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GoodsCategory {
    /// Whisky, brandy (quantity: bottles; `volume_ml` per bottle required).
    WhiskyBrandy,
    /// Rum, gin, vodka.
    RumGinVodka,
    Liqueur,
    /// Other distilled spirits (shochu, ...).
    DistilledSpirits,
    /// Wine, beer and other alcoholic beverages.
    WineBeerOther,
    /// Cigarettes (quantity: sticks; `weight_g` per stick needed only with other tobacco kinds).
    Cigarettes,
    /// Cigars (quantity: cigars).
    Cigars,
    /// Heat-not-burn tobacco (quantity: individual packages of 20 sticks).
    HeatedTobacco,
    /// Other tobacco: pipe, cut, ... (quantity: packs; `weight_g` per pack required).
    OtherTobacco,
    /// Perfume (not eau de toilette or cologne; `volume_ml` per bottle required).
    Perfume,
    /// Any other goods, at the general simplified rate.
    General,
    /// Other goods free of customs duty (wristwatches, golf clubs, ...): consumption tax only.
    TariffFree,
}

impl GoodsCategory {
    pub const ALL: [GoodsCategory; 12] = [
        GoodsCategory::WhiskyBrandy,
        GoodsCategory::RumGinVodka,
        GoodsCategory::Liqueur,
        GoodsCategory::DistilledSpirits,
        GoodsCategory::WineBeerOther,
        GoodsCategory::Cigarettes,
        GoodsCategory::Cigars,
        GoodsCategory::HeatedTobacco,
        GoodsCategory::OtherTobacco,
        GoodsCategory::Perfume,
        GoodsCategory::General,
        GoodsCategory::TariffFree,
    ];

    /// The integer code used in the declaration CBOR (see the crate README).
    pub fn code(self) -> u8 {
        match self {
            GoodsCategory::WhiskyBrandy => 1,
            GoodsCategory::RumGinVodka => 2,
            GoodsCategory::Liqueur => 3,
            GoodsCategory::DistilledSpirits => 4,
            GoodsCategory::WineBeerOther => 5,
            GoodsCategory::Cigarettes => 10,
            GoodsCategory::Cigars => 11,
            GoodsCategory::HeatedTobacco => 12,
            GoodsCategory::OtherTobacco => 13,
            GoodsCategory::Perfume => 20,
            GoodsCategory::General => 30,
            GoodsCategory::TariffFree => 31,
        }
    }

    pub fn from_code(code: u64) -> Option<Self> {
        Self::ALL.into_iter().find(|c| u64::from(c.code()) == code)
    }

    pub fn is_alcohol(self) -> bool {
        matches!(
            self,
            GoodsCategory::WhiskyBrandy
                | GoodsCategory::RumGinVodka
                | GoodsCategory::Liqueur
                | GoodsCategory::DistilledSpirits
                | GoodsCategory::WineBeerOther
        )
    }

    pub fn is_tobacco(self) -> bool {
        matches!(
            self,
            GoodsCategory::Cigarettes
                | GoodsCategory::Cigars
                | GoodsCategory::HeatedTobacco
                | GoodsCategory::OtherTobacco
        )
    }

    fn is_other_goods(self) -> bool {
        matches!(self, GoodsCategory::General | GoodsCategory::TariffFree)
    }
}

/// One line of goods on a declaration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GoodsItem {
    pub category: GoodsCategory,
    /// What it is ("necktie", "handbag"); lines with the same name (case-insensitive) are one
    /// kind (品目) for the ¥10,000 rule.
    pub name: String,
    /// Units: bottles, sticks, cigars, packages, items.
    pub quantity: u32,
    /// Overseas market value of one unit, in yen.
    pub unit_value_yen: u64,
    /// Volume of one unit in ml (alcohol and perfume).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_ml: Option<u32>,
    /// Net weight of one unit in grams (other tobacco; any tobacco when kinds are mixed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight_g: Option<u32>,
    /// Clearly for a young child's own use (toys, ...): the only goods with an allowance for a
    /// traveller under 6.
    #[serde(default)]
    pub for_child: bool,
}

impl GoodsItem {
    /// A line without volume, weight or child flag.
    pub fn new(category: GoodsCategory, name: &str, quantity: u32, unit_value_yen: u64) -> Self {
        GoodsItem {
            category,
            name: name.to_string(),
            quantity,
            unit_value_yen,
            volume_ml: None,
            weight_g: None,
            for_child: false,
        }
    }

    pub fn with_volume_ml(mut self, ml: u32) -> Self {
        self.volume_ml = Some(ml);
        self
    }

    pub fn with_weight_g(mut self, g: u32) -> Self {
        self.weight_g = Some(g);
        self
    }

    pub fn for_child(mut self) -> Self {
        self.for_child = true;
        self
    }
}

/// Why goods could not be assessed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AllowanceError {
    #[error("no allowance rules in force on {date}")]
    NoRulesFor { date: Date },
    #[error("goods line {index} ({name}): {problem}")]
    InvalidItem {
        index: usize,
        name: String,
        problem: String,
    },
    #[error("allowance rule book is invalid: {0}")]
    BadRuleBook(String),
}

/// The assessment of one goods line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssessmentLine {
    /// Index of the line in the goods list.
    pub item: usize,
    pub name: String,
    pub category: GoodsCategory,
    pub quantity: u32,
    pub duty_free_quantity: u32,
    pub taxed_quantity: u32,
    /// Overseas value of the taxed units.
    pub taxed_value_yen: u64,
    /// Duty and taxes on the taxed units, rounded down to the yen; `None` when no simplified
    /// rate exists for the goods (an officer assesses them under the general tariff).
    pub duty_yen: Option<u64>,
    /// The rate applied to the taxed units, human-readable.
    pub rate: String,
    /// The rules behind this line, human-readable, in the order they were applied.
    pub rules: Vec<String>,
}

/// The result of [`assess`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assessment {
    pub rules_valid_from: Date,
    pub rules_source: String,
    pub traveller_age: u32,
    pub lines: Vec<AssessmentLine>,
    /// The sum of the lines' computable duty, in yen.
    pub total_duty_yen: u64,
    /// Some taxed goods have no simplified rate, or lacked what their allowance needs: an
    /// officer must assess them.
    pub needs_officer: bool,
    /// The duty-free choice is proven to be the best for the traveller (false only when the
    /// ¥200,000 search ran out of its budget on a very large list).
    pub exact: bool,
}

impl Assessment {
    /// Anything at all beyond the allowances (taxed units, or goods an officer must assess).
    pub fn over_allowance(&self) -> bool {
        self.needs_officer || self.lines.iter().any(|l| l.taxed_quantity > 0)
    }
}

/// Assess `goods` for a traveller of `traveller_age` arriving on `date`, with Japan's shipped
/// rules.
pub fn assess(
    goods: &[GoodsItem],
    traveller_age: u32,
    date: Date,
) -> Result<Assessment, AllowanceError> {
    let rules = RuleBook::japan()?.for_date(date)?;
    assess_with(rules, goods, traveller_age)
}

/// A line being worked on.
struct Work {
    line: AssessmentLine,
    /// Duty per unit in thousandths of a yen, `None` when no simplified rate exists.
    unit_duty: Option<u64>,
    /// Whether the allowance pools may consider this line at all.
    eligible: bool,
}

/// Assess `goods` under an explicit rule set.
pub fn assess_with(
    rules: &RuleSet,
    goods: &[GoodsItem],
    traveller_age: u32,
) -> Result<Assessment, AllowanceError> {
    let mut work = Vec::with_capacity(goods.len());
    for (index, item) in goods.iter().enumerate() {
        validate(index, item)?;
        let (unit_duty, rate) = unit_duty(rules, item);
        let mut rule_notes = Vec::new();
        let mut eligible = true;
        if traveller_age < rules.child_own_use_only_under && !item.for_child {
            eligible = false;
            rule_notes.push(format!(
                "traveller under {}: only goods clearly for the child's own use are duty-free",
                rules.child_own_use_only_under
            ));
        } else if (item.category.is_alcohol() || item.category.is_tobacco())
            && traveller_age < rules.alcohol_tobacco_min_age
        {
            eligible = false;
            rule_notes.push(format!(
                "no alcohol or tobacco allowance under {}",
                rules.alcohol_tobacco_min_age
            ));
        }
        work.push(Work {
            line: AssessmentLine {
                item: index,
                name: item.name.clone(),
                category: item.category,
                quantity: item.quantity,
                duty_free_quantity: 0,
                taxed_quantity: item.quantity,
                taxed_value_yen: 0,
                duty_yen: None,
                rate,
                rules: rule_notes,
            },
            unit_duty,
            eligible,
        });
    }

    let mut needs_officer = false;
    alcohol_pool(rules, goods, &mut work);
    tobacco_pool(rules, goods, &mut work, &mut needs_officer);
    perfume_pool(rules, goods, &mut work);
    let exact = other_goods_pool(rules, goods, &mut work);

    let mut total_milliyen = 0u64;
    let mut lines = Vec::with_capacity(work.len());
    for (w, item) in work.into_iter().zip(goods) {
        let mut line = w.line;
        line.taxed_quantity = line.quantity - line.duty_free_quantity;
        line.taxed_value_yen = item.unit_value_yen * u64::from(line.taxed_quantity);
        match w.unit_duty {
            Some(unit) => {
                let milliyen = unit.saturating_mul(u64::from(line.taxed_quantity));
                total_milliyen = total_milliyen.saturating_add(milliyen);
                line.duty_yen = Some(milliyen / 1000);
            }
            None if line.taxed_quantity == 0 => line.duty_yen = Some(0),
            None => {
                needs_officer = true;
                line.duty_yen = None;
                line.rules
                    .push("no simplified rate: general tariff, assessed by an officer".into());
            }
        }
        if line.taxed_quantity == 0 && line.rules.is_empty() {
            line.rules.push("within the allowance".into());
        }
        lines.push(line);
    }
    Ok(Assessment {
        rules_valid_from: rules.valid_from,
        rules_source: rules.source.clone(),
        traveller_age,
        total_duty_yen: total_milliyen / 1000,
        lines,
        needs_officer,
        exact,
    })
}

fn validate(index: usize, item: &GoodsItem) -> Result<(), AllowanceError> {
    let bad = |problem: &str| {
        Err(AllowanceError::InvalidItem {
            index,
            name: item.name.clone(),
            problem: problem.to_string(),
        })
    };
    if item.quantity > MAX_QUANTITY {
        return bad("quantity too large");
    }
    if item.unit_value_yen > MAX_UNIT_VALUE_YEN {
        return bad("unit value too large");
    }
    let needs_volume = item.category.is_alcohol() || item.category == GoodsCategory::Perfume;
    if needs_volume && !matches!(item.volume_ml, Some(1..=100_000)) {
        return bad("volume_ml per unit (1 to 100000) is required for alcohol and perfume");
    }
    if item.category == GoodsCategory::OtherTobacco && !matches!(item.weight_g, Some(1..=100_000)) {
        return bad("weight_g per unit (1 to 100000) is required for other tobacco");
    }
    if matches!(item.weight_g, Some(w) if w > 100_000) {
        return bad("weight_g per unit must be at most 100000");
    }
    Ok(())
}

/// Duty per unit in thousandths of a yen, and the rate as text.
fn unit_duty(rules: &RuleSet, item: &GoodsItem) -> (Option<u64>, String) {
    let r = &rules.rates;
    let ml = u64::from(item.volume_ml.unwrap_or(0));
    let per_litre = |yen: u64, what: &str| (Some(yen * ml), format!("¥{yen}/litre ({what})"));
    let percent = |pct: u64, what: &str| {
        (
            Some(item.unit_value_yen * pct * 10),
            format!("{pct}% of overseas value ({what})"),
        )
    };
    match item.category {
        GoodsCategory::WhiskyBrandy => per_litre(r.whisky_brandy_yen_per_litre, "whisky, brandy"),
        GoodsCategory::RumGinVodka => per_litre(r.rum_gin_vodka_yen_per_litre, "rum, gin, vodka"),
        GoodsCategory::Liqueur => per_litre(r.liqueur_yen_per_litre, "liqueur"),
        GoodsCategory::DistilledSpirits => {
            per_litre(r.distilled_spirits_yen_per_litre, "distilled spirits")
        }
        GoodsCategory::WineBeerOther => {
            per_litre(r.wine_beer_other_yen_per_litre, "wine, beer, other liquor")
        }
        GoodsCategory::Cigarettes => (
            Some(r.cigarettes_yen_per_stick * 1000),
            format!("¥{}/cigarette", r.cigarettes_yen_per_stick),
        ),
        GoodsCategory::HeatedTobacco => (
            Some(r.heated_tobacco_yen_per_stick * r.heated_tobacco_sticks_per_package * 1000),
            format!(
                "¥{}/stick, {} sticks per package (heat-not-burn)",
                r.heated_tobacco_yen_per_stick, r.heated_tobacco_sticks_per_package
            ),
        ),
        GoodsCategory::Cigars | GoodsCategory::OtherTobacco => {
            (None, "no simplified rate (general tariff)".into())
        }
        GoodsCategory::Perfume => percent(r.general_percent, "other articles"),
        GoodsCategory::General => percent(r.general_percent, "other articles"),
        GoodsCategory::TariffFree => percent(r.tariff_free_percent, "consumption tax only"),
    }
}

/// What exempting one unit of a line saves the traveller.
fn unit_profit(w: &Work, item: &GoodsItem) -> Profit {
    match w.unit_duty {
        Some(d) => Profit {
            unrated_value_yen: 0,
            duty_milliyen: d,
        },
        None => Profit {
            unrated_value_yen: item.unit_value_yen,
            duty_milliyen: 0,
        },
    }
}

/// Mark the chosen groups duty-free and note the rule on every line the pool looked at.
fn apply(work: &mut [Work], groups: &[Group], chosen: &[bool], note: &str) {
    for (g, &take) in groups.iter().zip(chosen) {
        if take {
            work[g.line].line.duty_free_quantity += g.units;
        }
    }
    let mut noted: Vec<usize> = groups.iter().map(|g| g.line).collect();
    noted.dedup();
    for line in noted {
        work[line].line.rules.push(note.to_string());
    }
}

fn alcohol_pool(rules: &RuleSet, goods: &[GoodsItem], work: &mut [Work]) {
    let a = &rules.alcohol;
    let mut groups = Vec::new();
    for (i, item) in goods.iter().enumerate() {
        if !(item.category.is_alcohol() && work[i].eligible) {
            continue;
        }
        // A bottle counts as one per started `bottle_ml`.
        let slots = u64::from(item.volume_ml.unwrap_or(0)).div_ceil(u64::from(a.bottle_ml));
        let profit = unit_profit(&work[i], item);
        if slots > u64::from(a.bottles) {
            work[i].line.rules.push(format!(
                "a {} ml container counts as {slots} bottles of {} ml, more than the {}-bottle \
                 allowance",
                item.volume_ml.unwrap_or(0),
                a.bottle_ml,
                a.bottles
            ));
            continue;
        }
        choose::split(
            i,
            item.quantity,
            slots,
            profit,
            u64::from(a.bottles),
            &mut groups,
        );
    }
    let chosen = choose::dp(&groups, u64::from(a.bottles));
    apply(
        work,
        &groups,
        &chosen,
        &format!(
            "alcohol allowance: {} bottles of about {} ml, the costliest to tax chosen duty-free",
            a.bottles, a.bottle_ml
        ),
    );
}

fn tobacco_pool(rules: &RuleSet, goods: &[GoodsItem], work: &mut [Work], needs_officer: &mut bool) {
    let t = &rules.tobacco;
    let eligible: Vec<usize> = (0..goods.len())
        .filter(|&i| goods[i].category.is_tobacco() && work[i].eligible && goods[i].quantity > 0)
        .collect();
    let mut kinds: Vec<GoodsCategory> = eligible.iter().map(|&i| goods[i].category).collect();
    kinds.sort();
    kinds.dedup();
    let mixed = kinds.len() > 1;

    let (capacity, note) = match kinds.as_slice() {
        [] => return,
        [GoodsCategory::Cigarettes] => (
            u64::from(t.cigarettes),
            format!(
                "tobacco allowance, cigarettes only: {} cigarettes",
                t.cigarettes
            ),
        ),
        [GoodsCategory::Cigars] => (
            u64::from(t.cigars),
            format!("tobacco allowance, cigars only: {} cigars", t.cigars),
        ),
        [GoodsCategory::HeatedTobacco] => (
            u64::from(t.heated_tobacco_packages),
            format!(
                "tobacco allowance, heat-not-burn only: {} individual packages",
                t.heated_tobacco_packages
            ),
        ),
        [_] => (
            u64::from(t.other_grams),
            format!("tobacco allowance, other tobacco only: {} g", t.other_grams),
        ),
        _ => (
            u64::from(t.mixed_kinds_grams),
            format!(
                "tobacco allowance, more than one kind: {} g in total by weight",
                t.mixed_kinds_grams
            ),
        ),
    };

    let mut groups = Vec::new();
    for &i in &eligible {
        let item = &goods[i];
        let by_weight = mixed || item.category == GoodsCategory::OtherTobacco;
        let size = if by_weight {
            match item.weight_g {
                Some(w) => u64::from(w),
                None => {
                    // Without a weight the mixed-kind allowance cannot be applied to this line;
                    // taxing it is not in the traveller's favour, so an officer must look.
                    *needs_officer = true;
                    work[i].line.rules.push(format!(
                        "{note}; no weight_g declared, so this line could not use it"
                    ));
                    continue;
                }
            }
        } else {
            1
        };
        let profit = unit_profit(&work[i], item);
        choose::split(i, item.quantity, size, profit, capacity, &mut groups);
    }
    let chosen = choose::dp(&groups, capacity);
    apply(work, &groups, &chosen, &note);
}

fn perfume_pool(rules: &RuleSet, goods: &[GoodsItem], work: &mut [Work]) {
    let capacity = u64::from(rules.perfume.ml);
    let mut groups = Vec::new();
    for (i, item) in goods.iter().enumerate() {
        if item.category == GoodsCategory::Perfume && work[i].eligible {
            let size = u64::from(item.volume_ml.unwrap_or(0));
            let profit = unit_profit(&work[i], item);
            choose::split(i, item.quantity, size, profit, capacity, &mut groups);
        }
    }
    let chosen = choose::dp(&groups, capacity);
    apply(
        work,
        &groups,
        &chosen,
        &format!("perfume allowance: 2 ounces ({} ml)", rules.perfume.ml),
    );
}

/// The ¥200,000 allowance; returns whether the choice is proven optimal.
fn other_goods_pool(rules: &RuleSet, goods: &[GoodsItem], work: &mut [Work]) -> bool {
    let o = &rules.other_goods;
    // Total overseas value per kind (same name, case-insensitive) over eligible lines.
    let mut per_kind: BTreeMap<String, u64> = BTreeMap::new();
    for (i, item) in goods.iter().enumerate() {
        if item.category.is_other_goods() && work[i].eligible {
            let total = per_kind.entry(kind_key(&item.name)).or_default();
            *total = total.saturating_add(item.unit_value_yen * u64::from(item.quantity));
        }
    }
    let mut groups = Vec::new();
    for (i, item) in goods.iter().enumerate() {
        if !(item.category.is_other_goods() && work[i].eligible) {
            continue;
        }
        let kind_total = per_kind.get(&kind_key(&item.name)).copied().unwrap_or(0);
        if kind_total <= o.per_kind_exempt_yen {
            work[i].line.duty_free_quantity = item.quantity;
            work[i].line.rules.push(format!(
                "¥{} per-kind rule: this kind totals ¥{kind_total}, duty-free and not counted \
                 toward the ¥{} allowance",
                o.per_kind_exempt_yen, o.total_yen
            ));
            continue;
        }
        if item.unit_value_yen > o.total_yen {
            work[i].line.rules.push(format!(
                "a single item worth more than ¥{} is taxed on its whole value",
                o.total_yen
            ));
            continue;
        }
        let profit = unit_profit(&work[i], item);
        choose::split(
            i,
            item.quantity,
            item.unit_value_yen,
            profit,
            o.total_yen,
            &mut groups,
        );
    }
    let (chosen, exact) = choose::branch_and_bound(&groups, o.total_yen);
    apply(
        work,
        &groups,
        &chosen,
        &format!(
            "¥{} overseas-value allowance, items chosen in the traveller's favour",
            o.total_yen
        ),
    );
    exact
}

fn kind_key(name: &str) -> String {
    name.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

#[cfg(test)]
mod tests;
