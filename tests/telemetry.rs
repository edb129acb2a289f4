//! Telemetry through the real server: Prometheus values after traffic, and OpenTelemetry
//! spans with the GenAI attributes, both in memory and over OTLP/HTTP to an in-test collector.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::{BodyExt, Full};
use opentelemetry::Value;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use serde_json::json;
use support::*;
use switchyard::telemetry::{Traces, metrics as names};

fn request(stream: bool) -> String {
    json!({"model": "auto", "max_tokens": 10, "stream": stream, "messages": [{"role": "user", "content": "Translate to French: good morning"}]}).to_string()
}

/// One sample line of the Prometheus text: its labels and value.
fn samples(text: &str, name: &str) -> Vec<(BTreeMap<String, String>, f64)> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (head, value) = l.rsplit_once(' ')?;
            let (metric, labels) = match head.split_once('{') {
                Some((m, rest)) => (m, rest.trim_end_matches('}')),
                None => (head, ""),
            };
            (metric == name).then(|| {
                let labels = labels
                    .split("\",")
                    .filter(|p| !p.is_empty())
                    .filter_map(|p| {
                        let (k, v) = p.split_once("=\"")?;
                        Some((k.to_owned(), v.trim_end_matches('"').to_owned()))
                    })
                    .collect();
                (labels, value.parse().unwrap())
            })
        })
        .collect()
}

