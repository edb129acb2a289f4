//! The JSON API under `/api/v1`, and `/metrics` and `/readyz`. Every figure the page shows
//! comes from here. Money is USD as a JSON number, exact to the micro-dollar (the ledger's
//! integer micro-dollars divided by 10^6); the display currency is only a rate for the page.
//!
//! Months are UTC calendar months (`YYYY-MM`, default: the current one), as the `daily`
//! rollups are kept; budgets use their own time zone's month of the same name. Store reads
//! are blocking SQLite queries over rollups, run on the blocking pool.

use http::{Response, StatusCode};
use jiff::Timestamp;
use serde_json::{Value, json};

use super::{Body, error, json, text};
use crate::AppState;
use crate::budget::{
    BudgetState, BudgetStatus, Dimension, MicroUsd, MonthId, MonthRow, forecast, month_window,
    window_of,
};
use crate::classify::{Difficulty, Task};
use crate::telemetry::metrics;

/// Rows `/api/v1/recent` returns at most.
const MAX_RECENT: u32 = 500;
const DEFAULT_RECENT: u32 = 50;

/// Why a call was refused.
pub(super) enum Refusal {
    BadParam {
        param: &'static str,
        message: String,
    },
    Internal(Box<dyn std::error::Error + Send + Sync>),
}

impl From<crate::budget::Error> for Refusal {
    fn from(e: crate::budget::Error) -> Self {
        Refusal::Internal(e.into())
    }
}

impl From<tokio::task::JoinError> for Refusal {
    fn from(e: tokio::task::JoinError) -> Self {
        Refusal::Internal(e.into())
    }
}

/// The query string, decoded.
#[derive(Debug, Default)]
pub(super) struct Params {
    month: Option<String>,
    by: Option<String>,
    limit: Option<String>,
}

impl Params {
    pub(super) fn parse(query: &str) -> Params {
        let mut p = Params::default();
        for pair in query.split('&') {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let v = Some(percent_decode(v));
            match k {
                "month" => p.month = v,
                "by" => p.by = v,
                "limit" => p.limit = v,
                _ => {}
            }
        }
        p
    }

    /// The month asked for, and whether it is the current (UTC) one.
    fn month(&self, now: Timestamp) -> Result<(MonthId, bool), Refusal> {
        let current = month_window(&jiff::tz::TimeZone::UTC, now).month;
        match self.month.as_deref().filter(|m| !m.is_empty()) {
            None => Ok((current, true)),
            Some(text) => match MonthId::parse(text) {
                Some(m) if text.len() == 7 => Ok((m, m == current)),
                _ => Err(Refusal::BadParam {
                    param: "month",
                    message: format!("month `{text}` is not YYYY-MM"),
                }),
            },
        }
    }
}

/// `%XX` and `+` decoding of one query value; malformed escapes are kept as written.
pub(super) fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let hex = |j: usize| bytes.get(j).and_then(|c| (*c as char).to_digit(16));
        match b {
            b'+' => out.push(b' '),
            b'%' => match (hex(i + 1), hex(i + 2)) {
                (Some(h), Some(l)) => {
                    out.push(u8::try_from(h * 16 + l).unwrap_or(b'?'));
                    i += 2;
                }
                _ => out.push(b),
            },
            _ => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn usd(m: MicroUsd) -> f64 {
    m.as_usd()
}

pub(super) fn state_name(state: BudgetState) -> &'static str {
    match state {
        BudgetState::Ok => "ok",
        BudgetState::Warned(_) => "warned",
        BudgetState::Downgrading => "downgrading",
        BudgetState::Capped => "capped",
    }
}

fn currency(state: &AppState) -> Value {
    match &state.policy.snapshot().display_currency {
        Some(c) => json!({"code": &*c.code, "per_usd": c.per_usd}),
        None => json!({"code": "USD", "per_usd": 1.0}),
    }
}

