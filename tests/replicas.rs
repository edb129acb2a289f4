//! Three `switchyard serve` processes over one PostgreSQL, one mock upstream: 1,000 concurrent
//! requests spread over the replicas against a $2 cap; one replica is killed (-9) mid-load with
//! reservations outstanding, then restarted.
//!
//! Needs PostgreSQL: `SWITCHYARD_TEST_PG_URL`, default `postgres://postgres@127.0.0.1:5432/test`
//! (trust auth). The test makes its own schema and drops it.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::StatusCode;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use support::*;

const BIN: &str = env!("CARGO_BIN_EXE_switchyard");
const CAP_USD: u64 = 2;
/// Marks the requests the upstream never answers: they keep their reservations until their
/// replica dies.
const HANG: &str = "hang here";

struct Replica {
    child: Child,
    proxy: String,
    admin: String,
}

impl Drop for Replica {
    /// A failing test must not leave servers behind (they hold the test's stderr open).
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(policy: &std::path::Path, store: &str, id: &str) -> Replica {
    let mut child = Command::new(BIN)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--replica-id",
            id,
            "--replica-ttl-secs",
            "60",
            "--policy",
        ])
        .arg(policy)
        .env("SWITCHYARD_STORE_URL", store)
        // One replica runs the single-threaded runtime (what `--threads 1` or one CPU gives),
        // whose blocking ledger calls must still reach PostgreSQL through the runtime.
        .env("SWITCHYARD_THREADS", if id == "r0" { "1" } else { "2" })
        .env("SWITCHYARD_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let proxy = line
        .trim()
        .strip_prefix("switchyard listening on ")
        .unwrap_or_else(|| panic!("{line}"))
        .to_owned();
    line.clear();
    out.read_line(&mut line).unwrap();
    let admin = line
        .trim()
        .strip_prefix("switchyard dashboard on ")
        .unwrap_or_else(|| panic!("{line}"))
        .trim_end_matches('/')
        .to_owned();
    Replica {
        child,
        proxy,
        admin,
    }
}

fn request(content: &str) -> String {
    json!({"model": "auto", "max_tokens": 5, "messages": [{"role": "user", "content": content}]})
        .to_string()
}

/// POSTs one chat request; `Some((status, request id, charged micro-dollars))` unless the
/// connection failed (a killed replica).
async fn chat(url: &str, content: &str) -> Option<(StatusCode, String, u64)> {
    let req = http::Request::post(format!("{url}/v1/chat/completions"))
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(bytes::Bytes::from(request(
            content,
        ))))
        .unwrap();
    let rsp = client().request(req).await.ok()?;
    let status = rsp.status();
    let id = rsp.headers()["x-switchyard-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let cost = rsp.headers().get("x-switchyard-cost-usd").map_or(0, |v| {
        (v.to_str().unwrap().parse::<f64>().unwrap() * 1e6).round() as u64
    });
    rsp.into_body().collect().await.ok()?;
    Some((status, id, cost))
}

async fn budgets(admin: &str) -> Vec<Value> {
    let rsp = client()
        .get(format!("{admin}/api/v1/budgets").parse().unwrap())
        .await
        .unwrap();
    assert_eq!(rsp.status(), StatusCode::OK);
    let body = rsp.into_body().collect().await.unwrap().to_bytes();
    let v: Value = serde_json::from_slice(&body).unwrap();
    v["budgets"].as_array().unwrap().clone()
}

