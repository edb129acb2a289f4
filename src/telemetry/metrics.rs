//! Every Prometheus metric switchyard exports: the names (one home each), the histogram
//! buckets, the recorder, and small helpers so the request path records a fact in one line.
//!
//! Names are `switchyard_<thing>_<unit>`. Money counters are integer micro-dollars (the
//! `metrics` crate counts in `u64`, and money is never a float here); gauges are USD for
//! reading. Labels come ONLY from bounded sets — `route`, `model`, `task`, `difficulty` (the
//! policy's and the classifier's vocabularies), `budget` (policy names), `status` (fixed
//! strings) — never key or team ids, which grow with the number of tenants.
//!
//! The recorder is global (the `metrics` crate's design), installed once by `main`; tests
//! install their own. Without a recorder every call here is a cheap no-op.

use std::time::Duration;

use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{
    BuildError, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

use crate::budget::MicroUsd;

/// Requests served by a provider (settled), by route, model, task, difficulty and how they
/// ended (`ok`, `upstream_failed`, `client_gone`).
pub const REQUESTS_TOTAL: &str = "switchyard_requests_total";
/// Tokens billed at the input price, by route and model.
pub const INPUT_TOKENS_TOTAL: &str = "switchyard_input_tokens_total";
/// Tokens billed at the cached-input price, by route and model.
pub const CACHED_INPUT_TOKENS_TOTAL: &str = "switchyard_cached_input_tokens_total";
/// Tokens generated, by route and model.
pub const OUTPUT_TOKENS_TOTAL: &str = "switchyard_output_tokens_total";
/// What served requests cost, in micro-dollars, by route, model, task and difficulty.
pub const COST_MICRODOLLARS_TOTAL: &str = "switchyard_cost_microdollars_total";
/// What the same tokens would have cost on the policy's baseline model, in micro-dollars.
pub const BASELINE_COST_MICRODOLLARS_TOTAL: &str = "switchyard_baseline_cost_microdollars_total";
/// Baseline cost minus cost (never negative per request), in micro-dollars.
pub const SAVINGS_MICRODOLLARS_TOTAL: &str = "switchyard_savings_microdollars_total";

/// Committed spend this month of the budget's most-used copy, by budget.
pub const BUDGET_SPENT_USD: &str = "switchyard_budget_spent_usd";
/// The budget's limit (per copy), by budget.
pub const BUDGET_LIMIT_USD: &str = "switchyard_budget_limit_usd";
/// What the most-used copy can still take, by budget.
pub const BUDGET_REMAINING_USD: &str = "switchyard_budget_remaining_usd";
/// Month-end spend of the most-used copy if this month's average rate holds, by budget.
pub const BUDGET_PROJECTED_USD: &str = "switchyard_budget_projected_usd";
/// (spent + held) / limit of the most-used copy, by budget; 1 or more is capped.
pub const BUDGET_USED_RATIO: &str = "switchyard_budget_used_ratio";

/// Time to classify a request (task and difficulty).
pub const CLASSIFY_SECONDS: &str = "switchyard_classify_seconds";
/// Time from the request's arrival until it is handed to a provider (body read, parse,
/// classify, route, reserve): what switchyard adds before the upstream starts.
pub const PROXY_OVERHEAD_SECONDS: &str = "switchyard_proxy_overhead_seconds";
/// Time until a provider's response headers, by model.
pub const UPSTREAM_SECONDS: &str = "switchyard_upstream_seconds";

/// A candidate that failed before the first byte (the next one is tried), by model.
pub const FALLBACKS_TOTAL: &str = "switchyard_fallbacks_total";
/// Provider failures (`server_error`, `rate_limited`, `unavailable`), by model and status.
pub const UPSTREAM_ERRORS_TOTAL: &str = "switchyard_upstream_errors_total";
/// Requests escalated to a stronger model after a weak answer, by route.
pub const ESCALATIONS_TOTAL: &str = "switchyard_escalations_total";
/// Requests moved to a cheaper model by a budget (`downgrade`, `downgrade_at`), by route.
pub const DOWNGRADES_TOTAL: &str = "switchyard_downgrades_total";
/// Requests refused with 429 `budget_exceeded`, by the budget that refused.
pub const REJECTIONS_TOTAL: &str = "switchyard_rejections_total";
/// Policy reload attempts, by status (`ok`, `failed`).
pub const POLICY_RELOADS_TOTAL: &str = "switchyard_policy_reloads_total";
/// 1 when the last policy reload attempt succeeded (or none was made), 0 when it was refused.
pub const POLICY_LAST_RELOAD_OK: &str = "switchyard_policy_last_reload_ok";

/// Every metric name above, for the tests that check the Grafana dashboard and alert rules.
pub const ALL: &[&str] = &[
    REQUESTS_TOTAL,
    INPUT_TOKENS_TOTAL,
    CACHED_INPUT_TOKENS_TOTAL,
    OUTPUT_TOKENS_TOTAL,
    COST_MICRODOLLARS_TOTAL,
    BASELINE_COST_MICRODOLLARS_TOTAL,
    SAVINGS_MICRODOLLARS_TOTAL,
    BUDGET_SPENT_USD,
    BUDGET_LIMIT_USD,
    BUDGET_REMAINING_USD,
    BUDGET_PROJECTED_USD,
    BUDGET_USED_RATIO,
    CLASSIFY_SECONDS,
    PROXY_OVERHEAD_SECONDS,
    UPSTREAM_SECONDS,
    FALLBACKS_TOTAL,
    UPSTREAM_ERRORS_TOTAL,
    ESCALATIONS_TOTAL,
    DOWNGRADES_TOTAL,
    REJECTIONS_TOTAL,
    POLICY_RELOADS_TOTAL,
    POLICY_LAST_RELOAD_OK,
];

/// Latency buckets in seconds: 10 µs (classification) to 2 minutes (long generations).
const BUCKETS: &[f64] = &[
    0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025,
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];

/// A Prometheus recorder with switchyard's buckets (histograms, not summaries, so Grafana can
/// aggregate quantiles across replicas). `main` installs it; tests may keep it local.
pub fn recorder() -> Result<PrometheusRecorder, BuildError> {
    Ok(PrometheusBuilder::new()
        .set_buckets(BUCKETS)?
        .build_recorder())
}

/// How often the installed recorder folds its histogram samples into buckets.
const UPKEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Install the recorder process-wide (once, from `main`) and describe every metric; the
/// handle renders `/metrics`. Also starts the upkeep thread: the recorder keeps every histogram
/// observation until an upkeep folds it into the buckets, and `/metrics` alone runs one only
/// when scraped, so a proxy nobody scraped grew by ~48 bytes per request without end
/// (`bench/soak.sh`, docs/BENCHMARKS.md).
pub fn install() -> Result<PrometheusHandle, BuildError> {
    let recorder = recorder()?;
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder).map_err(BuildError::FailedToSetGlobalRecorder)?;
    describe();
    record_reload(true);
    let upkeep = handle.clone();
    if let Err(err) = std::thread::Builder::new()
        .name("metrics-upkeep".to_owned())
        .spawn(move || {
            loop {
                std::thread::sleep(UPKEEP_EVERY);
                upkeep.run_upkeep();
            }
        })
    {
        tracing::warn!(error = %err, "cannot start the metrics upkeep thread; histograms are folded only when /metrics is scraped");
    }
    Ok(handle)
}

