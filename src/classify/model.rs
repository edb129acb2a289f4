//! The linear model: weights, the versioned binary format, and `classify`.
//!
//! Layout of the weights: one row of `N_OUT` (= 11 task logits + 1 difficulty logit) floats per
//! dense feature, then one row per hashed bucket, then `N_CROSS` difficulty-only weights over the
//! task probabilities and the topic gap (see `features::cross_features`), then the topic head
//! (`topic`): `N_TOPICS` floats per dense feature and per folded bucket, then the `N_TOPICS`
//! mean outcome gaps of the subjects.
//!
//! File format (all little-endian): magic `SWYDCLF\0`, `u32` format version, `u32` hash bits,
//! `u32` dense features, `u32` outputs, `u32` cross features, `u32` topic bits, `u32` topics,
//! `u32` reserved (0), then the weights as `f32`, then a `u64` FNV-1a checksum of every byte
//! before it.
//!
//! Invariants: `from_bytes` accepts only a file this build can interpret (exact length, layout
//! and checksum, finite weights) and never panics; `classify` never allocates more than the
//! returned signals and never panics.

use std::borrow::Cow;

use super::features::{
    self, DENSE_NAMES, DIFF_COL, Dense, HASH_BITS, N_CROSS, N_DENSE, N_HASHED, N_OUT, N_SECTIONS,
    N_TASK_CROSS, Section, Sink,
};
use super::topic::{self, N_TOPIC_ROWS, N_TOPICS, TOPIC_BITS};
use super::{Classification, Error, Input, Signal, Task, Thresholds};

/// Version of the binary format and feature layout; bump on any change to `features.rs`.
pub(crate) const FORMAT_VERSION: u32 = 3; // v2: instruction-sentence section; v3: topic head
const MAGIC: &[u8; 8] = b"SWYDCLF\0";
const HEADER_LEN: usize = 8 + 8 * 4;
const N_MAIN: usize = (N_DENSE + N_HASHED) * N_OUT;
const N_TOPIC_WEIGHTS: usize = N_TOPIC_ROWS * N_TOPICS;
const N_WEIGHTS: usize = N_MAIN + N_CROSS + N_TOPIC_WEIGHTS + N_TOPICS;
const FILE_LEN: usize = HEADER_LEN + N_WEIGHTS * 4 + 8;
/// Last-turn words remembered for naming signals.
const SIGNAL_WORDS: usize = 192;
const MAX_SIGNALS: usize = 5;

/// The trained classifier. Cheap to share behind an `Arc`; `classify` takes `&self`.
#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    /// `(N_DENSE + N_HASHED) * N_OUT` weights, dense rows first.
    pub(crate) rows: Vec<f32>,
    /// `N_CROSS` difficulty weights over task probabilities and the topic gap.
    pub(crate) cross: Vec<f32>,
    /// `N_TOPIC_ROWS * N_TOPICS` topic-head weights (see `topic`).
    pub(crate) topic: Vec<f32>,
    /// Mean outcome gap of each topic over the training examples (0 for unused slots).
    pub(crate) topic_gap: Vec<f32>,
}