/// Waits (yielding) until `done` holds, or fails the test after a minute.
async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let wait = async {
        while !done() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(60), wait)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_share_one_cap_and_survive_a_kill_9() {
    let up = mock(|r| {
        if String::from_utf8_lossy(&r.body).contains(HANG) {
            Reply::Hang
        } else {
            Reply::Json(StatusCode::OK, completion("ok", 3, 5))
        }
    })
    .await;
    let schema = Schema::new("replicas").await;
    let store = schema.url();
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.yaml");
    // $1,000 per million output tokens: every request reserves and costs 5 tokens, $0.005, so
    // the $2 cap admits 400 requests at most (fewer while the hung ones hold $0.10).
    std::fs::write(
        &policy,
        format!("version: 1\nproviders:\n  p: {{ kind: openai, base_url: \"{}\" }}\nmodels:\n  m: {{ provider: p, model: up, tier: open, price: {{ input: 0, output: 1000 }} }}\nroutes:\n  - {{ name: main, use: [m] }}\nbudgets:\n  - {{ name: company, limit_usd: {CAP_USD} }}\n", up.url()),
    )
    .unwrap();
    let mut replicas: Vec<Replica> = ["r0", "r1", "r2"]
        .iter()
        .map(|id| serve(&policy, &store, id))
        .collect();

    // r1 takes 20 requests the upstream never answers: reservations outstanding at the kill.
    let hung: Vec<_> = (0..20)
        .map(|_| {
            let url = replicas[1].proxy.clone();
            tokio::spawn(async move { chat(&url, HANG).await })
        })
        .collect();
    until("the hung requests to reach the upstream", || {
        up.requests()
            .iter()
            .filter(|r| String::from_utf8_lossy(&r.body).contains(HANG))
            .count()
            == 20
    })
    .await;

    // 1,000 concurrent requests, round-robin over the replicas.
    let answers: Arc<Mutex<Vec<(StatusCode, String, u64)>>> = Arc::default();
    let load: Vec<_> = (0..1000)
        .map(|i| {
            let url = replicas[i % 3].proxy.clone();
            let answers = answers.clone();
            tokio::spawn(async move {
                if let Some(a) = chat(&url, &format!("request {i}")).await {
                    answers.lock().unwrap().push(a);
                }
            })
        })
        .collect();
    until("100 answers", || answers.lock().unwrap().len() >= 100).await;
    replicas[1].child.kill().unwrap(); // SIGKILL, mid-load
    replicas[1].child.wait().unwrap();
    for task in load {
        task.await.unwrap();
    }
    for task in hung {
        assert!(task.await.unwrap().is_none(), "a hung request was answered");
    }
    let held_by_the_dead = schema
        .one("SELECT COALESCE(SUM(amount), 0)::BIGINT FROM {s}.holds WHERE replica = 'r1'")
        .await;
    assert!(
        held_by_the_dead >= 20 * 10_000,
        "the killed replica held its hung requests' reservations: {held_by_the_dead}"
    );

    // Restart r1 under its id: its old holds are released at start-up.
    replicas[1] = serve(&policy, &store, "r1");
    assert_eq!(schema.one("SELECT COUNT(*) FROM {s}.holds").await, 0);
    assert_eq!(
        schema
            .one("SELECT COALESCE(SUM(held), 0)::BIGINT FROM {s}.spend_by_budget")
            .await,
        0
    );

    let answers = answers.lock().unwrap().clone();
    let ok: HashMap<String, u64> = answers
        .iter()
        .filter(|(s, _, _)| *s == StatusCode::OK)
        .map(|(_, id, cost)| (id.clone(), *cost))
        .collect();
    let rejected = answers
        .iter()
        .filter(|(s, _, _)| *s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert!(ok.len() > 100, "only {} served", ok.len());
    assert!(rejected > 0, "the cap was never reached");

    // Committed spend is within the cap, and every completed response is in the ledger with
    // the charge its response announced.
    let committed = schema
        .one("SELECT COALESCE(SUM(cost), 0)::BIGINT FROM {s}.requests")
        .await;
    let cap = (CAP_USD * 1_000_000) as i64;
    assert!(committed <= cap, "committed {committed} over the cap");
    // Every request costs exactly what it held ($0.005), so once the cap refused, spend plus
    // what the dead replica held stayed within one request of the cap.
    assert!(
        committed + held_by_the_dead > cap - 5_000 && committed + held_by_the_dead <= cap,
        "committed {committed} + held by the dead {held_by_the_dead} vs cap {cap}"
    );
    let rows = schema
        .admin
        .query(
            &format!(
                "SELECT request_id, cost FROM {}.requests WHERE status = 'ok'",
                schema.name
            ),
            &[],
        )
        .await
        .unwrap();
    let ledger: HashMap<String, i64> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    for (id, cost) in &ok {
        assert_eq!(ledger.get(id).copied(), Some(*cost as i64), "{id}");
    }
    let rollup = schema
        .one("SELECT spent FROM {s}.spend_by_budget WHERE budget = 'company'")
        .await;
    assert_eq!(rollup, committed, "spend_by_budget agrees with the rows");

    // The three replicas answer alike, with nothing held.
    let mut views = Vec::new();
    for r in &replicas {
        views.push(budgets(&r.admin).await);
    }
    for v in &views {
        assert_eq!(v.len(), 1);
        assert_eq!(v[0]["budget"], "company");
        assert_eq!(v[0]["held_usd"].as_f64(), Some(0.0));
        assert_eq!(v[0]["spent_usd"], views[0][0]["spent_usd"]);
        assert_eq!(v[0]["remaining_usd"], views[0][0]["remaining_usd"]);
    }
    eprintln!(
        "served {}, refused {rejected}, committed {committed} µ$ of {CAP_USD} $, the dead replica held {held_by_the_dead} µ$",
        ok.len()
    );
    let spent = views[0][0]["spent_usd"].as_f64().unwrap();
    assert!(
        (spent * 1e6 - committed as f64).abs() < 0.5,
        "{spent} vs {committed}"
    );

    drop(replicas);
    schema.drop_schema().await;
}

/// A TCP forwarder to PostgreSQL that the test can cut, as a network partition would.
struct Forwarder {
    port: u16,
    tasks: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Forwarder {
    /// Forwards `127.0.0.1:port` (0: any free port) to `target`.
    async fn start(port: u16, target: (String, u16)) -> Forwarder {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        let tasks: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>> = Arc::default();
        let conns = tasks.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let target = target.clone();
                conns.lock().unwrap().push(tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                }));
            }
        });
        tasks.lock().unwrap().push(accept);
        Forwarder { port, tasks }
    }

    /// Closes the listener and every forwarded connection.
    fn cut(&self) {
        for t in self.tasks.lock().unwrap().drain(..) {
            t.abort();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_store_refuses_requests_and_fails_readiness() {
    let gate = Arc::new(tokio::sync::Notify::new());
    let g = gate.clone();
    let up = mock(move |r| {
        if r.json()["stream"] == json!(true) {
            Reply::Sse {
                events: openai_stream(&["a ", "b ", "c"], Some((3, 3))),
                gate: Some((1, g.clone())),
            }
        } else {
            Reply::Json(StatusCode::OK, completion("ok", 3, 5))
        }
    })
    .await;
    let schema = Schema::new("partition").await;
    let target = schema.server();
    let forwarder = Forwarder::start(0, target.clone()).await;
    let store = schema.url_via(forwarder.port, "");
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(
        &policy,
        format!("version: 1\nproviders:\n  p: {{ kind: openai, base_url: \"{}\" }}\nmodels:\n  m: {{ provider: p, model: up, tier: open, price: {{ input: 1, output: 1 }} }}\nroutes:\n  - {{ name: main, use: [m] }}\nbudgets:\n  - {{ name: company, limit_usd: 10 }}\n", up.url()),
    )
    .unwrap();
    let replica = serve(&policy, &store, "partitioned");
    let (status, _, _) = chat(&replica.proxy, "before").await.unwrap();
    assert_eq!(status, StatusCode::OK);
    // A stream in flight across the partition: reserved before, charged after.
    let mut streamed: Value = serde_json::from_str(&request("streamed")).unwrap();
    streamed["stream"] = json!(true);
    let req = http::Request::post(format!("{}/v1/chat/completions", replica.proxy))
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(bytes::Bytes::from(
            streamed.to_string(),
        )))
        .unwrap();
    let mut stream = client().request(req).await.unwrap().into_body();
    stream.frame().await.unwrap().unwrap(); // the first event: the request holds its budget

    forwarder.cut();
    let req = http::Request::post(format!("{}/v1/chat/completions", replica.proxy))
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(bytes::Bytes::from(request(
            "after",
        ))))
        .unwrap();
    let rsp = client().request(req).await.unwrap();
    assert_eq!(rsp.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value =
        serde_json::from_slice(&rsp.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(body["error"]["code"], "ledger_unavailable", "{body}");
    assert!(
        !body.to_string().contains(&store) && !body.to_string().contains("search_path"),
        "the store URL leaked: {body}"
    );
    assert!(
        !up.requests()
            .iter()
            .any(|r| String::from_utf8_lossy(&r.body).contains("after")),
        "nothing was sent upstream unreserved"
    );
    let ready = client()
        .get(format!("{}/readyz", replica.admin).parse().unwrap())
        .await
        .unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);

    // The stream ends while PostgreSQL is unreachable: its charge cannot be written yet...
    gate.notify_one();
    while let Some(frame) = stream.frame().await {
        if frame.is_err() {
            break;
        }
    }
    // ...and lands, with its hold released, once PostgreSQL is reachable again.
    let _back = Forwarder::start(forwarder.port, target).await;
    let landed = async {
        loop {
            let rows = schema.one("SELECT COUNT(*) FROM {s}.requests").await;
            let holds = schema.one("SELECT COUNT(*) FROM {s}.holds").await;
            if rows == 2 && holds == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(30), landed)
        .await
        .expect("the stream's charge was written after the partition");
    assert_eq!(
        schema
            .one("SELECT SUM(cost)::BIGINT FROM {s}.requests")
            .await,
        schema
            .one("SELECT spent FROM {s}.spend_by_budget WHERE budget = 'company'")
            .await
    );

    drop(replica);
    schema.drop_schema().await;
}

/// A PostgreSQL front that answers the client's SSLRequest, speaks TLS with a certificate from
/// a CA made for the test, and forwards the decrypted stream to the real server. Returns its
/// port, the CA's PEM and a count of completed TLS handshakes.
async fn tls_front(target: (String, u16)) -> (u16, String, Arc<std::sync::atomic::AtomicUsize>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "switchyard test CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let mut leaf = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    leaf.subject_alt_names
        .push(rcgen::SanType::IpAddress("127.0.0.1".parse().unwrap()));
    let cert = leaf.signed_by(&key, &ca_cert, &ca_key).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let handshakes = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let done = handshakes.clone();
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            let (acceptor, target, done) = (acceptor.clone(), target.clone(), done.clone());
            tokio::spawn(async move {
                // SSLRequest: length 8, code 80877103.
                let mut request = [0u8; 8];
                inbound.read_exact(&mut request).await.ok()?;
                assert_eq!(request, [0, 0, 0, 8, 4, 210, 22, 47], "not an SSLRequest");
                inbound.write_all(b"S").await.ok()?;
                let mut tls = acceptor.accept(inbound).await.ok()?;
                done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let mut outbound = tokio::net::TcpStream::connect(target).await.ok()?;
                tokio::io::copy_bidirectional(&mut tls, &mut outbound)
                    .await
                    .ok()
            });
        }
    });
    (port, ca_cert.pem(), handshakes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sslmode_require_speaks_tls_and_verifies_the_server() {
    let schema = Schema::new("tls").await;
    let (port, ca_pem, handshakes) = tls_front(schema.server()).await;
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca_pem).unwrap();
    let store = schema.url_via(port, "sslmode=require&");
    let report = move |ca: Option<&std::path::Path>| {
        let mut cmd = Command::new(BIN);
        cmd.args(["report", "--store", &store, "--format", "json"]);
        if let Some(ca) = ca {
            cmd.env("SWITCHYARD_STORE_CA_FILE", ca);
        }
        let out = cmd.output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // The test CA is trusted: TLS, then the report of an empty ledger.
    let report = Arc::new(report);
    let (ok, stderr) = tokio::task::spawn_blocking({
        let (ca_file, report) = (ca_file.clone(), report.clone());
        move || report(Some(&ca_file))
    })
    .await
    .unwrap();
    assert!(ok, "{stderr}");
    assert!(handshakes.load(std::sync::atomic::Ordering::SeqCst) > 0);
    // Without it the server's certificate is refused, and nothing falls back to plain text.
    let before = handshakes.load(std::sync::atomic::Ordering::SeqCst);
    let (ok, stderr) = tokio::task::spawn_blocking(move || report(None))
        .await
        .unwrap();
    assert!(!ok);
    assert!(
        stderr.contains("certificate") || stderr.contains("UnknownIssuer"),
        "{stderr}"
    );
    assert_eq!(handshakes.load(std::sync::atomic::Ordering::SeqCst), before);
    schema.drop_schema().await;
}
