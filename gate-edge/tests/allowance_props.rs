//! The duty-free choice is never worse for the passenger than any other valid choice: checked
//! against brute force over every valid choice on small random cases, with the rules written
//! out again here independently from the published text.

use mizugiwa_gate_edge::allowance::{assess_with, GoodsCategory, GoodsItem, RuleBook, RuleSet};
use proptest::prelude::*;
use std::collections::BTreeMap;

/// Japan's rules with the tobacco quantities scaled down so small cases reach the limits.
fn rules() -> RuleSet {
    let mut r = RuleBook::japan()
        .expect("rules")
        .for_date(time::macros::date!(2025 - 05 - 01))
        .expect("in force")
        .clone();
    r.tobacco.cigarettes = 2;
    r.tobacco.heated_tobacco_packages = 1;
    r.tobacco.mixed_kinds_grams = 5;
    r
}

fn item() -> impl Strategy<Value = GoodsItem> {
    let categories = vec![
        GoodsCategory::WineBeerOther,
        GoodsCategory::WhiskyBrandy,
        GoodsCategory::Cigarettes,
        GoodsCategory::HeatedTobacco,
        GoodsCategory::Perfume,
        GoodsCategory::General,
        GoodsCategory::TariffFree,
    ];
    (
        proptest::sample::select(categories),
        proptest::sample::select(vec!["a", "b", "c"]),
        0u32..=3,
        proptest::sample::select(vec![
            3_000u64, 6_000, 40_000, 60_000, 100_000, 150_000, 210_000,
        ]),
        proptest::sample::select(vec![15u32, 30, 50, 700, 750, 1_000, 1_600]),
        proptest::option::of(1u32..=3),
        any::<bool>(),
    )
        .prop_map(
            |(category, name, quantity, value, ml, weight, child)| GoodsItem {
                category,
                name: name.to_string(),
                quantity,
                unit_value_yen: value,
                volume_ml: Some(ml),
                weight_g: weight,
                for_child: child,
            },
        )
}

/// Duty of one unit in thousandths of a yen.
fn unit_duty(r: &RuleSet, g: &GoodsItem) -> u64 {
    let ml = u64::from(g.volume_ml.unwrap_or(0));
    match g.category {
        GoodsCategory::WineBeerOther => r.rates.wine_beer_other_yen_per_litre * ml,
        GoodsCategory::WhiskyBrandy => r.rates.whisky_brandy_yen_per_litre * ml,
        GoodsCategory::Cigarettes => r.rates.cigarettes_yen_per_stick * 1000,
        GoodsCategory::HeatedTobacco => {
            r.rates.heated_tobacco_yen_per_stick * r.rates.heated_tobacco_sticks_per_package * 1000
        }
        GoodsCategory::TariffFree => g.unit_value_yen * r.rates.tariff_free_percent * 10,
        _ => g.unit_value_yen * r.rates.general_percent * 10,
    }
}

/// Is exempting `free[i]` units of each line allowed by the rules?
fn valid(r: &RuleSet, goods: &[GoodsItem], age: u32, free: &[u32]) -> bool {
    let eligible = |g: &GoodsItem| {
        (age >= r.child_own_use_only_under || g.for_child)
            && !((g.category.is_alcohol() || g.category.is_tobacco())
                && age < r.alcohol_tobacco_min_age)
    };
    let mut bottles = 0u64;
    let mut perfume_ml = 0u64;
    let mut other_value = 0u64;
    let tobacco_kinds: std::collections::BTreeSet<_> = goods
        .iter()
        .filter(|g| g.category.is_tobacco() && g.quantity > 0 && eligible(g))
        .map(|g| g.category)
        .collect();
    let mut tobacco_units: BTreeMap<GoodsCategory, u64> = BTreeMap::new();
    let mut tobacco_grams = 0u64;
    let mut kind_totals: BTreeMap<String, u64> = BTreeMap::new();
    for g in goods.iter().filter(|g| {
        (g.category == GoodsCategory::General || g.category == GoodsCategory::TariffFree)
            && eligible(g)
    }) {
        *kind_totals.entry(g.name.to_lowercase()).or_default() +=
            g.unit_value_yen * u64::from(g.quantity);
    }
    for (g, &n) in goods.iter().zip(free) {
        let n64 = u64::from(n);
        if n == 0 {
            continue;
        }
        if n > g.quantity || !eligible(g) {
            return false;
        }
        match g.category {
            c if c.is_alcohol() => {
                bottles += n64 * u64::from(g.volume_ml.unwrap_or(0)).div_ceil(760)
            }
            c if c.is_tobacco() => {
                if tobacco_kinds.len() > 1 {
                    match g.weight_g {
                        Some(w) => tobacco_grams += n64 * u64::from(w),
                        None => return false,
                    }
                } else {
                    *tobacco_units.entry(c).or_default() += n64;
                }
            }
            GoodsCategory::Perfume => perfume_ml += n64 * u64::from(g.volume_ml.unwrap_or(0)),
            _ => {
                let small_kind =
                    kind_totals[&g.name.to_lowercase()] <= r.other_goods.per_kind_exempt_yen;
                if !small_kind {
                    if g.unit_value_yen > r.other_goods.total_yen {
                        return false;
                    }
                    other_value += n64 * g.unit_value_yen;
                }
            }
        }
    }
    let cig = tobacco_units
        .get(&GoodsCategory::Cigarettes)
        .copied()
        .unwrap_or(0);
    let heated = tobacco_units
        .get(&GoodsCategory::HeatedTobacco)
        .copied()
        .unwrap_or(0);
    bottles <= u64::from(r.alcohol.bottles)
        && perfume_ml <= u64::from(r.perfume.ml)
        && other_value <= r.other_goods.total_yen
        && cig <= u64::from(r.tobacco.cigarettes)
        && heated <= u64::from(r.tobacco.heated_tobacco_packages)
        && tobacco_grams <= u64::from(r.tobacco.mixed_kinds_grams)
}

fn duty(r: &RuleSet, goods: &[GoodsItem], free: &[u32]) -> u64 {
    goods
        .iter()
        .zip(free)
        .map(|(g, &n)| unit_duty(r, g) * u64::from(g.quantity - n))
        .sum()
}

/// The least duty over every valid choice.
fn brute_force(r: &RuleSet, goods: &[GoodsItem], age: u32) -> u64 {
    let mut free = vec![0u32; goods.len()];
    let mut best = u64::MAX;
    loop {
        if valid(r, goods, age, &free) {
            best = best.min(duty(r, goods, &free));
        }
        // Next combination (odometer over 0..=quantity per line).
        let mut i = 0;
        loop {
            if i == goods.len() {
                return best;
            }
            if free[i] < goods[i].quantity {
                free[i] += 1;
                break;
            }
            free[i] = 0;
            i += 1;
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn chosen_subset_is_valid_and_never_worse_than_any_other(
        goods in proptest::collection::vec(item(), 0..5),
        age in proptest::sample::select(vec![3u32, 12, 19, 20, 45]),
    ) {
        let r = rules();
        let a = assess_with(&r, &goods, age).expect("assess");
        prop_assert!(a.exact);
        let free: Vec<u32> = a.lines.iter().map(|l| l.duty_free_quantity).collect();
        prop_assert!(valid(&r, &goods, age, &free), "invalid choice {:?} for {:?}", free, goods);
        let chosen = duty(&r, &goods, &free);
        let best = brute_force(&r, &goods, age);
        prop_assert_eq!(chosen, best, "goods {:?} age {}", goods, age);
        prop_assert_eq!(a.total_duty_yen, chosen / 1000);
    }
}
