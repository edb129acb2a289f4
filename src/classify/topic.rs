//! The topic head: which MMLU-style *subject* a prompt is about, and so how often a cheap model
//! loses to a frontier one on it.
//!
//! One question's outcome (strong right, weak wrong) is a noisy 0/1, but its subject's mean over
//! the training examples is a clean, stable number, and which subject a question belongs to is
//! exactly what vocabulary *does* generalise (the difficulty logit itself keeps strong L2 on
//! words, see `train`). So a small multinomial logistic regression over the same features
//! predicts the subject (`N_TOPICS` classes, hashed buckets folded to `TOPIC_BITS` bits to keep
//! the weights file small), and the expected gap `sum_k p_k * gap_k` reaches the difficulty
//! logit only through `features::cross_features`, where it is weighted by task and by the
//! multiple-choice feature: the difficulty model learns where the topic is worth trusting.
//!
//! Invariant: pure and deterministic like the rest of the model; never panics.

use super::features::N_DENSE;

/// log2 of the topic head's hashed buckets (the main table's buckets folded by masking).
pub(crate) const TOPIC_BITS: u32 = 12;
const TOPIC_BUCKETS: usize = 1 << TOPIC_BITS;
/// Number of subjects the head can tell apart (MMLU has 57; the 5 with broken outcomes are left
/// out). Training uses the first `N_TOPICS` subjects by name; slots without one stay unused.
pub(crate) const N_TOPICS: usize = 52;
/// Rows of the topic table: dense features, then folded buckets.
pub(crate) const N_TOPIC_ROWS: usize = N_DENSE + TOPIC_BUCKETS;
/// Bias given to unused topic slots so they take no probability.
pub(crate) const UNUSED_BIAS: f32 = -30.0;

/// Row of the topic table for row `j` of the main layout (dense feature, or `N_DENSE + bucket`).
#[inline]
pub(crate) fn topic_row(j: usize) -> usize {
    if j < N_DENSE {
        j
    } else {
        N_DENSE + ((j - N_DENSE) & (TOPIC_BUCKETS - 1))
    }
}

/// Softmax of the topic logits, in place.
pub(crate) fn softmax_in_place(z: &mut [f32; N_TOPICS]) {
    let max = z.iter().fold(f32::MIN, |m, x| m.max(*x));
    let mut sum = 0.0;
    for zi in z.iter_mut() {
        *zi = (*zi - max).exp();
        sum += *zi;
    }
    if sum > 0.0 && sum.is_finite() {
        for zi in z.iter_mut() {
            *zi /= sum;
        }
    }
}

/// The expected outcome gap under the topic distribution of `logits`.
pub(crate) fn expected_gap(mut logits: [f32; N_TOPICS], gaps: &[f32]) -> f32 {
    softmax_in_place(&mut logits);
    logits.iter().zip(gaps).map(|(p, g)| p * g).sum()
}

/// The expected gap as the difficulty model sees it: its logit, clamped to [-6, 6] (a
/// logistic model that puts weight 1 on it reproduces the subject's mean).
pub(crate) fn gap_feature(expected_gap: f32) -> f32 {
    if !expected_gap.is_finite() {
        return 0.0;
    }
    let p = expected_gap.clamp(1e-3, 1.0 - 1e-3);
    (p / (1.0 - p)).ln().clamp(-6.0, 6.0)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::indexing_slicing)]
    use super::*;

    #[test]
    fn folds_buckets_but_keeps_dense_rows() {
        assert_eq!(topic_row(3), 3);
        assert_eq!(topic_row(N_DENSE), N_DENSE);
        assert_eq!(topic_row(N_DENSE + TOPIC_BUCKETS + 5), N_DENSE + 5);
        assert!(topic_row(N_DENSE + 65_535) < N_TOPIC_ROWS);
    }

    #[test]
    fn expected_gap_weighs_subject_gaps_by_probability() {
        let mut gaps = [0.0f32; N_TOPICS];
        gaps[0] = 0.4;
        gaps[1] = 0.1;
        // Uniform logits: the mean gap.
        let mean = gaps.iter().sum::<f32>() / N_TOPICS as f32;
        assert!((expected_gap([0.0; N_TOPICS], &gaps) - mean).abs() < 1e-6);
        // One subject far ahead: its gap.
        let mut z = [0.0f32; N_TOPICS];
        z[0] = 50.0;
        assert!((expected_gap(z, &gaps) - 0.4).abs() < 1e-4);
        // Unused slots with the unused bias take no probability.
        let mut z = [UNUSED_BIAS; N_TOPICS];
        z[0] = 0.0;
        z[1] = 0.0;
        assert!((expected_gap(z, &gaps) - 0.25).abs() < 1e-4);
    }

    #[test]
    fn gap_feature_is_a_clamped_logit() {
        assert!(gap_feature(0.5).abs() < 1e-6);
        assert!((gap_feature(0.0) + 6.0).abs() < 1e-6);
        assert!((gap_feature(1.0) - 6.0).abs() < 1e-6);
        assert_eq!(gap_feature(f32::NAN), 0.0);
        assert!(gap_feature(0.2) < gap_feature(0.3));
    }
}
