//! Evaluation on the held-out split: task accuracy, per-task F1, macro-F1 and the confusion
//! matrix (English and Chinese sources reported apart), routing quality RouteLLM-style (APGR,
//! CPT) where strong/weak outcomes are known and not broken, and difficulty medians per source.
//!
//! Invariant: only examples of the requested split are read, so figures from `evaluate` are
//! never computed on training data.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use super::data::{Example, is_held_out, is_validation};
use super::{Model, Task, Thresholds};

/// Which examples to evaluate on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// The ~20% never used by `train` (report these).
    HeldOut,
    /// The ~10% validation slice (only meaningful for a model trained with
    /// `TrainConfig::exclude_validation`; tune on this).
    Validation,
}

/// Tasks the policy sends to cheap models; the own examples of these are the "routine" set.
const ROUTINE: [Task; 5] = [
    Task::Summarization,
    Task::Translation,
    Task::Extraction,
    Task::Classification,
    Task::Chat,
];

#[derive(Debug, Clone, Serialize)]
pub struct PerTask {
    pub task: Task,
    pub support: usize,
    pub predicted: usize,
    pub precision: f32,
    pub recall: f32,
    pub f1: f32,
}

#[derive(Debug, Clone, Serialize)]
pub struct TaskReport {
    /// "en" (every source but Chinese ones) or "zh".
    pub group: String,
    pub n: usize,
    pub accuracy: f32,
    /// Mean F1 over the tasks with held-out support in this group.
    pub macro_f1: f32,
    pub tasks_with_support: usize,
    pub per_task: Vec<PerTask>,
    /// `confusion[gold][predicted]`, in `Task::ALL` order.
    pub confusion: Vec<Vec<usize>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RoutingReport {
    pub name: String,
    pub n: usize,
    pub strong_accuracy: f32,
    pub weak_accuracy: f32,
    pub apgr: f32,
    /// Smallest share of strong calls recovering 50% / 80% of the strong-weak gap.
    pub cpt50: Option<f32>,
    pub cpt80: Option<f32>,
    /// APGR of ranking by prompt length alone, for comparison (random is about 0.5).
    pub apgr_length_baseline: f32,
}

#[derive(Debug, Clone, Serialize)]
pub struct Median {
    pub name: String,
    pub n: usize,
    pub median: f32,
}

/// Held-out figures. `Display` renders readable tables; `to_json` the same data.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub split: String,
    pub examples: usize,
    pub task: Vec<TaskReport>,
    pub routing: Vec<RoutingReport>,
    pub difficulty_by_source: Vec<Median>,
    pub difficulty_by_label: Vec<Median>,
    pub arena_hard_median: Option<f32>,
    pub routine_median: Option<f32>,
}

impl Report {
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }
}

/// Evaluates `model` on the held-out split of `examples`.
pub fn evaluate(model: &Model, examples: &[Example], thresholds: &Thresholds) -> Report {
    evaluate_split(model, examples, thresholds, Split::HeldOut)
}

fn is_zh(source: &str) -> bool {
    source.ends_with("_zh") || source.contains("belle")
}

fn median(mut v: Vec<f32>) -> Option<f32> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f32::total_cmp);
    let n = v.len();
    let mid = v.get(n / 2).copied()?;
    if n.is_multiple_of(2) {
        Some((v.get(n / 2 - 1).copied()? + mid) / 2.0)
    } else {
        Some(mid)
    }
}