fn checksum(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn read_u32(bytes: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    if let Some(src) = bytes.get(at..at + 4) {
        b.copy_from_slice(src);
    }
    u32::from_le_bytes(b)
}

impl Model {
    /// A model with every weight zero (uniform task, difficulty 0.5). Training starts here.
    pub(crate) fn zeros() -> Model {
        Model {
            rows: vec![0.0; (N_DENSE + N_HASHED) * N_OUT],
            cross: vec![0.0; N_CROSS],
            topic: vec![0.0; N_TOPIC_WEIGHTS],
            topic_gap: vec![0.0; N_TOPICS],
        }
    }

    /// The weights shipped with this build (`classifier/switchyard-classifier-v1.bin`).
    pub fn embedded() -> Result<Model, Error> {
        Model::from_bytes(include_bytes!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/classifier/switchyard-classifier-v1.bin"
        )))
    }

    /// Parses and validates a weights file.
    pub fn from_bytes(bytes: &[u8]) -> Result<Model, Error> {
        if bytes.get(..8) != Some(MAGIC.as_slice()) {
            return Err(Error::BadMagic);
        }
        let version = read_u32(bytes, 8);
        if version != FORMAT_VERSION {
            return Err(Error::UnsupportedVersion {
                got: version,
                expected: FORMAT_VERSION,
            });
        }
        if bytes.len() != FILE_LEN {
            return Err(Error::WeightsLength {
                got: bytes.len(),
                expected: FILE_LEN,
            });
        }
        let layout = [
            ("hash bits", HASH_BITS),
            ("dense features", N_DENSE as u32),
            ("outputs", N_OUT as u32),
            ("cross features", N_CROSS as u32),
            ("topic bits", TOPIC_BITS),
            ("topics", N_TOPICS as u32),
            ("reserved", 0),
        ];
        for (k, (field, expected)) in layout.into_iter().enumerate() {
            let got = read_u32(bytes, 12 + 4 * k);
            if got != expected {
                return Err(Error::LayoutMismatch {
                    field,
                    got,
                    expected,
                });
            }
        }
        let (body, sum) = bytes.split_at(FILE_LEN - 8);
        let mut stored = [0u8; 8];
        stored.copy_from_slice(sum);
        if u64::from_le_bytes(stored) != checksum(body) {
            return Err(Error::Checksum);
        }
        let weights = body.get(HEADER_LEN..).unwrap_or(&[]);
        let mut all = Vec::with_capacity(N_WEIGHTS);
        for chunk in weights.chunks_exact(4) {
            let mut b = [0u8; 4];
            b.copy_from_slice(chunk);
            let w = f32::from_le_bytes(b);
            if !w.is_finite() {
                return Err(Error::NonFinite);
            }
            all.push(w);
        }
        let mut cross = all.split_off(N_MAIN);
        let mut topic = cross.split_off(N_CROSS);
        let topic_gap = topic.split_off(N_TOPIC_WEIGHTS);
        Ok(Model {
            rows: all,
            cross,
            topic,
            topic_gap,
        })
    }

    /// Serialises to the format `from_bytes` reads.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(FILE_LEN);
        out.extend_from_slice(MAGIC);
        for v in [
            FORMAT_VERSION,
            HASH_BITS,
            N_DENSE as u32,
            N_OUT as u32,
            N_CROSS as u32,
            TOPIC_BITS,
            N_TOPICS as u32,
            0,
        ] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        for w in self
            .rows
            .iter()
            .chain(&self.cross)
            .chain(&self.topic)
            .chain(&self.topic_gap)
        {
            out.extend_from_slice(&w.to_le_bytes());
        }
        let sum = checksum(&out);
        out.extend_from_slice(&sum.to_le_bytes());
        out
    }

    /// Weights row of dense feature `i` or hashed bucket `N_DENSE + b`.
    /// Fixed-size, so that adding a row compiles to a few unrolled vector adds.
    pub(crate) fn row(&self, i: usize) -> &[f32; N_OUT] {
        self.rows
            .get(i * N_OUT..(i + 1) * N_OUT)
            .and_then(|r| r.try_into().ok())
            .unwrap_or(&[0.0; N_OUT])
    }

    /// Topic-head weights of dense feature `i` or hashed bucket `N_DENSE + b` (folded).
    pub(crate) fn topic_row(&self, i: usize) -> &[f32; N_TOPICS] {
        let r = topic::topic_row(i);
        self.topic
            .get(r * N_TOPICS..(r + 1) * N_TOPICS)
            .and_then(|r| r.try_into().ok())
            .unwrap_or(&[0.0; N_TOPICS])
    }

    /// Task logits (11) and the difficulty logit before the cross features.
    pub(crate) fn logits<'t>(&self, input: &'t Input<'_>) -> (Dense, [f32; N_OUT], Scorer<'_, 't>) {
        let mut scorer = Scorer {
            model: self,
            acc: [[0.0; N_OUT]; N_SECTIONS],
            topic_acc: [[0.0; N_TOPICS]; N_SECTIONS],
            count: [0; N_SECTIONS],
            pending: [0; PENDING],
            n_pending: 0,
            words: [(0, ""); SIGNAL_WORDS],
            n_words: 0,
        };
        let dense = features::extract(input, &mut scorer);
        scorer.add_pending();
        let logits = head_logits(&scorer.acc, scorer.count, &dense, |i| self.row(i));
        (dense, logits, scorer)
    }

    /// The topic head's expected outcome gap, from the features `logits` collected.
    fn expected_gap(&self, dense: &Dense, scorer: &Scorer<'_, '_>) -> f32 {
        let z = head_logits(&scorer.topic_acc, scorer.count, dense, |i| {
            self.topic_row(i)
        });
        topic::expected_gap(z, &self.topic_gap)
    }

    /// Classifies one request. Pure; bounded work on any input.
    pub fn classify(&self, input: &Input<'_>, thresholds: &Thresholds) -> Classification {
        self.classify_with(input, thresholds, true)
    }

    /// The same classification with `signals` left empty, for the request path, where only an
    /// explanation (dry run, `switchyard explain`) reads them: ranking and naming them is
    /// about a tenth of the work, with allocations.
    pub fn classify_unexplained(
        &self,
        input: &Input<'_>,
        thresholds: &Thresholds,
    ) -> Classification {
        self.classify_with(input, thresholds, false)
    }

    fn classify_with(
        &self,
        input: &Input<'_>,
        thresholds: &Thresholds,
        explained: bool,
    ) -> Classification {
        let (dense, logits, scorer) = self.logits(input);
        let probs = softmax(&logits);
        let (best, conf) =
            probs.iter().enumerate().fold(
                (0, f32::MIN),
                |acc, (i, p)| if *p > acc.1 { (i, *p) } else { acc },
            );
        let gap = topic::gap_feature(self.expected_gap(&dense, &scorer));
        let cross = features::cross_features(&probs, gap, &dense);
        let diff_logit = logits.get(DIFF_COL).copied().unwrap_or(0.0)
            + cross
                .iter()
                .zip(&self.cross)
                .map(|(x, w)| x * w)
                .sum::<f32>();
        let score = sigmoid(diff_logit);
        let task = Task::from_index(best).unwrap_or(Task::Chat);
        let signals = if explained {
            self.signals(&dense, &scorer, best, &cross)
        } else {
            Vec::new()
        };
        Classification {
            task,
            task_confidence: conf.clamp(0.0, 1.0),
            difficulty_score: score,
            difficulty: thresholds.level(score),
            signals,
        }
    }

    /// The strongest named contributions: positive ones to the chosen task, and either sign to
    /// difficulty. At most `MAX_SIGNALS`, strongest first.
    fn signals<'t>(
        &self,
        dense: &Dense,
        scorer: &Scorer<'_, 't>,
        task: usize,
        cross: &[f32; N_CROSS],
    ) -> Vec<Signal> {
        // (|weight|, weight, name index or word)
        let mut top: [(f32, f32, Name<'t>); MAX_SIGNALS] = [(0.0, 0.0, Name::None); MAX_SIGNALS];
        let mut offer = |w: f32, name: Name<'t>, positive_only: bool| {
            if w.is_finite() {
                offer_signal(&mut top, w, name, positive_only);
            }
        };
        for (i, v) in dense.values.iter().enumerate().skip(1) {
            if *v == 0.0 {
                continue;
            }
            let row = self.row(i);
            offer(
                v * row.get(task).copied().unwrap_or(0.0),
                Name::Dense(i),
                true,
            );
            offer(
                v * row.get(DIFF_COL).copied().unwrap_or(0.0),
                Name::Dense(i),
                false,
            );
        }
        let k = features::scale(
            Section::LastWord as usize,
            scorer.count.first().copied().unwrap_or(0),
        );
        for (b, word) in scorer.words.iter().take(scorer.n_words) {
            let row = self.row(N_DENSE + *b as usize);
            offer(
                k * row.get(task).copied().unwrap_or(0.0),
                Name::Word(word),
                true,
            );
            offer(
                k * row.get(DIFF_COL).copied().unwrap_or(0.0),
                Name::Word(word),
                false,
            );
        }
        let cross_task = cross
            .iter()
            .zip(&self.cross)
            .take(N_TASK_CROSS)
            .skip(task)
            .step_by(11)
            .map(|(x, w)| x * w)
            .sum::<f32>();
        offer(cross_task, Name::TaskPrior, false);
        let cross_topic = cross
            .iter()
            .zip(&self.cross)
            .skip(N_TASK_CROSS)
            .map(|(x, w)| x * w)
            .sum::<f32>();
        offer(cross_topic, Name::Topic, false);
        top.iter()
            .filter(|(a, _, n)| *a > 0.0 && *n != Name::None)
            .map(|(_, w, n)| Signal {
                name: n.render(dense, Task::from_index(task).unwrap_or(Task::Chat)),
                weight: *w,
            })
            .collect()
    }
}

