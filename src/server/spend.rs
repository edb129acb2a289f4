//! Money on the request path: the worst case reserved before forwarding (with `downgrade`
//! and `downgrade_at`), and the charge settled exactly once at the end, as a ledger row.
//!
//! Invariant: every request that reaches a provider holds exactly one `Reservation` and leaves
//! exactly one ledger row; the row for a refused request is written here too.

use std::sync::Arc;
use std::time::Instant;

use jiff::Timestamp;

use crate::budget::{
    self, BudgetState, BudgetStatus, Counterfactual, Durable, Exhausted, Ledger, MicroUsd, OnLimit,
    Price, Reservation, Row, Tenant, Usage,
};
use crate::classify::Difficulty;
use crate::policy::{Model, ModelKind, Policy, Tier};
use crate::providers::StreamEnd;
use crate::route::{Decision, Reason};
use crate::tally::{Entry, Tally};
use crate::telemetry::{RequestSpan, metrics};

/// Input estimate plus the output bound (the request's `max_tokens`, clamped to the model's
/// limit; the model's limit when the request gives none), at the model's prices.
pub fn worst_case(model: &Model, input_tokens: u64, max_tokens: Option<u64>) -> MicroUsd {
    let limit = u64::from(model.max_output_tokens);
    let output = max_tokens.map_or(limit, |n| n.min(limit));
    model.price.cost(&Usage {
        input: input_tokens,
        cached_input: 0,
        output,
    })
}

/// Past `downgrade_at` in any applicable budget, frontier models serve only `hard` requests:
/// drop them from the candidates, or, if none would be left, use the policy's open models.
pub fn keep_frontier_for_hard<'p>(
    policy: &'p Policy,
    decision: &mut Decision<'p>,
    difficulty: Option<Difficulty>,
    statuses: &[BudgetStatus],
    kind: ModelKind,
) {
    let pressed = statuses
        .iter()
        .any(|s| matches!(s.state, BudgetState::Downgrading | BudgetState::Capped));
    if !pressed || difficulty == Some(Difficulty::Hard) {
        return;
    }
    let is_open = |i: &usize| {
        policy
            .model(*i)
            .is_some_and(|m| m.tier == Tier::Open && m.kind == kind)
    };
    let open: Vec<usize> = decision
        .candidates
        .iter()
        .copied()
        .filter(is_open)
        .collect();
    if open.len() == decision.candidates.len() {
        return;
    }
    decision.candidates = if open.is_empty() {
        (0..policy.models.len()).filter(is_open).collect()
    } else {
        open
    };
    decision.reasons.push(Reason::FrontierKeptForHard);
}

/// Reserve the worst case of the first candidate that fits, all or nothing across the
/// tenant's budgets. A refusal by an `on_limit: reject` budget is final; by a `downgrade`
/// budget, the next candidates are tried, then every cheaper model of the kind, most capable
/// (dearest) first. The decision's candidates become the ones still possible. A refusal is
/// `budget::Error::Exhausted`; any other error is the store failing (nothing was reserved).
pub async fn reserve<'p>(
    ledger: &Ledger,
    policy: &'p Policy,
    tenant: &Tenant,
    decision: &mut Decision<'p>,
    input_tokens: u64,
    max_tokens: Option<u64>,
    now: Timestamp,
) -> Result<Reservation, budget::Error> {
    let mut refused: Option<Exhausted> = None;
    let mut cheapest_refused = MicroUsd(u64::MAX);
    for (pos, index) in decision.candidates.iter().enumerate() {
        let Some(model) = policy.model(*index) else {
            continue;
        };
        let cost = worst_case(model, input_tokens, max_tokens);
        match ledger.reserve(tenant, cost, now).await {
            Ok(r) => {
                let rest = decision.candidates.split_off(pos);
                decision.candidates = rest;
                return Ok(r);
            }
            Err(budget::Error::Exhausted(e)) if e.on_limit == OnLimit::Reject => {
                return Err(e.into());
            }
            Err(budget::Error::Exhausted(e)) => {
                decision
                    .reasons
                    .push(Reason::OverBudget { model: &model.name });
                cheapest_refused = cheapest_refused.min(cost);
                refused = Some(e);
            }
            Err(other) => return Err(other),
        }
    }
    let kind = decision
        .candidates
        .first()
        .and_then(|i| policy.model(*i))
        .map_or(ModelKind::Chat, |m| m.kind);
    let mut cheaper: Vec<(MicroUsd, usize)> = policy
        .models
        .iter()
        .enumerate()
        .filter(|(_, m)| m.kind == kind)
        .map(|(i, m)| (worst_case(m, input_tokens, max_tokens), i))
        .filter(|(cost, _)| *cost < cheapest_refused)
        .collect();
    cheaper.sort_by_key(|c| std::cmp::Reverse(c.0));
    for (cost, index) in cheaper {
        match ledger.reserve(tenant, cost, now).await {
            Ok(r) => {
                if let Some(model) = policy.model(index) {
                    decision
                        .reasons
                        .push(Reason::Downgraded { model: &model.name });
                }
                decision.candidates = vec![index];
                return Ok(r);
            }
            Err(budget::Error::Exhausted(e)) => refused = Some(e),
            Err(other) => return Err(other),
        }
    }
    Err(budget::Error::Exhausted(refused.unwrap_or_else(|| {
        Exhausted {
            budget: Arc::from("?"),
            scope_id: Arc::from("?"),
            limit: MicroUsd::ZERO,
            spent: MicroUsd::ZERO,
            held: MicroUsd::ZERO,
            requested: MicroUsd::ZERO,
            resets_at: now,
            on_limit: OnLimit::Reject,
        }
    })))
}

