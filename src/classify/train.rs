//! Offline training: fits the task model (multinomial logistic regression, 11 classes), then the
//! topic head (multinomial over the outcome examples' subjects, see `topic`), then the
//! difficulty model (logistic regression on soft targets in [0, 1], with the task probabilities
//! and the topic head's expected gap as extra inputs) by AdaGrad SGD with L2 regularisation.
//!
//! Owns the training recipe: which examples are used (never held-out ones; de-duplicated by
//! text; a training text that also occurs held out is dropped), class and source weighting, and
//! the regularisation that keeps the difficulty model from leaning on vocabulary.
//!
//! Invariant: deterministic. Same examples (in the same order) and config give byte-identical
//! `Model::to_bytes`: one thread, a seeded splitmix64 shuffle, fixed summation order.

use std::collections::{BTreeMap, HashSet};

use super::data::{Example, is_held_out, is_validation};
use super::features::{self, DIFF_COL, Dense, N_CROSS, N_DENSE, N_OUT, N_SECTIONS, Section, Sink};
use super::model::{Model, sigmoid, softmax};
use super::topic::{self, N_TOPICS};

/// Training knobs. `Default` is the recipe that produced the shipped weights.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainConfig {
    pub seed: u64,
    /// Epochs of the task stage.
    pub epochs: u32,
    /// Epochs of the difficulty stage.
    pub difficulty_epochs: u32,
    /// AdaGrad base learning rate of the difficulty stage.
    pub learning_rate: f32,
    /// AdaGrad base learning rate of the task stage (lower than the difficulty stage's: the
    /// small hand-written classes swing less from epoch to epoch).
    pub task_learning_rate: f32,
    /// Independent runs of the task stage (each from zero, on its own shuffles); the task
    /// weights kept are the average over all runs' second-half snapshots.
    pub task_runs: u32,
    /// L2 on dense / hashed weights of the task model.
    pub l2_task_dense: f32,
    pub l2_task_hashed: f32,
    /// L2 on dense / hashed / cross weights of the difficulty model; hashed is kept high
    /// because vocabulary generalises badly for difficulty (see the data README), and since
    /// the topic head carries the outcome examples' subject vocabulary, very high (0.1): with
    /// the earlier 3e-3 the difficulty logit fitted the training rows' subjects through its
    /// own words and all but ignored the (cross-fitted, so noisier) topic gap.
    pub l2_difficulty_dense: f32,
    pub l2_difficulty_hashed: f32,
    /// Class weight = (mean class count / class count) ^ this, clamped to [0.1, 10].
    pub class_balance: f32,
    /// Multiplier on the difficulty weight of outcome examples (vs graded sources).
    pub outcome_weight: f32,
    /// Outcome examples: share of the target taken from the mean target of the example's
    /// subject (over the training examples), the rest from its own outcome. One question's
    /// outcome is a noisy 0/1; the subject mean is what vocabulary can generalise.
    pub subject_mix: f32,
    /// Topic head (`topic`): epochs, AdaGrad learning rate, L2 on its hashed weights (weak:
    /// here vocabulary is the point, it has to recognise the subject).
    pub topic_epochs: u32,
    pub topic_learning_rate: f32,
    pub l2_topic_hashed: f32,
    /// The difficulty stage sees the topic head's output on each outcome example from a head
    /// fitted without it (cross-fitting over this many folds), so that it does not learn to
    /// trust a head that has memorised its own training rows. 0 or 1: no cross-fitting.
    pub topic_folds: u32,
    /// Also leave out the validation split (for tuning without touching held-out data).
    pub exclude_validation: bool,
}

impl Default for TrainConfig {
    fn default() -> TrainConfig {
        TrainConfig {
            seed: 0x5717_c4ad,
            epochs: 32,
            difficulty_epochs: 24,
            learning_rate: 0.2,
            task_learning_rate: 0.1,
            task_runs: 5,
            l2_task_dense: 1e-5,
            l2_task_hashed: 1e-5,
            l2_difficulty_dense: 1e-5,
            l2_difficulty_hashed: 0.1,
            class_balance: 0.6,
            outcome_weight: 3.0,
            subject_mix: 0.7,
            topic_epochs: 8,
            topic_learning_rate: 0.1,
            l2_topic_hashed: 1e-5,
            topic_folds: 4,
            exclude_validation: false,
        }
    }
}

