//! Labelled examples: reading JSONL, turning source labels into training targets, and the
//! stable train / validation / held-out split.
//!
//! Owns the meaning of the labels: which `difficulty_label`s map to which difficulty target,
//! and which MMLU subjects have broken strong-model outcomes (see the data README).
//!
//! Invariants: the split depends only on an example's id (FNV-1a), so it never changes between
//! runs, machines or data orderings; a bad line is an error naming its file and line.

use std::borrow::Cow;
use std::path::Path;

use serde_json::Value;

use super::input::{Input, ResponseFormat, Turn};
use super::{Error, Task};

/// MMLU subjects whose strong-model answers are broken by a one-token answer format.
pub const BROKEN_OUTCOME_SUBJECTS: [&str; 5] = [
    "high_school_mathematics",
    "college_mathematics",
    "abstract_algebra",
    "elementary_mathematics",
    "high_school_statistics",
];

/// Percent of every source held out for evaluation.
const HELD_OUT_PERCENT: u64 = 20;
/// Percent (after the held-out share) used as a validation split when tuning.
const VALIDATION_PERCENT: u64 = 10;

/// One labelled (or unlabelled) conversation, owning its text.
#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    pub id: String,
    pub source: String,
    pub turns: Vec<Turn<'static>>,
    pub has_tools: bool,
    pub response_format: Option<ResponseFormat>,
    pub max_tokens: Option<u32>,
    pub task: Option<Task>,
    pub task_label_raw: Option<String>,
    /// As in the file: `arena_hard:hard`, `math_level:3`, `easy` / `medium` / `hard`, ...
    pub difficulty_label: Option<String>,
    /// Training target in [0, 1] for `difficulty_score`, derived from outcomes or grades.
    pub difficulty_target: Option<f32>,
    pub strong_correct: Option<f32>,
    pub weak_correct: Option<f32>,
    /// e.g. `high_school_physics` for MMLU.
    pub subject: Option<String>,
    /// True when the strong/weak outcomes are known to be an artefact (broken MMLU subjects).
    pub outcome_broken: bool,
}

impl Example {
    /// Borrowed view for the classifier.
    pub fn input(&self) -> Input<'_> {
        Input {
            turns: self
                .turns
                .iter()
                .map(|t| Turn {
                    role: t.role,
                    text: Cow::Borrowed(t.text.as_ref()),
                })
                .collect(),
            has_tools: self.has_tools,
            response_format: self.response_format,
            max_tokens: self.max_tokens,
        }
    }

    /// Hash of the conversation text, for de-duplication.
    pub(crate) fn text_key(&self) -> u64 {
        let mut h = fnv1a(b"");
        for t in &self.turns {
            h = fnv_fold(h, &[t.role as u8, 0xff]);
            h = fnv_fold(h, t.text.trim().as_bytes());
        }
        h
    }

    /// Whether outcome labels are present and usable for routing quality.
    pub fn has_usable_outcome(&self) -> bool {
        self.strong_correct.is_some() && self.weak_correct.is_some() && !self.outcome_broken
    }
}

fn fnv_fold(mut h: u64, bytes: &[u8]) -> u64 {
    for b in bytes {
        h = (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
    }
    h
}

fn fnv1a(bytes: &[u8]) -> u64 {
    fnv_fold(0xcbf2_9ce4_8422_2325, bytes)
}

/// Stable bucket in 0..100 for an id.
fn split_bucket(id: &str) -> u64 {
    let mut z = fnv1a(id.as_bytes());
    z = (z ^ (z >> 33)).wrapping_mul(0xff51_afd7_ed55_8ccd);
    z = (z ^ (z >> 33)).wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    (z ^ (z >> 33)) % 100
}

/// True for the ~20% of ids held out for evaluation (never used by `train`).
pub fn is_held_out(id: &str) -> bool {
    split_bucket(id) < HELD_OUT_PERCENT
}

/// True for the ~10% of ids in the validation split (part of training unless
/// `TrainConfig::exclude_validation`); tune on this, never on the held-out split.
pub fn is_validation(id: &str) -> bool {
    (HELD_OUT_PERCENT..HELD_OUT_PERCENT + VALIDATION_PERCENT).contains(&split_bucket(id))
}

/// Reads a JSONL file of labelled examples (or plain chat requests). Blank lines are skipped.
pub fn load_jsonl(path: &Path) -> Result<Vec<Example>, Error> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: name.clone(),
        source,
    })?;
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("data")
        .to_owned();
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad = |message: String| Error::BadLine {
            path: name.clone(),
            line: i + 1,
            message,
        };
        let v: Value = serde_json::from_str(line).map_err(|e| bad(format!("invalid JSON: {e}")))?;
        out.push(parse_example(&v, &stem, i + 1).map_err(bad)?);
    }
    Ok(out)
}

fn opt_str(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_owned)
}

fn opt_f32(v: &Value, key: &str) -> Option<f32> {
    match v.get(key) {
        Some(Value::Bool(b)) => Some(if *b { 1.0 } else { 0.0 }),
        Some(x) => x.as_f64().map(|f| f as f32),
        None => None,
    }
}