/// `GET /api/v1/budgets?month=`: every budget copy's standing and forecast.
/// With PostgreSQL the current month is re-read first, so every replica answers the same.
pub(super) async fn budgets(state: &AppState, params: &Params) -> Result<Value, Refusal> {
    let now = (state.clock)();
    let (month, current) = params.month(now)?;
    let ledger = state.ledger.clone();
    let statuses = tokio::task::spawn_blocking(move || {
        if current {
            ledger.refresh(now)?;
            Ok::<_, crate::budget::Error>(ledger.all_status(now))
        } else {
            let spent = ledger.store().month_spend(month)?;
            Ok(ledger.month_status(month, &spent))
        }
    })
    .await??;
    let specs = state.ledger.specs();
    let rows: Vec<Value> = statuses
        .iter()
        .map(|b| {
            let spec = specs.iter().find(|s| s.name == b.budget);
            let f = forecast(b.spent, b.limit, b.starts_at, b.resets_at, now);
            json!({
                "budget": &*b.budget,
                "scope": b.scope.as_str(),
                "scope_id": &*b.scope_id,
                "month": b.month.to_string(),
                "on_limit": match b.on_limit { crate::budget::OnLimit::Reject => "reject", crate::budget::OnLimit::Downgrade => "downgrade" },
                "limit_usd": usd(b.limit),
                "spent_usd": usd(b.spent),
                "held_usd": usd(b.held),
                "remaining_usd": usd(b.remaining),
                "used": b.used.as_fraction(),
                "state": state_name(b.state),
                "warned_at": match b.state { BudgetState::Warned(at) => Some(at.as_fraction()), _ => None },
                "warn_at": spec.map(|s| s.warn_at.iter().map(|p| p.as_fraction()).collect::<Vec<_>>()).unwrap_or_default(),
                "downgrade_at": spec.and_then(|s| s.downgrade_at).map(|p| p.as_fraction()),
                "starts_at": b.starts_at.to_string(),
                "resets_at": b.resets_at.to_string(),
                "burn_usd_per_day": usd(f.burn_per_day),
                "projected_usd": usd(f.projected),
                "cap_reached_at": f.cap_at.map(|t| t.to_string()),
            })
        })
        .collect();
    Ok(json!({
        "month": month.to_string(),
        "current": current,
        "now": now.to_string(),
        "currency": currency(state),
        "budgets": rows,
    }))
}

/// Blocking store work on the blocking pool.
async fn blocking<T: Send + 'static>(
    state: &AppState,
    f: impl FnOnce(&crate::budget::Store) -> Result<T, crate::budget::Error> + Send + 'static,
) -> Result<T, Refusal> {
    let ledger = state.ledger.clone();
    Ok(tokio::task::spawn_blocking(move || f(ledger.store())).await??)
}

fn savings(cost: MicroUsd, baseline: MicroUsd) -> (f64, f64) {
    let saved = baseline.saturating_sub(cost);
    let pct = if baseline.0 == 0 {
        0.0
    } else {
        100.0 * saved.as_usd() / baseline.as_usd()
    };
    (usd(saved), pct)
}