/// splitmix64: a tiny deterministic PRNG for shuffling.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = (self.next() % (i as u64 + 1)) as usize;
            v.swap(i, j);
        }
    }
}

/// Collects hashed features for one example.
#[derive(Default)]
struct Collect {
    items: Vec<(Section, u32)>,
    count: [u32; N_SECTIONS],
}

impl<'t> Sink<'t> for Collect {
    fn hashed(&mut self, section: Section, bucket: u32, _word: Option<&'t str>) {
        if let Some(c) = self.count.get_mut(section as usize) {
            *c += 1;
        }
        self.items.push((section, bucket));
    }
}

/// One featurised training example: sparse (row, value) pairs sorted by row.
struct Row {
    x: Vec<(u32, f32)>,
    dense: Dense,
    task: Option<usize>,
    task_weight: f32,
    target: Option<f32>,
    target_weight: f32,
    /// Topic slot of an outcome example's subject.
    topic: Option<usize>,
}

fn featurize(ex: &Example) -> (Vec<(u32, f32)>, Dense) {
    let input = ex.input();
    let mut c = Collect::default();
    let dense = features::extract(&input, &mut c);
    let mut x: Vec<(u32, f32)> = dense
        .values
        .iter()
        .enumerate()
        .filter(|(_, v)| **v != 0.0)
        .map(|(i, v)| (i as u32, *v))
        .collect();
    let mut hashed: Vec<(u32, f32)> = c
        .items
        .iter()
        .map(|(s, b)| {
            let k = features::scale(*s as usize, c.count.get(*s as usize).copied().unwrap_or(0));
            (N_DENSE as u32 + b, k)
        })
        .collect();
    hashed.sort_by_key(|(i, _)| *i);
    for (i, v) in hashed {
        match x.last_mut() {
            Some((j, w)) if *j == i => *w += v,
            _ => x.push((i, v)),
        }
    }
    (x, dense)
}

/// AdaGrad step on one row of weights for the given output columns.
#[allow(clippy::too_many_arguments)]
fn step(
    w: &mut [f32],
    g2: &mut [f32],
    x: &[(u32, f32)],
    grads: &[f32; N_OUT],
    cols: std::ops::Range<usize>,
    lr: f32,
    l2_dense: f32,
    l2_hashed: f32,
) {
    let task_step = cols.start < DIFF_COL;
    for (j, v) in x {
        let j = *j as usize;
        if task_step && j < N_DENSE && !features::is_task_feature(j) {
            continue; // stays zero: see features::NOT_FOR_TASK
        }
        let l2 = if j < N_DENSE { l2_dense } else { l2_hashed };
        let span = j * N_OUT..(j + 1) * N_OUT;
        let (Some(row), Some(acc)) = (w.get_mut(span.clone()), g2.get_mut(span)) else {
            continue;
        };
        for c in cols.clone() {
            let (Some(wc), Some(ac), Some(gc)) = (row.get_mut(c), acc.get_mut(c), grads.get(c))
            else {
                continue;
            };
            let g = gc * v + l2 * *wc;
            *ac += g * g;
            *wc -= lr * g / (ac.sqrt() + 1e-6);
        }
    }
}

fn dot_cols(w: &[f32], x: &[(u32, f32)]) -> [f32; N_OUT] {
    let mut out = [0.0; N_OUT];
    for (j, v) in x {
        let j = *j as usize;
        if let Some(row) = w.get(j * N_OUT..(j + 1) * N_OUT) {
            for (o, wc) in out.iter_mut().zip(row) {
                *o += v * wc;
            }
        }
    }
    out
}