/// A decision's reasons as one line for the ledger: what applied and what was chosen (the
/// routes passed over are left out: they are implied by the one that matched).
pub fn reason_line(reasons: &[Reason<'_>]) -> String {
    reasons
        .iter()
        .filter(|r| {
            !matches!(
                r,
                Reason::RouteSkipped { .. } | Reason::RouteWrongKind { .. }
            )
        })
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// The least any applicable budget can still take, for `x-switchyard-budget-remaining-usd`.
pub fn tightest_remaining(statuses: &[BudgetStatus]) -> Option<MicroUsd> {
    statuses.iter().map(|s| s.remaining).min()
}

/// What is known of a request for its ledger row, before the provider answers.
#[derive(Clone)]
pub struct Facts {
    pub request_id: String,
    pub tenant: Tenant,
    pub route: Arc<str>,
    pub task: Option<&'static str>,
    pub difficulty: Option<&'static str>,
    pub difficulty_score: Option<f32>,
    pub started: Instant,
    pub now: Timestamp,
    /// Shadow mode: the model the policy would have chosen, and its prices.
    pub shadow: Option<(Arc<str>, Price)>,
    /// Why the request went where it did, for its ledger row.
    pub reason: String,
}

impl Facts {
    /// A row for a request that never reached a provider (refused, or all candidates failed).
    pub fn row(&self, model: &str, tier: &str, status: &str) -> Row {
        Row {
            time: self.now,
            request_id: self.request_id.clone(),
            key: self.tenant.key.clone(),
            team: self.tenant.team.clone(),
            route: self.route.clone(),
            task: self.task.map(str::to_owned),
            difficulty: self.difficulty.map(str::to_owned),
            difficulty_score: self.difficulty_score,
            model: Arc::from(model),
            tier: tier.to_owned(),
            status: status.to_owned(),
            reason: self.reason.clone(),
            latency_ms: u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX),
            ..Row::default()
        }
    }
}

/// The charge of one served request: settled once, when its usage is known.
pub struct Charge {
    reservation: Reservation,
    span: RequestSpan,
    facts: Facts,
    tally: Arc<Tally>,
    model: Arc<str>,
    tier: Tier,
    price: Price,
    baseline: Option<Price>,
    streamed: bool,
}

impl Charge {
    pub fn new(
        reservation: Reservation,
        span: RequestSpan,
        facts: Facts,
        tally: Arc<Tally>,
        policy: &Policy,
        model: &Model,
        streamed: bool,
    ) -> Charge {
        Charge {
            reservation,
            span,
            facts,
            tally,
            model: model.name.clone(),
            tier: model.tier,
            price: model.price,
            baseline: policy
                .baseline
                .and_then(|b| policy.model(b))
                .map(|m| m.price),
            streamed,
        }
    }

    /// Charge `usage` (estimated or reported), write the row, count it in the metrics and end
    /// the request's span; the `Durable` resolves when the row is committed.
    pub fn settle(self, usage: Usage, estimated: bool, end: StreamEnd) -> (MicroUsd, Durable) {
        let cost = self.price.cost(&usage);
        let baseline_cost = self.baseline.map_or(cost, |p| p.cost(&usage));
        self.tally.record(&Entry {
            route: &self.facts.route,
            model: &self.model,
            usage,
            cost,
            baseline_cost,
            estimated,
            streamed: self.streamed,
        });
        metrics::record_served(&metrics::Served {
            route: &self.facts.route,
            model: &self.model,
            task: self.facts.task,
            difficulty: self.facts.difficulty,
            status: end.as_str(),
            input_tokens: usage.input,
            cached_input_tokens: usage.cached_input,
            output_tokens: usage.output,
            cost,
            baseline_cost,
        });
        self.span
            .settled(&usage, cost, baseline_cost, estimated, end.as_str());
        let mut row = self
            .facts
            .row(&self.model, self.tier.as_str(), end.as_str());
        row.input_tokens = usage.input;
        row.cached_input_tokens = usage.cached_input;
        row.output_tokens = usage.output;
        row.baseline_cost = baseline_cost;
        row.estimated = estimated;
        row.shadow = self
            .facts
            .shadow
            .as_ref()
            .map(|(model, price)| Counterfactual {
                model: model.clone(),
                cost: price.cost(&usage),
            });
        tracing::debug!(
            route = %self.facts.route,
            model = %self.model,
            input_tokens = usage.input,
            output_tokens = usage.output,
            cost_usd = cost.as_usd(),
            estimated,
            end = end.as_str(),
            "charged"
        );
        (cost, self.reservation.commit(cost, row))
    }
}
