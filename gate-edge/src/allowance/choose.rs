//! Choosing the duty-free units in the passenger's favour.
//!
//! Each allowance (alcohol bottles, tobacco, perfume millilitres, the ¥200,000 of other goods)
//! is a 0/1 knapsack: units have a size (bottles, sticks, grams, ml, yen) and a profit (the duty
//! the passenger saves if the unit is duty-free), and the allowance is the capacity. The
//! allowances are independent, so minimising each pool's duty minimises the total.
//!
//! Identical units of one goods line are grouped by binary splitting (1, 2, 4, … units), which
//! keeps the problem 0/1 with O(log n) groups per line. Small capacities (bottles, grams, ml)
//! are solved exactly by dynamic programming; the ¥200,000 pool by branch and bound with the
//! fractional bound, exact unless the search exceeds its node budget, in which case the best
//! choice found so far (never worse than greedy by duty rate) is used and reported as inexact.

use std::ops::Add;

/// What exempting a group saves: first the overseas value of goods whose duty has no
/// simplified rate (an officer assesses those, so sparing them matters most), then the
/// computable duty in thousandths of a yen. Compared lexicographically.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Profit {
    pub unrated_value_yen: u64,
    pub duty_milliyen: u64,
}

impl Add for Profit {
    type Output = Profit;
    fn add(self, o: Profit) -> Profit {
        Profit {
            unrated_value_yen: self.unrated_value_yen.saturating_add(o.unrated_value_yen),
            duty_milliyen: self.duty_milliyen.saturating_add(o.duty_milliyen),
        }
    }
}

/// Several identical units of one line, taken or left together.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Group {
    pub line: usize,
    pub units: u32,
    pub size: u64,
    pub profit: Profit,
}

/// Split `units` identical units into groups of 1, 2, 4, …, rest; units that could never fit
/// (more than `capacity / unit_size`) are left out, as they can never be duty-free.
pub(crate) fn split(
    line: usize,
    units: u32,
    unit_size: u64,
    unit_profit: Profit,
    capacity: u64,
    out: &mut Vec<Group>,
) {
    // Zero-size units (worthless goods) always fit.
    let fitting = match capacity.checked_div(unit_size) {
        Some(max) => units.min(u32::try_from(max).unwrap_or(u32::MAX)),
        None => units,
    };
    let mut left = fitting;
    let mut chunk = 1u32;
    while left > 0 {
        let take = chunk.min(left);
        out.push(Group {
            line,
            units: take,
            size: unit_size.saturating_mul(u64::from(take)),
            profit: Profit {
                unrated_value_yen: unit_profit
                    .unrated_value_yen
                    .saturating_mul(u64::from(take)),
                duty_milliyen: unit_profit.duty_milliyen.saturating_mul(u64::from(take)),
            },
        });
        left -= take;
        chunk = chunk.saturating_mul(2);
    }
}

/// Exact 0/1 knapsack by dynamic programming over the capacity; for small capacities only.
pub(crate) fn dp(groups: &[Group], capacity: u64) -> Vec<bool> {
    let cap = usize::try_from(capacity).unwrap_or(usize::MAX).min(1 << 20);
    let mut best = vec![Profit::default(); cap + 1];
    let mut took = vec![false; groups.len() * (cap + 1)];
    for (i, g) in groups.iter().enumerate() {
        let Ok(size) = usize::try_from(g.size) else {
            continue;
        };
        if size > cap {
            continue;
        }
        for c in (size..=cap).rev() {
            let with = best[c - size] + g.profit;
            if with > best[c] {
                best[c] = with;
                took[i * (cap + 1) + c] = true;
            }
        }
    }
    let mut chosen = vec![false; groups.len()];
    let mut c = cap;
    for i in (0..groups.len()).rev() {
        if took[i * (cap + 1) + c] {
            chosen[i] = true;
            // `took` is only set when the group fits, so this cannot underflow.
            c -= groups[i].size as usize;
        }
    }
    chosen
}

/// How many branch-and-bound nodes to visit before settling for the best choice found.
pub(crate) const NODE_BUDGET: u64 = 200_000;
/// Beyond this many groups the search is not attempted (greedy only, reported inexact).
pub(crate) const MAX_SEARCH_GROUPS: usize = 256;