/// Trains a model on the non-held-out part of `examples`. Deterministic.
pub fn train(examples: &[Example], cfg: &TrainConfig) -> Model {
    let held_texts: HashSet<u64> = examples
        .iter()
        .filter(|e| is_held_out(&e.id))
        .map(Example::text_key)
        .collect();
    let mut seen = HashSet::new();
    let used: Vec<&Example> = examples
        .iter()
        .filter(|e| !(is_held_out(&e.id) || (cfg.exclude_validation && is_validation(&e.id))))
        .filter(|e| e.task.is_some() || e.difficulty_target.is_some())
        .filter(|e| {
            let k = e.text_key();
            !held_texts.contains(&k) && seen.insert(k)
        })
        .collect();

    // Class weights for the task model, source weights for the difficulty model.
    let mut class_count = [0usize; 11];
    let mut source_count: BTreeMap<&str, usize> = BTreeMap::new();
    for e in &used {
        if let Some(slot) = e.task.and_then(|t| class_count.get_mut(t.index())) {
            *slot += 1;
        }
        if e.difficulty_target.is_some() {
            *source_count.entry(e.source.as_str()).or_default() += 1;
        }
    }
    let present: Vec<usize> = class_count.iter().copied().filter(|c| *c > 0).collect();
    let mean = present.iter().sum::<usize>() as f32 / present.len().max(1) as f32;
    let class_weight: Vec<f32> = class_count
        .iter()
        .map(|c| ((mean / (*c).max(1) as f32).powf(cfg.class_balance)).clamp(0.1, 10.0))
        .collect();
    // Each source's total difficulty weight grows with sqrt(size): big outcome sets lead, small
    // graded sets still count. Normalised so the mean example weight is 1.
    let total: f32 = source_count.values().map(|n| (*n as f32).sqrt()).sum();
    let n_diff: usize = source_count.values().sum();
    let source_weight = |s: &str| {
        let n = source_count.get(s).copied().unwrap_or(1).max(1) as f32;
        n_diff as f32 / total.max(1.0) / n.sqrt()
    };

    // Outcome targets: the example's own max(strong - weak, 0) blended with its subject's mean.
    let outcome_target = |e: &Example| e.difficulty_target.unwrap_or(0.0);
    let mut subject_sum: BTreeMap<&str, (f32, u32)> = BTreeMap::new();
    for e in used.iter().filter(|e| e.has_usable_outcome()) {
        if let Some(s) = e.subject.as_deref() {
            let slot = subject_sum.entry(s).or_default();
            slot.0 += outcome_target(e);
            slot.1 += 1;
        }
    }
    // Topic slots: the first N_TOPICS subjects by name (BTreeMap order).
    let topics: Vec<&str> = subject_sum.keys().copied().take(N_TOPICS).collect();
    let mut topic_gap = vec![0.0f32; N_TOPICS];
    for (slot, (sum, n)) in topic_gap.iter_mut().zip(subject_sum.values()) {
        *slot = sum / (*n).max(1) as f32;
    }
    let rows: Vec<Row> = used
        .iter()
        .map(|e| {
            let (x, dense) = featurize(e);
            let topic = e
                .subject
                .as_deref()
                .filter(|_| e.has_usable_outcome())
                .and_then(|s| topics.iter().position(|t| *t == s));
            let task = e.task.map(|t| t.index());
            Row {
                x,
                dense,
                task,
                task_weight: task
                    .and_then(|t| class_weight.get(t).copied())
                    .unwrap_or(0.0),
                target: if e.has_usable_outcome() {
                    let own = outcome_target(e);
                    let subject = e
                        .subject
                        .as_deref()
                        .and_then(|s| subject_sum.get(s))
                        .map_or(own, |(sum, n)| sum / (*n).max(1) as f32);
                    Some(cfg.subject_mix * subject + (1.0 - cfg.subject_mix) * own)
                } else {
                    e.difficulty_target
                },
                target_weight: source_weight(&e.source)
                    * if e.has_usable_outcome() {
                        cfg.outcome_weight
                    } else {
                        1.0
                    },
                topic,
            }
        })
        .collect();

    let mut model = Model::zeros();
    let mut g2 = vec![0.0f32; model.rows.len()];
    let mut rng = SplitMix(cfg.seed);
    let mut order: Vec<usize> = (0..rows.len()).collect();

    // Stage 1: task model, columns 0..11. The weights kept are the average of the snapshots
    // taken after each epoch of the second half (iterate averaging): with many epochs the last
    // examples of the final shuffle otherwise swing the small classes noticeably. The stage is
    // run `task_runs` times from zero on different shuffles and all those snapshots averaged:
    // one run's small classes still depend on its shuffle order (held-back validation macro-F1
    // 0.854-0.870 over five seeds with one run, 0.870-0.877 with five).
    let mut avg = Averager::new(model.rows.len(), cfg.epochs);
    for run in 0..cfg.task_runs.max(1) {
        if run > 0 {
            avg.snapshot(cfg.epochs, &model.rows, &[]);
            model.rows.fill(0.0);
            g2.fill(0.0);
        }
        for epoch in 0..cfg.epochs {
            if epoch > 0 {
                avg.snapshot(epoch, &model.rows, &[]);
            }
            rng.shuffle(&mut order);
            for r in order.iter().filter_map(|i| rows.get(*i)) {
                let Some(t) = r.task else { continue };
                let logits = dot_cols(&model.rows, &r.x);
                let p = softmax(&logits);
                let mut grads = [0.0f32; N_OUT];
                for (c, (g, pc)) in grads.iter_mut().zip(p).enumerate() {
                    let y = if c == t { 1.0 } else { 0.0 };
                    *g = r.task_weight * (pc - y);
                }
                step(
                    &mut model.rows,
                    &mut g2,
                    &r.x,
                    &grads,
                    0..11,
                    cfg.task_learning_rate,
                    cfg.l2_task_dense,
                    cfg.l2_task_hashed,
                );
            }
        }
    }

    avg.snapshot(cfg.epochs, &model.rows, &[]);
    avg.apply(&mut model.rows, &mut [], 0..DIFF_COL);

    // Stage 2: the topic head, on outcome examples. The head kept is fitted on all of them;
    // the gap each outcome example shows stage 3 comes from a head fitted without it
    // (cross-fitting over `topic_folds` folds). Other rows were never seen by a topic head.
    let fit: Vec<usize> = (0..rows.len())
        .filter(|i| rows.get(*i).is_some_and(|r| r.topic.is_some()))
        .collect();
    model.topic = fit_topic(&rows, &fit, topics.len(), cfg, &mut rng);
    model.topic_gap = topic_gap;
    let mut gaps: Vec<f32> = rows
        .iter()
        .map(|r| topic_expected_gap(&model.topic, &model.topic_gap, &r.x))
        .collect();
    if cfg.topic_folds >= 2 {
        let folds = cfg.topic_folds as usize;
        for f in 0..folds {
            let part: Vec<usize> = fit
                .iter()
                .enumerate()
                .filter(|(k, _)| k % folds != f)
                .map(|(_, i)| *i)
                .collect();
            let head = fit_topic(&rows, &part, topics.len(), cfg, &mut rng);
            for (_, i) in fit.iter().enumerate().filter(|(k, _)| k % folds == f) {
                if let (Some(slot), Some(r)) = (gaps.get_mut(*i), rows.get(*i)) {
                    *slot = topic_expected_gap(&head, &model.topic_gap, &r.x);
                }
            }
        }
    }

    // Stage 3: difficulty column and cross weights, with task probabilities from stage 1 and
    // the topic gap from stage 2.
    let crosses: Vec<[f32; N_CROSS]> = rows
        .iter()
        .zip(&gaps)
        .map(|(r, gap)| {
            let probs = softmax(&dot_cols(&model.rows, &r.x));
            features::cross_features(&probs, topic::gap_feature(*gap), &r.dense)
        })
        .collect();
    let mut cross_g2 = [0.0f32; N_CROSS];
    let mut avg = Averager::new(model.rows.len(), cfg.difficulty_epochs);
    for epoch in 0..cfg.difficulty_epochs {
        if epoch > 0 {
            avg.snapshot(epoch, &model.rows, &model.cross);
        }
        rng.shuffle(&mut order);
        for i in &order {
            let (Some(r), Some(cross)) = (rows.get(*i), crosses.get(*i)) else {
                continue;
            };
            let Some(target) = r.target else { continue };
            let z = dot_cols(&model.rows, &r.x)
                .get(DIFF_COL)
                .copied()
                .unwrap_or(0.0)
                + cross
                    .iter()
                    .zip(&model.cross)
                    .map(|(x, w)| x * w)
                    .sum::<f32>();
            let g = r.target_weight * (sigmoid(z) - target);
            let mut grads = [0.0f32; N_OUT];
            if let Some(slot) = grads.get_mut(DIFF_COL) {
                *slot = g;
            }
            step(
                &mut model.rows,
                &mut g2,
                &r.x,
                &grads,
                DIFF_COL..DIFF_COL + 1,
                cfg.learning_rate,
                cfg.l2_difficulty_dense,
                cfg.l2_difficulty_hashed,
            );
            for ((w, a), x) in model.cross.iter_mut().zip(cross_g2.iter_mut()).zip(cross) {
                let gc = g * x + cfg.l2_difficulty_dense * *w;
                *a += gc * gc;
                *w -= cfg.learning_rate * gc / (a.sqrt() + 1e-6);
            }
        }
    }
    avg.snapshot(cfg.difficulty_epochs, &model.rows, &model.cross);
    avg.apply(&mut model.rows, &mut model.cross, DIFF_COL..N_OUT);
    model
}