/// One settled request, as the counters see it.
pub struct Served<'a> {
    pub route: &'a std::sync::Arc<str>,
    pub model: &'a std::sync::Arc<str>,
    pub task: Option<&'static str>,
    pub difficulty: Option<&'static str>,
    pub status: &'static str,
    pub input_tokens: u64,
    pub cached_input_tokens: u64,
    pub output_tokens: u64,
    pub cost: MicroUsd,
    pub baseline_cost: MicroUsd,
}

/// An unclassified request (embeddings) has no task or difficulty: label it `none`.
fn label(v: Option<&'static str>) -> &'static str {
    v.unwrap_or("none")
}

pub fn record_served(s: &Served<'_>) {
    let (route, model) = (s.route.clone(), s.model.clone());
    let (task, difficulty) = (label(s.task), label(s.difficulty));
    counter!(REQUESTS_TOTAL, "route" => route.clone(), "model" => model.clone(), "task" => task, "difficulty" => difficulty, "status" => s.status).increment(1);
    counter!(INPUT_TOKENS_TOTAL, "route" => route.clone(), "model" => model.clone())
        .increment(s.input_tokens);
    counter!(CACHED_INPUT_TOKENS_TOTAL, "route" => route.clone(), "model" => model.clone())
        .increment(s.cached_input_tokens);
    counter!(OUTPUT_TOKENS_TOTAL, "route" => route.clone(), "model" => model.clone())
        .increment(s.output_tokens);
    counter!(COST_MICRODOLLARS_TOTAL, "route" => route.clone(), "model" => model.clone(), "task" => task, "difficulty" => difficulty)
        .increment(s.cost.0);
    counter!(BASELINE_COST_MICRODOLLARS_TOTAL, "route" => route.clone(), "model" => model.clone(), "task" => task, "difficulty" => difficulty)
        .increment(s.baseline_cost.0);
    counter!(SAVINGS_MICRODOLLARS_TOTAL, "route" => route, "model" => model)
        .increment(s.baseline_cost.saturating_sub(s.cost).0);
}

pub fn record_classify(took: Duration) {
    histogram!(CLASSIFY_SECONDS).record(took.as_secs_f64());
}

pub fn record_overhead(took: Duration) {
    histogram!(PROXY_OVERHEAD_SECONDS).record(took.as_secs_f64());
}

pub fn record_upstream(model: &std::sync::Arc<str>, took: Duration) {
    histogram!(UPSTREAM_SECONDS, "model" => model.clone()).record(took.as_secs_f64());
}

/// A candidate failed before the first byte; `status` is `server_error`, `rate_limited` or
/// `unavailable`.
pub fn record_upstream_error(model: &std::sync::Arc<str>, status: &'static str) {
    counter!(UPSTREAM_ERRORS_TOTAL, "model" => model.clone(), "status" => status).increment(1);
    counter!(FALLBACKS_TOTAL, "model" => model.clone()).increment(1);
}

pub fn record_downgrade(route: &std::sync::Arc<str>) {
    counter!(DOWNGRADES_TOTAL, "route" => route.clone()).increment(1);
}

/// A non-streamed answer failed a check (`trigger`: error, truncated, invalid_json) and was
/// retried on the route's escalation model.
pub fn record_escalation(route: &std::sync::Arc<str>, trigger: &'static str) {
    counter!(ESCALATIONS_TOTAL, "route" => route.clone(), "status" => trigger).increment(1);
}

pub fn record_rejection(budget: &std::sync::Arc<str>) {
    counter!(REJECTIONS_TOTAL, "budget" => budget.clone()).increment(1);
}

pub fn record_reload(ok: bool) {
    let status = if ok { "ok" } else { "failed" };
    counter!(POLICY_RELOADS_TOTAL, "status" => status).increment(1);
    gauge!(POLICY_LAST_RELOAD_OK).set(if ok { 1.0 } else { 0.0 });
}

/// One budget's gauges (its most-used copy).
pub struct BudgetGauges<'a> {
    pub budget: &'a std::sync::Arc<str>,
    pub spent: MicroUsd,
    pub limit: MicroUsd,
    pub remaining: MicroUsd,
    pub projected: MicroUsd,
    pub used: f64,
}

