//! Time to first streamed byte, for `bench/run.sh`: N sequential streaming chat requests to a
//! URL over one keep-alive connection; prints p50, p90, p99 and max in microseconds as JSON.
//!
//! usage: ttfb URL N
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let url = args.get(1).expect("usage: ttfb URL N").clone();
    let n: usize = args.get(2).map_or(1000, |s| s.parse().unwrap());
    let body = serde_json::json!({
        // Usage requested, as a metered client does: switchyard asks for it upstream anyway
        // and, when the client did not, hides the usage event, so without it the client would
        // see one event fewer through switchyard than direct (one doubled gap per stream).
        "model": "auto", "stream": true, "max_tokens": 64, "stream_options": {"include_usage": true},
        "messages": [{"role": "user", "content": "Summarize the attached meeting notes in three bullet points for the team."}]
    })
    .to_string();
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let mut first = Vec::with_capacity(n);
    let mut gaps = Vec::new();
    for i in 0..n + 50 {
        let req = http::Request::post(url.as_str())
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.clone())))
            .unwrap();
        let started = Instant::now();
        let mut rsp = client.request(req).await.unwrap();
        let mut t_first = None;
        let mut last: Option<Instant> = None;
        while let Some(frame) = rsp.body_mut().frame().await {
            let frame = frame.unwrap();
            if frame.is_data() {
                let now = Instant::now();
                if t_first.is_none() {
                    t_first = Some(now - started);
                }
                if let (Some(prev), true) = (last, i >= 50) {
                    gaps.push((now - prev).as_micros() as u64);
                }
                last = Some(now);
            }
        }
        if i >= 50 {
            first.push(t_first.unwrap().as_micros() as u64);
        }
    }
    let pct = |v: &mut Vec<u64>, p: f64| {
        v.sort_unstable();
        v[((v.len() as f64 - 1.0) * p).round() as usize]
    };
    let out = serde_json::json!({
        "requests": n,
        "ttfb_us": {"p50": pct(&mut first, 0.5), "p90": pct(&mut first, 0.9), "p99": pct(&mut first, 0.99), "max": pct(&mut first, 1.0)},
        "inter_chunk_gap_us": {"p50": pct(&mut gaps, 0.5), "p99": pct(&mut gaps, 0.99)},
    });
    println!("{out}");
}
