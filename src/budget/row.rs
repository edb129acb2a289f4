//! The ledger row: one per request, whatever became of it.
//!
//! Invariant: a row never holds prompt or completion text, only ids, labels, token counts and
//! money. The ledger, not the caller, fills `cost`, `overshoot` and `budgets` when a reservation
//! settles, so a row always agrees with the counters it moved.

use std::sync::Arc;

use jiff::Timestamp;

use super::money::MicroUsd;

/// One request's record in the ledger (`requests` table).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Row {
    pub time: Timestamp,
    pub request_id: String,
    /// Virtual key name (never the secret), `"anonymous"` without one.
    pub key: Arc<str>,
    pub team: Option<Arc<str>>,
    pub route: Arc<str>,
    pub task: Option<String>,
    pub difficulty: Option<String>,
    pub difficulty_score: Option<f32>,
    pub model: Arc<str>,
    pub tier: String,
    pub input_tokens: u64,
    pub cached_input_tokens: u64,
    pub output_tokens: u64,
    /// Charged to every budget in `budgets`. Set by the ledger on settle.
    pub cost: MicroUsd,
    /// What the baseline (all-frontier) model would have cost.
    pub baseline_cost: MicroUsd,
    /// `ok | upstream_error | client_gone | rejected | dropped | …`
    pub status: String,
    pub latency_ms: u64,
    /// The cost is an estimate from the tokens seen (usage never arrived).
    pub estimated: bool,
    /// How far `cost` went past the reservation (a provider exceeding its max-token bound).
    /// Set by the ledger on settle.
    pub overshoot: MicroUsd,
    /// (budget name, scope id) charged. Set by the ledger on settle.
    pub budgets: Vec<(Arc<str>, Arc<str>)>,
    /// Why the request went where it did (rules applied, route matched, budget effects),
    /// rendered from the decision's reasons: names only, never prompt text.
    pub reason: String,
    /// Shadow mode: the model the policy would have chosen, and what these tokens would have
    /// cost there.
    pub shadow: Option<Counterfactual>,
}

/// What the policy would have done with a request it only observed (shadow mode).
#[derive(Debug, Clone, PartialEq)]
pub struct Counterfactual {
    pub model: Arc<str>,
    pub cost: MicroUsd,
}

/// `Row::status` of a reservation dropped without commit or release.
pub const STATUS_DROPPED: &str = "dropped";
