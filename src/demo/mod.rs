//! `switchyard demo`: zero-setup proof of the product on one machine, no network, no keys.
//!
//! Starts two simulated OpenAI-compatible providers on loopback (a cheap "open" one and a
//! slower "frontier" one), the real proxy in front of them with `policies/demo.yaml`, replays
//! the bundled sample prompts (written for this project, spread over all eleven tasks; some
//! streamed), prints what was routed where and what it cost against the all-frontier baseline,
//! then keeps serving until Ctrl-C (or exits with `--once`).

pub mod upstream;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{StreamExt, stream};
use http::{Request, header};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde::Deserialize;
use tokio::net::TcpListener;

use crate::budget::MicroUsd;
use crate::config::Limits;
use crate::policy::{Policy, Tier};
use crate::tally::Totals;

/// The demo's policy, embedded so a fresh clone needs nothing on disk.
pub const POLICY: &str = include_str!("../../policies/demo.yaml");
/// Sample prompts written for the demo (not training data).
const PROMPTS: &str = include_str!("prompts.jsonl");

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot start a simulated provider")]
    Upstream(#[source] std::io::Error),
    #[error("the embedded demo policy is invalid:\n{0}")]
    Policy(String),
    #[error("cannot listen on {addr}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot build the proxy")]
    Proxy(#[source] crate::StartError),
    #[error("cannot start the dashboard")]
    Admin(#[source] crate::dashboard::Error),
    #[error("the proxy server failed")]
    Serve(#[source] std::io::Error),
    #[error("a bundled sample prompt is malformed (line {line})")]
    Prompt { line: usize },
}

pub struct Options {
    /// Proxy address; if taken, an ephemeral port is used instead.
    pub listen: SocketAddr,
    /// Dashboard address (loopback; if taken, an ephemeral port is used instead).
    pub admin_listen: SocketAddr,
    /// Renders the dashboard's `/metrics` (None: 503 there).
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    /// Exit after the report.
    pub once: bool,
}

#[derive(Deserialize)]
struct Sample {
    task: String,
    messages: serde_json::Value,
    max_tokens: u32,
}

/// What the replay saw.
#[derive(Debug, Default)]
pub struct Replay {
    pub sent: usize,
    pub streamed: usize,
    pub failed: usize,
    /// Responses whose `x-switchyard-task` equals the sample's own label.
    pub task_agreed: usize,
    /// Distinct labelled tasks among the samples.
    pub tasks: usize,
    pub elapsed: Duration,
}

/// Run the demo; `shutdown` ends serving after the report (Ctrl-C in the CLI).
pub async fn run(opts: Options, shutdown: impl Future<Output = ()>) -> Result<Summary, Error> {
    let open = upstream::Profile {
        name: "open-sim",
        time_to_first_token: Duration::from_millis(25),
        per_token: Duration::from_micros(600),
        min_output: 40,
        max_output: 320,
        fault_every: 0,
    };
    let frontier = upstream::Profile {
        name: "frontier-sim",
        time_to_first_token: Duration::from_millis(60),
        per_token: Duration::from_micros(1500),
        min_output: 60,
        max_output: 420,
        fault_every: 0,
    };
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    let open_addr = upstream::start(loopback, open)
        .await
        .map_err(Error::Upstream)?;
    let frontier_addr = upstream::start(loopback, frontier)
        .await
        .map_err(Error::Upstream)?;
    let env = move |name: &str| match name {
        "SWITCHYARD_DEMO_OPEN_URL" => Some(format!("http://{open_addr}/v1")),
        "SWITCHYARD_DEMO_FRONTIER_URL" => Some(format!("http://{frontier_addr}/v1")),
        _ => None,
    };
    let policy = Policy::from_yaml("policies/demo.yaml", POLICY, &env).map_err(|d| {
        Error::Policy(
            d.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n"),
        )
    })?;
    let listener = match TcpListener::bind(opts.listen).await {
        Ok(l) => l,
        Err(_) => TcpListener::bind(loopback)
            .await
            .map_err(|source| Error::Listen {
                addr: opts.listen,
                source,
            })?,
    };
    let addr = listener.local_addr().map_err(|source| Error::Listen {
        addr: opts.listen,
        source,
    })?;
    // The demo's ledger lives in a fresh temporary directory, removed when the demo ends.
    let data_dir = std::env::temp_dir().join(format!("switchyard-demo-{}", std::process::id()));
    let state = crate::state(policy, Limits::default(), &data_dir).map_err(Error::Proxy)?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(crate::run(state.clone(), listener, async {
        // A dropped sender also means stop.
        let _stopped = stop_rx.await;
    }));

    let admin_listener = match TcpListener::bind(opts.admin_listen).await {
        Ok(l) => l,
        Err(_) => TcpListener::bind(loopback)
            .await
            .map_err(|source| Error::Listen {
                addr: opts.admin_listen,
                source,
            })?,
    };
    let admin_addr = admin_listener
        .local_addr()
        .map_err(|source| Error::Listen {
            addr: opts.admin_listen,
            source,
        })?;
    // The demo's dashboard has no token, so it stays on loopback whatever was asked.
    crate::dashboard::check_exposure(admin_addr, None).map_err(Error::Admin)?;
    let (admin_stop, admin_stopped) = tokio::sync::oneshot::channel::<()>();
    let admin = crate::dashboard::Admin {
        token: None,
        metrics: opts.metrics,
    };
    let admin_server = tokio::spawn(crate::dashboard::serve(
        admin_listener,
        state.clone(),
        admin,
        async {
            // A dropped sender also means stop.
            let _stopped = admin_stopped.await;
        },
    ));

    println!(
        "switchyard demo: proxy on http://{addr}, simulated providers on {open_addr} (open) and {frontier_addr} (frontier)"
    );
    println!("Dashboard: http://{admin_addr}/");
    let replay = replay(addr).await?;
    let snapshot = state.policy.snapshot();
    let rows = state.tally.rows();
    print!("{}", report(&snapshot, &rows, &replay));
    for b in state.ledger.all_status((state.clock)()) {
        println!(
            "Budget {:<10} {}:{:<10} spent {} of {} ({:.1}%), resets {}",
            b.budget,
            b.scope.as_str(),
            b.scope_id,
            b.spent,
            b.limit,
            b.used.as_fraction() * 100.0,
            b.resets_at
        );
    }
    let summary = Summary {
        cost: rows.iter().map(|r| r.2.cost).sum(),
        baseline_cost: rows.iter().map(|r| r.2.baseline_cost).sum(),
        routes: rows.iter().map(|r| r.0.to_string()).collect(),
        replay,
    };

    if !opts.once {
        println!();
        println!("Serving until Ctrl-C. Open the dashboard at http://{admin_addr}/ or try:");
        println!(
            "  curl -s http://{addr}/v1/chat/completions -H 'content-type: application/json' \\"
        );
        println!(
            "    -d '{{\"model\":\"auto\",\"messages\":[{{\"role\":\"user\",\"content\":\"Summarize: the meeting moved to Friday.\"}}]}}'"
        );
        shutdown.await;
    }
    // The receiver is gone only if the server already stopped.
    let _sent = stop_tx.send(());
    drop(admin_stop);
    // The dashboard only reads; how it ended does not change the demo's outcome.
    let _admin = admin_server.await;
    let served = match server.await {
        Ok(result) => result.map_err(Error::Serve),
        Err(join) => Err(Error::Serve(std::io::Error::other(join))),
    };
    drop(state);
    // Best effort: a leftover temporary directory is harmless.
    let _removed = std::fs::remove_dir_all(&data_dir);
    served.map(|()| summary)
}

/// What a demo run did, for callers that check it.
#[derive(Debug)]
pub struct Summary {
    pub replay: Replay,
    pub cost: MicroUsd,
    pub baseline_cost: MicroUsd,
    /// Routes that served at least one request.
    pub routes: std::collections::BTreeSet<String>,
}

/// Send every sample prompt through the proxy, 16 at a time; every third one streamed.
async fn replay(addr: SocketAddr) -> Result<Replay, Error> {
    let mut samples = Vec::new();
    for (i, line) in PROMPTS
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let s: Sample = serde_json::from_str(line).map_err(|_| Error::Prompt { line: i + 1 })?;
        samples.push(s);
    }
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let started = Instant::now();
    let url = format!("http://{addr}/v1/chat/completions");
    let tasks = samples
        .iter()
        .map(|s| s.task.as_str())
        .collect::<std::collections::HashSet<_>>()
        .len();
    let results: Vec<(bool, bool, bool)> = stream::iter(samples.iter().enumerate())
        .map(|(i, sample)| {
            let client = client.clone();
            let url = url.clone();
            async move {
                let streamed = i % 3 == 0;
                let body = serde_json::json!({
                    "model": "auto",
                    "messages": sample.messages,
                    "max_tokens": sample.max_tokens,
                    "stream": streamed,
                    "user": format!("demo-{}", sample.task),
                });
                let Ok(req) = Request::post(url.as_str())
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(Full::new(Bytes::from(body.to_string())))
                else {
                    return (false, streamed, false);
                };
                match client.request(req).await {
                    Ok(rsp) => {
                        let status = rsp.status();
                        let agreed = rsp
                            .headers()
                            .get("x-switchyard-task")
                            .is_some_and(|t| t.as_bytes() == sample.task.as_bytes());
                        let ok = rsp.into_body().collect().await.is_ok() && status.is_success();
                        (ok, streamed, agreed)
                    }
                    Err(_) => (false, streamed, false),
                }
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    Ok(Replay {
        sent: results.len(),
        streamed: results.iter().filter(|(_, s, _)| *s).count(),
        failed: results.iter().filter(|(ok, _, _)| !ok).count(),
        task_agreed: results.iter().filter(|(_, _, a)| *a).count(),
        tasks,
        elapsed: started.elapsed(),
    })
}

/// The report printed after the replay.
pub fn report(policy: &Policy, rows: &[(Arc<str>, Arc<str>, Totals)], replay: &Replay) -> String {
    use std::fmt::Write as _;
    // Every `let _ = writeln!` below writes to a String, which cannot fail.
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\nReplayed {} sample prompts ({} streamed, {} failed) in {:.1} s.",
        replay.sent,
        replay.streamed,
        replay.failed,
        replay.elapsed.as_secs_f64()
    );
    let _ = writeln!(
        out,
        "Routing: the built-in classifier decides task and difficulty (plus {} override rule(s) from policies/demo.yaml);",
        policy.rules.len()
    );
    let _ = writeln!(
        out,
        "its task agreed with the samples' own labels on {} of {} requests, over {} tasks.\n",
        replay.task_agreed, replay.sent, replay.tasks
    );
    let _ = writeln!(
        out,
        "{:<15} {:<14} {:<9} {:>8} {:>11} {:>11} {:>12}",
        "route", "model", "tier", "requests", "input tok", "output tok", "cost"
    );
    let mut total = Totals::default();
    let mut by_tier: [(u64, MicroUsd); 2] = [(0, MicroUsd::ZERO); 2];
    for (route, model, t) in rows {
        let tier = policy.model_named(model).map(|(_, m)| m.tier);
        let _ = writeln!(
            out,
            "{:<15} {:<14} {:<9} {:>8} {:>11} {:>11} {:>12}",
            route,
            model,
            tier.map_or("?", Tier::as_str),
            t.requests,
            t.input_tokens + t.cached_input_tokens,
            t.output_tokens,
            t.cost.to_string()
        );
        total.requests += t.requests;
        total.input_tokens += t.input_tokens + t.cached_input_tokens;
        total.output_tokens += t.output_tokens;
        total.cost += t.cost;
        total.baseline_cost += t.baseline_cost;
        let slot = usize::from(tier == Some(Tier::Frontier));
        if let Some(s) = by_tier.get_mut(slot) {
            s.0 += t.requests;
            s.1 += t.cost;
        }
    }
    let _ = writeln!(
        out,
        "{:<15} {:<14} {:<9} {:>8} {:>11} {:>11} {:>12}",
        "total",
        "",
        "",
        total.requests,
        total.input_tokens,
        total.output_tokens,
        total.cost.to_string()
    );
    let baseline = policy
        .baseline
        .and_then(|b| policy.model(b))
        .map_or("(none)", |m| &m.name);
    let saved = total.baseline_cost.saturating_sub(total.cost);
    let pct = if total.baseline_cost.0 == 0 {
        0.0
    } else {
        100.0 * saved.0 as f64 / total.baseline_cost.0 as f64
    };
    let _ = writeln!(
        out,
        "\nHad everything gone to {baseline}: {}",
        total.baseline_cost
    );
    let _ = writeln!(out, "Spent through switchyard:        {}", total.cost);
    let _ = writeln!(
        out,
        "Saved:                           {} ({pct:.1}%)",
        saved
    );
    for (name, (requests, cost)) in ["open", "frontier"].iter().zip(by_tier) {
        let share = if total.requests == 0 {
            0.0
        } else {
            100.0 * requests as f64 / total.requests as f64
        };
        let _ = writeln!(
            out,
            "  {name:<9} {requests:>4} requests ({share:.0}%), {cost}"
        );
    }
    out
}
