//! `switchyard simulate`: what a new policy would have done with last month's traffic.
//!
//! Each served request of the ledger is re-decided from its stored classification (task,
//! difficulty) and token counts under the new policy, and priced at the chosen model's
//! prices. Pure: the ledger rows come in, a report comes out. What the ledger does not keep
//! cannot be re-applied: requests are taken as `model: auto`, without their headers or text,
//! so `rules` and `when.header` / `when.model` conditions do not match here.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::budget::{MicroUsd, Scope, Served, Usage, month_window};
use crate::classify::{Difficulty, Task};
use crate::policy::{ModelKind, Policy};
use crate::route::{self, Facts};

#[derive(Debug, Default, Clone, Serialize, PartialEq)]
pub struct Mix {
    pub requests: u64,
    pub old_cost_usd: f64,
    pub new_cost_usd: f64,
    #[serde(skip)]
    pub old_cost: MicroUsd,
    #[serde(skip)]
    pub new_cost: MicroUsd,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct BudgetHit {
    pub budget: String,
    pub scope_id: String,
    pub limit_usd: f64,
    /// The local day the cap would have been reached under the new policy, if it would.
    pub new_capped_on: Option<String>,
    /// The same under the recorded traffic.
    pub old_capped_on: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Simulation {
    pub requests: u64,
    /// Requests no route of the new policy serves.
    pub unroutable: u64,
    pub old_cost_usd: f64,
    pub new_cost_usd: f64,
    #[serde(skip)]
    pub old_cost: MicroUsd,
    #[serde(skip)]
    pub new_cost: MicroUsd,
    pub by_task: BTreeMap<String, Mix>,
    /// Requests per tier, recorded (`old`) and re-decided (`new`).
    pub old_by_tier: BTreeMap<String, u64>,
    pub new_by_tier: BTreeMap<String, u64>,
    pub budgets: Vec<BudgetHit>,
}

/// One budget copy's running (recorded, new) spend and the days each crossed the cap.
type Running = (MicroUsd, MicroUsd, Option<String>, Option<String>);

/// Re-decide `served` (oldest first) under `policy`. `old_tier` gives the tier of a recorded
/// model name (from the policy that served it, when known).
pub fn simulate(
    policy: &Policy,
    served: &[Served],
    old_tier: &dyn Fn(&str) -> Option<&'static str>,
) -> Simulation {
    let headers = http::HeaderMap::new();
    let mut sim = Simulation {
        requests: 0,
        unroutable: 0,
        old_cost_usd: 0.0,
        new_cost_usd: 0.0,
        old_cost: MicroUsd::ZERO,
        new_cost: MicroUsd::ZERO,
        by_task: BTreeMap::new(),
        old_by_tier: BTreeMap::new(),
        new_by_tier: BTreeMap::new(),
        budgets: Vec::new(),
    };
    // Per (budget index, scope id): running (old, new) spend and the days they crossed the cap.
    let mut running: BTreeMap<(usize, String), Running> = BTreeMap::new();
    for row in served {
        sim.requests += 1;
        let task = row.task.as_deref().and_then(|t| t.parse::<Task>().ok());
        let difficulty = row
            .difficulty
            .as_deref()
            .and_then(|d| d.parse::<Difficulty>().ok());
        let kind = policy
            .model_named(&row.model)
            .map_or(ModelKind::Chat, |(_, m)| m.kind);
        let facts = Facts {
            requested_model: "auto",
            headers: &headers,
            kind,
            task,
            difficulty,
        };
        let usage = Usage {
            input: row.input_tokens,
            cached_input: row.cached_input_tokens,
            output: row.output_tokens,
        };
        let chosen = route::decide(policy, &facts)
            .ok()
            .and_then(|d| d.candidates.first().and_then(|i| policy.model(*i)));
        let new_cost = match chosen {
            Some(m) => {
                *sim.new_by_tier
                    .entry(m.tier.as_str().to_owned())
                    .or_default() += 1;
                m.price.cost(&usage)
            }
            None => {
                sim.unroutable += 1;
                row.cost
            }
        };
        let old_tier_name = old_tier(&row.model).unwrap_or("unknown");
        *sim.old_by_tier.entry(old_tier_name.to_owned()).or_default() += 1;
        sim.old_cost += row.cost;
        sim.new_cost += new_cost;
        let mix = sim
            .by_task
            .entry(row.task.clone().unwrap_or_else(|| "(none)".to_owned()))
            .or_default();
        mix.requests += 1;
        mix.old_cost += row.cost;
        mix.new_cost += new_cost;
        for (i, b) in policy.budgets.iter().enumerate() {
            let scope_id = match b.scope {
                Scope::Global => Some("global".to_owned()),
                Scope::Team => row.team.clone(),
                Scope::Key => Some(row.key.clone()),
            };
            let Some(scope_id) = scope_id else { continue };
            let day = b.timezone.to_datetime(row.time).date().to_string();
            let entry = running.entry((i, scope_id)).or_default();
            entry.0 += row.cost;
            entry.1 += new_cost;
            if entry.0 >= b.limit && entry.2.is_none() {
                entry.2 = Some(day.clone());
            }
            if entry.1 >= b.limit && entry.3.is_none() {
                entry.3 = Some(day);
            }
        }
    }
    for mix in sim.by_task.values_mut() {
        mix.old_cost_usd = mix.old_cost.as_usd();
        mix.new_cost_usd = mix.new_cost.as_usd();
    }
    sim.old_cost_usd = sim.old_cost.as_usd();
    sim.new_cost_usd = sim.new_cost.as_usd();
    sim.budgets = running
        .into_iter()
        .filter_map(|((i, scope_id), (_, _, old_day, new_day))| {
            let b = policy.budgets.get(i)?;
            Some(BudgetHit {
                budget: b.name.to_string(),
                scope_id,
                limit_usd: b.limit.as_usd(),
                new_capped_on: new_day,
                old_capped_on: old_day,
            })
        })
        .collect();
    sim
}

/// The UTC calendar month `[start, end)` of `month` (`YYYY-MM`), for reading the ledger.
pub fn month_bounds(month: crate::budget::MonthId) -> Option<(jiff::Timestamp, jiff::Timestamp)> {
    let date = jiff::civil::Date::new(month.year(), month.month(), 1).ok()?;
    let start = jiff::tz::TimeZone::UTC
        .to_ambiguous_timestamp(date.to_datetime(jiff::civil::Time::midnight()))
        .unambiguous()
        .ok()?;
    let w = month_window(&jiff::tz::TimeZone::UTC, start);
    Some((w.start, w.end))
}

/// A readable table.
pub fn render(sim: &Simulation) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    // Every `let _ = writeln!` below writes to a String, which cannot fail.
    let delta = sim.new_cost_usd - sim.old_cost_usd;
    let pct = if sim.old_cost_usd > 0.0 {
        100.0 * delta / sim.old_cost_usd
    } else {
        0.0
    };
    let _ = writeln!(
        out,
        "{} requests re-decided ({} unroutable under the new policy)",
        sim.requests, sim.unroutable
    );
    let _ = writeln!(
        out,
        "recorded cost {}   new policy {}   change {:+.6} USD ({pct:+.1}%)\n",
        sim.old_cost, sim.new_cost, delta
    );
    let _ = writeln!(
        out,
        "{:<18} {:>9} {:>14} {:>14}",
        "task", "requests", "recorded", "new policy"
    );
    for (task, m) in &sim.by_task {
        let _ = writeln!(
            out,
            "{:<18} {:>9} {:>14} {:>14}",
            task,
            m.requests,
            m.old_cost.to_string(),
            m.new_cost.to_string()
        );
    }
    let _ = writeln!(
        out,
        "\nrequests by tier: recorded {:?}, new policy {:?}",
        sim.old_by_tier, sim.new_by_tier
    );
    for b in &sim.budgets {
        let _ = writeln!(
            out,
            "budget {} ({}), limit ${:.2}: recorded traffic capped on {}; new policy capped on {}",
            b.budget,
            b.scope_id,
            b.limit_usd,
            b.old_capped_on.as_deref().unwrap_or("never"),
            b.new_capped_on.as_deref().unwrap_or("never")
        );
    }
    out
}
