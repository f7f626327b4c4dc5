//! Scoring detections against ground truth the way the xView3-SAR challenge does: one-to-one
//! matching within 200 m, F1 over all objects, F1 over objects close to shore (within 2 km,
//! where detection is hardest; the near-shore detections and truth matched on their own), and
//! the length estimation score `1 − min(1, mean relative length error)` over matched pairs.

use serde::Serialize;

use crate::matching::{assign, Pair};

/// xView3's match distance.
pub const MATCH_DISTANCE_M: f64 = 200.0;

/// A detection or a truth object as the scorer sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScorePoint {
    pub lon: f64,
    pub lat: f64,
    pub length_m: Option<f64>,
    /// Within the close-to-shore band: xView3 takes truth within 2 km of the shore and
    /// detections within 2 km plus the match distance, and scores the two sets on their own.
    pub near_shore: bool,
}

/// True and false positives and misses, with their F1.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Counts {
    pub true_positives: usize,
    pub false_positives: usize,
    pub missed: usize,
}

impl Counts {
    pub fn precision(&self) -> f64 {
        ratio(
            self.true_positives,
            self.true_positives + self.false_positives,
        )
    }
    pub fn recall(&self) -> f64 {
        ratio(self.true_positives, self.true_positives + self.missed)
    }
    pub fn f1(&self) -> f64 {
        ratio(
            2 * self.true_positives,
            2 * self.true_positives + self.false_positives + self.missed,
        )
    }
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 {
        1.0
    } else {
        a as f64 / b as f64
    }
}

/// The score of one scene.
#[derive(Debug, Clone, Serialize)]
pub struct Score {
    pub all: Counts,
    pub close_to_shore: Counts,
    /// `1 − min(1, mean |estimated − true| / true)` over matched pairs with both lengths.
    pub length_score: f64,
    #[serde(skip)]
    pub pairs: Vec<Pair>,
}

/// Scores `detections` against `truth`.
pub fn score(detections: &[ScorePoint], truth: &[ScorePoint], match_distance_m: f64) -> Score {
    let pos = |p: &ScorePoint| (p.lon, p.lat);
    let pairs = assign(
        &detections.iter().map(pos).collect::<Vec<_>>(),
        &truth.iter().map(pos).collect::<Vec<_>>(),
        match_distance_m,
    );
    let mut det_matched = vec![false; detections.len()];
    let mut truth_matched = vec![false; truth.len()];
    for p in &pairs {
        det_matched[p.a] = true;
        truth_matched[p.b] = true;
    }
    let all = Counts {
        true_positives: pairs.len(),
        false_positives: det_matched.iter().filter(|m| !**m).count(),
        missed: truth_matched.iter().filter(|m| !**m).count(),
    };
    // xView3 matches the near-shore detections with the near-shore truth on their own.
    let near = |points: &[ScorePoint]| {
        points
            .iter()
            .filter(|p| p.near_shore)
            .map(pos)
            .collect::<Vec<_>>()
    };
    let (near_det, near_truth) = (near(detections), near(truth));
    let near_pairs = assign(&near_det, &near_truth, match_distance_m).len();
    let close_to_shore = Counts {
        true_positives: near_pairs,
        false_positives: near_det.len() - near_pairs,
        missed: near_truth.len() - near_pairs,
    };
    let errors: Vec<f64> = pairs
        .iter()
        .filter_map(|p| match (detections[p.a].length_m, truth[p.b].length_m) {
            (Some(e), Some(t)) if t > 0.0 => Some((e - t).abs() / t),
            _ => None,
        })
        .collect();
    let length_score = if errors.is_empty() {
        0.0
    } else {
        1.0 - (errors.iter().sum::<f64>() / errors.len() as f64).min(1.0)
    };
    Score {
        all,
        close_to_shore,
        length_score,
        pairs,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(east: f64, length: f64, near_shore: bool) -> ScorePoint {
        ScorePoint {
            lon: 129.0 + east / 92_000.0,
            lat: 34.0,
            length_m: Some(length),
            near_shore,
        }
    }

    #[test]
    fn counts_f1_and_length_score() {
        let truth = [
            p(0.0, 100.0, false),
            p(5000.0, 200.0, true),
            p(10_000.0, 50.0, true),
        ];
        let det = [
            p(50.0, 110.0, false),
            p(5150.0, 150.0, true),
            p(20_000.0, 80.0, true),
        ];
        let s = score(&det, &truth, MATCH_DISTANCE_M);
        assert_eq!(
            s.all,
            Counts {
                true_positives: 2,
                false_positives: 1,
                missed: 1
            }
        );
        assert!((s.all.f1() - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(
            s.close_to_shore,
            Counts {
                true_positives: 1,
                false_positives: 1,
                missed: 1
            }
        );
        // Errors 10% and 25%: score 1 − 0.175.
        assert!((s.length_score - 0.825).abs() < 1e-12);
        let perfect = score(&truth, &truth, MATCH_DISTANCE_M);
        assert_eq!(perfect.all.f1(), 1.0);
        assert_eq!(perfect.length_score, 1.0);
    }

    #[test]
    fn close_to_shore_is_scored_on_its_own_subsets_like_xview3() {
        // A near-shore ship found by a detection just outside the band, and a near-shore
        // detection on a ship just outside it: xView3 matches the near-shore detections with
        // the near-shore truth alone, so the first ship is missed and the second detection a
        // false positive in that score (both count as found in the overall one).
        let truth = [p(0.0, 100.0, true), p(5000.0, 100.0, false)];
        let det = [p(50.0, 100.0, false), p(5050.0, 100.0, true)];
        let s = score(&det, &truth, MATCH_DISTANCE_M);
        assert_eq!(
            s.all,
            Counts {
                true_positives: 2,
                false_positives: 0,
                missed: 0
            }
        );
        assert_eq!(
            s.close_to_shore,
            Counts {
                true_positives: 0,
                false_positives: 1,
                missed: 1
            }
        );
        // The one-to-one matching is redone within the band: a near-shore detection that the
        // overall matching gave to a nearer ship outside the band finds the near-shore one.
        let truth = [p(0.0, 100.0, true), p(150.0, 100.0, false)];
        let det = [p(100.0, 100.0, true)];
        let s = score(&det, &truth, MATCH_DISTANCE_M);
        assert_eq!(
            s.all,
            Counts {
                true_positives: 1,
                false_positives: 0,
                missed: 1
            }
        );
        assert_eq!(
            s.close_to_shore,
            Counts {
                true_positives: 1,
                false_positives: 0,
                missed: 0
            }
        );
    }
}