fn share(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

fn month_row(by: &str, r: &MonthRow, all: &MonthRow) -> Value {
    let (saved, pct) = savings(r.cost, r.baseline_cost);
    json!({
        by: r.group,
        "requests": r.requests,
        "input_tokens": r.input_tokens,
        "cached_input_tokens": r.cached_input_tokens,
        "output_tokens": r.output_tokens,
        "cost_usd": usd(r.cost),
        "baseline_cost_usd": usd(r.baseline_cost),
        "savings_usd": saved,
        "savings_pct": pct,
        "share_of_requests": share(r.requests, all.requests),
        "share_of_cost": share(r.cost.0, all.cost.0),
    })
}

/// `GET /api/v1/spend?by=&month=`: a month's requests, tokens, cost and savings by a dimension.
pub(super) async fn spend(state: &AppState, params: &Params) -> Result<Value, Refusal> {
    let now = (state.clock)();
    let (month, current) = params.month(now)?;
    let by = params.by.as_deref().unwrap_or("model");
    let dimension = match by {
        "task" => Dimension::Task,
        "model" => Dimension::Model,
        "route" => Dimension::Route,
        "team" => Dimension::Team,
        "key" => Dimension::Key,
        "tier" => Dimension::Tier,
        other => {
            return Err(Refusal::BadParam {
                param: "by",
                message: format!("by `{other}` is not one of task, model, route, team, key, tier"),
            });
        }
    };
    let rows = blocking(state, move |s| s.month_rows(month, dimension)).await?;
    let total = MonthRow::total(&rows);
    Ok(json!({
        "month": month.to_string(),
        "current": current,
        "by": by,
        "currency": currency(state),
        "rows": rows.iter().map(|r| month_row(by, r, &total)).collect::<Vec<_>>(),
        "total": month_row(by, &total, &total),
    }))
}

/// `GET /api/v1/daily?month=`: every UTC day of the month, zero-filled.
pub(super) async fn daily(state: &AppState, params: &Params) -> Result<Value, Refusal> {
    let now = (state.clock)();
    let (month, current) = params.month(now)?;
    let rows = blocking(state, move |s| s.month_days(month)).await?;
    let window = window_of(&jiff::tz::TimeZone::UTC, month);
    let mut days = Vec::new();
    let mut day = jiff::tz::TimeZone::UTC.to_datetime(window.start).date();
    let mut cumulative = MicroUsd::ZERO;
    while let Ok(ts) = jiff::tz::TimeZone::UTC.to_timestamp(jiff::civil::DateTime::from(day)) {
        if ts >= window.end {
            break;
        }
        let name = day.to_string();
        let row = rows.iter().find(|r| r.day == name);
        let (requests, cost, baseline) = row.map_or((0, MicroUsd::ZERO, MicroUsd::ZERO), |r| {
            (r.requests, r.cost, r.baseline_cost)
        });
        cumulative += cost;
        days.push(json!({
            "day": name,
            "requests": requests,
            "cost_usd": usd(cost),
            "baseline_cost_usd": usd(baseline),
            "cumulative_cost_usd": usd(cumulative),
        }));
        match day.tomorrow() {
            Ok(next) => day = next,
            Err(_) => break,
        }
    }
    Ok(
        json!({"month": month.to_string(), "current": current, "currency": currency(state), "days": days}),
    )
}

/// `GET /api/v1/grid?month=`: requests and cost per task × difficulty.
pub(super) async fn grid(state: &AppState, params: &Params) -> Result<Value, Refusal> {
    let now = (state.clock)();
    let (month, current) = params.month(now)?;
    let cells = blocking(state, move |s| s.month_grid(month)).await?;
    let tasks: Vec<&str> = Task::ALL.iter().map(|t| t.as_str()).collect();
    let difficulties: Vec<&str> = [Difficulty::Easy, Difficulty::Medium, Difficulty::Hard]
        .iter()
        .map(|d| d.as_str())
        .collect();
    Ok(json!({
        "month": month.to_string(),
        "current": current,
        "tasks": tasks,
        "difficulties": difficulties,
        "cells": cells.iter().map(|c| json!({
            "task": c.task, "difficulty": c.difficulty, "requests": c.requests, "cost_usd": usd(c.cost),
        })).collect::<Vec<_>>(),
    }))
}

/// `GET /api/v1/recent?limit=&month=`: the latest ledger rows (newest first); with `month`,
/// the latest of that month.
pub(super) async fn recent(state: &AppState, params: &Params) -> Result<Value, Refusal> {
    let now = (state.clock)();
    let (month, current) = params.month(now)?;
    let limit = match params.limit.as_deref() {
        None | Some("") => DEFAULT_RECENT,
        Some(text) => match text.parse::<u32>() {
            Ok(n) if (1..=MAX_RECENT).contains(&n) => n,
            _ => {
                return Err(Refusal::BadParam {
                    param: "limit",
                    message: format!("limit `{text}` is not a number from 1 to {MAX_RECENT}"),
                });
            }
        },
    };
    let before = window_of(&jiff::tz::TimeZone::UTC, month).end;
    let rows = blocking(state, move |s| s.recent(before, limit)).await?;
    let rows: Vec<Value> = rows
        .iter()
        .map(|r| {
            let time = Timestamp::from_microsecond(r.time_us)
                .map_or_else(|_| String::new(), |t| t.to_string());
            json!({
                "time": time,
                "request_id": r.request_id,
                "key": r.key,
                "team": r.team,
                "task": r.task,
                "difficulty": r.difficulty,
                "route": r.route,
                "model": r.model,
                "tier": r.tier,
                "input_tokens": r.input_tokens,
                "cached_input_tokens": r.cached_input_tokens,
                "output_tokens": r.output_tokens,
                "cost_usd": usd(r.cost),
                "baseline_cost_usd": usd(r.baseline_cost),
                "latency_ms": r.latency_ms,
                "status": r.status,
                "estimated": r.estimated,
                "reason": r.reason,
            })
        })
        .collect();
    Ok(json!({"month": month.to_string(), "current": current, "limit": limit, "requests": rows}))
}

/// A base URL without credentials or query (`https://user:pass@host/v1?key=…` → `https://host/v1`).
fn redact_url(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let rest = rest.split(['?', '#']).next().unwrap_or("");
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    format!("{scheme}://{host}{path}")
}

/// `GET /api/v1/policy`: the live policy's shape and the last reload. Built field by field so
/// that no secret can slip in: provider keys and header values are never read here, virtual
/// keys appear by name only.
pub(super) fn policy(state: &AppState) -> Value {
    let p = state.policy.snapshot();
    let model_name = |i: &usize| p.model(*i).map(|m| m.name.to_string());
    json!({
        "source": &*p.source,
        "mode": match p.mode { crate::policy::Mode::Enforce => "enforce", crate::policy::Mode::Shadow => "shadow" },
        "baseline": p.baseline.as_ref().and_then(model_name),
        "display_currency": p.display_currency.as_ref().map(|c| json!({"code": &*c.code, "per_usd": c.per_usd})),
        "providers": p.providers.iter().map(|pr| json!({
            "name": &*pr.name,
            "kind": pr.kind.as_str(),
            "base_url": redact_url(&pr.base_url),
            "api_key": pr.api_key.as_ref().map(|_| "[redacted]"),
            "headers": pr.headers.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "models": p.models.iter().map(|m| json!({
            "name": &*m.name,
            "provider": p.providers.get(m.provider).map(|pr| &*pr.name),
            "upstream": &*m.upstream,
            "tier": m.tier.as_str(),
            "kind": match m.kind { crate::policy::ModelKind::Chat => "chat", crate::policy::ModelKind::Embedding => "embedding" },
            "price_usd_per_mtok": { "input": usd(m.price.input), "cached_input": usd(m.price.cached_input), "output": usd(m.price.output) },
        })).collect::<Vec<_>>(),
        "routes": p.routes.iter().map(|r| json!({
            "name": &*r.name,
            "when": {
                "model": r.when.models.iter().map(|m| &**m).collect::<Vec<_>>(),
                "header": r.when.headers.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
                "task": r.when.tasks.iter().map(|t| t.as_str()).collect::<Vec<_>>(),
                "difficulty": r.when.difficulties.iter().map(|d| d.as_str()).collect::<Vec<_>>(),
            },
            "use": r.candidates.iter().filter_map(model_name).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "rules": p.rules.iter().map(|r| json!({
            "name": &*r.name,
            "task": r.task.map(Task::as_str),
            "difficulty": r.difficulty.map(Difficulty::as_str),
        })).collect::<Vec<_>>(),
        "budgets": p.budgets.iter().map(|b| json!({
            "name": &*b.name,
            "scope": b.scope.as_str(),
            "limit_usd": usd(b.limit),
            "timezone": b.timezone.iana_name().unwrap_or("UTC"),
            "on_limit": match b.on_limit { crate::budget::OnLimit::Reject => "reject", crate::budget::OnLimit::Downgrade => "downgrade" },
            "downgrade_at": b.downgrade_at.map(|x| x.as_fraction()),
            "warn_at": b.warn_at.iter().map(|x| x.as_fraction()).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "keys": p.keys.iter().map(|k| json!({"name": &*k.name, "team": k.team.as_deref()})).collect::<Vec<_>>(),
        "reload": state.reloader.status(),
    })
}

/// `POST /api/v1/policy/reload`: read, validate and swap the policy file, like SIGHUP. 200
/// with the new status, or 422 with every error (file:line:column) and the old policy kept.
pub(super) async fn reload(state: &AppState) -> Response<Body> {
    let s = state.clone();
    // Reading the file (and maybe classifier weights) is blocking I/O.
    let outcome = tokio::task::spawn_blocking(move || s.reload().map_err(|e| e.to_string())).await;
    let status = state.reloader.status();
    match outcome {
        Ok(Ok(())) => json(StatusCode::OK, &json!({"ok": true, "reload": status})),
        Ok(Err(_)) => json(
            StatusCode::UNPROCESSABLE_ENTITY,
            &json!({"ok": false, "errors": status.errors, "reload": status}),
        ),
        Err(join) => {
            tracing::error!(error = %join, "policy reload task failed");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error; see the logs",
                "internal_error",
            )
        }
    }
}

/// `GET /readyz`: the ledger answers a read.
pub(super) async fn ready(state: &AppState) -> Response<Body> {
    match blocking(state, |s| s.ping()).await {
        Ok(()) => text(StatusCode::OK, "ready\n"),
        Err(_) => text(StatusCode::SERVICE_UNAVAILABLE, "ledger unavailable\n"),
    }
}

/// The gauges of one budget: its most-used copy this month.
fn budget_gauges(statuses: &[BudgetStatus], now: Timestamp) {
    let mut names: Vec<&std::sync::Arc<str>> = statuses.iter().map(|s| &s.budget).collect();
    names.dedup();
    for name in names {
        let Some(top) = statuses
            .iter()
            .filter(|s| s.budget == *name)
            .max_by_key(|s| s.used)
        else {
            continue;
        };
        let f = forecast(top.spent, top.limit, top.starts_at, top.resets_at, now);
        metrics::record_budget(&metrics::BudgetGauges {
            budget: &top.budget,
            spent: top.spent,
            limit: top.limit,
            remaining: top.remaining,
            projected: f.projected,
            used: top.used.as_fraction(),
        });
    }
}

/// `GET /metrics`: the budget gauges refreshed from the ledger, then the Prometheus text.
pub(super) fn metrics(
    state: &AppState,
    handle: Option<&metrics_exporter_prometheus::PrometheusHandle>,
) -> Response<Body> {
    let Some(handle) = handle else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "no metrics recorder is installed",
            "metrics_unavailable",
        );
    };
    let now = (state.clock)();
    budget_gauges(&state.ledger.all_status(now), now);
    handle.run_upkeep();
    let mut rsp = Response::new(super::full(handle.render()));
    rsp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    rsp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_credentials_and_queries() {
        assert_eq!(
            redact_url("https://u:p@api.example.com/v1?key=s#x"),
            "https://api.example.com/v1"
        );
        assert_eq!(
            redact_url("http://127.0.0.1:11434/v1"),
            "http://127.0.0.1:11434/v1"
        );
    }

    #[test]
    fn query_values_are_percent_decoded() {
        assert_eq!(percent_decode("a%20b+c%2"), "a b c%2");
        let p = Params::parse("month=2026-11&by=team&limit=5&x=1");
        assert_eq!(
            (p.month.as_deref(), p.by.as_deref(), p.limit.as_deref()),
            (Some("2026-11"), Some("team"), Some("5"))
        );
    }
}