/// One head's logits: each section's summed hashed rows, scaled by the section's weight and
/// feature count, plus the dense features times their rows (`row(i)` for dense feature `i`).
fn head_logits<'w, const N: usize>(
    sections: &[[f32; N]; N_SECTIONS],
    count: [u32; N_SECTIONS],
    dense: &Dense,
    row: impl Fn(usize) -> &'w [f32; N],
) -> [f32; N] {
    let mut z = [0.0f32; N];
    for (s, (acc, count)) in sections.iter().zip(count).enumerate() {
        let k = features::scale(s, count);
        for (l, a) in z.iter_mut().zip(acc) {
            *l += k * a;
        }
    }
    for (i, v) in dense.values.iter().enumerate() {
        if *v != 0.0 {
            for (l, w) in z.iter_mut().zip(row(i)) {
                *l += v * w;
            }
        }
    }
    z
}

/// Inserts `(|w|, w, name)` into the sorted `top`, keeping one entry per name (the strongest).
fn offer_signal<'t>(top: &mut [(f32, f32, Name<'t>)], w: f32, name: Name<'t>, positive_only: bool) {
    if positive_only && w <= 0.0 {
        return;
    }
    let a = w.abs();
    // Not above the weakest kept: an entry of this name, if any, is at least as strong, so
    // nothing changes. Most offers end here, before comparing names (words are strings).
    if top.last().is_none_or(|(b, _, _)| a <= *b) {
        return;
    }
    if let Some(pos) = top.iter().position(|(_, _, n)| *n == name) {
        if top.get(pos).is_some_and(|(b, _, _)| *b >= a) {
            return;
        }
        if let Some(rest) = top.get_mut(pos..) {
            rest.rotate_left(1);
        }
        if let Some(last) = top.last_mut() {
            *last = (0.0, 0.0, Name::None);
        }
    }
    if let Some(pos) = top.iter().position(|(b, _, _)| a > *b) {
        if let Some(rest) = top.get_mut(pos..) {
            rest.rotate_right(1);
        }
        if let Some(slot) = top.get_mut(pos) {
            *slot = (a, w, name);
        }
    }
}

