//! Secrets never reach logs or responses: provider keys, virtual keys and prompt text, even
//! when requests fail. Logs are captured at trace level for switchyard.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::io::Write;
use std::sync::{Arc, Mutex};

use http::StatusCode;
use serde_json::json;
use support::*;

const PROVIDER_KEY: &str = "sk-PROVIDER-SECRET-4f2a";
const CLIENT_KEY: &str = "sy-CLIENT-SECRET-9b1c";
const WRONG_KEY: &str = "sy-WRONG-SECRET-77aa";
const PROMPT: &str = "PROMPT-SECRET-TEXT about the merger";

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn no_secret_reaches_logs_or_responses_even_on_failures() {
    let logs = Captured::default();
    let writer = logs.clone();
    tracing_subscriber::fmt()
        .with_env_filter("switchyard=trace,info")
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .init();

    let failing = mock(|_| {
        Reply::Json(
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({"error": {"message": "upstream exploded"}}),
        )
    })
    .await;
    let rejecting = mock(|_| {
        Reply::Json(
            StatusCode::BAD_REQUEST,
            json!({"error": {"message": "bad"}}),
        )
    })
    .await;
    let closed = closed_port_url().await;
    let hash = switchyard::server::hash_key(CLIENT_KEY);
    let policy = format!(
        "version: 1\nproviders:\n  a: {{ kind: openai, base_url: \"{}\", api_key: {PROVIDER_KEY} }}\n  b: {{ kind: anthropic, base_url: \"{}\", api_key: {PROVIDER_KEY} }}\n  c: {{ kind: openai, base_url: \"{closed}\", api_key: {PROVIDER_KEY} }}\nmodels:\n  m1: {{ provider: a, model: x, tier: open, price: {{ input: 1, output: 1 }} }}\n  m2: {{ provider: b, model: y, tier: open, price: {{ input: 1, output: 1 }} }}\n  m3: {{ provider: c, model: z, tier: open, price: {{ input: 1, output: 1 }} }}\nroutes:\n  - {{ name: main, use: [m1, m2, m3] }}\nkeys:\n  - {{ name: app, sha256: \"{hash}\" }}\n",
        failing.url(),
        rejecting.base()
    );
    let p = proxy(&policy).await;
    let url = p.url("/v1/chat/completions");
    let body =
        json!({"model": "auto", "messages": [{"role": "user", "content": PROMPT}]}).to_string();
    let bearer = format!("Bearer {CLIENT_KEY}");
    let wrong = format!("Bearer {WRONG_KEY}");
    let mut answers = vec![
        post(&url, body.clone(), &[("authorization", &bearer)]).await,
        post(&url, body.clone(), &[("authorization", &wrong)]).await,
        post(&url, body.replace("\"messages\"", "\"messagez\""), &[("authorization", &bearer)]).await,
        post(&p.url("/v1/messages"), body.clone(), &[("x-api-key", CLIENT_KEY)]).await,
        post(&url, json!({"model": "auto", "x-switchyard-dry-run": 1, "messages": [{"role": "user", "content": PROMPT}]}).to_string(), &[("authorization", &bearer), ("x-switchyard-dry-run", "1")]).await,
    ];
    answers.push(
        post(
            &url,
            format!("{{\"model\": \"{PROMPT}\", \"messages\": []}}"),
            &[("authorization", &bearer)],
        )
        .await,
    );
    assert!(answers.iter().any(|a| a.status == StatusCode::UNAUTHORIZED));
    assert!(
        answers
            .iter()
            .any(|a| a.status.is_server_error() || a.status == StatusCode::BAD_REQUEST)
    );
    p.state.ledger.flush().await.unwrap();

    let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("request failed") || logs.contains("trying the next candidate"),
        "logs were captured: {logs}"
    );
    for secret in [PROVIDER_KEY, CLIENT_KEY, WRONG_KEY, "PROMPT-SECRET-TEXT"] {
        assert!(!logs.contains(secret), "`{secret}` leaked into the logs");
        for a in &answers {
            let headers = format!("{:?}", a.headers);
            assert!(
                !headers.contains(secret),
                "`{secret}` leaked into response headers"
            );
            if secret != "PROMPT-SECRET-TEXT" {
                assert!(
                    !String::from_utf8_lossy(&a.body).contains(secret),
                    "`{secret}` leaked into a response body"
                );
            }
        }
    }
    // The ledger (database, WAL and journal) keeps no prompt text and no key.
    let read = |name: &str| std::fs::read(p.data_dir.path().join(name)).unwrap_or_default();
    let db = read("ledger.sqlite3");
    let journal = read("ledger.journal");
    assert!(
        journal.windows(10).any(|w| w == b"request_id"),
        "the journal holds the rows"
    );
    for file in [db, read("ledger.sqlite3-wal"), journal] {
        for secret in [
            PROVIDER_KEY.as_bytes(),
            CLIENT_KEY.as_bytes(),
            b"PROMPT-SECRET-TEXT",
        ] {
            assert!(!file.windows(secret.len()).any(|w| w == secret));
        }
    }
}