fn parse_example(v: &Value, stem: &str, line: usize) -> Result<Example, String> {
    if !v.is_object() {
        return Err("expected a JSON object".to_owned());
    }
    let input = Input::from_chat_json(v);
    if input.turns.is_empty() {
        return Err("no `messages` (or `prompt`)".to_owned());
    }
    let task = match v.get("task_label").or_else(|| v.get("task")) {
        Some(Value::String(s)) => Some(s.parse::<Task>().map_err(|e| e.to_string())?),
        Some(Value::Null) | None => None,
        Some(other) => return Err(format!("task label must be a string, got {other}")),
    };
    let difficulty_label = opt_str(v, "difficulty_label").or_else(|| opt_str(v, "difficulty"));
    let difficulty_norm = opt_f32(v, "difficulty_norm");
    let subject = opt_str(v, "subject")
        .or_else(|| opt_str(v, "task_label_raw"))
        .map(|s| s.rsplit('/').next().unwrap_or(&s).to_owned());
    let strong_correct = opt_f32(v, "strong_correct");
    let weak_correct = opt_f32(v, "weak_correct");
    let outcome_broken = strong_correct.is_some()
        && subject
            .as_deref()
            .is_some_and(|s| BROKEN_OUTCOME_SUBJECTS.contains(&s));
    let graded = match difficulty_label.as_deref() {
        Some(l) if l.starts_with("arena_hard") => Some(0.9),
        Some(l) if l.starts_with("math_level") => {
            difficulty_norm.map(|n| 0.25 + 0.6 * n.clamp(0.0, 1.0))
        }
        Some("easy") => Some(0.1),
        Some("medium") => Some(0.45),
        Some("hard") => Some(0.85),
        Some(other) => return Err(format!("unknown difficulty label `{other}`")),
        None => None,
    };
    let outcome = match (strong_correct, weak_correct) {
        (Some(s), Some(w)) if !outcome_broken => Some((s - w).clamp(0.0, 1.0)),
        _ => None,
    };
    let turns = input
        .turns
        .iter()
        .map(|t| Turn {
            role: t.role,
            text: Cow::Owned(t.text.clone().into_owned()),
        })
        .collect();
    Ok(Example {
        id: opt_str(v, "id").unwrap_or_else(|| format!("{stem}:{line}")),
        source: opt_str(v, "source").unwrap_or_else(|| stem.to_owned()),
        turns,
        has_tools: input.has_tools,
        response_format: input.response_format,
        max_tokens: input.max_tokens,
        task,
        task_label_raw: opt_str(v, "task_label_raw"),
        difficulty_label,
        difficulty_target: outcome.or(graded),
        strong_correct,
        weak_correct,
        subject,
        outcome_broken,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    fn write(name: &str, body: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("swyd-clf-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join(name);
        std::fs::write(&p, body).unwrap();
        p
    }

    #[test]
    fn loads_labels_and_targets() {
        let p = write(
            "mix.jsonl",
            concat!(
                r#"{"id":"a","source":"s","messages":[{"role":"user","content":"hi"}],"task_label":"chat","difficulty_label":"easy"}"#,
                "\n\n",
                r#"{"id":"m","source":"mmlu","messages":[{"role":"user","content":"q"}],"task_label":"math","subject":"mmlu/college_mathematics","strong_correct":0.0,"weak_correct":1.0}"#,
                "\n",
                r#"{"id":"n","messages":[{"role":"user","content":"q"}],"task_label_raw":"mmlu/virology","strong_correct":1.0,"weak_correct":0.0}"#,
                "\n",
                r#"{"model":"auto","messages":[{"role":"system","content":"s"},{"role":"user","content":"x"}],"tools":[{"type":"function"}]}"#,
                "\n"
            ),
        );
        let ex = load_jsonl(&p).unwrap();
        assert_eq!(ex.len(), 4);
        assert_eq!(ex[0].task, Some(Task::Chat));
        assert_eq!(ex[0].difficulty_target, Some(0.1));
        assert!(ex[1].outcome_broken && ex[1].difficulty_target.is_none());
        assert_eq!(ex[2].difficulty_target, Some(1.0));
        assert_eq!(ex[2].source, "mix");
        assert_eq!(ex[3].id, "mix:5");
        assert!(ex[3].has_tools && ex[3].task.is_none());
    }

    #[test]
    fn reports_bad_lines_with_numbers() {
        let p = write(
            "bad.jsonl",
            "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}\n{oops\n",
        );
        let e = load_jsonl(&p).unwrap_err().to_string();
        assert!(e.contains("bad.jsonl:2"), "{e}");
        let p = write(
            "bad2.jsonl",
            "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"task_label\":\"poetry\"}\n",
        );
        assert!(
            load_jsonl(&p)
                .unwrap_err()
                .to_string()
                .contains(":1: unknown task `poetry`")
        );
    }

    #[test]
    fn split_is_stable_and_about_a_fifth() {
        let held = (0..10_000)
            .filter(|i| is_held_out(&format!("src:{i}")))
            .count();
        assert!((1800..2200).contains(&held), "{held}");
        let val = (0..10_000)
            .filter(|i| is_validation(&format!("src:{i}")))
            .count();
        assert!((800..1200).contains(&val), "{val}");
        assert!((0..1000).all(|i| !(is_held_out(&i.to_string()) && is_validation(&i.to_string()))));
        assert_eq!(
            is_held_out("gsm8k:train:0001"),
            is_held_out("gsm8k:train:0001")
        );
    }
}