/// Evaluates on the chosen split.
pub fn evaluate_split(
    model: &Model,
    examples: &[Example],
    thresholds: &Thresholds,
    split: Split,
) -> Report {
    let chosen: Vec<&Example> = examples
        .iter()
        .filter(|e| match split {
            Split::HeldOut => is_held_out(&e.id),
            Split::Validation => is_validation(&e.id),
        })
        .collect();
    let scored: Vec<(&Example, Task, f32)> = chosen
        .iter()
        .map(|e| {
            let c = model.classify(&e.input(), thresholds);
            (*e, c.task, c.difficulty_score)
        })
        .collect();

    let mut task = Vec::new();
    for group in ["en", "zh"] {
        let rows: Vec<(Task, Task)> = scored
            .iter()
            .filter(|(e, _, _)| (group == "zh") == is_zh(&e.source))
            .filter_map(|(e, p, _)| e.task.map(|g| (g, *p)))
            .collect();
        if !rows.is_empty() {
            task.push(task_report(group, &rows));
        }
    }

    let mut routing = Vec::new();
    let usable: Vec<(f32, f32, f32, f32, &str)> = scored
        .iter()
        .filter(|(e, _, _)| e.has_usable_outcome())
        .filter_map(|(e, _, s)| {
            let len = e.turns.iter().map(|t| t.text.len()).sum::<usize>() as f32;
            Some((*s, len, e.strong_correct?, e.weak_correct?, e.id.as_str()))
        })
        .collect();
    if !usable.is_empty() {
        routing.push(routing_report(
            "outcomes without broken maths subjects",
            &usable,
        ));
    }
    let broken: Vec<(f32, f32, f32, f32, &str)> = scored
        .iter()
        .filter(|(e, _, _)| e.outcome_broken)
        .filter_map(|(e, _, s)| {
            let len = e.turns.iter().map(|t| t.text.len()).sum::<usize>() as f32;
            Some((*s, len, e.strong_correct?, e.weak_correct?, e.id.as_str()))
        })
        .collect();
    if !broken.is_empty() {
        routing.push(routing_report(
            "broken maths subjects (artefact, for reference)",
            &broken,
        ));
    }

    let mut by_source: BTreeMap<String, Vec<f32>> = BTreeMap::new();
    let mut by_label: BTreeMap<String, Vec<f32>> = BTreeMap::new();
    let (mut arena, mut routine) = (Vec::new(), Vec::new());
    for (e, _, s) in &scored {
        by_source.entry(e.source.clone()).or_default().push(*s);
        if let Some(l) = &e.difficulty_label {
            let key = if l.starts_with("math_level") || l.starts_with("arena_hard") {
                l.clone()
            } else {
                format!("{} ({l})", e.source)
            };
            by_label.entry(key).or_default().push(*s);
        }
        if e.source.starts_with("arena_hard")
            && e.difficulty_label.as_deref() == Some("arena_hard:hard")
        {
            arena.push(*s);
        }
        if e.source.starts_with("switchyard_own") && e.task.is_some_and(|t| ROUTINE.contains(&t)) {
            routine.push(*s);
        }
    }
    let medians = |m: BTreeMap<String, Vec<f32>>| {
        m.into_iter()
            .filter_map(|(name, v)| {
                let n = v.len();
                median(v).map(|median| Median { name, n, median })
            })
            .collect()
    };
    Report {
        split: match split {
            Split::HeldOut => "held-out".to_owned(),
            Split::Validation => "validation".to_owned(),
        },
        examples: chosen.len(),
        task,
        routing,
        difficulty_by_source: medians(by_source),
        difficulty_by_label: medians(by_label),
        arena_hard_median: median(arena),
        routine_median: median(routine),
    }
}