/// Identity of a signal while ranking, without allocating.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Name<'t> {
    None,
    Dense(usize),
    Word(&'t str),
    TaskPrior,
    Topic,
}

impl Name<'_> {
    fn render(&self, dense: &Dense, task: Task) -> Cow<'static, str> {
        match *self {
            Name::None => Cow::Borrowed(""),
            Name::Dense(i)
                if i == features::D::TURNS as usize || i == features::D::MULTI_TURN as usize =>
            {
                let label = if dense.turns >= 8 {
                    "long conversation"
                } else {
                    "conversation"
                };
                Cow::Owned(format!("{label} ({} turns)", dense.turns))
            }
            Name::Dense(i) => Cow::Borrowed(DENSE_NAMES.get(i).copied().unwrap_or("feature")),
            Name::Word(w) => {
                let w: String = w.chars().take(32).collect();
                Cow::Owned(format!("word: {}", w.to_lowercase()))
            }
            Name::TaskPrior => Cow::Owned(format!("task: {}", task.as_str())),
            Name::Topic => Cow::Borrowed("subject matter"),
        }
    }
}

/// Hashed features the scorer holds before adding their rows (see `Scorer::add_pending`).
const PENDING: usize = 64;
/// A pending feature is `section << SECTION_SHIFT | bucket`.
const SECTION_SHIFT: u32 = 24;
const _: () = assert!(HASH_BITS <= SECTION_SHIFT && N_SECTIONS < 1 << (32 - SECTION_SHIFT));