/// Topic logits of one featurised row under the topic weights `w`.
fn topic_logits(w: &[f32], x: &[(u32, f32)]) -> [f32; N_TOPICS] {
    let mut z = [0.0f32; N_TOPICS];
    for (j, v) in x {
        let r = topic::topic_row(*j as usize);
        if let Some(row) = w.get(r * N_TOPICS..(r + 1) * N_TOPICS) {
            for (zc, wc) in z.iter_mut().zip(row) {
                *zc += v * wc;
            }
        }
    }
    z
}

fn topic_expected_gap(w: &[f32], gaps: &[f32], x: &[(u32, f32)]) -> f32 {
    topic::expected_gap(topic_logits(w, x), gaps)
}

/// Fits topic-head weights on the rows `fit` (multinomial logistic regression on
/// `Row::topic`, AdaGrad); returns the average of the second-half epoch snapshots, with the
/// slots from `used` on given a large negative bias so that they take no probability.
fn fit_topic(
    rows: &[Row],
    fit: &[usize],
    used: usize,
    cfg: &TrainConfig,
    rng: &mut SplitMix,
) -> Vec<f32> {
    let n = topic::N_TOPIC_ROWS * N_TOPICS;
    let (mut w, mut g2, mut sum) = (vec![0.0f32; n], vec![0.0f32; n], vec![0.0f64; n]);
    let mut order = fit.to_vec();
    let mut snapshots = 0u32;
    for epoch in 0..cfg.topic_epochs {
        rng.shuffle(&mut order);
        for r in order.iter().filter_map(|i| rows.get(*i)) {
            let Some(t) = r.topic else { continue };
            let mut p = topic_logits(&w, &r.x);
            topic::softmax_in_place(&mut p);
            for (j, v) in &r.x {
                let l2 = if (*j as usize) < N_DENSE {
                    cfg.l2_difficulty_dense
                } else {
                    cfg.l2_topic_hashed
                };
                let at = topic::topic_row(*j as usize) * N_TOPICS;
                let (Some(row), Some(acc)) =
                    (w.get_mut(at..at + N_TOPICS), g2.get_mut(at..at + N_TOPICS))
                else {
                    continue;
                };
                for (c, ((wc, ac), pc)) in row.iter_mut().zip(acc).zip(&p).enumerate() {
                    let y = if c == t { 1.0 } else { 0.0 };
                    let g = (pc - y) * v + l2 * *wc;
                    *ac += g * g;
                    *wc -= cfg.topic_learning_rate * g / (ac.sqrt() + 1e-6);
                }
            }
        }
        if (epoch + 1) * 2 >= cfg.topic_epochs.max(1) {
            for (s, x) in sum.iter_mut().zip(&w) {
                *s += f64::from(*x);
            }
            snapshots += 1;
        }
    }
    if snapshots > 0 {
        let k = f64::from(snapshots);
        for (x, s) in w.iter_mut().zip(&sum) {
            *x = (*s / k) as f32;
        }
    }
    // Dense feature 0 is the constant bias: its row holds each topic's bias.
    for bias in w.iter_mut().take(N_TOPICS).skip(used) {
        *bias = topic::UNUSED_BIAS;
    }
    w
}

