use super::*;
use time::macros::date;

const ARRIVAL: Date = date!(2025 - 05 - 01);

fn line<'a>(a: &'a Assessment, name: &str) -> &'a AssessmentLine {
    a.lines
        .iter()
        .find(|l| l.name == name)
        .expect("line present")
}

#[test]
fn children_under_six_get_allowances_only_for_their_own_items() {
    let goods = vec![
        GoodsItem::new(GoodsCategory::General, "toy robot", 1, 30_000).for_child(),
        GoodsItem::new(GoodsCategory::General, "handbag", 1, 30_000),
        GoodsItem::new(GoodsCategory::General, "scarf", 1, 5_000),
    ];
    let a = assess(&goods, 4, ARRIVAL).expect("assess");
    assert_eq!(line(&a, "toy robot").duty_free_quantity, 1);
    // Not the child's own: taxed, even the ¥5,000 scarf the ¥10,000 rule would free for an adult.
    assert_eq!(line(&a, "handbag").taxed_quantity, 1);
    assert_eq!(line(&a, "scarf").taxed_quantity, 1);
    assert_eq!(a.total_duty_yen, (30_000 + 5_000) * 15 / 100);
    assert!(line(&a, "handbag").rules[0].contains("under 6"));

    let adult = assess(&goods, 30, ARRIVAL).expect("assess");
    assert_eq!(adult.total_duty_yen, 0);
}

#[test]
fn no_alcohol_or_tobacco_allowance_under_twenty() {
    let goods = vec![
        GoodsItem::new(GoodsCategory::WineBeerOther, "wine", 1, 3_000).with_volume_ml(750),
        GoodsItem::new(GoodsCategory::Cigarettes, "cigarettes", 20, 30),
    ];
    let a = assess(&goods, 19, ARRIVAL).expect("assess");
    assert_eq!(line(&a, "wine").taxed_quantity, 1);
    assert_eq!(line(&a, "wine").duty_yen, Some(150)); // ¥200/l × 0.75 l
    assert_eq!(line(&a, "cigarettes").duty_yen, Some(300)); // 20 × ¥15
    assert!(a.over_allowance());
    assert_eq!(
        assess(&goods, 20, ARRIVAL).expect("assess").total_duty_yen,
        0
    );
}

#[test]
fn alcohol_allowance_frees_the_costliest_bottles() {
    let goods = vec![
        GoodsItem::new(GoodsCategory::WineBeerOther, "wine", 2, 2_000).with_volume_ml(750),
        GoodsItem::new(GoodsCategory::WhiskyBrandy, "whisky", 2, 8_000).with_volume_ml(700),
    ];
    let a = assess(&goods, 40, ARRIVAL).expect("assess");
    // Whisky pays ¥800/l, wine ¥200/l: both whiskies and one wine go free, one wine is taxed.
    assert_eq!(line(&a, "whisky").duty_free_quantity, 2);
    assert_eq!(line(&a, "wine").taxed_quantity, 1);
    assert_eq!(a.total_duty_yen, 150);
}

#[test]
fn single_kind_tobacco_uses_the_kind_allowance() {
    let goods = vec![GoodsItem::new(
        GoodsCategory::HeatedTobacco,
        "heatsticks",
        12,
        600,
    )];
    let a = assess(&goods, 30, ARRIVAL).expect("assess");
    assert_eq!(a.lines[0].duty_free_quantity, 10);
    assert_eq!(a.total_duty_yen, 2 * 20 * 15);

    let cigars = vec![GoodsItem::new(GoodsCategory::Cigars, "cigars", 60, 1_000)];
    let a = assess(&cigars, 30, ARRIVAL).expect("assess");
    assert_eq!(a.lines[0].duty_free_quantity, 50);
    assert_eq!(a.lines[0].duty_yen, None, "no simplified rate for cigars");
    assert!(a.needs_officer);
}

#[test]
fn mixed_tobacco_shares_250_grams_by_weight() {
    // 200 cigarettes alone would be duty-free; with a cigar, the 250 g rule applies.
    let goods = vec![
        GoodsItem::new(GoodsCategory::Cigarettes, "cigarettes", 200, 30).with_weight_g(1),
        GoodsItem::new(GoodsCategory::Cigars, "cigars", 10, 2_000).with_weight_g(10),
    ];
    let a = assess(&goods, 30, ARRIVAL).expect("assess");
    // 250 g: the unrated cigars (100 g) go free first, then 150 cigarettes.
    assert_eq!(line(&a, "cigars").duty_free_quantity, 10);
    assert_eq!(line(&a, "cigarettes").duty_free_quantity, 150);
    assert_eq!(a.total_duty_yen, 50 * 15);
    assert!(!a.needs_officer);
    assert!(line(&a, "cigarettes")
        .rules
        .iter()
        .any(|r| r.contains("more than one kind")));

    let only_cigarettes = vec![GoodsItem::new(
        GoodsCategory::Cigarettes,
        "cigarettes",
        200,
        30,
    )];
    assert_eq!(
        assess(&only_cigarettes, 30, ARRIVAL)
            .expect("assess")
            .total_duty_yen,
        0
    );
}