fn value(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    samples(text, name)
        .into_iter()
        .filter(|(l, _)| {
            labels
                .iter()
                .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|(_, v)| v)
        .sum()
}

/// The only test in this file that installs the global recorder. The other tests here may
/// record into it too (they run in parallel), so every check below names model `m1`, which
/// only this test serves, or is a lower bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_after_traffic_count_requests_money_fallbacks_and_rejections() {
    let handle = switchyard::telemetry::metrics::install().unwrap();
    let up = mock(|_| Reply::Json(StatusCode::OK, completion("bonjour", 1000, 500))).await;
    let down = closed_port_url().await;
    let mut policy = openai_policy(&[down, up.url()]);
    policy.push_str("budgets:\n  - { name: company, limit_usd: 0.0035, on_limit: reject }\n");
    let p = proxy(&policy).await;
    let admin = admin(
        &p.state,
        switchyard::dashboard::Admin {
            token: None,
            metrics: Some(handle),
        },
    )
    .await;
    let url = p.url("/v1/chat/completions");
    for _ in 0..2 {
        assert_eq!(post(&url, request(false), &[]).await.status, StatusCode::OK);
    }
    assert_eq!(
        post(&url, request(false), &[]).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    let ledger: u64 = ledger_rows(&p).await.iter().map(|r| r.5).sum();
    assert_eq!(ledger, 4_000);

    let scraped = get(&admin.url("/metrics")).await;
    assert_eq!(scraped.status, StatusCode::OK);
    assert!(scraped.header("content-type").starts_with("text/plain"));
    let text = String::from_utf8(scraped.body.to_vec()).unwrap();
    let ok = [("route", "main"), ("model", "m1"), ("status", "ok")];
    assert_eq!(value(&text, names::REQUESTS_TOTAL, &ok), 2.0, "{text}");
    let labelled = &samples(&text, names::REQUESTS_TOTAL)[0].0;
    assert_eq!(
        labelled.get("task").map(String::as_str),
        Some("translation")
    );
    assert!(labelled.contains_key("difficulty"));
    assert!(!labelled.contains_key("key") && !labelled.contains_key("team"));
    assert_eq!(
        value(&text, names::INPUT_TOKENS_TOTAL, &[("model", "m1")]),
        2000.0
    );
    assert_eq!(
        value(&text, names::OUTPUT_TOKENS_TOTAL, &[("model", "m1")]),
        1000.0
    );
    assert_eq!(
        value(&text, names::COST_MICRODOLLARS_TOTAL, &[("model", "m1")]),
        ledger as f64
    );
    // No baseline in this policy: the baseline is the model itself, so nothing is saved.
    assert_eq!(
        value(
            &text,
            names::BASELINE_COST_MICRODOLLARS_TOTAL,
            &[("model", "m1")]
        ),
        4_000.0
    );
    assert_eq!(
        value(&text, names::SAVINGS_MICRODOLLARS_TOTAL, &[("model", "m1")]),
        0.0
    );
    assert_eq!(
        value(&text, names::FALLBACKS_TOTAL, &[("model", "m0")]),
        2.0
    );
    assert_eq!(
        value(
            &text,
            names::UPSTREAM_ERRORS_TOTAL,
            &[("model", "m0"), ("status", "unavailable")]
        ),
        2.0
    );
    assert_eq!(
        value(&text, names::REJECTIONS_TOTAL, &[("budget", "company")]),
        1.0
    );
    assert_eq!(
        value(&text, names::BUDGET_SPENT_USD, &[("budget", "company")]),
        0.004
    );
    assert_eq!(
        value(&text, names::BUDGET_LIMIT_USD, &[("budget", "company")]),
        0.0035
    );
    assert_eq!(
        value(&text, names::BUDGET_REMAINING_USD, &[("budget", "company")]),
        0.0
    );
    assert!(value(&text, names::BUDGET_USED_RATIO, &[("budget", "company")]) >= 1.0);
    assert!(value(&text, names::BUDGET_PROJECTED_USD, &[("budget", "company")]) >= 0.004);
    assert!(
        value(
            &text,
            &format!("{}_count", names::UPSTREAM_SECONDS),
            &[("model", "m1")]
        ) >= 2.0
    );
    assert!(value(&text, &format!("{}_count", names::CLASSIFY_SECONDS), &[]) >= 3.0);
    assert!(
        value(
            &text,
            &format!("{}_count", names::PROXY_OVERHEAD_SECONDS),
            &[]
        ) >= 2.0
    );
    assert!(
        text.contains(&format!("{}_bucket", names::UPSTREAM_SECONDS)),
        "histograms, not summaries"
    );
    assert_eq!(value(&text, names::POLICY_LAST_RELOAD_OK, &[]), 1.0);

    // A refused reload shows up too.
    assert!(p.state.reload().is_err()); // an in-memory policy has no file to reload
    let text = String::from_utf8(get(&admin.url("/metrics")).await.body.to_vec()).unwrap();
    assert_eq!(
        value(&text, names::POLICY_RELOADS_TOTAL, &[("status", "failed")]),
        1.0
    );
    assert_eq!(value(&text, names::POLICY_LAST_RELOAD_OK, &[]), 0.0);
}

async fn traced_proxy(upstream: &Mock, traces: Traces) -> Proxy {
    let policy = format!("{}baseline: m0\n", openai_policy(&[upstream.url()]));
    let policy = switchyard::Policy::from_yaml("test.yaml", &policy, &|_| None).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut state = switchyard::state(policy, switchyard::Limits::default(), dir.path()).unwrap();
    state.traces = traces;
    proxy_from_state(state, dir).await
}

fn attr<'s>(span: &'s SpanData, key: &str) -> &'s Value {
    &span
        .attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .unwrap_or_else(|| panic!("no {key} on {}: {:?}", span.name, span.attributes))
        .value
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_leaves_a_span_with_genai_attributes() {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let up = mock(|r| {
        if r.json()["stream"] == true {
            Reply::Sse {
                events: openai_stream(&["bon", "jour"], Some((12, 7))),
                gate: None,
            }
        } else {
            Reply::Json(StatusCode::OK, completion("bonjour", 12, 7))
        }
    })
    .await;
    let p = traced_proxy(&up, Traces::from_provider(&provider)).await;
    let url = p.url("/v1/chat/completions");
    assert_eq!(post(&url, request(false), &[]).await.status, StatusCode::OK);
    let streamed = post(&url, request(true), &[]).await;
    assert_eq!(streamed.status, StatusCode::OK);
    provider.force_flush().unwrap();
    let spans = exporter.get_finished_spans().unwrap();
    assert_eq!(spans.len(), 2, "{spans:#?}");
    for span in &spans {
        assert_eq!(span.name, "chat auto");
        assert_eq!(attr(span, "gen_ai.operation.name").as_str(), "chat");
        assert_eq!(attr(span, "gen_ai.request.model").as_str(), "auto");
        assert_eq!(attr(span, "gen_ai.response.model").as_str(), "upstream-0");
        assert_eq!(attr(span, "gen_ai.system").as_str(), "openai");
        assert_eq!(attr(span, "gen_ai.provider.name").as_str(), "openai");
        assert_eq!(attr(span, "gen_ai.usage.input_tokens"), &Value::I64(12));
        assert_eq!(attr(span, "gen_ai.usage.output_tokens"), &Value::I64(7));
        assert_eq!(attr(span, "switchyard.route").as_str(), "main");
        assert_eq!(attr(span, "switchyard.model").as_str(), "m0");
        assert_eq!(attr(span, "switchyard.task").as_str(), "translation");
        assert!(matches!(
            attr(span, "switchyard.difficulty").as_str().as_ref(),
            "easy" | "medium" | "hard"
        ));
        // 12 × $1/M + 7 × $2/M = $0.000026.
        assert_eq!(attr(span, "switchyard.cost_usd"), &Value::F64(0.000026));
        assert_eq!(attr(span, "switchyard.status").as_str(), "ok");
        let text = format!("{:?}", span.attributes);
        assert!(
            !text.contains("good morning"),
            "prompt text in a span: {text}"
        );
    }
}