/// Folds hashed features into per-section logit sums, remembering last-turn words for signals.
///
/// The weights (about 4 MB) do not stay in cache between requests on a proxy that is not
/// saturated, so nearly every row is a fetch from memory. Rows are added in batches of
/// `PENDING`, after the scan that found them, so that the fetches of a batch overlap instead of
/// each waiting behind the hashing of the next word; the additions keep the features' order,
/// so the sums are bit-identical to adding each row as it arrives.
pub(crate) struct Scorer<'m, 't> {
    model: &'m Model,
    acc: [[f32; N_OUT]; N_SECTIONS],
    topic_acc: [[f32; N_TOPICS]; N_SECTIONS],
    count: [u32; N_SECTIONS],
    pending: [u32; PENDING],
    n_pending: usize,
    words: [(u32, &'t str); SIGNAL_WORDS],
    n_words: usize,
}

impl Scorer<'_, '_> {
    /// Adds the rows of the pending features to their sections' sums, in arrival order.
    fn add_pending(&mut self) {
        let model = self.model;
        for p in self.pending.iter().take(self.n_pending) {
            let s = (p >> SECTION_SHIFT) as usize;
            let row = N_DENSE + (p & ((1 << SECTION_SHIFT) - 1)) as usize;
            if let Some(acc) = self.acc.get_mut(s) {
                for (a, w) in acc.iter_mut().zip(model.row(row)) {
                    *a += w;
                }
            }
            if let Some(topic_acc) = self.topic_acc.get_mut(s) {
                for (a, w) in topic_acc.iter_mut().zip(model.topic_row(row)) {
                    *a += w;
                }
            }
        }
        self.n_pending = 0;
    }
}

impl<'t> Sink<'t> for Scorer<'_, 't> {
    #[inline]
    fn hashed(&mut self, section: Section, bucket: u32, word: Option<&'t str>) {
        let s = section as usize;
        if let Some(count) = self.count.get_mut(s) {
            *count += 1;
            if self.n_pending == PENDING {
                self.add_pending();
            }
            if let Some(slot) = self.pending.get_mut(self.n_pending) {
                *slot = (s as u32) << SECTION_SHIFT | bucket;
                self.n_pending += 1;
            }
        }
        if let Some(w) = word
            && let Some(slot) = self.words.get_mut(self.n_words)
            && !w.is_empty()
        {
            *slot = (bucket, w);
            self.n_words += 1;
        }
    }
}

pub(crate) fn softmax(logits: &[f32; N_OUT]) -> [f32; 11] {
    let mut p = [0.0f32; 11];
    let max = logits.iter().take(11).fold(f32::MIN, |m, x| m.max(*x));
    let mut sum = 0.0;
    for (pi, l) in p.iter_mut().zip(logits) {
        *pi = (l - max).exp();
        sum += *pi;
    }
    if sum > 0.0 && sum.is_finite() {
        for pi in &mut p {
            *pi /= sum;
        }
    }
    p
}

pub(crate) fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use crate::classify::{Role, Turn};

    fn sample() -> Model {
        let mut m = Model::zeros();
        for (i, w) in m.rows.iter_mut().enumerate().step_by(97) {
            *w = (i % 13) as f32 * 0.01 - 0.05;
        }
        m.cross[3] = 0.5;
        m.cross[N_CROSS - 1] = -0.25;
        m.topic[7] = 0.25;
        m.topic_gap[1] = 0.2;
        m
    }

    #[test]
    fn round_trips_bytes() {
        let m = sample();
        let bytes = m.to_bytes();
        assert_eq!(bytes.len(), FILE_LEN);
        assert_eq!(Model::from_bytes(&bytes).unwrap(), m);
    }

    #[test]
    fn rejects_truncated_and_corrupt_files() {
        let bytes = sample().to_bytes();
        assert!(matches!(Model::from_bytes(&[]), Err(Error::BadMagic)));
        assert!(matches!(
            Model::from_bytes(&bytes[..7]),
            Err(Error::BadMagic)
        ));
        assert!(matches!(
            Model::from_bytes(&bytes[..12]),
            Err(Error::WeightsLength { .. })
        ));
        assert!(matches!(
            Model::from_bytes(&bytes[..bytes.len() - 1]),
            Err(Error::WeightsLength { .. })
        ));
        let mut flipped = bytes.clone();
        flipped[HEADER_LEN + 1234] ^= 0x40;
        assert!(matches!(Model::from_bytes(&flipped), Err(Error::Checksum)));
        let mut version = bytes.clone();
        version[8] = 99;
        assert!(matches!(
            Model::from_bytes(&version),
            Err(Error::UnsupportedVersion { got: 99, .. })
        ));
        let mut layout = bytes.clone();
        layout[12] = 3;
        assert!(matches!(
            Model::from_bytes(&layout),
            Err(Error::LayoutMismatch {
                field: "hash bits",
                ..
            })
        ));
        let mut nan = sample();
        nan.rows[5] = f32::NAN;
        assert!(matches!(
            Model::from_bytes(&nan.to_bytes()),
            Err(Error::NonFinite)
        ));
        let msg = Model::from_bytes(&bytes[..100]).unwrap_err().to_string();
        assert!(msg.contains("expected"), "{msg}");
    }

    /// Collects the hashed features as they arrive.
    struct Arrivals(Vec<(Section, u32)>);
    impl<'t> Sink<'t> for Arrivals {
        fn hashed(&mut self, s: Section, b: u32, _: Option<&'t str>) {
            self.0.push((s, b));
        }
    }

    #[test]
    fn batched_row_sums_equal_adding_each_row_as_it_arrives() {
        let m = Model::embedded().unwrap();
        // Several batches of `PENDING`, every section, and a last batch that is not full.
        let input = Input {
            turns: vec![
                Turn {
                    role: Role::System,
                    text: "You are a careful analyst. Answer in English.".into(),
                },
                Turn {
                    role: Role::User,
                    text: "Earlier question about the churn model and its features?".into(),
                },
                Turn {
                    role: Role::Assistant,
                    text: "The model uses tenure, plan and support tickets.".into(),
                },
                Turn {
                    role: Role::User,
                    text: format!(
                        "Summarise this in three bullets. {} 翻译成中文：季度收入增长。 Keep it short.",
                        "Revenue grew 12% in EMEA while churn fell among mid-market accounts. "
                            .repeat(9)
                    )
                    .into(),
                },
            ],
            ..Input::default()
        };
        let mut arrivals = Arrivals(Vec::new());
        features::extract(&input, &mut arrivals);
        let n = arrivals.0.len();
        assert!(
            n > 3 * PENDING && !n.is_multiple_of(PENDING),
            "{n} features"
        );
        let mut acc = [[0.0f32; N_OUT]; N_SECTIONS];
        let mut topic_acc = [[0.0f32; N_TOPICS]; N_SECTIONS];
        let mut count = [0u32; N_SECTIONS];
        for (s, b) in &arrivals.0 {
            let (s, row) = (*s as usize, N_DENSE + *b as usize);
            count[s] += 1;
            for (a, w) in acc[s].iter_mut().zip(m.row(row)) {
                *a += w;
            }
            for (a, w) in topic_acc[s].iter_mut().zip(m.topic_row(row)) {
                *a += w;
            }
        }
        let (_, _, scorer) = m.logits(&input);
        assert_eq!(scorer.count, count);
        // Bit for bit: the same additions in the same order.
        let bits = |rows: &[f32]| rows.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(scorer.acc.as_flattened()), bits(acc.as_flattened()));
        assert_eq!(
            bits(scorer.topic_acc.as_flattened()),
            bits(topic_acc.as_flattened())
        );
    }