pub fn record_budget(b: &BudgetGauges<'_>) {
    let name = b.budget.clone();
    gauge!(BUDGET_SPENT_USD, "budget" => name.clone()).set(b.spent.as_usd());
    gauge!(BUDGET_LIMIT_USD, "budget" => name.clone()).set(b.limit.as_usd());
    gauge!(BUDGET_REMAINING_USD, "budget" => name.clone()).set(b.remaining.as_usd());
    gauge!(BUDGET_PROJECTED_USD, "budget" => name.clone()).set(b.projected.as_usd());
    gauge!(BUDGET_USED_RATIO, "budget" => name).set(b.used);
}

/// Names every metric with its help text (shown by Prometheus as `# HELP`).
pub fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(REQUESTS_TOTAL, "Requests served by a provider");
    describe_counter!(INPUT_TOKENS_TOTAL, "Input tokens billed");
    describe_counter!(CACHED_INPUT_TOKENS_TOTAL, "Cached input tokens billed");
    describe_counter!(OUTPUT_TOKENS_TOTAL, "Output tokens billed");
    describe_counter!(
        COST_MICRODOLLARS_TOTAL,
        "Cost of served requests, micro-USD"
    );
    describe_counter!(
        BASELINE_COST_MICRODOLLARS_TOTAL,
        "Cost on the baseline model, micro-USD"
    );
    describe_counter!(
        SAVINGS_MICRODOLLARS_TOTAL,
        "Baseline cost minus cost, micro-USD"
    );
    describe_gauge!(
        BUDGET_SPENT_USD,
        "Spend this month of the budget's most-used copy, USD"
    );
    describe_gauge!(
        BUDGET_LIMIT_USD,
        "Monthly limit of each copy of the budget, USD"
    );
    describe_gauge!(
        BUDGET_REMAINING_USD,
        "What the most-used copy can still take, USD"
    );
    describe_gauge!(
        BUDGET_PROJECTED_USD,
        "Projected month-end spend of the most-used copy, USD"
    );
    describe_gauge!(
        BUDGET_USED_RATIO,
        "(spent + held) / limit of the most-used copy"
    );
    describe_histogram!(
        CLASSIFY_SECONDS,
        Unit::Seconds,
        "Time to classify a request"
    );
    describe_histogram!(
        PROXY_OVERHEAD_SECONDS,
        Unit::Seconds,
        "Time before the request is handed to a provider"
    );
    describe_histogram!(
        UPSTREAM_SECONDS,
        Unit::Seconds,
        "Time until the provider's response headers"
    );
    describe_counter!(
        FALLBACKS_TOTAL,
        "Candidates that failed before the first byte"
    );
    describe_counter!(
        UPSTREAM_ERRORS_TOTAL,
        "Provider failures before the first byte"
    );
    describe_counter!(ESCALATIONS_TOTAL, "Requests escalated to a stronger model");
    describe_counter!(
        DOWNGRADES_TOTAL,
        "Requests moved to a cheaper model by a budget"
    );
    describe_counter!(REJECTIONS_TOTAL, "Requests refused with budget_exceeded");
    describe_counter!(POLICY_RELOADS_TOTAL, "Policy reload attempts");
    describe_gauge!(
        POLICY_LAST_RELOAD_OK,
        "1 when the last policy reload succeeded"
    );
}