/// Running sum of weight snapshots taken after the epochs of the second half of a stage.
struct Averager {
    rows: Vec<f64>,
    cross: [f64; N_CROSS],
    count: u32,
    epochs: u32,
}

impl Averager {
    fn new(len: usize, epochs: u32) -> Averager {
        Averager {
            rows: vec![0.0; len],
            cross: [0.0; N_CROSS],
            count: 0,
            epochs,
        }
    }

    /// Adds the weights as they are after `done` epochs, if that is in the second half.
    fn snapshot(&mut self, done: u32, rows: &[f32], cross: &[f32]) {
        if done * 2 < self.epochs.max(1) {
            return;
        }
        for (a, w) in self.rows.iter_mut().zip(rows) {
            *a += f64::from(*w);
        }
        for (a, w) in self.cross.iter_mut().zip(cross) {
            *a += f64::from(*w);
        }
        self.count += 1;
    }

    /// Replaces the given output columns (and the cross weights, if any) by the average.
    fn apply(&self, rows: &mut [f32], cross: &mut [f32], cols: std::ops::Range<usize>) {
        if self.count == 0 {
            return;
        }
        let n = f64::from(self.count);
        for (k, (w, a)) in rows.iter_mut().zip(&self.rows).enumerate() {
            if cols.contains(&(k % N_OUT)) {
                *w = (*a / n) as f32;
            }
        }
        for (w, a) in cross.iter_mut().zip(&self.cross) {
            *w = (*a / n) as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use crate::classify::input::{Role, Turn};
    use crate::classify::{Task, Thresholds};
    use std::borrow::Cow;

    fn ex(id: usize, text: &str, task: Task, target: Option<f32>) -> Example {
        Example {
            id: format!("fixture:{id}"),
            source: "fixture".into(),
            turns: vec![Turn {
                role: Role::User,
                text: Cow::Owned(text.to_owned()),
            }],
            has_tools: false,
            response_format: None,
            max_tokens: None,
            task: Some(task),
            task_label_raw: None,
            difficulty_label: None,
            difficulty_target: target,
            strong_correct: None,
            weak_correct: None,
            subject: None,
            outcome_broken: false,
        }
    }

    fn fixture() -> Vec<Example> {
        let mut v = Vec::new();
        for i in 0..40 {
            v.push(ex(
                3 * i,
                &format!("Translate sentence number {i} into French: the cat sleeps."),
                Task::Translation,
                Some(0.1),
            ));
            v.push(ex(3 * i + 1, &format!("Write a Python function `f{i}(xs)` that returns the sum:\n```python\ndef f{i}(xs):\n    pass\n```"), Task::Code, Some(0.6)));
            v.push(ex(
                3 * i + 2,
                &format!(
                    "Prove that {i}^2 + {i} is even for every integer, step by step, with $n(n+1)$."
                ),
                Task::Math,
                Some(0.9),
            ));
        }
        v
    }

    #[test]
    fn training_is_byte_identical_across_runs() {
        let data = fixture();
        let cfg = TrainConfig {
            epochs: 3,
            ..TrainConfig::default()
        };
        let a = train(&data, &cfg).to_bytes();
        let b = train(&data, &cfg).to_bytes();
        assert!(a == b, "two runs differ");
        let other = train(&data, &TrainConfig { seed: 7, ..cfg }).to_bytes();
        assert!(a != other, "seed has no effect");
    }

    #[test]
    fn learns_a_small_fixture() {
        let model = train(&fixture(), &TrainConfig::default());
        let t = Thresholds::default();
        let c = model.classify(
            &crate::classify::Input::from_prompt("Translate this into French: good morning"),
            &t,
        );
        assert_eq!(c.task, Task::Translation);
        let m = model.classify(
            &crate::classify::Input::from_prompt(
                "Prove that 9^2 + 9 is even, step by step, with $n(n+1)$.",
            ),
            &t,
        );
        assert_eq!(m.task, Task::Math);
        assert!(m.difficulty_score > c.difficulty_score);
    }

    #[test]
    fn shuffle_is_a_permutation() {
        let mut v: Vec<u32> = (0..100).collect();
        SplitMix(1).shuffle(&mut v);
        let mut s = v.clone();
        s.sort_unstable();
        assert_eq!(s, (0..100).collect::<Vec<_>>());
        assert_ne!(v, s);
    }
}