    #[test]
    fn zero_model_is_uniform_and_half_difficult() {
        let m = Model::zeros();
        let c = m.classify(&Input::from_prompt("hello"), &Thresholds::default());
        assert!((c.task_confidence - 1.0 / 11.0).abs() < 1e-5);
        assert!((c.difficulty_score - 0.5).abs() < 1e-6);
        assert_eq!(c.difficulty, crate::classify::Difficulty::Medium);
        assert!(c.signals.is_empty());
    }

    #[test]
    fn classify_never_panics_on_odd_input() {
        let m = sample();
        let t = Thresholds::default();
        for text in [
            "",
            "\n\n\n",
            "```",
            "$$",
            "?",
            "a",
            "漢",
            "\u{0}\u{7f}\u{10FFFF}",
        ] {
            let c = m.classify(&Input::from_prompt(text), &t);
            assert!(c.difficulty_score.is_finite() && c.signals.len() <= MAX_SIGNALS);
        }
        assert!(m.classify(&Input::default(), &t).task_confidence > 0.0);
    }

    #[test]
    fn signals_keep_the_strongest_offer_of_each_name_strongest_first() {
        // 400 offers over 23 names, distinct magnitudes, either sign, some positive-only.
        let names: Vec<String> = (0..23).map(|i| format!("w{i}")).collect();
        let mut top = [(0.0, 0.0, Name::None); MAX_SIGNALS];
        let mut best: std::collections::HashMap<&str, f32> = std::collections::HashMap::new();
        let mut x: u64 = 7;
        for i in 0..400u32 {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let name = names[(x >> 33) as usize % names.len()].as_str();
            let w = ((x >> 40) as f32 / (1u64 << 24) as f32 - 0.5) + i as f32 * 1e-7;
            let positive_only = (x >> 20) & 3 == 0;
            offer_signal(&mut top, w, Name::Word(name), positive_only);
            if !(positive_only && w <= 0.0) {
                let e = best.entry(name).or_insert(w);
                if w.abs() > e.abs() {
                    *e = w;
                }
            }
        }
        let mut expected: Vec<(&str, f32)> = best.into_iter().collect();
        expected.sort_by(|a, b| b.1.abs().total_cmp(&a.1.abs()));
        expected.truncate(MAX_SIGNALS);
        let got: Vec<(&str, f32)> = top
            .iter()
            .map(|(_, w, n)| match n {
                Name::Word(s) => (*s, *w),
                _ => ("", *w),
            })
            .collect();
        assert_eq!(got, expected);
    }
}