fn task_report(group: &str, rows: &[(Task, Task)]) -> TaskReport {
    let mut confusion = vec![vec![0usize; 11]; 11];
    for (g, p) in rows {
        if let Some(cell) = confusion
            .get_mut(g.index())
            .and_then(|r| r.get_mut(p.index()))
        {
            *cell += 1;
        }
    }
    let correct = rows.iter().filter(|(g, p)| g == p).count();
    let mut per_task = Vec::new();
    for t in Task::ALL {
        let i = t.index();
        let tp = confusion
            .get(i)
            .and_then(|r| r.get(i))
            .copied()
            .unwrap_or(0);
        let support: usize = confusion.get(i).map_or(0, |r| r.iter().sum());
        let predicted: usize = confusion.iter().filter_map(|r| r.get(i)).sum();
        let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f32 / b as f32 };
        let (precision, recall) = (ratio(tp, predicted), ratio(tp, support));
        let f1 = if precision + recall > 0.0 {
            2.0 * precision * recall / (precision + recall)
        } else {
            0.0
        };
        per_task.push(PerTask {
            task: t,
            support,
            predicted,
            precision,
            recall,
            f1,
        });
    }
    let supported: Vec<&PerTask> = per_task.iter().filter(|p| p.support > 0).collect();
    let macro_f1 = supported.iter().map(|p| p.f1).sum::<f32>() / supported.len().max(1) as f32;
    TaskReport {
        group: group.to_owned(),
        n: rows.len(),
        accuracy: correct as f32 / rows.len().max(1) as f32,
        macro_f1,
        tasks_with_support: supported.len(),
        per_task,
        confusion,
    }
}

/// PGR curve of routing the top-k by `key` to the strong model, k = 0..=n.
fn pgr_curve(
    rows: &[(f32, f32, f32, f32, &str)],
    key: impl Fn(&(f32, f32, f32, f32, &str)) -> f32,
) -> Vec<f32> {
    let mut sorted: Vec<&(f32, f32, f32, f32, &str)> = rows.iter().collect();
    // Highest score first; ties broken by id so the figure is deterministic.
    sorted.sort_by(|a, b| key(b).total_cmp(&key(a)).then_with(|| a.4.cmp(b.4)));
    let n = rows.len() as f32;
    let strong: f32 = rows.iter().map(|r| r.2).sum::<f32>() / n;
    let weak: f32 = rows.iter().map(|r| r.3).sum::<f32>() / n;
    let gap = strong - weak;
    let mut quality = weak * n;
    let mut curve = vec![0.0];
    for r in sorted {
        quality += r.2 - r.3;
        curve.push(if gap.abs() < f32::EPSILON {
            0.0
        } else {
            (quality / n - weak) / gap
        });
    }
    curve
}

fn apgr(curve: &[f32]) -> f32 {
    let n = curve.len().saturating_sub(1).max(1) as f32;
    let ends = curve.first().copied().unwrap_or(0.0) + curve.last().copied().unwrap_or(0.0);
    (curve.iter().sum::<f32>() - ends / 2.0) / n
}

fn cpt(curve: &[f32], goal: f32) -> Option<f32> {
    let n = curve.len().saturating_sub(1).max(1) as f32;
    curve
        .iter()
        .position(|p| *p >= goal - 1e-4)
        .map(|k| k as f32 / n)
}

fn routing_report(name: &str, rows: &[(f32, f32, f32, f32, &str)]) -> RoutingReport {
    let n = rows.len();
    let curve = pgr_curve(rows, |r| r.0);
    let by_len = pgr_curve(rows, |r| r.1);
    RoutingReport {
        name: name.to_owned(),
        n,
        strong_accuracy: rows.iter().map(|r| r.2).sum::<f32>() / n.max(1) as f32,
        weak_accuracy: rows.iter().map(|r| r.3).sum::<f32>() / n.max(1) as f32,
        apgr: apgr(&curve),
        cpt50: cpt(&curve, 0.5),
        cpt80: cpt(&curve, 0.8),
        apgr_length_baseline: apgr(&by_len),
    }
}