/// 0/1 knapsack by branch and bound (profits here are duty only). Returns the choice and
/// whether it is proven optimal.
pub(crate) fn branch_and_bound(groups: &[Group], capacity: u64) -> (Vec<bool>, bool) {
    // Best duty saved per yen of allowance first; among equals, larger groups first.
    let mut order: Vec<usize> = (0..groups.len()).collect();
    order.sort_by(|&a, &b| {
        let (ga, gb) = (&groups[a], &groups[b]);
        let lhs = u128::from(ga.profit.duty_milliyen) * u128::from(gb.size.max(1));
        let rhs = u128::from(gb.profit.duty_milliyen) * u128::from(ga.size.max(1));
        rhs.cmp(&lhs).then(gb.size.cmp(&ga.size)).then(a.cmp(&b))
    });
    let sorted: Vec<Group> = order.iter().map(|&i| groups[i]).collect();

    // Greedy incumbent.
    let mut incumbent = vec![false; sorted.len()];
    let mut room = capacity;
    let mut incumbent_profit = 0u64;
    for (i, g) in sorted.iter().enumerate() {
        if g.size <= room {
            room -= g.size;
            incumbent[i] = true;
            incumbent_profit = incumbent_profit.saturating_add(g.profit.duty_milliyen);
        }
    }

    let mut exact = sorted.len() <= MAX_SEARCH_GROUPS;
    if exact {
        let mut search = Search {
            groups: &sorted,
            best: incumbent.clone(),
            best_profit: incumbent_profit,
            current: vec![false; sorted.len()],
            nodes: 0,
            out_of_budget: false,
        };
        search.explore(0, capacity, 0);
        exact = !search.out_of_budget;
        incumbent = search.best;
    }

    let mut chosen = vec![false; groups.len()];
    for (pos, &original) in order.iter().enumerate() {
        chosen[original] = incumbent[pos];
    }
    (chosen, exact)
}

struct Search<'a> {
    groups: &'a [Group],
    best: Vec<bool>,
    best_profit: u64,
    current: Vec<bool>,
    nodes: u64,
    out_of_budget: bool,
}

impl Search<'_> {
    /// Fractional-knapsack upper bound on what groups `from..` can add within `room`.
    fn bound(&self, from: usize, room: u64) -> u128 {
        let mut room = u128::from(room);
        let mut total = 0u128;
        for g in &self.groups[from..] {
            let size = u128::from(g.size);
            let profit = u128::from(g.profit.duty_milliyen);
            if size <= room {
                room -= size;
                total += profit;
            } else {
                // size > room >= 0, so size is positive here.
                total += profit * room / size;
                break;
            }
        }
        total
    }

    fn explore(&mut self, index: usize, room: u64, profit: u64) {
        self.nodes += 1;
        if self.nodes > NODE_BUDGET {
            self.out_of_budget = true;
            return;
        }
        if profit > self.best_profit {
            self.best_profit = profit;
            self.best.clone_from(&self.current);
        }
        if index == self.groups.len() {
            return;
        }
        if u128::from(profit) + self.bound(index, room) <= u128::from(self.best_profit) {
            return;
        }
        let g = self.groups[index];
        if g.size <= room {
            self.current[index] = true;
            self.explore(
                index + 1,
                room - g.size,
                profit.saturating_add(g.profit.duty_milliyen),
            );
            self.current[index] = false;
            if self.out_of_budget {
                return;
            }
        }
        self.explore(index + 1, room, profit);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn duty(d: u64) -> Profit {
        Profit {
            unrated_value_yen: 0,
            duty_milliyen: d,
        }
    }

    #[test]
    fn dp_finds_the_best_combination_not_the_greedy_one() {
        // Capacity 4: greedy by profit takes the 3-slot group (9) and wastes a slot; 2+2 gives 10.
        let groups = [
            Group {
                line: 0,
                units: 1,
                size: 3,
                profit: duty(9),
            },
            Group {
                line: 1,
                units: 1,
                size: 2,
                profit: duty(5),
            },
            Group {
                line: 2,
                units: 1,
                size: 2,
                profit: duty(5),
            },
        ];
        assert_eq!(dp(&groups, 4), vec![false, true, true]);
    }

    #[test]
    fn branch_and_bound_beats_greedy_on_value_packing() {
        // 200k capacity: the 150k item has the best rate but 2×100k fill the allowance.
        let g = |line, size: u64, pct: u64| Group {
            line,
            units: 1,
            size,
            profit: duty(size * pct * 10),
        };
        let groups = [g(0, 150_000, 15), g(1, 100_000, 15), g(2, 100_000, 15)];
        let (chosen, exact) = branch_and_bound(&groups, 200_000);
        assert!(exact);
        assert_eq!(chosen, vec![false, true, true]);
    }

    #[test]
    fn split_never_offers_more_units_than_fit() {
        let mut out = Vec::new();
        split(0, 1_000_000, 1, duty(15_000), 200, &mut out);
        assert_eq!(out.iter().map(|g| g.units).sum::<u32>(), 200);
        assert!(out.len() <= 9);
    }
}
