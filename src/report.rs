//! `switchyard report`: a month's spend, tokens and savings by a dimension, and each budget's
//! standing, as a table, CSV or JSON. Reads the ledger of a stopped or running proxy.

use std::fmt::Write as _;

use serde_json::json;

use crate::budget::{BudgetState, BudgetStatus, MicroUsd, MonthId, MonthRow};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Table,
    Csv,
    Json,
}

fn savings(cost: MicroUsd, baseline: MicroUsd) -> (MicroUsd, f64) {
    let saved = baseline.saturating_sub(cost);
    let pct = if baseline.0 == 0 {
        0.0
    } else {
        100.0 * saved.as_usd() / baseline.as_usd()
    };
    (saved, pct)
}

fn state_name(state: BudgetState) -> &'static str {
    match state {
        BudgetState::Ok => "ok",
        BudgetState::Warned(_) => "warned",
        BudgetState::Downgrading => "downgrading",
        BudgetState::Capped => "capped",
    }
}

/// Render the report. `by` names the dimension of `rows`; `budgets` is the month's standing
/// (for a past month, at its end: `Ledger::month_status`).
pub fn render(
    month: MonthId,
    by: &str,
    rows: &[MonthRow],
    budgets: &[BudgetStatus],
    format: Format,
) -> String {
    let total = MonthRow::total(rows);
    let mut out = String::new();
    // Every `let _ = write!` below writes to a String, which cannot fail.
    match format {
        Format::Json => {
            let row = |r: &MonthRow| {
                let (saved, pct) = savings(r.cost, r.baseline_cost);
                json!({by: r.group, "requests": r.requests, "input_tokens": r.input_tokens, "cached_input_tokens": r.cached_input_tokens,
                       "output_tokens": r.output_tokens, "cost_usd": r.cost.as_usd(), "baseline_cost_usd": r.baseline_cost.as_usd(),
                       "savings_usd": saved.as_usd(), "savings_pct": pct})
            };
            let budgets: Vec<_> = budgets.iter().map(|b| json!({
                "budget": &*b.budget, "scope": b.scope.as_str(), "scope_id": &*b.scope_id, "spent_usd": b.spent.as_usd(),
                "held_usd": b.held.as_usd(), "limit_usd": b.limit.as_usd(), "remaining_usd": b.remaining.as_usd(),
                "used": b.used.as_fraction(), "state": state_name(b.state), "resets_at": b.resets_at.to_string(),
            })).collect();
            let v = json!({"month": month.to_string(), "by": by, "rows": rows.iter().map(row).collect::<Vec<_>>(), "total": row(&total), "budgets": budgets});
            let _ = writeln!(
                out,
                "{}",
                serde_json::to_string_pretty(&v).unwrap_or_default()
            );
        }
        Format::Csv => {
            let _ = writeln!(
                out,
                "{by},requests,input_tokens,cached_input_tokens,output_tokens,cost_usd,baseline_cost_usd,savings_usd"
            );
            for r in rows.iter().chain(std::iter::once(&total)) {
                let (saved, _) = savings(r.cost, r.baseline_cost);
                let group = if r.group.contains([',', '"']) {
                    format!("\"{}\"", r.group.replace('"', "\"\""))
                } else {
                    r.group.clone()
                };
                let _ = writeln!(
                    out,
                    "{group},{},{},{},{},{:.6},{:.6},{:.6}",
                    r.requests,
                    r.input_tokens,
                    r.cached_input_tokens,
                    r.output_tokens,
                    r.cost.as_usd(),
                    r.baseline_cost.as_usd(),
                    saved.as_usd()
                );
            }
        }
        Format::Table => {
            let _ = writeln!(out, "switchyard report for {month}, by {by}\n");
            let _ = writeln!(
                out,
                "{:<24} {:>9} {:>12} {:>12} {:>13} {:>13} {:>8}",
                by, "requests", "input tok", "output tok", "cost", "baseline", "saved"
            );
            for r in rows.iter().chain(std::iter::once(&total)) {
                let (_, pct) = savings(r.cost, r.baseline_cost);
                let group = if r.group.is_empty() {
                    "(none)"
                } else {
                    &r.group
                };
                let _ = writeln!(
                    out,
                    "{:<24} {:>9} {:>12} {:>12} {:>13} {:>13} {:>7.1}%",
                    group,
                    r.requests,
                    r.input_tokens + r.cached_input_tokens,
                    r.output_tokens,
                    r.cost.to_string(),
                    r.baseline_cost.to_string(),
                    pct
                );
            }
            if !budgets.is_empty() {
                let _ = writeln!(
                    out,
                    "\n{:<20} {:<16} {:>13} {:>13} {:>8} {:<12} resets at",
                    "budget", "scope", "spent", "limit", "used", "state"
                );
                for b in budgets {
                    let scope = format!("{}:{}", b.scope.as_str(), b.scope_id);
                    let _ = writeln!(
                        out,
                        "{:<20} {:<16} {:>13} {:>13} {:>7.1}% {:<12} {}",
                        b.budget,
                        scope,
                        b.spent.to_string(),
                        b.limit.to_string(),
                        b.used.as_fraction() * 100.0,
                        state_name(b.state),
                        b.resets_at
                    );
                }
            }
        }
    }
    out
}