/// An OTLP/HTTP collector on 127.0.0.1:0 that hands each request to the test.
async fn collector() -> (String, tokio::sync::mpsc::Receiver<(String, String, Bytes)>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let svc =
                    hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let tx = tx.clone();
                        async move {
                            let path = req.uri().path().to_owned();
                            let ct = req
                                .headers()
                                .get("content-type")
                                .map(|v| v.to_str().unwrap().to_owned())
                                .unwrap_or_default();
                            let body = req.into_body().collect().await.unwrap().to_bytes();
                            let _ = tx.send((path, ct, body)).await;
                            Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
                        }
                    });
                let _ = hyper_util::server::conn::auto::Builder::new(
                    hyper_util::rt::TokioExecutor::new(),
                )
                .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                .await;
            });
        }
    });
    (format!("http://{addr}"), rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_reach_an_otlp_http_collector_named_by_the_standard_variables() {
    let (endpoint, mut received) = collector().await;
    let env = move |name: &str| (name == "OTEL_EXPORTER_OTLP_ENDPOINT").then(|| endpoint.clone());
    let provider = switchyard::telemetry::traces_from_env(&env)
        .unwrap()
        .expect("tracing on");
    assert!(
        switchyard::telemetry::traces_from_env(&|_| None)
            .unwrap()
            .is_none(),
        "off by default"
    );
    let up = mock(|_| Reply::Json(StatusCode::OK, completion("bonjour", 12, 7))).await;
    let p = traced_proxy(&up, Traces::from_provider(&provider)).await;
    assert_eq!(
        post(&p.url("/v1/chat/completions"), request(false), &[])
            .await
            .status,
        StatusCode::OK
    );
    let flushing = provider.clone();
    tokio::task::spawn_blocking(move || flushing.force_flush())
        .await
        .unwrap()
        .unwrap();
    let (path, content_type, body) = tokio::time::timeout(Duration::from_secs(10), received.recv())
        .await
        .expect("an export within 10 s")
        .unwrap();
    assert_eq!(path, "/v1/traces");
    assert_eq!(content_type, "application/x-protobuf");
    // Protobuf keeps strings as written: the attribute names and values are in the body.
    for needle in [
        "gen_ai.request.model",
        "gen_ai.response.model",
        "gen_ai.usage.input_tokens",
        "gen_ai.usage.output_tokens",
        "switchyard.route",
        "switchyard.cost_usd",
        "upstream-0",
        "switchyard",
    ] {
        assert!(
            body.windows(needle.len()).any(|w| w == needle.as_bytes()),
            "{needle} not exported"
        );
    }
    tokio::task::spawn_blocking(move || provider.shutdown())
        .await
        .unwrap()
        .unwrap();
}
