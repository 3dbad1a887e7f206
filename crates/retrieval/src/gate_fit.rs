//! Fitting a gate rule that weighs every signal, by logistic regression.
//!
//! The grid search in [`crate::gate::calibrate`] weighs the cosine 1 and
//! coverage by a step of a fixed grid, with the unknown-word share as a
//! veto. Here all five signals (cosine, coverage, the margin of the best
//! cosine over the second, the unknown share, and what the unknown words
//! add to the best cosine) get a weight from a logistic
//! regression on the labelled questions, and the threshold on the weighted
//! sum is then chosen, like the grid's, to maximise F0.5 on the same
//! questions. The fit is plain batch gradient descent from zero, so the same
//! questions always give the same rule.

use crate::gate::{GateCounts, GateRule, GateSignals};

/// Gradient-descent steps: enough for a few hundred questions to settle.
const STEPS: usize = 800;
const LEARNING_RATE: f64 = 0.5;
/// A little L2 shrinkage keeps weights finite when a set separates cleanly.
const L2: f64 = 0.01;
/// The unknown share is a weighted signal here, not a veto; 1.01 is "none".
const NO_VETO: f32 = 1.01;

/// How many signals a rule weighs.
const SIGNALS: usize = 5;

fn features(signals: &GateSignals) -> [f64; SIGNALS] {
    [
        f64::from(signals.cosine.unwrap_or(0.0)),
        f64::from(signals.coverage),
        f64::from(signals.margin.unwrap_or(0.0)),
        f64::from(signals.unknown_share),
        f64::from(signals.unknown_gain.unwrap_or(0.0)),
    ]
}

/// Fits a [`GateRule`] on labelled examples (signals, in scope).
pub fn calibrate_logistic(examples: &[(GateSignals, bool)]) -> GateRule {
    // A question whose asked-for contact detail no hit holds is refused
    // whatever the weights: it has nothing to teach them.
    let examples: Vec<(GateSignals, bool)> = examples
        .iter()
        .filter(|(s, _)| !s.contact_missing && !s.overrides_instructions)
        .copied()
        .collect();
    let examples = examples.as_slice();
    let rows: Vec<[f64; SIGNALS]> = examples.iter().map(|(s, _)| features(s)).collect();
    let labels: Vec<f64> = examples.iter().map(|&(_, y)| f64::from(u8::from(y))).collect();
    let n = rows.len().max(1) as f64;
    // Standardised features make one learning rate fit all of them; a
    // signal that never varies (no cosine on a BM25-only index) gets no
    // weight.
    let mut mean = [0.0; SIGNALS];
    let mut scale = [0.0; SIGNALS];
    for i in 0..SIGNALS {
        mean[i] = rows.iter().map(|r| r[i]).sum::<f64>() / n;
        let variance = rows.iter().map(|r| (r[i] - mean[i]).powi(2)).sum::<f64>() / n;
        scale[i] = variance.sqrt();
    }
    let standard = |r: &[f64; SIGNALS]| -> [f64; SIGNALS] {
        std::array::from_fn(|i| if scale[i] > 0.0 { (r[i] - mean[i]) / scale[i] } else { 0.0 })
    };
    let z: Vec<[f64; SIGNALS]> = rows.iter().map(standard).collect();
    let (mut w, mut b) = ([0.0f64; SIGNALS], 0.0f64);
    for _ in 0..STEPS {
        let (mut gw, mut gb) = ([0.0f64; SIGNALS], 0.0f64);
        for (x, y) in z.iter().zip(&labels) {
            let s = b + (0..SIGNALS).map(|i| w[i] * x[i]).sum::<f64>();
            let error = 1.0 / (1.0 + (-s.clamp(-30.0, 30.0)).exp()) - y;
            gb += error;
            for i in 0..SIGNALS {
                gw[i] += error * x[i];
            }
        }
        b -= LEARNING_RATE * gb / n;
        for i in 0..SIGNALS {
            w[i] -= LEARNING_RATE * (gw[i] / n + L2 * w[i]);
        }
    }
    // Back to raw signals: sum of w_i (x_i - mean_i) / scale_i + b.
    let raw: [f64; SIGNALS] =
        std::array::from_fn(|i| if scale[i] > 0.0 { w[i] / scale[i] } else { 0.0 });
    let offset = b - (0..SIGNALS).map(|i| raw[i] * mean[i]).sum::<f64>();
    let mut rule = GateRule {
        cosine_weight: raw[0] as f32,
        coverage_weight: raw[1] as f32,
        margin_weight: raw[2] as f32,
        unknown_weight: raw[3] as f32,
        unknown_gain_weight: raw[4] as f32,
        threshold: 0.0,
        max_unknown_share: NO_VETO,
        casual_unknown_gain: None,
    };
    // The threshold that best separates these questions by F0.5, tried at
    // each question's own score; the lowest of equal ones lets most through.
    let mut scores: Vec<f32> = examples.iter().map(|(s, _)| rule.score(s)).collect();
    scores.sort_by(f32::total_cmp);
    scores.dedup();
    let mut best = (-(offset as f32), -1.0f32);
    for threshold in scores {
        let candidate = GateRule { threshold, ..rule };
        let f = GateCounts::of(&candidate, examples).f_beta(0.5);
        if f > best.1 {
            best = (threshold, f);
        }
    }
    rule.threshold = best.0;
    rule
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signals(cosine: f32, margin: f32, unknown_share: f32) -> GateSignals {
        GateSignals {
            cosine: Some(cosine),
            coverage: 0.5,
            margin: Some(margin),
            unknown_share,
            unknown_gain: None,
            contact_missing: false,
            overrides_instructions: false,
            unknown_names: false,
        }
    }

    #[test]
    fn weighs_the_signals_that_separate() {
        // Same cosines in and out of scope: only the margin and the unknown
        // share tell them apart.
        let examples = vec![
            (signals(0.85, 0.06, 0.0), true),
            (signals(0.88, 0.05, 0.1), true),
            (signals(0.86, 0.07, 0.0), true),
            (signals(0.85, 0.01, 0.6), false),
            (signals(0.88, 0.00, 0.5), false),
            (signals(0.86, 0.02, 0.7), false),
        ];
        let rule = calibrate_logistic(&examples);
        let counts = GateCounts::of(&rule, &examples);
        assert_eq!((counts.precision(), counts.recall()), (1.0, 1.0), "{rule:?}");
        assert!(rule.margin_weight > 0.0 && rule.unknown_weight < 0.0, "{rule:?}");
    }

    #[test]
    fn weighs_what_the_unknown_words_do_to_the_match() {
        // The same unknown share in and out of scope: casual words leave
        // the best cosine as it was, an uncovered subject lowers it.
        let with_gain = |cosine: f32, gain: f32| GateSignals {
            unknown_gain: Some(gain),
            ..signals(cosine, 0.02, 0.4)
        };
        let examples = vec![
            (with_gain(0.86, 0.01), true),
            (with_gain(0.87, 0.00), true),
            (with_gain(0.85, 0.02), true),
            (with_gain(0.86, -0.04), false),
            (with_gain(0.87, -0.03), false),
            (with_gain(0.85, -0.05), false),
        ];
        let rule = calibrate_logistic(&examples);
        let counts = GateCounts::of(&rule, &examples);
        assert_eq!((counts.precision(), counts.recall()), (1.0, 1.0), "{rule:?}");
        assert!(rule.unknown_gain_weight > 0.0, "{rule:?}");
    }
}