fn pct(x: Option<f32>) -> String {
    x.map_or_else(|| "n/a".to_owned(), |v| format!("{:.1}%", v * 100.0))
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "split: {} ({} examples)", self.split, self.examples)?;
        for t in &self.task {
            writeln!(
                f,
                "\ntask [{}]: n={}  accuracy={:.3}  macro-F1={:.3} over {} tasks with support",
                t.group, t.n, t.accuracy, t.macro_f1, t.tasks_with_support
            )?;
            writeln!(
                f,
                "  {:<17} {:>7} {:>7} {:>6} {:>6} {:>6}",
                "task", "support", "predict", "prec", "recall", "F1"
            )?;
            for p in t.per_task.iter().filter(|p| p.support + p.predicted > 0) {
                writeln!(
                    f,
                    "  {:<17} {:>7} {:>7} {:>6.3} {:>6.3} {:>6.3}",
                    p.task.as_str(),
                    p.support,
                    p.predicted,
                    p.precision,
                    p.recall,
                    p.f1
                )?;
            }
            writeln!(f, "  confusion (rows gold, columns predicted):")?;
            write!(f, "  {:<17}", "")?;
            for task in Task::ALL {
                write!(f, " {:>5}", task.as_str().get(..5).unwrap_or(task.as_str()))?;
            }
            writeln!(f)?;
            for (task, row) in Task::ALL.iter().zip(&t.confusion) {
                if row.iter().sum::<usize>() == 0 {
                    continue;
                }
                write!(f, "  {:<17}", task.as_str())?;
                for c in row {
                    write!(f, " {c:>5}")?;
                }
                writeln!(f)?;
            }
        }
        for r in &self.routing {
            writeln!(f, "\nrouting [{}]: n={}", r.name, r.n)?;
            writeln!(
                f,
                "  strong acc={:.3}  weak acc={:.3}  APGR={:.3}  CPT(50%)={}  CPT(80%)={}  (length-only APGR={:.3}, random~0.5)",
                r.strong_accuracy,
                r.weak_accuracy,
                r.apgr,
                pct(r.cpt50),
                pct(r.cpt80),
                r.apgr_length_baseline
            )?;
        }
        writeln!(f, "\ndifficulty_score median by source:")?;
        for m in &self.difficulty_by_source {
            writeln!(f, "  {:<40} n={:<6} median={:.3}", m.name, m.n, m.median)?;
        }
        writeln!(f, "difficulty_score median by difficulty label:")?;
        for m in &self.difficulty_by_label {
            writeln!(f, "  {:<40} n={:<6} median={:.3}", m.name, m.n, m.median)?;
        }
        let show = |x: Option<f32>| x.map_or_else(|| "n/a".to_owned(), |v| format!("{v:.3}"));
        writeln!(
            f,
            "Arena-Hard median={}  own routine-task median={}",
            show(self.arena_hard_median),
            show(self.routine_median)
        )
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    #[test]
    fn apgr_of_oracle_random_and_reverse() {
        // Strong right / weak wrong on rows 0..2, both right on the rest.
        let rows: Vec<(f32, f32, f32, f32, &str)> = (0..10)
            .map(|i| {
                let needs = i < 2;
                (
                    if needs { 1.0 } else { 0.0 },
                    0.0,
                    1.0,
                    if needs { 0.0 } else { 1.0 },
                    "x",
                )
            })
            .collect();
        let oracle = pgr_curve(&rows, |r| r.0);
        assert!(apgr(&oracle) > 0.85);
        assert_eq!(cpt(&oracle, 0.5), Some(0.1));
        assert_eq!(cpt(&oracle, 0.8), Some(0.2));
        let reverse = pgr_curve(&rows, |r| -r.0);
        assert!(apgr(&reverse) < 0.15);
    }

    #[test]
    fn macro_f1_and_confusion() {
        let rows = [
            (Task::Code, Task::Code),
            (Task::Code, Task::Math),
            (Task::Math, Task::Math),
        ];
        let r = task_report("en", &rows);
        assert_eq!(r.confusion[0][1], 1);
        assert!((r.accuracy - 2.0 / 3.0).abs() < 1e-6);
        assert_eq!(r.tasks_with_support, 2);
        // code: p=1 r=.5 f1=.667; math: p=.5 r=1 f1=.667
        assert!((r.macro_f1 - 2.0 / 3.0).abs() < 1e-5);
        assert_eq!(median(vec![3.0, 1.0, 2.0, 10.0]), Some(2.5));
    }
}
