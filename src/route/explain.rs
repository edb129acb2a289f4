//! What `switchyard explain` and the `x-switchyard-dry-run: 1` header show: the
//! classification, the overrides, the matched route, each candidate with its worst-case cost,
//! and the reasons. Pure, built from a decision already made.

use serde::Serialize;

use super::{Decision, Reason};
use crate::budget::{MicroUsd, Usage};
use crate::classify::{Classification, Difficulty, Task};
use crate::policy::Policy;

#[derive(Debug, Serialize)]
pub struct Explanation {
    pub dry_run: bool,
    /// What the classifier said (absent for embeddings).
    pub classification: Option<Classification>,
    /// The task and difficulty routing used, after rules.
    pub task: Option<Task>,
    pub difficulty: Option<Difficulty>,
    pub route: Option<String>,
    pub candidates: Vec<Candidate>,
    pub reasons: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct Candidate {
    pub model: String,
    pub provider: String,
    pub upstream_model: String,
    pub tier: &'static str,
    /// The input bound a reservation holds (bytes sent plus template overhead).
    pub input_tokens_bound: u64,
    pub max_output_tokens: u64,
    /// The input bound plus the output bound, at the model's prices: what a reservation holds.
    pub worst_case_cost_usd: f64,
    #[serde(skip)]
    pub worst_case: MicroUsd,
}

/// Explain a decision (or its absence) for a request of at most `input_tokens` asking for at most
/// `max_tokens` output tokens.
#[allow(clippy::too_many_arguments)]
pub fn explain(
    policy: &Policy,
    classification: Option<Classification>,
    task: Option<Task>,
    difficulty: Option<Difficulty>,
    decision: Result<&Decision<'_>, &[Reason<'_>]>,
    input_tokens: u64,
    max_tokens: Option<u64>,
) -> Explanation {
    let (route, candidates, reasons) = match decision {
        Ok(d) => (
            Some(d.route.name.to_string()),
            d.candidates.as_slice(),
            d.reasons.as_slice(),
        ),
        Err(reasons) => (None, &[][..], reasons),
    };
    let candidates = candidates
        .iter()
        .filter_map(|i| policy.model(*i))
        .map(|m| {
            let output = max_tokens.map_or(u64::from(m.max_output_tokens), |n| {
                n.min(u64::from(m.max_output_tokens))
            });
            let worst_case = m.price.cost(&Usage {
                input: input_tokens,
                cached_input: 0,
                output,
            });
            Candidate {
                model: m.name.to_string(),
                provider: policy
                    .provider_of(m)
                    .map_or_else(String::new, |p| p.name.to_string()),
                upstream_model: m.upstream.to_string(),
                tier: m.tier.as_str(),
                input_tokens_bound: input_tokens,
                max_output_tokens: output,
                worst_case_cost_usd: worst_case.as_usd(),
                worst_case,
            }
        })
        .collect();
    Explanation {
        dry_run: true,
        classification,
        task,
        difficulty,
        route,
        candidates,
        reasons: reasons.iter().map(ToString::to_string).collect(),
    }
}