#[test]
fn mixed_tobacco_without_weights_goes_to_an_officer() {
    let goods = vec![
        GoodsItem::new(GoodsCategory::Cigarettes, "cigarettes", 20, 30),
        GoodsItem::new(GoodsCategory::Cigars, "cigars", 1, 2_000).with_weight_g(10),
    ];
    let a = assess(&goods, 30, ARRIVAL).expect("assess");
    assert!(a.needs_officer);
    assert_eq!(line(&a, "cigarettes").taxed_quantity, 20);
}

#[test]
fn ten_thousand_yen_rule_frees_small_kinds_without_counting_them() {
    let goods = vec![
        GoodsItem::new(GoodsCategory::General, "necktie", 3, 3_000), // ¥9,000: free, not counted
        GoodsItem::new(GoodsCategory::General, "Handbag", 1, 150_000),
        GoodsItem::new(GoodsCategory::General, "handbag ", 1, 50_000), // same kind as above
    ];
    let a = assess(&goods, 30, ARRIVAL).expect("assess");
    assert_eq!(line(&a, "necktie").duty_free_quantity, 3);
    assert!(line(&a, "necktie").rules[0].contains("per-kind rule"));
    // The handbags total exactly ¥200,000: both fit the allowance because the ties don't count.
    assert_eq!(a.total_duty_yen, 0);

    let over = vec![
        GoodsItem::new(GoodsCategory::General, "necktie", 4, 3_000), // ¥12,000: counted
        GoodsItem::new(GoodsCategory::General, "handbag", 1, 195_000),
    ];
    let a = assess(&over, 30, ARRIVAL).expect("assess");
    // Best: the bag free (saves ¥29,250) and one tie (¥3,000) more; three ties taxed at 15%.
    assert_eq!(line(&a, "handbag").duty_free_quantity, 1);
    assert_eq!(line(&a, "necktie").duty_free_quantity, 1);
    assert_eq!(a.total_duty_yen, 3 * 3_000 * 15 / 100);
}

#[test]
fn a_single_item_over_two_hundred_thousand_is_taxed_whole() {
    let goods = vec![
        GoodsItem::new(GoodsCategory::General, "handbag", 1, 250_000),
        GoodsItem::new(GoodsCategory::General, "camera", 1, 120_000),
    ];
    let a = assess(&goods, 30, ARRIVAL).expect("assess");
    assert_eq!(line(&a, "handbag").taxed_value_yen, 250_000);
    assert_eq!(line(&a, "handbag").duty_yen, Some(37_500));
    assert!(line(&a, "handbag").rules[0].contains("whole value"));
    assert_eq!(line(&a, "camera").duty_free_quantity, 1);
    assert_eq!(a.total_duty_yen, 37_500);
}

#[test]
fn the_allowance_goes_to_the_higher_rate_first() {
    // A ¥150,000 watch (consumption tax only, 10%) and a ¥150,000 coat (15%): free the coat.
    let goods = vec![
        GoodsItem::new(GoodsCategory::TariffFree, "watch", 1, 150_000),
        GoodsItem::new(GoodsCategory::General, "coat", 1, 150_000),
    ];
    let a = assess(&goods, 30, ARRIVAL).expect("assess");
    assert_eq!(line(&a, "coat").duty_free_quantity, 1);
    assert_eq!(a.total_duty_yen, 15_000);
    assert!(a.exact);
}

#[test]
fn perfume_allowance_is_two_ounces() {
    let goods =
        vec![GoodsItem::new(GoodsCategory::Perfume, "perfume", 3, 10_000).with_volume_ml(30)];
    let a = assess(&goods, 30, ARRIVAL).expect("assess");
    assert_eq!(
        a.lines[0].duty_free_quantity, 1,
        "two 30 ml bottles exceed 56 ml"
    );
    assert_eq!(a.total_duty_yen, 2 * 1_500);
}

#[test]
fn invalid_lines_are_refused_with_the_reason() {
    let goods = vec![GoodsItem::new(
        GoodsCategory::WhiskyBrandy,
        "whisky",
        1,
        5_000,
    )];
    let err = assess(&goods, 30, ARRIVAL).expect_err("volume missing");
    assert!(matches!(err, AllowanceError::InvalidItem { index: 0, .. }));
    assert!(matches!(
        assess(&[], 30, date!(2020 - 01 - 01)),
        Err(AllowanceError::NoRulesFor { .. })
    ));
}
