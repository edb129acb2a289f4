//! Criterion benches for the pieces every request pays for: parse, classify, rules + decide,
//! the upstream body rewrite, cost, and the classifier's load time.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::hint::black_box;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use switchyard::budget::Usage;
use switchyard::chat;
use switchyard::classify::{Input, Model, ResponseFormat, Role, Thresholds, Turn};
use switchyard::policy::{ModelKind, Policy};
use switchyard::route::{self, Facts, RuleInput};

/// About 1 KB of realistic single-turn prompt.
fn prompt_1k() -> String {
    let base = "Our quarterly revenue report shows growth in the EMEA region, driven by the new \
                enterprise plan and lower churn among mid-market customers. Please summarize the \
                key drivers in three bullet points, flag any risks the finance team should review \
                before the board meeting, and keep the tone neutral. ";
    base.repeat(1024 / base.len() + 1)[..1024].to_owned()
}

/// A 32 KB, 24-turn conversation.
fn conversation_32k() -> Vec<(Role, String)> {
    let turn = "Here is the next part of the log, can you tell me what went wrong with the \
                deployment and how to fix the failing health check? ```\nERROR svc=api status=503 \
                retry=3 upstream=db-primary latency_ms=5012\n``` ";
    (0..24)
        .map(|i| {
            let role = if i % 2 == 0 {
                Role::User
            } else {
                Role::Assistant
            };
            (role, turn.repeat(32 * 1024 / 24 / turn.len() + 1))
        })
        .collect()
}

fn chat_body(prompt: &str) -> Vec<u8> {
    serde_json::json!({
        "model": "auto",
        "messages": [{"role": "system", "content": "You are a helpful analyst."}, {"role": "user", "content": prompt}],
        "max_tokens": 512,
        "temperature": 0.2,
    })
    .to_string()
    .into_bytes()
}

const POLICY: &str = include_str!("../policies/demo.yaml");

fn benches(c: &mut Criterion) {
    let model = Model::embedded().unwrap();
    let thresholds = Thresholds::default();
    let prompt = prompt_1k();
    let body = chat_body(&prompt);

    c.bench_function("parse 1KB chat request", |b| {
        b.iter(|| {
            chat::parse(black_box(&body), chat::Kind::Chat)
                .unwrap()
                .messages
                .len()
        })
    });

    let single = Input {
        turns: vec![Turn {
            role: Role::User,
            text: prompt.as_str().into(),
        }],
        has_tools: false,
        response_format: None,
        max_tokens: Some(512),
    };
    c.bench_function("classify 1KB single-turn", |b| {
        b.iter(|| {
            model
                .classify(black_box(&single), &thresholds)
                .difficulty_score
        })
    });
    // What the proxy runs per request: the same scores without naming signals.
    c.bench_function("classify 1KB single-turn, request path (no signals)", |b| {
        b.iter(|| {
            model
                .classify_unexplained(black_box(&single), &thresholds)
                .difficulty_score
        })
    });
    // The same at low load: between two requests a proxy core idles and other work evicts
    // its caches, so every weights row is fetched from memory again. 32 MiB of writes before
    // each timed call stand in for that.
    let mut evict = vec![0u8; 32 << 20];
    c.bench_function("classify 1KB single-turn, request path, cold caches", |b| {
        b.iter_batched(
            || {
                for (i, byte) in evict.iter_mut().enumerate().step_by(64) {
                    *byte = byte.wrapping_add(i as u8);
                }
            },
            |()| {
                model
                    .classify_unexplained(black_box(&single), &thresholds)
                    .difficulty_score
            },
            BatchSize::PerIteration,
        )
    });

    let conv = conversation_32k();
    let long = Input {
        turns: conv
            .iter()
            .map(|(r, t)| Turn {
                role: *r,
                text: t.as_str().into(),
            })
            .collect(),
        has_tools: true,
        response_format: Some(ResponseFormat::JsonObject),
        max_tokens: Some(2048),
    };
    c.bench_function("classify 32KB conversation", |b| {
        b.iter(|| {
            model
                .classify(black_box(&long), &thresholds)
                .difficulty_score
        })
    });

    c.bench_function("load embedded classifier", |b| {
        b.iter(|| Model::embedded().unwrap())
    });

    let policy = Policy::from_yaml("demo.yaml", POLICY, &|_| {
        Some("http://127.0.0.1:1/v1".to_owned())
    })
    .unwrap();
    let headers = http::HeaderMap::new();
    c.bench_function("rules + decide", |b| {
        b.iter(|| {
            let o = route::apply_rules(
                &policy,
                &RuleInput {
                    last_user: black_box(&prompt),
                    input_tokens: 300,
                    headers: &headers,
                },
            );
            let facts = Facts {
                requested_model: "auto",
                headers: &headers,
                kind: ModelKind::Chat,
                task: o
                    .task
                    .map(|t| t.0)
                    .or(Some(switchyard::classify::Task::Summarization)),
                difficulty: Some(switchyard::classify::Difficulty::Easy),
            };
            route::decide(&policy, &facts).unwrap().candidates.len()
        })
    });

    let parsed = chat::parse(&body, chat::Kind::Chat).unwrap();
    c.bench_function("rewrite upstream body 1KB", |b| {
        b.iter(|| parsed.to_upstream(black_box("llama3.1:8b"), true).len())
    });

    let price = policy.models[0].price;
    c.bench_function("cost", |b| {
        b.iter(|| {
            price.cost(black_box(&Usage {
                input: 1234,
                cached_input: 100,
                output: 567,
            }))
        })
    });
}

criterion_group!(hot_path, benches);
criterion_main!(hot_path);
