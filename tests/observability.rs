//! The Grafana dashboard and the Prometheus alert rules under deploy/ name only metrics that
//! switchyard exports (`src/telemetry/metrics.rs`), and the alerts the issue asks for exist.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeSet;

use switchyard::telemetry::metrics::ALL;

fn read(path: &str) -> String {
    std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

/// Every `switchyard_…` name in a PromQL expression, histogram series folded to their metric.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = expr;
    while let Some(at) = rest.find("switchyard_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        let name = &tail[..end];
        let base = ["_bucket", "_count", "_sum"]
            .iter()
            .find_map(|s| name.strip_suffix(s).filter(|b| ALL.contains(b)))
            .unwrap_or(name);
        out.insert(base.to_owned());
        rest = &tail[end..];
    }
    out
}

fn assert_known(exprs: &[String], what: &str) {
    assert!(!exprs.is_empty(), "no expressions in {what}");
    for expr in exprs {
        let names = metric_names(expr);
        assert!(
            !names.is_empty(),
            "{what}: `{expr}` names no switchyard metric"
        );
        for name in names {
            assert!(
                ALL.contains(&name.as_str()),
                "{what} names `{name}`, which switchyard does not export"
            );
        }
    }
}

#[test]
fn the_grafana_dashboard_names_only_exported_metrics() {
    let dash: serde_json::Value =
        serde_json::from_str(&read("deploy/grafana/switchyard.json")).unwrap();
    assert_eq!(dash["uid"], "switchyard");
    let mut exprs = Vec::new();
    for panel in dash["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            exprs.push(target["expr"].as_str().unwrap().to_owned());
        }
    }
    assert_known(&exprs, "deploy/grafana/switchyard.json");
    let used: BTreeSet<String> = exprs.iter().flat_map(|e| metric_names(e)).collect();
    for wanted in [
        "switchyard_cost_microdollars_total",
        "switchyard_savings_microdollars_total",
        "switchyard_budget_used_ratio",
        "switchyard_upstream_seconds",
    ] {
        assert!(
            used.contains(wanted),
            "the dashboard does not show {wanted}"
        );
    }
}

#[test]
fn the_alert_rules_name_only_exported_metrics_and_cover_budgets_errors_and_reloads() {
    let rules: serde_yaml::Value =
        serde_yaml::from_str(&read("deploy/prometheus/alerts.yaml")).unwrap();
    let mut exprs = Vec::new();
    let mut alerts = BTreeSet::new();
    for group in rules["groups"].as_sequence().unwrap() {
        for rule in group["rules"].as_sequence().unwrap() {
            alerts.insert(rule["alert"].as_str().unwrap().to_owned());
            exprs.push(rule["expr"].as_str().unwrap().to_owned());
            assert!(rule["annotations"]["summary"].as_str().is_some());
        }
    }
    assert_known(&exprs, "deploy/prometheus/alerts.yaml");
    let expected: BTreeSet<String> = [
        "SwitchyardBudgetProjectedOverCap",
        "SwitchyardBudgetCapped",
        "SwitchyardUpstreamErrorRate",
        "SwitchyardPolicyReloadFailed",
    ]
    .map(str::to_owned)
    .into();
    assert_eq!(alerts, expected);
}

#[test]
fn metric_names_follow_the_naming_rule() {
    for name in ALL {
        assert!(name.starts_with("switchyard_"), "{name}");
        let units = ["_total", "_usd", "_seconds", "_ratio", "_ok"];
        assert!(
            units.iter().any(|u| name.ends_with(u)),
            "{name} has no unit suffix"
        );
    }
    let unique: BTreeSet<&&str> = ALL.iter().collect();
    assert_eq!(unique.len(), ALL.len(), "a metric name is listed twice");
}
